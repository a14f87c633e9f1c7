"""Pieces of the synthesis flow that need no Yosys run: scripts, cell sorting, liberty
reading, cache keys, the default set, report formatting, the harness and the
integer baseline (these two in Amaranth's simulator)."""

from __future__ import annotations

import csv
import io
import random

import pytest
from amaranth.sim import Simulator

from hw.designs import get_design, parse_params
from hw.synth.baseline import IntDotArray
from hw.synth.cache import cache_key
from hw.synth.flow import estimated_cost, jobs_for_component, multipliers
from hw.synth.defaults import (DATAPATH_TARGETS, HEAVY_MULTIPLIERS, HEAVY_WIRE_BITS,
                               LAYER_TARGETS, SWEEP_TARGETS, wire_bits,
                               PAPER_CONFIGURATION, SWEEPS,
                               default_plan, default_points, paper_configuration, point_targets,
                               registered_designs)
from hw.synth.harness import TimingHarness
from hw.synth.liberty import cell_names, sequential_cells
from hw.synth.report import (CSV_COLUMNS, ESTIMATE_NOTE, csv_text, main_parameter,
                             markdown_summary, markdown_table, time_summary, write_reports,
                             idle_wall_time)
from hw.synth.targets import DROP_INIT, DROP_INIT_TOPS, LIBERTY_TARGET, TARGETS, get_target

from tests.synth.synth_helpers import RegisteredAdder


# ---- scripts -------------------------------------------------------------------------

@pytest.mark.parametrize("target", [*TARGETS.values(), LIBERTY_TARGET], ids=lambda t: t.name)
def test_scripts_use_relative_files_and_write_stat_json(target):
    lines = target.script("top").splitlines()
    assert lines[0] == "read_rtlil design.il"
    assert lines[1] == "hierarchy -check -top top"
    # the bracketed-name rename precedes every synthesis command
    rename = lines.index("rename -hide w:*[*]")
    first_synth = next(i for i, ln in enumerate(lines) if ln.startswith("synth"))
    assert rename < first_synth
    stat = next(i for i, ln in enumerate(lines) if ln.startswith("tee -q -o stat.json stat -json"))
    # only the Fmax estimate's commands (hw.synth.timing) follow the statistics
    after = tuple(lines[stat + 1:])
    assert after == (target.timing.commands() if target.timing else ())
    assert not any(tok.startswith("/") for ln in lines for tok in ln.split())


def test_fabric_only_xilinx_flow_forbids_dsps_and_the_other_allows_them():
    assert "-nodsp" in TARGETS["xc7-nodsp"].script("t")
    assert "-nodsp" not in TARGETS["xc7"].script("t")
    assert "stat -json -tech cmos" in TARGETS["cmos"].script("t")


def test_only_the_listed_tops_drop_their_init_values_and_only_on_the_generic_lut_targets():
    # Yosys 0.70's ABC9 stops on these tops with their init attributes (docs/synth.md,
    # pitfalls); tests/hw/test_cost_validate.py synthesises them on lut6
    assert {t.name for t in TARGETS.values() if t.drops_init} == {"lut4", "lut6"}
    for target in [*TARGETS.values(), LIBERTY_TARGET]:
        for top in sorted(DROP_INIT_TOPS) + ["lqer_linear", "dot_array"]:
            lines = target.script(top).splitlines()
            dropped = target.drops_init and top in DROP_INIT_TOPS
            assert (DROP_INIT in lines) == dropped, (target.name, top)
            if dropped:
                first_synth = next(i for i, ln in enumerate(lines) if ln.startswith("synth"))
                assert lines.index(DROP_INIT) == first_synth - 1


def test_unknown_target_and_liberty_without_file_are_refused():
    with pytest.raises(ValueError, match=r"^target must be one of xc7, xc7-nodsp, ice40, ecp5, "
                       r"ecp5-nodsp, gowin, lut4, lut6, cmos, liberty; got 'xc9'$"):
        get_target("xc9")
    with pytest.raises(ValueError, match=r"^target 'liberty' needs --liberty FILE$"):
        get_target("liberty")


# ---- cell sorting ----------------------------------------------------------------------

def test_xilinx_cells_are_sorted_into_categories():
    cells = {"LUT1": 1, "LUT6": 3, "LUT6_2": 1, "MUXF7": 4, "FDRE": 5, "FDSE": 1, "CARRY4": 2,
             "DSP48E1": 1, "RAMB36E1": 1, "RAMB18E1": 2, "SRL16E": 2, "RAM64M": 1}
    counts = TARGETS["xc7"].classify(cells)
    assert counts == {"luts": 5, "ffs": 6, "dsps": 1, "carries": 2, "brams": 3, "lutrams": 3}


