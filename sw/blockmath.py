"""Exact MXINT block arithmetic and the cross-block accumulator rule (docs/design.md, Number formats).

Block dot product
    Two blocks (qx, ex) and (qw, ew) give the exact integer ``s = sum_i qx_i * qw_i``
    worth ``s * 2**(lsb_x + lsb_w)`` (``lsb = e - frac_bits``). It needs
    ``dot_sum_width(block, a_width, w_width)`` signed bits.

Cross-block accumulator ("running-max alignment")
    A dot product over ``n`` blocks arrives as partials ``(s_j, p_j)`` (value
    ``s_j * 2**p_j``), in block order. The register holds ``(A, E)`` worth
    ``A * 2**(E - G)`` with ``G = guard_bits``::

        first partial:  A = s_0 << G,                  E = p_0
        next partial:   E' = max(E, p)
                        A' = rshift(A, E' - E) + rshift(s << G, E' - p)

    ``rshift(v, r)`` shifts right by ``r`` with ``rounding``: ``"floor"``
    (arithmetic shift, no logic) or ``"even"`` (round half to even). One of the
    two shifts is always zero, so hardware needs one shifter behind a swap.

    Width: ``accumulator_width(sum_width, guard_bits, n)`` bits never overflow,
    since every aligned term is at most ``2**(sum_width-1+G)`` in magnitude.

    Error bound: each step rounds once by less than ``2**(E_final - G)``
    ("floor") or at most half of that ("even"); after ``n`` partials the total
    error is below ``(n - 1) * 2**(E_final - G)`` (half that for "even").
    The result is exact whenever every non-zero partial has
    ``p_j >= E_final - G``, i.e. when the partial exponents span at most ``G``.
    ``guard_bits=None`` selects the exact mode: the sum is formed at the
    smallest non-zero partial exponent with no rounding at all (Python
    integers when it needs more than 63 bits).

Requantization of the result back to MXINT is :func:`sw.mxint.quantize_exact`
on ``(A, E - G)``, the same rule as for any other value.
"""

from __future__ import annotations

import math

import numpy as np

from sw.mxint import MXQuantized

__all__ = [
    "ACC_ROUNDINGS",
    "dot_sum_width",
    "accumulator_width",
    "block_dot",
    "rshift_round",
    "accumulate",
    "accumulate_exact",
]

ACC_ROUNDINGS = ("floor", "even")


def dot_sum_width(block: int, a_width: int, w_width: int) -> int:
    """Signed bits of an exact block dot-product sum: ``a_width + w_width - 1 + log2(block)``.

    Mantissas are symmetric (the most negative code is unused), so the sum
    of ``block`` products fits in this many bits with no overflow.
    """
    return a_width + w_width - 1 + math.ceil(math.log2(block))


def accumulator_width(sum_width: int, guard_bits: int, n_partials: int) -> int:
    """Signed register width for which :func:`accumulate` can never overflow."""
    return sum_width + guard_bits + math.ceil(math.log2(max(n_partials, 1)))


def _check_pair(qx: MXQuantized, qw: MXQuantized) -> None:
    if qx.block != qw.block:
        raise ValueError(f"block must match between operands; got {qx.block} and {qw.block}")
    if qx.mantissas.shape[qx.axis] != qw.mantissas.shape[qw.axis]:
        raise ValueError("reduction length must match between operands; got "
                         f"{qx.mantissas.shape[qx.axis]} and {qw.mantissas.shape[qw.axis]}")


