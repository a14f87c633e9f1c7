"""Bit-exact NumPy reference of the FP16 linear layer (the FP16 baseline datapath).

This module is the contract of :mod:`hw.fp16_linear` (``fp16-linear``) and of the
float16 outlier path of :mod:`hw.llm_int8_linear`: the RTL answers to it bit for bit.
The LQER paper (Zhang et al., ICML 2024) normalises every area to an FP16 datapath; this
is that datapath's arithmetic.

Shapes: activations ``X (tokens, d_in)``, weights ``W (d_out, d_in)``, both binary16;
output ``Y (tokens, d_out)`` binary32. Per output (IEEE 754-2019, round to nearest
even, subnormals kept; :mod:`sw.ieee` states the unit rules)::

    acc = +0.0
    for j = 0, 1, ..., d_in - 1:           (increasing column order)
        acc = fl32(acc + X[t, j] * W[i, j])

The binary16 x binary16 product is exact in binary32 (``sw.ieee.fp16_mul_fp32``), so
only the additions round (``sw.ieee.fp32_add``). This is the order of the LLM.int8()
outlier path (``sw.llm_int8``, step 7) over every column: with ``threshold = 0`` and
``outlier_weights = "fp16"`` :func:`sw.llm_int8.linear` is this layer.
Infinities and NaNs follow IEEE (a NaN result is the canonical NaN ``0x7FC00000`` in
the bit-pattern form, :func:`sw.ieee.canonical`); a finite binary16 layer never
overflows binary32 (``|acc| <= 65504**2 d_in < 2**128``).
"""

from __future__ import annotations

import numpy as np

from sw import ieee
from sw.ieee import BINARY16, BINARY32

__all__ = ["fp16_linear", "fp16_linear_bits", "accumulate_columns"]


def accumulate_columns(x16: np.ndarray, w16: np.ndarray, columns=None,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """The sequential binary32 sum of exact binary16 products, float32 ``(tokens, d_out)``.

    ``x16`` float16 ``(tokens, d_in)``, ``w16`` float16 ``(d_out, d_in)``; ``columns``:
    the columns summed, in the order given (default every column, increasing);
    ``mask`` (bool ``(tokens, d_in)``, optional): a column adds to a token's sums only
    where its entry is True. Starts from ``+0.0``.
    """
    x32 = np.asarray(x16).astype(np.float32)
    w32 = np.asarray(w16).astype(np.float32)
    acc = np.zeros((x32.shape[0], w32.shape[0]), np.float32)
    cols = range(x32.shape[1]) if columns is None else columns
    with np.errstate(all="ignore"):
        for j in cols:
            term = x32[:, j, None] * w32[None, :, j]        # exact
            new = (acc + term).astype(np.float32)
            acc = new if mask is None else np.where(mask[:, j, None], new, acc)
    return acc


def _as_binary16(a, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.float16:
        raise ValueError(f"{what} must be a float16 array; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array; got shape {arr.shape}")
    return arr


def fp16_linear(x16, w16) -> np.ndarray:
    """``Y = X W^T`` by the rule of the module doc: float32 ``(tokens, d_out)``.

    ``x16``: float16 ``(tokens, d_in)``; ``w16``: float16 ``(d_out, d_in)``.
    ``ValueError`` for another dtype, a non-2-d array or mismatched ``d_in``.
    """
    ieee.check_host_arithmetic()
    x16, w16 = _as_binary16(x16, "x16"), _as_binary16(w16, "w16")
    if x16.shape[1] != w16.shape[1]:
        raise ValueError(f"x16 must have {w16.shape[1]} columns (w16's d_in); got shape "
                         f"{x16.shape}")
    return accumulate_columns(x16, w16)


def fp16_linear_bits(x_bits, w_bits) -> np.ndarray:
    """:func:`fp16_linear` on bit patterns: binary16 ``x_bits`` ``(tokens, d_in)`` and
    ``w_bits`` ``(d_out, d_in)`` -> binary32 patterns (int64) ``(tokens, d_out)``, every
    NaN the canonical one."""
    x = ieee.values_of(x_bits, BINARY16, "x_bits")
    w = ieee.values_of(w_bits, BINARY16, "w_bits")
    return ieee.canonical(ieee.bits_of(fp16_linear(x, w), BINARY32), BINARY32)
