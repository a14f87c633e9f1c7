"""LLM.int8() compaction (gather) network: an outlier mask to dense lists of column indices.

Per input item, a *chunk* of the outlier-column mask: ``B`` bits and the chunk's number
``c`` (its bit ``k`` is column ``c*B + k``). Each *pass* (one cycle) emits the next up to
``M`` set bits of the chunk, in increasing column order, as one output item
``{columns[M], count}`` (``count`` in 1..M; the entries beyond it are unspecified). A
chunk with ``n`` outliers takes ``max(1, ceil(n / M))`` cycles and ``ceil(n / M)``
output items; an empty chunk one cycle and none (:func:`passes`).

Structure: a chunk is taken into a two-entry input buffer (a skid buffer: ``i.ready`` is
one register, "the spare entry is empty", so nothing upstream waits on the pass control).
On the way into the buffer's head, each bit's count of set bits below it within its group
of :data:`GROUP` bits, and each group's count, are formed from small tables; from the head
the groups' counts are summed (a Kogge-Stone prefix, ``log2(B / GROUP)`` levels) and each
bit's *rank* (the set bits below it) is its group's offset plus its own count. When the held
chunk finishes, the ranks (-1 for a clear bit), the count ``n`` and the pass flags are
registered; pass ``p`` then selects, for output slot ``k``, the bit whose register equals
``k`` (each rank register steps down by ``M`` per pass, so the compare is with a constant;
an OR tree of the indices), and the pass control reads only registers (the count of set
bits left and its "last pass" and "any left" flags), so no loop runs through the prefix
network.

Latency (:data:`LATENCY`): a chunk taken in cycle ``a`` has its first pass on the output in
cycle ``a + 2`` at the earliest (the buffer's register, then the rank registers); at full
rate the next chunk's first pass follows the last pass of the one before in the next
cycle (``passes`` cycles per chunk).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.shifting import wire
from hw.unused import rejectable

__all__ = ["Int8Compaction", "passes", "MAX_LANES", "LATENCY"]

MAX_LANES = 256
# cycles from a chunk's take to its first pass on the output (module doc)
LATENCY = 2
# bits per group whose local counts are computed on the way into the input buffer (two
# table lookups of TABLE_BITS bits and an add), so only log2(B / GROUP) levels of adders
# and the rank's add are left between the buffer and the rank registers
GROUP = 8
TABLE_BITS = 4


def _popcount(bits: Value) -> Value:
    """The number of set bits of ``bits``: a table lookup per piece of at most
    :data:`TABLE_BITS` bits (so synthesis maps each to LUTs), the pieces' counts added."""
    if len(bits) == 0:
        return Const(0, 1)
    counts = []
    for lo in range(0, len(bits), TABLE_BITS):
        piece = bits[lo:lo + TABLE_BITS]
        counts.append(Array(Const(bin(v).count("1"), range(len(piece) + 1))
                            for v in range(1 << len(piece)))[piece])
    return sum(counts[1:], counts[0])


def passes(count: int, outputs: int) -> int:
    """Cycles a chunk with ``count`` set bits takes: ``max(1, ceil(count / outputs))``."""
    return max(1, math.ceil(count / outputs))


