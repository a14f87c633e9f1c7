"""hw.dot_array.DotArray on Amaranth's simulator: bit-exact with sw.blockmath.block_dot,
full rate at its published latency, published widths, parameter checks."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal, signed

from hw.dot_array import DotArray, DotGeometry, product_terms
from hw.unused import inspected
from sw.blockmath import dot_sum_width
from sw.mxint import MXIntFormat
from tests.hw.comb import comb_outputs
from tests.hw.stream_checks import check_bit_exact_under_stalls, check_full_rate_at_published_latency

CONFIGS = [
    {"lanes": 1, "block": 4, "a_width": 5, "w_width": 3, "stages": 3},
    {"lanes": 1, "block": 1, "a_width": 2, "w_width": 16, "exponent_bits": 2, "stages": 1},
    {"lanes": 3, "block": 8, "stages": 4},
]


@pytest.mark.parametrize("params", CONFIGS)
def test_bit_exact_under_stalls_and_back_pressure(params):
    check_bit_exact_under_stalls("dot-array", params)


@pytest.mark.parametrize("params", CONFIGS)
def test_full_rate_and_published_latency(params):
    check_full_rate_at_published_latency("dot-array", params)


def test_published_widths_match_the_reference_and_the_ports():
    arr = inspected(DotArray(lanes=5, a_format=MXIntFormat(width=6, block=16),
                             w_format=MXIntFormat(width=6, block=16)))
    assert len(arr.o.payload.sums[4]) == arr.sum_width == dot_sum_width(16, 6, 6)
    one = inspected(DotArray(lanes=1, a_format=MXIntFormat(width=8, block=32),
                             w_format=MXIntFormat(width=4, block=32)))
    assert one.sum_width == dot_sum_width(32, 8, 4)
    lo, hi = one.exponent_range
    assert (lo, hi) == (-127 - 6 - 127 - 2, 127 - 6 + 127 - 2)
    assert len(one.o.payload.exponents[0]) == DotGeometry(
        a_format=one.a_format, w_format=one.w_format, stages=1).exponent_shape.width


@pytest.mark.parametrize("make, error, message", [
    (lambda: DotArray(lanes=0), ValueError, "lanes must be an integer in 1..256; got 0"),
    (lambda: DotArray(stages=0), ValueError, "stages must be an integer in 1..8; got 0"),
    (lambda: DotArray(w_format=MXIntFormat(width=4, block=8)), ValueError,
     "w_format.block must equal a_format.block (16); got 8"),
    (lambda: DotArray(lanes=2.0), TypeError, "lanes must be an integer in 1..256; got 2.0"),
    (lambda: DotArray(a_format=(8, 16)), TypeError,
     "a_format must be an sw.mxint.MXIntFormat; got (8, 16)"),
])
def test_parameters_are_validated_with_one_line_messages(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


@pytest.mark.parametrize("x_width, y_width", [(5, 2), (5, 3), (4, 4), (3, 5), (2, 2)])
def test_product_terms_sum_to_the_signed_product_exhaustively(x_width, y_width):
    """Every two's-complement pair, the most negative values included."""
    m = Module()
    x, y = Signal(signed(x_width)), Signal(signed(y_width))
    terms = product_terms(x, y)
    assert len(terms) == -(-min(x_width, y_width) // 2)
    total = Signal(signed(x_width + y_width + 2))
    m.d.comb += total.eq(sum(terms))
    pairs = [(a, b) for a in range(-2 ** (x_width - 1), 2 ** (x_width - 1))
             for b in range(-2 ** (y_width - 1), 2 ** (y_width - 1))]
    assert comb_outputs(m, (x, y), total, pairs) == [a * b for a, b in pairs]
