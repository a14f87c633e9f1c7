"""Keyword-parameter validation shared by the hardware generators.

Every generator validates its parameters at construction and raises a
one-line ``ValueError`` / ``TypeError`` naming the parameter and the allowed values.
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed

__all__ = ["check_int", "check_choice", "signed_for_range", "is_power_of_two"]


def is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


def check_int(name: str, value, minimum: int, maximum: int, *, power_of_two: bool = False) -> int:
    """Return ``value`` if it is an int in ``minimum..maximum`` (and a power of two if asked)."""
    kind = "a power of two" if power_of_two else "an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {kind} in {minimum}..{maximum}; got {value!r}")
    if not minimum <= value <= maximum or (power_of_two and not is_power_of_two(value)):
        raise ValueError(f"{name} must be {kind} in {minimum}..{maximum}; got {value!r}")
    return value


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        allowed = ", ".join(f'"{c}"' for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def signed_for_range(lo: int, hi: int) -> Shape:
    """Smallest signed shape holding every integer in ``lo..hi``."""
    bits = max(int(lo).bit_length(), int(hi).bit_length()) + 1
    return signed(bits)
