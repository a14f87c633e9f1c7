"""Reference-model adapters of the floating-point units (:mod:`hw.fp`): fields, the bit-exact
reference (:mod:`sw.ieee`) and the bench vectors.

Every field is a bit pattern (an integer; ``int32-to-fp32`` takes two's-complement
int32 values). The reference returns NaN results as the canonical NaN, which is
what the RTL emits, so the bench's bit-for-bit comparison treats every NaN the
reference could produce as equal to the canonical one.

Bench vectors (:meth:`random_inputs`, ``n`` of them) always start with the *edge
classes in full*: every pair (or value, for the conversions) drawn from
:func:`edge_values` -- signed zeros, the smallest / largest / middle subnormals, the
smallest normal, one and its neighbours, the largest finite values, infinities,
quiet, signalling and payload NaNs. The rest are unit-specific mixtures: uniform bit
patterns, all exponents with short significands (which make rounding ties), operand
pairs aimed at cancellation, underflow into subnormals and overflow, and for
``fp32-to-fp16`` a sweep of every exponent with a strided fraction plus the tie
patterns at each exponent's rounding position; ``fp16-mul`` also pairs every edge value
with every binary16 pattern, both orders, once ``n`` is large enough (about 8.7 million).
If ``n`` is smaller than the edge set, a random subset of it is used.

The adapters are in :data:`FP_ADAPTERS`, registered once when :mod:`sim.adapters` is
imported.
"""

from __future__ import annotations

import numpy as np

from sim.adapters.base import Adapter, Bounds, FieldSpec, register_adapter
from sw import ieee
from sw.ieee import BINARY16, BINARY32, IEEEFormat

__all__ = ["edge_values", "FPAdapter", "FP16MulAdapter", "FP32AddAdapter", "FP32MulAdapter",
           "Int32ToFP32Adapter", "FP32ToFP16Adapter", "FP_ADAPTERS"]


def edge_values(fmt: IEEEFormat) -> np.ndarray:
    """The edge-class bit patterns of ``fmt``, both signs (int64)."""
    f, bias, inf = fmt.fraction_bits, fmt.bias, fmt.infinity
    magnitudes = [
        0,                                   # zero
        1, 2, 3,                             # smallest subnormals
        1 << (f - 1), (1 << (f - 1)) + 1,    # middle subnormals
        (1 << f) - 1,                        # largest subnormal
        1 << f, (1 << f) + 1,                # smallest normal and its successor
        bias << f, (bias << f) + 1,          # one and its successor
        (bias << f) - 1,                     # one's predecessor
        (bias << f) | (1 << (f - 1)),        # 1.5
        (fmt.exponent_all_ones - 1) << f,    # largest power of two
        inf - 2, inf - 1,                    # largest finite values
        inf,                                 # infinity
        fmt.canonical_nan,                   # quiet NaN
        inf + 1,                             # signalling NaN
        inf | ((1 << f) - 1),                # NaN, full payload
    ]
    mags = np.array(magnitudes, np.int64)
    return np.concatenate([mags, mags | fmt.sign_bit])


def _compose(sign, exponent, fraction, fmt: IEEEFormat) -> np.ndarray:
    return ((np.asarray(sign, np.int64) << (fmt.width - 1))
            | (np.asarray(exponent, np.int64) << fmt.fraction_bits)
            | np.asarray(fraction, np.int64))


def _uniform_bits(rng, n, fmt) -> np.ndarray:
    return rng.integers(0, 2 ** fmt.width, size=n, dtype=np.int64)


def _fractions(rng, n, fmt) -> np.ndarray:
    """Uniform fractions (half), short ones (top 0..4 bits: ties after rounding), and low
    bits all ones or a single one."""
    f = fmt.fraction_bits
    uniform = rng.integers(0, 2 ** f, size=n, dtype=np.int64)
    keep = rng.integers(0, 5, size=n)
    short = (uniform >> (f - keep)) << (f - keep)
    low = rng.integers(1, f + 1, size=n)
    low_ones = uniform | ((np.int64(1) << low) - 1)
    single = np.int64(1) << rng.integers(0, f, size=n)
    kind = rng.random(n)
    return np.where(kind < 0.5, uniform, np.where(kind < 0.75, short,
                                                  np.where(kind < 0.9, low_ones, single)))


