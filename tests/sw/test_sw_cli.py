"""lqer-hw quantize / eval: happy paths on the embedded model, and every bad input (one line, exit 2, nothing written)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from sw import cli
from sw.default_model import DIRECTORY as DEFAULT_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Q, E = "lqer-hw quantize", "lqer-hw eval"
FAST = ["--max-windows", "4"]  # keep eval short where the number itself is not the point


def run(capsys, prog, argv):
    rc = cli.main(argv, prog=prog)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(capsys, prog, argv, message, folder=None):
    """Exit code 2, exactly one stderr line '<prog>: error: <message...>', and ``folder`` unchanged."""
    before = sorted(os.listdir(folder)) if folder is not None else None
    rc, out, err = run(capsys, prog, argv)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: {message}"), lines[0]
    if folder is not None:
        assert sorted(os.listdir(folder)) == before


@pytest.fixture(scope="module")
def l2qer_factors(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "l2qer"
    rc = cli.main(["--model", "default", "--method", "l2qer", "--rank", "32", "--w-width", "4",
                   "--a-width", "8", "--block", "16", "--calib", "default", "--out", str(out)],
                  prog=Q)
    assert rc == 0
    return out


def test_quantize_writes_factors_and_eval_reads_them(l2qer_factors, capsys):
    manifest = json.loads((l2qer_factors / "manifest.json").read_text())
    assert manifest["config"]["method"] == "l2qer" and manifest["config"]["rank"] == 32
    assert len(manifest["layers"]) == 24
    assert "model.decoder.layers.0.self_attn.q_proj" in manifest["layers"]
    assert manifest["calibration"]["sequences"] == 32
    rc, out, _ = run(capsys, E, ["--model", "default", "--quantized", str(l2qer_factors), "--data",
                                 "default", "--json", *FAST])
    assert rc == 0
    saved = json.loads(out.strip().splitlines()[-1])
    # the same options quantized on the fly give the same bits, hence the same perplexity
    rc, out, _ = run(capsys, E, ["--model", "default", "--method", "l2qer", "--rank", "32", "--json", *FAST])
    assert rc == 0
    fly = json.loads(out.strip().splitlines()[-1])
    assert saved["perplexity"] == fly["perplexity"]
    for key in ("perplexity", "tokens", "method", "rank", "w_width", "a_width", "block", "seq_len"):
        assert key in saved
    assert saved["tokens"] == 4 * 127 and saved["method"] == "l2qer"


def test_bit_true_eval_is_close_to_fast(l2qer_factors, capsys):
    args = ["--quantized", str(l2qer_factors), "--max-windows", "1", "--json"]
    rc, out, _ = run(capsys, E, args)
    fast = json.loads(out.strip().splitlines()[-1])
    rc2, out, _ = run(capsys, E, args + ["--bit-true"])
    bit = json.loads(out.strip().splitlines()[-1])
    assert rc == rc2 == 0 and bit["arithmetic"] == "bit-true" and bit["guard_bits"] == 8
    assert abs(bit["perplexity"] - fast["perplexity"]) <= 0.01 * fast["perplexity"]


def test_factors_are_deterministic(tmp_path, capsys):
    args = ["--method", "l2qer", "--rank", "16", "--svd", "randomized", "--seed", "3",
            "--calib-sequences", "8"]
    for name in ("a", "b"):
        assert cli.main(args + ["--out", str(tmp_path / name)], prog=Q) == 0
    assert ((tmp_path / "a" / "factors.safetensors").read_bytes()
            == (tmp_path / "b" / "factors.safetensors").read_bytes())


def test_float_eval_default(capsys):
    rc, out, _ = run(capsys, E, ["--json", *FAST])
    record = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and record["method"] == "fp" and record["quantized"] is None
    assert out.strip().splitlines()[0].startswith("perplexity ")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("import")
    (tmp_path / "afile").write_text("x")
    corrupt = tmp_path / "corrupt_model"
    shutil.copytree(DEFAULT_DIR, corrupt, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with open(corrupt / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    return tmp_path


BAD_QUANTIZE = [
    (["--model", "{t}/missing"], "model must be a local Hugging Face model folder or 'default'; got"),
    (["--model", "{t}/corrupt_model"], "model weights must be a valid safetensors file; got"),
    (["--rank", "0"], "rank must be an integer >= 1; got '0'"),
    (["--rank", "129"], "rank must be in 1..128 for layer model.decoder.layers.0.self_attn.k_proj (128x128); got 129"),
    (["--method", "gptq"], "method must be one of mxint, lqer, l2qer; got 'gptq'"),
    (["--calib", "{t}/empty.txt"], "calib must contain text; got an empty file"),
    (["--calib", "{t}/nothere.txt"], "calib must be an existing text file; got"),
    (["--calib", "{t}/short.txt"], "calibration text must give at least 4096 tokens (32 sequences x 128); got 1"),
    (["--block", "12"], "block must be a power of two (1, 2, 4, ...); got '12'"),
    (["--w-width", "9"], "w-width must be an integer in 2..8; got '9'"),
    (["--calib-length", "300"], "calib-length must be in 2..128 for this model; got 300"),
    (["--out", "{t}/afile"], "out must be a folder (new or existing); got the file"),
    (["--bogus"], "arguments must be options of this command; got '--bogus'"),
]


@pytest.mark.parametrize("extra,message", BAD_QUANTIZE, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_QUANTIZE)])
def test_quantize_bad_inputs(files, capsys, extra, message):
    argv = ["--method", "l2qer", "--out", f"{files}/out"]
    argv += [a.format(t=files) for a in extra]
    assert_usage_error(capsys, Q, argv, message, folder=files)
    assert not os.path.exists(files / "out")


def test_quantize_requires_out_and_method(capsys, tmp_path):
    assert_usage_error(capsys, Q, ["--method", "lqer"], "--out must be given; got nothing", folder=tmp_path)
    assert_usage_error(capsys, Q, ["--out", str(tmp_path / "o")], "--method must be given; got nothing",
                       folder=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no CUDA device exists")
def test_cuda_without_a_device_is_refused(capsys, tmp_path):
    assert_usage_error(capsys, Q, ["--method", "mxint", "--device", "cuda", "--out", str(tmp_path / "o")],
                       "device must be cpu or an available CUDA device; got 'cuda' (no CUDA device found)",
                       folder=tmp_path)


BAD_EVAL = [
    (["--data", "{t}/nothere.txt"], "data must be an existing text file; got"),
    (["--data", "{t}/empty.txt"], "data must contain text; got an empty file"),
    (["--data", "{t}/short.txt"], "data must give at least 2 tokens; got 1 from"),
    (["--method", "foo"], "method must be one of fp, mxint, lqer, l2qer; got 'foo'"),
    (["--method", "lqer", "--rank", "0"], "rank must be an integer >= 1; got '0'"),
    (["--method", "lqer", "--rank", "129"], "rank must be in 1..128 for layer"),
    (["--model", "{t}/corrupt_model"], "model weights must be a valid safetensors file; got"),
    (["--seq-len", "1000"], "seq-len must be in 2..128 for this model; got 1000"),
    (["--method", "lqer", "--blocking", "paper", "--bit-true"], "blocking must be reduction for --bit-true"),
    (["--quantized", "{t}"], "quantized must be a folder written by 'lqer-hw quantize' (with manifest.json); got"),
    (["--guard-bits", "40"], "guard-bits must be an integer in 0..32; got '40'"),
]


@pytest.mark.parametrize("extra,message", BAD_EVAL, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_EVAL)])
def test_eval_bad_inputs(files, capsys, extra, message):
    assert_usage_error(capsys, E, [a.format(t=files) for a in extra], message, folder=files)


def test_eval_quantized_conflicts_and_foreign_factors(l2qer_factors, files, capsys):
    q = str(l2qer_factors)
    assert_usage_error(capsys, E, ["--quantized", q, "--method", "lqer"],
                       "quantized and method must not both be given")
    assert_usage_error(capsys, E, ["--quantized", q, "--rank", "8"],
                       "rank must not be given with --quantized (the factors fix it)")
    other = files / "other_model"
    shutil.copytree(DEFAULT_DIR, other, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    from safetensors.torch import load_file, save_file
    weights = load_file(str(other / "model.safetensors"))
    key = next(k for k in weights if k.endswith("fc1.weight"))
    weights[key] = weights[key] * 2
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    assert_usage_error(capsys, E, ["--model", str(other), "--quantized", q],
                       f"quantized must hold factors of this model; '{q}' was computed from another")


def test_module_entry_point():
    """Through the real dispatcher: `python -m lqer_hw eval ...` (what `lqer-hw eval` runs)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    bad = subprocess.run([sys.executable, "-m", "lqer_hw", "eval", "--method", "foo"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "lqer-hw eval: error: method must be one of fp, mxint, lqer, l2qer; got 'foo'"]
    helped = subprocess.run([sys.executable, "-m", "lqer_hw", "quantize", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "--calib" in helped.stdout
