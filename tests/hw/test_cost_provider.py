"""hw.cost.provider: the sweep's area provider ``hw.cost:area``: what it honours, the one-line
ValueError naming what it cannot, and a real area through the sweep's own interface (synth)."""

from __future__ import annotations

import json

import pytest

import hw.cost
from hw.cost import provider
from hw.cost.methods import CostConfig
from tests.hw.cost_cache import session_cache_root
from hw.cost.cli import COST_TARGETS

LQER = {"method": "lqer", "model": "default", "layers": None, "w_width": 4, "a_width": 8,
        "lowrank_width": 8, "rank": 32, "block": 16, "exponent_bits": 8, "flavour": "ocp",
        "rounding": "even", "blocking": "reduction", "guard_bits": None, "threshold": None,
        "high_width": 8, "resq_rank": "auto", "resq_format": "mxint", "seed": 0,
        "svd": "full", "data": "default", "arithmetic": "fast", "macs_per_cycle": 16}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LQER_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setattr(provider, "_MEMO", {})


def test_the_package_exports_the_provider_the_sweep_names():
    from sweep.area import resolve
    from sweep.spec import DEFAULT_AREA

    fn, name = resolve(DEFAULT_AREA, default=DEFAULT_AREA)
    assert fn is hw.cost.area is provider.area and name == "hw.cost:area"


def test_a_request_maps_the_eval_fields_onto_the_cost_config():
    req = provider.request({**LQER, "rank": 8, "block": 16, "a_width": 6, "lowrank_width": 6,
                            "w_width": 3, "macs_per_cycle": 32, "guard_bits": 4}, "lut6")
    assert req.method == "lqer" and req.model == "default" and req.rank_given == 8
    assert req.cfg == CostConfig(macs_per_cycle=32, block=16, rank=16, w_width=3, a_width=6,
                                 guard_bits=4)
    # the sweep's FP16 baseline: only the model, the layers and the throughput
    base = provider.request({"method": "fp", "model": "default", "layers": None,
                             "trust_remote_code": False, "macs_per_cycle": 16}, "xc7-nodsp")
    assert base.method == "fp16" and base.cfg == CostConfig()
    narrow = provider.request({"method": "fp16", "model": "default", "macs_per_cycle": 8}, "lut6")
    assert narrow.cfg == CostConfig(macs_per_cycle=8, block=8)   # no block: fits the throughput
    resq = provider.request({**LQER, "method": "resq", "resq_rank": 32}, "lut6")
    assert resq.cfg.resq_rank == 32 and resq.rank_given is None


def test_an_explicit_resq_rank_sizes_the_high_precision_path():
    from hw.cost.methods import Sizing
    cfg = provider.request({**LQER, "method": "resq", "resq_rank": 48}, "lut6").cfg
    assert Sizing(cfg, 128, 64).resq_rank == 48
    assert Sizing(CostConfig(), 128, 64).resq_rank == 16   # auto: d_in / 8


@pytest.mark.parametrize("change, message", [
    ({"method": "gptq"}, r"method must be one of fp16, w8a8, mxint, lqer, l2qer, llm-int8, "
                         r"llm-int4, resq; got 'gptq'"),
    ({"lowrank_width": 4}, r"lowrank_width must equal a_width \(8\): lqer-linear's one low-rank "
                           r"dot array takes x, then t; got 4"),
    ({"blocking": "paper"}, r"blocking must be 'reduction' \(A along d_in, B along the rank, "
                            r"the axes lqer-linear reduces\); got 'paper'"),
    ({"rounding": "away"}, r"rounding must be 'even' \(.*\); got 'away'"),
    ({"flavour": "lqer"}, r"flavour must be 'ocp' \(the datapath's quantizer\); got 'lqer'"),
    ({"macs_per_cycle": 24}, r"macs_per_cycle must be a multiple of block \(16\); got 24"),
    ({"macs_per_cycle": 0}, r"macs_per_cycle must be an integer >= 1; got 0"),
    ({"block": 12}, r"block must be a power of two in 1\.\.256; got 12"),
    ({"w_width": 1}, r"w_width must be an integer in 2\.\.16; got 1"),
    ({"guard_bits": "8"}, r"guard_bits must be an integer in 0\.\.64; got '8'"),
    ({"layers": "("}, r"layers must be a valid regular expression; got '\(' .*"),
    ({"method": "resq", "high_width": 6}, r"high_width must be 8 \(the cost model's int8 and "
                                          r"high-precision paths\); got 6"),
    ({"method": "resq", "resq_rank": 20}, r"resq_rank must be 'auto' or a multiple of block "
                                          r"\(16\); got 20"),
    ({"method": "resq", "resq_format": "int"}, r"resq_format must be 'mxint' \(the datapath's "
                                               r"number format\); got 'int'"),
    ({"method": "llm-int8", "threshold": 4.0}, r"threshold must be 6\.0 without outliers or "
                                               r"outlier_columns .*; got 4\.0"),
    ({"method": "llm-int8", "outliers": "p.json", "outlier_columns": 3},
     r"outliers must not be given with outlier_columns; got both"),
    ({"method": "llm-int8", "outlier_group": 64}, r"outlier_group must be none \(a whole batch, "
                                                  r"as the built-in counts\) without outliers or "
                                                  r"outlier_columns; got 64"),
    ({"method": "llm-int8", "outlier_weights": "fp16"},
     r"outlier_weights must be 'int8' \(the outlier path dequantizes the gathered int8 "
     r"weights\); got 'fp16'"),
    ({"method": "llm-int8", "outlier_sizing": "p90"},
     r"outlier_sizing must be one of mean, p50, p99, max; got 'p90'"),
])
def test_what_cannot_be_honoured_is_a_one_line_value_error_naming_it(change, message):
    with pytest.raises(ValueError) as info:
        hw.cost.area({**LQER, **change}, "lut6")
    text = str(info.value)
    assert "\n" not in text
    assert __import__("re").fullmatch(message, text), text


