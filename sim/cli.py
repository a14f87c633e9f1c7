"""``lqer-hw sim``: run a design's RTL on the vectors of an .npz file (cocotb).

    lqer-hw sim DESIGN [-p NAME=VALUE]... --inputs IN.npz --outputs OUT.npz
                [--simulator verilator|icarus] [--build-dir DIR] [--check] [--stall P]
                [--seed N]
    lqer-hw sim lqer-linear --factors DIR --layer NAME --inputs X.npy --outputs Y.npz ...
    lqer-hw sim llm-int8-linear --model PATH|default --layer NAME --inputs X.npy
                --outputs Y.npz [--threshold 6.0] ...

Exit status: 0; 1 when the simulator failed or ``--check`` found a mismatch; 2 for a
usage error (one line, nothing written); 130 when interrupted (one line, no output
file, no half-built build folder). Status lines and a progress bar go to stderr; the
result line (which simulator ran, items, cycles, where the outputs went) to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from hw.designs import get_design, inspect, parse_params
from lqer_hw.args import Parser, UsageError, integer, number, run
from lqer_hw.files import atomic_file, check_output_file
from sim.adapters import ADAPTERS, get_adapter

__all__ = ["main", "check_simulator", "check_build_dir", "write_npz", "StatusDisplay"]


def _fields_help() -> str:
    lines = ["fields of IN.npz / OUT.npz per design (integers; N vectors):"]
    for name, adapter in ADAPTERS.items():
        lines.append(f"  {name}:")
        for spec in adapter.inputs:
            lines.append(f"    in   {spec.name:<12} {spec.doc}")
        extra = getattr(adapter, "requantized_outputs", ())
        for spec in adapter.outputs + tuple(extra):
            lines.append(f"    out  {spec.name:<12} {spec.doc}")
    lines += ["", "Exponents are unbiased. Parameters and ranges: lqer-hw gen --list.",
              "Build folder: --build-dir, else $LQER_BUILD_DIR, else build/ in the current "
              "folder;",
              "builds go to its sim/ subfolder (one per design, parameters and simulator).",
              "Environment: LQER_WAVES=1 keeps a waveform in the run folder under it."]
    return "\n".join(lines)


def _parser(prog: str) -> argparse.ArgumentParser:
    from sim.runner import BENCHES, SIMULATORS
    p = Parser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run the RTL of DESIGN on the vectors in IN.npz through the cocotb "
                "stream bench and write what the RTL produced to OUT.npz.",
                epilog=_fields_help())
    p.add_argument("design", help="design name (lqer-hw gen --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a design parameter (repeatable)")
    p.add_argument("--inputs", required=True, metavar="IN.npz",
                   help="input vectors (with --factors: X.npy, tokens x d_in floats)")
    p.add_argument("--outputs", required=True, metavar="OUT.npz", help="where to write outputs")
    p.add_argument("--simulator", default=None, choices=SIMULATORS,
                   help="HDL simulator (default: the first installed of "
                        f"{', '.join(SIMULATORS)})")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help="build folder (default: $LQER_BUILD_DIR, else build/ in the current "
                        "folder); simulation builds go to DIR/sim")
    p.add_argument("--check", action="store_true",
                   help="also compare with the bit-exact reference; exit 1 on any mismatch")
    p.add_argument("--stall", type=number(low=0, below=1), default=0.0, metavar="P",
                   help="probability of a valid stall and of a ready stall per cycle (default 0)")
    p.add_argument("--seed", type=integer(0), default=1, help="seed of the stall pattern")
    p.add_argument("--bench", default="cocotb", choices=BENCHES,
                   help="the stream bench: cocotb (the agents in Python; default) or hdl (the "
                        "same stream discipline in Verilog, several times faster on Verilator: "
                        "many tokens)")
    p.add_argument("--factors", metavar="DIR",
                   help="lqer-linear only: a folder written by 'lqer-hw quantize'; runs one of "
                   "its layers on X.npy and writes y (tokens x d_out, float64) and cycles")
    p.add_argument("--layer", metavar="NAME",
                   help="with --factors or --model: the layer's module name")
    p.add_argument("--model", metavar="PATH",
                   help="llm-int8-linear only: a checkpoint folder or 'default' (the embedded "
                   "model); runs its layer on X.npy and writes y, outliers and cycles")
    p.add_argument("--threshold", type=number(low=0), default=None, metavar="T",
                   help="with --model: the outlier threshold (default 6.0)")
    return p


def run_simulation(args, prog: str, display, adapter, component, inputs, *, simulator: str,
                   build_dir, check: bool):
    """``sim.runner.simulate`` with the command's stall, seed and bench options and its
    status display; the :class:`sim.runner.SimResult`, or ``None`` after printing a
    simulator failure as one error line (the caller exits 1)."""
    from sim.runner import SimulationError, simulate
    try:
        result = simulate(adapter, component, inputs, simulator=simulator, check=check,
                          seed=args.seed, valid_probability=1 - args.stall,
                          ready_probability=1 - args.stall, build_dir=build_dir,
                          log=display.log, progress=display.progress, bench=args.bench)
    except SimulationError as exc:
        display.close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
    display.close()
    return result


# --- checks shared with the --factors form -------------------------------------------------------

def check_simulator(name: str | None) -> str:
    """The simulator to run: ``name`` when installed, the default when ``None``;
    :class:`UsageError` otherwise."""
    from sim.runner import SIMULATORS, SimulationError, default_simulator, simulator_available
    if name is None:
        try:
            return default_simulator()
        except SimulationError as exc:
            raise UsageError(str(exc)) from None
    if not simulator_available(name):
        installed = [s for s in SIMULATORS if simulator_available(s)]
        raise UsageError(f"simulator must name an installed simulator (installed: "
                         f"{', '.join(installed) or 'none'}); got {name!r}")
    return name


def check_build_dir(path: str | None) -> Path:
    """The build folder (:func:`sim.runner.resolve_build_dir`); :class:`UsageError` when it,
    or the nearest existing folder above it, is not a writable folder."""
    from sim.runner import resolve_build_dir
    root = resolve_build_dir(path)
    what = "build-dir" if path else ("LQER_BUILD_DIR" if os.environ.get("LQER_BUILD_DIR")
                                       else "the build folder")
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} must name a folder; got {str(root)!r} ({str(probe)!r} is a "
                         f"file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} must be writable; got {str(root)!r}")
    return root


def write_npz(path: Path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically (``lqer_hw.files.atomic_file``): nothing
    is left behind on an error or interrupt."""
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


