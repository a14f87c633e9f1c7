"""Loading local checkpoints: tiny random OPT and LLaMA saved with save_pretrained, and bad folders."""

import json
import os
import shutil

import pytest
import torch

from sw import cli
from sw.default_model import DIRECTORY as DEFAULT_DIR
from sw.models import ModelError, load_model, load_tokenizer, model_hash, quantizable_layers

VOCAB = 4096  # the embedded tokenizer's, so the tiny models can use it


def _tiny(family: str):
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, OPTConfig,
                              OPTForCausalLM)

    torch.manual_seed(0)
    if family == "opt":
        return OPTForCausalLM(OPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                        num_attention_heads=2, max_position_embeddings=64,
                                        word_embed_proj_dim=32))
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=2,
                                            num_key_value_heads=1, max_position_embeddings=64))
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                      bos_token_id=2, eos_token_id=2))


def _save(model, folder, *, tokenizer=True):
    model.save_pretrained(str(folder))
    if tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(DEFAULT_DIR, name), folder / name)
    return str(folder)


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


def test_unsupported_layer_type_is_named(tmp_path):
    model = load_model(_save(_tiny("gpt2"), tmp_path / "gpt2"))
    with pytest.raises(ModelError, match=r"^model layer transformer\.h\.0\.attn\.c_attn has type Conv1D, "
                       r"which cannot be quantized; supported: torch\.nn\.Linear$"):
        quantizable_layers(model)


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
