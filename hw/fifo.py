"""A memory FIFO whose read data leaves from a fabric register.

:class:`amaranth.lib.fifo.SyncFIFOBuffered` keeps its entries in a
:class:`~amaranth.lib.memory.Memory` with a synchronous read port, and its ``r_data`` *is*
that port's data: its "output register" is the block RAM's own read register. Yosys 0.70
maps ECP5 block RAMs with ``REGMODE = "NOREG"`` (``techlibs/lattice/brams_map_16kd.v``)
and nextpnr's ECP5 model gives that output 5.83 ns from the clock, so any logic between
``r_data`` and a register (a rechunker's select, a merge's first level) caps a design
near 90 MHz (docs/synth.md, "Reaching 150 MHz on ECP5").

:class:`RegisteredFIFO` puts one more register after the buffered FIFO, in the fabric and
without reset, loaded straight from the memory's read data (its enable on the flip-flop's
clock enable), so the consumer's logic starts at a flip-flop. The register is a pipeline
stage of the read side: it loads whenever it is empty or being read, so an always-ready
consumer still takes an item every cycle, and back-pressure holds it without losing one.
The price is one cycle: an item written in cycle ``c`` is valid on ``o`` from cycle
``c + LATENCY`` (3; ``SyncFIFOBuffered``: 2).

``registered_ready``: the read register loads only when it is empty, so ``o.ready`` reaches
only the register's full flag, not the clock enable of the read register or the buffered
FIFO's read (the LQER output join, whose ready comes from outside the datapath:
docs/synth.md, "Reaching 150 MHz on ECP5"). The price: after an item is read in cycle
``t``, the next is valid from ``t + 2`` (an item every other cycle at most).
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.unused import rejectable

__all__ = ["RegisteredFIFO", "LATENCY"]

# An item written (taken on ``i``) in cycle c is valid on ``o`` from cycle c + LATENCY:
# the buffered FIFO's two cycles (the memory write, then its synchronous read), then the
# fabric register's.
LATENCY = 3


class RegisteredFIFO(wiring.Component):
    """Ports ``i`` (stream in: ``i.ready`` is the FIFO's room) and ``o`` (stream out,
    ``o.payload`` from a register), both of payload ``shape``.

    Parameters (keyword-only): ``shape`` (an Amaranth shape or layout), ``depth``
    (3..65536: the entries it can hold; ``depth - 1`` of them in a ``SyncFIFOBuffered``
    of ``depth - 2`` memory words, one in the fabric register); ``registered_ready`` (bool,
    default False: the module doc). Raises ``ValueError`` / ``TypeError`` naming the
    parameter.
    """

    def __init__(self, *, shape, depth: int, registered_ready: bool = False):
        with rejectable(self):
            if registered_ready not in (True, False, 0, 1):
                raise TypeError(f"registered_ready must be a bool; got {registered_ready!r}")
            self._registered_ready = bool(registered_ready)
            self._depth = check_int("depth", depth, 3, 65536)
            self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def depth(self) -> int:
        """Entries the FIFO holds (memory words, the memory's read register, the output
        register)."""
        return self._depth

    @property
    def memory_words(self) -> int:
        """Words of the memory inside (what grows with the depth)."""
        return self._depth - 2

    @property
    def registered_ready(self) -> bool:
        """Whether the read register loads only when empty (module doc)."""
        return self._registered_ready

    @property
    def latency(self) -> int:
        """Cycles from an item taken on ``i`` to the same item valid on ``o`` (when the FIFO
        was empty)."""
        return LATENCY

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        m.submodules.buffer = buf = SyncFIFOBuffered(width=width, depth=self._depth - 1)
        m.d.comb += [buf.w_data.eq(Value.cast(self.i.payload)), buf.w_en.eq(self.i.valid),
                     self.i.ready.eq(buf.w_rdy)]
        # the read register: loaded from the memory's read data alone (no logic before it)
        held = Signal(width, name="read_register", reset_less=True)
        full = Signal(name="read_register_full")
        m.d.comb += buf.r_en.eq(~full if self._registered_ready else ~full | self.o.ready)
        with m.If(buf.r_rdy & buf.r_en):
            m.d.sync += [held.eq(buf.r_data), full.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        m.d.comb += [self.o.valid.eq(full), Value.cast(self.o.payload).eq(held)]
        return m
