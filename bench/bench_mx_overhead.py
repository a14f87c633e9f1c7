"""MX overhead: LUTs and FFs of the MXINT dot-product array / a plain integer array.

Both arrays have the same lanes, block, mantissa widths, multipliers, adder tree and
pipeline; the MXINT one adds the shared-exponent path (exponent inputs, one exponent
adder per lane, and the exponent carried through every pipeline stage beside its lane's
sum). Synthesised with Yosys in one run on xc7-nodsp (fabric only, as the LQER cost model
assumed), generic LUT6 and the CMOS estimate, at each pipeline depth asked for. Prints one
line per (target, stages, lanes): LUTs, FFs, LUT RAMs (xc7 shift registers), transistors
and the ratios, then the exponent bits the structure predicts
(:func:`exponent_register_bits`, :func:`exponent_fifo_bits`). Never gates anything. Results come from the shared result cache when the same RTLIL and flow
were synthesised before (``make synth`` holds the MXINT arrays at 2 stages).

    python bench/bench_mx_overhead.py [--lanes 1,2,4,8] [--stages 2,3] [--targets T,...] [-j 2]
                                      [-o build/bench/mx_overhead] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_TARGETS = ("xc7-nodsp", "lut6", "cmos")
DEFAULT_LANES = (1, 2, 4, 8)
DEFAULT_STAGES = (2, 3)


def exponent_register_bits(lanes: int, stages: int, exponent_width: int,
                           exponent_bits: int = 8) -> int:
    """Flip-flops the shared-exponent path adds to the array (the default formats): a
    register after the operand level holds both operands' ``exponent_bits``-bit shared
    exponents per lane, every later pipeline register before the output each lane's
    ``exponent_width``-bit exponent sum beside its partial sums
    (``hw.dot_array.build_dot_lanes``); the last stage is the output FIFO
    (:func:`exponent_fifo_bits`). So ``lanes * (r * 2 * exponent_bits + (stages - 1 - r) *
    exponent_width)``, ``r`` the operand level's registers (before synthesis; Yosys's
    ``xilinx_srl`` turns chains of 3 or more into SRL16E)."""
    from hw.dot_array import DotGeometry
    from hw.pipeline import register_counts
    from sw.mxint import MXIntFormat
    geometry = DotGeometry(a_format=MXIntFormat(width=8, exponent_bits=exponent_bits),
                           w_format=MXIntFormat(width=4, exponent_bits=exponent_bits),
                           stages=stages)
    operand = register_counts(geometry.levels, stages, geometry.delays)[0]
    return lanes * (operand * 2 * exponent_bits + (stages - 1 - operand) * exponent_width)


def fifo_pointer_bits(width: int, stages: int) -> int:
    """Pointer flip-flops of a pipeline's output FIFO of ``stages + 1`` entries holding a
    ``width``-bit payload (``hw.pipeline.Pipeline``): a write and a read pointer, one pair
    per slice of at most ``hw.pipeline.SLICE_BITS`` bits when the payload is wider than two
    slices, and then each slice's copy of the level (``hw.pipeline.OutputFIFO``) and of the
    last valid register, its write enable (``hw.pipeline.Pipeline``). A wider MX payload
    (its exponents beside the sums) can cross that line and pay more pointer copies than
    the int array's."""
    from hw.pipeline import SLICE_BITS
    sliced = width > 2 * SLICE_BITS
    slices = -(-width // SLICE_BITS) if sliced else 1
    copies = slices * ((stages + 1).bit_length() + 1) if sliced else 0
    return slices * 2 * max(1, stages.bit_length()) + copies


def exponent_fifo_bits(lanes: int, stages: int, exponent_width: int) -> int:
    """Memory bits the exponents add to the output FIFO of ``stages + 1`` entries
    (``hw.pipeline.Pipeline``): ``lanes * (stages + 1) * exponent_width`` (LUT RAM on
    xc7, flip-flops on the generic LUT targets)."""
    return lanes * (stages + 1) * exponent_width


def overhead_rows(records: list[dict], targets, stages_list, lanes_list) -> list[list[str]]:
    """One row per (target, stages, lanes): MX and int LUTs, FFs, LUT RAMs, transistors and
    ratios ("–" where the target has no such figure). ``records`` carry ``design``
    ("dot-array" or "int-dot-array"), ``params`` (lanes, stages), ``target``, ``luts``,
    ``ffs``, ``lutrams``, ``transistors``."""
    by = {(r["design"], r["target"], r["params"]["stages"], r["params"]["lanes"]): r
          for r in records}
    rows = []
    for target in targets:
        for stages in stages_list:
            for lanes in lanes_list:
                mx = by.get(("dot-array", target, stages, lanes))
                plain = by.get(("int-dot-array", target, stages, lanes))
                if mx is None or plain is None:
                    continue
                rows.append([target, str(stages), str(lanes),
                             *_pair(mx.get("luts"), plain.get("luts")),
                             *_pair(mx.get("ffs"), plain.get("ffs")),
                             _count(mx.get("lutrams")), _count(plain.get("lutrams")),
                             _ratio(mx.get("transistors"), plain.get("transistors"))])
    return rows


HEADER = ["target", "stages", "lanes", "MX LUTs", "int LUTs", "LUT ratio", "MX FFs", "int FFs",
          "FF ratio", "MX LUTRAM", "int LUTRAM", "transistor ratio"]


def _count(value) -> str:
    return "–" if value is None else str(value)


def _ratio(a, b) -> str:
    return "–" if a is None or not b else f"{a / b:.3f}"


def _pair(a, b) -> list[str]:
    return [_count(a), _count(b), _ratio(a, b)]


def _list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{name} must be a comma list of integers; got {text!r}") from None
    return values


def main(argv=None) -> int:
    from hw.designs import elaborate
    from hw.dot_array import DotGeometry
    from hw.synth.baseline import IntDotArray
    from hw.synth.cache import ResultCache, default_cache_root
    from hw.synth.defaults import PAPER_CONFIGURATION
    from hw.synth.flow import jobs_for_component, run_jobs
    from hw.synth.targets import TARGETS
    from sw.mxint import MXIntFormat

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lanes", default=",".join(map(str, DEFAULT_LANES)))
    p.add_argument("--stages", default=",".join(map(str, DEFAULT_STAGES)))
    p.add_argument("--targets", default=",".join(BENCH_TARGETS))
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "bench" / "mx_overhead"))
    p.add_argument("--cache", default=None, help="result cache (default: the shared one)")
    args = p.parse_args(argv)
    try:
        lanes_list, stages_list = _list(args.lanes, "lanes"), _list(args.stages, "stages")
        names = [t for t in args.targets.split(",") if t]
        for name in names:
            if name not in TARGETS:
                raise ValueError(f"targets must be among {', '.join(TARGETS)}; got {name!r}")
    except ValueError as exc:
        print(f"bench_mx_overhead: error: {exc}", file=sys.stderr)
        return 2
    widths = {k: PAPER_CONFIGURATION[k] for k in ("block", "a_width", "w_width")}
    targets = [TARGETS[t] for t in names]

    jobs = []
    for stages in stages_list:
        for lanes in lanes_list:
            mx = {"lanes": lanes, **PAPER_CONFIGURATION, "stages": stages}
            jobs += jobs_for_component("dot-array", mx, elaborate("dot-array", **mx), targets)
            plain = {"lanes": lanes, **widths, "stages": stages}
            jobs += jobs_for_component("int-dot-array", plain, IntDotArray(**plain), targets)
    cache = ResultCache(args.cache or default_cache_root("synth"))
    start = time.monotonic()
    records, failures = run_jobs(jobs, Path(args.output), workers=args.jobs, cache=cache)
    for failure in failures:
        print(f"bench_mx_overhead: error: {failure}", file=sys.stderr)
    if failures:
        return 1

    bits = PAPER_CONFIGURATION["exponent_bits"]
    geometry = DotGeometry(a_format=MXIntFormat(width=widths["a_width"], block=widths["block"],
                                                exponent_bits=bits),
                           w_format=MXIntFormat(width=widths["w_width"], block=widths["block"],
                                                exponent_bits=bits), stages=1)
    exponent_width = geometry.exponent_shape.width
    print(f"MX overhead, block {widths['block']}, MXINT{widths['a_width']} x "
          f"MXINT{widths['w_width']}, {bits}-bit shared exponents ({exponent_width}-bit "
          f"exponent sum per lane) ({time.monotonic() - start:.0f} s, "
          f"{sum(r['cached'] for r in records)}/{len(records)} cached)")
    rows = overhead_rows(records, names, stages_list, lanes_list)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join("---" for _ in HEADER) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nexponent bits the structure predicts (registers: lanes x (stages - 1) x exponent "
          "sum bits, a register after the operand level holding both shared exponents "
          "instead; output FIFO: lanes x (stages + 1) x exponent sum bits): "
          + ", ".join(f"{lanes} lanes x {stages} stages = "
                      f"{exponent_register_bits(lanes, stages, exponent_width)} + "
                      f"{exponent_fifo_bits(lanes, stages, exponent_width)}"
                      for stages in stages_list for lanes in lanes_list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
