"""binary32 x binary32 -> binary32, round to nearest even, subnormals kept
(``sw.ieee.fp32_mul``).

Operands are normalised first (a subnormal's significand shifted up to bit 23, its
exponent lowered to ``e' = e - z``, possibly below 1), so the product ``P`` of the
24-bit significands lies in ``[2**46, 2**48)``. With ``E = e'a + e'b - 127`` and
``t = P[47]``, the biased result exponent is ``E + t``. A normal result
(``E + t >= 1``) keeps ``P``'s top 24 bits: a right shift by ``23 + t``; a subnormal
one gets exponent 1 and the shift ``24 - E`` (capped at 64: from 49 on every bit, the
round bit included, is shifted out). The shift for ``t = 0`` is formed while ``P`` is still
being summed; for ``t = 1`` it is the same (a subnormal result, or ``E = 0``) or one more
inside the same byte (a normal one: 23 -> 24), so the whole-byte part of the alignment
does not wait for ``t``, and ``t`` adds one to the fine part only where ``E >= 1``.

Levels (one pipeline register after each by default). The product is summed from
partial products over four levels (:class:`hw.product_tree.ProductTree`): a
combinational 24 x 24 ``*`` is about twenty LUT levels in LUTs (96 MHz on ECP5 as
``lqer-hw pnr`` places it); every level here is at most a LUT and a carry chain:

- ``unpack``: fields, whether each operand's field is all ones and its fraction zero,
  the exponent fields' sum less 127 and how many operands are subnormal, first non-zero
  nibble of each significand (the hidden bit joined after the fraction's nibbles);
- ``coarse``: whole-nibble left shifts of the significands; the subnormal count added
  to the exponent (``ea + eb - 127`` with ``e = max(field, 1)``); the operands' classes
  (NaN, infinity, zero) and their join into the result's NaN, infinity and zero flags
  (joined in ``unpack`` they were five LUT levels from operands placed far apart);
- ``fine``: the remaining 0..3-bit shifts (the top bit at 23; in bytes and 0..7 bits this
  level was five LUT levels deep), the exponent lowered by the whole-nibble shifts;
  a's result registered ``A_COPIES`` times, each copy driving a sixth of the partial
  products' rows;
- ``product_0``: the 24 partial products and a row of adders (12 terms); the fine
  shifts subtracted from ``E``;
- ``product_1``: a row of adders (12 -> 6); the subnormal shift ``23 - E`` and
  whether ``E + t >= 1``;
- ``product_2``: a row of adders (6 -> 3; with the row before in one level, two carry
  chains in series and the route between them were the unit's limit, docs/synth.md);
  the subnormal shift capped at 63;
- ``product_3``: a carry-save row (3 -> 2) and ``P``; the shift for ``t = 0`` and the
  exponents for ``t = 0, 1``;
- ``align_coarse``, ``align_fine``: the right shift in whole bytes, then 1..8 bits,
  with the round and sticky bits;
- ``round``: round to nearest even; beside it, for each of the three carries the final
  exponent field and whether the fraction is forced (``hw.fp.common.final_fields``);
- ``pack``: the field the carry picks (``hw.fp.common.pack_final``), which encodes
  overflow to signed infinity and the specials: NaN
  operand or ``0 * inf`` -> canonical NaN ``0x7FC00000``; infinity x non-zero -> signed
  infinity; a zero operand -> signed zero; an underflow to zero keeps the sign.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Value, unsigned

from hw.fp.common import (FPUnit, close_product_level, coarse_shift, exponent_choices,
                          final_fields, fine_shift, group_one_hot, one_hot_index, pack_final,
                          round_even, shift_right_coarse, shift_right_fine, unpack)
from hw.product_tree import ProductTree
from hw.shifting import wire
from sw.ieee import BINARY32

__all__ = ["FP32Mul"]

P = BINARY32.precision          # 24
GROUP = 8                       # alignment in whole bytes, then bits
NORM_GROUP = 4                  # normalisation in nibbles (6 options), then 0..3 bits
PRODUCT = ProductTree(a_width=P, b_width=P, adds=1)
A_COPIES = 6                    # registers of a's normalised significand (4 rows each)


def significand_groups(m: Module, significand: Value, name: str) -> Value:
    """:func:`hw.fp.common.group_one_hot` of ``significand`` (nibbles), with the hidden
    bit joined last: it is the exponent field's OR (two LUT levels), which in front of
    the groups' flags and their priority made five LUT levels from the operand."""
    hidden = significand[-1]
    fraction = group_one_hot(m, Cat(significand[:-1], Const(0, 1)), NORM_GROUP, f"{name}_fraction")
    return wire(m, Cat(fraction[0] | hidden, fraction[1:] & (~hidden).replicate(len(fraction) - 1)),
                name)