def _structured(rng, n, fmt, exponent=None) -> np.ndarray:
    """Random sign, every exponent field (or the given ones) equally likely, `_fractions`."""
    if exponent is None:
        exponent = rng.integers(0, fmt.exponent_all_ones + 1, size=n)
    return _compose(rng.integers(0, 2, size=n), exponent, _fractions(rng, n, fmt), fmt)


def _split(n: int, weights: tuple[float, ...]) -> list[int]:
    """``n`` split in the proportions ``weights`` (summing to 1); rounding goes to the first."""
    counts = [int(n * w) for w in weights]
    counts[0] += n - sum(counts)
    return counts


class FPAdapter(Adapter):
    """Base of the unit adapters: ``a`` (and ``b``) in, ``y`` out; ``rule`` from sw.ieee."""

    in_format: IEEEFormat | None = None
    out_format: IEEEFormat = BINARY32
    binary: bool = True

    @property
    def inputs(self):  # type: ignore[override]
        name = self.in_format.name if self.in_format else "int32"
        specs = [FieldSpec("a", "a", f"(N,) {name} operand bit patterns")]
        if self.binary:
            specs.append(FieldSpec("b", "b", f"(N,) {name} operand bit patterns"))
        return tuple(specs)

    @property
    def outputs(self):  # type: ignore[override]
        return (FieldSpec("y", "y", f"(N,) {self.out_format.name} result bit patterns "
                                    f"(NaN: {self.out_format.canonical_nan:#x})"),)

    def rule(self, *operands) -> np.ndarray:
        raise NotImplementedError

    def input_bounds(self, dut):
        """Every field: ``(N,)`` bit patterns of the input format (int32: its range)."""
        if self.in_format is None:
            bounds = Bounds(("N",), *ieee.INT32_RANGE)
        else:
            bounds = Bounds(("N",), 0, 2 ** self.in_format.width - 1)
        return {s.name: bounds for s in self.inputs}

    def reference(self, dut, inputs):
        """``y``: the unit's :mod:`sw.ieee` rule, NaN results canonical."""
        return {"y": self.rule(*(inputs[s.name] for s in self.inputs))}

    def edge_inputs(self) -> dict:
        """Every pair of edge values (binary units) or every edge value."""
        e = edge_values(self.in_format)
        if not self.binary:
            return {"a": e}
        a, b = np.meshgrid(e, e, indexing="ij")
        return {"a": a.ravel(), "b": b.ravel()}

    def bulk_inputs(self, rng, n) -> dict:
        raise NotImplementedError

    def random_inputs(self, dut, n, rng):
        edges = self.edge_inputs()
        count = len(edges["a"])
        if n <= count:
            pick = rng.permutation(count)[:n]
            return {k: v[pick] for k, v in edges.items()}
        bulk = self.bulk_inputs(rng, n - count)
        return {k: np.concatenate([edges[k], bulk[k]]).astype(np.int64) for k in edges}


class FP16MulAdapter(FPAdapter):
    design = "fp16-mul"
    in_format = BINARY16

    def rule(self, a, b):
        return ieee.fp16_mul_fp32(a, b)

    def bulk_inputs(self, rng, n):
        """Each edge value against every binary16 pattern, both orders (5.2 million pairs;
        a random subset when they would exceed 60% of ``n``), then half uniform patterns,
        half all-exponent short-fraction values."""
        e = edge_values(BINARY16)
        full = 2 * len(e) * 2 ** 16
        n_sweep = min(full, int(0.6 * n))
        k = rng.choice(full, size=n_sweep, replace=False) if n_sweep < full else np.arange(full)
        order, rest = np.divmod(k, len(e) * 2 ** 16)
        edge, value = np.divmod(rest, 2 ** 16)
        sa = np.where(order == 0, e[edge], value)
        sb = np.where(order == 0, value, e[edge])
        n_uniform = (n - n_sweep) // 2
        n_struct = n - n_sweep - n_uniform
        a = np.concatenate([sa, _uniform_bits(rng, n_uniform, BINARY16),
                            _structured(rng, n_struct, BINARY16)])
        b = np.concatenate([sb, _uniform_bits(rng, n_uniform, BINARY16),
                            _structured(rng, n_struct, BINARY16)])
        return {"a": a, "b": b}


