"""``lqer-hw gen``: write the Verilog and RTLIL of a registered design."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hw.atomic import write_text_atomic
from hw.designs import all_designs, emit, get_design, parse_params, top_name


def _listing() -> str:
    lines = []
    for design in all_designs():
        lines.append(f"{design.name}: {design.summary}")
        for p in design.params:
            lines.append(f"  {p.name:<14} default {p.default:<5} {p.describe():<32} {p.doc}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every lqer-hw error
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Write DIR/TOP.v (Verilog) and DIR/TOP.il (RTLIL) of a "
                "design, plus DIR/TOP.json (parameters, latency). TOP is the design name with "
                "'-' replaced by '_'.", epilog="Designs and parameters: " + prog + " --list")
    p.add_argument("design", nargs="?", help="design name (see --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a design parameter (repeatable)")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--list", action="store_true", help="list designs and their parameters")
    return p


def _facts(component) -> dict:
    """Published integer properties of a component (latency, widths) for the JSON file."""
    facts = {}
    for name in ("latency", "sum_width", "acc_width", "lanes", "exponent_range"):
        value = getattr(component, name, None)
        if value is not None:
            facts[name] = list(value) if isinstance(value, tuple) else value
    return facts


def main(argv: list[str], prog: str = "lqer-hw gen") -> int:
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
        if args.list:
            print(_listing())
            return 0
        if args.design is None:
            raise _UsageError("DESIGN is required (see --list)")
        if args.output is None:
            raise _UsageError("-o DIR is required")
        design = get_design(args.design)
        params = parse_params(design, args.param)
        component = design.build(**params)
        name = top_name(design.name)
        texts = {f"{name}.v": emit(component, fmt="verilog", name=name),
                 f"{name}.il": emit(component, fmt="rtlil", name=name)}
        texts[f"{name}.json"] = json.dumps({"design": design.name, "top": name, "params": params,
                                            **_facts(component)}, indent=2) + "\n"
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise _UsageError(f"-o must name a folder; got file {str(out)!r}")
    except (_UsageError, ValueError, TypeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in texts.items():
        write_text_atomic(out / filename, text)
        print(out / filename)
    return 0
