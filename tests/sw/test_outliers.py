"""Outlier profiler: counts against the reference's detection, statistics, report, Markdown."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from sw import llm_int8 as L
from sw.outliers import OutlierProfiler, nearest_rank, profile_model, summary_markdown


class Two(nn.Module):
    """Two linears reading the same input, one more after them (like q/k and out_proj)."""

    def __init__(self, d=12):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 5)

    def forward(self, x):
        return self.c(self.a(x) + self.b(x))


def _planted(tokens, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d, generator=g)
    x[:, 3] *= 10
    x[5 % tokens, 7] = -6.0
    return x


def _reference_counts(x, threshold, group):
    q = L.quantize_rows(L.to_binary16(x.numpy()), threshold=threshold, group=group)
    return q.outlier_columns


@pytest.mark.parametrize("group", [None, 1, 4, 7])
def test_counts_are_the_references_outlier_columns(group):
    model = Two()
    xs = [_planted(20, 12, seed=s) for s in range(3)]
    with OutlierProfiler({"a": model.a, "c": model.c}, threshold=6.0, group=group) as prof:
        for x in xs:
            model(x)
    report = prof.report()
    cols = np.concatenate([_reference_counts(x, 6.0, group) for x in xs])  # (groups, d_in)
    r = report["layers"]["a"]
    assert r["groups"] == cols.shape[0] and r["tokens"] == 60
    per_group = cols.sum(1)
    assert r["histogram"] == [[int(v), int((per_group == v).sum())] for v in np.unique(per_group)]
    assert r["outlier_columns_per_group"]["max"] == per_group.max()
    assert r["outlier_columns_per_group"]["mean"] == pytest.approx(per_group.mean())
    assert r["groups_affected"] == pytest.approx((per_group > 0).mean())
    x_all = torch.cat(xs).half().float().abs()
    assert r["tokens_affected"] == pytest.approx(float((x_all >= 6).any(1).float().mean()))
    assert r["outlier_entries"] == int((x_all >= 6).sum())
    assert r["columns"][0]["column"] == 3 and r["columns"][0]["groups"] == pytest.approx(cols[:, 3].mean())
    assert r["columns"][0]["tokens"] == pytest.approx(float((x_all[:, 3] >= 6).float().mean()))
    assert r["max_abs"] == pytest.approx(float(x_all.max()))


def test_hooks_are_removed_after_the_profile():
    model = Two()
    with OutlierProfiler({"a": model.a}) as prof:
        model(_planted(8, 12))
    model(_planted(8, 12))
    assert prof.report()["layers"]["a"]["tokens"] == 8
    assert not model.a._forward_pre_hooks


def test_summary_and_systematic_features():
    model = Two()
    with OutlierProfiler({"a": model.a, "b": model.b, "c": model.c}, threshold=6.0, group=1) as prof:
        model(_planted(50, 12))
    report = prof.report()
    s = report["summary"]
    assert s["layers"] == 3
    affected = [n for n, r in report["layers"].items() if r["groups_affected"] > 0]
    assert set(affected) >= {"a", "b"}
    assert s["layers_affected"] == pytest.approx(len(affected) / 3)
    feature = next(f for f in s["features"] if f["d_in"] == 12 and f["column"] == 3)
    shares = [c["tokens"] for r in report["layers"].values() for c in r["columns"] if c["column"] == 3]
    assert len(shares) >= 2
    assert feature["layers"] == pytest.approx(len(shares) / 3)
    assert feature["tokens"] == pytest.approx(sum(shares) / len(shares))
    assert feature["layers"] >= 0.25 and feature["tokens"] >= 0.06 and feature["systematic"]
    assert s["features"][0] == feature  # the most recurrent first
    json.dumps(report)  # JSON-ready


def test_layers_with_no_outliers():
    model = Two()
    with OutlierProfiler({"a": model.a}, threshold=1e4) as prof:
        model(_planted(8, 12))
    r = prof.report()
    a = r["layers"]["a"]
    assert a["outlier_columns_per_group"] == {"mean": 0.0, "p50": 0, "p99": 0, "max": 0}
    assert a["columns"] == [] and a["histogram"] == [[0, 1]] and a["groups_affected"] == 0
    assert r["summary"]["layers_affected"] == 0 and r["summary"]["features"] == []


def test_non_finite_input_names_the_layer():
    model = Two()
    x = _planted(4, 12)
    x[2, 1] = math.inf
    with OutlierProfiler({"a": model.a}) as prof, pytest.raises(
            ValueError, match=r"^activations of layer a must be finite in binary16 .*got inf at token 2, feature 1$"):
        model(x)
    assert prof.tallies["a"].tokens == 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(threshold=0.0), "threshold must be a finite number > 0; got 0.0"),
    (dict(threshold=math.inf), "threshold must be a finite number > 0; got inf"),
    (dict(threshold=-1), "threshold must be a number >= 0 (inf: no outliers); got -1"),
    (dict(group=0), "group must be an integer >= 1 (tokens per detection group) or None; got 0"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError) as info:
        OutlierProfiler({"a": nn.Linear(2, 2)}, **kwargs)
    assert str(info.value) == message


def test_no_layers():
    with pytest.raises(ValueError, match="^layers must name at least one linear layer; got none$"):
        OutlierProfiler({})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=60), st.sampled_from([0.01, 0.25, 0.5, 0.99, 1.0]))
def test_nearest_rank_matches_the_sorted_definition(values, q):
    histogram = np.bincount(values, minlength=21)
    ordered = sorted(values)
    assert nearest_rank(histogram, q) == ordered[max(1, math.ceil(q * len(values))) - 1]


def _tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    return OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, ffn_dim=32,
                                    num_attention_heads=2, max_position_embeddings=32,
                                    word_embed_proj_dim=16)).eval()


def test_profile_model_runs_windows_and_reports():
    from sw.models import quantizable_layers

    model = _tiny_opt()
    ids = torch.randint(0, 64, (100,), generator=torch.Generator().manual_seed(0))
    layers = quantizable_layers(model)
    report = profile_model(model, ids, layers, threshold=0.5, seq_len=16, batch_size=4, group=8)
    assert report["tokens"] == 100 and report["windows"] == 7 and report["seq_len"] == 16
    assert set(report["layers"]) == set(layers)
    fc1 = report["layers"]["model.decoder.layers.0.fc1"]
    # 6 windows of 16 in batches of 4 (64 + 32 tokens) and a tail of 4: groups of 8 tokens
    assert fc1["tokens"] == 100 and fc1["groups"] == 8 + 4 + 1
    assert report["summary"]["layers_affected"] > 0
    text = summary_markdown(report)
    assert text.startswith("Outliers |x| >= 0.5, detection group 8 tokens, 100 tokens.")
    assert "| model.decoder.layers.0.fc1 | 16 |" in text
    assert "Layers affected:" in text
    limited = profile_model(model, ids, layers, threshold=0.5, seq_len=16, max_windows=2)
    assert limited["tokens"] == 32 and limited["layers"]["model.decoder.layers.0.fc1"]["groups"] == 1
    with pytest.raises(ValueError, match="^data must give at least 2 tokens for a profile; got 1$"):
        profile_model(model, ids[:1], layers, seq_len=16)
