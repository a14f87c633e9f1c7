"""The per-token step schedule of the FP16 linear datapath (:mod:`hw.fp16_linear`), its
input stream and its full-rate timing. Plain Python and NumPy.

With ``P`` lanes, ``G = d_out / P`` groups of outputs and ``d_in`` columns, a token takes
``S = d_in * G`` input items (*steps*), column by column::

    step s:  column j = s // G,  group g = s % G
    item s:  {"x": X[t, j] (binary16 bits),  "w": W[g*P .. g*P + P - 1, j] (P binary16 bits)}

so each activation arrives on ``G`` consecutive steps (:func:`activation_order`) and the
weight slots are the same for every token (:func:`weight_steps`, ``S`` rows, stored once;
:mod:`sim.stream` merges them with the per-token :func:`activation_blocks`). The sums
are those of :func:`sw.fp16_linear.fp16_linear` (:class:`hw.fp_accumulate.FPAccumulate`).

Output: ``G`` items per token, item ``g`` the ``P`` outputs ``g*P ..`` (binary32, or
binary16 with ``out_fp16``), after the token's last column is written.

Timing at full rate (:class:`FP16LinearSchedule`): step ``(j, g)`` is taken in cycle
``j (G + E) + g`` (``E`` the accumulator's column gap); the last sum is written
``Lm + La`` cycles after the last step; the results are then read one group per cycle
(one cycle of memory read, the optional binary16 conversion, one cycle through the
output FIFO). A token's first item waits until the previous token's last output left
and that is registered (:data:`RELEASE_LATENCY`), so ``cycles_per_token`` is
``1 + RELEASE_LATENCY`` more than the last output's cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FP16LinearSchedule", "activation_order", "activation_blocks", "weight_steps",
           "input_items", "RELEASE_LATENCY"]

# cycles from a token's last output taken to the input's release for the next token (a
# register between the output FIFO and the input's busy flag, hw.fp16_linear)
RELEASE_LATENCY = 1


@dataclass(frozen=True)
class FP16LinearSchedule:
    """Step counts and full-rate timing of one token (module doc). Fields: ``d_in``,
    ``d_out``, ``lanes`` (P, dividing ``d_out``), the latencies (cycles) of the binary16
    multiplier (``mul_latency``), the binary32 adder (``add_latency``) and the output
    conversion (``out_latency``, 0 for a binary32 output). Checked by
    :class:`hw.fp16_linear.FP16Linear`, not here."""

    d_in: int
    d_out: int
    lanes: int
    mul_latency: int
    add_latency: int
    out_latency: int = 0

    @property
    def groups(self) -> int:
        """``G = d_out / P``: output items per token."""
        return self.d_out // self.lanes

    @property
    def column_gap(self) -> int:
        """``E``: idle cycles after each column (:attr:`hw.fp_accumulate.FPAccumulate.column_gap`)."""
        return max(0, self.add_latency + 1 - self.groups)

    @property
    def steps(self) -> int:
        """Input items per token, ``d_in * G``."""
        return self.d_in * self.groups

    def accept_cycle(self, column: int, group: int) -> int:
        """Cycle (after the token's first item) in which step ``(column, group)`` is taken."""
        return column * (self.groups + self.column_gap) + group

    @property
    def last_write(self) -> int:
        """Cycle of the write of the token's last sums."""
        return self.accept_cycle(self.d_in - 1, self.groups - 1) + self.mul_latency + \
            self.add_latency

    def output_cycles(self) -> list[int]:
        """Cycle in which each output item leaves, at full rate."""
        # done is registered (+1), the read takes a cycle (+1), the FIFO one more (+1)
        first = self.last_write + 3 + self.out_latency
        return [first + g for g in range(self.groups)]

    @property
    def cycles_per_token(self) -> int:
        """Cycles between consecutive tokens' first items at full rate."""
        return self.output_cycles()[-1] + 1 + RELEASE_LATENCY

    @property
    def latency(self) -> int:
        """Cycles from a token's last input item to its last output item, at full rate."""
        return self.output_cycles()[-1] - self.accept_cycle(self.d_in - 1, self.groups - 1)


def activation_order(schedule: FP16LinearSchedule) -> np.ndarray:
    """``(steps,)`` int64: the column (activation) that step ``s`` carries, ``s // G``."""
    return np.arange(schedule.steps, dtype=np.int64) // schedule.groups


def activation_blocks(schedule: FP16LinearSchedule, x_bits) -> dict[str, np.ndarray]:
    """The per-token part of the stream: ``x`` ``(T, d_in)`` binary16 bit patterns."""
    x = np.asarray(x_bits, np.int64)
    return {"x": x.reshape(x.shape[0], schedule.d_in)}


def weight_steps(schedule: FP16LinearSchedule, w_bits) -> dict[str, np.ndarray]:
    """The per-layer part of the stream (``S`` rows): ``w`` ``(S, P)``, step ``s = j G + g``
    holding ``W[g*P + p, j]`` from the binary16 bit patterns ``w_bits`` ``(d_out, d_in)``."""
    s = schedule
    w = np.asarray(w_bits, np.int64).reshape(s.groups, s.lanes, s.d_in)   # [g, p, j]
    return {"w": w.transpose(2, 0, 1).reshape(s.steps, s.lanes)}


def input_items(schedule: FP16LinearSchedule, x_bits, weights: dict) -> dict[str, np.ndarray]:
    """The whole stream of ``T`` tokens, one row per item (tests and small runs)."""
    x = activation_blocks(schedule, x_bits)["x"]
    t = x.shape[0]
    return {"x": x[:, activation_order(schedule)].reshape(-1),
            "w": np.tile(weights["w"], (t, 1))}
