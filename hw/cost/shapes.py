"""Layer shapes of a model: the linear layers inside its decoder blocks, without weights.

A model is read from a Hugging Face ``config.json`` (a folder holding one, or the file),
from the embedded default model (``"default"``), or from a built-in shape set
(:data:`BUILTIN`: the published models the LQER, LLM.int8() and ResQ papers use, stated
as the values of their ``config.json`` with the source). The layers are those
``sw.models.quantizable_layers`` quantizes: the linear layers of each numbered block,
named as the model's modules are, in model order; the output embedding (``lm_head``)
and any projection outside the blocks stay float and are not listed.

Architectures (``model_type``):

- LLaMA-like (``llama``, ``mistral``, ``qwen2``): ``q_proj`` (hidden -> heads x head_dim),
  ``k_proj`` / ``v_proj`` (hidden -> kv_heads x head_dim: narrower than q under
  grouped-query attention), ``o_proj``, ``gate_proj`` / ``up_proj`` (hidden ->
  intermediate), ``down_proj``; ``head_dim`` from the config or hidden / heads.
- OPT: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (hidden -> hidden), ``fc1``
  (hidden -> ffn_dim), ``fc2``.
- GPT-2: Conv1D layers, quantized as linear layers (``sw.linearize``): ``attn.c_attn``
  (the fused q, k, v: n_embd -> 3 n_embd, one layer), ``attn.c_proj``, ``mlp.c_fc``
  (n_embd -> n_inner, default 4 n_embd), ``mlp.c_proj``.

Errors are ``ValueError`` with one line naming the parameter (``model``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

__all__ = ["Layer", "ModelShapes", "BUILTIN", "LLAMA_LIKE", "read_model", "shapes_from_config",
           "model_choices"]

LLAMA_LIKE = ("llama", "mistral", "qwen2")


@dataclass(frozen=True)
class Layer:
    """One linear layer: ``name`` (module name), ``kind`` (its last name part, e.g.
    ``up_proj``), ``index`` (decoder block), ``d_in`` x ``d_out`` (features)."""

    name: str
    kind: str
    index: int
    d_in: int
    d_out: int


@dataclass(frozen=True)
class ModelShapes:
    """The linear layers of a model, with where their shapes came from."""

    name: str           # the --model value (a built-in name, "default" or the path)
    model_type: str
    layers: tuple[Layer, ...]
    source: str         # the config file, or the published source of a built-in set
    config: dict        # the config values the shapes were read from

    @property
    def blocks(self) -> int:
        return 1 + max(layer.index for layer in self.layers)

    def kinds(self) -> list[Layer]:
        """One layer per kind, from the first block (all blocks have the same shapes)."""
        seen: dict[str, Layer] = {}
        for layer in self.layers:
            seen.setdefault(layer.kind, layer)
        return list(seen.values())


# The published models the papers use, as their config.json values. Sources: the model
# cards' config.json files on the Hugging Face hub (read once, by hand; nothing is fetched).
# ``_outlier_columns``: a published LLM.int8() outlier count, used when none is given.
BUILTIN: dict[str, dict] = {
    "llama-7b": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
        "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 32,
        "_source": "huggyllama/llama-7b config.json (LLaMA-7B: Touvron et al. 2023, Table 2: "
                   "dimension 4096, 32 heads, 32 layers; FFN 11008)",
        "_outlier_columns": (353, "the LQER authors' LLaMA-7B profile, 353 of 4096 columns, "
                                  "applied to every layer")},
    "llama-2-13b": {
        "model_type": "llama", "hidden_size": 5120, "intermediate_size": 13824,
        "num_attention_heads": 40, "num_key_value_heads": 40, "num_hidden_layers": 40,
        "_source": "meta-llama/Llama-2-13b-hf config.json (Touvron et al. 2023b)"},
    "opt-1.3b": {
        "model_type": "opt", "hidden_size": 2048, "ffn_dim": 8192,
        "num_attention_heads": 32, "num_hidden_layers": 24,
        "_source": "facebook/opt-1.3b config.json (Zhang et al. 2022, Table 1)"},
    "llama-3-8b": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
        "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
        "_source": "meta-llama/Meta-Llama-3-8B config.json (grouped-query attention, 8 KV heads)"},
}


def model_choices() -> str:
    return "a folder with config.json, a config.json file, 'default', or one of " + \
        ", ".join(BUILTIN)


def _positive(config: dict, key: str, where: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model config must give {key} as a positive integer; got "
                         f"{value!r} in {where}")
    return value


def _require_shapes(config: dict, keys: tuple[str, ...], where: str) -> None:
    if not any(k in config for k in keys):
        raise ValueError(f"model config must give the layer shapes ({', '.join(keys)}); "
                         f"got none in {where}")


def _llama(config: dict, where: str) -> list[tuple[str, str, int, int]]:
    _require_shapes(config, ("hidden_size", "intermediate_size"), where)
    hidden = _positive(config, "hidden_size", where)
    inter = _positive(config, "intermediate_size", where)
    heads = _positive(config, "num_attention_heads", where)
    kv = config.get("num_key_value_heads") or heads
    kv = _positive({"num_key_value_heads": kv}, "num_key_value_heads", where)
    head_dim = config.get("head_dim") or hidden // heads
    head_dim = _positive({"head_dim": head_dim}, "head_dim", where)
    q, k = heads * head_dim, kv * head_dim
    return [("self_attn.q_proj", "q_proj", hidden, q), ("self_attn.k_proj", "k_proj", hidden, k),
            ("self_attn.v_proj", "v_proj", hidden, k), ("self_attn.o_proj", "o_proj", q, hidden),
            ("mlp.gate_proj", "gate_proj", hidden, inter), ("mlp.up_proj", "up_proj", hidden, inter),
            ("mlp.down_proj", "down_proj", inter, hidden)]


def _opt(config: dict, where: str) -> list[tuple[str, str, int, int]]:
    _require_shapes(config, ("hidden_size", "ffn_dim"), where)
    hidden = _positive(config, "hidden_size", where)
    ffn = _positive(config, "ffn_dim", where)
    return [("self_attn.q_proj", "q_proj", hidden, hidden),
            ("self_attn.k_proj", "k_proj", hidden, hidden),
            ("self_attn.v_proj", "v_proj", hidden, hidden),
            ("self_attn.out_proj", "out_proj", hidden, hidden),
            ("fc1", "fc1", hidden, ffn), ("fc2", "fc2", ffn, hidden)]


def _gpt2(config: dict, where: str) -> list[tuple[str, str, int, int]]:
    _require_shapes(config, ("n_embd",), where)
    hidden = _positive(config, "n_embd", where)
    inner = config.get("n_inner") or 4 * hidden
    inner = _positive({"n_inner": inner}, "n_inner", where)
    return [("attn.c_attn", "c_attn", hidden, 3 * hidden), ("attn.c_proj", "c_proj", hidden, hidden),
            ("mlp.c_fc", "c_fc", hidden, inner), ("mlp.c_proj", "mlp.c_proj", inner, hidden)]


# model_type -> (layer list, block prefix, number-of-blocks key)
_ARCHITECTURES = {
    **{t: (_llama, "model.layers", "num_hidden_layers") for t in LLAMA_LIKE},
    "opt": (_opt, "model.decoder.layers", "num_hidden_layers"),
    "gpt2": (_gpt2, "transformer.h", "n_layer"),
}


def shapes_from_config(config: dict, *, name: str, source: str) -> ModelShapes:
    """The layers of a model described by ``config`` (a parsed ``config.json``)."""
    if not isinstance(config, dict):
        raise ValueError(f"model config must be a JSON object; got {type(config).__name__} "
                         f"in {source}")
    model_type = config.get("model_type")
    if model_type not in _ARCHITECTURES:
        raise ValueError(f"model config must be of a known architecture "
                         f"({', '.join(_ARCHITECTURES)}); got model_type {model_type!r} in {source}")
    layer_list, prefix, blocks_key = _ARCHITECTURES[model_type]
    per_block = layer_list(config, source)
    blocks = _positive(config, blocks_key, source)
    layers = tuple(Layer(f"{prefix}.{i}.{path}", kind, i, d_in, d_out)
                   for i in range(blocks) for path, kind, d_in, d_out in per_block)
    kept = {k: v for k, v in config.items() if not k.startswith("_")}
    return ModelShapes(name=name, model_type=model_type, layers=layers, source=source,
                       config=kept)


def read_model(spec: str) -> ModelShapes:
    """Shapes of ``spec``: a built-in set name, ``"default"``, a folder or a ``config.json``."""
    if spec in BUILTIN:
        config = BUILTIN[spec]
        return shapes_from_config(config, name=spec, source=config["_source"])
    if spec == "default":
        from sw.default_model import DIRECTORY
        path = os.path.join(DIRECTORY, "config.json")
    elif os.path.isdir(spec):
        path = os.path.join(spec, "config.json")
        if not os.path.isfile(path):
            raise ValueError(f"model must be {model_choices()}; got the folder {spec!r} "
                             "without config.json")
    elif os.path.isfile(spec):
        path = spec
    else:
        raise ValueError(f"model must be {model_choices()}; got {spec!r}")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"model must name a readable config.json; got {path!r} "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"model config must be JSON; got {path!r} (line {exc.lineno}: "
                         f"{exc.msg})") from None
    return shapes_from_config(config, name=spec, source=path)
