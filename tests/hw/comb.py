"""Evaluate combinational logic over input vectors on Amaranth's simulator (test helper)."""

from __future__ import annotations

from amaranth.sim import Simulator


def comb_outputs(m, inputs, output, vectors) -> list[int]:
    """``output``'s value for each vector of ``vectors`` (one value per signal of
    ``inputs``, in order), module ``m`` evaluated without a clock."""
    got = []

    async def bench(ctx):
        for vector in vectors:
            for signal, value in zip(inputs, vector):
                ctx.set(signal, value)
            got.append(ctx.get(output))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got
