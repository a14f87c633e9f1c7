"""P-lane MXINT dot-product array: one activation block against P weight blocks.

A matrix-vector tile: each cycle one activation block ``x`` and ``lanes``
weight blocks ``w[0..P-1]`` (e.g. P output channels) give P exact sums and
their exponents, lane ``k`` exactly as :class:`hw.dot.DotProduct` on
``(x, w[k])``. All lanes share one pipeline and one handshake.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dot import DotGeometry, build_dot_lanes
from hw.mxint_layout import MXIntFormat
from hw.params import check_int
from hw.pipeline import StallPipeline

__all__ = ["DotArray"]

MAX_LANES = 256


class DotArray(wiring.Component):
    """Ports: ``i`` (stream of ``{"x": block, "w": ArrayLayout(block, lanes)}``) and ``o``
    (stream of ``{"sums": ArrayLayout(signed(sum_width), lanes),
    "exponents": ArrayLayout(exponent_shape, lanes)}``); value of lane k is
    ``sums[k] * 2**exponents[k]``."""

    def __init__(self, *, lanes: int = 4, block: int = 16, x_width: int = 8, w_width: int = 4,
                 exponent_bits: int = 8, stages: int = 2):
        self._MustUse__silence = True  # until constructed: a rejected object is no "unused" one
        self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
        self._g = DotGeometry(block=block, x_width=x_width, w_width=w_width,
                              exponent_bits=exponent_bits, stages=stages)
        in_layout = data.StructLayout({
            "x": self._g.x_format.layout,
            "w": data.ArrayLayout(self._g.w_format.layout, lanes),
        })
        out_layout = data.StructLayout({
            "sums": data.ArrayLayout(Shape(self._g.sum_width, signed=True), lanes),
            "exponents": data.ArrayLayout(self._g.exponent_shape, lanes),
        })
        self._MustUse__silence = False
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def lanes(self) -> int:
        return self._lanes

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
        return self._g.exponent_range

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, levels=self._g.levels, stages=self._g.stages,
                             valid_in=self.i.valid, name="dots")
        ws = [self.i.payload.w[k] for k in range(self._lanes)]
        sums, exponents = build_dot_lanes(m, pipe, self._g, self.i.payload.x, ws)
        pipe.connect(self.i, self.o)
        for k in range(self._lanes):
            m.d.comb += [self.o.payload.sums[k].eq(sums[k]),
                         self.o.payload.exponents[k].eq(exponents[k])]
        return m
