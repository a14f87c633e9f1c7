"""``lqer-hw synth``: Yosys resource reports of designs, per target.

    lqer-hw synth DESIGN [-p NAME=VALUE[,VALUE...]]... [--target T]... [--liberty FILE]
                  [-j N] [-o DIR] [--overwrite]
    lqer-hw synth --default [-j N] [-o DIR] [--overwrite]

A comma list sweeps a parameter (``-p lanes=1,2,4``). Exit status: 0, 1 when a
Yosys run failed (one error line each, with its log), 2 for a usage error,
130 when interrupted. The output folder is checked before any work (new or
empty, or ``--overwrite``), built under a temporary name beside it and put in
place when the run ends, so an interrupted run leaves nothing behind; results
are cached outside it (:mod:`hw.synth.cache`).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from hw.synth.cache import ResultCache, default_cache_root
from hw.synth.flow import SynthFailure, jobs_for_component, jobs_for_design, run_jobs
from hw.synth.report import params_text, write_reports
from hw.synth.targets import (DEFAULT_FLOW, DEFAULT_TARGETS, FLOWS, TARGETS, get_flow, get_target,
                              target_names)
from lqer_hw.args import Parser, UsageError, integer, number, run
from lqer_hw.files import OutputFolder

__all__ = ["main", "UsageError", "build_parser", "resolve_targets", "expand_points", "plan",
           "plan_jobs",
           "read_liberty", "format_progress", "open_cache"]


def build_parser(prog: str, *, default_out: str, what: str) -> Parser:
    """The options ``synth`` and ``pnr`` share; ``default_out`` is the output folder's name
    inside the shared build folder (:func:`lqer_hw.files.build_folder`)."""
    p = Parser(prog=prog, description=what)
    p.add_argument("design", nargs="?", metavar="DESIGN", help="registered design (lqer-hw gen --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="design parameter; VALUE may be a comma list to sweep (repeatable)")
    p.add_argument("--default", action="store_true",
                   help="the default set: every design at the paper configuration")
    p.add_argument("-j", "--jobs", type=integer(1), default=1, metavar="N",
                   help="parallel runs (default 1)")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help=f"output folder (default BUILD/{default_out}, BUILD being --build-dir, "
                        "else $LQER_BUILD_DIR, else build/ in the current folder); must be new "
                        "or empty unless --overwrite is given")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help="the build folder shared with lqer-hw sim (see -o)")
    p.set_defaults(default_out=default_out)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty output folder (when the run ends)")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="result cache (default $LQER_CACHE_DIR, else ~/.cache/lqer-hw)")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results")
    p.add_argument("--timeout", type=number(above=0), default=None, metavar="SECONDS",
                   help="give up on one run after this many seconds (> 0; default none)")
    p.add_argument("--flow", default=DEFAULT_FLOW, metavar="FLOW",
                   help=f"synthesis flow, named in every record: {', '.join(FLOWS)} "
                        f"(default {DEFAULT_FLOW}; docs/synth.md, 'Flows')")
    return p


def output_folder(args) -> str:
    """The run's output folder: ``-o``, else ``BUILD/synth`` (or ``BUILD/pnr``)."""
    if args.output is None:
        from lqer_hw.files import build_folder
        args.output = str(build_folder(args.build_dir) / args.default_out)
    return args.output


def open_cache(args, kind: str) -> ResultCache | None:
    """The result cache the options name (None with ``--no-cache``)."""
    if args.no_cache:
        if args.cache is not None:
            raise UsageError("cache must not be given with --no-cache; got both")
        return None
    return ResultCache(Path(args.cache) if args.cache else default_cache_root(kind))


def _parser(prog: str) -> Parser:
    p = build_parser(prog, default_out="synth",
                     what="Synthesise designs with Yosys and report LUTs, FFs, DSPs, carry "
                          "cells, block RAMs and an ASIC figure per target.")
    p.add_argument("-t", "--target", action="append", default=[], metavar="T",
                   help=f"target (repeatable; default all but ecp5-nodsp and liberty): "
                        f"{', '.join(target_names(True))}")
    p.add_argument("--liberty", metavar="FILE",
                   help="also report standard-cell area with this liberty file")
    p.add_argument("--list-targets", action="store_true", help="list targets and exit")
    return p


