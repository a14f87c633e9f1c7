"""hw.cost.proxies on Amaranth's simulator: the stand-ins compute what they stand for
(under random stalls and back-pressure), so their synthesised figures are of working logic."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hw.cost.proxies import FP16_INFINITY, Compaction, IntAccumulator, OutlierDetector
from sim.amaranth_bench import run_amaranth


def _pack(layout, value: dict) -> int:
    return layout.const(value).as_value().value


def _unsigned(bits: int, width: int) -> int:
    return bits & ((1 << width) - 1)


def _signed(bits: int, width: int) -> int:
    bits &= (1 << width) - 1
    return bits - (1 << width) if bits >> (width - 1) else bits


def test_int_accumulator_sums_each_group_exactly():
    rng = random.Random(3)
    acc = IntAccumulator(lanes=3, in_width=19, acc_width=32)
    groups = [[[rng.randrange(-2**18, 2**18) for _ in range(3)] for _ in range(rng.randrange(1, 6))]
              for _ in range(20)]
    layout = acc.i.payload.shape()
    items = [_pack(layout, {"sums": sums, "last": int(k == len(g) - 1)})
             for g in groups for k, sums in enumerate(g)]
    out, _ = run_amaranth(acc, items, len(groups), valid_probability=0.7, ready_probability=0.6,
                          seed=5)
    got = [[_signed(v >> (32 * lane), 32) for lane in range(3)] for v in out]
    want = [list(np.sum(np.array(g, dtype=np.int64), axis=0)) for g in groups]
    assert got == want


def _fp16_bits(x: float) -> int:
    return int(np.array(x, dtype=np.float16).view(np.uint16))


def test_outlier_detector_marks_columns_and_keeps_the_absmax_of_the_rest():
    rng = np.random.default_rng(7)
    det = OutlierDetector(block=4, threshold=_fp16_bits(6.0))
    rows = [rng.normal(0, 3, size=(3, 4)).astype(np.float16) for _ in range(6)]
    rows[0][1, 2] = np.float16(6.0)   # exactly at the threshold: an outlier
    rows[1][:] = np.float16(-7.5)     # a block of outliers only
    layout = det.i.payload.shape()
    items = [_pack(layout, {"x": [_fp16_bits(v) for v in blk], "last": int(k == len(r) - 1)})
             for r in rows for k, blk in enumerate(r)]
    out, _ = run_amaranth(det, items, len(items), valid_probability=0.8, ready_probability=0.7,
                          seed=2)
    masks = [v & 0xF for v in out]
    want_masks = [sum(1 << j for j in range(4) if abs(float(blk[j])) >= 6.0) for r in rows for blk in r]
    assert masks == want_masks
    absmax = [(v >> 4) & 0x7FFF for v, item in zip(out, items) if (v >> 19) & 1]
    for r, got in zip(rows, absmax):
        kept = np.abs(r.astype(np.float32))
        kept = kept[kept < 6.0]
        want = _fp16_bits(float(kept.max())) if kept.size else 0
        assert got == want


def test_w8a8_threshold_finds_no_outlier():
    det = OutlierDetector(block=2, threshold=FP16_INFINITY)
    layout = det.i.payload.shape()
    item = _pack(layout, {"x": [_fp16_bits(60000.0), _fp16_bits(-3.0)], "last": 1})
    out, _ = run_amaranth(det, [item], 1)
    assert out[0] & 0b11 == 0 and (out[0] >> 2) & 0x7FFF == _fp16_bits(60000.0)


@pytest.mark.parametrize("block", [1, 4, 8])
def test_compaction_lists_the_set_columns_in_order(block):
    rng = random.Random(block)
    comp = Compaction(block=block, index_width=10)
    layout = comp.i.payload.shape()
    cases = [(rng.getrandbits(block), block * rng.randrange(0, 1024 // block)) for _ in range(40)]
    cases += [(0, 0), ((1 << block) - 1, 1024 - block)]
    items = [_pack(layout, {"mask": m, "base": base}) for m, base in cases]
    out, _ = run_amaranth(comp, items, len(items), valid_probability=0.7, ready_probability=0.8,
                          seed=9)
    count_bits = (block).bit_length()
    for (mask, base), v in zip(cases, out):
        want = [base + i for i in range(block) if mask >> i & 1]
        count = (v >> (10 * block)) & ((1 << count_bits) - 1)
        indices = [_unsigned(v >> (10 * k), 10) for k in range(count)]
        assert count == len(want) and indices == want


def test_parameters_are_checked_with_one_line_messages():
    with pytest.raises(ValueError, match=r"^acc_width must be an integer in 19\.\.64; got 8$"):
        IntAccumulator(lanes=1, in_width=19, acc_width=8)
    with pytest.raises(ValueError, match=r"^block must be a power of two in 1\.\.256; got 12$"):
        Compaction(block=12)
