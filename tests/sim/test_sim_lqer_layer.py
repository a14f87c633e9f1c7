"""``lqer-hw sim lqer-linear --factors`` (sim.lqer_layer): one layer of factors written by
``lqer-hw quantize`` through the RTL, against sw.lqer_reference and sw.bittrue; its
input checks, one line each.

The real layer of the embedded model runs on Icarus (a 128 x 128 datapath builds in
seconds there, minutes on Verilator); the small layer runs without --simulator, on
Icarus where it is installed (as if Verilator were not) and on Verilator otherwise.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hw.designs import inspect
import sim.runner as runner
from sim.runner import default_simulator, seed_from_env, simulator_available, vector_count

REAL_LAYER = "model.decoder.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def real_factors(tmp_path_factory):
    """L2QER factors (rank 32, paper formats) of one layer of the embedded model, written
    by the quantize command itself (a short calibration keeps it quick)."""
    from sw.cli import main as sw_main
    out = tmp_path_factory.mktemp("factors") / "l2qer"
    code = sw_main(["--model", "default", "--method", "l2qer", "--rank", "32",
                    "--layers", r"layers\.0\.self_attn\.q_proj$", "--calib-sequences", "4",
                    "--calib-length", "64", "--out", str(out)], prog="lqer-hw quantize")
    assert code == 0
    return out


@pytest.fixture(scope="module")
def small_factors(tmp_path_factory):
    """LQER factors of a random 32 x 16 layer with a bias (no model needed)."""
    import torch

    from sw.factors import compute_layer_factors, save_factors
    from sw.qconfig import QuantConfig
    gen = torch.Generator().manual_seed(0)
    config = QuantConfig(method="lqer", rank=16)
    layer = compute_layer_factors(torch.randn(16, 32, generator=gen), config=config,
                                  bias=torch.randn(16, generator=gen), name="lin")
    out = tmp_path_factory.mktemp("factors") / "small"
    save_factors(str(out), {"lin": layer}, config=config, source={"model": "random"})
    return out


def _layer_argv(factors, layer, x_path, y_path, *extra):
    return ["lqer-linear", "--factors", str(factors), "--layer", layer, "--inputs", str(x_path),
            "--outputs", str(y_path), *extra]


def _run(argv, capsys):
    from sim.cli import main as sim_main
    code = sim_main(argv, prog="lqer-hw sim")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.sim
def test_real_l2qer_layer_through_the_sim_command(real_factors, tmp_path, capsys):
    """The issue's command on a layer of the embedded model: y equals sw.bittrue's and
    sw.lqer_reference's layer output bit for bit."""
    import torch

    from sw.bittrue import MXTensor, lqer_linear
    from sw.factors import load_factors
    from sw.lqer_reference import transpose
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    x = np.random.default_rng(seed_from_env()).standard_normal((2, 128)) * 3
    x[1, :16] = 0.0  # a zero block
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(_layer_argv(real_factors, REAL_LAYER, tmp_path / "x.npy",
                                      tmp_path / "y.npz", "--check", "--stall", "0.2",
                                      "--simulator", "icarus"), capsys)
    assert code == 0, err
    assert "on icarus: 2 tokens in " in out
    assert "0 mismatches against sw.lqer_reference" in out
    res = np.load(tmp_path / "y.npz")
    factors, config, _ = load_factors(str(real_factors))
    f = factors[REAL_LAYER]

    def mx(q):
        q = q if q.axis == 1 else transpose(q)
        return MXTensor(torch.from_numpy(np.ascontiguousarray(q.mantissas)).long(),
                        torch.from_numpy(np.ascontiguousarray(q.exponents)).long(), q.format)

    want = lqer_linear(torch.from_numpy(x), weight=mx(f.weight), a_t=mx(f.a), b_t=mx(f.b),
                       bias=None if f.bias is None else torch.from_numpy(f.bias))
    assert res["y"].shape == (2, 128) and res["y"].dtype == np.float64
    assert np.array_equal(res["y"], want.y.numpy())
    component = inspect("lqer-linear", d_in=128, d_out=128, rank=32)
    assert int(res["cycles"]) >= 2 * component.cycles_per_token


