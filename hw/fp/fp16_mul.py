"""binary16 x binary16 -> binary32, exact (``sw.ieee.fp16_mul_fp32``).

The 11-bit significands multiply to at most 22 bits, which binary32's 24 hold, and
the product's exponent stays inside binary32's normal range (smallest: two binary16
subnormals, ``2**-48``; largest: ``65504**2 < 2**32``), so no rounding ever happens
and a non-zero finite product is always a binary32 normal. With ``z`` the leading
zeros of the 22-bit product ``P``, the fraction is ``(P << (z + 2))[:23]`` and the
biased exponent ``ea + eb + 98 - z`` (``= ea + eb - 2*15 - 20 + 127 + 21 - z``).

Levels (one pipeline register after each by default). The product is summed from
partial products over three levels (:class:`hw.product_tree.ProductTree`): one
combinational ``*`` is about ten LUT levels in LUTs (109 MHz on ECP5 as ``lqer-hw
pnr`` places it) and, where Yosys maps it to a MULT18X18D, 3.9 ns in nextpnr's model
plus routing in and out (about 140 MHz, docs/synth.md); every level here is a LUT and
a carry chain or less:

- ``unpack``: significands, the sum of the exponent fields, whether each exponent
  field is all ones;
- ``product_0``: the 11 partial products and a row of adders (6 terms); beside them
  each subnormal's +1 to the exponent sum (``ea + eb``, effective exponents) and the
  specials, from the registered significands and all-ones flags
  (:func:`hw.fp.common.classes_of`): classified in the unpack level, ABC built a special
  flag's register and a significand's from one shared LUT, and on ECP5 the flag's
  register sat 45 columns from it (``fp16-linear``'s clock path, docs/synth.md);
- ``product_1``: two rows (6 -> 3 -> 2, the second carry-save);
- ``product_2``: ``P`` from the last two terms;
- ``detect``: the first non-zero byte of ``P``, and each byte's leading one;
- ``coarse``: whole-byte left shift, exponent lowered by as much; the leading one of the
  byte it brings to the top;
- ``fine``: the remaining 0..7-bit shift (the top bit at 21);
- ``pack``: exponent, fraction, specials: NaN operand or ``0 * inf`` -> canonical NaN
  ``0x7FC00000``; infinity x non-zero -> signed infinity; a zero operand -> signed zero
  (sign ``sa ^ sb`` throughout).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, unsigned

from hw.fp.common import (FPUnit, classes_of, close_product_level, coarse_shift, fine_shift_by,
                          group_fine_one_hots, group_one_hot, one_hot_index, one_hot_select,
                          select_fine_one_hot, select_result, unpack)
from hw.product_tree import ProductTree
from hw.shifting import wire
from sw.ieee import BINARY16, BINARY32

__all__ = ["FP16Mul"]

PRODUCT_BITS = 2 * BINARY16.precision   # 22
# biased binary32 exponent of P's top bit (bit 21) when ea + eb is the exponent sum
EXPONENT_OFFSET = BINARY32.bias - 2 * BINARY16.bias - 2 * BINARY16.fraction_bits + PRODUCT_BITS - 1
GROUP = 8                                # normalisation: whole bytes, then bits
GROUPS = -(-PRODUCT_BITS // GROUP)       # 3
PRODUCT = ProductTree(a_width=BINARY16.precision, b_width=BINARY16.precision, adds=2)


class FP16Mul(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(16), "b": unsigned(16)}``, binary16 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the exact binary32 product)."""

    LEVELS = ("unpack", *(f"product_{k}" for k in range(PRODUCT.levels)), "detect", "coarse",
              "fine", "pack")
    DELAYS = (2.0, *PRODUCT.delays, 3.0, 3.0, 3.5, 3.0)
    INPUTS = {"a": unsigned(16), "b": unsigned(16)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY16, "a")
        b = unpack(m, payload.b, BINARY16, "b")
        stage.carry(sign=wire(m, a.sign ^ b.sign, "sign"))
        # the exponent fields' sum straight from the operands (one carry chain); each
        # subnormal's +1 (exponent 1 for field 0) is added a level later from the
        # registered hidden bits: the field's OR (whether it is normal) in front of the
        # chain was three LUT levels from the operand, llm-int8-linear's clock path on
        # ECP5 (docs/synth.md, "Equalities beside the carry chain")
        s = stage.close(sa=a.significand, sb=b.significand, a_all_ones=a.all_ones,
                        b_all_ones=b.all_ones, exponent=a.field + b.field + EXPONENT_OFFSET)
        a_zero, a_inf, a_nan = classes_of(m, s.sa, s.a_all_ones, BINARY16, "a_registered")
        b_zero, b_inf, b_nan = classes_of(m, s.sb, s.b_all_ones, BINARY16, "b_registered")
        stage.carry(nan=a_nan | b_nan | (a_inf & b_zero) | (a_zero & b_inf),
                    inf=a_inf | b_inf, zero=a_zero | b_zero)
        hidden_a, hidden_b = s.sa[-1], s.sb[-1]
        exponent = wire(m, s.exponent + Cat(~hidden_a ^ ~hidden_b, ~hidden_a & ~hidden_b),
                        "exponent_subnormals")

        terms = PRODUCT.first(m, s.sa, s.sb, "product")
        for level in range(PRODUCT.levels):
            s, terms = close_product_level(m, stage, PRODUCT, level, terms, "product",
                                           exponent=exponent)
            exponent = s.exponent
        product, = terms

        # beside the first non-zero byte, each byte's leading one (group_fine_one_hots),
        # selected with the coarse shift: the fine level only shifts (its search and an
        # 8-way select in one level were fp-accumulate's slowest path on ECP5)
        s = stage.close(product=product, exponent=s.exponent,
                        groups=group_one_hot(m, product, GROUP, "product_groups"),
                        fines=group_fine_one_hots(m, product, GROUP, "product_fines"))

        exponent = one_hot_select(m, s.groups, [s.exponent - GROUP * k for k in range(GROUPS)],
                                  "coarse_exponent")
        fine = select_fine_one_hot(m, s.groups, s.fines, GROUP, "product_fine_hot")
        s = stage.close(product=coarse_shift(m, s.product, s.groups, GROUP, "product_coarse"),
                        exponent=exponent, fine=fine)

        s = stage.close(normalized=fine_shift_by(m, s.product, s.fine, "product_fine"),
                        exponent=s.exponent, fine=one_hot_index(m, s.fine, "fine_amount"))

        exponent = wire(m, s.exponent - s.fine, "exponent")
        magnitude = Cat(Const(0, BINARY32.fraction_bits - (PRODUCT_BITS - 1)),
                        s.normalized[:PRODUCT_BITS - 1], exponent[:BINARY32.exponent_bits])
        y = select_result(m, BINARY32, sign=s.sign, magnitude=magnitude, overflow=Const(0),
                          nan=s.nan, inf=s.inf, inf_sign=s.sign, zero=s.zero,
                          zero_sign=s.sign, name="result")
        return stage.close(y=y).y
