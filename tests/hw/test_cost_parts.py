"""hw.cost.parts: where each part's figures come from, the builders match the parts
inside lqer-linear, and (marked ``synth``) measuring through the cache and its index."""

from __future__ import annotations

import pytest

from hw.cost import parts as parts_mod
from hw.cost.parts import (ESTIMATED, SYNTHESISED, Part, PartIndex, fp_latency, measure,
                           resolve)
from hw.synth.cache import ResultCache
from hw.synth.targets import get_target
from hw.designs import inspect
from hw.unused import inspected


def test_resolution_order_builders_registry_proxies():
    q = resolve(Part.of("quantizer", block=4, in_width=12, lsb_width=6, width=4,
                        exponent_bits=4, stages=1, backpressure=0))
    assert q.source == SYNTHESISED and "hw.quantizer.Quantizer" in q.basis
    assert inspected(q.build()).lsb_width == 6
    plain = resolve(Part.of("dot-array", lanes=1, block=2, a_width=4, w_width=3,
                            exponent_bits=4, stages=1))
    assert plain.source == SYNTHESISED and plain.basis == "design dot-array"
    free = resolve(Part.of("dot-array", lanes=1, block=2, a_width=4, w_width=3,
                           exponent_bits=4, stages=1, backpressure=0))
    assert "no back-pressure" in free.basis
    assert resolve(Part.of("fp16-mul")).basis == "design fp16-mul"
    assert resolve(Part.of("int-dot-array", lanes=1, block=2, a_width=4, w_width=4,
                           stages=1)).source == SYNTHESISED
    p = resolve(Part.of("int-accumulator", lanes=1, in_width=11, acc_width=32))
    assert p.source == ESTIMATED and "not a verified design" in p.basis
    assert "no back-pressure" in resolve(Part.of("fp32-add", backpressure=0)).basis
    assert resolve(Part.of("llm-int8-compaction", lanes=4, outputs=1, chunks=4)).basis == \
        "design llm-int8-compaction"
    with pytest.raises(ValueError, match=r"^part must be a registered design, a builder or a "
                       r"proxy; got 'fp8-mul'$"):
        resolve(Part.of("fp8-mul"))


def test_builders_make_the_parts_lqer_linear_is_made_of():
    """The RTL of each part the cost model lists equals the submodule lqer-linear builds."""
    from hw.cost.methods import METHODS, CostConfig, Sizing
    from hw.designs import emit, inspect
    from hw.lqer_linear import LQERLinear
    s = Sizing(CostConfig(rank=16), 64, 32)
    design = inspect("lqer-linear", **s.lqer_design(16))
    uses = {u.role: u.part(s) for u in METHODS["lqer"].uses}
    inside = {"main dot array": design._main_dots, "main accumulator": design._main_acc,
              "low-rank dot array": design._lr_dots, "low-rank accumulator": design._lr_acc,
              "requantizer (t, u)": design._quant}
    assert isinstance(design, LQERLinear)
    for role, component in inside.items():
        built = resolve(uses[role]).build()
        assert emit(built, fmt="rtlil", name="t") == emit(component, fmt="rtlil", name="t"), role


@pytest.mark.parametrize("method, shape", [("mxint", (16, 8, 0)), ("lqer", (16, 8, 4)),
                                           ("resq", (16, 8, 4)), ("lqer", (32, 16, 8))])
def test_the_merged_output_parts_are_those_the_merged_design_builds(method, shape):
    """merged=1: the merge, the output requantizer (and ResQ's high requantizer) and the
    main accumulator sized for two more partials have the RTL of the design's own."""
    from hw.cost import model
    from hw.cost.methods import CostConfig
    m, s, whole = model.design_point(method, CostConfig(block=4, macs_per_cycle=4), shape)
    assert whole.kwargs["merged"] == 1
    design = inspect(whole.name, **whole.kwargs)
    uses = {u.role: u.part(s) for u in m.uses if u.count(s)}
    inside = {"output requantizer (merged output)": design._out_quant,
              "low-precision accumulator" if method == "resq" else "main accumulator":
              design._main_acc}
    if method != "mxint":
        inside["merge (main + term, merged output)"] = design._merge
    if method == "resq":
        inside["requantizer (high, merged output)"] = design._quant
    for role, component in inside.items():
        assert component is not None and _same_rtl(uses[role], component), role


def _same_rtl(part, component) -> bool:
    from hw.designs import emit
    return emit(resolve(part).build(), fmt="rtlil", name="t") == \
        emit(component, fmt="rtlil", name="t")


