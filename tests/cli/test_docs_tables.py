"""The result tables of README.md and docs/sw.md are what the code produces (scripts/docs_tables.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import docs_tables  # noqa: E402


def test_every_generated_block_is_marked_in_its_file():
    for name, file in docs_tables.FILES.items():
        assert name in docs_tables.blocks_in((ROOT / file).read_text()), (file, name)


@pytest.mark.slow
def test_committed_tables_match_the_code():
    """About a minute: 11 evaluations of the embedded model (the bit-true figures: make docs)."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_tables.py"), "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