def test_lattice_and_gowin_cells_are_sorted_into_categories():
    ice = TARGETS["ice40"].classify({"SB_LUT4": 7, "SB_DFFE": 3, "SB_DFFESR": 1, "SB_CARRY": 2,
                                     "SB_RAM40_4K": 1})
    assert ice == {"luts": 7, "ffs": 4, "dsps": 0, "carries": 2, "brams": 1, "lutrams": None}
    ecp = TARGETS["ecp5"].classify({"LUT4": 9, "PFUMX": 3, "L6MUX21": 1, "TRELLIS_FF": 4,
                                    "CCU2C": 2, "MULT18X18D": 1, "DP16KD": 1,
                                    "TRELLIS_DPR16X4": 2})
    assert ecp == {"luts": 9, "ffs": 4, "dsps": 1, "carries": 2, "brams": 1, "lutrams": 2}
    gw = TARGETS["gowin"].classify({"LUT2": 1, "LUT4": 2, "MUX2_LUT5": 3, "DFFE": 2, "DFFRE": 1,
                                    "ALU": 5, "MULT9X9": 2, "SDPB": 1, "GND": 1, "VCC": 1})
    assert gw == {"luts": 3, "ffs": 3, "dsps": 2, "carries": 5, "brams": 1, "lutrams": 0}


def test_generic_cells_count_every_flip_flop_flavour():
    cells = {"$lut": 10, "$_DFF_P_": 1, "$_DFFE_PP_": 2, "$_SDFF_PP0_": 3, "$_SDFFE_PP0P_": 4,
             "$_DFFSR_PPP_": 5, "$_ALDFF_PP_": 6, "$_NAND_": 7}
    assert TARGETS["lut6"].classify(cells)["ffs"] == 21
    assert TARGETS["lut6"].classify(cells)["luts"] == 10
    assert TARGETS["cmos"].classify(cells) == {"luts": None, "ffs": 21, "dsps": None,
                                               "carries": None, "brams": None, "lutrams": None}


# ---- liberty ---------------------------------------------------------------------------

def test_liberty_reader_finds_cells_and_the_sequential_ones(tiny_liberty):
    text = tiny_liberty.read_text()
    assert cell_names(text) == ["INV", "NAND2", "NOR2", "XOR2", "DFF"]
    assert sequential_cells(text) == {"DFF"}
    commented = "/* cell (FAKE) { ff (IQ, IQN) { } } */\n" + text
    assert sequential_cells(commented) == {"DFF"}


# ---- cache key -------------------------------------------------------------------------

def test_cache_key_changes_with_every_input_and_only_then():
    base = dict(rtlil="module a", script="synth", yosys_version="0.70", liberty=None)
    key = cache_key(**base)
    assert cache_key(**base) == key
    for name, other in (("rtlil", "module b"), ("script", "synth -lut 4"),
                        ("yosys_version", "0.71"), ("liberty", "library (x) {}")):
        assert cache_key(**{**base, name: other}) != key, name
    # parts are length-prefixed: moving text between fields changes the key
    assert cache_key(**{**base, "rtlil": "module", "script": " asynth"}) != key


# ---- default set -----------------------------------------------------------------------

def test_default_set_covers_every_registered_design_at_the_paper_configuration():
    points = default_points()
    assert {name for name, _ in points} == {d.name for d in registered_designs()}
    for name, params in points:
        design = get_design(name)
        assert parse_params(design, [f"{k}={v}" for k, v in params.items()]) == params
        for key, value in paper_configuration(name).items():
            if key in params:
                assert params[key] == value, (name, key)
    for name, sweep in SWEEPS.items():
        for key, values in sweep.items():
            assert sorted(p[key] for n, p in points if n == name) == sorted(values)


def test_default_set_has_resq_at_its_paper_configuration():
    """ResQ: W4A4 on the low-precision coordinates, r = d/8 of them at 8 bits, block 16;
    the LQER datapath keeps the LQER paper's 8-bit activations."""
    points = dict(default_points())
    resq, lqer = points["resq-linear"], points["lqer-linear"]
    assert (resq["a_width"], resq["w_width"], resq["high_width"], resq["block"]) == (4, 4, 8, 16)
    assert resq["rank"] * 8 == resq["d_in"]
    assert lqer["a_width"] == PAPER_CONFIGURATION["a_width"] == 8


