"""``lqer-hw sim``: run a design's RTL on the vectors of an .npz file (cocotb)."""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from hw.designs import get_design, inspect, parse_params
from sim.adapters import ADAPTERS, get_adapter


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


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
              "Environment: LQER_WAVES=1 keeps a waveform in the run folder under build/sim/."]
    return "\n".join(lines)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run the RTL of DESIGN on the vectors in IN.npz through the cocotb "
                "stream bench and write what the RTL produced to OUT.npz.",
                epilog=_fields_help())
    p.add_argument("design", help="design name (lqer-hw gen --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a design parameter (repeatable)")
    p.add_argument("--inputs", required=True, metavar="IN.npz",
                   help="input vectors (with --factors: X.npy, tokens x d_in floats)")
    p.add_argument("--outputs", required=True, metavar="OUT.npz", help="where to write outputs")
    p.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"),
                   help="HDL simulator (default icarus)")
    p.add_argument("--check", action="store_true",
                   help="also compare with the bit-exact reference; exit 1 on any mismatch")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="probability of a valid stall and of a ready stall per cycle (default 0)")
    p.add_argument("--seed", type=int, default=1, help="seed of the stall pattern")
    p.add_argument("--factors", metavar="DIR",
                   help="lqer-linear only: a folder written by 'lqer-hw quantize'; runs one of "
                   "its layers on X.npy and writes y (tokens x d_out, float64) and cycles")
    p.add_argument("--layer", metavar="NAME", help="with --factors: the layer's module name")
    return p


def _load_inputs(path: str) -> dict:
    if not os.path.isfile(path):
        raise _UsageError(f"--inputs must name an existing .npz file; got {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise _UsageError(f"--inputs must be a NumPy .npz archive; could not read {path!r}") \
            from None


def main(argv: list[str], prog: str = "lqer-hw sim") -> int:
    from sim.runner import SimulationError, simulate  # cocotb only when running
    try:
        args = _parser(prog).parse_args(argv)
        if not 0 <= args.stall < 1:
            raise _UsageError(f"--stall must be in [0, 1); got {args.stall}")
        if args.factors is not None or args.layer is not None:
            from sim.lqer_layer import run_layer_command
            return run_layer_command(args, prog)
        design = get_design(args.design)
        adapter = get_adapter(design.name)
        params = parse_params(design, args.param)
        component = inspect(design.name, **params)
        inputs = adapter.validate(component, _load_inputs(args.inputs))
        out = Path(args.outputs)
        if out.suffix != ".npz":
            raise _UsageError(f"--outputs must end in .npz; got {args.outputs!r}")
        if not out.parent.is_dir():
            raise _UsageError(f"--outputs folder must exist; got {str(out.parent)!r}")
    except (_UsageError, ValueError, TypeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = simulate(design.name, params, inputs, simulator=args.simulator, check=args.check,
                          seed=args.seed, valid_probability=1 - args.stall,
                          ready_probability=1 - args.stall)
    except SimulationError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **result.outputs)
    os.replace(tmp, out)
    line = (f"{design.name} on {args.simulator}: {result.n_inputs} inputs, {result.n_outputs} "
            f"outputs in {result.cycles} cycles; wrote {out}")
    if args.check:
        line += f"; {result.mismatches} mismatches against the reference"
    print(line)
    return 1 if args.check and result.mismatches else 0
