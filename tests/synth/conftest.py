"""Shared helpers for the synthesis tests.

Yosys runs are the slow part, and pytest-xdist may place tests that need the
same runs on both workers. ``synthesise`` therefore keeps one result cache for
the whole session (beside the workers' temporary folders) and holds a file
lock while running, so the second worker finds every result cached.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from hw.synth.cache import ResultCache
from hw.synth.flow import run_jobs


@pytest.fixture(scope="session")
def tiny_liberty() -> Path:
    return Path(__file__).resolve().parent / "tiny.lib"


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "lqer-synth-shared"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def synthesise(shared_root, tmp_path_factory):
    """``synthesise(jobs) -> (records in job order, out folder)``; fails on any Yosys failure."""
    cache = ResultCache(shared_root / "cache")

    def run(jobs):
        out = tmp_path_factory.mktemp("synth")
        with open(shared_root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                records, failures = run_jobs(jobs, out, workers=2, cache=cache)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        assert not failures, [str(f) for f in failures]
        return records, out

    return run
