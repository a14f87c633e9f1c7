"""Model -> calibration -> factors -> emulated model: the steps the CLI, tests and benches share."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from sw.calibration import calibrate, calibration_batches
from sw.emulation import emulate_model
from sw.factors import LayerFactors, check_rank, compute_factors
from sw.models import quantizable_layers
from sw.qconfig import QuantConfig
from sw.text import tokenize

__all__ = ["CalibOptions", "build_factors", "quantize_model"]


@dataclass(frozen=True, kw_only=True)
class CalibOptions:
    """Calibration set: the first ``sequences`` windows of ``length`` tokens, in batches."""

    sequences: int = 32
    length: int = 128
    batch: int = 8

    def __post_init__(self):
        for name in ("sequences", "length", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"calib_{name} must be an integer >= 1; got {value!r}")

    def to_json(self) -> dict:
        return asdict(self)


def build_factors(model: nn.Module, tokenizer, config: QuantConfig, *, calib_text: str | None = None,
                  calib: CalibOptions = CalibOptions(), layer_pattern: str | None = None,
                  device: str | torch.device = "cpu", progress: bool = False
                  ) -> tuple[dict[str, LayerFactors], dict | None]:
    """Factors of every quantizable layer; returns ``(factors, calibration record or None)``.

    Only L2QER calibrates (LQER and plain MXINT need no data).
    """
    layers = quantizable_layers(model, pattern=layer_pattern)
    if config.low_rank:
        check_rank(config.rank, {n: tuple(m.weight.shape) for n, m in layers.items()})
    scales = None
    record = None
    if config.method == "l2qer":
        if calib_text is None:
            raise ValueError("calib must be given for method l2qer; got none")
        ids = tokenize(tokenizer, calib_text, max_tokens=calib.sequences * calib.length)
        batches = calibration_batches(ids, sequences=calib.sequences, length=calib.length,
                                      batch_size=calib.batch)
        scales = calibrate(model, layers, batches, device=device, progress=progress)
        record = {**calib.to_json(), "tokens": int(ids.numel())}
    return compute_factors(layers, config=config, scales=scales, progress=progress), record


def quantize_model(model: nn.Module, tokenizer, config: QuantConfig, *, arithmetic: str = "fast",
                   calib_text: str | None = None, calib: CalibOptions = CalibOptions(),
                   layer_pattern: str | None = None, device: str | torch.device = "cpu",
                   guard_bits: int | None = 8, progress: bool = False):
    """Compute factors and swap the layers in place; returns ``(originals, factors)``.

    ``config.method == "fp"`` leaves the model as it is.
    """
    if not config.quantized:
        return {}, {}
    factors, _ = build_factors(model, tokenizer, config, calib_text=calib_text, calib=calib,
                               layer_pattern=layer_pattern, device=device, progress=progress)
    originals = emulate_model(model, factors, mode=config.method, arithmetic=arithmetic,
                              a_width=config.a_width, guard_bits=guard_bits)
    return originals, factors
