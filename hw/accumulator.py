"""Cross-block accumulator: exactly ``sw.blockmath.accumulate`` in hardware, pipelined.

Per lane, a stream of partials ``(s_j, p_j)`` (value ``s_j * 2**p_j``; from the
dot-product array) is accumulated in order; the partial flagged ``last`` closes
the result. The register holds ``(A, E)`` worth ``A * 2**(E - G)``, ``G = guard_bits``
(running-max alignment, docs/design.md "Exact block arithmetic")::

    first partial:  A = s << G,  E = p
    next partial:   E' = max(E, p)
                    A' = rshift(A, E' - E) + rshift(s << G, E' - p)

The datapath splits the rule so that only a short path is loop-carried:

- **exponents first** (feed-forward, one short loop): ``E`` is tracked on its own, so
  both shift amounts ``E' - E`` and ``E' - p`` are known before ``A`` is touched; the
  partial's own shift and its rounding bit are done here, outside the loop (``stages``
  registers over these levels);
- **the accumulation loop**: read ``A`` (beside it, the sticky mask of its shift, from
  the shift amount alone), shift it by ``E' - E`` (coarse, then fine), round,
  add the aligned partial, write ``A``. One of the two shifts is always zero, so of the
  two round-up bits (the partial's and ``A``'s) at most one is set: one adder takes both
  floors and their OR as its carry-in. The loop holds
  ``slots`` registers (at most :data:`LOOP_LEVELS`).

So that the loop still takes one partial per cycle, the accumulator is *interleaved*
(C-slow): it keeps ``slots`` results in flight, and the input stream carries their
partials round-robin -- item ``n`` belongs to slot ``n mod slots``. By the time slot
``k``'s next partial reads ``A``, its previous one has written it. Each slot is an
independent result under the same rule, in its own partial order; ``slots=1`` is the
plain, one-result accumulator.

On ``last`` the slot's result ``(A', E' - G)`` (value ``A' * 2**(E' - G)``) goes to the
output stream (results leave in the order of their ``last`` partials), or, with
``out_format`` set, through a :class:`hw.quantizer.Quantizer` that turns the ``lanes``
results into one MXINT block (``lanes`` = its block size), exactly
``sw.mxint.quantize_exact(A, E - G, out_format)``. The register width is
``sw.blockmath.accumulator_width(sum_width, G, max_partials)``; more than
``max_partials`` partials before ``last`` may overflow it.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_choice, check_int, signed_for_range
from hw.pipeline import Pipeline, register_counts
from hw.quantizer import MAX_IN_WIDTH, Quantizer
from hw.shifting import (add_with_carry_in, round_parts, shift_amount,
                         shift_right_round_parts, sticky_mask, wire)
from hw.unused import owned, rejectable
from sw.blockmath import ACC_ROUNDINGS, accumulator_width
from sw.mxint import MXIntFormat

__all__ = ["Accumulator", "MAX_LANES", "MAX_ACC_WIDTH", "LOOP_LEVELS", "PRE_LEVELS",
           "MAX_STAGES"]

MAX_LANES = 256
# Levels before the loop: read the slot's running maximum exponent E (and compare the
# partial's exponent with every slot's); the new E (written back: with a register between
# the two, E's own loop takes two cycles, which the slots allow) and the two shift
# distances; the shift amounts (clamped); the partial's coarse shift; its fine shift and
# rounding bits (its rounding bit is added by the loop's adder).
PRE_LEVELS = 5
PRE_DELAYS = [3.0, 3.0, 2.5, 3.0, 2.5]
# Registers before the loop: one per level, and one more at its end (latency only; the
# partial's rounding add, now in the loop, had a level of its own).
MAX_STAGES = PRE_LEVELS + 1
# Levels of the accumulation loop: read A; coarse shift; fine shift and rounding; add.
LOOP_LEVELS = 4
LOOP_DELAYS = [1.5, 3.0, 2.0, 3.0]
# rshift_round in the reference works in int64; keep the register inside it.
MAX_ACC_WIDTH = 60


def _offset(value: Value) -> Value:
    """Signed ``value`` as the unsigned ``value + 2**(width-1)`` (its sign bit flipped): the
    same order, compared by a plain carry chain (a signed compare adds LUTs behind it)."""
    value = Value.cast(value)
    return Cat(value[:-1], ~value[-1])


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
    - ``slots`` (1..``LOOP_LEVELS``): registers in the accumulation loop, and so the number
      of results in flight (item ``n`` of the input belongs to slot ``n mod slots``);
    - ``stages`` (0..``MAX_STAGES``): registers before the loop (latency ``stages + slots``);
      default 5;
    - ``backpressure`` (default True; see :class:`hw.pipeline.Pipeline`);
    - ``out_format`` (:class:`sw.mxint.MXIntFormat` or None): requantize the lanes'
      results to one block of it (``out_format.block == lanes``; register width at most
      52 bits, the quantizer's input); ``out_stages``: that quantizer's pipeline stages.

    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, sum_width: int, exponent_range: tuple[int, int], guard_bits: int = 8,
                 max_partials: int = 64, rounding: str = "even", lanes: int = 1,
                 slots: int = LOOP_LEVELS, stages: int = 5, out_format: MXIntFormat | None = None,
                 out_stages: int = 6, backpressure: bool = True):
        with rejectable(self):
            self._setup(sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
                        slots, stages, out_format, out_stages, backpressure)
        super().__init__({"i": In(stream.Signature(self._in_layout)), "o": Out(self._out_sig)})

    def _setup(self, sum_width, exponent_range, guard_bits, max_partials, rounding, lanes,
               slots, stages, out_format, out_stages, backpressure):
        self._slots = check_int("slots", slots, 1, LOOP_LEVELS)
        self._stages = check_int("stages", stages, 0, MAX_STAGES)
        self._backpressure = bool(backpressure)
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
                lsb_width=self._out_exponent_shape.width, stages=out_stages,
                backpressure=self._backpressure)
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
    def slots(self) -> int:
        """Registers in the accumulation loop, and results in flight (the interleave)."""
        return self._slots

    @property
    def stages(self) -> int:
        """Registers before the accumulation loop."""
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from accepting the ``last`` partial to its result being valid on ``o``."""
        own = self._stages + self._slots
        return own + (0 if self._requantizer is None else self._requantizer.latency)

    def _counts(self) -> list[int]:
        """Registers after each level: ``stages`` over the levels before the loop (the first
        between reading and writing E when there are two slots or more); inside the loop
        ``slots - 1`` (so a slot's next partial reads ``A`` after its previous one wrote
        it), then the output register."""
        fixed = self._e_loop_registers()
        # with one slot, E's loop is one cycle: nothing between its read and its write
        head = max(fixed, 1)
        rest = self._stages - fixed
        if rest <= 0:
            pre = [1] * fixed + [0] * (PRE_LEVELS - fixed)
        else:
            pre = [1] * fixed + [0] * (head - fixed) + register_counts(
                PRE_LEVELS - head, rest, PRE_DELAYS[head:])
        inner = ([0] * (LOOP_LEVELS - 1) if self._slots == 1 else
                 register_counts(LOOP_LEVELS - 1, self._slots - 1, LOOP_DELAYS[:-1]))
        return pre + inner + [1]

    def _e_loop_registers(self) -> int:
        """Registers inside E's loop (read, compare, write back): as many as the slots and
        stages allow, up to two (write back from the register after the compare)."""
        return min(self._slots - 1, self._stages, 2)

    def elaborate(self, platform):
        m = Module()
        if self._requantizer is not None:
            m.submodules.requantizer = self._requantizer
            result = self._requantizer.i  # driven here: payload {"values", "lsbs"}
            wiring.connect(m, wiring.flipped(self.o), self._requantizer.o)
        else:
            result = self.o
        K, g, width = self._slots, self._guard_bits, self._acc_width
        lanes = self._lanes
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        pipe = Pipeline(m, levels=PRE_LEVELS + LOOP_LEVELS, counts=self._counts(), valid_in=take,
                        name="acc", backpressure=self._backpressure)
        level = iter(range(PRE_LEVELS + LOOP_LEVELS))

        def close(groups, replica_group: int | None = None):
            """Close the next level over lists of values; returns the same grouping. The
            values of ``groups[replica_group]`` are copies on purpose (replica registers)."""
            flat = [v for grp in groups for v in grp]
            start = sum(len(grp) for grp in groups[:replica_group or 0])
            marked = (frozenset() if replica_group is None else
                      frozenset(range(start, start + len(groups[replica_group]))))
            out = pipe.after(next(level), flat, replicas=marked)
            result_, k = [], 0
            for grp in groups:
                result_.append(out[k:k + len(grp)])
                k += len(grp)
            return result_

        def pick(states, index):
            return states[0] if K == 1 else Array(states)[index]

        # the slot of the next item, and which slots hold an open result
        slot = Signal(range(K), name="slot")
        open_ = Signal(K, name="open_results")
        with m.If(take):
            m.d.sync += slot.eq(Mux(slot == K - 1, 0, slot + 1))
            m.d.sync += open_.bit_select(slot, 1).eq(~self.i.payload.last)
        first = wire(m, ~open_.bit_select(slot, 1), "first")

        # pre 0, 1: the running maximum exponent E of the item's slot: read, then the new
        # one, written back (a loop of one or two cycles; the slots give it time)
        e_states = [[Signal(self._exponent_shape, name=f"exp_{k}_{ln}", reset_less=True)
                     for ln in range(lanes)] for k in range(K)]
        sums = [self.i.payload.sums[ln] for ln in range(lanes)]
        exps = [self.i.payload.exponents[ln] for ln in range(lanes)]
        e_prev = [wire(m, pick([st[ln] for st in e_states], slot), f"exp_prev_{ln}")
                  for ln in range(lanes)]
        # compare, then select: the partial's exponent against every slot's E (in parallel,
        # beside the read; registered), the item's slot picked in the next level
        greater = [[wire(m, _offset(exps[ln]) > _offset(st[ln]), f"exp_greater_{k}_{ln}")
                    for ln in range(lanes)] for k, st in enumerate(e_states)]
        ctrl = [first, self.i.payload.last, slot]
        sums, exps, e_prev, ctrl, *greater = close([sums, exps, e_prev, ctrl, *greater])
        first, _, item_slot = ctrl
        e_new = [wire(m, Mux(first | pick([g[ln] for g in greater], item_slot), exps[ln],
                             e_prev[ln]), f"exp_new_{ln}") for ln in range(lanes)]

        def write_e(values, slot_of):
            with m.If(pipe.valid):
                for k in range(K):
                    with m.If(slot_of == k):
                        m.d.sync += [e_states[k][ln].eq(values[ln]) for ln in range(lanes)]

        # beside the select, the two distances: E' - E is p - E when p > E and E' - p is
        # E - p otherwise, each <= 0 in the other case, which the amount's clamp turns
        # into 0; so neither waits for E'
        dist_acc = [wire(m, exps[ln] - e_prev[ln], f"shift_acc_distance_{ln}")
                    for ln in range(lanes)]
        dist_s = [wire(m, e_prev[ln] - exps[ln], f"shift_partial_distance_{ln}")
                  for ln in range(lanes)]

        late = self._e_loop_registers() == 2  # write back from the next level
        if not late:
            write_e(e_new, item_slot)
        sums, dist_acc, dist_s, e_new, ctrl = close([sums, dist_acc, dist_s, e_new, ctrl])
        if late:
            write_e(e_new, ctrl[2])

        # pre 2: the two shift amounts, capped (shifts of width + 1 or more all give the
        # same result); a first partial shifts neither
        cap = width + 1
        first = ctrl[0]
        amt_acc, amt_s = [], []
        for ln in range(lanes):
            amt_acc.append(shift_amount(m, dist_acc[ln], cap, f"shift_acc_{ln}"))
            amt_s.append(shift_amount(m, dist_s[ln], cap, f"shift_partial_{ln}"))
        amt_acc = [wire(m, Mux(first, 0, a), f"shift_acc_first_{ln}") for ln, a in
                   enumerate(amt_acc)]
        amt_s = [wire(m, Mux(first, 0, a), f"shift_partial_first_{ln}") for ln, a in
                 enumerate(amt_s)]
        scaled = [wire(m, (s << g).as_signed(), f"scaled_{ln}") for ln, s in enumerate(sums)]
        scaled = [Value.cast(v)[:width].as_signed() for v in scaled]
        scaled, amt_s, amt_acc, e_new, ctrl = close([scaled, amt_s, amt_acc, e_new, ctrl])

        # pre 2, 3: the partial's shift (coarse, fine) and its rounding bits
        coarse, sticky, fine = [], [], []
        for ln in range(lanes):
            c, st, f = shift_right_round_parts(m, scaled[ln], amt_s[ln], f"partial_{ln}")
            coarse.append(c)
            sticky.append(st)
            fine.append(f)
        coarse, sticky, fine, amt_acc, e_new, ctrl = close([coarse, sticky, fine, amt_acc,
                                                            e_new, ctrl])
        floor_s, up_s = [], []
        for ln in range(lanes):
            fl, up = round_parts(m, coarse[ln] >> fine[ln], sticky[ln], self._rounding,
                                 f"partial_{ln}")
            floor_s.append(Value.cast(fl)[:width].as_signed())
            up_s.append(up)
        # the partial's rounding bit goes to the loop's adder beside its floor (its shift and
        # the accumulator's are never both non-zero: one carry-in serves both)
        term_s, up_s, amt_acc, e_new, ctrl = close([floor_s, up_s, amt_acc, e_new, ctrl])

        # loop 0: read A of the item's slot (0 for a first partial)
        a_states = [[Signal(signed(width), name=f"acc_{k}_{ln}", reset_less=True)
                     for ln in range(lanes)] for k in range(K)]
        first, last, item_slot = ctrl
        current = [wire(m, Mux(first, 0, pick([st[ln] for st in a_states], item_slot)),
                        f"acc_current_{ln}") for ln in range(lanes)]
        # beside the read, A's sticky mask from its shift (the table off the shifter's level:
        # it was the accumulator's ECP5 clock path, docs/synth.md)
        masks = [sticky_mask(m, amt_acc[ln], width, f"acc_{ln}") for ln in range(lanes)]
        current, masks, term_s, up_s, amt_acc, e_new, ctrl = close(
            [current, masks, term_s, up_s, amt_acc, e_new, ctrl])
        # loop 1, 2: A's shift (coarse, fine) and its rounding bits
        coarse, sticky, fine = [], [], []
        for ln in range(lanes):
            c, st, f = shift_right_round_parts(m, current[ln], amt_acc[ln], f"acc_{ln}",
                                               mask=masks[ln])
            coarse.append(c)
            sticky.append(st)
            fine.append(f)
        coarse, sticky, fine, term_s, up_s, e_new, ctrl = close(
            [coarse, sticky, fine, term_s, up_s, e_new, ctrl])
        floor_a, up_a = [], []
        for ln in range(lanes):
            fl, up = round_parts(m, coarse[ln] >> fine[ln], sticky[ln], self._rounding,
                                 f"acc_{ln}")
            floor_a.append(Value.cast(fl)[:width].as_signed())
            up_a.append(wire(m, up | up_s[ln], f"round_up_{ln}"))
        # loop 3's write of each slot and lane, formed a level ahead (registered with it
        # when the level has a register: a copy per slot and lane, so no one valid register
        # drives every slot register's clock enable across the device, docs/synth.md)
        writes = [pipe.valid & (ctrl[2] == k) for k in range(K) for _ in range(lanes)]
        floor_a, up_a, term_s, e_new, ctrl, writes = close(
            [floor_a, up_a, term_s, e_new, ctrl, writes], replica_group=5)
        # loop 3: one add, the rounding bit (A's or the partial's) as its carry-in; the new A
        # is written back for the slot's next partial
        first, last, item_slot = ctrl
        new_acc = [add_with_carry_in(m, floor_a[ln], term_s[ln], up_a[ln], width,
                                     f"acc_new_{ln}") for ln in range(lanes)]
        for k in range(K):
            for ln in range(lanes):
                with m.If(writes[k * lanes + ln]):
                    m.d.sync += a_states[k][ln].eq(new_acc[ln])
        out_exp = [wire(m, (e - g), f"result_exponent_{ln}") for ln, e in enumerate(e_new)]
        flat = pipe.after(next(level), new_acc + out_exp, keep=last)
        values, out_exps = flat[:lanes], flat[lanes:]
        pipe.connect(self.i, result)
        for ln in range(lanes):
            if self._requantizer is not None:
                m.d.comb += [result.payload.values[ln].eq(values[ln]),
                             result.payload.lsbs[ln].eq(out_exps[ln])]
            else:
                m.d.comb += [result.payload.values[ln].eq(values[ln]),
                             result.payload.exponents[ln].eq(out_exps[ln])]
        return m
