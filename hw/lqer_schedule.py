"""The per-token step schedule of the LQER datapath (:mod:`hw.lqer_linear`), in plain Python.

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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LQERSchedule", "default_lowrank_lanes"]


@dataclass(frozen=True)
class LQERSchedule:
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
        return self.d_in // self.block

    @property
    def nb_k(self) -> int:
        return self.rank // self.block

    @property
    def nb_out(self) -> int:
        return self.d_out // self.block

    @property
    def main_steps(self) -> int:
        return self.d_out // self.lanes_main * self.nb_in

    @property
    def t_steps(self) -> int:
        return 0 if not self.rank else self.rank // self.lanes_lowrank * self.nb_in

    @property
    def gap(self) -> int:
        """Idle low-rank steps between the T and U phases (t's write-back latency)."""
        return self.dot_stages + self.quant_stages + 2

    @property
    def u_start(self) -> int:
        return self.t_steps + self.gap

    @property
    def lowrank_steps(self) -> int:
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
