"""sim.adapters.llm_int8_linear: the input stream of hw.llm_int8_schedule step by step
against its documented rule, the gather memory's answers, the reference (sw.llm_int8.linear
with the tile as detection group), the random outlier patterns, the field checks; the
w8a8-linear adapter (the same stream, no gather, sw.llm_int8.w8a8_linear)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter
from sim.adapters.llm_int8_linear import tie_values, weight_fields
from sim.codec import PayloadCodec
from sw import ieee, llm_int8
from sw.ieee import BINARY16, BINARY32

ADAPTER = get_adapter("llm-int8-linear")
PARAMS = {"d_in": 12, "d_out": 6, "x_lanes": 4, "lanes": 3, "fp_lanes": 2, "outputs": 2,
          "tile": 2, "bias": 1}


def _inputs(params, n, seed):
    dut = inspect("llm-int8-linear", **params)
    return dut, ADAPTER.validate(dut, ADAPTER.random_inputs(dut, n, np.random.default_rng(seed)))


def test_stream_follows_the_documented_order():
    """Tile n: step s < T nx carries X[n T + s % T, (s // T) B ..]; token step
    T nx + t d_in G + g d_in + j carries W_i8[g P .., j] and, for j < P, the constants of
    output g P + j."""
    dut, ins = _inputs(PARAMS, 4, 3)
    s = dut.schedule
    T, B, P, G, nx, d_in = 2, 4, 3, 2, 3, 12
    assert (s.x_steps, s.steps) == (T * nx, T * nx + T * d_in * G)
    stream = ADAPTER.input_stream(dut, ins)
    rows = stream.rows()
    assert stream.tiled and len(stream) == 2 * s.steps
    scale = ieee.bits_of(ADAPTER._weight(ins).int_scale(), BINARY32)
    for n in range(2):
        for step in range(s.steps):
            k = n * s.steps + step
            if step < s.x_steps:
                c, t = divmod(step, T)
                assert rows["x"][k].tolist() == ins["x"][n * T + t, c * B:c * B + B].tolist()
                assert not rows["w"][k].any() and rows["c.scale"][k] == 0
                continue
            t, rest = divmod(step - s.x_steps, d_in * G)
            g, j = divmod(rest, d_in)
            assert rows["w"][k].tolist() == ins["w_codes"][g * P:g * P + P, j].tolist()
            want = (scale[g * P + j], ins["bias"][g * P + j]) if j < P else (0, 0)
            assert (rows["c.scale"][k], rows["c.bias"][k]) == want
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    assert list(stream.pack(codec)) == codec.pack(rows)


def test_gather_memory_answers_a_column_with_its_pieces():
    dut, ins = _inputs(PARAMS, 2, 0)
    arrays, pieces = ADAPTER.gather_memory(dut, ins)
    assert pieces == 3 and arrays["w"].shape == (12 * 3, 2)
    for j in (0, 5, 11):
        for g in range(3):
            assert arrays["w"][j * 3 + g].tolist() == ins["w_outlier"][g * 2:g * 2 + 2, j].tolist()


@pytest.mark.parametrize("out_fp16, tile", [(1, 2), (0, 1)])
def test_reference_is_sw_llm_int8_linear(out_fp16, tile):
    dut, ins = _inputs({**PARAMS, "out_fp16": out_fp16, "tile": tile}, 6, 1)
    got = ADAPTER.reference(dut, ins)["y"]
    weight = llm_int8.Int8Weight(codes=ins["w_codes"].astype(np.int8),
                                 absmax=ieee.values_of(ins["w_absmax"], BINARY16),
                                 weight16=ieee.values_of(ins["w_outlier"], BINARY16))
    y = llm_int8.linear(ieee.values_of(ins["x"], BINARY16), weight,
                        ieee.values_of(ins["bias"], BINARY32), threshold=6.0, group=tile,
                        outlier_weights="fp16").y
    want = ieee.bits_of(y.astype(np.float16), BINARY16) if out_fp16 else \
        ieee.bits_of(y, BINARY32)
    assert np.array_equal(got, want.reshape(-1))
    assert ADAPTER.output_count(dut, ins) == 6 * 6


def test_weight_fields_hold_the_dequantized_or_original_weights():
    w = np.random.default_rng(0).standard_normal((4, 8))
    q = llm_int8.quantize_weight(w, keep_fp16=True)
    f = weight_fields(w)
    assert np.array_equal(f["w_codes"], q.codes)
    assert np.array_equal(f["w_outlier"], ieee.bits_of(q.dequantized16(), BINARY16))
    assert np.array_equal(weight_fields(w, outlier_weights="fp16")["w_outlier"],
                          ieee.bits_of(w.astype(np.float16), BINARY16))


def test_random_tokens_cycle_through_the_outlier_patterns():
    dut, ins = _inputs({**PARAMS, "tile": 1, "d_in": 16, "x_lanes": 8, "outputs": 3}, 10, 2)
    counts = [len(c) for c in ADAPTER.outlier_columns(dut, ins)]
    # none, one, M, M + 1 (one chunk: an extra pass), first and last, a quarter of d_in
    assert counts[:6] == [0, 1, 3, 4, 2, 4]
    cols = ADAPTER.outlier_columns(dut, ins)
    assert cols[4] == [0, 15] and cols[3][-1] // 8 == cols[3][0] // 8
    x = ieee.values_of(ins["x"], BINARY16)
    r = np.float32(1) / np.float32(1.984375) * np.float32(127)
    ties = (x[6].astype(np.float32) * np.float32(r)).astype(np.float64)
    assert (ties[1:] % 1 == 0.5).all()                          # round-half-even decides
    assert np.isin(np.abs(x[6, 1:]), tie_values(1.984375)).all()
    assert ((ins["x"][8] & 0x7C00) == 0).all() and (x[9] == 0).all()   # subnormal, zero


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(x=d["x"][:3]), "x must hold a multiple of tile (2) tokens; got 3"),
    (lambda d: d["x"].__setitem__((1, 2), 0x7C00),
     "x must be finite binary16 patterns; got 0x7c00 at (1, 2)"),
    (lambda d: d["w_codes"].__setitem__((0, 0), -128), "w_codes must be in -127..127; got -128"),
    (lambda d: d.update(w_absmax=d["w_absmax"][:2]), "w_absmax must have shape (6,); got (2,)"),
])
def test_bad_fields_get_one_line(mutate, message):
    dut = inspect("llm-int8-linear", **PARAMS)
    ins = ADAPTER.random_inputs(dut, 4, np.random.default_rng(0))
    mutate(ins)
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(dut, ins)
    assert str(info.value) == message


W8A8 = get_adapter("w8a8-linear")
W8A8_PARAMS = {"d_in": 12, "d_out": 6, "x_lanes": 4, "lanes": 3, "bias": 1}


def test_w8a8_takes_the_same_stream_without_outlier_weights_or_gather():
    w8a8 = inspect("w8a8-linear", **W8A8_PARAMS)
    llm = inspect("llm-int8-linear", **W8A8_PARAMS, fp_lanes=2, outputs=2)
    ins = ADAPTER.validate(llm, ADAPTER.random_inputs(llm, 3, np.random.default_rng(4)))
    mine = W8A8.validate(w8a8, {k: v for k, v in ins.items() if k != "w_outlier"})
    assert [f.name for f in W8A8.input_fields(w8a8)] == ["x", "w_codes", "w_absmax", "bias"]
    a, b = W8A8.input_stream(w8a8, mine).rows(), ADAPTER.input_stream(llm, ins).rows()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert W8A8.gather_memory is None and W8A8.outlier_columns(w8a8, mine) == [[], [], []]
    assert "w_outlier" not in W8A8.random_inputs(w8a8, 2, np.random.default_rng(0))


@pytest.mark.parametrize("out_fp16", [1, 0])
def test_w8a8_reference_is_sw_llm_int8_w8a8_linear(out_fp16):
    dut = inspect("w8a8-linear", **W8A8_PARAMS, out_fp16=out_fp16)
    ins = W8A8.validate(dut, W8A8.random_inputs(dut, 10, np.random.default_rng(1)))
    weight = llm_int8.Int8Weight(codes=ins["w_codes"].astype(np.int8),
                                 absmax=ieee.values_of(ins["w_absmax"], BINARY16))
    x = ieee.values_of(ins["x"], BINARY16)
    y = llm_int8.w8a8_linear(x, weight, ieee.values_of(ins["bias"], BINARY32)).y
    want = ieee.bits_of(y.astype(np.float16), BINARY16) if out_fp16 else \
        ieee.bits_of(y, BINARY32)
    assert np.array_equal(W8A8.reference(dut, ins)["y"], want.reshape(-1))
    # the random tokens hold entries that LLM.int8() at 6.0 would take as outliers
    assert (np.abs(x) >= 6.0).any(axis=1).sum() >= 4
    assert W8A8.output_count(dut, ins) == 10 * 6


def test_w8a8_bad_fields_get_one_line():
    dut = inspect("w8a8-linear", **W8A8_PARAMS)
    ins = W8A8.random_inputs(dut, 2, np.random.default_rng(0))
    ins["x"][1, 2] = 0xFC00
    with pytest.raises(ValueError) as info:
        W8A8.validate(dut, ins)
    assert str(info.value) == "x must be finite binary16 patterns; got 0xfc00 at (1, 2)"
