"""``lqer-hw sim llm-int8-linear --model`` (sim.llm_int8_layer): a real layer of the embedded
model through the RTL on Icarus, bit for bit against sw.llm_int8.linear with a threshold
that finds outliers in it; its input checks, one line each (nothing written)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.runner import seed_from_env, simulator_available

REAL_LAYER = "model.decoder.layers.0.self_attn.q_proj"


def _argv(layer, x_path, y_path, *extra, model="default"):
    return ["llm-int8-linear", "--model", model, "--layer", layer, "--inputs", str(x_path),
            "--outputs", str(y_path), *extra]


def _run(argv, capsys):
    from sim.cli import main as sim_main
    code = sim_main(argv, prog="lqer-hw sim")
    out, err = capsys.readouterr()
    return code, out, err


def _layer(name):
    import torch

    from sw.default_model import model_path
    from sw.models import load_model
    mod = dict(load_model(model_path("default")).named_modules())[name]
    assert isinstance(mod, torch.nn.Linear)
    bias = None if mod.bias is None else mod.bias.detach().float().numpy()
    return mod.weight.detach().float().numpy(), bias


@pytest.mark.sim
@pytest.mark.parametrize("simulator, bench", [("icarus", "cocotb"), ("verilator", "hdl")])
def test_real_layer_with_outliers_through_the_sim_command(tmp_path, capsys, simulator, bench):
    """Four tokens of a 128 x 128 layer at threshold 4: outlier-free and outlier tokens,
    the gather answered under stalls; y is sw.llm_int8.linear's, rounded to binary16. Both
    simulators, each with one of the two stream benches (sim.cocotb_bench, sim.hdl_bench)."""
    from sw import llm_int8
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    x = np.random.default_rng(seed_from_env()).standard_normal((4, 128)) * 1.5
    x[0] = np.clip(x[0], -3.9, 3.9)                    # no outlier
    x[1, [0, 127]] = [5.0, -40.0]                      # the first and the last column
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(_argv(REAL_LAYER, tmp_path / "x.npy", tmp_path / "y.npz",
                                "--threshold", "4", "--check", "--stall", "0.2",
                                "--simulator", simulator, "--bench", bench), capsys)
    assert code == 0, err
    assert f"(128x128, threshold 4) on {simulator}: 4 tokens, " in out
    assert "0 mismatches against sw.llm_int8" in out
    weight, bias = _layer(REAL_LAYER)
    want = llm_int8.linear(x, llm_int8.quantize_weight(weight), bias, threshold=4.0,
                           group=1, outlier_weights="int8")
    res = np.load(tmp_path / "y.npz")
    assert res["y"].dtype == np.float32 and res["y"].shape == (4, 128)
    assert np.array_equal(res["y"], want.y.astype(np.float16).astype(np.float32))
    counts = want.x.outlier_columns.sum(axis=1)
    assert res["outliers"].tolist() == counts.tolist() and counts[0] == 0 and counts[1] >= 2
    assert f"{counts.sum()} outlier columns gathered" in out


@pytest.mark.parametrize("case, message", [
    ("layer", "layer must be a linear layer of default (e.g. '{first}'); got 'nope'"),
    ("shape", "inputs must have shape (tokens, 128) with tokens >= 1; got (3, 127)"),
    ("param", "param may set only x_lanes, lanes, fp_lanes, outputs, tile, out_fp16, "
              "outstanding with --model (the rest come from the layer and --threshold); "
              "got 'd_in'"),
    ("tile", "inputs must hold a multiple of tile (2) tokens; got 3"),
    ("missing", "inputs must name an existing .npy file; got '{tmp}/none.npy'"),
    ("design", "model needs design llm-int8-linear; got 'dot-array'"),
    ("no-layer", "layer must be given with --model (the module name of a linear layer)"),
])
def test_sim_command_bad_inputs_get_one_line(tmp_path, capsys, case, message):
    x = np.zeros((3, 128 if case != "shape" else 127))
    np.save(tmp_path / "x.npy", x)
    x_path = tmp_path / ("none.npy" if case == "missing" else "x.npy")
    argv = _argv("nope" if case == "layer" else REAL_LAYER, x_path, tmp_path / "y.npz")
    if case == "param":
        argv += ["-p", "d_in=64"]
    elif case == "tile":
        argv += ["-p", "tile=2"]
    elif case == "design":
        argv[0] = "dot-array"
    elif case == "no-layer":
        del argv[3:5]
    code, out, err = _run(argv, capsys)
    assert code == 2, err
    first = "model.decoder.layers.0.self_attn.k_proj"
    assert err == "lqer-hw sim: error: " + message.format(tmp=tmp_path, first=first) + "\n"
    assert not (tmp_path / "y.npz").exists()
