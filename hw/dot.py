"""MXINT block dot-product unit: two blocks to the exact integer sum and its exponent.

For blocks ``(ex, qx)`` (MXINT``x_width``) and ``(ew, qw)`` (MXINT``w_width``)
it computes (DESIGN.md §2, ``sw.blockmath.block_dot``)::

    sum      = sum_i qx_i * qw_i                      exact, dot_sum_width bits
    exponent = ex + ew - (x_width - 2) - (w_width - 2)  value = sum * 2**exponent

Levels: one multiplier level, then ``log2(block)`` adder-tree levels; ``stages``
registers are spread over them (see :mod:`hw.pipeline`), latency = ``stages``.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Shape, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import MXIntFormat
from hw.params import check_int, signed_for_range
from hw.pipeline import StallPipeline
from sw.blockmath import dot_sum_width

__all__ = ["DotProduct", "DotGeometry", "build_dot_lanes"]

MAX_STAGES = 8


class DotGeometry:
    """Validated parameters and derived facts shared by the unit and the array."""

    def __init__(self, *, block, x_width, w_width, exponent_bits, stages):
        check_int("block", block, 1, 1024, power_of_two=True)
        check_int("x_width", x_width, 2, 16)
        check_int("w_width", w_width, 2, 16)
        check_int("exponent_bits", exponent_bits, 2, 8)
        check_int("stages", stages, 1, MAX_STAGES)
        self.x_format = MXIntFormat(width=x_width, block=block, exponent_bits=exponent_bits)
        self.w_format = MXIntFormat(width=w_width, block=block, exponent_bits=exponent_bits)
        self.stages = stages
        self.sum_width = dot_sum_width(block, x_width, w_width)
        xlo, xhi = self.x_format.lsb_range
        wlo, whi = self.w_format.lsb_range
        self.exponent_range = (xlo + wlo, xhi + whi)
        self.exponent_shape = signed_for_range(*self.exponent_range)
        self.levels = 1 + int(math.log2(block))


def build_dot_lanes(m: Module, pipe: StallPipeline, geometry: DotGeometry, x, ws):
    """Datapath of ``len(ws)`` dot products sharing activation block ``x``.

    ``x`` and each of ``ws`` are views of an MXINT block layout. Returns
    ``(sums, exponents)``, lists of Values after the pipeline's last level.
    """
    g = geometry
    lanes = len(ws)
    frac = g.x_format.frac_bits + g.w_format.frac_bits
    # level 0: products and the exponent sum
    values = []
    for w in ws:
        values += [x.mantissas[i] * w.mantissas[i] for i in range(g.x_format.block)]
    exponents = [(x.exponent + w.exponent - frac).as_signed() for w in ws]
    values = pipe.after(0, values + exponents)
    products, exponents = values[:-lanes], values[-lanes:]
    # adder tree, one level per halving
    per_lane = g.x_format.block
    for level in range(1, g.levels):
        summed = []
        for lane in range(lanes):
            terms = products[lane * per_lane:(lane + 1) * per_lane]
            summed += [terms[k] + terms[k + 1] for k in range(0, len(terms), 2)]
        per_lane //= 2
        values = pipe.after(level, summed + exponents)
        products, exponents = values[:-lanes], values[-lanes:]
    # symmetric mantissas: the exact sum always fits sum_width bits
    sums = [Value.cast(p)[:g.sum_width].as_signed() for p in products]
    return sums, exponents


class DotProduct(wiring.Component):
    """One MXINT block dot product per cycle.

    Ports: ``i`` (stream of ``{"x": block, "w": block}``) and ``o`` (stream of
    ``{"sum": signed(sum_width), "exponent": exponent_shape}``), value
    ``sum * 2**exponent``. Operands arrive together; joining two separate
    operand streams is the caller's choice of buffering.
    """

    def __init__(self, *, block: int = 16, x_width: int = 8, w_width: int = 4,
                 exponent_bits: int = 8, stages: int = 2):
        self._MustUse__silence = True  # until constructed: a rejected object is no "unused" one
        self._g = DotGeometry(block=block, x_width=x_width, w_width=w_width,
                              exponent_bits=exponent_bits, stages=stages)
        in_layout = data.StructLayout({"x": self._g.x_format.layout, "w": self._g.w_format.layout})
        out_layout = data.StructLayout({"sum": Shape(self._g.sum_width, signed=True),
                                        "exponent": self._g.exponent_shape})
        self._MustUse__silence = False
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def x_format(self) -> MXIntFormat:
        return self._g.x_format

    @property
    def w_format(self) -> MXIntFormat:
        return self._g.w_format

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output becoming valid."""
        return self._g.stages

    @property
    def sum_width(self) -> int:
        return self._g.sum_width

    @property
    def exponent_range(self) -> tuple[int, int]:
        """Range of the output exponent (the lsb exponent of ``sum``)."""
        return self._g.exponent_range

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, levels=self._g.levels, stages=self._g.stages,
                             valid_in=self.i.valid, name="dot")
        sums, exponents = build_dot_lanes(m, pipe, self._g, self.i.payload.x, [self.i.payload.w])
        pipe.connect(self.i, self.o)
        m.d.comb += [self.o.payload.sum.eq(sums[0]), self.o.payload.exponent.eq(exponents[0])]
        return m
