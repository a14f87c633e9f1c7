"""The weight memory behind a design's gather port: requests in, response items out.

A design with a gather (``llm-int8-linear``) has two more streams beside ``i`` and
``o``: ``req`` (out: one request per weight column) and ``resp`` (in: the column's
items). The benches answer them with :class:`GatherModel`: each accepted request for
column ``j`` queues ``pieces[j]`` (payload integers, in order), available
``latency`` cycles after the request was taken (``latency >= 1``) and presented one per
cycle, in request order. :class:`GatherResponder` is the cocotb agent (two phases per
cycle, :mod:`sim.agents`): random ready back-pressure on ``req``, random valid stalls on
``resp``; :func:`gather_job` / :func:`load_job` carry the memory from
:mod:`sim.runner` to the bench.

An adapter opts in with ``gather_memory(dut, inputs)`` (payload arrays of the response,
``pieces`` rows per column, column-major) and ``memory_latency``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["GatherModel", "GatherResponder", "gather_job", "load_job", "MEMORY_LATENCY"]

#: default cycles from a request taken to its first response item
MEMORY_LATENCY = 3


class GatherModel:
    """Columns' response items and the queue of requested ones.

    ``pieces``: ``pieces[j]`` the payload integers answering a request for column ``j``;
    ``latency``: cycles from the cycle a request is taken to the first cycle its items may
    be presented (>= 1). ``requests`` records the requested columns in order.
    """

    def __init__(self, pieces: Sequence[Sequence[int]], latency: int = MEMORY_LATENCY):
        if latency < 1:
            raise ValueError(f"latency must be at least 1; got {latency}")
        self.pieces = pieces
        self.latency = latency
        self.requests: list[int] = []
        self._queue: deque = deque()      # (first cycle available, payload)

    def request(self, column: int, cycle: int) -> None:
        """A request for ``column`` was taken in ``cycle``. ``IndexError`` for a column
        the memory does not hold."""
        if not 0 <= column < len(self.pieces):
            raise IndexError(f"request for column {column} outside 0..{len(self.pieces) - 1}")
        self.requests.append(column)
        for item in self.pieces[column]:
            self._queue.append((cycle + self.latency, item))

    def head(self, cycle: int) -> int | None:
        """The next response item if it may be presented in ``cycle``."""
        if self._queue and self._queue[0][0] <= cycle:
            return self._queue[0][1]
        return None

    def pop(self) -> None:
        """The presented item was taken."""
        self._queue.popleft()

    @property
    def pending(self) -> int:
        """Response items not yet taken."""
        return len(self._queue)


class GatherResponder:
    """cocotb agent answering ``req`` with ``resp`` from a :class:`GatherModel`.

    ``column_of(int) -> int`` reads the column from a request payload. Each cycle
    ``req.ready`` is high with ``ready_probability``; an available item is presented with
    ``valid_probability`` and held until taken.
    """

    def __init__(self, req_valid, req_ready, req_payload, resp_valid, resp_ready, resp_payload,
                 model: GatherModel, column_of, *, ready_probability: float,
                 valid_probability: float, rng: random.Random):
        self._req = (req_valid, req_ready, req_payload)
        self._resp = (resp_valid, resp_ready, resp_payload)
        self.model = model
        self._column_of = column_of
        self._pr, self._pv = ready_probability, valid_probability
        self._rng = rng
        self._cycle = 0
        self._ready_now = 0
        self._presenting = False
        self._valid_now = 0
        req_ready.value = 0
        resp_valid.value = 0

    def drive(self) -> None:
        want = int(self._pr >= 1.0 or self._rng.random() < self._pr)
        if want != self._ready_now:
            self._req[1].value = want
            self._ready_now = want
        if not self._presenting:
            head = self.model.head(self._cycle)
            if head is not None and (self._pv >= 1.0 or self._rng.random() < self._pv):
                self._presenting = True
                self._resp[2].value = head
        valid = int(self._presenting)
        if valid != self._valid_now:
            self._resp[0].value = valid
            self._valid_now = valid

    def sample(self) -> None:
        if self._ready_now and self._req[0].value:
            self.model.request(self._column_of(self._req[2].value.to_unsigned()), self._cycle)
        if self._presenting and self._resp[1].value:
            self.model.pop()
            self._presenting = False
        self._cycle += 1


def gather_job(arrays: dict[str, np.ndarray], pieces: int, latency: int, resp_codec,
               req_codec, path: Path) -> dict:
    """Write the memory's response arrays (payload keys, ``columns * pieces`` rows) to
    ``path`` (.npz) and return the job entry the bench reads (:func:`load_job`)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return {"memory": str(path), "pieces": pieces, "latency": latency,
            "resp_codec": resp_codec.to_json(), "req_codec": req_codec.to_json()}


def load_job(entry: dict):
    """``(GatherModel, column_of)`` from a job entry of :func:`gather_job`."""
    from sim.codec import PayloadCodec
    resp_codec = PayloadCodec.from_json(entry["resp_codec"])
    req_codec = PayloadCodec.from_json(entry["req_codec"])
    with np.load(entry["memory"]) as npz:
        items = resp_codec.pack({k: npz[k] for k in npz.files})
    k = entry["pieces"]
    pieces = [items[j * k:(j + 1) * k] for j in range(len(items) // k)]
    (leaf,) = req_codec.leaves
    mask = (1 << leaf.width) - 1

    def column_of(payload: int) -> int:
        return (payload >> leaf.offset) & mask

    return GatherModel(pieces, entry["latency"]), column_of
