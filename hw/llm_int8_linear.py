"""The LLM.int8() scatter/gather linear datapath (``llm-int8-linear``), bit-exact with
:func:`sw.llm_int8.linear` (Dettmers et al. 2022; bitsandbytes' ``Linear8bitLt`` in
inference mode), one tile of ``T`` tokens (the detection group) at a time.

Per tile (:mod:`hw.llm_int8_schedule` states the stream order and the timing)::

    detect    |x| >= threshold per entry; s_x per token (absmax of the non-outliers);
              the outlier columns of the tile (OR over its tokens)       Int8Detector
    compact   the mask, chunk by chunk, into lists of <= M column
              indices per pass (a chunk of n outliers: max(1, ceil(n/M)) passes)
                                                                         Int8Compaction
    per token of the tile:
      quantize  codes = round_half_even(fl32(x * r)), 0 in outlier columns  Int8Quantizer
      int path  C = x_i8 . W_i8 (P lanes), Y_b = fl32(fl32(fl32(fl32(C) s_x) w_scale) + b)
                                                                         Int8IntPath
      gather    one request per outlier column on ``req`` (increasing column); ``resp``
                brings the column's binary16 weights, d_out / P_fp pieces of P_fp
      fp path   acc = +0 + x_j W[:, j] + ... in increasing j (P_fp lanes)   FPAccumulate
      merge     Y = fl32(Y_b + acc), binary16 or binary32 out              Int8Merge

The weight memory of the gather is outside the datapath: the ``req`` port is the
irregular access that LQER avoids. Zero outliers send no request and skip the fp path;
more than ``M`` in a chunk take extra compaction passes. The int and fp paths of a token
run at the same time; the merge waits for the token's fp path to finish (its sums are
final only after the last outlier column), the int results waiting in a FIFO.

Everything that grows with the layer is a memory: the tile's activations (``T d_in``
binary16), the mask (``d_in`` bits), the codes (``d_in`` bytes), the index lists, the
int results (``d_out`` binary32) and the fp sums (``d_out`` binary32). One tile is in
flight and, inside it, one token: a token starts when the previous one's last output left.

**Without the outlier path** (``outliers=False``, registered as ``w8a8-linear``): W8A8,
vector-wise int8 weights and activations, bit-exact with :func:`sw.llm_int8.w8a8_linear`
(:func:`sw.llm_int8.linear` at ``threshold = inf``). The detector keeps only its absmax
(threshold infinity: the mask is always 0); there is no mask memory, no compaction, no
index memory, no gather port, no fp path and no merge::

    detect    s_x per token (absmax of every entry)               Int8Detector
    per token of the tile:
      quantize  codes = round_half_even(fl32(x * r))                 Int8Quantizer
      int path  Y_b = fl32(fl32(fl32(fl32(C) s_x) w_scale) + b)      Int8IntPath
      output    fl16(Y_b) (binary16 out) into the output FIFO, or Y_b  FP32ToFP16

The merge is left out because it is the identity here: with no outlier column it would
add ``acc = +0``, and ``fl32(Y_b + 0) = Y_b`` for every ``Y_b`` but ``-0``, which the int
path never gives. ``C = 0`` gives ``+0`` (``s_x``, ``w_scale >= 0``); otherwise ``|fl32(C)
s_x| >= 2^-24`` (``s_x`` a binary16 value ``> 0``) and ``w_scale = fl32(s_w / 127^2) >=
2^-24 / 127^2``, so ``Y_int`` (at least ``2^-62``) does not underflow to zero; and a bias
that cancels ``Y_int`` exactly, or ``+0 + -0``, gives ``+0`` under round to nearest. The
input stream and the output are those of the outlier design (:mod:`hw.llm_int8_schedule`);
the int results FIFO is the output FIFO.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.fifo import BufferedFIFO, RegisteredFIFO
from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp_accumulate import MAX_LANES as MAX_FP_LANES
from hw.fp_accumulate import FPAccumulate, owned_list
from hw.int8_compaction import Int8Compaction
from hw.int8_detector import INF_BITS, Int8Detector
from hw.int8_int_path import Int8IntPath
from hw.int8_merge import Int8Merge
from hw.int8_quantizer import Int8Quantizer
from hw.llm_int8_schedule import LLMInt8Schedule
from hw.params import check_int
from hw.pipeline import REPLICA_TAG, SLICE_BITS, next_below, next_equals
from hw.stream_register import StreamRegister
from hw.unused import rejectable
from hw.layer_facts import LayerFacts
from sw.datapath import MAX_DIM
from sw.llm_int8 import MAX_D_IN, check_threshold, threshold_binary16

__all__ = ["LLMInt8Linear", "MAX_TILE", "OUTLIER_DEFAULTS"]

MAX_TILE = 16
# the outlier path's parameters and their defaults (given only with outliers=True)
OUTLIER_DEFAULTS = {"fp_lanes": 4, "outputs": 4, "threshold": 6.0, "outstanding": 4}
_NO_OUTLIER_PATH = {"fp_lanes": 1, "outputs": 1, "threshold": math.inf, "outstanding": 1}


def _bits_of_threshold(threshold) -> int:
    return int(threshold_binary16(threshold).view("uint16"))


class LLMInt8Linear(LayerFacts, wiring.Component):
    """Ports: ``i`` (stream of steps: ``{"x": ArrayLayout(unsigned(16), x_lanes), "w":
    ArrayLayout(signed(8), lanes), "c": {"scale": unsigned(32)[, "bias": unsigned(32)]}}``),
    ``o`` (stream of ``{"y": unsigned(16 or 32)}``, one output channel per item) and, with
    the outlier path, ``req`` (Out stream of ``{"column": unsigned(column bits)}``) and
    ``resp`` (In stream of ``{"w": ArrayLayout(unsigned(16), fp_lanes)}``).

    Parameters (keyword-only): ``d_in`` (``lanes``..``MAX_DIM``, a multiple of
    ``x_lanes``), ``d_out`` (1..``MAX_DIM``, a multiple of ``lanes`` and ``fp_lanes``);
    ``x_lanes`` (B, 1..256: activations per input item, the detector's and the
    compaction's width), ``lanes`` (P, int8 MACs per cycle, 1..256); ``tile`` (T, 1..16
    tokens per tile, the detection group; 1 without the outlier path); ``bias``;
    ``out_fp16`` (binary16 outputs, else binary32); ``outliers`` (the outlier path;
    ``False``: W8A8, module doc). The outlier
    path's, given only with ``outliers`` (``None``: :data:`OUTLIER_DEFAULTS`):
    ``fp_lanes`` (P_fp, 1..64), ``outputs`` (M, 1..B: column indices per compaction
    pass), ``threshold`` (a number >= 0, inf: no outliers; compared as
    :func:`sw.llm_int8.threshold_binary16`), ``outstanding`` (1..16 gather requests in
    flight). Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, d_in: int = 64, d_out: int = 64, x_lanes: int = 16, lanes: int = 16,
                 fp_lanes: int | None = None, outputs: int | None = None,
                 threshold: float | None = None, tile: int = 1, bias: bool = False,
                 out_fp16: bool = True, outstanding: int | None = None,
                 outliers: bool = True):
        with rejectable(self):
            if outliers not in (True, False, 0, 1):
                raise TypeError(f"outliers must be a bool; got {outliers!r}")
            self._outliers = bool(outliers)
            given = {"fp_lanes": fp_lanes, "outputs": outputs, "threshold": threshold,
                     "outstanding": outstanding}
            if not self._outliers:
                for name, value in given.items():
                    if value is not None:
                        raise ValueError(f"{name} must not be given without the outlier path "
                                         f"(outliers=False); got {value!r}")
                if tile != 1:
                    raise ValueError(f"tile must be 1 without the outlier path (it is the "
                                     f"detection group); got {tile!r}")
            # without the outlier path its schedule fields are placeholders no check refuses
            defaults = OUTLIER_DEFAULTS if self._outliers else _NO_OUTLIER_PATH
            p = {k: defaults[k] if v is None else v for k, v in given.items()}
            self._setup(d_in, d_out, x_lanes, lanes, p["fp_lanes"], p["outputs"],
                        p["threshold"], tile, bias, out_fp16, p["outstanding"])
        ports = {
            "i": In(stream.Signature(data.StructLayout(self._in_fields))),
            "o": Out(stream.Signature(data.StructLayout({"y": unsigned(self._out_width)}))),
        }
        if self._outliers:
            ports["req"] = Out(stream.Signature(data.StructLayout({
                "column": unsigned(self._column_bits)})))
            ports["resp"] = In(stream.Signature(data.StructLayout({
                "w": data.ArrayLayout(unsigned(16), self._schedule.fp_lanes)})))
        super().__init__(ports)

    def _setup(self, d_in, d_out, x_lanes, lanes, fp_lanes, outputs, threshold, tile, bias,
               out_fp16, outstanding):
        check_int("x_lanes", x_lanes, 1, 256)
        check_int("lanes", lanes, 1, 256)
        check_int("fp_lanes", fp_lanes, 1, MAX_FP_LANES)
        check_int("d_in", d_in, 1, min(MAX_DIM, MAX_D_IN))
        check_int("d_out", d_out, 1, MAX_DIM)
        if d_in % x_lanes:
            raise ValueError(f"x_lanes must divide d_in ({d_in}); got {x_lanes}")
        if d_out % lanes or lanes > d_in:
            raise ValueError(f"lanes must divide d_out ({d_out}) and be at most d_in ({d_in}); "
                             f"got {lanes}")
        if d_out % fp_lanes:
            raise ValueError(f"fp_lanes must divide d_out ({d_out}); got {fp_lanes}")
        check_int("outputs", outputs, 1, x_lanes)
        check_int("tile", tile, 1, MAX_TILE)
        check_int("outstanding", outstanding, 1, 16)
        try:
            self._threshold = check_threshold(threshold)
        except ValueError:
            raise ValueError(f"threshold must be a number >= 0 (inf: no outliers); "
                             f"got {threshold!r}") from None
        for name, value in (("bias", bias), ("out_fp16", out_fp16)):
            if value not in (True, False, 0, 1):
                raise TypeError(f"{name} must be a bool; got {value!r}")
        self._threshold_bits = _bits_of_threshold(self._threshold)
        self._bias, self._out_fp16 = bool(bias), bool(out_fp16)
        self._outstanding = outstanding
        nx = d_in // x_lanes
        detector = Int8Detector(lanes=x_lanes, threshold_bits=min(self._threshold_bits, INF_BITS),
                                backpressure=False)
        self._out_width = 16 if out_fp16 else 32
        if self._outliers:
            self._detector, self._compaction, self._quantizer = owned_list([
                detector, Int8Compaction(lanes=x_lanes, outputs=outputs, chunks=nx),
                Int8Quantizer()])
            self._int_path, self._fp_path, self._merge = owned_list([
                Int8IntPath(lanes=lanes, d_in=d_in, bias=bias),
                FPAccumulate(lanes=fp_lanes, groups=d_out // fp_lanes),
                Int8Merge(out_fp16=out_fp16)])
            self._column_bits = self._compaction.column_bits
            self._to_fp16 = None
            int_output = tuple(self._int_path.output_cycle(p) for p in range(lanes))
            fp_latency, fp_hazard = self._fp_path.latency, self._fp_path.hazard_distance
            merge_latency = self._merge.latency
        else:
            # W8A8: the int results go to the output FIFO, through the binary16 rounding
            self._detector, self._quantizer, self._int_path = owned_list([
                detector, Int8Quantizer(), Int8IntPath(lanes=lanes, d_in=d_in, bias=bias)])
            self._compaction = self._fp_path = self._merge = None
            self._column_bits = None
            self._to_fp16 = owned_list([FP32ToFP16(backpressure=False)])[0] \
                if out_fp16 else None
            rounding = self._to_fp16.latency if out_fp16 else 0
            int_output = tuple(self._int_path.output_cycle(p) + rounding for p in range(lanes))
            fp_latency = fp_hazard = merge_latency = 0
        self._schedule = LLMInt8Schedule(
            d_in=d_in, d_out=d_out, x_lanes=x_lanes, lanes=lanes, fp_lanes=fp_lanes,
            outputs=outputs, tile=tile, outstanding=outstanding,
            detector_latency=self._detector.latency,
            scale_latency=self._quantizer.scale_latency,
            quantizer_latency=self._quantizer.latency, int_output=int_output,
            fp_latency=fp_latency, fp_hazard=fp_hazard, merge_latency=merge_latency,
            outliers=self._outliers)
        cfields = {"scale": unsigned(32)}
        if bias:
            cfields["bias"] = unsigned(32)
        self._in_fields = {"x": data.ArrayLayout(unsigned(16), x_lanes),
                           "w": data.ArrayLayout(signed(8), lanes),
                           "c": data.StructLayout(cfields)}

    # -- published facts ----------------------------------------------------------------
    @property
    def outliers(self) -> bool:
        """Whether the outlier path is built (``False``: W8A8)."""
        return self._outliers

    @property
    def x_lanes(self) -> int:
        return self._schedule.x_lanes

    @property
    def lanes(self) -> int:
        return self._schedule.lanes

    @property
    def fp_lanes(self) -> int | None:
        """``P_fp`` (``None`` without the outlier path)."""
        return self._schedule.fp_lanes if self._outliers else None

    @property
    def outputs(self) -> int | None:
        """``M``: column indices per compaction pass (``None`` without the outlier path)."""
        return self._schedule.outputs if self._outliers else None

    @property
    def tile(self) -> int:
        """``T``: tokens per tile (the detection group)."""
        return self._schedule.tile

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def threshold_bits(self) -> int:
        """The binary16 pattern compared with ``|x|`` (:func:`sw.llm_int8.threshold_binary16`)."""
        return self._threshold_bits

    @property
    def bias(self) -> bool:
        return self._bias

    @property
    def out_fp16(self) -> bool:
        return self._out_fp16

    @property
    def column_bits(self) -> int | None:
        """Bits of a gather request's column (``None`` without the outlier path)."""
        return self._column_bits

    @property
    def steps_per_tile(self) -> int:
        """Input items per tile."""
        return self._schedule.steps

    def cycles_per_tile(self, outlier_columns=(), memory_latency: int = 1) -> int:
        """Cycles per tile at full rate with these outlier columns (any iterable of column
        indices; none without the outlier path) and a weight memory answering
        ``memory_latency`` cycles after a request
        (:meth:`hw.llm_int8_schedule.LLMInt8Schedule.tile_cycles`)."""
        return self._schedule.tile_cycles(outlier_columns, memory_latency)

    @property
    def cycles_per_token(self) -> float:
        """Cycles per token at full rate with no outliers (the int path alone)."""
        return self._schedule.tile_cycles((), 1) / self._schedule.tile

    @property
    def latency(self) -> int:
        """Cycles from a tile's last input item to its last output, at full rate with no
        outliers."""
        return self._schedule.latency

    @property
    def memory_bits(self) -> dict[str, int]:
        """Bits of each memory and FIFO that grows with the layer (without the outlier
        path: the activations, the codes and the output FIFO, ``int_results``, of
        binary16 or binary32 outputs)."""
        s = self._schedule
        if not self._outliers:
            return {"x": s.tile * s.d_in * 16, "codes": s.d_in * 8,
                    "int_results": (s.d_out + 1) * self._out_width}
        return {"x": s.tile * s.d_in * 16, "mask": s.d_in, "codes": s.d_in * 8,
                "indices": s.index_words * (s.outputs * self._column_bits
                                            + s.outputs.bit_length()),
                "int_results": (s.d_out + 1) * 32, "fp_sums": self._fp_path.memory_bits}

    @property
    def parts(self) -> dict:
        """The parts as built: detector, quantizer, compaction, int path, fp path, merge;
        without the outlier path detector, quantizer, int path and, for binary16 outputs,
        ``to_fp16`` (:class:`hw.fp.fp32_to_fp16.FP32ToFP16`)."""
        if not self._outliers:
            parts = {"detector": self._detector, "quantizer": self._quantizer,
                     "int_path": self._int_path}
            if self._to_fp16 is not None:
                parts["to_fp16"] = self._to_fp16
            return parts
        return {"detector": self._detector, "quantizer": self._quantizer,
                "compaction": self._compaction, "int_path": self._int_path,
                "fp_path": self._fp_path, "merge": self._merge}

    # -- hardware ------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        s = self._schedule
        B, P, PF, T = s.x_lanes, s.lanes, s.fp_lanes, s.tile
        nx, G, GF = s.chunks, s.groups, s.fp_groups
        d_in, d_out = s.d_in, s.d_out
        det, comp, quant = self._detector, self._compaction, self._quantizer
        ipath, fpath, merge = self._int_path, self._fp_path, self._merge
        outliers = self._outliers
        m.submodules.detector = det
        if outliers:
            m.submodules.compaction = comp
        m.submodules.quantizer = quant
        m.submodules.int_path = ipath
        if outliers:
            m.submodules.fp_path = fpath
            m.submodules.merge = merge

        # --- tile and token state ---------------------------------------------------------
        tile_ready = Signal(name="tile_ready")     # mask and s_x of the tile are final
        busy = Signal(name="token_busy")           # a token started, its outputs not all out
        token = Signal(range(max(T, 2)), name="token")
        start = Signal(name="token_start")
        token_end = Signal(name="token_end")
        m.d.comb += start.eq(tile_ready & ~busy)
        with m.If(start):
            m.d.sync += busy.eq(1)

        # --- X phase: activations into the x memory and the detector ---------------------
        # The x memory is sliced by lanes (at most SLICE_BITS bits each); every slice is
        # written on an enable of its own, ``i.valid`` and the slice's copy of the phase and
        # count registers (replicas, hw.pipeline.REPLICA_TAG): one write enable and address
        # into the LUT RAMs of a 256-bit word was an 11.5 ns route on ECP5 (docs/synth.md).
        # ``x_phase`` is a register: open from reset and from the end of a tile
        # until the tile's last activation is taken (the detector's results, and so
        # ``tile_ready``, come only after that).
        x_count = Signal(range(T * nx + 1), name="x_count")
        x_phase = Signal(name="x_phase", init=1)
        tile_end = Signal(name="tile_end")
        x_take = Signal(name="x_take")

        def x_phase_registers(count, open_, take):
            with m.If(take):
                m.d.sync += count.eq(count + 1)
                with m.If(count == T * nx - 1):
                    m.d.sync += open_.eq(0)
            with m.If(tile_end):
                m.d.sync += [count.eq(0), open_.eq(1)]

        x_phase_registers(x_count, x_phase, x_take)
        slice_lanes = max(1, SLICE_BITS // 16)
        xq_reads, xg_reads = [], []
        for k, lo in enumerate(range(0, B, slice_lanes)):
            hi = min(lo + slice_lanes, B)
            mem = Memory(shape=unsigned(16 * (hi - lo)), depth=T * nx, init=[])
            m.submodules[f"x_memory_{k}"] = mem
            count_k = Signal.like(x_count, name=f"x_count_{REPLICA_TAG}_{k}")
            open_k = Signal(name=f"x_phase_{REPLICA_TAG}_{k}", init=1)
            take_k = Signal(name=f"x_take_{k}")
            m.d.comb += take_k.eq(self.i.valid & open_k)
            x_phase_registers(count_k, open_k, take_k)
            xw = mem.write_port()
            m.d.comb += [xw.addr.eq(count_k), xw.en.eq(take_k),
                         xw.data.eq(self.i.payload.x.as_value()[16 * lo:16 * hi])]
            xq_reads.append(mem.read_port())        # the quantizer's reads
            if outliers:
                xg_reads.append(mem.read_port())    # the gather's activation look-ups
        int_ok = Signal(name="int_ready")
        m.d.comb += self.i.ready.eq(x_phase | int_ok)
        m.d.comb += [x_take.eq(self.i.valid & x_phase),
                     det.i.valid.eq(x_take), det.i.payload.x.eq(self.i.payload.x),
                     det.o.ready.eq(1)]

        # detector results: running s_x per token, the tile's mask per chunk
        d_token = Signal(range(max(T, 2)), name="det_token")
        d_chunk = Signal(range(max(nx, 2)), name="det_chunk")
        amax = [Signal(15, name=f"absmax_{t}") for t in range(T)]
        det_out = det.o.valid
        if outliers:
            mask_or = Signal(B, name="mask_or")
            m.submodules.mask_memory = mmem = Memory(shape=unsigned(B), depth=nx, init=[])
            mw = mmem.write_port()
            scan_rd = mmem.read_port(transparent_for=(mw,))
            mq_rd = mmem.read_port()
            new_mask = Signal(B, name="mask_new")
            m.d.comb += [new_mask.eq(Mux(d_token == 0, 0, mask_or) | det.o.payload.mask),
                         mw.addr.eq(d_chunk), mw.data.eq(new_mask),
                         mw.en.eq(det_out & (d_token == T - 1))]
        # the running maximum's loop: "first chunk" is a register of its own, and the
        # compare is a subtraction's borrow (one carry chain); as ``>`` with
        # ``d_chunk == 0`` beside it, ABC built five LUT levels and part of a carry chain
        # into the maxima's clock enable, llm-int8-linear's clock path on ECP5
        # (docs/synth.md)
        first_chunk = Signal(name="det_first_chunk", init=1)    # d_chunk == 0
        with m.If(det_out):
            if outliers:
                m.d.sync += mask_or.eq(new_mask)
            for t in range(T):
                below = Signal(16, name=f"absmax_{t}_below")    # bit 15: the new one is larger
                m.d.comb += below.eq(amax[t] - det.o.payload.absmax)
                with m.If((d_token == t) & (first_chunk | below[15])):
                    m.d.sync += amax[t].eq(det.o.payload.absmax)
            with m.If(d_token == T - 1):
                m.d.sync += d_token.eq(0)
                with m.If(d_chunk == nx - 1):
                    m.d.sync += [d_chunk.eq(0), tile_ready.eq(1), first_chunk.eq(1)]
                with m.Else():
                    m.d.sync += [d_chunk.eq(d_chunk + 1), first_chunk.eq(0)]
            with m.Else():
                m.d.sync += d_token.eq(d_token + 1)

        # --- compaction: scan the mask once per tile into the index memory -----------------
        if outliers:
            index_layout = data.StructLayout({
                "columns": data.ArrayLayout(unsigned(self._column_bits), s.outputs),
                "count": range(s.outputs + 1)})
            m.submodules.index_memory = imem = Memory(shape=index_layout, depth=s.index_words,
                                                      init=[])
            iw = imem.write_port()
            ir = imem.read_port(transparent_for=(iw,))
            scan = Signal(range(nx + 1), name="scan_chunk")
            scan_next = Signal.like(scan)
            # the read through a register slice (SCAN_REGISTER_LATENCY in the schedule)
            m.submodules.scan_register = scan_reg = StreamRegister(shape=comp.i.payload.shape())
            wiring.connect(m, scan_reg.o, comp.i)
            scan_take = scan_reg.i.valid & scan_reg.i.ready
            m.d.comb += [scan_reg.i.valid.eq(tile_ready & (scan < nx)),
                         scan_reg.i.payload.mask.eq(scan_rd.data),
                         scan_reg.i.payload.chunk.eq(scan),
                         scan_next.eq(scan + scan_take), scan_rd.addr.eq(scan_next),
                         scan_rd.en.eq(1)]
            m.d.sync += scan.eq(scan_next)
            words = Signal(range(s.index_words + 1), name="index_words")
            columns = Signal(range(d_in + 1), name="outlier_columns")
            m.d.comb += [comp.o.ready.eq(1), iw.addr.eq(words), iw.data.eq(comp.o.payload),
                         iw.en.eq(comp.o.valid)]
            with m.If(comp.o.valid):
                m.d.sync += [words.eq(words + 1), columns.eq(columns + comp.o.payload.count)]
            comp_done = Signal(name="compaction_done")
            m.d.comb += comp_done.eq(tile_ready & (scan == nx) & ~scan_reg.o.valid & comp.idle)

        # --- quantizer: the token's codes into the code memory ----------------------------
        scale = Signal(15, name="token_absmax")
        m.d.comb += scale.eq(amax[0])
        for t in range(1, T):
            with m.If(token == t):
                m.d.comb += scale.eq(amax[t])
        m.d.comb += quant.scale.eq(scale)
        q_wait = Signal(range(quant.scale_latency + 1), name="quant_wait")
        q_run = Signal(name="quant_run")
        q_chunk = Signal(range(max(nx, 2)), name="quant_chunk")
        q_lane = Signal(range(max(B, 2)), name="quant_lane")
        with m.If(start):
            m.d.sync += [q_wait.eq(quant.scale_latency - 1), q_run.eq(1)]
        q_issue = Signal(name="quant_issue")
        m.d.comb += q_issue.eq(q_run & (q_wait == 0))
        with m.If(q_run & (q_wait != 0)):
            m.d.sync += q_wait.eq(q_wait - 1)
        with m.If(q_issue):
            with m.If(q_lane == B - 1):
                m.d.sync += q_lane.eq(0)
                with m.If(q_chunk == nx - 1):
                    m.d.sync += [q_chunk.eq(0), q_run.eq(0)]
                with m.Else():
                    m.d.sync += q_chunk.eq(q_chunk + 1)
            with m.Else():
                m.d.sync += q_lane.eq(q_lane + 1)
        m.d.comb += [r.addr.eq(q_chunk * T + token) for r in xq_reads]
        m.d.comb += [r.en.eq(1) for r in xq_reads] + (
            [mq_rd.addr.eq(q_chunk), mq_rd.en.eq(1)] if outliers else [])
        q_valid = Signal(name="quant_valid")
        q_lane1 = Signal.like(q_lane, name="quant_lane_1")
        m.d.sync += [q_valid.eq(q_issue), q_lane1.eq(q_lane)]
        x_word = data.View(data.ArrayLayout(unsigned(16), B), Cat(*(r.data for r in xq_reads)))
        # the activation picked from the word, registered ahead of the quantizer (the
        # schedule's QUANT_INPUT_REGISTERS: the read, then this); the outlier columns'
        # codes are 0 (none without the outlier path)
        q_in_valid = Signal(name="quant_in_valid")
        q_in_x = Signal(16, name="quant_in_x", reset_less=True)
        m.d.sync += [q_in_valid.eq(q_valid), q_in_x.eq(x_word[q_lane1])]
        zero = []
        if outliers:
            q_in_zero = Signal(name="quant_in_zero", reset_less=True)
            m.d.sync += q_in_zero.eq(mq_rd.data.bit_select(q_lane1, 1))
            zero = [quant.i.payload.zero.eq(q_in_zero)]
        m.d.comb += [quant.i.valid.eq(q_in_valid), quant.i.payload.x.eq(q_in_x),
                     *zero, quant.o.ready.eq(1)]
        m.submodules.code_memory = cmem = Memory(shape=signed(8), depth=d_in, init=[])
        cw = cmem.write_port()
        cr = cmem.read_port(transparent_for=(cw,))
        codes = Signal(range(d_in + 1), name="codes_written")
        m.d.comb += [cw.addr.eq(codes), cw.data.eq(quant.o.payload.code), cw.en.eq(quant.o.valid)]
        with m.If(quant.o.valid):
            m.d.sync += codes.eq(codes + 1)

        # --- int path: the token's steps --------------------------------------------------
        i_col = Signal(range(max(d_in, 2)), name="int_column")
        i_group = Signal(range(max(G, 2)), name="int_group")
        i_done = Signal(name="int_done")
        # The step's conditions are flags of registers, so that no comparator sits between
        # the registers and the take (on ECP5 `i_col < codes` and the take's fan-out were
        # the clock's path, docs/synth.md "Reaching 150 MHz on ECP5"): `ahead` is
        # `i_col < codes` (a code is there for the column; after group 0 every one is),
        # `later_group` is `i_group != 0`, `constants` is `i_col < P` (the int path takes
        # the column's constants). Each next value is picked by the take and the new code
        # from comparisons of the registers alone.
        i_take = Signal(name="int_take")
        last_col = i_col == d_in - 1
        # i_col + 1 kept as a register beside i_col: its compare with ``codes`` is then one
        # carry chain, not an adder's and a comparator's in series (w8a8-linear's clock
        # path on ECP5, docs/synth.md)
        i_col_up = Signal(range(d_in + 1), name="int_column_next", init=1)
        code_new = quant.o.valid
        ahead = Signal(name="int_ahead")
        later_group = Signal(name="int_later_group")
        constants = Signal(name="int_constants", init=1)
        with m.If(i_take & last_col):
            m.d.sync += [ahead.eq((codes != 0) | code_new), constants.eq(1),
                         later_group.eq(i_group != G - 1)]
        with m.Elif(i_take):
            m.d.sync += [ahead.eq(Mux(code_new, i_col < codes, i_col_up < codes)),
                         constants.eq(i_col_up < P)]
        with m.Else():
            m.d.sync += ahead.eq(Mux(code_new, i_col <= codes, i_col < codes))
        # the int path's constants FIFOs never fill: Int8IntPath.constants_depth holds a
        # group's constants until its last output is dequantized while the later groups,
        # d_in steps each, write theirs, so the step does not wait for ``c.ready``
        m.d.comb += int_ok.eq(tile_ready & busy & ~i_done & (later_group | ahead))
        # the constants go to the int path one cycle after the take, from registers: the
        # take's logic into the write enable of the constants FIFO's LUT RAMs was the
        # layer's clock path on ECP5 (9.0 ns); they are read only when the group's outputs
        # are dequantized, many cycles later
        c_valid = Signal(name="int_constants_valid")
        c_data = Signal.like(self.i.payload.c, name="int_constants_data", reset_less=True)
        m.d.sync += [c_valid.eq(i_take & constants), c_data.eq(self.i.payload.c)]
        m.d.comb += [i_take.eq(self.i.valid & int_ok), cr.addr.eq(i_col), cr.en.eq(1),
                     ipath.c.valid.eq(c_valid), ipath.c.payload.eq(c_data)]
        with m.If(i_take):
            m.d.sync += [i_col.eq(Mux(last_col, 0, i_col_up)),
                         i_col_up.eq(Mux(last_col, 1, i_col_up + 1))]
            with m.If(i_col == d_in - 1):
                m.d.sync += i_group.eq(Mux(i_group == G - 1, 0, i_group + 1))
                with m.If(i_group == G - 1):
                    m.d.sync += i_done.eq(1)
        w1 = Signal.like(self.i.payload.w, name="int_w")
        i_valid1, first1, last1 = Signal(name="int_valid"), Signal(name="int_first"), \
            Signal(name="int_last")
        m.d.sync += [i_valid1.eq(i_take), w1.eq(self.i.payload.w), first1.eq(i_col == 0),
                     last1.eq(i_col == d_in - 1)]
        m.d.comb += [ipath.i.valid.eq(i_valid1), ipath.i.payload.x.eq(cr.data),
                     ipath.i.payload.w.eq(w1), ipath.i.payload.first.eq(first1),
                     ipath.i.payload.last.eq(last1), ipath.sx.eq(quant.scale32)]
        if outliers:
            # the merge's operand leaves from a fabric register (RegisteredFIFO,
            # MERGE_FIFO_LATENCY): the block RAM's read data into the merge's first level was
            # the layer's clock path on ECP5 (5.83 ns from the clock alone, docs/synth.md,
            # "The router"); the int path runs free: a token writes d_out results and
            # starts only when the previous one's last output left, so the FIFO never fills
            m.submodules.int_results = yfifo = RegisteredFIFO(shape=unsigned(32),
                                                              depth=d_out + 1)
            m.d.comb += [yfifo.i.valid.eq(ipath.o.valid), yfifo.i.payload.eq(ipath.o.payload.y),
                         ipath.o.ready.eq(1)]
        else:
            self._w8a8_output(m, ipath)

        if outliers:
            # --- gather: requests for the outlier columns, the activations they need ----------
            cap = self._outstanding
            primed = Signal(name="gather_primed")
            r_word = Signal(range(s.index_words + 1), name="request_word")
            r_pos = Signal(range(max(s.outputs, 2)), name="request_position")
            r_word_next = Signal.like(r_word)
            r_word_up = Signal.like(r_word, name="request_word_next", init=1)  # r_word + 1
            out_count = Signal(range(cap + 1), name="outstanding")
            word = data.View(index_layout, ir.data)
            # the requests leave through a skid buffer (REQUEST_LATENCY): the take below
            # sees its registered ready, not the port's; the port's ready through the take
            # into the count of unrequested words was the layer's clock path on ECP5
            # (docs/synth.md, "The router")
            m.submodules.request_buffer = rbuf = StreamRegister(
                shape=self.req.payload.shape(), skid=True)
            wiring.connect(m, rbuf.o, wiring.flipped(self.req))
            request = rbuf.i
            req_take = request.valid & request.ready
            # the request's tests are registers kept with the counts (hw.pipeline.next_equals):
            # ``r_word < words`` as the count of written words not yet requested, and
            # ``out_count < cap``; the counters' compares into the request's take and the
            # index memory's read address were the layer's clock path on ECP5 (docs/synth.md)
            unrequested = Signal(range(s.index_words + 1), name="unrequested_words")
            have_word = Signal(name="have_word")
            room = Signal(name="request_room", init=1)
            word_done = Signal(name="request_word_done")
            m.d.comb += [request.valid.eq(busy & primed & have_word & room),
                         request.payload.column.eq(word.columns[r_pos]),
                         word_done.eq(req_take & (r_pos == word.count - 1))]
            m.d.comb += r_word_next.eq(r_word)
            with m.If(start):
                m.d.comb += r_word_next.eq(0)
                m.d.sync += [r_pos.eq(0), r_word_up.eq(1)]
            with m.Elif(req_take):
                with m.If(word_done):
                    m.d.comb += r_word_next.eq(r_word_up)
                    m.d.sync += [r_pos.eq(0), r_word_up.eq(r_word_up + 1)]
                with m.Else():
                    m.d.sync += r_pos.eq(r_pos + 1)
            m.d.sync += r_word.eq(r_word_next)
            # the count sees a written word a cycle late, from a register of its own
            # (WORD_COUNT_LATENCY): the compaction's valid, placed with the compaction,
            # inside this loop was the layer's clock path on ECP5 (docs/synth.md). At a
            # token's start ``words`` already counts the word written the cycle before,
            # which ``word_written`` carries then, so the count starts from ``words`` alone.
            word_written = Signal(name="word_written_late")
            m.d.sync += word_written.eq(comp.o.valid)
            # a finished word leaves the count a cycle late (``word_done_late``): the count's
            # adder takes registers only, and ``have_word`` is the sum with both steps
            # compared against constants (hw.pipeline.next_below); the index memory's read,
            # the word's end and the count's adder in one cycle were the layer's clock path
            # on ECP5 once the requests were buffered (docs/synth.md, "The router")
            done_late = Signal(name="word_done_late")
            with m.If(start):
                m.d.sync += [unrequested.eq(words), done_late.eq(0),
                             have_word.eq(words != 0)]
            with m.Else():
                m.d.sync += [unrequested.eq(unrequested + word_written - done_late),
                             done_late.eq(word_done),
                             have_word.eq(~next_below(unrequested, [(word_written, 1),
                                                                    (done_late, -1),
                                                                    (word_done, -1)], 1))]
            m.d.comb += [ir.addr.eq(r_word_next), ir.en.eq(1)]
            with m.If(start):
                m.d.sync += primed.eq(1)
            with m.If(token_end):
                m.d.sync += primed.eq(0)

            column = request.payload.column
            chunk_of = column // B if B & (B - 1) else column >> (B.bit_length() - 1)
            lane_of = column % B if B & (B - 1) else column[:max(B.bit_length() - 1, 0)]
            # the request's x memory address and lane are registered before the read
            # (GATHER_LATENCY): the index memory's read into the x memory's read address
            # was two LUT RAM reads in one cycle (11.2 ns on ECP5, docs/synth.md)
            g_addr = Signal(range(T * nx), name="gather_x_address")
            g_valid0 = Signal(name="gather_request_valid")
            g_lane0 = Signal(range(max(B, 2)), name="gather_request_lane")
            m.d.sync += [g_valid0.eq(req_take), g_addr.eq(chunk_of * T + token),
                         g_lane0.eq(lane_of if B > 1 else 0)]
            m.d.comb += [r.addr.eq(g_addr) for r in xg_reads]
            m.d.comb += [r.en.eq(1) for r in xg_reads]
            # the lane's pick from the x memory's read data is registered before the pending
            # FIFO, each of its 16 bits selected by a lane register of its own (replicas):
            # one lane register into the 16-way pick of all 16 bits and on into the FIFO's
            # LUT RAM was the layer's clock path on ECP5 (10.4 ns, docs/synth.md)
            g_valid1 = Signal(name="gather_x_valid")
            g_lanes1 = [Signal(range(max(B, 2)), name=f"gather_x_lane_{REPLICA_TAG}_{k}")
                        for k in range(16)]
            m.d.sync += [g_valid1.eq(g_valid0)] + [r.eq(g_lane0) for r in g_lanes1]
            m.submodules.pending = pend = SyncFIFO(width=16, depth=cap)
            gx_word = data.View(data.ArrayLayout(unsigned(16), B),
                                Cat(*(r.data for r in xg_reads)))
            g_valid2 = Signal(name="gather_pick_valid")
            g_pick = Signal(16, name="gather_pick", reset_less=True)
            m.d.sync += [g_valid2.eq(g_valid1)]
            m.d.sync += [g_pick[k].eq(Array(gx_word[lane][k] for lane in range(B))[g_lanes1[k]])
                         for k in range(16)]
            m.d.comb += [pend.w_en.eq(g_valid2), pend.w_data.eq(g_pick)]

            # --- fp path: the weight pieces of the requested columns --------------------------
            piece = Signal(range(max(GF, 2)), name="piece")
            fp_col = Signal(range(d_in + 1), name="fp_column")
            written = Signal(range(d_in + 1), name="fp_columns_written")
            feed = busy & pend.r_rdy
            m.d.comb += [fpath.i.valid.eq(self.resp.valid & feed),
                         self.resp.ready.eq(fpath.i.ready & feed),
                         fpath.i.payload.x.eq(pend.r_data),
                         fpath.i.payload.w.eq(self.resp.payload.w),
                         fpath.i.payload.first.eq(fp_col == 0)]
            piece_take = self.resp.valid & self.resp.ready
            col_end = piece_take & (piece == GF - 1)
            m.d.comb += pend.r_en.eq(col_end)
            with m.If(piece_take):
                m.d.sync += piece.eq(Mux(piece == GF - 1, 0, piece + 1))
            with m.If(col_end):
                m.d.sync += fp_col.eq(fp_col + 1)
            m.d.sync += [out_count.eq(out_count + req_take - col_end),
                         room.eq(~next_equals(out_count, req_take, col_end, cap))]
            with m.If(fpath.column_written):
                m.d.sync += written.eq(written + 1)
            # done as two registers (FP_DONE_LATENCY 2): once the compaction is done and the
            # written count reaches the outlier columns it stays so until the token's end
            # resets the count, so the registers hold the same test one and two cycles
            # later; the first sits beside the fp path's counts, the second beside the
            # merge (one register from the counts to the merge's take and the int results
            # FIFO's read was a 3.6 ns route, the layer's clock path on ECP5 once the
            # FIFO's read data was a fabric register, docs/synth.md)
            fp_done_counts = Signal(name="fp_done_counts")
            fp_done = Signal(name="fp_done")
            m.d.sync += [fp_done_counts.eq(comp_done & (written == columns)),
                         fp_done.eq(fp_done_counts)]

            # --- merge: int results + fp sums, in output order --------------------------------
            mg = Signal(range(max(GF, 2)), name="merge_group")
            ml = Signal(range(max(PF, 2)), name="merge_lane")
            mg_next = Signal.like(mg)
            merge_take = merge.i.valid & merge.i.ready
            m.d.comb += mg_next.eq(mg)
            with m.If(merge_take):
                with m.If(ml == PF - 1):
                    m.d.sync += ml.eq(0)
                    m.d.comb += mg_next.eq(Mux(mg == GF - 1, 0, mg + 1))
                with m.Else():
                    m.d.sync += ml.eq(ml + 1)
            m.d.sync += mg.eq(mg_next)
            m.d.comb += [a.eq(mg_next) for a in fpath.rd_addr]
            sums = data.View(data.ArrayLayout(unsigned(32), PF), fpath.rd_data)
            # the merge's take is not gated by token_busy: the int results FIFO holds
            # items only while a token is busy (a token's d_out results are written after
            # its start and all read before its end), so the FIFO's valid is the gate; the
            # one busy register (Yosys merges gather_primed and any copy into it) across the
            # layer into the merge's take and the FIFO's level was the layer's clock path
            # on ECP5 once the gather's requests were buffered (docs/synth.md, "The router")
            m.d.comb += [merge.i.valid.eq(fp_done & yfifo.o.valid),
                         merge.i.payload.y.eq(yfifo.o.payload),
                         merge.i.payload.acc.eq(Mux(columns == 0, 0, sums[ml])),
                         yfifo.o.ready.eq(fp_done & merge.i.ready)]
            wiring.connect(m, wiring.flipped(self.o), merge.o)

        # --- end of a token, of a tile ---------------------------------------------------
        # the comparisons ``outs == d_out - 1`` and ``token == T - 1`` are registers of their
        # own, updated with the counts: the output handshake into the end of a tile (and
        # the x phase's copies it reopens) was a chain of five LUTs on ECP5 (docs/synth.md)
        outs = Signal(range(max(d_out, 2)), name="outputs_out")
        outs_last = Signal(name="outputs_last", init=int(d_out == 1))
        token_last = Signal(name="token_last", init=int(T == 1))
        out_taken = self.o.valid & self.o.ready
        # the token ends in the cycle after its last output's take (TOKEN_END_LATENCY): a
        # register, so the output handshake does not reach the token and tile state (and
        # the x phase's copies) across the layer in one cycle; in that cycle nothing is
        # taken (the token's outputs are all out and its int steps and columns done)
        m.d.sync += token_end.eq(out_taken & outs_last)
        with m.If(out_taken):
            m.d.sync += [outs.eq(Mux(outs_last, 0, outs + 1)),
                         outs_last.eq(Mux(outs_last, d_out == 1, outs == d_out - 2))]
        with m.If(token_end):
            m.d.sync += token_last.eq(Mux(token_last, T == 1, token == T - 2))
        with m.If(token_end):
            m.d.sync += [busy.eq(0), codes.eq(0), i_done.eq(0), ahead.eq(0)]
            if outliers:
                m.d.sync += [fp_col.eq(0), written.eq(0)]
            with m.If(token_last):
                m.d.comb += tile_end.eq(1)
                m.d.sync += [token.eq(0), tile_ready.eq(0)]
                if outliers:
                    m.d.sync += [scan.eq(0), words.eq(0), columns.eq(0)]
            with m.Else():
                m.d.sync += token.eq(token + 1)
        return m

    def _w8a8_output(self, m, ipath):
        """Without the outlier path: the int results (rounded to binary16 for a binary16
        output) into the output FIFO, which is the ``o`` port. The int path and the
        rounding run free; a token writes ``d_out`` results and starts only when the
        previous one's last output left, so the FIFO never overflows."""
        d_out = self._schedule.d_out
        m.submodules.int_results = yfifo = BufferedFIFO(width=self._out_width,
                                                            depth=d_out + 1)
        m.d.comb += ipath.o.ready.eq(1)
        if self._to_fp16 is None:
            m.d.comb += [yfifo.w_en.eq(ipath.o.valid), yfifo.w_data.eq(ipath.o.payload.y)]
        else:
            m.submodules.to_fp16 = conv = self._to_fp16
            m.d.comb += [conv.i.valid.eq(ipath.o.valid), conv.i.payload.a.eq(ipath.o.payload.y),
                         conv.o.ready.eq(1),
                         yfifo.w_en.eq(conv.o.valid), yfifo.w_data.eq(conv.o.payload.y)]
        m.d.comb += [self.o.valid.eq(yfifo.r_rdy), self.o.payload.y.eq(yfifo.r_data),
                     yfifo.r_en.eq(self.o.ready)]
