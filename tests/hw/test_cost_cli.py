"""``lqer-hw cost`` command line: bad input is one line, exit 2, nothing written; an
interrupt leaves nothing; the dispatcher knows the command."""

from __future__ import annotations

import json
import re

import pytest

from hw.cost import cli
from lqer_hw import cli as dispatcher
from tests.hw.cost_cache import session_cache_root
from hw.cost.cli import COST_TARGETS


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LQER_CACHE_DIR", str(tmp_path / "user-cache"))


def _opt_without_shapes(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "opt", "num_hidden_layers": 2, "vocab_size": 50}))
    return str(path)


def _other_profile(tmp_path):
    path = tmp_path / "profile.json"
    layers = {"model.layers.0.mlp.up_proj": {"d_in": 4096, "outlier_columns_per_group":
                                             {"mean": 1.0, "p50": 1, "p99": 2, "max": 3}}}
    path.write_text(json.dumps({"format": "lqer-hw-outliers", "version": 1, "layers": layers}))
    return str(path)


METHODS = "fp16, w8a8, mxint, lqer, l2qer, llm-int8, llm-int4, resq"


@pytest.mark.parametrize("argv, message", [
    (["--methods", "fp16,int4"], rf"methods must be a comma list of {METHODS}; got 'int4'"),
    (["--methods", ","], rf"methods must be a comma list of {METHODS}; got ','"),
    (["-t", "xc9"], rf"target must be one of {', '.join(COST_TARGETS)}; got 'xc9'"),
    (["-t", "liberty"], r"target must be one of .*; got 'liberty'"),
    (["--macs-per-cycle", "24"], r"macs-per-cycle must be a multiple of block \(16\); got 24"),
    (["--macs-per-cycle", "0"], r"macs-per-cycle must be an integer >= 1; got '0'"),
    (["--rank", "256"], r"rank must be at most min\(d_in, d_out\) of every layer \(128 at "
                        r"model\.decoder\.layers\.0\.self_attn\.q_proj\); got 256"),
    (["--rank", "20"], r"rank must be a positive multiple of block \(16\); got 20"),
    (["--block", "12"], r"block must be a power of two in 1\.\.256; got 12"),
    (["--model", "llama-8b"], r"model must be a folder with config\.json, a config\.json file, "
                              r"'default', or one of llama-7b, .*; got 'llama-8b'"),
    (["--methods", "llm-int8"], r"outliers must be given for llm-int8 \(--outliers PROFILE\.json "
                                r"or --outlier-columns N\); got neither"),
    (["--outlier-columns", "129"], r"outlier-columns must be at most d_in of every layer \(128 at "
                                   r"model\.decoder\.layers\.0\.self_attn\.q_proj\); got 129"),
    (["--outlier-columns", "3", "--outliers", "x.json"],
     r"outliers must not be given with outlier-columns; got both"),
    (["--outlier-sizing", "p90"], r"outlier-sizing must be one of mean, p50, p99, max; got 'p90'"),
    (["--layer-output", "mxint"], r"layer-output must be one of terms, merged; got 'mxint'"),
    (["--no-cache", "--cache", "c"], r"cache must not be given with --no-cache; got both"),
    (["--bogus"], r"arguments must be options of this command; got '--bogus'"),
])
def test_usage_errors_are_one_line_exit_2_and_write_nothing(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = cli.main([*argv, "-o", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("lqer-hw cost: error: ")
    assert re.fullmatch(message, err.strip()[len("lqer-hw cost: error: "):]), err
    assert not out_dir.exists()


def test_a_config_without_layer_shapes_and_a_profile_of_another_model(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = cli.main(["--model", _opt_without_shapes(tmp_path), "-o", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "error: model config must give the layer shapes (hidden_size, ffn_dim); " \
                          "got none in" in err
    code = cli.main(["--outliers", _other_profile(tmp_path), "-o", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "error: outliers must be a profile of the model default (the same " \
                          "linear layers)" in err
    assert not out_dir.exists()


def test_an_output_that_cannot_be_written_is_refused_before_work(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    assert cli.main(["-o", str(full)]) == 2
    assert "output must be a new or empty folder (or give --overwrite)" in capsys.readouterr().err
    assert sorted(p.name for p in full.iterdir()) == ["keep"]


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(**kwargs):
        (kwargs["build"]).mkdir(parents=True)
        (kwargs["build"] / "partial").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cost", interrupted)
    out_dir = tmp_path / "out"
    assert cli.main(["--methods", "mxint", "-o", str(out_dir)]) == 130
    assert capsys.readouterr().err.strip() == "lqer-hw cost: interrupted"
    assert not out_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize("argv, output", [([], "merged"), (["--layer-output", "terms"], "terms"),
                                          (["--layer-output", "merged"], "merged")])
def test_the_layer_output_reaches_the_cost_config(argv, output, tmp_path, monkeypatch, capsys):
    seen = {}

    def interrupted(**kwargs):
        seen["cfg"] = kwargs["cfg"]
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cost", interrupted)
    assert cli.main([*argv, "--methods", "mxint", "-o", str(tmp_path / "out")]) == 130
    assert seen["cfg"].layer_output == output and not (tmp_path / "out").exists()


def test_default_methods_leave_llm_int8_out_without_outliers(capsys):
    shapes, methods, targets, profile, notes = cli.check_inputs(
        model="default", methods=None, cfg=cli_config(), targets=[], outliers=None,
        outlier_columns=None)
    assert "llm-int8" not in methods and targets == ["xc7-nodsp"] and profile is None
    assert notes == ["llm-int8, llm-int4 left out: no outlier profile (--outliers or "
                     "--outlier-columns)"]
    _, methods, _, profile, _ = cli.check_inputs(
        model="llama-7b", methods=None, cfg=cli_config(), targets=["lut6", "lut6"], outliers=None,
        outlier_columns=None)
    assert "llm-int8" in methods and profile.of("model.layers.0.mlp.up_proj").p99 == 353


def cli_config():
    from hw.cost.methods import CostConfig
    return CostConfig()


def test_the_dispatcher_lists_and_runs_the_command(capsys):
    assert "cost" in dispatcher.SUBCOMMANDS
    assert dispatcher.main(["cost", "--help"]) == 0
    assert "--macs-per-cycle" in capsys.readouterr().out


@pytest.mark.synth
def test_a_run_writes_every_output_and_a_rerun_synthesises_nothing(tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("cost-cli")
    cache = session_cache_root(tmp_path_factory)  # the smallest parts (block 4), shared
    out = root / "cost-run"
    argv = ["--model", "default", "--methods", "fp16,mxint", "--block", "4", "--macs-per-cycle",
            "4", "-t", "lut6", "--cache", str(cache), "-j", "2"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}/cost.json")
    assert {p.name for p in out.iterdir()} - {"synth"} == {"area.png", "cost.csv", "cost.json",
                                                          "cost.md"}
    result = json.loads((out / "cost.json").read_text())
    assert len(result["layers"]) == 2 * 24 and result["methods"] == ["fp16", "mxint"]
    mx = next(r for r in result["layers"] if r["method"] == "mxint")
    # the fitted glue comes on top of the synthesised parts (it may round to 0 LUTs on lut6,
    # where the parts' own registers and multiplexers already hold the control)
    assert mx["luts"] >= mx["synthesised_luts"] > 0 and mx["ffs"] > 0
    assert (out / "cost.csv").read_text().count("\n") == 1 + 2 * 24
    again = root / "cost-rerun"
    assert cli.main([*argv, "-o", str(again)]) == 0
    assert "@ lut6" not in capsys.readouterr().err   # every part found through the index
    assert json.loads((again / "cost.json").read_text())["layers"] == result["layers"]
