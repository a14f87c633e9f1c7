"""Simulation throughput of the MXINT dot-product array: Icarus vs Verilator vs Amaranth.

One run, same vectors for all three, full rate (no stalls), every output checked
against the reference. "loop" rates count only the clocked simulation (cocotb loop or
Amaranth testbench); "total" adds start-up, packing and the reference (build cached).

    python bench/bench_sim.py [--vectors N] [--lanes P]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hw.designs import inspect  # noqa: E402
from sim.adapters import get_adapter  # noqa: E402
from sim.amaranth_bench import bench_design  # noqa: E402
from sim.runner import simulate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=20000)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    params = {"lanes": args.lanes}
    component = inspect("dot-array", **params)
    adapter = get_adapter("dot-array")
    inputs = adapter.random_inputs(component, args.vectors, np.random.default_rng(args.seed))
    checked = adapter.validate(component, inputs)
    warm = adapter.validate(component, {k: v[:8] for k, v in inputs.items()})
    rows = []
    for simulator in ("icarus", "verilator"):
        simulate(adapter, component, warm, simulator=simulator, valid_probability=1.0,
                 ready_probability=1.0)  # build
        r = simulate(adapter, component, checked, simulator=simulator, seed=args.seed,
                     valid_probability=1.0, ready_probability=1.0)
        assert r.mismatches == 0, f"{simulator}: {r.mismatches} mismatches"
        rows.append((simulator, r.n_inputs / r.sim_wall_s, r.n_inputs / r.total_wall_s))
    start, timing = time.perf_counter(), {}
    mismatches, got, _, _ = bench_design("dot-array", params, vectors=args.vectors,
                                         seed=args.seed, valid_probability=1.0,
                                         ready_probability=1.0, inputs=inputs, timing=timing)
    total = time.perf_counter() - start
    assert mismatches == 0, f"amaranth: {mismatches} mismatches"
    rows.append(("amaranth", args.vectors / timing["run_s"], args.vectors / total))

    base = rows[0][1]
    print(f"dot-array lanes={args.lanes} block={component.a_format.block} "
          f"a_width={component.a_format.width} w_width={component.w_format.width}, "
          f"{args.vectors} vectors, full rate, 0 mismatches")
    print(f"{'simulator':<10} {'loop vec/s':>11} {'total vec/s':>12} {'vs icarus':>10}")
    for name, loop, total_rate in rows:
        print(f"{name:<10} {loop:>11.0f} {total_rate:>12.0f} {loop / base:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
