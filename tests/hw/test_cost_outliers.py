"""hw.cost.outliers: reading `lqer-hw profile` JSON for a model, explicit counts, errors."""

from __future__ import annotations

import json

import pytest

from hw.cost.outliers import fixed_columns, read_profile
from hw.cost.shapes import read_model


def _profile(model, **overrides) -> dict:
    """A profile of ``model`` in the sw.outliers layout (extra keys as the profiler writes)."""
    layers = {}
    for k, layer in enumerate(model.layers):
        layers[layer.name] = {"d_in": layer.d_in, "tokens": 100, "groups": 4,
                              "outlier_columns_per_group": {"mean": k / 2, "p50": k // 2,
                                                            "p99": k, "max": k + 1},
                              "histogram": [[0, 4]], "columns": []}
    return {"format": "lqer-hw-outliers", "version": 1, "threshold": 4.0, "group": None,
            "model": "default", "summary": {}, "layers": layers, **overrides}


def _write(tmp_path, data):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_profile_of_the_model_gives_each_layer_its_counts(tmp_path):
    model = read_model("default")
    profile = read_profile(_write(tmp_path, _profile(model)), model)
    counts = profile.of(model.layers[3].name)
    assert (counts.mean, counts.p50, counts.p99, counts.max) == (1.5, 1, 3, 4)
    assert counts.at("p99") == 3 and profile.threshold == 4.0


def test_fixed_columns_apply_to_every_layer_and_cannot_exceed_d_in():
    model = read_model("default")
    profile = fixed_columns(7, model)
    assert {c.max for c in profile.layers.values()} == {7} and "--outlier-columns 7" in profile.source
    with pytest.raises(ValueError, match=r"^outlier-columns must be at most d_in of every layer "
                       r"\(128 at model\.decoder\.layers\.0\.self_attn\.q_proj\); got 129$"):
        fixed_columns(129, model)


def test_a_profile_of_another_model_is_refused(tmp_path):
    model = read_model("default")
    other = read_model("opt-1.3b")
    with pytest.raises(ValueError, match=r"^outliers must be a profile of the model default \(the "
                       r"same linear layers\); got .*, which has model\.decoder\.layers\.4\."):
        read_profile(_write(tmp_path, _profile(other)), model)
    data = _profile(model)
    data["layers"][model.layers[0].name]["d_in"] = 64
    with pytest.raises(ValueError, match=r"where model\.decoder\.layers\.0\.self_attn\.q_proj has "
                       r"d_in 64, not 128$"):
        read_profile(_write(tmp_path, data), model)
    data = _profile(model)
    del data["layers"][model.layers[5].name]
    with pytest.raises(ValueError, match=r"which missing model\.decoder\.layers\.0\.fc2$"):
        read_profile(_write(tmp_path, data), model)


@pytest.mark.parametrize("change, message", [
    ({"format": "lqer-hw-cost"}, r"^outliers must be a profile of format 'lqer-hw-outliers' "
                                 r"\(lqer-hw profile\); got 'lqer-hw-cost' in "),
    ({"version": 2}, r"^outliers must be a profile of version 1; got 2 in "),
    ({"layers": {}}, r"^outliers must list the profiled layers; got none in "),
])
def test_files_that_are_not_profiles_are_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        read_profile(_write(tmp_path, _profile(read_model("default"), **change)), read_model("default"))


def test_bad_counts_and_unreadable_files(tmp_path):
    model = read_model("default")
    data = _profile(model)
    data["layers"][model.layers[2].name]["outlier_columns_per_group"]["p99"] = -1
    with pytest.raises(ValueError, match=r"^outliers must give outlier_columns_per_group\.p99 >= 0 "
                       r"for every layer; got -1 for model\.decoder\.layers\.0\.self_attn\.v_proj"):
        read_profile(_write(tmp_path, data), model)
    with pytest.raises(ValueError, match=r"^outliers must name a readable profile JSON; got "):
        read_profile(str(tmp_path / "missing.json"), model)
    (tmp_path / "text.json").write_text("hello")
    with pytest.raises(ValueError, match=r"which is not JSON$"):
        read_profile(str(tmp_path / "text.json"), model)