def test_datapaths_run_on_the_datapath_targets_and_the_rest_everywhere():
    names = list(TARGETS)
    no_twins = [t for t in names if t not in ("xc7", "ecp5")]
    assert point_targets(HEAVY_MULTIPLIERS, names) == names
    assert point_targets(1, names) == names
    assert point_targets(1, names, bits=HEAVY_WIRE_BITS) == names
    # no multiplier: the DSP target with a fabric-only twin in the list is left out
    assert point_targets(0, names) == no_twins
    assert point_targets(0, ["xc7", "ecp5", "gowin"]) == ["xc7", "ecp5", "gowin"]
    assert point_targets(HEAVY_MULTIPLIERS + 1, names) == [t for t in names if t in DATAPATH_TARGETS]
    assert point_targets(HEAVY_MULTIPLIERS + 1, [TARGETS["lut6"], TARGETS["xc7"]]) == [TARGETS["xc7"]]
    # a large point with few or no $mul is a datapath too, and the twin rule still holds
    assert point_targets(1, names, bits=HEAVY_WIRE_BITS + 1) == [t for t in names if t in DATAPATH_TARGETS]
    assert point_targets(0, names, bits=HEAVY_WIRE_BITS + 1) == [
        t for t in no_twins if t in DATAPATH_TARGETS]
    # a sweep point other than the first value: SWEEP_TARGETS of what is left
    assert point_targets(1, names, sweep=True) == [t for t in names if t in SWEEP_TARGETS]
    assert point_targets(0, names, sweep=True) == [t for t in no_twins if t in SWEEP_TARGETS]
    plan = default_plan(list(TARGETS.values()))
    assert [(n, p) for n, p, *_ in plan] == default_points()
    assert point_targets(0, names, layer=True) == [t for t in names if t in LAYER_TARGETS]
    for name, params, targets, component, rtlil in plan:
        count, _ = multipliers(rtlil)
        if hasattr(component, "schedule"):
            expected = [t for t in names if t in LAYER_TARGETS]
        else:
            expected = names
            if count > HEAVY_MULTIPLIERS or wire_bits(rtlil) > HEAVY_WIRE_BITS:
                expected = [t for t in expected if t in DATAPATH_TARGETS]
            if count == 0:
                expected = [t for t in expected if t in no_twins]
            if name == "dot-array" and params["lanes"] != SWEEPS["dot-array"]["lanes"][0]:
                expected = [t for t in expected if t in SWEEP_TARGETS]
        assert [t.name for t in targets] == expected, (name, params)
    # every layer design is a datapath, even with no $mul (fp16-linear's IEEE multipliers
    # are partial-product trees)
    layers = {n for n, p, ts, c, r in plan if hasattr(c, "schedule")}
    assert layers == {"lqer-linear", "resq-linear", "fp16-linear", "llm-int8-linear",
                      "w8a8-linear"}
    assert multipliers(next(r for n, p, ts, c, r in plan if n == "fp16-linear"))[0] == 0
    chosen = {(n, p.get("lanes")): [t.name for t in ts] for n, p, ts, *_ in plan}
    # the dot-array sweep: one lane on every target, more lanes on the sweep targets
    assert chosen["dot-array", 1] == names
    assert chosen["dot-array", 8] == list(SWEEP_TARGETS)
    # the two large parts of llm-int8-linear are datapaths by size: fp-accumulate has no
    # $mul (its FP16 multipliers are partial-product trees), the int path 16 int8 products
    assert chosen["fp-accumulate", 4] == [t for t in no_twins if t in DATAPATH_TARGETS]
    assert chosen["llm-int8-int-path", 16] == list(DATAPATH_TARGETS)
    assert chosen["quantizer", None] == no_twins


def test_wire_bits_are_summed_from_the_rtlil():
    rtlil = "module \\t\n  wire width 8 input 1 \\a\n  wire \\b\n  wire width 3 $c\nend\n"
    assert wire_bits(rtlil) == 12
    from hw.designs import elaborate, emit
    small = wire_bits(emit(elaborate("dot-array", lanes=1), fmt="rtlil", name="t"))
    large = wire_bits(emit(elaborate("dot-array", lanes=2), fmt="rtlil", name="t"))
    assert 0 < small < large


def test_multipliers_are_counted_from_the_rtlil():
    from hw.designs import elaborate, emit
    rtlil = emit(elaborate("dot-array", lanes=2, block=16, a_width=8, w_width=4), fmt="rtlil",
                 name="t")
    # 32 products, each an 8 x 2 (unsigned piece, widened to signed 3 bits) and an 8 x 2
    assert multipliers(rtlil) == (64, 32 * (8 * 3 + 8 * 2))
    assert multipliers(emit(RegisteredAdder(width=4), fmt="rtlil", name="t")) == (0, 0)


