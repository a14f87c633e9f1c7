"""sim.amaranth_bench: every adapter's stream through Amaranth's simulator, bit-exact; the
bench counts a wrong reference; lazy (tiled) items stream like a list."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter
from sim.amaranth_bench import bench_design, run_amaranth
from sim.codec import PayloadCodec

CASES = [
    ("quantizer", {"block": 4, "in_width": 10, "frac_bits": 3, "width": 5}),
    ("dot-array", {"lanes": 1, "block": 4, "a_width": 5, "w_width": 3}),
    ("accumulator", {"lanes": 2, "max_partials": 6, "out_width": 5, "exponent_bits": 5}),
    ("lqer-linear", {"d_in": 8, "d_out": 8, "rank": 4, "block": 4, "lanes_main": 2}),
]


@pytest.mark.parametrize("design, params", CASES, ids=[c[0] for c in CASES])
def test_every_adapter_is_bit_exact_under_stalls(design, params):
    mismatches, got, want, cycles = bench_design(design, params, vectors=40, seed=3,
                                                 valid_probability=0.7, ready_probability=0.6)
    assert mismatches == 0 and len(got) == len(want) > 0
    assert cycles > len(want)


def test_a_wrong_reference_is_counted(monkeypatch):
    adapter = get_adapter("dot-array")
    honest = adapter.reference

    def off_by_one(dut, inputs):
        out = honest(dut, inputs)
        out["sums"] = out["sums"] + (np.arange(len(out["sums"])) % 4 == 0)[:, None]
        return out

    monkeypatch.setattr(adapter, "reference", off_by_one)
    mismatches, got, want, _ = bench_design("dot-array", {"lanes": 2}, vectors=20, seed=1)
    assert mismatches == 5 and len(got) == 20


def test_packed_items_stream_like_a_list():
    dut = inspect("lqer-linear", d_in=8, d_out=8, rank=4, block=4, lanes_main=2)
    adapter = get_adapter("lqer-linear")
    inputs = adapter.validate(dut, adapter.random_inputs(dut, 2, np.random.default_rng(4)))
    stream = adapter.input_stream(dut, inputs)
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    n_out = adapter.output_count(dut, inputs)
    lazy, _ = run_amaranth(dut, stream.pack(codec), n_out, seed=2, valid_probability=0.9)
    listed, _ = run_amaranth(inspect("lqer-linear", d_in=8, d_out=8, rank=4, block=4,
                                     lanes_main=2), codec.pack(stream.rows()), n_out, seed=2,
                             valid_probability=0.9)
    assert lazy == listed and len(lazy) == n_out
