"""An Fmax *estimate* from Yosys's own delay model, for families nextpnr cannot place here.

nextpnr from PyPI places ECP5 and iCE40 only (:mod:`hw.synth.pnr`); for Xilinx 7-series
there is no open place and route in this project. What Yosys does have is the delay model
ABC9 maps with:

- cell delays in the ``specify`` blocks of the family's ``cells_sim.v`` (7-series: the
  prjxray-db Artix-7 timings; iCE40 HX: the icestorm ``timings_hx1k.txt`` figures), in ps;
- one wire delay per LUT level, the ``-W`` ABC9 is given (``synth_xilinx.abc9.xc7.W`` =
  300 ps, ``synth_ice40.abc9.hx.W`` = 250 ps in Yosys 0.70).

After synthesis (and after ``stat``) the flow reloads the cell library with its timing arcs
(``synth_*`` ends with ``blackbox =A:whitebox``, which drops them) and runs Yosys's ``sta``
pass, which reports the path with the largest sum of cell delays. :func:`estimate` adds to
that path what ABC9 adds: the wire delay once per LUT on it, and, when the path starts at a
primary input, the clock-to-output delay of the flip-flop that would drive it (inputs and
outputs are taken as registered, as in the place-and-route harness, :mod:`hw.synth.harness`).

This is an estimate, never a measurement: routing is one constant per LUT level, the path is
the one with the largest *cell* delay (a path with more LUT levels but smaller cells can be
slower once wires are added), and the cell delays are of one speed grade. The reports print
it as ``est. Fmax`` beside the ``timing_model`` that made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TimingModel", "XC7_TIMING", "ICE40_HX_TIMING", "CriticalPath", "PathStep",
           "parse_sta", "estimate", "STA_FILE"]

STA_FILE = "sta.txt"


@dataclass(frozen=True)
class TimingModel:
    name: str                 # stated in every record the model produced
    library: str              # Yosys command that loads the cell library with its timing arcs
    wire_ps: int              # added once per LUT on the path (ABC9's -W for the family)
    launch_ps: int            # flip-flop clock-to-output, for a path from a primary input
    lut_cell: str             # regular expression of the LUT cell types
    flop_cell: str            # regular expression of the flip-flop cell types
    source: str               # where the numbers come from

    def commands(self) -> tuple[str, ...]:
        """Yosys commands run after ``stat``: reload the timed library, then ``sta``."""
        return ("delete =A:blackbox", self.library, f"tee -q -o {STA_FILE} sta")


XC7_TIMING = TimingModel(
    "yosys-sta xc7 (prjxray-db Artix-7 cell delays, 300 ps per LUT level)",
    "read_verilog -lib -specify +/xilinx/cells_sim.v",
    wire_ps=300, launch_ps=303, lut_cell=r"^LUT[1-6]$", flop_cell=r"^FD[CPRS]E(_1)?$",
    source="Yosys 0.70 techlibs/xilinx/cells_sim.v specify blocks (prjxray-db artix7 "
           "timings; FDRE clock-to-Q 303 ps) and synth_xilinx.abc9.xc7.W = 300 ps")

ICE40_HX_TIMING = TimingModel(
    "yosys-sta ice40-hx (icestorm HX1K cell delays, 250 ps per LUT level)",
    "read_verilog -lib -specify -D ICE40_HX +/ice40/cells_sim.v",
    wire_ps=250, launch_ps=540, lut_cell=r"^SB_LUT4$", flop_cell=r"^SB_DFF",
    source="Yosys 0.70 techlibs/ice40/cells_sim.v specify blocks under ICE40_HX (icestorm "
           "timings_hx1k.txt; SB_DFF clock-to-Q 540 ps) and synth_ice40.abc9.hx.W = 250 ps")


@dataclass(frozen=True)
class PathStep:
    arrival_ps: int
    cell_type: str
    from_port: str
    to_port: str


@dataclass(frozen=True)
class CriticalPath:
    """The path ``sta`` reports: ``steps`` from the start to the end, ``arrival_ps`` at its
    end (setup requirement included), ``endpoint`` ``"CELLTYPE.PORT"`` or
    ``"<primary output>"``."""

    arrival_ps: int
    steps: tuple[PathStep, ...]
    endpoint: str


_HEAD = re.compile(r"^Latest arrival time in '.*' is (-?\d+):\s*$")
_ARC = re.compile(r"^\s*(-?\d+) \S.*\(([^().\s]+)\.([^()\s]+)->([^()\s]+)\)\s*$")
_END = re.compile(r"^\s*(-?\d+) .*\(([^()]+)\)\s*$")


def parse_sta(text: str) -> CriticalPath | None:
    """The critical path of Yosys ``sta`` output; None when it found no timing path.

    Raises ``ValueError`` naming what is missing when the text is not ``sta`` output.
    """
    if "No timing paths found." in text:
        return None
    lines = text.splitlines()
    head = next((i for i, ln in enumerate(lines) if _HEAD.match(ln)), None)
    if head is None:
        raise ValueError("sta output must contain 'Latest arrival time in ... is N:'; got none")
    arrival = int(_HEAD.match(lines[head]).group(1))
    steps: list[PathStep] = []
    endpoint = None
    for line in lines[head + 1:]:
        if not line.strip() or line.startswith("Arrival histogram"):
            break
        arc = _ARC.match(line)
        if arc:
            steps.append(PathStep(int(arc.group(1)), arc.group(2), arc.group(3), arc.group(4)))
            continue
        end = _END.match(line)
        if end and endpoint is None and not steps:
            endpoint = end.group(2)
    if not steps:
        raise ValueError("sta output must list the critical path's cells; got none")
    return CriticalPath(arrival, tuple(reversed(steps)), endpoint or "<unknown>")


def estimate(path: CriticalPath | None, model: TimingModel) -> dict:
    """Estimated critical delay and Fmax of ``path`` under ``model``.

    Returns ``est_delay_ns`` (cell delays + ``wire_ps`` per LUT + launch), ``est_fmax_mhz``
    (1 / delay), ``est_cell_ns`` (the cell delays ``sta`` summed), ``est_lut_levels``,
    ``est_path`` (the cell types on the path, in order) and ``timing_model``; every value
    None when there is no path (a design without registers or logic).
    """
    empty = {"est_fmax_mhz": None, "est_delay_ns": None, "est_cell_ns": None,
             "est_lut_levels": None, "est_path": None, "timing_model": model.name}
    if path is None:
        return empty
    lut, flop = re.compile(model.lut_cell), re.compile(model.flop_cell)
    levels = sum(1 for s in path.steps if lut.search(s.cell_type))
    launch = 0 if flop.search(path.steps[0].cell_type) else model.launch_ps
    delay_ps = path.arrival_ps + launch + levels * model.wire_ps
    if delay_ps <= 0:
        return empty
    return {"est_fmax_mhz": round(1e6 / delay_ps, 1), "est_delay_ns": round(delay_ps / 1000, 3),
            "est_cell_ns": round(path.arrival_ps / 1000, 3), "est_lut_levels": levels,
            "est_path": " > ".join(s.cell_type for s in path.steps) + f" > {path.endpoint}",
            "timing_model": model.name}
