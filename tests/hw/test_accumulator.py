"""hw.accumulator.Accumulator on Amaranth's simulator: exactly sw.blockmath.accumulate
(optionally requantized by sw.mxint.quantize_exact), published widths, parameter checks."""

from __future__ import annotations

import pytest

from hw.accumulator import Accumulator
from hw.dot_array import DotGeometry
from hw.unused import inspected
from sw.blockmath import accumulator_width
from sw.mxint import MXIntFormat
from tests.hw.stream_checks import check_bit_exact_under_stalls, check_full_rate_at_published_latency

CONFIGS = [
    {"lanes": 2, "guard_bits": 1, "max_partials": 8, "slots": 1, "stages": 0},
    {"lanes": 3, "guard_bits": 2, "max_partials": 8, "slots": 2, "stages": 1},
    {"lanes": 1, "guard_bits": 8, "max_partials": 16, "slots": 3, "stages": 4},
    {"lanes": 4, "max_partials": 8},  # the defaults: four slots, five registers before the loop
    # the most registers before the loop: one more than its levels (at their end)
    {"lanes": 1, "guard_bits": 2, "floor_rounding": 1, "max_partials": 8, "stages": 6},
    {"lanes": 2, "guard_bits": 3, "floor_rounding": 1, "max_partials": 8, "out_width": 4,
     "exponent_bits": 4, "out_stages": 2},
]


@pytest.mark.parametrize("params", CONFIGS)
def test_bit_exact_under_stalls_and_back_pressure(params):
    check_bit_exact_under_stalls("accumulator", params)


@pytest.mark.parametrize("params", CONFIGS)
def test_full_rate_input(params):
    check_full_rate_at_published_latency("accumulator", params, one_output_per_input=False)


def test_published_widths_match_the_reference_and_the_ports():
    dot = DotGeometry(a_format=MXIntFormat(width=8, block=32),
                      w_format=MXIntFormat(width=4, block=32), stages=2)
    acc = inspected(Accumulator(sum_width=dot.sum_width, exponent_range=dot.exponent_range,
                                guard_bits=5, max_partials=100))
    assert acc.acc_width == accumulator_width(dot.sum_width, 5, 100)
    assert len(acc.o.payload.values[0]) == acc.acc_width
    lo, hi = dot.exponent_range
    assert acc.out_exponent_range == (lo - 5, hi - 5)
    assert (acc.slots, acc.stages, acc.latency) == (4, 5, 9)
    fmt = MXIntFormat(width=8, block=4)
    req = inspected(Accumulator(sum_width=16, exponent_range=(0, 1), lanes=4, out_format=fmt,
                                slots=2, stages=1, out_stages=3))
    assert req.out_format == fmt and req.latency == 2 + 1 + 3


@pytest.mark.parametrize("make, message", [
    (lambda: Accumulator(sum_width=16, exponent_range=(0, 1), rounding="even!"),
     'rounding must be one of "floor", "even"; got \'even!\''),
    (lambda: Accumulator(sum_width=40, exponent_range=(0, 1), guard_bits=16, max_partials=64),
     "accumulator width (sum_width + guard_bits + log2(max_partials)) must be at most 60; got 62"),
    (lambda: Accumulator(sum_width=40, exponent_range=(0, 1), guard_bits=12, max_partials=4,
                         lanes=2, out_format=MXIntFormat(width=8, block=2)),
     "accumulator width must be at most 52 to requantize (the quantizer's input); got 54"),
    (lambda: Accumulator(sum_width=16, exponent_range=(0, 1), lanes=2,
                         out_format=MXIntFormat(width=8, block=4)),
     "out_format.block must equal lanes (2) to requantize the lanes' results as one block; got 4"),
    (lambda: Accumulator(sum_width=16, exponent_range=(2, 1)),
     "exponent_range must be a tuple (lo, hi) of integers with -4096 <= lo <= hi <= 4096; "
     "got (2, 1)"),
])
def test_parameters_are_validated_with_one_line_messages(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message
