"""The PyTorch bit-true arithmetic against the NumPy reference (sw.mxint, sw.blockmath), bit for bit."""

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sw import bittrue
from sw.blockmath import accumulate as ref_accumulate
from sw.blockmath import block_matmul_partials, rshift_round as ref_rshift_round
from sw.lqer_reference import reference_lqer_linear, transpose
from sw.mxint import MXIntFormat, quantize, quantize_exact

VECTORS = int(os.environ.get("LQER_VECTORS", "200"))
SEED = int(os.environ.get("LQER_SEED", "1"))


def _mx(q):
    """A reference MXQuantized (blocked along axis 1) as a bittrue.MXTensor."""
    assert q.axis == 1
    return bittrue.MXTensor(torch.from_numpy(q.mantissas.astype(np.int16)),
                            torch.from_numpy(q.exponents.astype(np.int16)), q.format)


def _random_matrix(rng, shape, spread=6):
    """Values with per-element magnitudes over 2**+-spread, some zero blocks and exact powers of two."""
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, size=shape))
    x[rng.random(shape) < 0.05] = 0.0
    x[rng.random(shape) < 0.03] = np.exp2(rng.integers(-4, 4))
    return x.astype(np.float32)


@pytest.mark.parametrize("n,block,xw,ww", [(16, 16, 8, 4), (40, 16, 8, 8), (7, 4, 8, 3), (64, 32, 8, 8)])
def test_block_partials_match_reference(n, block, xw, ww):
    rng = np.random.default_rng(SEED)
    qx = quantize(_random_matrix(rng, (9, n)), width=xw, block=block, axis=1)
    qw = quantize(_random_matrix(rng, (5, n)), width=ww, block=block, axis=1)
    ref_sums, ref_lsb = block_matmul_partials(qx, qw)
    sums, lsb = bittrue.block_partials(_mx(qx), _mx(qw))
    np.testing.assert_array_equal(sums.numpy(), ref_sums)
    np.testing.assert_array_equal(lsb.numpy(), ref_lsb)


