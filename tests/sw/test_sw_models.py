"""Loading local checkpoints: tiny random checkpoints saved with save_pretrained, bad folders,
weights that do not match the model, and tokenizers that do not match it."""

import json
import os

import pytest

import torch
from torch import nn

from sw import cli
from sw.models import (ModelError, check_token_ids, check_vocabulary, load_model,
                       load_tokenizer, model_hash, quantizable_layers)
from tests.sw.cli_checks import error_message
from tests.sw.tiny_checkpoints import VOCAB, edit_weights, text_file
from tests.sw.tiny_checkpoints import save as _save, tiny as _tiny


EXPECTED = {
    "opt": ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj", "fc1", "fc2"],
    "llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
}
PREFIX = {"opt": "model.decoder.layers", "llama": "model.layers"}


@pytest.mark.parametrize("family", ["opt", "llama"])
def test_tiny_checkpoint_loads_quantizes_and_evaluates(tmp_path, family, capsys):
    original = _tiny(family)
    path = _save(original, tmp_path / family)
    model = load_model(path)
    assert type(model) is type(original) and not model.training
    assert model_hash(model) == model_hash(original)
    names = list(quantizable_layers(model))
    assert sorted(names) == sorted(f"{PREFIX[family]}.{i}.{n}" for i in range(2) for n in EXPECTED[family])
    x = torch.randint(0, VOCAB, (1, 12))
    torch.testing.assert_close(model(input_ids=x).logits, original.eval()(input_ids=x).logits)
    out = tmp_path / "factors"
    rc = cli.main(["--model", path, "--method", "l2qer", "--rank", "8", "--calib-sequences", "4",
                   "--calib-length", "32", "--out", str(out), "--json"], prog="lqer-hw quantize")
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["layers"]) == sorted(names)
    assert manifest["source_model"]["hash"] == model_hash(model)
    capsys.readouterr()
    rc = cli.main(["--model", path, "--quantized", str(out), "--seq-len", "32", "--max-windows", "4",
                   "--json"], prog="lqer-hw eval")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["method"] == "l2qer" and record["rank"] == 8 and record["tokens"] == 4 * 31
    assert record["perplexity"] > 1


def test_pytorch_bin_checkpoint_loads_with_weights_only(tmp_path):
    original = _tiny("opt")
    path = _save(original, tmp_path / "bin")
    os.remove(os.path.join(path, "model.safetensors"))
    torch.save(original.state_dict(), os.path.join(path, "pytorch_model.bin"))
    assert model_hash(load_model(path)) == model_hash(original)


