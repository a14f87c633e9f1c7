"""LLM.int8() / W8A8 quantized weights on disk, in the folder layout of ``lqer-hw quantize``.

``DIR/factors.safetensors`` holds, per layer ``NAME``:

* ``NAME.weight.codes`` int8 ``(d_out, d_in)`` -- ``W_i8`` (bitsandbytes' ``CB``);
* ``NAME.weight.absmax`` float32 ``(d_out,)`` -- ``s_w``, binary16 values (``SCB``);
* ``NAME.weight.fp16`` float16 ``(d_out, d_in)`` -- only for ``outlier_weights="fp16"``;
* ``NAME.bias`` float32 ``(d_out,)`` when the layer has one.

``DIR/manifest.json`` is the manifest of :mod:`sw.factors` (same format name,
version and keys) whose ``config`` is :meth:`sw.llm_int8_pipeline.Int8Options.to_json`
(``method`` ``llm-int8`` or ``w8a8``) and whose layer entries name the operand
format ``int8-vectorwise``. Files are written into a temporary sibling folder
and moved in (manifest last); loading checks the tensors' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from sw import factors as _factors
from sw.factors import FORMAT, MANIFEST, TENSORS, FactorsError
from sw.llm_int8 import Int8Weight

__all__ = ["OPERAND_FORMAT", "save_int8", "load_int8", "read_manifest"]

OPERAND_FORMAT = "int8-vectorwise"


def save_int8(out_dir: str, weights: dict[str, tuple[Int8Weight, np.ndarray | None]], *, config: dict,
              source: dict) -> None:
    """Write ``weights`` (name -> (weight, bias or None)) and their manifest into ``out_dir``."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    layers = {}
    for name, (w, bias) in weights.items():
        tensors[f"{name}.weight.codes"] = np.ascontiguousarray(w.codes, dtype=np.int8)
        tensors[f"{name}.weight.absmax"] = np.ascontiguousarray(w.absmax, dtype=np.float32)
        if w.weight16 is not None:
            tensors[f"{name}.weight.fp16"] = np.ascontiguousarray(w.weight16, dtype=np.float16)
        if bias is not None:
            tensors[f"{name}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        layers[name] = {"d_in": w.d_in, "d_out": w.d_out, "bias": bias is not None,
                        "operands": {"weight": {"format": OPERAND_FORMAT, "shape": [w.d_out, w.d_in],
                                                "fp16": w.weight16 is not None}}}
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".int8-", dir=parent)
    try:
        tensor_path = os.path.join(tmp, TENSORS)
        save_file(tensors, tensor_path)
        os.chmod(tensor_path, 0o644)
        with open(tensor_path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        manifest = {"format": FORMAT, "version": _factors.VERSION, "config": config,
                    "source_model": source, "calibration": None,
                    "tensors": {"file": TENSORS, "sha256": digest}, "layers": layers}
        with open(os.path.join(tmp, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.write("\n")
        os.makedirs(out_dir, exist_ok=True)
        os.replace(tensor_path, os.path.join(out_dir, TENSORS))
        os.replace(os.path.join(tmp, MANIFEST), os.path.join(out_dir, MANIFEST))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(path: str) -> dict:
    """The manifest of a quantized folder; ``FactorsError`` (one line) when it is not one."""
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
    if manifest.get("version") != _factors.VERSION:
        raise FactorsError(f"quantized manifest version must be {_factors.VERSION}; "
                           f"got {manifest.get('version')!r}")
    return manifest


def load_int8(path: str) -> tuple[dict[str, tuple[Int8Weight, np.ndarray | None]], dict, dict]:
    """``(weights, config, manifest)`` from a folder written by :func:`save_int8`."""
    from safetensors.numpy import load_file

    manifest = read_manifest(path)
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("method") not in ("llm-int8", "w8a8"):
        raise FactorsError(f"quantized must hold llm-int8 or w8a8 weights; {path!r} has method "
                           f"{(config or {}).get('method')!r}")
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
    weights = {}
    for name, entry in manifest["layers"].items():
        info = entry["operands"]["weight"]
        if info.get("format") != OPERAND_FORMAT:
            raise FactorsError(f"quantized layer {name} must have weight format {OPERAND_FORMAT!r}; "
                               f"got {info.get('format')!r}")
        w = Int8Weight(codes=tensors[f"{name}.weight.codes"], absmax=tensors[f"{name}.weight.absmax"],
                       weight16=tensors.get(f"{name}.weight.fp16"))
        if list(w.codes.shape) != [entry["d_out"], entry["d_in"]] or w.absmax.shape != (entry["d_out"],):
            raise FactorsError(f"quantized layer {name} tensors must be {entry['d_out']}x{entry['d_in']}; "
                               f"got {list(w.codes.shape)}")
        weights[name] = (w, tensors.get(f"{name}.bias"))
    return weights, config, manifest
