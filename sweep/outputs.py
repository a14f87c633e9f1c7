"""A sweep's outputs from its points and rows: ``results.csv``, ``pareto.png``, ``report.md``.

Rows are listed in spec order whatever order they finished in, so a sweep
run at once, in parallel, or killed and resumed gives the same files (the
report's "Time" section aside). Each file is written atomically
(``lqer_hw.files``).

The frontier of each target minimises area relative to FP16 and perplexity
(:func:`sweep.pareto.pareto_front`) over the points that have both.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from sweep.pareto import pareto_front

__all__ = ["CSV", "PNG", "REPORT", "table_rows", "frontiers", "write_csv", "write_plot",
           "write_report", "write_all"]

CSV, PNG, REPORT = "results.csv", "pareto.png", "report.md"
_CORE = ("method", "w_width", "a_width", "lowrank_width", "rank", "block")
_NEVER_COLUMNS = {"model", "data", "device", "trust_remote_code", "calib"}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _shown(name: str, value, method: str) -> bool:
    """Whether a config value means something for ``method`` (eval's applicability rule)."""
    from sweep.spec import _applies, _eval_options

    flag = _flag(name)
    if value is None:
        return False
    if flag not in _eval_options() or name == "method":
        return True
    return _applies(flag, value, method)


def _columns(points, rows) -> list[str]:
    """Core columns, then every other config field whose (applicable) value varies."""
    varying = []
    names = sorted({k for p in points for k in p.config} - set(_CORE) - _NEVER_COLUMNS)
    for name in names:
        values = {json.dumps(p.config.get(name)) for p in points
                  if _shown(name, p.config.get(name), p.config["method"])}
        if len(values) > 1:
            varying.append(name)
    return [*_CORE, *varying]


def table_rows(points, rows, targets) -> tuple[list[str], list[dict]]:
    """(header, one dict per point in spec order) -- the content of ``results.csv``."""
    config_columns = _columns(points, rows)
    header = ["label", *config_columns, "macs_per_cycle", "perplexity"]
    for t in targets:
        header += [f"area_{t}", f"area_fp16_{t}", f"area_relative_{t}"]
    header += ["status", "error", "key"]
    out = []
    for p in points:
        row = rows.get(p.key, {})
        method = p.config["method"]
        line = {"label": p.label, "key": p.key, "status": row.get("status", "missing"),
                "error": row.get("error"), "perplexity": row.get("perplexity"),
                "macs_per_cycle": p.hardware.get("macs_per_cycle")}
        for name in config_columns:
            value = p.config.get(name)
            line[name] = value if _shown(name, value, method) else None
        for t in targets:
            a = (row.get("area") or {}).get(t) or {}
            line[f"area_{t}"], line[f"area_fp16_{t}"] = a.get("area"), a.get("fp16")
            line[f"area_relative_{t}"] = a.get("relative")
        out.append(line)
    return header, out


def frontiers(points, rows, targets) -> dict[str, list[int]]:
    """Target -> indices (into ``points``) of its Pareto frontier (relative area, perplexity)."""
    out = {}
    for t in targets:
        coords = []
        for p in points:
            row = rows.get(p.key) or {}
            a = (row.get("area") or {}).get(t) or {}
            ok = row.get("status") == "ok"
            coords.append((a.get("relative") if ok else None, row.get("perplexity") if ok else None))
        out[t] = pareto_front(coords)
    return out


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: Path, points, rows, targets) -> None:
    from lqer_hw.files import write_text

    header, lines = table_rows(points, rows, targets)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for line in lines:
        writer.writerow([_fmt(line.get(h)) for h in header])
    write_text(path, buf.getvalue())


def _methods(points) -> list[str]:
    return list(dict.fromkeys(p.config["method"] for p in points))


