"""``lqer-hw profile``: the JSON report, the Markdown summary, one-line errors with nothing written."""

import json

import pytest
import torch

from sw import profile_cli

PROG = "lqer-hw profile"


def test_profile_of_the_default_model(tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = profile_cli.main(["--threshold", "4", "--group", "64", "--max-windows", "4", "--out", str(out)], PROG)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(out.read_text())
    assert report["format"] == "lqer-hw-outliers" and report["threshold"] == 4.0 and report["group"] == 64
    assert report["model"] == "default" and report["data"] == "default" and report["model_type"] == "opt"
    assert report["tokens"] == 4 * 128 and report["seq_len"] == 128
    layer = report["layers"]["model.decoder.layers.0.fc1"]
    assert layer["groups"] == 8 and layer["tokens"] == 512 and layer["d_in"] == 128
    assert set(layer["outlier_columns_per_group"]) == {"mean", "p50", "p99", "max"}
    assert len(report["layers"]) == 24 and report["summary"]["layers"] == 24
    assert captured.out.startswith("Outliers |x| >= 4, detection group 64 tokens, 512 tokens.")
    assert "| model.decoder.layers.3.fc2 | 512 |" in captured.out
    assert captured.out.splitlines()[-1].startswith(f"wrote {out} (512 tokens, ")
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no part file left


@pytest.mark.parametrize("argv,message", [
    (["--threshold", "0"], "threshold must be a number > 0; got '0'"),
    (["--threshold", "-1"], "threshold must be a number > 0; got '-1'"),
    (["--threshold", "inf"], "threshold must be a number > 0; got 'inf'"),
    (["--threshold", "nan"], "threshold must be a number > 0; got 'nan'"),
    (["--threshold", "six"], "threshold must be a number > 0; got 'six'"),
    (["--group", "0"], "group must be an integer >= 1; got '0'"),
    (["--group", "1.5"], "group must be an integer >= 1; got '1.5'"),
    (["--seq-len", "1"], "seq-len must be an integer >= 2; got '1'"),
    (["--seq-len", "129"], "seq-len must be in 2..128 for this model; got 129"),
    (["--device", "tpu"], "device must be cpu or cuda[:N]; got 'tpu'"),
    (["--layers", "nothing-matches"], "layers must match at least one linear layer of the model; "
                                      "got 'nothing-matches'"),
    (["--data", "/nonexistent.txt"], "data must be an existing text file; got '/nonexistent.txt'"),
    (["--model", "/nonexistent"], "model must be a local Hugging Face model folder or 'default'; "
                                  "got '/nonexistent'"),
    (["--bogus"], "arguments must be options of this command; got '--bogus'"),
    (["--group"], "group must have a value; got nothing"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "p.json"
    rc = profile_cli.main([*argv, "--out", str(out)], PROG)
    err = capsys.readouterr().err
    assert rc == 2 and err == f"{PROG}: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out,message", [
    ("p.txt", "out must end in .json; got '{}'"),
    ("missing/p.json", "out must be in an existing folder; got '{}'"),
])
def test_bad_out(tmp_path, capsys, out, message):
    path = str(tmp_path / out)
    assert profile_cli.main(["--out", path], PROG) == 2
    assert capsys.readouterr().err == f"{PROG}: error: {message.format(path)}\n"
    assert list(tmp_path.iterdir()) == []


def test_out_is_required(capsys):
    assert profile_cli.main([], PROG) == 2
    assert capsys.readouterr().err == f"{PROG}: error: out must be given; got nothing\n"


def test_a_model_without_linear_layers(tmp_path, capsys, monkeypatch):
    import sw.models
    from tests.sw.tiny_checkpoints import save, tiny

    folder = save(tiny("opt"), tmp_path / "opt")
    monkeypatch.setattr(sw.models, "load_model", lambda *a, **k: torch.nn.Sequential(torch.nn.LayerNorm(4)))
    out = tmp_path / "p.json"
    assert profile_cli.main(["--model", folder, "--out", str(out)], PROG) == 2
    assert capsys.readouterr().err == (f"{PROG}: error: model must have torch.nn.Linear layers inside its "
                                       "decoder blocks; found none\n")
    assert not out.exists()


def test_gpt2_conv1d_layers_are_profiled(tmp_path, capsys):
    from tests.sw.tiny_checkpoints import save, tiny

    folder = save(tiny("gpt2"), tmp_path / "gpt2")
    out = tmp_path / "p.json"
    assert profile_cli.main(["--model", folder, "--threshold", "2", "--max-windows", "2", "--out", str(out)],
                            PROG) == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert "transformer.h.0.attn.c_attn" in report["layers"]
    assert report["layers"]["transformer.h.0.mlp.c_proj"]["d_in"] == 128


def test_dispatched_by_lqer_hw(tmp_path, capsys):
    from lqer_hw.cli import main

    assert main(["profile", "--threshold", "0", "--out", str(tmp_path / "p.json")]) == 2
    assert capsys.readouterr().err == "lqer-hw profile: error: threshold must be a number > 0; got '0'\n"
