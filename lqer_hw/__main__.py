import sys

from lqer_hw.cli import main

sys.exit(main())
