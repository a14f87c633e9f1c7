"""Write (or check) the result tables of README.md, docs/sw.md and docs/llm_int8.md from the code.

    python scripts/docs_tables.py            # rewrite the generated blocks
    python scripts/docs_tables.py --check    # exit 1 naming every stale block (figures
                                             # within REL_TOL or a last digit: agrees)
    python scripts/docs_tables.py --bit-true # also the bit-true figures (about 6 more minutes)
    python scripts/docs_tables.py --sweep build/sweep  # also the README's sweep excerpt and plot

A generated block sits between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``; everything between the markers is replaced.
Every figure comes from ``lqer-hw eval --json`` on the embedded model and its
held-out split (windows of 128), run in this process; the LLM.int8() table also
scores the tests' tiny random LLaMA and OPT checkpoints (windows of 64) and
quotes ``lqer-hw profile``. ``make docs`` runs the
script; ``tests/cli/test_docs_tables.py`` (slow) runs ``--check``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = {"readme-eval": "README.md", "readme-perplexity": "README.md",
         "sw-fp": "docs/sw.md", "sw-perplexity": "docs/sw.md", "sw-recovery": "docs/sw.md",
         "sw-bit-true": "docs/sw.md",
         "readme-llm-int8": "README.md", "readme-llm-int8-profile": "README.md",
         "llm-int8": "docs/llm_int8.md", "llm-int8-profile": "docs/llm_int8.md",
         "readme-resq": "README.md", "sw-resq": "docs/sw.md", "sw-resq-bit-true": "docs/sw.md"}
BIT_TRUE_ONLY = ("sw-bit-true", "sw-resq-bit-true")
# from a finished `lqer-hw sweep` folder (--sweep DIR; `make docs` runs `make sweep` first)
FILES["readme-sweep"] = "README.md"
SWEEP_ONLY = ("readme-sweep",)
SWEEP_PLOT = "docs/img/pareto.png"
SWEEP_TARGET = "xc7-nodsp"
# LLM.int8(): the lower threshold that finds outliers in each small model, and the profile's
INT8_LOW = {"default": 4.0, "llama": 3.5, "opt": 3.5}
PROFILE_THRESHOLD = 4.0
WIDTHS = (4, 3)
COMMON = ["--rank", "32", "--block", "16", "--a-width", "8"]
W4A4 = ["--w-width", "4", "--a-width", "4", "--block", "16"]
# ResQ (Saxena et al. 2024) at the paper's widths: W4A4, r = d/8 coordinates at 8 bits
RESQ_VARIANTS = {"resq": [], "shared": ["--resq-basis", "shared"], "pca-down": ["--resq-down", "pca"],
                 "int": ["--resq-format", "int"]}


def evaluate(argv: list[str]) -> dict:
    """The JSON record and human line of ``lqer-hw eval ARGV --json``."""
    from sw import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*argv, "--json"], prog="lqer-hw eval")
    if code != 0:
        raise SystemExit(f"lqer-hw eval {' '.join(argv)} failed: {err.getvalue().strip()}")
    lines = out.getvalue().strip().splitlines()
    return {**json.loads(lines[-1]), "line": lines[-2]}


def results(bit_true: bool) -> dict:
    r = {"fp": evaluate([])}
    for w in WIDTHS:
        r[("mxint", w)] = evaluate(["--method", "mxint", "--w-width", str(w), "--block", "16",
                                    "--a-width", "8"])
        for method in ("lqer", "l2qer"):
            r[(method, w)] = evaluate(["--method", method, "--w-width", str(w), *COMMON])
            r[(method, w, "paper")] = evaluate(["--method", method, "--w-width", str(w), *COMMON,
                                                "--blocking", "paper"])
    int8_results(r)
    resq_results(r, bit_true)
    if bit_true:
        r[("mxint", 4, "bit-true")] = evaluate(["--method", "mxint", "--w-width", "4", "--block",
                                                "16", "--a-width", "8", "--bit-true"])
        for w in WIDTHS[:2]:
            r[("l2qer", w, "bit-true")] = evaluate(["--method", "l2qer", "--w-width", str(w),
                                                    *COMMON, "--bit-true"])
    return r


def resq_results(r: dict, bit_true: bool) -> None:
    """ResQ and its baselines at W4A4 on the embedded model (block 16, rank 32 for LQER)."""
    r[("mxint", "w4a4")] = evaluate(["--method", "mxint", *W4A4])
    for method in ("lqer", "l2qer"):
        r[(method, "w4a4")] = evaluate(["--method", method, *W4A4, "--rank", "32"])
    for name, extra in RESQ_VARIANTS.items():
        argv = ["--method", "resq", *W4A4, *extra]
        if name == "int":  # the integer formats take no MXINT block
            argv = [a for a in argv if a not in ("--block", "16")]
        r[("resq", name)] = evaluate(argv)
    if bit_true:
        r[("resq", "bit-true")] = evaluate(["--method", "resq", *W4A4, "--bit-true"])


def _resq_table(r: dict) -> str:
    fp, mx = r["fp"], r[("mxint", "w4a4")]
    rows = ["| W4A4, block 16 | fp | MXINT | ResQ (d/8 at 8 bits) | LQER rank 32 | L2QER rank 32 |",
            "|---|---:|---:|---:|---:|---:|",
            f"| embedded OPT | {_p(fp)} | {_p(mx)} | {_p(r[('resq', 'resq')])} | "
            f"{_p(r[('lqer', 'w4a4')])} | {_p(r[('l2qer', 'w4a4')])} |"]
    return "\n".join(rows)


def int8_results(r: dict) -> None:
    """W8A8 and LLM.int8() on the embedded model and the tests' tiny LLaMA / OPT, and the profile."""
    import tempfile

    from sw.profile_cli import run_profile
    from tests.sw.tiny_checkpoints import save, tiny

    with tempfile.TemporaryDirectory() as tmp:
        for model in ("default", "llama", "opt"):
            common = [] if model == "default" else ["--model", save(tiny(model), Path(tmp) / model),
                                                    "--seq-len", "64"]
            if model != "default":
                r[(model, "fp")] = evaluate(common)
            r[(model, "w8a8")] = evaluate([*common, "--method", "w8a8"])
            for t in (6.0, INT8_LOW[model]):
                r[(model, "llm-int8", t)] = evaluate([*common, "--method", "llm-int8", "--threshold", str(t)])
        r["profile"] = run_profile(out=str(Path(tmp) / "profile.json"), threshold=PROFILE_THRESHOLD,
                                   progress=False)


