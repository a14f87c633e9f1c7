"""cocotb benches of the floating-point units: the RTL on Icarus and Verilator, bit for bit
against sw.ieee (every NaN compared as the canonical one), with random valid stalls and
ready back-pressure.

Vectors per unit: ``LQER_VECTORS`` (default 20,000) on Verilator and a quarter of that
on Icarus (several times slower per vector); they start with every pair of edge values
and continue with each unit's mixture (sim.adapters.fp). Long runs go through the
simulator in chunks of ``CHUNK`` vectors (one build, several runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import elaborate, inspect
from hw.fp.designs import FP_UNITS
from sim.adapters.fp import FP_ADAPTERS
from sim.runner import seed_from_env, simulate, simulator_available, vector_count
from sw import ieee
from sw.ieee import BINARY32

pytestmark = pytest.mark.sim

# vectors per case when LQER_VECTORS is unset (Icarus is the slower simulator); a set
# LQER_VECTORS runs that many on both (make regress: 1,000,000)
DEFAULT_VECTORS = {"verilator": 20_000, "icarus": 5_000}
CHUNK = 1 << 20

CASES = ([(name, {}, sim) for name in FP_UNITS for sim in ("verilator", "icarus")]
         + [(name, {"stages": 1}, "icarus") for name in FP_UNITS])


def _ids(case):
    name, params, simulator = case
    return f"{name}-{simulator}" + "".join(f"-{k}{v}" for k, v in params.items())


def run_chunks(name, params, inputs, simulator, seed):
    """Simulate ``inputs`` in chunks; return (outputs, expected, mismatches, cycles)."""
    adapter, unit = FP_ADAPTERS[name], elaborate(name, **params)
    n = len(inputs["a"])
    outputs, expected, mismatches, cycles = [], [], 0, 0
    for start in range(0, n, CHUNK):
        part = adapter.validate(unit, {k: v[start:start + CHUNK] for k, v in inputs.items()})
        result = simulate(adapter, unit, part, simulator=simulator, seed=seed + start)
        assert result.n_outputs == len(part["a"])
        outputs.append(result.outputs["y"])
        expected.append(result.expected["y"])
        mismatches += result.mismatches
        cycles += result.cycles
    return np.concatenate(outputs), np.concatenate(expected), mismatches, cycles


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_rtl_matches_ieee_reference(case):
    name, params, simulator = case
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    seed = seed_from_env()
    n = vector_count(DEFAULT_VECTORS[simulator])
    adapter = FP_ADAPTERS[name]
    inputs = adapter.random_inputs(inspect(name, **params), n, np.random.default_rng(seed))
    outputs, expected, mismatches, cycles = run_chunks(name, params, inputs, simulator, seed)
    assert mismatches == 0
    assert len(outputs) == n and np.array_equal(outputs, expected)
    assert cycles > n  # back-pressure and stalls really happened


def test_nan_results_are_the_canonical_nan_on_the_rtl():
    """Against a reference that keeps NumPy's own NaN patterns, exactly the NaN results
    whose pattern is not the canonical one mismatch: the RTL emits 0x7FC00000."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    adapter = FP_ADAPTERS["fp32-add"]
    inputs = adapter.edge_inputs()
    with np.errstate(all="ignore"):
        raw = ieee.bits_of(ieee.values_of(inputs["a"], BINARY32)
                           + ieee.values_of(inputs["b"], BINARY32), BINARY32)
    differs = int(np.count_nonzero(raw != ieee.fp32_add(inputs["a"], inputs["b"])))
    assert differs > 0

    class RawNaN(type(adapter)):
        def rule(self, a, b):
            with np.errstate(all="ignore"):
                return ieee.bits_of(ieee.values_of(a, BINARY32) + ieee.values_of(b, BINARY32),
                                    BINARY32)

    raw_adapter = RawNaN()
    unit = elaborate("fp32-add")
    result = simulate(raw_adapter, unit, raw_adapter.validate(unit, inputs), simulator="verilator")
    assert result.mismatches == differs
    nan = ieee.is_nan(result.outputs["y"], BINARY32)
    assert nan.any() and np.all(result.outputs["y"][nan] == BINARY32.canonical_nan)
