"""MXINT quantizer: a fixed-point vector to one MXINT block per cycle.

Input element ``i`` is the exact value ``values[i] * 2**lsb_i`` where
``lsb_i = -frac_bits`` (fixed-point mode) or, with ``lsb_width > 0``, a per-element
signed exponent carried beside the value (accumulator outputs, each with its own
alignment). The output is bit-exact with
``sw.mxint.quantize_exact(values, lsb, out_format)``. The datapath is a chain of
levels (docs/design.md, "Hardware shape"); ``stages`` registers are placed over them
by :func:`hw.pipeline.register_counts` using the delay estimates below:

1. magnitudes ``|v_i|`` and signs;
2. per element (``lsb_width > 0``): ``floor(log2 |v_i|) = bit_length - 1 + lsb_i``;
3. the block's ``floor(log2 max|v_i|)``: leading-one detection on the OR of the
   magnitudes (fixed point) or a max tree of the per-element exponents, one level per
   halving;
4. the shared exponent clamped to the exponent range (an all-zero block gets the
   minimum), and each element's right shift of ``|v_i| << (width-1)``;
5. the coarse part of that shift (multiples of ``2**FINE_SHIFT_BITS``) and the sticky
   bit of everything shifted out;
6. the fine part, the round bit;
7. rounding (half to even, or ties away), saturation to ``2**(width-1) - 1``, sign.

Left shifts of ``width - 1`` or more can only come from a clamped exponent and
always saturate a non-zero element, so ``|v| << (width-1)`` covers every case;
right shifts beyond ``in_width + width`` give 0 and are capped there.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_int, signed_for_range
from hw.pipeline import StallPipeline
from hw.shifting import bit_length, round_shifted, shift_right_round_parts, wire
from hw.unused import rejectable
from sw.mxint import MXIntFormat

__all__ = ["Quantizer", "MAX_STAGES", "MAX_IN_WIDTH"]

MAX_STAGES = 8
MAX_IN_WIDTH = 52  # sw.mxint.quantize_exact takes magnitudes below 2**53


class Quantizer(wiring.Component):
    """Ports: ``i`` (stream of ``{"values": ArrayLayout(signed(in_width), block)}``, plus
    ``"lsbs": ArrayLayout(signed(lsb_width), block)`` when ``lsb_width > 0``) and ``o``
    (stream of the MXINT block layout of ``out_format``).

    Parameters (keyword-only): ``out_format`` (:class:`sw.mxint.MXIntFormat`, flavour
    "ocp"; its ``block`` is the vector length and its ``rounding`` the rounding),
    ``in_width`` 2..``MAX_IN_WIDTH`` input bits, ``frac_bits`` -64..64 (fixed-point
    mode), ``lsb_width`` 0..16 (0: fixed point; else per-element exponents of that
    many bits), ``stages`` 1..``MAX_STAGES`` (= :attr:`latency`). Raises ``ValueError``
    / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, out_format: MXIntFormat = MXIntFormat(), in_width: int = 16,
                 frac_bits: int = 8, lsb_width: int = 0, stages: int = 1):
        with rejectable(self):
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

    def _levels(self) -> list[float]:
        """Estimated delay (LUT levels) of each pipeline level, in order."""
        tree = (self._format.block - 1).bit_length()  # log2(block) halvings
        if self._lsb_width:
            head = [2.0, 3.0] + [2.5] * tree          # abs; bit length + lsb; max tree
        else:
            head = [2.0, 1.0 + tree / 2 + 2.0]          # abs; OR tree + leading one
        return head + [3.0, 2.5, 2.0, 3.0]             # clamp+shift; coarse; fine; round

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        emin, emax = fmt.exponent_range
        block = fmt.block
        delays = self._levels()
        pipe = StallPipeline(m, levels=len(delays), stages=self._stages, valid_in=self.i.valid,
                             name="quant", delays=delays)
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

        # 1: magnitudes and signs
        mags = [wire(m, abs(v), f"magnitude_{k}") for k, v in enumerate(values)]
        negative = [v < 0 for v in values]
        mags, negative, lsbs = stage(mags, negative, lsbs)

        # 2-3: floor(log2 max |v|) of the block, and whether it is all zero
        if per_element:
            lo = -2 ** (self._lsb_width - 1)
            hi = 2 ** (self._lsb_width - 1) - 1 + self._in_width - 1
            shape = signed_for_range(lo, hi)
            pairs = []
            for k, (mag, lsb) in enumerate(zip(mags, lsbs)):
                fe = Signal(shape, name=f"floor_exp_{k}")
                m.d.comb += fe.eq(bit_length(m, mag, f"bit_length_{k}") - 1 + lsb)
                pairs.append((mag != 0, fe))
            nz, fes, mags, negative, lsbs = stage([p[0] for p in pairs], [p[1] for p in pairs],
                                                  mags, negative, lsbs)
            pairs = list(zip(nz, fes))
            while len(pairs) > 1:
                merged = []
                for (n1, f1), (n2, f2) in zip(pairs[0::2], pairs[1::2]):
                    take_first = n1 & (~n2 | (f1 >= f2))
                    k = len(merged) + len(pairs)
                    merged.append((wire(m, n1 | n2, f"max_nonzero_{k}"),
                                   wire(m, Mux(take_first, f1, f2), f"max_exp_{k}")))
                nz, fes, mags, negative, lsbs = stage([p[0] for p in merged],
                                                      [p[1] for p in merged], mags, negative, lsbs)
                pairs = list(zip(nz, fes))
            natural, all_zero = pairs[0][1], ~pairs[0][0]
        else:
            ored = mags[0]
            for mag in mags[1:]:
                ored = ored | mag
            ored = wire(m, ored, "magnitudes_or")
            length = bit_length(m, ored, "block_bit_length")
            natural = wire(m, (length - 1 - self._frac_bits).as_signed(), "natural_exponent")
            all_zero = ored == 0
            (natural, all_zero), mags, negative = stage([natural, all_zero], mags, negative)

        # 4: the clamped shared exponent and each element's right shift
        exponent = Signal(signed(fmt.exponent_bits), name="exponent")
        with m.If(all_zero | (natural < emin)):
            m.d.comb += exponent.eq(emin)
        with m.Elif(natural > emax):
            m.d.comb += exponent.eq(emax)
        with m.Else():
            m.d.comb += exponent.eq(natural)
        pre = fmt.width - 1
        cap = self._in_width + pre + 1
        amounts = []
        for k in range(block if per_element else 1):
            lsb = lsbs[k] if per_element else -self._frac_bits
            amount = Signal(range(cap + 1), name=f"shift_{k}")
            right = wire(m, pre - (lsb + fmt.frac_bits - exponent), f"right_{k}")
            with m.If(right < 0):
                m.d.comb += amount.eq(0)
            with m.Elif(right > cap):
                m.d.comb += amount.eq(cap)
            with m.Else():
                m.d.comb += amount.eq(right)
            amounts.append(amount)
        (exponent,), amounts, mags, negative = stage([exponent], amounts, mags, negative)
        if not per_element:
            amounts = amounts * block

        # 5: coarse shift and sticky; 6: fine shift; 7: round, saturate, sign
        coarse, sticky, fine_amounts = [], [], []
        for k in range(block):
            parts = shift_right_round_parts(m, mags[k] << pre, amounts[k], f"rounded_{k}")
            coarse.append(parts[0])
            sticky.append(parts[1])
            fine_amounts.append(parts[2])
        (exponent,), coarse, sticky, fine_amounts, negative = stage(
            [exponent], coarse, sticky, fine_amounts, negative)
        with_round = [wire(m, c >> f, f"with_round_{k}")
                      for k, (c, f) in enumerate(zip(coarse, fine_amounts))]
        (exponent,), with_round, sticky, negative = stage([exponent], with_round, sticky,
                                                          negative)
        mantissas = []
        for k in range(block):
            q = round_shifted(m, with_round[k], sticky[k], fmt.rounding, f"rounded_{k}")
            q = wire(m, Mux(q > fmt.mantissa_max, fmt.mantissa_max, q), f"saturated_{k}")
            mantissas.append(Mux(negative[k], -q, q))
        (exponent,), mantissas = stage([exponent], mantissas)

        pipe.connect(self.i, self.o)
        m.d.comb += self.o.payload.exponent.eq(exponent)
        for k in range(block):
            m.d.comb += self.o.payload.mantissas[k].eq(mantissas[k])
        return m
