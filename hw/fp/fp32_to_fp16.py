"""binary32 -> binary16, round to nearest even (``sw.ieee.fp32_to_fp16``).

A finite binary32 ``s * 2**(e - 150)`` (``s`` the 24-bit significand, ``e`` the
effective exponent) becomes ``q * 2**(eo - 25)`` in binary16 with
``eo = max(e - 112, 1)`` and ``q = round(s * 2**-(125 + eo - e))``: a right shift
by 13 for binary16 normals, by ``126 - e`` (more) for binary16 subnormals, capped at
26 (beyond it the round bit is 0 and ``q = 0``):

- level ``align``: the shift with round and sticky bits;
- level ``round``: round to nearest even, pack (a carry steps the exponent, a
  subnormal may round up to the smallest normal), overflow at or past ``0x7C00`` to
  signed infinity; NaN -> canonical ``0x7E00``; infinities and zeros keep their sign.
  binary32 subnormals are below half the smallest binary16 subnormal and give zeros.
"""

from __future__ import annotations

from amaranth.hdl import Mux, unsigned

from hw.fp.common import (FPUnit, exponent_choices, pack_choice, round_even, select_result,
                          shift_right_sticky, unpack)
from hw.shifting import wire
from sw.ieee import BINARY16, BINARY32

__all__ = ["FP32ToFP16"]

# binary16 exponent field = binary32 field - REBIAS (for normal results)
REBIAS = BINARY32.bias - BINARY16.bias                              # 112
NORMAL_SHIFT = BINARY32.fraction_bits - BINARY16.fraction_bits      # 13
MAX_SHIFT = BINARY32.precision + 2                                  # 26: q = 0, round bit 0


class FP32ToFP16(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32)}``, binary32 bit patterns) and ``o``
    (stream of ``{"y": unsigned(16)}``, binary16 bit patterns)."""

    LEVELS = ("align", "round")
    INPUTS = {"a": unsigned(32)}
    OUT_FORMAT = BINARY16

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY32, "a")
        normal_out = wire(m, a.exponent > REBIAS, "normal_out")
        out_exponent = wire(m, Mux(normal_out, a.exponent - REBIAS, 1), "out_exponent")
        # subnormal results: shift 126 - e >= 14, capped
        sub_shift = wire(m, (REBIAS + 1 + NORMAL_SHIFT) - a.exponent, "sub_shift")
        amount = wire(m, Mux(normal_out, NORMAL_SHIFT,
                             Mux(sub_shift > MAX_SHIFT, MAX_SHIFT, sub_shift)), "amount")
        amount = wire(m, amount[:5], "shift")
        grs = shift_right_sticky(m, a.significand, amount, "aligned")
        s = stage.close(grs=grs, exponent=out_exponent, sign=a.sign, nan=a.is_nan,
                        inf=a.is_inf, zero=a.is_zero)

        q = round_even(m, s.grs[:BINARY16.precision + 2], "rounded")
        choices = exponent_choices(m, s.exponent, BINARY16, "exponent_choices")
        magnitude, overflow = pack_choice(m, q, choices, BINARY16, "packed")
        y = select_result(m, BINARY16, sign=s.sign, magnitude=magnitude, overflow=overflow,
                          nan=s.nan, inf=s.inf, inf_sign=s.sign, zero=s.zero,
                          zero_sign=s.sign, name="result")
        return stage.close(y=y).y
