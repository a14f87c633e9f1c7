"""Area per target: the interface to the cost model, and the placeholder used until it lands.

A provider is a function named ``"module:function"`` (the spec's ``area``,
default :data:`sweep.spec.DEFAULT_AREA`, ``hw.cost:area``)::

    area(method_config: dict, target: str) -> dict

``method_config`` is the point's canonical configuration (the ``lqer-hw
eval`` fields: ``method``, ``w_width``, ``a_width``, ``lowrank_width``,
``rank``, ``block``, ``exponent_bits``, ..., ``model``, ``layers``) plus its
hardware fields (``macs_per_cycle``), with ``method`` in the cost model's
names (:data:`COST_METHODS`: the float model ``fp`` is the ``fp16``
datapath). ``target`` is a synthesis target name (``hw.synth.targets``). The
result must hold ``"area"``: a number (LUTs on an FPGA target, transistors
on ``cmos``; ``"unit"`` says which) or None; every other key is kept in the
result row. It raises ``ValueError`` (one line) for a configuration it cannot
cost; the point is then recorded as failed.

The sweep also asks, per target, for the area of the FP16 datapath of the
same model and throughput (``method: "fp16"``), which every area is
relative to (as in the LQER paper).

Until the cost model exists, :func:`unavailable` stands in: it gives
``area: None`` with a note, never a number.
"""

from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["COST_METHODS", "PLACEHOLDER", "resolve", "unavailable", "method_config",
           "baseline_config", "area_of"]

COST_METHODS = {"fp": "fp16"}   # sweep (eval) method name -> cost-model name, where they differ
PLACEHOLDER = "sweep.area:unavailable"
_BASELINE_FIELDS = ("model", "layers", "trust_remote_code")  # what the FP16 engine's shapes depend on


def unavailable(method_config: dict, target: str) -> dict:
    """The placeholder provider: no area (None) and why."""
    return {"area": None, "unit": None,
            "note": "the cost model (hw.cost) is not in this build; area unavailable"}


def resolve(name: str, *, default: str) -> tuple[Callable[[dict, str], dict], str]:
    """``(function, name used)`` for provider ``name``.

    The default provider's module missing from this build gives the
    placeholder (``name used`` is :data:`PLACEHOLDER`); any other provider
    that cannot be imported is a ``ValueError``.
    """
    module_name, _, function = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if name == default and exc.name and module_name.startswith(exc.name):
            return unavailable, PLACEHOLDER
        raise ValueError(f"area must name an importable provider 'module:function'; got {name!r} "
                         f"({exc})") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"area must name a function 'module:function'; got {name!r} "
                         f"({module_name} has no function {function!r})")
    return fn, name


def method_config(config: dict, hardware: dict) -> dict:
    """What a provider is given for a point: its configuration, hardware fields, cost-model method."""
    out = {**config, **hardware}
    out["method"] = COST_METHODS.get(config["method"], config["method"])
    return out


def baseline_config(config: dict, hardware: dict) -> dict:
    """The FP16 datapath of the same model, layers and throughput."""
    return {"method": "fp16", **{k: config.get(k) for k in _BASELINE_FIELDS}, **hardware}


def area_of(provider: Callable[[dict, str], dict], config: dict, hardware: dict,
            targets) -> dict[str, dict]:
    """``{target: {"area", "unit", "fp16", "relative", ...}}`` of one point."""
    out = {}
    for target in targets:
        got = _checked(provider(method_config(config, hardware), target), target)
        base = _checked(provider(baseline_config(config, hardware), target), target)
        value, ref = got.get("area"), base.get("area")
        relative = value / ref if value is not None and ref else None
        out[target] = {**got, "fp16": ref, "relative": relative}
    return out


def _checked(result, target: str) -> dict:
    if not isinstance(result, dict) or "area" not in result:
        raise ValueError(f"area provider must return a dict with 'area' for target {target}; "
                         f"got {result!r}")
    value = result["area"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or value != value or value < 0):
        raise ValueError(f"area must be a number >= 0 or None for target {target}; got {value!r}")
    return dict(result)
