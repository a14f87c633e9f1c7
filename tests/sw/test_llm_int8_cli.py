"""``lqer-hw quantize`` / ``eval`` with ``--method llm-int8`` and ``--method w8a8``."""

import json

import pytest

from sw import cli
from tests.sw.tiny_checkpoints import save, tiny

EVAL, QUANTIZE = "lqer-hw eval", "lqer-hw quantize"
SHORT = ["--max-windows", "3"]


def run(argv, prog, capsys):
    rc = cli.main(argv, prog=prog)
    captured = capsys.readouterr()
    record = None
    if rc == 0 and "--json" in argv:
        record = json.loads(captured.out.strip().splitlines()[-1])
    return rc, captured, record


def test_eval_llm_int8_reports_outliers_and_w8a8_matches_threshold_6(capsys):
    rc, out, low = run(["--method", "llm-int8", "--threshold", "4", *SHORT, "--json"], EVAL, capsys)
    assert rc == 0, out.err
    assert low["method"] == "llm-int8" and low["threshold"] == 4.0 and low["group"] is None
    assert low["outlier_weights"] == "int8" and low["emulated_layers"] == 24 and low["tokens"] == 3 * 127
    assert low["outliers"]["max_columns"] > 0 and 0 < low["outliers"]["layers_affected"] <= 1
    assert "outlier columns per group: mean" in out.out
    rc, _, six = run(["--method", "llm-int8", *SHORT, "--json"], EVAL, capsys)
    rc, out, w8a8 = run(["--method", "w8a8", *SHORT, "--json"], EVAL, capsys)
    assert rc == 0, out.err
    # the embedded model has no activation of magnitude 6: LLM.int8() at 6 is W8A8 there
    assert six["outliers"]["max_columns"] == 0 and six["perplexity"] == w8a8["perplexity"]
    assert w8a8["threshold"] is None and w8a8["outliers"] is None
    assert low["perplexity"] != w8a8["perplexity"]


def test_bit_true_and_groups(capsys):
    base = ["--method", "llm-int8", "--threshold", "4", "--outlier-group", "16", "--max-windows", "1", "--json"]
    rc, out, fast = run(base, EVAL, capsys)
    assert rc == 0, out.err
    rc, out, exact = run([*base, "--bit-true"], EVAL, capsys)
    assert rc == 0, out.err
    assert exact["arithmetic"] == "bit-true" and exact["group"] == 16
    assert exact["perplexity"] == pytest.approx(fast["perplexity"], rel=1e-6)


def test_quantize_then_eval_quantized_is_the_same_model(tmp_path, capsys):
    out_dir = tmp_path / "q"
    rc, out, rec = run(["--method", "llm-int8", "--threshold", "4", "--outlier-weights", "fp16",
                        "--out", str(out_dir), "--json"], QUANTIZE, capsys)
    assert rc == 0, out.err
    assert rec["method"] == "llm-int8" and rec["threshold"] == 4.0 and rec["layers"] == 24
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["config"] == {"method": "llm-int8", "threshold": 4.0, "group": None,
                                  "outlier_weights": "fp16"}
    assert manifest["datapath"]["lqer-linear"] is False
    rc, out, stored = run(["--quantized", str(out_dir), *SHORT, "--json"], EVAL, capsys)
    assert rc == 0, out.err
    rc, out, direct = run(["--method", "llm-int8", "--threshold", "4", "--outlier-weights", "fp16", *SHORT,
                           "--json"], EVAL, capsys)
    assert stored["perplexity"] == direct["perplexity"] and stored["quantized"] == str(out_dir)
    # quantizing again into the filled folder needs --overwrite; nothing changes without it
    before = (out_dir / "factors.safetensors").read_bytes()
    rc, out, _ = run(["--method", "w8a8", "--out", str(out_dir)], QUANTIZE, capsys)
    assert rc == 2 and "out must be a new or empty folder (or give --overwrite)" in out.err
    assert (out_dir / "factors.safetensors").read_bytes() == before


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_tiny_checkpoints(tmp_path, capsys, family):
    folder = save(tiny(family), tmp_path / family)
    for method in (["--method", "w8a8"], ["--method", "llm-int8", "--threshold", "3.5"]):
        rc, out, rec = run(["--model", folder, *method, "--seq-len", "32", "--max-windows", "4", "--json"],
                           EVAL, capsys)
        assert rc == 0, out.err
        assert rec["emulated_layers"] == (14 if family == "llama" else 12)
        assert rec["perplexity"] > 100


