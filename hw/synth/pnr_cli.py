"""``lqer-hw pnr``: place and route designs on ECP5 and iCE40, report Fmax.

    lqer-hw pnr DESIGN [-p NAME=VALUE[,VALUE...]]... [--family F]... [--seed N] [-j N]
                [-o DIR] [--overwrite]
    lqer-hw pnr --default [--seed N] [-j N] [-o DIR] [--overwrite]

Each record is the design's synthesis record for the family (LUTs, FFs, ...), taken
from the harness's own Yosys run (the design's module kept apart in it), with the Fmax
of the placed and routed timing harness added (``pnr_seed``: nextpnr's
placement seed, 1 unless ``--seed`` names another). Exit status, output folder and cache as
for ``lqer-hw synth``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hw.synth.cli import build_parser, open_cache, output_folder, plan
from hw.synth.flow import SynthFailure
from hw.synth.pnr import (CONSTRAINTS_DIR, DEFAULT_FAMILIES, FAMILIES, MAX_SEED, SEED,
                          pnr_jobs_for_component, run_pnr_jobs)
from hw.synth.targets import get_flow
from hw.synth.report import params_text, write_reports
from lqer_hw.args import UsageError, integer, run
from lqer_hw.files import OutputFolder

__all__ = ["main"]


def _parser(prog: str):
    p = build_parser(prog, default_out="pnr",
                     what="Place and route designs (inside a registered timing harness) with "
                          "nextpnr and report Fmax beside the synthesis figures.")
    p.add_argument("--family", action="append", default=[], metavar="F",
                   help=f"FPGA family (repeatable; default {', '.join(DEFAULT_FAMILIES)}): "
                        f"{', '.join(FAMILIES)} (ecp5: multipliers in LUTs; ecp5-dsp: in "
                        "MULT18X18D blocks)")
    p.add_argument("--constraints", default=str(CONSTRAINTS_DIR), metavar="DIR",
                   help="folder with ecp5.lpf and ice40.pcf (default: the project's)")
    p.add_argument("--seed", type=integer(0, MAX_SEED), default=SEED, metavar="N",
                   help=f"nextpnr's placement seed (default {SEED}); single runs of one netlist "
                        "move by 5%% to 30%% between seeds (docs/synth.md)")
    return p


def _families(names: list[str]):
    names = list(dict.fromkeys(names)) or list(DEFAULT_FAMILIES)
    for name in names:
        if name not in FAMILIES:
            raise UsageError(f"family must be one of {', '.join(FAMILIES)}; got {name!r}")
    return [FAMILIES[n] for n in names]


def _line(done: int, total: int, job, outcome) -> str:
    width = len(str(total))
    head = (f"[{done:>{width}}/{total}] {job.design} {params_text(job.params)} "
            f"@ {job.family.name} place and route")
    if isinstance(outcome, SynthFailure):
        return f"{head}: FAILED"
    when = "cached" if outcome.get("pnr_cached") else f"{outcome['pnr_wall_s']:.1f} s"
    if outcome.get("fmax_mhz") is None:
        return f"{head}: {outcome.get('pnr_note') or 'no Fmax'} ({when})"
    return f"{head}: Fmax {outcome['fmax_mhz']:.1f} MHz ({when})"


def _pnr(argv: list[str], prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    output = OutputFolder(output_folder(args), overwrite=args.overwrite, name="output")
    families = _families(args.family)
    flow = get_flow(args.flow)
    cache = open_cache(args, "synth")
    points = plan(args, [f.target for f in families])
    by_target = {f.target.name: f for f in families}
    from hw.designs import elaborate
    pnr_jobs = [j for name, params, targets, component, _ in points
                for j in pnr_jobs_for_component(
                    name, params, elaborate(name, **params) if component is None else component,
                    [by_target[t.name] for t in targets], constraints_dir=Path(args.constraints),
                    flow=flow, seed=args.seed)]
    with output as build:
        def failed(outcome):
            print(f"{prog}: error: {outcome.describe(build, args.output)}", file=sys.stderr,
                  flush=True)

        print(f"synthesising, placing and routing {len(pnr_jobs)} design points for "
              f"{', '.join(f.name for f in families)}", flush=True)

        def pnr_progress(done, total, job, outcome):
            if isinstance(outcome, SynthFailure):
                failed(outcome)
            print(_line(done, total, job, outcome), flush=True)

        records, pnr_failures = run_pnr_jobs(pnr_jobs, build, workers=args.jobs, cache=cache,
                                             timeout=args.timeout, progress=pnr_progress)
        paths = (write_reports(records, build, stem="pnr", title="Place and route (nextpnr)")
                 if records else {})
    if paths:
        print("wrote " + ", ".join(str(Path(args.output) / p.name) for p in paths.values()))
    return 1 if pnr_failures else 0


def main(argv: list[str], prog: str = "lqer-hw pnr") -> int:
    return run(prog, lambda: _pnr(argv, prog), usage_errors=(ValueError, TypeError))