@pytest.mark.parametrize("config, target, message", [
    (LQER, "xc9", rf"target must be one of {', '.join(COST_TARGETS)}; got 'xc9'"),
    ({**LQER, "rank": 256}, "lut6", r"rank must be at most min\(d_in, d_out\) of every layer "
                                    r"\(128 at model\.decoder\.layers\.0\.self_attn\.q_proj\); "
                                    r"got 256"),
    ({**LQER, "rank": 130}, "lut6", r"rank must be at most .*; got 130 \(costed as 144\)"),
    ({**LQER, "layers": "no_such_layer"}, "lut6",
     r"layers must match at least one linear layer of the model; got 'no_such_layer'"),
    ({**LQER, "model": "/no/such/folder"}, "lut6", r"model must be .*; got '/no/such/folder'"),
    ({**LQER, "method": "llm-int8", "model": "opt-1.3b"}, "lut6",
     r"outlier_columns \(or outliers, a profile\) must be given for llm-int8 on model "
     r"'opt-1.3b'; got neither"),
    ({**LQER, "method": "llm-int8", "outlier_columns": 129}, "lut6",
     r"outlier_columns must be at most d_in of every layer \(128 at .*\); got 129"),
])
def test_model_dependent_refusals_come_before_any_synthesis(config, target, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        hw.cost.area(config, target)
    assert not (tmp_path / "user-cache").exists()


def test_llm_int8_on_the_embedded_model_takes_its_measured_profile(monkeypatch):
    seen = {}

    def fake_cost(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt   # stop before any synthesis

    import hw.cost.cli
    monkeypatch.setattr(hw.cost.cli, "cost", fake_cost)
    with pytest.raises(KeyboardInterrupt):
        hw.cost.area({"method": "llm-int8", "model": "default", "threshold": 6.0,
                      "outlier_weights": "int8", "macs_per_cycle": 16}, "lut6")
    profile = seen["profile"]
    assert profile.threshold == 6.0 and "default_profile.json" in profile.source
    assert set(profile.layers) == {layer.name for layer in seen["shapes"].layers}
    data = json.loads(provider.DEFAULT_PROFILE.read_text())
    assert data["model"] == "default" and data["threshold"] == 6.0 and data["group"] is None
    name, counts = next(iter(data["layers"].items()))
    assert profile.of(name).p99 == counts["outlier_columns_per_group"]["p99"]
    with pytest.raises(KeyboardInterrupt):   # an explicit count wins over the profile
        hw.cost.area({"method": "llm-int8", "model": "default", "outlier_columns": 3}, "lut6")
    assert seen["profile"].of(name).p99 == 3


def test_a_layers_pattern_narrows_the_costed_layers(monkeypatch):
    seen = {}

    def fake_cost(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt   # stop before any synthesis

    import hw.cost.cli
    monkeypatch.setattr(hw.cost.cli, "cost", fake_cost)
    with pytest.raises(KeyboardInterrupt):
        hw.cost.area({**LQER, "layers": r"\.fc[12]$"}, "lut6")
    assert [layer.kind for layer in seen["shapes"].layers] == ["fc1", "fc2"] * 4
    assert seen["methods"] == ["lqer"] and seen["targets"] == ["lut6"]


@pytest.mark.synth
def test_the_sweep_gets_real_areas_relative_to_fp16(tmp_path_factory, monkeypatch):
    """Through sweep.area.area_of, as a sweep point does, with the smallest parts (block 4;
    the session cache tests/hw/test_cost_cli.py fills for the same model, methods and
    target); the result equals that of ``lqer-hw cost`` for the same configuration."""
    from sweep.area import area_of

    cache = session_cache_root(tmp_path_factory)   # the smallest parts (block 4), shared
    monkeypatch.setenv("LQER_CACHE_DIR", str(cache.parent))  # default_cache_root("synth")
    config = {**LQER, "method": "mxint", "block": 4, "macs_per_cycle": None}
    got = area_of(hw.cost.area, config, {"macs_per_cycle": 4}, ["lut6"])["lut6"]
    # the glue on top of the synthesised parts may round to 0 LUTs on lut6 (test_cost_cli)
    assert got["unit"] == "LUT" and got["area"] == got["luts"] >= got["synthesised_luts"] > 0
    assert 0 < got["fp16"] and got["relative"] == got["area"] / got["fp16"] < 1
    assert got["layers_costed"] == 24 and got["cycles_per_token"] >= got["steps_per_token"]
    json.dumps(got)   # a result row is JSON
    from hw.cost import cli
    out = tmp_path_factory.mktemp("cost-provider") / "cli"
    assert cli.main(["--model", "default", "--methods", "mxint", "--block", "4",
                     "--macs-per-cycle", "4", "-t", "lut6", "--cache", str(cache),
                     "-o", str(out)]) == 0
    total = json.loads((out / "cost.json").read_text())["model_totals"][0]
    assert total["luts"] == got["area"] and total["cycles_per_token"] == got["cycles_per_token"]
    provider._MEMO.clear()
    again = hw.cost.area({**config, "macs_per_cycle": 4}, "lut6")   # recomposed from the cache
    assert again["area"] == got["area"]
