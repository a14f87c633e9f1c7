"""PyTorch twin of :mod:`sw.intq` (ResQ's integer formats), for the fast emulation.

Bit-identical to the NumPy reference on float64 input (each step is one IEEE operation,
rounded the same way: division, round half to even, clamp, subtraction, product); on
float32 input the same rule runs in float32. Rows are the last axis: a weight (d_out, n)
has one scale per output row, activations (..., n) one scale per token.
"""

from __future__ import annotations

import torch

from sw.intq import WEIGHT_SCALE_FLOOR

__all__ = ["fake_quantize_per_token_asymmetric", "fake_quantize_per_channel_symmetric"]


def fake_quantize_per_channel_symmetric(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Values of :func:`sw.intq.quantize_per_channel_symmetric` along the last axis."""
    qmax = 2 ** (bits - 1) - 1
    peak = w.abs().amax(dim=-1, keepdim=True).clamp_min(WEIGHT_SCALE_FLOOR)
    scale = peak / qmax
    return torch.clamp(torch.round(w / scale), -qmax - 1, qmax) * scale


def fake_quantize_per_token_asymmetric(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Values of :func:`sw.intq.quantize_per_token_asymmetric` along the last axis (any leading shape)."""
    qmax = 2 ** bits - 1
    if x.shape[-1] == 0:
        return x.clone()
    lo = x.amin(dim=-1, keepdim=True).clamp_max(0.0)
    hi = x.amax(dim=-1, keepdim=True).clamp_min(0.0)
    empty = (lo == 0) & (hi == 0)
    lo = torch.where(empty, torch.full_like(lo, -1.0), lo)
    hi = torch.where(empty, torch.full_like(hi, 1.0), hi)
    scale = (hi - lo) / qmax
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero, 0, qmax)
    return scale * (q - zero)
