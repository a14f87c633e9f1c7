"""sw.factor_files: a factors folder written whole, read back equal, refused when corrupt; no torch to read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sw.factor_files import FactorsError, load_factors, read_manifest, save_factors
from sw.factors import compute_layer_factors
from sw.qconfig import QuantConfig

ROOT = Path(__file__).resolve().parents[2]


def _weight(d_out=48, d_in=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d_out, d_in, generator=g, dtype=torch.float64) * 0.1


def _scale(d_in, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(d_in, generator=g, dtype=torch.float64))


def test_saved_factors_reload_equal(tmp_path):
    torch.manual_seed(0)
    layers = {"m.layers.0.q": torch.nn.Linear(64, 48), "m.layers.0.o": torch.nn.Linear(48, 64, bias=False)}
    config = QuantConfig(method="l2qer", rank=16, svd="randomized", seed=4)
    saved = {n: compute_layer_factors(l.weight, config=config, scale=_scale(l.in_features), bias=l.bias, name=n)
             for n, l in layers.items()}
    save_factors(str(tmp_path / "f"), saved, config=config, source={"hash": "abc"})
    loaded, config2, manifest = load_factors(str(tmp_path / "f"))
    assert config2 == config and list(loaded) == list(saved)
    assert manifest["source_model"] == {"hash": "abc"}
    assert manifest["layers"]["m.layers.0.q"]["operands"]["a"]["axis"] == 0
    for name, f in saved.items():
        g = loaded[name]
        for key in ("weight", "a", "b"):
            p, q = getattr(f, key), getattr(g, key)
            assert (p.width, p.block, p.axis, p.exponent_bits) == (q.width, q.block, q.axis, q.exponent_bits)
            assert p.mantissas.dtype == q.mantissas.dtype
            np.testing.assert_array_equal(p.mantissas, q.mantissas)
            np.testing.assert_array_equal(p.exponents, q.exponents)
        for key in ("bias", "scale"):
            if getattr(f, key) is None:
                assert getattr(g, key) is None
            else:
                np.testing.assert_array_equal(getattr(f, key), getattr(g, key))
        assert f.errors == g.errors
    assert sorted(os.listdir(tmp_path)) == ["f"]  # no temporary folder left behind


def test_corrupt_or_foreign_factors_are_refused(tmp_path):
    config = QuantConfig(method="mxint")
    f = {"l.0": compute_layer_factors(_weight(), config=config, name="l.0")}
    out = tmp_path / "f"
    save_factors(str(out), f, config=config, source={})
    data = bytearray((out / "factors.safetensors").read_bytes())
    data[-1] ^= 1
    (out / "factors.safetensors").write_bytes(bytes(data))
    with pytest.raises(FactorsError, match=r"does not match its manifest \(sha256 differs\)"):
        load_factors(str(out))
    with pytest.raises(FactorsError, match=r"^quantized must be a folder written by 'lqer-hw quantize'"):
        load_factors(str(tmp_path / "missing"))
    (out / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(FactorsError, match=r"^quantized manifest.json must have format 'lqer-hw factors'"):
        load_factors(str(out))


def test_the_manifest_records_whether_the_datapath_runs_the_factors(tmp_path):
    fits = QuantConfig(method="lqer", rank=16)
    f = {"l.0": compute_layer_factors(_weight(), config=fits, name="l.0")}
    save_factors(tmp_path / "a", f, config=fits, source={})
    assert read_manifest(tmp_path / "a")["datapath"] == {"lqer-linear": True, "reason": None}
    odd = QuantConfig(method="lqer", rank=20)
    f = {"l.0": compute_layer_factors(_weight(), config=odd, name="l.0")}
    save_factors(tmp_path / "b", f, config=odd, source={})
    assert read_manifest(tmp_path / "b")["datapath"] == {
        "lqer-linear": False, "reason": "rank must be a multiple of block (16); got 20"}
    narrow = QuantConfig(method="mxint")
    f = {"l.0": compute_layer_factors(_weight(d_in=40), config=narrow, name="l.0")}
    save_factors(tmp_path / "c", f, config=narrow, source={})
    assert read_manifest(tmp_path / "c")["datapath"] == {
        "lqer-linear": False, "reason": "d_in must be a multiple of block (16); got 40 (layer l.0)"}


def test_save_without_overwrite_refuses_a_non_empty_folder(tmp_path):
    config = QuantConfig(method="mxint")
    f = {"l.0": compute_layer_factors(_weight(), config=config, name="l.0")}
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match=r"^out must be a new or empty folder \(or give --overwrite\)"):
        save_factors(tmp_path / "f", f, config=config, source={}, overwrite=False)
    assert os.listdir(tmp_path / "f") == ["mine.txt"]
    save_factors(tmp_path / "f", f, config=config, source={})
    assert sorted(os.listdir(tmp_path / "f")) == ["factors.safetensors", "manifest.json"]


def test_reading_factors_does_not_import_torch(tmp_path):
    config = QuantConfig(method="lqer", rank=16)
    save_factors(tmp_path / "f", {"l.0": compute_layer_factors(_weight(), config=config, name="l.0")},
                 config=config, source={})
    code = ("import sys; from sw.factor_files import load_factors; "
            f"f, c, m = load_factors({str(tmp_path / 'f')!r}); "
            "print(f['l.0'].rank, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["16", "False"]
