"""sim.adapters.dot_array: fields, checks, the reference (exact products) and the random
vectors; ``lanes=1`` is the single dot product."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter

ADAPTER = get_adapter("dot-array")


@pytest.mark.parametrize("params", [{"lanes": 3, "block": 4},
                                    {"lanes": 1, "block": 4, "a_width": 3, "w_width": 6,
                                     "exponent_bits": 3}])
def test_reference_is_the_exact_product_of_each_lane(params):
    dut = inspect("dot-array", **params)
    inputs = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 200, np.random.default_rng(2)))
    ref = ADAPTER.reference(dut, inputs)
    fx, fw = dut.a_format.frac_bits, dut.w_format.frac_bits
    lanes = params["lanes"]
    assert ref["sums"].shape == ref["exponents"].shape == (200, lanes)
    for n in range(0, 200, 7):
        for k in range(lanes):
            x = inputs["x_mantissas"][n].tolist()
            w = inputs["w_mantissas"][n, k].tolist()
            scale = Fraction(2) ** int(inputs["x_exponents"][n] - fx
                                       + inputs["w_exponents"][n, k] - fw)
            want = sum(a * b for a, b in zip(x, w)) * scale
            assert ref["sums"][n, k] * Fraction(2) ** int(ref["exponents"][n, k]) == want


def test_random_vectors_pair_edge_blocks_and_reach_the_extremes():
    dut = inspect("dot-array", lanes=2, block=4)
    ins = ADAPTER.random_inputs(dut, 400, np.random.default_rng(3))
    q = dut.a_format.mantissa_max
    assert ins["x_mantissas"][1].tolist() == [q] * 4 and ins["x_mantissas"][2].tolist() == [-q] * 4
    assert (ins["w_mantissas"][:64, 0] == ins["w_mantissas"][:64, 1]).all()  # edges on all lanes
    lo, hi = dut.w_format.exponent_range
    assert ins["w_exponents"].min() == lo and ins["w_exponents"].max() == hi
    ADAPTER.validate(dut, ins)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(w_exponents=d["w_exponents"][:, 0]),
     "w_exponents must have shape (N, 1) with N = 6; got (6,)"),
    (lambda d: d.update(w_mantissas=d["w_mantissas"][:, 0]),
     "w_mantissas must have shape (N, 1, 16) with N = 6; got (6, 16)"),
    (lambda d: d.update(x_exponents=d["x_exponents"][:5]),
     "x_mantissas must have shape (N, 16) with N = 5; got (6, 16)"),
    (lambda d: d["w_mantissas"].__setitem__((2, 0, 3), -8), "w_mantissas must be in -7..7; got -8"),
])
def test_bad_fields_get_one_line(mutate, message):
    rng = np.random.default_rng(0)
    ins = {"x_exponents": rng.integers(-127, 128, 6),
           "x_mantissas": rng.integers(-127, 128, (6, 16)),
           "w_exponents": rng.integers(-127, 128, (6, 1)),
           "w_mantissas": rng.integers(-7, 8, (6, 1, 16))}
    mutate(ins)
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(inspect("dot-array", lanes=1), ins)
    assert str(info.value) == message
