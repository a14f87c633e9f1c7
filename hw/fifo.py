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
``c + LATENCY`` (3; ``SyncFIFOBuffered``: 2). The buffered FIFO is :class:`BufferedFIFO`,
cycle for cycle ``SyncFIFOBuffered`` but with its memory declared collision-free
(``hw.memory_collision``), so Yosys builds no read-write collision emulation behind the
read data, the register is the memory's only load, and on ECP5 it becomes the block RAM's
output register, its enable the output enable (``hw.synth.ecp5_outreg``).

``registered_ready``: the read register loads only when it is empty, so ``o.ready`` reaches
only the register's full flag, not the clock enable of the read register or the buffered
FIFO's read (the LQER output join, whose ready comes from outside the datapath:
docs/synth.md, "Reaching 150 MHz on ECP5"). The price: after an item is read in cycle
``t``, the next is valid from ``t + 2`` (an item every other cycle at most). The FIFO is
then our own, cycle for cycle the buffered FIFO above but with the decision to read the
memory taken a cycle ahead into a register: the clock enable of the memory's read
register is a flip-flop, copied once per memory of at most
:data:`hw.pipeline.SLICE_BITS` bits (the word is split across such memories, each with its
own read pointer), so no logic
and no device-wide fan-out sits between the FIFO's state and that enable.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.memory_collision import COLLISION_FREE
from hw.params import check_int
from hw.pipeline import REPLICA_TAG, SLICE_BITS, next_equals
from hw.unused import rejectable

__all__ = ["BufferedFIFO", "RegisteredFIFO", "LATENCY", "PrefetchFIFO", "PREFETCH_LATENCY"]

# An item written (taken on ``i``) in cycle c is valid on ``o`` from cycle c + LATENCY:
# the buffered FIFO's two cycles (the memory write, then its synchronous read), then the
# fabric register's.
LATENCY = 3
# PrefetchFIFO: an item written in cycle c is valid on ``o`` from cycle c + 2 (the memory
# write, then the head register's load)
PREFETCH_LATENCY = 2


