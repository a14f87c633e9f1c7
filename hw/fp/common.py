"""Building blocks of the floating-point units: unpacking, normalising and aligning
shifts, round to nearest even, packing, and the stream component they share.

Conventions (IEEE 754-2019 §3.4): a finite operand of format ``fmt`` is
``(-1)**sign * significand * 2**(exponent - bias - fraction_bits)`` where
``exponent = max(E, 1)`` for the biased field ``E`` (a subnormal uses exponent 1
and a hidden 0) and ``significand`` is the fraction with the hidden bit prepended.

Rounding a non-negative integer ``v`` right by ``s`` bits to nearest even keeps
``floor = v >> s``, the *round bit* ``r`` (the first bit shifted out) and the
*sticky bit* ``t`` (any later bit); it adds one when ``r & (t | floor[0])``.
Packing a rounded significand ``q`` (hidden bit included, ``q <= 2**p``) with
exponent ``e >= 1`` as ``((e - 1) << fraction_bits) + q`` gives the IEEE encoding
in every case: a normal, a carry out of rounding (``q = 2**p``: the exponent steps
up), a subnormal (``e = 1``, ``q < 2**(p-1)``) and a subnormal rounding up to the
smallest normal; a sum at or above the infinity pattern has overflowed. The
hardware forms the three possible exponent fields beside the rounding adder
(:func:`exponent_choices`) and lets the carry pick one (:func:`pack_choice`).

Timing (ECP5 at 150 MHz allows about four LUT levels, or one carry chain and two
LUT levels, between registers): a left normalisation takes three short levels
(:func:`group_one_hot`: the first non-zero byte; :func:`coarse_shift`: whole bytes;
:func:`fine_shift`: 0..7 bits), a right alignment two (:func:`shift_right_coarse`,
:func:`shift_right_fine`), and choices are formed beside a carry chain rather than
after it (one-hot selects, :func:`exponent_choices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.pipeline import Pipeline, register_counts
from hw.product_tree import ProductTree
from hw.unused import rejectable
from hw.shifting import below_mask, wire
from sw.ieee import IEEEFormat

__all__ = ["Unpacked", "unpack", "classes_of", "first_one_hot", "one_hot_select",
           "one_hot_index", "group_one_hot", "group_flags", "coarse_shift", "fine_shift",
           "group_fine_one_hots", "select_fine_one_hot", "fine_shift_by", "shift_right_sticky",
           "shift_right_coarse", "shift_right_fine", "round_even", "exponent_choices",
           "pack_choice", "select_result", "final_fields", "pack_final", "Stage",
           "close_product_level", "FPUnit",
           "MAX_STAGES"]

MAX_STAGES = 16


@dataclass(frozen=True)
class Unpacked:
    sign: Value
    exponent: Value       # max(E, 1): subnormals use exponent 1
    significand: Value    # fraction with the hidden bit (0 for zero and subnormals)
    is_zero: Value
    is_inf: Value
    is_nan: Value
    all_ones: Value       # the exponent field is all ones (infinity or NaN)
    field: Value          # the biased exponent field E itself


def unpack(m: Module, bits: Value, fmt: IEEEFormat, name: str) -> Unpacked:
    """Fields and classes of the ``fmt`` bit pattern ``bits``."""
    f, e = fmt.fraction_bits, fmt.exponent_bits
    fraction = bits[:f]
    field = bits[f:f + e]
    normal = wire(m, field != 0, f"{name}_normal")
    all_ones = wire(m, field == fmt.exponent_all_ones, f"{name}_all_ones")
    fraction_zero = wire(m, fraction == 0, f"{name}_fraction_zero")
    return Unpacked(
        sign=bits[f + e],
        exponent=wire(m, Mux(normal, field, 1), f"{name}_exponent"),
        significand=wire(m, Cat(fraction, normal), f"{name}_significand"),
        is_zero=wire(m, ~normal & fraction_zero, f"{name}_is_zero"),
        is_inf=wire(m, all_ones & fraction_zero, f"{name}_is_inf"),
        is_nan=wire(m, all_ones & ~fraction_zero, f"{name}_is_nan"),
        all_ones=all_ones,
        field=field,
    )


def classes_of(m: Module, significand: Value, all_ones: Value, fmt: IEEEFormat,
               name: str) -> tuple[Value, Value, Value]:
    """``(is_zero, is_inf, is_nan)`` of an operand from its :class:`Unpacked`
    ``significand`` (hidden bit included) and ``all_ones``, as :func:`unpack` gives them
    from the bit pattern (IEEE 754-2019 section 3.4): for a unit that registers those two
    first and classifies a level later, so the classes' logic takes registers and shares
    no LUT with the level that unpacks (``hw.fp.fp16_mul``, docs/synth.md)."""
    fraction_zero = wire(m, significand[:fmt.fraction_bits] == 0, f"{name}_fraction_zero")
    return (wire(m, significand == 0, f"{name}_is_zero"),
            wire(m, all_ones & fraction_zero, f"{name}_is_inf"),
            wire(m, all_ones & ~fraction_zero, f"{name}_is_nan"))


def equal(m: Module, a: Value, b: Value, name: str) -> Signal:
    """``a == b`` as the NOR of ``a ^ b``: LUTs beside a carry chain. Yosys's ``alumacc``
    merges an ``==`` into a ``<``/``>`` of the same operands and takes it from the
    subtraction's result (a zero test after the carry chain), which put the compare and
    the equality in series (``hw.fp.fp32_add``'s magnitude compare; docs/synth.md,
    "Equalities beside the carry chain"). ``a`` and ``b`` of one width; raises ``ValueError``
    otherwise."""
    a, b = Value.cast(a), Value.cast(b)
    if len(a) != len(b):
        raise ValueError(f"a and b must have one width; got {len(a)} and {len(b)}")
    return wire(m, ~(a ^ b).any(), name)


def first_one_hot(m: Module, flags: list, name: str) -> Signal:
    """One-hot of the first true flag in ``flags`` (index 0 first); the last flag's bit
    is also set when no flag is (so an all-zero input selects the last option)."""
    out = []
    seen = None
    for k, flag in enumerate(flags):
        last = k == len(flags) - 1
        here = Const(1) if last else Value.cast(flag)
        out.append(here if seen is None else here & ~seen)
        seen = Value.cast(flag) if seen is None else wire(m, seen | flag, f"{name}_seen_{k}")
    return wire(m, Cat(*out), name)


def one_hot_select(m: Module, one_hot: Value, options: list, name: str) -> Signal:
    """``options[k]`` where bit ``k`` of ``one_hot`` is set (AND-OR: no priority chain).
    Signed options keep their sign: the result has the smallest shape holding them all."""
    options = [Value.cast(o) for o in options]
    is_signed = any(o.shape().signed for o in options)
    width = max(len(o) + (is_signed and not o.shape().signed) for o in options)
    shape = signed(width) if is_signed else unsigned(width)
    out = Const(0, width)
    for k, option in enumerate(options):
        extended = Signal(shape, name=f"{name}_option_{k}")
        m.d.comb += extended.eq(option)
        out = out | (extended.as_unsigned() & one_hot[k].replicate(width))
    result = Signal(shape, name=name)
    m.d.comb += result.eq(out if not is_signed else out.as_signed())
    return result


def one_hot_index(m: Module, one_hot: Value, name: str) -> Signal:
    """The index of the set bit of ``one_hot`` (an OR per index bit)."""
    one_hot = Value.cast(one_hot)
    bits = max(1, (len(one_hot) - 1).bit_length())
    index = [Const(0)] * bits
    for k in range(len(one_hot)):
        for b in range(bits):
            if k >> b & 1:
                index[b] = index[b] | one_hot[k]
    return wire(m, Cat(*index), name)


def group_one_hot(m: Module, probe: Value, group: int, name: str) -> Signal:
    """Normalisation step 1 (of :func:`group_one_hot`, :func:`coarse_shift`,
    :func:`fine_shift`): one-hot of the first non-zero ``group``-bit group of ``probe``
    from its top (the last group if all are zero)."""
    flags = [wire(m, part.any(), f"{name}_group_{k}")
             for k, part in enumerate(_groups_from_top(probe, group))]
    return first_one_hot(m, flags, name)


def group_flags(m: Module, probe: Value, group: int, name: str) -> Signal:
    """Bit ``k``: any one in the ``k``-th ``group``-bit group of ``probe`` from its top (the
    flags :func:`group_one_hot` picks the first of, for a pipeline that registers them
    between)."""
    return wire(m, Cat(*(part.any() for part in _groups_from_top(probe, group))),
                f"{name}_flags")


def _groups_from_top(probe: Value, group: int) -> list[Value]:
    """``probe`` cut into ``group``-bit groups from its top (the last one may be shorter)."""
    probe = Value.cast(probe)
    width = len(probe)
    return [probe[max(width - (k + 1) * group, 0):width - k * group]
            for k in range(-(-width // group))]


def coarse_shift(m: Module, value: Value, one_hot: Value, group: int, name: str) -> Signal:
    """Normalisation step 2: ``value`` shifted left by ``group * k``, ``k`` the set bit of
    ``one_hot`` (from :func:`group_one_hot`)."""
    value = Value.cast(value)
    width = len(value)
    options = [(value << (group * k))[:width] for k in range(len(one_hot))]
    return one_hot_select(m, one_hot, options, name)


def fine_shift(m: Module, value: Value, probe: Value, group: int, name: str):
    """Normalisation step 3: ``value`` shifted left by the leading zeros of the top
    ``group`` bits of ``probe`` (after :func:`coarse_shift` they hold its leading one
    unless the probe is zero). Returns ``(value', one-hot of the shift 0..group-1)``.

    ``probe`` is ``value`` with optional extra ones that stop the shift early (the
    subnormal limit of an exponent); it must be ``>= value`` bitwise, so no bit of
    ``value`` is lost, and is shifted in step 2 like ``value``.
    """
    value, probe = Value.cast(value), Value.cast(probe)
    width = len(value)
    top = [probe[width - 1 - j] for j in range(group)]
    one_hot = first_one_hot(m, top, f"{name}_fine")
    return fine_shift_by(m, value, one_hot, name), one_hot


def group_fine_one_hots(m: Module, probe: Value, group: int, name: str) -> Signal:
    """Beside :func:`group_one_hot`: for each group ``k`` it counts, the one-hot that
    :func:`fine_shift` would find in the top ``group`` bits of ``probe`` after
    :func:`coarse_shift` by ``group * k`` (bits ``width - 1 - group * k - j`` of ``probe``,
    zero below bit 0), concatenated, ``group`` bits per group. Selected by the group's
    one-hot in the coarse level (:func:`one_hot_select`) and applied by
    :func:`fine_shift_by`, the fine level finds no leading one itself: fp32-add's fine
    level was a priority chain and an 8-way select (five LUT levels on ECP5)."""
    probe = Value.cast(probe)
    width = len(probe)
    hots = []
    for k in range(-(-width // group)):
        top = [probe[width - 1 - group * k - j] if width - 1 - group * k - j >= 0 else Const(0)
               for j in range(group)]
        hots.append(first_one_hot(m, top, f"{name}_{k}"))
    return wire(m, Cat(*hots), name)


def select_fine_one_hot(m: Module, groups: Value, fines: Value, group: int,
                        name: str) -> Signal:
    """The coarse level's half of :func:`group_fine_one_hots`: the ``group``-bit one-hot of
    the group that ``groups`` (:func:`group_one_hot`, registered) picks, for
    :func:`fine_shift_by` in the next level."""
    groups, fines = Value.cast(groups), Value.cast(fines)
    return one_hot_select(m, groups, [fines[group * k:group * (k + 1)]
                                      for k in range(len(groups))], name)


def fine_shift_by(m: Module, value: Value, one_hot: Value, name: str) -> Signal:
    """:func:`fine_shift`'s shift with its one-hot given (``value << j``, ``j`` the set bit
    of ``one_hot``; from :func:`group_fine_one_hots`)."""
    value = Value.cast(value)
    width = len(value)
    return one_hot_select(m, one_hot, [(value << j)[:width] for j in range(len(one_hot))], name)


def shift_right_sticky(m: Module, value: Value, amount: Value, name: str) -> Signal:
    """``Cat(sticky, round, value >> amount)``: the kept bits with the round and sticky
    bits of the shift below them (``amount`` unsigned; any size, 0 keeps everything)."""
    value = wire(m, value, f"{name}_in")
    width = len(value)
    with_round = wire(m, (value << 1) >> amount, f"{name}_with_round")
    below = wire(m, amount - 1, f"{name}_below")  # amount 0: round bit is 0, sticky unused
    sticky = wire(m, (value & below_mask(width, below)).any(), f"{name}_sticky")
    return wire(m, Cat(sticky, with_round[:width + 1]), name)


def shift_right_coarse(m: Module, value: Value, amount_less_one: Value, group: int,
                       name: str):
    """Step 1 of a right shift by ``amount = amount_less_one + 1 >= 1`` in two short levels
    (with :func:`shift_right_fine`): drop ``c`` whole groups, ``c * group`` the largest
    multiple of ``group`` (a power of two) not above ``amount - 1``, OR-ing them into a
    sticky bit. Returns ``(value >> (c * group), amount - 1 - c * group, sticky)``."""
    value, amount_less_one = Value.cast(value), Value.cast(amount_less_one)
    width = len(value)
    log = group.bit_length() - 1
    groups = amount_less_one[log:]
    flags = [value[i * group:(i + 1) * group].any() for i in range(-(-width // group))]
    sticky = Const(0)
    for i, flag in enumerate(flags):
        sticky = sticky | (flag & (groups > i))
    shifted = wire(m, (value >> Cat(Const(0, log), groups))[:width], f"{name}_coarse")
    return (shifted, wire(m, amount_less_one[:log], f"{name}_fine_amount"),
            wire(m, sticky, f"{name}_coarse_sticky"))


def shift_right_fine(m: Module, value: Value, fine: Value, sticky: Value, name: str) -> Signal:
    """Step 2: ``Cat(sticky, round, kept)`` of ``value`` shifted right by ``fine + 1``
    (``fine`` from :func:`shift_right_coarse`), its sticky bit OR-ed with step 1's."""
    grs = shift_right_sticky(m, value, Value.cast(fine) + 1, f"{name}_fine")
    return wire(m, Cat(grs[0] | sticky, grs[1:]), name)


