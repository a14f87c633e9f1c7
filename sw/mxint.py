"""Bit-exact NumPy reference of the MXINT block format (docs/design.md, Number formats).

This module *is* the number-format contract: the RTL, the PyTorch path
(:mod:`sw.mxint_torch`) and the cost model answer to it bit for bit.

MXINT(width, block, exponent_bits), flavour ``"ocp"`` (default)::

    e   = clamp(floor(log2(max_i |x_i|)), -emax, emax)      emax = 2**(exponent_bits-1) - 1
    q_i = clamp(round(x_i * 2**((width-2) - e)), -(2**(width-1) - 1), 2**(width-1) - 1)
    x_i ~ q_i * 2**(e - (width-2))

An all-zero block gets ``e = -emax`` and zero mantissas. Blocks run along
``axis``; a short tail is padded with zeros, which never changes ``e``.

Flavour ``"lqer"`` reproduces the LQER authors' block quantizer (``block_fp`` in
github.com/ChengZhang-98/lqer, ``src/lqer/quantize/quantizers/block_fp.py``):
``e = ceil(log2 max)`` (same clamp), sign-magnitude
``q_i = clamp(round(r_i * 2**((width-1) - e)), 0, 2**(width-1) - 1)`` where
``r_i = fl(|x_i| + 1e-9)`` is the magnitude plus the authors' 1e-9, added in the
dtype the values are held in as PyTorch adds a scalar to a tensor
(:func:`lqer_nudged`), and ``r_i = 0`` for ``x_i = 0``. The 1e-9 turns a tie
into a round-up wherever it survives that addition (float32: ``|x| < 2**-5``;
float64: nearly always; float16: never). Its grid step ``2**(e - (width-1))``
equals the "ocp" one whenever the block maximum is not a power of two (and no
clamp bites); at a power-of-two maximum "lqer" saturates that element to
``2**(width-1) - 1``. Where the authors' code departs from any MXINT format
(elements ``|x| <= 1e-8`` pass through unquantized; ``log2`` in floating
point) is stated, with its measured frequency, in ``docs/sw.md``.

Exactness: every value is converted to an exact (integer, power-of-two) pair
first (``frexp``), and all exponent, shift and rounding work is integer
arithmetic, so no floating-point log2 or rounding error can enter. The only
departure from real arithmetic is the format itself: the error of an element
is at most half a grid step, ``2**(e - (width-2) - 1)``, unless it saturates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ROUNDINGS",
    "FLAVOURS",
    "WIDTH_RANGE",
    "MAX_BLOCK",
    "EXPONENT_BITS_RANGE",
    "MXIntFormat",
    "MXQuantized",
    "quantize",
    "quantize_exact",
    "exponent_range",
    "as_format",
    "lqer_nudged",
    "LQER_NUDGE",
    "SOURCE_DTYPES",
]

ROUNDINGS = ("even", "away")
FLAVOURS = ("ocp", "lqer")

# The one rule for the format's parameters, read by every other place that takes them
# (the hardware registry, QuantConfig, the CLIs): change a bound here and it moves everywhere.
WIDTH_RANGE = (2, 16)          # element bits, sign included
MAX_BLOCK = 256                # elements per block: a power of two in 1..MAX_BLOCK
EXPONENT_BITS_RANGE = (2, 8)   # shared-exponent bits (8: E8M0 of OCP MX v1.0)

# Flavour "lqer": the LQER authors add this to |x| before rounding, in the values' dtype.
LQER_NUDGE = 1e-9
SOURCE_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Largest integer magnitude the exact core accepts: int64 shifts stay in range
# and float64 converts it exactly (frexp gives its bit length).
_MAX_INT_BITS = 53


def exponent_range(exponent_bits: int) -> tuple[int, int]:
    """The (min, max) unbiased shared exponent; E8M0-style, 0xFF reserved."""
    emax = 2 ** (exponent_bits - 1) - 1
    return -emax, emax


def _bad(parameter: str, allowed: str, got) -> ValueError:
    return ValueError(f"{parameter} must be {allowed}; got {got!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class MXIntFormat:
    """MXINT(width, block, exponent_bits) with its rounding and flavour: one format, validated once.

    ``width``: bits of an element, sign included (``WIDTH_RANGE``); ``block``: elements
    sharing one exponent, a power of two up to ``MAX_BLOCK``; ``exponent_bits``: bits of
    the shared exponent (``EXPONENT_BITS_RANGE``); ``rounding``: ``"even"`` (round half
    to even) or ``"away"`` (ties away from zero, microxcaling's default); ``flavour``:
    ``"ocp"`` (OCP MX v1.0 semantics generalised, the hardware's) or ``"lqer"`` (the LQER
    authors' emulation). Rules: docs/design.md, "Number formats".

    Raises ``ValueError`` naming the first bad parameter and its allowed values.
    """

    width: int = 8
    block: int = 16
    exponent_bits: int = 8
    rounding: str = "even"
    flavour: str = "ocp"

    def __post_init__(self):
        lo, hi = WIDTH_RANGE
        if not _is_int(self.width) or not lo <= self.width <= hi:
            raise _bad("width", f"an integer in {lo}..{hi}", self.width)
        if (not _is_int(self.block) or not 1 <= self.block <= MAX_BLOCK
                or self.block & (self.block - 1)):
            raise _bad("block", f"a power of two in 1..{MAX_BLOCK}", self.block)
        lo, hi = EXPONENT_BITS_RANGE
        if not _is_int(self.exponent_bits) or not lo <= self.exponent_bits <= hi:
            raise _bad("exponent_bits", f"an integer in {lo}..{hi}", self.exponent_bits)
        if self.rounding not in ROUNDINGS:
            raise _bad("rounding", 'one of "even", "away"', self.rounding)
        if self.flavour not in FLAVOURS:
            raise _bad("flavour", 'one of "ocp", "lqer"', self.flavour)
        for name in ("width", "block", "exponent_bits"):  # plain ints (hashing, JSON)
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def frac_bits(self) -> int:
        """Fraction bits of an element relative to the shared exponent: an element is worth
        ``mantissa * 2**(exponent - frac_bits)`` (``width - 2`` for "ocp", ``width - 1``
        for the sign-magnitude "lqer" flavour)."""
        return self.width - 2 if self.flavour == "ocp" else self.width - 1

    @property
    def exponent_range(self) -> tuple[int, int]:
        """(min, max) unbiased shared exponent, ``±(2**(exponent_bits-1) - 1)``."""
        return exponent_range(self.exponent_bits)

    @property
    def mantissa_max(self) -> int:
        """Largest element magnitude, ``2**(width-1) - 1``; the most negative code is unused."""
        return 2 ** (self.width - 1) - 1

    @property
    def lsb_range(self) -> tuple[int, int]:
        """Range of the exponent of one element unit, ``exponent - frac_bits``."""
        lo, hi = self.exponent_range
        return lo - self.frac_bits, hi - self.frac_bits

    def replace(self, **changes) -> "MXIntFormat":
        """A copy with ``changes`` applied (validated like any new format)."""
        return dataclasses.replace(self, **changes)


def as_format(fmt: MXIntFormat | None, fields: dict) -> MXIntFormat:
    """``fmt``, or a format built from keyword ``fields`` (not both): the two ways the
    reference functions take a format. ``TypeError`` for both or a non-format ``fmt``."""
    if fmt is None:
        return MXIntFormat(**fields)
    if not isinstance(fmt, MXIntFormat):
        raise TypeError(f"fmt must be an MXIntFormat; got {fmt!r}")
    if fields:
        raise TypeError(f"give either fmt or format keywords, not both; got {sorted(fields)}")
    return fmt


@dataclass(frozen=True)
class MXQuantized:
    """A tensor in MXINT form.

    ``mantissas`` has the input's shape (two's-complement integer values,
    padding dropped); ``exponents`` has the input's shape with ``axis``
    replaced by the number of blocks. Value of element i of block b:
    ``mantissas[i] * 2**(exponents[b] - format.frac_bits)``.
    """

    mantissas: np.ndarray
    exponents: np.ndarray
    format: MXIntFormat
    axis: int

    @property
    def width(self) -> int:
        return self.format.width

    @property
    def block(self) -> int:
        return self.format.block

    @property
    def exponent_bits(self) -> int:
        return self.format.exponent_bits

    @property
    def flavour(self) -> str:
        return self.format.flavour

    @property
    def frac_bits(self) -> int:
        """Fraction bits of a mantissa relative to the shared exponent."""
        return self.format.frac_bits

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

    def transpose(self) -> "MXQuantized":
        """The same 2-d tensor transposed (its blocks move with their axis)."""
        if self.mantissas.ndim != 2:
            raise ValueError(f"transpose needs a 2-d tensor; got {self.mantissas.ndim}-d")
        return MXQuantized(mantissas=self.mantissas.T, exponents=self.exponents.T,
                           format=self.format, axis=1 - self.axis)


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


def _quantize_blocks(n: np.ndarray, lsb: np.ndarray, fmt: MXIntFormat, rounded=None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Core: exact values ``n * 2**lsb`` shaped (..., n_blocks, block) -> (mantissas, exponents).

    ``rounded``: optional ``(n_r, lsb_r)`` of the same shape, the values whose
    magnitudes are rounded in place of ``n * 2**lsb`` (the exponent still comes
    from ``n * 2**lsb``); flavour "lqer" passes its nudged magnitudes here.
    """
    emin, emax = fmt.exponent_range
    qmax = fmt.mantissa_max
    mag = np.abs(n)
    bits = _bit_length(mag)
    nonzero = mag != 0
    # floor(log2 |v|) per element; -inf stand-in for zeros
    floor_exp = np.where(nonzero, bits - 1 + lsb, np.iinfo(np.int64).min // 4)
    block_floor = floor_exp.max(axis=-1)
    all_zero = ~nonzero.any(axis=-1)
    if fmt.flavour == "ocp":
        e = block_floor
    else:
        # ceil(log2 max) = floor + 1 unless the max is a power of two, i.e. unless
        # every element reaching the floor exponent is itself a power of two.
        is_pow2 = (mag & (mag - 1)) == 0
        top = floor_exp == block_floor[..., None]
        max_is_pow2 = np.all(~top | is_pow2, axis=-1)
        e = block_floor + np.where(max_is_pow2, 0, 1)
    e = np.where(all_zero, emin, np.clip(e, emin, emax))
    if rounded is not None:
        mag, lsb = np.abs(rounded[0]), rounded[1]
        bits = _bit_length(mag)
    shift = lsb + fmt.frac_bits - e[..., None]
    # element >= 2**(width-1) after shifting: saturate without forming the (overflowing) product
    too_big = nonzero & (bits - 1 + shift >= fmt.width - 1)
    q = _shift_round(mag, np.where(too_big, 0, shift), fmt.rounding)
    q = np.where(too_big, qmax, np.minimum(q, qmax))
    q = np.where(n < 0, -q, q)
    return q, e


def _mantissa_dtype(width: int):
    return np.int8 if width <= 8 else np.int16


def _exact_integers(values, name: str) -> np.ndarray:
    """``values`` as int64, refusing magnitudes of 2**53 or more *before* any conversion
    (an int64 -2**63 or a uint64 2**64-1 would wrap or lose bits in int64 arithmetic)."""
    v = np.asarray(values)
    if v.ndim == 0:
        v = v.reshape(1)
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array; got dtype {v.dtype}")
    limit = 2 ** _MAX_INT_BITS
    if v.size:
        lo, hi = int(v.min()), int(v.max())  # Python ints: no wrap-around
        if lo <= -limit or hi >= limit:
            bad = lo if lo <= -limit else hi
            raise ValueError(f"{name} must have magnitudes below 2**{_MAX_INT_BITS}; got {bad}")
    return v.astype(np.int64)


def quantize_exact(values, lsb_exponents=0, fmt: MXIntFormat | None = None, *, axis: int = -1,
                   name: str = "values", **format_fields) -> MXQuantized:
    """MXINT of exact values ``values * 2**lsb_exponents`` (integers, |values| < 2**53).

    This is what a hardware quantizer does to a fixed-point vector
    (``lsb_exponents = -frac_bits``) or to accumulator outputs that each carry
    their own exponent (``lsb_exponents`` broadcast against ``values``). The format
    is ``fmt`` or built from keywords (``width=8, block=16, ...``, see
    :class:`MXIntFormat`). The values are exact, so flavour "lqer" adds no 1e-9
    here (that rule belongs to float tensors, :func:`quantize`).

    Raises ``ValueError`` for a non-integer array, a magnitude of 2**53 or more, a bad
    axis or format parameter.
    """
    fmt = as_format(fmt, format_fields)
    v = _exact_integers(values, name)
    ax = _normalise_axis(axis, v.ndim)
    lsb = np.broadcast_to(np.asarray(lsb_exponents, dtype=np.int64), v.shape)
    return _quantize_moved(v, lsb, ax, fmt)


def _quantize_moved(n, lsb, ax, fmt: MXIntFormat, rounded=None) -> MXQuantized:
    n_moved = np.moveaxis(n, ax, -1)
    length = n_moved.shape[-1]
    nb = _to_blocks(n_moved, fmt.block)
    lb = _to_blocks(np.ascontiguousarray(np.moveaxis(lsb, ax, -1)), fmt.block)
    if rounded is not None:
        rounded = tuple(_to_blocks(np.ascontiguousarray(np.moveaxis(r, ax, -1)), fmt.block)
                        for r in rounded)
    q, e = _quantize_blocks(nb, lb, fmt, rounded)
    q = q.reshape(q.shape[:-2] + (-1,))[..., :length].astype(_mantissa_dtype(fmt.width))
    return MXQuantized(mantissas=np.moveaxis(q, -1, ax),
                       exponents=np.moveaxis(e.astype(np.int16), -1, ax), format=fmt, axis=ax)


def _bfloat16_values(a32: np.ndarray) -> np.ndarray:
    """Finite float32 values rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = a32.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _held_in(a: np.ndarray, dtype: str) -> np.ndarray:
    """The float64 values ``a`` rounded to ``dtype`` (one of SOURCE_DTYPES)."""
    if dtype == "bfloat16":
        return _bfloat16_values(a.astype(np.float32)).astype(np.float64)
    return a.astype(dtype).astype(np.float64)


def lqer_nudged(mag: np.ndarray, dtype: str) -> np.ndarray:
    """``fl(|x| + 1e-9)`` as PyTorch computes it on a tensor of ``dtype`` (float64 result).

    ``mag``: non-negative float64 values, each exactly representable in ``dtype``.
    The scalar 1e-9 is rounded to ``dtype`` first (float16: 0); float64 and
    float32 then add in their own precision, float16 and bfloat16 add in float32
    and round the sum back to ``dtype`` (PyTorch on CPU; :mod:`sw.mxint_torch`
    does the same on every device).
    """
    if dtype == "float64":
        return mag + LQER_NUDGE
    nudge = np.float32(_held_in(np.array([LQER_NUDGE]), dtype)[0])
    total = mag.astype(np.float32) + nudge
    return total.astype(np.float64) if dtype == "float32" else _held_in(total, dtype)


def quantize(x, fmt: MXIntFormat | None = None, *, axis: int = -1, name: str = "x",
             source_dtype: str | None = None, **format_fields) -> MXQuantized:
    """Quantize a float array (float16/32/64 or integers, any rank) to MXINT along ``axis``.

    The format is ``fmt`` or built from keywords (``width=8, block=16, exponent_bits=8,
    rounding="even", flavour="ocp"``, see :class:`MXIntFormat`). Returns an
    :class:`MXQuantized` whose ``exponents`` have ``axis`` replaced by the block count.
    ``source_dtype`` (flavour "lqer" only; one of ``SOURCE_DTYPES``): the dtype whose
    arithmetic adds the authors' 1e-9 (module docstring). Default: the array's own
    dtype, float64 for integer input; give ``"bfloat16"`` for values a bfloat16
    tensor held (NumPy has no bfloat16).

    Raises ``ValueError`` naming ``name`` and the first bad index on NaN/inf, for a
    bad axis, dtype, source_dtype or format parameter, and when ``x`` is not exactly
    representable in ``source_dtype``.
    """
    fmt = as_format(fmt, format_fields)
    if source_dtype is not None and source_dtype not in SOURCE_DTYPES:
        raise _bad("source_dtype", "one of " + ", ".join(SOURCE_DTYPES), source_dtype)
    a = np.asarray(x)
    if a.ndim == 0:
        a = a.reshape(1)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a real float or integer array; got dtype {a.dtype}")
    ax = _normalise_axis(axis, a.ndim)
    held = source_dtype or (a.dtype.name if a.dtype.name in SOURCE_DTYPES else "float64")
    if np.issubdtype(a.dtype, np.integer):
        a = _exact_integers(a, name)
    a = a.astype(np.float64)  # exact for float16/32 and integers below 2**53
    _check_finite(a, name)
    frac, exp = np.frexp(a)
    n = np.ldexp(frac, _MAX_INT_BITS).astype(np.int64)  # exact: |frac| in [0.5, 1)
    lsb = exp.astype(np.int64) - _MAX_INT_BITS
    rounded = None
    if fmt.flavour == "lqer":
        mag = np.abs(a)
        if source_dtype is not None and not np.array_equal(_held_in(mag, held), mag):
            raise ValueError(f"{name} must hold {held} values for source_dtype {held!r}; "
                             "it has values that are not")
        r = np.where(mag == 0, 0.0, lqer_nudged(mag, held))
        r_frac, r_exp = np.frexp(np.where(a < 0, -r, r))
        rounded = (np.ldexp(r_frac, _MAX_INT_BITS).astype(np.int64),
                   r_exp.astype(np.int64) - _MAX_INT_BITS)
    return _quantize_moved(n, lsb, ax, fmt, rounded)