class Int8Compaction(wiring.Component):
    """Ports: ``i`` (stream of ``{"mask": unsigned(lanes), "chunk": range(chunks)}``) and
    ``o`` (stream of ``{"columns": ArrayLayout(unsigned(column bits), outputs),
    "count": range(outputs + 1)}``); ``idle`` (Out 1): no chunk held.

    Parameters (keyword-only): ``lanes`` (``B``, 1..256, bits per chunk), ``outputs``
    (``M``, 1..``lanes``: indices per pass), ``chunks`` (1..65536: chunks per mask, which
    sets the column width). Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, lanes: int = 16, outputs: int = 4, chunks: int = 4):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._outputs = check_int("outputs", outputs, 1, lanes)
            self._chunks = check_int("chunks", chunks, 1, 1 << 16)
        self._column_bits = max(1, (chunks * lanes - 1).bit_length())
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "mask": unsigned(lanes), "chunk": range(max(chunks, 2))}))),
            "o": Out(stream.Signature(data.StructLayout({
                "columns": data.ArrayLayout(unsigned(self._column_bits), outputs),
                "count": range(outputs + 1)}))),
            "idle": Out(1),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def outputs(self) -> int:
        return self._outputs

    @property
    def column_bits(self) -> int:
        return self._column_bits

    @property
    def latency(self) -> int:
        """Cycles from a chunk's take to its first pass on ``o`` (:data:`LATENCY`)."""
        return LATENCY

    def elaborate(self, platform):
        m = Module()
        B, M = self._lanes, self._outputs
        count_shape = range(B + 1)

        # the input buffer: head (a) and spare (s) entries; i.ready is "the spare is empty", a
        # register
        a_valid = Signal(name="buffer_valid")
        a_mask = Signal(B, name="buffer_mask")
        a_chunk = Signal.like(self.i.payload.chunk, name="buffer_chunk")
        spare_free = Signal(name="spare_free", init=1)
        s_mask = Signal(B, name="spare_mask")
        s_chunk = Signal.like(self.i.payload.chunk, name="spare_chunk")

        # entering the head, each bit's count of set bits below it in its group of GROUP
        # (a table of at most GROUP - 1 bits) and each group's count (a table of GROUP bits)
        groups = range(0, B, GROUP)
        a_below = [Signal(range(GROUP), name=f"buffer_below_{b}") for b in range(B)]
        a_counts = [Signal(range(GROUP + 1), name=f"buffer_count_{g // GROUP}")
                    for g in groups]
        source = wire(m, Mux(spare_free, self.i.payload.mask, s_mask), "buffer_source")
        below_next = [_popcount(source[b - b % GROUP:b]) for b in range(B)]
        counts_next = [_popcount(source[g:min(g + GROUP, B)]) for g in groups]

        # ranks of the head: the groups' counts summed by Kogge-Stone (log2(B / GROUP)
        # levels), each bit's rank its group's offset plus its count below
        prefix = list(a_counts)
        step = 1
        while step < len(prefix):
            prefix = [wire(m, prefix[k] + prefix[k - step] if k >= step else prefix[k],
                           f"prefix_{step}_{k}") for k in range(len(prefix))]
            step *= 2
        offsets = [Const(0, 1)] + prefix[:-1]
        ranks = [wire(m, offsets[b // GROUP] + a_below[b], f"rank_{b}") for b in range(B)]
        total = prefix[-1]

        held = Signal(name="held")
        hold_chunk = Signal.like(self.i.payload.chunk, name="hold_chunk")
        # each set bit's rank less the passes' outputs so far (p*M): slot k of a pass takes
        # the bit whose register equals k, a compare with a constant; emitted bits go
        # negative, clear bits start at -1
        hold_ranks = [Signal(signed((B + M).bit_length() + 1), name=f"hold_rank_{k}")
                      for k in range(B)]
        left = Signal(count_shape, name="left")                 # set bits not yet emitted

        # the pass control reads registers only: the count left and two flags kept with it
        # (at most M left: this pass is the last; any left: this pass has an output)
        last = Signal(name="last_pass")
        nonempty = Signal(name="nonempty")
        finishing = wire(m, held & last, "finishing")
        advance = wire(m, held & (self.o.ready | ~nonempty), "advance")
        # the held chunk is free after this cycle: the head moves into it
        free = wire(m, ~held | (finishing & advance), "hold_free")
        take = wire(m, a_valid & free, "hold_take")
        m.d.comb += [self.o.valid.eq(held & nonempty),
                     self.i.ready.eq(spare_free),
                     self.idle.eq(~held & ~a_valid),
                     self.o.payload.count.eq(Mux(left > M, M, left))]
        lane_bits = max(1, (B - 1).bit_length())
        for k in range(M):
            hits = [wire(m, hold_ranks[b] == k, f"hit_{k}_{b}")
                    for b in range(B)]
            index = Const(0, lane_bits)
            for b, hit in enumerate(hits):
                index = index | Mux(hit, b, 0)
            lane = wire(m, index, f"lane_{k}")
            column = Cat(lane, hold_chunk) if B > 1 else hold_chunk
            m.d.comb += self.o.payload.columns[k].eq(column if B & (B - 1) == 0
                                                     else hold_chunk * B + lane)

        accept = self.i.valid & self.i.ready
        load_head = [a_mask.eq(source)] + [r.eq(v) for r, v in zip(a_below, below_next)]
        load_head += [r.eq(v) for r, v in zip(a_counts, counts_next)]
        with m.If(~spare_free):
            with m.If(take):
                m.d.sync += [a_chunk.eq(s_chunk), spare_free.eq(1)] + load_head
        with m.Elif(accept):
            with m.If(~a_valid | take):
                m.d.sync += [a_valid.eq(1), a_chunk.eq(self.i.payload.chunk)] + load_head
            with m.Else():
                m.d.sync += [spare_free.eq(0), s_mask.eq(self.i.payload.mask),
                             s_chunk.eq(self.i.payload.chunk)]
        with m.Elif(take):
            m.d.sync += a_valid.eq(0)

        with m.If(advance):
            with m.If(last):
                m.d.sync += held.eq(0)
            with m.Else():
                m.d.sync += [left.eq(left - M), last.eq(left <= 2 * M), nonempty.eq(1)]
                m.d.sync += [r.eq(r - M) for r in hold_ranks]
        with m.If(take):
            m.d.sync += [held.eq(1), hold_chunk.eq(a_chunk),
                         left.eq(total), last.eq(total <= M), nonempty.eq(total != 0)]
            m.d.sync += [r.eq(Mux(a_mask[b], v, -1))
                         for b, (r, v) in enumerate(zip(hold_ranks, ranks))]
        return m
