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


def test_the_check_takes_other_machines_last_digits_and_nothing_else():
    """``--check`` compares figures, not characters: another machine's float kernels move
    a perplexity in its third decimal (105.693 against 105.672 for the ResQ PCA variant),
    and a rounded percentage by one; any other text, a figure off by more than 0.1% or a
    unit, or a missing figure is stale."""
    row = "| W3A8 | 105.259 | 107.480 | 78 % | 15,104 |"
    assert docs_tables.agrees(row, row)
    assert docs_tables.agrees(row, "| W3A8 | 105.259 | 107.479 | 79 % | 15,110 |")
    assert docs_tables.agrees("PCA 105.693", "PCA 105.672")
    assert not docs_tables.agrees(row, "| W3A8 | 105.259 | 107.700 | 78 % | 15,104 |")
    assert not docs_tables.agrees(row, "| W3A8 | 105.259 | 107.480 | 80 % | 15,104 |")
    assert not docs_tables.agrees(row, "| W4A8 | 105.259 | 107.480 | 78 % | 15,104 |")
    assert not docs_tables.agrees(row, "| W3A8 | 105.259 | 107.480 | 78 % |")
    assert not docs_tables.agrees("x 1.5", "x 1.5 y")
