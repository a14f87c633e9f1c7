"""LLM.int8() compaction (gather) network: an outlier mask to dense lists of column indices.

Per input item, a *chunk* of the outlier-column mask: ``B`` bits and the chunk's number
``c`` (its bit ``k`` is column ``c*B + k``). Each *pass* (one cycle) emits the next up to
``M`` set bits of the chunk, in increasing column order, as one output item
``{columns[M], count}`` (``count`` in 1..M; the entries beyond it are unspecified). A
chunk with ``n`` outliers takes ``max(1, ceil(n / M))`` cycles and ``ceil(n / M)``
output items; an empty chunk one cycle and none (:func:`passes`).

Structure: on input, the *rank* of every bit (the number of set bits below it: a
Kogge-Stone prefix count, ``log2 B`` levels of small adders) and the count ``n`` are
computed and registered beside the mask; pass ``p`` then selects, for output slot ``k``,
the bit whose rank is ``p*M + k`` (one compare per bit, an OR tree of the indices), so no
loop runs through the prefix network: only the pass counter steps.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.shifting import wire
from hw.unused import rejectable

__all__ = ["Int8Compaction", "passes", "MAX_LANES"]

MAX_LANES = 256


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

    def elaborate(self, platform):
        m = Module()
        B, M = self._lanes, self._outputs
        count_shape = range(B + 1)

        # ranks: inclusive prefix counts by Kogge-Stone, then shifted by one
        mask = self.i.payload.mask
        prefix = [Cat(mask[k], Const(0, 1)) for k in range(B)]
        step = 1
        while step < B:
            prefix = [wire(m, prefix[k] + prefix[k - step] if k >= step else prefix[k],
                           f"prefix_{step}_{k}") for k in range(B)]
            step *= 2
        ranks = [Const(0, 1)] + prefix[:-1]
        total = prefix[-1]

        held = Signal(name="held")
        hold_mask = Signal(B, name="hold_mask")
        hold_chunk = Signal.like(self.i.payload.chunk, name="hold_chunk")
        hold_ranks = [Signal(count_shape, name=f"hold_rank_{k}") for k in range(B)]
        hold_total = Signal(count_shape, name="hold_total")
        base = Signal(range(B + M + 1), name="pass_base")      # p * M

        remaining = wire(m, hold_total - base, "remaining")
        nonempty = wire(m, hold_total > base, "nonempty")
        finishing = wire(m, held & ~(hold_total > base + M), "finishing")
        advance = wire(m, held & (self.o.ready | ~nonempty), "advance")
        m.d.comb += [self.o.valid.eq(held & nonempty),
                     self.i.ready.eq(~held | (finishing & advance)),
                     self.idle.eq(~held),
                     self.o.payload.count.eq(Mux(remaining > M, M, remaining))]
        lane_bits = max(1, (B - 1).bit_length())
        for k in range(M):
            want = wire(m, base + k, f"want_{k}")
            hits = [wire(m, hold_mask[b] & (hold_ranks[b] == want), f"hit_{k}_{b}")
                    for b in range(B)]
            index = Const(0, lane_bits)
            for b, hit in enumerate(hits):
                index = index | Mux(hit, b, 0)
            lane = wire(m, index, f"lane_{k}")
            column = Cat(lane, hold_chunk) if B > 1 else hold_chunk
            m.d.comb += self.o.payload.columns[k].eq(column if B & (B - 1) == 0
                                                     else hold_chunk * B + lane)

        accept = self.i.valid & self.i.ready
        with m.If(advance):
            with m.If(finishing):
                m.d.sync += [held.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += base.eq(base + M)
        with m.If(accept):
            m.d.sync += [held.eq(1), base.eq(0), hold_mask.eq(mask),
                         hold_chunk.eq(self.i.payload.chunk), hold_total.eq(total)]
            m.d.sync += [r.eq(v) for r, v in zip(hold_ranks, ranks)]
        return m
