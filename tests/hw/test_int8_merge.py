"""hw.int8_merge: fl32(y + acc), then binary16 or not, bit for bit against sw.ieee under
stalls (cancellation, subnormal sums, binary16 overflow and underflow); one item per
cycle at its published latency; parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from hw.int8_merge import Int8Merge
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec
from sw import ieee
from sw.ieee import BINARY32


def _pairs(rng, n):
    """Binary32 patterns of (int-path output, outlier-path sum)."""
    y = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 6, n)
    acc = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 6, n)
    acc[: n // 8] = 0.0                                      # no outlier
    acc[n // 8: n // 4] = -y[n // 8: n // 4]                 # exact cancellation: +0
    y[n // 4: n // 4 + 8] = 1e-40                            # binary32 subnormal sums
    acc[n // 4: n // 4 + 8] = -3e-41
    y[n // 4 + 8: n // 4 + 16] = 60000.0                     # binary16 overflow (inf)
    acc[n // 4 + 8: n // 4 + 16] = 6000.0
    y[n // 4 + 16: n // 4 + 24] = 1e-8                       # binary16 underflow to 0
    return (ieee.bits_of(y.astype(np.float32), BINARY32),
            ieee.bits_of(acc.astype(np.float32), BINARY32))


@pytest.mark.parametrize("out_fp16", [1, 0])
def test_sums_match_sw_ieee_under_stalls(out_fp16):
    dut = Int8Merge(out_fp16=out_fp16)
    y, acc = _pairs(np.random.default_rng(out_fp16), 400)
    want = ieee.fp32_add(y, acc)
    if out_fp16:
        want = ieee.fp32_to_fp16(want)
    items = PayloadCodec.from_layout(dut.i.payload.shape()).pack({"y": y, "acc": acc})
    got, _ = run_amaranth(dut, items, len(items), valid_probability=0.7,
                          ready_probability=0.5, seed=3)
    got = PayloadCodec.from_layout(dut.o.payload.shape()).unpack(got)["y"]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("kwargs", [{}, {"out_fp16": 0}, {"add_stages": 2, "out_stages": 1}])
def test_one_item_per_cycle_at_the_published_latency(kwargs):
    dut = Int8Merge(**kwargs)
    y, acc = _pairs(np.random.default_rng(0), 60)
    items = PayloadCodec.from_layout(dut.i.payload.shape()).pack({"y": y, "acc": acc})
    got, cycles = run_amaranth(dut, items, len(items))
    assert len(got) == 60 and cycles == 60 + dut.latency


@pytest.mark.parametrize("kwargs, error, message", [
    ({"out_fp16": "yes"}, TypeError, "out_fp16 must be a bool; got 'yes'"),
    ({"add_stages": 0}, ValueError, "stages must be an integer in 1..16; got 0"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        Int8Merge(**kwargs)
    assert str(info.value) == message