def round_even(m: Module, grs: Value, name: str) -> Signal:
    """Round ``Cat(sticky, round, kept)`` to nearest even: ``kept + 1`` or ``kept`` (one bit
    wider than ``kept``)."""
    grs = Value.cast(grs)
    kept = grs[2:]
    up = grs[1] & (grs[0] | kept[0])
    return wire(m, kept + up, name)


def exponent_choices(m: Module, exponent, fmt: IEEEFormat, name: str, *,
                     minus: Value | None = None,
                     headroom: list[Value] | None = None) -> Signal:
    """The biased exponent field, before the overflow test, of a result with (unbounded)
    exponent ``exponent - minus >= 1`` for each carry ``k = 0, 1, 2`` that the rounded
    significand ``q`` may bring (``k = q >> fraction_bits``): ``exponent - minus - 1 + k``,
    each with its overflow flag (the field at or above all ones). Computed beside the
    rounding adder, off its carry chain; :func:`pack_choice` picks one. Returns the three
    ``Cat(field, overflow)`` side by side. ``exponent`` may also be the three values
    ``exponent - 1 + k``, computed a level earlier (``minus`` given): then only the
    subtraction of ``minus`` and the overflow test are left here, two carry chains rather
    than three; with ``headroom`` (the three ``base - all ones``, also computed a level
    earlier) the test is ``headroom >= minus``, one compare beside the subtraction rather
    than after it (fp32-add's round level on ECP5, docs/synth.md)."""
    if headroom is not None and (minus is None or len(headroom) != 3):
        raise ValueError("headroom needs minus and three values")
    if isinstance(exponent, (list, tuple)):
        if minus is None or len(exponent) != 3:
            raise ValueError("three precomputed exponents need minus")
        bases = [Value.cast(e) for e in exponent]
    else:
        exponent = Value.cast(exponent)
        bases = [exponent + (k - 1) for k in range(3)]
    values = [b - (0 if minus is None else minus) for b in bases]
    shape = signed(max(len(v) for v in values) + 1)
    choices = []
    for k, value in enumerate(values):
        choice = Signal(shape, name=f"{name}_{k}")
        m.d.comb += choice.eq(value)
        # with ``headroom`` one compare beside the subtraction; without ``minus`` a test of
        # ``exponent`` against a constant, beside the adder
        if headroom is not None:
            over = Value.cast(headroom[k]) >= minus
        elif minus is not None:
            over = choice >= fmt.exponent_all_ones
        else:
            over = exponent >= fmt.exponent_all_ones + 1 - k
        choices.append(Cat(choice, wire(m, over, f"{name}_{k}_overflow")))
    return wire(m, Cat(*choices), name)