def block_dot(qx: MXQuantized, qw: MXQuantized) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-block dot products of two equally shaped MXINT tensors.

    Returns ``(sums, lsb_exponents)``, both shaped like the operands' block
    exponents moved to the last axis: ``(..., n_blocks)``; the block's value is
    ``sums * 2**lsb_exponents``.
    """
    _check_pair(qx, qw)
    mx = qx.blocked_mantissas().astype(np.int64)
    mw = qw.blocked_mantissas().astype(np.int64)
    sums = np.einsum("...i,...i->...", mx, mw)
    lsb = (np.moveaxis(qx.lsb_exponents, qx.axis, -1)
           + np.moveaxis(qw.lsb_exponents, qw.axis, -1))
    return sums, lsb


def block_matmul_partials(qx: MXQuantized, qw: MXQuantized) -> tuple[np.ndarray, np.ndarray]:
    """Block partials of ``x @ w.T`` for x (T, n) and w (O, n), both blocked along n.

    Returns ``(sums, lsb_exponents)`` shaped (T, O, n_blocks).
    """
    _check_pair(qx, qw)
    if qx.mantissas.ndim != 2 or qw.mantissas.ndim != 2 or qx.axis != 1 or qw.axis != 1:
        raise ValueError("operands must be 2-d and blocked along their last axis")
    mx = qx.blocked_mantissas().astype(np.int64)  # (T, nb, B)
    mw = qw.blocked_mantissas().astype(np.int64)  # (O, nb, B)
    sums = np.einsum("tbi,obi->tob", mx, mw)
    lsb = qx.lsb_exponents[:, None, :] + qw.lsb_exponents[None, :, :]
    return sums, lsb


def rshift_round(v: np.ndarray, r: np.ndarray, rounding: str) -> np.ndarray:
    """``v * 2**-r`` rounded to an integer (``r >= 0``), as the accumulator's shifter does."""
    v = np.asarray(v, dtype=np.int64)
    r = np.minimum(np.asarray(r, dtype=np.int64), 62)
    floor = v >> r
    if rounding == "floor":
        return floor
    rs = np.maximum(r, 1)
    rem = v - (floor << r)  # in [0, 2**r)
    half = np.int64(1) << (rs - 1)
    up = (r > 0) & ((rem > half) | ((rem == half) & ((floor & 1) == 1)))
    return floor + up


def _check_acc_args(sums, exponents, guard_bits, rounding):
    if rounding not in ACC_ROUNDINGS:
        raise ValueError(f'rounding must be one of "floor", "even"; got {rounding!r}')
    if guard_bits is not None and (isinstance(guard_bits, bool) or not isinstance(guard_bits, int)
                                   or not 0 <= guard_bits <= 32):
        raise ValueError(f"guard_bits must be an integer in 0..32 or None (exact); got {guard_bits!r}")
    s = np.asarray(sums, dtype=np.int64)
    p = np.asarray(exponents, dtype=np.int64)
    if s.shape != p.shape or s.ndim == 0 or s.shape[-1] == 0:
        raise ValueError("sums and exponents must have one equal shape (..., n_partials), n >= 1; "
                         f"got {s.shape} and {p.shape}")
    return s, p


def accumulate(sums, exponents, *, guard_bits: int | None = 8,
               rounding: str = "even") -> tuple[np.ndarray, np.ndarray]:
    """Accumulate partials ``sums * 2**exponents`` along the last axis, in order.

    Returns ``(A, lsb)`` with value ``A * 2**lsb``: for the hardware rule,
    ``lsb = E - guard_bits``; with ``guard_bits=None``, the exact sum.
    """
    s, p = _check_acc_args(sums, exponents, guard_bits, rounding)
    if guard_bits is None:
        return accumulate_exact(s, p)
    acc = s[..., 0] << guard_bits
    e = p[..., 0]
    for j in range(1, s.shape[-1]):
        e_new = np.maximum(e, p[..., j])
        acc = (rshift_round(acc, e_new - e, rounding)
               + rshift_round(s[..., j] << guard_bits, e_new - p[..., j], rounding))
        e = e_new
    return acc, e - guard_bits


def accumulate_exact(sums, exponents) -> tuple[np.ndarray, np.ndarray]:
    """The exact sum ``sum_j sums_j * 2**exponents_j`` as ``(A, lsb)``.

    ``lsb`` is the smallest exponent among non-zero partials (0 when all are
    zero). ``A`` is int64 when the aligned sum fits in 63 bits, otherwise an
    object array of Python integers (exact, slower).
    """
    s = np.asarray(sums, dtype=np.int64)
    p = np.asarray(exponents, dtype=np.int64)
    nonzero = s != 0
    lsb = np.where(nonzero, p, np.iinfo(np.int64).max).min(axis=-1)
    lsb = np.where(nonzero.any(axis=-1), lsb, 0)
    shift = np.where(nonzero, p - lsb[..., None], 0)
    bits = np.frexp(np.abs(s).astype(np.float64))[1] + shift
    if bits.size == 0 or bits.max() + math.ceil(math.log2(s.shape[-1])) <= 62:
        return (s << shift).sum(axis=-1), lsb
    return (s.astype(object) << shift.astype(object)).sum(axis=-1), lsb