def _int8_table(r: dict) -> str:
    rows = ["| model | fp | W8A8 | LLM.int8() t=6 | LLM.int8() lower t | outlier columns per group at "
            "lower t: mean / max, layers affected | MXINT W4A8 | LQER W4A8 | L2QER W4A8 |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    names = {"default": "embedded OPT (4 layers, hidden 128)", "llama": "tiny random LLaMA (2 layers, hidden 32)",
             "opt": "tiny random OPT (2 layers, hidden 32)"}
    for model, name in names.items():
        fp = r["fp"] if model == "default" else r[(model, "fp")]
        low = INT8_LOW[model]
        found = r[(model, "llm-int8", low)]["outliers"]
        six = r[(model, "llm-int8", 6.0)]
        mx = (" | ".join(_p(r[(m, 4)]) for m in ("mxint", "lqer", "l2qer")) if model == "default"
              else "- | - | -")
        rows.append(f"| {name} | {_p(fp)} | {_p(r[(model, 'w8a8')])} | {_p(six)}"
                    + ("" if six["outliers"]["max_columns"] == 0 else " (outliers found)")
                    + f" | {_p(r[(model, 'llm-int8', low)])} (t={low:g}) | {found['mean_columns']:.1f} / "
                    f"{found['max_columns']}, {100 * found['layers_affected']:.0f}% | {mx} |")
    return "\n".join(rows)


def _int8_profile(r: dict) -> str:
    from sw.outliers import summary_markdown

    return (f"```\nlqer-hw profile --model default --data default --threshold {PROFILE_THRESHOLD:g} "
            "--out profile.json\n```\n\n" + summary_markdown(r["profile"], rows=r"layers\.3\.").rstrip("\n"))


def _p(record: dict) -> str:
    return f"{record['perplexity']:.3f}"


