"""hw.fp_accumulate on Amaranth's simulator: column-by-column sums bit for bit against
sw.fp16_linear.accumulate_columns, the column gap when a column is shorter than the
adder's loop, the result port (each lane at its own read address), and the parameter
checks."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fp.fp16_mul import FP16Mul
from hw.fp_accumulate import (BROADCAST_FANOUT, FPAccumulate, input_levels,
                               input_register_bits)
from hw.unused import inspected
from sw import ieee
from sw.fp16_linear import accumulate_columns
from sw.ieee import BINARY16, BINARY32


def _run(acc: FPAccumulate, x_bits, w_bits, *, valid_probability=1.0, seed=0):
    """Stream columns (x_bits (cols,), w_bits (d_out, cols)) through ``acc``; return the
    results read back, the cycles each piece was taken and the column_written cycles."""
    rng = np.random.default_rng(seed)
    G, P = acc.groups, acc.lanes
    pieces = [(j, g) for j in range(len(x_bits)) for g in range(G)]
    taken, written, results = [], [], []

    async def tb(ctx):
        k, cycle = 0, 0
        while k < len(pieces) or len(written) < len(x_bits):
            present = k < len(pieces) and rng.random() < valid_probability
            if present:
                j, g = pieces[k]
                ctx.set(acc.i.payload.x, int(x_bits[j]))
                ctx.set(acc.i.payload.first, j == 0)
                for p in range(P):
                    ctx.set(acc.i.payload.w[p], int(w_bits[g * P + p, j]))
            ctx.set(acc.i.valid, present)
            _, _, ready, done = await ctx.tick().sample(acc.i.ready, acc.column_written)
            if present and ready:
                taken.append(cycle)
                k += 1
            if done:
                written.append(cycle)
            cycle += 1
        ctx.set(acc.i.valid, 0)
        # each lane reads at its own address: lane p reads group (g + p) % G at step g
        read = [[0] * P for _ in range(G)]
        for g in range(G):
            ctx.set(acc.rd_addr, [(g + p) % G for p in range(P)])
            await ctx.tick()
            for p in range(P):
                read[(g + p) % G][p] = ctx.get(acc.rd_data[p])
        results.extend(read)

    sim = Simulator(acc)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return np.array(results, np.int64).reshape(-1), taken, written


def _random_bits(rng, shape):
    return ieee.bits_of((rng.standard_normal(shape) * 2.0 ** rng.integers(-12, 12, shape))
                        .astype(np.float16), BINARY16)


# 6 and 17 lanes: the activation through a broadcast tree of two and three levels
@pytest.mark.parametrize("lanes, groups, valid", [(2, 3, 1.0), (1, 12, 0.6), (4, 2, 0.7),
                                                  (6, 2, 0.8), (17, 1, 1.0)])
def test_sums_match_the_reference_and_respect_the_loop(lanes, groups, valid):
    acc = FPAccumulate(lanes=lanes, groups=groups)
    rng = np.random.default_rng(lanes * 10 + groups)
    cols = 5
    x, w = _random_bits(rng, (cols,)), _random_bits(rng, (lanes * groups, cols))
    got, taken, written = _run(acc, x, w, valid_probability=valid, seed=groups)
    want = ieee.bits_of(accumulate_columns(ieee.values_of(x, BINARY16)[None, :],
                                           ieee.values_of(w, BINARY16)), BINARY32)[0]
    assert np.array_equal(got, want)
    # a piece reads its group's sum only after the previous piece of that group wrote it
    for k in range(groups, len(taken)):
        assert taken[k] - taken[k - groups] >= acc.hazard_distance
    if valid == 1.0:   # at full rate, only the gap separates columns
        gaps = [taken[k] - taken[k - 1] for k in range(1, len(taken))]
        assert max(gaps) == 1 + acc.column_gap
        assert acc.column_gap == max(0, acc.add_latency + 1 - groups)
        # each column is written latency cycles after its last piece
        ends = [taken[(j + 1) * groups - 1] for j in range(cols)]
        assert written == [e + acc.latency for e in ends]


def test_first_restarts_the_sums_from_plus_zero():
    acc = FPAccumulate(lanes=1, groups=1)
    one, two = 0x3C00, 0x4000
    got, _, _ = _run(acc, np.array([two, one]), np.array([[two, one]]))
    assert ieee.values_of(got, BINARY32).tolist() == [5.0]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lanes": 0, "groups": 1}, ValueError, "lanes must be an integer in 1..64; got 0"),
    ({"lanes": 1, "groups": 1.5}, TypeError, "groups must be an integer in 1..8192; got 1.5"),
    ({"lanes": 1, "groups": 2, "add_stages": 0}, ValueError,
     "stages must be an integer in 1..16; got 0"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        FPAccumulate(**kwargs)
    assert str(info.value) == message


def test_every_lane_keeps_its_own_memory_and_copies_of_the_shared_registers():
    """No one register drives every lane (on ECP5 a write address fanned out to every
    lane's LUT RAM was a 12 ns route, docs/synth.md): each lane has a 32-bit memory of its
    own, its own registered addresses, write enable and first flag, its own input register
    of the shared activation (so the multipliers' unpack logic is not one merged cone)
    and its multiplier's copies after the first level, all named as replicas so synthesis
    keeps them apart."""
    import re

    from amaranth.back import rtlil

    from hw.pipeline import REPLICA_TAG
    lanes = 3
    text = rtlil.convert(FPAccumulate(lanes=lanes, groups=8), name="top")
    modules = dict(re.findall(r"^module (\S+)\n(.*?)^end$", text, re.M | re.S))
    top = modules["\\top"]
    assert re.findall(r"memory width (\d+) size 8 \\results_(\d+)\n", top) == \
        [("32", str(p)) for p in range(lanes)]
    for p in range(lanes):
        for name in ("input_x", "read_group", "first", "write_group", "write_enable"):
            assert f"\\{name}_{REPLICA_TAG}_{p} " in top
        assert re.search(rf"wire width \d+ \\fp_l0_r\d+_{REPLICA_TAG}_\d+\n",
                         modules[f"\\top.mul_{p}"])
    # the adders take distinct operands: nothing to keep apart there
    assert REPLICA_TAG not in modules["\\top.add_0"]


@pytest.mark.parametrize("lanes, levels", [(1, 1), (4, 1), (5, 2), (16, 2), (17, 3), (64, 3)])
def test_the_activation_reaches_the_lanes_through_a_tree_of_registers(lanes, levels):
    """Above BROADCAST_FANOUT lanes each copy of the activation drives at most that many
    copies of the next level (fp16-linear's 16 lanes from one register: an 8.2 ns route on
    ECP5, docs/synth.md); the weights are delayed beside the tree, the latency counts it,
    and input_register_bits counts its flip-flops."""
    import math
    import re

    from amaranth.back import rtlil

    from hw.pipeline import REPLICA_TAG
    assert input_levels(lanes) == levels
    acc = FPAccumulate(lanes=lanes, groups=2)
    assert acc.mul_latency == levels + inspected(FP16Mul(backpressure=False)).latency
    top = re.search(r"^module \\top\n(.*?)^end$", rtlil.convert(acc, name="top"),
                    re.M | re.S).group(1)
    tree = re.findall(rf"wire width 16 \\input_x_l(\d)_{REPLICA_TAG}_(\d+)\n", top)
    for k in range(1, levels):
        assert sorted(int(i) for lk, i in tree if int(lk) == k) == \
            list(range(math.ceil(lanes / BROADCAST_FANOUT ** (levels - k))))
    assert len(tree) == sum(math.ceil(lanes / BROADCAST_FANOUT ** j) for j in range(1, levels))
    lane_copies = re.findall(rf"wire width 16 \\input_x_{REPLICA_TAG}_\d+\n", top)
    weights = re.findall(r"wire width 16 \\input_w_\d+(?:_d\d+)?\n", top)
    assert (len(lane_copies), len(weights)) == (lanes, lanes * levels)
    assert input_register_bits(lanes) == 16 * (len(tree) + len(lane_copies) + len(weights))
