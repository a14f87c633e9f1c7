"""hw.int8_quantizer: codes bit for bit against sw.llm_int8.quantize_rows for every entry
of the reciprocal table, subnormal and zero scales, ties and the reciprocal rule's case;
s_x as binary32; the table itself."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hw.fp.fp32_mul import FP32Mul
from hw.int8_quantizer import Int8Quantizer, reciprocal_table
from hw.unused import inspected
from sw import llm_int8

ROW = 6


def _rows() -> np.ndarray:
    """Rows of binary16 activations: column 0 the absmax s_x, the rest within it."""
    rng = np.random.default_rng(0)
    rows = []
    # every table entry: s = (1 + f/1024) * 2**e for each f, e cycling through exponents
    for f in range(1024):
        e = [-14, -3, 0, 2, 15][f % 5]
        s = (1 + f / 1024) * 2.0 ** e
        rows.append([s, -s, s / 2, -s / 3] + list(rng.uniform(-s, s, ROW - 4)))
    for f in [1, 2, 3, 0x155, 0x3FF]:                 # subnormal s_x
        s = f * 2.0 ** -24
        rows.append([s, -s] + list(rng.integers(-f, f + 1, ROW - 2) * 2.0 ** -24))
    rows.append([0.0] * ROW)                          # s_x = 0: all codes 0
    rows.append([1.984375, 0.0078125, -0.0234375, 0.0390625, 1.9765625, -0.9921875])  # ties, r = 64
    rows.append([1.01171875, 0.505859375, -0.505859375, 0, 1, -1])   # 63.499996 -> 63
    return np.array(rows).astype(np.float16)


def _simulate(dut: Int8Quantizer, x: np.ndarray, zero: np.ndarray, scale: np.ndarray):
    codes, scales = [], []

    async def tb(ctx):
        for t in range(len(x)):
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.scale, int(scale[t]))
            for _ in range(dut.scale_latency):      # the previous token's codes drain
                _, _, valid, code = await ctx.tick().sample(dut.o.valid, dut.o.payload.code)
                if valid:
                    codes.append(code)
            scales.append(ctx.get(dut.scale32))
            for j in range(x.shape[1]):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.x, int(x[t, j]))
                ctx.set(dut.i.payload.zero, int(zero[t, j]))
                _, _, valid, code = await ctx.tick().sample(dut.o.valid, dut.o.payload.code)
                if valid:
                    codes.append(code)
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency + 1):
            _, _, valid, code = await ctx.tick().sample(dut.o.valid, dut.o.payload.code)
            if valid:
                codes.append(code)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return np.array(codes).reshape(x.shape), np.array(scales, np.int64)


def test_codes_match_the_reference_for_every_table_entry():
    x16 = _rows()
    q = llm_int8.quantize_rows(x16)                   # no outliers: s_x is the row absmax
    zero = np.random.default_rng(1).random(x16.shape) < 0.15
    zero[-2:] = False                                 # the planted ties keep their codes
    want = np.where(zero, 0, q.codes)
    dut = Int8Quantizer()
    scale = q.absmax.astype(np.float16).view(np.uint16).astype(np.int64)
    got, scales = _simulate(dut, x16.view(np.uint16).astype(np.int64), zero, scale)
    assert np.array_equal(got, want)
    assert np.array_equal(scales, q.absmax.astype(np.float32).view(np.uint32).astype(np.int64))
    assert got[-2].tolist()[:2] == [127, 0] and got[-1].tolist()[:3] == [127, 63, -63]


def test_table_is_the_reciprocal_rule():
    table = reciprocal_table()
    for f in (0, 1, 511, 1023):
        m = np.float32(1 + f / 1024)
        r = (np.float32(1) / m).astype(np.float32) * np.float32(127)
        bits = int(np.float32(r).view(np.uint32))
        assert table[f] == ((bits >> 23) - 132) << 23 | (bits & 0x7FFFFF)
    assert table[0] == (1 << 23) | (np.float32(127).view(np.uint32) & 0x7FFFFF)  # 127: exponent 133


def test_latency_figures():
    dut = inspected(Int8Quantizer())
    # the binary32 multiplier's published latency between two registers each side
    assert dut.scale_latency == 5 and dut.latency == 2 + inspected(FP32Mul()).latency + 3
