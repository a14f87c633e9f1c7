"""hw.fp_accumulate on Amaranth's simulator: column-by-column sums bit for bit against
sw.fp16_linear.accumulate_columns, the column gap when a column is shorter than the
adder's loop, the result port (each lane at its own read address), and the parameter
checks."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fp_accumulate import FPAccumulate
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


@pytest.mark.parametrize("lanes, groups, valid", [(2, 3, 1.0), (1, 12, 0.6), (4, 2, 0.7)])
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
