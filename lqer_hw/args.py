"""The command-line kit every ``lqer-hw`` subcommand uses.

- :class:`Parser`: an :class:`argparse.ArgumentParser` whose errors are one
  line in the project's form, ``PARAM must be ...; got ...`` (raised as
  :class:`UsageError`, never printed with the usage block).
- Value converters for ``type=`` (:func:`integer`, :func:`power_of_two`,
  :func:`number`, :func:`choice`, :func:`integer_or`): their messages leave
  the option name out; the parser puts it in front.
- :func:`run`: the wrapper around a subcommand's body. A :class:`UsageError`
  or any ``ValueError`` (every bad-input error of ``sw``/``hw`` is one) is
  printed as ``PROG: error: MESSAGE`` with exit status 2; ``KeyboardInterrupt``
  as ``PROG: interrupted`` with exit status 130 (128 + SIGINT, the shell's
  convention); ``--help`` exits 0. ``LQER_DEBUG=1`` re-raises instead, for a
  traceback.
- :func:`status`: one progress line on stderr, ``PROG: MESSAGE``.

An option is named in messages by its long flag without the dashes
(``--w-width`` -> ``w-width``), a positional by its metavar (``DESIGN``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, Iterable

__all__ = ["UsageError", "Parser", "run", "status", "integer", "power_of_two", "number", "choice",
           "integer_or", "converter", "add_field_options", "given_fields", "option_name",
           "INTERRUPTED_STATUS", "USAGE_STATUS"]

USAGE_STATUS = 2
INTERRUPTED_STATUS = 130  # 128 + SIGINT (2): what a shell reports for a Ctrl-C'd command


class UsageError(ValueError):
    """A bad command line or input: one line ``PARAM must be ...; got ...``, exit status 2."""


# ---------------------------------------------------------------- converters

def _integer_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in {low}..{high}"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """``type=`` converter: a base-10 integer in ``low..high`` (either bound may be open)."""
    allowed = _integer_text(low, high)

    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except (TypeError, ValueError):
            value = None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text!r}")
        return value

    convert.__name__ = "integer"
    return convert


def power_of_two(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """``type=`` converter: a power of two in ``low..high``."""
    span = f" in {low}..{high}" if high is not None else " (1, 2, 4, ...)"
    as_int = integer()

    def convert(text: str) -> int:
        try:
            value = as_int(text)
        except argparse.ArgumentTypeError:
            value = None
        if value is None or value < low or value & (value - 1) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a power of two{span}; got {text!r}")
        return value

    convert.__name__ = "power of two"
    return convert


def number(*, above: float | None = None, low: float | None = None,
           below: float | None = None) -> Callable[[str], float]:
    """``type=`` converter: a finite number, ``> above`` / ``>= low`` / ``< below`` where given."""
    parts = []
    if above is not None:
        parts.append(f"> {above:g}")
    if low is not None:
        parts.append(f">= {low:g}")
    if below is not None:
        parts.append(f"< {below:g}")
    allowed = "a number" + (" " + " and ".join(parts) if parts else "")

    def convert(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = None
        if (value is None or value != value or value in (float("inf"), float("-inf"))
                or (above is not None and not value > above) or (low is not None and value < low)
                or (below is not None and not value < below)):
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text!r}")
        return value

    convert.__name__ = "number"
    return convert


def choice(values: Iterable[str]) -> Callable[[str], str]:
    """``type=`` converter: one of ``values`` (listed in the message in their order)."""
    values = tuple(values)

    def convert(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(values)}; got {text!r}")
        return text

    convert.__name__ = "choice"
    return convert


def integer_or(word: str, low: int | None = None, high: int | None = None) -> Callable[[str], int | str]:
    """``type=`` converter: the word ``word`` (returned as is) or an integer in ``low..high``."""
    as_int = integer(low, high)
    allowed = f"{_integer_text(low, high)} or {word!r}"

    def convert(text: str) -> int | str:
        if text == word:
            return word
        try:
            return as_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text!r}") from None

    convert.__name__ = "integer or word"
    return convert


def converter(parse: Callable[[str], object], name: str = "value") -> Callable[[str], object]:
    """``type=`` converter from a ``parse`` that raises ``ValueError("must be ...; got ...")``."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


# ---------------------------------------------------------------- options from dataclasses

