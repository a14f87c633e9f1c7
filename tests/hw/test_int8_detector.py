"""hw.int8_detector: the outlier mask and the non-outlier absmax of binary16 blocks,
bit-exact against sw.llm_int8's rule under stalls, at its published latency."""

from __future__ import annotations

import numpy as np
import pytest

from hw.int8_detector import Int8Detector
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec
from sw import llm_int8
from tests.hw.int8_parts import threshold_pattern


def _expected(x_bits, threshold):
    mag = (x_bits & 0x7FFF).view(np.int64)
    values = np.abs(x_bits.astype(np.uint16).view(np.float16).astype(np.float64))
    outlier = values >= threshold                           # the reference's exact test
    absmax = np.where(outlier, 0, mag).max(axis=1)
    mask = (outlier * (1 << np.arange(x_bits.shape[1]))).sum(axis=1)
    return mask, absmax


def _blocks(rng, n, lanes, threshold):
    scale = min(threshold, 6e4) if 0 < threshold < np.inf else 6.0
    x = rng.standard_normal((n, lanes)) * scale * rng.choice([0.01, 0.5, 1.5], (n, 1))
    x[0] = np.float16(scale)                          # exactly at the threshold
    x[1] = np.nextafter(np.float16(scale), np.float16(0))   # just below
    x[2] = 0.0
    x[3] = rng.integers(-1023, 1024, lanes) * 2.0 ** -24    # subnormals
    return np.clip(x, -65504, 65504).astype(np.float16).view(np.uint16).astype(np.int64)


@pytest.mark.parametrize("lanes, threshold", [(16, 6.0), (5, 0.0), (8, np.inf), (3, 2.0 ** -20),
                                              (1, 6.0)])
def test_mask_and_absmax_match_the_reference_rule(lanes, threshold):
    rng = np.random.default_rng(lanes)
    bits = threshold_pattern(threshold)
    assert bits == int(llm_int8.threshold_binary16(threshold).view(np.uint16))
    dut = Int8Detector(lanes=lanes, threshold_bits=bits)
    x = _blocks(rng, 60, lanes, threshold)
    i_codec = PayloadCodec.from_layout(dut.i.payload.shape())
    o_codec = PayloadCodec.from_layout(dut.o.payload.shape())
    got, _ = run_amaranth(dut, i_codec.pack({"x": x}), len(x), valid_probability=0.7,
                          ready_probability=0.6, seed=lanes)
    out = o_codec.unpack(got)
    mask, absmax = _expected(x, threshold)
    assert np.array_equal(out["mask"], mask) and np.array_equal(out["absmax"], absmax)


def test_full_rate_at_published_latency():
    dut = Int8Detector(lanes=16, stages=2)
    x = _blocks(np.random.default_rng(0), 40, 16, 6.0)
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    got, cycles = run_amaranth(dut, codec.pack({"x": x}), len(x))
    assert len(got) == 40 and cycles == 40 + dut.latency == 42
    assert inspected(Int8Detector(lanes=16)).latency == 5   # compare, then four max levels


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, "lanes must be an integer in 1..256; got 0"),
    ({"threshold_bits": 0x7C01}, "threshold_bits must be an integer in 0..31744; got 31745"),
    ({"stages": 0}, "stages must be an integer in 1..16; got 0"),
])
def test_bad_parameters_get_one_line(kwargs, message):
    with pytest.raises(ValueError) as info:
        Int8Detector(**kwargs)
    assert str(info.value) == message
