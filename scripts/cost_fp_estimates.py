"""Measure the floating-point units of a branch that is not merged yet, for the cost model.

    python scripts/cost_fp_estimates.py --tree DIR --commit SHA [--branch NAME] [-j 1]
                                        [--cache DIR] [-o hw/cost/fp_estimates.json]

``DIR`` is a checkout (``git archive BRANCH | tar -x -C DIR``) whose registry has the
floating-point units (``fp16-mul``, ``fp32-add``, ``fp32-mul``, ``int32-to-fp32``,
``fp32-to-fp16``). Each is synthesised there with ``lqer-hw synth`` at its default
stages on every target of the cost model; the figures and the latency go to the JSON
that :mod:`hw.cost.parts` reads. Until the units are registered on main, the cost
model reports them as ``estimated`` with this basis; once they are, it synthesises them
itself and this file is no longer read for them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UNITS = ("fp16-mul", "fp32-add", "fp32-mul", "int32-to-fp32", "fp32-to-fp16")
TARGETS = ("xc7", "xc7-nodsp", "ice40", "ecp5", "gowin", "lut4", "lut6", "cmos")
FIGURES = ("luts", "ffs", "dsps", "carries", "brams", "lutrams", "transistors")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", required=True, help="checkout of the branch with the fp units")
    p.add_argument("--commit", required=True, help="its commit (recorded as the basis)")
    p.add_argument("--branch", default="h-fp")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("--cache", default=None, help="synthesis cache (default: lqer-hw's)")
    p.add_argument("-o", "--output", default=str(ROOT / "hw" / "cost" / "fp_estimates.json"))
    args = p.parse_args(argv)
    tree = Path(args.tree).resolve()
    parts = {}
    yosys = None
    with tempfile.TemporaryDirectory() as tmp:
        for unit in UNITS:
            out = Path(tmp) / unit
            cmd = [sys.executable, "-m", "lqer_hw", "synth", unit, "-j", str(args.jobs),
                   "-o", str(out)]
            for t in TARGETS:
                cmd += ["-t", t]
            if args.cache:
                cmd += ["--cache", args.cache]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(cmd, cwd=tree, env=env)
            if done.returncode:
                return done.returncode
            records = json.loads((out / "synth.json").read_text())
            first = records[0]
            yosys = first["yosys"]
            parts[unit] = {
                "params": {},
                "latency": first["facts"]["latency"],
                "stages": first["params"].get("stages"),
                "targets": {r["target"]: {k: r.get(k) for k in FIGURES} for r in records},
            }
    table = {"basis": f"measured on branch {args.branch} at {args.commit[:12]} (not on main), "
                      f"{yosys}, default stages",
             "parts": parts}
    Path(args.output).write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
