"""sim.gather: the weight-memory model behind a gather port (latency, request order, the
memory's bounds) and the job entry the cocotb bench loads (round trip through the file)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.gather import GatherModel, gather_job, load_job
from sim.codec import PayloadCodec


def test_items_come_latency_cycles_after_the_request_in_request_order():
    model = GatherModel([[10, 11], [20, 21], [30, 31]], latency=3)
    assert model.head(0) is None
    model.request(2, cycle=5)
    model.request(0, cycle=6)
    assert [model.head(c) for c in (5, 7)] == [None, None] and model.head(8) == 30
    got = []
    for cycle in range(8, 20):
        item = model.head(cycle)
        if item is not None:
            got.append(item)
            model.pop()
    assert got == [30, 31, 10, 11] and model.requests == [2, 0] and model.pending == 0


def test_bad_latency_and_column_are_refused():
    with pytest.raises(ValueError) as info:
        GatherModel([[1]], latency=0)
    assert str(info.value) == "latency must be at least 1; got 0"
    with pytest.raises(IndexError) as info:
        GatherModel([[1], [2]]).request(2, 0)
    assert str(info.value) == "request for column 2 outside 0..1"


def test_job_round_trip_answers_each_column_with_its_packed_pieces(tmp_path):
    dut = inspect("llm-int8-linear", d_in=8, d_out=6, x_lanes=4, lanes=3, fp_lanes=2,
                  outputs=2)
    resp = PayloadCodec.from_layout(dut.resp.payload.shape())
    req = PayloadCodec.from_layout(dut.req.payload.shape())
    w = np.arange(8 * 3 * 2, dtype=np.int64).reshape(8 * 3, 2) * 7 % 0xFFFF
    entry = gather_job({"w": w}, 3, 2, resp, req, tmp_path / "memory.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.npz"]
    model, column_of = load_job(entry)
    assert model.latency == 2 and len(model.pieces) == 8
    packed = resp.pack({"w": w})
    assert [list(p) for p in model.pieces] == [packed[j * 3:j * 3 + 3] for j in range(8)]
    assert column_of(req.pack({"column": np.array([5])})[0]) == 5
