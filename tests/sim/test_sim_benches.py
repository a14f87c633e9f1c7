"""cocotb benches: every design on Icarus and Verilator, bit for bit against the reference.

Random vectors plus edge cases (sim.adapters), random valid stalls and ready
back-pressure. ``LQER_VECTORS`` / ``LQER_SEED`` scale and reseed the same tests
(``make regress``); ``LQER_WAVES=1`` keeps waveforms.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter
from sim.runner import SIMULATORS, seed_from_env, simulate, simulator_available, vector_count

pytestmark = pytest.mark.sim

DEFAULT_VECTORS = 2000

# (design, params): the first of each design runs on both simulators.
BOTH = [
    ("quantizer", {"block": 8, "in_width": 16, "frac_bits": 8, "width": 4, "exponent_bits": 3}),
    ("dot-array", {"lanes": 1}),
    ("dot-array", {}),
    ("accumulator", {"lanes": 4, "guard_bits": 2, "max_partials": 16, "out_width": 6}),
]
# more corners on Icarus only (fast builds)
ICARUS_ONLY = [
    ("quantizer", {}),
    ("dot-array", {"lanes": 1, "block": 4, "a_width": 3, "w_width": 6, "exponent_bits": 3,
                   "stages": 1}),
    ("accumulator", {"lanes": 2, "guard_bits": 0, "floor_rounding": 1, "max_partials": 8}),
]
CASES = ([(d, p, s) for d, p in BOTH for s in SIMULATORS]
         + [(d, p, "icarus") for d, p in ICARUS_ONLY])


def _ids(case):
    design, params, simulator = case
    return f"{design}-{simulator}-" + ("-".join(f"{k}{v}" for k, v in params.items()) or "default")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_rtl_matches_reference(case):
    design, params, simulator = case
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    seed = seed_from_env()
    vectors = vector_count(DEFAULT_VECTORS)
    component = inspect(design, **params)
    adapter = get_adapter(design)
    inputs = adapter.random_inputs(component, vectors, np.random.default_rng(seed))
    result = simulate(design, params, inputs, simulator=simulator, seed=seed)
    assert result.n_outputs == adapter.output_count(component, adapter.validate(component, inputs))
    assert result.mismatches == 0
    for name, want in result.expected.items():
        assert np.array_equal(result.outputs[name], want), name
    # back-pressure really happened: more cycles than transfers
    assert result.cycles > max(result.n_inputs, result.n_outputs)


def test_checker_counts_mismatches(monkeypatch):
    """A wrong reference must be caught: the bench is able to fail."""
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    adapter = get_adapter("dot-array")
    component = inspect("dot-array", lanes=1)
    inputs = adapter.random_inputs(component, 50, np.random.default_rng(2))
    honest = adapter.reference

    def off_by_one(dut, ins):
        out = honest(dut, ins)
        out["sums"] = out["sums"].copy()
        out["sums"][::5] += 1
        return out

    monkeypatch.setattr(adapter, "reference", off_by_one)
    result = simulate("dot-array", {"lanes": 1}, inputs, simulator="icarus")
    assert result.mismatches == 10


def test_waveforms_on_request(monkeypatch):
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    monkeypatch.setenv("LQER_WAVES", "1")
    adapter = get_adapter("dot-array")
    component = inspect("dot-array", lanes=1, block=2)
    inputs = adapter.random_inputs(component, 20, np.random.default_rng(4))
    result = simulate("dot-array", {"lanes": 1, "block": 2}, inputs, simulator="icarus")
    assert result.mismatches == 0
    assert result.waves_file is not None and result.waves_file.stat().st_size > 0
