"""int32 -> binary32, round to nearest even (``sw.ieee.int32_to_fp32``).

- level ``magnitude``: sign and ``|x|`` (32 bits unsigned: ``-2**31`` is exact);
- level ``count``: leading zeros ``z`` of ``|x|``;
- level ``normalize``: ``|x| << z`` (top bit at 31);
- level ``round``: the top 24 bits rounded to nearest even on the 8 below (round bit
  7, sticky bits 6..0), exponent ``127 + 31 - z`` (a carry out of rounding steps it
  up); zero gives ``+0``. Every int32 is below binary32's overflow threshold.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, signed

from hw.fp.common import (FPUnit, exponent_choices, leading_zeros, pack_choice, round_even,
                          select_result)
from hw.shifting import wire
from sw.ieee import BINARY32

__all__ = ["Int32ToFP32"]

INT_BITS = 32
DROPPED = INT_BITS - BINARY32.precision   # 8 bits below the kept 24


class Int32ToFP32(FPUnit):
    """Ports: ``i`` (stream of ``{"a": signed(32)}``) and ``o`` (stream of
    ``{"y": unsigned(32)}``, binary32 bit patterns)."""

    LEVELS = ("magnitude", "count", "normalize", "round")
    INPUTS = {"a": signed(INT_BITS)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        x = payload.a
        magnitude = wire(m, abs(x), "magnitude")   # unsigned(32)
        s = stage.close(magnitude=magnitude, sign=x[INT_BITS - 1])

        zeros = leading_zeros(m, s.magnitude, "zeros")
        s = stage.close(magnitude=s.magnitude, zeros=zeros, sign=s.sign)

        normalized = wire(m, (s.magnitude << s.zeros)[:INT_BITS], "normalized")
        exponent = wire(m, BINARY32.bias + INT_BITS - 1 - s.zeros, "exponent")
        s = stage.close(normalized=normalized, exponent=exponent, sign=s.sign,
                        zero=s.zeros == INT_BITS)

        low = s.normalized[:DROPPED]
        grs = Cat(low[:DROPPED - 1].any(), low[DROPPED - 1], s.normalized[DROPPED:])
        q = round_even(m, grs, "rounded")
        choices = exponent_choices(m, s.exponent, BINARY32, "exponent_choices")
        packed, _ = pack_choice(m, q, choices, BINARY32, "packed")
        y = select_result(m, BINARY32, sign=s.sign, magnitude=packed, overflow=Const(0),
                          nan=Const(0), inf=Const(0), inf_sign=Const(0), zero=s.zero,
                          zero_sign=Const(0), name="result")
        return stage.close(y=y).y
