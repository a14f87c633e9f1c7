"""hw.quantizer.Quantizer on Amaranth's simulator: bit-exact with sw.mxint.quantize_exact,
full rate at its published latency, parameter checks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hw.quantizer import Quantizer
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec
from sw.mxint import MXIntFormat, quantize_exact
from tests.hw.stream_checks import check_bit_exact_under_stalls, check_full_rate_at_published_latency

CONFIGS = [
    {"block": 8, "in_width": 12, "frac_bits": 4, "width": 4, "exponent_bits": 3},
    {"block": 4, "in_width": 20, "frac_bits": -3, "width": 8, "stages": 2},
    {"block": 16, "in_width": 16, "frac_bits": 8, "width": 8, "stages": 6},
    {"block": 1, "in_width": 9, "frac_bits": 0, "width": 3, "stages": 8},
]


@pytest.mark.parametrize("params", CONFIGS)
def test_bit_exact_under_stalls_and_back_pressure(params):
    check_bit_exact_under_stalls("quantizer", params)


@pytest.mark.parametrize("params", CONFIGS)
def test_full_rate_and_published_latency(params):
    check_full_rate_at_published_latency("quantizer", params)


def _run(q, fields, n, **kw):
    codec = PayloadCodec.from_layout(q.i.payload.shape())
    got, _ = run_amaranth(q, codec.pack(fields), n, **kw)
    return PayloadCodec.from_layout(q.o.payload.shape()).unpack(got)


def test_ties_away_matches_the_reference():
    fmt = MXIntFormat(width=4, block=4, exponent_bits=4, rounding="away")
    q = Quantizer(out_format=fmt, in_width=10, frac_bits=5)
    rng = np.random.default_rng(5)
    values = rng.integers(-512, 512, (200, 4)) >> rng.integers(0, 10, (200, 1))
    out = _run(q, {"values": values}, 200)
    ref = quantize_exact(values, -5, fmt)
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


@pytest.mark.parametrize("block, stages", [(4, 1), (4, 3), (8, 8), (1, 2)])
def test_per_element_exponents_match_the_reference(block, stages):
    fmt = MXIntFormat(width=8, block=block, exponent_bits=5)
    q = Quantizer(out_format=fmt, in_width=24, lsb_width=7, stages=stages)
    rng = np.random.default_rng(6)
    values = rng.integers(-2 ** 23, 2 ** 23, (200, block)) >> rng.integers(0, 24, (200, block))
    lsbs = rng.integers(-64, 64, (200, block))
    out = _run(q, {"values": values, "lsbs": lsbs}, 200, valid_probability=0.7,
               ready_probability=0.7)
    assert q.latency == stages
    ref = quantize_exact(values, lsbs, fmt)
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


@pytest.mark.parametrize("in_width, frac_bits, width, exponent_bits, rounding", [
    (12, -6, 4, 3, "even"), (16, 8, 8, 2, "away"), (10, 0, 8, 3, "even"), (20, 12, 6, 2, "even")])
def test_fixed_point_saturation_where_the_exponent_clamps(in_width, frac_bits, width,
                                                          exponent_bits, rounding):
    """Fixed-point mode with exponent ranges too small for the input: blocks whose shared
    exponent clamps at the maximum saturate their large elements, which the shifter no
    longer sees (a flag from the shift table and the element's bits above a constant)."""
    fmt = MXIntFormat(width=width, block=8, exponent_bits=exponent_bits, rounding=rounding)
    q = Quantizer(out_format=fmt, in_width=in_width, frac_bits=frac_bits, stages=7)
    n = max(300, int(os.environ.get("LQER_VECTORS", "0")) // 1000)
    rng = np.random.default_rng(8)
    top = 1 << (in_width - 1)
    values = rng.integers(-top, top, (n, 8)) >> rng.integers(0, in_width, (n, 8))
    out = _run(q, {"values": values}, n, valid_probability=0.8, ready_probability=0.8)
    ref = quantize_exact(values, -frac_bits, fmt)
    assert (np.abs(ref.mantissas) == fmt.mantissa_max).sum() > n // 4  # saturation exercised
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


def test_per_element_saturation_at_the_layers_widths():
    """``lqer-linear``'s requantizer (33-bit inputs, 10-bit exponents, 19 stages) where
    saturation is decided: exponents beyond the format's range on some elements only (the
    shared exponent clamps, the others stay in range or underflow), magnitudes just below
    a power of two (the rounding carries out) and zeros. The shifter keeps only the bits
    the rounding reads; a bit above the mantissa comes from ``bit_length > shift``.
    ``LQER_VECTORS`` / 1000 vectors (at least 400)."""
    fmt = MXIntFormat(width=8, block=16, exponent_bits=8)
    q = Quantizer(out_format=fmt, in_width=33, lsb_width=10, stages=19)
    n = max(400, int(os.environ.get("LQER_VECTORS", "0")) // 1000)
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 33, (n, 16))
    mags = np.where(rng.random((n, 16)) < 0.5, (1 << lengths) - 1,
                    rng.integers(0, 1 << 32, (n, 16)) >> (32 - lengths))
    values = np.where(rng.random((n, 16)) < 0.5, -mags, mags)
    emax = fmt.exponent_range[1]
    # per row, an lsb near where the clamp starts, spread over the elements
    base = rng.integers(emax - 40, emax + 8, (n, 1))
    lsbs = np.clip(base - rng.integers(0, 40, (n, 16)), -512, 511)
    lsbs = np.where(rng.random((n, 16)) < 0.1, rng.integers(-512, 512, (n, 16)), lsbs)
    out = _run(q, {"values": values, "lsbs": lsbs}, n, valid_probability=0.8,
               ready_probability=0.8)
    ref = quantize_exact(values, lsbs, fmt)
    assert (np.abs(ref.mantissas) == fmt.mantissa_max).sum() > n  # saturation exercised
    assert np.array_equal(out["exponent"], ref.exponents[:, 0])
    assert np.array_equal(out["mantissas"], ref.mantissas)


@pytest.mark.parametrize("make, error, message", [
    (lambda: Quantizer(in_width=60), ValueError, "in_width must be an integer in 2..52; got 60"),
    (lambda: Quantizer(stages=0), ValueError, "stages must be an integer in 1..20; got 0"),
    (lambda: Quantizer(out_format=MXIntFormat(flavour="lqer")), ValueError,
     'out_format.flavour must be "ocp" in hardware; got \'lqer\''),
    (lambda: Quantizer(out_format=8), TypeError,
     "out_format must be an sw.mxint.MXIntFormat; got 8"),
    (lambda: Quantizer(in_width=16.0), TypeError, "in_width must be an integer in 2..52; got 16.0"),
])
def test_parameters_are_validated_with_one_line_messages(make, error, message, recwarn):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
    import gc
    gc.collect()  # a rejected component is no "created but never used" one
    assert not [w for w in recwarn if "never used" in str(w.message)]
