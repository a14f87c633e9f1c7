"""The LQER dual-path linear datapath: a 4-bit high-rank path beside an 8-bit low-rank path.

Per token (docs/design.md, Datapaths, reduction-axis blocking; bit-exact with
``sw.lqer_reference``: :func:`~sw.lqer_reference.lqer_linear_terms` for the two-term
output, :func:`~sw.lqer_reference.lqer_linear_output` for the merged one)::

    main = accumulate(x_q . W_q)          P_m lanes, MXINT(a_width) x MXINT(w_width), over d_in
    t    = Q(accumulate(x_q . A))         P_l lanes over d_in, requantized along the rank
    u    = Q(accumulate(t . B))           the same P_l lanes over the rank, requantized along d_out
    y    = main + u                       output="terms": two exact terms per channel
    y_q  = Q(accumulate(main..., u, b))   output="mxint": merged, with the MXINT bias b,
                                          requantized to MXINT(a_width) blocks along d_out

Structure (everything that grows with the layer is a memory, so the logic grows with the
lanes only):

- two :class:`hw.dot_array.DotArray` + :class:`hw.accumulator.Accumulator` pairs run free
  (their outputs are never blocked); the accumulators are interleaved over ``K`` results
  (their ``slots``), so the schedule (:mod:`hw.lqer_schedule`) feeds ``K`` groups of output
  channels round-robin, each activation block ``K`` times in a row;
- the x memory (``d_in / block`` blocks) keeps the token's activations after the first
  ``K * nb_in`` steps, which take them from the stream; the t memory (``rank / block``
  blocks) keeps t for the U phase;
- one :class:`hw.quantizer.Quantizer` requantizes the low-rank results a block at a time
  (first the blocks of t, into the t memory, then those of u, into the u FIFO);
- the main results wait in the main FIFO (``d_out / P_m`` entries of ``P_m`` channels)
  until u is ready; :class:`hw.rechunk.Rechunk` turns groups into blocks. With the merged
  output, u and the bias (its own FIFO, from the stream's first ``nb_out`` steps) go to
  groups, :class:`hw.merge.Merge` continues each channel's accumulation with them, and a
  second :class:`~hw.quantizer.Quantizer` requantizes the blocks. Every FIFO is a
  :class:`hw.fifo.RegisteredFIFO` (its read data registered before any logic; on ECP5
  that register becomes the block RAM's own output register, ``hw.synth.ecp5_outreg``),
  read ``FIFO_LATENCY`` cycles after the write. With the two-term output and ``P_m <
  block`` a register slice (:class:`hw.stream_register.StreamRegister`) sits between the
  main FIFO and the rechunker, ``MAIN_REGISTER_LATENCY`` cycle more.

A token's first item waits until the previous token's last output has left (one token in
flight, so each memory and FIFO holds one token); the published ``cycles_per_token`` and
``latency`` come from :class:`hw.lqer_schedule.LQERSchedule`.

Storage of the weights is outside the datapath: W_q, A^T, B^T (and the bias) blocks arrive
on the input stream beside the activations, in schedule order (:mod:`hw.lqer_schedule`
documents it and builds it). Input item, per step::

    {"x": MXINT(a) block, "w": P_m MXINT(w) blocks of W_q, "f": P_l MXINT(lowrank) blocks
     of A^T or B^T (rank > 0), "b": the MXINT(a) bias block (merged output with bias)}

Output item, per block of ``block`` output channels: ``{"main_values", "main_exponents"
(per channel, value main_values * 2**main_exponents), "u": the MXINT block of u}``
(``output="terms"``; the bias is added outside), or the MXINT(a_width) block of y
(``output="mxint"``).

**ResQ mode** (``mode="resq"``, registered as ``resq-linear``; Saxena et al. 2024,
bit-exact with :mod:`sw.resq_reference`: :func:`~sw.resq_reference.resq_linear_terms`
for the two-term output, :func:`~sw.resq_reference.resq_linear_output` for the merged
one). The input is already projected, ``z = x U`` (the projection is outside the
datapath, docs/lqer_linear.md); ``rank`` is the number ``r`` of high-precision
coordinates::

    low  = accumulate(z_l . W_l)          P_m lanes, MXINT(a_width) x MXINT(w_width), over d_in - r
    high = accumulate(z_h . W_h)          P_l lanes, MXINT(high) x MXINT(high), over r
    y    = low + high                     output="terms": two exact terms per channel
    y_q  = Q(accumulate(low..., Q(high), b))   output="mxint": high requantized along d_out
                                          (MXINT(high)), merged with the MXINT(high) bias,
                                          requantized to MXINT(high) blocks along d_out

The same parts do it: the main dot array, accumulator, x memory and main FIFO take z_l
and W_l; the low-rank array (its formats: ``lowrank_format`` = MXINT(high) on both
operands), accumulator and staging run the U phase alone, its t memory filled from the
stream's ``h`` field (z_h) instead of by a T phase, W_h in B^T's place; the narrow
results go, a block at a time, through the requantizer into the u FIFO (merged output)
or, exact, into the high FIFO (two-term output: ``{"main_values", "main_exponents",
"high_values", "high_exponents"}``); the output stage is LQER's.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.accumulator import Accumulator
from hw.dot_array import DotArray
from hw.fifo import RegisteredFIFO
from hw.lqer_schedule import MODES, OUTPUTS, LQERSchedule, default_lowrank_lanes
from hw.merge import Merge
from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_choice, check_int, is_power_of_two, signed_for_range
from hw.pipeline import REPLICA_TAG, register_delay
from hw.quantizer import MAX_IN_WIDTH, Quantizer
from hw.rechunk import Rechunk
from hw.stream_register import StreamRegister
from hw.unused import owned, rejectable
from hw.layer_facts import LayerFacts, TokenSteps
from sw.datapath import MAX_DIM, lqer_linear_reason, resq_reason
from sw.mxint import MXIntFormat

__all__ = ["LQERLinear", "fifo_depth"]


def fifo_depth(items: int) -> int:
    """Entries of a :class:`hw.fifo.RegisteredFIFO` that must take ``items`` writes in
    consecutive cycles without a read: two more than ``items`` (its memory of ``items``
    words; the buffered FIFO inside moves an entry to the memory's read register a cycle
    after it is written and refuses a write until then, and the fabric read register
    holds one more)."""
    return items + 2


class LQERLinear(LayerFacts, TokenSteps, wiring.Component):
    """Ports: ``i`` (stream of steps, see the module doc) and ``o`` (stream of output blocks).

    Parameters (keyword-only): ``d_in``, ``d_out`` (1..``MAX_DIM``, multiples of the
    block), ``rank`` (0..min(d_in, d_out), a multiple of the block; 0 is the plain MXINT
    layer, the main path alone, for cost comparisons); ``a_format`` (activations and the
    merged output, default MXINT8 block 16), ``w_format`` (W_q, default MXINT4),
    ``lowrank_format`` (A, B, t and u; default MXINT8; its width must equal ``a_format``'s
    when ``rank > 0``, since one low-rank array takes x, then t), all sharing one block;
    ``lanes_main`` (1..256, dividing ``d_out`` or a multiple of the block dividing it);
    ``lanes_lowrank`` (0: the default, :func:`hw.lqer_schedule.default_lowrank_lanes`;
    else a power of two dividing the block); ``guard_bits`` (0..32); ``dot_stages``
    (1..8), ``acc_slots`` (1..4) and ``acc_stages`` (0..4) of the dot arrays and
    accumulators; ``quant_stages`` (1..20) of the quantizers; ``output`` ("terms" or
    "mxint"); ``bias`` (merged output: a bias block per output block); ``merge_stages``
    (1..16); ``mode`` ("lqer" or "resq", module doc: ``rank`` is then ResQ's ``r`` in
    0..d_in-1, ``a_format``/``w_format`` are those of z_l/W_l, ``lowrank_format`` that of
    z_h, W_h and the merged output and bias, of any width). Raises ``ValueError`` /
    ``TypeError`` naming the parameter.
    """

    def __init__(self, *, d_in: int = 64, d_out: int = 64, rank: int = 32,
                 a_format: MXIntFormat = MXIntFormat(width=8),
                 w_format: MXIntFormat = MXIntFormat(width=4),
                 lowrank_format: MXIntFormat = MXIntFormat(width=8),
                 lanes_main: int = 1, lanes_lowrank: int = 0, guard_bits: int = 8,
                 dot_stages: int = 7, acc_slots: int = 4, acc_stages: int = 5,
                 quant_stages: int = 19, output: str = "terms", bias: bool = False,
                 merge_stages: int = 6, mode: str = "lqer"):
        with rejectable(self):
            self._setup(d_in, d_out, rank, a_format, w_format, lowrank_format, lanes_main,
                        lanes_lowrank, guard_bits, dot_stages, acc_slots, acc_stages,
                        quant_stages, output, bias, merge_stages, mode)
        super().__init__({"i": In(stream.Signature(data.StructLayout(self._in_fields))),
                          "o": Out(stream.Signature(self._out_layout))})

    def _setup(self, d_in, d_out, rank, a_format, w_format, lowrank_format, lanes_main,
               lanes_lowrank, guard_bits, dot_stages, acc_slots, acc_stages, quant_stages,
               output, bias, merge_stages, mode):
        self._mode = check_choice("mode", mode, MODES)
        resq = mode == "resq"
        check_hardware_format("a_format", a_format)
        block = a_format.block
        for name, fmt in (("w_format", w_format), ("lowrank_format", lowrank_format)):
            check_hardware_format(name, fmt)
            if fmt.block != block:
                raise ValueError(f"{name}.block must equal a_format.block ({block}); "
                                 f"got {fmt.block}")
        for name, value, low in (("d_in", d_in, 1), ("d_out", d_out, 1), ("rank", rank, 0)):
            check_int(name, value, low, MAX_DIM)
        # the quantizers round half to even and the references (sw.lqer_reference,
        # sw.resq_reference) do too: a format asking for another rounding is refused here,
        # by name, rather than silently built with a rounding the reference does not follow
        for name, fmt in (("a_format", a_format), ("w_format", w_format),
                          ("lowrank_format", lowrank_format)):
            if fmt.rounding != "even":
                raise ValueError(f"{name}.rounding must be 'even' (the datapath rounds half "
                                 f"to even); got {fmt.rounding!r}")
        # the shape and format rule, stated once in sw (also what `quantize` reports)
        if resq:
            reason = resq_reason(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                 flavour=a_format.flavour, rounding=a_format.rounding)
        else:
            reason = lqer_linear_reason(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                        a_width=a_format.width,
                                        lowrank_width=lowrank_format.width,
                                        flavour=a_format.flavour, rounding=a_format.rounding)
        if reason is not None:
            raise ValueError(reason)
        check_int("lanes_main", lanes_main, 1, 256)
        if d_out % lanes_main or (lanes_main > block and lanes_main % block) or \
                (lanes_main < block and block % lanes_main):
            raise ValueError(f"lanes_main must divide d_out ({d_out}) and divide or be a "
                             f"multiple of block ({block}); got {lanes_main}")
        check_int("lanes_lowrank", lanes_lowrank, 0, 256)
        if lanes_lowrank and not (is_power_of_two(lanes_lowrank) and lanes_lowrank <= block):
            raise ValueError(f"lanes_lowrank must be 0 (default) or a power of two in 1..{block} "
                             f"(it divides block); got {lanes_lowrank}")
        check_int("guard_bits", guard_bits, 0, 32)
        check_int("dot_stages", dot_stages, 1, 8)
        check_int("acc_slots", acc_slots, 1, 4)
        check_int("acc_stages", acc_stages, 0, 6)
        check_int("quant_stages", quant_stages, 1, 20)
        check_int("merge_stages", merge_stages, 1, 16)
        self._output = check_choice("output", output, OUTPUTS)
        if bias not in (True, False, 0, 1):
            raise TypeError(f"bias must be a bool; got {bias!r}")
        if bias and output != "mxint":
            raise ValueError('bias must be False unless output is "mxint" (the two-term output '
                             "leaves the bias to its consumer); got True")
        self._bias = bool(bias)
        merged = output == "mxint"
        self._a_format, self._w_format, self._lr_format = a_format, w_format, lowrank_format
        # the merged output (and its bias): the next layer's activations in LQER; in ResQ
        # MXINT(high), since the next layer projects it before quantizing it again
        self._out_format = lowrank_format if resq else a_format
        self._guard_bits = guard_bits
        nb_in = (d_in - rank if resq else d_in) // block   # the main path's blocks
        nb_k = rank // block

        # the parts
        main_partials = nb_in + (2 if merged else 0)  # u and the bias are two more partials
        self._main_dots = DotArray(lanes=lanes_main, a_format=a_format, w_format=w_format,
                                   stages=dot_stages, backpressure=False)
        self._main_acc = Accumulator(sum_width=self._main_dots.sum_width,
                                     exponent_range=self._main_dots.exponent_range,
                                     guard_bits=guard_bits, max_partials=main_partials,
                                     lanes=lanes_main, slots=acc_slots, stages=acc_stages,
                                     backpressure=False)
        acc_latency = self._main_acc.latency
        latencies = dict(slots=acc_slots, dot_latency=dot_stages, acc_latency=acc_latency,
                         quant_latency=quant_stages, output=output, bias=self._bias,
                         merge_latency=merge_stages if merged else 0,
                         out_quant_latency=quant_stages if merged else 0, mode=mode)
        if rank and not lanes_lowrank:
            lanes_lowrank = default_lowrank_lanes(d_in=d_in, d_out=d_out, rank=rank,
                                                  block=block, lanes_main=lanes_main,
                                                  **latencies)
        if not rank:
            lanes_lowrank = 0
        self._lanes_lowrank = lanes_lowrank
        self._schedule = LQERSchedule(d_in, d_out, rank, block, lanes_main,
                                      max(lanes_lowrank, 1), **latencies)
        parts = [self._main_dots, self._main_acc]
        self._lr_dots = self._lr_acc = self._quant = None
        self._high_channel = None
        if rank:
            # LQER: x, then t, against A^T, then B^T; ResQ: z_h against W_h
            self._lr_dots = DotArray(lanes=lanes_lowrank,
                                     a_format=lowrank_format if resq else a_format,
                                     w_format=lowrank_format, stages=dot_stages,
                                     backpressure=False)
            self._lr_acc = Accumulator(sum_width=self._lr_dots.sum_width,
                                       exponent_range=self._lr_dots.exponent_range,
                                       guard_bits=guard_bits,
                                       max_partials=nb_k if resq else max(nb_in, nb_k),
                                       lanes=lanes_lowrank, slots=acc_slots, stages=acc_stages,
                                       backpressure=False)
            lsb_shape = signed_for_range(*self._lr_acc.out_exponent_range)
            parts += [self._lr_dots, self._lr_acc]
            if self._schedule.requantized:
                if self._lr_acc.acc_width > MAX_IN_WIDTH:
                    raise ValueError(f"guard_bits must keep the low-rank accumulator within "
                                     f"{MAX_IN_WIDTH} bits (the quantizer's input); got "
                                     f"{self._lr_acc.acc_width}")
                self._quant = Quantizer(out_format=lowrank_format,
                                        in_width=self._lr_acc.acc_width,
                                        lsb_width=lsb_shape.width, stages=quant_stages,
                                        backpressure=False)
                parts.append(self._quant)
            else:  # ResQ, two-term output: the narrow accumulator's exact results
                self._high_channel = data.StructLayout({
                    "value": signed(self._lr_acc.acc_width), "exponent": lsb_shape})

        # the main results, as channels: {value, exponent}
        self._channel = data.StructLayout({
            "value": signed(self._main_acc.acc_width),
            "exponent": signed_for_range(*self._main_acc.out_exponent_range)})
        # the two-term output's join reads its sources only into empty registers when the
        # groups are gathered into blocks (_terms_output; LQERSchedule.registered_join)
        self._registered_join = self._schedule.registered_join
        self._merge = self._out_quant = None
        if merged:
            terms = []
            if rank:
                terms.append(("u", lowrank_format.width, lowrank_format.lsb_range))
            if self._bias:
                terms.append(("bias", self._out_format.width, self._out_format.lsb_range))
            if terms:
                self._merge = Merge(lanes=lanes_main, acc_width=self._main_acc.acc_width,
                                    result_range=self._main_acc.out_exponent_range,
                                    terms=tuple(terms), guard_bits=guard_bits, stages=merge_stages)
                out_range = self._merge.out_exponent_range
                parts.append(self._merge)
            else:
                out_range = self._main_acc.out_exponent_range
            if self._main_acc.acc_width > MAX_IN_WIDTH:
                raise ValueError(f"guard_bits must keep the main accumulator within "
                                 f"{MAX_IN_WIDTH} bits (the output quantizer's input); got "
                                 f"{self._main_acc.acc_width}")
            self._out_quant = Quantizer(out_format=self._out_format,
                                        in_width=self._main_acc.acc_width,
                                        lsb_width=signed_for_range(*out_range).width,
                                        stages=quant_stages)
            parts.append(self._out_quant)
        owned(*parts)

        in_fields = {"x": block_layout(a_format)}
        if resq and rank:
            in_fields["h"] = block_layout(lowrank_format)
        in_fields["w"] = data.ArrayLayout(block_layout(w_format), lanes_main)
        if rank:
            in_fields["f"] = data.ArrayLayout(block_layout(lowrank_format), lanes_lowrank)
        if self._bias:
            in_fields["b"] = block_layout(self._out_format)
        self._in_fields = in_fields
        if merged:
            self._out_layout = block_layout(self._out_format)
        else:
            out_fields = {
                "main_values": data.ArrayLayout(signed(self._main_acc.acc_width), block),
                "main_exponents": data.ArrayLayout(
                    signed_for_range(*self._main_acc.out_exponent_range), block)}
            if self._high_channel is not None:
                out_fields["high_values"] = data.ArrayLayout(
                    self._high_channel.members["value"], block)
                out_fields["high_exponents"] = data.ArrayLayout(
                    self._high_channel.members["exponent"], block)
            elif rank:
                out_fields["u"] = block_layout(lowrank_format)
            self._out_layout = data.StructLayout(out_fields)

    # -- published facts -----------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"lqer"`` (main + chained low-rank GEMMs) or ``"resq"`` (main + one narrow GEMV)."""
        return self._mode

    @property
    def rank(self) -> int:
        return self._schedule.rank

    @property
    def block(self) -> int:
        return self._schedule.block

    @property
    def lanes_main(self) -> int:
        return self._schedule.lanes_main

    @property
    def lanes_lowrank(self) -> int:
        """Low-rank lanes (0 without a low-rank path)."""
        return self._lanes_lowrank

    @property
    def guard_bits(self) -> int:
        return self._guard_bits

    @property
    def output(self) -> str:
        """``"terms"`` (main and u per channel) or ``"mxint"`` (merged, requantized)."""
        return self._output

    @property
    def bias(self) -> bool:
        """Whether the merged output adds a bias block from the stream."""
        return self._bias

    @property
    def a_format(self) -> MXIntFormat:
        return self._a_format

    @property
    def w_format(self) -> MXIntFormat:
        return self._w_format

    @property
    def lowrank_format(self) -> MXIntFormat:
        """Format of A^T, B^T, t and u (ResQ: of z_h, W_h and the requantized high term)."""
        return self._lr_format

    @property
    def out_format(self) -> MXIntFormat:
        """Format of the merged output and of the bias: ``a_format`` (LQER),
        ``lowrank_format`` (ResQ)."""
        return self._out_format

    @property
    def main_acc_width(self) -> int:
        return self._main_acc.acc_width

    @property
    def lowrank_acc_width(self) -> int:
        return 0 if self._lr_acc is None else self._lr_acc.acc_width

    @property
    def memory_bits(self) -> dict[str, int]:
        """Bits of each memory and FIFO (what grows with the layer)."""
        s = self._schedule
        bits = {"x": s.nb_in * block_layout(self._a_format).size,
                "main_fifo": fifo_depth(s.main_groups) * data.ArrayLayout(
                    self._channel, s.lanes_main).size}
        if s.rank:
            bits["t"] = s.nb_k * block_layout(self._lr_format).size
            if self._high_channel is not None:
                bits["high_fifo"] = fifo_depth(s.nb_out) * data.ArrayLayout(
                    self._high_channel, s.block).size
            else:
                bits["u_fifo"] = fifo_depth(s.nb_out) * block_layout(self._lr_format).size
        if self._bias:
            bits["bias_fifo"] = fifo_depth(s.nb_out) * block_layout(self._out_format).size
        return bits

    # -- hardware ------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        s = self._schedule
        K, nb_in, nb_out = s.slots, s.nb_in, s.nb_out
        rank = s.rank

        # input side: the step counters of the current token; every test of the step
        # counter is a register of its own (_StepFlags), so the input handshake and the
        # write enables behind it are one LUT from registers
        step = Signal(range(s.steps), name="step")
        busy = Signal(name="token_busy")      # taken, outputs not all out
        busy_next = Signal(name="token_busy_next")
        accept = Signal(name="accept")
        flags = _StepFlags(m, step, accept, s.steps)
        first_step, last_step = flags("first_step", "eq", 0), flags.last
        # the input's ready, ~(first_step & busy), is a register of its own loaded from
        # both registers' next values (below), so the handshake that every counter and
        # flag takes is one LUT from registers: from busy through the ready's LUT into the
        # counters across the layer was the clock path on ECP5 (docs/synth.md)
        ready = Signal(name="input_ready", init=1)
        m.d.comb += [self.i.ready.eq(ready), accept.eq(self.i.valid & ready),
                     busy_next.eq(busy)]
        m.d.sync += [busy.eq(busy_next),
                     ready.eq(~(Mux(accept, last_step, first_step) & busy_next))]

        def counters(suffix=""):
            """The slot and x-block counters of the stream (next-state values beside)."""
            k = Signal(range(K), name=f"slot{suffix}")
            j = Signal(range(nb_in), name=f"x_block{suffix}")
            k_next, j_next = Signal.like(k), Signal.like(j)
            m.d.comb += [k_next.eq(k), j_next.eq(j)]
            with m.If(accept):
                with m.If(last_step):
                    m.d.comb += [k_next.eq(0), j_next.eq(0)]
                with m.Else():
                    m.d.comb += k_next.eq(Mux(k == K - 1, 0, k + 1))
                    with m.If(k == K - 1):
                        m.d.comb += j_next.eq(Mux(j == nb_in - 1, 0, j + 1))
            m.d.sync += [k.eq(k_next), j.eq(j_next)]
            return k, j, j_next

        with m.If(accept):
            m.d.sync += step.eq(Mux(last_step, 0, step + 1))
            with m.If(first_step):
                m.d.comb += busy_next.eq(1)
        k, j, _ = counters()

        # the x memory: the token's activation blocks after the first K * nb_in steps, in
        # slices of at most SELECT_SLICE_BITS bits, each a memory of its own addressed by its
        # own copy of the counters (replicas, hw.pipeline.REPLICA_TAG): the read address is
        # the next block (a synchronous read), and one address register for the LUT RAMs
        # of the whole block was a 4.6-5.5 ns route on ECP5 (docs/synth.md)
        x_layout = block_layout(self._a_format)
        from_stream = flags("x_from_stream", "lt", s.x_stream_steps)
        item_x = self.i.payload.x.as_value()
        # written in every cycle of those steps, accepted or not (as ResQ's t memory): the
        # enable is the flag's register, not the handshake. The K steps of block j carry
        # the same x block (the stream contract, hw/lqer_schedule.py), so row j's last
        # write is block j's last accepted step; the memory is read only after the stream
        # steps, and the writes while the next token waits for its first step reach only
        # the rows it will rewrite
        x_read = []
        for n, (lo, hi, xw, xr) in enumerate(_memory_slices(m, "x_memory", x_layout.size,
                                                            nb_in)):
            _, j_n, j_next_n = counters(f"_{REPLICA_TAG}_{n}")
            m.d.comb += [xw.addr.eq(j_n), xw.data.eq(item_x[lo:hi]), xw.en.eq(from_stream),
                         xr.addr.eq(j_next_n), xr.en.eq(1)]
            x_read.append(xr.data)
        x_operand = Signal(x_layout.size, name="x_operand")
        m.d.comb += x_operand.eq(_select(flags, "x_from_stream", "lt", s.x_stream_steps,
                                         item_x, Cat(*x_read)))

        # main path: dot array -> accumulator -> main FIFO
        m.submodules.main_dots = main_dots = self._main_dots
        m.submodules.main_acc = main_acc = self._main_acc
        m.d.comb += [main_dots.i.valid.eq(accept & flags("main_step", "lt", s.main_steps)),
                     main_dots.i.payload.x.eq(x_operand),
                     main_dots.i.payload.w.eq(self.i.payload.w),
                     main_dots.o.ready.eq(1), main_acc.o.ready.eq(1)]
        self._feed(m, main_dots, main_acc, register_delay(m, j == nb_in - 1, s.dot_latency,
                                                          "main_last", reset_less=False))
        pm = s.lanes_main
        group_layout = data.ArrayLayout(self._channel, pm)
        m.submodules.main_fifo = main_fifo = RegisteredFIFO(shape=group_layout,
                                                            depth=fifo_depth(s.main_groups))
        result = Signal(range(max(s.main_steps // nb_in, 1)), name="main_result")
        with m.If(main_acc.o.valid):
            m.d.sync += result.eq(Mux(result == s.main_steps // nb_in - 1, 0, result + 1))
        group = main_fifo.i.payload
        m.d.comb += main_fifo.i.valid.eq(main_acc.o.valid & (result < s.main_groups))
        for lane in range(pm):
            m.d.comb += [group[lane].value.eq(main_acc.o.payload.values[lane]),
                         group[lane].exponent.eq(main_acc.o.payload.exponents[lane])]

        u_fifo = None
        if rank:
            u_fifo = self._lowrank(m, accept, flags, k, j, x_operand)

        bias_fifo = None
        if self._bias:
            m.submodules.bias_fifo = bias_fifo = RegisteredFIFO(
                shape=block_layout(self._out_format), depth=fifo_depth(nb_out))
            m.d.comb += [bias_fifo.i.payload.eq(self.i.payload.b),
                         bias_fifo.i.valid.eq(accept & flags("bias_step", "lt", nb_out))]

        # output side
        out_taken = self.o.valid & self.o.ready
        out_block = Signal(range(nb_out), name="out_block")
        with m.If(out_taken):
            with m.If(out_block == nb_out - 1):
                m.d.sync += out_block.eq(0)
                m.d.comb += busy_next.eq(0)                # the token is complete
            with m.Else():
                m.d.sync += out_block.eq(out_block + 1)
        self._debug = {"main_fifo": main_fifo, "u_fifo": u_fifo}
        if self._output == "terms":
            self._terms_output(m, main_fifo, group_layout, u_fifo)
        else:
            self._merged_output(m, main_fifo, group_layout, u_fifo, bias_fifo)
        return m

    def _lowrank(self, m, accept, flags, k, j, x_operand):
        """The T and U phases on one dot array, accumulator and requantizer; returns the u
        FIFO (t goes to the t memory, read back by the U phase). ResQ: the U phase alone on
        z_h, which the stream writes into the t memory; returns the u FIFO (merged output)
        or the high FIFO of exact blocks (two-term output)."""
        s = self._schedule
        K, nb_in, nb_k, nb_out, pl = s.slots, s.nb_in, s.nb_k, s.nb_out, self._lanes_lowrank
        resq = s.resq
        m.submodules.lowrank_dots = dots = self._lr_dots
        m.submodules.lowrank_acc = acc = self._lr_acc
        quant = self._quant
        if quant is not None:
            m.submodules.requantizer = quant
        block_bits = block_layout(self._lr_format).size

        # U-phase counters (slot and t block), with next-state values for the t read
        t_phase = flags("t_phase", "lt", s.t_steps)
        u_phase = flags("u_started", "ge", s.u_start) & flags("lowrank_step", "lt",
                                                             s.lowrank_steps)
        u_last = flags("lowrank_last_step", "eq", s.lowrank_steps - 1)

        def u_counters(suffix=""):
            """The U phase's slot and t-block counters (the t block's next value beside)."""
            ku = Signal(range(K), name=f"u_slot{suffix}")
            tb = Signal(range(nb_k), name=f"t_block{suffix}")
            ku_next, tb_next = Signal.like(ku), Signal.like(tb)
            m.d.comb += [ku_next.eq(ku), tb_next.eq(tb)]
            with m.If(accept & u_phase):
                with m.If(u_last):
                    m.d.comb += [ku_next.eq(0), tb_next.eq(0)]
                with m.Else():
                    m.d.comb += ku_next.eq(Mux(ku == K - 1, 0, ku + 1))
                    with m.If(ku == K - 1):
                        m.d.comb += tb_next.eq(Mux(tb == nb_k - 1, 0, tb + 1))
            m.d.sync += [ku.eq(ku_next), tb.eq(tb_next)]
            return tb, tb_next

        # the t memory in slices, each read (and, for ResQ, written) at its own copy of the
        # counters, as the x memory: one t-block register addressing the LUT RAMs of the
        # whole block was a 3.9 ns route on ECP5 (docs/synth.md)
        tb, _ = u_counters()
        t_slices = _memory_slices(m, "t_memory", block_bits, nb_k)
        t_read = []
        for n, (_, _, _, tr) in enumerate(t_slices):
            tb_n, tb_next_n = u_counters(f"_{REPLICA_TAG}_{n}")
            m.d.comb += [tr.addr.eq(tb_next_n), tr.en.eq(1)]
            t_read.append((tb_n, tr.data))
        t_data = Cat(*(data for _, data in t_read))

        if resq:  # z_h from the stream on the first K * nb_k steps, kept in the t memory
            item_h = self.i.payload.h.as_value()
            from_stream = flags("h_from_stream", "lt", s.h_stream_steps)
            # written in every cycle of those steps, accepted or not: the enable is one
            # register (not the handshake, whose route to every bit's enable limited Fmax).
            # Row tb is written until its last step is taken, and the K steps of a row carry
            # the same z_h block, so the row's last write is an accepted item; reads of the
            # t memory come after the stream steps.
            for (lo, hi, tw, _), (tb_n, _) in zip(t_slices, t_read):
                m.d.comb += [tw.addr.eq(tb_n), tw.data.eq(item_h[lo:hi]),
                             tw.en.eq(from_stream)]
            operand, last_block = Mux(from_stream, item_h, t_data), tb == nb_k - 1
        else:
            operand = _select(flags, "t_phase", "lt", s.t_steps, x_operand, t_data)
            last_block = Mux(t_phase, j == nb_in - 1, tb == nb_k - 1)
        m.d.comb += [dots.i.valid.eq(accept & (t_phase | u_phase)),
                     dots.i.payload.x.eq(operand),
                     dots.i.payload.w.eq(self.i.payload.f),
                     dots.o.ready.eq(1), acc.o.ready.eq(1)]
        last = register_delay(m, last_block, s.dot_latency, "lowrank_last", reset_less=False)
        self._feed(m, dots, acc, last)

        # which results to keep: T groups first, then U groups, padded ones dropped
        # (ResQ: no T groups)
        t_all = s.t_steps // nb_in
        total = t_all + s.u_steps // nb_k
        result = Signal(range(total), name="lowrank_result")

        def kept(r):
            return (r < s.t_groups) | ((r >= t_all) & (r < t_all + s.u_groups))

        # the test of the result counter is a register updated with it, so the staging's
        # load enables are one LUT from registers (docs/synth.md, "Reaching 150 MHz")
        keep = Signal(name="lowrank_keep", init=bool(kept(0)))
        with m.If(acc.o.valid):
            m.d.sync += [result.eq(Mux(result == total - 1, 0, result + 1)),
                         keep.eq(Mux(result == total - 1, bool(kept(0)), kept(result + 1)))]

        # staging: block / P_l results make one block for the requantizer
        pieces = s.block // pl
        lsb_shape = signed_for_range(*acc.out_exponent_range)
        stage_v = [Signal(signed(acc.acc_width), name=f"stage_value_{e}", reset_less=True)
                   for e in range(s.block)]
        stage_e = [Signal(lsb_shape, name=f"stage_lsb_{e}", reset_less=True)
                   for e in range(s.block)]
        # the piece being loaded, one-hot (a register per piece: no decode before its enable).
        # A piece loads in every cycle the pointer is on it, taken or not, and the pointer
        # moves on when a result is taken, so each piece ends holding the result taken into
        # it: the load enables are the pointer's registers alone, and the accumulator's
        # valid drives only the pointer and the counters (docs/synth.md, "The staging loaded
        # without the valid")
        piece = Signal(pieces, name="stage_piece", init=1)
        stage_full = Signal(name="stage_full")
        take = acc.o.valid & keep
        m.d.sync += stage_full.eq(take & piece[pieces - 1])
        with m.If(take):
            m.d.sync += piece.eq(piece.rotate_left(1))
        for p in range(pieces):
            with m.If(piece[p]):
                for lane in range(pl):
                    m.d.sync += [stage_v[p * pl + lane].eq(acc.o.payload.values[lane]),
                                 stage_e[p * pl + lane].eq(acc.o.payload.exponents[lane])]
        # the high (u) FIFO holds a token's nb_out blocks, and a token starts only after the
        # last block of the one before left (i.ready): no write finds it full, so with the
        # registered join it takes writes unchecked (stage_full / the requantizer's valid
        # straight to its memories and counters)
        if quant is None:  # ResQ, two-term output: the exact blocks into the high FIFO
            high_layout = data.ArrayLayout(self._high_channel, s.block)
            m.submodules.high_fifo = high_fifo = RegisteredFIFO(
                shape=high_layout, depth=fifo_depth(nb_out),
                registered_ready=self._registered_join,
                unchecked_writes=self._registered_join)
            view = high_fifo.i.payload
            m.d.comb += high_fifo.i.valid.eq(stage_full)
            for e in range(s.block):
                m.d.comb += [view[e].value.eq(stage_v[e]), view[e].exponent.eq(stage_e[e])]
            return high_fifo

        m.submodules.u_fifo = u_fifo = RegisteredFIFO(shape=block_layout(self._lr_format),
                                                      depth=fifo_depth(nb_out),
                                                      registered_ready=self._registered_join,
                                                      unchecked_writes=self._registered_join)
        m.d.comb += [quant.i.valid.eq(stage_full), quant.o.ready.eq(1)]
        for e in range(s.block):
            m.d.comb += [quant.i.payload.values[e].eq(stage_v[e]),
                         quant.i.payload.lsbs[e].eq(stage_e[e])]

        # requantized blocks: t (into the t memory; LQER), then u (into the u FIFO)
        t_blocks = 0 if resq else nb_k
        count = Signal(range(t_blocks + nb_out), name="requantized_blocks")
        with m.If(quant.o.valid):
            m.d.sync += count.eq(Mux(count == t_blocks + nb_out - 1, 0, count + 1))
        m.d.comb += [u_fifo.i.payload.eq(quant.o.payload),
                     u_fifo.i.valid.eq(quant.o.valid & (count >= t_blocks))]
        if not resq:
            for lo, hi, tw, _ in t_slices:
                m.d.comb += [tw.addr.eq(count), tw.data.eq(quant.o.payload.as_value()[lo:hi]),
                             tw.en.eq(quant.o.valid & (count < nb_k))]
        return u_fifo

    def _groups_to_blocks(self, m, name: str, registered_ready: bool = False):
        """A rechunker from groups of ``P_m`` channels to blocks (submodule ``name``)."""
        chunk = Rechunk(element=self._channel, n_in=self.lanes_main, n_out=self.block,
                        registered_ready=registered_ready)
        m.submodules[name] = chunk
        return chunk

    def _terms_output(self, m, main_fifo, group_layout, u_fifo):
        """Output item: the main terms of a block of channels beside the block of u (ResQ:
        beside the block of exact high terms). When the rechunker gathers (``P_m <
        block``), it gathers only into an empty block and the u (high) FIFO reloads its
        read register only when empty (both ``registered_ready``), so the output's ready is
        no clock enable of the gathered block or of the FIFO's read (docs/synth.md,
        "Reaching 150 MHz on ECP5"); a block leaves every ``block / P_m + 1`` cycles at
        most, so the FIFO's rate (a block every other cycle) never binds."""
        blocks = self._groups_to_blocks(m, "main_blocks",
                                        registered_ready=self._registered_join)
        groups = main_fifo.o
        if self._registered_join:
            # a register between the FIFO's block RAM and the block's places (one route
            # each side): hw.stream_register, MAIN_REGISTER_LATENCY in the schedule
            m.submodules.main_register = register = StreamRegister(shape=group_layout)
            wiring.connect(m, main_fifo.o, register.i)
            groups = register.o
        m.d.comb += [blocks.i.valid.eq(groups.valid), groups.ready.eq(blocks.i.ready),
                     blocks.i.payload.eq(groups.payload)]
        ready = blocks.o.valid if u_fifo is None else blocks.o.valid & u_fifo.o.valid
        m.d.comb += [self.o.valid.eq(ready), blocks.o.ready.eq(self.o.valid & self.o.ready)]
        if u_fifo is not None:
            m.d.comb += u_fifo.o.ready.eq(self.o.valid & self.o.ready)
            if self._high_channel is None:
                m.d.comb += self.o.payload.u.eq(u_fifo.o.payload)
            else:
                high = u_fifo.o.payload
                for e in range(self.block):
                    m.d.comb += [self.o.payload.high_values[e].eq(high[e].value),
                                 self.o.payload.high_exponents[e].eq(high[e].exponent)]
        for e in range(self.block):
            m.d.comb += [self.o.payload.main_values[e].eq(blocks.o.payload[e].value),
                         self.o.payload.main_exponents[e].eq(blocks.o.payload[e].exponent)]

    def _term_pieces(self, m, fifo, fmt: MXIntFormat, name: str):
        """A FIFO of MXINT blocks as a stream of ``P_m``-channel pieces, each element
        ``{sum, exponent}`` (the element's value ``sum * 2**exponent``)."""
        element = data.StructLayout({"sum": signed(fmt.width),
                                     "exponent": signed_for_range(*fmt.lsb_range)})
        chunk = Rechunk(element=element, n_in=self.block, n_out=self.lanes_main)
        m.submodules[name] = chunk
        view = fifo.o.payload
        m.d.comb += [chunk.i.valid.eq(fifo.o.valid), fifo.o.ready.eq(chunk.i.ready)]
        for e in range(self.block):
            m.d.comb += [chunk.i.payload[e].sum.eq(view.mantissas[e]),
                         chunk.i.payload[e].exponent.eq(view.exponent - fmt.frac_bits)]
        return chunk

    def _merged_output(self, m, main_fifo, group_layout, u_fifo, bias_fifo):
        """Output item: the block's channels continued with u and the bias, requantized."""
        pm = self.lanes_main
        group = main_fifo.o.payload
        sources = [main_fifo.o.valid]
        pieces = {}
        if u_fifo is not None:
            pieces["u"] = self._term_pieces(m, u_fifo, self._lr_format, "u_pieces")
        if bias_fifo is not None:
            pieces["bias"] = self._term_pieces(m, bias_fifo, self._out_format, "bias_pieces")
        sources += [p.o.valid for p in pieces.values()]
        blocks = self._groups_to_blocks(m, "merged_blocks")
        m.submodules.out_quant = quant = self._out_quant
        if self._merge is not None:
            m.submodules.merge = merge = self._merge
            join_valid = Signal(name="join_valid")
            valid = sources[0]
            for v in sources[1:]:
                valid = valid & v
            m.d.comb += [join_valid.eq(valid), merge.i.valid.eq(join_valid)]
            joined = join_valid & merge.i.ready
            m.d.comb += main_fifo.o.ready.eq(joined)
            for name, chunk in pieces.items():
                m.d.comb += chunk.o.ready.eq(joined)
                for lane in range(pm):
                    m.d.comb += [merge.i.payload[f"{name}_sums"][lane].eq(chunk.o.payload[lane].sum),
                                 merge.i.payload[f"{name}_exponents"][lane].eq(
                                     chunk.o.payload[lane].exponent)]
            for lane in range(pm):
                m.d.comb += [merge.i.payload.values[lane].eq(group[lane].value),
                             merge.i.payload.exponents[lane].eq(group[lane].exponent)]
            m.d.comb += [blocks.i.valid.eq(merge.o.valid), merge.o.ready.eq(blocks.i.ready)]
            for lane in range(pm):
                m.d.comb += [blocks.i.payload[lane].value.eq(merge.o.payload.values[lane]),
                             blocks.i.payload[lane].exponent.eq(merge.o.payload.exponents[lane])]
        else:  # no rank, no bias: the main results alone, requantized
            m.d.comb += [blocks.i.valid.eq(main_fifo.o.valid),
                         main_fifo.o.ready.eq(blocks.i.ready), blocks.i.payload.eq(group)]
        m.d.comb += [quant.i.valid.eq(blocks.o.valid), blocks.o.ready.eq(quant.i.ready)]
        for e in range(self.block):
            m.d.comb += [quant.i.payload.values[e].eq(blocks.o.payload[e].value),
                         quant.i.payload.lsbs[e].eq(blocks.o.payload[e].exponent)]
        wiring.connect(m, wiring.flipped(self.o), quant.o)

    @staticmethod
    def _feed(m, dots, acc, last):
        m.d.comb += [acc.i.valid.eq(dots.o.valid), acc.i.payload.last.eq(last)]
        for lane in range(dots.lanes):
            m.d.comb += [acc.i.payload.sums[lane].eq(dots.o.payload.sums[lane]),
                         acc.i.payload.exponents[lane].eq(dots.o.payload.exponents[lane])]


# operand selects take their flag from a copy per slice of at most this many bits
SELECT_SLICE_BITS = 36


def _memory_slices(m, name: str, width: int, depth: int) -> list:
    """A memory of ``depth`` rows of ``width`` bits as slices of at most
    :data:`SELECT_SLICE_BITS` bits, each an :class:`amaranth.lib.memory.Memory` of its own
    (submodules ``{name}_0``, ``{name}_1``, ...) with a write port and a synchronous read
    port transparent to it: ``[(lo, hi, write port, read port), ...]``, slice ``n``
    holding bits ``lo:hi`` of a row. The caller drives each slice's addresses from its own
    copy of the counters (named with :data:`hw.pipeline.REPLICA_TAG`): one address
    register driving the LUT RAMs of a whole block was a 3.9 to 5.5 ns route on ECP5
    (docs/synth.md, "Reaching 150 MHz on ECP5")."""
    slices = []
    for n, lo in enumerate(range(0, width, SELECT_SLICE_BITS)):
        hi = min(lo + SELECT_SLICE_BITS, width)
        memory = Memory(shape=hi - lo, depth=depth, init=[])
        m.submodules[f"{name}_{n}"] = memory
        write = memory.write_port()
        slices.append((lo, hi, write, memory.read_port(transparent_for=(write,))))
    return slices


def _select(flags, name: str, op: str, n: int, a: Value, b: Value) -> Value:
    """``Mux(step op n, a, b)`` with a registered copy of the flag (:class:`_StepFlags`,
    named with :data:`hw.pipeline.REPLICA_TAG`, so synthesis keeps the copies) per slice
    of at most :data:`SELECT_SLICE_BITS` bits: an operand select drives a dot array's
    lanes across the device, and one flag driving all of it was a 7.8 ns route on ECP5
    (docs/synth.md, "Reaching 150 MHz on ECP5")."""
    a, b = Value.cast(a), Value.cast(b)
    parts = []
    for k, lo in enumerate(range(0, len(a), SELECT_SLICE_BITS)):
        hi = min(lo + SELECT_SLICE_BITS, len(a))
        parts.append(Mux(flags(f"{name}_{REPLICA_TAG}_{k}", op, n), a[lo:hi], b[lo:hi]))
    return Cat(*parts)


class _StepFlags:
    """Registered tests of a step counter: ``flags(name, op, n)`` is a register holding
    ``step op n`` (``op`` "lt", "eq" or "ge") at every cycle, updated with the counter
    (``step`` counts accepted items modulo ``steps``; ``flags.last`` is ``step == steps -
    1``), so no comparator sits between the counter and the logic the test drives.

    On an accepted item a flag loads the test of the next step from a lookahead register
    (one per test, shared by the flag's copies) that holds it, and the lookahead loads the
    test of the step after that (``step op n - 2`` on the counter register itself, or of 0
    or 1 across the wrap). So a flag's next value is a register's output: the copies of a
    flag spread over the device (:func:`_select`) are each a route from that register, not
    from a comparator's carry chain (docs/synth.md, "Reaching 150 MHz on ECP5")."""

    _OPS = {"lt": lambda v, n: v < n, "eq": lambda v, n: v == n, "ge": lambda v, n: v >= n}
    _BELOW_ZERO = {"lt": False, "eq": False, "ge": True}   # the test of a step >= 0 against n < 0

    def __init__(self, m, step, accept, steps: int):
        self._m, self._step, self._accept, self._steps = m, step, accept, steps
        self._lookahead = {}
        self.last = Signal(name="last_step", init=steps == 1)
        # step == steps - 2: the next accepted item makes the step the last
        self._penultimate = steps == 1 if steps == 1 else step == steps - 2
        with m.If(accept):
            m.d.sync += self.last.eq(Mux(self.last, steps == 1, self._penultimate))

    def _test(self, op: str, n: int):
        return self._BELOW_ZERO[op] if n < 0 else self._OPS[op](self._step, n)

    def _ahead(self, op: str, n: int) -> Signal:
        """The test of the step after the current one (``(step + 1) % steps op n``)."""
        if (op, n) not in self._lookahead:
            test, steps = self._OPS[op], self._steps
            ahead = Signal(name=f"step_{op}_{n}_ahead".replace("-", "m"),
                           init=bool(test(1 % steps, n)))
            # on an accepted item: the test of (step + 2) % steps
            after = Mux(self.last, bool(test(1 % steps, n)),
                        Mux(self._penultimate, bool(test(0, n)), self._test(op, n - 2)))
            with self._m.If(self._accept):
                self._m.d.sync += ahead.eq(after)
            self._lookahead[op, n] = ahead
        return self._lookahead[op, n]

    def __call__(self, name: str, op: str, n: int):
        flag = Signal(name=name, init=bool(self._OPS[op](0, n)))
        ahead = self._ahead(op, n)
        with self._m.If(self._accept):
            self._m.d.sync += flag.eq(ahead)
        return flag


def _build(*, d_in, d_out, rank, lanes_main, lanes_lowrank, guard_bits, dot_stages, acc_slots,
           acc_stages, quant_stages, merged, bias, merge_stages, **p) -> LQERLinear:
    from hw.designs import params_format
    return LQERLinear(d_in=d_in, d_out=d_out, rank=rank, a_format=params_format(p, "a_width"),
                      w_format=params_format(p, "w_width"),
                      lowrank_format=params_format(p, "lowrank_width"), lanes_main=lanes_main,
                      lanes_lowrank=lanes_lowrank, guard_bits=guard_bits, dot_stages=dot_stages,
                      acc_slots=acc_slots, acc_stages=acc_stages, quant_stages=quant_stages,
                      output="mxint" if merged else "terms", bias=bool(bias),
                      merge_stages=merge_stages)


def _build_resq(*, d_in, d_out, rank, lanes_main, lanes_high, guard_bits, dot_stages, acc_slots,
                acc_stages, quant_stages, merged, bias, merge_stages, **p) -> LQERLinear:
    from hw.designs import params_format
    return LQERLinear(d_in=d_in, d_out=d_out, rank=rank, a_format=params_format(p, "a_width"),
                      w_format=params_format(p, "w_width"),
                      lowrank_format=params_format(p, "high_width"), lanes_main=lanes_main,
                      lanes_lowrank=lanes_high, guard_bits=guard_bits, dot_stages=dot_stages,
                      acc_slots=acc_slots, acc_stages=acc_stages, quant_stages=quant_stages,
                      output="mxint" if merged else "terms", bias=bool(bias),
                      merge_stages=merge_stages, mode="resq")


def _shared_params(term: str, out: str) -> tuple:
    """The pipeline and output parameters both registry entries share."""
    from hw.designs import Param
    return (
        Param("guard_bits", 8, 0, 32, "accumulator fraction bits below the running maximum"),
        Param("dot_stages", 7, 1, 8, "pipeline stages of each dot array"),
        Param("acc_slots", 4, 1, 4, "accumulator loop registers = interleaved output groups"),
        Param("acc_stages", 5, 0, 6, "accumulator registers before its loop"),
        Param("quant_stages", 19, 1, 20, "pipeline stages of each requantizer"),
        Param("merged", 0, 0, 1, f"1: merge main + {term} (+ bias) and requantize to "
              f"MXINT({out}) blocks; 0: emit the two terms"),
        Param("bias", 0, 0, 1, "1 (with merged=1): a bias block per output block, from the "
              "stream"),
        Param("merge_stages", 6, 1, 16, "pipeline stages of the merge (merged=1)"),
    )


def _register() -> None:
    from hw.designs import (Design, Param, block_param, exponent_bits_param, register,
                            width_param)
    register(Design("lqer-linear", "LQER dual-path linear layer: MXINT4 main path plus "
                    "MXINT8 low-rank path (rank=0: main path only)", (
        Param("d_in", 64, 1, MAX_DIM, "input features (a multiple of block)"),
        Param("d_out", 64, 1, MAX_DIM, "output features (a multiple of block)"),
        Param("rank", 32, 0, MAX_DIM, "low-rank factor rank (multiple of block); 0: main only"),
        block_param(),
        width_param("a_width", 8, "activation element bits (also t, u and the merged output)"),
        width_param("w_width", 4, "main weight (W_q) element bits"),
        width_param("lowrank_width", 8, "A, B, t, u element bits (= a_width when rank > 0)"),
        exponent_bits_param(),
        Param("lanes_main", 1, 1, 256, "main-path dot lanes (output channels per step)"),
        Param("lanes_lowrank", 0, 0, 256, "low-rank dot lanes; 0: the least that never "
              "stalls the main path"),
    ) + _shared_params("u", "a_width"), _build))
    register(Design("resq-linear", "ResQ mode of the dual-path linear layer: MXINT4 x MXINT4 "
                    "over the d_in - r low-precision coordinates beside MXINT8 over the r "
                    "high-precision ones (input projected outside: z = x U)", (
        Param("d_in", 128, 1, MAX_DIM, "input features (a multiple of block)"),
        Param("d_out", 128, 1, MAX_DIM, "output features (a multiple of block)"),
        Param("rank", 16, 0, MAX_DIM, "r, the high-precision coordinates (a multiple of "
              "block below d_in; the paper: d_in/8); 0: the wide path only"),
        block_param(),
        width_param("a_width", 4, "low-precision coordinate (z_l) element bits"),
        width_param("w_width", 4, "low-precision weight (W_l) element bits"),
        width_param("high_width", 8, "z_h, W_h, the merged output and bias element bits"),
        exponent_bits_param(),
        Param("lanes_main", 1, 1, 256, "wide-path dot lanes (output channels per step)"),
        Param("lanes_high", 0, 0, 256, "narrow-path dot lanes; 0: the least that never "
              "stalls the wide path"),
    ) + _shared_params("high", "high_width"), _build_resq))


_register()
