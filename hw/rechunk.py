"""A stream width converter: items of ``n_in`` elements to items of ``n_out`` elements.

The elements keep their order: ``n_in < n_out`` gathers ``n_out / n_in`` input items into
one output item (the first input item in the lowest elements), ``n_in > n_out`` sends
each input item as ``n_in / n_out`` output items (lowest elements first), and ``n_in ==
n_out`` passes items through. One of the two must divide the other. The LQER datapath
uses it between its lanes (channels per dot-array item) and its MXINT blocks (channels
per output item).

Timing: gathering, an output item is valid the cycle after its last input item was
taken (latency 1) and the converter takes an input item every cycle; splitting, an
input item is taken when its predecessor's last piece leaves (latency 1), so the output
carries a piece every cycle.

``registered_ready``: when converting, the input's ready is a register's output, ``~full``
(gathering) or ``~holding`` (splitting): the converter takes an input item only into an
empty held item, so the output's ready never reaches the clock enable of the held item (a
whole gathered block in the LQER datapath; docs/synth.md, "Reaching 150 MHz on ECP5");
gathering, the place of the next item is then a one-hot register, all zero while the
gathered item is full, so a place's load is the input's valid and its bit alone. The
price is a cycle per output item when the input is backlogged: gathering takes
``n_out / n_in`` items in ``n_out / n_in + 1`` cycles, splitting takes its next item the
cycle after the last piece of the previous one left. The latency is the same; passing
through is unchanged.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.unused import rejectable

__all__ = ["Rechunk"]


class Rechunk(wiring.Component):
    """Ports ``i`` (stream of ``ArrayLayout(element, n_in)``) and ``o`` (stream of
    ``ArrayLayout(element, n_out)``).

    Parameters (keyword-only): ``element`` (an Amaranth shape or layout), ``n_in`` and
    ``n_out`` (1..4096, one dividing the other); ``registered_ready`` (bool, default False:
    the module doc). Raises ``ValueError`` / ``TypeError``
    naming the parameter.
    """

    def __init__(self, *, element, n_in: int, n_out: int, registered_ready: bool = False):
        with rejectable(self):
            if registered_ready not in (True, False, 0, 1):
                raise TypeError(f"registered_ready must be a bool; got {registered_ready!r}")
            self._registered_ready = bool(registered_ready)
            self._n_in = check_int("n_in", n_in, 1, 4096)
            self._n_out = check_int("n_out", n_out, 1, 4096)
            if n_in % n_out and n_out % n_in:
                raise ValueError(f"n_out must divide or be a multiple of n_in ({n_in}); "
                                 f"got {n_out}")
            self._element = element
        super().__init__({"i": In(stream.Signature(data.ArrayLayout(element, n_in))),
                          "o": Out(stream.Signature(data.ArrayLayout(element, n_out)))})

    @property
    def latency(self) -> int:
        """Cycles from taking the input item that completes (gathering) or starts
        (splitting) an output item to that item being valid; 0 when passing through."""
        return 0 if self._n_in == self._n_out else 1

    @property
    def registered_ready(self) -> bool:
        """Whether the input takes items only into an empty held item (module doc)."""
        return self._registered_ready

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = self._n_in, self._n_out
        if n_in == n_out:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        if n_in < n_out:
            ratio = n_out // n_in
            held = Signal(data.ArrayLayout(self._element, n_out), name="gathered")
            full = Signal(name="full")
            take = self.i.valid & self.i.ready
            ready = ~full if self._registered_ready else ~full | self.o.ready
            m.d.comb += [self.i.ready.eq(ready),
                         self.o.valid.eq(full), self.o.payload.eq(held)]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += full.eq(0)
            if self._registered_ready:
                # the item's place as a one-hot register, all zero while the block is full
                # (it takes nothing then): each place's clock enable is the AND of two
                # registers (the input's valid, its bit), with no term of ``full``
                place = Signal(ratio, name="gathered_place", init=1)
                at = [place[k] for k in range(ratio)]
                take = self.i.valid
                with m.If(self.o.valid & self.o.ready):
                    m.d.sync += place.eq(1)
                with m.Elif(take):
                    m.d.sync += place.eq(place.shift_left(1))
            else:
                count = Signal(range(ratio), name="gathered_items")
                at = [count == k for k in range(ratio)]
                with m.If(take):
                    m.d.sync += count.eq(Mux(count == ratio - 1, 0, count + 1))
            with m.If(take):
                for k in range(ratio):
                    with m.If(at[k]):
                        for e in range(n_in):
                            m.d.sync += held[k * n_in + e].eq(self.i.payload[e])
                with m.If(at[ratio - 1]):
                    m.d.sync += full.eq(1)
            return m
        ratio = n_in // n_out
        held = Signal(data.ArrayLayout(self._element, n_in), name="held")
        piece = Signal(range(ratio), name="piece")
        valid = Signal(name="holding")
        last_piece = piece == ratio - 1
        leave = self.o.valid & self.o.ready
        ready = ~valid if self._registered_ready else ~valid | (leave & last_piece)
        m.d.comb += [self.i.ready.eq(ready), self.o.valid.eq(valid)]
        for k in range(ratio):
            with m.If(piece == k):
                for e in range(n_out):
                    m.d.comb += self.o.payload[e].eq(held[k * n_out + e])
        with m.If(leave):
            m.d.sync += piece.eq(Mux(last_piece, 0, piece + 1))
            with m.If(last_piece):
                m.d.sync += valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), valid.eq(1), piece.eq(0)]
        return m