def test_weights_of_another_model_are_refused(tmp_path, capsys):
    out_dir = tmp_path / "q"
    assert run(["--method", "w8a8", "--out", str(out_dir)], QUANTIZE, capsys)[0] == 0
    folder = save(tiny("opt"), tmp_path / "opt")
    rc, out, _ = run(["--model", folder, "--quantized", str(out_dir), "--seq-len", "32"], EVAL, capsys)
    assert rc == 2
    assert out.err.startswith(f"{EVAL}: error: quantized must hold weights of this model; ")


@pytest.mark.parametrize("argv,message", [
    (["--method", "w8a8", "--threshold", "3"], "threshold must not be given with --method w8a8 (it has no "
                                               "outlier path); got 3.0"),
    (["--method", "w8a8", "--outlier-weights", "fp16"], "outlier-weights must not be given with --method "
                                                        "w8a8 (it has no outlier path); got 'fp16'"),
    (["--method", "l2qer", "--outlier-group", "4"], "outlier-group must not be given with --method l2qer "
                                                    "(it applies to llm-int8 only); got 4"),
    (["--threshold", "3"], "threshold must not be given without --method (the float model is not "
                           "quantized); got 3.0"),
    (["--method", "llm-int8", "--w-width", "3"], "w-width must not be given with --method llm-int8 "
                                                 "(weights and activations are int8 vector-wise, not MXINT); "
                                                 "got 3"),
    (["--method", "llm-int8", "--rank", "8"], "rank must not be given with --method llm-int8 (weights and "
                                              "activations are int8 vector-wise, not MXINT); got 8"),
    (["--method", "w8a8", "--calib", "default"], "calib must not be given with --method w8a8 (only l2qer, "
                                                 "resq calibrate); got 'default'"),
    (["--method", "llm-int8", "--bit-true", "--guard-bits", "4"], "guard-bits must not be given with "
                                                                  "--method llm-int8 (it has no MXINT "
                                                                  "accumulator); got 4"),
    (["--method", "llm-int8", "--threshold", "0"], "threshold must be a number > 0; got '0'"),
    (["--method", "llm-int8", "--threshold", "inf"], "threshold must be a number > 0; got 'inf'"),
    (["--method", "llm-int8", "--outlier-group", "0"], "outlier-group must be an integer >= 1; got '0'"),
    (["--method", "llm-int8", "--outlier-weights", "bf16"], "outlier-weights must be one of int8, fp16; "
                                                            "got 'bf16'"),
    (["--method", "int4"], "method must be one of fp, mxint, lqer, l2qer, resq, llm-int8, w8a8; got 'int4'"),
])
def test_bad_eval_options_are_one_line(capsys, argv, message):
    rc, out, _ = run(argv, EVAL, capsys)
    assert rc == 2 and out.err == f"{EVAL}: error: {message}\n"


def test_options_with_quantized_int8_weights(tmp_path, capsys):
    out_dir = tmp_path / "q"
    assert run(["--method", "llm-int8", "--out", str(out_dir)], QUANTIZE, capsys)[0] == 0
    for argv, message in ((["--threshold", "5"], "threshold must not be given with --quantized (the weights "
                                                 "fix it); got 5.0"),
                          (["--method", "w8a8"], "quantized and method must not both be given (the weights "
                                                 "fix the method); got --method 'w8a8'"),
                          (["--block", "32"], "block must not be given with --method llm-int8 (weights and "
                                              "activations are int8 vector-wise, not MXINT); got 32")):
        rc, out, _ = run(["--quantized", str(out_dir), *argv], EVAL, capsys)
        assert rc == 2 and out.err == f"{EVAL}: error: {message}\n"


def test_bad_quantize_options(tmp_path, capsys):
    out_dir = tmp_path / "q"
    rc, out, _ = run(["--method", "llm-int8", "--a-width", "4", "--out", str(out_dir)], QUANTIZE, capsys)
    assert rc == 2 and out.err == (f"{QUANTIZE}: error: a-width must not be given with --method llm-int8 "
                                   "(weights and activations are int8 vector-wise, not MXINT); got 4\n")
    rc, out, _ = run(["--method", "mxint", "--threshold", "4", "--out", str(out_dir)], QUANTIZE, capsys)
    assert rc == 2 and out.err == (f"{QUANTIZE}: error: threshold must not be given with --method mxint "
                                   "(it applies to llm-int8 only); got 4.0\n")
    assert not out_dir.exists()
