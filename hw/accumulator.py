"""Cross-block accumulator: exactly ``sw.blockmath.accumulate`` in hardware, pipelined.

Per lane, a stream of partials ``(s_j, p_j)`` (value ``s_j * 2**p_j``; from the
dot-product array) is accumulated in order; the partial flagged ``last`` closes
the result. The register holds ``(A, E)`` worth ``A * 2**(E - G)``, ``G = guard_bits``
(running-max alignment, docs/design.md "Exact block arithmetic")::

    first partial:  A = s << G,  E = p
    next partial:   E' = max(E, p)
                    A' = rshift(A, E' - E) + rshift(s << G, E' - p)

One of the two shifts is always zero, so each lane has a single shifter behind
a swap. The loop (read the state, compare exponents, shift, round, add, write the
state) is cut into ``stages`` pipeline levels -- exponents and swap; coarse shift;
fine shift; round and add -- so it no longer limits the clock. To keep one partial
per cycle, the accumulator is *interleaved* (C-slow): it holds ``stages`` results in
flight, and the input stream carries their partials round-robin -- item ``n`` belongs
to slot ``n mod stages``. Each slot is an independent result; by the time slot ``k``'s
next partial enters, its previous one has left the loop. ``stages=1`` is the plain,
one-result accumulator. The arithmetic of every result is unchanged: the same rule, in
its own partial order.

On ``last`` the slot's result ``(A', E' - G)`` (value ``A' * 2**(E' - G)``) goes to the
output stream (results leave in the order of their ``last`` partials), or, with
``out_format`` set, through a :class:`hw.quantizer.Quantizer` that turns the ``lanes``
results into one MXINT block (``lanes`` = its block size), exactly
``sw.mxint.quantize_exact(A, E - G, out_format)``. The register width is
``sw.blockmath.accumulator_width(sum_width, G, max_partials)``; more than
``max_partials`` partials before ``last`` may overflow it.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_choice, check_int, signed_for_range
from hw.pipeline import StallPipeline
from hw.quantizer import MAX_IN_WIDTH, Quantizer
from hw.shifting import round_shifted, shift_right_round_parts, wire
from hw.unused import owned, rejectable
from sw.blockmath import ACC_ROUNDINGS, accumulator_width
from sw.mxint import MXIntFormat

__all__ = ["Accumulator", "MAX_LANES", "MAX_ACC_WIDTH", "LOOP_LEVELS"]

MAX_LANES = 256
# Levels of the accumulation loop: exponents and swap; coarse shift; fine shift; round and add.
LOOP_LEVELS = 4
LOOP_DELAYS = [3.0, 2.5, 2.0, 3.5]
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
    - ``stages`` (1..``LOOP_LEVELS``): pipeline registers in the accumulation loop, and so
      the number of results in flight (item ``n`` of the input belongs to slot
      ``n mod stages``);
    - ``out_format`` (:class:`sw.mxint.MXIntFormat` or None): requantize the lanes'
      results to one block of it (``out_format.block == lanes``; register width at most
      52 bits, the quantizer's input); ``out_stages``: that quantizer's pipeline stages.

    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, sum_width: int, exponent_range: tuple[int, int], guard_bits: int = 8,
                 max_partials: int = 64, rounding: str = "even", lanes: int = 1,
                 stages: int = 1, out_format: MXIntFormat | None = None, out_stages: int = 1):
        with rejectable(self):
            self._setup(sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
                        stages, out_format, out_stages)
        super().__init__({"i": In(stream.Signature(self._in_layout)), "o": Out(self._out_sig)})

    def _setup(self, sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
               stages, out_format, out_stages):
        self._stages = check_int("stages", stages, 1, LOOP_LEVELS)
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
    def stages(self) -> int:
        """Registers in the accumulation loop, and results in flight (the interleave)."""
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from accepting the ``last`` partial to its result being valid on ``o``."""
        return self._stages + (0 if self._requantizer is None else self._requantizer.latency)

    def elaborate(self, platform):
        m = Module()
        if self._requantizer is not None:
            m.submodules.requantizer = self._requantizer
            result = self._requantizer.i  # driven here: payload {"values", "lsbs"}
            wiring.connect(m, wiring.flipped(self.o), self._requantizer.o)
        else:
            result = self.o
        K, g, width = self._stages, self._guard_bits, self._acc_width
        pipe = StallPipeline(m, levels=LOOP_LEVELS, stages=K, valid_in=self.i.valid,
                             name="acc", delays=LOOP_DELAYS)

        # the slot of the next item, and which slots hold an open result
        slot = Signal(range(K), name="slot")
        open_ = Signal(K, name="open_results")
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        with m.If(take):
            m.d.sync += slot.eq(Mux(slot == K - 1, 0, slot + 1))
            m.d.sync += open_.bit_select(slot, 1).eq(~self.i.payload.last)
        first = ~open_.bit_select(slot, 1)

        # the state of every slot and lane: (A, E), written at the loop's last level
        states = [[(Signal(signed(width), name=f"acc_{k}_{lane}", reset_less=True),
                    Signal(self._exponent_shape, name=f"exp_{k}_{lane}", reset_less=True))
                   for lane in range(self._lanes)] for k in range(K)]

        # level 0: read the slot's state, compare exponents, swap, cap the shift
        carry, lanes = [], []
        cap = width + 1   # shifts of width + 1 or more all give the same result
        for lane in range(self._lanes):
            s = self.i.payload.sums[lane]
            p = self.i.payload.exponents[lane]
            acc = Array(st[lane][0] for st in states)[slot] if K > 1 else states[0][lane][0]
            exp = Array(st[lane][1] for st in states)[slot] if K > 1 else states[0][lane][1]
            cur_acc = wire(m, Mux(first, 0, acc), f"cur_acc_{lane}")
            cur_exp = wire(m, Mux(first, p, exp), f"cur_exp_{lane}")
            scaled = wire(m, (s << g).as_signed(), f"scaled_{lane}")
            larger = wire(m, p > cur_exp, f"partial_larger_{lane}")
            distance = wire(m, Mux(larger, p - cur_exp, cur_exp - p), f"distance_{lane}")
            amount = Signal(range(cap + 1), name=f"shift_{lane}")
            m.d.comb += amount.eq(Mux(distance > cap, cap, distance))
            to_shift = Signal(signed(width), name=f"to_shift_{lane}")
            kept = Signal(signed(width), name=f"kept_{lane}")
            m.d.comb += [to_shift.eq(Mux(larger, cur_acc, scaled)),
                         kept.eq(Mux(larger, scaled, cur_acc))]
            new_exp = wire(m, Mux(larger, p, cur_exp), f"new_exp_{lane}")
            lanes.append([to_shift, amount, kept, new_exp])
        ctrl = [self.i.payload.last, slot]
        flat = pipe.after(0, [v for ln in lanes for v in ln] + ctrl)
        lanes = [flat[4 * k:4 * k + 4] for k in range(self._lanes)]
        ctrl = flat[-2:]

        # level 1: coarse shift and sticky; level 2: fine shift
        staged = []
        for lane, (to_shift, amount, kept, new_exp) in enumerate(lanes):
            coarse, sticky, fine = shift_right_round_parts(m, to_shift, amount, f"aligned_{lane}")
            staged.append([coarse, sticky, fine, kept, new_exp])
        flat = pipe.after(1, [v for ln in staged for v in ln] + ctrl)
        staged, ctrl = [flat[5 * k:5 * k + 5] for k in range(self._lanes)], flat[-2:]
        fine_done = []
        for lane, (coarse, sticky, fine, kept, new_exp) in enumerate(staged):
            fine_done.append([wire(m, coarse >> fine, f"with_round_{lane}"), sticky, kept, new_exp])
        flat = pipe.after(2, [v for ln in fine_done for v in ln] + ctrl)
        fine_done, ctrl = [flat[4 * k:4 * k + 4] for k in range(self._lanes)], flat[-2:]

        # level 3: round and add; the new state of the item's slot
        results = []
        for lane, (with_round, sticky, kept, new_exp) in enumerate(fine_done):
            shifted = round_shifted(m, with_round, sticky, self._rounding, f"aligned_{lane}")
            new_acc = wire(m, (kept + shifted)[:width].as_signed(), f"new_acc_{lane}")
            results.append([new_acc, new_exp])
        last, item_slot = ctrl
        # the state is written with the level's closing register (the same enable), so
        # the slot's next partial, ``stages`` items later, reads it
        write = Signal(name="state_write")
        m.d.comb += write.eq(pipe.enable & pipe.valid)
        for k in range(K):
            with m.If(write & (item_slot == k)):
                for lane, (new_acc, new_exp) in enumerate(results):
                    m.d.sync += [states[k][lane][0].eq(new_acc), states[k][lane][1].eq(new_exp)]
        flat = pipe.after(3, [v for r in results for v in r] + [last])
        results, last = [flat[2 * k:2 * k + 2] for k in range(self._lanes)], flat[-1]

        # only results (items flagged last) leave the loop
        out_valid = Signal(name="result_valid")
        m.d.comb += [out_valid.eq(pipe.valid_out & last),
                     pipe.enable.eq(~out_valid | result.ready),
                     self.i.ready.eq(pipe.enable),
                     result.valid.eq(out_valid)]
        for lane, (new_acc, new_exp) in enumerate(results):
            if self._requantizer is not None:
                m.d.comb += [result.payload.values[lane].eq(new_acc),
                             result.payload.lsbs[lane].eq(new_exp - g)]
            else:
                m.d.comb += [result.payload.values[lane].eq(new_acc),
                             result.payload.exponents[lane].eq(new_exp - g)]
        return m
