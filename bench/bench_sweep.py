"""Sweep throughput and emulation overhead.

* Points per minute of ``lqer-hw sweep`` on the embedded model with ``-j 1`` and
  ``-j 2`` (a fresh output folder each, so every point runs; process start-up,
  model loading and outputs included), on a 12-point spec: mxint, lqer and
  l2qer at W4A8 / W3A8 with ranks 16 and 32 (area from the placeholder, so
  synthesis takes no time here).
* The emulation overhead of item 5 (fast L2QER W4A8 forward / float forward,
  ``bench/bench_emulation.py``'s measurement): embedded model and a 1024-wide OPT.

    .venv/bin/python bench/bench_sweep.py [--threads N] [--skip-emulation]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
[sweep]
area = "sweep.area:unavailable"
[[grid]]
method = "mxint"
w-width = [4, 3]
[[grid]]
method = ["lqer", "l2qer"]
w-width = [4, 3]
rank = [16, 32]
"""


def sweep_rate(spec: Path, jobs: int) -> tuple[float, int, float]:
    """(points per minute, points, seconds) of one fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lqer_hw", "sweep", str(spec), "-o",
                               os.path.join(tmp, "out"), "-j", str(jobs)],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sweep -j {jobs} failed:\n{done.stderr}")
        points = int(done.stdout.split(" points:")[0].split()[-1])
    return 60.0 * points / seconds, points, seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads for the emulation ratios")
    p.add_argument("--skip-emulation", action="store_true", help="sweep throughput only")
    p.add_argument("--skip-sweep", action="store_true", help="emulation ratios only")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPUs")
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "bench.toml"
            spec.write_text(SPEC)
            rates = {}
            for jobs in (1, 2):
                rate, points, seconds = sweep_rate(spec, jobs)
                rates[jobs] = rate
                print(f"sweep -j {jobs}: {points} points in {seconds:.1f} s = {rate:.1f} points/min")
            print(f"-j 2 / -j 1 throughput: {rates[2] / rates[1]:.2f}x")
    if not args.skip_emulation:
        sys.path.insert(0, str(ROOT))
        import torch

        from bench import bench_emulation as be

        if args.threads:
            torch.set_num_threads(args.threads)
        tokenizer = be.load_tokenizer(be.DIRECTORY)
        ids = be.tokenize(tokenizer, be.read_text(be.HELDOUT), max_tokens=8 * 128)
        batch = ids.reshape(8, 128)
        print(f"emulation overhead (torch {torch.__version__}, {torch.get_num_threads()} threads; "
              "targets 2x and 1.5x):")
        be.measure("embedded OPT (hidden 128)", be.load_model(be.DIRECTORY), tokenizer, batch, 15)
        be.measure("random OPT (hidden 1024)", be.wide_opt(), tokenizer, batch, 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
