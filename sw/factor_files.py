"""A factors folder: ``factors.safetensors`` + ``manifest.json`` (NumPy and safetensors only).

What ``lqer-hw quantize`` writes and ``eval`` / ``sim --factors`` read; the
format is described in docs/sw.md ("Factor files"). Reading needs no torch,
so ``lqer-hw sim --factors`` never imports it; the maths that computes the
factors is in :mod:`sw.factors`.

The manifest also records whether the ``lqer-linear`` datapath can run the
factors (``"datapath": {"lqer-linear": bool, "reason": str | None}``, the
rule of :mod:`sw.datapath`; ResQ factors: ``{"resq-linear": ...}``).

ResQ factors (``method="resq"``) hold per layer the low- and high-precision
weights ``W U_l``, ``W U_h`` (MXINT, or the paper's integer form
:class:`sw.intq.IntQuantized`) and the basis ``U``: stored once per basis
name (layers sharing a basis share the tensor), not stored when it is the
Hadamard matrix (rebuilt from ``d_in``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sw.datapath import datapath_record
from sw.intq import IntQuantized
from sw.mxint import MXIntFormat, MXQuantized
from sw.qconfig import QuantConfig
from sw.resq_reference import sylvester_hadamard

__all__ = ["FactorsError", "LayerFactors", "write_factors", "save_factors", "load_factors",
           "read_manifest", "MANIFEST", "TENSORS", "FORMAT", "VERSION"]

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
    ``layout``: how the checkpoint stored the weight (``sw.linearize.WEIGHT_LAYOUTS``):
    ``"linear"`` (d_out, d_in), ``"conv1d"`` (d_in, d_out, transposed here) or
    ``"experts"`` (one expert's slice of a fused (E, d_out, d_in) parameter).

    ResQ (``basis`` given, (d_in, d_in) float64, columns ``[U_l | U_h]``): ``weight`` is
    W U_l (d_out, d_in - r), ``weight_high`` W U_h (d_out, r; None for r = 0), both MXINT
    along axis 1 or :class:`sw.intq.IntQuantized`; ``basis_name`` names the stored basis
    (shared by the layers that share it); ``resq`` is the layer's manifest record.
    """

    weight: MXQuantized | IntQuantized
    a: MXQuantized | None = None
    b: MXQuantized | None = None
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    errors: dict = field(default_factory=dict)
    layout: str = "linear"
    weight_high: MXQuantized | IntQuantized | None = None
    basis: np.ndarray | None = None
    basis_name: str | None = None
    resq: dict | None = None

    @property
    def d_out(self) -> int:
        return int(_shape(self.weight)[0])

    @property
    def d_in(self) -> int:
        return int(self.basis.shape[0]) if self.basis is not None else int(_shape(self.weight)[1])

    @property
    def rank(self) -> int:
        """k of A and B, or ResQ's high-precision r."""
        if self.basis is not None:
            return self.d_in - int(_shape(self.weight)[1])
        return 0 if self.a is None else int(self.a.mantissas.shape[1])


def _shape(q) -> tuple:
    return tuple(q.codes.shape) if isinstance(q, IntQuantized) else tuple(q.mantissas.shape)


# ---------------------------------------------------------------- storage

def _mx_entry(q: MXQuantized) -> dict:
    f = q.format
    return {"width": f.width, "block": f.block, "axis": q.axis, "exponent_bits": f.exponent_bits,
            "rounding": f.rounding, "flavour": f.flavour, "shape": list(q.mantissas.shape)}


def _int_entry(q: IntQuantized) -> dict:
    return {"kind": "int", "bits": q.bits, "symmetric": q.symmetric, "scales": "per row",
            "shape": list(q.codes.shape)}


def _operand_tensors(prefix: str, q) -> dict[str, np.ndarray]:
    if isinstance(q, IntQuantized):
        codes = q.codes.astype(np.int8 if q.bits <= 8 else np.int16)
        out = {f"{prefix}.codes": codes, f"{prefix}.scales": q.scales.astype(np.float64)}
        if q.zeros is not None:
            out[f"{prefix}.zeros"] = q.zeros.astype(np.float64)
        return {k: np.ascontiguousarray(v) for k, v in out.items()}
    return {f"{prefix}.mantissas": np.ascontiguousarray(q.mantissas),
            f"{prefix}.exponents": np.ascontiguousarray(q.exponents)}


