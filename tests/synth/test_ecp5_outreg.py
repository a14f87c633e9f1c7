"""hw.synth.ecp5_outreg: fabric registers behind ECP5 block RAM read data move into the
block RAM's output register only when the output register does exactly what they did."""

from __future__ import annotations

import copy
import json

import pytest

from hw.synth.ecp5_outreg import absorb_output_registers, absorb_output_registers_file

CLK, OTHER_CLK = 2, 3


def _ff(d: int, q: int, *, clk=CLK, lsr=("0",), cemux="1 ", ce=None, regset="RESET") -> dict:
    conns = {"CLK": [clk], "DI": [d], "LSR": list(lsr), "Q": [q]}
    dirs = {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"}
    if ce is not None:
        conns["CE"], dirs["CE"] = [ce], "input"
    return {"type": "TRELLIS_FF", "parameters": {"CEMUX": cemux, "CLKMUX": "CLK",
                                                 "REGSET": regset, "GSR": "DISABLED"},
            "connections": conns, "port_directions": dirs}


def _netlist(data_bits: int = 3) -> dict:
    """One DP16KD reading ``data_bits`` bits on port A, each into a plain flip-flop whose Q
    drives a LUT; port B unused."""
    ram = {"type": "DP16KD",
           "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
           "connections": {"CLKA": [CLK], "CLKB": ["0"], "OCEA": ["1"], "OCEB": ["1"],
                           "RSTA": ["0"], "RSTB": ["0"], "CEA": ["1"]},
           "port_directions": {"CLKA": "input", "CLKB": "input", "OCEA": "input",
                               "OCEB": "input", "RSTA": "input", "RSTB": "input",
                               "CEA": "input"}}
    cells = {"ram": ram}
    for k in range(18):
        ram["connections"][f"DOA{k}"] = [100 + k]
        ram["port_directions"][f"DOA{k}"] = "output"
        ram["connections"][f"DOB{k}"] = [200 + k]
        ram["port_directions"][f"DOB{k}"] = "output"
    for k in range(data_bits):
        cells[f"ff{k}"] = _ff(100 + k, 300 + k)
        cells[f"lut{k}"] = {"type": "LUT4", "parameters": {},
                            "connections": {"A": [300 + k], "Z": [400 + k]},
                            "port_directions": {"A": "input", "Z": "output"}}
    return {"modules": {"top": {"attributes": {"top": 1}, "ports": {
        "clk": {"direction": "input", "bits": [CLK]}}, "cells": cells, "netnames": {}}}}


def _cells(netlist: dict) -> dict:
    return netlist["modules"]["top"]["cells"]


def test_plain_registers_move_into_the_output_register():
    netlist = _netlist(3)
    assert absorb_output_registers(netlist) == 3
    cells = _cells(netlist)
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "NOREG"
    assert not any(name.startswith("ff") for name in cells)
    # the block RAM now drives what the flip-flops drove; the unused bits are untouched
    assert [ram["connections"][f"DOA{k}"] for k in range(4)] == [[300], [301], [302], [103]]
    assert [cells[f"lut{k}"]["connections"]["A"] for k in range(3)] == [[300], [301], [302]]


def test_a_shared_clock_enable_becomes_the_output_enable():
    netlist = _netlist(3)
    cells = _cells(netlist)
    for k in range(3):
        cells[f"ff{k}"] = _ff(100 + k, 300 + k, cemux="CE", ce=7)
    assert absorb_output_registers(netlist) == 3
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["connections"]["OCEA"] == [7]
    assert ram["connections"]["OCEB"] == ["1"]
    assert [ram["connections"][f"DOA{k}"] for k in range(3)] == [[300], [301], [302]]


def _pseudo_dual_port(low_bits: int, high_bits: int) -> dict:
    """The netlist above as Yosys maps a 36-bit ``$__PDPW16KD_``: port A writes (its
    output enable tied 0), port B reads bits 0-17 on ``DOA`` and 18-35 on ``DOB``, each
    into a flip-flop with clock enable net 7."""
    netlist = _netlist(0)
    cells = _cells(netlist)
    ram = cells["ram"]
    ram["parameters"].update(DATA_WIDTH_A="00000000000000000000000000100100",
                             DATA_WIDTH_B="00000000000000000000000000100100")
    ram["connections"].update(CLKB=[CLK], OCEA=["0"], CEB=[6])
    for port, base, bits in (("A", 100, low_bits), ("B", 200, high_bits)):
        for k in range(bits):
            cells[f"ff{port}{k}"] = _ff(base + k, base + 200 + k, cemux="CE", ce=7)
    return netlist


def test_pseudo_dual_port_output_registers_move_together():
    netlist = _pseudo_dual_port(18, 17)
    assert absorb_output_registers(netlist) == 35
    ram = _cells(netlist)["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEB"] == ram["connections"]["OCEA"] == [7]
    assert ram["connections"]["DOA17"] == [317] and ram["connections"]["DOB16"] == [416]
    assert list(_cells(netlist)) == ["ram"]


@pytest.mark.parametrize("spoil", ["low bit", "high bit", "read clock", "inverted clock"])
def test_pseudo_dual_port_moves_all_or_nothing(spoil):
    netlist = _pseudo_dual_port(18, 17)
    cells = _cells(netlist)
    if spoil == "low bit":
        cells["ffA3"] = _ff(103, 303, cemux="CE", ce=8)
    elif spoil == "high bit":
        cells["ffB3"]["type"] = "LUT4"
    elif spoil == "read clock":   # the write clock differs from the read clock
        cells["ram"]["connections"]["CLKA"] = [OTHER_CLK]
    else:   # the read port clocks on the falling edge
        cells["ram"]["parameters"]["CLKBMUX"] = "INV"
    before = copy.deepcopy(netlist)
    assert absorb_output_registers(netlist) == 0
    assert netlist == before


@pytest.mark.parametrize("spoil", [
    "second load", "clock enable", "clock enables", "inverted clock enable", "set/reset", "other clock", "output enable",
    "port reset", "set value", "output port", "logic load"])
def test_anything_else_is_left_alone(spoil):
    netlist = _netlist(3)
    cells = _cells(netlist)
    mod = netlist["modules"]["top"]
    if spoil == "second load":
        cells["extra"] = {"type": "LUT4", "parameters": {}, "connections": {"A": [101]},
                          "port_directions": {"A": "input"}}
    elif spoil == "clock enable":    # one flip-flop with a clock enable, the others without
        cells["ff1"] = _ff(101, 301, cemux="CE", ce=7)
    elif spoil == "clock enables":   # two clock enable nets
        for k in range(3):
            cells[f"ff{k}"] = _ff(100 + k, 300 + k, cemux="CE", ce=7 + (k == 2))
    elif spoil == "inverted clock enable":
        for k in range(3):
            cells[f"ff{k}"] = _ff(100 + k, 300 + k, cemux="INV", ce=7)
    elif spoil == "set/reset":
        cells["ff1"] = _ff(101, 301, lsr=(9,))
    elif spoil == "other clock":
        cells["ff1"] = _ff(101, 301, clk=OTHER_CLK)
    elif spoil == "output enable":
        cells["ram"]["connections"]["OCEA"] = [8]
    elif spoil == "port reset":
        cells["ram"]["connections"]["RSTA"] = [8]
    elif spoil == "set value":
        cells["ff1"] = _ff(101, 301, regset="SET")
    elif spoil == "output port":
        mod["ports"]["data"] = {"direction": "output", "bits": [101]}
    elif spoil == "logic load":
        cells["ff1"] = {"type": "LUT4", "parameters": {}, "connections": {"A": [101]},
                        "port_directions": {"A": "input"}}
    before = copy.deepcopy(netlist)
    assert absorb_output_registers(netlist) == 0
    assert netlist == before


def test_file_is_rewritten_only_when_something_moved(tmp_path):
    path = tmp_path / "netlist.json"
    path.write_text(json.dumps(_netlist(2)))
    assert absorb_output_registers_file(path) == 2
    assert _cells(json.loads(path.read_text()))["ram"]["parameters"]["REGMODE_A"] == "OUTREG"
    untouched = _netlist(0)
    path.write_text(json.dumps(untouched, indent=1))
    text = path.read_text()
    assert absorb_output_registers_file(path) == 0
    assert path.read_text() == text
