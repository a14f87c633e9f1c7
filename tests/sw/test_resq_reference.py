"""sw.resq_reference: the exact identity before quantization, the integer terms against an exact
sum, the LQER main-GEMM structure of each path, and bad input."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw.lqer_reference import lqer_linear_terms
from sw.mxint import MXIntFormat, quantize
from sw.resq_reference import (merge, project, reference_resq_linear, resq_linear_output,
                               resq_linear_terms, sylvester_hadamard)
from tests.sw.resq_layers import activations, linear, resq_factors

A4 = MXIntFormat(width=4, block=16)


def test_sylvester_hadamard_is_orthonormal():
    for n in (1, 2, 16, 256):
        h = sylvester_hadamard(n)
        assert np.array_equal(h @ h.T, np.eye(n)) or np.abs(h @ h.T - np.eye(n)).max() < 1e-15
        assert np.all(np.abs(h) == 1 / np.sqrt(n))
    with pytest.raises(ValueError, match=r"^n must be a power of two \(1, 2, 4, \.\.\.\); got 12$"):
        sylvester_hadamard(12)


@pytest.mark.parametrize("rotation", ["pca", "hadamard"])
def test_without_quantization_the_projection_is_the_float_layer(rotation):
    """y = (x U_l)(W U_l)^T + (x U_h)(W U_h)^T + b equals x W^T + b to float64 rounding."""
    layer = linear(64, 48, seed=1)
    x = activations(200, 64, seed=2).double()
    f = resq_factors(layer, x, rank=16 if rotation == "pca" else 0, rotation=rotation)
    w = layer.weight.detach().double().numpy()
    b = layer.bias.detach().double().numpy()
    xn = x.numpy()
    z_low, z_high = project(xn, f.basis, f.rank)
    split = 64 - f.rank
    y = z_low @ (w @ f.basis[:, :split]).T + z_high @ (w @ f.basis[:, split:]).T + b
    y_float = xn @ w.T + b
    scale = np.abs(xn) @ np.abs(w).T + np.abs(b)
    assert np.all(np.abs(y - y_float) <= 1e-13 * scale)


def _exact(q_x, q_w) -> np.ndarray:
    """sum_i x_i w_i as exact rationals, (T, O)."""
    xv, wv = q_x.dequantize(), q_w.dequantize()
    out = np.empty((xv.shape[0], wv.shape[0]), dtype=object)
    for t in range(xv.shape[0]):
        for o in range(wv.shape[0]):
            out[t, o] = sum((Fraction(a) * Fraction(c) for a, c in zip(xv[t], wv[o])), Fraction(0))
    return out


def test_each_path_is_an_exact_mxint_gemm_with_exact_accumulation():
    layer = linear(48, 8, seed=3)
    x = activations(6, 48, seed=4, scale=1e3).double().numpy()
    f = resq_factors(layer, activations(300, 48, seed=5), rank=16)
    out = reference_resq_linear(x, f.basis, f.weight, f.weight_high, f.bias, a_format=A4,
                                guard_bits=None)
    for key, qx, qw in (("low", out["x_low"], f.weight), ("high", out["x_high"], f.weight_high)):
        acc, lsb = out[key]
        exact = _exact(qx, qw)
        got = np.vectorize(lambda a, e: Fraction(int(a)) * Fraction(2) ** int(e), otypes=[object])(acc, lsb)
        assert (got == exact).all(), key
    # the merge: one float64 rounding of the exact sum, then the bias
    total = _exact(out["x_low"], f.weight) + _exact(out["x_high"], f.weight_high)
    expected = np.vectorize(float)(total) + f.bias.astype(np.float64)
    assert np.array_equal(out["y"], expected)


@pytest.mark.parametrize("guard_bits, acc_rounding", [(8, "even"), (2, "floor"), (None, "even")])
def test_the_paths_are_lqer_main_gemms(guard_bits, acc_rounding):
    """Same integers as the LQER reference's main path on each set of coordinates."""
    layer = linear(64, 32, seed=6)
    x = activations(20, 64, seed=7).double().numpy()
    f = resq_factors(layer, activations(400, 64, seed=8), rank=16)
    z_low, z_high = project(x, f.basis, 16)
    ql, qh = quantize(z_low, A4), quantize(z_high, f.weight_high.format)
    terms = resq_linear_terms(ql, f.weight, qh, f.weight_high, guard_bits=guard_bits,
                              acc_rounding=acc_rounding)
    for key, qx, qw in (("low", ql, f.weight), ("high", qh, f.weight_high)):
        main = lqer_linear_terms(qx, qw, guard_bits=guard_bits, acc_rounding=acc_rounding)["main"]
        assert np.array_equal(terms[key][0], main[0]) and np.array_equal(terms[key][1], main[1])
    y = merge(terms)
    assert np.array_equal(y, np.ldexp(terms["low"][0].astype(float), terms["low"][1].astype(np.int32))
                          + np.ldexp(terms["high"][0].astype(float), terms["high"][1].astype(np.int32)))


