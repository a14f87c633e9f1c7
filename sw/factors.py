"""LQER / L2QER factors of linear layers, and their safetensors + JSON manifest form.

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
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch

from sw.mxint import MXIntFormat, MXQuantized
from sw.mxint_torch import quantize_torch
from sw.qconfig import QuantConfig
from sw.svd import truncated_svd

__all__ = ["FactorsError", "LayerFactors", "check_rank", "lowrank_factors", "compute_layer_factors",
           "compute_factors",
           "save_factors", "load_factors", "MANIFEST", "TENSORS", "FORMAT"]

MANIFEST = "manifest.json"
TENSORS = "factors.safetensors"
FORMAT = "lqer-hw factors"
VERSION = 1


class FactorsError(ValueError):
    """Factors that cannot be computed, written or read; the message is one line."""


@dataclass
class LayerFactors:
    """The quantized operands of one layer (numpy, MXINT form) plus what they came from.

    ``weight``: W_q, shape (d_out, d_in), axis 1. ``a``: (d_in, k) and ``b``:
    (k, d_out), axis 0 for reduction blocking, 1 for paper blocking; both
    ``None`` for plain MXINT. ``bias`` (float32, d_out) is the layer's own.
    ``scale`` is the L2QER scale (float64, d_in) when one was used.
    ``layout``: how the checkpoint stored the weight (:data:`sw.linearize.WEIGHT_LAYOUTS`):
    ``"linear"`` (d_out, d_in), ``"conv1d"`` (d_in, d_out, transposed here) or
    ``"experts"`` (one expert's slice of a fused (E, d_out, d_in) parameter).
    """

    weight: MXQuantized
    a: MXQuantized | None = None
    b: MXQuantized | None = None
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    errors: dict = field(default_factory=dict)
    layout: str = "linear"

    @property
    def d_out(self) -> int:
        return int(self.weight.mantissas.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.weight.mantissas.shape[1])

    @property
    def rank(self) -> int:
        return 0 if self.a is None else int(self.a.mantissas.shape[1])


def _quantize(t: torch.Tensor, *, width: int, axis: int, config: QuantConfig) -> MXQuantized:
    m, e = quantize_torch(t, width=width, block=config.block, dim=axis,
                          exponent_bits=config.exponent_bits, rounding=config.rounding,
                          flavour=config.flavour)
    dtype = np.int8 if width <= 8 else np.int16
    fmt = MXIntFormat(width=width, block=config.block, exponent_bits=config.exponent_bits,
                      rounding=config.rounding, flavour=config.flavour)
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
    w = weight.detach().to(torch.float64)
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise FactorsError(f"weights of layer {name} must be finite; got {w[index].item()} at index {index}")
    d_out, d_in = w.shape
    # in the weight's own dtype: flavour "lqer" rounds as the authors' code does on it
    wq = _quantize(weight.detach(), width=config.w_width, axis=1, config=config)
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
    out.a = _quantize(a, width=config.lowrank_width, axis=axis, config=config)
    out.b = _quantize(b, width=config.lowrank_width, axis=axis, config=config)
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


# ---------------------------------------------------------------- storage

def _mx_entry(q: MXQuantized) -> dict:
    return {"width": q.width, "block": q.block, "axis": q.axis, "exponent_bits": q.exponent_bits,
            "flavour": q.flavour, "shape": list(q.mantissas.shape)}


def save_factors(out_dir: str, factors: dict[str, LayerFactors], *, config: QuantConfig,
                 source: dict, calibration: dict | None = None) -> None:
    """Write ``factors.safetensors`` and ``manifest.json`` into ``out_dir``.

    Files are written into a temporary folder beside ``out_dir`` and moved in
    one by one (manifest last), so a reader never sees a half-written file.
    """
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    layers = {}
    for name, f in factors.items():
        entry = {"d_in": f.d_in, "d_out": f.d_out, "rank": f.rank, "bias": f.bias is not None,
                 "scale": f.scale is not None, "layout": f.layout, "operands": {}, "errors": f.errors}
        for key, q in (("weight", f.weight), ("a", f.a), ("b", f.b)):
            if q is None:
                continue
            tensors[f"{name}.{key}.mantissas"] = np.ascontiguousarray(q.mantissas)
            tensors[f"{name}.{key}.exponents"] = np.ascontiguousarray(q.exponents)
            entry["operands"][key] = _mx_entry(q)
        if f.bias is not None:
            tensors[f"{name}.bias"] = np.ascontiguousarray(f.bias, dtype=np.float32)
        if f.scale is not None:
            tensors[f"{name}.scale"] = np.ascontiguousarray(f.scale, dtype=np.float64)
        layers[name] = entry
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".factors-", dir=parent)
    try:
        tensor_path = os.path.join(tmp, TENSORS)
        save_file(tensors, tensor_path)
        os.chmod(tensor_path, 0o644)  # safetensors may create it owner-only
        with open(tensor_path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        manifest = {"format": FORMAT, "version": VERSION, "config": config.to_json(),
                    "source_model": source, "calibration": calibration,
                    "tensors": {"file": TENSORS, "sha256": digest}, "layers": layers}
        with open(os.path.join(tmp, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.write("\n")
        os.makedirs(out_dir, exist_ok=True)
        os.replace(tensor_path, os.path.join(out_dir, TENSORS))
        os.replace(os.path.join(tmp, MANIFEST), os.path.join(out_dir, MANIFEST))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_manifest(path: str) -> dict:
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isdir(path) or not os.path.isfile(manifest_path):
        raise FactorsError(f"quantized must be a folder written by 'lqer-hw quantize' "
                           f"(with {MANIFEST}); got {path!r}")
    try:
        with open(manifest_path) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise FactorsError(f"quantized {MANIFEST} must be valid JSON; got {manifest_path!r} ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FactorsError(f"quantized {MANIFEST} must have format {FORMAT!r}; got {manifest_path!r}")
    if manifest.get("version") != VERSION:
        raise FactorsError(f"quantized manifest version must be {VERSION}; got {manifest.get('version')!r}")
    return manifest


def load_factors(path: str) -> tuple[dict[str, LayerFactors], QuantConfig, dict]:
    """``(factors, config, manifest)`` from a folder written by :func:`save_factors`."""
    from safetensors.numpy import load_file

    manifest = _load_manifest(path)
    try:
        config = QuantConfig.from_json(manifest["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FactorsError(f"quantized manifest config is invalid: {exc}") from None
    tensor_path = os.path.join(path, manifest["tensors"]["file"])
    try:
        with open(tensor_path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
    except OSError as exc:
        raise FactorsError(f"quantized tensors file must be readable; got {tensor_path!r} ({exc})") from None
    if digest != manifest["tensors"]["sha256"]:
        raise FactorsError(f"quantized tensors file {tensor_path!r} does not match its manifest "
                           "(sha256 differs); it is corrupt or from another run")
    tensors = load_file(tensor_path)
    factors = {}
    for name, entry in manifest["layers"].items():
        ops = {}
        for key, info in entry["operands"].items():
            fmt = MXIntFormat(width=info["width"], block=info["block"],
                              exponent_bits=info["exponent_bits"], flavour=info["flavour"])
            ops[key] = MXQuantized(mantissas=tensors[f"{name}.{key}.mantissas"],
                                   exponents=tensors[f"{name}.{key}.exponents"], format=fmt,
                                   axis=info["axis"])
        factors[name] = LayerFactors(weight=ops["weight"], a=ops.get("a"), b=ops.get("b"),
                                     bias=tensors.get(f"{name}.bias"),
                                     scale=tensors.get(f"{name}.scale"), errors=entry["errors"],
                                     layout=entry.get("layout", "linear"))
    return factors, config, manifest
