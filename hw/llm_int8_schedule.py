"""The stream contract of the LLM.int8() datapath (:mod:`hw.llm_int8_linear`) and its
full-rate timing. Plain Python and NumPy.

Sizes: ``B`` activations per X item (``x_lanes``), ``nx = d_in / B`` chunks, ``P`` int
lanes and ``G = d_out / P`` groups, ``P_fp`` fp lanes and ``G_fp = d_out / P_fp`` pieces
per weight column, ``M`` indices per compaction pass, ``T`` tokens per tile.

**Input stream** (port ``i``), per tile ``S = T nx + T d_in G`` items (*steps*)::

    X phase   step s < T nx:           chunk c = s // T, token t = s % T
              x = X[t, c B .. c B + B - 1]          (binary16 bits; w, c zero)
    token t   step s = T nx + t d_in G + g d_in + j   (group g, column j)
              w = W_i8[g P .. g P + P - 1, j]        (int8 codes)
              c = {scale: w_scale[g P + j], bias: b[g P + j]} when j < P, else zero
              (binary32 bits; w_scale = fl32(s_w / 127**2), sw.llm_int8.Int8Weight.int_scale)

The ``x`` slot of a token step is filled too (with the tile's first block) so the stream
is regular: :func:`activation_order` names the block each step carries,
:func:`activation_blocks` holds a tile's blocks (chunk-major: block ``k = c T + t``), and
:func:`weight_steps` the ``S`` per-layer rows (the ``T`` tokens' int steps), stored once;
:mod:`sim.stream` merges them.

**Gather** (ports ``req`` / ``resp``): per token, one request ``{column: j}`` per outlier
column of the tile, in increasing ``j``; the weight memory answers each request, in
request order, with ``G_fp`` items ``{w: W16[g P_fp .. g P_fp + P_fp - 1, j]}``, ``g =
0 .. G_fp - 1`` (:func:`gather_pieces`; the binary16 outlier weights: the dequantized int8
weights, or the original ones).

**Output** (port ``o``): per token, ``d_out`` items ``{y: Y[t, i]}`` in output order.

**Timing** (:meth:`LLMInt8Schedule.tile_cycles`): at full rate (every stream valid and
ready at once, the weight memory answering ``memory_latency`` cycles after a request, one
piece per cycle) a tile takes its X phase, then per token the later of the int path (the
steps, paced by the quantizer at the start) and the fp path (the compaction's passes, the
requests, the pieces with the accumulator's column gap), the merge of the ``d_out``
outputs after both, and the next token starts :data:`TOKEN_END_LATENCY` cycles after the
cycle its last output left in (the token's end is a register: the output handshake
reaches the token and tile state across the whole layer). The model walks
those events for a given set of outlier columns; the tests compare it with the RTL.

**Without the outlier path** (``outliers=False``: the W8A8 datapath ``w8a8-linear``,
:func:`sw.llm_int8.w8a8_linear`): the same input stream (X phase, then the int steps; the
``x`` blocks are binary16 activations as above; no fp16 column is gathered), the same
output, no ``req`` / ``resp`` ports. Timing: per token the int path alone; the results
(rounded to binary16 first for a binary16 output: ``int_output`` counts the rounding)
wait in the output FIFO, and an output leaves once its result is readable and the
previous one left (``merge_latency = 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.int8_compaction import LATENCY as COMPACTION_LATENCY
from hw.int8_compaction import passes

__all__ = ["LLMInt8Schedule", "activation_order", "activation_blocks", "weight_steps",
           "gather_pieces", "FIFO_LATENCY", "MERGE_FIFO_LATENCY", "QUANT_INPUT_REGISTERS",
           "GATHER_LATENCY", "REQUEST_LATENCY", "TOKEN_END_LATENCY", "FP_DONE_LATENCY", "SCAN_REGISTER_LATENCY",
           "WORD_COUNT_LATENCY"]

# A buffered (block-RAM) FIFO: an item written in cycle c can be read from cycle c + 2
# (w8a8-linear's output FIFO).
FIFO_LATENCY = 2
# The int results FIFO in front of the merge (with the outlier path): the buffered FIFO
# and a fabric register after the block RAM's read (hw.fifo.RegisteredFIFO, hw.fifo.LATENCY)
MERGE_FIFO_LATENCY = 3
# registers between the quantizer's issue of an activation and its input: the x memory's
# read and the activation picked from that word (one register: the 16-way pick ahead of the
# quantizer's first level was the layer's clock path on ECP5, docs/synth.md)
QUANT_INPUT_REGISTERS = 2
# cycles from a gather request's take until its activation can be read from the pending
# FIFO: the x memory address register, the x memory's read, the lane's pick register, the
# FIFO's write
GATHER_LATENCY = 4
# cycles from a gather request's take inside the layer to its take on the ``req`` port
# when that port is ready: the request leaves through a skid buffer whose ready is a
# register (hw.stream_register.StreamRegister, skid=True)
REQUEST_LATENCY = 1
# cycles from the take of a token's last output to its end (the reset of the token's state,
# the next token's start, the next tile's X phase reopening): the end is a register, since
# the output handshake into that state, spread over the whole layer, was the layer's clock
# path on ECP5 (two 3.7 and 4.7 ns routes, docs/synth.md)
TOKEN_END_LATENCY = 1
# a register slice between the mask memory's read and the compaction's input: the read is
# a LUT RAM's (an address register, then the read), and the compaction's first step (its
# group-count tables) after it was the layer's clock path on ECP5 (a 1.8 ns route to the
# memory's output and four LUT levels, docs/synth.md)
SCAN_REGISTER_LATENCY = 1
# cycles from the fp path's completion (its last sum written, or the compaction done with
# no outlier column) until the merge may take: "done" is two registers, one beside the
# counts and one beside the merge, since the compare of the written and outlier column
# counts into the merge's take, then one register's route across the layer, were the
# layer's clock path on ECP5 (docs/synth.md)
FP_DONE_LATENCY = 2
# cycles from an index word's write until the gather may request its first column: the
# count of unrequested words sees the compaction's write through a register of its own
# (placed with the count), since the compaction's valid inside the request loop (the
# count, ``have_word``, the request's take) was the layer's clock path on ECP5 (a 1.7 ns
# route each way to the compaction, docs/synth.md)
WORD_COUNT_LATENCY = 2


@dataclass(frozen=True)
class LLMInt8Schedule:
    """Counts and full-rate timing of one tile (module doc). Fields: the shape (``d_in``,
    ``d_out``), lanes (``x_lanes``, ``lanes``, ``fp_lanes``), ``outputs`` (M), ``tile``
    (T), ``outstanding`` (gather requests in flight) and the latencies (cycles) of the
    parts: ``detector_latency``, ``scale_latency`` / ``quantizer_latency`` (the
    quantizer's table and per-activation pipeline), ``int_output`` (per lane, cycles from
    a group's last step at the int path to that lane's result,
    :meth:`hw.int8_int_path.Int8IntPath.output_cycle`), ``fp_latency`` / ``fp_hazard``
    (:class:`hw.fp_accumulate.FPAccumulate`), ``merge_latency``. Checked by
    :class:`hw.llm_int8_linear.LLMInt8Linear`, not here. ``outliers``: the outlier path
    is built (``False``: W8A8; the fp and merge fields are then 0 and the tile takes no
    outlier column)."""

    d_in: int
    d_out: int
    x_lanes: int
    lanes: int
    fp_lanes: int
    outputs: int
    tile: int
    outstanding: int
    detector_latency: int
    scale_latency: int
    quantizer_latency: int
    int_output: tuple
    fp_latency: int
    fp_hazard: int
    merge_latency: int
    outliers: bool = True

    # --- counts -----------------------------------------------------------------------
    @property
    def chunks(self) -> int:
        """``nx = d_in / B``."""
        return self.d_in // self.x_lanes

    @property
    def groups(self) -> int:
        """``G = d_out / P``."""
        return self.d_out // self.lanes

    @property
    def fp_groups(self) -> int:
        """``G_fp = d_out / P_fp``: response items per requested column."""
        return self.d_out // self.fp_lanes

    @property
    def x_steps(self) -> int:
        """X-phase items per tile, ``T nx``."""
        return self.tile * self.chunks

    @property
    def token_steps(self) -> int:
        """Int-path items per token, ``d_in G``."""
        return self.d_in * self.groups

    @property
    def steps(self) -> int:
        """Input items per tile."""
        return self.x_steps + self.tile * self.token_steps

    @property
    def index_words(self) -> int:
        """Entries of the index memory: the most passes with outputs, ``nx ceil(B / M)``."""
        return self.chunks * math.ceil(self.x_lanes / self.outputs)

    def passes(self, outlier_columns) -> int:
        """Compaction passes (cycles) of a tile with these outlier columns."""
        counts = np.bincount(np.asarray(sorted(set(outlier_columns)), np.int64) // self.x_lanes,
                             minlength=self.chunks) if len(outlier_columns) else \
            np.zeros(self.chunks, np.int64)
        return int(sum(passes(int(n), self.outputs) for n in counts))

    # --- timing ---------------------------------------------------------------------------
    def tile_cycles(self, outlier_columns=(), memory_latency: int = 1) -> int:
        """Cycles between consecutive tiles' first items at full rate (module doc)."""
        model = _TileModel(self, outlier_columns, memory_latency)
        return model.run()[-1] + 1 + TOKEN_END_LATENCY

    def output_cycles(self, outlier_columns=(), memory_latency: int = 1) -> list[int]:
        """Cycle (after the tile's first item) in which each output leaves, at full rate."""
        return _TileModel(self, outlier_columns, memory_latency).run()

    @property
    def latency(self) -> int:
        """Cycles from a tile's last input item to its last output, full rate, no outliers."""
        model = _TileModel(self, (), 1)
        outs = model.run()
        return outs[-1] - model.last_step


