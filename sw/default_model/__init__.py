"""The embedded default model: a small OPT causal LM, its tokenizer and its text splits.

Trained by ``scripts/train_default_model.py`` (deterministic, on text every
CPython carries); the files sit beside this module:

* ``config.json``, ``model.safetensors`` -- the model (transformers format);
* ``tokenizer.json``, ``tokenizer_config.json`` -- its byte-level BPE;
* ``heldout.txt`` -- the held-out split, the default perplexity text;
* ``calib.txt`` -- the start of the training split, the default calibration text;
* ``training.json`` -- how it was trained and what it scored.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT", "DIRECTORY", "HELDOUT", "CALIB", "model_path", "data_path", "calib_path"]

DEFAULT = "default"
DIRECTORY = os.path.dirname(os.path.abspath(__file__))
HELDOUT = os.path.join(DIRECTORY, "heldout.txt")
CALIB = os.path.join(DIRECTORY, "calib.txt")


def model_path(spec: str) -> str:
    """``spec`` itself, or the embedded model's folder for ``"default"``."""
    return DIRECTORY if spec == DEFAULT else spec


def data_path(spec: str) -> str:
    """``spec`` itself, or the embedded held-out text for ``"default"``."""
    return HELDOUT if spec == DEFAULT else spec


def calib_path(spec: str) -> str:
    """``spec`` itself, or the embedded calibration text for ``"default"``."""
    return CALIB if spec == DEFAULT else spec
