"""Memories that never read the word being written in the same cycle, and the RTLIL
rewrite that tells Yosys so.

Amaranth 0.5 writes every synchronous read port as a ``$memrd_v2`` with
``COLLISION_X_MASK`` 0 (``amaranth/back/rtlil.py``): a read of the word a write port is
writing in the same cycle must return the old word. Where a block RAM's behaviour on such a
collision between its two ports is undefined (ECP5 ``PDPW16KD``, Yosys
``techlibs/lattice/brams_16kd.txt``), Yosys's ``memory_libmap`` emulates the old word: the
write is delayed a cycle (a register per data and address bit) and a comparator and a
multiplexer sit between the block RAM's read data and whatever it drives, so a register
after the read data can no longer become the block RAM's output register
(``hw.synth.ecp5_outreg``; docs/synth.md, "Block RAM output registers").

A memory built with ``attrs=COLLISION_FREE`` declares that no read port is enabled in a
cycle where a write port writes the word it reads (a FIFO, whose read and write pointers
meet only when it is empty, when it does not read, or full, when it does not write; the
design's module doc gives its argument). The attribute is Yosys's own ``no_rw_check``
("read-write collisions do not matter"), which Yosys 0.70 honours only when merging a
register into an asynchronous read port (``passes/memory/memory_dff.cc``);
:func:`mark_collision_free` carries it to the synchronous read ports, setting their
``COLLISION_X_MASK`` to ones ("undefined on collision") in the RTLIL text for the write
ports they are not transparent for, so no emulation is built. Simulation is unaffected:
the collision it would give a value to never happens.
"""

from __future__ import annotations

import re

__all__ = ["COLLISION_FREE", "ATTRIBUTE", "mark_collision_free"]

ATTRIBUTE = "no_rw_check"
COLLISION_FREE = {ATTRIBUTE: 1}

_MODULE = re.compile(r"(?m)^(?=module )")
_READ_PORT = re.compile(r"(?ms)^\s*cell \$memrd_v2 \S+\n.*?^\s*end$")
_MEMID = re.compile(r'parameter \\MEMID "\\\\(\S+)"')
_MASK = re.compile(r"(parameter \\COLLISION_X_MASK )(\d+)'([01]+)")
_TRANSPARENCY = re.compile(r"parameter \\TRANSPARENCY_MASK \d+'([01]+)")
_SYNCHRONOUS = re.compile(r"parameter \\CLK_ENABLE 1\b")


def _collision_free_memories(module: str) -> set[str]:
    """Names (without the leading backslash) of the memories in ``module`` (RTLIL text)
    declared with the :data:`ATTRIBUTE` attribute."""
    names, attributes = set(), []
    for line in module.splitlines():
        words = line.split()
        if words[:1] == ["attribute"]:
            attributes.append(words[1:])
            continue
        if words[:1] == ["memory"] and [f"\\{ATTRIBUTE}", "1"] in attributes:
            names.add(words[-1].lstrip("\\"))   # the last word: the name
        attributes = []
    return names


def mark_collision_free(text: str) -> str:
    """``text`` (RTLIL from ``amaranth.back.rtlil``) with ``COLLISION_X_MASK`` set to ones
    on every synchronous ``$memrd_v2`` (``CLK_ENABLE`` 1) of a memory declared with the
    :data:`ATTRIBUTE` attribute, for each write port the read port is not transparent for
    (``TRANSPARENCY_MASK`` 0: a transparent port already returns the new word, and Yosys
    rejects both marks on one pair); every other byte unchanged. An asynchronous read port
    has no collision to mark (and Yosys rejects the mark there)."""
    chunks = _MODULE.split(text)
    for i, module in enumerate(chunks):
        names = _collision_free_memories(module)
        if not names:
            continue

        def mark(port: re.Match) -> str:
            body = port.group(0)
            memid, transparency = _MEMID.search(body), _TRANSPARENCY.search(body)
            if (memid is None or memid.group(1) not in names or transparency is None
                    or not _SYNCHRONOUS.search(body)):
                return body
            # a port transparent for a write port already defines the collision (the new
            # word); Yosys allows the undefined mark only where it is not
            mask = "".join("0" if bit == "1" else "1" for bit in transparency.group(1))
            return _MASK.sub(lambda m: f"{m.group(1)}{m.group(2)}'{mask}"
                             if len(mask) == len(m.group(3)) else m.group(0), body)

        chunks[i] = _READ_PORT.sub(mark, module)
    return "".join(chunks)
