"""FP16Linear on Amaranth's simulator: bit-exact against sw.fp16_linear under stalls, the
published cycles per token at full rate, the registry entry and the parameter checks."""

from __future__ import annotations

import pytest

from hw.designs import all_designs, inspect
from hw.fp16_linear import FP16Linear
from hw.fp16_linear_schedule import RELEASE_LATENCY
from sim.amaranth_bench import bench_design

CASES = {
    # columns shorter than the adder's loop (G = 4 < D): a gap after every column
    "gap": {"d_in": 8, "d_out": 8, "lanes": 2},
    # long columns, no gap
    "no-gap": {"d_in": 3, "d_out": 24, "lanes": 2},
    # binary16 outputs, one lane per output group, short pipelines
    "fp16-out": {"d_in": 5, "d_out": 6, "lanes": 3, "out_fp16": 1, "add_stages": 3,
                 "mul_stages": 2, "out_stages": 2},
    # more lanes than one register drives: the activation through a tree of copies
    "tree": {"d_in": 4, "d_out": 10, "lanes": 5},
}


def test_registered_at_sixteen_macs_per_cycle():
    assert "fp16-linear" in [d.name for d in all_designs()]
    dut = inspect("fp16-linear")
    assert (dut.d_in, dut.d_out, dut.lanes, dut.out_fp16) == (64, 64, 16, False)
    assert dut.memory_bits == {"results": 64 * 32}
    assert dut.steps_per_token == 64 * 4


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
def test_amaranth_sim_matches_reference_with_stalls(params):
    mismatches, got, want, _ = bench_design("fp16-linear", params, vectors=6, seed=7,
                                            valid_probability=0.7, ready_probability=0.6)
    assert len(want) == 6 * params["d_out"] // params["lanes"]
    assert mismatches == 0 and len(got) == len(want)


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
def test_full_rate_cycles_are_the_published_figure(params):
    dut = inspect("fp16-linear", **params)
    mismatches, _, _, cycles = bench_design("fp16-linear", params, vectors=3, seed=2,
                                            valid_probability=1, ready_probability=1)
    assert mismatches == 0
    s = dut.schedule
    # the bench stops at the last output: the last token's release is not waited for
    assert cycles == 3 * dut.cycles_per_token - RELEASE_LATENCY
    assert dut.latency == dut.cycles_per_token - 1 - RELEASE_LATENCY - \
        s.accept_cycle(s.d_in - 1, s.groups - 1)
    # the steps themselves, plus one gap per column but the last
    assert s.accept_cycle(s.d_in - 1, s.groups - 1) == s.steps - 1 + (s.d_in - 1) * s.column_gap


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lanes": 3}, ValueError, "lanes must divide d_out (64); got 3"),
    ({"lanes": 65}, ValueError, "lanes must be an integer in 1..64; got 65"),
    ({"d_in": 0}, ValueError, "d_in must be an integer in 1..8192; got 0"),
    ({"out_fp16": "yes"}, TypeError, "out_fp16 must be a bool; got 'yes'"),
    ({"add_stages": 17}, ValueError, "stages must be an integer in 1..16; got 17"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        FP16Linear(**kwargs)
    assert str(info.value) == message
