"""Stand-ins for parts that have no RTL in the project, synthesised so that their
estimates are per target. One is left: the integer accumulator of LLM.int4()'s int4
path (``llm-int4``; the project's int path, ``llm-int8-int-path``, is int8 only). The
outlier detector and compaction proxies were replaced by the real parts of
``llm-int8-linear`` (``llm-int8-detector``, ``llm-int8-compaction``).

A *proxy* is plain Amaranth written for the cost model, never verified against a
reference, and its figures are reported as ``estimated`` (docs/cost.md). It follows the
rule of the reference it stands in for, at the stream conventions of the project's
designs (``i`` / ``o`` valid-ready streams, one item per cycle).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.unused import rejectable

__all__ = ["IntAccumulator"]


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
