"""Reusable cocotb pieces: stream driver, stream monitor, checker, cycle loop.

The agents are plain objects with two phases per clock cycle, called by
:func:`run_cycles`: ``drive()`` just after the rising edge (writes), then
``sample()`` in the read-only phase, where every signal has settled to what the
next rising edge will see. A transfer happens at that edge iff ``valid`` and
``ready`` were both high when sampled. One loop awaits the triggers for all
agents, which keeps the simulator round trips at two per cycle.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["StreamDriver", "StreamMonitor", "Checker", "run_cycles"]


class StreamDriver:
    """Presents ``items`` (payload integers) in order on a valid/ready stream.

    Between items it withholds ``valid`` with probability ``1 - valid_probability``
    per cycle (random stalls); once an item is presented it stays until taken.
    """

    def __init__(self, valid, ready, payload, items: Sequence[int], *,
                 valid_probability: float, rng: random.Random):
        self._valid, self._ready, self._payload = valid, ready, payload
        self._items = items
        self._p = valid_probability
        self._rng = rng
        self.sent = 0
        self._presenting = False
        self._valid_now = 0
        valid.value = 0

    @property
    def done(self) -> bool:
        """True once every item was taken."""
        return self.sent == len(self._items)

    def drive(self) -> None:
        """After the rising edge: keep the presented item, or start presenting the next
        one with probability ``valid_probability``."""
        if self._presenting or self.done:
            want = int(self._presenting)
        else:
            self._presenting = self._rng.random() < self._p
            want = int(self._presenting)
            if want:
                self._payload.value = self._items[self.sent]
        if want != self._valid_now:
            self._valid.value = want
            self._valid_now = want

    def sample(self) -> None:
        """In the read-only phase: the presented item is taken if ``ready`` is high."""
        if self._presenting and self._ready.value:
            self.sent += 1
            self._presenting = False


class StreamMonitor:
    """Takes items from a valid/ready stream, with ``ready`` high with probability
    ``ready_probability`` each cycle (random back-pressure); calls ``on_item(int)``."""

    def __init__(self, valid, ready, payload, on_item: Callable[[int], None], *,
                 ready_probability: float, rng: random.Random):
        self._valid, self._ready, self._payload = valid, ready, payload
        self._on_item = on_item
        self._p = ready_probability
        self._rng = rng
        self._ready_now = 0
        self.received = 0
        ready.value = 0

    def drive(self) -> None:
        """After the rising edge: raise ``ready`` with probability ``ready_probability``."""
        want = int(self._p >= 1.0 or self._rng.random() < self._p)
        if want != self._ready_now:
            self._ready.value = want
            self._ready_now = want

    def sample(self) -> None:
        """In the read-only phase: take the item if ``valid`` and ``ready`` are high."""
        if self._ready_now and self._valid.value:
            self.received += 1
            self._on_item(self._payload.value.to_unsigned())


class Checker:
    """Compares received payload integers, in order, with expected ones.

    ``expected=None`` only records (used by ``lqer-hw sim``). ``describe(int)``
    renders an item for the first ``report`` mismatches in the log.
    """

    def __init__(self, expected: Sequence[int] | None, *, log, describe: Callable[[int], str],
                 report: int = 5):
        self.expected = expected
        self.received: list[int] = []
        self.mismatches = 0
        self._log = log
        self._describe = describe
        self._report = report

    def __call__(self, value: int) -> None:
        k = len(self.received)
        self.received.append(value)
        if self.expected is None:
            return
        if k >= len(self.expected):
            self.mismatches += 1
            self._log.error("item %d: unexpected extra output %s", k, self._describe(value))
        elif value != self.expected[k]:
            self.mismatches += 1
            if self.mismatches <= self._report:
                self._log.error("item %d: got %s, expected %s", k, self._describe(value),
                                self._describe(self.expected[k]))


async def run_cycles(clk, agents, *, until: Callable[[], bool] | None, max_cycles: int,
                     every: tuple[int, Callable[[int], None]] | None = None) -> int:
    """Clock the agents until ``until()`` holds; returns the cycle count.

    Raises ``TimeoutError`` after ``max_cycles`` (a hung handshake); with
    ``until=None`` it simply runs ``max_cycles`` cycles. ``every=(k, f)`` calls
    ``f(cycles)`` every ``k`` cycles (progress reports).
    """
    rising, read_only = RisingEdge(clk), ReadOnly()
    cycles = 0
    period, tick = every if every is not None else (0, None)
    while until is None or not until():
        if period and cycles % period == 0 and cycles:
            tick(cycles)
        if cycles >= max_cycles:
            if until is None:
                break
            raise TimeoutError(f"no completion after {max_cycles} cycles")
        await rising
        for agent in agents:
            agent.drive()
        await read_only
        for agent in agents:
            agent.sample()
        cycles += 1
    return cycles