class _Odd(nn.Module):
    """A 2-d weight that is not a linear layer's."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4, 4))

    def forward(self, x):
        return x


class _Fused(nn.Module):
    """Fused experts of a layout sw.linearize does not take (transposed, with biases)."""

    def __init__(self):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.ones(2, 4, 8))
        self.gate_up_proj_bias = nn.Parameter(torch.ones(2, 8))


def _blocks(odd):
    block = nn.Module()
    block.proj = nn.Linear(4, 4)
    block.odd = odd
    model = nn.Module()
    model.layers = nn.ModuleList([block])
    return model


@pytest.mark.parametrize("odd, type_name, why", [
    (_Odd(), "_Odd", "a 2-d weight in a module that is not a linear layer"),
    (_Fused(), "_Fused", "fused experts with not gate_up_proj (E, 2I, H) and down_proj (E, H, I) parameters"),
])
def test_unsupported_layer_type_is_named_unless_the_pattern_leaves_it_out(odd, type_name, why):
    model = _blocks(odd)
    message = (f"model layer layers.0.odd has type {type_name}, which cannot be quantized ({why}); "
               "supported: torch.nn.Linear, transformers Conv1D, fused experts (concatenated gate/up, "
               "no bias); leave it out with a layers pattern")
    with pytest.raises(ModelError) as info:
        quantizable_layers(model)
    assert str(info.value) == message
    with pytest.raises(ModelError):
        quantizable_layers(model, pattern="layers")
    # a module the project cannot quantize never stops the layers a selection names
    assert list(quantizable_layers(model, pattern=r"proj$")) == ["layers.0.proj"]


def test_conv1d_not_linearized_is_named():
    model = _tiny("gpt2")  # built here, not through load_model: still Conv1D
    with pytest.raises(ModelError, match=r"^model layer transformer\.h\.0\.attn\.c_attn has type Conv1D, "
                       r"which cannot be quantized \(Conv1D not linearized"):
        quantizable_layers(model)


# --- weights that do not match the model (issue 10 item 1) -----------------------------------

def test_missing_weight_is_an_error_naming_it(tmp_path, capsys):
    path = _save(_tiny("llama"), tmp_path / "missing")
    edit_weights(path, lambda sd: sd.pop("model.layers.1.mlp.down_proj.weight"))
    message = (f"model checkpoint must hold every weight of the model; {path!r} lacks 1: "
               "model.layers.1.mlp.down_proj.weight")
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == message
    # every command that loads a model shares the path: one line, exit 2, nothing written
    out = tmp_path / "factors"
    for argv, prog in ((["--model", path, "--method", "lqer", "--rank", "8", "--out", str(out)],
                        "lqer-hw quantize"),
                       (["--model", path, "--max-windows", "1"], "lqer-hw eval")):
        assert cli.main(argv, prog=prog) == 2
        assert error_message(capsys.readouterr().err, prog) == message
    assert not out.exists()


def test_unexpected_weights_are_an_error_naming_them(tmp_path):
    path = _save(_tiny("llama"), tmp_path / "extra")
    edit_weights(path, lambda sd: sd.update({f"model.layers.1.mlp.extra{i}.weight": torch.zeros(2)
                                             for i in range(5)}))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"model checkpoint must hold only weights of the model; {path!r} has 5 "
                               "unknown: model.layers.1.mlp.extra0.weight, model.layers.1.mlp.extra1.weight, "
                               "model.layers.1.mlp.extra2.weight and 2 more")


@pytest.mark.parametrize("key, bad, want", [
    ("model.layers.1.mlp.down_proj.weight", (32, 60), (32, 64)),
    ("model.norm.weight", (31,), (32,)),
])
def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path, key, bad, want):
    path = _save(_tiny("llama"), tmp_path / "shape")
    edit_weights(path, lambda sd: sd.__setitem__(key, torch.zeros(bad)))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"model weight {key} must have shape {want}; the checkpoint {path!r} "
                               f"holds {bad}")


# --- tokenizer and model disagree (issue 10 item 3) ------------------------------------------

def test_tokenizer_larger_than_the_model_vocabulary_names_both_sizes(tmp_path, capsys):
    path = _save(_tiny("llama", vocab=1000), tmp_path / "vocab")
    message = (f"tokenizer must fit the model's vocabulary of 1000 tokens; got a tokenizer of 4096 "
               f"tokens ({path!r})")
    with pytest.raises(ModelError) as info:
        load_tokenizer(path)
    assert str(info.value) == message
    data = text_file(tmp_path)
    for argv, prog in ((["--model", path, "--data", data, "--seq-len", "32"], "lqer-hw eval"),
                       (["--model", path, "--method", "l2qer", "--calib", data, "--calib-length", "32",
                         "--out", str(tmp_path / "f")], "lqer-hw quantize")):
        assert cli.main(argv, prog=prog) == 2
        assert error_message(capsys.readouterr().err, prog) == message
    # the library check, given the model and a tokenizer
    model = load_model(path)
    tokenizer = load_tokenizer(_save(_tiny("llama"), tmp_path / "ok"))
    with pytest.raises(ModelError, match=r"^tokenizer must fit the model's vocabulary of 1000 tokens; "
                       r"got a tokenizer of 4096 tokens$"):
        check_vocabulary(model, tokenizer)
    check_vocabulary(load_model(str(tmp_path / "ok")), tokenizer)


def test_token_ids_beyond_the_embedding_are_named():
    model = _tiny("llama", vocab=1000)
    check_token_ids(model, torch.tensor([0, 999]))
    for bad in (1000, -1):
        with pytest.raises(ModelError) as info:
            check_token_ids(model, torch.tensor([5, bad, 7]), name="data")
        assert str(info.value) == (f"data token ids must be below the model's vocabulary of 1000 tokens; "
                                   f"got id {bad} (the tokenizer does not match the model)")


def test_layer_pattern_and_no_linear_layers():
    model = _tiny("opt")
    only = quantizable_layers(model, pattern=r"fc\d$")
    assert sorted(only) == [f"model.decoder.layers.{i}.fc{j}" for i in range(2) for j in (1, 2)]
    with pytest.raises(ModelError, match=r"^layers must match at least one linear layer of the model; got 'nope'$"):
        quantizable_layers(model, pattern="nope")
    with pytest.raises(ModelError, match=r"^model must have torch\.nn\.Linear layers inside its decoder blocks; found none$"):
        quantizable_layers(torch.nn.Sequential(torch.nn.LayerNorm(4)))


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(ModelError, match=r"^model must be a local Hugging Face model folder or 'default'; got"):
        load_model(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"^model folder must contain config\.json; got"):
        load_model(str(empty))
    path = _save(_tiny("opt"), tmp_path / "corrupt", tokenizer=False)
    weights = os.path.join(path, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(ModelError, match=r"^model weights must be a valid safetensors file; got .*incomplete metadata"):
        load_model(path)
    os.remove(weights)
    with pytest.raises(ModelError, match=r"^model folder must contain one of model\.safetensors"):
        load_model(path)
    with pytest.raises(ModelError, match=r"^model folder must hold a tokenizer"):
        load_tokenizer(path)


def test_hash_follows_the_weights():
    model = _tiny("opt")
    before = model_hash(model)
    with torch.no_grad():
        model.model.decoder.layers[0].fc1.weight[0, 0] += 1
    assert model_hash(model) != before
