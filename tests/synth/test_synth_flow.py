"""Run the real flows on small registered designs, for every target, and check the reports."""

from __future__ import annotations

import json

import pytest
from amaranth.hdl import Fragment
from amaranth.lib.data import Layout

from hw.designs import elaborate, get_design
from hw.synth.flow import REPORT_FILE, TOP_PASSES, jobs_for_component, jobs_for_design
from hw.synth.liberty import sequential_cells
from hw.synth.targets import CATEGORIES, FLOWS, TARGETS, get_target
from tests.synth.synth_helpers import ReplicatedRegister, register_and_memory_bits

pytestmark = pytest.mark.synth

# Small but complete: several multipliers, an adder tree, the exponent path.
SMALL_DOT = {"lanes": 1, "block": 2, "a_width": 4, "w_width": 3, "exponent_bits": 8, "stages": 1}
LANES = (1, 2, 4)
# Targets whose multipliers may absorb pipeline registers into DSP blocks.
DSP_TARGETS = {"xc7", "ecp5", "gowin"}


def expected_flip_flops(component, record) -> int:
    """FFs the pipelining of a ``hw.pipeline.Pipeline`` design implies on the target of
    ``record``: the RTLIL's registers (the valid chain, data registers, the FIFO's pointers
    and the credit count), plus, where the target kept the output FIFO in flip-flops (no
    LUT RAM used), its ``latency + 1`` entries of the output payload (the FIFO's bits the
    payload does not use are dropped by Yosys)."""
    Fragment.get(component, None)  # elaborated, as the flow does (and so not "unused")
    registers, memory = register_and_memory_bits(component)
    payload = component.signature.members["o"].signature.members["payload"].shape
    fifo = (component.latency + 1) * Layout.cast(payload).size
    assert fifo <= memory  # the only memory is the output FIFO
    return registers if record["lutrams"] else registers + fifo


@pytest.fixture(scope="module")
def every_target(synthesise, tiny_liberty):
    liberty = tiny_liberty.read_text()
    targets = [*TARGETS.values(), get_target("liberty", liberty=True)]
    params = get_design("dot-array").defaults | SMALL_DOT
    records, out = synthesise(jobs_for_design("dot-array", params, targets, liberty=liberty))
    return {r["target"]: r for r in records}, out, params


@pytest.fixture(scope="module")
def lane_sweep(synthesise):
    jobs = []
    for lanes in LANES:
        params = get_design("dot-array").defaults | SMALL_DOT | {"lanes": lanes}
        jobs += jobs_for_design("dot-array", params, [TARGETS["lut6"], TARGETS["ice40"]])
    records, _ = synthesise(jobs)
    return records


def test_every_target_reports_its_structure(every_target):
    records, out, params = every_target
    assert set(records) == {*TARGETS, "liberty"}
    for name, r in records.items():
        assert r["design"] == "dot-array" and r["params"] == params and r["target"] == name
        assert r["yosys"].startswith("Yosys 0.")
        assert r["wall_s"] > 0 and r["cells_total"] == sum(r["cells"].values()) > 0
        # where the time went: the process's CPU time and Yosys's own pass table (-d)
        assert r["cpu_s"] > 0 and r["max_rss_mb"] > 0 and r["yosys_s"] > 0
        assert 0 < len(r["yosys_passes"]) <= TOP_PASSES
        assert sum(r["yosys_passes"].values()) <= r["yosys_s"] * 1.01
        assert r["flow"] == "full"
        for category in CATEGORIES:
            assert r[category] is None or 0 <= r[category] <= r["cells_total"]
        # report.json on disk is the same record, and the log it names exists
        on_disk = json.loads((out / r["build_dir"] / REPORT_FILE).read_text())
        assert on_disk == r
        assert (out / r["log"]).is_file()
    for name in ("xc7", "xc7-nodsp", "ice40", "ecp5", "ecp5-nodsp", "gowin", "lut4", "lut6"):
        assert records[name]["luts"] > 0, name
    assert records["cmos"]["luts"] is None and records["liberty"]["luts"] is None


def test_fabric_only_targets_use_no_dsp(every_target):
    records, _, _ = every_target
    assert records["xc7-nodsp"]["dsps"] == 0
    assert records["ice40"]["dsps"] == 0
    assert records["ecp5-nodsp"]["dsps"] == 0 and records["ecp5"]["dsps"] > 0
    assert records["xc7-nodsp"]["carries"] > 0  # the adders went to CARRY4 chains instead


def test_flip_flops_match_the_published_pipelining(every_target):
    records, _, params = every_target
    for name, r in records.items():
        expected = expected_flip_flops(elaborate("dot-array", **params), r)
        if name in DSP_TARGETS:
            assert r["ffs"] <= expected, name
        else:
            assert r["ffs"] == expected, name


