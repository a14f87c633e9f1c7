"""The ``lqer-hw`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in the package that owns it and exposes
``main(argv: list[str], prog: str) -> int``. Modules are imported only when
their subcommand runs, so ``lqer-hw gen`` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

from lqer_hw import __version__

# name -> (module, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "gen": ("hw.gen_cli", "write Verilog and RTLIL of a design (--list shows designs)"),
    "sim": ("sim.cli", "run a design's RTL on vectors from an .npz file"),
    "synth": ("hw.synth.cli", "Yosys resource reports per FPGA family and ASIC"),
    "pnr": ("hw.synth.pnr_cli", "place and route with nextpnr, report Fmax"),
    "cost": ("hw.cost.cli", "area, memories and cycles of whole models per method at iso-throughput"),
    "quantize": ("sw.cli", "compute LQER / L2QER factors of a model"),
    "eval": ("sw.cli", "perplexity of a float or quantized model"),
    "profile": ("sw.profile_cli", "LLM.int8() outlier statistics of a model's activations"),
    "sweep": ("sweep.cli", "area against perplexity over a grid of configurations (Pareto)"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [
        "usage: lqer-hw [--version] [--help] COMMAND [ARGS...]",
        "",
        "Hardware generator and cost model for LQER / L2QER.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", "Run 'lqer-hw COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # a command is required: usage on stderr, as for any usage error
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"lqer-hw {__version__}")
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        print(f"lqer-hw: error: COMMAND must be one of {', '.join(SUBCOMMANDS)}; got {name!r}",
              file=sys.stderr)
        return 2
    module_name, _ = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"lqer-hw: error: command {name!r} is not available in this build",
                  file=sys.stderr)
            return 2
        raise
    return int(module.main(argv[1:], prog=f"lqer-hw {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