def pack_choice(m: Module, q: Value, choices: Value, fmt: IEEEFormat, name: str):
    """``(magnitude, overflow)`` of the rounded significand ``q`` (hidden bit included,
    ``q <= 2**precision``) with :func:`exponent_choices`: the IEEE encoding
    ``((exponent - 1) << fraction_bits) + q`` without its sign, and whether it reached
    infinity (field at or above all ones)."""
    e, f = fmt.exponent_bits, fmt.fraction_bits
    width = len(choices) // 3
    parts = [choices[k * width:(k + 1) * width] for k in range(3)]
    two, one = q[f + 1], q[f]
    field = wire(m, Mux(two, parts[2], Mux(one, parts[1], parts[0])), f"{name}_field")
    return (wire(m, Cat(q[:f], field[:e]), f"{name}_magnitude"),
            wire(m, field[width - 1], f"{name}_overflow"))


def select_result(m: Module, fmt: IEEEFormat, *, sign: Value, magnitude: Value, overflow: Value,
                  nan: Value, inf: Value, inf_sign: Value, zero: Value, zero_sign: Value,
                  name: str) -> Signal:
    """The output bit pattern: canonical NaN, signed infinity (special or overflow),
    signed zero, or ``sign`` with ``magnitude``."""
    out = Signal(fmt.width, name=name)
    with m.If(nan):
        m.d.comb += out.eq(fmt.canonical_nan)
    with m.Elif(inf):
        m.d.comb += out.eq(Cat(Const(fmt.infinity, fmt.width - 1), inf_sign))
    with m.Elif(zero):
        m.d.comb += out.eq(Cat(Const(0, fmt.width - 1), zero_sign))
    with m.Elif(overflow):
        m.d.comb += out.eq(Cat(Const(fmt.infinity, fmt.width - 1), sign))
    with m.Else():
        m.d.comb += out.eq(Cat(magnitude, sign))
    return out


