"""Factor time and reconstruction error: randomized vs full SVD on a 4096 x 4096 layer.

The matrix is what L2QER factorises: ``S (W - Q4(W))^T`` for a random
weight with uneven column scales and a log-normal activation scale S.
Prints both times and their ratio, and the relative Frobenius error of the
rank-k reconstruction of each (the full SVD's is the optimum).

    .venv/bin/python bench/bench_svd.py [--size 4096] [--rank 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from sw.mxint_torch import fake_quantize  # noqa: E402
from sw.svd import truncated_svd  # noqa: E402


def target_matrix(size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(size, size, generator=g, dtype=torch.float64) * 0.02
    w *= torch.exp(0.5 * torch.randn(1, size, generator=g, dtype=torch.float64))
    err_t = (w - fake_quantize(w, width=4, block=16, dim=1).double()).T
    scale = torch.exp(torch.randn(size, generator=g, dtype=torch.float64))
    return scale[:, None] * err_t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--rank", type=int, default=32)
    args = p.parse_args(argv)
    m = target_matrix(args.size)
    norm = torch.linalg.norm(m)
    results = {}
    for method in ("randomized", "full"):
        t0 = time.perf_counter()
        u, s, vh = truncated_svd(m, args.rank, method=method, seed=0)
        seconds = time.perf_counter() - t0
        error = float(torch.linalg.norm(m - (u * s) @ vh) / norm)
        results[method] = (seconds, error)
        print(f"{method:>10}: {seconds:8.2f} s   relative error of the rank-{args.rank} fit {error:.6f}")
    (tf, ef), (tr, er) = results["full"], results["randomized"]
    print(f"{args.size}x{args.size}, rank {args.rank}, float64, {torch.get_num_threads()} threads: "
          f"randomized is {tf / tr:.1f}x faster; its error is {er / ef:.4f}x the optimum "
          f"(captured energy {1 - er**2:.5f} vs {1 - ef**2:.5f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
