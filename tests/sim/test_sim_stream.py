"""sim.stream: flat and tiled input streams, lazy packing, files that do not grow with the
weights' repetition."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import data
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.codec import PayloadCodec
from sim.stream import InputStream, PackedItems

# a payload like the LQER datapath's: an activation block beside two weight blocks
BLOCK = data.StructLayout({"exponent": 5, "mantissas": data.ArrayLayout(4, 3)})
LAYOUT = data.StructLayout({"x": BLOCK, "w": data.ArrayLayout(BLOCK, 2)})


def _tiled(rng, tokens, steps, blocks):
    x = {"x.mantissas": rng.integers(0, 16, (tokens, blocks, 3)),
         "x.exponent": rng.integers(0, 32, (tokens, blocks))}
    w = {"w.mantissas": rng.integers(0, 16, (steps, 2, 3)),
         "w.exponent": rng.integers(0, 32, (steps, 2))}
    return InputStream(tokens=x, steps=w, index=rng.integers(0, blocks, steps))


@settings(max_examples=60, deadline=None)
@given(tokens=st.integers(1, 5), steps=st.integers(1, 7), blocks=st.integers(1, 4),
       seed=st.integers(0, 2 ** 32 - 1))
def test_tiled_items_are_the_explicit_rows(tokens, steps, blocks, seed):
    stream = _tiled(np.random.default_rng(seed), tokens, steps, blocks)
    codec = PayloadCodec(*_codec_args())
    rows = stream.rows()
    assert len(stream) == tokens * steps == len(rows["x.exponent"])
    for t in range(tokens):
        for s in range(steps):
            k = t * steps + s
            assert rows["x.exponent"][k] == stream.tokens["x.exponent"][t, stream.index[s]]
            assert np.array_equal(rows["w.mantissas"][k], stream.steps["w.mantissas"][s])
    assert list(stream.pack(codec)) == codec.pack(rows)


def _codec_args():
    codec = PayloadCodec.from_layout(LAYOUT)
    return codec.leaves, codec.width


def test_flat_stream_packs_like_the_codec():
    codec = PayloadCodec.from_layout(LAYOUT)
    rng = np.random.default_rng(1)
    arrays = {"x.mantissas": rng.integers(0, 16, (9, 3)), "x.exponent": rng.integers(0, 32, 9),
              "w.mantissas": rng.integers(0, 16, (9, 2, 3)),
              "w.exponent": rng.integers(0, 32, (9, 2))}
    stream = InputStream(arrays)
    assert not stream.tiled and len(stream) == 9 and stream.steps_per_token == 1
    assert list(stream.pack(codec)) == codec.pack(arrays)


def test_save_and_load_round_trip_with_small_dtypes(tmp_path):
    stream = _tiled(np.random.default_rng(2), 4, 6, 3)
    size = stream.save(tmp_path / "s.npz")
    assert size == (tmp_path / "s.npz").stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left
    with np.load(tmp_path / "s.npz") as npz:
        assert {npz[k].dtype for k in npz.files if k != "index"} == {np.dtype(np.int8)}
    back = InputStream.load(tmp_path / "s.npz")
    assert back.tiled and np.array_equal(back.index, stream.index)
    for part in ("tokens", "steps"):
        a, b = getattr(stream, part), getattr(back, part)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        assert all(v.dtype == np.int64 for v in b.values())


def test_file_grows_with_tokens_by_the_token_part_only(tmp_path):
    """The per-step part is stored once: T tokens cost T times the token blocks, not T
    times the steps."""
    rng = np.random.default_rng(3)
    steps = {"w.mantissas": rng.integers(-7, 8, (500, 2, 3)),
             "w.exponent": rng.integers(-9, 9, (500, 2))}
    sizes = {}
    for tokens in (1, 400):
        x = {"x.mantissas": rng.integers(-7, 8, (tokens, 4, 3)),
             "x.exponent": rng.integers(-9, 9, (tokens, 4))}
        sizes[tokens] = InputStream(x, steps, np.arange(500) % 4).save(tmp_path / f"{tokens}.npz")
    per_token = 4 * 3 + 4  # int8 mantissas and exponents of one token's blocks
    assert sizes[400] - sizes[1] <= 399 * per_token + 64
    assert sizes[1] >= 500 * (2 * 3 + 2)  # the steps are really in the file


@pytest.mark.parametrize("tokens, steps, index, message", [
    ({}, {}, None, "an input stream needs at least one token field"),
    ({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, {}, None,
     "token fields must share their first dimension"),
    ({"a": np.zeros((3, 2))}, {"w": np.zeros(5)}, None, "a tiled input stream needs an index"),
    ({"a": np.zeros((3, 2))}, {"w": np.zeros(5)}, np.array([0, 1, 2, 0, 1]),
     "index must lie in 0..1"),
    ({"a": np.zeros((3, 2))}, {"w": np.zeros(4)}, np.array([0, 1, 1, 0, 1]),
     "step field 'w' must have 5 rows; got (4,)"),
])
def test_inconsistent_parts_are_refused(tokens, steps, index, message):
    with pytest.raises(ValueError) as info:
        InputStream(tokens, steps, index)
    assert str(info.value).startswith(message)


def test_packing_names_a_missing_field_and_items_check_their_index():
    codec = PayloadCodec.from_layout(LAYOUT)
    stream = InputStream({"x.mantissas": np.zeros((2, 3), int), "x.exponent": np.zeros(2, int)})
    with pytest.raises(ValueError, match=r"^payload field 'w.exponent' is missing$"):
        stream.pack(codec)
    items = PackedItems([5, 6], [1, 2, 4], np.array([0, 0, 0]), blocks=1)
    assert list(items) == [5 | 1, 5 | 2, 5 | 4, 6 | 1, 6 | 2, 6 | 4]
    assert items[-1] == 6 | 4
    with pytest.raises(IndexError):
        items[6]
