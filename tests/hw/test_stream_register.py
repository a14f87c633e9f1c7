"""hw.stream_register.StreamRegister: every item arrives, in order, under stalls and
back-pressure; an item per cycle at the published latency."""

from __future__ import annotations

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.stream_register import LATENCY, StreamRegister
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.integers(0, 2**9 - 1), min_size=1, max_size=40),
       valid=st.sampled_from([1.0, 0.7, 0.3]), ready=st.sampled_from([1.0, 0.6, 0.2]),
       seed=st.integers(1, 1000))
def test_items_arrive_in_order(values, valid, ready, seed):
    dut = StreamRegister(shape=data.ArrayLayout(unsigned(9), 1))
    got, cycles = run_amaranth(dut, values, len(values), valid_probability=valid,
                               ready_probability=ready, seed=seed)
    assert got == values
    if valid == ready == 1.0:
        assert cycles == len(values) + dut.latency


def test_layout_payload_and_latency():
    layout = data.StructLayout({"value": unsigned(5), "exponent": unsigned(3)})
    dut = StreamRegister(shape=layout)
    assert inspected(dut).latency == LATENCY == 1
    values = [v * 7 % 256 for v in range(30)]
    got, cycles = run_amaranth(dut, values, len(values))
    assert got == values and cycles == len(values) + 1


def test_bad_shape_names_the_problem():
    with pytest.raises(TypeError, match=r"^shape must be an Amaranth shape or layout; "
                                        r"got 'wide'$"):
        StreamRegister(shape="wide")
