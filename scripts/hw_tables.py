"""Write (or check) the hardware tables of docs/hw.md and docs/synth.md from the code.

    python scripts/hw_tables.py                      # rewrite the generated blocks
    python scripts/hw_tables.py --check              # exit 1 naming every stale block
    python scripts/hw_tables.py --synth build/synth --pnr build/pnr   # result folders

Blocks (between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``, as in
``scripts/docs_tables.py``):

- ``hw-designs`` (docs/hw.md): every registered design with its component, summary and
  latency at its defaults (``latency`` as the component publishes it);
- ``synth-default`` (docs/synth.md): the summary table and the "Synthesis time" lines of a
  ``lqer-hw synth --default`` folder's ``synth.json`` (``hw.synth.report``);
- ``pnr-default`` (docs/synth.md): Fmax per design and family from a ``lqer-hw pnr``
  folder's ``pnr.json``;
- ``lqer-cycles``, ``resq-cycles`` (docs/lqer_linear.md): cycles per token of
  ``lqer-linear`` and ``resq-linear`` at a few shapes, as the components publish them;
- ``llm-int8-cycles`` (docs/llm_int8_rtl.md): items and full-rate cycles per tile and the
  latency of ``llm-int8-linear`` (for a few sets of outlier columns) and ``w8a8-linear``;
- ``readme-synth`` (README.md): the summary table of ``synth-default`` (as just written, or
  as docs/synth.md holds it), so the README never shows another run's figures;
- ``lqer-scaling`` (docs/synth.md), with ``--scaling``: ``lqer-linear``'s LUTs, FFs, block
  RAMs and LUT RAMs at d_in = d_out = 64, 256 and 1024 on xc7 and ECP5
  (``bench/bench_timing.py``'s scaling table, through the synthesis cache);
- ``llm-int8-split`` (docs/llm_int8_rtl.md), with ``--split``: ``fp16-linear``,
  ``llm-int8-linear`` and the latter's parts synthesised alone on ECP5 at their registry
  defaults (through the synthesis cache: minutes when cold, seconds after).

The result blocks are rewritten only when their folder holds a report (``make synth`` /
``make pnr`` first); the design and cycle tables always.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = {"hw-designs": "docs/hw.md", "synth-default": "docs/synth.md",
         "pnr-default": "docs/synth.md", "readme-synth": "README.md",
         "llm-int8-split": "docs/llm_int8_rtl.md", "lqer-scaling": "docs/synth.md",
         "lqer-cycles": "docs/lqer_linear.md", "resq-cycles": "docs/lqer_linear.md",
         "llm-int8-cycles": "docs/llm_int8_rtl.md"}
# llm-int8-linear's outlier columns for its cycles table (docs/llm_int8_rtl.md), as a
# function of d_in: (what they are, the columns)
INT8_CYCLE_COLUMNS = (("none", lambda d: ()), ("the first", lambda d: (0,)),
                      ("the first and last", lambda d: (0, d - 1)),
                      ("every fourth", lambda d: tuple(range(0, d, 4))),
                      ("all", lambda d: tuple(range(d))))
# The area split of llm-int8-linear (docs/llm_int8_rtl.md): the whole datapath, fp16-linear
# beside it, and its parts synthesised alone, each at its registry defaults on SPLIT_TARGET
SPLIT_TARGET = "ecp5"
SPLIT_WHOLE = ("fp16-linear", "llm-int8-linear")
SPLIT_PARTS = (("llm-int8-detector", "outlier detector"),
               ("llm-int8-compaction", "compaction network"),
               ("llm-int8-quantizer", "activation quantizer"),
               ("llm-int8-int-path", "int path"),
               ("fp-accumulate", "outlier (fp) path"),
               ("llm-int8-merge", "merge"))


def designs_table() -> str:
    """One row per registered design: name, component, summary, latency at the defaults."""
    from hw.designs import elaborate
    from hw.synth.defaults import registered_designs
    from hw.unused import inspected
    rows = ["| design | component | does | latency at the defaults (cycles) |",
            "|---|---|---|---|"]
    for design in registered_designs():
        component = inspected(elaborate(design.name, **design.defaults))
        cls = type(component)
        latency = getattr(component, "latency", None)
        rows.append(f"| `{design.name}` | `{cls.__module__}.{cls.__qualname__}` | "
                    f"{design.summary} | {'–' if latency is None else latency} |")
    return "\n".join(rows) + "\n"


def synth_block(records: list[dict]) -> str:
    from hw.synth.report import markdown_summary, time_summary
    versions = sorted({r.get("yosys", "") for r in records} - {""})
    flows = sorted({r.get("flow") for r in records} - {None})
    head = (f"{', '.join(versions)}, flow {', '.join(flows)}; LUTs per target, est. Fmax "
            "from Yosys's delay model (an estimate, not a measurement).\n\n")
    timing = time_summary(records)
    return head + markdown_summary(records) + ("\n" + timing if timing else "")


# issue 11's timing goal: every default design at or above 150 MHz on ECP5 (speed 6)
GOAL_FAMILY, GOAL_MHZ = "ecp5", 150


def pnr_block(records: list[dict]) -> str:
    """The place-and-route table, then how many ``GOAL_FAMILY`` points reach
    ``GOAL_MHZ`` (and which do not)."""
    from hw.synth.report import params_text
    rows = ["| Design | Parameters | Family | Device | LUTs | FFs | Fmax (MHz) | Note |",
            "|---|---|---|---|---|---|---|---|"]
    for r in records:
        fmax = r.get("fmax_mhz")
        rows.append(f"| {r['design']} | {params_text(r['params'])} | {r.get('pnr_family', '')} | "
                    f"{r.get('pnr_device', '')} | {r.get('luts', '–')} | {r.get('ffs', '–')} | "
                    f"{'–' if fmax is None else f'{fmax:.1f}'} | {r.get('pnr_note') or ''} |")
    goal = [r for r in records if r.get("pnr_family") == GOAL_FAMILY]
    below = sorted((r.get("fmax_mhz") or 0.0, r["design"]) for r in goal
                   if (r.get("fmax_mhz") or 0.0) < GOAL_MHZ)
    if goal:
        rows += ["", f"At or above {GOAL_MHZ} MHz on {GOAL_FAMILY}: {len(goal) - len(below)} of "
                     f"{len(goal)} points; below: "
                 + (", ".join(f"`{d}` {f:.1f}" for f, d in below) or "none") + "."]
    return "\n".join(rows) + "\n"


def split_block(figures: dict[str, dict], params: dict[str, dict]) -> str:
    """The area split table of ``llm-int8-linear`` and the sentence summing it.
    ``figures[name]``: synthesis figures (``luts``, ``ffs``, ...); ``params[name]``: the
    point's parameters."""
    from hw.synth.report import params_text
    rows = ["| design | role | parameters | LUTs | FFs | DSPs | carry | BRAM | LUT RAM |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    roles = {**{n: "whole datapath" for n in SPLIT_WHOLE}, **dict(SPLIT_PARTS)}
    for name in (*SPLIT_WHOLE, *(n for n, _ in SPLIT_PARTS)):
        f = figures[name]
        rows.append(f"| {name} | {roles[name]} | {params_text(params[name])} | "
                    + " | ".join(f"{f.get(k, 0):,}" for k in
                                 ("luts", "ffs", "dsps", "carries", "brams", "lutrams")) + " |")
    whole, fp16 = figures["llm-int8-linear"], figures["fp16-linear"]
    parts = {k: sum(figures[n].get(k, 0) for n, _ in SPLIT_PARTS) for k in ("luts", "ffs")}
    text = (f"\nThe parts add up to {parts['luts']:,} of the datapath's {whole['luts']:,} LUTs "
            f"({parts['luts'] / whole['luts']:.0%}) and {parts['ffs']:,} of its "
            f"{whole['ffs']:,} FFs ({parts['ffs'] / whole['ffs']:.0%}); the rest is the "
            f"tile/token control, the gather's request logic and the memories' glue. "
            f"`fp16-linear` is {fp16['luts'] / whole['luts']:.2f}x the LUTs of "
            f"`llm-int8-linear` at the same 16 MACs per cycle.")
    cycles = {n: _cycles_per_token(n, params[n]) for n in SPLIT_WHOLE}
    text += (f" Per token at full rate without outliers, `fp16-linear` takes "
             f"{cycles['fp16-linear']:g} cycles against {cycles['llm-int8-linear']:g} for "
             f"`llm-int8-linear` (the published `cycles_per_token`).\n")
    return "\n".join(rows) + "\n" + text


def _cycles_per_token(name: str, params: dict) -> float:
    from hw.designs import elaborate
    from hw.unused import inspected
    return inspected(elaborate(name, **params)).cycles_per_token


def measure_split(cache_root: Path | None, build: Path) -> tuple[dict, dict]:
    """Synthesise (or read from the cache) the split's points on :data:`SPLIT_TARGET`."""
    from hw.cost.parts import Part, measure
    from hw.designs import get_design
    from hw.synth.cache import ResultCache, default_cache_root
    from hw.synth.targets import get_target
    names = (*SPLIT_WHOLE, *(n for n, _ in SPLIT_PARTS))
    params = {n: dict(get_design(n).defaults) for n in names}
    parts = {n: Part.of(n, **params[n]) for n in names}
    cache = ResultCache(cache_root or default_cache_root("synth"))
    got = measure(list(parts.values()), [get_target(SPLIT_TARGET)], build, cache=cache,
                  workers=2, progress=lambda d, t, job, o: print(
                      f"  [{d}/{t}] {job.design} @ {job.target.name}", file=sys.stderr))
    return {n: got[(parts[n], SPLIT_TARGET)]["figures"] for n in names}, params


def measure_scaling(cache_root: Path | None, build: Path) -> str:
    """``bench/bench_timing.py``'s scaling table (its title line in bold) at its defaults."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_timing import scaling_table
    from hw.synth.cache import ResultCache, default_cache_root
    cache = ResultCache(cache_root or default_cache_root("synth"))
    title, table = scaling_table(cache=cache, out=build).split("\n\n", 1)
    return f"**{title}**\n\n{table}\n"


# (d_in, d_out, P_m) of the lqer-linear cycles table; (d_in, d_out, r, P_m) of ResQ's
LQER_CYCLE_SHAPES = ((64, 64, 4), (64, 64, 16), (128, 128, 4), (128, 128, 16), (128, 512, 16),
                     (4096, 4096, 16))
RESQ_CYCLE_SHAPES = ((32, 32, 16, 2), (128, 128, 16, 4), (128, 128, 16, 16), (256, 256, 32, 8),
                     (512, 512, 64, 16), (4096, 4096, 512, 16))


def _table(head: list[str], rows: list[list]) -> str:
    from hw.synth.report import markdown_grid
    return markdown_grid(head, rows) + "\n"


def lqer_cycles_table() -> str:
    """``lqer-linear``'s cycles per token at :data:`LQER_CYCLE_SHAPES` (block 16, rank 32;
    main only = rank 0), as the components publish them."""
    from hw.designs import inspect
    rows = []
    for d_in, d_out, p_m in LQER_CYCLE_SHAPES:
        main = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=0, lanes_main=p_m)
        dual = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=32, lanes_main=p_m)
        rows.append([f"{d_in} x {d_out}", p_m, dual.lanes_lowrank, main.cycles_per_token,
                     dual.cycles_per_token])
    return _table(["d_in x d_out", "P_m", "P_l", "main only", "dual"], rows)


def resq_cycles_table() -> str:
    """``resq-linear``'s cycles per token at :data:`RESQ_CYCLE_SHAPES` beside its wide path
    alone and ``lqer-linear`` at rank min(32, d_in / 2), as the components publish them."""
    from hw.designs import inspect
    rows = []
    for d_in, d_out, r, p_m in RESQ_CYCLE_SHAPES:
        wide = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=0, lanes_main=p_m)
        resq = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=r, lanes_main=p_m)
        lqer = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=min(32, d_in // 2),
                       lanes_main=p_m)
        rows.append([f"{d_in} x {d_out}", r, p_m, resq.lanes_lowrank, wide.cycles_per_token,
                     resq.cycles_per_token,
                     f"{lqer.cycles_per_token} (P_l {lqer.lanes_lowrank})"])
    return _table(["d_in x d_out", "r", "P_m", "P_l", "wide path only (r = 0)", "ResQ",
                   "LQER, rank min(32, d_in/2), default P_l"], rows)


def int8_cycles_table() -> str:
    """``llm-int8-linear`` and ``w8a8-linear`` at their defaults: input items and full-rate
    cycles per tile (weight memory latency 1) for :data:`INT8_CYCLE_COLUMNS`, and the
    latency (last input item to last output, no outlier), as the designs publish them."""
    from hw.designs import inspect
    rows = []
    llm = inspect("llm-int8-linear")
    for label, columns_of in INT8_CYCLE_COLUMNS:
        columns = columns_of(llm.d_in)
        rows.append(["llm-int8-linear", f"{len(columns)}: {label}" if columns else label,
                     llm.steps_per_tile, llm.cycles_per_tile(columns, 1), llm.latency])
    for out_fp16 in (1, 0):
        w8a8 = inspect("w8a8-linear", out_fp16=out_fp16)
        rows.append([f"w8a8-linear (binary{16 if out_fp16 else 32} out)", "–",
                     w8a8.steps_per_tile, w8a8.cycles_per_tile(), w8a8.latency])
    return _table(["design", "outlier columns", "items per tile", "cycles per tile",
                   "latency"], rows)


def _records(folder: Path | None, stem: str) -> list[dict] | None:
    if folder is None or not (folder / f"{stem}.json").is_file():
        return None
    data = json.loads((folder / f"{stem}.json").read_text())
    return data["records"] if isinstance(data, dict) else data


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.S)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    ap.add_argument("--synth", type=Path, default=ROOT / "build" / "synth",
                    help="lqer-hw synth --default output folder (default build/synth)")
    ap.add_argument("--pnr", type=Path, default=ROOT / "build" / "pnr",
                    help="lqer-hw pnr --default output folder (default build/pnr)")
    ap.add_argument("--split", action="store_true",
                    help="also synthesise the llm-int8-linear area split (ECP5, cached)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="synthesis cache for --split and --scaling (default $LQER_CACHE_DIR, else "
                         "~/.cache/lqer-hw)")
    ap.add_argument("--scaling", action="store_true",
                    help="also synthesise lqer-linear's scaling table (xc7, ECP5, cached)")
    args = ap.parse_args(argv)
    bodies = {"hw-designs": designs_table(), "lqer-cycles": lqer_cycles_table(),
              "resq-cycles": resq_cycles_table(), "llm-int8-cycles": int8_cycles_table()}
    if args.scaling:
        bodies["lqer-scaling"] = measure_scaling(args.cache, ROOT / "build" / "scaling")
    if args.split:
        bodies["llm-int8-split"] = split_block(*measure_split(args.cache,
                                                              ROOT / "build" / "split"))
    synth, pnr = _records(args.synth, "synth"), _records(args.pnr, "pnr")
    if synth:
        bodies["synth-default"] = synth_block(synth)
    if pnr:
        bodies["pnr-default"] = pnr_block(pnr)
    synth_body = bodies.get("synth-default")
    if synth_body is None:
        match = _pattern("synth-default").search((ROOT / FILES["synth-default"]).read_text())
        synth_body = match.group(2) if match else ""
    bodies["readme-synth"] = "".join(line for line in synth_body.splitlines(keepends=True)
                                     if line.startswith("|"))
    stale = []
    for name, body in bodies.items():
        path = ROOT / FILES[name]
        text = path.read_text()
        match = _pattern(name).search(text)
        if match is None:
            raise SystemExit(f"{FILES[name]} has no generated block {name!r}")
        if match.group(2) != body:
            stale.append(f"{FILES[name]} ({name})")
            if not args.check:
                text = text[:match.start(2)] + body + text[match.end(2):]
                path.write_text(text)
    if args.check and stale:
        print(f"stale generated tables in {', '.join(stale)}: run scripts/hw_tables.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