class FP32AddAdapter(FPAdapter):
    design = "fp32-add"
    in_format = BINARY32

    def rule(self, a, b):
        return ieee.fp32_add(a, b)

    def bulk_inputs(self, rng, n):
        """Close exponents (difference 0..30, either sign: alignment, carries, cancellation,
        ties from short fractions), near-negations (``b = -(a +/- k ulps)``), uniform
        patterns, structured pairs."""
        n_close, n_neg, n_uniform, n_struct = _split(n, (0.4, 0.1, 0.2, 0.3))
        f = BINARY32.fraction_bits
        a1 = _structured(rng, n_close, BINARY32)
        ea = (a1 >> f) & 0xFF
        eb = np.clip(ea - rng.integers(-30, 31, size=n_close), 0, 254)
        b1 = _structured(rng, n_close, BINARY32, exponent=eb)
        a2 = _structured(rng, n_neg, BINARY32)
        mag = np.clip((a2 & 0x7FFFFFFF) + rng.integers(-3, 4, size=n_neg), 0, 0x7F7FFFFF)
        b2 = mag | ((~a2) & BINARY32.sign_bit)
        a = np.concatenate([a1, a2, _uniform_bits(rng, n_uniform, BINARY32),
                            _structured(rng, n_struct, BINARY32)])
        b = np.concatenate([b1, b2, _uniform_bits(rng, n_uniform, BINARY32),
                            _structured(rng, n_struct, BINARY32)])
        return {"a": a, "b": b}


class FP32MulAdapter(FPAdapter):
    design = "fp32-mul"
    in_format = BINARY32

    def rule(self, a, b):
        return ieee.fp32_mul(a, b)

    def bulk_inputs(self, rng, n):
        """Exponent sums around the underflow threshold (results from normal down to below
        the smallest subnormal, short fractions for ties there), around the overflow
        threshold, one operand subnormal, uniform patterns, structured pairs."""
        n_under, n_over, n_sub, n_uniform, n_struct = _split(n, (0.3, 0.1, 0.1, 0.2, 0.3))
        bias = BINARY32.bias

        def pair(count, total_lo, total_hi):
            total = rng.integers(total_lo, total_hi + 1, size=count)
            ea = rng.integers(np.maximum(total - 254, 1), np.minimum(total - 1, 254) + 1)
            return (_structured(rng, count, BINARY32, exponent=ea),
                    _structured(rng, count, BINARY32, exponent=total - ea))

        a1, b1 = pair(n_under, bias - 30, bias + 2)          # T from about -30 to 2
        a2, b2 = pair(n_over, bias + 250, bias + 256)        # around 255
        sub = _structured(rng, n_sub, BINARY32, exponent=np.zeros(n_sub, np.int64))
        other = _structured(rng, n_sub, BINARY32)
        swap = rng.random(n_sub) < 0.5
        a3, b3 = np.where(swap, sub, other), np.where(swap, other, sub)
        a = np.concatenate([a1, a2, a3, _uniform_bits(rng, n_uniform, BINARY32),
                            _structured(rng, n_struct, BINARY32)])
        b = np.concatenate([b1, b2, b3, _uniform_bits(rng, n_uniform, BINARY32),
                            _structured(rng, n_struct, BINARY32)])
        return {"a": a, "b": b}


