"""Merge: more partials into finished accumulator results, by the accumulator's own rule.

The LQER datapath's complete output (``sw.lqer_reference.lqer_linear_output``) adds the
low-rank term ``u`` and the bias to each channel's main accumulation as two more
partials. This component continues results ``(A, E - G)`` of
:class:`hw.accumulator.Accumulator` with one partial ``(s_t, p_t)`` per term, in order,
each step exactly ``sw.blockmath.accumulate``'s::

    E' = max(E, p)          A' = rshift(A, E' - E) + rshift(s << G, E' - p)

(one of the two shifts is zero: the operand with the smaller exponent goes through the
single shifter behind a swap). It is feed-forward -- a result meets each term once -- so
its levels pipeline freely: per term, the exponent compare; the swap; the coarse shift
and sticky bit; the fine shift and rounding bits; the add.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_choice, check_int, signed_for_range
from hw.pipeline import Pipeline
from hw.shifting import add_with_carry_in, round_parts, shift_amount, shift_right_round_parts, wire
from hw.unused import rejectable
from sw.blockmath import ACC_ROUNDINGS

__all__ = ["Merge", "TERM_DELAYS", "MAX_STAGES"]

# Estimated delays (LUT levels) of the levels of one term: compare; swap; coarse shift;
# fine shift and rounding; add.
TERM_DELAYS = [3.0, 1.5, 3.0, 2.0, 3.0]
MAX_STAGES = 16


class Merge(wiring.Component):
    """Ports: ``i`` (stream of ``{"values": ArrayLayout(signed(acc_width), lanes),
    "exponents": ArrayLayout(signed for result_range, lanes)`` and, per term ``t``,
    ``"t_sums"``, ``"t_exponents"``: ``ArrayLayout(..., lanes)}``) and ``o`` (stream of
    ``{"values", "exponents"}`` like the input's): the results ``A * 2**exponents``
    continued with each term's partial ``sums * 2**exponents``, lane by lane.

    Parameters (keyword-only): ``lanes`` (1..256); ``acc_width`` (2..60, the register ``A``;
    the caller sizes it for every partial, ``sw.blockmath.accumulator_width``);
    ``result_range`` (the ``E - G`` range of the incoming results); ``terms``: a tuple of
    ``(name, sum_width, exponent_range)``, one per partial, in order; ``guard_bits``
    (0..32) and ``rounding`` ("even" or "floor"), as the accumulator's; ``stages``
    (1..``MAX_STAGES``, = latency); ``backpressure`` (see :class:`hw.pipeline.Pipeline`).
    """

    def __init__(self, *, lanes: int, acc_width: int, result_range: tuple[int, int],
                 terms: tuple, guard_bits: int = 8, rounding: str = "even", stages: int = 4,
                 backpressure: bool = True):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, 256)
            self._width = check_int("acc_width", acc_width, 2, 60)
            self._g = check_int("guard_bits", guard_bits, 0, 32)
            self._rounding = check_choice("rounding", rounding, ACC_ROUNDINGS)
            self._stages = check_int("stages", stages, 1, MAX_STAGES)
            if not terms:
                raise ValueError("terms must name at least one partial; got none")
            self._terms = tuple((str(n), int(w), tuple(r)) for n, w, r in terms)
            self._backpressure = bool(backpressure)
            lo = min([result_range[0] + guard_bits] + [r[0] for _, _, r in self._terms])
            hi = max([result_range[1] + guard_bits] + [r[1] for _, _, r in self._terms])
            self._e_shape = signed_for_range(lo, hi)  # E: the running maximum exponent
            self._out_shape = signed_for_range(lo - guard_bits, hi - guard_bits)
            fields = {"values": data.ArrayLayout(signed(acc_width), lanes),
                      "exponents": data.ArrayLayout(signed_for_range(*result_range), lanes)}
            for name, width, rng in self._terms:
                fields[f"{name}_sums"] = data.ArrayLayout(signed(width), lanes)
                fields[f"{name}_exponents"] = data.ArrayLayout(signed_for_range(*rng), lanes)
            out = {"values": data.ArrayLayout(signed(acc_width), lanes),
                   "exponents": data.ArrayLayout(self._out_shape, lanes)}
        super().__init__({"i": In(stream.Signature(data.StructLayout(fields))),
                          "o": Out(stream.Signature(data.StructLayout(out)))})

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output becoming valid (= ``stages``)."""
        return self._stages

    @property
    def out_exponent_range(self) -> tuple[int, int]:
        """Range of the merged results' exponents ``E' - G``."""
        width = self._out_shape.width
        return -2 ** (width - 1), 2 ** (width - 1) - 1

    def elaborate(self, platform):
        m = Module()
        g, width, lanes = self._g, self._width, self._lanes
        delays = TERM_DELAYS * len(self._terms)
        pipe = Pipeline(m, levels=len(delays), stages=self._stages, delays=delays,
                        valid_in=self.i.valid & self.i.ready, name="merge",
                        backpressure=self._backpressure)
        level = iter(range(len(delays)))

        def close(groups):
            flat = [v for grp in groups for v in grp]
            out = pipe.after(next(level), flat)
            result, k = [], 0
            for grp in groups:
                result.append(out[k:k + len(grp)])
                k += len(grp)
            return result

        pay = self.i.payload
        acc = [pay.values[ln] for ln in range(lanes)]
        exp = [wire(m, (pay.exponents[ln] + g).as_signed(), f"e_in_{ln}") for ln in range(lanes)]
        later = [[(pay[f"{n}_sums"][ln], pay[f"{n}_exponents"][ln]) for ln in range(lanes)]
                 for n, _, _ in self._terms]
        pending = [v for term in later for pair in term for v in pair]
        cap = width + 1
        for t, (name, _, _) in enumerate(self._terms):
            sums = pending[0::2][:lanes]
            exps = pending[1::2][:lanes]
            pending = pending[2 * lanes:]
            # compare the exponents
            larger, dist, e_new = [], [], []
            for ln in range(lanes):
                p, e = exps[ln], exp[ln]
                big = wire(m, p > e, f"{name}_larger_{ln}")
                amount = shift_amount(m, Mux(big, p - e, e - p), cap, f"{name}_shift_{ln}")
                larger.append(big)
                dist.append(amount)
                e_new.append(wire(m, Mux(big, p, e), f"{name}_e_{ln}"))
            acc, sums, larger, dist, e_new, pending = close([acc, sums, larger, dist, e_new,
                                                             pending])
            # the swap: the operand with the smaller exponent is shifted
            to_shift, kept = [], []
            for ln in range(lanes):
                scaled = Value.cast(sums[ln] << g).as_signed()
                to_shift.append(wire(m, Mux(larger[ln], acc[ln], scaled)[:width].as_signed(),
                                     f"{name}_to_shift_{ln}"))
                kept.append(wire(m, Mux(larger[ln], scaled, acc[ln])[:width].as_signed(),
                                 f"{name}_kept_{ln}"))
            to_shift, kept, dist, e_new, pending = close([to_shift, kept, dist, e_new, pending])
            # coarse shift and sticky; fine shift and rounding bits
            coarse, sticky, fine = [], [], []
            for ln in range(lanes):
                c, s, f = shift_right_round_parts(m, to_shift[ln], dist[ln], f"{name}_{ln}")
                coarse.append(c)
                sticky.append(s)
                fine.append(f)
            coarse, sticky, fine, kept, e_new, pending = close([coarse, sticky, fine, kept,
                                                                e_new, pending])
            floors, ups = [], []
            for ln in range(lanes):
                fl, up = round_parts(m, coarse[ln] >> fine[ln], sticky[ln], self._rounding,
                                     f"{name}_{ln}")
                floors.append(Value.cast(fl)[:width].as_signed())
                ups.append(up)
            floors, ups, kept, e_new, pending = close([floors, ups, kept, e_new, pending])
            # the add
            acc = [add_with_carry_in(m, kept[ln], floors[ln], ups[ln], width, f"{name}_acc_{ln}")
                   for ln in range(lanes)]
            exp = e_new
            if t < len(self._terms) - 1:
                acc, exp, pending = close([acc, exp, pending])
        out_exp = [wire(m, (e - g).as_signed(), f"out_exp_{ln}") for ln, e in enumerate(exp)]
        acc, out_exp = close([acc, out_exp])
        pipe.connect(self.i, self.o)
        for ln in range(lanes):
            m.d.comb += [self.o.payload.values[ln].eq(acc[ln]),
                         self.o.payload.exponents[ln].eq(out_exp[ln])]
        return m
