"""The per-token step schedule of the LQER datapath (:mod:`hw.lqer_linear`) and its input
stream: the datapath's interface to a weight memory or DMA. Plain Python and NumPy.

One input item per *step*; a token takes ``steps`` items. With ``nb_in = d_in/block``,
``nb_k = rank/block``, ``P_m`` main lanes and ``P_l`` low-rank lanes::

    main path   steps [0, M)         M  = (d_out / P_m) * nb_in
                step s: output group s // nb_in (P_m channels), x block j = s % nb_in
    low rank T  steps [0, L_T)       L_T = (rank / P_l) * nb_in      t = Q(x A)
                step s: rank group s // nb_in, x block j = s % nb_in (the same j)
    gap         H idle low-rank steps, H = dot_stages + quant_stages + 2: the last
                t block is requantized and stored before the first U step reads it
    low rank U  steps [u0, L)        u0 = L_T + H,  L = u0 + (d_out / P_l) * nb_k
                step s: output group (s - u0) // nb_k (P_l channels), t block (s - u0) % nb_k
    steps = max(M, L)

The low-rank path never stalls the main path when ``L <= M``, i.e.

    P_l >= (rank * nb_in + d_out * nb_k) / (M - H)
        ~= P_m * rank * (1/d_out + 1/d_in)          (for M >> H)

:func:`default_lowrank_lanes` picks the smallest power of two ``P_l <= block`` that
satisfies it (``block`` when none does). The timing model below (one item per cycle,
output always ready) gives :attr:`LQERSchedule.cycles_per_token`; the tests compare it
with the simulated RTL.

Input stream (what the producer delivers; field names are those of the input port's
layout, ``{"x": block, "w": P_m blocks, "f": P_l blocks}`` with each block
``{"exponent", "mantissas"}``). Item ``s`` of every token carries:

- ``x``: the token's activation block ``s % nb_in`` (:func:`activation_order`). The
  datapath reads it on the token's first ``nb_in`` steps only and replays its own copy
  afterwards, but the slot is filled on every step so the stream is regular;
- ``w``: on main steps ``s < M``, the W_q blocks of rows ``g*P_m .. g*P_m + P_m - 1``
  (``g = s // nb_in``), column block ``s % nb_in``; zero after ``M``;
- ``f`` (``rank > 0``): on T steps ``s < L_T``, the A^T blocks of rank rows
  ``g*P_l ..`` (``g = s // nb_in``), column block ``s % nb_in``; on U steps
  ``u0 <= s < L``, the B^T blocks of output rows ``g*P_l ..`` (``g = (s - u0) // nb_k``),
  rank block ``(s - u0) % nb_k``; zero in the gap and after ``L``.

``w`` and ``f`` are the same for every token: :func:`weight_steps` gives them once per
layer (``steps`` rows), :func:`activation_blocks` gives the per-token part, and a
producer (or the cocotb bench, :mod:`sim.stream`) merges them step by step, so a run's
stored stream is O(layer + tokens * d_in), not O(tokens * layer).
:func:`input_items` is the explicit merge (tests, small runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LQERSchedule", "default_lowrank_lanes", "activation_order", "activation_blocks",
           "weight_steps", "input_items"]


@dataclass(frozen=True)
class LQERSchedule:
    """Step counts and full-rate timing of one token on the LQER datapath (module doc).

    Fields: layer shape ``d_in``, ``d_out``, ``rank`` (elements; multiples of ``block``),
    ``block`` (elements per MXINT block), ``lanes_main`` (P_m) and ``lanes_lowrank``
    (P_l, at least 1) dot lanes, ``dot_stages`` and ``quant_stages`` (pipeline registers
    of the dot arrays and of the requantizer). Step counts are input items; cycle counts
    assume one item per cycle and an always-ready output. The parameters are checked by
    :class:`hw.lqer_linear.LQERLinear`, not here.
    """

    d_in: int
    d_out: int
    rank: int
    block: int
    lanes_main: int
    lanes_lowrank: int
    dot_stages: int
    quant_stages: int = 1

    @property
    def nb_in(self) -> int:
        """Activation blocks per token, ``d_in / block``."""
        return self.d_in // self.block

    @property
    def nb_k(self) -> int:
        """Blocks of t per token, ``rank / block``."""
        return self.rank // self.block

    @property
    def nb_out(self) -> int:
        """Output items per token, ``d_out / block``."""
        return self.d_out // self.block

    @property
    def main_steps(self) -> int:
        """``M``: steps that carry W_q blocks, ``(d_out / P_m) * nb_in``."""
        return self.d_out // self.lanes_main * self.nb_in

    @property
    def t_steps(self) -> int:
        """``L_T``: steps that carry A^T blocks, ``(rank / P_l) * nb_in`` (0 without rank)."""
        return 0 if not self.rank else self.rank // self.lanes_lowrank * self.nb_in

    @property
    def gap(self) -> int:
        """Idle low-rank steps between the T and U phases (t's write-back latency)."""
        return self.dot_stages + self.quant_stages + 2

    @property
    def u_start(self) -> int:
        """``u0``: the first step that carries B^T blocks."""
        return self.t_steps + self.gap

    @property
    def lowrank_steps(self) -> int:
        """``L``: steps up to the last B^T block (0 without rank)."""
        if not self.rank:
            return 0
        return self.u_start + self.d_out // self.lanes_lowrank * self.nb_k

    @property
    def steps(self) -> int:
        """Input items per token."""
        return max(self.main_steps, self.lowrank_steps)

    def _emit_cycles(self) -> list[int]:
        """Cycle (after the token's first item) at which each output block is emitted."""
        ds, qs = self.dot_stages, self.quant_stages
        emit, last = [], -1
        for ob in range(self.nb_out):
            group = ((ob + 1) * self.block - 1) // self.lanes_main
            ready = (group + 1) * self.nb_in - 1 + ds + 2
            if self.rank:
                u_groups = (ob + 1) * self.block // self.lanes_lowrank
                ready = max(ready, self.u_start + u_groups * self.nb_k - 1 + ds + qs + 3)
            last = max(ready, last + 1)
            emit.append(last)
        return emit

    @property
    def cycles_per_token(self) -> int:
        """Cycles between consecutive tokens' first items at full rate."""
        return self._emit_cycles()[-1] + 1

    @property
    def latency(self) -> int:
        """Cycles from a token's last input item to its last output block."""
        return self._emit_cycles()[-1] - (self.steps - 1)


def default_lowrank_lanes(*, d_in: int, d_out: int, rank: int, block: int, lanes_main: int,
                          dot_stages: int, quant_stages: int = 1) -> int:
    """Smallest power of two ``P_l <= block`` with ``lowrank_steps <= main_steps``."""
    lanes = 1
    while lanes < block:
        s = LQERSchedule(d_in, d_out, rank, block, lanes_main, lanes, dot_stages, quant_stages)
        if s.lowrank_steps <= s.main_steps:
            return lanes
        lanes *= 2
    return block


# --- the input stream ---------------------------------------------------------------------

def activation_order(schedule: LQERSchedule) -> np.ndarray:
    """``(steps,)`` int64: the activation block (0..nb_in-1) that step ``s`` carries."""
    return np.arange(schedule.steps, dtype=np.int64) % schedule.nb_in


def activation_blocks(schedule: LQERSchedule, x_mantissas, x_exponents) -> dict[str, np.ndarray]:
    """The per-token part of the stream: ``x.mantissas`` ``(T, nb_in, block)`` and
    ``x.exponent`` ``(T, nb_in)`` from activations ``(T, d_in)`` / ``(T, nb_in)``."""
    xm, xe = np.asarray(x_mantissas, np.int64), np.asarray(x_exponents, np.int64)
    t = xm.shape[0]
    return {"x.mantissas": xm.reshape(t, schedule.nb_in, schedule.block),
            "x.exponent": xe.reshape(t, schedule.nb_in)}


def _slots(mantissas, exponents, group_rows, col_blocks, lanes: int, block: int):
    """Blocks of rows ``group_rows[i]*lanes + 0..lanes-1`` at column block ``col_blocks[i]``."""
    rows = np.asarray(group_rows)[:, None] * lanes + np.arange(lanes)
    cols = np.asarray(col_blocks)[:, None]
    m = np.asarray(mantissas, np.int64)
    m = m.reshape(m.shape[0], -1, block)
    return m[rows, cols], np.asarray(exponents, np.int64)[rows, cols]


def weight_steps(schedule: LQERSchedule, w_mantissas, w_exponents, a_mantissas=None,
                 a_exponents=None, b_mantissas=None, b_exponents=None) -> dict[str, np.ndarray]:
    """The per-layer part of the stream, the same for every token (``S = steps`` rows).

    Operands are blocked along their last axis: W_q ``(d_out, d_in)`` with exponents
    ``(d_out, nb_in)``; A^T ``(rank, d_in)`` / ``(rank, nb_in)``; B^T ``(d_out, rank)`` /
    ``(d_out, nb_k)`` (A and B only when ``rank > 0``). Returns ``w.mantissas``
    ``(S, P_m, block)``, ``w.exponent`` ``(S, P_m)`` and, with rank, ``f.mantissas``
    ``(S, P_l, block)``, ``f.exponent`` ``(S, P_l)``; unused slots are zero.
    """
    s, b = schedule, schedule.block
    steps = np.arange(s.steps)
    pm = s.lanes_main
    main = steps[:s.main_steps]
    wm = np.zeros((s.steps, pm, b), np.int64)
    we = np.zeros((s.steps, pm), np.int64)
    wm[:s.main_steps], we[:s.main_steps] = _slots(w_mantissas, w_exponents, main // s.nb_in,
                                                  main % s.nb_in, pm, b)
    out = {"w.mantissas": wm, "w.exponent": we}
    if s.rank:
        pl = s.lanes_lowrank
        fm = np.zeros((s.steps, pl, b), np.int64)
        fe = np.zeros((s.steps, pl), np.int64)
        t = steps[:s.t_steps]
        fm[:s.t_steps], fe[:s.t_steps] = _slots(a_mantissas, a_exponents, t // s.nb_in,
                                                t % s.nb_in, pl, b)
        u = steps[s.u_start:s.lowrank_steps] - s.u_start
        fm[s.u_start:s.lowrank_steps], fe[s.u_start:s.lowrank_steps] = _slots(
            b_mantissas, b_exponents, u // s.nb_k, u % s.nb_k, pl, b)
        out.update({"f.mantissas": fm, "f.exponent": fe})
    return out


def input_items(schedule: LQERSchedule, x_mantissas, x_exponents,
                weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The whole stream of ``T`` tokens, one row per item (``T * steps`` rows):
    :func:`activation_blocks` at :func:`activation_order` beside ``weights``
    (:func:`weight_steps`) repeated per token. O(T * layer) memory: for tests and small
    runs; a producer streams ``weights`` once per token instead."""
    x = activation_blocks(schedule, x_mantissas, x_exponents)
    order = activation_order(schedule)
    t = x["x.mantissas"].shape[0]
    out = {"x.mantissas": x["x.mantissas"][:, order].reshape(-1, schedule.block),
           "x.exponent": x["x.exponent"][:, order].reshape(-1)}
    out.update({k: np.tile(v, (t,) + (1,) * (v.ndim - 1)) for k, v in weights.items()})
    return out