def render(name: str, r: dict) -> str:
    """The text of generated block ``name``."""
    fp = r["fp"]
    if name == "readme-eval":
        return "```\n" + fp["line"] + "\n" + r[("l2qer", 4)]["line"] + "\n```"
    if name == "readme-perplexity":
        rows = ["| weights | fp | MXINT (no correction) | LQER | L2QER |", "|---|---:|---:|---:|---:|"]
        rows += [f"| W{w}A8 | {_p(fp)} | {_p(r[('mxint', w)])} | {_p(r[('lqer', w)])} | "
                 f"{_p(r[('l2qer', w)])} |" for w in WIDTHS]
        return "\n".join(rows) + (
            "\n\nBlocking A along `d_in` and B along the rank (what hardware needs) against the "
            "LQER authors' blocking (A along the rank, B along `d_out`), W4A8 L2QER: "
            f"{_p(r[('l2qer', 4)])} vs {_p(r[('l2qer', 4, 'paper')])}.")
    if name == "sw-fp":
        return f"Held-out perplexity **{fp['perplexity']:.2f}**"
    if name == "sw-perplexity":
        rows = ["| | fp | MXINT (no correction) | LQER | L2QER | LQER, paper blocking | "
                "L2QER, paper blocking |", "|---|---:|---:|---:|---:|---:|---:|"]
        rows += [f"| W{w}A8 | {_p(fp)} | {_p(r[('mxint', w)])} | {_p(r[('lqer', w)])} | "
                 f"{_p(r[('l2qer', w)])} | {_p(r[('lqer', w, 'paper')])} | "
                 f"{_p(r[('l2qer', w, 'paper')])} |" for w in WIDTHS]
        return "\n".join(rows)
    if name == "sw-recovery":
        parts = []
        for w in WIDTHS:
            loss = r[("mxint", w)]["perplexity"] - fp["perplexity"]
            rec = [100 * (r[("mxint", w)]["perplexity"] - r[(m, w)]["perplexity"]) / loss
                   for m in ("lqer", "l2qer")]
            parts.append(f"{rec[0]:.0f} % / {rec[1]:.0f} % of the W{w} loss")
        return ("The correction recovers " + " and ".join(parts) + " (LQER / L2QER).")
    if name == "sw-bit-true":
        mx, l4, l3 = (r[("mxint", 4, "bit-true")], r[("l2qer", 4, "bit-true")],
                      r[("l2qer", 3, "bit-true")])
        fast = (r[("mxint", 4)], r[("l2qer", 4)], r[("l2qer", 3)])
        gaps = [abs(b["perplexity"] - f["perplexity"]) for b, f in zip((mx, l4, l3), fast)]
        return (f"MXINT W4A8 {_p(mx)}, L2QER W4A8 {_p(l4)}, L2QER W3A8 {_p(l3)}; the largest "
                f"difference from the fast figures above is {max(gaps):.4f}")
    if name == "readme-resq":
        return _resq_table(r) + (
            "\n\nResQ variants: bases shared by the layers that read one input "
            f"{_p(r[('resq', 'shared')])}; down projections by PCA instead of the Hadamard "
            f"transform {_p(r[('resq', 'pca-down')])}; the paper's integer formats (per-token "
            f"asymmetric activations, per-channel symmetric weights) {_p(r[('resq', 'int')])}.")
    if name == "sw-resq":
        fp, mx = r["fp"]["perplexity"], r[("mxint", "w4a4")]["perplexity"]
        rows = ["| variant | perplexity | share of the MXINT W4A4 loss recovered |",
                "|---|---:|---:|"]
        labels = {"resq": "ResQ: per-layer bases, Hadamard down projections, MXINT (default)",
                  "shared": "bases shared per input tensor (`--resq-basis shared`)",
                  "pca-down": "down projections by PCA too (`--resq-down pca`)",
                  "int": "the paper's integer formats (`--resq-format int`)"}
        for key, label in labels.items():
            p = r[("resq", key)]["perplexity"]
            rows.append(f"| {label} | {p:.3f} | {100 * (mx - p) / (mx - fp):.0f} % |")
        rows.append(f"| MXINT W4A4, no ResQ | {mx:.3f} | 0 % |")
        return "\n".join(rows)
    if name == "sw-resq-bit-true":
        bit, fast = r[("resq", "bit-true")], r[("resq", "resq")]
        return (f"ResQ W4A4 bit-true {_p(bit)} (fast {_p(fast)}, difference "
                f"{abs(bit['perplexity'] - fast['perplexity']):.4f})")
    if name in ("readme-llm-int8", "llm-int8"):
        return _int8_table(r)
    if name in ("readme-llm-int8-profile", "llm-int8-profile"):
        return _int8_profile(r)
    raise KeyError(name)


