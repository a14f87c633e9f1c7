"""hw.int8_int_path: exact int8 sums and the binary32 dequantization
fl32(fl32(fl32(C) s_x) w_scale) (+ bias), bit for bit against sw.ieee, with input gaps;
each lane's result at the published output cycle; parameter errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.int8_int_path import Int8IntPath, acc_width
from hw.unused import inspected
from sw import ieee
from sw.ieee import BINARY32
from sw.llm_int8 import MAX_D_IN


def _layer(rng, tokens, d_in, d_out):
    x = rng.integers(-127, 128, (tokens, d_in))
    w = rng.integers(-127, 128, (d_out, d_in))
    x[0], w[0] = 127, 127                                  # the largest sum
    w[1 % d_out] = -127
    scale = ieee.bits_of((rng.random(d_out) * 1e-4).astype(np.float32), BINARY32)
    # s_x: binary16 values (sw.llm_int8 step 3), subnormal ones too
    sx16 = (rng.random(tokens) * 8).astype(np.float16)
    sx16[0] = np.float16(2.0 ** -24) * 5
    sx = ieee.bits_of(sx16.astype(np.float32), BINARY32)
    sx[-1] = 0                                             # s_x = 0 (an all-zero token)
    bias = ieee.bits_of(rng.standard_normal(d_out).astype(np.float32), BINARY32)
    return x, w, scale, sx, bias


def _expected(x, w, scale, sx, bias):
    c = x @ w.T                                            # exact (int64)
    y = ieee.fp32_mul(ieee.fp32_mul(ieee.int32_to_fp32(c), np.repeat(sx[:, None], len(w), 1)),
                      np.broadcast_to(scale, c.shape))
    return y if bias is None else ieee.fp32_add(y, np.broadcast_to(bias, c.shape))


def _simulate(dut, x, w, scale, sx, bias, valid_probability):
    """Per token: its constants, s_x, the groups' items (random gaps); the token's outputs
    drain before the next s_x. Returns the outputs and, per output, the cycles since its
    group's last item."""
    P, (tokens, d_in), d_out = dut.lanes, x.shape, len(w)
    rng = random.Random(5)
    outs, delays = [], []

    async def tb(ctx):
        cycle = 0
        for t in range(tokens):
            for i in range(d_out):
                ctx.set(dut.c.valid, 1)
                ctx.set(dut.c.payload.scale, int(scale[i]))
                if dut.bias:
                    ctx.set(dut.c.payload.bias, int(bias[i]))
                await ctx.tick().until(dut.c.ready)
                cycle += 1
            ctx.set(dut.c.valid, 0)
            ctx.set(dut.sx, int(sx[t]))
            last_cycles = []
            expect = len(outs) + d_out
            for g in range(d_out // P):
                j = 0
                while j < d_in:
                    go = rng.random() < valid_probability
                    ctx.set(dut.i.valid, go)
                    if go:
                        ctx.set(dut.i.payload.x, int(x[t, j]))
                        for p in range(P):
                            ctx.set(dut.i.payload.w[p], int(w[g * P + p, j]))
                        ctx.set(dut.i.payload.first, j == 0)
                        ctx.set(dut.i.payload.last, j == d_in - 1)
                        if j == d_in - 1:
                            last_cycles.append(cycle)
                        j += 1
                    _, _, valid, y = await ctx.tick().sample(dut.o.valid, dut.o.payload.y)
                    if valid:
                        delays.append(cycle - last_cycles[len(outs) // P % (d_out // P)])
                        outs.append(y)
                    cycle += 1
            ctx.set(dut.i.valid, 0)
            while len(outs) < expect:
                _, _, valid, y = await ctx.tick().sample(dut.o.valid, dut.o.payload.y)
                if valid:
                    delays.append(cycle - last_cycles[len(outs) // P % (d_out // P)])
                    outs.append(y)
                cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return np.array(outs, np.int64).reshape(x.shape[0], d_out), delays


@pytest.mark.parametrize("lanes, d_in, bias", [(4, 4, False), (3, 7, True), (1, 5, False)])
@pytest.mark.parametrize("valid_probability", [1.0, 0.6])
def test_outputs_match_sw_ieee(lanes, d_in, bias, valid_probability):
    dut = Int8IntPath(lanes=lanes, d_in=d_in, bias=bias)
    x, w, scale, sx, b = _layer(np.random.default_rng(lanes + d_in), 4, d_in, 2 * lanes)
    got, delays = _simulate(dut, x, w, scale, sx, b, valid_probability)
    assert np.array_equal(got, _expected(x, w, scale, sx, b if bias else None))
    # lane p of a group leaves output_cycle(p) cycles after the group's last item
    assert delays == [dut.output_cycle(k % lanes) for k in range(len(delays))]


def test_sum_width_holds_the_largest_sum():
    assert acc_width(64) == (127 * 127 * 64).bit_length() + 1
    assert inspected(Int8IntPath(lanes=4, d_in=100)).acc_width == acc_width(100)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lanes": 0}, ValueError, "lanes must be an integer in 1..256; got 0"),
    ({"lanes": 8, "d_in": 4}, ValueError, f"d_in must be an integer in 8..{MAX_D_IN}; got 4"),
    ({"bias": 2}, TypeError, "bias must be a bool; got 2"),
    ({"lanes": 4, "constants": 7}, ValueError,
     "constants must be an integer in 8..65536; got 7"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        Int8IntPath(**kwargs)
    assert str(info.value) == message


def test_every_lane_registers_its_own_copy_of_the_shared_activation_and_first_flag():
    """One register of the activation code drove every lane's multiplier across the device
    (docs/synth.md): each lane has its own copy, named as a replica so synthesis keeps it."""
    import re

    from amaranth.back import rtlil

    from hw.int8_int_path import Int8IntPath
    from hw.pipeline import REPLICA_TAG
    text = rtlil.convert(Int8IntPath(lanes=4, d_in=32), name="top")
    top = re.search(r"^module \\top\n(.*?)^end$", text, re.M | re.S).group(1)
    for name in ("input_x", "product_first"):
        wires = re.findall(rf"wire width \d+ (?:signed )?\\{name}_{REPLICA_TAG}_(\d+)\n", top)
        assert sorted(wires) == ["0", "1", "2", "3"]