@pytest.mark.sim
def test_small_layer_with_bias_on_the_default_simulator(small_factors, tmp_path, capsys,
                                                        monkeypatch):
    from sw.factors import load_factors
    from sw.lqer_reference import reference_lqer_linear
    if not any(simulator_available(s) for s in ("icarus", "verilator")):
        pytest.skip("no simulator is installed")
    if simulator_available("icarus"):  # as on a machine without Verilator: a quick build
        monkeypatch.setattr(runner, "simulator_available",
                            lambda s: s == "icarus")
    x = np.random.default_rng(3).standard_normal((5, 32))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    code, out, err = _run(_layer_argv(small_factors, "lin", tmp_path / "x.npy",
                                      tmp_path / "y.npz", "-p", "lanes_main=2"), capsys)
    assert code == 0, err
    assert out.startswith(f"lqer-linear lin (32x16, rank 16) on {default_simulator()}: "
                          "5 tokens in ")
    assert out.count("\n") == 1
    factors, _, _ = load_factors(str(small_factors))
    f = factors["lin"]
    ref = reference_lqer_linear(x.astype(np.float32), f.weight, f.a, f.b, f.bias)
    res = np.load(tmp_path / "y.npz")
    assert np.array_equal(res["y"], ref["y"])
    assert np.array_equal(res["datapath"] + f.bias.astype(np.float64), ref["y"])


@pytest.mark.parametrize("case, message", [
    ("layer", "layer must be a layer of {factors} (e.g. 'lin'); got 'nope'"),
    ("shape", "inputs must have shape (tokens, 32) with tokens >= 1; got (3, 31)"),
    ("nan", "inputs must be finite; got nan at (1, 2)"),
    ("param", "param may set only lanes_main, lanes_lowrank, guard_bits, dot_stages with "
              "--factors (the rest come from the factors); got 'd_in'"),
    ("lanes", "lanes_main must divide d_out (16) and divide or be a multiple of block (16); got 3"),
    ("missing", "inputs must name an existing .npy file; got '{tmp}/none.npy'"),
    ("design", "factors needs design lqer-linear or resq-linear; got 'dot'"),
    ("factors", "quantized must be a folder written by 'lqer-hw quantize' (with "
                "manifest.json); got '{tmp}'"),
])
def test_sim_command_bad_inputs_get_one_line(small_factors, tmp_path, capsys, case, message):
    x = np.zeros((3, 32))
    layer, extra, factors = "lin", [], small_factors
    if case == "layer":
        layer = "nope"
    elif case == "shape":
        x = np.zeros((3, 31))
    elif case == "nan":
        x[1, 2] = np.nan
    elif case == "param":
        extra = ["-p", "d_in=64"]
    elif case == "lanes":
        extra = ["-p", "lanes_main=3"]
    elif case == "factors":
        factors = tmp_path
    np.save(tmp_path / "x.npy", x)
    x_path = tmp_path / ("none.npy" if case == "missing" else "x.npy")
    argv = _layer_argv(factors, layer, x_path, tmp_path / "y.npz", *extra)
    if case == "design":
        argv[0] = "dot"
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert err == "lqer-hw sim: error: " + message.format(factors=small_factors,
                                                          tmp=tmp_path) + "\n"
    assert not (tmp_path / "y.npz").exists()


