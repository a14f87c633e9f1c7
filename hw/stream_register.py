"""A stream register slice: one item held in fabric flip-flops between two streams.

``o.valid`` and ``o.payload`` are registers; ``i.ready`` is ``~o.valid | o.ready`` (the
held item leaves or there is none), so the slice passes an item per cycle and adds
``latency`` (1) cycle. It cuts a long route in two: the LQER datapath puts one between
its main FIFO, whose read register is the block RAM's own output register on ECP5
(``hw.synth.ecp5_outreg``), and the rechunker that writes each channel into one of a
block's places, so the block RAM's outputs drive one register each rather than a
register per place spread over the device (docs/synth.md, "Reaching 150 MHz on ECP5").

With ``skid=True`` it is a two-entry skid buffer: ``i.ready`` is a
register too ("the spare entry is empty"), so the consumer's ready reaches no logic on the
producer's side in the same cycle; an item taken while the head is held and not leaving
waits in the spare. Same latency and rate. ``llm-int8-linear`` puts one on its gather
request port: the port's ready, with the request's take behind it, into the count of
unrequested words was the layer's clock path on ECP5 (docs/synth.md).
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
    Parameters (keyword-only): ``shape``; ``skid`` (default False): a two-entry skid buffer
    whose ``i.ready`` is a register (module docstring). Raises ``TypeError`` naming the
    parameter when ``shape`` is not a shape or ``skid`` not a bool."""

    def __init__(self, *, shape, skid: bool = False):
        with rejectable(self):
            try:
                Shape.cast(shape)
            except TypeError:
                raise TypeError(f"shape must be an Amaranth shape or layout; got {shape!r}") \
                    from None
            if not isinstance(skid, bool):
                raise TypeError(f"skid must be True or False; got {skid!r}")
            self._shape = shape
            self._skid = skid
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
        m.d.comb += [self.o.valid.eq(valid), Value.cast(self.o.payload).eq(held)]
        if not self._skid:
            m.d.comb += self.i.ready.eq(~valid | self.o.ready)
            with m.If(take):
                m.d.sync += [held.eq(Value.cast(self.i.payload)), valid.eq(1)]
            with m.Elif(self.o.ready):
                m.d.sync += valid.eq(0)
            return m
        spare_valid = Signal(name="spare_valid")
        spare = Signal(len(held), name="spare", reset_less=True)
        leaves = valid & self.o.ready
        m.d.comb += self.i.ready.eq(~spare_valid)
        with m.If(spare_valid):
            with m.If(leaves):   # the spare moves up; nothing is taken (i.ready is low)
                m.d.sync += [held.eq(spare), spare_valid.eq(0)]
        with m.Elif(take):
            with m.If(~valid | leaves):
                m.d.sync += [held.eq(Value.cast(self.i.payload)), valid.eq(1)]
            with m.Else():
                m.d.sync += [spare.eq(Value.cast(self.i.payload)), spare_valid.eq(1)]
        with m.Elif(leaves):
            m.d.sync += valid.eq(0)
        return m
