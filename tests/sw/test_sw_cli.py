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
from tests.interrupts import start_interruptible

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
    rc2, out, err = run(capsys, E, args + ["--bit-true"])
    bit = json.loads(out.strip().splitlines()[-1])
    # the slow step says what it does on stderr (capsys is no terminal: status lines, no bar)
    assert (f"{E}: l2qer: scoring 1 window of up to 128 tokens in 1 batch (bit-true arithmetic: slow)"
            in err.splitlines())
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
    (tmp_path / "four.txt").write_text("import sys and os")
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
    (["--method", "gptq"], "method must be one of mxint, lqer, l2qer, resq, llm-int8, w8a8; got 'gptq'"),
    (["--calib", "{t}/empty.txt"], "calib must contain text; got an empty file"),
    (["--calib", "{t}/nothere.txt"], "calib must be an existing text file; got"),
    (["--calib", "{t}/short.txt"], "calibration text must give at least 4096 tokens (32 sequences x 128); got 1"),
    (["--block", "12"], "block must be a power of two in 1..256; got '12'"),
    (["--w-width", "17"], "w-width must be an integer in 2..16; got '17'"),
    (["--calib-length", "300"], "calib-length must be in 2..128 for this model; got 300"),
    (["--out", "{t}/afile"], "out must be a folder (new or empty); got the file"),
    (["--out", "{t}/afile/sub"], "out must not lie under a file; got '{t}/afile/sub' ('{t}/afile' is a file)"),
    (["--out", "{t}"], "out must be a new or empty folder (or give --overwrite); got '{t}' with"),
    (["--bogus"], "arguments must be options of this command; got '--bogus'"),
    (["--rounding", "up"], "rounding must be one of even, away; got 'up'"),
    (["--calib-batch", "0"], "calib-batch must be an integer >= 1; got '0'"),
    (["--rank"], "rank must have a value; got nothing"),
]


@pytest.mark.parametrize("extra,message", BAD_QUANTIZE, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_QUANTIZE)])
def test_quantize_bad_inputs(files, capsys, extra, message):
    argv = ["--method", "l2qer", "--out", f"{files}/out"]
    argv += [a.format(t=files) for a in extra]
    assert_usage_error(capsys, Q, argv, message.format(t=files), folder=files)
    assert not os.path.exists(files / "out")


# options that would do nothing with the method: a usage error naming the option
USELESS_QUANTIZE = [
    (["--method", "mxint", "--rank", "8"],
     "rank must not be given with --method mxint (it applies to lqer, l2qer only); got 8"),
    (["--method", "mxint", "--svd", "randomized"],
     "svd must not be given with --method mxint (it applies to lqer, l2qer only); got 'randomized'"),
    (["--method", "lqer", "--calib-sequences", "8"],
     "calib-sequences must not be given with --method lqer (it applies to l2qer, resq only); got 8"),
    (["--method", "lqer", "--calib", "default"],
     "calib must not be given with --method lqer (only l2qer, resq calibrate); got 'default'"),
]


@pytest.mark.parametrize("extra,message", USELESS_QUANTIZE, ids=[a[1] + "-" + a[2] for a, _ in USELESS_QUANTIZE])
def test_quantize_refuses_options_that_do_nothing(files, capsys, extra, message):
    assert_usage_error(capsys, Q, [*extra, "--out", f"{files}/out"], message, folder=files)


def test_quantize_out_under_a_file_fails_before_any_work(files, capsys, monkeypatch):
    import sw.cli

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output location is bad")

    monkeypatch.setattr(sw.cli, "load", no_work)
    assert_usage_error(capsys, Q, ["--model", "default", "--method", "mxint", "--out", f"{files}/afile/sub"],
                       f"out must not lie under a file; got '{files}/afile/sub' ('{files}/afile' is a file)",
                       folder=files)


