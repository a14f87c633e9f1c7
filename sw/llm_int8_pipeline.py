"""LLM.int8() / W8A8 for whole models: options, quantized weights, emulation, perplexity.

The steps ``lqer-hw quantize --method llm-int8`` and ``lqer-hw eval --method
llm-int8|w8a8`` take, as plain functions. Layers follow the Hugging Face
integration of bitsandbytes (every linear except ``lm_head``), restricted as
the other methods are to the linears inside the decoder blocks
(:func:`sw.models.quantizable_layers`; ``layer_pattern`` narrows them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sw import llm_int8 as ref
from sw.llm_int8_torch import METHODS, OUTLIER_WEIGHTS, LLMInt8Linear, emulate_int8
from sw.models import quantizable_layers
from sw.perplexity import PerplexityResult, perplexity

__all__ = ["Int8Options", "quantize_layers", "emulate", "outlier_counts", "evaluate"]


@dataclass(frozen=True, kw_only=True)
class Int8Options:
    """Options of an LLM.int8() or W8A8 model (``sw.llm_int8`` gives the semantics).

    ``threshold`` (finite, > 0) and ``group`` (tokens per detection group,
    ``None``: the whole batch) apply to ``llm-int8``; ``w8a8`` has no outlier
    path (threshold infinite) and takes neither. ``outlier_weights``: ``int8``
    (dequantized int8 weights, bitsandbytes inference) or ``fp16``.
    """

    method: str = "llm-int8"
    threshold: float = ref.THRESHOLD
    group: int | None = None
    outlier_weights: str = "int8"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        t = ref.check_threshold(self.threshold)
        if self.method == "llm-int8" and (t == 0 or math.isinf(t)):
            raise ValueError(f"threshold must be a finite number > 0; got {self.threshold!r}")
        ref.check_group(self.group)
        if self.outlier_weights not in OUTLIER_WEIGHTS:
            raise ValueError(f"outlier_weights must be one of {', '.join(OUTLIER_WEIGHTS)}; "
                             f"got {self.outlier_weights!r}")
        if self.method == "w8a8" and (self.group is not None or self.outlier_weights != "int8"
                                      or t != ref.THRESHOLD):
            raise ValueError("threshold, group and outlier_weights must be left at their defaults for "
                             "method w8a8 (it has no outlier path)")

    @property
    def effective_threshold(self) -> float:
        """``threshold``, or ``inf`` for ``w8a8``."""
        return math.inf if self.method == "w8a8" else float(self.threshold)

    def label(self) -> str:
        if self.method == "w8a8":
            return "w8a8"
        group = "batch" if self.group is None else str(self.group)
        return f"llm-int8 threshold {self.threshold:g} group {group}"

    def to_json(self) -> dict:
        if self.method == "w8a8":
            return {"method": "w8a8", "threshold": None, "group": None, "outlier_weights": "int8"}
        return {"method": self.method, "threshold": float(self.threshold), "group": self.group,
                "outlier_weights": self.outlier_weights}

    @classmethod
    def from_json(cls, data: dict) -> "Int8Options":
        known = {"method", "threshold", "group", "outlier_weights"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"llm-int8 options must be among {', '.join(sorted(known))}; got {unknown[0]!r}")
        values = dict(data)
        if values.get("threshold") is None:
            values.pop("threshold", None)
        return cls(**values)


def quantize_layers(layers: dict[str, nn.Linear], options: Int8Options, *, progress: bool = False
                    ) -> dict[str, tuple[ref.Int8Weight, np.ndarray | None]]:
    """name -> (int8 weight by the reference, float32 bias or None), in ``layers`` order."""
    items = layers.items()
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="quantize", unit="layer", total=len(layers), disable=None)
    out = {}
    for name, linear in items:
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"layer {name} must be a torch.nn.Linear; got {type(linear).__name__}")
        w = linear.weight.detach().to("cpu", torch.float32).numpy()
        bias = None if linear.bias is None else linear.bias.detach().to("cpu", torch.float32).numpy()
        out[name] = (ref.quantize_weight(w, keep_fp16=options.outlier_weights == "fp16", layer=name), bias)
    return out


def emulate(model: nn.Module, options: Int8Options, *, arithmetic: str = "fast",
            layer_pattern: str | None = None,
            weights: dict[str, tuple[ref.Int8Weight, np.ndarray | None]] | None = None
            ) -> dict[str, nn.Module]:
    """Swap the model's quantizable layers (or those ``weights`` names) for emulated ones, in place.

    Returns name -> original module (:func:`sw.emulation.restore_model` puts them back).
    """
    if weights is None:
        layers = quantizable_layers(model, pattern=layer_pattern)
    else:
        layers = {}
        for name in weights:
            try:
                layers[name] = model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"quantized must hold layers of this model; it has no layer {name}") from None
    return emulate_int8(model, layers, method=options.method, threshold=options.effective_threshold,
                        group=options.group, arithmetic=arithmetic,
                        outlier_weights=options.outlier_weights, weights=weights)


def outlier_counts(model: nn.Module) -> dict:
    """Outlier columns the emulated layers met since they were built: totals and per layer.

    ``mean_columns``: outlier columns per detection group, averaged over every
    (layer, group); ``max_columns``: the most in one group; ``layers_affected``:
    share of emulated layers with any outlier column.
    """
    per_layer = {name: dict(m.counts) for name, m in model.named_modules() if isinstance(m, LLMInt8Linear)}
    groups = sum(c["groups"] for c in per_layer.values())
    columns = sum(c["outlier_columns"] for c in per_layer.values())
    return {"layers": len(per_layer),
            "layers_affected": (sum(c["outlier_columns"] > 0 for c in per_layer.values()) / len(per_layer)
                                if per_layer else 0.0),
            "mean_columns": columns / groups if groups else 0.0,
            "max_columns": max((c["max_columns"] for c in per_layer.values()), default=0),
            "per_layer": per_layer}


def evaluate(model: nn.Module, ids: torch.Tensor, options: Int8Options, *, arithmetic: str = "fast",
             seq_len: int, batch_size: int = 8, device: str | torch.device = "cpu",
             progress: bool = False, max_windows: int | None = None, layer_pattern: str | None = None,
             weights: dict | None = None) -> tuple[PerplexityResult, dict]:
    """Perplexity of ``model`` with its layers emulated by ``options``; ``(result, outlier_counts)``.

    The model is restored afterwards.
    """
    from sw.emulation import restore_model

    originals = emulate(model, options, arithmetic=arithmetic, layer_pattern=layer_pattern, weights=weights)
    try:
        result = perplexity(model, ids, seq_len=seq_len, batch_size=batch_size, device=device,
                            progress=progress, max_windows=max_windows)
        counts = outlier_counts(model)
    finally:
        restore_model(model, originals)
    return result, counts
