"""The one cocotb test every design runs: stream a job's inputs, check or record outputs.

The job (JSON, path in ``LQER_SIM_JOB``) is written by :mod:`sim.runner`: payload
codecs of the input and output streams, the input stream (:class:`sim.stream.InputStream`
file; a tiled stream is merged item by item here, so per-layer weight steps are
stored once whatever the token count), optionally an ``.npz`` of expected output
payload arrays (from the reference model), stall probabilities and the seed.

The test writes the received output payloads and a summary (cycles, items,
mismatches, wall time) beside the job, and, about twice a second, ``progress``
(``{"sent": input items taken, "received": output items, "total": input items}``)
for the runner's progress display.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from sim.agents import Checker, StreamDriver, StreamMonitor, run_cycles
from sim.codec import PayloadCodec
from sim.stream import InputStream

PROGRESS_PERIOD_S = 0.5
PROGRESS_CYCLES = 1024  # how often the clock loop looks at the time


def _save_npz(path: str, arrays: dict) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _write_json(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


@cocotb.test()
async def stream_bench(dut):
    """Drive the job's input items with random valid stalls, take outputs with random
    ready back-pressure, compare with the expected items when given."""
    with open(os.environ["LQER_SIM_JOB"]) as f:
        job = json.load(f)
    in_codec = PayloadCodec.from_json(job["in_codec"])
    out_codec = PayloadCodec.from_json(job["out_codec"])
    items = InputStream.load(job["inputs"]).pack(in_codec)
    expected = None
    if job.get("expected"):
        with np.load(job["expected"]) as npz:
            expected = out_codec.pack({k: npz[k] for k in npz.files})
    n_outputs = job["n_outputs"]
    rng = random.Random(job["seed"])

    def describe(value: int) -> str:
        fields = out_codec.unpack([value])
        return "{" + ", ".join(f"{k}: {v[0].tolist()}" for k, v in fields.items()) + "}"

    checker = Checker(expected, log=dut._log, describe=describe)
    driver = StreamDriver(dut.i__valid, dut.i__ready, dut.i__payload, items,
                          valid_probability=job["valid_probability"], rng=rng)
    monitor = StreamMonitor(dut.o__valid, dut.o__ready, dut.o__payload, checker,
                            ready_probability=job["ready_probability"], rng=rng)
    agents = [driver, monitor]
    responder = None
    if job.get("gather"):  # a weight memory answers the design's req / resp ports
        from sim.gather import GatherResponder, load_job
        model, column_of = load_job(job["gather"])
        responder = GatherResponder(dut.req__valid, dut.req__ready, dut.req__payload,
                                    dut.resp__valid, dut.resp__ready, dut.resp__payload,
                                    model, column_of,
                                    ready_probability=job["ready_probability"],
                                    valid_probability=job["valid_probability"], rng=rng)
        agents.append(responder)
    progress_path = job.get("progress")
    last_report = [time.monotonic()]

    def report(_cycles=None, force=False):
        now = time.monotonic()
        if progress_path and (force or now - last_report[0] >= PROGRESS_PERIOD_S):
            last_report[0] = now
            _write_json(progress_path, {"sent": driver.sent, "received": monitor.received,
                                        "total": len(items)})

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    start = time.perf_counter()
    rate = min(job["valid_probability"], job["ready_probability"])
    max_cycles = int((max(len(items) + n_outputs, job.get("cycle_bound", 0))) / rate * 4) + 1000
    cycles = await run_cycles(dut.clk, agents,
                              until=lambda: monitor.received >= n_outputs and driver.done,
                              max_cycles=max_cycles, every=(PROGRESS_CYCLES, report))
    # a few more cycles: nothing further may come out
    await run_cycles(dut.clk, agents, until=None, max_cycles=job.get("drain_cycles", 8))
    wall = time.perf_counter() - start
    report(force=True)

    received = checker.received
    if job.get("outputs"):
        _save_npz(job["outputs"], out_codec.unpack(received) if received else
                  {k: np.zeros((0,) + d, np.int64) for k, d in out_codec.shapes.items()})
    summary = {"cycles": cycles, "inputs": len(items), "outputs": len(received),
               "mismatches": checker.mismatches, "wall_s": wall}
    if responder is not None:
        summary["requests"] = len(responder.model.requests)
        summary["responses_left"] = responder.model.pending
    _write_json(job["summary"], summary)
    assert checker.mismatches == 0, \
        f"{checker.mismatches} mismatches out of {len(received)} outputs"
