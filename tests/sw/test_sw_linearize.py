"""GPT-2 Conv1D and fused mixture-of-experts weights as linear layers (issue 10 items 8 and 15).

Tiny checkpoints are built in the test: GPT-2 (Conv1D, fused q/k/v in c_attn), PhiMoE (4 experts,
hidden 64; its router is an nn.Linear subclass returning a tuple) and Mixtral (router a plain
module with a 2-d weight). Each one is loaded, quantized and evaluated through the CLI.
"""

import json

import pytest
import torch
from torch import nn

from sw import cli
from sw.emulation import EmulatedLinear, emulate_model
from sw.factors import compute_layer_factors, load_factors
from sw.linearize import ExpertLinears, linearize
from sw.models import kept_float, load_model, quantizable_layers
from sw.qconfig import QuantConfig
from tests.sw.tiny_checkpoints import VOCAB, save, text_file, tiny

GPT2_LAYERS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {family: (tiny(family).eval(), save(tiny(family), root / family))
            for family in ("gpt2", "phimoe", "mixtral")}


def test_gpt2_conv1d_becomes_linear_views_computing_the_same(checkpoints):
    original, path = checkpoints["gpt2"]
    model = load_model(path)
    layers = quantizable_layers(model)
    assert list(layers) == [f"transformer.h.{i}.{n}" for i in range(2) for n in GPT2_LAYERS]
    c_attn = layers["transformer.h.0.attn.c_attn"]
    # fused q/k/v is one layer: 32 -> 96, weight (d_out, d_in) = the transposed Conv1D weight
    assert type(c_attn) is nn.Linear and c_attn.weight_layout == "conv1d"
    assert (c_attn.in_features, c_attn.out_features) == (32, 96)
    conv = original.transformer.h[0].attn.c_attn
    assert torch.equal(c_attn.weight, conv.weight.T) and torch.equal(c_attn.bias, conv.bias)
    ids = torch.randint(0, VOCAB, (2, 20))
    torch.testing.assert_close(_logits(model, ids), _logits(original, ids), rtol=1e-6, atol=1e-6)
    # factors of the linear view are those of W^T: quantized along d_in, like any linear layer
    config = QuantConfig(method="lqer", rank=8)
    ours = compute_layer_factors(c_attn.weight, config=config, name="c_attn")
    direct = compute_layer_factors(conv.weight.detach().T.contiguous(), config=config, name="c_attn")
    assert (ours.weight.mantissas == direct.weight.mantissas).all()
    assert linearize(model) == {}  # idempotent


@pytest.mark.parametrize("family, router, router_type", [
    ("phimoe", "router", "router (PhimoeTopKRouter: an nn.Linear with its own forward)"),
    ("mixtral", "gate", "router (MixtralTopKRouter beside fused experts)"),
])
def test_fused_experts_become_per_expert_linears_and_routers_stay_float(checkpoints, family, router,
                                                                         router_type):
    original, path = checkpoints[family]
    model = load_model(path)
    experts = model.model.layers[0].mlp.experts
    assert isinstance(experts, ExpertLinears) and experts.num_experts == 4
    fused = original.model.layers[0].mlp.experts
    for e in range(4):
        assert torch.equal(experts.gate_up_proj[e].weight, fused.gate_up_proj[e])
        assert torch.equal(experts.down_proj[e].weight, fused.down_proj[e])
    ids = torch.randint(0, VOCAB, (2, 20))
    torch.testing.assert_close(_logits(model, ids), _logits(original, ids), rtol=1e-5, atol=1e-5)
    names = list(quantizable_layers(model))
    expert_names = [f"model.layers.{i}.mlp.experts.{p}.{e}" for i in range(2)
                    for p in ("gate_up_proj", "down_proj") for e in range(4)]
    assert set(expert_names) <= set(names) and len(names) == len(expert_names) + 2 * 4
    assert not any(f"mlp.{router}" in n for n in names)
    assert kept_float(model) == {f"model.layers.{i}.mlp.{router}": router_type for i in range(2)}


