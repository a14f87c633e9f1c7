"""Factors: SVD identities, reference formats, determinism, and bad inputs (files: test_sw_factor_files)."""

import numpy as np
import pytest
import torch

from sw.factors import FactorsError, compute_layer_factors, lowrank_factors
from sw.mxint import quantize
from sw.qconfig import QuantConfig
from sw.svd import randomized_svd, truncated_svd


def _weight(d_out=48, d_in=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d_out, d_in, generator=g, dtype=torch.float64) * 0.1


def _scale(d_in, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(d_in, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("svd", ["full", "randomized"])
@pytest.mark.parametrize("with_scale", [False, True])
def test_full_rank_factors_recover_the_error_exactly(svd, with_scale):
    err_t = _weight(40, 24).T.contiguous()  # d_in=24 x d_out=40
    scale = _scale(24) if with_scale else None
    a, b = lowrank_factors(err_t, scale=scale, rank=24, svd=svd, seed=7)
    assert a.shape == (24, 24) and b.shape == (24, 40)
    torch.testing.assert_close(a @ b, err_t, rtol=0, atol=1e-13)


def test_truncation_error_is_the_scaled_singular_value_tail():
    """Eckart-Young: ||S(E - A B)||_F equals the norm of the dropped singular values of S E."""
    err_t = _weight(32, 48).T.contiguous()
    scale = _scale(48)
    a, b = lowrank_factors(err_t, scale=scale, rank=8, svd="full", seed=0)
    sigma = torch.linalg.svdvals(scale[:, None] * err_t)
    residual = torch.linalg.norm(scale[:, None] * (err_t - a @ b))
    torch.testing.assert_close(residual, torch.linalg.norm(sigma[8:]), rtol=1e-10, atol=0)


def test_randomized_svd_is_close_to_full_and_deterministic():
    g = torch.Generator().manual_seed(3)
    m = torch.randn(200, 20, generator=g, dtype=torch.float64) @ torch.randn(20, 150, generator=g, dtype=torch.float64)
    m += 1e-3 * torch.randn(200, 150, generator=g, dtype=torch.float64)
    u, s, vh = randomized_svd(m, 20, seed=5)
    full = torch.linalg.svdvals(m)[:20]
    torch.testing.assert_close(s, full, rtol=1e-6, atol=0)
    u2, s2, vh2 = randomized_svd(m, 20, seed=5)
    assert torch.equal(u, u2) and torch.equal(s, s2) and torch.equal(vh, vh2)
    with pytest.raises(ValueError, match=r'^svd must be one of "full", "randomized"; got \'qr\'$'):
        truncated_svd(m, 3, method="qr")


@pytest.mark.parametrize("blocking,axis", [("reduction", 0), ("paper", 1)])
def test_quantized_operands_are_the_reference_formats(blocking, axis):
    w = _weight()
    config = QuantConfig(method="l2qer", rank=16, blocking=blocking)
    scale = _scale(64)
    f = compute_layer_factors(w, config=config, scale=scale, name="l")
    ref_w = quantize(w.numpy(), width=4, block=16, axis=1)
    np.testing.assert_array_equal(f.weight.mantissas, ref_w.mantissas)
    np.testing.assert_array_equal(f.weight.exponents, ref_w.exponents)
    err_t = (w - torch.from_numpy(ref_w.dequantize())).T
    a, b = lowrank_factors(err_t, scale=scale, rank=16, svd="full", seed=0)
    for got, want in ((f.a, a), (f.b, b)):
        ref = quantize(want.numpy(), width=8, block=16, axis=axis)
        assert got.axis == axis
        np.testing.assert_array_equal(got.mantissas, ref.mantissas)
        np.testing.assert_array_equal(got.exponents, ref.exponents)


def test_correction_reduces_the_weight_error():
    f = compute_layer_factors(_weight(), config=QuantConfig(method="lqer", rank=32), name="l")
    assert f.errors["weight_rel_error_corrected"] < 0.7 * f.errors["weight_rel_error_mxint"]


def test_same_seed_same_bits():
    w = _weight(64, 64)
    config = QuantConfig(method="l2qer", rank=8, svd="randomized", seed=11)
    f1 = compute_layer_factors(w, config=config, scale=_scale(64), name="x")
    f2 = compute_layer_factors(w.clone(), config=config, scale=_scale(64), name="x")
    for key in ("a", "b"):
        np.testing.assert_array_equal(getattr(f1, key).mantissas, getattr(f2, key).mantissas)
        np.testing.assert_array_equal(getattr(f1, key).exponents, getattr(f2, key).exponents)


def test_bad_inputs_are_named():
    with pytest.raises(FactorsError, match=r"^rank must be in 1\.\.48 for layer q \(48x64\); got 49$"):
        compute_layer_factors(_weight(), config=QuantConfig(method="lqer", rank=49), name="q")
    w = _weight()
    w[3, 5] = float("nan")
    with pytest.raises(FactorsError, match=r"^weights of layer q must be finite; got nan at index \(3, 5\)$"):
        compute_layer_factors(w, config=QuantConfig(method="mxint"), name="q")
    with pytest.raises(FactorsError, match=r"^method l2qer needs a calibration scale for layer q"):
        compute_layer_factors(_weight(), config=QuantConfig(method="l2qer"), name="q")
    with pytest.raises(ValueError, match=r"^rank must be an integer >= 1; got 0$"):
        QuantConfig(method="lqer", rank=0)
    with pytest.raises(ValueError, match=r"^block must be a power of two in 1\.\.256; got 12$"):
        QuantConfig(method="lqer", block=12)
    with pytest.raises(ValueError, match=r"^method must be one of fp, mxint, lqer, l2qer, resq; got 'gptq'$"):
        QuantConfig(method="gptq")
