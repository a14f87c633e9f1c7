"""EmulatedLinear: fast mode against the reference formats, bit-true against fast, caching, blocking."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sw.emulation as emulation
from sw.emulation import EmulatedLinear, emulate_model, restore_model
from sw.factors import compute_layer_factors
from sw.mxint import quantize
from sw.qconfig import QuantConfig

SEED = 3


def _linear(d_in, d_out, *, bias=True, seed=SEED):
    torch.manual_seed(seed)
    layer = nn.Linear(d_in, d_out, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(torch.exp2(torch.randint(-2, 3, (1, d_in)).float()))  # uneven columns
    return layer


def _inputs(tokens, d_in, seed=SEED):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d_in, generator=g) * torch.exp2(torch.randint(-3, 4, (1, d_in), generator=g))
    x[1] = 0.0
    return x


def _ref_fq(a: torch.Tensor, width: int, axis: int = -1) -> torch.Tensor:
    """Fake quantization by the NumPy reference, as float32 (exact)."""
    return torch.from_numpy(quantize(a.detach().numpy(), width=width, block=16, axis=axis)
                            .dequantize().astype(np.float32))


def _factors(layer, method="lqer", blocking="reduction", rank=16, w_width=4):
    config = QuantConfig(method=method, rank=rank, w_width=w_width, blocking=blocking)
    scale = torch.linspace(0.5, 2.0, layer.in_features, dtype=torch.float64) if method == "l2qer" else None
    return compute_layer_factors(layer.weight, config=config, scale=scale, bias=layer.bias)


def test_fp_mode_is_the_float_layer():
    layer = _linear(48, 32)
    x = _inputs(5, 48)
    torch.testing.assert_close(EmulatedLinear.from_linear(layer)(x), layer(x), rtol=0, atol=0)


def test_fast_mxint_is_reference_formats_then_float_gemm():
    layer = _linear(48, 32)
    f = _factors(layer, method="mxint")
    x = _inputs(6, 48)
    expected = F.linear(_ref_fq(x, 8), _ref_fq(layer.weight, 4), layer.bias)
    got = EmulatedLinear.from_factors(f, mode="mxint")(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("blocking,axis", [("reduction", 0), ("paper", 1)])
def test_fast_lqer_forward_is_the_design_formula(blocking, axis):
    layer = _linear(64, 48)
    f = _factors(layer, method="l2qer", blocking=blocking)
    assert f.a.axis == axis and f.b.axis == axis
    a = torch.from_numpy(f.a.dequantize().astype(np.float32))
    b = torch.from_numpy(f.b.dequantize().astype(np.float32))
    x = _inputs(7, 64)
    xq = _ref_fq(x, 8)
    t = _ref_fq(xq @ a, 8)
    expected = F.linear(xq, _ref_fq(layer.weight, 4), layer.bias) + _ref_fq(t @ b, 8)
    got = EmulatedLinear.from_factors(f, mode="l2qer")(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode,calls", [("mxint", 1), ("lqer", 3)])
def test_weights_are_quantized_once_not_per_forward(monkeypatch, mode, calls):
    layer = _linear(32, 32)
    emulated = EmulatedLinear.from_factors(_factors(layer, method=mode), mode=mode)
    seen = []
    real = emulation.fake_quantize
    monkeypatch.setattr(emulation, "fake_quantize",
                        lambda t, *a, **kw: seen.append(t.shape) or real(t, *a, **kw))
    emulated(_inputs(4, 32))
    emulated(_inputs(4, 32))
    # per forward: x (4, 32), and for LQER t (4, k) and u (4, d_out); never the (32, 32) weight
    assert len(seen) == 2 * calls
    assert all(s[0] == 4 for s in seen)


def _bound(x, f, out, *, block=16):
    """Elementwise bound on |fast - bit-true| in float32 (see the derivation in docs/sw.md)."""
    eps = 2.0 ** -24
    xq = out.x.values()
    w = torch.from_numpy(f.weight.dequantize())
    a = torch.from_numpy(f.a.dequantize())
    b = torch.from_numpy(f.b.dequantize())
    d_in, k = a.shape
    nb_in, nb_k = -(-d_in // block), -(-k // block)

    def step(q):  # value of one mantissa unit, per element
        return torch.exp2((q.exponents.double() - q.frac_bits).repeat_interleave(block, dim=-1))[:, :q.mantissas.shape[1]]

    main = 2 * d_in * eps * (xq.abs() @ w.abs().T) + nb_in * torch.exp2(out.main[1].double())
    t_pre = 2 * d_in * eps * (xq.abs() @ a.abs())
    t = t_pre + nb_in * torch.exp2(out.t.lsb_exponents.double().max()) + 1.5 * step(out.t)
    tv = out.t.values()
    u = t @ b.abs() + 2 * k * eps * ((tv.abs() + t) @ b.abs()) + nb_k * torch.exp2(out.u.lsb_exponents.double().max()) + 1.5 * step(out.u)
    return main + u + 4 * eps * out.y.abs()


def test_fast_and_bit_true_agree_within_the_bound():
    from sw import bittrue
    layer = _linear(96, 64, seed=11)
    f = _factors(layer, method="l2qer", rank=32)
    x = _inputs(64, 96, seed=12)
    fast = EmulatedLinear.from_factors(f, mode="l2qer")(x).double()
    bit = EmulatedLinear.from_factors(f, mode="l2qer", arithmetic="bit-true")(x).double()
    emulated = EmulatedLinear.from_factors(f, mode="l2qer", arithmetic="bit-true")
    ops = emulated._bit_true_operands
    out = bittrue.lqer_linear(x, weight=ops["weight"], a_t=ops["a_t"], b_t=ops["b_t"],
                              bias=layer.bias.detach())
    diff = (fast - bit).abs()
    bound = _bound(x, f, out)
    assert bool((diff <= bound).all()), f"max excess {(diff - bound).max().item()}"
    # the bound allows a requantization flip everywhere; in practice most outputs agree to
    # float32 rounding and none is off by more than a small fraction of the output range
    scale = bit.abs().max()
    assert float((diff <= 1e-5 * scale).double().mean()) > 0.95
    assert float(diff.max()) <= 1e-3 * float(scale)


def test_fast_float64_equals_bit_true_with_exact_accumulation():
    """In float64 with an exact accumulator every sum is exact, so both modes give the same bits."""
    layer = _linear(64, 48, bias=False, seed=5)
    f = _factors(layer, method="lqer", rank=16)
    x = _inputs(16, 64, seed=6).double()
    fast = EmulatedLinear.from_factors(f, mode="lqer", dtype=torch.float64)(x)
    bit = EmulatedLinear.from_factors(f, mode="lqer", arithmetic="bit-true", guard_bits=None,
                                      dtype=torch.float64)(x)
    assert torch.equal(fast, bit)


def test_bit_true_refuses_paper_blocking():
    f = _factors(_linear(32, 32), method="lqer", blocking="paper")
    with pytest.raises(ValueError, match=r"^arithmetic 'bit-true' needs reduction-axis blocking"):
        EmulatedLinear.from_factors(f, mode="lqer", arithmetic="bit-true")


def test_bad_mode_and_arithmetic_are_named():
    f = _factors(_linear(32, 32), method="mxint")
    with pytest.raises(ValueError, match=r"^mode lqer needs low-rank factors"):
        EmulatedLinear.from_factors(f, mode="lqer")
    with pytest.raises(ValueError, match=r"^arithmetic must be one of fast, bit-true; got 'exact'$"):
        EmulatedLinear.from_factors(f, mode="mxint", arithmetic="exact")


def test_emulate_and_restore_model():
    model = nn.Sequential(nn.ModuleList([_linear(32, 48), _linear(48, 32)]))
    names = ["0.0", "0.1"]
    originals_before = [model.get_submodule(n) for n in names]
    factors = {n: _factors(model.get_submodule(n), method="mxint") for n in names}
    originals = emulate_model(model, factors, mode="mxint")
    assert all(isinstance(model.get_submodule(n), EmulatedLinear) for n in names)
    restore_model(model, originals)
    assert [model.get_submodule(n) for n in names] == originals_before


def test_bit_true_layer_of_the_embedded_model_matches_the_numpy_reference():
    """A real layer (L2QER factors of the embedded model) on its real input activations."""
    from sw.calibration import ScaleCollector
    from sw.default_model import CALIB, DIRECTORY
    from sw.lqer_reference import reference_lqer_linear
    from sw.models import load_model, load_tokenizer, quantizable_layers
    from sw.text import read_text, tokenize

    model, tokenizer = load_model(DIRECTORY), load_tokenizer(DIRECTORY)
    name = "model.decoder.layers.1.fc2"
    layer = quantizable_layers(model)[name]
    ids = tokenize(tokenizer, read_text(CALIB), max_tokens=64)
    seen = []
    handle = layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    with torch.no_grad(), ScaleCollector({name: layer}) as collector:
        model(input_ids=ids[None])
        collector.end_batch()
    handle.remove()
    x = seen[0].reshape(-1, layer.in_features)
    f = compute_layer_factors(layer.weight, config=QuantConfig(method="l2qer", rank=32),
                              scale=collector.scales()[name], bias=layer.bias, name=name)
    ref = reference_lqer_linear(x.numpy(), f.weight, f.a, f.b, f.bias)
    got = EmulatedLinear.from_factors(f, mode="l2qer", arithmetic="bit-true")(x)
    assert torch.equal(got, torch.from_numpy(ref["y"]).float())