def write_factors(folder: str | os.PathLike, factors: dict[str, LayerFactors], *,
                  config: QuantConfig, source: dict, calibration: dict | None = None,
                  resq: dict | None = None) -> dict:
    """Write ``factors.safetensors`` and then ``manifest.json`` into the existing ``folder``.

    Each file is written atomically (:func:`lqer_hw.files.write_bytes`) with the
    user's umask. Returns the manifest. A command writes into the temporary
    folder of an :class:`lqer_hw.files.OutputFolder`, so the whole folder
    appears at once. ``resq``: the method's assumptions, stored as the manifest's
    ``"resq"`` record (``sw.resq_factors.resq_record``).
    """
    from safetensors.numpy import save

    from lqer_hw.files import write_bytes, write_text

    tensors: dict[str, np.ndarray] = {}
    layers = {}
    for name, f in factors.items():
        entry = {"d_in": f.d_in, "d_out": f.d_out, "rank": f.rank, "bias": f.bias is not None,
                 "scale": f.scale is not None, "layout": f.layout, "operands": {},
                 "errors": f.errors}
        for key, q in (("weight", f.weight), ("a", f.a), ("b", f.b), ("weight_high", f.weight_high)):
            if q is None:
                continue
            tensors.update(_operand_tensors(f"{name}.{key}", q))
            entry["operands"][key] = _int_entry(q) if isinstance(q, IntQuantized) else _mx_entry(q)
        if f.basis is not None:
            entry["resq"] = dict(f.resq or {}, basis=f.basis_name)
            if entry["resq"].get("rotation") != "hadamard":
                tensors.setdefault(f"{f.basis_name}.basis",
                                   np.ascontiguousarray(f.basis, dtype=np.float64))
        if f.bias is not None:
            tensors[f"{name}.bias"] = np.ascontiguousarray(f.bias, dtype=np.float32)
        if f.scale is not None:
            tensors[f"{name}.scale"] = np.ascontiguousarray(f.scale, dtype=np.float64)
        layers[name] = entry
    folder = Path(folder)
    data = save(tensors)
    write_bytes(folder / TENSORS, data)
    manifest = {"format": FORMAT, "version": VERSION, "config": config.to_json(),
                "source_model": source, "calibration": calibration,
                "datapath": datapath_record(config, {n: (f.d_out, f.d_in) for n, f in factors.items()},
                                            ranks={n: f.rank for n, f in factors.items()}),
                "tensors": {"file": TENSORS, "sha256": hashlib.sha256(data).hexdigest()},
                "layers": layers}
    if resq is not None:
        manifest["resq"] = resq
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def save_factors(out_dir: str | os.PathLike, factors: dict[str, LayerFactors], *,
                 config: QuantConfig, source: dict, calibration: dict | None = None,
                 overwrite: bool = True, resq: dict | None = None) -> dict:
    """Write a factors folder at ``out_dir``, complete or not at all; returns the manifest.

    The folder is built beside ``out_dir`` and swapped in
    (:class:`lqer_hw.files.OutputFolder`); an existing non-empty ``out_dir`` is
    replaced when ``overwrite`` (the default for library callers), else
    refused with a ``ValueError``.
    """
    from lqer_hw.files import OutputFolder

    with OutputFolder(out_dir, overwrite=overwrite, name="out") as tmp:
        return write_factors(tmp, factors, config=config, source=source, calibration=calibration,
                             resq=resq)


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the factors folder ``path`` (checked: format and version)."""
    return _load_manifest(os.fspath(path))


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


def load_factors(path: str | os.PathLike) -> tuple[dict[str, LayerFactors], QuantConfig, dict]:
    """``(factors, config, manifest)`` from a folder written by :func:`save_factors`.

    Raises :class:`FactorsError` (one line) for a folder without a valid
    manifest, an invalid config, or a tensors file whose SHA-256 differs.
    """
    path = os.fspath(path)
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
    bases: dict[str, np.ndarray] = {}
    for name, entry in manifest["layers"].items():
        ops = {}
        for key, info in entry["operands"].items():
            if info.get("kind") == "int":
                zeros = tensors.get(f"{name}.{key}.zeros")
                ops[key] = IntQuantized(codes=tensors[f"{name}.{key}.codes"].astype(np.int64),
                                        scales=tensors[f"{name}.{key}.scales"],
                                        zeros=zeros, bits=info["bits"])
                continue
            fmt = MXIntFormat(width=info["width"], block=info["block"],
                              exponent_bits=info["exponent_bits"],
                              rounding=info.get("rounding", "even"), flavour=info["flavour"])
            ops[key] = MXQuantized(mantissas=tensors[f"{name}.{key}.mantissas"],
                                   exponents=tensors[f"{name}.{key}.exponents"], format=fmt,
                                   axis=info["axis"])
        resq = entry.get("resq")
        basis = None
        if resq is not None:
            basis = bases.get(resq["basis"])
            if basis is None:
                basis = (sylvester_hadamard(entry["d_in"]) if resq.get("rotation") == "hadamard"
                         else tensors[f"{resq['basis']}.basis"])
                bases[resq["basis"]] = basis
        factors[name] = LayerFactors(weight=ops["weight"], a=ops.get("a"), b=ops.get("b"),
                                     bias=tensors.get(f"{name}.bias"),
                                     scale=tensors.get(f"{name}.scale"), errors=entry["errors"],
                                     layout=entry.get("layout", "linear"),
                                     weight_high=ops.get("weight_high"), basis=basis,
                                     basis_name=None if resq is None else resq["basis"],
                                     resq=resq)
    return factors, config, manifest