class BufferedFIFO(wiring.Component):
    """Cycle for cycle :class:`amaranth.lib.fifo.SyncFIFOBuffered` (``depth`` entries:
    ``depth - 1`` memory words and the memory's read register, ``r_data`` the read port's
    data), with its memory declared collision-free (``hw.memory_collision``): the write
    pointer meets the read pointer only when the memory is empty (no read) or full (no
    write), so no read returns a word being written, and Yosys builds no collision
    emulation between a block RAM's read data and its load.

    Ports as ``SyncFIFOBuffered``'s: ``w_data`` (``width`` bits), ``w_en``, ``w_rdy``;
    ``r_data``, ``r_rdy``, ``r_en`` (``r_rdy & r_en`` reads; ``r_data`` holds otherwise).
    Parameters (keyword-only): ``width`` (1..65536 bits), ``depth`` (2..65536). Raises
    ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, width: int, depth: int):
        with rejectable(self):
            self._width = check_int("width", width, 1, 65536)
            self._depth = check_int("depth", depth, 2, 65536)
        super().__init__({"w_data": In(self._width), "w_en": In(1), "w_rdy": Out(1),
                          "r_data": Out(self._width), "r_en": In(1), "r_rdy": Out(1)})

    @property
    def depth(self) -> int:
        """Entries the FIFO holds (memory words and the memory's read register)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        words = self._depth - 1
        level = Signal(range(words + 1), name="memory_level")
        produce = Signal(range(words), name="produce")
        consume = Signal(range(words), name="consume")
        m.submodules.storage = mem = Memory(shape=self._width, depth=words, init=[],
                                            attrs=COLLISION_FREE)
        w_port, r_port = mem.write_port(), mem.read_port()
        write = self.w_en & self.w_rdy
        read = (level != 0) & (~self.r_rdy | self.r_en)   # the memory's read enable
        m.d.comb += [self.w_rdy.eq(level != words), self.r_data.eq(r_port.data),
                     w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(write),
                     r_port.addr.eq(consume), r_port.en.eq(read)]
        with m.If(write):
            m.d.sync += produce.eq(_next(produce, words))
        with m.If(read):
            m.d.sync += [consume.eq(_next(consume, words)), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        m.d.sync += level.eq(level + write - read)
        return m


class RegisteredFIFO(wiring.Component):
    """Ports ``i`` (stream in: ``i.ready`` is the FIFO's room) and ``o`` (stream out,
    ``o.payload`` from a register), both of payload ``shape``.

    Parameters (keyword-only): ``shape`` (an Amaranth shape or layout), ``depth``
    (3..65536: the entries it can hold; ``depth - 2`` memory words, one in the memory's
    read register, one in the fabric register); ``registered_ready`` (bool,
    default False: the module doc); ``unchecked_writes`` (bool, default False; only with
    ``registered_ready``): for a writer whose schedule never offers an item to a full
    FIFO, a write is ``i.valid`` alone rather than ``i.valid & i.ready`` (``i.ready``
    still tells the room), so the writer's valid register reaches the memories and
    counters with no gate between. Raises ``ValueError`` / ``TypeError`` naming the
    parameter.
    """

    def __init__(self, *, shape, depth: int, registered_ready: bool = False,
                 unchecked_writes: bool = False):
        with rejectable(self):
            for name, value in (("registered_ready", registered_ready),
                                ("unchecked_writes", unchecked_writes)):
                if value not in (True, False, 0, 1):
                    raise TypeError(f"{name} must be a bool; got {value!r}")
            if unchecked_writes and not registered_ready:
                raise ValueError("unchecked_writes needs registered_ready=True")
            self._registered_ready = bool(registered_ready)
            self._unchecked_writes = bool(unchecked_writes)
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
    def unchecked_writes(self) -> bool:
        """Whether a write is ``i.valid`` alone (the writer never offers to a full FIFO)."""
        return self._unchecked_writes

    @property
    def latency(self) -> int:
        """Cycles from an item taken on ``i`` to the same item valid on ``o`` (when the FIFO
        was empty)."""
        return LATENCY

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        if self._registered_ready:
            self._elaborate_registered_ready(m, width)
            return m
        m.submodules.buffer = buf = BufferedFIFO(width=width, depth=self._depth - 1)
        m.d.comb += [buf.w_data.eq(Value.cast(self.i.payload)), buf.w_en.eq(self.i.valid),
                     self.i.ready.eq(buf.w_rdy)]
        # the read register: loaded from the memory's read data alone (no logic before it)
        held = Signal(width, name="read_register", reset_less=True)
        full = Signal(name="read_register_full")
        m.d.comb += buf.r_en.eq(~full | self.o.ready)
        with m.If(buf.r_rdy & buf.r_en):
            m.d.sync += [held.eq(buf.r_data), full.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        m.d.comb += [self.o.valid.eq(full), Value.cast(self.o.payload).eq(held)]
        return m

    def _elaborate_registered_ready(self, m, width: int) -> None:
        """The ``registered_ready`` FIFO (module doc): the same cycles as the buffered FIFO
        and read register above with ``r_en = ~full``, its memory read enable and its read
        register's load registers (one per slice)."""
        words = self._depth - 2
        level = Signal(range(words + 1), name="memory_level")
        port_full = Signal(name="read_port_full")   # the memories' read registers hold one
        full = Signal(name="read_register_full")
        held = Signal(width, name="read_register", reset_less=True)
        write = self.i.valid if self._unchecked_writes else self.i.valid & self.i.ready
        load = port_full & ~full                    # the read register loads only when empty
        slices = [(lo, min(lo + SLICE_BITS, width))
                  for lo in range(0, width, SLICE_BITS)]
        reads = [Signal(name=f"memory_read_{REPLICA_TAG}_{k}") for k in range(len(slices))]
        read = reads[0]
        produce = Signal(range(words), name="produce")
        data = Value.cast(self.i.payload)
        with m.If(write):
            m.d.sync += produce.eq(_next(produce, words))
        out = []
        for k, (lo, hi) in enumerate(slices):
            mem = Memory(shape=hi - lo, depth=words, init=[])
            m.submodules[f"storage_{k}"] = mem
            w_port, r_port = mem.write_port(), mem.read_port()
            consume = Signal(range(words), name=f"consume_{REPLICA_TAG}_{k}")
            with m.If(reads[k]):
                m.d.sync += consume.eq(_next(consume, words))
            m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(data[lo:hi]),
                         w_port.en.eq(write), r_port.addr.eq(consume),
                         r_port.en.eq(reads[k])]
            out.append(r_port.data)
        # next state; the memory read of the next cycle is decided from it, with the
        # level's tests as registers of their own (no adder before the decision)
        level_next = Signal.like(level)
        port_next, full_next = Signal(), Signal()
        room = Signal(name="memory_room", init=1)           # level != words
        one = Signal(name="memory_one")                     # level == 1
        more = Signal(name="memory_more")                   # level >= 2
        m.d.comb += [self.i.ready.eq(room),
                     level_next.eq(level + write - read),
                     port_next.eq(read | (port_full & full)),
                     full_next.eq(load | (full & ~self.o.ready))]
        m.d.sync += [level.eq(level_next), port_full.eq(port_next), full.eq(full_next),
                     room.eq(level_next != words), one.eq(level_next == 1),
                     more.eq(level_next >= 2)]
        nonempty_next = write | more | (one & ~read)
        m.d.sync += [r.eq(nonempty_next & (~port_next | ~full_next)) for r in reads]
        # the read register's load, a register per slice too (``load`` one cycle ahead,
        # from the next state), so no net from the flags drives the enable of every slice
        loads = [Signal(name=f"read_load_{REPLICA_TAG}_{k}") for k in range(len(slices))]
        m.d.sync += [ld.eq(port_next & ~full_next) for ld in loads]
        for (lo, hi), ld, word in zip(slices, loads, out):
            with m.If(ld):
                m.d.sync += held[lo:hi].eq(word)
        m.d.comb += [self.o.valid.eq(full), Value.cast(self.o.payload).eq(held)]


def _next(pointer: Signal, words: int) -> Value:
    return Mux(pointer == words - 1, 0, pointer + 1)


class PrefetchFIFO(wiring.Component):
    """A LUT-RAM FIFO whose ``i.ready``, ``o.valid`` and ``o.payload`` are flip-flops, at an
    item per cycle: for a consumer that reads one item per cycle and a producer whose ready
    must not wait on the FIFO's counters (``hw.int8_int_path``'s constants FIFOs: inside
    ``SyncFIFOBuffered`` its level reached the write enable of every LUT RAM through the
    write-ready logic, the design's clock path on ECP5, docs/synth.md).

    Ports ``i`` and ``o`` (streams of payload ``shape``). Inside, a memory of
    ``depth - 1`` words with a combinational read port (LUT RAM, not block RAM) and a head
    register loaded from its read data when empty or being read; ``i.ready`` is a
    register ("fewer than ``depth`` items held", from the next state), and the memory's
    "not empty" is a register too, so an item written in cycle ``c`` is valid on ``o`` from
    ``c + PREFETCH_LATENCY`` (2). Parameters (keyword-only): ``shape``, ``depth``
    (2..65536: the items it holds). Raises ``ValueError`` / ``TypeError`` naming the
    parameter.
    """

    def __init__(self, *, shape, depth: int):
        with rejectable(self):
            self._depth = check_int("depth", depth, 2, 65536)
            self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def depth(self) -> int:
        """Items the FIFO holds (memory words and the head register)."""
        return self._depth

    @property
    def latency(self) -> int:
        """Cycles from an item taken on ``i`` to the same item valid on ``o`` (when the FIFO
        was empty): :data:`PREFETCH_LATENCY`."""
        return PREFETCH_LATENCY

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        words = self._depth - 1
        m.submodules.storage = mem = Memory(shape=width, depth=words, init=[])
        w_port, r_port = mem.write_port(), mem.read_port(domain="comb")
        produce = Signal(range(words), name="produce")
        consume = Signal(range(words), name="consume")
        stored = Signal(range(words + 1), name="stored")      # items in the memory
        held = Signal(range(self._depth + 1), name="held")    # and in the head register
        room = Signal(name="room", init=1)                    # held != depth
        any_stored = Signal(name="any_stored")                # stored != 0
        head = Signal(width, name="head", reset_less=True)
        full = Signal(name="head_full")
        write = self.i.valid & room
        load = any_stored & (~full | self.o.ready)
        pop = full & self.o.ready
        stored_next = Signal.like(stored)
        held_next = Signal.like(held)
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(Value.cast(self.i.payload)),
                     w_port.en.eq(write), r_port.addr.eq(consume),
                     stored_next.eq(stored + write - load), held_next.eq(held + write - pop),
                     self.i.ready.eq(room), self.o.valid.eq(full),
                     Value.cast(self.o.payload).eq(head)]
        with m.If(write):
            m.d.sync += produce.eq(_next(produce, words))
        with m.If(load):
            m.d.sync += [consume.eq(_next(consume, words)), head.eq(r_port.data)]
        # the flags compare the counters before the step (no adder in front of the compare)
        m.d.sync += [stored.eq(stored_next), held.eq(held_next), full.eq(load | (full & ~pop)),
                     room.eq(~next_equals(held, write, pop, self._depth)),
                     any_stored.eq(~next_equals(stored, write, load, 0))]
        return m