def test_phimoe_every_expert_weight_is_quantized_and_eval_runs(checkpoints, tmp_path, capsys):
    _, path = checkpoints["phimoe"]
    out = tmp_path / "factors"
    rc = cli.main(["--model", path, "--method", "lqer", "--rank", "8", "--out", str(out), "--json"],
                  prog="lqer-hw quantize")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    layouts = {n: e["layout"] for n, e in manifest["layers"].items()}
    experts = {n for n, lay in layouts.items() if lay == "experts"}
    assert len(experts) == 16 and all(".mlp.experts." in n for n in experts)
    # every one of the 2 x 4 x (256 x 64 + 64 x 128) = 196,608 expert weights is in the factors
    assert sum(manifest["layers"][n]["d_in"] * manifest["layers"][n]["d_out"] for n in experts) == 196_608
    assert not any("router" in n for n in layouts)
    assert "wrote 24 layers" in captured.out
    rc = cli.main(["--model", path, "--quantized", str(out), "--seq-len", "64", "--max-windows", "2",
                   "--json"], prog="lqer-hw eval")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["tokens"] == 2 * 63 and record["perplexity"] > 1


def test_quantized_experts_compute_with_their_factors(checkpoints):
    # the emulated experts are EmulatedLinear layers, called with the routed tokens only
    _, path = checkpoints["phimoe"]
    model = load_model(path)
    config = QuantConfig(method="mxint")
    layers = quantizable_layers(model, pattern=r"experts")
    factors = {n: compute_layer_factors(m.weight, config=config, name=n) for n, m in layers.items()}
    ids = torch.randint(0, VOCAB, (1, 24))
    before = _logits(model, ids)
    seen = []
    emulate_model(model, factors, mode="mxint")
    for name in layers:
        module = model.get_submodule(name)
        assert isinstance(module, EmulatedLinear)
        module.register_forward_pre_hook(lambda m, args, name=name: seen.append((name, args[0].shape[0])))
    after = _logits(model, ids)
    assert not torch.equal(before, after)
    # top-2 routing: each layer's gate_up experts see 24 * 2 token slots in all
    for i in range(2):
        assert sum(n for name, n in seen if f"layers.{i}.mlp.experts.gate_up_proj" in name) == 48


def test_gpt2_quantizes_and_evaluates_with_its_layout_recorded(checkpoints, tmp_path, capsys):
    _, path = checkpoints["gpt2"]
    out = tmp_path / "factors"
    data = text_file(tmp_path)
    rc = cli.main(["--model", path, "--method", "l2qer", "--rank", "8", "--calib", data,
                   "--calib-sequences", "4", "--calib-length", "32", "--out", str(out)],
                  prog="lqer-hw quantize")
    assert rc == 0, capsys.readouterr().err
    factors, _, manifest = load_factors(str(out))
    assert {e["layout"] for e in manifest["layers"].values()} == {"conv1d"}
    assert factors["transformer.h.0.attn.c_attn"].layout == "conv1d"
    assert (factors["transformer.h.0.attn.c_attn"].d_in, factors["transformer.h.0.attn.c_attn"].d_out) == (32, 96)
    capsys.readouterr()
    for extra in ([], ["--bit-true"]):
        rc = cli.main(["--model", path, "--quantized", str(out), "--data", data, "--seq-len", "64",
                       "--max-windows", "2", *extra], prog="lqer-hw eval")
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        assert captured.out.startswith("perplexity ")


def test_a_router_is_never_replaced():
    router_type = type("Router", (nn.Linear,), {"forward": lambda self, x: (x, x)})
    model = nn.Module()
    model.layers = nn.ModuleList([nn.Module()])
    model.layers[0].router = router_type(4, 4)
    config = QuantConfig(method="mxint", block=4)
    factors = {"layers.0.router": compute_layer_factors(model.layers[0].router.weight, config=config)}
    with pytest.raises(ValueError, match=r"^layer layers\.0\.router must be a torch\.nn\.Linear "
                       r"\(with nn\.Linear's forward\); got Router$"):
        emulate_model(model, factors, mode="mxint")
