"""Issue 11, "Buffers in memories": ``lqer-linear`` keeps every buffer that grows with the
layer (x memory, t memory, main FIFO, u FIFO: ``LQERLinear.memory_bits``) in block RAM or
LUT RAM on ``xc7`` and ``ecp5``, so its flip-flops do not grow with ``d_out``."""

from __future__ import annotations

import re

import pytest

from hw.designs import elaborate, get_design
from hw.synth.flow import jobs_for_design
from hw.synth.targets import TARGETS
from hw.unused import inspected

pytestmark = pytest.mark.synth

# Small enough for a test (one main lane; the low-rank lanes fixed, since their default
# depends on d_out), large enough that every buffer has two or more entries.
LAYER = {"d_in": 32, "rank": 32, "lanes_main": 1, "lanes_lowrank": 2}
D_OUTS = (64, 256)
# The flip-flops may grow by the address and count registers of the larger buffers (two
# more bits each for 4x d_out): at most 2% of the smaller layer's flip-flops.
FF_TOLERANCE = 0.02
# Yosys's memory_libmap names each memory it maps in the log ("via $__<cell>" for a RAM
# cell). Patterns: the u FIFO of the two-term output with P_m < block is
# RegisteredFIFO(registered_ready=True), its word split across memories of at most
# hw.pipeline.SLICE_BITS bits (storage_0, storage_1, ...); the x and t memories are
# sliced too (x_memory_0, t_memory_0, ...; hw.lqer_linear._memory_slices).
BUFFERS = {"x": r"x_memory_\d+", "t": r"t_memory_\d+", "main_fifo": r"main_fifo\.buffer\.storage",
           "u_fifo": r"u_fifo\.(?:buffer\.storage|storage_\d+)"}
RAM_CELLS = {"xc7": r"^(RAMB(18|36)E1|RAM(32|64)M|RAM(16|32|64|128|256)X1[SD])$",
             "ecp5": r"^(DP16KD|PDPW16KD|TRELLIS_DPR16X4)$"}


@pytest.fixture(scope="module")
def layers(synthesise):
    defaults = get_design("lqer-linear").defaults
    targets = [TARGETS[name] for name in RAM_CELLS]
    jobs = []
    for d_out in D_OUTS:
        jobs += jobs_for_design("lqer-linear", defaults | LAYER | {"d_out": d_out}, targets)
    records, out = synthesise(jobs)
    return {(r["target"], r["params"]["d_out"]): r for r in records}, out


@pytest.mark.parametrize("target", list(RAM_CELLS))
def test_every_buffer_is_mapped_to_ram_cells(layers, target):
    records, out = layers
    for d_out in D_OUTS:
        r = records[(target, d_out)]
        log = (out / r["log"]).read_text()
        for buffer, memory in BUFFERS.items():
            mapped = re.findall(rf"^mapping memory \w+\.{memory} (.*)$", log, re.M)
            assert mapped and all(m.startswith("via $__") for m in mapped), \
                (target, d_out, buffer, mapped)
        rams = sum(n for cell, n in r["cells"].items() if re.search(RAM_CELLS[target], cell))
        assert rams > 0 and (r["brams"] or 0) + (r["lutrams"] or 0) >= rams


@pytest.mark.parametrize("target", list(RAM_CELLS))
def test_flip_flops_do_not_grow_with_d_out(layers, target):
    records, _ = layers
    small, large = (records[(target, d_out)] for d_out in D_OUTS)
    buffers = [sum(inspected(elaborate("lqer-linear", **r["params"])).memory_bits.values())
               for r in (small, large)]
    allowed = FF_TOLERANCE * small["ffs"]
    # in flip-flops, the buffers' growth would be far beyond the tolerance
    assert buffers[1] - buffers[0] > 10 * allowed
    assert large["ffs"] - small["ffs"] <= allowed, (small["ffs"], large["ffs"])
