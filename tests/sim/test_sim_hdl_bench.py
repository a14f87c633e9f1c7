"""sim.hdl_bench (the stream bench in Verilog) and its cocotb side: the same designs, bit
for bit against the reference, on both simulators; stalls, the gather memory, a wrong
reference caught (test_sim_cocotb_bench.py::test_checker_counts_mismatches, both benches).
The many-token regressions that use it are in test_sim_cocotb_bench.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim import hdl_bench
from sim.adapters import get_adapter
from sim.runner import SIMULATORS, seed_from_env, simulate, simulator_available


def test_probability_code():
    assert hdl_bench.probability_code(1.0) == 65536
    assert hdl_bench.probability_code(0.5) == 32768
    assert hdl_bench.probability_code(1e-9) == 1
    for p in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^probability must be in \(0, 1\]; got {p}$"):
            hdl_bench.probability_code(p)


def test_gather_needs_a_latency_and_a_memory():
    with pytest.raises(ValueError, match=r"^latency must be at least 1; got 0$"):
        hdl_bench.Gather(8, 0, 4, 16, 16, 1, 0)
    with pytest.raises(ValueError, match=r"^a gather memory needs at least one column"):
        hdl_bench.Gather(8, 0, 4, 16, 0, 1, 1)


def test_plusargs_name_every_setting(tmp_path):
    args = hdl_bench.plusargs(inputs=tmp_path / "i.hex", outputs=tmp_path / "o.hex",
                              n_inputs=10, n_outputs=3, seed=-1, valid_probability=0.5,
                              ready_probability=1.0, max_cycles=99, memory=tmp_path / "m.hex")
    assert args == [f"+inputs={tmp_path / 'i.hex'}", f"+outputs={tmp_path / 'o.hex'}",
                    "+n_inputs=10", "+n_outputs=3", "+seed=4294967295", "+valid_p=32768",
                    "+ready_p=65536", "+max_cycles=99", f"+memory={tmp_path / 'm.hex'}"]


def test_the_bench_drives_the_gather_ports_only_when_there_are_some():
    plain = hdl_bench.bench_verilog("top", 12, 7)
    assert "req__valid" not in plain and "$readmemh" not in plain
    gathered = hdl_bench.bench_verilog("top", 12, 7, hdl_bench.Gather(5, 1, 4, 16, 16, 2, 3))
    assert ".req__payload(req_payload)" in gathered and "$readmemh" in gathered
    assert "req_payload[4:1]" in gathered and "edge_cycle + 3" in gathered


LLM_INT8_SMALL = {"d_in": 16, "d_out": 8, "x_lanes": 4, "lanes": 4, "fp_lanes": 2,
                  "outputs": 2}
CASES = [(design, params, simulator)
         for design, params in (("dot-array", {"lanes": 2, "block": 4}),
                                ("llm-int8-linear", LLM_INT8_SMALL),
                                ("w8a8-linear", {"d_in": 16, "d_out": 8, "x_lanes": 4,
                                                 "lanes": 4}))
         for simulator in SIMULATORS]


@pytest.mark.sim
@pytest.mark.parametrize("design, params, simulator", CASES,
                         ids=[f"{d}-{s}" for d, _, s in CASES])
def test_hdl_bench_matches_the_reference(design, params, simulator):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    seed = seed_from_env()
    component = inspect(design, **params)
    adapter = get_adapter(design)
    count = 40 if design in ("llm-int8-linear", "w8a8-linear") else 300
    inputs = adapter.validate(component, adapter.random_inputs(component, count,
                                                               np.random.default_rng(seed)))
    result = simulate(adapter, component, inputs, simulator=simulator, seed=seed,
                      valid_probability=0.7, ready_probability=0.6, bench="hdl")
    assert result.summary["bench"] == "hdl" and result.mismatches == 0
    assert result.n_outputs == adapter.output_count(component, inputs)
    assert result.n_inputs == len(adapter.input_stream(component, inputs))
    assert result.cycles > result.n_inputs        # stalls really happened
    want = adapter.reference(component, inputs)
    for name, array in want.items():
        assert np.array_equal(result.outputs[name], array), name
    if design == "llm-int8-linear":
        columns = adapter.outlier_columns(component, inputs)
        assert result.summary["requests"] == component.tile * sum(map(len, columns)) > 0
        assert result.summary["responses_left"] == 0


def test_simulate_names_the_benches():
    adapter = get_adapter("dot-array")
    component = inspect("dot-array", lanes=1)
    inputs = adapter.validate(component, adapter.random_inputs(component, 2,
                                                               np.random.default_rng(2)))
    with pytest.raises(ValueError, match=r"^bench must be one of cocotb, hdl; got 'python'$"):
        simulate(adapter, component, inputs, bench="python")
