"""Local Hugging Face causal LMs: loading, the layers LQER quantizes, and a content hash.

Only local folders are read (``config.json`` plus safetensors, or a
``pytorch_model.bin`` that transformers opens with ``weights_only=True``);
nothing is fetched from a hub, and remote code runs only when the caller
passes ``trust_remote_code=True``.

Which layers are quantized follows the LQER authors: every ``nn.Linear``
inside the numbered decoder blocks (attention projections and MLP), not the
embeddings, not the LM head. A 2-d weight held by any other module type
inside those blocks (GPT-2's ``Conv1D``, for instance) is an error naming
that type, rather than a silently unquantized layer.
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

__all__ = ["ModelError", "WEIGHT_FILES", "load_model", "load_tokenizer", "quantizable_layers",
           "model_hash", "max_positions"]

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


def load_model(path: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
               trust_remote_code: bool = False) -> nn.Module:
    """A causal LM from a local folder, in eval mode on ``device``; ``ModelError`` if unusable."""
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model_type = _check_folder(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many types; report one line
        raise ModelError(f"model must be a loadable causal LM checkpoint; {path!r} "
                         f"(model_type {model_type!r}) failed: {_one_line(exc)}") from None
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
    return tokenizer


def quantizable_layers(model: nn.Module, *, pattern: str | None = None) -> dict[str, nn.Linear]:
    """Name -> ``nn.Linear`` of the layers to quantize, in model order.

    Default: linears inside numbered blocks, minus the output embedding.
    ``pattern`` (a regular expression searched in the module name) narrows that set.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    layers: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        if not _IN_BLOCK.search(name) or module is head:
            continue
        if isinstance(module, nn.Linear):
            layers[name] = module
            continue
        if isinstance(module, nn.Embedding):
            continue
        weight = module._parameters.get("weight")
        if weight is not None and weight.dim() == 2:
            raise ModelError(f"model layer {name} has type {type(module).__name__}, which cannot be "
                             "quantized; supported: torch.nn.Linear")
    if pattern is not None:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ModelError(f"layers must be a valid regular expression; got {pattern!r} ({exc})") from None
        layers = {n: m for n, m in layers.items() if regex.search(n)}
        if not layers:
            raise ModelError(f"layers must match at least one linear layer of the model; got {pattern!r}")
    if not layers:
        raise ModelError("model must have torch.nn.Linear layers inside its decoder blocks; found none")
    return layers


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
