"""Fmax per design and pipeline depth, and how lqer-linear's area scales with the layer.

1. Every registered design at the paper configuration (``hw.synth.defaults``), once per
   value of each of its pipeline-depth parameters (the parameters the registry publishes
   named ``stages`` or ``*_stages``: new ones are picked up with no change here), placed
   and routed by nextpnr on ECP5 and iCE40 (one run each at seed ``hw.synth.pnr.SEED``, or
   one per seed of ``--seeds``), beside the 7-series Fmax *estimate* from Yosys's delay
   model (``hw.synth.timing``; never a measurement). Printed per depth: Fmax (with several
   seeds their mean, then the lowest and highest run: a layer's single runs move by up to
   1.3x between seeds, docs/synth.md), and its ratio to the shallowest depth (of means).
2. lqer-linear at its default lanes for d_in = d_out = 64, 256, 1024 (rank 32): LUTs,
   FFs, BRAMs and LUT RAMs on xc7 and ecp5, and the ratio largest-to-smallest of each.

Everything printed is measured in this run (or answered by the shared result cache,
keyed by the design's RTLIL and the flow). Never gates anything.

    python bench/bench_timing.py [--designs NAME,...] [--depths 1,2,4,8|all]
        [--families ecp5,ice40] [--seeds 1,2,3] [--dims 64,256,1024] [--rank 32] [--scaling-targets xc7,ecp5]
        [--skip-fmax] [--skip-scaling] [-j 2] [--timeout S] [-o build/bench/timing]
        [--cache DIR | --no-cache]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hw.synth.defaults import design_points, registered_designs  # noqa: E402
from hw.synth.report import markdown_grid  # noqa: E402

DEFAULT_DEPTHS = (1, 2, 4, 8)
DEFAULT_DIMS = (64, 256, 1024)
SCALING_DESIGN = "lqer-linear"
SCALING_TARGETS = ("xc7", "ecp5")
SCALING_COLUMNS = ("luts", "ffs", "brams", "lutrams")
ESTIMATE_TARGET = "xc7"


# ---- what to run (pure) ------------------------------------------------------------------

def depth_parameters(design) -> list:
    """The design's pipeline-depth parameters: named ``stages`` or ending in ``_stages``."""
    return [p for p in design.params if p.name == "stages" or p.name.endswith("_stages")]


def depth_values(param, depths) -> list[int]:
    """``depths`` (``None``: every allowed value) within the parameter's range."""
    allowed = range(param.minimum, param.maximum + 1)
    return list(allowed) if depths is None else [d for d in depths if d in allowed]


def depth_points(design, depths=DEFAULT_DEPTHS) -> list[tuple[str, int, dict]]:
    """``(depth parameter, value, parameters)`` for each depth parameter and value; the other
    parameters at the default set's point (the paper configuration)."""
    base = design_points(design, sweeps={})[0]
    return [(p.name, value, {**base, p.name: value})
            for p in depth_parameters(design) for value in depth_values(p, depths)]


def scaling_points(design, dims=DEFAULT_DIMS, rank: int = 32) -> list[dict]:
    """The design at d_in = d_out = each of ``dims`` and ``rank``; the rest at the default
    set's point, with the same lanes throughout: a ``lanes_lowrank`` of 0 (the default: the
    least that never stalls the main path, which depends on d_in and the rank) is pinned to
    the value the largest layer resolves to."""
    base = design_points(design, sweeps={})[0]
    if base.get("lanes_lowrank") == 0:
        from hw.designs import inspect
        widest = inspect(design.name, **{**base, "d_in": max(dims), "d_out": max(dims),
                                         "rank": rank})
        base = {**base, "lanes_lowrank": widest.schedule.lanes_lowrank}
    return [{**base, "d_in": d, "d_out": d, "rank": rank} for d in dims]


def parse_list(text: str, *, allow_all: bool = False, name: str = "list") -> list[int] | None:
    """``"1,2,4"`` -> ``[1, 2, 4]``; ``"all"`` -> None when ``allow_all``. ``ValueError``
    naming the option (``name``) and the text otherwise."""
    if allow_all and text.strip() == "all":
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers"
                         f"{' or all' if allow_all else ''}; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name} must hold integers >= 1; got {text!r}")
    return values


# ---- what to print (pure) ----------------------------------------------------------------

