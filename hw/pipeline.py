"""A pipeline that advances as a whole and stalls when its output is blocked.

Each datapath is a sequence of combinational *levels* (a multiplier, one
adder-tree level, ...). ``stages`` registers are spread over the level
boundaries, the last always at the output, so outputs are registered and the
latency is exactly ``stages`` cycles. The whole pipeline advances when its
output slot is empty or being taken (``enable = ~valid_out | ready``); the
input is ready under the same condition, which gives one item per cycle
whenever the consumer is ready.
"""

from __future__ import annotations

from amaranth.hdl import Signal, Value

__all__ = ["register_counts", "StallPipeline"]


def register_counts(levels: int, stages: int) -> list[int]:
    """How many registers follow each of ``levels`` levels; they sum to ``stages``.

    The output register is fixed; the other ``stages - 1`` sit at evenly spaced
    boundaries (more than one per boundary when ``stages > levels``).
    """
    counts = [0] * levels
    counts[-1] = 1
    for i in range(1, stages):
        counts[max(i * levels // stages - 1, 0)] += 1
    return counts


class StallPipeline:
    """Register placement and the valid chain for one datapath inside module ``m``."""

    def __init__(self, m, *, levels: int, stages: int, valid_in: Value, name: str = "pipe"):
        self._m = m
        self._counts = register_counts(levels, stages)
        self._name = name
        self._next_level = 0
        self.enable = Signal(name=f"{name}_enable")
        self._valid = valid_in

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
