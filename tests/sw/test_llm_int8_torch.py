"""LLM.int8() / W8A8 emulated layers: bit-true against the reference, fast within its bound."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sw import llm_int8 as L
from sw.emulation import restore_model
from sw.llm_int8_torch import LLMInt8Linear, emulate_int8, fast_error_bound, quantize_activations

ALL_F16 = torch.from_numpy(np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32))


def _layer(d_in, d_out, *, bias=True, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(d_in, d_out, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(torch.exp2(torch.randint(-3, 3, (1, d_in)).float()))
    return layer


def _inputs(shape, *, outlier_columns=(3, 11), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * 1.5
    x[..., list(outlier_columns)] *= 8  # planted outlier features, as in OPT/LLaMA activations
    x.view(-1, shape[-1])[1] = 0.0       # an all-zero token
    x.view(-1, shape[-1])[2, 5] = -9.0   # an outlier in one token only
    return x


def _reference(layer, x, **kw):
    w = L.quantize_weight(layer.weight.detach().numpy(), keep_fp16=kw.get("outlier_weights") == "fp16")
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    return torch.from_numpy(L.linear(x.reshape(-1, layer.in_features).numpy(), w, bias, **kw).y)


def test_scale_of_every_binary16_absmax_matches_the_reference():
    x16 = torch.stack([ALL_F16, ALL_F16 / 2, ALL_F16 * 0.75]).T.contiguous()  # rows (s, s/2, 3s/4)
    x16 = x16.to(torch.float16).to(torch.float32)
    _, codes, absmax, columns = quantize_activations(x16, math.inf, None)
    q = L.quantize_rows(x16.numpy().astype(np.float16))
    assert columns is None
    np.testing.assert_array_equal(absmax.numpy(), q.absmax)
    np.testing.assert_array_equal(codes.numpy().astype(np.int8), q.codes)


def test_binary32_to_binary16_rounding_matches_numpy_including_subnormals():
    g = np.random.default_rng(5)
    bits = g.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x) & (np.abs(x) < 65504)]
    small = np.ldexp(g.uniform(-1, 1, 50_000), g.integers(-40, -10, 50_000)).astype(np.float32)
    for a in (x, small):
        got = torch.from_numpy(a).to(torch.float16).numpy()
        np.testing.assert_array_equal(got.view(np.uint16), a.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("threshold", [6.0, 1.0, 0.0, math.inf])
@pytest.mark.parametrize("group", [None, 1, 5])
@pytest.mark.parametrize("outlier_weights", ["int8", "fp16"])
def test_bit_true_equals_the_reference_bit_for_bit(threshold, group, outlier_weights):
    layer = _layer(48, 24)
    x = _inputs((2, 9, 48))
    emulated = LLMInt8Linear.from_linear(layer, arithmetic="bit-true", threshold=threshold, group=group,
                                         outlier_weights=outlier_weights)
    y = emulated(x)
    assert y.shape == (2, 9, 24) and y.dtype == torch.float32
    expected = _reference(layer, x, threshold=threshold, group=group, outlier_weights=outlier_weights)
    np.testing.assert_array_equal(y.reshape(-1, 24).numpy().view(np.uint32), expected.numpy().view(np.uint32))


def test_bit_true_is_exact_for_long_rows():
    layer = _layer(1300, 8, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.sign(layer.weight))  # every code +-127: |C| up to 127^2 * 1300 > 2^24
    x = torch.ones(3, 1300)
    x[0, 7] = 50.0
    emulated = LLMInt8Linear.from_linear(layer, arithmetic="bit-true")
    expected = _reference(layer, x, threshold=6.0)
    np.testing.assert_array_equal(emulated(x).numpy(), expected.numpy())


@pytest.mark.parametrize("threshold,group,d_in", [(6.0, None, 48), (6.0, 4, 48), (0.5, None, 48),
                                                  (0.0, 3, 48), (6.0, None, 1500), (0.0, None, 1500)])
def test_fast_is_within_its_stated_bound_of_bit_true(threshold, group, d_in):
    layer = _layer(d_in, 32, seed=1)
    x = _inputs((3, 7, d_in), seed=2)
    fast = LLMInt8Linear.from_linear(layer, threshold=threshold, group=group)
    bit_true = LLMInt8Linear.from_linear(layer, threshold=threshold, group=group, arithmetic="bit-true")
    y_fast, y_bt = fast(x), bit_true(x)
    bound = fast_error_bound(fast, x)
    diff = (y_fast.double() - y_bt.double()).abs()
    assert torch.all(diff <= bound)
    # not vacuous: far below the int8 rounding itself (half a step is 1/254 of an absmax)
    assert float(bound.max()) < 1e-2 * float(y_bt.abs().max())


def test_fast_w8a8_is_bit_true_while_the_int32_sum_fits_binary32():
    layer = _layer(1040, 16, seed=3)
    with torch.no_grad():
        layer.weight.copy_(torch.sign(layer.weight))  # |C| reaches 127^2 * 1040 < 2^24
    x = torch.ones(4, 1040)
    fast = LLMInt8Linear.from_linear(layer, threshold=math.inf)
    bit_true = LLMInt8Linear.from_linear(layer, threshold=math.inf, arithmetic="bit-true")
    np.testing.assert_array_equal(fast(x).numpy(), bit_true(x).numpy())


def test_output_takes_the_input_dtype():
    layer = _layer(16, 8)
    emulated = LLMInt8Linear.from_linear(layer)
    x = _inputs((5, 16))
    assert emulated(x.to(torch.bfloat16)).dtype == torch.bfloat16
    assert emulated(x.double()).dtype == torch.float64
    np.testing.assert_array_equal(emulated(x.double()).numpy(), emulated(x).double().numpy())


def test_groups_run_over_flattened_tokens_batch_outer():
    layer = _layer(8, 4)
    x = torch.ones(2, 3, 8)
    x[1, 0, 2] = 10.0  # flattened token 3
    emulated = LLMInt8Linear.from_linear(layer, arithmetic="bit-true", group=2)
    flat = _reference(layer, x, group=2)
    np.testing.assert_array_equal(emulated(x).reshape(-1, 4).numpy(), flat.numpy())
    _, _, _, columns = quantize_activations(x.reshape(-1, 8), 6.0, 2)
    assert columns[:, 2].tolist() == [False, True, False]


def test_weight_attribute_is_the_outlier_path_weight():
    layer = _layer(16, 8)
    int8 = LLMInt8Linear.from_linear(layer)
    w = L.quantize_weight(layer.weight.detach().numpy())
    np.testing.assert_array_equal(int8.weight.numpy(), w.dequantized16().astype(np.float32))
    fp16 = LLMInt8Linear.from_linear(layer, outlier_weights="fp16")
    np.testing.assert_array_equal(fp16.weight.numpy(), layer.weight.detach().half().float().numpy())


def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 4)))


def test_emulate_replaces_layers_and_restores_them():
    model = _tiny_model()
    x = torch.randn(3, 8)
    before = model(x)
    layers = {"0": model[0], "2.0": model[2][0]}
    originals = emulate_int8(model, layers, method="w8a8", arithmetic="bit-true")
    assert isinstance(model[2][0], LLMInt8Linear) and model[2][0].method == "w8a8"
    assert model[2][0].name == "2.0" and math.isinf(model[2][0].threshold)
    quantized = model(x)
    assert not torch.equal(quantized, before)
    torch.testing.assert_close(quantized, before, rtol=0.05, atol=0.05)
    restore_model(model, originals)
    assert model[0] is layers["0"] and torch.equal(model(x), before)


def test_non_finite_activations_name_the_layer():
    model = _tiny_model()
    emulate_int8(model, {"0": model[0], "2.0": model[2][0]})
    x = torch.ones(2, 8)
    x[1, 3] = 1e5
    with pytest.raises(ValueError, match=r"^activations of layer 0 must be finite in binary16 \(\|x\| <= 65504\); "
                                         r"got 100000\.0 at token 1, feature 3$"):
        model(x)
    x = torch.ones(2, 8)
    x[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"^activations of layer 0 must be finite in binary16 .*got nan at token 0"):
        model(x)


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="int4"), "method must be one of llm-int8, w8a8; got 'int4'"),
    (dict(threshold=math.inf), "threshold must be a finite number > 0 for method llm-int8; got inf"),
    (dict(threshold=0.0), "threshold must be a finite number > 0 for method llm-int8; got 0.0"),
    (dict(threshold=-2.0), "threshold must be a number >= 0 (inf: no outliers); got -2.0"),
    (dict(group=0), "group must be an integer >= 1 (tokens per detection group) or None; got 0"),
    (dict(arithmetic="exact"), "arithmetic must be one of fast, bit-true; got 'exact'"),
    (dict(outlier_weights="bf16"), "outlier_weights must be one of int8, fp16; got 'bf16'"),
])
def test_bad_options_are_one_line_errors(kwargs, message):
    model = _tiny_model()
    with pytest.raises(ValueError) as info:
        emulate_int8(model, {"0": model[0]}, **kwargs)
    assert str(info.value) == message
    assert isinstance(model[0], nn.Linear)  # nothing replaced


def test_a_module_that_is_not_linear_is_refused():
    model = _tiny_model()
    with pytest.raises(ValueError, match=r"^layer 1 must be a torch.nn.Linear \(with nn.Linear's forward\); "
                                         r"got ReLU$"):
        emulate_int8(model, {"1": model[1]})

    class Router(nn.Linear):
        def forward(self, x):
            return super().forward(x), None

    model[0] = Router(8, 16)
    with pytest.raises(ValueError, match="got Router$"):
        emulate_int8(model, {"0": model[0]})


def test_quantized_weights_can_be_supplied():
    model = _tiny_model()
    w = L.quantize_weight(model[0].weight.detach().numpy())
    x = torch.randn(2, 8)
    emulate_int8(model, {"0": model[0]}, weights={"0": (w, None)}, arithmetic="bit-true")
    expected = L.linear(x.numpy(), w, None).y
    np.testing.assert_array_equal(model[0](x).numpy(), expected)
    with pytest.raises(ValueError, match="^weights of layer 2.0 must be 4x16; got 16x8$"):
        emulate_int8(model, {"2.0": model[2][0]}, weights={"2.0": (w, None)})


def test_counts_tally_outlier_columns_per_group():
    layer = _layer(16, 4)
    emulated = LLMInt8Linear.from_linear(layer, group=2)
    x = torch.zeros(5, 16)
    x[0, 1] = x[1, 2] = x[4, 3] = x[4, 5] = 7.0
    emulated(x)
    emulated(x[:2])
    assert emulated.counts == {"groups": 3 + 1, "outlier_columns": 2 + 0 + 2 + 2, "max_columns": 2}
    emulated.reset_counts()
    assert emulated.counts == {"groups": 0, "outlier_columns": 0, "max_columns": 0}
    w8a8 = LLMInt8Linear.from_linear(layer, threshold=math.inf)
    w8a8(x)
    assert w8a8.counts["groups"] == 0


def test_random_layers_bit_true_equals_the_reference():
    """Random shapes, scales, thresholds and groups; LQER_VECTORS tokens in all (default 2000), LQER_SEED."""
    import os

    total = int(os.environ.get("LQER_VECTORS", "2000"))
    g = np.random.default_rng(int(os.environ.get("LQER_SEED", "0")))
    done = 0
    while done < total:
        tokens, d_in, d_out = int(g.integers(1, 64)), int(g.integers(1, 200)), int(g.integers(1, 40))
        x = g.standard_normal((tokens, d_in)) * np.exp2(g.integers(-12, 6, (1, d_in)))
        x[:, g.integers(0, d_in, 3)] *= g.uniform(1, 50)
        w = g.standard_normal((d_out, d_in)) * np.exp2(float(g.integers(-10, 3)))
        b = g.standard_normal(d_out) if g.random() < 0.5 else None
        threshold = float(g.choice([0.0, 0.5, 2.0, 6.0, math.inf]))
        group = [None, 1, 3, 16][int(g.integers(0, 4))]
        weights = L.quantize_weight(w, keep_fp16=True)
        outlier_weights = ["int8", "fp16"][int(g.integers(0, 2))]
        layer = LLMInt8Linear(weights, b, threshold=threshold, group=group, arithmetic="bit-true",
                              outlier_weights=outlier_weights)
        got = layer(torch.from_numpy(x.astype(np.float32))).numpy()
        expected = L.linear(x.astype(np.float32), weights, b, threshold=threshold, group=group,
                            outlier_weights=outlier_weights).y
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        done += tokens
