"""MXINT quantization throughput on a 4096 x 4096 tensor, measured in one run.

Reports elements/s of the NumPy reference and of the PyTorch path, and the
PyTorch path's time as a ratio to a plain ``torch.round`` fake quantization of
the same tensor (per-block absmax scale, no shared exponent). Goal: <= 2x.

    python bench/bench_quantize.py [--size 4096] [--repeats 5] [--width 8] [--block 16]
"""

from __future__ import annotations

import argparse
import time

import torch

from sw.mxint import quantize
from sw.mxint_torch import fake_quantize


def plain_round_fake_quant(x: torch.Tensor, width: int, block: int) -> torch.Tensor:
    """The baseline: absmax scale per block, round, rescale, all in float32."""
    xb = x.reshape(-1, block)
    qmax = 2 ** (width - 1) - 1
    scale = xb.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30) / qmax
    return (torch.round(xb / scale) * scale).reshape(x.shape)


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--block", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.size, args.size)
    x_np = x.numpy()
    n = x.numel()
    kw = dict(width=args.width, block=args.block)

    t_base = best_of(lambda: plain_round_fake_quant(x, **kw), args.repeats)
    t_torch = best_of(lambda: fake_quantize(x, **kw), args.repeats)
    t_numpy = best_of(lambda: quantize(x_np, **kw).dequantize(), max(1, args.repeats // 2))

    print(f"MXINT{args.width}, block {args.block}, {args.size}x{args.size} float32, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'path':<34}{'seconds':>10}{'Melem/s':>10}{'ratio':>8}")
    for name, t in [("plain torch.round fake-quant", t_base),
                    ("sw.mxint_torch.fake_quantize", t_torch),
                    ("sw.mxint.quantize + dequantize", t_numpy)]:
        print(f"{name:<34}{t:>10.4f}{n / t / 1e6:>10.1f}{t / t_base:>8.2f}")
    print(f"PyTorch path / plain round: {t_torch / t_base:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