def test_replicated_registers_are_kept(synthesise):
    """Registers named with hw.pipeline.REPLICA_TAG copy one value on purpose (the dot
    array's activation block, once per lane); Yosys merges identical flip-flops unless the
    flow keeps them: two 8-bit copies stay 16 flip-flops (8 without the mark), also when
    each copy is only an alias of the net its flip-flop drives (a copy into a memory's
    write enable or address: fp-accumulate's write enables were merged into one register
    driving 256 LUT RAMs)."""
    variants = {(1, 0): ReplicatedRegister(replica=True),
                (0, 0): ReplicatedRegister(replica=False),
                (1, 1): ReplicatedRegister(replica=True, aliased=True),
                (0, 1): ReplicatedRegister(replica=False, aliased=True)}
    jobs = [job for (replica, aliased), component in variants.items()
            for job in jobs_for_component("copies", {"replica": replica, "aliased": aliased},
                                          component, [TARGETS["lut4"]])]
    records, _ = synthesise(jobs)
    ffs = {(r["params"]["replica"], r["params"]["aliased"]): r["ffs"] for r in records}
    assert ffs == {(1, 0): 16, (0, 0): 8, (1, 1): 16, (0, 1): 8}


def test_cmos_counts_transistors_of_gates_and_flip_flops(every_target):
    r = every_target[0]["cmos"]
    assert set(r["cells"]) <= {"$_NAND_", "$_NOR_", "$_NOT_", "$_DFF_P_"}
    assert r["transistors_exact"] is True
    # Yosys' CMOS table: NAND/NOR 4, NOT 2, DFF 16 transistors
    cost = {"$_NAND_": 4, "$_NOR_": 4, "$_NOT_": 2, "$_DFF_P_": 16}
    assert r["transistors"] == sum(cost[t] * n for t, n in r["cells"].items())


def test_liberty_area_is_the_sum_of_cell_areas(every_target, tiny_liberty):
    import re
    r = every_target[0]["liberty"]
    text = tiny_liberty.read_text()
    areas = {m.group(1): float(m.group(2)) for m in
             re.finditer(r"cell \((\w+)\) \{\s*area : ([0-9.]+);", text)}
    assert set(r["cells"]) <= set(areas)
    assert r["area"] == pytest.approx(sum(areas[t] * n for t, n in r["cells"].items()))
    storage = sequential_cells(text)
    assert r["sequential_area"] == pytest.approx(
        sum(areas[t] * n for t, n in r["cells"].items() if t in storage))


def test_luts_grow_with_lanes_and_flip_flops_follow_the_outputs(lane_sweep):
    for target in ("lut6", "ice40"):
        rows = sorted((r for r in lane_sweep if r["target"] == target),
                      key=lambda r: r["params"]["lanes"])
        assert [r["params"]["lanes"] for r in rows] == list(LANES)
        luts = [r["luts"] for r in rows]
        assert luts == sorted(luts) and luts[0] < luts[-1], (target, luts)
        for r in rows:
            assert r["ffs"] == expected_flip_flops(elaborate("dot-array", **r["params"]), r)


# Registry designs at their paper configuration, small enough for a test.
EQUIVALENCE_POINTS = [("dot-array", {"lanes": 1}), ("accumulator", {})]


@pytest.mark.parametrize("flow", [f for f in FLOWS.values() if f.name != "full"],
                         ids=lambda f: f.name)
def test_a_cheaper_flow_stays_within_3_percent_of_the_full_flow(flow, synthesise):
    """docs/synth.md, "Flows": a smaller flow is acceptable only where its LUT counts stay
    within 3% of the full flow's on every design both can run, and its records say so."""
    targets = [TARGETS[n] for n in (flow.targets or TARGETS)]
    jobs = []
    for name, params in EQUIVALENCE_POINTS:
        full = get_design(name).defaults | params
        jobs += jobs_for_design(name, full, targets, flow=FLOWS["full"])
        jobs += jobs_for_design(name, full, targets, flow=flow)
    records, _ = synthesise(jobs)
    by = {(r["design"], r["target"], r["flow"]): r for r in records}
    assert {f for _, _, f in by} == {"full", flow.name}
    for name, _ in EQUIVALENCE_POINTS:
        for target in targets:
            full, cheap = by[(name, target.name, "full")], by[(name, target.name, flow.name)]
            assert abs(cheap["luts"] - full["luts"]) <= 0.03 * full["luts"], (name, target.name)
            assert cheap["ffs"] == full["ffs"], (name, target.name)


def test_no_equality_of_the_fp_units_is_taken_from_a_compare(synthesise):
    """Yosys's alumacc merges an ``==`` into a ``<``/``>`` of the same operands, a zero
    test after the subtraction's carry chain; the binary32 adder's magnitude compare forms
    its equalities beside the chains (``hw.fp.common.equal``), so none is merged (two
    were, in series with the compare: docs/synth.md, "Equalities beside the carry
    chain")."""
    jobs = [job for name in ("fp32-add", "fp16-mul")
            for job in jobs_for_design(name, get_design(name).defaults, [TARGETS["ecp5"]])]
    records, out = synthesise(jobs)
    for record in records:
        log = (out / record["log"]).read_text()
        assert "Executing ALUMACC pass" in log and "creating $alu model for" in log
        assert [line for line in log.splitlines() if "($eq): merged with" in line] == []
