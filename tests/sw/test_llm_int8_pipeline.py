"""LLM.int8() / W8A8 on whole models: options, stored weights, perplexity on tiny checkpoints."""

import json
import math

import numpy as np
import pytest
import torch

from sw import llm_int8 as L
from sw.factor_files import FactorsError
from sw.llm_int8_pipeline import Int8Options, emulate, evaluate, outlier_counts, quantize_layers
from sw.llm_int8_store import load_int8, save_int8
from sw.llm_int8_torch import LLMInt8Linear
from sw.models import load_model, quantizable_layers
from tests.sw.tiny_checkpoints import save, tiny

VOCAB = 4096


def saved(family, folder):
    return save(tiny(family), folder)


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="int4"), "method must be one of llm-int8, w8a8; got 'int4'"),
    (dict(threshold=0.0), "threshold must be a finite number > 0; got 0.0"),
    (dict(threshold=math.inf), "threshold must be a finite number > 0; got inf"),
    (dict(threshold=math.nan), "threshold must be a number >= 0 (inf: no outliers); got nan"),
    (dict(group=0), "group must be an integer >= 1 (tokens per detection group) or None; got 0"),
    (dict(outlier_weights="int4"), "outlier_weights must be one of int8, fp16; got 'int4'"),
    (dict(method="w8a8", threshold=3.0), "threshold, group and outlier_weights must be left at their "
                                         "defaults for method w8a8 (it has no outlier path)"),
])
def test_options_are_validated(kwargs, message):
    with pytest.raises(ValueError) as info:
        Int8Options(**kwargs)
    assert str(info.value) == message


def test_options_round_trip_json():
    for options in (Int8Options(), Int8Options(threshold=3.5, group=16, outlier_weights="fp16"),
                    Int8Options(method="w8a8")):
        data = json.loads(json.dumps(options.to_json()))
        assert Int8Options.from_json(data) == options
    assert Int8Options(method="w8a8").effective_threshold == math.inf
    with pytest.raises(ValueError, match="^llm-int8 options must be among group, method, outlier_weights, "
                                         "threshold; got 'rank'$"):
        Int8Options.from_json({"method": "w8a8", "rank": 3})


@pytest.mark.parametrize("outlier_weights", ["int8", "fp16"])
def test_stored_weights_round_trip_and_evaluate_the_same(tmp_path, outlier_weights):
    model = tiny("opt").eval()
    options = Int8Options(threshold=1.0, outlier_weights=outlier_weights)
    weights = quantize_layers(quantizable_layers(model), options)
    save_int8(str(tmp_path / "q"), weights, config=options.to_json(), source={"hash": "x"})
    loaded, config, manifest = load_int8(str(tmp_path / "q"))
    assert Int8Options.from_json(config) == options and manifest["source_model"] == {"hash": "x"}
    assert list(loaded) == list(weights)
    for name, (w, b) in weights.items():
        lw, lb = loaded[name]
        np.testing.assert_array_equal(lw.codes, w.codes)
        np.testing.assert_array_equal(lw.absmax, w.absmax)
        np.testing.assert_array_equal(lb, b)
        assert (lw.weight16 is None) == (outlier_weights == "int8")
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        originals = emulate(model, options)
        direct = model(input_ids=ids).logits
        from sw.emulation import restore_model
        restore_model(model, originals)
        emulate(model, options, weights=loaded)
        stored = model(input_ids=ids).logits
    assert torch.equal(direct, stored)


def test_a_corrupt_or_foreign_folder_is_refused(tmp_path):
    model = tiny("opt")
    weights = quantize_layers(quantizable_layers(model), Int8Options())
    out = tmp_path / "q"
    save_int8(str(out), weights, config=Int8Options().to_json(), source={})
    with open(out / "factors.safetensors", "r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x01")
    with pytest.raises(FactorsError, match="does not match its manifest"):
        load_int8(str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["config"]["method"] = "l2qer"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FactorsError, match="^quantized must hold llm-int8 or w8a8 weights; .* has method 'l2qer'$"):
        load_int8(str(out))
    with pytest.raises(FactorsError, match="^quantized must be a folder written by 'lqer-hw quantize'"):
        load_int8(str(tmp_path / "missing"))


@pytest.mark.parametrize("family", ["opt", "llama"])
def test_tiny_checkpoints_evaluate_with_w8a8_and_llm_int8(tmp_path, family):
    model = load_model(saved(family, tmp_path / family))
    ids = torch.randint(0, VOCAB, (6 * 32,), generator=torch.Generator().manual_seed(2))
    from sw.perplexity import perplexity

    fp = perplexity(model, ids, seq_len=32, batch_size=3).perplexity
    results = {}
    for options in (Int8Options(method="w8a8"), Int8Options(threshold=6.0), Int8Options(threshold=1.5)):
        result, counts = evaluate(model, ids, options, seq_len=32, batch_size=3)
        results[options.label()] = (result.perplexity, counts)
        assert not any(isinstance(m, LLMInt8Linear) for m in model.modules())  # restored
    w8a8, _ = results["w8a8"]
    high, high_counts = results["llm-int8 threshold 6 group batch"]
    low, low_counts = results["llm-int8 threshold 1.5 group batch"]
    # random LayerNorm outputs never reach 6: the same model as W8A8
    assert high_counts["mean_columns"] == 0 and high == w8a8
    assert low_counts["mean_columns"] > 0 and low_counts["layers_affected"] > 0
    for ppl in (w8a8, low):
        assert ppl == pytest.approx(fp, rel=2e-3)
    # bit-true gives the same perplexity to float rounding
    bit_true, _ = evaluate(model, ids, Int8Options(threshold=1.5), arithmetic="bit-true", seq_len=32,
                           batch_size=3)
    assert bit_true.perplexity == pytest.approx(low, rel=1e-6)


def test_outlier_counts_of_a_model():
    model = tiny("llama").eval()
    emulate(model, Int8Options(threshold=1.0, group=4), layer_pattern=r"layers\.0\.")
    with torch.no_grad():
        model(input_ids=torch.arange(8)[None])
    counts = outlier_counts(model)
    assert counts["layers"] == 7
    per_layer = counts["per_layer"]
    assert all(c["groups"] == 2 for c in per_layer.values())  # 8 tokens in groups of 4
    total = sum(c["outlier_columns"] for c in per_layer.values())
    assert counts["mean_columns"] == pytest.approx(total / 14)
    assert counts["max_columns"] == max(c["max_columns"] for c in per_layer.values())


def test_layers_of_another_model_are_refused():
    model = tiny("opt")
    with pytest.raises(ValueError, match="^quantized must hold layers of this model; it has no layer nope.fc$"):
        emulate(model, Int8Options(), weights={"nope.fc": (L.quantize_weight(np.ones((2, 2))), None)})
