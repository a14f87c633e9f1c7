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

A read port qualifies when its output register would do exactly what the fabric
flip-flops did: the port's output enable is unused (``OCE`` tied 1) and it has no reset
(``RST`` tied 0), and each of its used data bits drives exactly one load, the data input of
a ``TRELLIS_FF`` clocked by the port's clock, with no set/reset (``LSR`` tied 0) and reset
value 0 (``REGSET`` ``RESET``, as the output register powers up), and is not a port of the
module; the flip-flops either have no clock enable or all share one clock enable net,
which becomes the port's ``OCE`` (the output register's clock enable, TN1264). In the
36-bit pseudo-dual-port mode (Yosys's ``$__PDPW16KD_``: ``DATA_WIDTH_A`` 36, port A
writing) port B reads all 36 bits, ``DOA`` and ``DOB``, and its clock and ``OCEB`` govern
both output registers, so both ``REGMODE`` parameters change together (as nextpnr sets
them when it converts a ``PDPW16KD``, ``ecp5/pack.cc``) and ``OCEA`` takes the same enable.
The port's clock must be its clock pin uninverted (``CLKAMUX`` / ``CLKBMUX``). Anything
else is left alone.

The block RAM's read data reaches such a register directly only when Yosys built no
read-write collision emulation after it: ``hw.fifo.BufferedFIFO`` (the memory of
``RegisteredFIFO``'s default variant and of ``llm-int8-linear``'s result FIFO) declares its
memory collision-free (``hw.memory_collision``).
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


def _output_ff(cell: dict, clock):
    """The clock enable a ``TRELLIS_FF`` gives the output register (``["1"]`` for none,
    else its ``CE`` net) when it can move into one clocked by ``clock``; else None."""
    conns, params = cell["connections"], cell["parameters"]
    if not (cell["type"] == "TRELLIS_FF" and conns.get("CLK") == clock
            and params.get("CLKMUX", "CLK") == "CLK"
            and conns.get("LSR", ["0"]) == ["0"]
            and params.get("REGSET", "RESET") == "RESET"):
        return None
    cemux = str(params.get("CEMUX", "1")).strip()
    if cemux == "1":
        return ["1"]
    if cemux == "CE" and conns.get("CE"):
        return conns["CE"]
    return None


def _width(value) -> int:
    """A Yosys JSON parameter: an int, or a string of binary digits."""
    return value if isinstance(value, int) else int(str(value), 2)


def _read_groups(cell: dict):
    """(data ports, control port) per read port of a ``DP16KD``: in the 36-bit
    pseudo-dual-port mode (``DATA_WIDTH_A`` 36, Yosys's ``$__PDPW16KD_``) port B reads all
    36 bits, its clock and ``OCEB`` governing the output registers of both ``DOA`` and
    ``DOB`` (``REGMODE_A`` = ``REGMODE_B``, as nextpnr's own ``PDPW16KD`` conversion sets
    them; ``OCEA``, which Yosys ties to 0 there and nextpnr's conversion leaves unused,
    gets the same enable, right whichever of the two enables the silicon reads); else
    each port reads its own."""
    if _width(cell["parameters"].get("DATA_WIDTH_A", 18)) == 36:
        return [(PORTS, "B")]
    return [((p,), p) for p in PORTS]


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
            for data_ports, control in _read_groups(cell):
                clock = conns.get(f"CLK{control}")
                if (any(params.get(f"REGMODE_{p}", "NOREG") != "NOREG" for p in data_ports)
                        or any(conns.get(f"CLK{p}") != clock for p in data_ports)
                        or any(params.get(f"CLK{p}MUX", f"CLK{p}") != f"CLK{p}"
                               for p in data_ports)
                        or any(conns.get(f"RST{p}") != ["0"] for p in data_ports)
                        or conns.get(f"OCE{control}") != ["1"]):
                    continue
                plan, enables = [], set()
                for p in data_ports:
                    for k in range(DATA_BITS):
                        bits = conns.get(f"DO{p}{k}")
                        if not bits or not isinstance(bits[0], int):
                            continue
                        users = loads.get(bits[0], [])
                        if not users:
                            continue
                        enable = (None if len(users) != 1 or bits[0] in port_bits
                                  or users[0][1] != "DI"
                                  else _output_ff(cells[users[0][0]], clock))
                        if enable is None:
                            plan = None
                            break
                        enables.add(tuple(enable))
                        plan.append((f"DO{p}{k}", users[0][0]))
                    if plan is None:
                        break
                if not plan or len(enables) != 1:
                    continue
                enable = list(enables.pop())
                for p in data_ports:    # PDP: OCEA too (nextpnr ties an unused OCEA to 1)
                    conns[f"OCE{p}"] = enable
                for pin, ff in plan:
                    conns[pin] = cells.pop(ff)["connections"]["Q"]
                for p in data_ports:
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