def ratio(value, reference) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmax_rows(points, pnr: dict, estimates: dict, families) -> list[list[str]]:
    """Table rows: design, depth parameter, value, Fmax per family (or the note why none),
    the ratio to the shallowest depth of that design and parameter, the 7-series estimate.

    ``points``: ``(design, parameter, value, params)``; ``pnr``: ``{(design, params text,
    family): record}``, or a list of records (one per seed: the cell is their mean Fmax,
    then the lowest and highest in brackets; the ratio is of means); ``estimates``:
    ``{(design, params text): est. Fmax}``.
    """
    rows, first = [], {}
    for design, name, value, params in points:
        text = _key(params)
        row = [design, name, str(value)]
        for family in families:
            records = pnr.get((design, text, family), {})
            records = records if isinstance(records, list) else [records]
            runs = [r["fmax_mhz"] for r in records if r.get("fmax_mhz") is not None]
            fmax = sum(runs) / len(runs) if runs else None
            reference = first.setdefault((design, name, family), fmax)
            cell = _short_note(records[0] if records else {}) if fmax is None else _fmt(fmax)
            if len(runs) > 1:
                cell += f" ({min(runs):.1f}–{max(runs):.1f})"
            row.append(cell)
            row.append(_fmt(ratio(fmax, reference), 2))
        estimate = estimates.get((design, text))
        reference = first.setdefault((design, name, "xc7"), estimate)
        row += [_fmt(estimate), _fmt(ratio(estimate, reference), 2)]
        rows.append(row)
    return rows


def fmax_header(families) -> list[str]:
    head = ["design", "depth parameter", "depth"]
    for family in families:
        head += [f"{family} Fmax (MHz)", f"{family} / shallowest"]
    return head + ["xc7 est. Fmax (MHz, estimate)", "est. / shallowest"]


def _short_note(record: dict) -> str:
    note = record.get("pnr_note") or record.get("error")
    if not note:
        return "–"
    for short in ("does not fit", "does not place"):
        if note.startswith(short):
            return short
    return note


def scaling_rows(dims, records: dict, targets) -> list[list[str]]:
    """Rows per dimension (LUTs, FFs, BRAMs, LUT RAMs per target), then the ratio
    largest-to-smallest dimension of each column. ``records``: ``{(d, target): record}``."""
    rows = []
    for d in dims:
        row = [str(d)]
        for target in targets:
            record = records.get((d, target), {})
            row += [_fmt(record.get(c)) if record else "timed out / failed"
                    for c in SCALING_COLUMNS]
        rows.append(row)
    last = [f"{dims[-1]} / {dims[0]}"]
    for target in targets:
        for column in SCALING_COLUMNS:
            small = records.get((dims[0], target), {}).get(column)
            large = records.get((dims[-1], target), {}).get(column)
            last.append(_fmt(ratio(large, small), 2))
    return rows + [last]


def scaling_header(targets) -> list[str]:
    return ["d_in = d_out"] + [f"{t} {c}" for t in targets for c in SCALING_COLUMNS]


