"""The LQER dual-path linear datapath: a 4-bit high-rank path beside an 8-bit low-rank path.

Per token (docs/design.md, Datapaths, reduction-axis blocking; bit-exact with
``sw.lqer_reference.reference_lqer_linear`` and ``sw.bittrue.lqer_linear``)::

    main = accumulate(x_q . W_q)          P_m lanes, MXINT(a_width) x MXINT(w_width), over d_in
    t    = Q(accumulate(x_q . A))         P_l lanes over d_in, requantized along the rank
    u    = Q(accumulate(t . B))           the same P_l lanes over the rank, requantized along d_out
    y    = main + u                       emitted exactly as two terms per output channel

Structure: two :class:`hw.dot_array.DotArray` + :class:`hw.accumulator.Accumulator`
pairs run free (their outputs are never blocked) and write into small register
buffers; one :class:`hw.quantizer.Quantizer` requantizes the low-rank results a
block at a time (first the ``rank / block`` blocks of t, then the ``d_out / block``
blocks of u). A step counter follows :class:`hw.lqer_schedule.LQERSchedule`; the
only waits are at a token's first item (the previous token's outputs must be out,
since the buffers are single) and the fixed gap before the U phase.

Storage is outside the datapath: W_q, A^T and B^T blocks arrive on the input stream
beside the activations, in schedule order (:mod:`hw.lqer_schedule` documents it and
builds it from the operand matrices). Input item, per step::

    {"x": MXINTx block (read on the token's first nb_in steps, then replayed from a buffer),
     "w": P_m MXINTw blocks of W_q (main path), "f": P_l MXINT blocks of A^T or B^T}

Output item, per block of ``block`` output channels::

    {"main_values", "main_exponents": per channel, value main_values * 2**main_exponents,
     "u": the MXINT block of u}      y_i = main_i + u_i (the bias is added outside)

The merge is left as two exact terms because their exponents may differ by
hundreds of bits; a consumer adds them (``sw.bittrue`` in float64) or a later
stage requantizes. ResQ (one 8-bit GEMV over a projected subspace) is the low-rank
path with the T phase only; the phase list in the schedule is where it would go.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.accumulator import Accumulator
from hw.dot_array import DotArray
from hw.lqer_schedule import LQERSchedule, default_lowrank_lanes
from hw.mxint_layout import block_layout, check_hardware_format
from hw.params import check_int, is_power_of_two, signed_for_range
from hw.quantizer import MAX_IN_WIDTH, Quantizer
from hw.unused import owned, rejectable
from sw.datapath import MAX_DIM, lqer_linear_reason
from sw.mxint import MXIntFormat

__all__ = ["LQERLinear"]


class LQERLinear(wiring.Component):
    """Ports: ``i`` (stream of steps, see the module doc) and ``o`` (stream of output blocks).

    Parameters (keyword-only): ``d_in``, ``d_out`` (1..``MAX_DIM``, multiples of the
    block), ``rank`` (0..min(d_in, d_out), a multiple of the block; 0 is the plain MXINT
    layer, the main path alone, for cost comparisons); ``a_format`` (activations, default
    MXINT8 block 16), ``w_format`` (W_q, default MXINT4), ``lowrank_format`` (A, B, t and
    u; default MXINT8; its width must equal ``a_format``'s when ``rank > 0``, since one
    low-rank array takes x, then t), all sharing one block; ``lanes_main`` (divides
    ``d_out``); ``lanes_lowrank`` (0: the default,
    :func:`hw.lqer_schedule.default_lowrank_lanes`; else a power of two dividing the
    block); ``guard_bits`` (0..32); ``dot_stages`` (1..8). Raises ``ValueError`` /
    ``TypeError`` naming the parameter.
    """

    def __init__(self, *, d_in: int = 64, d_out: int = 64, rank: int = 32,
                 a_format: MXIntFormat = MXIntFormat(width=8),
                 w_format: MXIntFormat = MXIntFormat(width=4),
                 lowrank_format: MXIntFormat = MXIntFormat(width=8),
                 lanes_main: int = 4, lanes_lowrank: int = 0, guard_bits: int = 8,
                 dot_stages: int = 2):
        with rejectable(self):
            self._setup(d_in, d_out, rank, a_format, w_format, lowrank_format, lanes_main,
                        lanes_lowrank, guard_bits, dot_stages)
        super().__init__({"i": In(stream.Signature(data.StructLayout(self._in_fields))),
                          "o": Out(stream.Signature(data.StructLayout(self._out_fields)))})

    def _setup(self, d_in, d_out, rank, a_format, w_format, lowrank_format, lanes_main,
               lanes_lowrank, guard_bits, dot_stages):
        check_hardware_format("a_format", a_format)
        block = a_format.block
        for name, fmt in (("w_format", w_format), ("lowrank_format", lowrank_format)):
            check_hardware_format(name, fmt)
            if fmt.block != block:
                raise ValueError(f"{name}.block must equal a_format.block ({block}); "
                                 f"got {fmt.block}")
        for name, value, low in (("d_in", d_in, 1), ("d_out", d_out, 1), ("rank", rank, 0)):
            check_int(name, value, low, MAX_DIM)
        # the shape and format rule, stated once in sw (also what `quantize` reports)
        reason = lqer_linear_reason(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                    a_width=a_format.width, lowrank_width=lowrank_format.width,
                                    flavour=a_format.flavour, rounding=a_format.rounding)
        if reason is not None:
            raise ValueError(reason)
        check_int("lanes_main", lanes_main, 1, 256)
        if d_out % lanes_main:
            raise ValueError(f"lanes_main must divide d_out ({d_out}); got {lanes_main}")
        check_int("lanes_lowrank", lanes_lowrank, 0, 256)
        if lanes_lowrank and not (is_power_of_two(lanes_lowrank) and lanes_lowrank <= block):
            raise ValueError(f"lanes_lowrank must be 0 (default) or a power of two in 1..{block} "
                             f"(it divides block); got {lanes_lowrank}")
        check_int("guard_bits", guard_bits, 0, 32)
        check_int("dot_stages", dot_stages, 1, 8)
        self._a_format, self._w_format, self._lr_format = a_format, w_format, lowrank_format
        if rank and not lanes_lowrank:
            lanes_lowrank = default_lowrank_lanes(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                                  lanes_main=lanes_main, dot_stages=dot_stages)
        if not rank:
            lanes_lowrank = 0
        self._schedule = LQERSchedule(d_in, d_out, rank, block, lanes_main, max(lanes_lowrank, 1),
                                      dot_stages)
        self._guard_bits = guard_bits
        self._lanes_lowrank = lanes_lowrank

        nb_in, nb_k = d_in // block, rank // block
        self._main_dots = DotArray(lanes=lanes_main, a_format=a_format, w_format=w_format,
                                   stages=dot_stages)
        self._main_acc = Accumulator(sum_width=self._main_dots.sum_width,
                                     exponent_range=self._main_dots.exponent_range,
                                     guard_bits=guard_bits, max_partials=nb_in,
                                     lanes=lanes_main)
        parts = [self._main_dots, self._main_acc]
        self._lr_dots = self._lr_acc = self._quant = None
        if rank:
            self._lr_dots = DotArray(lanes=lanes_lowrank, a_format=a_format,
                                     w_format=lowrank_format, stages=dot_stages)
            self._lr_acc = Accumulator(sum_width=self._lr_dots.sum_width,
                                       exponent_range=self._lr_dots.exponent_range,
                                       guard_bits=guard_bits, max_partials=max(nb_in, nb_k),
                                       lanes=lanes_lowrank)
            if self._lr_acc.acc_width > MAX_IN_WIDTH:
                raise ValueError(f"guard_bits must keep the low-rank accumulator within "
                                 f"{MAX_IN_WIDTH} bits (the quantizer's input); got "
                                 f"{self._lr_acc.acc_width}")
            lsb_shape = signed_for_range(*self._lr_acc.out_exponent_range)
            self._quant = Quantizer(out_format=lowrank_format, in_width=self._lr_acc.acc_width,
                                    lsb_width=lsb_shape.width, stages=1)
            parts += [self._lr_dots, self._lr_acc, self._quant]
        owned(*parts)

        in_fields = {"x": block_layout(a_format),
                     "w": data.ArrayLayout(block_layout(w_format), lanes_main)}
        out_fields = {
            "main_values": data.ArrayLayout(signed(self._main_acc.acc_width), block),
            "main_exponents": data.ArrayLayout(
                signed_for_range(*self._main_acc.out_exponent_range), block),
        }
        if rank:
            in_fields["f"] = data.ArrayLayout(block_layout(lowrank_format), lanes_lowrank)
            out_fields["u"] = block_layout(lowrank_format)
        self._in_fields, self._out_fields = in_fields, out_fields

    # -- published facts -----------------------------------------------------------------
    @property
    def schedule(self) -> LQERSchedule:
        return self._schedule

    @property
    def d_in(self) -> int:
        return self._schedule.d_in

    @property
    def d_out(self) -> int:
        return self._schedule.d_out

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
    def a_format(self) -> MXIntFormat:
        return self._a_format

    @property
    def w_format(self) -> MXIntFormat:
        return self._w_format

    @property
    def lowrank_format(self) -> MXIntFormat:
        """Format of A^T, B^T, t and u."""
        return self._lr_format

    @property
    def main_acc_width(self) -> int:
        return self._main_acc.acc_width

    @property
    def lowrank_acc_width(self) -> int:
        return 0 if self._lr_acc is None else self._lr_acc.acc_width

    @property
    def steps_per_token(self) -> int:
        """Input items per token."""
        return self._schedule.steps

    @property
    def cycles_per_token(self) -> int:
        """Cycles per token at full rate (input always valid, output always ready)."""
        return self._schedule.cycles_per_token

    @property
    def latency(self) -> int:
        """Cycles from a token's last input item to its last output block, at full rate."""
        return self._schedule.latency

    # -- hardware ------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        sch = self._schedule
        nb_in, nb_k, nb_out = sch.nb_in, sch.nb_k, sch.nb_out
        pm, pl = sch.lanes_main, self._lanes_lowrank
        ds = sch.dot_stages
        m.submodules.main_dots = main_dots = self._main_dots
        m.submodules.main_acc = main_acc = self._main_acc

        # input side: step counters of the current token
        step = Signal(range(sch.steps), name="step")
        xblock = Signal(range(nb_in), name="x_block")
        token_open = Signal(name="token_open")  # accepted, outputs not all emitted
        accept = Signal(name="accept")
        m.d.comb += [self.i.ready.eq(~((step == 0) & token_open)),
                     accept.eq(self.i.valid & self.i.ready)]
        last_step = step == sch.steps - 1
        with m.If(accept):
            m.d.sync += [step.eq(Mux(last_step, 0, step + 1)),
                         xblock.eq(Mux(last_step | (xblock == nb_in - 1), 0, xblock + 1))]
            with m.If(step == 0):
                m.d.sync += token_open.eq(1)

        # activation buffer: the token's x blocks, kept for the later output groups
        x_bits = block_layout(self._a_format).size
        xbuf = [Signal(x_bits, name=f"x_buf_{k}", reset_less=True) for k in range(nb_in)]
        item_x = self.i.payload.x.as_value()
        first_pass = step < nb_in
        with m.If(accept & first_pass):
            for k in range(nb_in):
                with m.If(xblock == k):
                    m.d.sync += xbuf[k].eq(item_x)
        x_operand = Signal(x_bits, name="x_operand")
        m.d.comb += x_operand.eq(Mux(first_pass, item_x, Array(xbuf)[xblock]))

        # main path: dot array -> accumulator -> per-channel buffer
        m.d.comb += [main_dots.i.valid.eq(accept & (step < sch.main_steps)),
                     main_dots.i.payload.x.eq(x_operand),
                     main_dots.i.payload.w.eq(self.i.payload.w),
                     main_dots.o.ready.eq(1),
                     main_acc.o.ready.eq(1)]
        main_last = self._delay(m, xblock == nb_in - 1, ds, "main_last")
        self._feed_accumulator(m, main_dots, main_acc, main_last)
        groups = sch.d_out // pm
        main_group = Signal(range(groups), name="main_group")
        main_done = Signal(range(groups + 1), name="main_groups_done")
        mv = [Signal(signed(main_acc.acc_width), name=f"main_value_{c}", reset_less=True)
              for c in range(sch.d_out)]
        me = [Signal(self.o.payload.main_exponents[0].shape(), name=f"main_exp_{c}",
                     reset_less=True) for c in range(sch.d_out)]
        with m.If(main_acc.o.valid):
            m.d.sync += [main_group.eq(Mux(main_group == groups - 1, 0, main_group + 1)),
                         main_done.eq(main_done + 1)]
            for g in range(groups):
                with m.If(main_group == g):
                    for lane in range(pm):
                        m.d.sync += [mv[g * pm + lane].eq(main_acc.o.payload.values[lane]),
                                     me[g * pm + lane].eq(main_acc.o.payload.exponents[lane])]

        # output side: one block of channels per item, once all its terms are in
        out_block = Signal(range(nb_out), name="out_block")
        ready_terms = main_done * pm >= (out_block + 1) * sch.block
        if self.rank:
            quant_count = self._lowrank(m, accept, step, xblock, x_operand)
            ubuf = self._ubuf
            ready_terms = ready_terms & (quant_count >= nb_k + 1 + out_block)
            m.d.comb += self.o.payload.u.eq(Array(ubuf)[out_block])
        m.d.comb += self.o.valid.eq(ready_terms)
        for k in range(sch.block):
            m.d.comb += [
                self.o.payload.main_values[k].eq(
                    Array([mv[ob * sch.block + k] for ob in range(nb_out)])[out_block]),
                self.o.payload.main_exponents[k].eq(
                    Array([me[ob * sch.block + k] for ob in range(nb_out)])[out_block]),
            ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(out_block == nb_out - 1):
                # the token is complete: its buffers may take the next token
                m.d.sync += [out_block.eq(0), token_open.eq(0), main_done.eq(0)]
                if self.rank:
                    m.d.sync += quant_count.eq(0)
            with m.Else():
                m.d.sync += out_block.eq(out_block + 1)
        return m

    def _lowrank(self, m, accept, step, xblock, x_operand):
        """The T and U phases on one dot array, accumulator and requantizer; returns the
        count of requantized blocks of the token (t blocks first, then u blocks)."""
        sch = self._schedule
        nb_in, nb_k, nb_out, pl = sch.nb_in, sch.nb_k, sch.nb_out, self._lanes_lowrank
        m.submodules.lowrank_dots = dots = self._lr_dots
        m.submodules.lowrank_acc = acc = self._lr_acc
        m.submodules.requantizer = quant = self._quant
        block_bits = block_layout(self._lr_format).size
        tbuf = [Signal(block_bits, name=f"t_buf_{k}", reset_less=True) for k in range(nb_k)]
        self._ubuf = ubuf = [Signal(block_bits, name=f"u_buf_{k}", reset_less=True)
                             for k in range(nb_out)]

        t_phase = step < sch.t_steps
        u_phase = (step >= sch.u_start) & (step < sch.lowrank_steps)
        tblock = Signal(range(nb_k), name="t_block")
        with m.If(accept & u_phase):
            m.d.sync += tblock.eq(Mux(tblock == nb_k - 1, 0, tblock + 1))
        m.d.comb += [dots.i.valid.eq(accept & (t_phase | u_phase)),
                     dots.i.payload.x.eq(Mux(t_phase, x_operand, Array(tbuf)[tblock])),
                     dots.i.payload.w.eq(self.i.payload.f),
                     dots.o.ready.eq(1),
                     acc.o.ready.eq(1),
                     quant.o.ready.eq(1)]
        last = self._delay(m, Mux(t_phase, xblock == nb_in - 1, tblock == nb_k - 1),
                           sch.dot_stages, "lowrank_last")
        self._feed_accumulator(m, dots, acc, last)

        # staging: block / P_l accumulator results make one block for the requantizer
        pieces = sch.block // pl
        lsb_shape = quant.i.payload.lsbs[0].shape()
        stage_v = [Signal(signed(acc.acc_width), name=f"stage_value_{k}", reset_less=True)
                   for k in range(sch.block)]
        stage_e = [Signal(lsb_shape, name=f"stage_lsb_{k}", reset_less=True)
                   for k in range(sch.block)]
        piece = Signal(range(pieces), name="stage_piece")
        stage_full = Signal(name="stage_full")
        m.d.sync += stage_full.eq(acc.o.valid & (piece == pieces - 1))
        with m.If(acc.o.valid):
            m.d.sync += piece.eq(Mux(piece == pieces - 1, 0, piece + 1))
            for p in range(pieces):
                with m.If(piece == p):
                    for lane in range(pl):
                        m.d.sync += [stage_v[p * pl + lane].eq(acc.o.payload.values[lane]),
                                     stage_e[p * pl + lane].eq(acc.o.payload.exponents[lane])]
        m.d.comb += quant.i.valid.eq(stage_full)
        for k in range(sch.block):
            m.d.comb += [quant.i.payload.values[k].eq(stage_v[k]),
                         quant.i.payload.lsbs[k].eq(stage_e[k])]

        # requantized blocks: t (read by the U phase), then u (read by the output)
        count = Signal(range(nb_k + nb_out + 1), name="requantized_blocks")
        with m.If(quant.o.valid):
            m.d.sync += count.eq(count + 1)
            for k, dest in enumerate(tbuf + ubuf):
                with m.If(count == k):
                    m.d.sync += dest.eq(quant.o.payload.as_value())
        return count

    @staticmethod
    def _delay(m, value, cycles: int, name: str):
        """``value`` delayed by ``cycles`` free-running registers (the dot arrays' latency)."""
        for k in range(cycles):
            reg = Signal(name=f"{name}_d{k}")
            m.d.sync += reg.eq(value)
            value = reg
        return value

    @staticmethod
    def _feed_accumulator(m, dots, acc, last):
        m.d.comb += [acc.i.valid.eq(dots.o.valid), acc.i.payload.last.eq(last)]
        for lane in range(dots.lanes):
            m.d.comb += [acc.i.payload.sums[lane].eq(dots.o.payload.sums[lane]),
                         acc.i.payload.exponents[lane].eq(dots.o.payload.exponents[lane])]


def _build(*, d_in, d_out, rank, lanes_main, lanes_lowrank, guard_bits, dot_stages,
           **p) -> LQERLinear:
    from hw.designs import params_format
    return LQERLinear(d_in=d_in, d_out=d_out, rank=rank, a_format=params_format(p, "a_width"),
                      w_format=params_format(p, "w_width"),
                      lowrank_format=params_format(p, "lowrank_width"), lanes_main=lanes_main,
                      lanes_lowrank=lanes_lowrank, guard_bits=guard_bits, dot_stages=dot_stages)


def _register() -> None:
    from hw.designs import (Design, Param, block_param, exponent_bits_param, register,
                            width_param)
    register(Design("lqer-linear", "LQER dual-path linear layer: MXINT4 main path plus "
                    "MXINT8 low-rank path (rank=0: main path only)", (
        Param("d_in", 64, 1, MAX_DIM, "input features (a multiple of block)"),
        Param("d_out", 64, 1, MAX_DIM, "output features (a multiple of block)"),
        Param("rank", 32, 0, MAX_DIM, "low-rank factor rank (multiple of block); 0: main only"),
        block_param(),
        width_param("a_width", 8, "activation element bits (also t and u)"),
        width_param("w_width", 4, "main weight (W_q) element bits"),
        width_param("lowrank_width", 8, "A, B, t, u element bits (= a_width when rank > 0)"),
        exponent_bits_param(),
        Param("lanes_main", 4, 1, 256, "main-path dot lanes (output channels per step)"),
        Param("lanes_lowrank", 0, 0, 256, "low-rank dot lanes; 0: the least that never "
              "stalls the main path"),
        Param("guard_bits", 8, 0, 32, "accumulator fraction bits below the running maximum"),
        Param("dot_stages", 2, 1, 8, "pipeline stages of each dot array"),
    ), _build))


_register()