class Int32ToFP32Adapter(FPAdapter):
    design = "int32-to-fp32"
    in_format = None
    binary = False

    def rule(self, a):
        return ieee.int32_to_fp32(a)

    def edge_inputs(self):
        lo, hi = ieee.INT32_RANGE
        mags = [0, 1, 2, 3, 2 ** 23 - 1, 2 ** 23, 2 ** 24 - 1, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 2,
                2 ** 24 + 3, 2 ** 25 + 2, 2 ** 25 + 6, 2 ** 30, 2 ** 31 - 128, 2 ** 31 - 64, hi]
        v = np.array(mags, np.int64)
        return {"a": np.concatenate([v, -v, [lo, lo + 1, lo + 64, lo + 127, lo + 128]])}

    def bulk_inputs(self, rng, n):
        """Every bit length (log-uniform magnitudes), the tie patterns below the kept 24 bits
        (half, half - 1, half + 1), uniform values."""
        n_log, n_tie, _ = _split(n, (0.4, 0.3, 0.3))
        n_uniform = n - n_log - n_tie
        length = rng.integers(0, 32, size=n_log)
        log = rng.integers(0, 2 ** 31, size=n_log) >> (31 - length)
        drop = rng.integers(1, 8, size=n_tie)                 # bits below the kept 24
        top = rng.integers(2 ** 23, 2 ** 24, size=n_tie)
        half = np.int64(1) << (drop - 1)
        tie = np.minimum((top << drop) + half + rng.integers(-1, 2, size=n_tie), 2 ** 31 - 1)
        sign = np.where(rng.random(n_log + n_tie) < 0.5, -1, 1)
        v = np.concatenate([log, tie]) * sign
        lo, hi = ieee.INT32_RANGE
        return {"a": np.concatenate([v, rng.integers(lo, hi + 1, size=n_uniform)])}


class FP32ToFP16Adapter(FPAdapter):
    design = "fp32-to-fp16"
    in_format = BINARY32
    out_format = BINARY16
    binary = False

    def rule(self, a):
        return ieee.fp32_to_fp16(a)

    def bulk_inputs(self, rng, n):
        """Both signs x all 256 exponent fields x (a strided fraction sweep + the tie
        patterns at the exponent's rounding position); ``n // 512`` fractions per
        exponent, the rest uniform patterns."""
        f = BINARY32.fraction_bits
        per = n // 512
        n_tie = per // 3
        n_sweep = per - n_tie
        exponents = np.arange(256, dtype=np.int64)
        out = []
        if n_sweep:
            stride = (2 ** f // n_sweep) | 1                  # odd: low bits vary too
            j = np.arange(n_sweep, dtype=np.int64)
            offset = rng.integers(0, 2 ** f, size=(512, 1))
            fraction = (j * stride + offset) % 2 ** f
            e = np.repeat(np.tile(exponents, 2), 1).reshape(512, 1)
            s = np.repeat([0, 1], 256).reshape(512, 1)
            out.append(_compose(s, e, fraction, BINARY32).ravel())
        if n_tie:
            e = np.tile(exponents, 2)[:, None]
            s = np.repeat([0, 1], 256)[:, None]
            # bits of the 24-bit significand below the binary16 rounding position
            position = np.clip(np.where(e > 112, 13, 126 - np.maximum(e, 1)), 1, 23)
            high = rng.integers(0, 2 ** f, size=(512, n_tie))
            half = np.int64(1) << (position - 1)
            nudge = rng.integers(-1, 2, size=(512, n_tie))
            fraction = ((high >> position) << position) + half + nudge
            fraction = np.clip(fraction, 0, 2 ** f - 1)
            out.append(_compose(s, e, fraction, BINARY32).ravel())
        got = sum(len(x) for x in out)
        out.append(_uniform_bits(rng, n - got, BINARY32))
        return {"a": np.concatenate(out)}


FP_ADAPTERS: dict[str, FPAdapter] = {a.design: a for a in (
    FP16MulAdapter(), FP32AddAdapter(), FP32MulAdapter(), Int32ToFP32Adapter(),
    FP32ToFP16Adapter())}


for _adapter in FP_ADAPTERS.values():
    register_adapter(_adapter)
