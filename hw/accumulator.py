"""Cross-block accumulator: exactly ``sw.blockmath.accumulate`` in hardware.

Per lane, a stream of partials ``(s_j, p_j)`` (value ``s_j * 2**p_j``; from the
dot-product unit or array) is accumulated in order; the partial flagged
``last`` closes the dot product. The register holds ``(A, E)`` worth
``A * 2**(E - G)``, ``G = guard_bits`` (running-max alignment)::

    first partial:  A = s << G,  E = p
    next partial:   E' = max(E, p)
                    A' = rshift(A, E' - E) + rshift(s << G, E' - p)

One of the two shifts is always zero, so each lane has a single shifter behind
a swap: the operand with the smaller exponent goes through it. ``rshift``
rounds by ``"floor"`` (arithmetic shift) or ``"even"`` (half to even). The loop
is one cycle, so one partial per lane per cycle is accepted. The register
width is ``sw.blockmath.accumulator_width(sum_width, G, max_partials)``; more
than ``max_partials`` partials before ``last`` may overflow it.

On ``last`` the result ``(A', E' - G)`` (value ``A' * 2**(E' - G)``) goes to the
output stream, or, with ``out_format`` set, through a :class:`hw.quantizer.Quantizer`
that turns the ``lanes`` results into one MXINT block (``lanes`` = its block size),
exactly ``sw.mxint.quantize_exact(A, E - G, out_format)``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_choice, check_int, signed_for_range
from hw.quantizer import MAX_IN_WIDTH, Quantizer
from hw.shifting import shift_right_round, wire
from hw.unused import owned, rejectable
from sw.blockmath import ACC_ROUNDINGS, accumulator_width
from sw.mxint import MXIntFormat

__all__ = ["Accumulator", "MAX_LANES", "MAX_ACC_WIDTH"]

MAX_LANES = 256
# rshift_round in the reference works in int64; keep the register inside it.
MAX_ACC_WIDTH = 60


class Accumulator(wiring.Component):
    """Ports: ``i`` (stream of ``{"sums": ArrayLayout(signed(sum_width), lanes),
    "exponents": ArrayLayout(partial exponent shape, lanes), "last": 1}``) and ``o``:
    ``{"values": ArrayLayout(signed(acc_width), lanes), "exponents": ArrayLayout(...)}``
    (value ``values[k] * 2**exponents[k]``), or the MXINT block layout of ``out_format``.

    Parameters (keyword-only; rule: ``sw.blockmath.accumulate``):

    - ``sum_width`` (2..48): signed bits of an incoming partial sum (a dot array's
      ``sum_width``); ``exponent_range``: ``(lo, hi)`` of the partials' exponents
      (a dot array's ``exponent_range``), within -4096..4096;
    - ``guard_bits`` (0..32): fraction bits kept below the running maximum exponent;
    - ``max_partials`` (1..2**20): most partials per result; with the two above it sets
      the register width ``sw.blockmath.accumulator_width`` (at most ``MAX_ACC_WIDTH``);
    - ``rounding``: ``"even"`` or ``"floor"`` for the alignment shifts;
    - ``lanes`` (1..``MAX_LANES``): parallel accumulators sharing one ``last`` flag;
    - ``out_format`` (:class:`sw.mxint.MXIntFormat` or None): requantize the lanes'
      results to one block of it (``out_format.block == lanes``; register width at most
      52 bits, the quantizer's input); ``out_stages``: that quantizer's pipeline stages.

    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, sum_width: int, exponent_range: tuple[int, int], guard_bits: int = 8,
                 max_partials: int = 64, rounding: str = "even", lanes: int = 1,
                 out_format: MXIntFormat | None = None, out_stages: int = 1):
        with rejectable(self):
            self._setup(sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
                        out_format, out_stages)
        super().__init__({"i": In(stream.Signature(self._in_layout)), "o": Out(self._out_sig)})

    def _setup(self, sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
               out_format, out_stages):
        check_int("sum_width", sum_width, 2, 48)
        check_int("guard_bits", guard_bits, 0, 32)
        check_int("max_partials", max_partials, 1, 1 << 20)
        check_choice("rounding", rounding, ACC_ROUNDINGS)
        check_int("lanes", lanes, 1, MAX_LANES)
        if (not isinstance(exponent_range, tuple) or len(exponent_range) != 2
                or not all(isinstance(v, int) for v in exponent_range)
                or not -4096 <= exponent_range[0] <= exponent_range[1] <= 4096):
            raise ValueError("exponent_range must be a tuple (lo, hi) of integers with "
                             f"-4096 <= lo <= hi <= 4096; got {exponent_range!r}")
        acc_width = accumulator_width(sum_width, guard_bits, max_partials)
        if acc_width > MAX_ACC_WIDTH:
            raise ValueError(f"accumulator width (sum_width + guard_bits + log2(max_partials)) "
                             f"must be at most {MAX_ACC_WIDTH}; got {acc_width}")
        if out_format is not None:
            check_hardware_format("out_format", out_format)
            if acc_width > MAX_IN_WIDTH:
                raise ValueError(f"accumulator width must be at most {MAX_IN_WIDTH} to requantize "
                                 f"(the quantizer's input); got {acc_width}")
            if out_format.block != lanes:
                raise ValueError(f"out_format.block must equal lanes ({lanes}) to requantize "
                                 f"the lanes' results as one block; got {out_format.block}")
        self._sum_width = sum_width
        self._exponent_range = exponent_range
        self._guard_bits = guard_bits
        self._max_partials = max_partials
        self._rounding = rounding
        self._lanes = lanes
        self._acc_width = acc_width
        self._exponent_shape = signed_for_range(*exponent_range)
        lo, hi = exponent_range
        self._out_exponent_range = (lo - guard_bits, hi - guard_bits)
        self._out_exponent_shape = signed_for_range(*self._out_exponent_range)
        self._requantizer = None
        if out_format is not None:
            self._requantizer = Quantizer(
                out_format=out_format, in_width=acc_width,
                lsb_width=self._out_exponent_shape.width, stages=out_stages)
            owned(self._requantizer)
            self._out_sig = stream.Signature(block_layout(out_format))
        else:
            self._out_sig = stream.Signature(self._result_layout())
        self._in_layout = data.StructLayout({
            "sums": data.ArrayLayout(signed(sum_width), lanes),
            "exponents": data.ArrayLayout(self._exponent_shape, lanes),
            "last": 1,
        })

    def _result_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "values": data.ArrayLayout(signed(self._acc_width), self._lanes),
            "exponents": data.ArrayLayout(self._out_exponent_shape, self._lanes),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def sum_width(self) -> int:
        """Signed bits of an incoming partial sum."""
        return self._sum_width

    @property
    def acc_width(self) -> int:
        """Signed bits of the accumulator register ``A``."""
        return self._acc_width

    @property
    def guard_bits(self) -> int:
        return self._guard_bits

    @property
    def rounding(self) -> str:
        return self._rounding

    @property
    def max_partials(self) -> int:
        return self._max_partials

    @property
    def exponent_range(self) -> tuple[int, int]:
        """Range of the partials' exponents accepted on ``i``."""
        return self._exponent_range

    @property
    def out_exponent_range(self) -> tuple[int, int]:
        """Range of the result exponent ``E - guard_bits`` (before any requantization)."""
        return self._out_exponent_range

    @property
    def out_format(self) -> MXIntFormat | None:
        return None if self._requantizer is None else self._requantizer.out_format

    @property
    def latency(self) -> int:
        """Cycles from accepting the ``last`` partial to its result being valid on ``o``."""
        return 1 + (0 if self._requantizer is None else self._requantizer.latency)

    def _lane(self, m, k, first, s, p):
        """Next ``(A, E)`` of lane ``k`` for partial ``(s, p)``, and its state registers."""
        g, width = self._guard_bits, self._acc_width
        # no reset needed: ``first`` masks the registers' contents
        acc = Signal(signed(width), name=f"acc_{k}", reset_less=True)
        exp = Signal(self._exponent_shape, name=f"exp_{k}", reset_less=True)
        # a first partial meets an empty register at its own exponent
        cur_acc = wire(m, Mux(first, 0, acc), f"cur_acc_{k}")
        cur_exp = wire(m, Mux(first, p, exp), f"cur_exp_{k}")
        scaled = Signal(signed(width), name=f"scaled_{k}")
        m.d.comb += scaled.eq(s << g)
        partial_larger = wire(m, p > cur_exp, f"partial_larger_{k}")
        distance = wire(m, Mux(partial_larger, p - cur_exp, cur_exp - p), f"distance_{k}")
        # shifts of width + 1 or more all give the same result (0 or -1 for floor)
        cap = width + 1
        amount = Signal(range(cap + 1), name=f"shift_{k}")
        m.d.comb += amount.eq(Mux(distance > cap, cap, distance))
        to_shift = Signal(signed(width), name=f"to_shift_{k}")
        kept = Signal(signed(width), name=f"kept_{k}")
        m.d.comb += [to_shift.eq(Mux(partial_larger, cur_acc, scaled)),
                     kept.eq(Mux(partial_larger, scaled, cur_acc))]
        shifted = shift_right_round(m, to_shift, amount, self._rounding, f"aligned_{k}")
        new_acc = Signal(signed(width), name=f"new_acc_{k}")
        new_exp = Signal(self._exponent_shape, name=f"new_exp_{k}")
        m.d.comb += [new_acc.eq(kept + shifted), new_exp.eq(Mux(partial_larger, p, cur_exp))]
        return acc, exp, new_acc, new_exp

    def elaborate(self, platform):
        m = Module()
        if self._requantizer is not None:
            m.submodules.requantizer = self._requantizer
            result = self._requantizer.i  # driven here: payload {"values", "lsbs"}
            wiring.connect(m, wiring.flipped(self.o), self._requantizer.o)
        else:
            result = self.o

        first = Signal(init=1)  # the next partial starts a new dot product
        out_valid = Signal()
        take = Signal()
        m.d.comb += [self.i.ready.eq(~out_valid | result.ready),
                     take.eq(self.i.valid & self.i.ready),
                     result.valid.eq(out_valid)]
        with m.If(result.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(take):
            m.d.sync += first.eq(self.i.payload.last)
            with m.If(self.i.payload.last):
                m.d.sync += out_valid.eq(1)

        for k in range(self._lanes):
            acc, exp, new_acc, new_exp = self._lane(
                m, k, first, self.i.payload.sums[k], self.i.payload.exponents[k])
            out_value = Signal(signed(self._acc_width), name=f"out_value_{k}", reset_less=True)
            out_exp = Signal(self._out_exponent_shape, name=f"out_exp_{k}", reset_less=True)
            with m.If(take):
                m.d.sync += [acc.eq(new_acc), exp.eq(new_exp)]
                with m.If(self.i.payload.last):
                    m.d.sync += [out_value.eq(new_acc), out_exp.eq(new_exp - self._guard_bits)]
            if self._requantizer is not None:
                m.d.comb += [result.payload.values[k].eq(out_value),
                             result.payload.lsbs[k].eq(out_exp)]
            else:
                m.d.comb += [result.payload.values[k].eq(out_value),
                             result.payload.exponents[k].eq(out_exp)]
        return m
