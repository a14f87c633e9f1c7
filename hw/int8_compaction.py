"""LLM.int8() compaction (gather) network: an outlier mask to dense lists of column indices.

Per input item, a *chunk* of the outlier-column mask: ``B`` bits and the chunk's number
``c`` (its bit ``k`` is column ``c*B + k``). Each *pass* (one cycle) emits the next up to
``M`` set bits of the chunk, in increasing column order, as one output item
``{columns[M], count}`` (``count`` in 1..M; the entries beyond it are unspecified). A
chunk with ``n`` outliers takes ``max(1, ceil(n / M))`` cycles and ``ceil(n / M)``
output items; an empty chunk one cycle and none (:func:`passes`).

Structure (three registered steps, so the pass control reads registers and ``o.ready``
only): a chunk is taken into a two-entry input buffer (a skid buffer: ``i.ready`` is one
register, "the spare entry is empty", so nothing upstream waits on the pass control).
From the input, each bit's count of set bits below it within its group of :data:`GROUP`
bits, and each group's count, are formed from small tables and registered with the mask,
in the buffer's head or its spare (the spare/input select is the last step before the
head). From the head the groups' counts are summed (a Kogge-Stone prefix,
``log2(B / GROUP)`` levels); each set bit's *rank* (the set bits below it) is its group's
offset plus its own count, and goes out in pass ``rank // M``, slot ``rank % M``. The
*ranked* entry registers, per bit, that pass and the slot as a one-hot (zero for a clear
bit), with the count ``n`` and the first pass's flags (``n <= M``: last; ``n > 0``: has an
output). The *held* chunk loads those registers as they are; pass ``p`` then selects, for
output slot ``k``, the bit whose slot one-hot has bit ``k`` set and whose pass is ``p`` (a
register per bit, formed with the pass; an OR tree of the indices). The pass control keeps,
beside the count of set bits left and its two flags, three decisions as registers: "the
held chunk is free after this cycle" with and without ``o.ready``, and "it steps to its
next pass" with ``o.ready``, so a take or a step is one LUT from registers and
``o.ready``.

Latency (:data:`LATENCY`): a chunk taken in cycle ``a`` has its first pass on the output in
cycle ``a + 3`` at the earliest (the buffer's register, the ranked registers, the held
registers); at full rate the next chunk's first pass follows the last pass of the one
before in the next cycle (``passes`` cycles per chunk). Before 2026-12-02 the held chunk
was loaded from the head through the prefix (two steps, ``a + 2``), with the pass control's
flags formed from the count there and each rank stepped down by ``M`` per pass; docs/synth.md
("The compaction in three steps") has the seed study.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.shifting import wire
from hw.unused import rejectable

__all__ = ["Int8Compaction", "passes", "MAX_LANES", "LATENCY"]

MAX_LANES = 256
# cycles from a chunk's take to its first pass on the output (module doc)
LATENCY = 3
# bits per group whose local counts are computed on the way into the input buffer (two
# table lookups of TABLE_BITS bits and an add), so only log2(B / GROUP) levels of adders
# and the rank's add are left between the buffer and the ranked registers
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
        pass_shape = range(max(2, math.ceil(B / M)))

        # the input buffer: head (a) and spare (s) entries; i.ready is "the spare is empty", a
        # register
        a_valid = Signal(name="buffer_valid")
        a_mask = Signal(B, name="buffer_mask")
        a_chunk = Signal.like(self.i.payload.chunk, name="buffer_chunk")
        spare_free = Signal(name="spare_free", init=1)
        s_mask = Signal(B, name="spare_mask")
        s_chunk = Signal.like(self.i.payload.chunk, name="spare_chunk")

        # from the input, each bit's count of set bits below it in its group of GROUP (a
        # table of at most GROUP - 1 bits) and each group's count (a table of GROUP bits),
        # registered with the mask in the head, or in the spare and from there in the head
        # (so the spare/input select is the last step before the head's registers)
        groups = range(0, B, GROUP)
        mask_in = self.i.payload.mask
        below_in = [_popcount(mask_in[b - b % GROUP:b]) for b in range(B)]
        counts_in = [_popcount(mask_in[g:min(g + GROUP, B)]) for g in groups]
        a_below = [Signal(range(GROUP), name=f"buffer_below_{b}") for b in range(B)]
        a_counts = [Signal(range(GROUP + 1), name=f"buffer_count_{g // GROUP}")
                    for g in groups]
        s_below = [Signal.like(r, name=f"spare_below_{b}") for b, r in enumerate(a_below)]
        s_counts = [Signal.like(r, name=f"spare_count_{g}") for g, r in enumerate(a_counts)]

        # ranks of the head: the groups' counts summed by Kogge-Stone (log2(B / GROUP)
        # levels), each bit's rank its group's offset plus its count below; a set bit of rank
        # r goes out in pass r // M, slot r % M (a table by rank unless M is a power of two)
        prefix = list(a_counts)
        step = 1
        while step < len(prefix):
            prefix = [wire(m, prefix[k] + prefix[k - step] if k >= step else prefix[k],
                           f"prefix_{step}_{k}") for k in range(len(prefix))]
            step *= 2
        offsets = [Const(0, 1)] + prefix[:-1]
        total = prefix[-1]
        ranks = [wire(m, offsets[b // GROUP] + a_below[b], f"rank_{b}") for b in range(B)]
        if M & (M - 1) == 0:
            shift = M.bit_length() - 1
            splits = [(rank >> shift, rank[:shift]) for rank in ranks]
        else:
            pass_table = Array(Const(r // M, pass_shape) for r in range(B))
            slot_table = Array(Const(r % M, range(M)) for r in range(B))
            splits = [(pass_table[rank], slot_table[rank]) for rank in ranks]

        # the ranked chunk (r): each bit's pass and its slot one-hot (zero for a clear bit),
        # the count and the flags of its first pass, so the held chunk loads registers
        r_valid = Signal(name="ranked_valid")
        r_chunk = Signal.like(self.i.payload.chunk, name="ranked_chunk")
        r_total = Signal(count_shape, name="ranked_total")
        r_last = Signal(name="ranked_last")
        r_nonempty = Signal(name="ranked_nonempty")
        r_passes = [Signal(pass_shape, name=f"ranked_pass_{b}") for b in range(B)]
        r_slots = [Signal(M, name=f"ranked_slots_{b}") for b in range(B)]

        # the held chunk (h): the pass on the output is `h_pass`; slot k of it takes the
        # bit whose pass equals it (`h_now`, a register per bit formed with the pass) and
        # whose slot one-hot has bit k set (an OR tree of the indices)
        held = Signal(name="held")
        h_chunk = Signal.like(self.i.payload.chunk, name="hold_chunk")
        h_pass = Signal(pass_shape, name="hold_pass")
        h_passes = [Signal(pass_shape, name=f"hold_pass_{b}") for b in range(B)]
        h_slots = [Signal(M, name=f"hold_slots_{b}") for b in range(B)]
        h_now = [Signal(name=f"hold_now_{b}") for b in range(B)]   # h_passes[b] == h_pass
        left = Signal(count_shape, name="left")                 # set bits not yet emitted

        # the pass control reads registers and o.ready only: at most M left (this pass is
        # the last), any left (this pass has an output), and three decisions kept beside
        # them: "the held chunk is free after this cycle" if o.ready (free_ready) and if not
        # (free_idle), and "it steps to its next pass" if o.ready (stepping: held and not
        # on its last pass, which always has an output)
        last = Signal(name="last_pass")
        nonempty = Signal(name="nonempty")
        free_ready = Signal(name="free_ready", init=1)
        free_idle = Signal(name="free_idle", init=1)
        stepping = Signal(name="stepping")
        take = wire(m, r_valid & Mux(self.o.ready, free_ready, free_idle), "hold_take")
        advance = wire(m, stepping & self.o.ready, "hold_step")
        finish = wire(m, held & last & (self.o.ready | ~nonempty), "hold_finish")
        # the ranked entry is free after this cycle: the head moves into it
        rank_take = wire(m, a_valid & (~r_valid | take), "rank_take")

        m.d.comb += [self.o.valid.eq(held & nonempty),
                     self.i.ready.eq(spare_free),
                     self.idle.eq(~held & ~r_valid & ~a_valid),
                     self.o.payload.count.eq(Mux(left > M, M, left))]
        lane_bits = max(1, (B - 1).bit_length())
        for k in range(M):
            hits = [wire(m, h_slots[b][k] & h_now[b], f"hit_{k}_{b}")
                    for b in range(B)]
            index = Const(0, lane_bits)
            for b, hit in enumerate(hits):
                index = index | Mux(hit, b, 0)
            lane = wire(m, index, f"lane_{k}")
            column = Cat(lane, h_chunk) if B > 1 else h_chunk
            m.d.comb += self.o.payload.columns[k].eq(column if B & (B - 1) == 0
                                                     else h_chunk * B + lane)

        accept = self.i.valid & self.i.ready

        def load(mask, chunk, below, counts, into):
            """Assignments of an entry (mask, chunk, counts below, group counts) to ``into``."""
            mask_r, chunk_r, below_r, counts_r = into
            return ([mask_r.eq(mask), chunk_r.eq(chunk)]
                    + [r.eq(v) for r, v in zip(below_r + counts_r, below + counts)])

        head = (a_mask, a_chunk, a_below, a_counts)
        with m.If(~spare_free):
            with m.If(rank_take):
                m.d.sync += [spare_free.eq(1)]
                m.d.sync += load(s_mask, s_chunk, s_below, s_counts, head)
        with m.Elif(accept):
            with m.If(~a_valid | rank_take):
                m.d.sync += [a_valid.eq(1)]
                m.d.sync += load(mask_in, self.i.payload.chunk, below_in, counts_in, head)
            with m.Else():
                m.d.sync += [spare_free.eq(0)]
                m.d.sync += load(mask_in, self.i.payload.chunk, below_in, counts_in,
                                 (s_mask, s_chunk, s_below, s_counts))
        with m.Elif(rank_take):
            m.d.sync += a_valid.eq(0)

        with m.If(rank_take):
            m.d.sync += [r_valid.eq(1), r_chunk.eq(a_chunk), r_total.eq(total),
                         r_last.eq(total <= M), r_nonempty.eq(total != 0)]
            for b, (pass_, slot) in enumerate(splits):
                m.d.sync += [r_passes[b].eq(pass_),
                             r_slots[b].eq(Mux(a_mask[b], Const(1, M) << slot, 0))]
        with m.Elif(take):
            m.d.sync += r_valid.eq(0)

        held_next = wire(m, take | (held & ~finish), "held_next")
        last_next = wire(m, Mux(take, r_last, Mux(advance, left <= 2 * M, last)), "last_next")
        nonempty_next = wire(m, Mux(take, r_nonempty, nonempty | advance), "nonempty_next")
        m.d.sync += [held.eq(held_next), last.eq(last_next), nonempty.eq(nonempty_next),
                     free_ready.eq(~held_next | last_next),
                     free_idle.eq(~held_next | (last_next & ~nonempty_next)),
                     stepping.eq(held_next & ~last_next)]
        with m.If(take):
            m.d.sync += [h_chunk.eq(r_chunk), left.eq(r_total), h_pass.eq(0)]
            m.d.sync += [h.eq(r) for h, r in zip(h_passes, r_passes)]
            m.d.sync += [h.eq(r) for h, r in zip(h_slots, r_slots)]
            m.d.sync += [h.eq(r == 0) for h, r in zip(h_now, r_passes)]
        with m.Elif(advance):
            m.d.sync += [left.eq(left - M), h_pass.eq(h_pass + 1)]
            m.d.sync += [h.eq(p == h_pass + 1) for h, p in zip(h_now, h_passes)]
        return m
