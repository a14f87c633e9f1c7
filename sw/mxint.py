"""Bit-exact NumPy reference of the MXINT block format (DESIGN.md §2).

This module *is* the number-format contract: the RTL, the PyTorch path
(:mod:`sw.mxint_torch`) and the cost model answer to it bit for bit.

MXINT(width, block, exponent_bits), flavour ``"ocp"`` (default)::

    e   = clamp(floor(log2(max_i |x_i|)), -emax, emax)      emax = 2**(exponent_bits-1) - 1
    q_i = clamp(round(x_i * 2**((width-2) - e)), -(2**(width-1) - 1), 2**(width-1) - 1)
    x_i ~ q_i * 2**(e - (width-2))

An all-zero block gets ``e = -emax`` and zero mantissas. Blocks run along
``axis``; a short tail is padded with zeros, which never changes ``e``.

Flavour ``"lqer"`` reproduces the LQER authors' emulation: ``e = ceil(log2 max)``
(same clamp), sign-magnitude ``q_i = clamp(round(|x_i| * 2**((width-1) - e)), 0,
2**(width-1) - 1)``. Its grid step ``2**(e - (width-1))`` equals the "ocp" one
whenever the block maximum is not a power of two (and no clamp bites); at a
power-of-two maximum "lqer" saturates that element to ``2**(width-1) - 1``.

Exactness: every value is converted to an exact (integer, power-of-two) pair
first (``frexp``), and all exponent, shift and rounding work is integer
arithmetic, so no floating-point log2 or rounding error can enter. The only
departure from real arithmetic is the format itself: the error of an element
is at most half a grid step, ``2**(e - (width-2) - 1)``, unless it saturates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ROUNDINGS",
    "FLAVOURS",
    "MXQuantized",
    "quantize",
    "quantize_exact",
    "exponent_range",
    "check_format",
]

ROUNDINGS = ("even", "away")
FLAVOURS = ("ocp", "lqer")

# Largest integer magnitude the exact core accepts: int64 shifts stay in range
# and float64 converts it exactly (frexp gives its bit length).
_MAX_INT_BITS = 53


def exponent_range(exponent_bits: int) -> tuple[int, int]:
    """The (min, max) unbiased shared exponent; E8M0-style, 0xFF reserved."""
    emax = 2 ** (exponent_bits - 1) - 1
    return -emax, emax


def _bad(parameter: str, allowed: str, got) -> ValueError:
    return ValueError(f"{parameter} must be {allowed}; got {got!r}")


def check_format(*, width: int, block: int, exponent_bits: int,
                 rounding: str = "even", flavour: str = "ocp") -> None:
    """Validate MXINT format parameters; raise a one-line ValueError naming the bad one."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 2 <= width <= 16:
        raise _bad("width", "an integer in 2..16", width)
    if (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1
            or block & (block - 1)):
        raise _bad("block", "a power of two (1, 2, 4, ...)", block)
    if (isinstance(exponent_bits, bool) or not isinstance(exponent_bits, (int, np.integer))
            or not 2 <= exponent_bits <= 8):
        raise _bad("exponent_bits", "an integer in 2..8", exponent_bits)
    if rounding not in ROUNDINGS:
        raise _bad("rounding", 'one of "even", "away"', rounding)
    if flavour not in FLAVOURS:
        raise _bad("flavour", 'one of "ocp", "lqer"', flavour)


