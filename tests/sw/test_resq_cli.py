"""lqer-hw quantize / eval --method resq: the folder it writes, determinism, every bad input (one
line, exit 2, nothing written), and perplexity against plain MXINT at W4A4 on the embedded model
and on a tiny random LLaMA-style checkpoint with outlier channels."""

import json
import os

import pytest
import torch

from sw import cli
from tests.sw.cli_checks import error_message
from tests.sw.test_sw_cli import E, FAST, Q, assert_usage_error, run
from tests.sw.tiny_checkpoints import save, text_file

W4A4 = ["--w-width", "4", "--a-width", "4"]
FIRST = "model.decoder.layers.0.self_attn.k_proj"  # the embedded OPT's first layer, in model order


@pytest.fixture(scope="module")
def resq_factors(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "resq"
    rc = cli.main(["--method", "resq", *W4A4, "--out", str(out)], prog=Q)
    assert rc == 0
    return out


def test_quantize_writes_the_bases_and_the_assumptions(resq_factors, capsys):
    manifest = json.loads((resq_factors / "manifest.json").read_text())
    config = manifest["config"]
    assert (config["method"], config["high_width"], config["resq_rank"]) == ("resq", 8, "auto")
    assert manifest["datapath"] == {"resq-linear": True, "reason": None}
    assert manifest["calibration"]["sequences"] == 32
    layers = manifest["layers"]
    assert len(layers) == 24
    assert layers[FIRST]["rank"] == 16 and layers[FIRST]["resq"]["rotation"] == "pca"
    assert layers[FIRST]["resq"]["input_of"] == "model.decoder.layers.0.self_attn.q_proj"
    fc2 = layers["model.decoder.layers.0.fc2"]
    assert fc2["rank"] == 0 and fc2["resq"]["rotation"] == "hadamard"
    assert set(fc2["operands"]) == {"weight"} and fc2["operands"]["weight"]["shape"] == [128, 512]
    assert manifest["resq"]["weights"] == "round to nearest (no GPTQ)"
    assert manifest["resq"]["projection"]["paper"]["U_A"].startswith("residual-stream basis")


def test_eval_reads_the_factors_and_on_the_fly_gives_the_same_bits(resq_factors, capsys):
    rc, out, _ = run(capsys, E, ["--quantized", str(resq_factors), "--json", *FAST])
    assert rc == 0
    saved = json.loads(out.strip().splitlines()[-1])
    assert saved["method"] == "resq" and saved["emulated_layers"] == 24
    assert "(resq W4A4 high 8 rank auto block 16, fast; 24 layers emulated)" in out
    rc, out, _ = run(capsys, E, ["--method", "resq", *W4A4, "--json", *FAST])
    assert rc == 0
    assert json.loads(out.strip().splitlines()[-1])["perplexity"] == saved["perplexity"]


def test_bit_true_eval_runs_the_factors(resq_factors, capsys):
    rc, out, _ = run(capsys, E, ["--quantized", str(resq_factors), "--bit-true", "--json",
                                 "--max-windows", "2"])
    assert rc == 0
    bit = json.loads(out.strip().splitlines()[-1])
    rc, out, _ = run(capsys, E, ["--quantized", str(resq_factors), "--json", "--max-windows", "2"])
    fast = json.loads(out.strip().splitlines()[-1])
    assert bit["arithmetic"] == "bit-true" and abs(bit["perplexity"] - fast["perplexity"]) < 0.01


def test_a_rank_the_datapath_cannot_run_is_said_at_once(tmp_path, capsys):
    out = tmp_path / "r20"
    rc, _, err = run(capsys, Q, ["--method", "resq", "--resq-rank", "20", "--layers", r"layers\.0\.",
                                 "--calib-sequences", "4", "--out", str(out)])
    assert rc == 0
    reason = f"rank must be a multiple of block (16); got 20 (layer {FIRST})"
    assert [ln for ln in err.splitlines() if "datapath" in ln] == [
        f"{Q}: note: these factors cannot run on the resq-linear datapath: {reason}"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["datapath"] == {"resq-linear": False, "reason": reason}
    assert manifest["layers"]["model.decoder.layers.0.fc2"]["rank"] == 0


BAD = [
    (["--resq-rank", "0"], "resq-rank must be auto or an integer >= 1; got '0'"),
    (["--resq-rank", "128"], f"resq-rank must be in 1..127 for layer {FIRST} (d_in 128); got 128"),
    (["--resq-rank", "16", "--resq-down", "pca", "--layers", "fc2"],
     None),  # fine: fc2 (d_in 512) takes rank 16 with PCA
    (["--calib-sequences", "1", "--calib-length", "8"],
     "calibration set must give at least 16 tokens (the largest resq rank: its inputs must span "
     "the high-precision subspace); got 8 (1 sequences x 8)"),
    (["--resq-basis", "tied"], "resq-basis must be one of per-layer, shared; got 'tied'"),
    (["--resq-format", "int", "--block", "32"],
     "block must not be given with --resq-format int (MXINT options; the integer formats have "
     "none); got 32"),
    (["--rank", "8"], "rank must not be given with --method resq (it applies to lqer, l2qer only); got 8"),
]


@pytest.mark.parametrize("extra, message", [b for b in BAD if b[1] is not None])
def test_bad_resq_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, message):
    assert_usage_error(capsys, Q, ["--method", "resq", *extra, "--out", str(tmp_path / "o")], message,
                       folder=tmp_path)


def test_a_singular_calibration_set_stops_before_anything_is_written(tmp_path, capsys):
    """Enough tokens, but the same 8 positions of one repeated token, 4 times over: the layer
    inputs span at most 8 directions, fewer than r = 16. Found by the bases, after calibration
    (a status line may come first); the error is the last line, and nothing is written."""
    calib = tmp_path / "same.txt"
    calib.write_text("a" * 4000)
    out = tmp_path / "o"
    rc, _, err = run(capsys, Q, ["--method", "resq", "--calib", str(calib), "--calib-sequences", "4",
                                 "--calib-length", "8", "--out", str(out)])
    assert rc == 2
    message = error_message(err, Q)
    assert message.startswith(f"calibration inputs of layer {FIRST} must span at least 16 "
                              "directions (the high-precision rank); they span ")
    assert "(a singular calibration set)" in message and not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["same.txt"]


@pytest.mark.parametrize("argv, message", [
    (["--method", "lqer", "--high-width", "8"],
     "high-width must not be given with --method lqer (it applies to resq only); got 8"),
    (["--method", "resq", "--resq-format", "int", "--bit-true"],
     "resq-format must be mxint for --bit-true (the paper's integer formats are emulated in "
     "floating point only); got 'int'"),
    (["--method", "mxint", "--seed", "3"],
     "seed must not be given with --method mxint (it applies to lqer, l2qer, resq only); got 3"),
])
def test_bad_eval_options_are_named(capsys, argv, message):
    assert_usage_error(capsys, E, argv, message)


# ---------------------------------------------------------------- perplexity

def _ppl(capsys, argv) -> float:
    rc, out, err = run(capsys, E, [*argv, "--json"])
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])["perplexity"]


