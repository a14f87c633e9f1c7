"""``lqer-hw gen``: write the Verilog and RTLIL of a registered design.

    lqer-hw gen DESIGN [-p NAME=VALUE]... -o DIR [--overwrite]
    lqer-hw gen --list

The output folder is checked before the design is elaborated (a new or empty
folder, or ``--overwrite``) and filled atomically: a folder of a previous run
is replaced only once every file is ready.
"""

from __future__ import annotations

import json
from pathlib import Path

from hw.designs import all_designs, emit, get_design, parse_params, top_name
from lqer_hw.args import Parser, UsageError, run
from lqer_hw.files import OutputFolder, write_text

__all__ = ["main"]


def _listing() -> str:
    lines = []
    for design in all_designs():
        lines.append(f"{design.name}: {design.summary}")
        for p in design.params:
            lines.append(f"  {p.name:<14} default {p.default:<5} {p.describe():<32} {p.doc}")
    return "\n".join(lines)


def _parser(prog: str) -> Parser:
    p = Parser(prog=prog, usage=f"{prog} DESIGN [-p NAME=VALUE]... -o DIR [--overwrite]\n"
                                f"       {prog} --list",
               description="Write DIR/TOP.v (Verilog) and DIR/TOP.il (RTLIL) of a design, plus "
                           "DIR/TOP.json (parameters, latency). TOP is the design name with '-' "
                           "replaced by '_'.",
               epilog="Designs and parameters: " + prog + " --list")
    p.add_argument("design", nargs="?", metavar="DESIGN", help="design name (see --list)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a design parameter (repeatable)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="output folder (required; created if missing)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty output folder (atomically, once the files are ready)")
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


def generate(design_name: str, params: dict[str, int]) -> dict[str, str]:
    """``{file name: text}`` of a design: ``TOP.v``, ``TOP.il`` and ``TOP.json``."""
    design = get_design(design_name)
    component = design.build(**params)
    name = top_name(design.name)
    return {f"{name}.v": emit(component, fmt="verilog", name=name),
            f"{name}.il": emit(component, fmt="rtlil", name=name),
            f"{name}.json": json.dumps({"design": design.name, "top": name, "params": params,
                                        **_facts(component)}, indent=2) + "\n"}


def _gen(argv: list[str], prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    if args.list:
        if args.design is not None or args.output is not None:
            raise UsageError("list must be given alone; got it with a design or -o")
        print(_listing())
        return 0
    if args.design is None:
        raise UsageError("DESIGN must be given (see --list); got nothing")
    if args.output is None:
        raise UsageError("output must be given (-o DIR); got nothing")
    out = OutputFolder(args.output, overwrite=args.overwrite, name="output")
    design = get_design(args.design)
    texts = generate(design.name, parse_params(design, args.param))
    with out as tmp:
        for filename, text in texts.items():
            write_text(tmp / filename, text)
    for filename in texts:
        print(Path(args.output) / filename)
    return 0


def main(argv: list[str], prog: str = "lqer-hw gen") -> int:
    # a design's parameter validation raises TypeError for a wrong kind of value
    return run(prog, lambda: _gen(argv, prog), usage_errors=(ValueError, TypeError))
