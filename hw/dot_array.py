"""P-lane MXINT dot-product array: one activation block against P weight blocks per cycle.

A matrix-vector tile: each cycle one activation block ``x`` (format ``a_format``) and
``lanes`` weight blocks ``w[0..P-1]`` (format ``w_format``; e.g. P output channels)
give P exact sums and their exponents. Lane ``k`` computes (docs/design.md, "Exact
block arithmetic"; ``sw.blockmath.block_dot``)::

    sums[k]      = sum_i x.mantissas[i] * w[k].mantissas[i]      exact, sum_width bits
    exponents[k] = x.exponent + w[k].exponent - a_frac - w_frac   value = sums[k] * 2**exponents[k]

Levels (``stages`` registers are spread over them by their estimated delays,
:mod:`hw.pipeline`, so the latency is ``stages`` cycles):

- operands: ``x`` copied once per lane beside that lane's ``w`` (registers named with
  :data:`hw.pipeline.REPLICA_TAG`, which synthesis keeps apart): every lane reads the
  same activation block, and one register driving all lanes was the slowest route of
  the array on ECP5 (docs/synth.md, "Reaching 150 MHz on ECP5");
- partials: each product as :func:`product_terms` (the wider operand times two-bit
  pieces of the narrower one: an AND row and one adder each, no whole multiplier array
  between two registers), and the exponent sums;
- the adder tree, one level per halving of the ``block * ceil(min(widths) / 2)`` terms.

All lanes share one pipeline and one handshake. ``lanes=1`` is the single dot-product
unit.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_int, signed_for_range
from hw.pipeline import Pipeline
from hw.unused import rejectable
from sw.blockmath import dot_sum_width
from sw.mxint import MXIntFormat

__all__ = ["DotArray", "DotGeometry", "build_dot_lanes", "product_terms", "sum_lanes",
           "MAX_LANES", "MAX_STAGES"]

MAX_LANES = 256
MAX_STAGES = 8
# the operand level: routing only (to each lane's copy of the activation block)
OPERAND_DELAY = 1.5
# the partials level: an AND row and one carry chain
PARTIALS_DELAY = 2.5


class DotGeometry:
    """Validated operand formats and the derived facts of a block dot product.

    ``a_format`` / ``w_format``: :class:`sw.mxint.MXIntFormat` (flavour "ocp") of the
    activation and weight blocks; they must share ``block``. ``stages``: pipeline
    registers, 1..``MAX_STAGES``. Raises ``ValueError`` / ``TypeError`` naming the
    parameter.
    """

    def __init__(self, *, a_format: MXIntFormat, w_format: MXIntFormat, stages: int):
        self.a_format = check_hardware_format("a_format", a_format)
        self.w_format = check_hardware_format("w_format", w_format)
        if w_format.block != a_format.block:
            raise ValueError(f"w_format.block must equal a_format.block ({a_format.block}); "
                             f"got {w_format.block}")
        self.stages = check_int("stages", stages, 1, MAX_STAGES)
        self.block = a_format.block
        self.sum_width = dot_sum_width(self.block, a_format.width, w_format.width)
        alo, ahi = a_format.lsb_range
        wlo, whi = w_format.lsb_range
        self.exponent_range = (alo + wlo, ahi + whi)
        self.exponent_shape = signed_for_range(*self.exponent_range)
        # terms per lane after the partials level: two bits of the narrower operand each
        self.terms = self.block * (-(-min(a_format.width, w_format.width) // 2))
        self.levels = 2 + (self.terms - 1).bit_length()

    @property
    def delays(self) -> list[float]:
        """Estimated delay of each level in LUT levels: the operands (routing), the partial
        terms (a LUT and a carry chain), then the adder tree (a carry chain per level, a
        bit longer each time)."""
        return [OPERAND_DELAY, PARTIALS_DELAY] + [1.5 + 0.1 * k for k in range(self.levels - 2)]


def product_terms(x: Value, y: Value) -> list[Value]:
    """The signed product ``x * y`` (two's complement) as ``ceil(n / 2)`` signed terms,
    ``n`` the narrower operand's width: the other operand times each two-bit piece of
    the narrower one, shifted to its place; the top piece holds the sign bit and is
    signed, the others unsigned. Each term is a narrow ``*`` (an AND row and one adder in
    LUTs: no whole multiplier array between two registers; a DSP where the target maps
    ``*`` to one)."""
    x, y = Value.cast(x), Value.cast(y)
    value, digits = (x, y) if len(y) <= len(x) else (y, x)
    n = len(digits)
    terms = []
    for j in range(0, n, 2):
        top = min(j + 2, n)
        piece = digits[j:top].as_signed() if top == n else digits[j:top]
        terms.append((value * piece) << j)
    return terms


def sum_lanes(pipe: Pipeline, level: int, lanes_terms: list[list[Value]],
              riders: list[Value]) -> tuple[list[Value], list[Value]]:
    """Close ``level`` and every later level of ``pipe`` summing each lane's terms pairwise
    (one adder-tree level per pipeline level; an odd term passes), ``riders`` beside them.
    Returns ``(one sum per lane, riders)`` after the last level."""
    while True:
        counts = [len(t) for t in lanes_terms]
        values = pipe.after(level, [t for terms in lanes_terms for t in terms] + riders)
        riders = values[len(values) - len(riders):]
        lanes_terms, offset = [], 0
        for count in counts:
            lanes_terms.append(values[offset:offset + count])
            offset += count
        if max(counts) == 1:
            return [terms[0] for terms in lanes_terms], riders
        lanes_terms = [[t[k] + t[k + 1] if k + 1 < len(t) else t[k]
                        for k in range(0, len(t), 2)] for t in lanes_terms]
        level += 1


def build_dot_lanes(m: Module, pipe: Pipeline, geometry: DotGeometry, x, ws):
    """Datapath of ``len(ws)`` dot products sharing activation block ``x``.

    ``x`` and each of ``ws`` are views of an MXINT block layout. Returns
    ``(sums, exponents)``, lists of Values after the pipeline's last level.
    """
    g = geometry
    frac = g.a_format.frac_bits + g.w_format.frac_bits
    # level 0: the operands, with a copy of x for each lane (each copy's fan-out stays
    # within its lane)
    values = []
    for w in ws:
        values += [Value.cast(x), Value.cast(w)]
    values = pipe.after(0, values, replicas=True)
    a_layout, w_layout = block_layout(g.a_format), block_layout(g.w_format)
    xs = [data.View(a_layout, v) for v in values[0::2]]
    ws = [data.View(w_layout, v) for v in values[1::2]]
    # level 1: the products' partial terms and the exponent sums; then the adder tree
    lanes_terms = [[t for i in range(g.block)
                    for t in product_terms(x.mantissas[i], w.mantissas[i])]
                   for x, w in zip(xs, ws)]
    exponents = [(x.exponent + w.exponent - frac).as_signed() for x, w in zip(xs, ws)]
    sums, exponents = sum_lanes(pipe, 1, lanes_terms, exponents)
    # symmetric mantissas: the exact sum always fits sum_width bits
    return [Value.cast(p)[:g.sum_width].as_signed() for p in sums], exponents


class DotArray(wiring.Component):
    """Ports: ``i`` (stream of ``{"x": block, "w": ArrayLayout(block, lanes)}``) and ``o``
    (stream of ``{"sums": ArrayLayout(signed(sum_width), lanes),
    "exponents": ArrayLayout(exponent_shape, lanes)}``); value of lane k is
    ``sums[k] * 2**exponents[k]``.

    Parameters (keyword-only): ``lanes`` 1..``MAX_LANES``, ``a_format`` (default MXINT8,
    block 16), ``w_format`` (default MXINT4, block 16), ``stages`` 1..``MAX_STAGES``,
    ``backpressure`` (default True; False inside a datapath whose consumer is always
    ready: no output FIFO, ``i.ready`` always high -- :class:`hw.pipeline.Pipeline`).
    """

    def __init__(self, *, lanes: int = 4, a_format: MXIntFormat = MXIntFormat(width=8),
                 w_format: MXIntFormat = MXIntFormat(width=4), stages: int = 7,
                 backpressure: bool = True):
        with rejectable(self):
            self._backpressure = bool(backpressure)
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._g = DotGeometry(a_format=a_format, w_format=w_format, stages=stages)
            in_layout = data.StructLayout({
                "x": block_layout(a_format),
                "w": data.ArrayLayout(block_layout(w_format), lanes),
            })
            out_layout = data.StructLayout({
                "sums": data.ArrayLayout(Shape(self._g.sum_width, signed=True), lanes),
                "exponents": data.ArrayLayout(self._g.exponent_shape, lanes),
            })
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def a_format(self) -> MXIntFormat:
        return self._g.a_format

    @property
    def w_format(self) -> MXIntFormat:
        return self._g.w_format

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output becoming valid."""
        return self._g.stages

    @property
    def sum_width(self) -> int:
        """Signed bits of an exact sum, ``sw.blockmath.dot_sum_width``."""
        return self._g.sum_width

    @property
    def exponent_range(self) -> tuple[int, int]:
        """Range of the output exponent (the lsb exponent of ``sums``)."""
        return self._g.exponent_range

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, levels=self._g.levels, stages=self._g.stages, delays=self._g.delays,
                        valid_in=self.i.valid & self.i.ready, name="dots",
                        backpressure=self._backpressure)
        ws = [self.i.payload.w[k] for k in range(self._lanes)]
        sums, exponents = build_dot_lanes(m, pipe, self._g, self.i.payload.x, ws)
        pipe.connect(self.i, self.o)
        for k in range(self._lanes):
            m.d.comb += [self.o.payload.sums[k].eq(sums[k]),
                         self.o.payload.exponents[k].eq(exponents[k])]
        return m
