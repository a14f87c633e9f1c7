"""hw.stream_register.StreamRegister: every item arrives, in order, under stalls and
back-pressure; an item per cycle at the published latency; as a skid buffer its input's
ready follows the output's ready only one cycle later (a register)."""

from __future__ import annotations

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.stream_register import LATENCY, StreamRegister
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.integers(0, 2**9 - 1), min_size=1, max_size=40),
       valid=st.sampled_from([1.0, 0.7, 0.3]), ready=st.sampled_from([1.0, 0.6, 0.2]),
       seed=st.integers(1, 1000), skid=st.booleans())
def test_items_arrive_in_order(values, valid, ready, seed, skid):
    dut = StreamRegister(shape=data.ArrayLayout(unsigned(9), 1), skid=skid)
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


@pytest.mark.parametrize("skid", [False, True])
def test_skid_buffer_ready_is_a_register(skid):
    """Two items in while the output is stalled; then the output's ready rises. Without the
    skid the input's ready follows in the same cycle; with it, after the next edge, and the
    second item waited in the spare entry."""
    dut = StreamRegister(shape=unsigned(8), skid=skid)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for value in (11, 22):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, value)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        seen["ready_stalled"] = ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 1)
        seen["ready_same_cycle"] = ctx.get(dut.i.ready)
        seen["out"] = [ctx.get(dut.o.payload)]
        await ctx.tick()
        seen["ready_next_cycle"] = ctx.get(dut.i.ready)
        seen["out"].append(ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if skid:
        assert seen == {"ready_stalled": 0, "ready_same_cycle": 0, "ready_next_cycle": 1,
                        "out": [11, 22]}
    else:   # the second item was never taken: the slice holds one
        assert seen == {"ready_stalled": 0, "ready_same_cycle": 1, "ready_next_cycle": 1,
                        "out": [11, None]}


def test_bad_shape_names_the_problem():
    with pytest.raises(TypeError, match=r"^shape must be an Amaranth shape or layout; "
                                        r"got 'wide'$"):
        StreamRegister(shape="wide")
    with pytest.raises(TypeError, match=r"^skid must be True or False; got 1$"):
        StreamRegister(shape=unsigned(4), skid=1)
