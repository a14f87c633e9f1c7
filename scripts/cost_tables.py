"""Write (or check) the generated tables of docs/cost.md and README.md (`make docs-cost`)
from what the cost model computes.

    python scripts/cost_tables.py               # rewrite the generated blocks
    python scripts/cost_tables.py --check       # exit 1 naming every stale block
    python scripts/cost_tables.py --validation [-j 2]  # also the validation table (synthesises
                                                # each method's design at every validation shape)

A block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``. The
figures come from ``hw.cost`` run in this process on the built-in ``llama-7b`` shapes at
the defaults of ``lqer-hw cost`` (16 MACs per cycle, W4A8, block 16, rank 32, the LQER
authors' 353 outlier columns) on ``xc7-nodsp``, through the user's synthesis cache.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "cost.md"
README = ROOT / "README.md"
README_BLOCKS = ("readme-cost",)
TARGET = "xc7-nodsp"
JOBS = 1
# The LQER authors' hardware workbook, LLaMA-7B FFN layer (4096 x 11008), 16 MACs per
# cycle, fabric only (LUTs): as quoted in issue 15 and the LQER paper's area comparison.
WORKBOOK = {"fp16": ("FP16", 6125), "l2qer": ("L2QER-MXINT W4A8", 1993),
            "llm-int4": ("LLM.int4(), 353 high-precision columns", 130019),
            "aqas": ("AQAS W4A8", 2760)}


def _run_llama(progress) -> dict:
    from hw.cost.cli import check_inputs, cost
    from hw.cost.methods import CostConfig
    from hw.synth.cache import ResultCache, default_cache_root

    cfg = CostConfig()
    shapes, methods, targets, profile, _ = check_inputs(
        model="llama-7b", methods=None, cfg=cfg, targets=[TARGET], outliers=None,
        outlier_columns=None)
    with tempfile.TemporaryDirectory() as tmp:
        return cost(shapes=shapes, methods=methods, cfg=cfg, targets=targets, profile=profile,
                    build=Path(tmp), cache=ResultCache(default_cache_root("synth")),
                    progress=progress)


def ffn_table(result: dict) -> str:
    from hw.cost.report import _bits, _num
    rows = [r for r in result["layers"] if r["layer"] == "model.layers.0.mlp.up_proj"
            and r["target"] == TARGET]
    fp16 = next(r for r in rows if r["method"] == "fp16")
    wb_fp16 = WORKBOOK["fp16"][1]
    lines = ["| method | LUTs | FFs | x FP16 | buffers (RAMB36) | source | LQER workbook | LUTs "
             "| x FP16 |", "|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for r in rows:
        label, wb = WORKBOOK.get(r["method"], ("–", None))
        lines.append(
            f"| {r['method']} | {_num(r['luts'])} | {_num(r['ffs'])} | "
            f"{r['luts'] / fp16['luts']:.3f}x | {_bits(r['buffer_bits'] + r['table_bits'])} "
            f"({_num(r['buffer_brams'] + r['table_brams'])}) | {r['source']} "
            f"({100 * r['synthesised_luts'] / r['luts']:.0f}% synthesised) | {label} | "
            f"{_num(wb)} | {'–' if wb is None else f'{wb / wb_fp16:.3f}x'} |")
    label, wb = WORKBOOK["aqas"]
    lines.append(f"| – (not modelled) | – | – | – | – | – | {label} | {_num(wb)} | "
                 f"{wb / wb_fp16:.3f}x |")
    return "\n".join(lines)


def ffn_parts(result: dict) -> str:
    from hw.cost.report import parts_table
    out = []
    for method in ("fp16", "l2qer", "llm-int8"):
        e = next(e for e in result["engines"] if e["method"] == method and e["target"] == TARGET
                 and (e["d_in"], e["d_out"]) == (4096, 11008))
        out += [f"**{method}** ({e['luts']:,} LUTs, {e['ffs']:,} FFs):", "", parts_table(e)]
    return "\n".join(out).rstrip()


def readme_table(result: dict) -> str:
    """The README's table: the FFN layer beside the workbook, and the whole model."""
    from hw.cost.report import _bits, _num
    ffn = {r["method"]: r for r in result["layers"]
           if r["layer"] == "model.layers.0.mlp.up_proj" and r["target"] == TARGET}
    totals = {t["method"]: t for t in result["model_totals"] if t["target"] == TARGET}
    wb_fp16 = WORKBOOK["fp16"][1]
    lines = ["| method | FFN layer LUTs | x FP16 | workbook x FP16 | model engine LUTs | x FP16 "
             "| weight bits read per token | cycles per token |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method in result["methods"]:
        r, t = ffn[method], totals[method]
        wb = WORKBOOK.get(method, (None, None))[1]
        lines.append(
            f"| {method} | {_num(r['luts'])} | {r['luts_vs_fp16']:.3f}x | "
            f"{'–' if wb is None else f'{wb / wb_fp16:.3f}x'} | {_num(t['luts'])} | "
            f"{t['luts_vs_fp16']:.3f}x | {_bits(t['traffic_bits'] + t['gather_bits'])} | "
            f"{_num(t['cycles_per_token'])} |")
    return "\n".join(lines)


def model_table(result: dict) -> str:
    from hw.cost.report import totals_table
    return totals_table(result["model_totals"], TARGET, result["methods"]).rstrip()


def method_table() -> str:
    """One row per part; methods with the same part list share their rows."""
    from hw.cost.methods import METHODS, CostConfig, Sizing
    from hw.cost.outliers import OutlierCounts
    from hw.cost.parts import resolve
    s = Sizing(CostConfig(), 4096, 11008, OutlierCounts(353.0, 353, 353, 353))
    lists: dict[tuple, list[str]] = {}
    for name, m in METHODS.items():
        # a part of the other layer output only counts 0 here: not listed
        rows = tuple((u.role, u.part(s).label, u.count(s)) for u in m.uses if u.count(s))
        lists.setdefault(rows, []).append(name)
    lines = ["| methods | part (LLaMA-7B FFN, 16 MACs/cycle) | count | source |",
             "|---|---|---:|---|"]
    for rows, names in lists.items():
        for role, label, count in rows:
            source = resolve(next(u.part(s) for u in METHODS[names[0]].uses
                                  if u.role == role)).source
            lines.append(f"| {', '.join(names)} | {role}: `{label}` | {count} | {source} |")
    return "\n".join(lines)


def validation_table(progress) -> str:
    from hw.cost import validate
    from hw.cost.methods import CostConfig
    from hw.synth.cache import ResultCache, default_cache_root
    with tempfile.TemporaryDirectory() as tmp:
        rows = validate.validate(CostConfig(), validate.SHAPES, validate.TARGETS, Path(tmp),
                                 cache=ResultCache(default_cache_root("synth")),
                                 workers=JOBS, progress=progress)
    return validate.markdown(rows)


def _replace(text: str, name: str, body: str, where: str = "docs/cost.md") -> str:
    pattern = re.compile(rf"(<!-- generated:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- /generated:"
                         rf"{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no block {name!r}")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    p.add_argument("--validation", action="store_true")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel Yosys runs (validation)")
    args = p.parse_args(argv)
    global JOBS
    JOBS = args.jobs

    def progress(done, total, job, outcome):
        print(f"[{done}/{total}] {job.design} @ {job.target.name}", file=sys.stderr, flush=True)

    result = _run_llama(progress)
    blocks = {"cost-llama7b-ffn": ffn_table(result), "cost-llama7b-parts": ffn_parts(result),
              "cost-llama7b-model": model_table(result), "cost-methods": method_table()}
    if args.validation:
        blocks["cost-validation"] = validation_table(progress)
    blocks["readme-cost"] = readme_table(result)
    stale, writes = [], []
    for path in (DOC, README):
        where = str(path.relative_to(ROOT))
        mine = {n: b for n, b in blocks.items() if (n in README_BLOCKS) == (path == README)}
        text = path.read_text()
        new = text
        for name, body in mine.items():
            new = _replace(new, name, body, where)
        stale += [f"{where}: block {n} is stale" for n, b in mine.items()
                  if _replace(text, n, b, where) != text]
        writes.append((path, new, mine))
    if args.check:
        for line in stale:
            print(line, file=sys.stderr)
        return 1 if stale else 0
    for path, new, mine in writes:
        path.write_text(new)
        print(f"wrote {path.relative_to(ROOT)} ({', '.join(mine)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
