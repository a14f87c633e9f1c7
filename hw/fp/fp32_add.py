"""binary32 + binary32 -> binary32, round to nearest even, subnormals kept
(``sw.ieee.fp32_add``).

The classic swap / align / add / normalise / round datapath with three extra bits
below the significand (guard, round, sticky; Goldberg, "What every computer
scientist should know about floating-point arithmetic", ACM Computing Surveys 1991,
section "Guard digits"), cut into short levels (one pipeline register after each
by default; 150 MHz on ECP5 needs them):

- ``unpack``: the fields (a subnormal's exponent as 1, the hidden bit), whether each
  exponent field is all ones and each fraction zero (the specials a level later),
  which bytes of each ``s << 3`` hold a one, the compare of the fraction fields
  (``b`` larger in either half, equal in the top half) and whether the exponent fields
  are equal;
- ``compare``: the specials (NaN, infinity) from the pieces above; which operand is
  larger in magnitude (``(e, hidden bit)`` compared, the fraction compare breaking a tie:
  the order of the encodings without the sign) and for either operand as ``y`` the shift
  ``d = ex - ey`` (32 or more act as 31: all of ``y`` is shifted out either way);
- ``swap``: ``x`` = the larger operand, ``y`` the other, ``sy << 3`` shifted right by the
  whole bytes of ``d`` (the bytes dropped OR-ed into a sticky bit);
- ``align``: the rest of ``Y = (sy << 3) >> d``, 0..7 bits, with every bit shifted out
  OR-ed into bit 0;
- ``add``: ``S = (sx << 3) +/- Y`` (one adder; subtract when the signs differ;
  ``S >= 0``), and a one at bit ``27 - ex`` that stops the normalisation at exponent 1;
- ``flags``, ``detect``, ``coarse``, ``fine``: shift ``S`` left by
  ``h = min(leading zeros, ex)`` (each byte's any-one, leading-one and non-zero flags;
  the first non-zero byte and its index; whole bytes, with the leading one of the byte
  they bring to the top selected; 0..7 bits), exponent ``ex + 1 - h``; one bit is
  then dropped into the sticky bit: a carry shifts right by one, a cancellation left
  until the top bit reaches bit 26 or the exponent reaches 1 (a subnormal);
- ``round``: round to nearest even on the three low bits; beside it, for each of the
  three carries the final exponent field and whether the fraction is forced
  (``hw.fp.common.final_fields``: overflow to signed infinity, the specials);
- ``pack``: the field the carry picks (``hw.fp.common.pack_final``).

Specials (IEEE 754-2019 §6.1, §6.3, §7.2): a NaN operand or ``inf + (-inf)`` ->
canonical NaN ``0x7FC00000``; an infinity otherwise wins with its sign; an exact
zero sum is ``+0`` unless both operands are ``-0`` (sign ``sa & sb``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value, unsigned

from hw.fp.common import (FPUnit, coarse_shift, equal, exponent_choices, final_fields,
                          fine_shift_by, first_one_hot, group_fine_one_hots, group_flags,
                          one_hot_index, pack_final, round_even, select_fine_one_hot, unpack)
from hw.shifting import below_mask, wire
from sw.ieee import BINARY32

__all__ = ["FP32Add"]

P = BINARY32.precision     # 24
EXTRA = 3                  # guard, round, sticky
WIDE = P + EXTRA           # 27: aligned operands
SUM = WIDE + 1             # 28: with the carry
GROUP = 8                  # normalisation and alignment: whole bytes, then 0..7 bits
ALIGN_BYTES = 3            # bytes of y << EXTRA that a coarse alignment (0..3 bytes) drops
HALF = 12                  # the fraction compare in two parts: bits 22..12 and 11..0


class FP32Add(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32), "b": unsigned(32)}``, binary32 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the rounded sum)."""

    LEVELS = ("unpack", "compare", "swap", "align", "add", "flags", "detect", "coarse", "fine",
              "round", "pack")
    DELAYS = (2.0, 2.5, 2.5, 3.5, 3.0, 2.5, 1.5, 3.0, 3.5, 3.0, 3.0)
    INPUTS = {"a": unsigned(32), "b": unsigned(32)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        ua = unpack(m, payload.a, BINARY32, "a")
        ub = unpack(m, payload.b, BINARY32, "b")
        # each operand's classes formed and joined a level later from two pieces
        # registered here, the field all ones and the fraction zero (as hw.fp.fp32_mul):
        # the join of the two operands' 23-bit reductions was five LUT levels from an
        # operand, llm-int8-linear's clock path on ECP5 (docs/synth.md, "Equalities
        # beside the carry chain")
        stage.carry(zero_sign=ua.sign & ub.sign,
                    **{f"{x}_{k}": wire(m, v, f"{x}_{k}")
                       for x, u, bits in (("a", ua, payload.a), ("b", ub, payload.b))
                       for k, v in (("ones", u.all_ones),
                                    ("fraction_zero", bits[:BINARY32.fraction_bits] == 0))})
        # each operand's byte flags (any bit set in byte j of m << EXTRA) beside the fields:
        # the inputs' register drives only this level's few LUTs
        bytes_any = {f"bytes_{n}": Cat(*((u.significand << EXTRA)[j * GROUP:(j + 1) * GROUP].any()
                                         for j in range(ALIGN_BYTES)))
                     for n, u in (("a", ua), ("b", ub))}
        # the magnitude compare's low part: the fraction fields' halves compared (each a
        # short carry chain from the inputs), combined below an equal top part; the
        # equalities are LUTs beside the chains (common.equal), and the top part's
        # equality, (exponent, hidden bit), is the exponent fields' (a subnormal's
        # exponent 1 and hidden 0 both follow from its field 0)
        high, low = slice(HALF, BINARY32.fraction_bits), slice(0, HALF)
        halves = {"high_gt": payload.b[high] > payload.a[high],
                  "high_eq": equal(m, payload.b[high], payload.a[high], "fraction_high_eq"),
                  "low_gt": payload.b[low] > payload.a[low],
                  "top_eq": equal(m, ub.field, ua.field, "top_eq")}
        s = stage.close(sa=ua.sign, sb=ub.sign, ea=ua.exponent, eb=ub.exponent,
                        ma=ua.significand, mb=ub.significand, **bytes_any, **halves)

        c = stage.drop(*(f"{x}_{k}" for x in "ab" for k in ("ones", "fraction_zero")))
        a_inf, b_inf = c.a_ones & c.a_fraction_zero, c.b_ones & c.b_fraction_zero
        a_nan, b_nan = c.a_ones & ~c.a_fraction_zero, c.b_ones & ~c.b_fraction_zero
        stage.carry(nan=a_nan | b_nan | (a_inf & b_inf & (s.sa != s.sb)), inf=a_inf | b_inf,
                    inf_sign=Mux(a_inf, s.sa, s.sb))
        # both alignment shifts (for either operand as y) beside the magnitude compare's top
        # part: (exponent, hidden bit), which orders the encodings as their fields do
        amounts = {}
        for key, d in (("ab", s.ea - s.eb), ("ba", s.eb - s.ea)):
            d = Value.cast(d)[:8]
            # shifts of 32 or more act as 31: all of y's 27 bits are shifted out either way
            amounts[f"amount_{key}"] = wire(m, Mux(d[5:].any(), 31, d[:5]), f"align_{key}")
        top_a, top_b = Cat(s.ma[-1], s.ea), Cat(s.mb[-1], s.eb)
        fraction_gt = s.high_gt | (s.high_eq & s.low_gt)
        swap = wire(m, (top_b > top_a) | (s.top_eq & fraction_gt), "swap")
        s = stage.close(swap=swap, sa=s.sa, sb=s.sb, ea=s.ea, eb=s.eb, ma=s.ma, mb=s.mb,
                        bytes_a=s.bytes_a, bytes_b=s.bytes_b, **amounts)

        # the coarse part of the alignment: whole bytes, OR-ed into a sticky bit
        amount = wire(m, Mux(s.swap, s.amount_ba, s.amount_ab), "align_shift")
        wide_y = wire(m, Mux(s.swap, s.ma, s.mb) << EXTRA, "y_wide")
        byte_shift = amount[3:]
        coarse = wire(m, (wide_y >> Cat(Const(0, 3), byte_shift))[:WIDE], "y_coarse")
        y_bytes = Mux(s.swap, s.bytes_a, s.bytes_b)
        coarse_sticky = wire(m, Cat(*(y_bytes[j] & (byte_shift > j)
                                      for j in range(ALIGN_BYTES))).any(), "y_coarse_sticky")
        stage.carry(sx=Mux(s.swap, s.sb, s.sa), ex=Mux(s.swap, s.eb, s.ea))
        s = stage.close(mx=Mux(s.swap, s.mb, s.ma), coarse=coarse, coarse_sticky=coarse_sticky,
                        fine=amount[:3], subtract=s.sa ^ s.sb)

        # the fine part: 0..7 bits, the bits shifted out OR-ed into the sticky bit
        shifted = wire(m, (s.coarse >> s.fine)[:WIDE], "y_shifted")
        sticky = wire(m, (s.coarse & below_mask(WIDE, s.fine)).any() | s.coarse_sticky,
                      "y_sticky")
        s = stage.close(x=s.mx << EXTRA, y=shifted | sticky, subtract=s.subtract)

        # x + (y xor -subtract) + subtract: one adder for both operations
        flipped = wire(m, s.y ^ Mux(s.subtract, (1 << WIDE) - 1, 0), "y_flipped")
        total = wire(m, ((s.x + flipped + s.subtract) ^ (s.subtract << WIDE))[:SUM], "sum")
        # a one at bit 27 - ex stops the leading-zero count at ex (the subnormal limit)
        limit = wire(m, (Const(1 << WIDE, SUM) >> s.ex)[:SUM], "normalize_limit")
        s = stage.close(total=total, limit=limit)

        # each byte's flags of the probe (any one; its leading one, group_fine_one_hots) and
        # whether the byte of the sum is zero: two LUT levels from the adder's register
        probe = wire(m, s.total | s.limit, "sum_probe")
        s = stage.close(value=s.total, flags=group_flags(m, probe, GROUP, "sum_flags"),
                        nonzero_bytes=group_flags(m, s.total, GROUP, "sum_nonzero"),
                        fines=group_fine_one_hots(m, probe, GROUP, "sum_fines"))

        groups = first_one_hot(m, list(s.flags), "sum_groups")
        s = stage.close(value=s.value, zero=~s.nonzero_bytes.any(), fines=s.fines, groups=groups,
                        coarse=one_hot_index(m, groups, "sum_coarse_index"))

        # the exponent after the coarse shift of 8 * coarse bits, less one, plus each carry
        # j = 0, 1, 2 the rounding may bring (exponent_choices), and each less the all-ones
        # field (the round level's overflow test is then one compare with the fine shift,
        # beside its subtraction: exponent_choices' headroom); one adder each, from ex and
        # the registered index (ex drives six adders, not one per group and value)
        ex = Cat(s.ex, Const(0, 1)).as_signed()
        bases = {f"{kind}_{j}": wire(m, ex - (s.coarse << 3) + (j - offset), f"coarse_{kind}_{j}")
                 for kind, offset in (("exponent", 0), ("headroom", BINARY32.exponent_all_ones))
                 for j in range(3)}
        # the fine shift's one-hot, found beside the groups' (group_fine_one_hots), selected
        fine_hot = select_fine_one_hot(m, s.groups, s.fines, GROUP, "sum_fine_hot")
        s = stage.close(value=coarse_shift(m, s.value, s.groups, GROUP, "sum_coarse"),
                        fine=fine_hot, zero=s.zero, **bases)

        # shifted left by min(leading zeros, ex): the top bit at 27, or the exponent at 1
        moved = fine_shift_by(m, s.value, s.fine, "sum_fine")
        normalized = wire(m, Cat(moved[0] | moved[1], moved[2:]), "normalized")
        s = stage.close(normalized=normalized, fine=one_hot_index(m, s.fine, "fine_amount"),
                        zero=s.zero, **{f"{kind}_{j}": getattr(s, f"{kind}_{j}")
                                        for kind in ("exponent", "headroom") for j in range(3)})

        n = s.normalized   # bits 26..3: significand, 2: round, 1..0: sticky
        choices = exponent_choices(m, [getattr(s, f"exponent_{j}") for j in range(3)],
                                   BINARY32, "exponent_choices", minus=s.fine,
                                   headroom=[getattr(s, f"headroom_{j}") for j in range(3)])
        s = stage.close(q=round_even(m, Cat(n[0] | n[1], n[2:]), "rounded"),
                        **final_fields(m, BINARY32, choices, sign=s.sx, nan=s.nan, inf=s.inf,
                                       inf_sign=s.inf_sign, zero=s.zero,
                                       zero_sign=s.zero_sign, name="final"))
        return stage.close(y=pack_final(m, BINARY32, s.q, s, "result")).y
