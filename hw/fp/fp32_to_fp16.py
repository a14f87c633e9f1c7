"""binary32 -> binary16, round to nearest even (``sw.ieee.fp32_to_fp16``).

A finite binary32 ``s * 2**(e - 150)`` (``s`` the 24-bit significand, ``e`` the
effective exponent) becomes ``q * 2**(eo - 25)`` in binary16 with
``eo = max(e - 112, 1)`` and ``q = round(s * 2**-(125 + eo - e))``: a right shift by
13 for binary16 normals, by ``126 - e`` (more) for binary16 subnormals (capped at 64:
from 26 on every bit, the round bit included, is shifted out).

Levels (one pipeline register after each by default; 150 MHz on ECP5 needs them):

- ``classify``: fields, specials, the shift and the output exponent;
- ``align_coarse``, ``align_fine``: the shift in whole bytes, then 1..8 bits, with the
  round and sticky bits;
- ``round``: round to nearest even; beside it, for each of the three carries the final
  exponent field and whether the fraction is forced (``hw.fp.common.final_fields``);
- ``pack``: the field the carry picks (a carry steps the exponent, a subnormal may round
  up to the smallest normal), overflow at or past ``0x7C00`` to signed infinity; NaN ->
  canonical ``0x7E00``; infinities and zeros keep their sign. binary32 subnormals are
  below half the smallest binary16 subnormal and give signed zeros.
"""

from __future__ import annotations

from amaranth.hdl import Mux, unsigned

from hw.fp.common import (FPUnit, exponent_choices, final_fields, pack_final, round_even,
                          shift_right_coarse, shift_right_fine, unpack)
from hw.shifting import wire
from sw.ieee import BINARY16, BINARY32

__all__ = ["FP32ToFP16"]

# binary16 exponent field = binary32 field - REBIAS (for normal results)
REBIAS = BINARY32.bias - BINARY16.bias                              # 112
NORMAL_SHIFT = BINARY32.fraction_bits - BINARY16.fraction_bits      # 13
GROUP = 8


class FP32ToFP16(FPUnit):
    """Ports: ``i`` (stream of ``{"a": unsigned(32)}``, binary32 bit patterns) and ``o``
    (stream of ``{"y": unsigned(16)}``, binary16 bit patterns)."""

    LEVELS = ("classify", "align_coarse", "align_fine", "round", "pack")
    DELAYS = (3.0, 2.5, 2.5, 2.5, 3.0)
    INPUTS = {"a": unsigned(32)}
    OUT_FORMAT = BINARY16

    def _datapath(self, m, stage, payload):
        a = unpack(m, payload.a, BINARY32, "a")
        normal_out = wire(m, a.exponent > REBIAS, "normal_out")
        # the shift less one: 12, or 125 - e for binary16 subnormals (64 or more: 63)
        sub_shift = wire(m, (REBIAS + NORMAL_SHIFT) - a.exponent, "sub_shift")
        sub_shift = wire(m, Mux(sub_shift[6:].any(), 63, sub_shift[:6]), "sub_shift_capped")
        stage.carry(sign=a.sign, nan=a.is_nan, inf=a.is_inf, zero=a.is_zero)
        s = stage.close(significand=a.significand,
                        shift=Mux(normal_out, NORMAL_SHIFT - 1, sub_shift)[:6],
                        exponent=Mux(normal_out, a.exponent - REBIAS, 1)[:8])

        shifted, fine, sticky = shift_right_coarse(m, s.significand, s.shift, GROUP, "aligned")
        s = stage.close(shifted=shifted, fine=fine, sticky=sticky, exponent=s.exponent)

        grs = shift_right_fine(m, s.shifted, s.fine, s.sticky, "aligned")
        s = stage.close(grs=grs[:BINARY16.precision + 2], exponent=s.exponent)

        choices = exponent_choices(m, s.exponent, BINARY16, "exponent_choices")
        s = stage.close(q=round_even(m, s.grs, "rounded"),
                        **final_fields(m, BINARY16, choices, sign=s.sign, nan=s.nan, inf=s.inf,
                                       inf_sign=s.sign, zero=s.zero, zero_sign=s.sign,
                                       name="final"))
        return stage.close(y=pack_final(m, BINARY16, s.q, s, "result")).y
