"""binary32 + binary32 -> binary32, round to nearest even, subnormals kept
(``sw.ieee.fp32_add``).

The classic swap / align / add / normalise / round datapath with three extra bits
below the significand (guard, round, sticky; Goldberg, "What every computer
scientist should know about floating-point arithmetic", 1991, §"Guard digits"):

- level ``order``: ``x`` = the operand of larger magnitude (the encodings without the
  sign compare as unsigned integers), ``y`` the other; ``d = ex - ey`` on effective
  exponents (subnormals at 1); the specials;
- level ``align``: ``Y = (sy << 3) >> d`` with every bit shifted out OR-ed into bit 0
  (``d`` capped at 27: all of ``sy`` is then sticky);
- level ``add``: ``S = (sx << 3) +/- Y`` (subtract when the signs differ; ``S >= 0``);
- level ``count``: leading zeros ``z`` of the 28-bit ``S`` (bit 27 = carry);
- level ``normalize``: shift ``S`` left by ``h = min(z, ex)``, drop one bit (kept as
  sticky), exponent ``ex + 1 - h``: a carry shifts right by one, a cancellation shifts
  left until the top bit reaches bit 26 or the exponent reaches 1 (a subnormal);
- level ``round``: round to nearest even on the three low bits, pack, overflow to
  signed infinity.

Specials (IEEE 754-2019 §6.1, §6.3, §7.2): a NaN operand or ``inf + (-inf)`` ->
canonical NaN ``0x7FC00000``; an infinity otherwise wins with its sign; an exact
zero sum is ``+0`` unless both operands are ``-0`` (sign ``sa & sb``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, unsigned

from hw.fp.common import (FPUnit, leading_zeros, pack_rounded, round_even, select_result,
                          unpack)
from hw.shifting import below_mask, wire
from sw.ieee import BINARY32

__all__ = ["FP32Add"]

P = BINARY32.precision     # 24
EXTRA = 3                  # guard, round, sticky
WIDE = P + EXTRA           # 27: aligned operands
SUM = WIDE + 1             # 28: with the carry


class FP32Add(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32), "b": unsigned(32)}``, binary32 bit
    patterns) and ``o`` (stream of ``{"y": unsigned(32)}``, the rounded sum)."""

    LEVELS = ("order", "align", "add", "count", "normalize", "round")
    INPUTS = {"a": unsigned(32), "b": unsigned(32)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        ua = unpack(m, payload.a, BINARY32, "a")
        ub = unpack(m, payload.b, BINARY32, "b")
        swap = wire(m, payload.b[:31] > payload.a[:31], "swap")
        d_ab = wire(m, ua.exponent - ub.exponent, "d_ab")
        d_ba = wire(m, ub.exponent - ua.exponent, "d_ba")
        d = wire(m, Mux(swap, d_ba, d_ab)[:8], "exponent_difference")
        nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_inf & (ua.sign != ub.sign))
        stage.carry(sx=Mux(swap, ub.sign, ua.sign), ex=Mux(swap, ub.exponent, ua.exponent),
                    nan=nan, inf=ua.is_inf | ub.is_inf,
                    inf_sign=Mux(ua.is_inf, ua.sign, ub.sign), zero_sign=ua.sign & ub.sign)
        s = stage.close(mx=Mux(swap, ub.significand, ua.significand),
                        my=Mux(swap, ua.significand, ub.significand),
                        subtract=ua.sign ^ ub.sign, d=Mux(d > WIDE, WIDE, d))

        wide_y = wire(m, s.my << EXTRA, "y_wide")
        shifted = wire(m, (wide_y >> s.d)[:WIDE], "y_shifted")
        sticky = wire(m, (wide_y & below_mask(WIDE, s.d)).any(), "y_sticky")
        s = stage.close(x=s.mx << EXTRA, y=shifted | sticky, subtract=s.subtract)

        total = wire(m, Mux(s.subtract, s.x - s.y, s.x + s.y)[:SUM], "sum")
        s = stage.close(total=total)

        zeros = leading_zeros(m, s.total, "sum_zeros")
        s = stage.close(total=s.total, zeros=zeros)

        h = wire(m, Mux(s.zeros > s.ex, s.ex, s.zeros)[:5], "normalize_shift")
        moved = wire(m, (s.total << h)[:SUM], "sum_shifted")
        normalized = wire(m, Cat(moved[0] | moved[1], moved[2:]), "normalized")
        s = stage.close(normalized=normalized, exponent=s.ex + 1 - h, zero=s.total == 0)

        n = s.normalized   # bits 26..3: significand, 2: round, 1..0: sticky
        q = round_even(m, Cat(n[0] | n[1], n[2:]), "rounded")
        magnitude, overflow = pack_rounded(m, s.exponent, q, BINARY32, "packed")
        y = select_result(m, BINARY32, sign=s.sx, magnitude=magnitude, overflow=overflow,
                          nan=s.nan, inf=s.inf, inf_sign=s.inf_sign, zero=s.zero,
                          zero_sign=s.zero_sign, name="result")
        return stage.close(y=y).y
