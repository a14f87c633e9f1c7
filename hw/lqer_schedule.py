"""The per-token step schedule of the LQER datapath (:mod:`hw.lqer_linear`), its input
stream (the datapath's interface to a weight memory or DMA) and its full-rate timing.
Plain Python and NumPy.

One input item per *step*; a token takes ``steps`` items. With ``nb_in = d_in/block``,
``nb_k = rank/block``, ``nb_out = d_out/block``, ``P_m`` main lanes, ``P_l`` low-rank
lanes and ``K`` accumulator slots (the accumulators are interleaved over ``K`` results,
:mod:`hw.accumulator`), output channels are processed in *groups* of ``P_m`` (main) or
``P_l`` (low rank) channels, ``K`` groups at a time: a group count is padded up to a
multiple of ``K`` with groups whose weights are zero and whose results are dropped::

    main        steps [0, M)     G_m = ceil(d_out/P_m / K) * K groups,  M = G_m * nb_in
    low rank T  steps [0, T)     G_t = ceil(rank/P_l / K) * K groups,   T = G_t * nb_in
                step s: k = s % K, x block j = (s // K) % nb_in, group (s // (K nb_in)) K + k
    gap         H idle low-rank steps: every t block is requantized and written before a
                U step reads it (``u_start`` = T + H, the least that works)
    low rank U  steps [u0, L)    G_u = ceil(d_out/P_l / K) * K groups,  L = u0 + G_u * nb_k
                step s, s' = s - u0: k = s' % K, t block (s' // K) % nb_k,
                group (s' // (K nb_k)) K + k
    steps S = max(M, L)

So each x block (t block) is used by ``K`` consecutive steps, and the accumulator slot of
step ``s`` (item count mod K) is always ``k``. The low-rank path never stalls the main
path when ``L <= M``, i.e. roughly ``P_l >= P_m * rank * (1/d_out + 1/d_in)``;
:func:`default_lowrank_lanes` picks the smallest power of two ``P_l <= block`` that
satisfies it (``block`` when none does).

**ResQ mode** (``mode="resq"``; Saxena et al. 2024, reference :mod:`sw.resq_reference`):
``rank`` is the number ``r`` of high-precision coordinates. The wide (main) path reduces
the ``d_in - r`` low-precision coordinates z_l against W_l, so here
``nb_in = (d_in - r)/block``; the narrow path is the U phase alone, reducing the ``r``
high-precision coordinates z_h (``nb_k = r/block`` blocks, streamed on the first
``K * nb_k`` steps and kept in the t memory, which the T phase fills in LQER mode)
against W_h, from step 0 (no T phase, no gap)::

    main        steps [0, M)     G_m groups over nb_in = (d_in - r)/block blocks of z_l
    narrow      steps [0, L)     G_u = ceil(d_out/P_l / K) * K groups, L = G_u * nb_k
                step s: k = s % K, z_h block (s // K) % nb_k, group (s // (K nb_k)) K + k

The narrow path never stalls the wide one when ``L <= M``:
``ceil(d_out/P_l / K) K nb_k <= ceil(d_out/P_m / K) K nb_in``, roughly
``P_l >= P_m * r / (d_in - r)`` (``P_m / 7`` at the paper's ``r = d/8``).

Input stream (field names of the input port's layout; each block is ``{"exponent",
"mantissas"}``). Item ``s`` of every token carries (LQER mode):

- ``x``: the token's activation block ``(s // K) % nb_in`` (:func:`activation_order`); the
  datapath reads it on the first ``K * nb_in`` steps and keeps it in its x memory for the
  later ones. Every step carries it, and the datapath depends on that: its x memory
  keeps the block of the last of the K steps it accepts (written in every cycle of the
  stream steps, valid or not);
- ``w``: on main steps ``s < M``, the W_q blocks of rows ``g*P_m .. g*P_m + P_m - 1`` of the
  step's group ``g``, column block ``j``; zero in padded groups and after ``M``;
- ``f`` (``rank > 0``): on T steps the A^T blocks of rank rows ``g*P_l ..``, column block
  ``j``; on U steps the B^T blocks of output rows ``g*P_l ..``, rank block ``(s' // K) %
  nb_k``; zero in padded groups, in the gap and after ``L``;
- ``b`` (merged output with a bias): on steps ``s < nb_out``, the bias block ``s``.

ResQ mode: ``x`` carries row ``q = (s // K) % C`` of the token's table of
``C = max(nb_in, nb_k)`` rows, z_l block ``q`` (zero when ``q >= nb_in``), and ``h`` the
z_h block ``q`` of the same row (MXINT(high) format; zero when ``q >= nb_k``): the
datapath reads x on the first ``K * nb_in`` steps and h on the first ``K * nb_k``, when
``q`` is the block index itself; ``w`` the W_l blocks as above; ``f`` the W_h blocks (in
B^T's place: output rows ``g*P_l ..``, block ``(s // K) % nb_k``) on steps ``s < L``;
``b`` the bias blocks (MXINT(high)).

``w``, ``f`` and ``b`` are the same for every token: :func:`weight_steps` gives them once
per layer (``steps`` rows), :func:`activation_blocks` gives the per-token part, and a
producer (or the cocotb bench, :mod:`sim.stream`) merges them step by step, so a stored
stream is O(layer + tokens * d_in), not O(tokens * layer). :func:`input_items` is the
explicit merge (tests, small runs).

Timing (:meth:`LQERSchedule.output_cycles`): one token at full rate (an item every cycle,
the output always ready), from the published latencies of the parts; the datapath takes a
token's first item only when the previous token's last output has left, so
``cycles_per_token`` is one more than the last output's cycle. The tests compare both with
the simulated RTL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LQERSchedule", "default_lowrank_lanes", "activation_order", "activation_blocks",
           "weight_steps", "input_items", "OUTPUTS", "MODES", "FIFO_LATENCY",
           "MAIN_REGISTER_LATENCY"]

OUTPUTS = ("terms", "mxint")
# "lqer": main + chained low-rank GEMMs (T then U phase); "resq": main + one narrow GEMV
MODES = ("lqer", "resq")
# The datapath's FIFOs (hw.fifo.RegisteredFIFO: a block-RAM FIFO whose read data is
# registered in the fabric): an item written in cycle c can be read from cycle c + 3.
FIFO_LATENCY = 3
# With ``registered_join`` a register slice (hw.stream_register) follows the main FIFO:
# a main group reaches the rechunker this many cycles later.
MAIN_REGISTER_LATENCY = 1


def _padded(groups: int, slots: int) -> int:
    return math.ceil(groups / slots) * slots


@dataclass(frozen=True)
class LQERSchedule:
    """Step counts and full-rate timing of one token on the LQER datapath (module doc).

    Fields: layer shape ``d_in``, ``d_out``, ``rank`` (elements; multiples of ``block``),
    ``block``, ``lanes_main`` (P_m) and ``lanes_lowrank`` (P_l, at least 1), ``slots`` (K),
    the latencies of the parts (cycles): ``dot_latency``, ``acc_latency``,
    ``quant_latency`` (the low-rank requantizer), and for the merged output
    (``output="mxint"``) ``merge_latency`` and ``out_quant_latency``; ``bias`` (a bias
    block per output block, merged output only); ``mode`` ("lqer" or "resq": ``rank`` is
    then ResQ's ``r``, module doc). The parameters are checked by
    :class:`hw.lqer_linear.LQERLinear`, not here.
    """

    d_in: int
    d_out: int
    rank: int
    block: int
    lanes_main: int
    lanes_lowrank: int
    slots: int
    dot_latency: int
    acc_latency: int
    quant_latency: int
    output: str = "terms"
    bias: bool = False
    merge_latency: int = 0
    out_quant_latency: int = 0
    mode: str = "lqer"

    # --- counts -----------------------------------------------------------------------
    @property
    def resq(self) -> bool:
        """ResQ mode: the narrow path is one GEMV over the high-precision coordinates."""
        return self.mode == "resq"

    @property
    def nb_in(self) -> int:
        """Activation blocks the main path reduces per token: ``d_in / block`` (LQER),
        ``(d_in - r) / block`` (ResQ: the low-precision coordinates)."""
        return (self.d_in - self.rank if self.resq else self.d_in) // self.block

    @property
    def nb_k(self) -> int:
        """Blocks of t (ResQ: of the high-precision coordinates) per token, ``rank / block``."""
        return self.rank // self.block

    @property
    def nb_out(self) -> int:
        """Output items per token, ``d_out / block``."""
        return self.d_out // self.block

    @property
    def main_groups(self) -> int:
        """Groups of ``P_m`` output channels with weights, ``d_out / P_m``."""
        return self.d_out // self.lanes_main

    @property
    def t_groups(self) -> int:
        """Groups of ``P_l`` rank channels with weights (0 without rank, and in ResQ mode)."""
        return self.rank // self.lanes_lowrank if self.rank and not self.resq else 0

    @property
    def u_groups(self) -> int:
        """Groups of ``P_l`` output channels of u (ResQ: of the narrow path; 0 without rank)."""
        return self.d_out // self.lanes_lowrank if self.rank else 0

    @property
    def main_steps(self) -> int:
        """``M``: steps that carry W_q blocks (padded groups included)."""
        return _padded(self.main_groups, self.slots) * self.nb_in

    @property
    def t_steps(self) -> int:
        """``T``: steps that carry A^T blocks (0 without rank)."""
        return _padded(self.t_groups, self.slots) * self.nb_in

    @property
    def u_steps(self) -> int:
        """Steps that carry B^T blocks (0 without rank)."""
        return _padded(self.u_groups, self.slots) * self.nb_k

    @property
    def x_stream_steps(self) -> int:
        """Steps whose activation block comes from the stream (``K * nb_in``); later steps
        read the x memory."""
        return self.slots * self.nb_in

    @property
    def h_stream_steps(self) -> int:
        """ResQ: steps whose high-precision block comes from the stream (``K * nb_k``); later
        steps read the t memory. 0 in LQER mode (the T phase fills the t memory)."""
        return self.slots * self.nb_k if self.resq else 0

    @property
    def token_blocks(self) -> int:
        """Rows of a token's activation table (:func:`activation_blocks`): ``nb_in`` (LQER),
        ``max(nb_in, nb_k)`` (ResQ: a row holds a z_l and a z_h block)."""
        return max(self.nb_in, self.nb_k) if self.resq else self.nb_in

    @property
    def requantized(self) -> bool:
        """Whether the low-rank results are requantized (t and u in LQER; ResQ only for the
        merged output: the two-term output keeps the narrow accumulator exact)."""
        return bool(self.rank) and (not self.resq or self.output == "mxint")

    # --- the gap --------------------------------------------------------------------------
    def _result_cycle(self, group: int, blocks: int, start: int = 0) -> int:
        """Cycle at which an accumulator result of ``group`` is valid (reduction over
        ``blocks`` blocks, phase starting at step ``start``)."""
        k = self.slots
        last_step = start + ((group // k) * blocks + blocks - 1) * k + group % k
        return last_step + self.dot_latency + self.acc_latency

    def _block_written(self, block_index: int, blocks: int, start: int = 0) -> int:
        """Cycle in which low-rank block ``block_index`` is written (t memory, u FIFO or,
        ResQ two-term output, the high FIFO): its last group's result, one staging cycle,
        the requantizer (when :attr:`requantized`)."""
        last_group = (block_index + 1) * self.block // self.lanes_lowrank - 1
        return (self._result_cycle(last_group, blocks, start) + 1
                + (self.quant_latency if self.requantized else 0))

    @property
    def u_start(self) -> int:
        """``u0``: the first step that carries B^T blocks -- after the T phase, and late
        enough that every t block is in the t memory before a U step reads it (a read
        issued in cycle c returns in c + 1 and sees writes of cycles before c). ResQ: 0
        (the stream fills the t memory)."""
        if not self.rank or self.resq:
            return 0
        need = max(self._block_written(b, self.nb_in) + 2 - b * self.slots
                   for b in range(self.nb_k))
        return max(self.t_steps, need)

    @property
    def gap(self) -> int:
        """``H``: idle low-rank steps between the T and U phases."""
        return self.u_start - self.t_steps

    @property
    def lowrank_steps(self) -> int:
        """``L``: steps up to the last B^T block (0 without rank)."""
        return self.u_start + self.u_steps if self.rank else 0

    @property
    def steps(self) -> int:
        """Input items per token."""
        return max(self.main_steps, self.lowrank_steps,
                   self.nb_out if (self.bias and self.output == "mxint") else 0)

    # --- the output stage ----------------------------------------------------------------
    @property
    def registered_join(self) -> bool:
        """Whether the two-term output's groups-to-blocks rechunker and u (high) FIFO take
        only into empty registers (``registered_ready`` of :class:`hw.rechunk.Rechunk` and
        :class:`hw.fifo.RegisteredFIFO`): with the two-term output when ``P_m < block``, so
        the output's ready is no clock enable (ECP5 timing)."""
        return self.output == "terms" and self.lanes_main < self.block

    def _main_ready(self) -> list[int]:
        """Cycle from which each main group's result can be read from the main FIFO (from
        the register slice behind it with :attr:`registered_join`)."""
        behind = MAIN_REGISTER_LATENCY if self.registered_join else 0
        return [self._result_cycle(g, self.nb_in) + FIFO_LATENCY + behind
                for g in range(self.main_groups)]

    def _u_ready(self) -> list[int]:
        return [self._block_written(b, self.nb_k, self.u_start) + FIFO_LATENCY
                for b in range(self.nb_out)] if self.rank else []

    def _bias_ready(self) -> list[int]:
        return [b + FIFO_LATENCY for b in range(self.nb_out)] if self.bias else []

    def output_cycles(self) -> list[int]:
        """Cycle (after the token's first item) in which each output block leaves, at full
        rate: a cycle-by-cycle model of the output stage's handshakes (module doc)."""
        return _OutputModel(self).run()

    @property
    def cycles_per_token(self) -> int:
        """Cycles between consecutive tokens' first items at full rate."""
        return self.output_cycles()[-1] + 1

    @property
    def latency(self) -> int:
        """Cycles from a token's last input item to its last output block, at full rate."""
        return self.output_cycles()[-1] - (self.steps - 1)


class _Chunker:
    """Cycle model of :class:`hw.rechunk.Rechunk` (``n_in`` to ``n_out`` elements, its
    ``registered_ready``)."""

    def __init__(self, n_in: int, n_out: int, registered_ready: bool = False):
        self.registered_ready = registered_ready
        self.gather = n_in < n_out
        self.ratio = max(n_in, n_out) // min(n_in, n_out)
        self.count = 0           # gathering: items held; splitting: pieces left
        self.full = False        # gathering: an output item is ready
        self.passthrough = n_in == n_out

    def out_valid(self, in_valid: bool) -> bool:
        if self.passthrough:
            return in_valid
        return self.full if self.gather else self.count > 0

    def in_ready(self, out_taken: bool) -> bool:
        if self.passthrough:
            return out_taken
        if self.registered_ready:  # only into an empty held item
            return not self.full if self.gather else self.count == 0
        if self.gather:
            return not self.full or out_taken
        return self.count == 0 or (out_taken and self.count == 1)

    def step(self, in_taken: bool, out_taken: bool) -> None:
        if self.passthrough:
            return
        if self.gather:
            if out_taken:
                self.full = False
            if in_taken:
                self.count += 1
                if self.count == self.ratio:
                    self.count, self.full = 0, True
        else:
            if out_taken:
                self.count -= 1
            if in_taken:
                self.count = self.ratio


class _OutputModel:
    """The output stage at full rate, one cycle at a time (``LQERSchedule.output_cycles``).

    Terms: main FIFO (groups) -> rechunk to blocks -> join with the u FIFO -> out; with
    :attr:`LQERSchedule.registered_join` the rechunker gathers only into an empty block
    and the u FIFO's read register reloads only when empty (a block every other cycle).
    Merged: main FIFO, u FIFO -> rechunk to groups, bias FIFO -> rechunk to groups -> join
    -> merge (latency) -> rechunk to blocks -> quantizer (latency) -> out.
    """

    def __init__(self, s: LQERSchedule):
        self.s = s

    def run(self) -> list[int]:
        s = self.s
        main, u_ready, b_ready = s._main_ready(), s._u_ready(), s._bias_ready()
        pm, blk = s.lanes_main, s.block
        emitted: list[int] = []
        if s.output == "terms":
            join = s.registered_join
            to_blocks = _Chunker(pm, blk, registered_ready=join)
            g = 0
            cycle = 0
            while len(emitted) < s.nb_out:
                b = len(emitted)
                have_main = g < len(main) and main[g] <= cycle
                chunk_valid = to_blocks.out_valid(have_main)
                # the u FIFO reloads its read register only when empty (registered_ready):
                # the next block is there two cycles after the previous one left
                u_ok = not s.rank or (u_ready[b] <= cycle and (
                    not join or b == 0 or emitted[-1] + 2 <= cycle))
                out = chunk_valid and u_ok
                taken = have_main and to_blocks.in_ready(out)
                to_blocks.step(taken, out)
                if taken:
                    g += 1
                if out:
                    emitted.append(cycle)
                cycle += 1
            return emitted
        # merged output
        u_chunk = _Chunker(blk, pm) if s.rank else None
        b_chunk = _Chunker(blk, pm) if s.bias else None
        to_blocks = _Chunker(pm, blk)
        g = ub = bb = 0
        merged: list[int] = []      # cycles at which merged groups leave the merge
        taken_blocks: list[int] = []
        cycle = 0
        mg, qo = s.merge_latency, s.out_quant_latency
        while len(taken_blocks) < s.nb_out:
            have_main = g < len(main) and main[g] <= cycle
            u_in = u_chunk is not None and ub < len(u_ready) and u_ready[ub] <= cycle
            b_in = b_chunk is not None and bb < len(b_ready) and b_ready[bb] <= cycle
            u_ok = u_chunk is None or u_chunk.out_valid(u_in)
            b_ok = b_chunk is None or b_chunk.out_valid(b_in)
            join = have_main and u_ok and b_ok
            if join:
                merged.append(cycle + mg)
            # the rechunk after the merge: its input is what left the merge this cycle
            arriving = bool(merged) and merged[0] == cycle
            block_out = to_blocks.out_valid(arriving)
            if block_out:
                taken_blocks.append(cycle)   # the quantizer takes it at once
            took = arriving and to_blocks.in_ready(block_out)
            if arriving:
                assert took, "the merge output is never blocked at full rate"
                merged.pop(0)
            to_blocks.step(took, block_out)
            if u_chunk is not None:
                u_taken = u_in and u_chunk.in_ready(join)
                u_chunk.step(u_taken, join)
                ub += u_taken
            if b_chunk is not None:
                b_taken = b_in and b_chunk.in_ready(join)
                b_chunk.step(b_taken, join)
                bb += b_taken
            g += join
            cycle += 1
        return [c + qo for c in taken_blocks]


def default_lowrank_lanes(*, d_in: int, d_out: int, rank: int, block: int, lanes_main: int,
                          **latencies) -> int:
    """Smallest power of two ``P_l <= block`` with ``lowrank_steps <= main_steps``
    (``latencies``: the :class:`LQERSchedule` fields other than the shape and lanes)."""
    lanes = 1
    while lanes < block:
        s = LQERSchedule(d_in, d_out, rank, block, lanes_main, lanes, **latencies)
        if s.lowrank_steps <= s.main_steps:
            return lanes
        lanes *= 2
    return block


# --- the input stream ---------------------------------------------------------------------

def activation_order(schedule: LQERSchedule) -> np.ndarray:
    """``(steps,)`` int64: the row of the token's activation table (0..token_blocks-1)
    that step ``s`` carries, ``(s // K) % token_blocks``."""
    return (np.arange(schedule.steps, dtype=np.int64) // schedule.slots) % schedule.token_blocks


def _rows(mantissas, exponents, t: int, blocks: int, rows: int, block: int):
    """``blocks`` blocks per token as a table of ``rows`` rows (zero rows after them)."""
    m = np.zeros((t, rows, block), np.int64)
    e = np.zeros((t, rows), np.int64)
    m[:, :blocks] = np.asarray(mantissas, np.int64).reshape(t, blocks, block)
    e[:, :blocks] = np.asarray(exponents, np.int64).reshape(t, blocks)
    return m, e


def activation_blocks(schedule: LQERSchedule, x_mantissas, x_exponents, h_mantissas=None,
                      h_exponents=None) -> dict[str, np.ndarray]:
    """The per-token part of the stream, a table of ``C = token_blocks`` rows per token:
    ``x.mantissas`` ``(T, C, block)`` and ``x.exponent`` ``(T, C)`` from activations
    ``(T, nb_in * block)`` / ``(T, nb_in)`` (LQER: x; ResQ: z_l, zero rows from
    ``nb_in``); ResQ with ``r > 0`` also ``h.mantissas`` / ``h.exponent`` from z_h
    ``(T, r)`` / ``(T, nb_k)`` (zero rows from ``nb_k``)."""
    s = schedule
    xm = np.asarray(x_mantissas, np.int64)
    t = xm.shape[0]
    m, e = _rows(xm, x_exponents, t, s.nb_in, s.token_blocks, s.block)
    out = {"x.mantissas": m, "x.exponent": e}
    if s.resq and s.rank:
        m, e = _rows(h_mantissas, h_exponents, t, s.nb_k, s.token_blocks, s.block)
        out.update({"h.mantissas": m, "h.exponent": e})
    return out


def _phase(steps: int, slots: int, blocks: int):
    """Per step of a phase: (group, block index) -- the order of the module doc."""
    s = np.arange(steps)
    k = s % slots
    return (s // (slots * blocks)) * slots + k, (s // slots) % blocks


def _slots(mantissas, exponents, groups, col_blocks, lanes: int, block: int, rows: int):
    """Blocks of rows ``groups[i]*lanes + 0..lanes-1`` at column block ``col_blocks[i]``;
    rows at or beyond ``rows`` (padded groups) are zero."""
    r = np.asarray(groups)[:, None] * lanes + np.arange(lanes)
    real = r < rows
    r = np.where(real, r, 0)
    cols = np.asarray(col_blocks)[:, None]
    m = np.asarray(mantissas, np.int64)
    m = m.reshape(m.shape[0], -1, block)
    return (m[r, cols] * real[..., None], np.asarray(exponents, np.int64)[r, cols] * real)


def weight_steps(schedule: LQERSchedule, w_mantissas, w_exponents, a_mantissas=None,
                 a_exponents=None, b_mantissas=None, b_exponents=None, bias_mantissas=None,
                 bias_exponents=None) -> dict[str, np.ndarray]:
    """The per-layer part of the stream, the same for every token (``S = steps`` rows).

    Operands are blocked along their last axis: W_q ``(d_out, d_in)`` with exponents
    ``(d_out, nb_in)``; A^T ``(rank, d_in)`` / ``(rank, nb_in)``; B^T ``(d_out, rank)`` /
    ``(d_out, nb_k)`` (A and B only when ``rank > 0``). ResQ mode: W_l ``(d_out, d_in - r)``
    in W_q's place, no A, W_h ``(d_out, r)`` in B^T's place. The bias ``(d_out,)`` /
    ``(nb_out,)`` (merged output with a bias). Returns ``w.mantissas`` ``(S, P_m, block)``,
    ``w.exponent`` ``(S, P_m)``, with rank ``f.mantissas`` ``(S, P_l, block)``,
    ``f.exponent`` ``(S, P_l)``, with a bias ``b.mantissas`` ``(S, block)``, ``b.exponent``
    ``(S,)``; unused slots are zero.
    """
    s, b = schedule, schedule.block
    pm = s.lanes_main
    wm = np.zeros((s.steps, pm, b), np.int64)
    we = np.zeros((s.steps, pm), np.int64)
    groups, cols = _phase(s.main_steps, s.slots, s.nb_in)
    wm[:s.main_steps], we[:s.main_steps] = _slots(w_mantissas, w_exponents, groups, cols, pm, b,
                                                  s.d_out)
    out = {"w.mantissas": wm, "w.exponent": we}
    if s.rank:
        pl = s.lanes_lowrank
        fm = np.zeros((s.steps, pl, b), np.int64)
        fe = np.zeros((s.steps, pl), np.int64)
        if s.t_steps:
            groups, cols = _phase(s.t_steps, s.slots, s.nb_in)
            fm[:s.t_steps], fe[:s.t_steps] = _slots(a_mantissas, a_exponents, groups, cols, pl,
                                                    b, s.rank)
        groups, cols = _phase(s.u_steps, s.slots, s.nb_k)
        u = slice(s.u_start, s.lowrank_steps)
        fm[u], fe[u] = _slots(b_mantissas, b_exponents, groups, cols, pl, b, s.d_out)
        out.update({"f.mantissas": fm, "f.exponent": fe})
    if s.bias and s.output == "mxint":
        bm = np.zeros((s.steps, b), np.int64)
        be = np.zeros((s.steps,), np.int64)
        bm[:s.nb_out] = np.asarray(bias_mantissas, np.int64).reshape(s.nb_out, b)
        be[:s.nb_out] = np.asarray(bias_exponents, np.int64).reshape(s.nb_out)
        out.update({"b.mantissas": bm, "b.exponent": be})
    return out


def input_items(schedule: LQERSchedule, x_mantissas, x_exponents,
                weights: dict[str, np.ndarray], h_mantissas=None,
                h_exponents=None) -> dict[str, np.ndarray]:
    """The whole stream of ``T`` tokens, one row per item (``T * steps`` rows):
    :func:`activation_blocks` at :func:`activation_order` beside ``weights``
    (:func:`weight_steps`) repeated per token. O(T * layer) memory: for tests and small
    runs; a producer streams ``weights`` once per token instead."""
    x = activation_blocks(schedule, x_mantissas, x_exponents, h_mantissas, h_exponents)
    order = activation_order(schedule)
    t = x["x.mantissas"].shape[0]
    out = {k: v[:, order].reshape((-1,) + v.shape[2:]) for k, v in x.items()}
    out.update({k: np.tile(v, (t,) + (1,) * (v.ndim - 1)) for k, v in weights.items()})
    return out
