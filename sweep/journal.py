"""``results.jsonl``: one JSON line per finished point, appended atomically, read to resume.

Each line is a whole row (``sort_keys`` JSON, so equal rows are equal
lines), written with one ``write`` on an ``O_APPEND`` descriptor and fsynced,
under a file lock (``filelock``, ``.results.jsonl.lock`` beside it) so that
several writers -- two sweeps sharing a folder, a driver and its helpers --
never interleave, and a key already written is not written again. A line is
either whole or absent; a line cut short by a crash (no final newline) is
dropped when the journal is opened.

Rows are keyed by ``key`` (the hash of a point's configuration,
:func:`sweep.spec.point_key`): a point is done when its key has a row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

__all__ = ["RESULTS", "Journal"]

RESULTS = "results.jsonl"


class Journal:
    """The results file of a sweep folder."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / RESULTS
        self.lock = FileLock(str(Path(folder) / f".{RESULTS}.lock"))
        self._known: set[str] = set()   # keys of the lines read so far
        self._seen = 0                  # bytes of whole lines read so far

    def repair(self) -> int:
        """Drop a last line without its newline (a write cut by a crash); returns bytes dropped."""
        with self.lock:
            if not self.path.exists():
                return 0
            data = self.path.read_bytes()
            if not data or data.endswith(b"\n"):
                return 0
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
            return len(data) - keep

    def rows(self) -> dict[str, dict]:
        """Key -> row of every whole line (a later line of a key replaces an earlier one).

        Raises ``ValueError`` naming the line when one is not a JSON row.
        """
        if not self.path.exists():
            return {}
        rows = {}
        with self.lock:
            text = self.path.read_text()
        for number, line in enumerate(text.splitlines(keepends=True), 1):
            if not line.endswith("\n"):
                break  # cut short: not a row
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise ValueError(f"out must hold a sweep's results; {os.fspath(self.path)!r} line "
                                 f"{number} is not a result row")
            rows[row["key"]] = row
        return rows

    def append(self, row: dict) -> bool:
        """Add one row as one whole line, unless its key has a row already (another sweep
        sharing the folder finished that point first); returns whether it was added."""
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        with self.lock:
            if row["key"] in self._keys_on_disk():
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
                while written < len(line):  # a short write (rare): finish the line
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            self._known.add(row["key"])
            self._seen = self.path.stat().st_size
            return True

    def _keys_on_disk(self) -> set[str]:
        """Keys of the whole lines (read incrementally: only what was added since last time)."""
        if not self.path.exists():
            self._known, self._seen = set(), 0
            return self._known
        with open(self.path, "rb") as f:
            if f.seek(0, os.SEEK_END) < self._seen:  # rewritten (drop): read again
                self._known, self._seen = set(), 0
            f.seek(self._seen)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                self._known.add(json.loads(line)["key"])
            except (ValueError, KeyError, TypeError):
                pass  # rows() names bad lines
        self._seen += end
        return self._known

    def drop(self, keys: set[str]) -> int:
        """Remove the rows of ``keys`` (to run those points again); returns how many."""
        from lqer_hw.files import write_text

        with self.lock:
            if not self.path.exists():
                return 0
            lines = self.path.read_text().splitlines(keepends=True)
            kept = [ln for ln in lines if ln.endswith("\n") and json.loads(ln).get("key") not in keys]
            dropped = len(lines) - len(kept)
            if dropped:
                write_text(self.path, "".join(kept))
            return dropped
