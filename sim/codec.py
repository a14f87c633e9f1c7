"""Stream payloads as integers and back, vectorised with NumPy.

An Amaranth data layout flattens to leaf fields, each with a bit offset,
width and signedness. Leaves are grouped by their path with array indices
removed, so ``{"x": block, "w": ArrayLayout(block, P)}`` becomes the arrays
``"x.exponent"`` (N,), ``"x.mantissas"`` (N, block), ``"w.exponent"`` (N, P)
and ``"w.mantissas"`` (N, P, block). A codec is plain data (JSON-able), so the
cocotb process needs no Amaranth to use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Leaf", "PayloadCodec"]


@dataclass(frozen=True)
class Leaf:
    """One scalar field of a payload: ``width`` bits at bit ``offset`` (LSB first)."""

    key: str            # dotted path without array indices
    index: tuple        # position inside the key's array
    offset: int
    width: int
    signed: bool


def _flatten(layout, offset: int, names: tuple, index: tuple, out: list) -> None:
    from amaranth.hdl import Shape
    from amaranth.lib import data
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            _flatten(field.shape, offset + field.offset, names + (name,), index, out)
    elif isinstance(layout, data.ArrayLayout):
        step = data.Layout.cast(layout.elem_shape).size if isinstance(
            layout.elem_shape, data.Layout) else Shape.cast(layout.elem_shape).width
        for k in range(layout.length):
            _flatten(layout.elem_shape, offset + k * step, names, index + (k,), out)
    else:
        shape = Shape.cast(layout)
        out.append(Leaf(".".join(names), index, offset, shape.width, shape.signed))


class PayloadCodec:
    """Packs dicts of integer arrays into payload integers and unpacks them.

    ``shapes[key]``: the array dimensions of a key after the item axis; ``signed`` and
    ``widths``: per key. ``width``: payload bits.
    """

    def __init__(self, leaves: list[Leaf], width: int):
        self.leaves = leaves
        self.width = width
        self.shapes: dict[str, tuple] = {}
        for leaf in leaves:
            dims = tuple(i + 1 for i in leaf.index)
            old = self.shapes.get(leaf.key, dims)
            self.shapes[leaf.key] = tuple(max(a, b) for a, b in zip(old, dims)) if old else dims
        self.signed = {leaf.key: leaf.signed for leaf in leaves}
        self.widths = {leaf.key: leaf.width for leaf in leaves}

    @classmethod
    def from_layout(cls, layout) -> "PayloadCodec":
        """The codec of an Amaranth data layout (or a plain shape: one key ``""``)."""
        from amaranth.hdl import Shape
        from amaranth.lib import data
        leaves: list[Leaf] = []
        if isinstance(layout, data.Layout):
            _flatten(layout, 0, (), (), leaves)
            width = layout.size
        else:
            shape = Shape.cast(layout)
            leaves.append(Leaf("", (), 0, shape.width, shape.signed))
            width = shape.width
        return cls(leaves, width)

    def to_json(self) -> dict:
        """Plain data for :meth:`from_json` (the cocotb process needs no Amaranth)."""
        return {"width": self.width, "leaves": [[l.key, list(l.index), l.offset, l.width, l.signed]
                                                for l in self.leaves]}

    @classmethod
    def from_json(cls, obj: dict) -> "PayloadCodec":
        """The codec :meth:`to_json` described."""
        return cls([Leaf(k, tuple(i), o, w, s) for k, i, o, w, s in obj["leaves"]], obj["width"])

    def value_range(self, key: str) -> tuple[int, int]:
        """Inclusive range of field ``key`` (two's complement when signed)."""
        w = self.widths[key]
        return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if self.signed[key] else (0, (1 << w) - 1)

    def check(self, arrays: dict[str, np.ndarray], *, partial: bool = False) -> int:
        """Validate shapes ``(N,) + shapes[key]`` and ranges; return the item count N.

        ``partial=True`` checks only the fields present (the rest will be zero).
        Raises ``ValueError`` naming the first missing, misshapen or out-of-range field.
        """
        n = None
        for key, dims in self.shapes.items():
            if key not in arrays:
                if partial:
                    continue
                raise ValueError(f"payload field {key!r} is missing")
            a = np.asarray(arrays[key])
            if n is None:
                n = a.shape[0] if a.ndim else -1
            if a.shape != (n,) + dims:
                raise ValueError(f"payload field {key!r} must have shape {(n,) + dims}; "
                                 f"got {a.shape}")
            lo, hi = self.value_range(key)
            if a.size and (a.min() < lo or a.max() > hi):
                raise ValueError(f"payload field {key!r} must be in {lo}..{hi}")
        return n or 0

    def pack(self, arrays: dict[str, np.ndarray], *, partial: bool = False) -> list[int]:
        """Payload integers (unsigned, LSB-first) of N items; ``partial=True`` packs only
        the fields present and leaves the others' bits zero (see :meth:`check`)."""
        n = self.check(arrays, partial=partial)
        nbytes = (self.width + 7) // 8
        out: list[int] = []
        chunk = max(1, (1 << 22) // max(self.width, 1))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            bits = np.zeros((stop - start, nbytes * 8), np.uint8)
            for leaf in self.leaves:
                if leaf.key not in arrays:
                    continue
                v = np.asarray(arrays[leaf.key])[(slice(start, stop),) + leaf.index]
                v = v.astype(np.int64).astype(np.uint64) & np.uint64((1 << leaf.width) - 1)
                shifts = np.arange(leaf.width, dtype=np.uint64)
                columns = slice(leaf.offset, leaf.offset + leaf.width)
                bits[:, columns] = (v[:, None] >> shifts) & np.uint64(1)
            packed = np.packbits(bits, axis=1, bitorder="little")
            out += [int.from_bytes(packed[i].tobytes(), "little") for i in range(len(packed))]
        return out

    def unpack(self, values: list[int]) -> dict[str, np.ndarray]:
        """Arrays of the items in ``values`` (payload integers)."""
        n = len(values)
        nbytes = (self.width + 7) // 8
        raw = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
        bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(n, nbytes), axis=1,
                             bitorder="little")
        out = {key: np.zeros((n,) + dims, np.int64) for key, dims in self.shapes.items()}
        field = np.zeros((n, 64), np.uint8)
        for leaf in self.leaves:
            field[:, :leaf.width] = bits[:, leaf.offset:leaf.offset + leaf.width]
            field[:, leaf.width:] = 0
            v = np.packbits(field, axis=1, bitorder="little").view("<u8")[:, 0].astype(np.int64)
            if leaf.signed:
                v = np.where(v >= (1 << (leaf.width - 1)), v - (1 << leaf.width), v)
            out[leaf.key][(slice(None),) + leaf.index] = v
        return out
