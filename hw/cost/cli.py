"""``lqer-hw cost``: each method's engine for every linear layer of a model, at
iso-throughput, composed from synthesised parts (docs/cost.md).

    lqer-hw cost [--model PATH|default|SHAPES] [--methods fp16,w8a8,...] [--rank 32]
                 [--w-width 4] [--a-width 8] [--block 16] [--macs-per-cycle 16]
                 [-t TARGET]... [--outliers PROFILE.json | --outlier-columns N]
                 [--outlier-sizing p99] [--resq-fraction 8] [--layer-output merged|terms]
                 [-j N] [-o DIR] [--overwrite]
                 [--cache DIR | --no-cache] [--timeout SECONDS]

Everything is checked before any work (bad input: one line, exit status 2, nothing
written); the parts are synthesised through the cached flow (progress lines on
stderr), and ``DIR`` receives ``cost.json``, ``cost.csv``, ``cost.md``, ``area.png``
and the parts' build folders (``synth/``), all at once when the run ends (an
interrupted run leaves nothing). :func:`cost` is the work without the command line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lqer_hw.args import Parser, UsageError, integer, number, run, status

__all__ = ["main", "cost", "check_inputs", "DEFAULT_TARGETS", "COST_TARGETS"]

DEFAULT_TARGETS = ("xc7-nodsp",)


def _cost_targets() -> tuple[str, ...]:
    from hw.synth.targets import TARGETS
    return tuple(TARGETS)


COST_TARGETS = _cost_targets()


def _methods(text: str) -> list[str]:
    from hw.cost.methods import method_names
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in method_names()]
    if not names or unknown:
        raise UsageError(f"methods must be a comma list of {', '.join(method_names())}; got "
                         f"{unknown[0] if unknown else text!r}")
    return list(dict.fromkeys(names))


def _parser(prog: str) -> Parser:
    from hw.cost.methods import LAYER_OUTPUTS, CostConfig, method_names
    from hw.cost.outliers import SIZINGS
    from hw.cost.shapes import BUILTIN
    d = CostConfig()
    p = Parser(prog=prog, description="Area, memories and cycles per token of each method's "
               "linear-layer engine for a whole model, at the same MACs per cycle, composed "
               "from synthesised parts.")
    p.add_argument("--model", default="default", metavar="PATH|default|SHAPES",
                   help="a folder with config.json, a config.json, 'default' (the embedded "
                        f"model) or a built-in shape set: {', '.join(BUILTIN)}")
    p.add_argument("--methods", default=None, metavar="LIST",
                   help=f"comma list (default all): {', '.join(method_names())}")
    p.add_argument("--rank", type=integer(1), default=d.rank, metavar="N",
                   help=f"LQER rank, a multiple of the block (default {d.rank})")
    p.add_argument("--w-width", type=integer(2, 16), default=d.w_width, metavar="N",
                   help=f"MXINT weight bits (default {d.w_width})")
    p.add_argument("--a-width", type=integer(2, 16), default=d.a_width, metavar="N",
                   help=f"MXINT activation bits (default {d.a_width})")
    p.add_argument("--block", type=integer(1, 256), default=d.block, metavar="N",
                   help=f"MXINT block, a power of two (default {d.block})")
    p.add_argument("--macs-per-cycle", type=integer(1), default=d.macs_per_cycle, metavar="N",
                   help=f"main-path MACs per cycle, a multiple of the block (default "
                        f"{d.macs_per_cycle})")
    p.add_argument("-t", "--target", action="append", default=[], metavar="T",
                   help=f"target (repeatable; default {', '.join(DEFAULT_TARGETS)}): "
                        f"{', '.join(COST_TARGETS)}")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--outliers", metavar="PROFILE.json",
                       help="LLM.int8() outlier profile (lqer-hw profile) of this model")
    group.add_argument("--outlier-columns", type=integer(0), metavar="N",
                       help="LLM.int8() outlier columns per layer (e.g. 353 for LLaMA-7B)")
    p.add_argument("--outlier-sizing", default=d.outlier_sizing, metavar="STAT",
                   help=f"profile statistic that sizes the fp16 lanes: {', '.join(SIZINGS)} "
                        f"(default {d.outlier_sizing})")
    p.add_argument("--resq-fraction", type=integer(2), default=d.resq_fraction, metavar="N",
                   help=f"ResQ keeps d_in / N directions in 8 bits (default {d.resq_fraction})")
    p.add_argument("--layer-output", default=d.layer_output, metavar="KIND",
                   help=f"what the MXINT engines (mxint, lqer, l2qer, resq) give per output "
                        f"channel: {', '.join(LAYER_OUTPUTS)} (default {d.layer_output}: "
                        f"merged and requantized to MXINT, a finished output like FP16's and "
                        f"LLM.int8()'s; terms: the two exact terms, summed by the consumer)")
    p.add_argument("-j", "--jobs", type=integer(1), default=1, metavar="N",
                   help="parallel Yosys runs (default 1)")
    p.add_argument("-o", "--output", default="build/cost", metavar="DIR",
                   help="output folder (default build/cost); new or empty unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="synthesis cache (default $LQER_CACHE_DIR, else ~/.cache/lqer-hw)")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results")
    p.add_argument("--timeout", type=number(above=0), default=None, metavar="SECONDS",
                   help="give up on one Yosys run after this many seconds")
    return p


def check_inputs(*, model: str, methods: list[str] | None, cfg, targets: list[str],
                 outliers: str | None, outlier_columns: int | None):
    """Everything checked before any work: ``(shapes, methods, targets, profile, notes)``.
    ``ValueError`` (one line) on bad input."""
    from hw.cost.methods import METHODS, method_names
    from hw.cost.outliers import fixed_columns, read_profile
    from hw.cost.shapes import BUILTIN, read_model

    cfg.check()
    unknown = [t for t in targets if t not in COST_TARGETS]
    if unknown:
        raise UsageError(f"target must be one of {', '.join(COST_TARGETS)}; got {unknown[0]!r}")
    targets = list(dict.fromkeys(targets)) or list(DEFAULT_TARGETS)
    shapes = read_model(model)
    notes = []
    explicit = methods is not None
    methods = list(methods) if explicit else list(method_names())
    profile = None
    if outliers is not None:
        profile = read_profile(outliers, shapes)
    elif outlier_columns is not None:
        profile = fixed_columns(outlier_columns, shapes)
    elif any(METHODS[m].needs_outliers for m in methods):
        builtin = BUILTIN.get(model, {}).get("_outlier_columns")
        needy = [m for m in methods if METHODS[m].needs_outliers]
        if builtin is not None:
            profile = fixed_columns(builtin[0], shapes)
            profile = type(profile)(f"{builtin[0]} columns per layer ({builtin[1]})",
                                    profile.layers)
        elif explicit:
            raise UsageError(f"outliers must be given for {needy[0]} (--outliers PROFILE.json "
                             "or --outlier-columns N); got neither")
        else:
            methods = [m for m in methods if m not in needy]
            notes.append(f"{', '.join(needy)} left out: no outlier profile (--outliers or "
                         "--outlier-columns)")
    if any(METHODS[m].uses_rank for m in methods):
        narrowest = min(shapes.layers, key=lambda layer: min(layer.d_in, layer.d_out))
        limit = min(narrowest.d_in, narrowest.d_out)
        if cfg.rank > limit:
            raise UsageError(f"rank must be at most min(d_in, d_out) of every layer ({limit} at "
                             f"{narrowest.name}); got {cfg.rank}")
    if "resq" in methods:
        narrowest = min(shapes.layers, key=lambda layer: layer.d_in)
        if -(-narrowest.d_in // cfg.block) < 2:
            raise UsageError(f"resq needs d_in of at least two blocks ({2 * cfg.block}) in every "
                             f"layer; got {narrowest.d_in} at {narrowest.name}")
    return shapes, methods, targets, profile, notes


def cost(*, shapes, methods: list[str], cfg, targets: list[str], profile, build: Path,
         cache=None, workers: int = 1, timeout: float | None = None, progress=None,
         announce=None) -> dict:
    """Synthesise what is missing and compose the engines; returns the JSON document
    (:mod:`hw.cost.report`). ``build`` receives the parts' build folders."""
    from hw.cost import model as cost_model
    from hw.cost.parts import measure
    from hw.cost.report import FORMAT, VERSION
    from hw.synth.targets import get_target

    keys = {k for ks in cost_model.plan(shapes, methods, cfg, profile).values() for k in ks}
    parts = cost_model.required_parts(sorted(keys, key=repr), cfg)
    started = time.monotonic()
    figures = measure(parts, [get_target(t) for t in targets], build, cache=cache,
                      workers=workers, progress=progress, announce=announce, timeout=timeout)
    fits = cost_model.glue_fits(cfg, targets, figures, cost_model.glue_designs(keys, cfg))
    with cost_model.schedule_memo(cache):
        layers, engines = cost_model.evaluate(shapes, methods, cfg, targets, figures, fits,
                                              profile)
    totals = cost_model.model_totals(layers)
    return {
        "format": FORMAT, "version": VERSION,
        "model": {"name": shapes.name, "model_type": shapes.model_type, "source": shapes.source,
                  "blocks": shapes.blocks, "layers": len(shapes.layers)},
        "config": {**vars(cfg), "lanes": cfg.lanes},
        "outliers": None if profile is None else
        f"{profile.source}, fp16 lanes sized at {cfg.outlier_sizing}",
        "methods": methods, "targets": targets,
        "glue": {design: {t: {"coefficients": f.coefficients, "points": list(f.points)}
                          for t, f in by_target.items()}
                 for design, by_target in fits.items()},
        "parts": [{"part": part.label, "target": target, **v}
                  for (part, target), v in figures.items()],
        "synthesis_s": round(time.monotonic() - started, 3),
        "engines": engines, "layers": layers, "model_totals": totals,
    }


