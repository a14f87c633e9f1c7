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
from hw.synth.defaults import (PAPER_CONFIGURATION, SWEEPS, default_points, paper_configuration,
                               registered_designs)
from hw.synth.harness import TimingHarness
from hw.synth.liberty import cell_names, sequential_cells
from hw.synth.report import (CSV_COLUMNS, csv_text, main_parameter, markdown_summary,
                             markdown_table)
from hw.synth.targets import LIBERTY_TARGET, TARGETS, get_target

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
    assert lines[-1].startswith("tee -q -o stat.json stat -json")
    assert not any(tok.startswith("/") for ln in lines for tok in ln.split())


def test_fabric_only_xilinx_flow_forbids_dsps_and_the_other_allows_them():
    assert "-nodsp" in TARGETS["xc7-nodsp"].script("t")
    assert "-nodsp" not in TARGETS["xc7"].script("t")
    assert "stat -json -tech cmos" in TARGETS["cmos"].script("t")


def test_unknown_target_and_liberty_without_file_are_refused():
    with pytest.raises(ValueError, match=r"^target must be one of xc7, xc7-nodsp, ice40, ecp5, "
                       r"gowin, lut4, lut6, cmos, liberty; got 'xc9'$"):
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
