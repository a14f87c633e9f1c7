"""LLM.int8() / W8A8 quantized weights on disk, in the folder layout of ``lqer-hw quantize``.

``DIR/factors.safetensors`` holds, per layer ``NAME``:

* ``NAME.weight.codes`` int8 ``(d_out, d_in)`` -- ``W_i8`` (bitsandbytes' ``CB``);
* ``NAME.weight.absmax`` float32 ``(d_out,)`` -- ``s_w``, binary16 values (``SCB``);
* ``NAME.weight.fp16`` float16 ``(d_out, d_in)`` -- only for ``outlier_weights="fp16"``;
* ``NAME.bias`` float32 ``(d_out,)`` when the layer has one.

``DIR/manifest.json`` is the manifest of :mod:`sw.factor_files` (same format name,
version and keys) whose ``config`` is :meth:`sw.llm_int8_pipeline.Int8Options.to_json`
(``method`` ``llm-int8`` or ``w8a8``) and whose layer entries name the operand
format ``int8-vectorwise`` (``datapath``: the ``lqer-linear`` datapath cannot
run them). Each file is written atomically; :func:`save_int8` builds the folder
beside its place and swaps it in whole. Loading checks the tensors' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from sw.factor_files import FORMAT, MANIFEST, TENSORS, VERSION, FactorsError, read_manifest
from sw.llm_int8 import Int8Weight

__all__ = ["OPERAND_FORMAT", "write_int8", "save_int8", "load_int8", "int8_method"]

OPERAND_FORMAT = "int8-vectorwise"
METHODS = ("llm-int8", "w8a8")


def write_int8(folder: str | os.PathLike, weights: dict[str, tuple[Int8Weight, np.ndarray | None]], *,
               config: dict, source: dict) -> dict:
    """Write ``weights`` (name -> (weight, bias or None)) and their manifest into the existing ``folder``.

    Each file is written atomically (``lqer_hw.files``), the manifest last.
    Returns the manifest.
    """
    from safetensors.numpy import save

    from lqer_hw.files import write_bytes, write_text

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
    folder = Path(folder)
    data = save(tensors)
    write_bytes(folder / TENSORS, data)
    manifest = {"format": FORMAT, "version": VERSION, "config": config, "source_model": source,
                "calibration": None,
                "datapath": {"lqer-linear": False,
                             "reason": f"{config.get('method')} weights are int8 vector-wise, not MXINT"},
                "tensors": {"file": TENSORS, "sha256": hashlib.sha256(data).hexdigest()},
                "layers": layers}
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def save_int8(out_dir: str | os.PathLike, weights: dict[str, tuple[Int8Weight, np.ndarray | None]], *,
              config: dict, source: dict, overwrite: bool = True) -> dict:
    """Write an int8 folder at ``out_dir``, complete or not at all (``lqer_hw.files.OutputFolder``)."""
    from lqer_hw.files import OutputFolder

    with OutputFolder(out_dir, overwrite=overwrite, name="out") as tmp:
        return write_int8(tmp, weights, config=config, source=source)


def int8_method(path: str | os.PathLike) -> str | None:
    """The method of the quantized folder ``path`` when it holds llm-int8 / w8a8 weights, else None.

    Never raises: a folder that is not a valid one is left to the loader that reports it.
    """
    try:
        config = read_manifest(path).get("config")
    except (FactorsError, OSError):
        return None
    method = config.get("method") if isinstance(config, dict) else None
    return method if method in METHODS else None


def load_int8(path: str | os.PathLike) -> tuple[dict[str, tuple[Int8Weight, np.ndarray | None]], dict, dict]:
    """``(weights, config, manifest)`` from a folder written by :func:`write_int8`."""
    from safetensors.numpy import load_file

    path = os.fspath(path)
    manifest = read_manifest(path)
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("method") not in METHODS:
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
