"""Bit-level IEEE-754 reference of the floating-point units (binary16 and binary32).

This module is the contract of the hardware floating-point units in :mod:`hw.fp`:
each unit's output bit pattern must equal the function here of the same name, bit
for bit, except that every NaN is one canonical quiet NaN (below). Values travel
as their bit patterns (integer arrays), never as floats, so signed zeros,
subnormals and NaN payloads are explicit.

The rules are IEEE 754-2019 operations in round-to-nearest-even (§4.3.1) with
subnormals kept (no flush to zero, no denormals-are-zero), computed with NumPy's
``float16`` / ``float32`` arithmetic (the host's IEEE hardware; NumPy never sets
flush-to-zero itself). :func:`check_host_arithmetic` refuses a process where
something else did (e.g. ``torch.set_flush_denormal(True)``).

Unit                      rule
------------------------  ----------------------------------------------------------
``fp16_mul_fp32(a, b)``   ``float32(a) * float32(b)``: exact (11 x 11 significand bits
                          fit the 24 of binary32; the exponent range does too, so a
                          product of binary16 subnormals is a binary32 normal)
``fp32_add(a, b)``        ``a + b`` in binary32 (``x + (-x) = +0``; ``-0 + -0 = -0``)
``fp32_mul(a, b)``        ``a * b`` in binary32
``int32_to_fp32(x)``      ``float32(x)`` (convertFromInt, §5.4.1)
``fp32_to_fp16(a)``       ``float16(a)`` (convertFormat, §5.4.2; overflow gives
                          infinity, as round-to-nearest requires, §7.4)

NaN (§6.2): a NaN operand gives NaN, and so do ``inf - inf``, ``0 * inf`` and
``inf * 0``. The result is always the *canonical NaN* of its format,
:data:`BINARY32.canonical_nan` = ``0x7FC00000`` and :data:`BINARY16.canonical_nan`
= ``0x7E00`` (positive, quiet bit set, zero payload; RISC-V's canonical NaN). IEEE
754 leaves the NaN payload to the implementation (§6.2.3), so comparing against
these functions treats every NaN pattern as equal to the canonical one;
:func:`canonical` applies that rule to any array of bit patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IEEEFormat", "BINARY16", "BINARY32", "bits_of", "values_of", "is_nan", "canonical",
           "check_host_arithmetic", "fp16_mul_fp32", "fp32_add", "fp32_mul", "int32_to_fp32",
           "fp32_to_fp16", "INT32_RANGE"]

INT32_RANGE = (-2 ** 31, 2 ** 31 - 1)


@dataclass(frozen=True)
class IEEEFormat:
    """An IEEE 754 binary interchange format (§3.6): ``exponent_bits`` / ``fraction_bits``."""

    name: str
    exponent_bits: int
    fraction_bits: int
    dtype: type

    @property
    def width(self) -> int:
        return 1 + self.exponent_bits + self.fraction_bits

    @property
    def precision(self) -> int:
        """Significand bits including the hidden one (p in §3.6)."""
        return self.fraction_bits + 1

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def exponent_all_ones(self) -> int:
        """Biased exponent field of infinities and NaNs."""
        return 2 ** self.exponent_bits - 1

    @property
    def sign_bit(self) -> int:
        return 1 << (self.width - 1)

    @property
    def infinity(self) -> int:
        """Bit pattern of +infinity."""
        return self.exponent_all_ones << self.fraction_bits

    @property
    def canonical_nan(self) -> int:
        """The one NaN the hardware emits: positive, quiet bit set, payload zero."""
        return self.infinity | (1 << (self.fraction_bits - 1))

    @property
    def max_finite(self) -> int:
        """Bit pattern of the largest finite value."""
        return self.infinity - 1

    @property
    def uint(self) -> type:
        return {16: np.uint16, 32: np.uint32}[self.width]


BINARY16 = IEEEFormat("binary16", 5, 10, np.float16)
BINARY32 = IEEEFormat("binary32", 8, 23, np.float32)


def _bits_array(bits, fmt: IEEEFormat, name: str) -> np.ndarray:
    a = np.asarray(bits)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of {fmt.name} bit patterns; "
                        f"got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= 2 ** fmt.width):
        raise ValueError(f"{name} must be {fmt.name} bit patterns in 0..{2 ** fmt.width - 1}")
    return a.astype(fmt.uint)


def values_of(bits, fmt: IEEEFormat, name: str = "bits") -> np.ndarray:
    """Bit patterns (integers in ``0..2**width-1``) -> ``float16`` / ``float32`` values."""
    return _bits_array(bits, fmt, name).view(fmt.dtype)


def bits_of(values, fmt: IEEEFormat) -> np.ndarray:
    """``float16`` / ``float32`` values (any float input is first cast, RNE) -> int64 bits."""
    return np.asarray(values).astype(fmt.dtype).view(fmt.uint).astype(np.int64)


def is_nan(bits, fmt: IEEEFormat) -> np.ndarray:
    """Whether each bit pattern is a NaN (exponent all ones, fraction non-zero)."""
    b = np.asarray(bits).astype(np.int64)
    return (b & (fmt.sign_bit - 1)) > fmt.infinity


def canonical(bits, fmt: IEEEFormat) -> np.ndarray:
    """int64 bit patterns with every NaN replaced by ``fmt.canonical_nan``."""
    b = np.asarray(bits).astype(np.int64)
    return np.where(is_nan(b, fmt), np.int64(fmt.canonical_nan), b)


def check_host_arithmetic() -> None:
    """Raise ``RuntimeError`` if this thread's floating point flushes subnormals.

    The smallest binary32 subnormal times one must stay itself, and a product that
    underflows into the subnormal range must not flush to zero.
    """
    tiny = np.array([1], np.uint32).view(np.float32)
    half_min_normal = np.float32(2.0 ** -127)
    if not (tiny * np.float32(1) == tiny)[0] or half_min_normal * np.float32(0.5) == 0:
        raise RuntimeError("host floating point flushes subnormals (FTZ/DAZ is on); the IEEE "
                           "reference needs them kept (e.g. torch.set_flush_denormal(False))")


def _binary(a, b, fmt: IEEEFormat, op, out: IEEEFormat) -> np.ndarray:
    check_host_arithmetic()
    x, y = values_of(a, fmt, "a"), values_of(b, fmt, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape; got {x.shape} and {y.shape}")
    with np.errstate(all="ignore"):
        return canonical(bits_of(op(x.astype(out.dtype), y.astype(out.dtype)), out), out)


def fp16_mul_fp32(a, b) -> np.ndarray:
    """binary16 ``a`` times binary16 ``b`` as an exact binary32 (bit patterns, int64)."""
    return _binary(a, b, BINARY16, np.multiply, BINARY32)


def fp32_add(a, b) -> np.ndarray:
    """binary32 ``a + b``, round to nearest even (bit patterns, int64)."""
    return _binary(a, b, BINARY32, np.add, BINARY32)


def fp32_mul(a, b) -> np.ndarray:
    """binary32 ``a * b``, round to nearest even (bit patterns, int64)."""
    return _binary(a, b, BINARY32, np.multiply, BINARY32)


def int32_to_fp32(x) -> np.ndarray:
    """Two's-complement int32 values -> binary32 bit patterns (int64), round to nearest even.

    Raises ``TypeError`` for a non-integer array, ``ValueError`` outside the int32 range.
    """
    check_host_arithmetic()
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"x must be an integer array; got dtype {a.dtype}")
    if a.size and (a.min() < INT32_RANGE[0] or a.max() > INT32_RANGE[1]):
        raise ValueError(f"x must be in {INT32_RANGE[0]}..{INT32_RANGE[1]}")
    return bits_of(a.astype(np.int32).astype(np.float32), BINARY32)


def fp32_to_fp16(a) -> np.ndarray:
    """binary32 bit patterns -> binary16 bit patterns (int64), round to nearest even."""
    check_host_arithmetic()
    with np.errstate(all="ignore"):
        return canonical(bits_of(values_of(a, BINARY32, "a").astype(np.float16), BINARY16),
                         BINARY16)
