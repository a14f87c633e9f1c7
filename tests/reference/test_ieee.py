"""The IEEE-754 reference (sw.ieee) against an exact rational model, hand-worked vectors,
and its input checks.

The model below decodes bit patterns to fractions, computes exactly and rounds to
nearest even with IEEE 754-2019's rules written out case by case (subnormals, the
overflow threshold, signed zeros, NaN), so it shares no code or trick with the
reference (NumPy arithmetic) or the RTL (packing with a carry).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw import ieee
from sw.ieee import BINARY16, BINARY32


# --- the exact model ----------------------------------------------------------------

def decode(bits: int, fmt) -> tuple[str, int, Fraction | None]:
    """(kind, sign, value) with kind in nan / inf / finite."""
    f, e = fmt.fraction_bits, fmt.exponent_bits
    sign = bits >> (f + e) & 1
    field = bits >> f & (2 ** e - 1)
    fraction = bits & (2 ** f - 1)
    if field == 2 ** e - 1:
        return ("nan" if fraction else "inf"), sign, None
    if field == 0:
        magnitude = Fraction(fraction, 2 ** f) * Fraction(2) ** (1 - fmt.bias)
    else:
        magnitude = (1 + Fraction(fraction, 2 ** f)) * Fraction(2) ** (field - fmt.bias)
    return "finite", sign, -magnitude if sign else magnitude


def round_to(value: Fraction, sign_if_zero: int, fmt) -> int:
    """Round ``value`` to nearest even in ``fmt``; an exact zero gets ``sign_if_zero``."""
    f = fmt.fraction_bits
    sign = 1 if value < 0 or (value == 0 and sign_if_zero) else 0
    a = abs(value)
    if a == 0:
        return sign << (fmt.width - 1)
    emin = 1 - fmt.bias
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    quantum = Fraction(2) ** (max(e, emin) - f)
    scaled = a / quantum
    n, rest = divmod(scaled.numerator, scaled.denominator)
    half = Fraction(rest, scaled.denominator)
    if half > Fraction(1, 2) or (half == Fraction(1, 2) and n % 2 == 1):
        n += 1
    # n * quantum is the rounded magnitude
    if n == 0:
        return sign << (fmt.width - 1)
    if n < 2 ** f:                                  # subnormal
        return sign << (fmt.width - 1) | n
    if n == 2 ** (f + 1):                           # carry out of rounding
        n //= 2
        quantum *= 2
    field = (quantum / Fraction(2) ** (emin - f)).numerator.bit_length()  # log2 + 1
    if field >= 2 ** fmt.exponent_bits - 1:
        return sign << (fmt.width - 1) | fmt.infinity
    return sign << (fmt.width - 1) | field << f | (n - 2 ** f)


def model_add(a: int, b: int) -> int:
    ka, sa, va = decode(a, BINARY32)
    kb, sb, vb = decode(b, BINARY32)
    if "nan" in (ka, kb) or (ka == kb == "inf" and sa != sb):
        return BINARY32.canonical_nan
    if ka == "inf" or kb == "inf":
        return (sa if ka == "inf" else sb) << 31 | BINARY32.infinity
    return round_to(va + vb, sa & sb, BINARY32)


def model_mul(a: int, b: int, fmt_in=BINARY32) -> int:
    ka, sa, va = decode(a, fmt_in)
    kb, sb, vb = decode(b, fmt_in)
    sign = sa ^ sb
    if "nan" in (ka, kb):
        return BINARY32.canonical_nan
    if "inf" in (ka, kb):
        if (ka == "finite" and va == 0) or (kb == "finite" and vb == 0):
            return BINARY32.canonical_nan
        return sign << 31 | BINARY32.infinity
    return round_to(va * vb, sign, BINARY32)


def model_to_fp16(a: int) -> int:
    kind, sign, value = decode(a, BINARY32)
    if kind == "nan":
        return BINARY16.canonical_nan
    if kind == "inf":
        return sign << 15 | BINARY16.infinity
    return round_to(value, sign, BINARY16)


# --- bit patterns to draw -----------------------------------------------------------

def patterns(fmt):
    """Uniform bit patterns, and patterns with an exponent drawn uniformly."""
    uniform = st.integers(0, 2 ** fmt.width - 1)
    structured = st.builds(
        lambda s, e, f: s << (fmt.width - 1) | e << fmt.fraction_bits | f,
        st.integers(0, 1), st.integers(0, fmt.exponent_all_ones),
        st.one_of(st.integers(0, 2 ** fmt.fraction_bits - 1),
                  st.integers(0, 15).map(lambda k: k << (fmt.fraction_bits - 4))))
    return st.one_of(uniform, structured)


P32, P16 = patterns(BINARY32), patterns(BINARY16)


@settings(max_examples=800, deadline=None)
@given(P32, P32)
def test_fp32_add_is_ieee(a, b):
    assert ieee.fp32_add([a], [b])[0] == model_add(a, b)


@settings(max_examples=800, deadline=None)
@given(P32, st.integers(-40, 40), st.integers(0, 2 ** 24 - 1), st.integers(0, 1))
def test_fp32_add_is_ieee_near_cancellation_and_ties(a, shift, fraction_bits, flip):
    """Second operands at a nearby exponent: alignment, cancellation, ties."""
    e = (a >> 23 & 0xFF) + shift
    if not 0 <= e <= 254:
        e = a >> 23 & 0xFF
    b = ((a >> 31) ^ flip) << 31 | e << 23 | (fraction_bits & 0x7FFFFF)
    assert ieee.fp32_add([a], [b])[0] == model_add(a, b)


@settings(max_examples=800, deadline=None)
@given(P32, P32)
def test_fp32_mul_is_ieee(a, b):
    assert ieee.fp32_mul([a], [b])[0] == model_mul(a, b)


@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 254), st.integers(70, 130), st.integers(0, 2 ** 23 - 1),
       st.integers(0, 7))
def test_fp32_mul_is_ieee_at_the_underflow_threshold(ea, total, fraction, short):
    """Exponent sums that put the product among subnormals, short fractions for ties."""
    eb = min(max(total - ea, 0), 254)
    b = eb << 23 | (short << 20)
    a = ea << 23 | fraction
    assert ieee.fp32_mul([a], [b])[0] == model_mul(a, b)


@settings(max_examples=800, deadline=None)
@given(P16, P16)
def test_fp16_mul_fp32_is_exact(a, b):
    assert ieee.fp16_mul_fp32([a], [b])[0] == model_mul(a, b, BINARY16)


@settings(max_examples=800, deadline=None)
@given(P32)
def test_fp32_to_fp16_is_ieee(a):
    assert ieee.fp32_to_fp16([a])[0] == model_to_fp16(a)


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.integers(-2 ** 31, 2 ** 31 - 1),
                 st.integers(0, 31).flatmap(lambda k: st.integers(-2 ** k, 2 ** k - 1))))
def test_int32_to_fp32_is_ieee(x):
    assert ieee.int32_to_fp32([x])[0] == round_to(Fraction(x), 0, BINARY32)


def test_every_fp32_to_fp16_rounding_position_exhaustively_around_ties():
    """Each binary32 exponent with the fractions just below, at and above each tie of
    its binary16 rounding position: the reference equals the model on all of them."""
    rows = []
    for e in range(256):
        shift = 13 if e > 112 else 126 - max(e, 1)
        for r in range(1, min(shift, 23) + 1):
            for upper in (0, 1 << r, 0x7FFFFF & ~((1 << r) - 1)):
                for nudge in (-1, 0, 1):
                    f = min(max(upper + (1 << (r - 1)) + nudge, 0), 0x7FFFFF)
                    rows += [e << 23 | f, 1 << 31 | e << 23 | f]
    a = np.array(rows)
    got = ieee.fp32_to_fp16(a)
    want = np.array([model_to_fp16(int(x)) for x in a])
    assert np.array_equal(got, want)


# --- hand-worked vectors --------------------------------------------------------------

def f32(x: float) -> int:
    return int(ieee.bits_of(np.float32(x), BINARY32))


@pytest.mark.parametrize("a, b, want", [
    (f32(1.0), 0x33800000, f32(1.0)),               # 1 + 2**-24: tie, stays even
    (f32(1.0) + 1, 0x33800000, f32(1.0) + 2),       # odd + half an ulp rounds up
    (f32(1.5), f32(-1.5), 0x00000000),              # x + (-x) = +0
    (0x80000000, 0x80000000, 0x80000000),           # -0 + -0 = -0
    (0x80000000, 0x00000000, 0x00000000),           # -0 + +0 = +0
    (0x00000001, 0x00000001, 0x00000002),           # subnormals add exactly
    (0x007FFFFF, 0x00000001, 0x00800000),           # into the smallest normal
    (0x7F7FFFFF, 0x73000000, 0x7F800000),           # max + half an ulp: overflow (tie odd)
    (0x7F800000, 0xFF800000, BINARY32.canonical_nan),
    (0x7FC00001, f32(1.0), BINARY32.canonical_nan),
])
def test_fp32_add_vectors(a, b, want):
    assert ieee.fp32_add([a], [b])[0] == want


@pytest.mark.parametrize("a, b, want", [
    (0x00000000, 0x7F800000, BINARY32.canonical_nan),     # 0 * inf
    (0x80000000, f32(3.0), 0x80000000),                   # signed zero
    (0x00000001, f32(0.5), 0x00000000),                   # tie at the smallest subnormal
    (0x00000003, f32(0.5), 0x00000002),                   # 1.5 ulp -> 2 (even)
    (0x00800000, f32(0.5), 0x00400000),                   # into the subnormals, exact
    (f32(2.0 ** 127), f32(2.0), 0x7F800000),              # overflow
    (0xFF800000, f32(-2.0), 0x7F800000),                  # -inf * -2 = +inf
])
def test_fp32_mul_vectors(a, b, want):
    assert ieee.fp32_mul([a], [b])[0] == want


@pytest.mark.parametrize("a, b, want", [
    (0x0001, 0x0001, 0x27800000),                   # 2**-24 * 2**-24 = 2**-48, normal
    (0x7BFF, 0x7BFF, f32(65504.0 ** 2)),            # max * max, exact
    (0x8000, 0x3C00, 0x80000000),                   # -0 * 1
    (0x7C00, 0x0000, BINARY32.canonical_nan),       # inf * 0
    (0xFC00, 0x0001, 0xFF800000),                   # -inf * tiny
])
def test_fp16_mul_fp32_vectors(a, b, want):
    assert ieee.fp16_mul_fp32([a], [b])[0] == want


@pytest.mark.parametrize("x, want", [
    (0, 0x00000000), (-1, f32(-1.0)), (2 ** 24 + 1, f32(2.0 ** 24)),   # tie to even
    (2 ** 24 + 3, f32(2.0 ** 24 + 4)), (-2 ** 31, 0xCF000000), (2 ** 31 - 1, 0x4F000000),
])
def test_int32_to_fp32_vectors(x, want):
    assert ieee.int32_to_fp32([x])[0] == want


@pytest.mark.parametrize("a, want", [
    (f32(65504.0), 0x7BFF), (f32(65519.99), 0x7BFF), (f32(65520.0), 0x7C00),   # tie -> inf
    (f32(2.0 ** -24), 0x0001), (f32(2.0 ** -25), 0x0000),                      # tie -> 0
    (f32(3 * 2.0 ** -26), 0x0001), (f32(-2.0 ** -30), 0x8000),
    (0x00000001, 0x0000), (0x7F800001, BINARY16.canonical_nan), (0xFF800000, 0xFC00),
])
def test_fp32_to_fp16_vectors(a, want):
    assert ieee.fp32_to_fp16([a])[0] == want


# --- helpers and checks -------------------------------------------------------------

def test_format_facts():
    assert (BINARY16.width, BINARY16.bias, BINARY16.infinity, BINARY16.max_finite,
            BINARY16.canonical_nan) == (16, 15, 0x7C00, 0x7BFF, 0x7E00)
    assert (BINARY32.width, BINARY32.bias, BINARY32.infinity, BINARY32.canonical_nan,
            BINARY32.precision) == (32, 127, 0x7F800000, 0x7FC00000, 24)


def test_bits_round_trip_and_nan_canonicalisation():
    bits = np.array([0, 0x80000000, 1, 0x7F800000, 0x7F800001, 0xFFFFFFFF, 0x3F800000])
    assert np.array_equal(ieee.bits_of(ieee.values_of(bits, BINARY32), BINARY32), bits)
    assert ieee.is_nan(bits, BINARY32).tolist() == [False] * 4 + [True, True, False]
    assert ieee.canonical(bits, BINARY32).tolist() == [0, 0x80000000, 1, 0x7F800000,
                                                       0x7FC00000, 0x7FC00000, 0x3F800000]


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^a must be binary32 bit patterns in 0\.\.4294967295$"):
        ieee.fp32_add([-1], [0])
    with pytest.raises(TypeError, match=r"^b must be an integer array of binary16 bit patterns; "
                                        r"got dtype float64$"):
        ieee.fp16_mul_fp32([1], [1.0])
    with pytest.raises(ValueError, match=r"^a and b must have the same shape; got \(2,\) and "
                                         r"\(1,\)$"):
        ieee.fp32_mul([1, 2], [3])
    with pytest.raises(ValueError, match=r"^x must be in -2147483648\.\.2147483647$"):
        ieee.int32_to_fp32([2 ** 31])
    with pytest.raises(TypeError, match=r"^x must be an integer array; got dtype float64$"):
        ieee.int32_to_fp32([1.5])


def test_flush_to_zero_is_refused():
    torch = pytest.importorskip("torch")
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero mode")
    try:
        with pytest.raises(RuntimeError, match="flushes subnormals"):
            ieee.fp32_mul([1], [0x3F800000])
    finally:
        torch.set_flush_denormal(False)
    assert ieee.fp32_mul([1], [0x3F800000])[0] == 1
