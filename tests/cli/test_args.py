"""lqer_hw.args: one-line errors in the project's form, converters, the run wrapper."""

import argparse
import dataclasses

import pytest

from lqer_hw.args import (Parser, UsageError, add_field_options, choice, given_fields, integer,
                          integer_or, number, power_of_two, run)
from sw.options import Rule, option


def parser() -> Parser:
    p = Parser(prog="lqer-hw demo")
    p.add_argument("design", nargs="?", metavar="DESIGN")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("-j", "--jobs", type=integer(1), default=1)
    p.add_argument("--block", type=power_of_two(1, 256))
    p.add_argument("--timeout", type=number(above=0))
    p.add_argument("--mode", type=choice(("fast", "slow")))
    p.add_argument("--kind", choices=("a", "b"))
    p.add_argument("--guard-bits", type=integer_or("exact", 0, 32))
    return p


@pytest.mark.parametrize("argv, message", [
    ([], "output must be given; got nothing"),
    (["-o", "x", "--jobs", "0"], "jobs must be an integer >= 1; got '0'"),
    (["-o", "x", "-j", "two"], "jobs must be an integer >= 1; got 'two'"),
    (["-o", "x", "--block", "12"], "block must be a power of two in 1..256; got '12'"),
    (["-o", "x", "--block", "512"], "block must be a power of two in 1..256; got '512'"),
    (["-o", "x", "--timeout", "-5"], "timeout must be a number > 0; got '-5'"),
    (["-o", "x", "--timeout", "0"], "timeout must be a number > 0; got '0'"),
    (["-o", "x", "--timeout", "inf"], "timeout must be a number > 0; got 'inf'"),
    (["-o", "x", "--mode", "quick"], "mode must be one of fast, slow; got 'quick'"),
    (["-o", "x", "--kind", "c"], "kind must be one of a, b; got 'c'"),
    (["-o", "x", "--guard-bits", "40"], "guard-bits must be an integer in 0..32 or 'exact'; got '40'"),
    (["-o", "x", "--jobs"], "jobs must have a value; got nothing"),
    (["-o", "x", "--bogus", "1"], "arguments must be options of this command; got '--bogus'"),
    (["-o", "x", "--out", "y"], "arguments must be options of this command; got '--out'"),  # no abbreviations
])
def test_parser_errors_are_one_line_in_the_project_form(argv, message):
    with pytest.raises(UsageError) as info:
        parser().parse_args(argv)
    assert str(info.value) == message


def test_converted_values():
    args = parser().parse_args(["D", "-o", "x", "-j", "3", "--block", "16", "--timeout", "2.5",
                                "--guard-bits", "exact"])
    assert (args.design, args.jobs, args.block, args.timeout, args.guard_bits) == ("D", 3, 16, 2.5, "exact")


def test_run_turns_errors_into_one_line_and_exit_2(capsys):
    def bad():
        raise ValueError("rank must be an integer >= 1; got 0\nsecond line")

    assert run("lqer-hw demo", bad) == 2
    assert capsys.readouterr().err == "lqer-hw demo: error: rank must be an integer >= 1; got 0\n"


def test_run_interrupt_is_one_line_exit_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert run("lqer-hw demo", interrupted) == 130
    assert capsys.readouterr() == ("", "lqer-hw demo: interrupted\n")


def test_run_help_exits_0_and_other_errors_propagate(capsys):
    assert run("lqer-hw demo", lambda: parser().parse_args(["--help"])) == 0
    assert capsys.readouterr().out.startswith("usage: lqer-hw demo")
    with pytest.raises(TypeError):  # not a usage error unless the command says so
        run("lqer-hw demo", lambda: (_ for _ in ()).throw(TypeError("bug")))
    assert run("lqer-hw demo", lambda: (_ for _ in ()).throw(TypeError("width must be an int")),
               usage_errors=(ValueError, TypeError)) == 2


def test_debug_lets_the_traceback_through(monkeypatch):
    monkeypatch.setenv("LQER_DEBUG", "1")
    with pytest.raises(ValueError):
        run("lqer-hw demo", lambda: (_ for _ in ()).throw(ValueError("x")))


@dataclasses.dataclass(frozen=True)
class Demo:
    name: str = "n"
    rank: int = option(32, flag="--rank", rule=Rule("int", 1), help="rank")
    flavour: str = option("ocp", flag="--flavour", rule=Rule("choice", choices=("ocp", "lqer")),
                          help="flavour")


def test_options_generated_from_field_metadata(capsys):
    p = Parser(prog="lqer-hw demo")
    assert add_field_options(p, Demo) == ["rank", "flavour"]
    args = p.parse_args(["--rank", "8"])
    assert given_fields(args, Demo) == {"rank": 8}
    with pytest.raises(UsageError) as info:
        p.parse_args(["--rank", "0"])
    assert str(info.value) == "rank must be an integer >= 1; got '0'"
    with pytest.raises(UsageError) as info:
        p.parse_args(["--flavour", "x"])
    assert str(info.value) == "flavour must be one of ocp, lqer; got 'x'"
    p.print_help()
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--rank N rank (default 32)" in help_text and "--flavour {ocp,lqer} flavour (default ocp)" in help_text


def test_the_api_and_the_cli_share_the_rule():
    from sw.qconfig import QuantConfig
    with pytest.raises(ValueError) as api:
        QuantConfig(method="lqer", lowrank_width=17)
    with pytest.raises(argparse.ArgumentTypeError) as cli:
        add_and_parse("--lowrank-width", "17")
    assert str(api.value) == "lowrank_width must be an integer in 2..16; got 17"
    assert str(cli.value) == "must be an integer in 2..16; got '17'"


def add_and_parse(flag, text):
    """The CLI converter of QuantConfig's option ``flag`` applied to ``text``."""
    from lqer_hw.args import converter
    from sw.options import options_of
    from sw.qconfig import QuantConfig
    opt = next(o for o, _ in options_of(QuantConfig).values() if o.flag == flag)
    return converter(opt.rule.parse)(text)



def test_interrupt_tests_start_their_command_with_sigint_at_its_default():
    """A suite run in the background (SIGINT ignored, as a shell starts a background
    command) still gives the commands it interrupts a KeyboardInterrupt handler."""
    import signal
    import subprocess
    import sys

    from tests.interrupts import start_interruptible
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        proc = start_interruptible([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate(timeout=60)
    finally:
        signal.signal(signal.SIGINT, before)
    assert (plain.stdout, out) == ("False\n", "True\n")