def _key(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


# ---- running -----------------------------------------------------------------------------

def _run_fmax(args, designs, cache, out: Path) -> str:
    from hw.designs import elaborate
    from hw.synth.flow import jobs_for_component, run_jobs
    from hw.synth.pnr import FAMILIES, pnr_jobs_for_component, run_pnr_jobs
    from hw.synth.targets import TARGETS

    families = [FAMILIES[f] for f in args.families]
    points = [(d.name, name, value, params) for d in designs
              for name, value, params in depth_points(d, args.depths)]
    pnr_jobs = {seed: [] for seed in args.seeds}
    synth_jobs = []
    for design, _, _, params in points:
        component = elaborate(design, **params)
        for seed in args.seeds:
            pnr_jobs[seed] += pnr_jobs_for_component(design, params, component, families,
                                                     seed=seed)
        synth_jobs += jobs_for_component(design, params, elaborate(design, **params),
                                         [TARGETS[ESTIMATE_TARGET]])
    print(f"Fmax: {len(points)} design points x {len(families)} families x "
          f"{len(args.seeds)} seeds (place and route) + {ESTIMATE_TARGET} estimates",
          flush=True)
    synth, failures = run_jobs(synth_jobs, out / "estimate", workers=args.jobs, cache=cache,
                               timeout=args.timeout)
    timing = []
    for seed, jobs in pnr_jobs.items():  # a folder per seed: the jobs share their names
        records, pnr_failures = run_pnr_jobs(jobs, out / "pnr" / f"seed-{seed}",
                                             workers=args.jobs, cache=cache,
                                             timeout=args.timeout)
        timing += records
        failures += pnr_failures
    for failure in failures:
        print(f"bench_timing: error: {failure}", file=sys.stderr)
    pnr = {}
    for r in timing:
        pnr.setdefault((r["design"], _key(r["params"]), r["pnr_family"]), []).append(r)
    estimates = {(r["design"], _key(r["params"])): r.get("est_fmax_mhz") for r in synth}
    rows = fmax_rows(points, pnr, estimates, args.families)
    calibration = [(r["harness_est_fmax_mhz"], r["fmax_mhz"]) for r in timing
                   if r["pnr_family"] == "ice40" and r.get("fmax_mhz")
                   and r.get("harness_est_fmax_mhz")]
    text = markdown_grid(fmax_header(args.families), rows)
    if calibration:
        ratios = sorted(est / meas for est, meas in calibration)
        text += (f"\n\nThe estimate's method on iCE40 HX (where nextpnr measures): estimate / "
                 f"nextpnr = {ratios[0]:.2f}..{ratios[-1]:.2f} (median "
                 f"{ratios[len(ratios) // 2]:.2f}) over {len(ratios)} placed points.")
    return text


def scaling_table(*, dims=DEFAULT_DIMS, rank: int = 32, targets=SCALING_TARGETS, cache=None,
                  out: Path, jobs: int = 2, timeout: float | None = None) -> str:
    """Synthesise (or read from ``cache``) :data:`SCALING_DESIGN` at :func:`scaling_points`
    on ``targets`` (names) into ``out``; returns a title line and the Markdown table of
    :func:`scaling_rows` (used by ``scripts/hw_tables.py --scaling`` as well)."""
    from hw.designs import get_design
    from hw.synth.flow import jobs_for_design, run_jobs
    from hw.synth.targets import TARGETS

    design = get_design(SCALING_DESIGN)
    points = scaling_points(design, dims, rank)
    jobs_list = [j for p in points for j in jobs_for_design(design.name, p,
                                                            [TARGETS[t] for t in targets])]
    print(f"scaling: {design.name} at d_in = d_out = {', '.join(map(str, dims))}, rank "
          f"{rank}, on {', '.join(targets)}", file=sys.stderr, flush=True)
    records, failures = run_jobs(jobs_list, out, workers=jobs, cache=cache, timeout=timeout)
    for failure in failures:
        print(f"bench_timing: error: {failure}", file=sys.stderr)
    by_point = {(r["params"]["d_in"], r["target"]): r for r in records}
    fixed = {k: v for k, v in points[0].items() if k not in ("d_in", "d_out", "rank")}
    title = f"{design.name} ({_key(fixed)}, rank {rank})"
    return title + "\n\n" + markdown_grid(scaling_header(targets),
                                          scaling_rows(dims, by_point, targets))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--designs", default=None, help="comma list (default: every registered design)")
    p.add_argument("--depths", default=",".join(map(str, DEFAULT_DEPTHS)),
                   help="pipeline depths to try, comma list or 'all' (default 1,2,4,8)")
    p.add_argument("--families", default="ecp5,ice40", help="place-and-route families")
    p.add_argument("--seeds", default=None,
                   help="nextpnr placement seeds, comma list (default: hw.synth.pnr.SEED); "
                        "each point is placed once per seed")
    p.add_argument("--dims", default=",".join(map(str, DEFAULT_DIMS)),
                   help="d_in = d_out values of the scaling table")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--scaling-targets", default=",".join(SCALING_TARGETS))
    p.add_argument("--skip-fmax", action="store_true")
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=None, help="seconds per tool run")
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "bench" / "timing"))
    p.add_argument("--cache", default=None, help="result cache (default: the shared one)")
    p.add_argument("--no-cache", action="store_true")
    return p


def main(argv=None) -> int:
    from hw.synth.cache import ResultCache, default_cache_root
    from hw.synth.pnr import FAMILIES, MAX_SEED, SEED
    from hw.synth.targets import TARGETS

    args = build_parser().parse_args(argv)
    try:
        args.depths = parse_list(args.depths, allow_all=True, name="depths")
        args.seeds = ([SEED] if args.seeds is None else
                      list(dict.fromkeys(parse_list(args.seeds, name="seeds"))))
        for seed in args.seeds:
            if seed > MAX_SEED:
                raise ValueError(f"seeds must be integers in 1..{MAX_SEED}; got {seed}")
        args.dims = parse_list(args.dims, name="dims")
        args.families = [f for f in args.families.split(",") if f]
        args.scaling_targets = [t for t in args.scaling_targets.split(",") if t]
        for family in args.families:
            if family not in FAMILIES:
                raise ValueError(f"families must be among {', '.join(FAMILIES)}; got {family!r}")
        for target in args.scaling_targets:
            if target not in TARGETS:
                raise ValueError(f"scaling-targets must be among {', '.join(TARGETS)}; "
                                 f"got {target!r}")
        known = {d.name: d for d in registered_designs()}
        names = list(known) if args.designs is None else args.designs.split(",")
        for name in names:
            if name not in known:
                raise ValueError(f"designs must be among {', '.join(known)}; got {name!r}")
    except ValueError as exc:
        print(f"bench_timing: error: {exc}", file=sys.stderr)
        return 2
    cache = None if args.no_cache else ResultCache(args.cache or default_cache_root("synth"))
    out = Path(args.output)
    start = time.monotonic()
    sections = []
    if not args.skip_fmax:
        sections.append(_run_fmax(args, [known[n] for n in names if depth_parameters(known[n])],
                                  cache, out))
    if not args.skip_scaling and SCALING_DESIGN in known:
        sections.append(scaling_table(dims=args.dims, rank=args.rank,
                                      targets=args.scaling_targets, cache=cache,
                                      out=out / "scaling", jobs=args.jobs,
                                      timeout=args.timeout))
    seeds = ", ".join(map(str, args.seeds))
    print(f"\nmeasured in one run ({time.monotonic() - start:.0f} s, nextpnr seeds {seeds})\n")
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