@settings(max_examples=max(20, VECTORS // 4), deadline=None)
@given(seed=st.integers(0, 2**32 - 1), guard=st.sampled_from([0, 1, 3, 8, 16]),
       rounding=st.sampled_from(["even", "floor"]), n=st.integers(1, 12))
def test_accumulate_matches_reference(seed, guard, rounding, n):
    rng = np.random.default_rng(seed)
    sums = rng.integers(-2**19, 2**19, size=(6, n))
    sums[rng.random(sums.shape) < 0.2] = 0
    lsb = rng.integers(-300, 20, size=(6, n))
    ref = ref_accumulate(sums, lsb, guard_bits=guard, rounding=rounding)
    got = bittrue.accumulate(torch.from_numpy(sums), torch.from_numpy(lsb), guard_bits=guard,
                             rounding=rounding)
    np.testing.assert_array_equal(got[0].numpy(), ref[0])
    np.testing.assert_array_equal(got[1].numpy(), ref[1])


def test_accumulate_exact_mode_matches_reference():
    rng = np.random.default_rng(SEED)
    sums = rng.integers(-2**15, 2**15, size=(50, 8))
    sums[rng.random(sums.shape) < 0.2] = 0
    sums[0] = 0  # an all-zero row
    lsb = rng.integers(-30, -10, size=(50, 8))
    ref = ref_accumulate(sums, lsb, guard_bits=None)
    got = bittrue.accumulate(torch.from_numpy(sums), torch.from_numpy(lsb), guard_bits=None)
    np.testing.assert_array_equal(got[0].numpy(), ref[0])
    np.testing.assert_array_equal(got[1].numpy(), ref[1])


@pytest.mark.parametrize("rounding", ["even", "floor"])
def test_rshift_round_matches_reference(rounding):
    rng = np.random.default_rng(SEED)
    v = rng.integers(-2**40, 2**40, size=4000)
    r = rng.integers(0, 70, size=4000)
    v[:8] = [5, -5, 6, -6, 7, -7, 8, -8]  # ties at r = 1, 2
    r[:8] = [1, 1, 2, 2, 1, 1, 4, 4]
    np.testing.assert_array_equal(
        bittrue.rshift_round(torch.from_numpy(v), torch.from_numpy(r), rounding).numpy(),
        ref_rshift_round(v, r, rounding))


@pytest.mark.parametrize("width", [8, 4])
def test_requantize_matches_quantize_exact(width):
    rng = np.random.default_rng(SEED)
    acc = rng.integers(-2**30, 2**30, size=(20, 48))
    acc[3] = 0
    acc[4, :16] = 1 << 20  # power-of-two block maximum
    lsb = rng.integers(-60, -20, size=(20, 1)) * np.ones((1, 48), dtype=np.int64)
    ref = quantize_exact(acc, lsb, width=width, block=16, axis=-1)
    got = bittrue.requantize(torch.from_numpy(acc), torch.from_numpy(lsb),
                             MXIntFormat(width=width, block=16))
    np.testing.assert_array_equal(got.mantissas.numpy(), ref.mantissas)
    np.testing.assert_array_equal(got.exponents.numpy(), ref.exponents)


def _layer(rng, d_in, d_out, rank, w_width=4, block=16):
    weight = quantize(_random_matrix(rng, (d_out, d_in), spread=2), width=w_width, block=block, axis=1)
    a = quantize(_random_matrix(rng, (d_in, rank), spread=2), width=8, block=block, axis=0)
    b = quantize(_random_matrix(rng, (rank, d_out), spread=2), width=8, block=block, axis=0)
    bias = rng.standard_normal(d_out).astype(np.float32)
    return weight, a, b, bias


@pytest.mark.parametrize("d_in,d_out,rank,block,guard,acc_rounding", [
    (32, 16, 16, 16, 8, "even"), (48, 24, 8, 16, 2, "floor"), (40, 33, 20, 8, 0, "even"),
    (64, 32, 32, 16, None, "even"),
])
def test_lqer_linear_matches_reference(d_in, d_out, rank, block, guard, acc_rounding):
    rng = np.random.default_rng(SEED + d_in)
    weight, a, b, bias = _layer(rng, d_in, d_out, rank, block=block)
    x = _random_matrix(rng, (11, d_in))
    x[2] = 0.0  # a token of zeros
    ref = reference_lqer_linear(x, weight, a, b, bias, guard_bits=guard, acc_rounding=acc_rounding)
    got = bittrue.lqer_linear(torch.from_numpy(x), weight=_mx(weight), a_t=_mx(transpose(a)),
                              b_t=_mx(transpose(b)), bias=torch.from_numpy(bias), guard_bits=guard,
                              acc_rounding=acc_rounding)
    np.testing.assert_array_equal(got.x.mantissas.numpy(), ref["x"].mantissas)
    np.testing.assert_array_equal(got.main[0].numpy(), ref["main"][0])
    np.testing.assert_array_equal(got.main[1].numpy(), ref["main"][1])
    np.testing.assert_array_equal(got.t.mantissas.numpy(), ref["t"].mantissas)
    np.testing.assert_array_equal(got.t.exponents.numpy(), ref["t"].exponents)
    np.testing.assert_array_equal(got.u.mantissas.numpy(), ref["u"].mantissas)
    np.testing.assert_array_equal(got.u.exponents.numpy(), ref["u"].exponents)
    np.testing.assert_array_equal(got.y.numpy(), ref["y"])


def test_lqer_linear_random_layers_match_reference():
    """LQER_VECTORS scales the number of random layers (a regression is this test run longer)."""
    rng = np.random.default_rng(SEED)
    for _ in range(max(3, VECTORS // 40)):
        d_in, d_out, rank = (int(v) for v in rng.integers(1, 5, size=3) * 16)
        weight, a, b, bias = _layer(rng, d_in, d_out, rank, w_width=int(rng.integers(2, 9)))
        x = _random_matrix(rng, (int(rng.integers(1, 9)), d_in))
        ref = reference_lqer_linear(x, weight, a, b, bias)
        got = bittrue.lqer_linear(torch.from_numpy(x), weight=_mx(weight), a_t=_mx(transpose(a)),
                                  b_t=_mx(transpose(b)), bias=torch.from_numpy(bias))
        np.testing.assert_array_equal(got.y.numpy(), ref["y"])


def test_plain_mxint_layer_matches_reference():
    rng = np.random.default_rng(SEED)
    weight, _, _, _ = _layer(rng, 48, 20, 16)
    x = _random_matrix(rng, (7, 48))
    ref = reference_lqer_linear(x, weight)
    got = bittrue.lqer_linear(torch.from_numpy(x), weight=_mx(weight))
    assert got.t is None and got.u is None
    np.testing.assert_array_equal(got.y.numpy(), ref["y"])


def test_guard_bits_too_wide_is_refused():
    rng = np.random.default_rng(SEED)
    weight, _, _, _ = _layer(rng, 128, 16, 16, w_width=8)
    # 8x8-bit products over 16: 19-bit sums, + 32 guard bits + 3 bits for 8 blocks = 54 bits
    with pytest.raises(ValueError, match=r"^guard_bits must keep the accumulator within 53 bits; "
                       r"got 32 \(54 bits\)$"):
        bittrue.lqer_linear(torch.zeros(1, 128), weight=_mx(weight), guard_bits=32)
    bittrue.lqer_linear(torch.zeros(1, 128), weight=_mx(weight), guard_bits=31)
