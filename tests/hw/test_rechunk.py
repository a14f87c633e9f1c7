"""hw.rechunk.Rechunk: every element arrives, in order, under stalls and back-pressure; full
rate at the published latency."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import signed

from hw.rechunk import Rechunk
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec


@pytest.mark.parametrize("n_in, n_out", [(1, 4), (2, 8), (4, 1), (8, 2), (3, 6), (6, 3)])
@pytest.mark.parametrize("valid, ready", [(1.0, 1.0), (0.6, 0.5)])
@pytest.mark.parametrize("registered_ready", [False, True])
def test_elements_arrive_in_order(n_in, n_out, valid, ready, registered_ready):
    dut = Rechunk(element=signed(7), n_in=n_in, n_out=n_out, registered_ready=registered_ready)
    rng = np.random.default_rng(n_in * 10 + n_out)
    items = max(n_in, n_out) * 12 // n_in
    values = rng.integers(-64, 64, (items, n_in))
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    out_codec = PayloadCodec.from_layout(dut.o.payload.shape())
    n_outputs = items * n_in // n_out
    got, cycles = run_amaranth(dut, codec.pack({"": values}), n_outputs, valid_probability=valid,
                               ready_probability=ready, seed=3)
    out = out_codec.unpack(got)[""]
    assert np.array_equal(out.reshape(-1), values.reshape(-1))
    if valid == ready == 1.0 and not registered_ready:
        # one element group per cycle, whichever side is wider
        assert cycles == max(items, n_outputs) + dut.latency
    elif valid == ready == 1.0:
        # an item only into an empty held item: one more cycle per wide item
        wide = min(items, n_outputs)
        assert cycles == max(items, n_outputs) + wide - 1 + dut.latency


def test_parameters():
    assert inspected(Rechunk(element=signed(3), n_in=2, n_out=2)).latency == 0
    with pytest.raises(ValueError, match=r"^n_out must divide or be a multiple of n_in \(4\); got 6$"):
        Rechunk(element=signed(3), n_in=4, n_out=6)
    with pytest.raises(ValueError, match=r"^n_in must be an integer in 1\.\.4096; got 0$"):
        Rechunk(element=signed(3), n_in=0, n_out=6)
    with pytest.raises(TypeError, match=r"^registered_ready must be a bool; got 2$"):
        Rechunk(element=signed(3), n_in=2, n_out=4, registered_ready=2)
    assert inspected(Rechunk(element=signed(3), n_in=2, n_out=4,
                             registered_ready=True)).registered_ready