def _run(argv: list[str], prog: str) -> int:
    from hw.cost.methods import CostConfig
    from hw.cost.parts import PartFailure
    from hw.cost.report import write_reports
    from hw.synth.cache import ResultCache, default_cache_root
    from hw.synth.cli import format_progress
    from lqer_hw.files import OutputFolder

    args = _parser(prog).parse_args(argv)
    cfg = CostConfig(macs_per_cycle=args.macs_per_cycle, block=args.block, rank=args.rank,
                     w_width=args.w_width, a_width=args.a_width,
                     resq_fraction=args.resq_fraction, outlier_sizing=args.outlier_sizing,
                     layer_output=args.layer_output)
    methods = None if args.methods is None else _methods(args.methods)
    shapes, methods, targets, profile, notes = check_inputs(
        model=args.model, methods=methods, cfg=cfg, targets=args.target,
        outliers=args.outliers, outlier_columns=args.outlier_columns)
    if args.no_cache and args.cache is not None:
        raise UsageError("cache must not be given with --no-cache; got both")
    cache = None if args.no_cache else ResultCache(Path(args.cache) if args.cache
                                                   else default_cache_root("synth"))
    output = OutputFolder(args.output, overwrite=args.overwrite, name="output")
    for note in notes:
        status(prog, note)
    def progress(done, total, job, outcome):
        status(prog, format_progress(done, total, job, outcome))

    failure = None
    with output as tmp:
        try:
            result = cost(shapes=shapes, methods=methods, cfg=cfg, targets=targets,
                          profile=profile, build=tmp / "synth", cache=cache, workers=args.jobs,
                          timeout=args.timeout, progress=progress,
                          announce=lambda m: status(prog, m))
        except PartFailure as exc:  # no reports; the failed run's folder and log are kept
            failure = exc.failure.describe(tmp, args.output)
        else:
            paths = write_reports(result, tmp)
    if failure is not None:
        print(f"{prog}: error: {failure}", file=sys.stderr, flush=True)
        return 1
    print("wrote " + ", ".join(str(Path(args.output) / p.name) for p in paths.values()))
    return 0


def main(argv: list[str], prog: str = "lqer-hw cost") -> int:
    return run(prog, lambda: _run(argv, prog), usage_errors=(ValueError, TypeError))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
