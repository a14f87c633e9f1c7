"""Local Hugging Face causal LMs: loading, the layers LQER quantizes, and a content hash.

Only local folders are read (``config.json`` plus safetensors, or a
``pytorch_model.bin`` that transformers opens with ``weights_only=True``);
nothing is fetched from a hub, and remote code runs only when the caller
passes ``trust_remote_code=True``.

Loading is strict: a checkpoint that lacks a weight the model needs, holds
one it does not know, or holds one of another shape is a ``ModelError``
naming the tensors (and both shapes), never a randomly initialised layer.
The loaded model is :func:`sw.linearize.linearize`-d: GPT-2's ``Conv1D`` and
transformers' fused mixture-of-experts weights become plain ``nn.Linear``
layers (views of the same weights).

Which layers are quantized follows the LQER authors: every linear map inside
the numbered decoder blocks (attention projections and MLP, each expert's
projections), not the embeddings, not the LM head. A linear layer is an
``nn.Linear`` whose forward is ``nn.Linear.forward``: an ``nn.Linear``
subclass with its own forward (PhiMoE's router returns a tuple) is a router
and stays float, as does a 2-d ``weight`` of another module type beside
fused experts (Mixtral's router); convolutions (``nn.Conv1d`` in Mamba-style
mixers) are not linear layers and stay float. A 2-d weight held by any other
module type, or fused experts of a layout :mod:`sw.linearize` cannot take, is
an error naming the module, unless a ``pattern`` leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

# Never reach for a hub, even by accident (read when huggingface_hub is first imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from sw.linearize import ExpertLinears, fused_experts_layout, is_conv1d, linearize  # noqa: E402

__all__ = ["ModelError", "WEIGHT_FILES", "load_model", "load_tokenizer", "quantizable_layers",
           "kept_float", "model_hash", "max_positions", "vocabulary_size", "check_vocabulary",
           "check_token_ids", "check_loading_info"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model")

# A module name segment that is a number: the module sits in a ModuleList of blocks.
_IN_BLOCK = re.compile(r"(^|\.)\d+(\.|$)")


class ModelError(ValueError):
    """A model folder or model that cannot be used; the message is one line."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_folder(path: str) -> str:
    if not os.path.isdir(path):
        raise ModelError(f"model must be a local Hugging Face model folder or 'default'; got {path!r}")
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise ModelError(f"model folder must contain config.json; got {path!r}")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model config.json must be valid JSON; got {config_path!r} ({_one_line(exc)})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelError(f"model config.json must name a model_type; got {config_path!r}")
    found = [name for name in WEIGHT_FILES if os.path.isfile(os.path.join(path, name))]
    if not found:
        raise ModelError(f"model folder must contain one of {', '.join(WEIGHT_FILES)}; got {path!r}")
    for name in sorted(os.listdir(path)):  # single file or every shard
        if name.endswith(".safetensors"):
            _check_safetensors(os.path.join(path, name))
    return config["model_type"]


