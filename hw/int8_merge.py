"""LLM.int8() merge: the int path's output plus the outlier path's sum, and the output
format (``sw.llm_int8`` step 8)::

    Y = fl32(Y_b + acc)            then fl16(Y) when the output is binary16

with the operands registered first (they come from block-RAM reads, whose clock-to-out
on ECP5 leaves no room for adder logic in the same cycle: the critical path of the first
place and route), then :class:`~hw.fp.fp32_add.FP32Add` and
:class:`~hw.fp.fp32_to_fp16.FP32ToFP16` running free, followed by a FIFO whose free space
(credit, as :class:`hw.pipeline.Pipeline` does it) keeps the input ready only while an
item can be held: the output may be held back at any time and nothing stalls the units.
An item taken in cycle ``c`` is written into the FIFO ``L`` cycles later (``L`` the
operand register and the units' latency) and can be read at ``c + L + 1``, so ``L + 2``
entries keep one item per cycle flowing.

The FIFO's items leave through a two-entry skid buffer
(:class:`hw.stream_register.StreamRegister` with ``skid=True``), so ``o.valid`` is a
flip-flop and ``o.ready`` reaches only the buffer's registers: the FIFO's level, through
``o.valid``, the consumer's ready and back into the credit count, was
``llm-int8-linear``'s clock path on ECP5 (docs/synth.md). An item leaves at
``c + L + 2`` (:attr:`Int8Merge.latency`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.fp.fp32_add import FP32Add
from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp_accumulate import owned_list
from hw.pipeline import next_below
from hw.stream_register import LATENCY as SKID_LATENCY, StreamRegister
from hw.unused import rejectable

__all__ = ["Int8Merge", "INPUT_LEVELS"]

INPUT_LEVELS = 1           # the operands' register (they come from block-RAM reads)


class Int8Merge(wiring.Component):
    """Ports: ``i`` (stream of ``{"y": unsigned(32), "acc": unsigned(32)}``, binary32
    patterns) and ``o`` (stream of ``{"y": unsigned(16 or 32)}``).

    Parameters (keyword-only): ``out_fp16`` (round to binary16), ``add_stages``,
    ``out_stages`` (the units' stages, default one per level). Raises ``ValueError`` /
    ``TypeError`` naming the parameter.
    """

    def __init__(self, *, out_fp16: bool = True, add_stages: int | None = None,
                 out_stages: int | None = None):
        with rejectable(self):
            if out_fp16 not in (True, False, 0, 1):
                raise TypeError(f"out_fp16 must be a bool; got {out_fp16!r}")
            self._add = owned_list([FP32Add(stages=add_stages, backpressure=False)])[0]
            self._conv = owned_list([FP32ToFP16(stages=out_stages, backpressure=False)])[0] \
                if out_fp16 else None
        self._width = 16 if out_fp16 else 32
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"y": unsigned(32),
                                                        "acc": unsigned(32)}))),
            "o": Out(stream.Signature(data.StructLayout({"y": unsigned(self._width)}))),
        })

    @property
    def out_fp16(self) -> bool:
        return self._conv is not None

    @property
    def latency(self) -> int:
        """Cycles from an accepted item to its result on ``o`` (through the FIFO and the
        skid buffer)."""
        return self._fifo_latency + SKID_LATENCY

    @property
    def _fifo_latency(self) -> int:
        """Cycles from an accepted item to its result readable from the FIFO."""
        return INPUT_LEVELS + self._add.latency + (self._conv.latency if self._conv else 0) + 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.add = add = self._add
        take = self.i.valid & self.i.ready
        # the operands come straight from block-RAM reads (the int results, the fp sums):
        # registered first, so no adder logic follows a RAM's clock-to-out
        valid_in = Signal(name="operands_valid")
        y_in = Signal(32, name="operand_y")
        acc_in = Signal(32, name="operand_acc")
        m.d.sync += [valid_in.eq(take), y_in.eq(self.i.payload.y),
                     acc_in.eq(self.i.payload.acc)]
        m.d.comb += [add.i.valid.eq(valid_in), add.i.payload.a.eq(y_in),
                     add.i.payload.b.eq(acc_in), add.o.ready.eq(1)]
        last = add
        if self._conv is not None:
            m.submodules.to_fp16 = conv = self._conv
            m.d.comb += [conv.i.valid.eq(add.o.valid), conv.i.payload.a.eq(add.o.payload.y),
                         conv.o.ready.eq(1)]
            last = conv
        depth = self._fifo_latency + 1
        m.submodules.fifo = fifo = SyncFIFO(width=self._width, depth=depth)
        m.d.comb += [fifo.w_en.eq(last.o.valid), fifo.w_data.eq(last.o.payload.y)]
        inside = Signal(range(depth + 1), name="inside")
        # the input's ready is a register, "inside < depth" for the next cycle, from
        # compares of the count before the step (hw.pipeline.next_below): the count's
        # compare into the layer's merge take was llm-int8-linear's clock path on ECP5
        room = Signal(name="room", init=1)
        m.submodules.out = out = StreamRegister(shape=self.o.payload.shape(), skid=True)
        given = fifo.r_rdy & out.i.ready
        m.d.sync += [inside.eq(inside + take - given),
                     room.eq(next_below(inside, [(take, 1), (given, -1)], depth))]
        m.d.comb += [self.i.ready.eq(room),
                     out.i.valid.eq(fifo.r_rdy), fifo.r_en.eq(out.i.ready),
                     out.i.payload.y.eq(fifo.r_data)]
        wiring.connect(m, wiring.flipped(self.o), out.o)
        return m