def test_resq_beats_plain_mxint_at_w4a4_on_the_embedded_model(capsys):
    fp = _ppl(capsys, [])
    mxint = _ppl(capsys, ["--method", "mxint", *W4A4])
    resq = _ppl(capsys, ["--method", "resq", *W4A4])
    assert fp <= resq <= mxint, (fp, resq, mxint)


def _tiny_llama(folder):
    """A random LLaMA-style model (hidden 128, 2 blocks) whose norm weights carry four outlier
    channels, as trained LLMs' do, saved as a checkpoint; and 3072 tokens sampled from it.

    On its own samples the float model is the best predictor in expectation (a quantized
    model's perplexity there is exp(H(p) + KL(p || q))), so the comparison does not depend on
    what a random model makes of real text."""
    import transformers as tf

    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    with torch.no_grad():
        channels = torch.tensor([3, 40, 77, 101])
        for block in model.model.layers:
            for norm in (block.input_layernorm, block.post_attention_layernorm):
                norm.weight[channels] = 40.0
        model.lm_head.weight *= 5  # a peaked next-token distribution
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(0, 4096, (24, 1), generator=gen)
        for _ in range(127):
            probs = torch.softmax(model(input_ids=ids).logits[:, -1].double(), dim=-1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=gen)], dim=1)
    return save(model, folder), ids.reshape(-1)


def test_resq_beats_plain_mxint_at_w4a4_on_a_tiny_llama(tmp_path, capsys):
    from sw.emulation import emulate_model, restore_model
    from sw.factor_files import load_factors
    from sw.models import load_model
    from sw.perplexity import perplexity

    path, ids = _tiny_llama(tmp_path / "llama")
    calib = text_file(tmp_path)
    model = load_model(path)
    fp = perplexity(model, ids, seq_len=128).perplexity
    results = {}
    for name, extra in (("mxint", ["--method", "mxint"]),
                        ("resq", ["--method", "resq", "--calib", calib, "--calib-sequences", "8"]),
                        ("shared", ["--method", "resq", "--calib", calib, "--calib-sequences", "8",
                                    "--resq-basis", "shared"])):
        out = tmp_path / name
        rc, _, err = run(capsys, Q, ["--model", path, *extra, *W4A4, "--out", str(out)])
        assert rc == 0, err
        factors, config, manifest = load_factors(out)
        if name == "shared":   # gate/up share one basis, q/k/v another; down_proj is Hadamard
            layers = manifest["layers"]
            assert layers["model.layers.0.mlp.up_proj"]["resq"]["basis"] == "model.layers.0.mlp.gate_proj"
            assert layers["model.layers.0.self_attn.v_proj"]["resq"]["basis"] == "model.layers.0.self_attn.q_proj"
            assert layers["model.layers.0.mlp.down_proj"]["resq"]["rotation"] == "hadamard"
        originals = emulate_model(model, factors, mode=config.method, a_width=4)
        results[name] = perplexity(model, ids, seq_len=128).perplexity
        restore_model(model, originals)
    mxint, resq, shared = results["mxint"], results["resq"], results["shared"]
    assert fp <= resq <= mxint and fp <= shared <= mxint, (fp, resq, shared, mxint)
    assert (resq - fp) < 0.5 * (mxint - fp), (fp, resq, mxint)
