"""LQER / L2QER factors of linear layers (the maths; the file format is :mod:`sw.factor_files`).

For a weight ``W`` (``d_out x d_in``) and rank ``k`` (docs/design.md, Datapaths)::

    W_q = Q_w(W)                      MXINT, blocks along d_in
    E   = (W - W_q)^T                 d_in x d_out, the error x @ E^T would add back
    S E = U Sigma V^T                 S = diag(s) (L2QER scale) or I (LQER)
    A   = Q_lr(S^-1 U_k)              d_in x k
    B   = Q_lr(Sigma_k V_k^T)         k x d_out

so that ``x @ W^T ~ x @ W_q^T + (x @ A) @ B``. A and B are blocked along the
axis their dot products reduce (A along d_in, B along k), or -- ``paper``
blocking -- along the other axis, as the LQER authors emulate it.

Everything is computed in float64; the quantized forms are exactly those of
:func:`sw.mxint.quantize` (through the bit-identical :mod:`sw.mxint_torch`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

# the file format lives in sw.factor_files (no torch); re-exported for callers of this module
from sw.factor_files import (FORMAT, MANIFEST, TENSORS, FactorsError, LayerFactors, load_factors,
                             save_factors, write_factors)
from sw.mxint import MXIntFormat, MXQuantized
from sw.mxint_torch import quantize_torch
from sw.qconfig import QuantConfig
from sw.svd import truncated_svd

__all__ = ["FactorsError", "LayerFactors", "check_rank", "lowrank_factors", "compute_layer_factors",
           "compute_factors", "save_factors", "write_factors", "load_factors", "MANIFEST",
           "TENSORS", "FORMAT"]

def _quantize(t: torch.Tensor, fmt: MXIntFormat, *, axis: int) -> MXQuantized:
    m, e = quantize_torch(t, fmt, dim=axis)
    dtype = np.int8 if fmt.width <= 8 else np.int16
    return MXQuantized(mantissas=m.cpu().numpy().astype(dtype), exponents=e.cpu().numpy(),
                       format=fmt, axis=axis)


def _values(q: MXQuantized, device) -> torch.Tensor:
    return torch.from_numpy(q.dequantize()).to(device)


def check_rank(rank: int, shapes: dict[str, tuple[int, int]]) -> None:
    """``rank`` must fit every layer: 1 <= rank <= min(d_in, d_out)."""
    for name, (d_out, d_in) in shapes.items():
        if rank > min(d_in, d_out):
            raise FactorsError(f"rank must be in 1..{min(d_in, d_out)} for layer {name} "
                               f"({d_out}x{d_in}); got {rank}")


def _seed_for(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "big")


def lowrank_factors(err_t: torch.Tensor, *, scale: torch.Tensor | None, rank: int, svd: str = "full",
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unquantized ``(A, B)`` with ``A @ B`` the best rank-``rank`` fit of ``err_t`` in the S-weighted norm.

    ``A = S^-1 U_k``, ``B = Sigma_k V_k^T`` from the SVD of ``S err_t``
    (``S = diag(scale)``, or I when ``scale`` is None). At full rank with the
    full SVD, ``A @ B == err_t`` up to float rounding.
    """
    s = (torch.ones(err_t.shape[0], dtype=err_t.dtype, device=err_t.device) if scale is None
         else scale.to(err_t.dtype).to(err_t.device))
    u, sigma, vh = truncated_svd(s[:, None] * err_t, rank, method=svd, seed=seed)
    return u / s[:, None], sigma[:, None] * vh


def compute_layer_factors(weight: torch.Tensor, *, config: QuantConfig, scale: torch.Tensor | None = None,
                          bias: torch.Tensor | None = None, name: str = "layer") -> LayerFactors:
    """Factors of one ``weight`` (d_out x d_in); ``scale`` (d_in) only for L2QER."""
    if not config.quantized:
        raise FactorsError("method must be one of mxint, lqer, l2qer to compute factors; got 'fp'")
    if config.method == "resq":
        raise FactorsError("method resq needs a basis per layer: use sw.resq_factors."
                           "build_resq_factors or resq_layer_factors")
    w = weight.detach().to(torch.float64)
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise FactorsError(f"weights of layer {name} must be finite; got {w[index].item()} at index {index}")
    d_out, d_in = w.shape
    # in the weight's own dtype: flavour "lqer" rounds as the authors' code does on it
    wq = _quantize(weight.detach(), config.weight_format, axis=1)
    w_hat = _values(wq, w.device)
    norm_w = float(torch.linalg.norm(w)) or 1.0
    errors = {"weight_rel_error_mxint": float(torch.linalg.norm(w - w_hat)) / norm_w}
    out = LayerFactors(weight=wq, errors=errors,
                       bias=None if bias is None else bias.detach().to(torch.float32).cpu().numpy())
    if not config.low_rank:
        return out
    check_rank(config.rank, {name: (d_out, d_in)})
    err_t = (w - w_hat).T  # d_in x d_out
    if config.method == "l2qer":
        if scale is None:
            raise FactorsError(f"method l2qer needs a calibration scale for layer {name}; got none")
        s = scale.detach().to(torch.float64).to(w.device)
        if s.shape != (d_in,):
            raise FactorsError(f"scale of layer {name} must have shape ({d_in},); got {tuple(s.shape)}")
        out.scale = s.cpu().numpy()
    else:
        s = torch.ones(d_in, dtype=torch.float64, device=w.device)
    target = s[:, None] * err_t
    a, b = lowrank_factors(err_t, scale=s, rank=config.rank, svd=config.svd,
                           seed=_seed_for(config.seed, name))
    axis = 0 if config.blocking == "reduction" else 1
    out.a = _quantize(a, config.lowrank_format, axis=axis)
    out.b = _quantize(b, config.lowrank_format, axis=axis)
    ab_q = _values(out.a, w.device) @ _values(out.b, w.device)
    norm_t = float(torch.linalg.norm(target)) or 1.0
    errors["weight_rel_error_corrected"] = float(torch.linalg.norm(err_t - ab_q)) / norm_w
    errors["scaled_rel_residual_unquantized_factors"] = float(torch.linalg.norm(target - s[:, None] * (a @ b))) / norm_t
    errors["scaled_rel_residual"] = float(torch.linalg.norm(target - s[:, None] * ab_q)) / norm_t
    return out


def compute_factors(layers: dict[str, torch.nn.Linear], *, config: QuantConfig,
                    scales: dict[str, torch.Tensor] | None = None,
                    progress: bool = False) -> dict[str, LayerFactors]:
    """Factors of every named layer, in order."""
    if config.low_rank:
        check_rank(config.rank, {n: tuple(m.weight.shape) for n, m in layers.items()})
    items = layers.items()
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="factors", unit="layer", disable=None)
    out = {}
    for name, layer in items:
        scale = None if scales is None else scales.get(name)
        out[name] = compute_layer_factors(layer.weight, config=config, scale=scale, bias=layer.bias,
                                          name=name)
        out[name].layout = getattr(layer, "weight_layout", "linear")
    return out
