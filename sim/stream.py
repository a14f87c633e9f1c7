"""The input stream of one run, stored without repeating what every token shares.

A run's input items come in one of two forms:

- **flat**: ``N`` items, payload arrays ``tokens[key]`` of shape ``(N, ...)``
  (one row per item; the small designs);
- **tiled**: ``T`` tokens of ``S`` steps each, for a datapath that takes the same
  per-layer operands at every token (:mod:`hw.lqer_schedule`)::

      item t*S + s  =  {**steps[key][s], **tokens[key][t, index[s]]}    t < T, s < S

  ``steps`` (``S`` rows: weight slots) is stored once; ``tokens`` holds ``(T, K, ...)``
  per-token blocks (activations) and ``index`` ``(S,)`` names the block of a token that
  step ``s`` carries. Stored size is O(S + T*K) items, not O(T*S).

The two parts fill disjoint payload fields, so an item's payload integer is the
bitwise OR of its packed parts (:meth:`InputStream.pack` does that lazily, item by
item, in the cocotb bench).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["InputStream", "PackedItems"]

_TOKEN, _STEP, _INDEX = "token:", "step:", "index"


def _compact(a: np.ndarray) -> np.ndarray:
    """The smallest signed integer dtype that holds ``a`` exactly (files only)."""
    if not a.size:
        return a.astype(np.int8)
    lo, hi = int(a.min()), int(a.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype)
    return a.astype(np.int64)


@dataclass(frozen=True)
class InputStream:
    """Input items of a run (see the module doc); arrays are integer payload fields
    keyed as :class:`sim.codec.PayloadCodec` keys them (``"x.mantissas"``).

    ``steps`` empty and ``index`` ``None``: the flat form. Raises ``ValueError`` when the
    parts disagree in shape.
    """

    tokens: dict[str, np.ndarray]
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None

    def __post_init__(self):
        if not self.tokens:
            raise ValueError("an input stream needs at least one token field")
        counts = {np.shape(a)[0] if np.ndim(a) else -1 for a in self.tokens.values()}
        if len(counts) != 1:
            raise ValueError(f"token fields must share their first dimension; got {counts}")
        if self.index is None:
            if self.steps:
                raise ValueError("a tiled input stream needs an index")
            return
        index = np.asarray(self.index)
        blocks = {np.shape(a)[1] if np.ndim(a) > 1 else -1 for a in self.tokens.values()}
        if index.ndim != 1 or not index.size or len(blocks) != 1:
            raise ValueError("a tiled input stream needs a 1-d index and (T, K, ...) token "
                             "fields")
        (k,) = blocks
        if index.min() < 0 or index.max() >= k:
            raise ValueError(f"index must lie in 0..{k - 1}")
        for key, a in self.steps.items():
            if np.shape(a)[:1] != index.shape:
                raise ValueError(f"step field {key!r} must have {index.size} rows; "
                                 f"got {np.shape(a)}")

    # -- sizes ---------------------------------------------------------------------------
    @property
    def tiled(self) -> bool:
        """True for the tokens x steps form."""
        return self.index is not None

    @property
    def token_count(self) -> int:
        """``T`` (tiled) or ``N`` (flat)."""
        return int(np.shape(next(iter(self.tokens.values())))[0])

    @property
    def steps_per_token(self) -> int:
        """``S`` (tiled) or 1 (flat)."""
        return 1 if self.index is None else int(np.size(self.index))

    def __len__(self) -> int:
        """Number of input items, ``T * S`` (or ``N``)."""
        return self.token_count * self.steps_per_token

    # -- explicit rows and packed items ----------------------------------------------------
    def rows(self) -> dict[str, np.ndarray]:
        """Every item's payload arrays, one row per item (O(T*S) memory: small runs and
        tests only; the bench packs lazily with :meth:`pack`)."""
        if self.index is None:
            return {k: np.asarray(a) for k, a in self.tokens.items()}
        t, s = self.token_count, self.steps_per_token
        out = {k: np.asarray(a)[:, self.index].reshape((t * s,) + np.shape(a)[2:])
               for k, a in self.tokens.items()}
        out.update({k: np.tile(np.asarray(a), (t,) + (1,) * (np.ndim(a) - 1))
                    for k, a in self.steps.items()})
        return out

    def pack(self, codec) -> PackedItems:
        """The payload integers of the items, as a lazy sequence (``codec``:
        :class:`sim.codec.PayloadCodec` of the input port). Raises ``ValueError`` naming a
        field that is missing, misshapen or out of range."""
        missing = set(codec.shapes) - set(self.tokens) - set(self.steps)
        if missing:
            raise ValueError(f"payload field {sorted(missing)[0]!r} is missing")
        if self.index is None:
            return PackedItems(codec.pack(self.tokens))
        flat = {k: np.asarray(a).reshape((-1,) + np.shape(a)[2:]) for k, a in self.tokens.items()}
        blocks = np.shape(next(iter(self.tokens.values())))[1]
        return PackedItems(codec.pack(flat, partial=True), codec.pack(self.steps, partial=True),
                           np.asarray(self.index, np.int64), blocks)

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> int:
        """Write the stream to ``path`` (.npz, smallest integer dtypes) atomically; return
        the bytes written."""
        path = Path(path)
        arrays = {_TOKEN + k: _compact(np.asarray(a)) for k, a in self.tokens.items()}
        arrays.update({_STEP + k: _compact(np.asarray(a)) for k, a in self.steps.items()})
        if self.index is not None:
            arrays[_INDEX] = np.asarray(self.index, np.int64)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path.stat().st_size

    @classmethod
    def load(cls, path: str | os.PathLike) -> InputStream:
        """Read a stream written by :meth:`save` (fields as int64)."""
        tokens, steps, index = {}, {}, None
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                a = npz[key].astype(np.int64)
                if key == _INDEX:
                    index = a
                elif key.startswith(_TOKEN):
                    tokens[key[len(_TOKEN):]] = a
                else:
                    steps[key[len(_STEP):]] = a
        return cls(tokens, steps, index)


class PackedItems(Sequence):
    """Payload integers of an :class:`InputStream`, computed when read: item ``t*S + s``
    is ``steps[s] | tokens[t*K + index[s]]`` (disjoint fields)."""

    def __init__(self, token_items: list[int], step_items: list[int] | None = None,
                 index: np.ndarray | None = None, blocks: int = 1):
        self._tokens = token_items
        self._steps = step_items
        self._index = None if index is None else [int(i) for i in index]
        self._blocks = blocks
        self._len = len(token_items) if step_items is None else \
            len(token_items) // blocks * len(step_items)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, k: int) -> int:
        if not isinstance(k, (int, np.integer)):
            raise TypeError("PackedItems takes integer indices")
        if k < 0:
            k += self._len
        if not 0 <= k < self._len:
            raise IndexError("item index out of range")
        if self._steps is None:
            return self._tokens[k]
        t, s = divmod(int(k), len(self._steps))
        return self._steps[s] | self._tokens[t * self._blocks + self._index[s]]
