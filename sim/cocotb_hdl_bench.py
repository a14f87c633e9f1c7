"""The cocotb side of the Verilog stream bench (:mod:`sim.hdl_bench`): wait, then check.

The job (JSON, path in ``LQER_SIM_JOB``, written by :mod:`sim.runner`) names the output
hex file the bench top writes, the output codec and the expected payloads (``.npz``);
the run's inputs, stalls and seed reach the Verilog as plusargs. After ``done`` the test
reads the received items, compares them in order with the expected ones
(:class:`sim.agents.Checker`) and writes ``outputs.npz`` and ``summary.json`` as
:mod:`sim.cocotb_bench` does, so :func:`sim.runner.simulate` reads either bench alike.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, Timer

from sim.agents import Checker
from sim.cocotb_bench import _save_npz, _write_json
from sim.codec import PayloadCodec


def read_hex_items(path: str) -> list[int]:
    """Payload integers of a hex file, one per line; ``ValueError`` naming the line for
    an unknown (x/z) or malformed value."""
    items = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                items.append(int(line, 16))
            except ValueError:
                raise ValueError(f"{path}:{number}: not a hex payload: {line[:40]!r}") from None
    return items


@cocotb.test()
async def hdl_stream_bench(dut):
    """Run the Verilog bench to its end; check the output items."""
    with open(os.environ["LQER_SIM_JOB"]) as f:
        job = json.load(f)
    out_codec = PayloadCodec.from_json(job["out_codec"])
    start = time.perf_counter()
    await RisingEdge(dut.done)
    await Timer(1, unit="ns")
    wall = time.perf_counter() - start
    assert not int(dut.bad_request.value), \
        "the design requested a column outside the weight memory (or too many at once)"
    assert not int(dut.timed_out.value), \
        f"no completion after {job['max_cycles']} cycles (a hung handshake)"
    received = read_hex_items(job["hdl_outputs"])
    expected = None
    if job.get("expected"):
        with np.load(job["expected"]) as npz:
            expected = out_codec.pack({k: npz[k] for k in npz.files})

    def describe(value: int) -> str:
        fields = out_codec.unpack([value])
        return "{" + ", ".join(f"{k}: {v[0].tolist()}" for k, v in fields.items()) + "}"

    checker = Checker(expected, log=dut._log, describe=describe)
    for value in received:
        checker(value)
    if expected is not None and len(received) < len(expected):
        checker.mismatches += len(expected) - len(received)
    if job.get("outputs"):
        _save_npz(job["outputs"], out_codec.unpack(received) if received else
                  {k: np.zeros((0,) + d, np.int64) for k, d in out_codec.shapes.items()})
    summary = {"cycles": int(dut.cycles.value), "inputs": int(dut.sent.value),
               "outputs": len(received), "mismatches": checker.mismatches, "wall_s": wall,
               "bench": "hdl"}
    if job.get("gather"):
        summary["requests"] = int(dut.requests.value)
        summary["responses_left"] = int(dut.pending.value)
    _write_json(job["summary"], summary)
    assert checker.mismatches == 0, \
        f"{checker.mismatches} mismatches out of {len(received)} outputs"
