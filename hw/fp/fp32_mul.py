"""binary32 x binary32 -> binary32, round to nearest even, subnormals kept
(``sw.ieee.fp32_mul``).

Operands are normalised first (a subnormal's significand shifted up to bit 23, its
exponent lowered to ``e' = e - z``, possibly below 1), so the product ``P`` of the
24-bit significands lies in ``[2**46, 2**48)``; with ``t = P[47]`` the biased result
exponent is ``T = e'a + e'b - 127 + t``. A normal result (``T >= 1``) keeps ``P``'s
top 24 bits: shift right by ``23 + t``; a subnormal one (``T <= 0``) is shifted
``1 - T`` further and gets exponent 1; shifts past 49 are capped (round bit 0).

- level ``classify``: fields, specials, leading zeros of both significands;
- level ``normalize``: the two left shifts and ``e'a + e'b``;
- level ``partials``: four 12 x 12-bit partial products (one DSP each where the
  target has them; the split is where the pipeline register goes);
- level ``sum``: ``P`` from the partial products;
- level ``align``: the right shift by ``23 + t + max(0, 1 - T)`` with round and sticky;
- level ``round``: round to nearest even, pack (carry, subnormal rounding up to the
  smallest normal), overflow to signed infinity, specials: NaN operand, ``0 * inf`` ->
  canonical NaN ``0x7FC00000``; infinity x non-zero -> signed infinity; a zero operand
  -> signed zero; an underflow to zero keeps the sign.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, unsigned

from hw.fp.common import (FPUnit, exponent_choices, leading_zeros, pack_choice, round_even,
                          select_result, shift_right_sticky, unpack)
from hw.shifting import wire
from sw.ieee import BINARY32

__all__ = ["FP32Mul"]

P = BINARY32.precision          # 24
HALF = P // 2                   # 12-bit pieces of the significands
MAX_SHIFT = 2 * P + 2           # 50: every bit, round bit included, shifted out


class FP32Mul(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32), "b": unsigned(32)}``, binary32 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the rounded product)."""

    LEVELS = ("classify", "normalize", "partials", "sum", "align", "round", "pack")
    INPUTS = {"a": unsigned(32), "b": unsigned(32)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY32, "a")
        b = unpack(m, payload.b, BINARY32, "b")
        stage.carry(sign=wire(m, a.sign ^ b.sign, "sign"),
                    nan=a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (a.is_zero & b.is_inf),
                    inf=a.is_inf | b.is_inf, zero=a.is_zero | b.is_zero)
        s = stage.close(sa=a.significand, sb=b.significand, ea=a.exponent, eb=b.exponent,
                        za=leading_zeros(m, a.significand, "a_zeros"),
                        zb=leading_zeros(m, b.significand, "b_zeros"))

        na = wire(m, (s.sa << s.za)[:P], "a_normalized")
        nb = wire(m, (s.sb << s.zb)[:P], "b_normalized")
        # e'a + e'b - 127, in -171..381
        exponent = wire(m, s.ea + s.eb - s.za - s.zb - BINARY32.bias, "exponent_sum")
        stage.carry(exponent=exponent)
        s = stage.close(na=na, nb=nb)

        lo_a, hi_a = s.na[:HALF], s.na[HALF:]
        lo_b, hi_b = s.nb[:HALF], s.nb[HALF:]
        s = stage.close(ll=wire(m, lo_a * lo_b, "pp_ll"), lh=wire(m, lo_a * hi_b, "pp_lh"),
                        hl=wire(m, hi_a * lo_b, "pp_hl"), hh=wire(m, hi_a * hi_b, "pp_hh"))

        middle = wire(m, s.lh + s.hl, "pp_middle")
        product = wire(m, (Cat(s.ll, s.hh) + (middle << HALF))[:2 * P], "product")
        s = stage.close(product=product)

        top = s.product[2 * P - 1]
        biased = wire(m, s.exponent + top, "biased")             # T
        normal = wire(m, biased >= 1, "normal")
        extra = wire(m, Mux(normal, 0, 1 - biased), "extra")     # 0..172
        amount = wire(m, (P - 1) + top + extra, "amount")
        amount = wire(m, Mux(amount > MAX_SHIFT, MAX_SHIFT, amount)[:6], "shift")
        grs = shift_right_sticky(m, s.product, amount, "aligned")
        s = stage.close(grs=grs[:P + 2], out_exponent=Mux(normal, biased, 1))

        s = stage.close(q=round_even(m, s.grs, "rounded"),
                        choices=exponent_choices(m, s.out_exponent, BINARY32, "exponent_choices"))

        magnitude, overflow = pack_choice(m, s.q, s.choices, BINARY32, "packed")
        y = select_result(m, BINARY32, sign=s.sign, magnitude=magnitude, overflow=overflow,
                          nan=s.nan, inf=s.inf, inf_sign=s.sign, zero=s.zero,
                          zero_sign=s.sign, name="result")
        return stage.close(y=y).y
