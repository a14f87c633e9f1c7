"""Atomic outputs: files written whole or not at all, folders swapped in when complete.

- :func:`write_bytes`, :func:`write_text`, :func:`atomic_file`: a file is
  written to a hidden part file beside its target, flushed and fsynced, then
  renamed over it (``boltons.fileutils.AtomicSaver``). A new file gets the
  user's umask (0644 under the usual umask 022), an existing one keeps its
  mode. Part names are unique, so parallel writers of one path never collide:
  the last rename wins and every reader sees one whole file.
- :func:`check_output_folder` / :func:`check_output_file`: the output-location
  checks a command makes *before any work* (one-line :class:`UsageError`).
- :class:`OutputFolder`: a command's output folder, built in a temporary
  sibling ``.NAME.tmp-XXXX`` and swapped in only when the command completes
  (``renameat2(RENAME_EXCHANGE)`` where Linux offers it, else two renames);
  on an exception or ``KeyboardInterrupt`` the temporary folder is removed and
  the old folder, if any, is left as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import uuid
from pathlib import Path
from typing import IO, Iterator

from boltons.fileutils import AtomicSaver

from lqer_hw.args import UsageError

__all__ = ["write_bytes", "write_text", "atomic_file", "check_output_folder", "check_output_file",
           "OutputFolder", "build_folder"]


def build_folder(path: str | os.PathLike | None = None) -> Path:
    """The build folder every command shares (absolute): ``path`` when given (``--build-dir``),
    else ``$LQER_BUILD_DIR`` when set and non-empty, else ``build`` in the current working
    folder. ``sim`` builds in its ``sim/`` subfolder; ``synth`` and ``pnr`` write their
    default output folders ``synth/`` and ``pnr/`` there."""
    if path is None or os.fspath(path) == "":
        path = os.environ.get("LQER_BUILD_DIR") or "build"
    return Path(path).absolute()


# ---------------------------------------------------------------- files

@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, text: bool = False) -> Iterator[IO]:
    """A file object that becomes ``path`` when the ``with`` block ends without an exception."""
    path = Path(path)
    part = f".{path.name}.{uuid.uuid4().hex[:12]}.part"
    saver = AtomicSaver(os.fspath(path), part_file=part, text_mode=text, overwrite=True)
    with saver as handle:
        yield handle


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_file(path) as handle:
        handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- checks

def _file_above(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s ancestors, or None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
        if parent.is_symlink():  # a dangling link cannot hold a folder either
            return parent
    return None


def _check_location(path: str | os.PathLike, name: str) -> Path:
    text = os.fspath(path)
    if not text:
        raise UsageError(f"{name} must name a folder or file; got ''")
    p = Path(text).absolute()
    blocker = _file_above(p)
    if blocker is not None:
        shown = os.fspath(blocker) if Path(text).is_absolute() else os.path.relpath(blocker)
        raise UsageError(f"{name} must not lie under a file; got {text!r} "
                         f"({shown!r} is a file)")
    cwd = Path.cwd().resolve()
    resolved = p.resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UsageError(f"{name} must not be the working folder or one above it; got {text!r}")
    return p


def check_output_folder(path: str | os.PathLike, *, overwrite: bool, name: str = "out") -> Path:
    """Check that ``path`` can become a command's output folder; return it absolute.

    Raises :class:`UsageError` (one line naming ``name``) when ``path`` lies under
    a file, is a file, is the working folder or above it, or is a non-empty
    folder and ``overwrite`` is false.
    """
    p = _check_location(path, name)
    text = os.fspath(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{name} must be a folder (new or empty); got the file {text!r}")
    if p.is_dir() and not overwrite:
        entries = sum(1 for _ in os.scandir(p))
        if entries:
            raise UsageError(f"{name} must be a new or empty folder (or give --overwrite); got "
                             f"{text!r} with {entries} entr{'y' if entries == 1 else 'ies'}")
    return p


def check_output_file(path: str | os.PathLike, *, name: str, suffix: str | None = None) -> Path:
    """Check that ``path`` can become an output file (written with :func:`write_bytes`).

    Raises :class:`UsageError` when it lies under a file, is a folder, lacks
    ``suffix``, or its folder does not exist.
    """
    p = _check_location(path, name)
    text = os.fspath(path)
    if suffix is not None and p.suffix != suffix:
        raise UsageError(f"{name} must end in {suffix}; got {text!r}")
    if p.is_dir():
        raise UsageError(f"{name} must be a file, not a folder; got {text!r}")
    if not p.parent.is_dir():
        raise UsageError(f"{name} must be in an existing folder; got {text!r}")
    return p


# ---------------------------------------------------------------- folders

def _new_sibling(path: Path, kind: str) -> Path:
    """A new empty folder ``.NAME.KIND-XXXX`` beside ``path`` (mode from the umask, unlike mkdtemp)."""
    while True:
        candidate = path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


class OutputFolder:
    """A command's output folder, complete or absent (see the module docstring).

    ::

        out = OutputFolder(args.out, overwrite=args.overwrite, name="out")  # checks, before work
        ...                                                                 # the work
        with out as tmp:                                                    # tmp: a Path
            write_text(tmp / "manifest.json", ...)
        # here args.out holds exactly what was written to tmp

    ``path`` is the final location, ``tmp`` the folder being built (None
    outside the ``with``). Folders above ``path`` that were created for it are
    removed again when the command fails.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, name: str = "out"):
        self.path = check_output_folder(path, overwrite=overwrite, name=name)
        self.display = os.fspath(path)
        self.overwrite = overwrite
        self.name = name
        self.tmp: Path | None = None
        self._created: list[Path] = []

    def __enter__(self) -> Path:
        missing = [p for p in self.path.parents if not p.exists()]
        for parent in reversed(missing):
            parent.mkdir(exist_ok=True)
            self._created.append(parent)
        self.tmp = _new_sibling(self.path, "tmp")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        tmp, self.tmp = self.tmp, None
        if exc_type is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            for parent in reversed(self._created):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only while empty
            return
        self._commit(tmp)

    def _commit(self, tmp: Path) -> None:
        final = self.path
        if final.is_dir() and any(os.scandir(final)) and not self.overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UsageError(f"{self.name} must be a new or empty folder (or give --overwrite); "
                             f"got {self.display!r}, filled by another process meanwhile")
        if final.exists() or final.is_symlink():
            if _exchange(tmp, final):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the old contents
                return
            old = _new_sibling(final, "old")
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            return
        os.replace(tmp, final)