class StatusDisplay:
    """Status lines (``prog: message``) and progress on ``stream`` (default stderr), for
    :func:`sim.runner.simulate`'s ``log`` and ``progress``; call :meth:`close` at the end.

    On a terminal the progress is a tqdm bar that appears after ``delay`` seconds and is
    cleared at the end; elsewhere (a log file, a pipe) it is a status line at most every
    ``interval`` seconds (``prog: simulating: SENT/TOTAL input items``).
    """

    def __init__(self, prog: str, *, stream=None, delay: float = 2.0, interval: float = 30.0):
        self._prog = prog
        self._stream = stream if stream is not None else sys.stderr
        self._delay = delay
        self._interval = interval
        self._bar = None
        self._last = time.monotonic()

    def log(self, message: str) -> None:
        """One status line."""
        print(f"{self._prog}: {message}", file=self._stream, flush=True)

    def progress(self, sent: int, total: int) -> None:
        """Input items taken so far out of ``total``."""
        isatty = getattr(self._stream, "isatty", None)
        if not (isatty and isatty()):
            now = time.monotonic()
            if now - self._last >= self._interval and sent < total:
                self._last = now
                self.log(f"simulating: {sent}/{total} input items")
            return
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc="simulating", unit=" items", delay=self._delay,
                             file=self._stream, leave=False, dynamic_ncols=True)
        self._bar.update(sent - self._bar.n)

    def close(self) -> None:
        """Remove the bar (at the end, or before the error or interrupt line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _load_inputs(path: str) -> dict:
    if not os.path.isfile(path):
        raise UsageError(f"inputs must name an existing .npz file; got {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise UsageError(f"inputs must be a NumPy .npz archive; could not read {path!r}") \
            from None


def _run(args, prog: str, display: StatusDisplay) -> int:
    if args.model is not None or args.threshold is not None:
        from sim.llm_int8_layer import run_layer_command as run_int8_layer
        return run_int8_layer(args, prog, display)
    if args.factors is not None or args.layer is not None:
        from sim.lqer_layer import run_layer_command
        return run_layer_command(args, prog, display)
    design = get_design(args.design)
    adapter = get_adapter(design.name)
    params = parse_params(design, args.param)
    component = inspect(design.name, **params)
    inputs = adapter.validate(component, _load_inputs(args.inputs))
    out = check_output_file(args.outputs, name="outputs", suffix=".npz")
    simulator = check_simulator(args.simulator)
    build_dir = check_build_dir(args.build_dir)
    result = run_simulation(args, prog, display, adapter, component, inputs,
                            simulator=simulator, build_dir=build_dir, check=args.check)
    if result is None:
        return 1
    write_npz(out, result.outputs)
    line = (f"{design.name} on {simulator}: {result.n_inputs} inputs, {result.n_outputs} "
            f"outputs in {result.cycles} cycles; wrote {out}")
    if args.check:
        line += f"; {result.mismatches} mismatches against the reference"
    print(line)
    return 1 if args.check and result.mismatches else 0


def main(argv: list[str], prog: str = "lqer-hw sim") -> int:
    """Run the command on ``argv``; returns the exit status (module doc)."""
    display = StatusDisplay(prog)

    def body() -> int:
        try:
            return _run(_parser(prog).parse_args(argv), prog, display)
        finally:
            display.close()  # before an error or "interrupted" line

    return run(prog, body, usage_errors=(ValueError, TypeError))
