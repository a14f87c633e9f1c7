"""Model -> calibration -> factors -> emulated model: the steps the CLI, tests and benches share."""

from __future__ import annotations

import torch
from torch import nn

from sw.calibration import calibrate, calibration_batches
from sw.factors import LayerFactors, check_rank, compute_factors
from sw.models import quantizable_layers
from sw.qconfig import CalibOptions, QuantConfig  # CalibOptions re-exported
from sw.text import tokenize

__all__ = ["CalibOptions", "build_factors"]


def build_factors(model: nn.Module, tokenizer, config: QuantConfig, *, calib_text: str | None = None,
                  calib: CalibOptions = CalibOptions(), layer_pattern: str | None = None,
                  device: str | torch.device = "cpu", progress: bool = False,
                  layers: dict[str, nn.Linear] | None = None
                  ) -> tuple[dict[str, LayerFactors], dict | None]:
    """Factors of every quantizable layer; returns ``(factors, calibration record or None)``.

    Only L2QER calibrates (LQER and plain MXINT need no data). ``layers``
    (from :func:`sw.models.quantizable_layers`) saves selecting them again.
    """
    if layers is None:
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
