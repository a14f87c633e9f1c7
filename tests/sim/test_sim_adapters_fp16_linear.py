"""sim.adapters.fp16_linear: the input stream of hw.fp16_linear_schedule step by step
against its documented rule, the reference, the random vectors, the field checks."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from hw.fp16_linear_schedule import input_items
from sim.adapters import get_adapter
from sim.adapters.fp16_linear import special_binary16
from sim.codec import PayloadCodec
from sw import ieee
from sw.fp16_linear import fp16_linear
from sw.ieee import BINARY16, BINARY32

ADAPTER = get_adapter("fp16-linear")
PARAMS = {"d_in": 5, "d_out": 6, "lanes": 2}


def test_stream_follows_the_documented_order():
    """Item s of token t: x = X[t, s // G], w[p] = W[(s % G) P + p, s // G]."""
    dut = inspect("fp16-linear", **PARAMS)
    ins = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 3, np.random.default_rng(4)))
    stream = ADAPTER.input_stream(dut, ins)
    G, P, S = 3, 2, dut.steps_per_token
    rows = stream.rows()
    assert stream.tiled and len(stream) == 3 * S == 3 * 5 * G
    for t in range(3):
        for s in range(S):
            j, g = divmod(s, G)
            assert rows["x"][t * S + s] == ins["x"][t, j]
            assert rows["w"][t * S + s].tolist() == [ins["w"][g * P + p, j] for p in range(P)]
    explicit = input_items(dut.schedule, ins["x"], stream.steps)
    assert all(np.array_equal(explicit[k], rows[k]) for k in rows)
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    assert list(stream.pack(codec)) == codec.pack(rows)


@pytest.mark.parametrize("out_fp16", [0, 1])
def test_reference_is_sw_fp16_linear_by_output_group(out_fp16):
    dut = inspect("fp16-linear", **PARAMS, out_fp16=out_fp16)
    ins = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 4, np.random.default_rng(0)))
    got = ADAPTER.reference(dut, ins)["y"]
    y = fp16_linear(ieee.values_of(ins["x"], BINARY16), ieee.values_of(ins["w"], BINARY16))
    want = ieee.bits_of(y.astype(np.float16) if out_fp16 else y,
                        BINARY16 if out_fp16 else BINARY32)
    nan = ieee.is_nan(want, BINARY16 if out_fp16 else BINARY32)
    assert got.shape == (4 * 3, 2)
    assert np.array_equal(got.reshape(4, 6)[~nan], want[~nan])
    assert ADAPTER.output_count(dut, ins) == 12


def test_random_vectors_hold_subnormals_and_specials_first():
    dut = inspect("fp16-linear", d_in=20, d_out=2, lanes=2)
    ins = ADAPTER.random_inputs(dut, 12, np.random.default_rng(1))
    assert ((ins["x"][0] & 0x7C00) == 0).all()                   # all subnormal or zero
    assert set(special_binary16().tolist()) <= set(ins["x"][2].tolist())
    assert ((ins["x"][3:] & 0x7C00) != 0x7C00).all()              # the rest finite


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(w=d["w"][:2]), "w must have shape (6, 5); got (2, 5)"),
    (lambda d: d["x"].__setitem__((0, 0), 1 << 16), "x must be in 0..65535; got 65536"),
    (lambda d: d.update(x=d["x"][:0]), "inputs must hold at least one token; got T = 0"),
])
def test_bad_fields_get_one_line(mutate, message):
    dut = inspect("fp16-linear", **PARAMS)
    ins = ADAPTER.random_inputs(dut, 2, np.random.default_rng(0))
    mutate(ins)
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(dut, ins)
    assert str(info.value) == message
