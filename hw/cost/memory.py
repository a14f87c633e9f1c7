"""Memories in bits and in a target's block RAMs.

A memory is ``depth`` words of ``width`` bits. On a target with block RAM it is tiled
with the primitive's aspect ratios: for each ratio ``(words, bits)`` it takes
``ceil(depth / words) * ceil(width / bits)`` primitives, and the cheapest ratio wins
(uniform tiling; a mixed tiling can save a primitive on awkward widths, so the figure
is an upper bound by at most that). Counts are in the target's reporting unit
(:attr:`BlockRAM.unit`): xc7 counts RAMB36 equivalents, a RAMB18 being half of one.

Geometries (the vendors' memory guides):

=========  ==================  =======  ===============================================
target     primitive           bits     aspect ratios (words x bits)
=========  ==================  =======  ===============================================
xc7        RAMB36E1            36 Kib   32K x 1, 16K x 2, 8K x 4, 4K x 9, 2K x 18,
                                        1K x 36, 512 x 72 (simple dual port)
           RAMB18E1 (= 1/2)    18 Kib   16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18,
                                        512 x 36 (simple dual port)   -- UG473, Table 1-4/1-5
ecp5       DP16KD / PDPW16KD   18 Kib   16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18,
                                        512 x 36 (pseudo dual port)    -- TN1264
ice40      SB_RAM40_4K         4 Kib    256 x 16, 512 x 8, 1K x 4, 2K x 2   -- TN1250
gowin      B-SRAM              18 Kib   16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18,
                                        512 x 36                       -- UG285
=========  ==================  =======  ===============================================

``xc7-nodsp`` uses the xc7 geometry. The generic LUT targets and ``cmos`` have no block
RAM: their memories are reported in bits only (``None`` blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BlockRAM", "BLOCK_RAMS", "block_ram", "blocks_for", "Memory"]


@dataclass(frozen=True)
class BlockRAM:
    """A target's block-RAM primitives: ``shapes`` are ``(words, bits, cost)``, cost in
    :attr:`unit` (1 for the unit primitive, 0.5 for a half-size one)."""

    unit: str
    bits: int
    shapes: tuple[tuple[int, int, float], ...]
    source: str

    def blocks(self, depth: int, width: int) -> float:
        """Primitives (in :attr:`unit`) for ``depth`` words of ``width`` bits; 0 for an
        empty memory."""
        if depth <= 0 or width <= 0:
            return 0
        return min(math.ceil(depth / words) * math.ceil(width / bits) * cost
                   for words, bits, cost in self.shapes)


_K = 1024
_XC7 = BlockRAM(
    "RAMB36", 36 * _K,
    tuple((w, b, 1.0) for w, b in ((32 * _K, 1), (16 * _K, 2), (8 * _K, 4), (4 * _K, 9),
                                   (2 * _K, 18), (_K, 36), (512, 72)))
    + tuple((w, b, 0.5) for w, b in ((16 * _K, 1), (8 * _K, 2), (4 * _K, 4), (2 * _K, 9),
                                     (_K, 18), (512, 36))),
    "Xilinx UG473 (7 Series FPGAs Memory Resources): RAMB36E1, RAMB18E1")
_DP16 = tuple((w, b, 1.0) for w, b in ((16 * _K, 1), (8 * _K, 2), (4 * _K, 4), (2 * _K, 9),
                                       (_K, 18), (512, 36)))
BLOCK_RAMS: dict[str, BlockRAM] = {
    "xc7": _XC7,
    "xc7-nodsp": _XC7,
    "ecp5": BlockRAM("DP16KD", 18 * _K, _DP16,
                     "Lattice TN1264 (ECP5 Memory Usage Guide): DP16KD, PDPW16KD"),
    "ice40": BlockRAM("SB_RAM40_4K", 4 * _K,
                      tuple((w, b, 1.0) for w, b in ((256, 16), (512, 8), (_K, 4), (2 * _K, 2))),
                      "Lattice TN1250 (iCE40 Memory Usage Guide): SB_RAM40_4K"),
    "gowin": BlockRAM("BSRAM", 18 * _K, _DP16,
                      "Gowin UG285 (BSRAM & SSRAM User Guide): 18 Kbit B-SRAM"),
}


def block_ram(target: str) -> BlockRAM | None:
    """The block RAM of ``target``, or None (generic LUTs, cmos)."""
    return BLOCK_RAMS.get(target)


def blocks_for(target: str, depth: int, width: int) -> float | None:
    """Block RAMs of ``target`` for ``depth`` x ``width`` bits; None without block RAM."""
    bram = block_ram(target)
    return None if bram is None else bram.blocks(depth, width)


@dataclass(frozen=True)
class Memory:
    """A memory of an engine: ``role`` (what it holds), ``depth`` words of ``width`` bits,
    ``kind``: ``"buffer"`` (per token, part of the datapath), ``"table"`` (constants)
    or ``"weights"`` (the layer's stored operands, reported apart)."""

    role: str
    depth: int
    width: int
    kind: str = "buffer"

    @property
    def bits(self) -> int:
        return self.depth * self.width

    def blocks(self, target: str) -> float | None:
        return blocks_for(target, self.depth, self.width)