def final_fields(m: Module, fmt: IEEEFormat, choices: Value, *, sign: Value, nan: Value,
                 inf: Value, inf_sign: Value, zero: Value, zero_sign: Value,
                 name: str) -> dict[str, Value]:
    """The packing decided in the round level, beside the rounding adder: for each carry
    ``k`` of :func:`exponent_choices`, the output's exponent field and whether the
    fraction is forced (NaN, infinity, zero, or that choice's overflow), by the priority
    of :func:`select_result`; and the output's sign. Returns the values to register
    (``final_exponents``, ``final_forced``, ``final_nan``, ``final_sign``) for
    :func:`pack_final`, which then only picks by the carry: two LUT levels from the
    registers to the output pattern instead of the choice and then the priority chain
    (fp32-mul's pack level into its output register, the int path's clock path on ECP5,
    docs/synth.md). Same result as :func:`pack_choice` then :func:`select_result`."""
    e = fmt.exponent_bits
    width = len(choices) // 3
    ones = Const((1 << e) - 1, e)
    exponents, forced = [], []
    for k in range(3):
        part = choices[k * width:(k + 1) * width]
        over = part[width - 1]
        exponents.append(Mux(nan | inf, ones, Mux(zero, 0, Mux(over, ones, part[:e]))))
        forced.append(nan | inf | zero | over)
    out_sign = Mux(nan, fmt.canonical_nan >> (fmt.width - 1),
                   Mux(inf, inf_sign, Mux(zero, zero_sign, sign)))
    return {"final_exponents": wire(m, Cat(*exponents), f"{name}_exponents"),
            "final_forced": wire(m, Cat(*forced), f"{name}_forced"),
            "final_nan": nan, "final_sign": wire(m, out_sign, f"{name}_sign")}