def read_liberty(path: str | None) -> str | None:
    if path is None:
        return None
    from hw.synth.liberty import cell_names
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"liberty must name a readable file; got {path!r} "
                         f"({exc.strerror})") from None
    if not cell_names(text):
        raise UsageError(f"liberty must name a liberty file with cells; got {path!r}")
    return text


def resolve_targets(names: list[str], *, liberty: bool):
    names = list(dict.fromkeys(names)) or list(DEFAULT_TARGETS)
    if liberty and "liberty" not in names:
        names.append("liberty")
    try:
        return [get_target(n, liberty=liberty) for n in names]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def expand_points(design_name: str, assignments: list[str]) -> list[dict[str, int]]:
    """Validated parameter sets; a comma list in an assignment sweeps that parameter."""
    from hw.designs import get_design, parse_params
    design = get_design(design_name)
    choices = []
    for text in assignments:
        name, sep, values = text.partition("=")
        if sep and "," in values:
            choices.append([f"{name}={v}" for v in values.split(",")])
        else:
            choices.append([text])
    return [parse_params(design, list(combo)) for combo in itertools.product(*choices)]


def plan(args, targets) -> list[tuple[str, dict, list, object, str | None]]:
    """``(design, parameters, targets, component or None, RTLIL or None)`` per point: the
    default set's plan (:func:`hw.synth.defaults.default_plan`, its targets taken from
    ``targets``) with ``--default``, else DESIGN's points on every one of ``targets``."""
    if args.default:
        if args.design or args.param:
            raise UsageError("default must be given alone; got it with a DESIGN or -p")
        from hw.synth.defaults import default_plan
        return default_plan(targets)
    if not args.design:
        raise UsageError("DESIGN or --default must be given (designs: lqer-hw gen --list); "
                         "got nothing")
    return [(args.design, p, list(targets), None, None)
            for p in expand_points(args.design, args.param)]


def plan_jobs(points, *, liberty: str | None = None, flow=None) -> list:
    """Synthesis jobs of a :func:`plan`."""
    jobs = []
    for name, params, targets, component, rtlil in points:
        if component is None:
            jobs += jobs_for_design(name, params, targets, liberty=liberty, flow=flow)
        else:
            jobs += jobs_for_component(name, params, component, targets, liberty=liberty,
                                       flow=flow, rtlil=rtlil)
    return jobs


def format_progress(done: int, total: int, job, outcome) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {job.design} {params_text(job.params)} @ {job.target.name}"
    if isinstance(outcome, SynthFailure):
        return f"{head}: FAILED"
    parts = [f"{outcome[k]} {label}" for k, label in
             (("luts", "LUTs"), ("ffs", "FFs"), ("dsps", "DSPs"), ("transistors", "transistors"),
              ("area", "area")) if outcome.get(k) is not None]
    if outcome.get("est_fmax_mhz") is not None:
        parts.append(f"est. Fmax {outcome['est_fmax_mhz']:.0f} MHz (estimate)")
    when = "cached" if outcome.get("cached") else f"{outcome['wall_s']:.1f} s"
    return f"{head}: {', '.join(parts)} ({when})"


def _synth(argv: list[str], prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    if args.list_targets:
        for t in [*TARGETS.values(), get_target("liberty", liberty=True)]:
            print(f"{t.name:<10} {t.description}")
        return 0
    output = OutputFolder(output_folder(args), overwrite=args.overwrite, name="output")
    liberty = read_liberty(args.liberty)
    targets = resolve_targets(args.target, liberty=liberty is not None)
    flow = get_flow(args.flow)
    cache = open_cache(args, "synth")
    jobs = plan_jobs(plan(args, targets), liberty=liberty, flow=flow)
    with output as build:
        def progress(done, total, job, outcome):
            if isinstance(outcome, SynthFailure):
                print(f"{prog}: error: {outcome.describe(build, args.output)}", file=sys.stderr,
                      flush=True)
            print(format_progress(done, total, job, outcome), flush=True)

        records, failures = run_jobs(jobs, build, workers=args.jobs, cache=cache,
                                     timeout=args.timeout, progress=progress,
                                     announce=lambda m: print(m, flush=True))
        paths = write_reports(records, build) if records else {}
    if paths:
        print("wrote " + ", ".join(str(Path(args.output) / p.name) for p in paths.values()))
    return 1 if failures else 0


def main(argv: list[str], prog: str = "lqer-hw synth") -> int:
    # a design's parameter validation raises TypeError for a wrong kind of value
    return run(prog, lambda: _synth(argv, prog), usage_errors=(ValueError, TypeError))
