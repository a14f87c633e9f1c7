"""sweep.area: provider resolution, the placeholder, what a provider is given and must return."""

import pytest

from sweep.area import (PLACEHOLDER, area_of, baseline_config, method_config, resolve,
                        unavailable)


def test_missing_default_provider_is_the_placeholder():
    fn, name = resolve("no_cost_model_here:area", default="no_cost_model_here:area")
    assert fn is unavailable and name == PLACEHOLDER
    assert unavailable({"method": "lqer"}, "lut6")["area"] is None


def test_a_named_provider_must_exist():
    with pytest.raises(ValueError, match=r"^area must name an importable provider"):
        resolve("no_cost_model_here:area", default="hw.cost:area")
    fn, name = resolve("tests.sweep.providers:area", default="hw.cost:area")
    assert name == "tests.sweep.providers:area" and fn.__name__ == "area"


def test_what_a_provider_is_given():
    config = {"method": "fp", "model": "default", "layers": None, "trust_remote_code": False}
    assert method_config(config, {"macs_per_cycle": 16})["method"] == "fp16"
    lqer = {**config, "method": "lqer", "rank": 32, "w_width": 4}
    got = method_config(lqer, {"macs_per_cycle": 16})
    assert got["method"] == "lqer" and got["rank"] == 32 and got["macs_per_cycle"] == 16
    assert baseline_config(lqer, {"macs_per_cycle": 8}) == {
        "method": "fp16", "model": "default", "layers": None, "trust_remote_code": False,
        "macs_per_cycle": 8}


def test_relative_area_against_the_fp16_datapath():
    def provider(cfg, target):
        return {"area": {"fp16": 400.0, "lqer": 100.0}[cfg["method"]], "unit": "LUT", "extra": 1}

    got = area_of(provider, {"method": "lqer", "model": "default"}, {"macs_per_cycle": 16},
                  ["lut6"])
    assert got == {"lut6": {"area": 100.0, "unit": "LUT", "extra": 1, "fp16": 400.0,
                            "relative": 0.25}}


@pytest.mark.parametrize("result,message", [
    ({"unit": "LUT"}, "area provider must return a dict with 'area' for target lut6; got "),
    ({"area": -1}, "area must be a number >= 0 or None for target lut6; got -1"),
    ({"area": float("nan")}, "area must be a number >= 0 or None for target lut6; got nan"),
    ({"area": "12"}, "area must be a number >= 0 or None for target lut6; got '12'"),
])
def test_bad_provider_results_are_named(result, message):
    with pytest.raises(ValueError) as info:
        area_of(lambda cfg, t: result, {"method": "mxint"}, {}, ["lut6"])
    assert str(info.value).startswith(message)