def pack_final(m: Module, fmt: IEEEFormat, q: Value, s, name: str) -> Signal:
    """The output bit pattern from the rounded significand ``q`` and the registered
    :func:`final_fields` (attributes of ``s``): the carry ``k = q >> fraction_bits`` picks
    the exponent field and the forced flag; a forced fraction is the canonical NaN's or
    zero."""
    e, f = fmt.exponent_bits, fmt.fraction_bits
    two, one = q[f + 1], q[f]
    exps = [s.final_exponents[k * e:(k + 1) * e] for k in range(3)]
    exponent = wire(m, Mux(two, exps[2], Mux(one, exps[1], exps[0])), f"{name}_exponent")
    forced = wire(m, Mux(two, s.final_forced[2], Mux(one, s.final_forced[1],
                                                      s.final_forced[0])), f"{name}_forced")
    nan_fraction = Const(fmt.canonical_nan & ((1 << f) - 1), f)
    fraction = Mux(forced, Mux(s.final_nan, nan_fraction, 0), q[:f])
    return wire(m, Cat(fraction, exponent, s.final_sign), name)


class Stage:
    """Values crossing the level boundaries of a :class:`hw.pipeline.Pipeline`, by name.

    ``close(**values)`` ends the current level: the values (and every value given to
    ``carry``) pass its registers; the result holds both under their names, and the
    carried ones continue through every later boundary.
    """

    def __init__(self, pipe: Pipeline, *, replicas: bool = False):
        self._pipe = pipe
        self._level = 0
        self._carried: dict[str, Value] = {}
        self._replicas = replicas   # the first level's registers are replicas

    def carry(self, **values) -> None:
        self._carried.update(values)

    def drop(self, *names: str) -> SimpleNamespace:
        """Stop carrying ``names``; returns their values as they enter the current level
        (to be combined into fewer values there)."""
        missing = sorted(set(names) - set(self._carried))
        if missing:
            raise ValueError(f"names must be carried; got {missing}")
        return SimpleNamespace(**{k: self._carried.pop(k) for k in names})

    def close(self, replicas: tuple[str, ...] = (), **values) -> SimpleNamespace:
        """``replicas``: names among ``values`` that copy another value on purpose (their
        registers are kept apart: :data:`hw.pipeline.REPLICA_TAG`)."""
        if set(values) & set(self._carried):
            raise ValueError(f"values must not repeat carried names; got "
                             f"{sorted(set(values) & set(self._carried))}")
        both = {**self._carried, **values}
        names = list(both)
        marked = (True if self._replicas and self._level == 0 else
                  frozenset(names.index(k) for k in replicas))
        out = dict(zip(names, self._pipe.after(self._level, [Value.cast(both[k]) for k in names],
                                               replicas=marked)))
        self._level += 1
        self._carried = {k: out[k] for k in self._carried}
        return SimpleNamespace(**out)


