"""MXINT quantizer: a fixed-point vector to one MXINT block per cycle.

Input element ``i`` is the exact value ``values[i] * 2**lsb_i`` where
``lsb_i = -frac_bits`` (fixed-point mode) or, with ``lsb_width > 0``, a per-element
signed exponent carried beside the value (accumulator outputs, each with its own
alignment). The output is bit-exact with
``sw.mxint.quantize_exact(values, lsb, out_format)``. The datapath is a chain of
levels (docs/design.md, "Hardware shape"); ``stages`` registers are placed over them
by :func:`hw.pipeline.register_counts` using the delay estimates of :meth:`Quantizer.delays`:

1. magnitudes ``|v_i|`` and signs;
2. the block's ``floor(log2 max|v_i|)``: in fixed-point mode, a leading-one tree on the
   OR of the magnitudes, giving the bit length ``n``; with per-element exponents, each
   element's ``bit_length - 1 + lsb_i`` and then a max tree, two levels per halving (the
   comparisons, then the selection);
3. the shared exponent clamped to the exponent range (an all-zero block gets the
   minimum) and each element's right shift of ``|v_i| << (width-1)``: in fixed-point mode
   both are functions of ``n`` alone, a small table (registered with a copy of the shift
   per element); otherwise the clamp's comparisons,
   the clamp (registered with a copy of the exponent per element), then a subtract, then a
   clamp per element, each its own level;
4. the coarse part of that shift (multiples of ``2**FINE_SHIFT_BITS``), the sticky bit
   of everything shifted out and the saturation test. In fixed-point mode the sticky bit
   is the OR of the bits under a table of masks by shift (not comparators); with
   per-element exponents each element's trailing zeros (the bit length of its magnitude
   reversed, level 2, carried in a delay line) give the one shift above which a bit is
   lost, so it is a compare, and the coarse shift takes a one-hot select registered with
   the amount (an AND-OR level, not a mux tree). The saturation test: ``(|v| << (width-1)) >> shift`` has a bit above the mantissa exactly
   when ``|v| >= 2**shift``, which is ``bit_length(|v|) > shift`` with per-element
   exponents (the bit lengths of level 2, carried in a delay line); in fixed-point mode
   it needs ``shift < n``, which only a clamped exponent gives, so the table flags those
   bit lengths and an element tests its bits above a constant position. So the shifter
   keeps only the ``width - 1 + 2**FINE_SHIFT_BITS`` low bits the rounding reads, not
   every bit of the input's width for an OR (that OR and its shifter bits were most of
   the requantizer's logic and grew with ``in_width``: docs/synth.md, "Saturation
   without the shifter's high bits");
5. the fine part, the round bit;
6. rounding (half to even, or ties away) and saturation to ``2**(width-1) - 1`` (a bit
   above the mantissa, or a carry out of the rounding add);
7. the sign (in fixed-point mode, in the rounding's level: the rounding add of
   ``floor`` and ``up`` becomes ``(floor ^ s) + (up ^ s)`` with ``s`` all ones for a
   negative element, two's complement negation without an adder of its own).

Left shifts of ``width - 1`` or more can only come from a clamped exponent and
always saturate a non-zero element, so ``|v| << (width-1)`` covers every case;
right shifts beyond ``in_width + width`` give 0 and are capped there.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_int, signed_for_range
from hw.pipeline import Pipeline
from hw.shifting import (FINE_SHIFT_BITS, bit_length, coarse_one_hot, round_parts,
                         shift_amount, shift_right_round_parts, wire)
from hw.unused import rejectable
from sw.mxint import MXIntFormat

__all__ = ["Quantizer", "MAX_STAGES", "MAX_IN_WIDTH"]

MAX_STAGES = 20
MAX_IN_WIDTH = 52  # sw.mxint.quantize_exact takes magnitudes below 2**53


class Quantizer(wiring.Component):
    """Ports: ``i`` (stream of ``{"values": ArrayLayout(signed(in_width), block)}``, plus
    ``"lsbs": ArrayLayout(signed(lsb_width), block)`` when ``lsb_width > 0``) and ``o``
    (stream of the MXINT block layout of ``out_format``).

    Parameters (keyword-only): ``out_format`` (:class:`sw.mxint.MXIntFormat`, flavour
    "ocp"; its ``block`` is the vector length and its ``rounding`` the rounding),
    ``in_width`` 2..``MAX_IN_WIDTH`` input bits, ``frac_bits`` -64..64 (fixed-point
    mode), ``lsb_width`` 0..16 (0: fixed point; else per-element exponents of that
    many bits), ``stages`` 1..``MAX_STAGES`` (= :attr:`latency`), ``backpressure``
    (default True; see :class:`hw.pipeline.Pipeline`). Raises ``ValueError`` /
    ``TypeError`` naming the parameter.
    """

    def __init__(self, *, out_format: MXIntFormat = MXIntFormat(), in_width: int = 16,
                 frac_bits: int = 8, lsb_width: int = 0, stages: int = 7,
                 backpressure: bool = True):
        with rejectable(self):
            self._backpressure = bool(backpressure)
            self._format = check_hardware_format("out_format", out_format)
            self._in_width = check_int("in_width", in_width, 2, MAX_IN_WIDTH)
            self._frac_bits = check_int("frac_bits", frac_bits, -64, 64)
            self._lsb_width = check_int("lsb_width", lsb_width, 0, 16)
            self._stages = check_int("stages", stages, 1, MAX_STAGES)
            fields = {"values": data.ArrayLayout(signed(in_width), out_format.block)}
            if lsb_width:
                fields["lsbs"] = data.ArrayLayout(signed(lsb_width), out_format.block)
        super().__init__({"i": In(stream.Signature(data.StructLayout(fields))),
                          "o": Out(stream.Signature(block_layout(out_format)))})

    @property
    def out_format(self) -> MXIntFormat:
        return self._format

    @property
    def in_width(self) -> int:
        return self._in_width

    @property
    def frac_bits(self) -> int:
        """Fraction bits of the fixed-point input (unused when ``lsb_width > 0``)."""
        return self._frac_bits

    @property
    def lsb_width(self) -> int:
        return self._lsb_width

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its block becoming valid (= ``stages``)."""
        return self._stages

    @property
    def delays(self) -> list[float]:
        """Estimated delay (LUT levels) of each pipeline level, in order (module doc)."""
        tree = (self._format.block - 1).bit_length()  # log2(block) halvings
        width = self._in_width
        lod = 1.0 + (width - 1).bit_length()
        # abs: a negation, a carry chain over in_width bits, in and out of the chain
        negate = 2.0 + width / 16
        if self._lsb_width:  # abs; bit lengths; + lsb; max tree; clamp (compare, select);
            #                  distances; amounts
            head = [negate, lod, 2.5] + [2.5, 1.0] * tree + [2.5, 1.5, 2.0, 2.0]
            return head + [2.5, 1.5, 3.0, 2.0]   # coarse; fine; round; sign
        # abs; OR tree; leading one; table (and the long route from the one table to every
        # element's copy of the shift); coarse; fine; round with the sign
        return [negate, 1.0 + tree / 2, lod, 2.5, 3.0, 1.5, 3.5]

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        emin, emax = fmt.exponent_range
        block = fmt.block
        delays = self.delays
        pipe = Pipeline(m, levels=len(delays), stages=self._stages, delays=delays,
                        valid_in=self.i.valid & self.i.ready, name="quant",
                        backpressure=self._backpressure)
        level = iter(range(len(delays)))
        values = [self.i.payload.values[k] for k in range(block)]
        per_element = bool(self._lsb_width)
        lsbs = [self.i.payload.lsbs[k] for k in range(block)] if per_element else []

        def stage(*groups):
            """Close the next level over lists of values; returns the same grouping."""
            flat = [v for g in groups for v in g]
            out = pipe.after(next(level), flat)
            result, k = [], 0
            for g in groups:
                result.append(out[k:k + len(g)])
                k += len(g)
            return result

        pre = fmt.width - 1
        cap = self._in_width + pre + 1
        amount_shape = range(cap + 1)

        # magnitudes and signs
        mags = [wire(m, abs(v), f"magnitude_{k}") for k, v in enumerate(values)]
        negative = [v < 0 for v in values]
        mags, negative, lsbs = stage(mags, negative, lsbs)
        # the magnitudes wait for their shift and the signs for the last level, unchanged:
        # delay lines (LUT RAM), not a copy in every register level
        last = len(delays) - 1
        coarse_level = last - (3 if per_element else 2)   # the sign shares the last level
        late_mags = pipe.bypass(mags, 1, coarse_level, "magnitudes")
        # (in fixed-point mode to the fine level, where the rounding's operands take the sign)
        late_negative = pipe.bypass(negative, 1, last - (0 if per_element else 1), "signs")

        if per_element:
            # each element's floor(log2 |v|), then a max tree over the block
            lo = -2 ** (self._lsb_width - 1)
            hi = 2 ** (self._lsb_width - 1) - 1 + self._in_width - 1
            shape = signed_for_range(lo, hi)
            lengths = [bit_length(m, mag, f"bit_length_{k}") for k, mag in enumerate(mags)]
            # the bit length of the magnitude reversed: its trailing zeros (below)
            tails = [bit_length(m, mag[::-1], f"reversed_length_{k}")
                     for k, mag in enumerate(mags)]
            late_lsbs = pipe.bypass(lsbs, 1, last - 5, "lsbs")
            lengths, tails, lsbs = stage(lengths, tails, lsbs)
            # the bit lengths wait for the shift amounts: the saturation test (below)
            late_lengths = pipe.bypass(lengths, 2, coarse_level, "bit_lengths")
            # the sticky bit from the trailing zeros: |v| << pre has a bit below position
            # amount - 1 exactly when its lowest one, at tz + pre (tz = W - tail for a
            # magnitude of W bits), is below it, that is when amount > W + pre + 1 - tail;
            # 0 has none (the largest amount, never exceeded). So the shift level compares
            # the amount with this limit, carried in a delay line, instead of forming and
            # ORing a mask of every bit (docs/synth.md)
            amount_bits = max(1, cap.bit_length())    # hw.shifting.shift_amount's width
            limits = []
            for k, tail in enumerate(tails):
                limit = Signal(amount_bits, name=f"sticky_limit_{k}")
                m.d.comb += limit.eq(Mux(tail == 0, (1 << amount_bits) - 1,
                                         len(mags[k]) + pre + 1 - tail))
                limits.append(limit)
            late_limits = pipe.bypass(limits, 2, coarse_level, "sticky_limits")
            nz, fes = [], []
            for k, (length, lsb) in enumerate(zip(lengths, lsbs)):
                fe = Signal(shape, name=f"floor_exp_{k}")
                m.d.comb += fe.eq(length - 1 + lsb)
                nz.append(wire(m, length != 0, f"nonzero_{k}"))
                fes.append(fe)
            nz, fes = stage(nz, fes)
            pairs = list(zip(nz, fes))
            while len(pairs) > 1:  # per halving: compare (registered), then select
                takes = [wire(m, n1 & (~n2 | (f1 >= f2)), f"max_take_first_{len(pairs)}_{i}")
                         for i, ((n1, f1), (n2, f2)) in enumerate(zip(pairs[0::2],
                                                                      pairs[1::2]))]
                takes, nz, fes = stage(takes, [p[0] for p in pairs], [p[1] for p in pairs])
                merged = []
                for i, take_first in enumerate(takes):
                    k = len(merged) + len(pairs)
                    merged.append((wire(m, nz[2 * i] | nz[2 * i + 1], f"max_nonzero_{k}"),
                                   wire(m, Mux(take_first, fes[2 * i], fes[2 * i + 1]),
                                        f"max_exp_{k}")))
                nz, fes = stage([p[0] for p in merged], [p[1] for p in merged])
                pairs = list(zip(nz, fes))
            natural, nonzero = pairs[0][1], pairs[0][0]
            # the clamp's comparisons, registered; then the clamp itself
            below = wire(m, ~nonzero | (natural < emin), "exponent_below")
            above = wire(m, natural > emax, "exponent_above")
            ((below, above, natural),) = stage([below, above, natural])
            exponent = Signal(signed(fmt.exponent_bits), name="exponent")
            with m.If(below):
                m.d.comb += exponent.eq(emin)
            with m.Elif(above):
                m.d.comb += exponent.eq(emax)
            with m.Else():
                m.d.comb += exponent.eq(natural)
            # the shared exponent, and a copy of it per element (each copy's fan-out local)
            flat = pipe.after(next(level), [exponent] * (block + 1), replicas=True)
            exponent, copies = flat[0], flat[1:]
            distances = [wire(m, (pre - fmt.frac_bits) + copies[k] - late_lsbs[k],
                              f"distance_{k}") for k in range(block)]
            (exponent,), distances = stage([exponent], distances)
            amounts = [shift_amount(m, distances[k], cap, f"shift_{k}") for k in range(block)]
            # the coarse shifter's copy of each amount as a one-hot select
            # (hw.shifting.coarse_one_hot): an AND-OR level instead of a mux tree
            selects = [coarse_one_hot(m, amounts[k], len(mags[k]) + pre, f"coarse_{k}")
                       for k in range(block)]
            saturating, sat_flags = [], []
        else:
            # fixed point: the bit length n of the OR of the magnitudes decides everything
            ored = mags[0]
            for mag in mags[1:]:
                ored = ored | mag
            ((ored,),) = stage([wire(m, ored, "magnitudes_or")])
            length = bit_length(m, ored, "block_bit_length")
            ((length,),) = stage([length])
            exponent = Signal(signed(fmt.exponent_bits), name="exponent")
            amount = Signal(amount_shape, name="shift")

            def shift_for(n):
                natural = n - 1 - self._frac_bits
                e = emin if n == 0 else min(max(natural, emin), emax)
                return e, min(max((pre - fmt.frac_bits) + e + self._frac_bits, 0), cap)

            # saturation (level 4): an element saturates when |v| >= 2**shift, which needs
            # shift < n (|v| < 2**n); the bit lengths n that allow it (a clamped exponent)
            # and their shifts are known here, so each such shift gets a flag from the table
            # and an element tests its bits at or above that shift (a constant position)
            shifts = [shift_for(n)[1] for n in range(self._in_width + 1)]
            saturating = sorted({a for n, a in enumerate(shifts) if a < n})
            flags = [Signal(name=f"saturating_{a}") for a in saturating]
            with m.Switch(length):
                for n in range(self._in_width + 1):
                    e, right = shift_for(n)
                    with m.Case(n):
                        m.d.comb += [exponent.eq(e), amount.eq(right)]
                        m.d.comb += [f.eq(right == a and right < n)
                                     for f, a in zip(flags, saturating)]
            amounts = [amount] * block
            sat_flags = flags * block
        # two copies of each element's shift amount (in fixed-point mode, of the one shared
        # amount): one drives the coarse shifter (with per-element exponents as a one-hot
        # select), the other the sticky mask or test, the saturation test and the fine
        # shift (each copy placed by its own consumers); in fixed-point mode, a copy per
        # element of the saturation flags
        coarse_copies = selects if per_element else amounts
        flat = pipe.after(next(level), [exponent] + coarse_copies + amounts + sat_flags,
                          replicas=True)
        nb = len(amounts)
        exponent, amounts, sticky_amounts = flat[0], flat[1:1 + nb], flat[1 + nb:1 + 2 * nb]
        sat_flags = flat[1 + 2 * nb:]

        # coarse shift and sticky; fine shift; rounding and saturation; sign
        coarse, sticky, fine_amounts, high = [], [], [], []
        w1 = fmt.width - 1
        for k in range(block):
            # |v| << pre at its exact width (a Value << int widens by 2**bits(pre) - 1)
            scaled = late_mags[k].shift_left(pre)
            if per_element:
                sticky_bit = sticky_amounts[k] > late_limits[k]
                parts = shift_right_round_parts(m, scaled, sticky_amounts[k], f"rounded_{k}",
                                                coarse_select=amounts[k],
                                                sticky=sticky_bit)
            else:
                parts = shift_right_round_parts(m, scaled, amounts[k], f"rounded_{k}",
                                                sticky_amounts[k])
            coarse.append(parts[0])
            sticky.append(parts[1])
            fine_amounts.append(parts[2])
            # saturation: (|v| << pre) >> amount >= 2**pre exactly when |v| >= 2**amount:
            # bit_length(|v|) > amount with per-element exponents (the bit lengths exist),
            # in fixed-point mode a flag of the shift table and |v|'s bits at or above that
            # flag's (constant) shift; so the shifter keeps only the bits the rounding reads
            # (the round bit and w1 bits, under the fine shift), not the OR of every higher
            # bit
            if per_element:
                high.append(wire(m, late_lengths[k] > sticky_amounts[k], f"saturates_{k}"))
            else:
                mine = sat_flags[k * len(saturating):(k + 1) * len(saturating)]
                terms = [f & late_mags[k][a:].any() for f, a in zip(mine, saturating)]
                high.append(wire(m, Cat(*terms).any() if terms else 0, f"saturates_{k}"))
            coarse[k] = wire(m, coarse[k][:w1 + (1 << FINE_SHIFT_BITS)], f"rounded_{k}_kept")
        (exponent,), coarse, sticky, fine_amounts, high = stage([exponent], coarse, sticky,
                                                                fine_amounts, high)
        with_round = [wire(m, c >> f, f"with_round_{k}")
                      for k, (c, f) in enumerate(zip(coarse, fine_amounts))]
        if not per_element:
            # the rounding's operands, sign-flipped, and its saturation test, registered with
            # the fine shift; then one add and a select
            parts = [self._signed_round_parts(m, with_round[k], sticky[k], high[k],
                                              late_negative[k], k)
                     for k in range(block)]
            (exponent,), *parts = stage([exponent], *zip(*parts))
            mantissas = []
            for k, (flipped, carry, overflow, negative) in enumerate(zip(*parts)):
                total = wire(m, (flipped + carry)[:fmt.width], f"signed_{k}")
                limit = Mux(negative, -fmt.mantissa_max, fmt.mantissa_max)
                mantissas.append(wire(m, Mux(overflow, limit, total.as_signed()),
                                      f"mantissa_{k}"))
            return self._finish(m, pipe, stage, exponent, mantissas)
        (exponent,), with_round, sticky, high = stage([exponent], with_round, sticky, high)
        saturated = []
        for k in range(block):
            # only the low width-1 bits get the rounding add: a higher bit (high) saturates,
            # and so does a carry out of the add
            floor, up = round_parts(m, with_round[k], sticky[k], fmt.rounding, f"rounded_{k}")
            low = wire(m, floor[:w1] + up, f"rounded_low_{k}")
            saturated.append(wire(m, Mux(high[k] | low[w1], fmt.mantissa_max, low[:w1]),
                                  f"saturated_{k}"))
        (exponent,), saturated = stage([exponent], saturated)
        mantissas = [Mux(late_negative[k], -saturated[k], saturated[k]) for k in range(block)]
        return self._finish(m, pipe, stage, exponent, mantissas)

    def _signed_round_parts(self, m: Module, with_round: Value, sticky: Value, high: Value,
                            negative: Value, k: int) -> tuple[Value, Value, Value, Value]:
        """Element ``k``'s rounding with its sign, as the operands of one add: ``(flipped,
        carry, overflow, negative)``, the signed mantissa being ``flipped + carry`` (in
        ``width`` bits) unless ``overflow`` saturates it. ``-(x + up) = ~x + (1 - up)`` in
        two's complement, so ``(x ^ s) + (up ^ s)`` (``s``: the sign, repeated) gives either
        sign; it saturates when a bit above the mantissa is set (``high``), or when ``x`` is
        all ones and rounds up."""
        fmt = self._format
        w1 = fmt.width - 1
        floor, up = round_parts(m, with_round, sticky, fmt.rounding, f"rounded_{k}")
        x = Value.cast(floor)[:w1]
        flipped = wire(m, Cat(x, Const(0, 1)) ^ negative.replicate(fmt.width), f"flipped_{k}")
        carry = wire(m, up ^ negative, f"round_carry_{k}")
        overflow = wire(m, high | (x.all() & up), f"saturates_{k}")
        return flipped, carry, overflow, negative

    def _finish(self, m, pipe, stage, exponent, mantissas):
        """The last level's registers (the output) and the output stream."""
        (exponent,), mantissas = stage([exponent], mantissas)
        pipe.connect(self.i, self.o)
        m.d.comb += self.o.payload.exponent.eq(exponent)
        for k, mantissa in enumerate(mantissas):
            m.d.comb += self.o.payload.mantissas[k].eq(mantissa)
        return m
