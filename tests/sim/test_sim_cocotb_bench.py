"""cocotb benches: every design on Icarus and Verilator, bit for bit against the reference.

Random vectors plus edge cases (sim.adapters), random valid stalls and ready
back-pressure. ``LQER_VECTORS`` / ``LQER_SEED`` scale and reseed the same tests
(``make regress``); ``LQER_WAVES=1`` keeps waveforms. The LQER datapath runs random
layers of several shapes, ranks and lane counts (Verilator: LQER_VECTORS // 50 tokens;
Icarus, which runs this wide design at a few hundred cycles/s: LQER_VECTORS // 2000; at
least the defaults); its ResQ mode (resq-linear) runs the same way. The layer baselines
(fp16-linear, llm-int8-linear and its W8A8 mode w8a8-linear) and two LQER layers at the
default pipeline depths (two-term and MXINT8 output) run LQER_VECTORS tokens each on
Verilator through the Verilog bench (sim.hdl_bench; make regress: a million).
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
    ("dot-array", {}),
    ("accumulator", {"lanes": 4, "guard_bits": 2, "max_partials": 16, "out_width": 6}),
]
# more corners on Icarus only (fast builds); dot-array lanes=1 is the single dot product
ICARUS_ONLY = [
    ("quantizer", {}),
    ("dot-array", {"lanes": 1}),
    ("dot-array", {"lanes": 1, "block": 4, "a_width": 3, "w_width": 6, "exponent_bits": 3,
                   "stages": 1}),
    ("accumulator", {"lanes": 2, "guard_bits": 0, "floor_rounding": 1, "max_partials": 8}),
]
CASES = ([(d, p, s) for d, p in BOTH for s in SIMULATORS]
         + [(d, p, "icarus") for d, p in ICARUS_ONLY])


def _ids(case):
    design, params, simulator = case
    return f"{design}-{simulator}-" + ("-".join(f"{k}{v}" for k, v in params.items()) or "default")


def _run(design, params, simulator, n, **kwargs):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    seed = seed_from_env()
    component = inspect(design, **params)
    adapter = get_adapter(design)
    inputs = adapter.validate(component, adapter.random_inputs(component, n,
                                                               np.random.default_rng(seed)))
    result = simulate(adapter, component, inputs, simulator=simulator, seed=seed, **kwargs)
    assert result.simulator == simulator
    assert result.n_outputs == adapter.output_count(component, inputs)
    assert result.mismatches == 0
    for name, want in result.expected.items():
        assert np.array_equal(result.outputs[name], want), name
    return component, result


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_rtl_matches_reference(case):
    design, params, simulator = case
    _, result = _run(design, params, simulator, vector_count(DEFAULT_VECTORS))
    # back-pressure really happened: more cycles than transfers
    assert result.cycles > max(result.n_inputs, result.n_outputs)


LQER_TOKENS = {"icarus": 8, "verilator": 64}
LQER_VECTORS_PER_TOKEN = {"icarus": 2000, "verilator": 50}
LQER_CASES = [
    # dual path, default low-rank lanes, both simulators
    ("icarus", {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2}),
    # (kept tiny: Verilator's C++ build time grows with the design)
    ("verilator", {"d_in": 8, "d_out": 8, "rank": 4, "block": 4, "lanes_main": 2}),
    # main path only (the cost baseline)
    ("icarus", {"d_in": 16, "d_out": 32, "rank": 0, "block": 8, "lanes_main": 4}),
    # the low-rank path is the longer one (it sets the steps per token); one block of rank
    ("icarus", {"d_in": 8, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 16,
                "lanes_lowrank": 8}),
    # narrow formats, no guard bits to spare, one-stage dot arrays, single low-rank lane
    ("icarus", {"d_in": 24, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 8,
                "lanes_lowrank": 1, "a_width": 6, "lowrank_width": 6, "w_width": 3,
                "exponent_bits": 5, "guard_bits": 2, "dot_stages": 1}),
    # the complete output: main + u + bias merged and requantized to MXINT(a_width), both
    # simulators; shallow pipelines and fewer accumulator slots than output groups
    ("icarus", {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2,
                "merged": 1, "bias": 1}),
    ("verilator", {"d_in": 8, "d_out": 16, "rank": 4, "block": 4, "lanes_main": 2,
                   "merged": 1, "bias": 1, "acc_slots": 2, "acc_stages": 0,
                   "quant_stages": 2, "merge_stages": 2, "dot_stages": 1}),
    ("icarus", {"d_in": 16, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 4,
                "merged": 1, "acc_slots": 1, "quant_stages": 8, "merge_stages": 16}),
]


@pytest.mark.parametrize("simulator, params", LQER_CASES,
                         ids=[f"{s}-" + "-".join(f"{k}{v}" for k, v in p.items())
                              for s, p in LQER_CASES])
def test_lqer_linear_rtl_matches_reference(simulator, params):
    tokens = max(LQER_TOKENS[simulator],
                 vector_count(DEFAULT_VECTORS) // LQER_VECTORS_PER_TOKEN[simulator])
    component, result = _run("lqer-linear", params, simulator, tokens, valid_probability=0.8,
                             ready_probability=0.7)
    assert result.n_outputs == tokens * component.schedule.nb_out
    assert result.n_inputs == tokens * component.steps_per_token
    assert result.cycles > tokens * component.steps_per_token  # stalls really happened
    # the weights went into the stream file once, not once per token
    s = component.schedule
    weight_bytes = s.steps * (s.lanes_main + s.lanes_lowrank) * (s.block + 1)
    assert result.input_bytes < 2 * weight_bytes + tokens * (s.d_in + s.nb_in) + 4096


RESQ_CASES = [
    # both paths, default narrow lanes (the least that never stalls the wide path), r = d/4
    ("icarus", {"d_in": 32, "d_out": 32, "rank": 8, "block": 8, "lanes_main": 2}),
    ("verilator", {"d_in": 16, "d_out": 8, "rank": 8, "block": 4, "lanes_main": 2}),
    # merged output with a bias: high requantized, merged, MXINT(high_width) blocks out;
    # on Verilator with shallow pipelines and fewer accumulator slots than output groups
    ("icarus", {"d_in": 32, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 4,
                "merged": 1, "bias": 1}),
    ("verilator", {"d_in": 8, "d_out": 8, "rank": 4, "block": 4, "lanes_main": 2,
                   "merged": 1, "bias": 1, "acc_slots": 2, "acc_stages": 0,
                   "quant_stages": 2, "merge_stages": 2, "dot_stages": 1}),
    # the narrow path is the longer one (more high than low coordinates), one narrow lane,
    # narrow formats, few guard bits, one-stage dot arrays
    ("icarus", {"d_in": 16, "d_out": 16, "rank": 12, "block": 4, "lanes_main": 8,
                "lanes_high": 1, "a_width": 3, "w_width": 3, "high_width": 6,
                "exponent_bits": 5, "guard_bits": 2, "dot_stages": 1}),
    # r = 0: the wide path alone
    ("icarus", {"d_in": 16, "d_out": 16, "rank": 0, "block": 8, "lanes_main": 4}),
]


@pytest.mark.parametrize("simulator, params", RESQ_CASES,
                         ids=[f"{s}-" + "-".join(f"{k}{v}" for k, v in p.items())
                              for s, p in RESQ_CASES])
def test_resq_linear_rtl_matches_reference(simulator, params):
    """ResQ mode, bit for bit against sw.resq_reference (the adapter's reference), with
    random valid stalls and ready back-pressure."""
    tokens = max(LQER_TOKENS[simulator],
                 vector_count(DEFAULT_VECTORS) // LQER_VECTORS_PER_TOKEN[simulator])
    component, result = _run("resq-linear", params, simulator, tokens, valid_probability=0.8,
                             ready_probability=0.7)
    assert component.mode == "resq"
    assert result.n_outputs == tokens * component.schedule.nb_out
    assert result.n_inputs == tokens * component.steps_per_token
    assert result.cycles > tokens * component.steps_per_token  # stalls really happened
    if component.rank and not params.get("merged"):
        assert set(result.outputs) >= {"high_values", "high_exponents"}


# The baselines (hw.baselines), small layers that build and run in seconds: random
# valid stalls and ready back-pressure on every stream, the gather's request and response
# included. LLM.int8() tokens cycle through its adapter's outlier patterns (none, one, M,
# M + 1 in a chunk, first and last column, a quarter of the columns, ties, the reciprocal
# rule, subnormals, all zero): ten tokens hold each once.
LLM_INT8_SMALL = {"d_in": 16, "d_out": 8, "x_lanes": 4, "lanes": 4, "fp_lanes": 2,
                  "outputs": 2}
# w8a8-linear: llm-int8-linear without its outlier path, the same tokens (their large
# entries set s_x)
W8A8_SMALL = {"d_in": 16, "d_out": 8, "x_lanes": 4, "lanes": 4}
BASELINE_CASES = [
    ("fp16-linear", "icarus", {"d_in": 8, "d_out": 8, "lanes": 2}),
    ("fp16-linear", "verilator", {"d_in": 8, "d_out": 8, "lanes": 2}),
    # binary16 outputs, long columns (no gap), short pipelines
    ("fp16-linear", "icarus", {"d_in": 3, "d_out": 12, "lanes": 3, "out_fp16": 1,
                               "add_stages": 3, "mul_stages": 2, "out_stages": 2}),
    # five lanes: the activation through two levels of copies (hw.fp_accumulate.input_levels)
    ("fp16-linear", "icarus", {"d_in": 4, "d_out": 10, "lanes": 5}),
    ("fp16-linear", "verilator", {"d_in": 4, "d_out": 10, "lanes": 5}),
    ("llm-int8-linear", "icarus", LLM_INT8_SMALL),
    ("llm-int8-linear", "verilator", LLM_INT8_SMALL),
    # tiles of two tokens, bias, binary32 outputs, two gather requests in flight
    ("llm-int8-linear", "icarus", {"d_in": 24, "d_out": 12, "x_lanes": 8, "lanes": 4,
                                   "fp_lanes": 3, "outputs": 3, "tile": 2, "bias": 1,
                                   "out_fp16": 0, "outstanding": 2}),
    ("w8a8-linear", "icarus", W8A8_SMALL),
    ("w8a8-linear", "verilator", W8A8_SMALL),
    # bias, binary32 outputs, three chunks and groups
    ("w8a8-linear", "icarus", {"d_in": 24, "d_out": 12, "x_lanes": 8, "lanes": 4, "bias": 1,
                               "out_fp16": 0}),
]
BASELINE_TOKENS = {"fp16-linear": 8, "llm-int8-linear": 10, "w8a8-linear": 10}
BASELINE_VECTORS_PER_TOKEN = 200


@pytest.mark.parametrize("design, simulator, params", BASELINE_CASES,
                         ids=[f"{d}-{s}-" + "-".join(f"{k}{v}" for k, v in p.items())
                              for d, s, p in BASELINE_CASES])
def test_baseline_rtl_matches_reference(design, simulator, params):
    tokens = max(BASELINE_TOKENS[design],
                 vector_count(DEFAULT_VECTORS) // BASELINE_VECTORS_PER_TOKEN)
    component, result = _run(design, params, simulator, tokens, valid_probability=0.7,
                             ready_probability=0.6)
    tokens = -(-tokens // getattr(component, "tile", 1)) * getattr(component, "tile", 1)
    assert result.n_outputs == tokens * component.d_out // (
        component.lanes if design == "fp16-linear" else 1)
    assert result.cycles > result.n_inputs          # stalls really happened
    if design == "llm-int8-linear":
        adapter = get_adapter(design)
        inputs = adapter.validate(component, adapter.random_inputs(
            component, tokens, np.random.default_rng(seed_from_env())))
        columns = adapter.outlier_columns(component, inputs)
        counts = sorted({len(c) for c in columns})
        # outlier-free and outlier-heavy tiles (more than M: extra passes) both ran
        assert counts[0] == 0 and counts[-1] > component.outputs
        # one request per outlier column per token, the gather answered every one
        assert result.summary["requests"] == component.tile * sum(map(len, columns))
        assert result.summary["responses_left"] == 0


# The many-token regression of the layer datapaths: LQER_VECTORS tokens per case (make
# regress: 1,000,000) on Verilator through the Verilog bench (sim.hdl_bench, several times
# faster than the Python agents), in MANY_TOKENS_SHARDS shards that xdist runs side by side,
# each in runs of at most MANY_TOKENS_CHUNK tokens, reseeded per run (by default 2000
# tokens in all). The LQER cases keep the default pipeline depths (dot arrays, accumulators,
# requantizers, merge), with the two-term output and with the MXINT8 one (merged, bias).
# Icarus runs the same designs above, LQER_VECTORS // 200 (baselines) and // 2000 (LQER)
# tokens.
MANY_TOKENS_SHARDS = 4
MANY_TOKENS_CHUNK = 20_000
LQER_SMALL = {"d_in": 8, "d_out": 8, "rank": 4, "block": 4, "lanes_main": 2}
# fp16-linear at five lanes: a column gap and the activation's tree of copies (two levels)
MANY_TOKENS_CASES = [("fp16-linear", {"d_in": 4, "d_out": 10, "lanes": 5}),
                     ("llm-int8-linear", LLM_INT8_SMALL),
                     ("w8a8-linear", W8A8_SMALL),
                     ("lqer-linear", LQER_SMALL),
                     ("lqer-linear", {**LQER_SMALL, "d_out": 16, "merged": 1, "bias": 1})]


@pytest.mark.parametrize("shard", range(MANY_TOKENS_SHARDS))
@pytest.mark.parametrize("design, params", MANY_TOKENS_CASES,
                         ids=[d + ("-merged" if p.get("merged") else "")
                              for d, p in MANY_TOKENS_CASES])
def test_layer_many_tokens_on_verilator(design, params, shard):
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    component = inspect(design, **params)
    adapter = get_adapter(design)
    tokens = -(-vector_count(DEFAULT_VECTORS) // MANY_TOKENS_SHARDS)
    for run, start in enumerate(range(0, tokens, MANY_TOKENS_CHUNK)):
        n = min(MANY_TOKENS_CHUNK, tokens - start)
        seed = seed_from_env() * 1_000_003 + shard * 1009 + run
        inputs = adapter.validate(component, adapter.random_inputs(
            component, n, np.random.default_rng(seed)))
        result = simulate(adapter, component, inputs, simulator="verilator", seed=seed,
                          valid_probability=0.7, ready_probability=0.6, bench="hdl")
        assert result.mismatches == 0, f"run {run} (seed {seed})"
        assert result.n_outputs == adapter.output_count(component, inputs) > 0
        if design == "llm-int8-linear":
            assert result.summary["responses_left"] == 0


@pytest.mark.parametrize("bench", ["cocotb", "hdl"])
def test_checker_counts_mismatches(monkeypatch, bench):
    """A wrong reference must be caught: each bench (the Python agents, the Verilog one)
    is able to fail."""
    adapter = get_adapter("dot-array")
    honest = adapter.reference

    def off_by_one(dut, ins):
        out = honest(dut, ins)
        out["sums"] = out["sums"].copy()
        out["sums"][::5] += 1
        return out

    monkeypatch.setattr(adapter, "reference", off_by_one)
    simulator = "icarus" if simulator_available("icarus") else "verilator"
    if not simulator_available(simulator):
        pytest.skip("no simulator is installed")
    component = inspect("dot-array", lanes=1)
    inputs = adapter.validate(component, adapter.random_inputs(component, 50,
                                                               np.random.default_rng(2)))
    result = simulate(adapter, component, inputs, simulator=simulator, bench=bench)
    assert result.mismatches == 10