class FP32Mul(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32), "b": unsigned(32)}``, binary32 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the rounded product)."""

    LEVELS = ("unpack", "coarse", "fine", *(f"product_{k}" for k in range(PRODUCT.levels)),
              "align_coarse", "align_fine", "round", "pack")
    DELAYS = (3.5, 3.0, 3.5, *PRODUCT.delays, 3.5, 3.0, 3.0, 3.0)
    INPUTS = {"a": unsigned(32), "b": unsigned(32)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY32, "a")
        b = unpack(m, payload.b, BINARY32, "b")
        # each operand's classes formed and joined a level later from two pieces
        # registered here, the field all ones and the fraction zero: the join of two
        # 31-bit reductions was five LUT levels wherever a and b come from far apart, and
        # a class alone four with the int path's routes (docs/synth.md)
        stage.carry(sign=wire(m, a.sign ^ b.sign, "sign"),
                    **{f"{x}_{k}": wire(m, v, f"{x}_{k}")
                       for x, u, bits in (("a", a, payload.a), ("b", b, payload.b))
                       for k, v in (("ones", u.field == BINARY32.exponent_all_ones),
                                    ("fraction_zero", bits[:BINARY32.fraction_bits] == 0))})
        # the exponent fields' sum straight from the operands (one carry chain); the
        # subnormals' +1 each (exponent 1 for field 0) waits a level: max(field, 1) was
        # two LUT levels (the field's OR) in front of the chain (docs/synth.md)
        hidden_a, hidden_b = a.significand[P - 1], b.significand[P - 1]
        s = stage.close(sa=a.significand, sb=b.significand,
                        exponent=a.field + b.field - BINARY32.bias,
                        subnormals=Cat(~hidden_a ^ ~hidden_b, ~hidden_a & ~hidden_b),
                        ga=significand_groups(m, a.significand, "a_groups"),
                        gb=significand_groups(m, b.significand, "b_groups"))
        c = stage.drop(*(f"{x}_{k}" for x in "ab" for k in ("ones", "fraction_zero")))
        classes = {x: SimpleNamespace(nan=ones & ~zero, inf=ones & zero, zero=~hidden & zero)
                   for x, ones, zero, hidden in (("a", c.a_ones, c.a_fraction_zero, s.sa[P - 1]),
                                                 ("b", c.b_ones, c.b_fraction_zero, s.sb[P - 1]))}
        xa, xb = classes["a"], classes["b"]
        stage.carry(nan=xa.nan | xb.nan | (xa.inf & xb.zero) | (xa.zero & xb.inf),
                    inf=xa.inf | xb.inf, zero=xa.zero | xb.zero)

        s = stage.close(sa=coarse_shift(m, s.sa, s.ga, NORM_GROUP, "a_coarse"),
                        sb=coarse_shift(m, s.sb, s.gb, NORM_GROUP, "b_coarse"),
                        exponent=wire(m, s.exponent + s.subnormals, "exponent_subnormals"),
                        ca=one_hot_index(m, s.ga, "a_coarse_index"),
                        cb=one_hot_index(m, s.gb, "b_coarse_index"))

        na, fa = fine_shift(m, s.sa, s.sa, NORM_GROUP, "a_fine")
        nb, fb = fine_shift(m, s.sb, s.sb, NORM_GROUP, "b_fine")
        # a's significand feeds every row of partial products: a copy per third of them
        copies = {f"na_{k}": na for k in range(A_COPIES)}
        s = stage.close(replicas=tuple(copies)[1:], **copies, nb=nb,
                        exponent=s.exponent - (s.ca + s.cb) * NORM_GROUP,
                        fa=one_hot_index(m, fa, "a_fine_index"),
                        fb=one_hot_index(m, fb, "b_fine_index"))

        # E = e'a + e'b - 127, in -171..381
        terms = PRODUCT.first(m, [getattr(s, k) for k in copies], s.nb, "product")
        s, terms = close_product_level(m, stage, PRODUCT, 0, terms, "product",
                                       exponent=wire(m, s.exponent - s.fa - s.fb, "exponent"))
        # for t = 0, 1: normal when E + t >= 1; shift less one: 22 + t, or 23 - E (below 64:
        # any shift of 49 or more drops every bit, the round bit included). The subtraction
        # and the tests beside the product's middle levels, the choices beside its last.
        # The capping a level after the subtraction (in one level, a carry chain and
        # three LUT levels).
        e = s.exponent
        negative = e[-1]
        s, terms = close_product_level(
            m, stage, PRODUCT, 1, terms, "product", exponent=e,
            sub_shift=wire(m, (P - 1) - e, "sub_shift"),
            normal_0=wire(m, ~negative & e.any(), "normal_0"),
            normal_1=wire(m, ~negative, "normal_1"))
        capped = wire(m, Mux(s.sub_shift[6:].any(), 63, s.sub_shift[:6]), "sub_shift_capped")
        for level in range(2, PRODUCT.levels - 1):
            s, terms = close_product_level(m, stage, PRODUCT, level, terms, "product",
                                           exponent=s.exponent, sub_shift=capped,
                                           normal_0=s.normal_0, normal_1=s.normal_1)
            capped = s.sub_shift
        # the shift less one for t = 0; for t = 1 it is one more when E >= 1 (22 -> 23, in
        # the same byte) and the same otherwise (23 - E, or 23 when E = 0): so the byte
        # shift does not wait for t, only the fine shift's low bits take t
        options = {f"exponent_{t}": Mux(getattr(s, f"normal_{t}"), s.exponent + t, 1)
                   for t in (0, 1)}
        s, (product,) = close_product_level(
            m, stage, PRODUCT, PRODUCT.levels - 1, terms, "product", **options,
            shift_0=Mux(s.normal_0, P - 2, capped)[:6], normal_0=s.normal_0)

        top = product[2 * P - 1]
        shifted, fine, sticky = shift_right_coarse(m, product, s.shift_0, GROUP, "aligned")
        fine = wire(m, (fine + (top & s.normal_0))[:len(fine)], "aligned_fine_top")
        s = stage.close(shifted=shifted, fine=fine, sticky=sticky,
                        out_exponent=Mux(top, s.exponent_1, s.exponent_0))

        grs = shift_right_fine(m, s.shifted, s.fine, s.sticky, "aligned")
        s = stage.close(grs=grs[:P + 2], out_exponent=s.out_exponent)

        choices = exponent_choices(m, s.out_exponent, BINARY32, "exponent_choices")
        s = stage.close(q=round_even(m, s.grs, "rounded"),
                        **final_fields(m, BINARY32, choices, sign=s.sign, nan=s.nan, inf=s.inf,
                                       inf_sign=s.sign, zero=s.zero, zero_sign=s.sign,
                                       name="final"))
        return stage.close(y=pack_final(m, BINARY32, s.q, s, "result")).y
