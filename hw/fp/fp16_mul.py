"""binary16 x binary16 -> binary32, exact (``sw.ieee.fp16_mul_fp32``).

The 11-bit significands multiply to at most 22 bits, which binary32's 24 hold, and
the product's exponent stays inside binary32's normal range (smallest: two binary16
subnormals, ``2**-48``; largest: ``65504**2 < 2**32``), so no rounding ever happens
and a non-zero finite product is always a binary32 normal:

- level ``multiply``: ``P = sa * sb`` (22 bits) and ``ea + eb`` (effective exponents);
- level ``count``: leading zeros ``z`` of ``P`` (22-bit field);
- level ``normalize``: fraction ``(P << (z + 2))[:23]``, biased exponent
  ``ea + eb + 98 - z`` (``= ea + eb - 2*15 - 20 + 127 + 21 - z``), and the specials:
  NaN (NaN operand, ``0 * inf``) -> canonical NaN ``0x7FC00000``; infinity x non-zero
  -> signed infinity; a zero operand -> signed zero (sign = ``sa ^ sb`` throughout).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, unsigned

from hw.fp.common import FPUnit, leading_zeros, select_result, unpack
from hw.shifting import wire
from sw.ieee import BINARY16, BINARY32

__all__ = ["FP16Mul"]

PRODUCT_BITS = 2 * BINARY16.precision   # 22
# biased binary32 exponent of P's top bit (bit 21) when ea + eb is the exponent sum
EXPONENT_OFFSET = BINARY32.bias - 2 * BINARY16.bias - 2 * BINARY16.fraction_bits + PRODUCT_BITS - 1


class FP16Mul(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(16), "b": unsigned(16)}``, binary16 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the exact binary32 product)."""

    LEVELS = ("multiply", "count", "normalize")
    INPUTS = {"a": unsigned(16), "b": unsigned(16)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY16, "a")
        b = unpack(m, payload.b, BINARY16, "b")
        sign = wire(m, a.sign ^ b.sign, "sign")
        nan = a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (a.is_zero & b.is_inf)
        s = stage.close(
            product=wire(m, a.significand * b.significand, "product"),
            exponent=wire(m, a.exponent + b.exponent, "exponent_sum"),
            sign=sign, nan=nan, inf=a.is_inf | b.is_inf, zero=a.is_zero | b.is_zero)

        zeros = leading_zeros(m, s.product, "product_zeros")
        s = stage.close(product=s.product, zeros=zeros, exponent=s.exponent, sign=s.sign,
                        nan=s.nan, inf=s.inf, zero=s.zero)

        shifted = wire(m, (s.product << s.zeros) << 2, "normalized")  # top bit at 23
        fraction = shifted[:BINARY32.fraction_bits]
        exponent = wire(m, s.exponent + EXPONENT_OFFSET - s.zeros, "exponent")
        magnitude = Cat(fraction, exponent[:BINARY32.exponent_bits])
        y = select_result(m, BINARY32, sign=s.sign, magnitude=magnitude, overflow=Const(0),
                          nan=s.nan, inf=s.inf, inf_sign=s.sign, zero=s.zero,
                          zero_sign=s.sign, name="result")
        return stage.close(y=y).y
