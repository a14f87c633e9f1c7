"""A plain integer dot-product array: the MXINT array without shared exponents.

Same lanes, block, widths, operand level (x copied per lane), partial terms
(:func:`hw.dot_array.product_terms`), adder tree and pipeline
(:class:`hw.pipeline.Pipeline`, registers placed by the same level delays, output FIFO)
as :class:`hw.dot_array.DotArray`, but the
operands are bare two's-complement vectors: no exponent inputs, no exponent
adder, no exponent registers. Synthesising both gives the area the MX format
adds (``bench/bench_mx_overhead.py``).
"""

from __future__ import annotations


from amaranth.hdl import Module, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dot_array import MAX_LANES, MAX_STAGES, DotGeometry, product_terms, sum_lanes
from hw.params import check_int
from hw.pipeline import Pipeline
from hw.unused import rejectable
from sw.blockmath import dot_sum_width
from sw.mxint import MXIntFormat

__all__ = ["IntDotArray"]


class IntDotArray(wiring.Component):
    """``lanes`` integer dot products of one ``x`` vector against ``lanes`` ``w`` vectors.

    Ports: ``i`` (stream of ``{"x": ArrayLayout(signed(a_width), block),
    "w": ArrayLayout(ArrayLayout(signed(w_width), block), lanes)}``) and ``o``
    (stream of ``{"sums": ArrayLayout(signed(sum_width), lanes)}``), latency ``stages``.
    The element widths and block follow the MXINT rule (``sw.mxint.MXIntFormat``), so the
    two arrays are compared on the same operands less the shared exponents.
    """

    def __init__(self, *, lanes: int = 4, block: int = 16, a_width: int = 8, w_width: int = 4,
                 stages: int = 2):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._a = MXIntFormat(width=a_width, block=block)
            self._w = MXIntFormat(width=w_width, block=block)
            self._stages = check_int("stages", stages, 1, MAX_STAGES)
            in_layout = data.StructLayout({
                "x": data.ArrayLayout(signed(a_width), block),
                "w": data.ArrayLayout(data.ArrayLayout(signed(w_width), block), lanes),
            })
            out_layout = data.StructLayout({"sums": data.ArrayLayout(signed(self.sum_width),
                                                                     lanes)})
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def sum_width(self) -> int:
        """Bits of an exact sum of symmetric-range products (as the MXINT array)."""
        return dot_sum_width(self._a.block, self._a.width, self._w.width)

    def elaborate(self, platform):
        m = Module()
        block = self._a.block
        # the MXINT array's register placement (same levels, same estimated delays)
        geometry = DotGeometry(a_format=self._a, w_format=self._w, stages=self._stages)
        pipe = Pipeline(m, levels=geometry.levels, stages=self._stages, delays=geometry.delays,
                        valid_in=self.i.valid & self.i.ready, name="ints")
        # the operands, x copied once per lane, as the MXINT array does
        values = []
        for k in range(self._lanes):
            values += [Value.cast(self.i.payload.x), Value.cast(self.i.payload.w[k])]
        values = pipe.after(0, values, replicas=True)
        x_layout = data.ArrayLayout(signed(self._a.width), block)
        w_layout = data.ArrayLayout(signed(self._w.width), block)
        xs = [data.View(x_layout, v) for v in values[0::2]]
        ws = [data.View(w_layout, v) for v in values[1::2]]
        lanes_terms = [[t for i in range(block) for t in product_terms(x[i], w[i])]
                       for x, w in zip(xs, ws)]
        sums, _ = sum_lanes(pipe, 1, lanes_terms, [])
        pipe.connect(self.i, self.o)
        for k in range(self._lanes):
            m.d.comb += self.o.payload.sums[k].eq(
                Value.cast(sums[k])[:self.sum_width].as_signed())
        return m
