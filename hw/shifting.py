"""Shift-and-round building blocks shared by the quantizer and the accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value

__all__ = ["wire", "bit_length", "below_mask", "shift_right_round", "shift_right_round_parts",
           "sticky_mask", "coarse_one_hot",
           "round_parts", "round_shifted", "shift_amount", "add_with_carry_in",
           "FINE_SHIFT_BITS"]

# The low bits of a shift amount done by the fine (second) part of a split shifter.
FINE_SHIFT_BITS = 2


def wire(m: Module, value, name: str) -> Signal:
    """``value`` through a named Signal. Amaranth re-emits an expression at every use;
    a Signal makes a reused intermediate exist once in the netlist (and in simulation)."""
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def bit_length(m: Module, value: Value, name: str) -> Signal:
    """Leading-one detector: the bit length of unsigned ``value`` (0 for 0).

    A tree: split off the low ``h`` bits (``h`` the largest power of two below the
    width); the length is ``h + length(high)`` when the high part is non-zero, else
    ``length(low)``; ``log2(width)`` levels of small muxes (a priority chain would be
    ``width`` levels deep)."""
    value = wire(m, value, f"{name}_in")

    def tree(v: Value, tag: str) -> Value:
        if len(v) == 1:
            return v
        h = 1 << ((len(v) - 1).bit_length() - 1)
        low, high = v[:h], v[h:]
        return wire(m, Mux(high.any(), tree(high, tag + "h") + h, tree(low, tag + "l")),
                    f"{name}_{tag}")

    length = Signal(range(len(value) + 1), name=name)
    m.d.comb += length.eq(tree(value, "t"))
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


def sticky_mask(m: Module, amount: Value, width: int, name: str) -> Signal:
    """The ``width``-bit mask of the positions below ``amount - 1`` (the bits that
    :func:`shift_right_round_parts`'s sticky bit ORs), as a table indexed by ``amount``
    (LUTs only: comparators would map to carry chains, one per bit). Computed a level
    ahead and registered, it takes the table off the shifter's level."""
    mask = Signal(width, name=f"{name}_sticky_mask")
    with m.Switch(amount):
        for a in range(1 << len(amount)):
            with m.Case(a):
                m.d.comb += mask.eq((1 << min(max(a - 1, 0), width)) - 1)
    return mask


def coarse_one_hot(m: Module, amount: Value, width: int, name: str) -> Signal:
    """The coarse part of a right shift of a ``width``-bit value by ``amount`` as a one-hot
    select: bit ``k`` is ``amount >> FINE_SHIFT_BITS == k``, for the ``k`` whose coarse
    shift of ``value << 1`` keeps a bit (``k * 2**FINE_SHIFT_BITS <= width``); a larger
    amount sets none (the coarse shift gives 0). Registered a level ahead, it turns
    :func:`shift_right_round_parts`'s coarse shifter from a tree of muxes on the amount's
    bits into one AND-OR level (``coarse_select``)."""
    count = (width >> FINE_SHIFT_BITS) + 1
    select = Signal(count, name=name)
    high = Value.cast(amount) >> FINE_SHIFT_BITS
    m.d.comb += select.eq(Cat(*(high == k for k in range(count))))
    return select


def shift_right_round_parts(m: Module, value: Value, amount: Value, name: str,
                            sticky_amount: Value | None = None, mask: Value | None = None,
                            *, coarse_select: Value | None = None,
                            sticky: Value | None = None):
    """The first half of :func:`shift_right_round` for an unsigned ``value``, split so a
    pipeline register can sit in the middle of the shifter: returns ``(coarse, sticky,
    fine)`` where ``coarse = (value << 1) >> (amount rounded down to a multiple of
    2**FINE_SHIFT_BITS)``, ``sticky`` is the OR of the bits of ``value`` below the round bit
    (positions < amount - 1), and ``fine`` the remaining shift (``amount``'s low bits).
    Then ``with_round = coarse >> fine`` and :func:`round_shifted` finish the job.
    ``sticky_amount`` (default ``amount``): the same amount from another register (a
    replica), for the sticky mask and ``fine``, so the shifter's copy drives the shifter
    alone. ``mask``: :func:`sticky_mask` of the same amount, computed earlier (default: here).
    ``coarse_select``: :func:`coarse_one_hot` of the same amount, computed earlier; the
    coarse shift is then an OR of the selected shifts and ``amount`` drives ``fine``
    alone. ``sticky``: the sticky bit, found another way by the caller (for example from
    the value's trailing zeros, ``hw.quantizer``); no mask is formed then."""
    value = wire(m, value, f"{name}_in")
    other = amount if sticky_amount is None else sticky_amount
    k = FINE_SHIFT_BITS
    shifted = value << 1
    if coarse_select is None:
        coarse = wire(m, shifted >> ((amount >> k) << k), f"{name}_coarse")
    else:
        if len(coarse_select) != (len(value) >> k) + 1:
            raise ValueError(f"coarse_select must have {(len(value) >> k) + 1} bits; "
                             f"got {len(coarse_select)}")
        terms = [Mux(coarse_select[c], shifted >> (c << k), 0)
                 for c in range(len(coarse_select))]
        coarse = Signal(len(shifted), name=f"{name}_coarse")
        m.d.comb += coarse.eq(_or_all(terms))
    if sticky is None:
        if mask is None:
            mask = sticky_mask(m, other, len(value), name)
        elif len(mask) != len(value):
            raise ValueError(f"mask must have {len(value)} bits; got {len(mask)}")
        sticky = (value.as_unsigned() & mask).any()
    sticky = wire(m, sticky, f"{name}_sticky")
    fine = wire(m, other[:k] if len(other) > k else other, f"{name}_fine")
    return coarse, sticky, fine


def _or_all(values: list[Value]) -> Value:
    """The bitwise OR of ``values`` (a balanced tree)."""
    while len(values) > 1:
        values = [a | b for a, b in zip(values[0::2], values[1::2])] + \
            ([values[-1]] if len(values) % 2 else [])
    return values[0]


def round_parts(m: Module, with_round: Value, sticky: Value, rounding: str,
                name: str) -> tuple[Value, Value]:
    """``(floor, up)`` from ``with_round = (value << 1) >> amount`` (its bit 0 is the round
    bit, 0 when ``amount == 0``) and the sticky bit of :func:`shift_right_round_parts`: the
    rounded result is ``floor + up``. ``"even"`` (half to even) or ``"away"`` (half up) for
    an unsigned value; ``"floor"`` or ``"even"`` for a signed (two's complement,
    floor-based) value, as ``sw.blockmath.rshift_round``."""
    with_round = wire(m, with_round, f"{name}_with_round")
    floor = wire(m, with_round >> 1, f"{name}_floor")
    round_bit = with_round[0]
    if rounding == "floor":
        return floor, Value.cast(0)
    if rounding == "away":
        return floor, round_bit
    if rounding != "even":
        raise ValueError(f'rounding must be one of "floor", "even", "away"; got {rounding!r}')
    return floor, wire(m, round_bit & (sticky | floor[0]), f"{name}_up")


def round_shifted(m: Module, with_round: Value, sticky: Value, rounding: str, name: str) -> Value:
    """The rounded value ``floor + up`` of :func:`round_parts`."""
    floor, up = round_parts(m, with_round, sticky, rounding, name)
    return wire(m, floor + up, name)


def shift_amount(m: Module, distance: Value, cap: int, name: str) -> Signal:
    """A right-shift amount from ``distance``: negative gives 0, and anything above
    ``2**k - 1`` (the least such bound >= ``cap``) gives ``2**k - 1`` -- the OR of the high
    bits instead of a comparator, so no carry chain. Callers pass a ``cap`` beyond which
    every shift gives the same result (for example the shifted value's width + 1)."""
    distance = wire(m, distance, f"{name}_distance")
    k = max(1, int(cap).bit_length())
    amount = Signal(k, name=name)
    low = distance.as_unsigned()[:k]
    high = distance.as_unsigned()[k:]
    negative = distance[-1] if distance.shape().signed else 0
    too_big = high.any() if len(high) else 0
    m.d.comb += amount.eq(Mux(negative, 0, Mux(too_big, (1 << k) - 1, low)))
    return amount


def add_with_carry_in(m: Module, a: Value, b: Value, carry: Value, width: int,
                      name: str) -> Signal:
    """``a + b + carry`` (``carry`` one bit) in ``width`` signed bits as one adder: both
    operands get ``carry`` as an extra low bit, so their sum carries it into bit 1, and
    the result drops that bit."""
    a, b = Value.cast(a).as_signed(), Value.cast(b).as_signed()
    wide = wire(m, Cat(carry, a) .as_signed() + Cat(carry, b).as_signed(), f"{name}_wide")
    return wire(m, wide[1:width + 1].as_signed(), name)