def sweep_excerpt(folder: Path) -> str:
    """The README's excerpt of a sweep report: its frontier table on :data:`SWEEP_TARGET`."""
    report = (folder / "report.md").read_text()
    head = f"## Pareto frontier: {SWEEP_TARGET}"
    if head not in report:
        raise SystemExit(f"sweep must be a finished lqer-hw sweep folder with a {SWEEP_TARGET} "
                         f"frontier; got {str(folder)!r}")
    section = report.split(head, 1)[1].split("\n## ", 1)[0].strip()
    return f"Pareto frontier on `{SWEEP_TARGET}` (from `build/sweep/report.md`):\n\n{section}"


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated:{name} -->)(.*?)(<!-- /generated:{name} -->)", re.S)


def blocks_in(text: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"<!-- generated:([\w-]+) -->(.*?)<!-- /generated:\1 -->",
                                            text, re.S)}


# ``--check`` compares the committed blocks with fresh ones number by number: PyTorch's CPU
# kernels differ between machines (vector width, BLAS), which moves perplexities in their
# third decimal (the ResQ PCA variant by 2e-4 between two of our machines). A figure agrees
# within REL_TOL of its value or one unit of its last printed digit; all text between the
# figures must be identical.
REL_TOL = 1e-3
# a figure stands alone: the digits of a name (W3A8, fp16) are text; a ratio's x may follow
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d[\d,]*(?:\.\d+)?(?![A-Za-wyz0-9_])")


def agrees(committed: str, fresh: str) -> bool:
    """Whether ``committed`` and ``fresh`` are the same text with the same figures, each
    pair within :data:`REL_TOL` (relative) or one unit of the last digit either prints."""
    split_a, split_b = _NUMBER.split(committed), _NUMBER.split(fresh)
    nums_a, nums_b = _NUMBER.findall(committed), _NUMBER.findall(fresh)
    if split_a != split_b or len(nums_a) != len(nums_b):
        return False
    for a, b in zip(nums_a, nums_b):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        decimals = max(len(t.split(".")[1]) if "." in t else 0 for t in (a, b))
        if abs(x - y) > max(REL_TOL * max(abs(x), abs(y)), 10.0 ** -decimals + 1e-12):
            return False
    return True


def _wrap(name: str, body: str) -> str:
    inline = "\n" not in body
    return body if inline else f"\n{body}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    ap.add_argument("--bit-true", action="store_true", help="also the bit-true figures (slow)")
    ap.add_argument("--sweep", type=Path, metavar="DIR",
                    help="a finished lqer-hw sweep folder: the README's excerpt and plot")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)  # the figures do not depend on it; the shared machine does
    r = results(args.bit_true)
    stale = []
    for file in sorted(set(FILES.values())):
        path = ROOT / file
        text = path.read_text()
        new = text
        for name in [n for n, f in FILES.items() if f == file]:
            if name in BIT_TRUE_ONLY and not args.bit_true:
                continue
            if name in SWEEP_ONLY and args.sweep is None:
                continue
            pattern = _pattern(name)
            if not pattern.search(new):
                raise SystemExit(f"{file} has no generated block {name!r}")
            body = _wrap(name, sweep_excerpt(args.sweep) if name in SWEEP_ONLY
                         else render(name, r))
            new = pattern.sub(lambda m: m[1] + body + m[3], new)
        if new != text and not (args.check and agrees(text, new)):
            stale.append(file)
            if not args.check:
                path.write_text(new)
    if args.sweep is not None and not args.check:
        import shutil
        (ROOT / SWEEP_PLOT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.sweep / "pareto.png", ROOT / SWEEP_PLOT)
    if args.check and stale:
        print(f"stale generated tables in {', '.join(stale)}: run make docs", file=sys.stderr)
        return 1
    print(("checked " if args.check else "wrote ") + ", ".join(sorted(set(FILES.values()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
