"""sw.lqer_reference.lqer_linear_output: the datapath's merged, requantized output -- its
definition (u and the bias are two more partials of the main accumulation) and its error
bound against the exact sum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw.blockmath import accumulate, block_matmul_partials
from sw.lqer_reference import element_partials, lqer_linear_output, lqer_linear_terms
from sw.mxint import MXIntFormat, quantize

A8, W4 = MXIntFormat(width=8, block=8), MXIntFormat(width=4, block=8)


def _layer(rng, t, d_in, d_out, rank, spread):
    def scaled(shape):
        return rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, shape))
    qx = quantize(scaled((t, d_in)), A8, axis=1)
    w = quantize(scaled((d_out, d_in)), W4, axis=1)
    a_t = quantize(scaled((rank, d_in)) * 0.1, A8, axis=1) if rank else None
    b_t = quantize(scaled((d_out, rank)) * 0.1, A8, axis=1) if rank else None
    bias = quantize(scaled((d_out,)), A8, axis=0)
    return qx, w, a_t, b_t, bias


def _u(qx, w, a_t, b_t, guard_bits):
    return lqer_linear_terms(qx, w, a_t, b_t, lowrank_width=8, guard_bits=guard_bits)["u"]


def _exact(qx, w, a_t, b_t, bias, guard_bits):
    """main + u + bias with u as the datapath computes it (its own accumulations use the
    same guard bits), summed exactly up to float64 rounding (far below the bounds)."""
    main = accumulate(*block_matmul_partials(qx, w), guard_bits=None)
    total = main[0].astype(np.float64) * np.exp2(main[1].astype(np.float64))
    if a_t is not None:
        total = total + _u(qx, w, a_t, b_t, guard_bits).dequantize()
    if bias is not None:
        total = total + bias.dequantize()
    return total


def test_definition_u_and_bias_are_two_more_partials():
    rng = np.random.default_rng(0)
    qx, w, a_t, b_t, bias = _layer(rng, 5, 32, 16, 8, 4)
    out = lqer_linear_output(qx, w, a_t, b_t, bias, out_format=A8, lowrank_format=A8)
    s, p = block_matmul_partials(qx, w)
    us, up = element_partials(_u(qx, w, a_t, b_t, 8))
    bs, bp = element_partials(bias)
    s = np.concatenate([s, us[..., None], np.broadcast_to(bs, us.shape)[..., None]], -1)
    p = np.concatenate([p, up[..., None], np.broadcast_to(bp, up.shape)[..., None]], -1)
    acc, lsb = accumulate(s, p, guard_bits=8)
    want = quantize(acc.astype(np.float64) * np.exp2(lsb.astype(np.float64)), A8, axis=1)
    assert out.format == A8 and out.mantissas.shape == (5, 16)
    np.testing.assert_array_equal(out.mantissas, want.mantissas)
    np.testing.assert_array_equal(out.exponents, want.exponents)
    # without u and bias: the main accumulator requantized
    main = lqer_linear_output(qx, w, out_format=A8)
    m = accumulate(*block_matmul_partials(qx, w), guard_bits=8)
    np.testing.assert_array_equal(
        main.mantissas, quantize(m[0].astype(np.float64) * np.exp2(m[1].astype(np.float64)),
                                 A8, axis=1).mantissas)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.sampled_from([0, 8]), st.integers(0, 12),
       st.sampled_from([0, 2, 8]), st.booleans())
def test_error_is_within_the_stated_bound(seed, nb_in, rank, spread, guard_bits, with_bias):
    rng = np.random.default_rng(seed)
    qx, w, a_t, b_t, bias = _layer(rng, 3, 8 * nb_in, 16, rank, spread)
    bias = bias if with_bias else None
    out = lqer_linear_output(qx, w, a_t, b_t, bias, out_format=A8, lowrank_format=A8,
                             guard_bits=guard_bits)
    exact = _exact(qx, w, a_t, b_t, bias, guard_bits)
    got = out.dequantize()
    # E: the largest partial exponent per channel (main blocks, u, bias)
    _, p = block_matmul_partials(qx, w)
    e_max = p.max(-1)
    n = nb_in + (rank > 0) + with_bias
    for extra in ([] if a_t is None else [element_partials(_u(qx, w, a_t, b_t, guard_bits))[1]]) \
            + ([] if bias is None else [np.broadcast_to(element_partials(bias)[1], e_max.shape)]):
        e_max = np.maximum(e_max, extra)
    acc_bound = (n - 1) * np.exp2(e_max - guard_bits) / 2
    step = np.repeat(np.exp2(out.lsb_exponents.astype(np.float64)), 8, axis=1)
    saturated = np.abs(out.mantissas) == A8.mantissa_max
    err = np.abs(got - exact)
    assert np.all((err <= acc_bound + step / 2) | saturated), \
        float(np.max(err - acc_bound - step / 2))


def test_guard_bits_none_is_refused():
    rng = np.random.default_rng(1)
    qx, w, *_ = _layer(rng, 1, 8, 8, 0, 0)
    with pytest.raises(ValueError, match=r"^guard_bits must be an integer for the merged output"):
        lqer_linear_output(qx, w, out_format=A8, guard_bits=None)
