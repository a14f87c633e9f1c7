"""The outputs of ``lqer-hw cost``: JSON (everything), CSV (one row per layer, method and
target), Markdown (tables per layer kind, the model's totals, each engine's parts) and a
PNG bar chart of area relative to FP16 per method and target. Written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lqer_hw.files import atomic_file, write_text

__all__ = ["CSV_COLUMNS", "csv_text", "markdown", "kind_table", "plot_area", "write_reports",
           "FORMAT", "VERSION"]

FORMAT = "lqer-hw-cost"
VERSION = 1
CSV_COLUMNS = ("layer", "kind", "block_index", "method", "target", "d_in", "d_out", "luts",
               "ffs", "carries", "dsps", "lutrams", "transistors", "luts_vs_fp16", "buffer_bits",
               "buffer_brams", "table_bits", "table_brams", "weights_bits", "weights_brams",
               "traffic_bits", "gather_bits", "steps_per_token", "cycles_per_token",
               "extra_cycles_mean", "extra_cycles_p99", "extra_cycles_max", "source",
               "synthesised_luts")


def _value(record: dict, column: str):
    if column.startswith("extra_cycles_"):
        return record["extra_cycles"].get(column[len("extra_cycles_"):])
    return record.get(column)


def csv_text(layers: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in layers:
        row = []
        for c in CSV_COLUMNS:
            v = _value(r, c)
            row.append("" if v is None else round(v, 6) if isinstance(v, float) else v)
        writer.writerow(row)
    return buf.getvalue()


def _num(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    if isinstance(v, float) and v != int(v):
        return f"{v:,.1f}"
    return f"{int(v):,}"


def _bits(v) -> str:
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:,.2f} Mb"
    if v >= 1e3:
        return f"{v / 1e3:,.1f} kb"
    return f"{v} b"


def _mem(bits, brams) -> str:
    return _bits(bits) + ("" if brams is None else f" ({_num(brams)})")


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.3f}x"


def _extra(r: dict) -> str:
    e = r.get("extra_cycles") or {}
    if not e:
        return "–"
    return " / ".join(_num(e.get(k)) for k in ("mean", "p99", "max"))


def kind_table(layers: list[dict], target: str, methods: list[str]) -> str:
    """One row per layer kind and method on ``target`` (block 0's layers)."""
    first = min(r["block_index"] for r in layers)
    rows = [r for r in layers if r["target"] == target and r["block_index"] == first]
    head = ["layer", "d_in x d_out", "method", "LUTs", "FFs", "x FP16", "buffers (BRAM)",
            "weights", "cycles / token", "extra cycles mean / p99 / max", "source"]
    rule = ["---"] * 3 + ["---:"] * 7 + ["---"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    order = {m: i for i, m in enumerate(methods)}
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for kind in kinds:
        for r in sorted((r for r in rows if r["kind"] == kind), key=lambda r: order[r["method"]]):
            lines.append("| " + " | ".join([
                kind, f"{r['d_in']} x {r['d_out']}", r["method"], _num(r["luts"]), _num(r["ffs"]),
                _ratio(r["luts_vs_fp16"]), _mem(r["buffer_bits"] + r["table_bits"],
                                                 None if r["buffer_brams"] is None else
                                                 r["buffer_brams"] + (r["table_brams"] or 0)),
                _bits(r["weights_bits"]), _num(r["cycles_per_token"]), _extra(r),
                r["source"]]) + " |")
    return "\n".join(lines) + "\n"


def totals_table(totals: list[dict], target: str, methods: list[str]) -> str:
    head = ["method", "engine LUTs", "FFs", "x FP16", "buffers (BRAM)", "weights (BRAM if on chip)",
            "traffic / token", "cycles / token", "extra cycles mean / p99 / max", "source"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * 8 + "---|"]
    order = {m: i for i, m in enumerate(methods)}
    for t in sorted((t for t in totals if t["target"] == target), key=lambda t: order[t["method"]]):
        traffic = _bits(t["traffic_bits"]) + (f" + {_bits(t['gather_bits'])} gathered"
                                              if t["gather_bits"] else "")
        lines.append("| " + " | ".join([
            t["method"], _num(t["luts"]), _num(t["ffs"]), _ratio(t["luts_vs_fp16"]),
            _mem(t["buffer_bits"] + t["table_bits"],
                 None if t["buffer_brams"] is None else t["buffer_brams"] + (t["table_brams"] or 0)),
            _mem(t["weights_bits"], t["weights_brams"]), traffic, _num(t["cycles_per_token"]),
            _extra(t), t["source"]]) + " |")
    return "\n".join(lines) + "\n"


def parts_table(engine: dict) -> str:
    head = ["role", "part", "count", "LUTs", "FFs", "source", "basis"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---|---|"]
    for p in engine["parts"]:
        lines.append("| " + " | ".join([p["role"], p["part"], str(p["count"]), _num(p["luts"]),
                                        _num(p["ffs"]), p["source"], p["basis"]]) + " |")
    for m in engine["memories"]:
        lines.append("| " + " | ".join([m["role"], f"{m['kind']} {m['depth']} x {m['width']} b",
                                        "1", "–", "–", "by construction",
                                        _mem(m["bits"], m["brams"])]) + " |")
    return "\n".join(lines) + "\n"


_OUTPUT_TEXT = {"merged": "merged, requantized to MXINT", "terms": "two terms per channel"}


def markdown(result: dict) -> str:
    """The whole Markdown report of a run (``result``: the JSON document)."""
    cfg, model = result["config"], result["model"]
    methods, targets = result["methods"], result["targets"]
    lines = [f"# Cost of {model['name']} ({model['model_type']}, {model['blocks']} blocks, "
             f"{model['layers']} linear layers)", "",
             f"Shapes: {model['source']}.", "",
             f"Engines at {cfg['macs_per_cycle']} MACs per cycle ({cfg['lanes']} lane(s) of block "
             f"{cfg['block']}), one token at a time; W{cfg['w_width']}A{cfg['a_width']} MXINT with "
             f"{cfg['exponent_bits']}-bit shared exponents, rank {cfg['rank']}; "
             f"MXINT engines' output: {_OUTPUT_TEXT.get(cfg.get('layer_output'), 'terms')}; "
             f"outliers: {result['outliers'] or 'none'}. Memories: bits (block RAMs); weights are "
             "reported apart from the datapath. `source: estimated` marks engines with parts "
             "that are not synthesised project designs (docs/cost.md).", ""]
    for target in targets:
        lines += [f"## {target}", "", "### Per layer", "",
                  kind_table(result["layers"], target, methods),
                  "### Whole model (one engine for every layer: the logic of the largest layer "
                  "engine, the largest buffers; weights, traffic and cycles summed)", "",
                  totals_table(result["model_totals"], target, methods)]
        engines = [e for e in result["engines"] if e["target"] == target]
        biggest = max(engines, key=lambda e: e["d_in"] * e["d_out"])
        lines += [f"### Parts of each engine ({biggest['d_in']} x {biggest['d_out']})", ""]
        for method in methods:
            for e in engines:
                if e["method"] == method and (e["d_in"], e["d_out"]) == (biggest["d_in"],
                                                                         biggest["d_out"]):
                    lines += [f"**{method}**: {e['luts']:,} LUTs, {e['ffs']:,} FFs "
                              f"({e['synthesised_luts']:,} LUTs synthesised)", "",
                              parts_table(e)]
                    break
    return "\n".join(lines)


def plot_area(totals: list[dict], path: str | Path, *, title: str) -> bool:
    """Bars of each method's model-engine LUTs relative to FP16, one bar per target: the
    synthesised LUTs solid, the estimated ones hatched on top; False without FP16."""
    rows = [t for t in totals if t.get("luts_vs_fp16") is not None]
    if not rows:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(t["method"] for t in rows))
    targets = list(dict.fromkeys(t["target"] for t in rows))
    width = 0.8 / len(targets)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(methods) + 2), 4))
    for j, target in enumerate(targets):
        base = next(t["luts"] for t in rows if t["method"] == "fp16" and t["target"] == target)
        for i, method in enumerate(methods):
            t = next((t for t in rows if t["method"] == method and t["target"] == target), None)
            if t is None:
                continue
            x = i + (j - (len(targets) - 1) / 2) * width
            measured = t["synthesised_luts"] / base
            ax.bar(x, measured, width, color=f"C{j}", edgecolor="black", linewidth=0.5,
                   label=target if i == 0 else None)
            ax.bar(x, t["luts_vs_fp16"] - measured, width, bottom=measured, color=f"C{j}",
                   alpha=0.45, hatch="//", edgecolor="black", linewidth=0.5)
            ax.text(x, t["luts_vs_fp16"], f"{t['luts_vs_fp16']:.2f}", ha="center", va="bottom",
                    fontsize=7)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods)
    ax.set_ylabel("LUTs relative to FP16")
    ax.set_title(title + "\n(solid: synthesised parts; hatched: estimated parts and glue)",
                 fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, dpi=110, format="png")
    finally:
        plt.close(fig)
    return True


def write_reports(result: dict, out: str | Path) -> dict[str, Path]:
    """``cost.json``, ``cost.csv``, ``cost.md`` and ``area.png`` under ``out``."""
    out = Path(out)
    paths = {"json": out / "cost.json", "csv": out / "cost.csv", "md": out / "cost.md"}
    write_text(paths["json"], json.dumps(result, indent=1) + "\n")
    write_text(paths["csv"], csv_text(result["layers"]))
    write_text(paths["md"], markdown(result))
    if plot_area(result["model_totals"], out / "area.png",
                 title=f"{result['model']['name']}: engine area at "
                       f"{result['config']['macs_per_cycle']} MACs/cycle"):
        paths["png"] = out / "area.png"
    return paths
