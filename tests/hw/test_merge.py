"""hw.merge.Merge: finished accumulator results continued with more partials equal
sw.blockmath.accumulate over all the partials, bit for bit, under stalls."""

from __future__ import annotations

import numpy as np
import pytest

from hw.merge import Merge
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec
from sw.blockmath import accumulate, accumulator_width

SUM_WIDTH, G = 12, 4


def _case(rng, n, lanes, terms, spread):
    """Random partials: n main ones per lane, then one per term (8-bit terms)."""
    s = rng.integers(-2 ** (SUM_WIDTH - 1) + 1, 2 ** (SUM_WIDTH - 1), (n, lanes, 4))
    s >>= rng.integers(0, SUM_WIDTH, (n, lanes, 4))
    base = rng.integers(-20, 20, (n, lanes, 1))
    p = base + rng.integers(-spread, spread + 1, (n, lanes, 4))
    extra_s = rng.integers(-127, 128, (n, lanes, terms)) * (rng.random((n, lanes, terms)) > 0.1)
    extra_p = base + rng.integers(-spread - 6, spread + 7, (n, lanes, terms))
    return s, p, extra_s, extra_p


@pytest.mark.parametrize("terms, stages, rounding, valid, ready", [
    (2, 6, "even", 0.7, 0.6), (1, 1, "even", 1.0, 1.0), (2, 10, "floor", 0.8, 0.8),
])
def test_merge_continues_the_accumulation(terms, stages, rounding, valid, ready):
    rng = np.random.default_rng(terms * 10 + stages)
    n, lanes = 300, 3
    s, p, es, ep = _case(rng, n, lanes, terms, 9)
    a, lsb = accumulate(s, p, guard_bits=G, rounding=rounding)      # the finished results
    want = accumulate(np.concatenate([s, es], -1), np.concatenate([p, ep], -1),
                      guard_bits=G, rounding=rounding)
    width = accumulator_width(SUM_WIDTH, G, 4 + terms)
    dut = Merge(lanes=lanes, acc_width=width, result_range=(-60, 60), guard_bits=G,
                rounding=rounding, stages=stages,
                terms=tuple((f"t{k}", 8, (-60, 60)) for k in range(terms)))
    fields = {"values": a, "exponents": lsb}
    for k in range(terms):
        fields[f"t{k}_sums"], fields[f"t{k}_exponents"] = es[..., k], ep[..., k]
    items = PayloadCodec.from_layout(dut.i.payload.shape()).pack(fields)
    got, cycles = run_amaranth(dut, items, n, valid_probability=valid, ready_probability=ready,
                               seed=5)
    out = PayloadCodec.from_layout(dut.o.payload.shape()).unpack(got)
    assert np.array_equal(out["values"], want[0]) and np.array_equal(out["exponents"], want[1])
    if valid == ready == 1.0:
        assert cycles == n + dut.latency


def test_parameters():
    dut = inspected(Merge(lanes=2, acc_width=30, result_range=(-10, 10), guard_bits=3,
                          terms=(("u", 8, (-20, 5)),), stages=3))
    assert dut.latency == 3 and dut.out_exponent_range[0] <= -23
    with pytest.raises(ValueError, match=r"^terms must name at least one partial; got none$"):
        Merge(lanes=1, acc_width=30, result_range=(0, 1), terms=())
    with pytest.raises(ValueError, match=r"^stages must be an integer in 1\.\.16; got 0$"):
        Merge(lanes=1, acc_width=30, result_range=(0, 1), terms=(("u", 8, (0, 1)),), stages=0)
