"""The one cocotb test every design runs: stream a job's inputs, check or record outputs.

The job (JSON, path in ``LQER_SIM_JOB``) is written by :mod:`sim.runner`: payload
codecs of the input and output streams, an ``.npz`` of input payload arrays,
optionally an ``.npz`` of expected output payload arrays (from the reference
model), stall probabilities and the seed. The test writes the received output
payloads and a summary (cycles, mismatches, wall time) beside the job.
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


def _save_npz(path: str, arrays: dict) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


@cocotb.test()
async def stream_bench(dut):
    with open(os.environ["LQER_SIM_JOB"]) as f:
        job = json.load(f)
    in_codec = PayloadCodec.from_json(job["in_codec"])
    out_codec = PayloadCodec.from_json(job["out_codec"])
    with np.load(job["inputs"]) as npz:
        items = in_codec.pack({k: npz[k] for k in npz.files})
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
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    start = time.perf_counter()
    rate = min(job["valid_probability"], job["ready_probability"])
    max_cycles = int((len(items) + n_outputs) / rate * 4) + 1000
    cycles = await run_cycles(dut.clk, [driver, monitor],
                              until=lambda: monitor.received >= n_outputs and driver.done,
                              max_cycles=max_cycles)
    # a few more cycles: nothing further may come out
    await run_cycles(dut.clk, [driver, monitor], until=None, max_cycles=job.get("drain_cycles", 8))
    wall = time.perf_counter() - start

    received = checker.received
    if job.get("outputs"):
        _save_npz(job["outputs"], out_codec.unpack(received) if received else
                  {k: np.zeros((0,) + d, np.int64) for k, d in out_codec.shapes.items()})
    summary = {"cycles": cycles, "inputs": len(items), "outputs": len(received),
               "mismatches": checker.mismatches, "wall_s": wall}
    tmp = job["summary"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, job["summary"])
    assert checker.mismatches == 0, \
        f"{checker.mismatches} mismatches out of {len(received)} outputs"
