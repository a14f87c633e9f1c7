"""Non-finite values are one line naming where they start (issue 10 item 2).

A NaN in one norm weight of a tiny LLaMA (all linear weights finite) used to reach the L2QER SVD
(a LinAlgError traceback); a NaN linear weight under a plain float eval printed "perplexity nan".
"""

import pytest

import torch
from torch import nn

from sw import cli
from sw.calibration import calibrate, calibration_batches
from sw.finite import FiniteProbe, NonFiniteError, describe_origin, first_nonfinite
from sw.models import load_model, quantizable_layers
from sw.perplexity import perplexity
from tests.sw.cli_checks import error_message
from tests.sw.tiny_checkpoints import VOCAB, edit_weights, save, text_file, tiny

NORM = "model.layers.1.post_attention_layernorm.weight"
LINEAR = "model.layers.0.mlp.down_proj.weight"


def _with_nan(tmp_path, key, index):
    path = save(tiny("llama"), tmp_path / key)

    def edit(tensors):
        tensors[key][index] = float("nan")
    edit_weights(path, edit)
    return path


def test_nan_norm_weight_stops_calibration_naming_layer_and_origin(tmp_path, capsys):
    path = _with_nan(tmp_path, NORM, 5)
    model = load_model(path)
    layers = quantizable_layers(model)
    batches = calibration_batches(torch.randint(0, VOCAB, (256,)), sequences=4, length=32, batch_size=2)
    message = ("calibration inputs must be finite; layer model.layers.1.mlp.gate_proj sees a non-finite "
               "value in batch 0, first output by model.layers.1.post_attention_layernorm (LlamaRMSNorm), "
               "whose weight holds nan at index (5,)")
    with pytest.raises(NonFiniteError) as info:
        calibrate(model, layers, batches)
    assert str(info.value) == message
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    out = tmp_path / "factors"
    data = text_file(tmp_path)
    capsys.readouterr()
    for argv, prog in ((["--model", path, "--method", "l2qer", "--rank", "8", "--calib", data,
                         "--calib-sequences", "4", "--calib-length", "32", "--out", str(out)],
                        "lqer-hw quantize"),
                       (["--model", path, "--method", "l2qer", "--rank", "8", "--calib", data,
                         "--calib-sequences", "4", "--calib-length", "32", "--data", data],
                        "lqer-hw eval")):
        assert cli.main(argv, prog=prog) == 2
        assert error_message(capsys.readouterr().err, prog) == message
    assert not out.exists()


def test_nan_linear_weight_stops_float_perplexity_naming_the_layer(tmp_path, capsys):
    path = _with_nan(tmp_path, LINEAR, (3, 7))
    model = load_model(path)
    ids = torch.randint(0, VOCAB, (192,))  # 6 windows of 32: 2 batches of 4
    message = ("model outputs must be finite; batch 0 of 2 gives non-finite values, first output by "
               "model.layers.0.mlp.down_proj (Linear), whose weight holds nan at index (3, 7)")
    with pytest.raises(NonFiniteError) as info:
        perplexity(model, ids, seq_len=32, batch_size=4)
    assert str(info.value) == message
    data = text_file(tmp_path)
    capsys.readouterr()
    assert cli.main(["--model", path, "--data", data, "--seq-len", "32", "--batch-size", "4",
                     "--max-windows", "8"], prog="lqer-hw eval") == 2
    captured = capsys.readouterr()
    assert error_message(captured.err, "lqer-hw eval") == message and "perplexity" not in captured.out


def test_probe_names_the_innermost_first_module_and_costs_nothing_when_finite():
    inner = nn.Linear(3, 3)
    with torch.no_grad():
        inner.weight.fill_(float("inf"))
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), inner), nn.Linear(3, 3))
    x = torch.ones(2, 3)
    name, module = first_nonfinite(model, lambda: model(x))
    assert (name, module) == ("1.1", inner)
    assert describe_origin((name, module)) == "1.1 (Linear), whose weight holds inf at index (0, 0)"
    assert describe_origin(None).startswith("no module output")
    fine = nn.Sequential(nn.Linear(3, 3))
    assert first_nonfinite(fine, lambda: fine(x)) is None
    with FiniteProbe(fine):
        pass
    assert not fine[0]._forward_hooks


def test_probe_reads_tuple_and_dict_outputs():
    class Pair(nn.Module):
        def forward(self, x):
            return {"a": (x, x / 0)}

    model = nn.Sequential(Pair())
    assert first_nonfinite(model[0], lambda: model[0](torch.zeros(2)))[1] is model[0]


@pytest.mark.parametrize("method", [[], ["--method", "mxint"], ["--method", "mxint", "--bit-true"]])
def test_nan_norm_weight_stops_every_eval_naming_the_norm(tmp_path, capsys, method):
    # fast emulation lets NaN through to the logits; the bit-true quantizer refuses it inside a
    # layer: both end in the same line
    path = _with_nan(tmp_path, NORM, 5)
    data = text_file(tmp_path)
    capsys.readouterr()
    assert cli.main(["--model", path, "--data", data, "--seq-len", "32", "--max-windows", "4", *method],
                    prog="lqer-hw eval") == 2
    assert error_message(capsys.readouterr().err, "lqer-hw eval") == (
        "model outputs must be finite; batch 0 of 1 gives non-finite values, first "
        "output by model.layers.1.post_attention_layernorm (LlamaRMSNorm), whose weight holds nan at "
        "index (5,)")
