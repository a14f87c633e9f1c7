"""LLM.int8() int path: ``P`` lanes of int8 x int8 with an exact integer sum per output,
then the binary32 dequantization of ``sw.llm_int8`` step 6 (and the bias of step 8)::

    C     = sum_j x_i8[j] * w_i8[i, j]                       (exact; acc_width bits)
    Y_int = fl32(fl32(fl32(C) * s_x) * w_scale[i])           w_scale = fl32(s_w / 127**2)
    Y_b   = fl32(Y_int + b[i])                               (with a bias)

Items ``{x, w[P], first, last}``: one activation code against the codes of ``P``
outputs (one *group*), ``first`` / ``last`` marking the group's first and last column.
The item is registered twice first: once as it arrives (the activation code comes from a
memory read whose logic leaves no room for a route across the lanes in the same cycle on
ECP5), then into a copy of the code per lane; lane ``p`` then multiplies the
code by each 2-bit piece of its weight (one register), adds them in pairs (one
register), the pairs into the product (one register) and accumulates (one register);
on ``last`` the ``P`` sums go to a result bank that a shift register sends, one output
per cycle, through
:class:`~hw.fp.int32_to_fp32.Int32ToFP32`, two :class:`~hw.fp.fp32_mul.FP32Mul` (by
``s_x``, the ``sx`` port, then by the output's ``w_scale``) and, with a bias,
:class:`~hw.fp.fp32_add.FP32Add`. So one dequantization lane serves ``P`` MAC lanes:
a group has at least ``d_in >= P`` items, and the bank is empty again before the next
group's sums. The per-output constants come on the ``c`` stream, in output order (one
FIFO each, read when the output reaches its unit).

Everything runs free: ``i`` is always ready and ``o`` is never held back.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dot_array import product_terms
from hw.fifo import PrefetchFIFO
from hw.fp.fp32_add import FP32Add
from hw.fp.fp32_mul import FP32Mul
from hw.fp.int32_to_fp32 import Int32ToFP32
from hw.params import check_int
from hw.pipeline import REPLICA_TAG
from hw.fp_accumulate import owned_list
from hw.unused import rejectable
from sw.llm_int8 import MAX_D_IN, Q_MAX

__all__ = ["Int8IntPath", "MAX_LANES", "acc_width"]

MAX_LANES = 256
# arrival register, input register (a copy of x per lane), partial products register (x
# times each 2-bit piece of w), pair sums register, product register, sum register: an
# 8 x 8 product in one level took 10.5 ns on ECP5, and the route from a layer's code
# memory to the lanes' copies 4.2 to 5.7 ns after the memory's read (docs/synth.md)
MAC_LATENCY = 6
# s_x is a non-negative binary16 value: as binary32, its 13 low fraction bits and its sign
# are 0 (sw.llm_int8 step 3)
SX_LOW_ZEROS = 13


def acc_width(d_in: int) -> int:
    """Signed bits of an exact sum of ``d_in`` products of codes in -127..127."""
    return (Q_MAX * Q_MAX * d_in).bit_length() + 1


class Int8IntPath(wiring.Component):
    """Ports: ``i`` (stream of ``{"x": signed(8), "w": ArrayLayout(signed(8), lanes),
    "first": 1, "last": 1}``), ``sx`` (In 32: ``s_x`` as binary32, held while a group's
    outputs are dequantized; a non-negative binary16 value, whose 13 low fraction bits and
    sign are 0 and are not read), ``c`` (stream of ``{"scale": unsigned(32)}`` and, with
    ``bias``, ``"bias": unsigned(32)``: binary32 patterns, one per output in order) and
    ``o`` (stream of ``{"y": unsigned(32)}``).

    Parameters (keyword-only): ``lanes`` (1..256), ``d_in`` (``lanes``..``MAX_D_IN``: the
    columns per group, which sizes the sums), ``bias`` (add a bias), ``constants`` (entries
    of each constants FIFO, at least 2 * ``lanes``; default :meth:`constants_depth`).
    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, lanes: int = 16, d_in: int = 64, bias: bool = False,
                 constants: int | None = None):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._d_in = check_int("d_in", d_in, lanes, MAX_D_IN)
            if bias not in (True, False, 0, 1):
                raise TypeError(f"bias must be a bool; got {bias!r}")
            self._bias = bool(bias)
            self._conv, self._mul_x, self._mul_w = owned_list(
                [Int32ToFP32(backpressure=False), FP32Mul(backpressure=False),
                 FP32Mul(backpressure=False)])
            self._add = owned_list([FP32Add(backpressure=False)])[0] if bias else None
            depth = self.constants_depth() if constants is None else constants
            self._depth = check_int("constants", depth, 2 * lanes, 1 << 16)
        cfields = {"scale": unsigned(32)}
        if bias:
            cfields["bias"] = unsigned(32)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": signed(8), "w": data.ArrayLayout(signed(8), lanes), "first": 1,
                "last": 1}))),
            "sx": In(32),
            "c": In(stream.Signature(data.StructLayout(cfields))),
            "o": Out(stream.Signature(data.StructLayout({"y": unsigned(32)}))),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def bias(self) -> bool:
        return self._bias

    @property
    def acc_width(self) -> int:
        return acc_width(self._d_in)

    @property
    def dequant_latency(self) -> int:
        """Cycles from an output entering the conversion to its result on ``o``."""
        return (self._conv.latency + self._mul_x.latency + self._mul_w.latency
                + (self._add.latency if self._add else 0))

    def output_cycle(self, lane: int) -> int:
        """Cycles from a group's ``last`` item to the result of its lane ``lane`` on ``o``:
        the MAC registers, then one lane per cycle into the dequantization."""
        return MAC_LATENCY + lane + self.dequant_latency

    def constants_depth(self) -> int:
        """Enough FIFO entries for every order of stalls: a group's constants wait at most
        until its last output reaches the scale (or bias) unit, while later groups, each at
        least ``d_in`` items long, write theirs."""
        lag = MAC_LATENCY + self._lanes + self.dequant_latency
        return self._lanes * (2 + math.ceil(lag / self._d_in))

    def elaborate(self, platform):
        m = Module()
        P, W = self._lanes, self.acc_width
        m.d.comb += self.i.ready.eq(1)

        # the item registered, then the MAC lanes: product register, sum register; on
        # last the sums go to the bank
        valid0 = Signal(name="input_valid")
        # the item as it arrives, one register with no fan-out but the next level's (its
        # source, e.g. llm-int8-linear's code memory, reaches it through its read logic)
        arrived = Signal.like(self.i.payload, name="input_arrived", reset_less=True)
        arrived_valid = Signal(name="input_arrived_valid")
        m.d.sync += [arrived_valid.eq(self.i.valid), arrived.eq(self.i.payload)]
        item = Signal.like(self.i.payload, name="input_item", reset_less=True)
        m.d.sync += [valid0.eq(arrived_valid), item.eq(arrived)]
        # every lane multiplies the same activation code: each lane registers its own copy
        # (named as a replica, hw.pipeline.REPLICA_TAG, so synthesis keeps them apart), and
        # its own copy of the first flag its accumulator reads; one shared register
        # drove all the lanes across the device (6.7 ns of routing on ECP5, docs/synth.md)
        xs = [Signal.like(arrived.x, name=f"input_x_{REPLICA_TAG}_{p}", reset_less=True)
              for p in range(P)]
        m.d.sync += [x.eq(arrived.x) for x in xs]
        half_valid = Signal(name="half_products_valid")
        half_last = Signal(name="half_products_last")
        half_first = Signal(name="half_products_first")
        m.d.sync += [half_valid.eq(valid0), half_last.eq(item.last), half_first.eq(item.first)]
        pair_valid = Signal(name="pair_sums_valid")
        pair_last = Signal(name="pair_sums_last")
        pair_first = Signal(name="pair_sums_first")
        m.d.sync += [pair_valid.eq(half_valid), pair_last.eq(half_last),
                     pair_first.eq(half_first)]
        valid1 = Signal(name="product_valid")
        last1 = Signal(name="product_last")
        firsts = [Signal(name=f"product_first_{REPLICA_TAG}_{p}") for p in range(P)]
        m.d.sync += [valid1.eq(pair_valid), last1.eq(pair_last),
                     *(f.eq(pair_first) for f in firsts)]
        sums = [Signal(signed(W), name=f"sum_{p}", reset_less=True) for p in range(P)]
        bank = [Signal(signed(W), name=f"bank_{p}", reset_less=True) for p in range(P)]
        left = Signal(range(P + 1), name="bank_left")
        load = Signal(name="bank_load")
        m.d.comb += load.eq(valid1 & last1)
        # each lane's enables from registers of its own (replicas): the sum's ``valid1``,
        # the bank's load (``valid1 & last1``) and its shift (``left != 0``), each a copy
        # of the shared value computed a cycle early; one shared ``valid & last`` into every
        # lane's bank register was a 5.7 ns route on ECP5 (docs/synth.md)
        lane_valid = [Signal(name=f"product_valid_{REPLICA_TAG}_{p}") for p in range(P)]
        lane_load = [Signal(name=f"bank_load_{REPLICA_TAG}_{p}") for p in range(P)]
        lane_shift = [Signal(name=f"bank_shift_{REPLICA_TAG}_{p}") for p in range(P)]
        for p in range(P):
            m.d.sync += [lane_valid[p].eq(pair_valid), lane_load[p].eq(pair_valid & pair_last),
                         lane_shift[p].eq(load | (left > 1))]
        for p in range(P):
            # x * w as four terms, x times each two-bit piece of w (an AND row and one
            # adder each, hw.dot_array.product_terms), then the sums of two pairs, then
            # their sum, each a register: an 8 x 4 product in one level was three LUT levels
            # and a carry chain (8.4 ns on ECP5), the four terms' sum in one level two
            # carry chains in series (7.1 ns, docs/synth.md)
            terms = []
            for j, term in enumerate(product_terms(xs[p], item.w[p])):
                reg = Signal(signed(16), name=f"product_term_{j}_{p}", reset_less=True)
                m.d.sync += reg.eq(term)
                terms.append(reg)
            pairs = [Signal(signed(16), name=f"product_pair_{k}_{p}", reset_less=True)
                     for k in range(2)]
            m.d.sync += [pairs[0].eq(terms[0] + terms[1]), pairs[1].eq(terms[2] + terms[3])]
            product = Signal(signed(16), name=f"product_{p}", reset_less=True)
            m.d.sync += product.eq(pairs[0] + pairs[1])
            new = Signal(signed(W), name=f"sum_new_{p}")
            m.d.comb += new.eq(Mux(firsts[p], 0, sums[p]) + product)
            with m.If(lane_valid[p]):
                m.d.sync += sums[p].eq(new)
            with m.If(lane_load[p]):
                m.d.sync += bank[p].eq(new)
            with m.Elif(lane_shift[p]):
                m.d.sync += bank[p].eq(bank[p + 1] if p + 1 < P else 0)
        with m.If(load):
            m.d.sync += left.eq(P)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)

        # the dequantization lane; s_x is a binary16 value: only its 18 bits are read, so
        # the multiplier by s_x is 24 x 11 bits (hw.int8_quantizer.Int8Quantizer.scale32)
        sx = Cat(Const(0, SX_LOW_ZEROS), self.sx[SX_LOW_ZEROS:31], Const(0, 1))
        m.submodules.to_fp32 = conv = self._conv
        m.submodules.times_sx = mul_x = self._mul_x
        m.submodules.times_scale = mul_w = self._mul_w
        # the constants FIFOs: ready and read data from registers (hw.fifo.PrefetchFIFO)
        m.submodules.scales = scales = PrefetchFIFO(shape=32, depth=self._depth)
        fifos = [scales]
        if self._add is not None:
            m.submodules.biases = biases = PrefetchFIFO(shape=32, depth=self._depth)
            fifos.append(biases)
            m.d.comb += biases.i.payload.eq(self.c.payload.bias)
        ready = scales.i.ready if len(fifos) == 1 else scales.i.ready & biases.i.ready
        m.d.comb += [self.c.ready.eq(ready), scales.i.payload.eq(self.c.payload.scale)]
        m.d.comb += [f.i.valid.eq(self.c.valid & ready) for f in fifos]
        m.d.comb += [conv.i.valid.eq(left != 0), conv.i.payload.a.eq(bank[0]),
                     conv.o.ready.eq(1),
                     mul_x.i.valid.eq(conv.o.valid), mul_x.i.payload.a.eq(conv.o.payload.y),
                     mul_x.i.payload.b.eq(sx), mul_x.o.ready.eq(1),
                     mul_w.i.valid.eq(mul_x.o.valid), mul_w.i.payload.a.eq(mul_x.o.payload.y),
                     mul_w.i.payload.b.eq(scales.o.payload), scales.o.ready.eq(mul_x.o.valid),
                     mul_w.o.ready.eq(1)]
        last_unit = mul_w
        if self._add is not None:
            m.submodules.plus_bias = add = self._add
            m.d.comb += [add.i.valid.eq(mul_w.o.valid), add.i.payload.a.eq(mul_w.o.payload.y),
                         add.i.payload.b.eq(biases.o.payload), biases.o.ready.eq(mul_w.o.valid),
                         add.o.ready.eq(1)]
            last_unit = add
        m.d.comb += [self.o.valid.eq(last_unit.o.valid), self.o.payload.y.eq(last_unit.o.payload.y)]
        return m
