"""LLMInt8Linear on Amaranth's simulator: bit-exact against sw.llm_int8.linear under stalls
on every stream (the gather's too), the gather requests in the contract's order, full-rate
cycles equal to the schedule's tile model, the registry entry and the parameter checks;
the same without the outlier path (w8a8-linear, against sw.llm_int8.w8a8_linear)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import all_designs, inspect
from hw.llm_int8_linear import LLMInt8Linear
from hw.llm_int8_schedule import (FIFO_LATENCY, GATHER_LATENCY, MERGE_FIFO_LATENCY,
                                   REQUEST_LATENCY, TOKEN_END_LATENCY)
from sim.adapters import get_adapter
from sim.amaranth_bench import bench_design

ADAPTER = get_adapter("llm-int8-linear")
W8A8 = get_adapter("w8a8-linear")
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
    # the count stops at the last output: the last tile's end (TOKEN_END_LATENCY) is not in it
    assert cycles == sum(dut.cycles_per_tile(c, memory_latency) for c in columns) \
        - TOKEN_END_LATENCY
    # the fp path runs beside the int path: every column an outlier costs cycles, a
    # few may not; none cost the int path alone
    every = dut.cycles_per_tile(range(dut.d_in), memory_latency)
    assert every > dut.cycles_per_token * dut.tile
    assert every >= max(dut.cycles_per_tile(c, memory_latency) for c in columns)
    assert dut.cycles_per_tile((), memory_latency) == dut.cycles_per_token * dut.tile


@pytest.mark.parametrize("memory_latency", [3, 6, 8])
def test_a_slow_weight_memory_paces_every_outlier_column(memory_latency):
    """Every column an outlier (|x| = 12 > 6): the fp path paces the token, and from a
    memory latency of 4 the response, not the pending activation (GATHER_LATENCY), paces
    each request; the request buffer's cycle (REQUEST_LATENCY) is in the count."""
    params = CASES["small"]
    dut = inspect("llm-int8-linear", **params)
    ins = ADAPTER.random_inputs(dut, 2 * dut.tile, np.random.default_rng(3))
    ins["x"] = np.broadcast_to(np.where(np.arange(dut.d_in) % 2, 0xCA00, 0x4A00),
                               ins["x"].shape).copy()   # binary16 -12.0 and 12.0
    ins = ADAPTER.validate(dut, ins)
    columns = ADAPTER.outlier_columns(dut, ins)
    assert columns == [list(range(dut.d_in))] * 2
    mismatches, _, _, cycles = bench_design("llm-int8-linear", params, vectors=0,
                                            inputs=dict(ins), valid_probability=1,
                                            ready_probability=1,
                                            memory_latency=memory_latency)
    assert mismatches == 0
    assert cycles == 2 * dut.cycles_per_tile(columns[0], memory_latency) - TOKEN_END_LATENCY
    if memory_latency > GATHER_LATENCY - REQUEST_LATENCY:
        assert dut.cycles_per_tile(columns[0], memory_latency) > \
            dut.cycles_per_tile(columns[0], GATHER_LATENCY - REQUEST_LATENCY)


@pytest.mark.parametrize("params", [CASES["tile2-bias-fp32"], CASES["m1"]],
                         ids=["tile2-bias-fp32", "m1"])
def test_fp_bound_tile_cycles_are_the_tile_model(params):
    """Every column an outlier and the weight memory answering in one cycle: the gather
    (request, x memory read, pick, pending FIFO: GATHER_LATENCY) paces the fp path, which
    paces the token; the RTL takes the model's cycles."""
    from sw import ieee
    dut, ins, _ = _inputs(params, 2, 3)
    x = np.full(ins["x"].shape, 8.0) * np.random.default_rng(4).choice([-1, 1], ins["x"].shape)
    ins = dict(ins, x=ieee.bits_of(x.astype(np.float16), ieee.BINARY16))
    columns = ADAPTER.outlier_columns(dut, ins)
    assert all(len(c) == dut.d_in for c in columns)
    mismatches, _, _, cycles = bench_design("llm-int8-linear", params, vectors=0, inputs=ins,
                                            valid_probability=1, ready_probability=1,
                                            memory_latency=1)
    assert mismatches == 0
    assert cycles == sum(dut.cycles_per_tile(c, 1) for c in columns) - TOKEN_END_LATENCY
    assert cycles > 2 * dut.cycles_per_token * dut.tile   # the fp path sets the pace


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


