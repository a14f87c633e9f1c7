"""A stream register slice: one item held in fabric flip-flops between two streams.

``o.valid`` and ``o.payload`` are registers; ``i.ready`` is ``~o.valid | o.ready`` (the
held item leaves or there is none), so the slice passes an item per cycle and adds
``latency`` (1) cycle. It cuts a long route in two: the LQER datapath puts one between
its main FIFO, whose read register is the block RAM's own output register on ECP5
(``hw.synth.ecp5_outreg``), and the rechunker that writes each channel into one of a
block's places, so the block RAM's outputs drive one register each rather than a
register per place spread over the device (docs/synth.md, "Reaching 150 MHz on ECP5").
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.unused import rejectable

__all__ = ["StreamRegister", "LATENCY"]

LATENCY = 1


class StreamRegister(wiring.Component):
    """Ports ``i`` and ``o`` (streams of payload ``shape``, an Amaranth shape or layout).
    Parameter (keyword-only): ``shape``. Raises ``TypeError`` naming the parameter when
    ``shape`` is not a shape."""

    def __init__(self, *, shape):
        with rejectable(self):
            try:
                Shape.cast(shape)
            except TypeError:
                raise TypeError(f"shape must be an Amaranth shape or layout; got {shape!r}") \
                    from None
            self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def latency(self) -> int:
        """Cycles from an item taken on ``i`` to the same item valid on ``o``."""
        return LATENCY

    def elaborate(self, platform):
        m = Module()
        valid = Signal(name="held_valid")
        held = Signal(len(Value.cast(self.o.payload)), name="held", reset_less=True)
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~valid | self.o.ready), self.o.valid.eq(valid),
                     Value.cast(self.o.payload).eq(held)]
        with m.If(take):
            m.d.sync += [held.eq(Value.cast(self.i.payload)), valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += valid.eq(0)
        return m
