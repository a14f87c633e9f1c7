"""Shift-and-round building blocks shared by the quantizer and the accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value

__all__ = ["wire", "bit_length", "below_mask", "shift_right_round"]


def wire(m: Module, value, name: str) -> Signal:
    """``value`` through a named Signal. Amaranth re-emits an expression at every use;
    a Signal makes a reused intermediate exist once in the netlist (and in simulation)."""
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def bit_length(m: Module, value: Value, name: str) -> Signal:
    """Leading-one detector: the bit length of unsigned ``value`` (0 for 0)."""
    value = wire(m, value, f"{name}_in")
    length = Signal(range(len(value) + 1), name=name)
    for k in range(len(value)):  # later statements win: the highest set bit decides
        with m.If(value[k]):
            m.d.comb += length.eq(k + 1)
    return length


def below_mask(width: int, count: Value) -> Value:
    """``width``-bit mask of the bits at positions below ``count`` (a thermometer code)."""
    return Cat(*(count > k for k in range(width)))


def shift_right_round(m: Module, value: Value, amount: Value, rounding: str, name: str) -> Value:
    """``value * 2**-amount`` rounded to an integer (``amount`` unsigned).

    ``value`` may be signed (two's complement: floor-based, as ``sw.blockmath.rshift_round``)
    or unsigned (a magnitude). Roundings: ``"floor"``, ``"even"`` (half to even) and
    ``"away"`` (half up, i.e. away from zero for a magnitude).
    """
    value = wire(m, value, f"{name}_in")
    if rounding == "floor":
        return wire(m, value >> amount, name)
    # bit 0 of (value << 1) >> amount is the first bit shifted out (0 when amount == 0)
    with_round = wire(m, (value << 1) >> amount, f"{name}_with_round")
    floor = with_round >> 1
    round_bit = with_round[0]
    if rounding == "away":
        return wire(m, floor + round_bit, name)
    # bits below the round bit: positions < amount - 1
    below = wire(m, amount - 1, f"{name}_below")
    sticky = (value.as_unsigned() & below_mask(len(value), below)).any()
    return wire(m, floor + (round_bit & (sticky | floor[0])), name)
