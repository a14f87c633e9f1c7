"""hw.memory_collision: only the read ports of memories declared collision-free are
marked "undefined on a read-write collision"; everything else in the RTLIL is unchanged."""

from __future__ import annotations

import re

from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.memory_collision import ATTRIBUTE, COLLISION_FREE, mark_collision_free
from hw.synth import yosys


class _TwoMemories(wiring.Component):
    """A collision-free memory with two read ports and one write port, another without
    the attribute, and a submodule with a collision-free memory of its own."""

    def __init__(self, *, nested: bool = True):
        self._nested = nested
        super().__init__({"addr": In(4), "data": In(8), "a": Out(8), "b": Out(8),
                          "c": Out(8), "d": Out(8), "e": Out(8)})

    def elaborate(self, platform):
        m = Module()
        free = Memory(shape=8, depth=16, init=[], attrs=COLLISION_FREE)
        plain = Memory(shape=8, depth=16, init=[])
        m.submodules.free, m.submodules.plain = free, plain
        for mem, outs in ((free, (self.a, self.b)), (plain, (self.c,))):
            w = mem.write_port()
            m.d.comb += [w.addr.eq(self.addr), w.data.eq(self.data), w.en.eq(1)]
            for out in outs:
                r = mem.read_port()
                m.d.comb += [r.addr.eq(self.addr + 1), out.eq(r.data)]
        # on the collision-free memory, a port transparent for its write port and an
        # asynchronous one: neither may be marked
        w = free.write_ports[0]
        transparent = free.read_port(transparent_for=(w,))
        asynchronous = free.read_port(domain="comb")
        m.d.comb += [transparent.addr.eq(self.addr), asynchronous.addr.eq(self.addr),
                     self.e.eq(transparent.data ^ asynchronous.data)]
        if self._nested:
            m.submodules.inner = inner = _TwoMemories(nested=False)
            m.d.comb += [inner.addr.eq(self.addr), inner.data.eq(self.data),
                         self.d.eq(inner.a ^ inner.e)]
        return m


def _masks(text: str) -> list[tuple[str, str, str]]:
    """(memory, CLK_ENABLE, COLLISION_X_MASK) of every ``$memrd_v2``."""
    ports = re.findall(r"(?ms)^\s*cell \$memrd_v2 .*?^\s*end$", text)
    return [(re.search(r'MEMID "\\\\(\S+)"', p).group(1),
             re.search(r"CLK_ENABLE (\S+)", p).group(1),
             re.search(r"COLLISION_X_MASK (\S+)", p).group(1)) for p in ports]


def test_only_collision_free_memories_are_marked(tmp_path):
    text = rtlil.convert(_TwoMemories(), name="top", emit_src=False)
    assert text.count(f"attribute \\{ATTRIBUTE} 1") == 2
    before = _masks(text)
    # per module: two plain synchronous ports, one transparent, one asynchronous on the
    # collision-free memory; one port on the other memory
    assert sorted(before) == sorted([("free", "1", "1'0")] * 6 + [("free", "0", "1'0")] * 2
                                    + [("plain", "1", "1'0")] * 2)
    marked = mark_collision_free(text)
    assert sorted(_masks(marked)) == sorted(
        [("free", "1", "1'1")] * 4 + [("free", "1", "1'0")] * 2 + [("free", "0", "1'0")] * 2
        + [("plain", "1", "1'0")] * 2)
    # nothing else changes
    assert marked.replace("COLLISION_X_MASK 1'1", "COLLISION_X_MASK 1'0") == text
    # and Yosys accepts the marks (it asserts on a mark beside transparency or on an
    # asynchronous port)
    (tmp_path / "design.il").write_text(marked)
    (tmp_path / "flow.ys").write_text("read_rtlil design.il\nproc\nmemory_collect\n"
                                      "check -assert\n")
    yosys.run_yosys(tmp_path)


def test_text_without_the_attribute_is_returned_unchanged():
    text = rtlil.convert(_TwoMemories(nested=False), name="top", emit_src=False)
    plain = text.replace(f"attribute \\{ATTRIBUTE} 1\n", "")
    assert mark_collision_free(plain) == plain
    assert mark_collision_free("") == ""
