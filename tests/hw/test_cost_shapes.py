"""hw.cost.shapes: layer shapes from config.json files (OPT, LLaMA with grouped-query
attention, GPT-2's Conv1D and fused qkv, Mistral), built-in shape sets, errors."""

from __future__ import annotations

import json

import pytest

from hw.cost.shapes import BUILTIN, read_model, shapes_from_config

OPT = {"model_type": "opt", "hidden_size": 64, "ffn_dim": 256, "num_attention_heads": 4,
       "num_hidden_layers": 3, "word_embed_proj_dim": 64, "vocab_size": 100}
LLAMA_GQA = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688,
             "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 2}
GPT2 = {"model_type": "gpt2", "n_embd": 96, "n_head": 4, "n_layer": 2, "n_inner": None}
MISTRAL = {"model_type": "mistral", "hidden_size": 512, "intermediate_size": 1792,
           "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 128,
           "num_hidden_layers": 1}


def _write(tmp_path, config, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def _shapes(model):
    return {(layer.name, layer.d_in, layer.d_out) for layer in model.layers}


def test_opt_layers_from_a_folder(tmp_path):
    _write(tmp_path, OPT)
    model = read_model(str(tmp_path))
    assert model.model_type == "opt" and model.blocks == 3 and len(model.layers) == 18
    block1 = {n: (i, o) for n, i, o in _shapes(model) if ".1." in n}
    assert block1 == {
        "model.decoder.layers.1.self_attn.q_proj": (64, 64),
        "model.decoder.layers.1.self_attn.k_proj": (64, 64),
        "model.decoder.layers.1.self_attn.v_proj": (64, 64),
        "model.decoder.layers.1.self_attn.out_proj": (64, 64),
        "model.decoder.layers.1.fc1": (64, 256), "model.decoder.layers.1.fc2": (256, 64)}


def test_llama_grouped_query_attention_narrows_k_and_v(tmp_path):
    model = read_model(str(_write(tmp_path, LLAMA_GQA)))
    kinds = {layer.kind: (layer.d_in, layer.d_out) for layer in model.kinds()}
    assert kinds == {"q_proj": (256, 256), "k_proj": (256, 64), "v_proj": (256, 64),
                     "o_proj": (256, 256), "gate_proj": (256, 688), "up_proj": (256, 688),
                     "down_proj": (688, 256)}
    assert model.layers[0].name == "model.layers.0.self_attn.q_proj"


def test_gpt2_fused_qkv_is_one_layer_and_n_inner_defaults_to_four_times(tmp_path):
    model = read_model(str(_write(tmp_path, GPT2)))
    assert [(layer.name, layer.d_in, layer.d_out) for layer in model.layers[:4]] == [
        ("transformer.h.0.attn.c_attn", 96, 288), ("transformer.h.0.attn.c_proj", 96, 96),
        ("transformer.h.0.mlp.c_fc", 96, 384), ("transformer.h.0.mlp.c_proj", 384, 96)]
    assert len(model.layers) == 8


def test_mistral_takes_head_dim_from_the_config(tmp_path):
    model = read_model(str(_write(tmp_path, MISTRAL)))
    kinds = {layer.kind: (layer.d_in, layer.d_out) for layer in model.kinds()}
    assert kinds["q_proj"] == (512, 1024) and kinds["k_proj"] == (512, 512)
    assert kinds["o_proj"] == (1024, 512)


@pytest.mark.parametrize("name, hidden, inter, kv, blocks", [
    ("llama-7b", 4096, 11008, 4096, 32), ("llama-2-13b", 5120, 13824, 5120, 40),
    ("llama-3-8b", 4096, 14336, 1024, 32), ("opt-1.3b", 2048, 8192, 2048, 24)])
def test_builtin_shape_sets_state_their_source(name, hidden, inter, kv, blocks):
    model = read_model(name)
    kinds = {layer.kind: (layer.d_in, layer.d_out) for layer in model.kinds()}
    up = "fc1" if model.model_type == "opt" else "up_proj"
    assert kinds[up] == (hidden, inter) and kinds["k_proj"] == (hidden, kv)
    assert model.blocks == blocks and "config.json" in model.source
    assert model.source == BUILTIN[name]["_source"]


def test_default_is_the_embedded_model():
    model = read_model("default")
    assert model.model_type == "opt" and model.layers[4].kind == "fc1"
    assert (model.layers[4].d_in, model.layers[4].d_out) == (128, 512)


@pytest.mark.parametrize("config, message", [
    ({"model_type": "llama", "num_hidden_layers": 2, "vocab_size": 10},
     r"^model config must give the layer shapes \(hidden_size, intermediate_size\); got none in "),
    ({"model_type": "bert", "hidden_size": 8},
     r"^model config must be of a known architecture \(llama, mistral, qwen2, opt, gpt2\); got "
     r"model_type 'bert' in "),
    ({"model_type": "opt", "hidden_size": 64, "ffn_dim": 0, "num_hidden_layers": 1},
     r"^model config must give ffn_dim as a positive integer; got 0 in "),
    ([1, 2], r"^model config must be a JSON object; got list in "),
])
def test_configs_without_usable_shapes_are_refused(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        read_model(str(_write(tmp_path, config)))


def test_missing_and_unreadable_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^model must be a folder with config\.json, a config\.json "
                       r"file, 'default', or one of llama-7b, llama-2-13b, opt-1\.3b, llama-3-8b; "
                       r"got 'llama-8b'$"):
        read_model("llama-8b")
    with pytest.raises(ValueError, match=r"without config\.json$"):
        read_model(str(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"^model config must be JSON; got .*bad\.json' \(line 1"):
        read_model(str(bad))


def test_kinds_and_blocks_follow_the_layers():
    model = shapes_from_config(OPT, name="x", source="test")
    assert [layer.kind for layer in model.kinds()] == ["q_proj", "k_proj", "v_proj", "out_proj",
                                                      "fc1", "fc2"]
    assert model.config["ffn_dim"] == 256
