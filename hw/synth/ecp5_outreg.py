"""Move the flip-flops behind an ECP5 block RAM's read data into the block RAM's own output
register (``DP16KD`` ``REGMODE_A`` / ``REGMODE_B`` = ``OUTREG``), in the netlist Yosys
writes for nextpnr.

Yosys maps every ECP5 block RAM with ``REGMODE`` ``NOREG``
(``share/lattice/brams_map_16kd.v``) and leaves a register after its read data in the
fabric. Without its output register a ``DP16KD``'s data comes 5.61 ns after the clock in
nextpnr's ECP5 timing model (speed 6), and the route out of the block RAM row to a slice
adds 1.5 to 2 ns: a block RAM read caps a design near 135 MHz even with no logic after it
(docs/synth.md, "Block RAM output registers"). With the output register the data leaves
the block RAM one clock later, as it left the fabric register, so the design is the same
cycle for cycle (Lattice, "ECP5 and ECP5-5G Memory Usage Guide", TN1264: the output
register of the sysMEM block).

A port qualifies when its output register would do exactly what the fabric flip-flops
did: the port has no output enable or reset (``OCE`` tied 1, ``RST`` tied 0), and each of
its used data bits drives exactly one load, the data input of a ``TRELLIS_FF`` clocked by
the port's clock, with no clock enable and no set/reset (``CEMUX`` 1, ``LSR`` tied 0) and
reset value 0 (``REGSET`` ``RESET``, as the output register powers up), and is not a port
of the module. Anything else is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from lqer_hw.files import write_text

__all__ = ["absorb_output_registers", "absorb_output_registers_file"]

PORTS = ("A", "B")
DATA_BITS = 18


def _loads(cells: dict) -> dict:
    """Net bit -> [(cell name, port)] of every cell input reading it."""
    loads: dict = {}
    for name, cell in cells.items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if directions.get(port) != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        loads.setdefault(bit, []).append((name, port))
    return loads


def _plain_ff(cell: dict, clock) -> bool:
    conns, params = cell["connections"], cell["parameters"]
    return (cell["type"] == "TRELLIS_FF" and conns.get("CLK") == clock
            and params.get("CLKMUX", "CLK") == "CLK"
            and str(params.get("CEMUX", "1")).strip() == "1"
            and conns.get("LSR", ["0"]) == ["0"]
            and params.get("REGSET", "RESET") == "RESET")


def absorb_output_registers(netlist: dict) -> int:
    """Rewrite ``netlist`` (Yosys ``write_json`` of an ECP5 design) in place; return the
    flip-flops moved into block RAM output registers."""
    moved = 0
    for module in netlist["modules"].values():
        cells = module["cells"]
        port_bits = {b for p in module.get("ports", {}).values() for b in p["bits"]}
        loads = _loads(cells)
        for cell in [c for c in cells.values() if c["type"] == "DP16KD"]:
            conns, params = cell["connections"], cell["parameters"]
            for p in PORTS:
                if (params.get(f"REGMODE_{p}", "NOREG") != "NOREG"
                        or conns.get(f"OCE{p}") != ["1"] or conns.get(f"RST{p}") != ["0"]):
                    continue
                clock = conns.get(f"CLK{p}")
                plan = []
                for k in range(DATA_BITS):
                    bits = conns.get(f"DO{p}{k}")
                    if not bits or not isinstance(bits[0], int):
                        continue
                    users = loads.get(bits[0], [])
                    if not users:
                        continue
                    if (len(users) != 1 or bits[0] in port_bits or users[0][1] != "DI"
                            or not _plain_ff(cells[users[0][0]], clock)):
                        plan = None
                        break
                    plan.append((k, users[0][0]))
                if not plan:
                    continue
                for k, ff in plan:
                    conns[f"DO{p}{k}"] = cells.pop(ff)["connections"]["Q"]
                params[f"REGMODE_{p}"] = "OUTREG"
                moved += len(plan)
    return moved


def absorb_output_registers_file(path: str | Path) -> int:
    """:func:`absorb_output_registers` on the JSON netlist at ``path``, rewritten atomically."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    moved = absorb_output_registers(netlist)
    if moved:
        write_text(path, json.dumps(netlist))
    return moved
