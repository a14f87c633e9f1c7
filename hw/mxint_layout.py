"""The MXINT block as an Amaranth data layout (DESIGN.md §2).

A block is one shared exponent plus ``block`` two's-complement mantissas::

    StructLayout({"exponent": signed(exponent_bits),
                  "mantissas": ArrayLayout(signed(width), block)})

Bit order (LSB first): the exponent, then mantissa 0, 1, ... . The exponent is
*unbiased* two's complement in ``[-emax, emax]`` (``emax = 2**(exponent_bits-1) - 1``);
OCP's biased E8M0 storage is ``exponent + emax`` and is left to memories, where
it costs nothing. Element ``i`` is worth ``mantissas[i] * 2**(exponent - (width - 2))``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed
from amaranth.lib import data

from hw.params import check_int

__all__ = ["MXIntFormat"]


@dataclass(frozen=True)
class MXIntFormat:
    """MXINT(width, block, exponent_bits), "ocp" flavour, validated on construction."""

    width: int = 8
    block: int = 16
    exponent_bits: int = 8

    def __post_init__(self):
        check_int("width", self.width, 2, 16)
        check_int("block", self.block, 1, 1024, power_of_two=True)
        check_int("exponent_bits", self.exponent_bits, 2, 8)

    @property
    def frac_bits(self) -> int:
        """Mantissa fraction bits relative to the shared exponent."""
        return self.width - 2

    @property
    def exponent_range(self) -> tuple[int, int]:
        emax = 2 ** (self.exponent_bits - 1) - 1
        return -emax, emax

    @property
    def mantissa_max(self) -> int:
        """Largest mantissa magnitude; the most negative code is unused."""
        return 2 ** (self.width - 1) - 1

    @property
    def lsb_range(self) -> tuple[int, int]:
        """Range of the exponent of one mantissa unit, ``exponent - frac_bits``."""
        lo, hi = self.exponent_range
        return lo - self.frac_bits, hi - self.frac_bits

    @property
    def layout(self) -> data.StructLayout:
        return data.StructLayout({
            "exponent": signed(self.exponent_bits),
            "mantissas": data.ArrayLayout(signed(self.width), self.block),
        })
