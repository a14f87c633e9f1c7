"""A tiny design of our own for flow tests that need no registry design, and the storage
bits of a component read from its RTLIL."""

from __future__ import annotations

import re

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class RegisteredAdder(wiring.Component):
    """``y`` = registered ``a + b``; publishes how many flip-flops that takes."""

    def __init__(self, *, width: int = 4):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width + 1)})

    @property
    def register_bits(self) -> int:
        return self.width + 1

    def elaborate(self, platform):
        m = Module()
        total = Signal(self.width + 1)
        m.d.sync += total.eq(self.a + self.b)
        m.d.comb += self.y.eq(total)
        return m


class ReplicatedRegister(wiring.Component):
    """Two registered copies of ``a`` (8 bits), each feeding its own output; with
    ``replica`` their names carry :data:`hw.pipeline.REPLICA_TAG`. With ``aliased`` each
    output is its copy itself (Amaranth then names the flip-flop after the output port and
    the copy's name is only an alias of it, as for a register driving a memory port);
    otherwise each output adds a constant to its copy."""

    def __init__(self, *, replica: bool, aliased: bool = False):
        self.replica, self.aliased = replica, aliased
        width = 8 if aliased else 9
        super().__init__({"a": In(8), "y0": Out(width), "y1": Out(width)})

    @property
    def register_bits(self) -> int:
        return 16

    def elaborate(self, platform):
        from hw.pipeline import REPLICA_TAG
        m = Module()
        tag = f"_{REPLICA_TAG}" if self.replica else ""
        copies = [Signal(8, name=f"copy{tag}_{k}") for k in range(2)]
        m.d.sync += [c.eq(self.a) for c in copies]
        if self.aliased:
            m.d.comb += [self.y0.eq(copies[0]), self.y1.eq(copies[1])]
        else:
            m.d.comb += [self.y0.eq(copies[0] + 1), self.y1.eq(copies[1] + 2)]
        return m


def register_and_memory_bits(component) -> tuple[int, int]:
    """``(flip-flop bits, memory bits)`` of ``component`` before synthesis: the widths of
    its ``$*dff*`` cells and width x size of its memories (FIFO storage included), read
    from the RTLIL it emits."""
    from hw.designs import emit
    text = emit(component, fmt="rtlil", name="top")
    bits = 0
    for match in re.finditer(r"cell \$\w*dff\w* \S+\n((?:\s+parameter .*\n)+)", text):
        bits += int(re.search(r"parameter \\WIDTH (\d+)", match.group(1)).group(1))
    memory = sum(int(w) * int(n) for w, n in re.findall(r"memory width (\d+) size (\d+)", text))
    return bits, memory
