"""A pipeline that advances as a whole and stalls when its output is blocked.

Each datapath is a sequence of combinational *levels* (a multiplier, one
adder-tree level, ...), each with an estimated delay (in LUT levels; equal when
not given). ``stages`` registers are placed at level boundaries so that the
largest delay between two registers is as small as it can be (a linear
partition), the last always at the output, so outputs are registered and the
latency is exactly ``stages`` cycles. The whole pipeline advances when its
output slot is empty or being taken (``enable = ~valid_out | ready``); the
input is ready under the same condition, which gives one item per cycle
whenever the consumer is ready.
"""

from __future__ import annotations

from amaranth.hdl import Signal, Value

__all__ = ["register_counts", "StallPipeline"]


def register_counts(levels: int, stages: int, delays: list[float] | None = None) -> list[int]:
    """How many registers follow each of ``levels`` levels; they sum to ``stages``.

    ``delays`` (one per level, default all 1) are cut into ``min(stages, levels)``
    contiguous groups whose largest sum is minimal; a register follows each group,
    so the last one is the output register. Registers beyond one per level are added
    at the output (they add latency, not speed).
    """
    delays = [1.0] * levels if delays is None else [float(d) for d in delays]
    if len(delays) != levels or levels < 1 or stages < 1:
        raise ValueError(f"delays must have one entry per level ({levels}) and stages >= 1; "
                         f"got {len(delays)} delays, {stages} stages")
    groups = min(stages, levels)
    prefix = [0.0]
    for d in delays:
        prefix.append(prefix[-1] + d)
    inf = float("inf")
    # best[k][i]: smallest largest-group delay cutting levels [0, i) into k groups
    best = [[inf] * (levels + 1) for _ in range(groups + 1)]
    cut = [[0] * (levels + 1) for _ in range(groups + 1)]
    best[0][0] = 0.0
    for k in range(1, groups + 1):
        for i in range(k, levels + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i] or (cost == best[k][i] and j > cut[k][i]):
                    best[k][i], cut[k][i] = cost, j
    counts = [0] * levels
    i = levels
    for k in range(groups, 0, -1):
        counts[i - 1] += 1
        i = cut[k][i]
    counts[-1] += stages - groups
    return counts


class StallPipeline:
    """Register placement and the valid chain for one datapath inside module ``m``."""

    def __init__(self, m, *, levels: int, stages: int, valid_in: Value, name: str = "pipe",
                 delays: list[float] | None = None):
        self._m = m
        self._counts = register_counts(levels, stages, delays)
        self._name = name
        self._next_level = 0
        self.enable = Signal(name=f"{name}_enable")
        self._valid = valid_in

    @property
    def valid(self) -> Value:
        """Whether the values at the next level to close hold an item (before its registers)."""
        return self._valid

    @property
    def valid_out(self) -> Value:
        if self._next_level != len(self._counts):
            raise RuntimeError("valid_out read before every level was closed")
        return self._valid

    def after(self, level: int, values: list[Value]) -> list[Value]:
        """Close ``level`` (in order): return ``values`` delayed by its registers."""
        if level != self._next_level:
            raise RuntimeError(f"levels must be closed in order; expected {self._next_level}, "
                               f"got {level}")
        self._next_level += 1
        for k in range(self._counts[level]):
            tag = f"{self._name}_l{level}_r{k}"
            # data registers need no reset: the valid chain says what they hold
            regs = [Signal(Value.cast(v).shape(), name=f"{tag}_{j}", reset_less=True)
                    for j, v in enumerate(values)]
            valid = Signal(name=f"{tag}_valid")
            with self._m.If(self.enable):
                self._m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
                self._m.d.sync += valid.eq(self._valid)
            values, self._valid = regs, valid
        return values

    def connect(self, i, o) -> None:
        """Tie the pipeline to input stream ``i`` and output stream ``o``."""
        m = self._m
        m.d.comb += [
            self.enable.eq(~self.valid_out | o.ready),
            i.ready.eq(self.enable),
            o.valid.eq(self.valid_out),
        ]
