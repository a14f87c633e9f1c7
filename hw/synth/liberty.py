"""Just enough Liberty reading to tell sequential cells (flip-flops, latches) apart."""

from __future__ import annotations

import re

__all__ = ["cell_names", "sequential_cells"]

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_CELL = re.compile(r"\bcell\s*\(\s*\"?([^\s\"()]+)\"?\s*\)\s*\{")
_STORAGE = re.compile(r"\b(ff|latch|ff_bank|latch_bank)\s*\(")


def _cells(text: str) -> dict[str, str]:
    """Cell name -> body text (between its braces)."""
    text = _COMMENT.sub(" ", text)
    cells = {}
    for match in _CELL.finditer(text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        cells[match.group(1)] = text[match.end():i - 1]
    return cells


def cell_names(text: str) -> list[str]:
    return list(_cells(text))


def sequential_cells(text: str) -> set[str]:
    """Names of the cells that hold state (an ``ff`` or ``latch`` group)."""
    return {name for name, body in _cells(text).items() if _STORAGE.search(body)}
