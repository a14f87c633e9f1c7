"""int32 -> binary32, round to nearest even (``sw.ieee.int32_to_fp32``).

With ``z`` the leading zeros of ``|x|`` (32 bits unsigned: ``-2**31`` is exact), the
top 24 bits of ``|x| << z`` round to nearest even on the 8 below them (round bit 7,
sticky bits 6..0) and the exponent is ``127 + 31 - z`` (a carry out of rounding steps
it up); zero gives ``+0``. Every int32 is below binary32's overflow threshold.

Levels (one pipeline register after each by default; 150 MHz on ECP5 needs them):
``magnitude`` (sign, ``|x|``), ``detect`` (first non-zero byte, and each byte's leading
one), ``coarse`` (whole-byte left shift; the leading one of the byte it brings to the top),
``fine`` (0..7 bits more), ``round``, ``pack``.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Const, signed

from hw.fp.common import (FPUnit, coarse_shift, exponent_choices, fine_shift_by,
                          group_fine_one_hots, group_one_hot, one_hot_index, one_hot_select,
                          pack_choice, round_even, select_fine_one_hot, select_result)
from hw.shifting import wire
from sw.ieee import BINARY32

__all__ = ["Int32ToFP32"]

INT_BITS = 32
DROPPED = INT_BITS - BINARY32.precision   # 8 bits below the kept 24
GROUP = 8
GROUPS = INT_BITS // GROUP


class Int32ToFP32(FPUnit):
    """Ports: ``i`` (stream of ``{"a": signed(32)}``) and ``o`` (stream of
    ``{"y": unsigned(32)}``, binary32 bit patterns)."""

    LEVELS = ("magnitude", "detect", "coarse", "fine", "round", "pack")
    DELAYS = (3.0, 3.0, 3.0, 3.5, 3.0, 3.0)
    INPUTS = {"a": signed(INT_BITS)}
    OUT_FORMAT = BINARY32

    def _datapath(self, m, stage, payload):
        x = payload.a
        stage.carry(sign=x[INT_BITS - 1])
        s = stage.close(magnitude=wire(m, abs(x), "magnitude"))   # unsigned(32)

        # beside the first non-zero byte, each byte's leading one (group_fine_one_hots): the
        # fine level then shifts on a one-hot it does not search for (the search and an
        # 8-way select in one level took four LUT levels, the slowest path on ECP5)
        s = stage.close(magnitude=s.magnitude, zero=s.magnitude == 0,
                        groups=group_one_hot(m, s.magnitude, GROUP, "groups"),
                        fines=group_fine_one_hots(m, s.magnitude, GROUP, "fines"))

        top = BINARY32.bias + INT_BITS - 1
        exponent = one_hot_select(m, s.groups, [C(top - GROUP * k, 8) for k in range(GROUPS)],
                                  "coarse_exponent")
        fine = select_fine_one_hot(m, s.groups, s.fines, GROUP, "fine_hot")
        s = stage.close(magnitude=coarse_shift(m, s.magnitude, s.groups, GROUP, "coarse"),
                        exponent=exponent, zero=s.zero, fine=fine)

        s = stage.close(normalized=fine_shift_by(m, s.magnitude, s.fine, "fine"),
                        exponent=s.exponent, zero=s.zero,
                        fine=one_hot_index(m, s.fine, "fine_amount"))

        low = s.normalized[:DROPPED]
        grs = Cat(low[:DROPPED - 1].any(), low[DROPPED - 1], s.normalized[DROPPED:])
        s = stage.close(q=round_even(m, grs, "rounded"), zero=s.zero,
                        choices=exponent_choices(m, s.exponent, BINARY32, "exponent_choices",
                                                 minus=s.fine))

        packed, _ = pack_choice(m, s.q, s.choices, BINARY32, "packed")
        y = select_result(m, BINARY32, sign=s.sign, magnitude=packed, overflow=Const(0),
                          nan=Const(0), inf=Const(0), inf_sign=Const(0), zero=s.zero,
                          zero_sign=Const(0), name="result")
        return stage.close(y=y).y
