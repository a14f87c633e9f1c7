"""``lqer-hw synth``: Yosys resource reports of designs, per target.

    lqer-hw synth DESIGN [-p NAME=VALUE[,VALUE...]]... [--target T]... [--liberty FILE]
                  [-j N] [-o DIR]
    lqer-hw synth --default [-j N] [-o DIR]

A comma list sweeps a parameter (``-p lanes=1,2,4``). Exit status: 0, 1 when a
Yosys run failed (one error line each, with its log), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from hw.synth.cache import ResultCache
from hw.synth.flow import SynthFailure, jobs_for_design, run_jobs
from hw.synth.report import params_text, write_reports
from hw.synth.targets import TARGETS, get_target, target_names

__all__ = ["main", "UsageError", "build_parser", "resolve_targets", "expand_points",
           "read_liberty", "format_progress"]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every lqer-hw error
        raise UsageError(message)


def build_parser(prog: str, *, default_out: str, what: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=what)
    p.add_argument("design", nargs="?", help="registered design (lqer-hw gen --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="design parameter; VALUE may be a comma list to sweep (repeatable)")
    p.add_argument("--default", action="store_true",
                   help="the default set: every design at the paper configuration")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="parallel runs")
    p.add_argument("-o", "--output", default=default_out, metavar="DIR",
                   help=f"output folder (default {default_out})")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up on one run after this long")
    return p


def _parser(prog: str) -> argparse.ArgumentParser:
    p = build_parser(prog, default_out="build/synth",
                     what="Synthesise designs with Yosys and report LUTs, FFs, DSPs, carry "
                          "cells, block RAMs and an ASIC figure per target.")
    p.add_argument("-t", "--target", action="append", default=[], metavar="T",
                   help=f"target (repeatable; default all): {', '.join(target_names(True))}")
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
        raise UsageError(f"--liberty must name a readable file; got {path!r} "
                         f"({exc.strerror})") from None
    if not cell_names(text):
        raise UsageError(f"--liberty must name a liberty file with cells; got {path!r}")
    return text


def resolve_targets(names: list[str], *, liberty: bool):
    names = list(dict.fromkeys(names)) or list(TARGETS)
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


def _points(args) -> list[tuple[str, dict]]:
    if args.default:
        if args.design or args.param:
            raise UsageError("--default takes no DESIGN or -p")
        from hw.synth.defaults import default_points
        return default_points()
    if not args.design:
        raise UsageError("DESIGN or --default is required (designs: lqer-hw gen --list)")
    return [(args.design, p) for p in expand_points(args.design, args.param)]


def format_progress(done: int, total: int, job, outcome) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {job.design} {params_text(job.params)} @ {job.target.name}"
    if isinstance(outcome, SynthFailure):
        return f"{head}: FAILED"
    parts = [f"{outcome[k]} {label}" for k, label in
             (("luts", "LUTs"), ("ffs", "FFs"), ("dsps", "DSPs"), ("transistors", "transistors"),
              ("area", "area")) if outcome.get(k) is not None]
    when = "cached" if outcome.get("cached") else f"{outcome['wall_s']:.1f} s"
    return f"{head}: {', '.join(parts)} ({when})"


def main(argv: list[str], prog: str = "lqer-hw synth") -> int:
    try:
        args = _parser(prog).parse_args(argv)
        if args.list_targets:
            for t in [*TARGETS.values(), get_target("liberty", liberty=True)]:
                print(f"{t.name:<10} {t.description}")
            return 0
        if args.jobs < 1:
            raise UsageError(f"-j must be an integer >= 1; got {args.jobs}")
        liberty = read_liberty(args.liberty)
        targets = resolve_targets(args.target, liberty=liberty is not None)
        points = _points(args)
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o must name a folder; got file {str(out)!r}")
        jobs = [job for name, params in points
                for job in jobs_for_design(name, params, targets, liberty=liberty)]
    except (UsageError, ValueError, TypeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else ResultCache(out / ".cache")

    def progress(done, total, job, outcome):
        if isinstance(outcome, SynthFailure):
            print(f"{prog}: error: {outcome}", file=sys.stderr, flush=True)
        print(format_progress(done, total, job, outcome), flush=True)

    records, failures = run_jobs(jobs, out, workers=args.jobs, cache=cache, timeout=args.timeout,
                                 progress=progress, announce=lambda m: print(m, flush=True))
    if records:
        paths = write_reports(records, out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if failures else 0