def _check_safetensors(file: str) -> None:
    """Open the header and every tensor, so a corrupt file fails here with its name."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                f.get_slice(key).get_shape()
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"model weights must be a valid safetensors file; got {file!r} "
                         f"({_one_line(exc)})") from None


def _names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_loading_info(info: dict, path: str) -> None:
    """``ModelError`` for missing, unexpected or wrong-shape weights in a loading report.

    ``info`` is what ``from_pretrained(..., output_loading_info=True)`` returns:
    ``missing_keys``, ``unexpected_keys`` (sets of names) and ``mismatched_keys``
    (a set of ``(name, checkpoint shape, model shape)``).
    """
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda item: item[0])
    if mismatched:
        name, ckpt, want = mismatched[0]
        more = f" ({len(mismatched)} weights differ)" if len(mismatched) > 1 else ""
        raise ModelError(f"model weight {name} must have shape {tuple(want)}; the checkpoint {path!r} "
                         f"holds {tuple(ckpt)}{more}")
    missing = info.get("missing_keys") or ()
    if missing:
        raise ModelError(f"model checkpoint must hold every weight of the model; {path!r} lacks "
                         f"{len(missing)}: {_names(missing)}")
    unexpected = info.get("unexpected_keys") or ()
    if unexpected:
        raise ModelError(f"model checkpoint must hold only weights of the model; {path!r} has "
                         f"{len(unexpected)} unknown: {_names(unexpected)}")


def load_model(path: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
               trust_remote_code: bool = False) -> nn.Module:
    """A causal LM from a local folder, linearized, in eval mode on ``device``.

    ``ModelError`` (one line) when the folder is unusable or its weights do not
    match the model: missing, unexpected, or of another shape.
    """
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model_type = _check_folder(path)
    try:
        # the mismatch report goes to a (silenced) log before transformers raises; take it
        # as data instead and say it ourselves
        model, info = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype, trust_remote_code=trust_remote_code,
            output_loading_info=True, ignore_mismatched_sizes=True)
    except Exception as exc:  # transformers raises many types; report one line
        raise ModelError(f"model must be a loadable causal LM checkpoint; {path!r} "
                         f"(model_type {model_type!r}) failed: {_one_line(exc)}") from None
    check_loading_info(info, path)
    linearize(model)
    model.eval()
    return model.to(device)


def load_tokenizer(path: str, *, trust_remote_code: bool = False):
    """The tokenizer saved beside the model; ``ModelError`` if there is none."""
    import transformers
    from transformers import AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    # transformers 5 builds an empty tokenizer when the files are missing: check first
    if not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        raise ModelError(f"model folder must hold a tokenizer (one of {', '.join(TOKENIZER_FILES)}); "
                         f"got {path!r}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"model folder must hold a loadable tokenizer; {path!r} failed: "
                         f"{_one_line(exc)}") from None
    if len(tokenizer) < 2:
        raise ModelError(f"model folder must hold a tokenizer with a vocabulary; got {path!r}")
    vocab = _config_vocab_size(path)
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelError(_vocab_message(len(tokenizer), vocab, path))
    return tokenizer


def _vocab_message(tokens: int, vocab: int, where: str | None = None) -> str:
    return (f"tokenizer must fit the model's vocabulary of {vocab} tokens; got a tokenizer of "
            f"{tokens} tokens" + (f" ({where!r})" if where else ""))


def _config_vocab_size(path: str) -> int | None:
    """``vocab_size`` from the folder's config.json (or its ``text_config``), when stated."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    for section in (config, config.get("text_config") if isinstance(config, dict) else None):
        if isinstance(section, dict) and isinstance(section.get("vocab_size"), int):
            return section["vocab_size"]
    return None


def vocabulary_size(model: nn.Module) -> int | None:
    """Rows of the model's input embedding (the token ids it accepts), when it has one."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get() if get is not None else None
    except (NotImplementedError, AttributeError):
        embedding = None
    weight = getattr(embedding, "weight", None)
    return int(weight.shape[0]) if weight is not None else None


def check_vocabulary(model: nn.Module, tokenizer) -> None:
    """``ModelError`` naming both sizes when the tokenizer has more tokens than the model's embedding."""
    vocab = vocabulary_size(model)
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelError(_vocab_message(len(tokenizer), vocab))


def check_token_ids(model: nn.Module, ids: torch.Tensor, *, name: str = "text") -> None:
    """``ModelError`` when a token id is outside the model's embedding (one sync)."""
    vocab = vocabulary_size(model)
    if vocab is None or not ids.numel():
        return
    low, high = (int(v) for v in torch.aminmax(ids))
    if low < 0 or high >= vocab:
        bad = high if high >= vocab else low
        raise ModelError(f"{name} token ids must be below the model's vocabulary of {vocab} tokens; "
                         f"got id {bad} (the tokenizer does not match the model)")