def test_jobs_start_longest_first(monkeypatch, tmp_path):
    from hw.designs import elaborate
    from hw.synth import flow, yosys
    small = jobs_for_component("dot-array", {"lanes": 1},
                               elaborate("dot-array", lanes=1, stages=5),
                               [TARGETS["xc7"], TARGETS["xc7-nodsp"]])
    large = jobs_for_component("dot-array", {"lanes": 4},
                               elaborate("dot-array", lanes=4, stages=5),
                               [TARGETS["xc7"], TARGETS["xc7-nodsp"]])
    started = []

    def fake_run(job, out, **kwargs):
        started.append((job.params["lanes"], job.target.name))
        return {"design": job.design, "params": job.params, "target": job.target.name}

    monkeypatch.setattr(flow, "run_job", fake_run)
    monkeypatch.setattr(yosys, "ensure_ready", lambda *a, **k: None)
    records, failures = flow.run_jobs([*small, *large], tmp_path, workers=1)
    assert not failures
    # results stay in job order; LUT-mapped multipliers (xc7-nodsp) cost the most
    assert [(r["params"]["lanes"], r["target"]) for r in records] == [
        (1, "xc7"), (1, "xc7-nodsp"), (4, "xc7"), (4, "xc7-nodsp")]
    assert started == [(4, "xc7-nodsp"), (1, "xc7-nodsp"), (4, "xc7"), (1, "xc7")]
    assert estimated_cost(large[1].rtlil, TARGETS["xc7-nodsp"]) > estimated_cost(
        large[1].rtlil, TARGETS["xc7"])


# ---- reports ---------------------------------------------------------------------------

def _record(design, params, target, cells, **extra):
    return {"design": design, "params": params, "target": target, "luts": cells, "ffs": 3,
            "dsps": None, "carries": None, "brams": None, "lutrams": None, "transistors": None,
            "area": None, "cells_total": cells + 3, "wall_s": 1.25, "cached": False,
            "yosys": "Yosys 0.70", **extra}


def test_tables_and_csv_hold_one_row_per_record():
    records = [_record("d", {"lanes": 1, "block": 4}, "lut4", 10),
               _record("d", {"lanes": 2, "block": 4}, "lut4", 19),
               _record("d", {"lanes": 1, "block": 4}, "cmos", 7, luts=None, transistors=500)]
    table = markdown_table(records).splitlines()
    assert len(table) == 2 + 3
    assert table[0].startswith("| Design | Parameters | Target | LUTs | FFs | Transistors |")
    assert "| d | lanes=1 block=4 | cmos | – | 3 | 500 |" in table[3]
    summary = markdown_summary(records).splitlines()
    assert summary[0] == "| Design | Parameters | lut4 LUTs | cmos transistors |"
    assert summary[2:] == ["| d | lanes=1 block=4 | 10 | 500 |", "| d | lanes=2 block=4 | 19 | – |"]
    rows = list(csv.DictReader(io.StringIO(csv_text(records))))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 3
    cmos = next(r for r in rows if r["target"] == "cmos")
    assert cmos["luts"] == "" and cmos["transistors"] == "500" and cmos["params"] == "lanes=1 block=4"


def test_the_estimate_is_a_column_of_its_own_marked_as_an_estimate(tmp_path):
    records = [_record("d", {"lanes": 1}, "xc7", 10, est_fmax_mhz=250.04, flow="full",
                       timing_model="yosys-sta xc7"),
               _record("d", {"lanes": 1}, "lut6", 9, flow="full")]
    summary = markdown_summary(records).splitlines()
    assert summary[0] == "| Design | Parameters | xc7 LUTs | lut6 LUTs | xc7 est. Fmax (MHz, estimate) |"
    assert summary[2] == "| d | lanes=1 | 10 | 9 | 250.04 |"
    assert "est. Fmax (MHz, estimate)" in markdown_table(records).splitlines()[0]
    paths = write_reports(records, tmp_path)
    text = paths["md"].read_text()
    assert ESTIMATE_NOTE in text and "never a measurement" in ESTIMATE_NOTE
    assert "Flow: full (every family's synthesis script as Yosys ships it)." in text
    rows = list(csv.DictReader(io.StringIO(csv_text(records))))
    assert rows[0]["est_fmax_mhz"] == "250.04" and rows[0]["timing_model"] == "yosys-sta xc7"
    assert rows[1]["est_fmax_mhz"] == "" and rows[1]["flow"] == "full"


