"""hw.int8_compaction: outlier masks to dense lists of column indices, pass by pass, against
a plain model (the set bits of each chunk in increasing order, M per pass), under stalls;
passes per chunk at full rate; non-power-of-two chunk widths; parameter errors."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from hw.int8_compaction import LATENCY, Int8Compaction, passes
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec


def _masks(rng, n, lanes, outputs):
    """Chunks with 0, 1, M, M + 1, every and random bits set (the last one non-empty)."""
    full = (1 << lanes) - 1
    fixed = [0, 1, 1 << (lanes - 1), (1 << min(outputs, lanes)) - 1,
             (1 << min(outputs + 1, lanes)) - 1, full]
    rand = [int(v) for v in rng.integers(0, full + 1, n - len(fixed) - 1)]
    return fixed + rand + [full]


def _expected(masks, chunks, lanes, outputs):
    items = []
    for k, mask in enumerate(masks):
        cols = [(k % chunks) * lanes + b for b in range(lanes) if mask >> b & 1]
        items += [cols[p:p + outputs] for p in range(0, len(cols), outputs)]
    return items


def _run(dut, masks, chunks, **stalls):
    i_codec = PayloadCodec.from_layout(dut.i.payload.shape())
    o_codec = PayloadCodec.from_layout(dut.o.payload.shape())
    items = i_codec.pack({"mask": np.array(masks, dtype=object),
                          "chunk": np.arange(len(masks)) % chunks})
    want = _expected(masks, chunks, dut.lanes, dut.outputs)
    got, cycles = run_amaranth(dut, items, len(want), **stalls)
    out = o_codec.unpack(got)
    lists = [out["columns"][k][:out["count"][k]].tolist() for k in range(len(got))]
    return lists, want, cycles


@pytest.mark.parametrize("lanes, outputs, chunks", [(16, 4, 4), (8, 3, 5), (6, 6, 3),
                                                    (1, 1, 7), (12, 1, 2)])
def test_lists_match_the_set_bits_under_stalls(lanes, outputs, chunks):
    dut = Int8Compaction(lanes=lanes, outputs=outputs, chunks=chunks)
    masks = _masks(np.random.default_rng(lanes * 7 + outputs), 40, lanes, outputs)
    got, want, _ = _run(dut, masks, chunks, valid_probability=0.7, ready_probability=0.6,
                        seed=outputs)
    assert got == want
    assert dut.column_bits == max(1, (chunks * lanes - 1).bit_length())


@pytest.mark.parametrize("lanes, outputs", [(16, 4), (8, 3)])
def test_full_rate_takes_the_published_passes(lanes, outputs):
    dut = Int8Compaction(lanes=lanes, outputs=outputs, chunks=4)
    masks = _masks(np.random.default_rng(1), 30, lanes, outputs)
    got, want, cycles = _run(dut, masks, 4)
    assert got == want
    # one cycle per pass, an empty chunk one cycle; the first list the published latency
    # after the first chunk's take
    assert dut.latency == LATENCY == 3
    assert cycles == sum(passes(bin(m).count("1"), outputs) for m in masks) + dut.latency


def test_passes_rule():
    assert [passes(n, 4) for n in (0, 1, 4, 5, 8, 9, 16)] == [1, 1, 1, 2, 2, 3, 4]


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, "lanes must be an integer in 1..256; got 0"),
    ({"lanes": 4, "outputs": 5}, "outputs must be an integer in 1..4; got 5"),
    ({"chunks": 0}, "chunks must be an integer in 1..65536; got 0"),
])
def test_bad_parameters_get_one_line(kwargs, message):
    with pytest.raises(ValueError) as info:
        Int8Compaction(**kwargs)
    assert str(info.value) == message


def test_input_ready_is_a_register():
    """``i.ready`` is a flip-flop ("the spare entry is empty"): nothing upstream waits on
    the pass control (the compaction's clock path inside llm-int8-linear, docs/synth.md)."""
    dut = Int8Compaction(lanes=16, outputs=4, chunks=4)
    text = rtlil.convert(dut)
    assert "connect \\Q \\i__ready\n" in text
