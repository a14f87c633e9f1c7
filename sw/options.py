"""Option metadata for configuration dataclasses: one rule per field for the API and the CLI.

A field declared with :func:`option` carries an :class:`Option` in its
metadata: the command-line flag, the help text, the allowed values
(:class:`Rule`) and the methods it applies to. ``QuantConfig`` and
``CalibOptions`` validate their fields through it, and the ``quantize`` /
``eval`` commands generate their options from it (``lqer_hw.args.
add_field_options``), so a range is stated once and the API and the CLI give
the same ``NAME must be ...; got ...`` message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Rule", "Option", "option", "options_of", "check_fields"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """Allowed values: integers in ``low..high``, powers of two in ``low..high``, or ``choices``."""

    kind: str                      # "int", "power_of_two" or "choice"
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``an integer in 2..8``."""
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "power_of_two":
            return (f"a power of two in {self.low}..{self.high}" if self.high is not None
                    else "a power of two (1, 2, 4, ...)")
        if self.low is not None and self.high is not None:
            return f"an integer in {self.low}..{self.high}"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer"

    def ok(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if not _is_int(value):
            return False
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return False
        return self.kind != "power_of_two" or (value >= 1 and not value & (value - 1))

    def check(self, name: str, value: Any) -> Any:
        """``value``, or ``ValueError("NAME must be ALLOWED; got VALUE")``."""
        if not self.ok(value):
            raise ValueError(f"{name} must be {self.allowed()}; got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """The value of command-line ``text``; ``ValueError("must be ALLOWED; got 'TEXT'")``."""
        value: Any = text
        if self.kind != "choice":
            try:
                value = int(text, 10)
            except (TypeError, ValueError):
                value = None
        if value is None or not self.ok(value):
            raise ValueError(f"must be {self.allowed()}; got {text!r}")
        return value


@dataclass(frozen=True)
class Option:
    """How a field appears on the command line, and which methods it applies to."""

    flag: str
    help: str
    rule: Rule
    methods: tuple[str, ...] | None = None   # None: every method
    metavar: str | None = None


def option(default: Any, *, flag: str, help: str, rule: Rule,
           methods: tuple[str, ...] | None = None, metavar: str | None = None):
    """A dataclass ``field`` with an :class:`Option` in its metadata."""
    return field(default=default, metadata={"option": Option(flag, help, rule, methods, metavar)})


def options_of(cls) -> dict[str, tuple[Option, Any]]:
    """``{field name: (Option, default)}`` of a dataclass, in declaration order."""
    return {f.name: (f.metadata["option"], f.default) for f in fields(cls) if "option" in f.metadata}


def check_fields(obj, *, prefix: str = "") -> None:
    """Validate every option field of the dataclass instance ``obj`` (``ValueError`` naming the field)."""
    for name, (opt, _) in options_of(type(obj)).items():
        opt.rule.check(prefix + name, getattr(obj, name))