class _TileModel:
    """The events of one tile at full rate, cycle numbers counted from the tile's first
    item (taken in cycle 0). Follows :mod:`hw.llm_int8_linear` part by part:

    - X phase: item ``k`` taken in cycle ``k``; the tile is ready (mask and ``s_x``
      final) ``detector_latency`` cycles after the last one, in ``X0 = T nx + Ld``;
    - compaction: chunk ``c`` held from ``H_c`` (``H_0 = X0 + Ls + L_c``, ``Ls`` the
      mask read's register slice, :data:`SCAN_REGISTER_LATENCY`, ``L_c`` the compaction's
      :data:`hw.int8_compaction.LATENCY`) for ``max(1, ceil(n_c / M))`` cycles, pass ``p``
      written to the index memory in ``H_c + p``, the next chunk held from the cycle
      after the last held one (its input buffer already holds it); done from the cycle
      after the last chunk's last held cycle;
    - token ``t`` starts in ``S_t`` (``S_0 = X0``, else ``1 + TOKEN_END_LATENCY`` cycles
      after the previous token's last output; the next tile's X phase opens as late): the
      quantizer issues activation ``j`` in ``S_t + SL + j`` and writes its code ``R + Lq``
      cycles later (``R``: :data:`QUANT_INPUT_REGISTERS`), so the int steps are taken from
      ``I_0 = S_t + SL + R + Lq + 1``, one per cycle; lane ``p`` of group ``g`` reaches the
      int results FIFO ``1 + int_output[p]`` cycles after the group's last step and can be
      read :data:`MERGE_FIFO_LATENCY` cycles later (without the outlier path, the output
      FIFO: :data:`FIFO_LATENCY`);
    - gather: request ``k`` (the ``k``-th outlier column) is taken at the earliest cycle
      after the token start, :data:`WORD_COUNT_LATENCY` cycles after its index word was
      written, after request ``k - 1``,
      and once fewer than ``outstanding`` columns are unfinished; its activation is in the
      pending FIFO :data:`GATHER_LATENCY` cycles later; it is on the ``req`` port
      :data:`REQUEST_LATENCY` cycles after the take, its ``G_fp`` pieces arrive from
      ``memory_latency`` cycles after that and are taken one per cycle, a column's first
      piece ``1 + E`` cycles after the previous column's last (``E`` the accumulator's
      column gap); the
      last sum is written ``fp_latency`` cycles after the last piece;
    - merge: output ``i`` is taken once the fp path is done (:data:`FP_DONE_LATENCY`
      cycles after the cycle after the last write, or after the compaction's done with no
      outlier), its int result is readable and the previous output was taken; it leaves
      ``merge_latency`` cycles later;
    - without the outlier path there is no compaction, gather or merge: output ``i``
      leaves once its result is readable (``int_output`` counting the binary16 rounding
      in front of the FIFO) and the previous output left.
    """

    def __init__(self, s: LLMInt8Schedule, outlier_columns, memory_latency: int):
        self.s = s
        self.columns = sorted(set(int(c) for c in outlier_columns))
        if self.columns and not 0 <= self.columns[0] <= self.columns[-1] < s.d_in:
            raise ValueError(f"outlier_columns must lie in 0..{s.d_in - 1}; got "
                             f"{self.columns[0]}..{self.columns[-1]}")
        if memory_latency < 1:
            raise ValueError(f"memory_latency must be at least 1; got {memory_latency}")
        if self.columns and not s.outliers:
            raise ValueError(f"outlier_columns must be empty without the outlier path; got "
                             f"{len(self.columns)} columns")
        self.memory_latency = memory_latency
        self.last_step = 0

    def _compaction(self, x0: int) -> tuple[list[int], int]:
        """Cycle each outlier column's index word is written; the first cycle of done."""
        s = self.s
        per_chunk: list[list[int]] = [[] for _ in range(s.chunks)]
        for c in self.columns:
            per_chunk[c // s.x_lanes].append(c)
        written: list[int] = []
        held = x0 + SCAN_REGISTER_LATENCY + COMPACTION_LATENCY
        for cols in per_chunk:
            for k in range(len(cols)):
                written.append(held + k // s.outputs)
            held += passes(len(cols), s.outputs)
        return written, held

    def run(self) -> list[int]:
        s = self.s
        x0 = s.x_steps + s.detector_latency
        word_written, comp_done = self._compaction(x0) if s.outliers else ([], x0)
        gap = max(0, s.fp_hazard - s.fp_groups)
        n = len(self.columns)
        outs: list[int] = []
        start = x0
        for _ in range(s.tile):
            i0 = start + s.scale_latency + QUANT_INPUT_REGISTERS + s.quantizer_latency + 1
            ready = []
            for g in range(s.groups):
                last = i0 + g * s.d_in + s.d_in - 1
                fifo = MERGE_FIFO_LATENCY if s.outliers else FIFO_LATENCY
                ready += [last + 1 + s.int_output[p] + fifo for p in range(s.lanes)]
            self.last_step = i0 + s.token_steps - 1
            requests: list[int] = []
            ends: list[int] = []
            for k in range(n):
                r = max(start + 1, word_written[k] + WORD_COUNT_LATENCY)
                if k:
                    r = max(r, requests[-1] + 1)
                if k >= s.outstanding:
                    r = max(r, ends[k - s.outstanding] + 1)
                requests.append(r)
                first = max(r + REQUEST_LATENCY + self.memory_latency, r + GATHER_LATENCY)
                if k:
                    first = max(first, ends[-1] + 1 + gap)
                ends.append(first + s.fp_groups - 1)
            fp_done = (max(comp_done, ends[-1] + s.fp_latency + 1) if n else comp_done) \
                + FP_DONE_LATENCY
            taken = start
            for i in range(s.d_out):
                taken = max(taken + 1, fp_done, ready[i])
                outs.append(taken + s.merge_latency)
            start = outs[-1] + 1 + TOKEN_END_LATENCY
        return outs


# --- the input stream ---------------------------------------------------------------------

def activation_order(schedule: LLMInt8Schedule) -> np.ndarray:
    """``(steps,)`` int64: the tile block (``c T + t``) that step ``s`` carries (X phase),
    0 on the token steps."""
    s = schedule
    order = np.zeros(s.steps, np.int64)
    order[:s.x_steps] = np.arange(s.x_steps)
    return order


def activation_blocks(schedule: LLMInt8Schedule, x_bits) -> dict[str, np.ndarray]:
    """The per-tile part of the stream: ``x`` ``(tiles, T nx, B)`` from binary16 bit
    patterns ``(tokens, d_in)``, ``tokens`` a multiple of ``T``; block ``c T + t`` of tile
    ``n`` is ``X[n T + t, c B .. c B + B - 1]``."""
    s = schedule
    x = np.asarray(x_bits, np.int64)
    tiles = x.shape[0] // s.tile
    blocks = x.reshape(tiles, s.tile, s.chunks, s.x_lanes).transpose(0, 2, 1, 3)
    return {"x": blocks.reshape(tiles, s.x_steps, s.x_lanes)}


def weight_steps(schedule: LLMInt8Schedule, w_codes, w_scale_bits, bias_bits=None
                 ) -> dict[str, np.ndarray]:
    """The per-layer part (``S`` rows): ``w`` ``(S, P)`` int8 codes from ``w_codes``
    ``(d_out, d_in)``; ``c.scale`` ``(S,)`` from the binary32 patterns ``w_scale_bits``
    ``(d_out,)``; with a bias ``c.bias`` ``(S,)`` from ``bias_bits`` ``(d_out,)``."""
    s = schedule
    P, G = s.lanes, s.groups
    codes = np.asarray(w_codes, np.int64).reshape(G, P, s.d_in)        # [g, p, j]
    token_w = codes.transpose(0, 2, 1).reshape(s.token_steps, P)       # step g d_in + j
    w = np.zeros((s.steps, P), np.int64)
    w[s.x_steps:] = np.tile(token_w, (s.tile, 1))

    def per_channel(values):
        v = np.asarray(values, np.int64).reshape(G, P)
        col = np.zeros((G, s.d_in), np.int64)
        col[:, :P] = v
        out = np.zeros(s.steps, np.int64)
        out[s.x_steps:] = np.tile(col.reshape(-1), s.tile)
        return out

    out = {"w": w, "c.scale": per_channel(w_scale_bits)}
    if bias_bits is not None:
        out["c.bias"] = per_channel(bias_bits)
    return out


def gather_pieces(schedule: LLMInt8Schedule, weight16_bits, column: int) -> np.ndarray:
    """The response to a request for ``column``: ``(G_fp, P_fp)`` binary16 patterns,
    piece ``g`` = ``W16[g P_fp .. g P_fp + P_fp - 1, column]`` of ``weight16_bits``
    ``(d_out, d_in)``."""
    s = schedule
    return np.asarray(weight16_bits, np.int64)[:, column].reshape(s.fp_groups, s.fp_lanes)
