"""cocotb benches of the LQER dual-path datapath (Icarus and Verilator) and its sim command.

Random layers (several shapes, ranks, lane counts; random valid stalls and ready
back-pressure) against the reference composed from sw.mxint / sw.blockmath, and
one real layer of the embedded model's L2QER factors through
``lqer-hw sim lqer-linear --factors``, against sw.lqer_reference and sw.bittrue.
``LQER_VECTORS`` scales the token count (tokens = LQER_VECTORS // 50, at least the
default), ``LQER_SEED`` reseeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter
from sim.runner import seed_from_env, simulate, simulator_available, vector_count

pytestmark = pytest.mark.sim

DEFAULT_TOKENS = 24

CASES = [
    # dual path, default low-rank lanes, both simulators
    ("icarus", {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2}),
    ("verilator", {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2}),
    # main path only (the cost baseline)
    ("icarus", {"d_in": 16, "d_out": 32, "rank": 0, "block": 8, "lanes_main": 4}),
    # the low-rank path is the longer one (it sets the steps per token); one block of rank
    ("icarus", {"d_in": 8, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 16,
                "lanes_lowrank": 8}),
    # narrow formats, no guard bits to spare, one-stage dot arrays, single low-rank lane
    ("icarus", {"d_in": 24, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 8,
                "lanes_lowrank": 1, "x_width": 6, "lowrank_width": 6, "w_width": 3,
                "exponent_bits": 5, "guard_bits": 2, "dot_stages": 1}),
]


def _tokens() -> int:
    return max(DEFAULT_TOKENS, vector_count(DEFAULT_TOKENS * 50) // 50)


@pytest.mark.parametrize("simulator, params", CASES,
                         ids=[f"{s}-" + "-".join(f"{k}{v}" for k, v in p.items())
                              for s, p in CASES])
def test_lqer_linear_rtl_matches_reference(simulator, params):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    seed = seed_from_env()
    component = inspect("lqer-linear", **params)
    adapter = get_adapter("lqer-linear")
    tokens = _tokens()
    inputs = adapter.random_inputs(component, tokens, np.random.default_rng(seed))
    result = simulate("lqer-linear", params, inputs, simulator=simulator, seed=seed,
                      valid_probability=0.8, ready_probability=0.7)
    assert result.n_outputs == tokens * component.schedule.nb_out
    assert result.mismatches == 0
    for name, want in result.expected.items():
        assert np.array_equal(result.outputs[name], want), name
    assert result.cycles > tokens * component.steps_per_token  # stalls really happened


def test_lqer_linear_full_rate_cycles_match_the_published_figure():
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    params = CASES[0][1]
    component = inspect("lqer-linear", **params)
    adapter = get_adapter("lqer-linear")
    inputs = adapter.random_inputs(component, 6, np.random.default_rng(5))
    result = simulate("lqer-linear", params, inputs, simulator="icarus",
                      valid_probability=1, ready_probability=1)
    assert result.mismatches == 0
    assert result.cycles == 6 * component.cycles_per_token