def write_plot(path: Path, points, rows, targets, fronts) -> None:
    """Relative area (y) against perplexity (x) per target; frontier drawn and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lqer_hw.files import write_bytes

    ok = [p for p in points if (rows.get(p.key) or {}).get("status") == "ok"]
    has_area = {t: [p for p in ok if ((rows[p.key].get("area") or {}).get(t) or {}).get("relative")
                    is not None] for t in targets}
    panels = [t for t in targets if has_area[t]]
    colours = {m: f"C{i}" for i, m in enumerate(_methods(points))}
    if not panels:  # no area: perplexity per point, and why
        fig, ax = plt.subplots(figsize=(8, 0.28 * max(len(ok), 4) + 1.5))
        for i, p in enumerate(ok):
            ax.plot(rows[p.key]["perplexity"], i, "o", color=colours[p.config["method"]])
        ax.set_yticks(range(len(ok)), [p.label for p in ok], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("perplexity")
        ax.set_title("area not available (no cost model): perplexity per point", fontsize=9)
    else:
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
        for ax, t in zip(axes[0], panels):
            for m in colours:
                pts = [p for p in has_area[t] if p.config["method"] == m]
                if pts:
                    ax.scatter([rows[p.key]["perplexity"] for p in pts],
                               [rows[p.key]["area"][t]["relative"] for p in pts],
                               s=22, color=colours[m], label=m, alpha=0.7)
            front = [points[i] for i in fronts[t]]
            xs = [rows[p.key]["perplexity"] for p in front]
            ys = [rows[p.key]["area"][t]["relative"] for p in front]
            ax.plot(xs, ys, "-", color="black", lw=1, zorder=1)
            ax.scatter(xs, ys, s=70, facecolors="none", edgecolors="black", lw=1.2,
                       label="Pareto frontier", zorder=3)
            for p, x, y in zip(front, xs, ys):
                ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            ax.set_xlabel("perplexity")
            ax.set_ylabel("area relative to FP16")
            ax.set_title(t)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def _md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report_text(points, rows, spec, fronts, *, run: dict) -> str:
    """The Markdown report (see the module docstring)."""
    targets = spec.targets
    done = [p for p in points if p.key in rows]
    failed = [p for p in done if rows[p.key]["status"] != "ok"]
    hashes = sorted({rows[p.key].get("model_hash") for p in done if rows[p.key].get("model_hash")})
    models = sorted({p.config.get("model") for p in points})
    data = sorted({p.config.get("data") for p in points})
    units = {t: next((rows[p.key]["area"][t].get("unit") for p in done
                      if rows[p.key].get("area") and rows[p.key]["area"].get(t)
                      and rows[p.key]["area"][t].get("unit")), None) for t in targets}
    lines = ["# Sweep report", ""]
    lines += [f"- model: {', '.join(models)}" + (f" (hash {', '.join(h[:12] for h in hashes)})"
                                                  if hashes else ""),
              f"- data: {', '.join(data)}",
              f"- arithmetic: {', '.join(sorted({p.config.get('arithmetic') for p in points}))}",
              f"- points: {len(points)} ({len(done) - len(failed)} done, {len(failed)} failed, "
              f"{len(points) - len(done)} not run)",
              f"- targets: {', '.join(targets)}",
              f"- area provider: {run['area_provider']}"
              + (" (placeholder: the cost model is not in this build, so area is null)"
                 if run["area_provider"] == "sweep.area:unavailable" else ""),
              f"- spec: {spec.source}", ""]
    for t in targets:
        lines += [f"## Pareto frontier: {t}", ""]
        if not fronts[t]:
            lines += ["No point has both an area and a perplexity for this target: no frontier.", ""]
            continue
        unit = units[t] or "area"
        body = []
        for i in fronts[t]:
            p = points[i]
            a = rows[p.key]["area"][t]
            body.append([p.label, _num(rows[p.key]["perplexity"]), _num(a.get("area"), 0),
                         _num(a.get("relative"), 3)])
        lines += [_md_table(["point", "perplexity", unit, "area / FP16"], body), ""]
    lines += ["## Points", ""]
    header, table = table_rows(points, rows, targets)
    lines += [_md_table(["point", "perplexity", *[f"area / FP16 ({t})" for t in targets], "status"],
                        [[line["label"], _num(line["perplexity"]),
                          *[_num(line[f"area_relative_{t}"], 3) for t in targets],
                          line["status"]] for line in table]), ""]
    if failed:
        lines += ["## Failures", ""]
        lines += [f"- {p.label}: {rows[p.key]['error']}" for p in failed]
        lines += [""]
    lines += ["## Settings", ""]
    settings = {**spec.settings, **{k: v for k, v in spec.hardware.items()}}
    lines += [f"- [sweep] {k} = {json.dumps(v)}" for k, v in settings.items()]
    for n, table_ in enumerate(spec.tables, 1):
        lines += [f"- [[grid]] {n}: " + "; ".join(f"{k} = {json.dumps(v)}" for k, v in table_.items())]
    lines += ["", "## Time", ""]
    point_seconds = sum((rows[p.key].get("timing") or {}).get("seconds") or 0 for p in done)
    lines += [f"- this run: {run['seconds']:.1f} s wall, {run['ran']} points run, "
              f"{run['reused']} reused from earlier runs; engine {run['engine']}, "
              f"{run['workers']} worker{'s' if run['workers'] != 1 else ''}",
              f"- all points: {point_seconds:.1f} s of point time (quantize, evaluate, cost)", ""]
    lines += [f"Files: `{CSV}` (one row per point), `{PNG}` (area against perplexity), "
              "`results.jsonl` (the rows, resumable)."]
    return "\n".join(lines) + "\n"


def write_report(path: Path, points, rows, spec, fronts, *, run: dict) -> None:
    from lqer_hw.files import write_text

    write_text(path, report_text(points, rows, spec, fronts, run=run))


def write_all(folder: str | os.PathLike, points, rows, spec, *, run: dict) -> dict[str, Path]:
    """Write the three outputs; returns name -> path."""
    folder = Path(folder)
    fronts = frontiers(points, rows, spec.targets)
    paths = {"csv": folder / CSV, "plot": folder / PNG, "report": folder / REPORT}
    write_csv(paths["csv"], points, rows, spec.targets)
    write_plot(paths["plot"], points, rows, spec.targets, fronts)
    write_report(paths["report"], points, rows, spec, fronts, run=run)
    return paths