def test_quantize_overwrite_replaces_the_folder_whole(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from another run")
    rc, _, err = run(capsys, Q, ["--method", "mxint", "--out", str(out), "--overwrite"])
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["factors.safetensors", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left beside it
    old = os.umask(0o022)
    os.umask(old)
    for name in ("factors.safetensors", "manifest.json"):  # the user's umask, not 0600
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~old


# when the factors cannot run on the lqer-linear datapath: one line at once, and the manifest says why
DATAPATH = [
    (["--method", "lqer", "--rank", "20"], "rank must be a multiple of block (16); got 20"),
    (["--method", "lqer", "--flavour", "lqer"],
     "flavour must be 'ocp' (the datapath's quantizer); got 'lqer'"),
    (["--method", "mxint", "--rounding", "away"],
     "rounding must be 'even' (round half to even); got 'away'"),
    (["--method", "lqer", "--blocking", "paper"],
     "blocking must be 'reduction' (A along d_in, B along the rank, the axes the datapath "
     "reduces); got 'paper'"),
    (["--method", "lqer", "--lowrank-width", "4"],
     "lowrank_width must equal a_width (8) when rank > 0 (one low-rank dot array takes x, then "
     "t); got 4"),
]


@pytest.mark.parametrize("extra,reason", DATAPATH, ids=[r.split(" ")[0] for _, r in DATAPATH])
def test_quantize_says_when_the_datapath_cannot_run_the_factors(tmp_path, capsys, extra, reason):
    rc, _, err = run(capsys, Q, [*extra, "--out", str(tmp_path / "out")])
    assert rc == 0, err
    notes = [ln for ln in err.splitlines() if "datapath" in ln]
    assert notes == [f"{Q}: note: these factors cannot run on the lqer-linear datapath: {reason}"]
    assert err.splitlines()[0] == notes[0]  # said at once, before the factors are computed
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["datapath"] == {"lqer-linear": False, "reason": reason}


def test_factors_that_fit_the_datapath_say_so_in_the_manifest(l2qer_factors):
    manifest = json.loads((l2qer_factors / "manifest.json").read_text())
    assert manifest["datapath"] == {"lqer-linear": True, "reason": None}


def test_quantize_interrupt_is_one_line_exit_130_and_leaves_nothing(tmp_path):
    """SIGINT while the factors are computed (a real signal, to a real process)."""
    import signal

    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = start_interruptible([sys.executable, "-m", "lqer_hw", "quantize", "--method", "l2qer",
                             "--svd", "full", "--out", str(tmp_path / "out")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # the status line: the work has started
    assert line.startswith(f"{Q}: computing l2qer factors"), line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err == f"{Q}: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_quantize_requires_out_and_method(capsys, tmp_path):
    assert_usage_error(capsys, Q, ["--method", "lqer"], "out must be given; got nothing", folder=tmp_path)
    assert_usage_error(capsys, Q, ["--out", str(tmp_path / "o")], "method must be given; got nothing",
                       folder=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no CUDA device exists")
def test_cuda_without_a_device_is_refused(capsys, tmp_path):
    assert_usage_error(capsys, Q, ["--method", "mxint", "--device", "cuda", "--out", str(tmp_path / "o")],
                       "device must be cpu or an available CUDA device; got 'cuda' (no CUDA device found)",
                       folder=tmp_path)


BAD_EVAL = [
    (["--data", "{t}/nothere.txt"], "data must be an existing text file; got"),
    (["--data", "{t}/empty.txt"], "data must contain text; got an empty file"),
    (["--data", "{t}/short.txt"], "data must give at least 100 scored tokens (each window's first is not "
                                  "scored); got 0 from '{t}/short.txt' (1 token, 0 windows of at most 128)"),
    (["--data", "{t}/four.txt"], "data must give at least 100 scored tokens (each window's first is not "
                                 "scored); got 3 from '{t}/four.txt' (4 tokens, 1 window of at most 128)"),
    (["--max-windows", "1", "--seq-len", "64"], "data must give at least 100 scored tokens (each window's "
                                                "first is not scored); got 63 from"),
    (["--method", "foo"], "method must be one of fp, mxint, lqer, l2qer, resq, llm-int8, w8a8; got 'foo'"),
    (["--method", "lqer", "--rank", "0"], "rank must be an integer >= 1; got '0'"),
    (["--method", "lqer", "--rank", "129"], "rank must be in 1..128 for layer"),
    (["--model", "{t}/corrupt_model"], "model weights must be a valid safetensors file; got"),
    (["--seq-len", "1000"], "seq-len must be in 2..128 for this model; got 1000"),
    (["--method", "lqer", "--blocking", "paper", "--bit-true"], "blocking must be reduction for --bit-true"),
    (["--quantized", "{t}"], "quantized must be a folder written by 'lqer-hw quantize' (with manifest.json); got"),
    (["--guard-bits", "40"], "guard-bits must be an integer in 0..32 or 'exact'; got '40'"),
    # options that would do nothing: a usage error naming the option
    (["--rank", "8"], "rank must not be given without --method (the float model is not quantized); got 8"),
    (["--method", "mxint", "--rank", "8"],
     "rank must not be given with --method mxint (it applies to lqer, l2qer only); got 8"),
    (["--method", "mxint", "--guard-bits", "4"],
     "guard-bits must not be given without --bit-true (fast arithmetic has no accumulator); got 4"),
    (["--layers", "fc1"], "layers must not be given without --method (the float model is not quantized); got 'fc1'"),
    (["--method", "lqer", "--calib-length", "64"],
     "calib-length must not be given with --method lqer (it applies to l2qer, resq only); got 64"),
    (["--method", "fp", "--bit-true"], "method must be one of mxint, lqer, l2qer, resq, llm-int8, w8a8 for --bit-true; got 'fp'"),
]


@pytest.mark.parametrize("extra,message", BAD_EVAL, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_EVAL)])
def test_eval_bad_inputs(files, capsys, extra, message):
    assert_usage_error(capsys, E, [a.format(t=files) for a in extra], message.format(t=files), folder=files)


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
        "lqer-hw eval: error: method must be one of fp, mxint, lqer, l2qer, resq, llm-int8, w8a8; got 'foo'"]
    helped = subprocess.run([sys.executable, "-m", "lqer_hw", "quantize", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "--calib" in helped.stdout


def test_eval_json_holds_every_option_and_the_human_line_counts_layers(l2qer_factors, capsys):
    rc, out, _ = run(capsys, E, ["--method", "l2qer", "--rank", "32", "--layers", "fc", "--calib-sequences", "16",
                                 "--batch-size", "2", "--json", *FAST])
    assert rc == 0
    human, last = out.strip().splitlines()[-2:]
    record = json.loads(last)
    assert human == (f"perplexity {record['perplexity']:.4f} over {record['tokens']} tokens "
                     "(l2qer W4A8 rank 32 block 16, fast; 8 layers emulated)")
    assert record["layers"] == "fc" and record["emulated_layers"] == 8
    assert record["max_windows"] == 4 and record["batch_size"] == 2 and record["seq_len"] == 128
    assert record["calib"] == {"file": "default", "sequences": 16, "length": 128, "batch": 8}
    assert record["fp_perplexity"] is None
    rc, out, _ = run(capsys, E, ["--quantized", str(l2qer_factors), "--json", *FAST])
    saved = json.loads(out.strip().splitlines()[-1])
    assert saved["emulated_layers"] == 24 and saved["calib"]["sequences"] == 32


def test_eval_verbose_gives_the_float_baseline_on_the_same_windows(capsys):
    rc, out, _ = run(capsys, E, ["--json", *FAST])
    fp = json.loads(out.strip().splitlines()[-1])
    rc, out, _ = run(capsys, E, ["--method", "mxint", "--verbose", "--json", *FAST])
    lines = out.strip().splitlines()
    record = json.loads(lines[-1])
    assert rc == 0 and record["fp_perplexity"] == fp["perplexity"]
    assert lines[0] == f"float baseline: perplexity {fp['perplexity']:.4f} over {fp['tokens']} tokens (fp)"


def test_eval_interrupt_is_one_line_exit_130(capsys, monkeypatch):
    import sw.perplexity

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sw.perplexity, "perplexity", interrupted)
    rc, out, err = run(capsys, E, [*FAST])
    assert rc == 130 and out == ""
    assert err.splitlines()[-1] == f"{E}: interrupted"
    assert "Traceback" not in err


def test_help_states_the_defaults(capsys):
    for prog in (Q, E):
        rc, out, _ = run(capsys, prog, ["--help"])
        assert rc == 0
        flat = " ".join(out.split())
        assert "'default', the embedded model (default 'default')" in flat
        assert "(default 32)" in flat and "(default reduction)" in flat and "(default 128)" in flat
    assert "the embedded held-out split (default 'default')" in flat


def test_plural():
    assert cli.plural(1, "token") == "1 token" and cli.plural(0, "token") == "0 tokens"
    assert cli.plural(2, "layer") == "2 layers"
