"""LLM.int8() activation quantizer: binary16 activations to int8 codes by the reference's
exact rounding (``sw.llm_int8`` step 4)::

    r    = fl32(fl32(1 / s_x) * 127)               (0 when s_x = 0)
    code = round_half_even(fl32(x * r))             (0 in an outlier column)

``s_x`` is a binary16 value ``m * 2**E`` (``m`` in [1, 2) with 10 fraction bits ``f``,
subnormals normalised), so ``fl32(1/s_x) = fl32(1/m) * 2**-E`` and
``r = fl32(fl32(1/m) * 127) * 2**-E`` exactly (every value stays a binary32 normal): a
1024-entry table of ``fl32(fl32(1/m) * 127)`` (in [63.5, 127]: 23 fraction bits and one
exponent bit) indexed by ``f``, its exponent lowered by ``E`` (:func:`reciprocal_table`).

The ``scale`` port (the 15-bit magnitude of ``s_x``) is held while a token's activations
flow; ``r`` and ``s_x`` as binary32 (``scale32``, for the dequantization) follow it
:attr:`Int8Quantizer.scale_latency` cycles later: the leading one, normalise, read the
table, adjust the exponent (the table's read data passes :data:`TABLE_REGISTERS` registers
first). Per activation (free-running, one per cycle, :attr:`Int8Quantizer.latency`):
``x`` to binary32 (exact; two levels: the leading one of a subnormal, the shift),
:class:`hw.fp.fp32_mul.FP32Mul` by ``r``, then the round to an integer (three levels: the
shift distances, the alignment shift with its round and sticky bits, then the increment
and the sign, ``-(k + u) = ~k + (1 - u)`` beside ``k + u``): for
``|fl32(x r)| <= 127 (1 + 2**-24)**3 < 127.5`` the binary32 exponent ``e`` is at most 6,
below ``-1`` the code is 0, else the 24-bit significand is shifted right by ``23 - e``
(17..24 bits) and rounded to nearest even.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.fp.fp32_mul import FP32Mul
from hw.pipeline import Pipeline, register_delay
from hw.shifting import bit_length, wire
from hw.unused import owned, rejectable

__all__ = ["Int8Quantizer", "reciprocal_table", "SCALE_LATENCY"]

# The table is a block RAM on ECP5 (1024 x 24 bits). Its read data goes into a register with
# no logic between: the ECP5 place-and-route flow moves that register into the block RAM's
# output register (hw.synth.ecp5_outreg; without it the data comes 5.61 ns after the clock,
# docs/synth.md, "Block RAM output registers").
TABLE_REGISTERS = 1
# leading one | normalise | table read | table registers | exponent
SCALE_LATENCY = 3 + TABLE_REGISTERS + 1
CONVERT_LEVELS = 2         # binary16 -> binary32: leading one, shift
ROUND_LEVELS = 3           # shift distances | alignment shift, round bits | increment, sign


def reciprocal_table() -> np.ndarray:
    """int64 ``(1024,)``: entry ``f`` holds ``fl32(fl32(1/m) * 127)`` for ``m = 1 + f/1024``
    as 24 bits: the binary32 fraction (23 bits) and, above it, 1 when the biased exponent
    is 133 (the value is >= 64) rather than 132."""
    m = (1.0 + np.arange(1024) / 1024.0).astype(np.float32)   # exact
    r = (np.float32(1) / m).astype(np.float32) * np.float32(127)
    bits = r.astype(np.float32).view(np.uint32).astype(np.int64)
    exponent = bits >> 23
    assert set(np.unique(exponent)) <= {132, 133}
    return ((exponent - 132) << 23) | (bits & ((1 << 23) - 1))


class Int8Quantizer(wiring.Component):
    """Ports: ``scale`` (In ``unsigned(15)``, the magnitude of ``s_x``), ``scale32`` (Out
    32: ``s_x`` as binary32), ``i`` (stream of ``{"x": unsigned(16), "zero": 1}``; always
    ready) and ``o`` (stream of ``{"code": signed(8)}``; never held back: ``o.ready`` is
    ignored). ``zero`` marks an outlier column (code 0).

    Parameters (keyword-only): ``mul_stages`` (the binary32 multiplier's stages, default
    one per level). Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, mul_stages: int | None = None):
        with rejectable(self):
            self._mul = FP32Mul(stages=mul_stages, backpressure=False)
            owned(self._mul)
        super().__init__({
            "scale": In(15), "scale32": Out(32),
            "i": In(stream.Signature(data.StructLayout({"x": unsigned(16), "zero": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"code": signed(8)}))),
        })

    @property
    def scale_latency(self) -> int:
        """Cycles from a new ``scale`` to ``r`` and ``scale32`` following it."""
        return SCALE_LATENCY

    @property
    def latency(self) -> int:
        """Cycles from an accepted activation to its code."""
        return CONVERT_LEVELS + self._mul.latency + ROUND_LEVELS

    def elaborate(self, platform):
        m = Module()
        # --- r from s_x: normalise, table, exponent ------------------------------------
        e5, f = self.scale[10:15], self.scale[:10]
        sub = Signal(name="scale_subnormal")
        length = Signal(4, name="scale_length")
        s = Signal(15, name="scale_in")
        m.d.sync += [sub.eq(e5 == 0), length.eq(bit_length(m, f, "scale_bits")),
                     s.eq(self.scale)]
        e5, f = s[10:15], s[:10]
        fraction = Signal(10, name="scale_fraction")
        exponent = Signal(8, name="scale_exponent")      # biased binary32 exponent of s_x
        zero = Signal(name="scale_zero")
        lead = wire(m, (11 - length)[:4], "scale_lead")              # 1..11 for f != 0
        m.d.sync += [fraction.eq(Mux(sub, (f << lead)[:10], f)),
                     exponent.eq(Mux(sub, length + 102, e5 + 112)), zero.eq(s == 0)]
        m.submodules.reciprocals = rom = Memory(shape=unsigned(24), depth=1024,
                                                init=[int(v) for v in reciprocal_table()])
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(fraction), rd.en.eq(1)]
        held = register_delay(m, Cat(exponent, fraction, zero), TABLE_REGISTERS + 1,
                              "scale_held")
        exponent2, fraction2, zero2 = held[:8], held[8:18], held[18]
        table = register_delay(m, rd.data, TABLE_REGISTERS, "scale_table")
        r = Signal(32, name="r")
        r_exponent = wire(m, 259 + table[23] - exponent2, "r_exponent")
        m.d.sync += [r.eq(Mux(zero2, 0, Cat(table[:23], r_exponent[:8], Const(0, 1)))),
                     self.scale32.eq(Mux(zero2, 0, Cat(Const(0, 13), fraction2, exponent2,
                                                       Const(0, 1))))]

        # --- activations: to binary32, times r, to the nearest integer -----------------
        m.d.comb += self.i.ready.eq(1)
        conv = Pipeline(m, levels=CONVERT_LEVELS, stages=CONVERT_LEVELS, name="convert",
                        valid_in=self.i.valid, backpressure=False)
        x = self.i.payload.x
        xf = x[:10]
        xsub = wire(m, x[10:15] == 0, "x_subnormal")
        xlen = bit_length(m, xf, "x_length")
        x, xsub, xlen, xzero = conv.after(0, [x, xsub, xlen, self.i.payload.zero])
        xf = x[:10]
        xlead = wire(m, (11 - xlen)[:4], "x_lead")
        x32 = Mux((xf == 0) & xsub, Cat(Const(0, 31), x[15]),
                  Cat(Const(0, 13), Mux(xsub, (xf << xlead)[:10], xf),
                      Mux(xsub, xlen + 102, x[10:15] + 112)[:8], x[15]))
        x32, xzero = conv.after(1, [wire(m, x32, "x32"), xzero])

        m.submodules.mul = mul = self._mul
        m.d.comb += [mul.i.valid.eq(conv.valid), mul.i.payload.a.eq(x32),
                     mul.i.payload.b.eq(r), mul.o.ready.eq(1)]
        xzero_late = register_delay(m, xzero, mul.latency, "zero", reset_less=False)

        rnd = Pipeline(m, levels=ROUND_LEVELS, stages=ROUND_LEVELS, name="round",
                       valid_in=mul.o.valid, backpressure=False)
        v = mul.o.payload.y
        e = v[23:31]
        # for e in 126..133: shift 23 - (e - 127) = 17..24, round bit at shift - 1
        shift = wire(m, (Const(150, 9) - e)[:5], "round_shift")
        position = wire(m, (Const(149, 9) - e)[:5], "round_position")
        lift = wire(m, (e - 125)[:4], "round_lift")                # 25 - shift
        small = wire(m, e < 126, "round_small")                  # |v| < 0.5
        significand, shift, position, lift, small, sign, zero_o = rnd.after(
            0, [Cat(v[:23], Const(1, 1)), shift, position, lift, small, v[31], xzero_late])
        kept = wire(m, (significand >> shift)[:8], "round_kept")
        round_bit = wire(m, (significand >> position)[0], "round_bit")
        below = wire(m, (Cat(significand, Const(0, 1)) << lift)[:25], "round_below")
        sticky = wire(m, below[:24].any(), "round_sticky")
        kept, round_bit, sticky, small, sign, zero_o = rnd.after(
            1, [kept, round_bit, sticky, small, sign, zero_o])
        up = round_bit & (sticky | kept[0])
        # -(kept + up) = ~kept + (1 - up) (mod 2**8): both signs one adder each, beside
        # each other, not the increment and then the negation in series
        magnitude = wire(m, (kept + up)[:8], "round_magnitude")
        negated = wire(m, (~kept + ~up)[:8], "round_negated")
        code = Mux(small | zero_o, 0, Mux(sign, negated, magnitude))
        (code,) = rnd.after(2, [wire(m, code[:8].as_signed(), "code")])
        m.d.comb += [self.o.valid.eq(rnd.valid), self.o.payload.code.eq(code)]
        return m
