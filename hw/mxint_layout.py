"""The MXINT block as an Amaranth data layout (docs/design.md, "Number formats").

A block of format ``fmt`` (:class:`sw.mxint.MXIntFormat`) is one shared exponent
plus ``fmt.block`` two's-complement elements::

    StructLayout({"exponent": signed(exponent_bits),
                  "mantissas": ArrayLayout(signed(width), block)})

Bit order (LSB first): the exponent, then mantissa 0, 1, ... . The exponent is
*unbiased* two's complement in ``fmt.exponent_range``; OCP's biased E8M0 storage is
``exponent + emax`` and is left to memories, where it costs nothing. Element ``i`` is
worth ``mantissas[i] * 2**(exponent - fmt.frac_bits)``. The hardware implements the
``"ocp"`` flavour only.
"""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data

from sw.mxint import MXIntFormat

__all__ = ["block_layout", "check_hardware_format"]


def check_hardware_format(name: str, fmt) -> MXIntFormat:
    """``fmt`` if it is an :class:`MXIntFormat` the RTL implements (flavour "ocp").

    Raises ``TypeError`` for another type and ``ValueError`` for the "lqer" flavour.
    """
    if not isinstance(fmt, MXIntFormat):
        raise TypeError(f"{name} must be an sw.mxint.MXIntFormat; got {fmt!r}")
    if fmt.flavour != "ocp":
        raise ValueError(f'{name}.flavour must be "ocp" in hardware; got {fmt.flavour!r}')
    return fmt


def block_layout(fmt: MXIntFormat) -> data.StructLayout:
    """The Amaranth layout of one block of ``fmt``."""
    return data.StructLayout({
        "exponent": signed(fmt.exponent_bits),
        "mantissas": data.ArrayLayout(signed(fmt.width), fmt.block),
    })
