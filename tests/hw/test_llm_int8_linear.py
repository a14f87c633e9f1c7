"""LLMInt8Linear on Amaranth's simulator: bit-exact against sw.llm_int8.linear under stalls
on every stream (the gather's too), the gather requests in the contract's order, full-rate
cycles equal to the schedule's tile model, the registry entry and the parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import all_designs, inspect
from hw.llm_int8_linear import LLMInt8Linear
from sim.adapters import get_adapter
from sim.amaranth_bench import bench_design

ADAPTER = get_adapter("llm-int8-linear")
CASES = {
    "small": {"d_in": 16, "d_out": 8, "x_lanes": 4, "lanes": 4, "fp_lanes": 2, "outputs": 2},
    # tiles of two tokens, bias, binary32 outputs, two gather requests in flight
    "tile2-bias-fp32": {"d_in": 24, "d_out": 12, "x_lanes": 8, "lanes": 4, "fp_lanes": 3,
                        "outputs": 3, "tile": 2, "bias": 1, "out_fp16": 0, "outstanding": 2},
    # one index per pass, one fp lane, int lanes = d_in
    "m1": {"d_in": 8, "d_out": 8, "x_lanes": 8, "lanes": 8, "fp_lanes": 1, "outputs": 1},
}


def _inputs(params, tiles, seed):
    dut = inspect("llm-int8-linear", **params)
    ins = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, tiles * dut.tile,
                                                      np.random.default_rng(seed)))
    return dut, ins, ADAPTER.outlier_columns(dut, ins)


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
def test_amaranth_sim_matches_reference_with_stalls(params):
    dut, ins, columns = _inputs(params, 10, 7)
    assert min(map(len, columns)) == 0 and max(map(len, columns)) > dut.outputs
    requests: list[int] = []
    mismatches, got, want, _ = bench_design("llm-int8-linear", params, vectors=0,
                                            inputs=dict(ins), valid_probability=0.7,
                                            ready_probability=0.6, requests=requests)
    assert len(want) == 10 * dut.tile * dut.d_out
    assert mismatches == 0 and len(got) == len(want)
    # per token, one request per outlier column of its tile, in increasing column
    assert requests == [c for cols in columns for _ in range(dut.tile) for c in cols]


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("memory_latency", [1, 3])
def test_full_rate_cycles_are_the_tile_model(params, memory_latency):
    dut, ins, columns = _inputs(params, 10, 5)
    mismatches, _, _, cycles = bench_design("llm-int8-linear", params, vectors=0,
                                            inputs=dict(ins), valid_probability=1,
                                            ready_probability=1,
                                            memory_latency=memory_latency)
    assert mismatches == 0
    assert cycles == sum(dut.cycles_per_tile(c, memory_latency) for c in columns)
    # the fp path runs beside the int path: every column an outlier costs cycles, a
    # few may not; none cost the int path alone
    every = dut.cycles_per_tile(range(dut.d_in), memory_latency)
    assert every > dut.cycles_per_token * dut.tile
    assert every >= max(dut.cycles_per_tile(c, memory_latency) for c in columns)
    assert dut.cycles_per_tile((), memory_latency) == dut.cycles_per_token * dut.tile


def test_registered_at_sixteen_macs_per_cycle():
    assert "llm-int8-linear" in [d.name for d in all_designs()]
    dut = inspect("llm-int8-linear")
    assert (dut.d_in, dut.d_out, dut.lanes, dut.x_lanes, dut.fp_lanes, dut.outputs,
            dut.tile, dut.threshold, dut.out_fp16) == (64, 64, 16, 16, 4, 4, 1, 6.0, True)
    assert dut.steps_per_tile == 4 + 64 * 4
    assert dut.memory_bits["x"] == 64 * 16 and dut.memory_bits["int_results"] == 65 * 32
    assert set(dut.parts) == {"detector", "quantizer", "compaction", "int_path", "fp_path",
                              "merge"}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"x_lanes": 5}, ValueError, "x_lanes must divide d_in (64); got 5"),
    ({"lanes": 3}, ValueError, "lanes must divide d_out (64) and be at most d_in (64); got 3"),
    ({"fp_lanes": 3}, ValueError, "fp_lanes must divide d_out (64); got 3"),
    ({"outputs": 17}, ValueError, "outputs must be an integer in 1..16; got 17"),
    ({"tile": 0}, ValueError, "tile must be an integer in 1..16; got 0"),
    ({"threshold": -1.0}, ValueError,
     "threshold must be a number >= 0 (inf: no outliers); got -1.0"),
    ({"bias": "no"}, TypeError, "bias must be a bool; got 'no'"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        LLMInt8Linear(**kwargs)
    assert str(info.value) == message