@dataclass(frozen=True)
class MXQuantized:
    """A tensor in MXINT form.

    ``mantissas`` has the input's shape (two's-complement integer values,
    padding dropped); ``exponents`` has the input's shape with ``axis``
    replaced by the number of blocks. Value of element i of block b:
    ``mantissas[i] * 2**(exponents[b] - frac_bits)``.
    """

    mantissas: np.ndarray
    exponents: np.ndarray
    width: int
    block: int
    axis: int
    exponent_bits: int
    flavour: str = "ocp"

    @property
    def frac_bits(self) -> int:
        """Fraction bits of a mantissa relative to the shared exponent."""
        return self.width - 2 if self.flavour == "ocp" else self.width - 1

    @property
    def lsb_exponents(self) -> np.ndarray:
        """Exponent of one mantissa unit per block: ``exponents - frac_bits``."""
        return self.exponents.astype(np.int64) - self.frac_bits

    def blocked_mantissas(self) -> np.ndarray:
        """Mantissas moved to the last axis and zero-padded to ``(..., n_blocks, block)``."""
        return _to_blocks(np.moveaxis(self.mantissas, self.axis, -1), self.block)

    def dequantize(self) -> np.ndarray:
        """Exact float64 values (every MXINT value with width <= 16 fits float64)."""
        m = np.moveaxis(self.mantissas, self.axis, -1)
        lsb = np.repeat(np.moveaxis(self.lsb_exponents, self.axis, -1), self.block, axis=-1)
        values = np.ldexp(m.astype(np.float64), lsb[..., : m.shape[-1]].astype(np.int32))
        return np.moveaxis(values, -1, self.axis)


def _normalise_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise _bad("axis", f"an integer in {-ndim}..{ndim - 1} for a {ndim}-d input", axis)
    return int(axis) % ndim


def _to_blocks(a: np.ndarray, block: int) -> np.ndarray:
    """(..., n) -> (..., ceil(n/block), block), zero-padded."""
    n = a.shape[-1]
    pad = -n % block
    if pad:
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (pad,), a.dtype)], axis=-1)
    return a.reshape(a.shape[:-1] + ((n + pad) // block, block))


def _check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} has a non-finite value ({x[index]}) at index {index}; "
                         "MXINT input must be finite")