def add_field_options(parser: argparse.ArgumentParser, cls, *, group: str | None = None,
                      prefix: str = "") -> list[str]:
    """Add one option per field of dataclass ``cls`` whose metadata holds an ``"option"``.

    The metadata object gives ``flag``, ``help``, ``metavar`` and ``rule.parse``
    (``ValueError("must be ...; got ...")`` for a bad text), e.g.
    :class:`sw.options.Option`. The argparse default is None, so a command can
    tell a given option from a default one (:func:`given_fields`); the help
    states the field's default. Each dest is ``prefix + field name``. Returns
    the dests added.
    """
    import dataclasses

    target = parser.add_argument_group(group) if group else parser
    added = []
    for f in dataclasses.fields(cls):
        opt = f.metadata.get("option")
        if opt is None:
            continue
        rule = opt.rule
        metavar = opt.metavar or ("{" + ",".join(rule.choices) + "}" if rule.choices else "N")
        target.add_argument(opt.flag, dest=prefix + f.name, default=None, metavar=metavar,
                            type=converter(rule.parse, f.name),
                            help=f"{opt.help} (default {f.default})")
        added.append(prefix + f.name)
    return added


def given_fields(args: argparse.Namespace, cls, *, prefix: str = "") -> dict:
    """``{field: value}`` of the options of ``cls`` given on the command line (not None)."""
    import dataclasses

    return {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)
            if "option" in f.metadata and getattr(args, prefix + f.name, None) is not None}


# ---------------------------------------------------------------- parser

def option_name(action: argparse.Action) -> str:
    """How messages name an option: its long flag without dashes, or a positional's metavar."""
    if action.option_strings:
        longest = max(action.option_strings, key=len)
        return longest.lstrip("-")
    return action.metavar if isinstance(action.metavar, str) else action.dest.upper()


_ARGUMENT = re.compile(r"argument (?P<flags>[^:]+): (?P<message>.*)", re.S)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors (:class:`UsageError`) in the project's form.

    Abbreviated long options are off (``--calib`` never means ``--calib-length``).
    ``--help`` still prints and exits 0 (:func:`run` turns its ``SystemExit`` into
    the return value).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _name_of(self, flags: str) -> str:
        """The name of the action argparse calls ``flags`` (``-o/--output``, a metavar, a dest)."""
        for action in self._actions:
            if flags in ("/".join(action.option_strings), action.metavar, action.dest):
                return option_name(action)
        return flags.split("/")[-1].lstrip("-")

    def rephrase(self, message: str) -> str:
        """argparse's error ``message`` in the project's ``PARAM must be ...; got ...`` form."""
        required = "the following arguments are required: "
        unknown = "unrecognized arguments: "
        if message.startswith(required):
            first = message[len(required):].split(",")[0].strip()
            return f"{self._name_of(first)} must be given; got nothing"
        if message.startswith(unknown):
            return f"arguments must be options of this command; got {message[len(unknown):]!r}"
        match = _ARGUMENT.fullmatch(message)
        if match:
            name, text = self._name_of(match["flags"]), match["message"]
            if text.startswith("must ") or text.startswith("needs "):
                return f"{name} {text}"
            if text == "expected one argument":
                return f"{name} must have a value; got nothing"
            if text.startswith("invalid choice: "):
                got = text[len("invalid choice: "):].split(" (choose from")[0]
                allowed = re.search(r"\(choose from (.*)\)", text)
                listed = allowed[1].replace("'", "") if allowed else "the listed values"
                return f"{name} must be one of {listed}; got {got}"
            if text.startswith("not allowed with argument "):
                other = self._name_of(text[len("not allowed with argument "):])
                return f"{name} must not be given with {other}; got both"
            return f"{name}: {text}"
        return message

    def error(self, message: str):
        raise UsageError(self.rephrase(message))


# ---------------------------------------------------------------- running

def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def run(prog: str, body: Callable[[], int | None], *,
        usage_errors: tuple[type[BaseException], ...] = (ValueError,)) -> int:
    """Run a subcommand's ``body`` and return its exit status.

    ``usage_errors`` (``ValueError`` and so :class:`UsageError` by default; a
    command may add ``TypeError``) become ``PROG: error: FIRST LINE`` on stderr,
    status 2. ``KeyboardInterrupt`` becomes ``PROG: interrupted``, status 130.
    ``SystemExit`` (from ``--help``) returns its code. ``LQER_DEBUG=1`` lets the
    exception through, for a traceback.
    """
    try:
        return int(body() or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else USAGE_STATUS)
    except KeyboardInterrupt:
        if os.environ.get("LQER_DEBUG"):
            raise
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED_STATUS
    except usage_errors as exc:
        if os.environ.get("LQER_DEBUG"):
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return USAGE_STATUS


def status(prog: str, message: str) -> None:
    """One progress or status line on stderr: ``PROG: MESSAGE`` (stdout stays for results)."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
