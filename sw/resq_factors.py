"""ResQ factors of a model's linear layers: calibration -> bases -> quantized projected weights.

For a layer ``W`` (d_out x d_in) with basis ``U = [U_l | U_h]`` (:mod:`sw.resq`)::

    W_l = Q_w(W U_l)      d_out x (d_in - r)   MXINT(w_width) along d_in - r, or int per row
    W_h = Q_h(W U_h)      d_out x r            MXINT(high_width) along r,      or int per row

quantized once, by round to nearest (the paper also reports GPTQ weights; GPTQ is not
part of this project). The stored factors (:class:`sw.factor_files.LayerFactors` with a
``basis``) are what :class:`sw.resq_emulation.ResQLinear` and the reference
:mod:`sw.resq_reference` compute with. :func:`resq_record` is the manifest's statement of
what the projections cost and where the paper puts them (docs/sw.md, "ResQ").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sw.factor_files import FactorsError, LayerFactors
from sw.intq import quantize_per_channel_symmetric
from sw.mxint import MXIntFormat, MXQuantized
from sw.mxint_torch import quantize_torch
from sw.qconfig import CalibOptions, QuantConfig
from sw.resq import Basis, build_bases, collect_moments
from sw.resq_plan import plan_layers

__all__ = ["resq_layer_factors", "build_resq_factors", "resq_record", "check_resq_layers",
           "check_resq_calibration"]


def _mx(t: torch.Tensor, fmt: MXIntFormat) -> MXQuantized:
    m, e = quantize_torch(t, fmt, dim=1, name="projected weight")
    dtype = np.int8 if fmt.width <= 8 else np.int16
    return MXQuantized(mantissas=m.cpu().numpy().astype(dtype), exponents=e.cpu().numpy(),
                       format=fmt, axis=1)


def _quantize(t: torch.Tensor, config: QuantConfig, width: int):
    if config.resq_format == "int":
        return quantize_per_channel_symmetric(t.cpu().numpy(), width, name="projected weight")
    return _mx(t, config.weight_format.replace(width=width))


def _values(q) -> torch.Tensor:
    return torch.from_numpy(q.dequantize())


def resq_layer_factors(weight: torch.Tensor, *, basis: Basis, config: QuantConfig,
                       bias: torch.Tensor | None = None, name: str = "layer") -> LayerFactors:
    """ResQ factors of one ``weight`` (d_out x d_in) with its ``basis`` (module docstring).

    Errors recorded: ``weight_rel_error`` = ``||W U - Q(W U)|| / ||W||`` (both paths) and,
    for a PCA basis, ``energy_high``, the share of the calibration inputs' ``||X||_F^2`` in
    the high-precision subspace. Raises :class:`FactorsError` for non-finite weights or a
    basis of another size.
    """
    if config.method != "resq":
        raise FactorsError(f"method must be resq for ResQ factors; got {config.method!r}")
    w = weight.detach().to("cpu", torch.float64)
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise FactorsError(f"weights of layer {name} must be finite; got {w[index].item()} at index {index}")
    d_out, d_in = w.shape
    u = basis.matrix.to(torch.float64)
    if tuple(u.shape) != (d_in, d_in):
        raise FactorsError(f"basis of layer {name} must be {d_in}x{d_in}; got {tuple(u.shape)}")
    projected = w @ u
    split = d_in - basis.rank
    low = _quantize(projected[:, :split], config, config.w_width)
    high = _quantize(projected[:, split:], config, config.high_width) if basis.rank else None
    approx = _values(low) if high is None else torch.cat([_values(low), _values(high)], dim=1)
    norm_w = float(torch.linalg.norm(w)) or 1.0
    errors = {"weight_rel_error": float(torch.linalg.norm(projected - approx)) / norm_w}
    record = {"rotation": basis.rotation, "rank": basis.rank}
    if basis.energy_high is not None:
        errors["energy_high"] = basis.energy_high
        record["calibration_tokens"] = basis.tokens
    return LayerFactors(weight=low, weight_high=high, basis=u.numpy(), basis_name=basis.name,
                        bias=None if bias is None else bias.detach().to(torch.float32).cpu().numpy(),
                        errors=errors, resq=record)


def check_resq_layers(config: QuantConfig, shapes: dict[str, tuple[int, int]]):
    """The per-layer plans (:func:`sw.resq_plan.plan_layers`); bad ranks raise :class:`FactorsError`."""
    try:
        return plan_layers(shapes, resq_rank=config.resq_rank, block=config.block,
                           resq_down=config.resq_down)
    except ValueError as exc:
        raise FactorsError(str(exc)) from None


def check_resq_calibration(config: QuantConfig, shapes: dict[str, tuple[int, int]],
                           calib: CalibOptions) -> None:
    """Refuse, before any work, calibration options giving fewer tokens than the largest rank.

    Fewer tokens than ``r`` can never span the high-precision subspace (a singular set); a
    set with enough tokens may still be singular, which the bases find after calibration.
    Raises :class:`FactorsError` (one line).
    """
    plans = check_resq_layers(config, shapes)
    need = max((p.rank for p in plans.values() if p.rotation == "pca"), default=0)
    have = calib.sequences * calib.length
    if have < need:
        raise FactorsError(f"calibration set must give at least {need} tokens (the largest "
                           f"resq rank: its inputs must span the high-precision subspace); got "
                           f"{have} ({calib.sequences} sequences x {calib.length})")


def build_resq_factors(model: nn.Module, tokenizer, config: QuantConfig, *,
                       calib_text: str | None = None, calib: CalibOptions = CalibOptions(),
                       layer_pattern: str | None = None, device: str | torch.device = "cpu",
                       progress: bool = False, layers: dict[str, nn.Linear] | None = None
                       ) -> tuple[dict[str, LayerFactors], dict | None]:
    """ResQ factors of every quantizable layer; returns ``(factors, calibration record or None)``.

    The same call shape as :func:`sw.pipeline.build_factors`. The calibration text feeds the
    second moments of the PCA layers; when every selected layer is a Hadamard-transformed
    down projection, no calibration runs (record None).
    """
    from sw.calibration import calibration_batches
    from sw.models import quantizable_layers
    from sw.text import tokenize

    if layers is None:
        layers = quantizable_layers(model, pattern=layer_pattern)
    shapes = {n: tuple(m.weight.shape) for n, m in layers.items()}
    plans = check_resq_layers(config, shapes)
    pca = {n: layers[n] for n, p in plans.items() if p.rotation == "pca"}
    collector = record = None
    if pca:
        if calib_text is None:
            raise ValueError("calib must be given for method resq; got none")
        ids = tokenize(tokenizer, calib_text, max_tokens=calib.sequences * calib.length)
        batches = calibration_batches(ids, sequences=calib.sequences, length=calib.length,
                                      batch_size=calib.batch)
        collector = collect_moments(model, pca, batches, device=device, progress=progress)
        record = {**calib.to_json(), "tokens": int(ids.numel())}
    bases = build_bases(plans, shapes, collector, mode=config.resq_basis, seed=config.seed,
                        progress=progress)
    items = layers.items()
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="factors", unit="layer", disable=None)
    factors = {}
    for name, layer in items:
        f = resq_layer_factors(layer.weight, basis=bases[name], config=config, bias=layer.bias,
                               name=name)
        f.layout = getattr(layer, "weight_layout", "linear")
        if collector is not None and name in collector.owners and collector.owners[name] != name:
            f.resq["input_of"] = collector.owners[name]
        factors[name] = f
    return factors, record


def resq_record(config: QuantConfig) -> dict:
    """The manifest's ``"resq"`` record: this project's choices beside the paper's, for the cost model.

    Sources: Saxena et al. 2024 (arXiv 2412.14363) and the authors' code,
    github.com/utkarsh-dmx/project-resq (``fake_quant/``: ``get_basis.py``,
    ``eval_utils/rotation_utils.py``, ``eval_utils/main.py``, ``utils/quant_utils.py``).
    """
    return {
        "basis": config.resq_basis,
        "rank": config.resq_rank,
        "rank_rule": "auto: d_in/8 rounded to the nearest multiple of block, ties up, at least one "
                     "block; down projections with resq_down=hadamard: 0",
        "format": config.resq_format,
        "weights": "round to nearest (no GPTQ)",
        "projection": {
            "here": "explicit, per layer (per input tensor with basis=shared): z = x U in float64 "
                    "before quantization; outside the datapath, whose contract starts at z",
            "online_cost_per_token": "one d_in x d_in float GEMV per basis (d_in^2 MACs); "
                                     "hadamard: d_in log2 d_in additions (fast Walsh-Hadamard)",
            "paper": {
                "U_A": "residual-stream basis shared by all blocks (their default granularity "
                       "'full_shared'), fused: into the embedding and the q/k/v, gate/up input "
                       "weights, and the o_proj and down_proj output weights (RMSNorm weights "
                       "folded first); per-block bases add online 'basis_change' GEMMs",
                "U_B": "per KV head, value outputs; fused into v_proj outputs and o_proj inputs "
                       "(o_proj keeps head_dim/8 high-precision coordinates per head)",
                "U_C": "per head, keys and queries after RoPE (KV-cache quantization); online: an "
                       "8-bit rotation of 8-bit-quantized q and k",
                "U_D": "down_proj input: an online Hadamard transform (fast Walsh-Hadamard), then "
                       "uniform low precision (no high-precision subspace)",
                "not_quantized": "lm_head",
            },
        },
        "down_projections": config.resq_down,
        "damping": "0.01 x mean(diag(X^T X)), X^T X raw (not mean-centred), float64",
        "rotation": "Haar random orthogonal inside each subspace: QR of a seeded Gaussian, signs "
                    "of diag(R) moved into Q",
    }
