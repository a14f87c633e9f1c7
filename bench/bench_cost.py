"""Cost model: validation errors against full synthesis, and the command's cold and
cached run times.

1. Validation (``hw.cost.validate``): for every method with a design and every shape of
   ``hw.cost.validate.SHAPES`` (mxint and lqer on ``lqer-linear``, fp16 on
   ``fp16-linear``, llm-int8 on ``llm-int8-linear``, w8a8 on ``w8a8-linear``, resq on
   ``resq-linear``, at 16 MACs per cycle) the model's LUT and FF prediction against the
   synthesised datapath on ``xc7-nodsp`` and ``lut6``; prints one line per method, shape
   and target and the largest error (the project's bound: +-10%).
2. Timing: ``lqer-hw cost --model llama-7b`` (all methods, ``xc7-nodsp``) once with an
   empty synthesis cache (cold) and once more with the cache it filled (cached); prints
   wall and CPU seconds (the command and its Yosys runs) and the ratio (one run on a shared
   machine: the CPU time and the ratio are the figures to keep).

    python bench/bench_cost.py [--smallest] [--methods M,...] [--no-validation] [--no-timing] [-j 1]
                               [--cache DIR] [-o build/bench/cost]

Validation uses the user's synthesis cache (or ``--cache``); the timing uses a fresh one
under the output folder. Never gates anything; exit status 1 only when a run failed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw.cost import validate as cost_validate  # noqa: E402
from hw.cost.methods import CostConfig  # noqa: E402
from hw.synth.cache import ResultCache, default_cache_root  # noqa: E402


def _validation(args, out: Path) -> bool:
    shapes = cost_validate.SMALLEST if args.smallest else cost_validate.SHAPES
    if args.methods:
        shapes = {m: shapes[m] for m in args.methods.split(",")}
    cache = ResultCache(args.cache) if args.cache else ResultCache(default_cache_root("synth"))
    start = time.monotonic()
    rows = cost_validate.validate(CostConfig(), shapes, cost_validate.TARGETS, out / "synth",
                                  cache=cache, workers=args.jobs,
                                  progress=lambda d, t, job, o: print(
                                      f"  [{d}/{t}] {job.design} @ {job.target.name}", flush=True))
    print(f"validation: each method's design at 16 MACs/cycle, block 16, W4A8, predicted vs "
          f"synthesised ({time.monotonic() - start:.0f} s)")
    print(f"{'method':<9} {'d_in x d_out':>12} {'3rd':>4} {'lanes':>5} {'target':<10} "
          f"{'LUTs pred':>9} {'synth':>7} {'error':>7} {'FFs pred':>8} {'synth':>6} {'error':>7}")
    worst = 0.0
    for r in rows:
        worst = max(worst, abs(r["luts_error"]), abs(r["ffs_error"]))
        print(f"{r['method']:<9} {r['d_in']:>5} x {r['d_out']:<4} {r['third']:>4} "
              f"{r['lanes']:>5} {r['target']:<10} {round(r['predicted_luts']):>9} "
              f"{r['synthesised_luts']:>7} {100 * r['luts_error']:>+6.1f}% "
              f"{round(r['predicted_ffs']):>8} {r['synthesised_ffs']:>6} "
              f"{100 * r['ffs_error']:>+6.1f}%")
    print(f"largest |error|: {100 * worst:.1f}% (bound {100 * cost_validate.BOUND:.0f}%)")
    return True


def _timed_run(cache: Path, out: Path, jobs: int) -> tuple[float, float, int]:
    """Wall and CPU seconds (the command and its Yosys runs) of one run; its exit status."""
    cmd = [sys.executable, "-m", "lqer_hw", "cost", "--model", "llama-7b", "-t", "xc7-nodsp",
           "--cache", str(cache), "-j", str(jobs), "-o", str(out), "--overwrite"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        print(f"bench_cost: error: {' '.join(cmd[2:])} failed: {done.stderr.strip()[-500:]}",
              file=sys.stderr)
    return elapsed, cpu, done.returncode


def _timing(out: Path, jobs: int) -> bool:
    cache = out / "timing-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cold, cold_cpu, rc = _timed_run(cache, out / "cold", jobs)
    if rc:
        return False
    cached, cached_cpu, rc = _timed_run(cache, out / "cached", jobs)
    if rc:
        return False
    print(f"lqer-hw cost --model llama-7b (all methods, xc7-nodsp, -j {jobs}): cold {cold:.1f} s "
          f"wall / {cold_cpu:.1f} s CPU, cached {cached:.1f} s wall / {cached_cpu:.1f} s CPU, "
          f"cold / cached {cold / cached:.0f}x")
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smallest", action="store_true",
                   help="validate each method's smallest shape only")
    p.add_argument("--methods", default=None,
                   help="comma list of the validated methods (default all: "
                        f"{','.join(cost_validate.VALIDATED)})")
    p.add_argument("--no-validation", action="store_true")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("--cache", default=None, help="synthesis cache for the validation")
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "bench" / "cost"))
    args = p.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    if not args.no_validation:
        ok &= _validation(args, out)
    if not args.no_timing:
        ok &= _timing(out, args.jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