# w8a8-linear: LLMInt8Linear(outliers=False)
W8A8_CASES = {
    "small": {"d_in": 16, "d_out": 8, "x_lanes": 4, "lanes": 4},
    # bias, binary32 outputs, three chunks, three groups
    "bias-fp32": {"d_in": 24, "d_out": 12, "x_lanes": 8, "lanes": 4, "bias": 1, "out_fp16": 0},
    # int lanes = d_in, one chunk
    "one-chunk": {"d_in": 8, "d_out": 8, "x_lanes": 8, "lanes": 8},
}


def _w8a8_bench(params, seed, probability):
    """10 random tokens through ``w8a8-linear`` at ``params``, input valid and output ready
    with ``probability``: ``(dut, inputs, (mismatches, got, want, cycles))``."""
    dut = inspect("w8a8-linear", **params)
    ins = W8A8.validate(dut, W8A8.random_inputs(dut, 10, np.random.default_rng(seed)))
    return dut, ins, bench_design("w8a8-linear", params, vectors=0, inputs=dict(ins),
                                  valid_probability=probability[0],
                                  ready_probability=probability[1])


@pytest.mark.parametrize("params", W8A8_CASES.values(), ids=W8A8_CASES.keys())
def test_w8a8_amaranth_sim_matches_reference_with_stalls(params):
    from sw import ieee, llm_int8
    dut, ins, (mismatches, got, want, _) = _w8a8_bench(params, 7, (0.7, 0.6))
    assert len(want) == 10 * dut.d_out
    assert mismatches == 0 and len(got) == len(want)
    # the reference is LLM.int8() at threshold infinity, which the tokens' large entries
    # (the outlier patterns at 6 and more) would have made outliers at the default 6.0
    x = ieee.values_of(ins["x"], ieee.BINARY16)
    assert llm_int8.quantize_rows(x, threshold=6.0, group=1).outlier_columns.any()


@pytest.mark.parametrize("params", W8A8_CASES.values(), ids=W8A8_CASES.keys())
def test_w8a8_full_rate_cycles_are_the_tile_model(params):
    dut, _, (mismatches, _, _, cycles) = _w8a8_bench(params, 5, (1, 1))
    assert mismatches == 0
    assert cycles + TOKEN_END_LATENCY == 10 * dut.cycles_per_tile() == 10 * dut.cycles_per_token
    # the outlier design at the same shape, with no outlier: the merge's latency more,
    # and the int results FIFO's fabric register in front of it
    llm = inspect("llm-int8-linear", **params, fp_lanes=1, outputs=1)
    merge = llm.parts["merge"].latency + MERGE_FIFO_LATENCY - FIFO_LATENCY
    rounding = dut.parts["to_fp16"].latency if dut.out_fp16 else 0
    assert llm.cycles_per_token - dut.cycles_per_token == merge - rounding > 0
    assert llm.latency - dut.latency == merge - rounding


def test_w8a8_registered_without_the_outlier_path():
    dut = inspect("w8a8-linear")
    assert not dut.outliers and set(dut.signature.members) == {"i", "o"}
    assert (dut.d_in, dut.d_out, dut.lanes, dut.x_lanes, dut.tile, dut.out_fp16, dut.bias) == \
        (64, 64, 16, 16, 1, True, False)
    assert (dut.fp_lanes, dut.outputs, dut.column_bits, dut.threshold) == \
        (None, None, None, float("inf"))
    assert dut.parts["detector"].threshold_bits == 0x7C00       # absmax only
    assert set(dut.parts) == {"detector", "quantizer", "int_path", "to_fp16"}
    assert set(inspect("w8a8-linear", out_fp16=0).parts) == {"detector", "quantizer", "int_path"}
    # the same input stream as llm-int8-linear's
    llm = inspect("llm-int8-linear")
    assert dut.steps_per_tile == llm.steps_per_tile == 4 + 64 * 4
    assert dut.i.payload.shape() == llm.i.payload.shape()
    assert dut.memory_bits == {"x": 64 * 16, "codes": 64 * 8, "int_results": 65 * 16}
    with pytest.raises(ValueError, match=r"^outlier_columns must be empty without the outlier "
                                         r"path; got 1 columns$"):
        dut.cycles_per_tile([3])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"fp_lanes": 2}, ValueError,
     "fp_lanes must not be given without the outlier path (outliers=False); got 2"),
    ({"threshold": 6.0}, ValueError,
     "threshold must not be given without the outlier path (outliers=False); got 6.0"),
    ({"tile": 2}, ValueError,
     "tile must be 1 without the outlier path (it is the detection group); got 2"),
    ({"outliers": "no"}, TypeError, "outliers must be a bool; got 'no'"),
])
def test_w8a8_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        LLMInt8Linear(**{"outliers": False, **kwargs})
    assert str(info.value) == message
