"""MXINT quantizer: a fixed-point vector to one MXINT block per cycle.

Input element ``i`` is the exact value ``values[i] * 2**lsb_i`` where
``lsb_i = -frac_bits`` (fixed-point mode) or, with ``lsb_width > 0``, a per-element
signed exponent carried beside the value (accumulator outputs, each with its own
alignment). The output is bit-exact with
``sw.mxint.quantize_exact(values, lsb, out_format)``:

1. exponent (level 0): ``e = floor(log2 max|v_i|)`` by leading-one detection on the
   OR of the magnitudes (fixed point) or a max tree of per-element
   ``bit_length - 1 + lsb_i``; clamped to the exponent range; an all-zero block
   gets the minimum exponent;
2. mantissas (level 1): ``round(|v_i| * 2**(lsb_i + width - 2 - e))`` by one
   right shift of ``|v_i| << (width-1)`` with round-half-even (or ties away),
   saturation to ``2**(width-1) - 1``, sign restored.

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
from hw.shifting import bit_length, shift_right_round, wire
from hw.unused import rejectable
from sw.mxint import MXIntFormat

__all__ = ["Quantizer", "MAX_STAGES", "MAX_IN_WIDTH"]

MAX_STAGES = 8
MAX_IN_WIDTH = 52  # sw.mxint.quantize_exact takes magnitudes below 2**53
LEVELS = 2


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

    def _block_exponent(self, m, mags, lsbs):
        """Unclamped ``floor(log2 max)`` of the block and whether it is all zero."""
        if not self._lsb_width:
            ored = mags[0]
            for mag in mags[1:]:
                ored = ored | mag
            ored = wire(m, ored, "magnitudes_or")
            length = bit_length(m, ored, "block_bit_length")
            natural = wire(m, (length - 1 - self._frac_bits).as_signed(), "natural_exponent")
            return natural, ored == 0
        lo = -2 ** (self._lsb_width - 1)
        hi = 2 ** (self._lsb_width - 1) - 1 + self._in_width - 1
        shape = signed_for_range(lo, hi)
        # (non-zero, floor exponent) pairs reduced by a max tree
        pairs = []
        for k, (mag, lsb) in enumerate(zip(mags, lsbs)):
            fe = Signal(shape, name=f"floor_exp_{k}")
            m.d.comb += fe.eq(bit_length(m, mag, f"bit_length_{k}") - 1 + lsb)
            pairs.append((mag != 0, fe))
        while len(pairs) > 1:
            merged = []
            for (n1, f1), (n2, f2) in zip(pairs[0::2], pairs[1::2]):
                take_first = n1 & (~n2 | (f1 >= f2))
                k = len(merged) + len(pairs)
                merged.append((wire(m, n1 | n2, f"max_nonzero_{k}"),
                               wire(m, Mux(take_first, f1, f2), f"max_exp_{k}")))
            pairs = merged
        nonzero, fe = pairs[0]
        return fe, ~nonzero

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        emin, emax = fmt.exponent_range
        block = fmt.block
        pipe = StallPipeline(m, levels=LEVELS, stages=self._stages, valid_in=self.i.valid,
                             name="quant")
        values = [self.i.payload.values[k] for k in range(block)]
        if self._lsb_width:
            lsbs = [self.i.payload.lsbs[k] for k in range(block)]
        else:
            lsbs = [-self._frac_bits] * block

        # level 0: shared exponent
        mags = [wire(m, abs(v), f"magnitude_{k}") for k, v in enumerate(values)]
        natural, all_zero = self._block_exponent(m, mags, lsbs)
        exponent = Signal(signed(fmt.exponent_bits), name="exponent")
        with m.If(all_zero | (natural < emin)):
            m.d.comb += exponent.eq(emin)
        with m.Elif(natural > emax):
            m.d.comb += exponent.eq(emax)
        with m.Else():
            m.d.comb += exponent.eq(natural)
        negative = [v < 0 for v in values]
        lsb_regs = lsbs if self._lsb_width else []
        live = pipe.after(0, mags + negative + lsb_regs + [exponent])
        mags, negative = live[:block], live[block:2 * block]
        if self._lsb_width:
            lsbs = live[2 * block:3 * block]
        exponent = live[-1]

        # level 1: one right shift of |v| << (width-1) per element
        pre = fmt.width - 1
        cap = self._in_width + pre + 1
        mantissas = []
        shared_shift = None
        for k in range(block):
            if self._lsb_width or shared_shift is None:
                amount = Signal(range(cap + 1), name=f"shift_{k}")
                right = wire(m, pre - (lsbs[k] + fmt.frac_bits - exponent), f"right_{k}")
                with m.If(right < 0):
                    m.d.comb += amount.eq(0)
                with m.Elif(right > cap):
                    m.d.comb += amount.eq(cap)
                with m.Else():
                    m.d.comb += amount.eq(right)
                shared_shift = amount
            q = shift_right_round(m, mags[k] << pre, shared_shift, fmt.rounding, f"rounded_{k}")
            q = wire(m, Mux(q > fmt.mantissa_max, fmt.mantissa_max, q), f"saturated_{k}")
            mantissas.append(Mux(negative[k], -q, q))
        live = pipe.after(1, mantissas + [exponent])

        pipe.connect(self.i, self.o)
        m.d.comb += self.o.payload.exponent.eq(live[-1])
        for k in range(block):
            m.d.comb += self.o.payload.mantissas[k].eq(live[k])
        return m
