"""Write (or check) the hardware tables of docs/hw.md and docs/synth.md from the code.

    python scripts/hw_tables.py                      # rewrite the generated blocks
    python scripts/hw_tables.py --check              # exit 1 naming every stale block
    python scripts/hw_tables.py --synth build/synth --pnr build/pnr   # result folders

Blocks (between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``, as in
``scripts/docs_tables.py``):

- ``hw-designs`` (docs/hw.md): every registered design with its component, summary and
  latency at its defaults (``latency`` as the component publishes it);
- ``synth-default`` (docs/synth.md): the summary table and the "Synthesis time" lines of a
  ``lqer-hw synth --default`` folder's ``synth.json`` (``hw.synth.report``);
- ``pnr-default`` (docs/synth.md): Fmax per design and family from a ``lqer-hw pnr``
  folder's ``pnr.json``;
- ``readme-synth`` (README.md): the summary table of ``synth-default`` (as just written, or
  as docs/synth.md holds it), so the README never shows another run's figures.

The result blocks are rewritten only when their folder holds a report (``make synth`` /
``make pnr`` first); the design table always.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = {"hw-designs": "docs/hw.md", "synth-default": "docs/synth.md",
         "pnr-default": "docs/synth.md", "readme-synth": "README.md"}


def designs_table() -> str:
    """One row per registered design: name, component, summary, latency at the defaults."""
    from hw.designs import elaborate
    from hw.synth.defaults import registered_designs
    from hw.unused import inspected
    rows = ["| design | component | does | latency at the defaults (cycles) |",
            "|---|---|---|---|"]
    for design in registered_designs():
        component = inspected(elaborate(design.name, **design.defaults))
        cls = type(component)
        latency = getattr(component, "latency", None)
        rows.append(f"| `{design.name}` | `{cls.__module__}.{cls.__qualname__}` | "
                    f"{design.summary} | {'–' if latency is None else latency} |")
    return "\n".join(rows) + "\n"


def synth_block(records: list[dict]) -> str:
    from hw.synth.report import markdown_summary, time_summary
    versions = sorted({r.get("yosys", "") for r in records} - {""})
    flows = sorted({r.get("flow") for r in records} - {None})
    head = (f"{', '.join(versions)}, flow {', '.join(flows)}; LUTs per target, est. Fmax "
            "from Yosys's delay model (an estimate, not a measurement).\n\n")
    timing = time_summary(records)
    return head + markdown_summary(records) + ("\n" + timing if timing else "")


def pnr_block(records: list[dict]) -> str:
    from hw.synth.report import params_text
    rows = ["| Design | Parameters | Family | Device | LUTs | FFs | Fmax (MHz) | Note |",
            "|---|---|---|---|---|---|---|---|"]
    for r in records:
        fmax = r.get("fmax_mhz")
        rows.append(f"| {r['design']} | {params_text(r['params'])} | {r.get('pnr_family', '')} | "
                    f"{r.get('pnr_device', '')} | {r.get('luts', '–')} | {r.get('ffs', '–')} | "
                    f"{'–' if fmax is None else f'{fmax:.1f}'} | {r.get('pnr_note') or ''} |")
    return "\n".join(rows) + "\n"


def _records(folder: Path | None, stem: str) -> list[dict] | None:
    if folder is None or not (folder / f"{stem}.json").is_file():
        return None
    data = json.loads((folder / f"{stem}.json").read_text())
    return data["records"] if isinstance(data, dict) else data


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.S)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    ap.add_argument("--synth", type=Path, default=ROOT / "build" / "synth",
                    help="lqer-hw synth --default output folder (default build/synth)")
    ap.add_argument("--pnr", type=Path, default=ROOT / "build" / "pnr",
                    help="lqer-hw pnr --default output folder (default build/pnr)")
    args = ap.parse_args(argv)
    bodies = {"hw-designs": designs_table()}
    synth, pnr = _records(args.synth, "synth"), _records(args.pnr, "pnr")
    if synth:
        bodies["synth-default"] = synth_block(synth)
    if pnr:
        bodies["pnr-default"] = pnr_block(pnr)
    synth_body = bodies.get("synth-default")
    if synth_body is None:
        match = _pattern("synth-default").search((ROOT / FILES["synth-default"]).read_text())
        synth_body = match.group(2) if match else ""
    bodies["readme-synth"] = "".join(line for line in synth_body.splitlines(keepends=True)
                                     if line.startswith("|"))
    stale = []
    for name, body in bodies.items():
        path = ROOT / FILES[name]
        text = path.read_text()
        match = _pattern(name).search(text)
        if match is None:
            raise SystemExit(f"{FILES[name]} has no generated block {name!r}")
        if match.group(2) != body:
            stale.append(f"{FILES[name]} ({name})")
            if not args.check:
                text = text[:match.start(2)] + body + text[match.end(2):]
                path.write_text(text)
    if args.check and stale:
        print(f"stale generated tables in {', '.join(stale)}: run scripts/hw_tables.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
