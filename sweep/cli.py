"""``lqer-hw sweep``: area against perplexity over a grid of quantization configurations.

    lqer-hw sweep [SPEC.toml|default] [--grid KEY=V1,V2 ...] -o DIR [-j N]
                  [--engine local|ray [--address ADDR]] [--targets T1,T2] [--area MODULE:FUNCTION]
                  [--retry-failed] [--dry-run]

Every point of the spec is checked first -- by ``lqer-hw eval``'s parser and
checks, the model loaded once -- and each problem is one line, exit status 2,
nothing written. Then the points not yet in ``DIR/results.jsonl`` run (a
rerun resumes), and ``results.csv``, ``pareto.png`` and ``report.md`` are
written from all rows. Exit status 0, or 1 when a point failed (its error is
in the files). Ctrl-C or SIGTERM stops the run (status 130); the rows
written so far stay. See docs/sweep.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path

from lqer_hw.args import USAGE_STATUS, Parser, UsageError, choice, integer, run, status

__all__ = ["main", "parser", "sweep"]


def parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Area against perplexity over a grid of configurations: "
                                      "resumable, parallel, on Ray.")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help="TOML sweep spec, or 'default' (the packaged default sweep)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="one grid axis (an eval option by flag name, or macs-per-cycle); the "
                        "--grid options form one more table, the product of their values")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output folder: new, empty, or holding an earlier sweep (it resumes)")
    p.add_argument("-j", "--jobs", type=integer(1, 256), default=1, metavar="N",
                   help="points run in parallel processes (engine local; default 1)")
    p.add_argument("--engine", type=choice(("local", "ray")), default="local", metavar="ENGINE",
                   help="local (default) or ray (one Ray task per point)")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address for --engine ray (default: Ray's own choice: "
                        "$RAY_ADDRESS, else a local instance)")
    p.add_argument("--targets", metavar="T1,T2",
                   help="synthesis targets to cost (default: the spec's, else xc7-nodsp,lut6)")
    p.add_argument("--area", metavar="MODULE:FUNCTION",
                   help="area provider (default: the spec's, else hw.cost:area)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the points an earlier run recorded as failed")
    p.add_argument("--dry-run", action="store_true",
                   help="check the spec and list its points; run and write nothing")
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt: the rows written so far stay."""


@contextlib.contextmanager
def _sigterm_interrupts():
    def handler(signum, frame):
        raise _Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _check_out(path: str) -> Path:
    """The output folder: a new or empty one, or an earlier sweep's (checked before any work)."""
    from lqer_hw.files import check_output_folder

    from sweep.journal import RESULTS

    p = check_output_folder(path, overwrite=True, name="out")
    if p.is_dir() and any(os.scandir(p)) and not (p / RESULTS).is_file():
        raise UsageError(f"out must be a new or empty folder, or an earlier sweep's (with "
                         f"{RESULTS}); got {path!r}, which holds other files")
    return p


def _make_out(p: Path, shown: str) -> None:
    """Create the folder and prove it writable; on failure remove what was made, then refuse."""
    made = []
    try:
        for parent in [*reversed(p.parents), p]:
            if not parent.exists():
                parent.mkdir()
                made.append(parent)
        probe = p / f".sweep-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UsageError(f"out must be a writable folder; got {shown!r} "
                         f"({exc.strerror or exc})") from None


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def sweep(argv: list[str], prog: str) -> int:
    from sweep import outputs, runner, spec as specs
    from sweep.area import resolve
    from sweep.journal import Journal

    args = parser(prog).parse_args(argv)
    if args.engine != "ray" and args.address is not None:
        raise UsageError(f"address must not be given without --engine ray; got {args.address!r}")
    if args.engine == "ray" and args.jobs != 1:
        raise UsageError("jobs must not be given with --engine ray (the cluster's CPUs decide); "
                         f"got {args.jobs}")
    if args.engine == "ray":
        try:
            import ray  # noqa: F401
        except ModuleNotFoundError:
            raise UsageError("engine must be local when the ray package is not installed "
                             "(pip install ray); got 'ray'") from None
    targets = None if args.targets is None else [t for t in args.targets.split(",") if t]
    if args.spec is not None:
        spec = specs.load_spec(args.spec, grid=args.grid, targets=targets, area=args.area)
    elif args.grid:
        spec = specs.grid_spec(args.grid, targets=targets, area=args.area)
    else:
        raise UsageError("SPEC or grid must be given (a TOML file, 'default', or --grid KEY=V1,V2); "
                         "got neither")
    out = _check_out(args.out)
    _, provider = resolve(spec.area, default=specs.DEFAULT_AREA)
    spec = dataclasses.replace(spec, area=provider)
    points = specs.expand(spec)
    specs.check_with_models(points)
    if args.dry_run:
        for p in points:
            print(f"{p.key}  {p.label}  lqer-hw eval {' '.join(p.argv)}")
        print(f"{_points(len(points))}; area from {provider}")
        return 0
    _make_out(out, args.out)
    journal = Journal(out)
    journal.repair()
    rows = journal.rows()
    ours = {p.key for p in points}
    if args.retry_failed:
        again = {k for k in ours if k in rows and rows[k]["status"] != "ok"}
        if again:
            journal.drop(again)
            rows = journal.rows()
    todo = [p for p in points if p.key not in rows]
    reused = len(points) - len(todo)
    if reused:
        status(prog, f"{reused} of {len(points)} points done by an earlier run; running "
                     f"{len(todo)}")
    elif todo:
        status(prog, f"running {_points(len(todo))} on {args.jobs} "
                     f"{'worker' if args.jobs == 1 else 'workers'} ({args.engine}); area from "
                     f"{provider} (a first run synthesises the parts it needs: minutes, then "
                     "cached)")
    stats = runner.run([p.job(spec.targets, provider) for p in todo], journal,
                       engine=args.engine, workers=args.jobs, address=args.address,
                       total=len(points), done_before=reused,
                       status=lambda message: status(prog, message))
    rows = journal.rows()
    run_info = {"seconds": stats.seconds, "ran": stats.ran, "reused": reused,
                "engine": args.engine, "workers": args.jobs, "area_provider": provider}
    paths = outputs.write_all(out, points, rows, spec, run=run_info)
    failed = sum(1 for p in points if rows[p.key]["status"] != "ok")
    print(f"{_points(len(points))}: {len(points) - failed} done, {failed} failed "
          f"({stats.ran} run now in {stats.seconds:.1f} s, {reused} reused)")
    for name in ("report", "csv", "plot"):
        print(f"wrote {os.path.join(args.out, paths[name].name)}")
    return 1 if failed else 0


def main(argv: list[str], prog: str = "lqer-hw sweep") -> int:
    """Entry point of ``lqer-hw sweep``: one line per spec problem (status 2), see the module doc."""
    from sweep.spec import SpecError

    def body():
        with _sigterm_interrupts():
            try:
                return sweep(argv, prog)
            except SpecError as exc:
                if os.environ.get("LQER_DEBUG"):
                    raise
                for line in exc.lines:
                    print(f"{prog}: error: {line}", file=sys.stderr)
                sys.stderr.flush()
                return USAGE_STATUS

    return run(prog, body)
