"""MX overhead: LUTs of the MXINT dot-product array / LUTs of a plain integer array.

Both arrays have the same lanes, block, mantissa widths, multipliers, adder
tree and pipeline; the MXINT one adds the shared-exponent path (exponent
inputs, one exponent adder per lane, its pipeline registers). Synthesised with
Yosys in one run on xc7-nodsp (fabric only, as the LQER cost model assumed)
and generic LUT6. Prints one line per (target, lanes) and the ratio; never
gates anything. Results are cached by content in ``build/synth/.cache`` (shared with
``make synth``, whose default set already holds the MXINT arrays).

    python bench/bench_mx_overhead.py [--lanes 1,2,4,8] [-j 2] [-o build/bench/mx_overhead]
                                      [--cache build/synth/.cache]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw.designs import elaborate  # noqa: E402
from hw.synth.baseline import IntDotArray  # noqa: E402
from hw.synth.cache import ResultCache  # noqa: E402
from hw.synth.defaults import PAPER_CONFIGURATION  # noqa: E402
from hw.synth.flow import jobs_for_component, run_jobs  # noqa: E402
from hw.synth.targets import TARGETS  # noqa: E402

BENCH_TARGETS = ("xc7-nodsp", "lut6")
STAGES = 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lanes", default="1,2,4,8", help="comma list of lane counts")
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "bench" / "mx_overhead"))
    p.add_argument("--cache", default=str(ROOT / "build" / "synth" / ".cache"))
    args = p.parse_args(argv)
    lanes_list = [int(v) for v in args.lanes.split(",")]
    widths = {k: PAPER_CONFIGURATION[k] for k in ("block", "a_width", "w_width")}
    targets = [TARGETS[t] for t in BENCH_TARGETS]

    jobs = []
    for lanes in lanes_list:
        mx = {"lanes": lanes, **PAPER_CONFIGURATION, "stages": STAGES}
        jobs += jobs_for_component("dot-array", mx, elaborate("dot-array", **mx), targets)
        plain = {"lanes": lanes, **widths, "stages": STAGES}
        jobs += jobs_for_component("int-dot-array", plain, IntDotArray(**plain), targets)
    out = Path(args.output)
    start = time.monotonic()
    records, failures = run_jobs(jobs, out, workers=args.jobs, cache=ResultCache(args.cache))
    for failure in failures:
        print(f"bench_mx_overhead: error: {failure}", file=sys.stderr)
    if failures:
        return 1

    luts = {(r["design"], r["params"]["lanes"], r["target"]): r["luts"] for r in records}
    ffs = {(r["design"], r["params"]["lanes"], r["target"]): r["ffs"] for r in records}
    print(f"MX overhead, block {widths['block']}, MXINT{widths['a_width']} x "
          f"MXINT{widths['w_width']}, {PAPER_CONFIGURATION['exponent_bits']}-bit exponents, "
          f"{STAGES} stages ({time.monotonic() - start:.0f} s, "
          f"{sum(r['cached'] for r in records)}/{len(records)} cached)")
    print(f"{'target':<10} {'lanes':>5} {'MX LUTs':>8} {'int LUTs':>8} {'LUT ratio':>9} "
          f"{'MX FFs':>7} {'int FFs':>7} {'FF ratio':>8}")
    for target in BENCH_TARGETS:
        for lanes in lanes_list:
            mx_l, int_l = luts[("dot-array", lanes, target)], luts[("int-dot-array", lanes, target)]
            mx_f, int_f = ffs[("dot-array", lanes, target)], ffs[("int-dot-array", lanes, target)]
            print(f"{target:<10} {lanes:>5} {mx_l:>8} {int_l:>8} {mx_l / int_l:>9.3f} "
                  f"{mx_f:>7} {int_f:>7} {mx_f / int_f:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
