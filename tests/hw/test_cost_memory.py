"""hw.cost.memory: bits to block RAMs by each target's primitive geometry."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from hw.cost.memory import BLOCK_RAMS, Memory, block_ram, blocks_for


def test_xc7_picks_the_cheapest_aspect_ratio_and_counts_ramb18_as_half():
    assert blocks_for("xc7-nodsp", 512, 72) == 1          # one RAMB36 as 512 x 72
    assert blocks_for("xc7", 512, 36) == 0.5              # one RAMB18 as 512 x 36
    assert blocks_for("xc7", 1024, 18) == 0.5             # one RAMB18 as 1K x 18
    assert blocks_for("xc7", 256, 136) == 2               # two 512 x 72 side by side
    assert blocks_for("xc7", 32 * 1024, 1) == 1           # 32K x 1
    assert blocks_for("xc7", 0, 8) == 0


def test_lattice_and_gowin_geometries():
    assert blocks_for("ice40", 256, 16) == 1
    assert blocks_for("ice40", 2048, 2) == 1
    assert blocks_for("ice40", 1024, 32) == 8             # 1K x 4 eight wide
    assert blocks_for("ecp5", 512, 36) == 1
    assert blocks_for("ecp5", 1024, 36) == 2
    assert blocks_for("gowin", 2048, 9) == 1


def test_targets_without_block_ram_report_none():
    for target in ("lut4", "lut6", "cmos"):
        assert block_ram(target) is None and blocks_for(target, 1024, 8) is None
    m = Memory("x", 64, 136)
    assert m.bits == 64 * 136 and m.blocks("lut6") is None and m.kind == "buffer"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(BLOCK_RAMS)), st.integers(1, 100_000), st.integers(1, 600))
def test_the_blocks_hold_the_bits_and_no_ratio_is_cheaper(target, depth, width):
    bram = BLOCK_RAMS[target]
    n = bram.blocks(depth, width)
    assert n * bram.bits >= depth * width  # capacity (a half primitive holds half the bits)
    for words, bits, cost in bram.shapes:
        assert n <= math.ceil(depth / words) * math.ceil(width / bits) * cost
