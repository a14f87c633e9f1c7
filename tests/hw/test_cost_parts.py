"""hw.cost.parts: where each part's figures come from, the measured table, and (marked
``synth``) measuring through the cache and its part index."""

from __future__ import annotations

import pytest

from hw.cost import parts as parts_mod
from hw.cost.parts import (ESTIMATED, SYNTHESISED, Part, PartIndex, fp_estimates, fp_latency,
                           measure, resolve)
from hw.synth.cache import ResultCache
from hw.synth.targets import get_target
from hw.unused import inspected


def test_resolution_order_builders_registry_proxies_table():
    q = resolve(Part.of("quantizer", block=4, in_width=12, lsb_width=6, width=4,
                        exponent_bits=4, stages=1))
    assert q.source == SYNTHESISED and "hw.quantizer.Quantizer" in q.basis
    assert inspected(q.build()).lsb_width == 6
    d = resolve(Part.of("dot-array", lanes=1, block=2, a_width=4, w_width=3, exponent_bits=4,
                        stages=1))
    assert d.source == SYNTHESISED and d.basis == "design dot-array"
    assert resolve(Part.of("int-dot-array", lanes=1, block=2, a_width=4, w_width=4,
                           stages=1)).source == SYNTHESISED
    p = resolve(Part.of("compaction", block=4, index_width=6))
    assert p.source == ESTIMATED and "not a verified design" in p.basis
    f = resolve(Part.of("fp16-mul"))
    if f.table is not None:  # until the floating-point units are registered on main
        assert f.source == ESTIMATED and "not on main" in f.basis
        assert set(f.table) >= {"xc7-nodsp", "lut6"}
    with pytest.raises(ValueError, match=r"^part must be a registered design, a builder, a "
                       r"proxy or a measured part; got 'fp8-mul'$"):
        resolve(Part.of("fp8-mul"))


def test_the_measured_table_has_every_unit_every_target_and_a_latency():
    table = fp_estimates()
    for name in ("fp16-mul", "fp32-add", "fp32-mul", "int32-to-fp32", "fp32-to-fp16"):
        entry = table["parts"][name]
        assert set(entry["targets"]) == {"xc7", "xc7-nodsp", "ice40", "ecp5", "gowin", "lut4",
                                         "lut6", "cmos"}
        assert fp_latency(name) == entry["latency"] >= 1
        assert entry["targets"]["xc7-nodsp"]["dsps"] == 0 and entry["targets"]["cmos"]["transistors"]
    assert fp_estimates("/no/such/file.json") == {"basis": "", "parts": {}}


def test_a_target_missing_from_the_table_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(parts_mod, "fp_estimates", lambda path=None: {
        "basis": "test", "parts": {"fp16-mul": {"params": {}, "latency": 3,
                                                "targets": {"lut6": {"luts": 10}}}}})
    if any(d for d in ("fp16-mul",) if parts_mod._registered(d)):
        pytest.skip("fp16-mul is registered: no table")
    with pytest.raises(ValueError, match=r"^target must be one of lut6 for the estimated part "
                       r"fp16-mul; got 'xc7-nodsp'$"):
        measure([Part.of("fp16-mul")], [get_target("xc7-nodsp")], tmp_path)


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
