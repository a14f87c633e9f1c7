"""The stream bench on Amaranth's own simulator (quick unit tests, benchmark).

Same contract as :mod:`sim.cocotb_bench`: payload integers in, payload integers
out, random valid stalls and ready back-pressure from one seeded generator.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from amaranth.sim import Simulator

__all__ = ["run_amaranth", "bench_design"]


def run_amaranth(component, items: Sequence[int], n_outputs: int, *,
                 valid_probability: float = 1.0, ready_probability: float = 1.0, seed: int = 1,
                 max_cycles: int | None = None, timing: dict | None = None,
                 gather=None) -> tuple[list[int], int]:
    """Stream ``items`` (payload integers) through ``component`` (stream ports ``i``/``o``)
    until ``n_outputs`` items came out; return (output payload integers, cycles).

    Stalls: each cycle the input is valid with ``valid_probability`` (once an item is
    presented it stays until taken) and the output ready with ``ready_probability``,
    from ``random.Random(seed)``. While the input is not valid its payload is random (a
    second generator, so the stalls do not change): the stream contract (Amaranth's
    ``amaranth.lib.stream``) gives the payload meaning only with ``valid``. Raises
    ``TimeoutError`` after ``max_cycles`` (default: four times the expected count).
    ``timing``, when given, receives ``run_s``: seconds of the clocked simulation alone.
    ``gather`` (a :class:`sim.gather.GatherModel`) answers the design's ``req`` / ``resp``
    ports, with the same stall probabilities.
    """
    rng = random.Random(seed)
    idle_rng = random.Random(seed + 1)
    rate = min(valid_probability, ready_probability)
    limit = max_cycles or int((len(items) + n_outputs) / rate * 4) + 100
    outputs: list[int] = []
    cycles = [0]
    i_payload, o_payload = component.i.payload.as_value(), component.o.payload.as_value()

    async def testbench(ctx):
        sent, presenting = 0, False
        answering = False
        while len(outputs) < n_outputs or sent < len(items):
            if cycles[0] >= limit:
                raise TimeoutError(f"no completion after {limit} cycles")
            if not presenting and sent < len(items) and rng.random() < valid_probability:
                presenting = True
                ctx.set(i_payload, items[sent])
            elif not presenting:
                ctx.set(i_payload, idle_rng.getrandbits(len(i_payload)))
            ctx.set(component.i.valid, presenting)
            ctx.set(component.o.ready, ready_probability >= 1 or rng.random() < ready_probability)
            if gather is not None:
                ctx.set(component.req.ready,
                        ready_probability >= 1 or rng.random() < ready_probability)
                head = None if answering else gather.head(cycles[0])
                if head is not None and (valid_probability >= 1
                                         or rng.random() < valid_probability):
                    answering = True
                    ctx.set(component.resp.payload.as_value(), head)
                ctx.set(component.resp.valid, answering)
                (_, _, i_ready, o_valid, o_ready, payload, q_valid, q_ready, column,
                 r_ready) = await ctx.tick().sample(
                    component.i.ready, component.o.valid, component.o.ready, o_payload,
                    component.req.valid, component.req.ready, component.req.payload.column,
                    component.resp.ready)
                if q_valid and q_ready:
                    gather.request(column, cycles[0])
                if answering and r_ready:
                    gather.pop()
                    answering = False
            else:
                _, _, i_ready, o_valid, o_ready, payload = await ctx.tick().sample(
                    component.i.ready, component.o.valid, component.o.ready, o_payload)
            if presenting and i_ready:
                sent += 1
                presenting = False
            if o_valid and o_ready:
                outputs.append(payload)
            cycles[0] += 1
        ctx.set(component.i.valid, 0)
        for _ in range(4):  # nothing further may come out
            ctx.set(component.o.ready, 1)
            _, _, o_valid, payload = await ctx.tick().sample(component.o.valid, o_payload)
            if o_valid:
                outputs.append(payload)

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    start = time.perf_counter()
    sim.run()
    if timing is not None:
        timing["run_s"] = time.perf_counter() - start
    return outputs, cycles[0]


def bench_design(design: str, params: dict, *, vectors: int, seed: int = 1,
                 valid_probability: float = 0.8, ready_probability: float = 0.8,
                 inputs: dict | None = None, timing: dict | None = None,
                 requests: list | None = None, memory_latency: int | None = None):
    """Random (or given) vectors through a registered design on Amaranth's simulator.

    ``vectors`` random vectors from ``adapter.random_inputs`` (seeded by ``seed``) unless
    ``inputs`` (user-level fields) are given; both are checked by ``adapter.validate``
    (``ValueError``). Stalls and ``timing`` as :func:`run_amaranth`. Returns
    ``(mismatches, received payloads, expected payloads, cycles)``, mismatches counting
    differing, missing and extra items. A design with a gather port is answered by
    :class:`sim.gather.GatherModel` from the adapter's ``gather_memory`` (``memory_latency``
    overrides the adapter's); ``requests``, when given, receives the requested columns.
    """
    import numpy as np

    from hw.designs import elaborate
    from sim.adapters import get_adapter
    from sim.codec import PayloadCodec

    component = elaborate(design, **params)
    adapter = get_adapter(design)
    if inputs is None:
        inputs = adapter.random_inputs(component, vectors, np.random.default_rng(seed))
    inputs = adapter.validate(component, inputs)
    expected = adapter.reference(component, inputs)
    in_codec = PayloadCodec.from_layout(component.i.payload.shape())
    out_codec = PayloadCodec.from_layout(component.o.payload.shape())
    items = adapter.input_stream(component, inputs).pack(in_codec)
    want = out_codec.pack(adapter.to_payload(adapter.output_fields(component), expected))
    gather = None
    if getattr(adapter, "gather_memory", None) is not None:
        from sim.gather import GatherModel
        arrays, pieces = adapter.gather_memory(component, inputs)
        packed = PayloadCodec.from_layout(component.resp.payload.shape()).pack(arrays)
        gather = GatherModel([packed[j:j + pieces] for j in range(0, len(packed), pieces)],
                             memory_latency or adapter.memory_latency)
    bound = getattr(adapter, "cycle_bound", None)   # full-rate cycles, when items are not
    limit = None if bound is None else int(         # (a gather's pieces count too)
        bound(component, inputs) / min(valid_probability, ready_probability) * 4) + 100
    got, cycles = run_amaranth(component, items, len(want), valid_probability=valid_probability,
                               ready_probability=ready_probability, seed=seed, timing=timing,
                               gather=gather, max_cycles=limit)
    if requests is not None and gather is not None:
        requests.extend(gather.requests)
    mismatches = sum(g != w for g, w in zip(got, want)) + abs(len(got) - len(want))
    return mismatches, got, want, cycles
