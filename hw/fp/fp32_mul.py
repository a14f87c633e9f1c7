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
partial products over three levels (:class:`hw.product_tree.ProductTree`): a
combinational 24 x 24 ``*`` is about twenty LUT levels in LUTs (96 MHz on ECP5 as
``lqer-hw pnr`` places it); every level here is a LUT and a carry chain, or two carry
chains:

- ``unpack``: fields, each operand's classes (NaN, infinity, zero), ``ea + eb - 127``,
  first non-zero nibble of each significand;
- ``coarse``: whole-nibble left shifts of the significands, exponent lowered by as much;
  the two operands' classes joined into the result's NaN, infinity and zero flags (joined
  in ``unpack`` they were five LUT levels from operands placed far apart);
- ``fine``: the remaining 0..3-bit shifts (the top bit at 23; in bytes and 0..7 bits this
  level was five LUT levels deep); a's result registered ``A_COPIES`` times, each copy
  driving a third of the partial products' rows;
- ``product_0``: the 24 partial products and a row of adders (12 terms); the fine
  shifts subtracted from ``E``;
- ``product_1``: two rows of adders (12 -> 6 -> 3); the subnormal shift ``23 - E``
  (capped) and whether ``E + t >= 1``;
- ``product_2``: a carry-save row (3 -> 2) and ``P``; the shift for ``t = 0`` and the
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

from amaranth.hdl import Mux, unsigned

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
PRODUCT = ProductTree(a_width=P, b_width=P, adds=2)
A_COPIES = 3                    # registers of a's normalised significand (8 rows each)


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
        # each operand's classes registered apart and joined a level later: the join of
        # two 31-bit reductions was five LUT levels wherever a and b come from far apart
        # (the int path's scale multiplier, docs/synth.md)
        stage.carry(sign=wire(m, a.sign ^ b.sign, "sign"),
                    **{f"{x}_{c}": getattr(u, f"is_{c}") for x, u in (("a", a), ("b", b))
                       for c in ("nan", "inf", "zero")})
        s = stage.close(sa=a.significand, sb=b.significand,
                        exponent=a.exponent + b.exponent - BINARY32.bias,
                        ga=group_one_hot(m, a.significand, NORM_GROUP, "a_groups"),
                        gb=group_one_hot(m, b.significand, NORM_GROUP, "b_groups"))
        c = stage.drop(*(f"{x}_{c}" for x in "ab" for c in ("nan", "inf", "zero")))
        stage.carry(nan=c.a_nan | c.b_nan | (c.a_inf & c.b_zero) | (c.a_zero & c.b_inf),
                    inf=c.a_inf | c.b_inf, zero=c.a_zero | c.b_zero)

        s = stage.close(sa=coarse_shift(m, s.sa, s.ga, NORM_GROUP, "a_coarse"),
                        sb=coarse_shift(m, s.sb, s.gb, NORM_GROUP, "b_coarse"), exponent=s.exponent,
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
        e = s.exponent
        sub_shift = wire(m, (P - 1) - e, "sub_shift")
        negative = e[-1]
        s, terms = close_product_level(
            m, stage, PRODUCT, 1, terms, "product", exponent=e,
            sub_shift=wire(m, Mux(sub_shift[6:].any(), 63, sub_shift[:6]), "sub_shift_capped"),
            normal_0=wire(m, ~negative & e.any(), "normal_0"),
            normal_1=wire(m, ~negative, "normal_1"))
        for level in range(2, PRODUCT.levels - 1):
            s, terms = close_product_level(m, stage, PRODUCT, level, terms, "product",
                                           exponent=s.exponent, sub_shift=s.sub_shift,
                                           normal_0=s.normal_0, normal_1=s.normal_1)
        # the shift less one for t = 0; for t = 1 it is one more when E >= 1 (22 -> 23, in
        # the same byte) and the same otherwise (23 - E, or 23 when E = 0): so the byte
        # shift does not wait for t, only the fine shift's low bits take t
        options = {f"exponent_{t}": Mux(getattr(s, f"normal_{t}"), s.exponent + t, 1)
                   for t in (0, 1)}
        s, (product,) = close_product_level(
            m, stage, PRODUCT, PRODUCT.levels - 1, terms, "product", **options,
            shift_0=Mux(s.normal_0, P - 2, s.sub_shift)[:6], normal_0=s.normal_0)

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
