"""NumPy reference of ResQ's integer formats: per-channel symmetric weights, per-token asymmetric
activations (Saxena et al. 2024, "ResQ", arXiv 2412.14363, Section 5 set-up).

These are the formats the ResQ authors' code quantizes with (github.com/utkarsh-dmx/project-resq,
``fake_quant/utils/quant_utils.py``: ``WeightQuantizer`` and ``ActQuantizer``), restated here
as one rule each, in float64 with round half to even:

Per-channel symmetric (weights, one scale per output row)::

    s   = max(max_j |w_j|, 1e-5) / (2**(b-1) - 1)
    q_j = clamp(round(w_j / s), -2**(b-1), 2**(b-1) - 1)        w_j ~ s * q_j

Per-token asymmetric (activations, one scale and zero point per token and subspace)::

    lo  = min(min_j x_j, 0),  hi = max(max_j x_j, 0)            (lo, hi) = (-1, 1) if both are 0
    s   = (hi - lo) / (2**b - 1),  z = round(-lo / s)
    q_j = clamp(round(x_j / s) + z, 0, 2**b - 1)                x_j ~ s * (q_j - z)

What is left out of the authors' recipe: their weight clipping search (``--w_clip``, a grid of
shrunk ranges minimising an L2.4 error) and activation clip ratios (their scripts use 1.0);
their arithmetic runs in the model's dtype (bfloat16 / float16), this reference in float64.
These formats have no hardware datapath here: ResQ with them is emulated in floating point
only (``sw.intq_torch``, bit-identical to this module on float64 input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BITS_RANGE", "WEIGHT_SCALE_FLOOR", "IntQuantized", "quantize_per_channel_symmetric",
           "quantize_per_token_asymmetric"]

BITS_RANGE = (2, 16)
WEIGHT_SCALE_FLOOR = 1e-5  # the authors' clamp on a row's largest magnitude


@dataclass(frozen=True)
class IntQuantized:
    """A 2-d tensor in integer form, one scale (and zero point) per row.

    ``codes`` (rows, n) int64; ``scales`` (rows,) float64; ``zeros`` (rows,) float64 integer
    values for the asymmetric form, ``None`` for the symmetric one; ``bits`` the code width.
    Value of element j of row i: ``scales[i] * (codes[i, j] - zeros[i])`` (``zeros`` 0 when
    symmetric).
    """

    codes: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray | None
    bits: int

    @property
    def symmetric(self) -> bool:
        return self.zeros is None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    def dequantize(self) -> np.ndarray:
        """float64 values (one rounding per element: the product ``s * (q - z)``)."""
        q = self.codes.astype(np.float64)
        if self.zeros is not None:
            q = q - self.zeros[:, None]
        return self.scales[:, None] * q


def _check(x, bits: int, name: str) -> np.ndarray:
    lo, hi = BITS_RANGE
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"bits must be an integer in {lo}..{hi}; got {bits!r}")
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-d (rows, n); got {a.ndim}-d")
    bad = ~np.isfinite(a)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite; got {a[index]} at index {index}")
    return a


def quantize_per_channel_symmetric(w, bits: int, *, name: str = "w") -> IntQuantized:
    """Symmetric ``bits``-bit codes of ``w`` (rows, n), one scale per row (module docstring).

    Raises ``ValueError`` for ``bits`` outside 2..16, a non-2-d or non-finite ``w``.
    """
    a = _check(w, bits, name)
    qmax = 2 ** (bits - 1) - 1
    peak = np.maximum(np.max(np.abs(a), axis=1, initial=0.0), WEIGHT_SCALE_FLOOR)
    scales = peak / qmax
    codes = np.clip(np.round(a / scales[:, None]), -qmax - 1, qmax).astype(np.int64)
    return IntQuantized(codes=codes, scales=scales, zeros=None, bits=int(bits))


def quantize_per_token_asymmetric(x, bits: int, *, name: str = "x") -> IntQuantized:
    """Asymmetric ``bits``-bit codes of ``x`` (tokens, n), one scale and zero point per token.

    Raises ``ValueError`` for ``bits`` outside 2..16, a non-2-d or non-finite ``x``.
    """
    a = _check(x, bits, name)
    qmax = 2 ** bits - 1
    lo = np.minimum(np.min(a, axis=1, initial=0.0), 0.0)
    hi = np.maximum(np.max(a, axis=1, initial=0.0), 0.0)
    empty = (lo == 0) & (hi == 0)
    lo = np.where(empty, -1.0, lo)
    hi = np.where(empty, 1.0, hi)
    scales = (hi - lo) / qmax
    zeros = np.round(-lo / scales)
    codes = np.clip(np.round(a / scales[:, None]) + zeros[:, None], 0, qmax).astype(np.int64)
    return IntQuantized(codes=codes, scales=scales, zeros=zeros, bits=int(bits))
