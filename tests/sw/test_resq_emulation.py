"""sw.resq_emulation: bit-true against the NumPy reference (bit for bit), fast against bit-true
(within a stated bound), the integer formats, the shared projection, and bad input."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from sw.emulation import emulate_model, restore_model
from sw.intq import quantize_per_channel_symmetric, quantize_per_token_asymmetric
from sw.mxint import MXIntFormat, quantize
from sw.resq_emulation import ResQLinear, resq_linear
from sw.resq_reference import merge, project, resq_linear_terms
from tests.sw.resq_layers import activations, linear, resq_factors

A4 = MXIntFormat(width=4, block=16)


def _layer(d_in=96, d_out=64, rank=16, seed=0, **config):
    lin = linear(d_in, d_out, seed=seed)
    calib = activations(500, d_in, seed=seed + 1)
    return lin, resq_factors(lin, calib, rank=rank, **config)


@pytest.mark.parametrize("guard_bits, acc_rounding", [(8, "even"), (3, "floor"), (None, "even")])
@pytest.mark.parametrize("rotation", ["pca", "hadamard"])
def test_bit_true_equals_the_reference_bit_for_bit(guard_bits, acc_rounding, rotation):
    """On the same projected coordinates z (the datapath's input), every integer and y agree
    (rank 16 with a PCA basis; rank 0 for a Hadamard-transformed down projection)."""
    lin = linear(128, 64, seed=3)
    f = resq_factors(lin, activations(500, 128, seed=1), rank=16, rotation=rotation)
    x = activations(40, 128, seed=4, scale=300.0).double().numpy()
    z_low, z_high = project(x, f.basis, f.rank)
    emulated = ResQLinear.from_factors(f, arithmetic="bit-true", a_width=4, guard_bits=guard_bits,
                                       acc_rounding=acc_rounding)
    ops = emulated._bit_true_operands
    out = resq_linear(torch.from_numpy(z_low), torch.from_numpy(z_high) if f.rank else None,
                      weight_low=ops["low"], weight_high=ops.get("high"), bias=emulated.bias,
                      a_format=emulated.a_format, high_format=emulated.high_format,
                      guard_bits=guard_bits, acc_rounding=acc_rounding)
    ql = quantize(z_low, A4)
    qh = quantize(z_high, f.weight_high.format) if f.rank else None
    ref = resq_linear_terms(ql, f.weight, qh, f.weight_high, guard_bits=guard_bits,
                            acc_rounding=acc_rounding)
    assert np.array_equal(out.x_low.mantissas.numpy(), ql.mantissas)
    assert np.array_equal(out.x_low.exponents.numpy(), ql.exponents)
    for key in ("low", "high"):
        if ref[key] is None:
            assert getattr(out, key) is None and f.rank == 0
            continue
        assert np.array_equal(getattr(out, key)[0].numpy(), ref[key][0])
        assert np.array_equal(getattr(out, key)[1].numpy(), ref[key][1])
    assert np.array_equal(out.y.numpy(), merge(ref, f.bias))


def test_the_layer_projects_as_the_reference_and_feeds_it_to_resq_linear():
    """The layer's own projection agrees with NumPy's to float64 rounding; its bit-true output is
    resq_linear of that projection."""
    lin, f = _layer(seed=5)
    x = activations(30, 96, seed=6)
    layer = ResQLinear.from_factors(f, arithmetic="bit-true", a_width=4)
    z = layer.project(x)
    z_np = np.concatenate(project(x.double().numpy(), f.basis, 16), axis=1)
    assert np.abs(z.numpy() - z_np).max() <= 1e-13 * np.abs(z_np).max()
    ops = layer._bit_true_operands
    out = resq_linear(z[:, :80], z[:, 80:], weight_low=ops["low"], weight_high=ops["high"],
                      bias=layer.bias, a_format=layer.a_format, high_format=layer.high_format)
    assert torch.equal(layer(x), out.y.to(torch.float32))


def _bound(layer: ResQLinear, out, *, d_in: int, block: int = 16) -> torch.Tensor:
    """|fast - bit-true| per output, float32 fast arithmetic (docs/sw.md, "ResQ"):
    2 d_in eps |z_q| |W_q|^T (the float GEMM) + n_b 2^lsb per path (the accumulator, 8 guard
    bits, round half even) + 4 eps |y| (bias add and the casts)."""
    eps = 2.0 ** -24
    zq = torch.cat([out.x_low.values()] + ([out.x_high.values()] if out.x_high is not None else []), 1)
    w = layer.projected_weight.double()
    bound = 2 * d_in * eps * (zq.abs() @ w.abs().T) + 4 * eps * out.y.abs()
    for x_part, acc in ((out.x_low, out.low), (out.x_high, out.high)):
        if acc is not None:
            nb = -(-x_part.mantissas.shape[1] // block)
            bound = bound + nb * torch.exp2(acc[1].double())
    return bound


@pytest.mark.parametrize("rank", [16, 32])
def test_fast_and_bit_true_agree_within_the_bound(rank):
    lin, f = _layer(rank=rank, seed=11)
    x = activations(64, 96, seed=12, scale=100.0)
    fast = ResQLinear.from_factors(f, a_width=4)(x).double()
    layer = ResQLinear.from_factors(f, arithmetic="bit-true", a_width=4)
    bit = layer(x).double()
    z = layer.project(x)
    ops = layer._bit_true_operands
    out = resq_linear(z[:, :96 - rank], z[:, 96 - rank:], weight_low=ops["low"],
                      weight_high=ops["high"], bias=layer.bias, a_format=layer.a_format,
                      high_format=layer.high_format)
    diff = (fast - bit).abs()
    bound = _bound(layer, out, d_in=96)
    assert bool((diff <= bound).all()), f"max excess {(diff - bound).max().item()}"
    scale = float(bit.abs().max())
    assert float((diff <= 1e-6 * scale).double().mean()) > 0.95
    assert float(diff.max()) <= 1e-5 * scale


def test_fast_float64_equals_bit_true_with_exact_accumulation():
    """In float64 with an exact accumulator, both give one rounding of the exact sum."""
    lin = linear(64, 48, seed=5, bias=False)
    f = resq_factors(lin, activations(300, 64, seed=6), rank=16)
    x = activations(16, 64, seed=7, scale=4.0).double()
    fast = ResQLinear.from_factors(f, a_width=4, dtype=torch.float64)(x)
    bit = ResQLinear.from_factors(f, arithmetic="bit-true", guard_bits=None, a_width=4,
                                  dtype=torch.float64)(x)
    assert torch.equal(fast, bit)


def test_the_integer_formats_follow_sw_intq():
    lin, f = _layer(seed=13, resq_format="int")
    assert f.weight.bits == 4 and f.weight_high.bits == 8
    x = activations(20, 96, seed=14)
    layer = ResQLinear.from_factors(f, a_width=4, dtype=torch.float64)
    z = layer.project(x).numpy()
    zq = np.concatenate([quantize_per_token_asymmetric(z[:, :80], 4).dequantize(),
                         quantize_per_token_asymmetric(z[:, 80:], 8).dequantize()], axis=1)
    w = np.concatenate([f.weight.dequantize(), f.weight_high.dequantize()], axis=1)
    # the weights are the reference's per-channel symmetric codes of W U
    wu = lin.weight.detach().double().numpy() @ f.basis
    assert np.array_equal(f.weight.codes, quantize_per_channel_symmetric(wu[:, :80], 4).codes)
    expected = torch.nn.functional.linear(torch.from_numpy(zq), torch.from_numpy(w),
                                          torch.from_numpy(f.bias.astype(np.float64)))
    assert torch.equal(layer(x.double()), expected)
    with pytest.raises(ValueError, match=r"^arithmetic 'bit-true' needs MXINT ResQ factors"):
        ResQLinear.from_factors(f, arithmetic="bit-true")


def test_quantization_error_shrinks_against_plain_mxint_on_outlier_activations():
    """The point of ResQ: on activations with outlier channels, W4A4 + 8-bit subspace beats W4A4."""
    from sw.emulation import EmulatedLinear
    from sw.factors import compute_layer_factors
    from sw.qconfig import QuantConfig

    lin = linear(128, 64, seed=21)
    calib = activations(1000, 128, seed=22, outliers=4, scale=50.0)
    x = activations(200, 128, seed=23, outliers=4, scale=50.0)
    exact = lin(x).detach().double()
    f = resq_factors(lin, calib, rank=16)
    resq = ResQLinear.from_factors(f, a_width=4)(x).double()
    mx = compute_layer_factors(lin.weight, config=QuantConfig(method="mxint", w_width=4, a_width=4),
                               bias=lin.bias)
    plain = EmulatedLinear.from_factors(mx, mode="mxint", a_width=4)(x).double()
    err = lambda y: float(torch.linalg.norm(y - exact))  # noqa: E731
    assert err(resq) < 0.5 * err(plain)


class _QKV(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (linear(64, 64, seed=s) for s in (1, 2, 3))

    def forward(self, x):
        return self.q(x) + self.k(x) + self.v(x)


@torch.no_grad()
def test_layers_sharing_a_basis_project_each_input_once(monkeypatch):
    model = _QKV()
    calib = activations(300, 64, seed=4)
    shared = resq_factors(model.q, calib)
    factors = {n: resq_factors(getattr(model, n), calib) for n in ("q", "k", "v")}
    for f in factors.values():  # one basis for the three (as resq_basis="shared" stores them)
        f.basis, f.basis_name = shared.basis, "q"
    x = activations(8, 64, seed=5)
    reference = model(x)
    calls = []
    original = ResQLinear.project
    monkeypatch.setattr(ResQLinear, "project", lambda self, t: calls.append(1) or original(self, t))
    originals = emulate_model(model, factors, mode="resq", a_width=4)
    y = model(x)
    assert len(calls) == 1
    assert isinstance(model.q, ResQLinear) and float((y - reference).abs().max()) < 0.2 * float(reference.abs().max())
    restore_model(model, originals)
    assert torch.equal(model(x), reference)


def test_weight_is_the_effective_weight_and_bad_input_is_named():
    lin, f = _layer(seed=30)
    layer = ResQLinear.from_factors(f, a_width=4, dtype=torch.float64)
    w = torch.from_numpy(np.concatenate([f.weight.dequantize(), f.weight_high.dequantize()], 1))
    assert torch.allclose(layer.weight, w @ torch.from_numpy(f.basis).T, atol=1e-12)
    w_float = lin.weight.detach().double()
    assert float(torch.linalg.norm(layer.weight - w_float)) < 0.15 * float(torch.linalg.norm(w_float))
    assert "resq_rank=16" in repr(layer)
    from sw.factors import compute_layer_factors
    from sw.qconfig import QuantConfig
    mx = compute_layer_factors(lin.weight, config=QuantConfig(method="mxint"))
    with pytest.raises(ValueError, match=r"^mode resq needs ResQ factors \(a basis\); these have none$"):
        ResQLinear.from_factors(mx)
    with pytest.raises(ValueError, match=r"^guard_bits must keep the accumulator within 53 bits"):
        ResQLinear.from_factors(f, arithmetic="bit-true", guard_bits=32, a_width=16)(
            activations(2, 96, seed=1))


VECTORS = int(os.environ.get("LQER_VECTORS", "200"))
SEED = int(os.environ.get("LQER_SEED", "1"))


def test_random_layers_match_the_reference():
    """Random shapes (partial blocks included), ranks, widths, guard bits and scales; about
    LQER_VECTORS tokens in all (LQER_SEED): a regression is this test run longer."""
    from sw.qconfig import QuantConfig
    from sw.resq import random_orthogonal
    from sw.resq import Basis
    from sw.resq_factors import resq_layer_factors

    rng = np.random.default_rng(SEED)
    done = 0
    while done < VECTORS:
        block = int(rng.choice([4, 8, 16]))
        d_in = int(rng.integers(2, 9)) * 8 + int(rng.integers(0, 2)) * 3
        rank = int(rng.integers(0, d_in // 2))
        d_out = int(rng.integers(1, 40))
        config = QuantConfig(method="resq", block=block, w_width=int(rng.integers(2, 9)),
                             a_width=int(rng.integers(2, 9)), high_width=int(rng.integers(4, 9)))
        basis = Basis(name="l", matrix=random_orthogonal(d_in, int(rng.integers(1 << 30))),
                      rank=rank, rotation="random-orthogonal")
        w = torch.from_numpy(rng.standard_normal((d_out, d_in)) * 2.0 ** int(rng.integers(-8, 4)))
        bias = torch.from_numpy(rng.standard_normal(d_out)).float()
        f = resq_layer_factors(w, basis=basis, config=config, bias=bias)
        tokens = int(rng.integers(1, 12))
        x = rng.standard_normal((tokens, d_in)) * np.exp2(rng.integers(-6, 7, size=(tokens, d_in)))
        guard_bits = [None, 0, 4, 8][int(rng.integers(0, 4))]
        rounding = ["even", "floor"][int(rng.integers(0, 2))]
        z_low, z_high = project(x, f.basis, rank)
        a_format = MXIntFormat(width=config.a_width, block=block)
        high_format = a_format.replace(width=config.high_width)
        layer = ResQLinear.from_factors(f, arithmetic="bit-true", a_width=config.a_width,
                                        guard_bits=guard_bits, acc_rounding=rounding)
        ops = layer._bit_true_operands
        out = resq_linear(torch.from_numpy(z_low), torch.from_numpy(z_high) if rank else None,
                          weight_low=ops["low"], weight_high=ops.get("high"), bias=layer.bias,
                          a_format=a_format, high_format=high_format, guard_bits=guard_bits,
                          acc_rounding=rounding)
        ql = quantize(z_low, a_format)
        qh = quantize(z_high, high_format) if rank else None
        ref = resq_linear_terms(ql, f.weight, qh, f.weight_high, guard_bits=guard_bits,
                                acc_rounding=rounding)
        for key in ("low", "high"):
            if ref[key] is not None:
                np.testing.assert_array_equal(getattr(out, key)[0].numpy(), ref[key][0])
                np.testing.assert_array_equal(getattr(out, key)[1].numpy(), ref[key][1])
        np.testing.assert_array_equal(out.y.numpy(), merge(ref, f.bias))
        done += tokens
