"""Stand-ins for parts that have no RTL in the project yet, synthesised so that their
estimates are per target: an integer accumulator, LLM.int8()'s outlier detector with the
row absmax, and its compaction network.

They are *proxies*: plain Amaranth written for the cost model, never verified against a
reference, and their figures are reported as ``estimated`` (docs/cost.md). Each follows
the rule of the reference it stands in for (cited per class), at the stream conventions
of the project's designs (``i`` / ``o`` valid-ready streams, one item per cycle). When
the real part lands (issue 13's LLM.int8() datapath), the method's part list names it
instead and the figure becomes a synthesis of the real thing.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.unused import rejectable

__all__ = ["IntAccumulator", "OutlierDetector", "Compaction", "FP16_INFINITY"]

FP16_INFINITY = 0x7C00  # binary16 bit pattern of +inf: a threshold that finds no outlier


class IntAccumulator(wiring.Component):
    """``lanes`` integer accumulators (LLM.int8()'s int32 accumulation of int8 x int8 dot
    products, ``sw.llm_int8``: ``C = X_i8 W_i8^T`` exact).

    Ports: ``i`` ``{"sums": ArrayLayout(signed(in_width), lanes), "last": 1}``; ``o``
    ``{"values": ArrayLayout(signed(acc_width), lanes)}``, one item per ``last``.
    Parameters: ``lanes`` 1..256, ``in_width`` 2..64, ``acc_width`` in_width..64.
    """

    def __init__(self, *, lanes: int = 1, in_width: int = 20, acc_width: int = 32):
        with rejectable(self):
            self.lanes = check_int("lanes", lanes, 1, 256)
            self.in_width = check_int("in_width", in_width, 2, 64)
            self.acc_width = check_int("acc_width", acc_width, in_width, 64)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "sums": data.ArrayLayout(signed(in_width), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "values": data.ArrayLayout(signed(acc_width), lanes)}))),
        })

    def elaborate(self, platform):
        m = Module()
        first = Signal(init=1)
        out_valid = Signal()
        take = Signal()
        m.d.comb += [self.i.ready.eq(~out_valid | self.o.ready),
                     take.eq(self.i.valid & self.i.ready), self.o.valid.eq(out_valid)]
        with m.If(self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(take):
            m.d.sync += first.eq(self.i.payload.last)
            with m.If(self.i.payload.last):
                m.d.sync += out_valid.eq(1)
        for k in range(self.lanes):
            acc = Signal(signed(self.acc_width), name=f"acc_{k}", reset_less=True)
            out = Signal(signed(self.acc_width), name=f"out_{k}", reset_less=True)
            new = Mux(first, 0, acc) + self.i.payload.sums[k]
            with m.If(take):
                m.d.sync += acc.eq(new)
                with m.If(self.i.payload.last):
                    m.d.sync += out.eq(new)
            m.d.comb += self.o.payload.values[k].eq(out)
        return m


class OutlierDetector(wiring.Component):
    """LLM.int8()'s front end over one block of ``block`` binary16 activations per cycle
    (``sw.llm_int8``): the outlier mask ``|x_j| >= threshold`` and the running absmax of
    the non-outlier entries of the token (``s_x``), emitted on ``last``.

    Binary16 magnitudes order as their 15-bit patterns, so both are integer compares.
    ``threshold`` is the binary16 pattern of the threshold (a constant of the design, as
    issue 13 specifies); ``FP16_INFINITY`` gives W8A8's absmax alone (no outliers).
    Ports: ``i`` ``{"x": ArrayLayout(unsigned(16), block), "last": 1}``; ``o``
    ``{"mask": block bits, "absmax": unsigned(15), "last": 1}`` (absmax valid with last).
    """

    def __init__(self, *, block: int = 16, threshold: int = 0x4600):
        with rejectable(self):
            self.block = check_int("block", block, 1, 256)
            self.threshold = check_int("threshold", threshold, 0, FP16_INFINITY)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(unsigned(16), block), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "mask": self.block, "absmax": unsigned(15), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        enable = Signal()
        m.d.comb += [enable.eq(~self.o.valid | self.o.ready), self.i.ready.eq(enable)]
        mags = [self.i.payload.x[k][:15] for k in range(self.block)]
        outlier = [mag >= Const(self.threshold, 15) for mag in mags]
        kept = [Mux(o, 0, mag) for o, mag in zip(outlier, mags)]
        while len(kept) > 1:  # max tree
            pairs = zip(kept[0::2], kept[1::2])
            kept = [Mux(a >= b, a, b) for a, b in pairs] + (kept[-1:] if len(kept) % 2 else [])
        running = Signal(15)
        new = Mux(running >= kept[0], running, kept[0])
        with m.If(enable):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.mask.eq(Cat(*outlier)),
                         self.o.payload.last.eq(self.i.payload.last),
                         self.o.payload.absmax.eq(new)]
            with m.If(self.i.valid):
                m.d.sync += running.eq(Mux(self.i.payload.last, 0, new))
        return m


class Compaction(wiring.Component):
    """The gather side of LLM.int8()'s outlier path: one block's outlier mask becomes a
    dense list of the outlier columns' indices (prefix count, then each list slot ``k``
    takes the column of the ``k``-th set bit), as issue 13's compaction network does.

    Ports: ``i`` ``{"mask": block bits, "base": unsigned(index_width)}`` (``base``: the
    column index of the block's first element, a multiple of ``block``); ``o``
    ``{"indices": ArrayLayout(unsigned(index_width), block), "count": 0..block}``;
    latency 1. Parameters: ``block`` a power of two 1..256, ``index_width`` 1..24.
    """

    def __init__(self, *, block: int = 16, index_width: int = 12):
        with rejectable(self):
            self.block = check_int("block", block, 1, 256, power_of_two=True)
            self.index_width = check_int("index_width", index_width,
                                         max(1, block.bit_length() - 1), 24)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "mask": block, "base": unsigned(index_width)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "indices": data.ArrayLayout(unsigned(index_width), block),
                "count": range(block + 1)}))),
        })

    def elaborate(self, platform):
        m = Module()
        b = self.block
        low = b.bit_length() - 1
        enable = Signal()
        m.d.comb += [enable.eq(~self.o.valid | self.o.ready), self.i.ready.eq(enable)]
        mask = self.i.payload.mask
        prefix, running = [], Const(0, range(b + 1))
        for i in range(b):  # prefix[i]: set bits below i
            prefix.append(running)
            running = running + mask[i]
        high = self.i.payload.base[low:]
        with m.If(enable):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.count.eq(running)]
            for k in range(b):
                pick = Const(0, max(low, 1))
                for i in range(b):
                    pick = Mux(mask[i] & (prefix[i] == k), i, pick)
                m.d.sync += self.o.payload.indices[k].eq(Cat(pick[:low], high) if low else high)
        return m
