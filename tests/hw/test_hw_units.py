"""Unit tests of the MXINT hardware on Amaranth's simulator: bit-exact with the reference,
full rate, published latency, widths, and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from hw.accumulator import Accumulator
from hw.designs import inspect
from hw.dot import DotProduct
from hw.dot_array import DotArray
from hw.mxint_layout import MXIntFormat
from hw.pipeline import register_counts
from hw.quantizer import Quantizer
from sim.amaranth_bench import bench_design, run_amaranth
from sim.codec import PayloadCodec
from sw.blockmath import accumulator_width, dot_sum_width
from sw.mxint import quantize_exact

CONFIGS = [
    ("quantize", {"block": 8, "in_width": 12, "frac_bits": 4, "width": 4, "exponent_bits": 3}),
    ("quantize", {"block": 4, "in_width": 20, "frac_bits": -3, "width": 8, "stages": 2}),
    ("dot", {"block": 4, "x_width": 5, "w_width": 3, "stages": 3}),
    ("dot", {"block": 1, "x_width": 2, "w_width": 16, "exponent_bits": 2, "stages": 1}),
    ("dot-array", {"lanes": 3, "block": 8, "stages": 4}),
    ("accumulator", {"lanes": 2, "guard_bits": 1, "max_partials": 8}),
    ("accumulator", {"lanes": 2, "guard_bits": 3, "floor_rounding": 1, "max_partials": 8,
                     "out_width": 4, "exponent_bits": 4, "out_stages": 2}),
]


@pytest.mark.parametrize("design, params", CONFIGS)
def test_bit_exact_under_stalls_and_back_pressure(design, params):
    mismatches, got, want, _ = bench_design(design, params, vectors=300, seed=7,
                                            valid_probability=0.6, ready_probability=0.5)
    assert len(want) > 0 and len(got) == len(want)
    assert mismatches == 0


@pytest.mark.parametrize("design, params", CONFIGS)
def test_full_rate_and_published_latency(design, params):
    """With valid and ready always high, N items take exactly N + latency cycles."""
    component = inspect(design, **params)
    mismatches, got, want, cycles = bench_design(design, params, vectors=64, seed=3,
                                                 valid_probability=1.0, ready_probability=1.0)
    assert mismatches == 0
    n_inputs = 64 if design != "accumulator" else None
    if n_inputs is None:  # the accumulator's output follows its last input
        assert cycles >= len(want)
        n_inputs = cycles - component.latency
    assert cycles == n_inputs + component.latency


def test_quantizer_ties_away_matches_the_reference():
    q = Quantizer(block=4, in_width=10, frac_bits=5, width=4, exponent_bits=4, rounding="away")
    rng = np.random.default_rng(5)
    values = rng.integers(-512, 512, (200, 4)) >> rng.integers(0, 10, (200, 1))
    codec = PayloadCodec.from_layout(q.i.payload.shape())
    out_codec = PayloadCodec.from_layout(q.o.payload.shape())
    got, _ = run_amaranth(q, codec.pack({"values": values}), 200)
    ref = quantize_exact(values, -5, width=4, block=4, exponent_bits=4, rounding="away")
    out = out_codec.unpack(got)
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


def test_quantizer_per_element_exponents_match_the_reference():
    q = Quantizer(block=4, in_width=24, width=8, exponent_bits=5, lsb_width=7)
    rng = np.random.default_rng(6)
    values = rng.integers(-2 ** 23, 2 ** 23, (200, 4)) >> rng.integers(0, 24, (200, 4))
    lsbs = rng.integers(-64, 64, (200, 4))
    codec = PayloadCodec.from_layout(q.i.payload.shape())
    out = PayloadCodec.from_layout(q.o.payload.shape()).unpack(
        run_amaranth(q, codec.pack({"values": values, "lsbs": lsbs}), 200,
                     valid_probability=0.7, ready_probability=0.7)[0])
    ref = quantize_exact(values, lsbs, width=8, block=4, exponent_bits=5)
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


def test_published_widths_match_the_reference_and_the_ports():
    dot = DotProduct(block=32, x_width=8, w_width=4)
    assert dot.sum_width == dot_sum_width(32, 8, 4)
    assert len(dot.o.payload.sum) == dot.sum_width
    arr = DotArray(lanes=5, block=16, x_width=6, w_width=6)
    assert len(arr.o.payload.sums[4]) == arr.sum_width == dot_sum_width(16, 6, 6)
    acc = Accumulator(sum_width=dot.sum_width, exponent_range=dot.exponent_range, guard_bits=5,
                      max_partials=100)
    assert acc.acc_width == accumulator_width(dot.sum_width, 5, 100)
    assert len(acc.o.payload.values[0]) == acc.acc_width
    lo, hi = dot.exponent_range
    assert (lo, hi) == (-127 - 6 - 127 - 2, 127 - 6 + 127 - 2)
    assert acc.out_exponent_range == (lo - 5, hi - 5)
    for c in (dot, arr, acc):
        c._MustUse__used = True


def test_register_counts_spread_stages_and_end_with_the_output_register():
    for levels in range(1, 8):
        for stages in range(1, 9):
            counts = register_counts(levels, stages)
            assert sum(counts) == stages and counts[-1] >= 1 and len(counts) == levels


@pytest.mark.parametrize("make, message", [
    (lambda: DotProduct(block=12), "block must be a power of two in 1..1024; got 12"),
    (lambda: DotProduct(x_width=1), "x_width must be an integer in 2..16; got 1"),
    (lambda: DotProduct(stages=0), "stages must be an integer in 1..8; got 0"),
    (lambda: DotArray(lanes=0), "lanes must be an integer in 1..256; got 0"),
    (lambda: Quantizer(in_width=60), "in_width must be an integer in 2..52; got 60"),
    (lambda: Quantizer(rounding="up"), 'rounding must be one of "even", "away"; got \'up\''),
    (lambda: Accumulator(sum_width=16, exponent_range=(0, 1), rounding="even!"),
     'rounding must be one of "floor", "even"; got \'even!\''),
    (lambda: Accumulator(sum_width=40, exponent_range=(0, 1), guard_bits=16, max_partials=64),
     "accumulator width (sum_width + guard_bits + log2(max_partials)) must be at most 60; got 62"),
    (lambda: Accumulator(sum_width=16, exponent_range=(0, 1), lanes=2,
                         out_format=MXIntFormat(width=8, block=4)),
     "out_format.block must equal lanes (2) to requantize the lanes' results as one block; got 4"),
    (lambda: MXIntFormat(exponent_bits=9), "exponent_bits must be an integer in 2..8; got 9"),
])
def test_parameters_are_validated_with_one_line_messages(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_non_integer_parameters_are_type_errors():
    with pytest.raises(TypeError, match=r"^block must be a power of two in 1\.\.1024; got 16\.0$"):
        DotProduct(block=16.0)
