"""sw.resq_factors and the ResQ side of sw.factor_files / sw.datapath: the factors of a layer,
determinism for a seed, the files (bases stored once, Hadamard rebuilt), the datapath rule."""

import numpy as np
import pytest
import torch

from sw.datapath import datapath_record, resq_reason
from sw.factor_files import FactorsError, load_factors, read_manifest, save_factors
from sw.intq import IntQuantized
from sw.mxint import MXQuantized
from sw.qconfig import QuantConfig
from sw.resq import build_bases, MomentCollector
from sw.resq_factors import check_resq_layers, resq_layer_factors, resq_record
from tests.sw.resq_layers import activations, linear, resq_factors

SOURCE = {"path": "test", "model_type": "test", "hash": "0" * 64}


def test_factors_hold_the_quantized_projections():
    lin = linear(96, 40, seed=1)
    f = resq_factors(lin, activations(400, 96, seed=2), rank=16)
    assert isinstance(f.weight, MXQuantized) and f.weight.mantissas.shape == (40, 80)
    assert f.weight.width == 4 and f.weight.axis == 1 and f.weight_high.width == 8
    assert (f.d_in, f.d_out, f.rank) == (96, 40, 16)
    wu = lin.weight.detach().double().numpy() @ f.basis
    approx = np.concatenate([f.weight.dequantize(), f.weight_high.dequantize()], 1)
    rel = np.linalg.norm(wu - approx) / np.linalg.norm(lin.weight.detach().double().numpy())
    assert f.errors["weight_rel_error"] == pytest.approx(rel)
    # the 8-bit half is far more accurate than the 4-bit one
    err_high = np.abs(wu[:, 80:] - f.weight_high.dequantize()).max()
    err_low = np.abs(wu[:, :80] - f.weight.dequantize()).max()
    assert err_high < err_low / 4
    assert 0 < f.errors["energy_high"] <= 1 and f.resq == {"rotation": "pca", "rank": 16,
                                                          "calibration_tokens": 400}
    g = resq_factors(lin, activations(400, 96, seed=2), rank=16, resq_format="int")
    assert isinstance(g.weight, IntQuantized) and g.weight.bits == 4 and g.weight_high.bits == 8


def test_the_same_seed_gives_the_same_bits():
    lin = linear(64, 32, seed=3)
    x = activations(300, 64, seed=4)
    a, b = resq_factors(lin, x, seed=7), resq_factors(lin, x, seed=7)
    c = resq_factors(lin, x, seed=8)
    assert np.array_equal(a.basis, b.basis) and np.array_equal(a.weight.mantissas, b.weight.mantissas)
    assert not np.array_equal(a.basis, c.basis)


def test_bad_layers_are_named():
    lin = linear(64, 32, seed=3)
    f = resq_factors(lin, activations(300, 64, seed=4))
    from sw.resq import fixed_basis
    with pytest.raises(FactorsError, match=r"^basis of layer q must be 64x64; got \(32, 32\)$"):
        resq_layer_factors(lin.weight, basis=fixed_basis(32, "hadamard", seed=0, name="q"),
                           config=QuantConfig(method="resq"), name="q")
    w = lin.weight.detach().clone()
    w[1, 2] = float("inf")
    with pytest.raises(FactorsError, match=r"^weights of layer q must be finite; got inf at index \(1, 2\)$"):
        resq_layer_factors(w, basis=fixed_basis(64, "hadamard", seed=0, name="q"),
                           config=QuantConfig(method="resq"), name="q")
    with pytest.raises(FactorsError, match=r"^resq-rank must be in 1\.\.63 for layer q \(d_in 64\); got 64$"):
        check_resq_layers(QuantConfig(method="resq", resq_rank=64), {"q": (32, 64)})
    from sw.factors import compute_layer_factors
    with pytest.raises(FactorsError, match=r"^method resq needs a basis per layer"):
        compute_layer_factors(lin.weight, config=QuantConfig(method="resq"))
    with pytest.raises(ValueError, match=r"^resq_rank must be auto or an integer >= 1; got 0$"):
        QuantConfig(method="resq", resq_rank=0)
    assert f.rank == 16