def test_time_summary_weights_pass_times_by_cpu_and_skips_cached_runs():
    runs = [_record("a", {}, "xc7", 1, cpu_s=10.0, yosys_s=40.0,
                    yosys_passes={"abc9_exe": 30.0, "read_verilog": 10.0}),
            _record("b", {}, "lut6", 1, cpu_s=30.0, yosys_s=30.0, yosys_passes={"abc9_exe": 30.0}),
            _record("c", {}, "lut6", 1, cpu_s=99.0, yosys_s=99.0, cached=True,
                    yosys_passes={"opt": 99.0})]
    text = time_summary(runs)
    assert text.startswith("2 Yosys runs, 40 CPU seconds in all (on 2 idle cores, longest "
                           "first: about 30 s of Yosys).")
    assert "- by design: b 30 s (75%), a 10 s (25%)" in text
    assert "- by target: lut6 30 s (75%), xc7 10 s (25%)" in text
    # a's passes scaled by 10/40: abc9_exe 7.5 + 30, read_verilog 2.5
    assert "- by pass (top 8): abc9_exe 38 s (94%), read_verilog 2 s (6%)" in text
    assert time_summary(runs[1:]).startswith("1 Yosys run, 30 CPU seconds in all")
    # what the three take without the cache: 99 | 30 + 10 on two cores
    cold = ("Cold (no cache), these 3 runs: 139 CPU seconds (a cached record's from the run "
            "that made it; on 2 idle cores, longest first: about 99 s of Yosys).")
    assert text.splitlines()[1] == cold
    assert time_summary([runs[2]]) == cold.replace("these 3 runs: 139", "these 1 run: 99") + "\n"
    assert time_summary(runs[:2]).splitlines()[1] == ""


def test_idle_wall_time_schedules_the_longest_first():
    assert idle_wall_time([5, 3, 3, 3], 2) == 8      # 5+3 | 3+3... then max(8, 6)
    assert idle_wall_time([5, 3, 3, 3], 1) == 14
    assert idle_wall_time([10, 1, 1], 4) == 10       # never shorter than the longest job
    assert idle_wall_time([], 2) == 0


def test_main_parameter_is_the_one_that_varies():
    records = [_record("d", {"block": 4, "lanes": n}, "lut4", n) for n in (1, 2)]
    assert main_parameter(records) == "lanes"
    assert main_parameter(records[:1]) == "block"


# ---- timing harness (simulated) ----------------------------------------------------------

def test_harness_loads_inputs_serially_and_shifts_outputs_out():
    design = RegisteredAdder(width=4)
    harness = TimingHarness(design)
    assert (harness.input_bits, harness.output_bits) == (8, 5)
    a, b = 11, 6
    word = a | b << 4          # Cat(a, b): the order of the design's input ports
    seen = []

    async def bench(ctx):
        for i in reversed(range(harness.input_bits)):   # MSB first: it travels furthest
            ctx.set(harness.sin, (word >> i) & 1)
            await ctx.tick()
        await ctx.tick()                # the adder registers a + b
        ctx.set(harness.load, 1)
        await ctx.tick()                # capture
        ctx.set(harness.load, 0)
        for _ in range(harness.output_bits):
            seen.append(ctx.get(harness.sout))
            await ctx.tick()

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sum(bit << i for i, bit in enumerate(seen)) == a + b


# ---- integer baseline (simulated) --------------------------------------------------------

def test_integer_array_computes_exact_dot_products():
    lanes, block, xw, ww, stages = 2, 4, 4, 3, 2
    dut = IntDotArray(lanes=lanes, block=block, a_width=xw, w_width=ww, stages=stages)
    rng = random.Random(7)
    xmax, wmax = 2 ** (xw - 1) - 1, 2 ** (ww - 1) - 1
    vectors = [([rng.randint(-xmax, xmax) for _ in range(block)],
                [[rng.randint(-wmax, wmax) for _ in range(block)] for _ in range(lanes)])
               for _ in range(20)]
    vectors.append(([xmax] * block, [[-wmax] * block] * lanes))   # the largest magnitude
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for x, ws in vectors:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.x, x)
            ctx.set(dut.i.payload.w, ws)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append([ctx.get(dut.o.payload.sums[k]) for k in range(lanes)])
        ctx.set(dut.i.valid, 0)
        for _ in range(stages):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append([ctx.get(dut.o.payload.sums[k]) for k in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expected = [[sum(a * b for a, b in zip(x, w)) for w in ws] for x, ws in vectors]
    assert got == expected