def _bit_length(mag: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2**53 (0 for 0)."""
    return np.frexp(mag.astype(np.float64))[1].astype(np.int64)


def _shift_round(mag: np.ndarray, shift: np.ndarray, rounding: str) -> np.ndarray:
    """round(mag * 2**shift) for non-negative int64 ``mag`` < 2**53 and any int shift.

    Left shifts must be pre-capped by the caller (no overflow check here).
    """
    left = np.minimum(np.maximum(shift, 0), 62)  # zeros may carry any shift
    right = np.minimum(np.maximum(-shift, 0), 60)  # mag < 2**53: r >= 54 all give 0
    out = np.where(shift >= 0, mag << left, mag >> right)
    r = np.maximum(right, 1)
    rem = mag & ((np.int64(1) << r) - 1)
    half = np.int64(1) << (r - 1)
    if rounding == "even":
        up = (rem > half) | ((rem == half) & ((out & 1) == 1))
    else:  # ties away from zero, on the magnitude
        up = rem >= half
    return out + ((shift < 0) & up)


def _quantize_blocks(n: np.ndarray, lsb: np.ndarray, *, width: int, exponent_bits: int,
                     rounding: str, flavour: str) -> tuple[np.ndarray, np.ndarray]:
    """Core: exact values ``n * 2**lsb`` shaped (..., n_blocks, block) -> (mantissas, exponents)."""
    emin, emax = exponent_range(exponent_bits)
    qmax = 2 ** (width - 1) - 1
    mag = np.abs(n)
    bits = _bit_length(mag)
    nonzero = mag != 0
    # floor(log2 |v|) per element; -inf stand-in for zeros
    floor_exp = np.where(nonzero, bits - 1 + lsb, np.iinfo(np.int64).min // 4)
    block_floor = floor_exp.max(axis=-1)
    all_zero = ~nonzero.any(axis=-1)
    if flavour == "ocp":
        e = block_floor
        frac_bits = width - 2
    else:
        # ceil(log2 max) = floor + 1 unless the max is a power of two, i.e. unless
        # every element reaching the floor exponent is itself a power of two.
        is_pow2 = (mag & (mag - 1)) == 0
        top = floor_exp == block_floor[..., None]
        max_is_pow2 = np.all(~top | is_pow2, axis=-1)
        e = block_floor + np.where(max_is_pow2, 0, 1)
        frac_bits = width - 1
    e = np.where(all_zero, emin, np.clip(e, emin, emax))
    shift = lsb + frac_bits - e[..., None]
    # element >= 2**(width-1) after shifting: saturate without forming the (overflowing) product
    too_big = nonzero & (bits - 1 + shift >= width - 1)
    q = _shift_round(mag, np.where(too_big, 0, shift), rounding)
    q = np.where(too_big, qmax, np.minimum(q, qmax))
    q = np.where(n < 0, -q, q)
    return q, e


def _mantissa_dtype(width: int):
    return np.int8 if width <= 8 else np.int16


def quantize_exact(values, lsb_exponents=0, *, width: int, block: int, axis: int = -1,
                   exponent_bits: int = 8, rounding: str = "even", flavour: str = "ocp",
                   name: str = "values") -> MXQuantized:
    """MXINT of exact values ``values * 2**lsb_exponents`` (integers, |values| < 2**53).

    This is what a hardware quantizer does to a fixed-point vector
    (``lsb_exponents = -frac_bits``) or to accumulator outputs that each carry
    their own exponent (``lsb_exponents`` broadcast against ``values``).
    """
    check_format(width=width, block=block, exponent_bits=exponent_bits, rounding=rounding,
                 flavour=flavour)
    v = np.asarray(values)
    if v.ndim == 0:
        v = v.reshape(1)
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array; got dtype {v.dtype}")
    v = v.astype(np.int64)
    if v.size and np.abs(v).max() >= 2 ** _MAX_INT_BITS:
        raise ValueError(f"{name} must have magnitudes below 2**{_MAX_INT_BITS}")
    ax = _normalise_axis(axis, v.ndim)
    lsb = np.broadcast_to(np.asarray(lsb_exponents, dtype=np.int64), v.shape)
    return _quantize_moved(v, lsb, ax, width=width, block=block, exponent_bits=exponent_bits,
                           rounding=rounding, flavour=flavour)


def _quantize_moved(n, lsb, ax, *, width, block, exponent_bits, rounding, flavour) -> MXQuantized:
    n_moved = np.moveaxis(n, ax, -1)
    length = n_moved.shape[-1]
    nb = _to_blocks(n_moved, block)
    lb = _to_blocks(np.ascontiguousarray(np.moveaxis(lsb, ax, -1)), block)
    q, e = _quantize_blocks(nb, lb, width=width, exponent_bits=exponent_bits,
                            rounding=rounding, flavour=flavour)
    q = q.reshape(q.shape[:-2] + (-1,))[..., :length].astype(_mantissa_dtype(width))
    return MXQuantized(
        mantissas=np.moveaxis(q, -1, ax),
        exponents=np.moveaxis(e.astype(np.int16), -1, ax),
        width=int(width), block=int(block), axis=ax, exponent_bits=int(exponent_bits),
        flavour=flavour,
    )


def quantize(x, *, width: int = 8, block: int = 16, axis: int = -1, exponent_bits: int = 8,
             rounding: str = "even", flavour: str = "ocp", name: str = "x") -> MXQuantized:
    """Quantize a float array (float16/32/64, any rank) to MXINT along ``axis``.

    Raises ``ValueError`` naming ``name`` and the first bad index on NaN/inf.
    """
    check_format(width=width, block=block, exponent_bits=exponent_bits, rounding=rounding,
                 flavour=flavour)
    a = np.asarray(x)
    if a.ndim == 0:
        a = a.reshape(1)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a real float or integer array; got dtype {a.dtype}")
    ax = _normalise_axis(axis, a.ndim)
    a = a.astype(np.float64)  # exact for float16/32 and integers below 2**53
    _check_finite(a, name)
    frac, exp = np.frexp(a)
    n = np.ldexp(frac, _MAX_INT_BITS).astype(np.int64)  # exact: |frac| in [0.5, 1)
    lsb = exp.astype(np.int64) - _MAX_INT_BITS
    return _quantize_moved(n, lsb, ax, width=width, block=block, exponent_bits=exponent_bits,
                           rounding=rounding, flavour=flavour)


def grid_step(q: MXQuantized) -> np.ndarray:
    """Per-block value of one mantissa unit (float64)."""
    return np.ldexp(1.0, q.lsb_exponents.astype(np.int32))