def test_rank_zero_has_no_high_path_and_bad_input_is_named():
    layer = linear(32, 16, seed=9)
    f = resq_factors(layer, activations(10, 32, seed=1), rotation="hadamard")
    out = reference_resq_linear(activations(5, 32, seed=2).numpy(), f.basis, f.weight, None,
                                a_format=A4)
    assert out["high"] is None and out["x_high"] is None and out["z_high"].shape == (5, 0)
    with pytest.raises(ValueError, match=r"^qz_high and weight_high must be given together$"):
        resq_linear_terms(out["x_low"], f.weight, out["x_low"], None)
    with pytest.raises(ValueError, match=r"^x \(T, d_in\) and basis \(d_in, d_in\) must agree"):
        project(np.zeros((2, 16)), f.basis, 0)
    with pytest.raises(ValueError, match=r"^rank must be in 0\.\.31; got 32$"):
        project(np.zeros((2, 32)), f.basis, 32)


@pytest.mark.parametrize("module", ["sw.resq_reference", "sw.intq", "sw.resq_plan"])
def test_the_reference_imports_neither_torch_nor_hardware(module):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = f"import sys, importlib; importlib.import_module({module!r}); print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert not loaded & {"torch", "amaranth", "hw", "sim"}, sorted(loaded & {"torch", "amaranth", "hw", "sim"})


# ---------------------------------------------------------------- the datapath's merged output

A8, W4 = MXIntFormat(width=8, block=8), MXIntFormat(width=4, block=8)


def _coordinates(rng, t, d_low, d_high, d_out, spread):
    def scaled(shape):
        return rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, shape))
    ql = quantize(scaled((t, d_low)), W4, axis=1)
    wl = quantize(scaled((d_out, d_low)), W4, axis=1)
    qh = quantize(scaled((t, d_high)) * 8, A8, axis=1) if d_high else None
    wh = quantize(scaled((d_out, d_high)), A8, axis=1) if d_high else None
    bias = quantize(scaled((d_out,)), A8, axis=0)
    return ql, wl, qh, wh, bias


def test_merged_output_h_and_bias_are_two_more_partials():
    from sw.blockmath import accumulate, block_matmul_partials
    from sw.lqer_reference import element_partials
    from sw.mxint import quantize_exact

    rng = np.random.default_rng(0)
    ql, wl, qh, wh, bias = _coordinates(rng, 5, 32, 16, 16, 4)
    out = resq_linear_output(ql, wl, qh, wh, bias, out_format=A8)
    high = resq_linear_terms(ql, wl, qh, wh)["high"]
    hs, hp = element_partials(quantize_exact(high[0], high[1], A8, axis=-1))
    bs, bp = element_partials(bias)
    s, p = block_matmul_partials(ql, wl)
    s = np.concatenate([s, hs[..., None], np.broadcast_to(bs, hs.shape)[..., None]], -1)
    p = np.concatenate([p, hp[..., None], np.broadcast_to(bp, hp.shape)[..., None]], -1)
    acc, lsb = accumulate(s, p, guard_bits=8)
    want = quantize_exact(acc, lsb, A8, axis=-1)
    assert out.format == A8 and out.mantissas.shape == (5, 16)
    np.testing.assert_array_equal(out.mantissas, want.mantissas)
    np.testing.assert_array_equal(out.exponents, want.exponents)
    with pytest.raises(ValueError, match=r"^guard_bits must be an integer for the merged output"):
        resq_linear_output(ql, wl, out_format=A8, guard_bits=None)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.sampled_from([0, 8, 16]), st.integers(0, 12),
       st.sampled_from([0, 2, 8]), st.booleans())
def test_merged_output_error_is_within_the_stated_bound(seed, nb_low, d_high, spread, guard_bits,
                                                        with_bias):
    from sw.blockmath import accumulate, block_matmul_partials
    from sw.lqer_reference import element_partials
    from sw.mxint import quantize_exact

    rng = np.random.default_rng(seed)
    ql, wl, qh, wh, bias = _coordinates(rng, 3, 8 * nb_low, d_high, 16, spread)
    bias = bias if with_bias else None
    out = resq_linear_output(ql, wl, qh, wh, bias, out_format=A8, guard_bits=guard_bits)
    low = accumulate(*block_matmul_partials(ql, wl), guard_bits=None)
    exact = low[0].astype(np.float64) * np.exp2(low[1].astype(np.float64))
    _, p = block_matmul_partials(ql, wl)
    e_max = p.max(-1)
    extras = []
    if qh is not None:   # h as the datapath computes it (its own accumulation, same guard bits)
        high = resq_linear_terms(ql, wl, qh, wh, guard_bits=guard_bits)["high"]
        h = quantize_exact(high[0], high[1], A8, axis=-1)
        exact = exact + h.dequantize()
        extras.append(element_partials(h)[1])
    if bias is not None:
        exact = exact + bias.dequantize()
        extras.append(np.broadcast_to(element_partials(bias)[1], e_max.shape))
    for extra in extras:
        e_max = np.maximum(e_max, extra)
    n = nb_low + len(extras)
    acc_bound = (n - 1) * np.exp2(e_max - guard_bits) / 2
    step = np.repeat(np.exp2(out.lsb_exponents.astype(np.float64)), 8, axis=1)
    saturated = np.abs(out.mantissas) == A8.mantissa_max
    err = np.abs(out.dequantize() - exact)
    assert np.all((err <= acc_bound + step / 2) | saturated), float(np.max(err - acc_bound - step / 2))
