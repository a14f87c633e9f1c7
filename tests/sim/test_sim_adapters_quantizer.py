"""sim.adapters.quantizer: fields, checks, the reference and the random vectors."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter
from sw.mxint import quantize

ADAPTER = get_adapter("quantizer")
PARAMS = {"block": 8, "in_width": 12, "frac_bits": 5, "width": 6, "exponent_bits": 5}


def test_reference_equals_the_float_quantizer():
    """The integer path (quantize_exact on values * 2**-frac_bits) and the float path of
    sw.mxint agree on every random vector and edge case."""
    dut = inspect("quantizer", **PARAMS)
    inputs = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 3000, np.random.default_rng(0)))
    ref = ADAPTER.reference(dut, inputs)
    q = quantize(np.ldexp(inputs["values"].astype(np.float64), -5), width=6, block=8,
                 exponent_bits=5)
    assert np.array_equal(ref["exponents"], q.exponents[:, 0])
    assert np.array_equal(ref["mantissas"], q.mantissas)
    assert ref["mantissas"].shape == (3000, 8) and ref["exponents"].shape == (3000,)


def test_random_vectors_cover_the_edges_and_ties():
    dut = inspect("quantizer", **PARAMS)
    v = ADAPTER.random_inputs(dut, 2000, np.random.default_rng(1))["values"]
    assert v.min() == -2 ** 11 and v.max() == 2 ** 11 - 1
    assert v[:3].tolist() == [[0] * 8, [-2048] * 8, [2047] * 8]
    # exact ties at some output step: an odd multiple of half a step below the block max
    odd_half = [(v[k] % 2 ** s == 2 ** (s - 1)).any() for k in range(6, 400) for s in (1, 2, 3)]
    assert np.mean(odd_half) > 0.05
    top = np.abs(v).max(axis=1)
    assert len(np.unique(np.floor(np.log2(np.maximum(top, 1))))) == 12  # every max exponent


@pytest.mark.parametrize("values, message", [
    (np.zeros((3, 4), int), "values must have shape (N, 8) with N = 3; got (3, 4)"),
    (np.full((2, 8), 2048), "values must be in -2048..2047; got 2048"),
    (np.zeros((0, 8), int), "inputs must hold at least one vector; got N = 0"),
])
def test_bad_values_get_one_line(values, message):
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(inspect("quantizer", **PARAMS), {"values": values})
    assert str(info.value) == message
