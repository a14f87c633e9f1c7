"""Payload packing: the codec agrees with Amaranth's own layout packing."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import data

from hw.designs import inspect
from sim.codec import PayloadCodec


@pytest.mark.parametrize("design, params", [
    ("dot-array", {"lanes": 3, "block": 4}),
    ("accumulator", {"lanes": 2}),
    ("quantizer", {"block": 4, "in_width": 9}),
])
def test_pack_matches_amaranth_layouts_and_round_trips(design, params):
    component = inspect(design, **params)
    layout = component.i.payload.shape()
    codec = PayloadCodec.from_layout(layout)
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(*codec.value_range(k), size=(50,) + dims, endpoint=True)
              for k, dims in codec.shapes.items()}
    packed = codec.pack(arrays)
    back = codec.unpack(packed)
    assert all(np.array_equal(arrays[k], back[k]) for k in arrays)
    assert PayloadCodec.from_json(codec.to_json()).pack(arrays) == packed
    # cross-check every leaf against Amaranth's view of the same integer
    for n in range(3):
        view = data.Const(layout, packed[n])
        for key, dims in codec.shapes.items():
            for index in np.ndindex(*dims) if dims else [()]:
                node, positions = view, list(index)
                for part in key.split("."):
                    node = getattr(node, part)
                    while isinstance(node, data.Const) and isinstance(node.shape(),
                                                                      data.ArrayLayout):
                        node = node[positions.pop(0)]
                assert not positions
                assert int(node) == arrays[key][(n,) + index]


def test_check_names_the_bad_field():
    codec = PayloadCodec.from_layout(inspect("dot-array", lanes=1, block=2).i.payload.shape())
    good = {"x.exponent": np.zeros(3, int), "x.mantissas": np.zeros((3, 2), int),
            "w.exponent": np.zeros((3, 1), int), "w.mantissas": np.zeros((3, 1, 2), int)}
    assert codec.check(good) == 3
    with pytest.raises(ValueError,
                       match=r"^payload field 'w.mantissas' must have shape \(3, 1, 2\)"):
        codec.check({**good, "w.mantissas": np.zeros((3, 1, 3), int)})
    with pytest.raises(ValueError, match=r"^payload field 'x.exponent' must be in -128..127$"):
        codec.check({**good, "x.exponent": np.full(3, 128)})
    with pytest.raises(ValueError, match=r"^payload field 'w.exponent' is missing$"):
        codec.check({k: v for k, v in good.items() if k != "w.exponent"})


def test_partial_packs_leave_the_other_fields_zero_and_or_together():
    codec = PayloadCodec.from_layout(inspect("dot-array", lanes=3, block=4).i.payload.shape())
    rng = np.random.default_rng(5)
    arrays = {k: rng.integers(*codec.value_range(k), size=(20,) + dims, endpoint=True)
              for k, dims in codec.shapes.items()}
    x = {k: v for k, v in arrays.items() if k.startswith("x.")}
    w = {k: v for k, v in arrays.items() if k.startswith("w.")}
    assert codec.check(x, partial=True) == 20
    px, pw = codec.pack(x, partial=True), codec.pack(w, partial=True)
    assert [a | b for a, b in zip(px, pw)] == codec.pack(arrays)
    back = codec.unpack(px)
    assert all(np.array_equal(back[k], x[k]) for k in x)
    assert all(not back[k].any() for k in w)
    with pytest.raises(ValueError, match=r"^payload field 'x.mantissas' must be in -128..127$"):
        codec.pack({"x.mantissas": np.full((2, 4), 300)}, partial=True)