def _shared_factors(fmt="mxint"):
    """q, k (sharing an input and a basis) and a Hadamard-transformed fc2."""
    torch.manual_seed(0)
    q, k, fc2 = linear(64, 64, seed=1), linear(64, 64, seed=2), linear(128, 64, seed=3)
    x = activations(200, 64, seed=4)
    with MomentCollector({"q": q, "k": k}) as c:
        q(x), k(x)
        c.end_batch()
    config = QuantConfig(method="resq", resq_basis="shared", resq_format=fmt)
    shapes = {"q": (64, 64), "k": (64, 64), "fc2": (64, 128)}
    plans = check_resq_layers(config, shapes)
    bases = build_bases(plans, shapes, c, mode="shared", seed=0)
    layers = {"q": q, "k": k, "fc2": fc2}
    return config, {n: resq_layer_factors(m.weight, basis=bases[n], config=config, bias=m.bias, name=n)
                    for n, m in layers.items()}


@pytest.mark.parametrize("fmt", ["mxint", "int"])
def test_files_round_trip_with_shared_bases_stored_once(tmp_path, fmt):
    config, factors = _shared_factors(fmt)
    manifest = save_factors(tmp_path / "f", factors, config=config, source=SOURCE,
                            resq=resq_record(config))
    from safetensors.numpy import load_file
    names = set(load_file(tmp_path / "f" / "factors.safetensors"))
    assert {n for n in names if n.endswith(".basis")} == {"q.basis"}   # fc2's Hadamard is rebuilt
    assert manifest["layers"]["k"]["resq"]["basis"] == "q"
    assert manifest["layers"]["fc2"]["resq"] == {"rotation": "hadamard", "rank": 0, "basis": "fc2"}
    assert manifest["resq"]["basis"] == "shared" and "U_D" in manifest["resq"]["projection"]["paper"]
    assert manifest["datapath"] == ({"resq-linear": True, "reason": None} if fmt == "mxint" else
                                    {"resq-linear": False, "reason": "resq_format must be 'mxint' "
                                     "(the datapath's number format); got 'int'"})
    loaded, cfg, _ = load_factors(tmp_path / "f")
    assert cfg == config
    assert loaded["q"].basis is loaded["k"].basis
    for name, f in factors.items():
        g = loaded[name]
        assert np.array_equal(g.basis, f.basis) and g.rank == f.rank and g.d_in == f.d_in
        for key in ("weight", "weight_high"):
            a, b = getattr(f, key), getattr(g, key)
            if a is None:
                assert b is None
            else:
                assert np.array_equal(a.dequantize(), b.dequantize())
        assert np.array_equal(g.bias, f.bias)
    assert read_manifest(tmp_path / "f")["layers"]["q"]["rank"] == 16


def test_datapath_rule_for_resq():
    ok = dict(d_in=128, d_out=64, rank=16, block=16)
    assert resq_reason(**ok) is None and resq_reason(**{**ok, "rank": 0}) is None
    assert resq_reason(**{**ok, "rank": 20}) == "rank must be a multiple of block (16); got 20"
    assert resq_reason(**{**ok, "rank": 128}) == "rank must be in 0..127 (below d_in); got 128"
    assert resq_reason(**{**ok, "flavour": "lqer"}) == "flavour must be 'ocp' (the datapath's quantizer); got 'lqer'"
    config = QuantConfig(method="resq")
    assert datapath_record(config, {"a": (64, 128), "b": (64, 128)}, ranks={"a": 16, "b": 24}) == {
        "resq-linear": False, "reason": "rank must be a multiple of block (16); got 24 (layer b)"}
    with pytest.raises(ValueError, match=r"^ranks must be given for ResQ factors"):
        datapath_record(config, {"a": (64, 128)})