def _is_plain_linear(module: nn.Module) -> bool:
    """An ``nn.Linear`` with ``nn.Linear``'s forward contract (a router subclass is not)."""
    return isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward


def _has_fused(module: nn.Module) -> bool:
    return (not isinstance(module, nn.modules.conv._ConvNd)
            and any(p.dim() >= 3 for p in module.parameters(recurse=False)))


def _classify(model: nn.Module):
    """(layers, kept float, unsupported) over the modules inside numbered blocks, in model order."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    modules = dict(model.named_modules())
    # parents of fused experts: their other 2-d weights are routers
    moe_blocks = {n.rpartition(".")[0] for n, m in modules.items() if _has_fused(m)}
    moe_blocks |= {n.rpartition(".")[0] for n, m in modules.items() if isinstance(m, ExpertLinears)}
    layers: dict[str, nn.Linear] = {}
    kept: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    for name, module in modules.items():
        if not _IN_BLOCK.search(name) or module is head or isinstance(module, nn.Embedding):
            continue
        if _is_plain_linear(module):
            layers[name] = module
        elif isinstance(module, nn.Linear):
            kept[name] = f"router ({type(module).__name__}: an nn.Linear with its own forward)"
        elif is_conv1d(module):
            unsupported[name] = ("Conv1D not linearized (load it with sw.models.load_model or call "
                                 "sw.linearize.linearize)")
        elif _has_fused(module):
            why = fused_experts_layout(module)
            unsupported[name] = (f"fused experts with {why}" if why else
                                 "fused experts not linearized (call sw.linearize.linearize)")
        elif isinstance(module, nn.modules.conv._ConvNd):
            kept[name] = f"convolution ({type(module).__name__})"
        else:
            weight = module._parameters.get("weight")
            if weight is not None and weight.dim() == 2:
                if name.rpartition(".")[0] in moe_blocks:
                    kept[name] = f"router ({type(module).__name__} beside fused experts)"
                else:
                    unsupported[name] = "a 2-d weight in a module that is not a linear layer"
    return layers, kept, unsupported


def _regex(pattern: str):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ModelError(f"layers must be a valid regular expression; got {pattern!r} ({exc})") from None


def quantizable_layers(model: nn.Module, *, pattern: str | None = None) -> dict[str, nn.Linear]:
    """Name -> ``nn.Linear`` of the layers to quantize, in model order.

    Default: plain linear layers inside numbered blocks, minus the output
    embedding (see the module docstring for what stays float).
    ``pattern`` (a regular expression searched in the module name) narrows that
    set; a module that cannot be quantized is an error only when the pattern
    (or no pattern) selects it.
    """
    layers, _, unsupported = _classify(model)
    if pattern is not None:
        regex = _regex(pattern)
        layers = {n: m for n, m in layers.items() if regex.search(n)}
        unsupported = {n: why for n, why in unsupported.items() if regex.search(n)}
    if unsupported:
        name, why = next(iter(unsupported.items()))
        module = model.get_submodule(name)
        raise ModelError(f"model layer {name} has type {type(module).__name__}, which cannot be "
                         f"quantized ({why}); supported: torch.nn.Linear, transformers Conv1D, fused "
                         "experts (concatenated gate/up, no bias); leave it out with a layers pattern")
    if pattern is not None and not layers:
        raise ModelError(f"layers must match at least one linear layer of the model; got {pattern!r}")
    if not layers:
        raise ModelError("model must have torch.nn.Linear layers inside its decoder blocks; found none")
    return layers


def kept_float(model: nn.Module) -> dict[str, str]:
    """Name -> reason of the modules inside the blocks that hold weights but stay float (routers, convolutions)."""
    return _classify(model)[1]


def model_hash(model: nn.Module) -> str:
    """SHA-256 over every state-dict tensor (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def max_positions(model: nn.Module) -> int | None:
    """The longest sequence the model's position encoding allows, when the config says."""
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None
