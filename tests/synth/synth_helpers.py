"""A tiny design of our own for flow tests that need no registry design."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class RegisteredAdder(wiring.Component):
    """``y`` = registered ``a + b``; publishes how many flip-flops that takes."""

    def __init__(self, *, width: int = 4):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width + 1)})

    @property
    def register_bits(self) -> int:
        return self.width + 1

    def elaborate(self, platform):
        m = Module()
        total = Signal(self.width + 1)
        m.d.sync += total.eq(self.a + self.b)
        m.d.comb += self.y.eq(total)
        return m
