"""An unsigned integer product as partial products summed over pipelined levels.

For fabric without multiplier blocks (ECP5 as ``lqer-hw pnr`` places it, target
``ecp5-nodsp``): Yosys turns a ``*`` into one combinational array of adders, about
ten LUT levels for 11 x 11 bits and twenty for 24 x 24 (fp16-mul reached 109 MHz,
fp32-mul 96 MHz with the product in one level). Here ``a * b`` is the sum of the
partial products ``(a if b[i] else 0) << i`` (an AND per bit), added pairwise in a
tree whose levels are separated by pipeline registers. The first level is the ANDs
and one row of two-input adders (a LUT and one ECP5 carry chain), every later level
``adds`` rows (``adds`` carry chains in series); nextpnr places either in about
5 ns with ``adds = 2``, but two chains in series with the route between them limited
fp32-mul at 135-149 MHz (docs/synth.md), so it takes ``adds = 1``.

A row facing exactly three terms is a carry-save row instead (the bitwise sum and
the majority of the three: two terms in one LUT level, no carry chain). Where a
level starts with one, it is a LUT level in front of the level's ``adds`` chains and
not one of them (``adds = 1``: three terms become one in a level, a LUT and a chain).

A term is a value with a static bit offset (its low ``offset`` bits are zero and not
stored); adding two terms keeps the low bits of the one with the smaller offset and
adds only where they overlap, so no carry chain runs over known zeros, and every
term is exactly as wide as its largest value needs.

Use inside a :class:`hw.pipeline.Pipeline`-based datapath: :meth:`ProductTree.first`
forms the first level from the operands, :meth:`ProductTree.step` each later one
from the registered terms of the one before, :meth:`ProductTree.result` the product
(of the last level's single term). ``levels`` says how many levels that takes.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Value

from hw.params import check_int
from hw.shifting import wire

__all__ = ["ProductTree"]


class ProductTree:
    """Plan of ``a * b`` for unsigned ``a_width``- and ``b_width``-bit operands (1..64),
    ``adds`` (1..4) adder rows per level after the first (which has one). Raises
    ``ValueError`` / ``TypeError`` naming the parameter."""

    def __init__(self, *, a_width: int, b_width: int, adds: int = 1):
        self.a_width = check_int("a_width", a_width, 1, 64)
        self.b_width = check_int("b_width", b_width, 1, 64)
        self.adds = check_int("adds", adds, 1, 4)
        # terms as (offset, largest value), level by level: the partial products first;
        # level 0 spends a LUT level on the ANDs, so it takes one adder row
        terms = [(i, (1 << a_width) - 1) for i in range(b_width)]
        self._rows_per_level = []       # per level: "csa" / "add" rows in order
        self._plan = []
        while True:
            rows = []
            adds_left = 1 if not self._plan else self.adds
            while adds_left and len(terms) > 1:
                if len(terms) == 3 and not rows and self._plan:
                    rows.append("csa")  # a LUT level ahead of the level's carry chains
                else:
                    rows.append("csa" if len(terms) == 3 else "add")
                    adds_left -= 1
                terms = self._pair(terms)
            self._rows_per_level.append(rows)
            self._plan.append(terms)
            if len(terms) == 1:
                break

    @staticmethod
    def _pair(terms):
        if len(terms) == 3:  # a carry-save row: two terms as wide as the widest
            offset = terms[0][0]
            top = max(o + v.bit_length() for o, v in terms) - offset
            return [(offset, (1 << top) - 1), (offset + 1, (1 << top) - 1)]
        out = []
        for k in range(0, len(terms) - 1, 2):
            (o1, v1), (o2, v2) = terms[k], terms[k + 1]
            out.append((o1, v1 + (v2 << (o2 - o1))))
        if len(terms) % 2:
            out.append(terms[-1])
        return out

    @property
    def levels(self) -> int:
        """Combinational levels from the operands to the product (one register after each)."""
        return len(self._plan)

    @property
    def delays(self) -> list[float]:
        """Estimated delay of each level in LUT levels (for :func:`hw.pipeline.register_counts`):
        a carry chain and its routing count 1.5; the first level adds the AND's LUT."""
        return [sum(1.5 if row == "add" else 1.0 for row in rows) + (1.0 if k == 0 else 0.0)
                for k, rows in enumerate(self._rows_per_level)]

    @property
    def width(self) -> int:
        """Bits of the product: ``a_width + b_width``."""
        return self.a_width + self.b_width

    def first(self, m: Module, a, b: Value, name: str) -> list[Value]:
        """Level 0: the partial products of ``a`` and ``b`` and their first adder row.
        ``a`` may be a list of copies of one value (registers of their own): the rows
        share them out in order, so each copy drives ``b_width / len(a)`` rows instead of
        one register driving all of them."""
        copies = [Value.cast(v) for v in (a if isinstance(a, (list, tuple)) else [a])]
        b = Value.cast(b)
        terms = [(i, wire(m, copies[i * len(copies) // self.b_width]
                          & b[i].replicate(self.a_width), f"{name}_pp{i}"))
                 for i in range(self.b_width)]
        return self._rows(m, terms, 0, name)

    def step(self, m: Module, level: int, values: list[Value], name: str) -> list[Value]:
        """Level ``level`` (1..levels-1) from the registered terms of level ``level - 1``."""
        offsets = [o for o, _ in self._plan[level - 1]]
        return self._rows(m, list(zip(offsets, values)), level, name)

    def result(self, values: list[Value]) -> Value:
        """The product (``width`` bits) from the last level's terms."""
        (offset, _), = self._plan[-1]
        value, = values
        return Cat(Const(0, offset), value)[:self.width]

    @staticmethod
    def _carry_save(m, terms, name):
        """Three terms as two (a LUT level, no carry chain): the bitwise sum and the
        majority, one bit up."""
        offset = terms[0][0]
        x, y, z = (Cat(Const(0, o - offset), v) if o > offset else v for o, v in terms)
        top = max(len(x), len(y), len(z))
        x, y, z = (Cat(v, Const(0, top - len(v))) if len(v) < top else v for v in (x, y, z))
        total = wire(m, x ^ y ^ z, f"{name}_csa_sum")
        carry = wire(m, (x & y) | (x & z) | (y & z), f"{name}_csa_carry")
        return [(offset, total), (offset + 1, carry)]

    def _rows(self, m, terms, level, name):
        for row in self._rows_per_level[level]:
            if row == "csa":
                terms = self._carry_save(m, terms, f"{name}_l{level}")
                continue
            out = []
            for k in range(0, len(terms) - 1, 2):
                (o1, v1), (o2, v2) = terms[k], terms[k + 1]
                shift = o2 - o1
                if len(v1) > shift:
                    out.append((o1, Cat(v1[:shift], v1[shift:] + v2)))
                else:  # no overlap: the two side by side
                    out.append((o1, Cat(v1, Const(0, shift - len(v1)), v2)))
            if len(terms) % 2:
                out.append(terms[-1])
            terms = out
        planned = self._plan[level]
        assert [o for o, _ in terms] == [o for o, _ in planned]
        return [wire(m, v[:limit.bit_length()], f"{name}_l{level}_t{k}")
                for k, ((_, v), (_, limit)) in enumerate(zip(terms, planned))]
