"""The FP16 linear datapath (``fp16-linear``): the baseline of every area comparison.

``P`` lanes of binary16 x binary16 exact products with one binary32 sum per output,
bit-exact with :func:`sw.fp16_linear.fp16_linear` (the LQER paper normalises its areas to
an FP16 datapath). The stream follows the convention of ``lqer-linear``: the weights come
on the input stream beside the activations, per-layer steps merged with per-token
activations (:mod:`hw.fp16_linear_schedule` states the order and the timing), one token
in flight.

Structure: :class:`hw.fp_accumulate.FPAccumulate` (``P`` :class:`~hw.fp.fp16_mul.FP16Mul`
and ``P`` :class:`~hw.fp.fp32_add.FP32Add` running free, the ``d_out`` sums in a memory
updated column by column); after the token's last column the sums are read one group per
cycle, optionally rounded to binary16 (``P`` :class:`~hw.fp.fp32_to_fp16.FP32ToFP16`),
into a small output FIFO whose free space (credit) paces the reads, so the output may be
held back at any time. Input item ``{"x": binary16, "w": P binary16}``; output item
``{"y": P binary32 (or binary16)}``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp16_linear_schedule import FP16LinearSchedule
from hw.fp_accumulate import MAX_LANES, FPAccumulate, owned_list
from hw.params import check_int
from hw.pipeline import REPLICA_TAG, SLICE_BITS, OutputFIFO
from hw.unused import owned, rejectable
from hw.layer_facts import LayerFacts, TokenSteps
from sw.datapath import MAX_DIM

__all__ = ["FP16Linear"]


class FP16Linear(LayerFacts, TokenSteps, wiring.Component):
    """Ports: ``i`` (stream of steps, see :mod:`hw.fp16_linear_schedule`) and ``o`` (stream
    of ``{"y": ArrayLayout(unsigned(32 or 16), lanes)}``).

    Parameters (keyword-only): ``d_in``, ``d_out`` (1..``MAX_DIM``); ``lanes`` (1..64,
    dividing ``d_out``); ``mul_stages``, ``add_stages``, ``out_stages`` (pipeline stages of
    the units, default one per level); ``out_fp16`` (round the outputs to binary16).
    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, d_in: int = 64, d_out: int = 64, lanes: int = 16,
                 mul_stages: int | None = None, add_stages: int | None = None,
                 out_fp16: bool = False, out_stages: int | None = None):
        with rejectable(self):
            check_int("d_in", d_in, 1, MAX_DIM)
            check_int("d_out", d_out, 1, MAX_DIM)
            check_int("lanes", lanes, 1, MAX_LANES)
            if d_out % lanes:
                raise ValueError(f"lanes must divide d_out ({d_out}); got {lanes}")
            if out_fp16 not in (True, False, 0, 1):
                raise TypeError(f"out_fp16 must be a bool; got {out_fp16!r}")
            self._acc = FPAccumulate(lanes=lanes, groups=d_out // lanes, mul_stages=mul_stages,
                                     add_stages=add_stages)
            owned(self._acc)
            self._convs = owned_list([FP32ToFP16(stages=out_stages, backpressure=False)
                                      for _ in range(lanes)] if out_fp16 else [])
            self._schedule = FP16LinearSchedule(
                d_in, d_out, lanes, self._acc.mul_latency, self._acc.add_latency,
                self._convs[0].latency if out_fp16 else 0)
        self._out_width = 16 if out_fp16 else 32
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": unsigned(16), "w": data.ArrayLayout(unsigned(16), lanes)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(unsigned(self._out_width), lanes)}))),
        })

    # -- published facts ----------------------------------------------------------------
    @property
    def lanes(self) -> int:
        return self._schedule.lanes

    @property
    def out_fp16(self) -> bool:
        return bool(self._convs)

    @property
    def memory_bits(self) -> dict[str, int]:
        """Bits of each memory (what grows with the layer)."""
        return {"results": self._acc.memory_bits}

    # -- hardware ------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        s = self._schedule
        G, P = s.groups, s.lanes
        m.submodules.acc = acc = self._acc

        # input: columns j and groups g of the current token
        group = Signal(range(max(G, 2)), name="group")
        column = Signal(range(max(s.d_in, 2)), name="column")
        busy = Signal(name="token_busy")          # first item taken, last output not yet out
        start = (group == 0) & (column == 0)
        blocked = start & busy
        m.d.comb += [acc.i.valid.eq(self.i.valid & ~blocked),
                     self.i.ready.eq(acc.i.ready & ~blocked),
                     acc.i.payload.x.eq(self.i.payload.x), acc.i.payload.w.eq(self.i.payload.w),
                     acc.i.payload.first.eq(column == 0)]
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            m.d.sync += group.eq(Mux(group == G - 1, 0, group + 1))
            with m.If(group == G - 1):
                m.d.sync += column.eq(Mux(column == s.d_in - 1, 0, column + 1))
            with m.If(start):
                m.d.sync += busy.eq(1)

        # the token's sums are complete when its last column is written
        written = Signal(range(s.d_in + 1), name="columns_written")
        draining = Signal(name="draining")
        with m.If(acc.column_written):
            with m.If(written == s.d_in - 1):
                m.d.sync += [written.eq(0), draining.eq(1)]
            with m.Else():
                m.d.sync += written.eq(written + 1)

        # read the sums one group per cycle while the output FIFO has room (credit)
        chain = 1 + s.out_latency
        depth = chain + 2
        # the credit (inside < depth) keeps room; the 16 lanes' word is stored in slices,
        # each with its own pointers (one read pointer across the whole word was the
        # limit on ECP5, docs/synth.md)
        m.submodules.out_fifo = fifo = OutputFIFO(width=self._out_width * P, depth=depth,
                                                  slice_bits=SLICE_BITS,
                                                  slice_enables=True)
        inside = Signal(range(depth + 1), name="inside")
        issued = Signal(range(max(G, 2)), name="read_group")
        # each lane's result memory read at a copy of the group of its own (replica-named,
        # so synthesis keeps them): one address register into the 16 lanes' LUT RAMs was
        # the limit on ECP5 (docs/synth.md)
        addresses = [Signal.like(issued, name=f"read_group_{REPLICA_TAG}_{p}")
                     for p in range(P)]
        issue = Signal(name="issue")
        m.d.comb += [issue.eq(draining & (inside < depth)),
                     *(a.eq(c) for a, c in zip(acc.rd_addr, addresses))]
        with m.If(issue):
            following = Mux(issued == G - 1, 0, issued + 1)
            m.d.sync += [issued.eq(following), *(c.eq(following) for c in addresses)]
            with m.If(issued == G - 1):
                m.d.sync += draining.eq(0)
        read_valid = Signal(name="read_valid")
        m.d.sync += read_valid.eq(issue)
        if self._convs:
            outs = []
            for p, conv in enumerate(self._convs):
                m.submodules[f"to_fp16_{p}"] = conv
                m.d.comb += [conv.i.valid.eq(read_valid), conv.i.payload.a.eq(acc.rd_data[p]),
                             conv.o.ready.eq(1)]
                outs.append(conv.o.payload.y)
            m.d.comb += [fifo.w_en.eq(self._convs[0].o.valid), fifo.w_data.eq(Cat(*outs)),
                         *(w.eq(self._convs[0].o.valid) for w in fifo.w_en_slices)]
        else:
            # each slice of the output FIFO writes on its own copy of the read's valid
            slice_valid = [Signal(name=f"read_valid_{REPLICA_TAG}_{k}")
                           for k in range(len(fifo.w_en_slices))]
            m.d.sync += [v.eq(issue) for v in slice_valid]
            m.d.comb += [fifo.w_en.eq(read_valid), fifo.w_data.eq(acc.rd_data.as_value()),
                         *(w.eq(v) for w, v in zip(fifo.w_en_slices, slice_valid))]
        taken = self.o.valid & self.o.ready
        m.d.sync += inside.eq(inside + issue - taken)
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready),
                     self.o.payload.as_value().eq(fifo.r_data)]

        # the token's last output taken, registered (RELEASE_LATENCY) before it frees the
        # input: the output FIFO's valid into the input's busy flag, across the device,
        # was the layer's clock path on ECP5 (docs/synth.md)
        out_count = Signal(range(max(G, 2)), name="out_group")
        release = Signal(name="token_release")
        m.d.sync += release.eq(taken & (out_count == G - 1))
        with m.If(taken):
            m.d.sync += out_count.eq(Mux(out_count == G - 1, 0, out_count + 1))
        with m.If(release):
            m.d.sync += busy.eq(0)
        return m