def close_product_level(m: Module, stage: Stage, tree: ProductTree, level: int, terms: list,
                        name: str, **values):
    """Close level ``level`` of the :class:`hw.product_tree.ProductTree` ``tree`` (``terms``
    from ``tree.first`` or the previous call) with ``values`` beside it. Returns ``(s,
    next)``: the registered ``values`` by name, and the next level's terms (after the last
    level: ``[product]``)."""
    keys = [f"{name}_t{k}" for k in range(len(terms))]
    s = stage.close(**values, **dict(zip(keys, terms)))
    registered = [getattr(s, k) for k in keys]
    if level + 1 < tree.levels:
        return s, tree.step(m, level + 1, registered, name)
    return s, [wire(m, tree.result(registered), name)]


class FPUnit(wiring.Component):
    """Base of the units: stream ports ``i`` (struct of the operand bit patterns) and ``o``
    (``{"y": unsigned(width)}``), one operation per cycle at full rate.

    Parameters (keyword-only): ``stages`` 1..``MAX_STAGES`` pipeline registers (= the
    latency; default one after each level), placed over the levels by their estimated
    delays (:func:`hw.pipeline.register_counts`); ``backpressure`` (default True; see
    :class:`hw.pipeline.Pipeline`); ``replicas`` (default False): the registers after the
    first level are named as replicas (:data:`hw.pipeline.REPLICA_TAG`), so where several
    units take the same operand (the lanes of :class:`hw.fp_accumulate.FPAccumulate`
    share the activation) synthesis keeps each unit's copy instead of merging them into
    one register that drives every lane. Raises ``ValueError`` / ``TypeError`` naming the
    parameter.

    Subclasses set ``LEVELS`` (names of the combinational levels, in order), ``DELAYS``
    (their estimated delays in LUT levels, from ECP5 place and route), ``INPUTS`` (field ->
    shape), ``OUT_FORMAT`` and ``_datapath(m, stage, payload) -> y``.
    """

    LEVELS: tuple[str, ...] = ()
    DELAYS: tuple[float, ...] = ()
    INPUTS: dict = {}
    OUT_FORMAT: IEEEFormat

    def __init__(self, *, stages: int | None = None, backpressure: bool = True,
                 replicas: bool = False):
        with rejectable(self):
            if stages is None:
                stages = len(self.LEVELS)
            self._stages = check_int("stages", stages, 1, MAX_STAGES)
            self._backpressure = bool(backpressure)
            self._replicas = bool(replicas)
            in_layout = data.StructLayout(dict(self.INPUTS))
            out_layout = data.StructLayout({"y": unsigned(self.OUT_FORMAT.width)})
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output becoming valid (= ``stages``)."""
        return self._stages

    @property
    def levels(self) -> tuple[str, ...]:
        """The combinational levels between which the ``stages`` registers are spread."""
        return self.LEVELS

    @property
    def delays(self) -> list[float]:
        """Estimated delay (LUT levels) of each level, in order."""
        return list(self.DELAYS)

    @property
    def register_counts(self) -> list[int]:
        """Pipeline registers after each level."""
        return register_counts(len(self.LEVELS), self._stages, self.delays)

    def _datapath(self, m: Module, stage: Stage, payload) -> Value:
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, levels=len(self.LEVELS), stages=self._stages, delays=self.delays,
                        valid_in=self.i.valid & self.i.ready, name="fp",
                        backpressure=self._backpressure)
        y = self._datapath(m, Stage(pipe, replicas=self._replicas), self.i.payload)
        pipe.connect(self.i, self.o)
        m.d.comb += self.o.payload.y.eq(y)
        return m
