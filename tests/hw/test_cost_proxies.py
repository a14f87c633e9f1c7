"""hw.cost.proxies on Amaranth's simulator: the stand-in computes what it stands for
(under random stalls and back-pressure), so their synthesised figures are of working logic."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hw.cost.proxies import IntAccumulator
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


def test_parameters_are_checked_with_one_line_messages():
    with pytest.raises(ValueError, match=r"^acc_width must be an integer in 19\.\.64; got 8$"):
        IntAccumulator(lanes=1, in_width=19, acc_width=8)