def test_the_parts_of_the_baselines_and_resq_are_those_their_designs_build():
    """Each part the fp16, llm-int8, w8a8 and resq engines list (but the gathered weights'
    dequantization, outside llm-int8-linear) has the RTL of the submodule its design builds."""
    from hw.cost import model
    from hw.cost.methods import CostConfig
    cfg = CostConfig(block=4, macs_per_cycle=4)
    method, s, whole = model.design_point("fp16", cfg, (16, 8, 0))
    fp16 = inspect(whole.name, **whole.kwargs)
    parts = {u.role: u.part(s) for u in method.uses}
    assert _same_rtl(parts["fp16 products"], fp16._acc._muls[0])
    assert _same_rtl(parts["fp32 accumulating adders"], fp16._acc._adds[0])
    method, s, whole = model.design_point("llm-int8", cfg, (16, 8, 8))
    llm = inspect(whole.name, **whole.kwargs)
    assert llm.fp_lanes == 2
    uses = {u.role: u for u in method.uses}
    inside = {"outlier detector and absmax (llm-int8-detector)": llm.parts["detector"],
              "compaction network (llm-int8-compaction)": llm.parts["compaction"],
              "activation quantizer (reciprocal table, x * r, round)": llm.parts["quantizer"],
              "int path: M int8 lanes, dequantization (llm-int8-int-path)": llm.parts["int_path"],
              "outlier fp16 products": llm.parts["fp_path"]._muls[0],
              "outlier fp32 accumulating adders": llm.parts["fp_path"]._adds[0],
              "merge (int + outlier, llm-int8-merge)": llm.parts["merge"]}
    for role, component in inside.items():
        assert _same_rtl(uses[role].part(s), component), role
    assert uses["outlier fp16 products"].count(s) == len(llm.parts["fp_path"]._muls)
    assert {r for r, u in uses.items() if u.outside} == set(uses) - set(inside)
    method, s, whole = model.design_point("w8a8", cfg, (16, 8, 0))
    w8a8 = inspect(whole.name, **whole.kwargs)
    uses = {u.role: u.part(s) for u in method.uses}
    inside = {"outlier detector and absmax (llm-int8-detector)": w8a8.parts["detector"],
              "activation quantizer (reciprocal table, x * r, round)": w8a8.parts["quantizer"],
              "int path: M int8 lanes, dequantization (llm-int8-int-path)":
                  w8a8.parts["int_path"]}
    assert set(uses) == set(inside) and set(w8a8.parts) == {"detector", "quantizer", "int_path"}
    for role, component in inside.items():
        assert _same_rtl(uses[role], component), role
    method, s, whole = model.design_point("resq", cfg, (16, 8, 4))
    resq = inspect(whole.name, **whole.kwargs)
    uses = {u.role: u.part(s) for u in method.uses}
    inside = {"low-precision dot array": resq._main_dots,
              "low-precision accumulator": resq._main_acc,
              "high-precision dot array": resq._lr_dots,
              "high-precision accumulator": resq._lr_acc}
    for role, component in inside.items():
        assert _same_rtl(uses[role], component), role


def test_registered_units_publish_their_latency():
    for name in ("fp16-mul", "fp32-add", "fp32-mul", "int32-to-fp32", "fp32-to-fp16"):
        assert fp_latency(name) >= 1


@pytest.mark.synth
def test_a_rerun_finds_parts_through_the_index_without_elaborating(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path / "cache")
    part = Part.of("int-accumulator", lanes=1, in_width=4, acc_width=6)
    target = get_target("lut6")
    first = measure([part], [target], tmp_path / "a", cache=cache)
    assert first[(part, "lut6")]["cached"] is False and first[(part, "lut6")]["figures"]["ffs"] >= 6
    assert PartIndex(cache).get(part, target) is not None

    def no_elaboration(*args, **kwargs):
        raise AssertionError("elaborated a part the index knows")

    monkeypatch.setattr("hw.synth.flow.jobs_for_component", no_elaboration)
    second = measure([part], [target], tmp_path / "b", cache=cache)
    assert second[(part, "lut6")]["cached"] is True
    assert second[(part, "lut6")]["figures"] == first[(part, "lut6")]["figures"]
    monkeypatch.undo()
    # changed sources: the index misses, the netlist is elaborated and found by its own key
    monkeypatch.setattr(parts_mod, "source_fingerprint", lambda: "changed")
    third = measure([part], [target], tmp_path / "c", cache=cache)
    assert third[(part, "lut6")]["cached"] is True
