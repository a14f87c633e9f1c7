"""The synthesis cache the cost tests share: one folder for the whole session, across
pytest-xdist workers too (each worker's basetemp is a folder of the session's), so a part
is synthesised once per run (concurrent writers of one record write the same bytes,
atomically: hw.synth.cache)."""

from __future__ import annotations

import os
from pathlib import Path


def session_cache_root(tmp_path_factory) -> Path:
    """``<session basetemp>/synth`` (the folder ``$LQER_CACHE_DIR=<its parent>`` names)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "synth"