@pytest.mark.sim
@pytest.mark.slow
def test_real_l2qer_layer_on_verilator_many_tokens(request, tmp_path, capsys):
    """The real layer on Verilator with many tokens (LQER_VECTORS // 50, at least 64); it
    builds a 128 x 128 datapath (minutes), so it runs only when LQER_VECTORS is set
    (``make regress``): ``make test`` runs slow-marked tests too."""
    if not os.environ.get("LQER_VECTORS"):
        pytest.skip("set LQER_VECTORS (make regress) for the many-token Verilator run")
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    real_factors = request.getfixturevalue("real_factors")
    tokens = max(64, vector_count(2000) // 50)
    x = np.random.default_rng(seed_from_env()).standard_normal((tokens, 128))
    x *= np.random.default_rng(1).choice([1e-2, 1.0, 30.0], size=(tokens, 1))
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(_layer_argv(real_factors, REAL_LAYER, tmp_path / "x.npy",
                                      tmp_path / "y.npz", "--check", "--stall", "0.2",
                                      "--simulator", "verilator"), capsys)
    assert code == 0, err
    assert "0 mismatches against sw.lqer_reference" in out
    assert np.load(tmp_path / "y.npz")["y"].shape == (tokens, 128)


@pytest.mark.sim
def test_sim_factors_never_imports_torch(small_factors, tmp_path):
    """`lqer-hw sim --factors` reads the factors with NumPy and safetensors only: the whole
    command, with --check, runs in a process where torch is never imported."""
    import subprocess
    import sys
    from pathlib import Path
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((2, 32)))
    simulator = "icarus" if simulator_available("icarus") else default_simulator()
    argv = _layer_argv(small_factors, "lin", tmp_path / "x.npy", tmp_path / "y.npz", "--check",
                       "--simulator", simulator)
    code = ("import sys; from sim.cli import main; status = main(sys.argv[1:], prog='sim'); "
            "print('torch' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "; 0 mismatches against sw.lqer_reference" in done.stdout
    assert done.stdout.splitlines()[-1] == "False"


# ---- ResQ factors on resq-linear ---------------------------------------------------------

@pytest.fixture(scope="module")
def resq_factors(tmp_path_factory):
    """ResQ factors (W4A4, r = d/8 = 16 coordinates at 8 bits, MXINT) of one layer of the
    embedded model, written by the quantize command itself (a short calibration)."""
    from sw.cli import main as sw_main
    out = tmp_path_factory.mktemp("factors") / "resq"
    code = sw_main(["--model", "default", "--method", "resq", "--w-width", "4", "--a-width", "4",
                    "--layers", r"layers\.0\.self_attn\.q_proj$", "--calib-sequences", "4",
                    "--calib-length", "64", "--out", str(out)], prog="lqer-hw quantize")
    assert code == 0
    return out


def _resq_argv(factors, x_path, y_path, *extra):
    return ["resq-linear", *_layer_argv(factors, REAL_LAYER, x_path, y_path, *extra)[1:]]


@pytest.mark.sim
def test_real_resq_layer_through_the_sim_command(resq_factors, tmp_path, capsys):
    """Item 4 of the ResQ issue: one ResQ layer saved by quantize runs on X.npy through the
    RTL's ResQ mode; y equals sw.resq_reference's and the bit-true emulation's bit for bit."""
    import torch

    from sw.factors import load_factors
    from sw.resq_emulation import ResQLinear
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    x = np.random.default_rng(seed_from_env()).standard_normal((2, 128)) * 3
    x[1] = 0.0  # a zero token: every coordinate block is zero
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(_resq_argv(resq_factors, tmp_path / "x.npy", tmp_path / "y.npz",
                                     "--check", "--stall", "0.2", "--simulator", "icarus"),
                          capsys)
    assert code == 0, err
    assert out.startswith(f"resq-linear {REAL_LAYER} (128x128, rank 16) on icarus: 2 tokens in ")
    assert "0 mismatches against sw.resq_reference" in out
    factors, config, _ = load_factors(str(resq_factors))
    layer = ResQLinear.from_factors(factors[REAL_LAYER], arithmetic="bit-true",
                                    a_width=config.a_width, dtype=torch.float64)
    want = layer(torch.from_numpy(x)).numpy()
    res = np.load(tmp_path / "y.npz")
    assert res["y"].shape == (2, 128) and res["y"].dtype == np.float64
    assert np.array_equal(res["y"], want)
    component = inspect("resq-linear", d_in=128, d_out=128, rank=16, a_width=4)
    assert int(res["cycles"]) >= 2 * component.cycles_per_token


@pytest.mark.parametrize("case, message", [
    ("method", "factors must come from method mxint, lqer, l2qer for lqer-linear; got 'resq' "
               "(run them on resq-linear)"),
    ("param", "param may set only lanes_main, lanes_high, guard_bits, dot_stages with "
              "--factors (the rest come from the factors); got 'lanes_lowrank'"),
])
def test_resq_factors_bad_inputs_get_one_line(resq_factors, tmp_path, capsys, case, message):
    np.save(tmp_path / "x.npy", np.zeros((2, 128)))
    argv = _resq_argv(resq_factors, tmp_path / "x.npy", tmp_path / "y.npz")
    if case == "method":
        argv[0] = "lqer-linear"
    else:
        argv += ["-p", "lanes_lowrank=2"]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert err == "lqer-hw sim: error: " + message + "\n"
    assert not (tmp_path / "y.npz").exists()
