"""LQERLinear on Amaranth's simulator: bit-exact against the reference, published timing,
default lanes, parameter checks; and the adapter's reference against sw.bittrue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hw.designs import all_designs, inspect
from hw.lqer_linear import LQERLinear
from hw.lqer_schedule import LQERSchedule, default_lowrank_lanes
from hw.unused import inspected
from sim.adapters import get_adapter
from sim.amaranth_bench import bench_design
from sw.bittrue import MXTensor, lqer_linear
from sw.mxint import MXIntFormat, quantize

DUAL = {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2}
MAIN_ONLY = {"d_in": 16, "d_out": 32, "rank": 0, "block": 8, "lanes_main": 4}
LOWRANK_BOUND = {"d_in": 8, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 16,
                 "lanes_lowrank": 8}
# the merged output: with a bias, without; narrow pipelines; one slot (no interleave)
MERGED_BIAS = {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2, "merged": 1,
               "bias": 1}
MERGED_MAIN = {"d_in": 16, "d_out": 16, "rank": 0, "block": 4, "lanes_main": 8, "merged": 1,
               "bias": 1, "acc_slots": 2, "acc_stages": 0, "merge_stages": 1}
MERGED_U = {"d_in": 24, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 8, "merged": 1,
            "acc_slots": 1, "dot_stages": 1, "quant_stages": 1, "guard_bits": 2,
            "lanes_lowrank": 1}
CASES = [DUAL, MAIN_ONLY, LOWRANK_BOUND, MERGED_BIAS, MERGED_MAIN, MERGED_U]
IDS = ["dual", "main-only", "lowrank-bound", "merged-bias", "merged-main", "merged-u"]


def test_registered_with_a_main_only_form():
    assert "lqer-linear" in [d.name for d in all_designs()]
    dual, main = inspect("lqer-linear"), inspect("lqer-linear", rank=0)
    assert (dual.d_in, dual.d_out, dual.rank, dual.block) == (64, 64, 32, 16)
    assert set(dual.i.payload.shape().members) == {"x", "w", "f"}
    assert set(dual.o.payload.shape().members) == {"main_values", "main_exponents", "u"}
    assert set(main.i.payload.shape().members) == {"x", "w"}
    assert set(main.o.payload.shape().members) == {"main_values", "main_exponents"}
    assert main.lanes_lowrank == 0 and main.lowrank_acc_width == 0
    # the low-rank path adds no steps at the default lanes
    assert dual.steps_per_token == main.steps_per_token


@pytest.mark.parametrize("params", CASES, ids=IDS)
def test_amaranth_sim_matches_reference_with_stalls(params):
    mismatches, got, want, _ = bench_design("lqer-linear", params, vectors=5, seed=7,
                                            valid_probability=0.7, ready_probability=0.6)
    assert len(want) == 5 * params["d_out"] // params["block"]
    assert mismatches == 0 and len(got) == len(want)


@pytest.mark.parametrize("params", CASES, ids=IDS)
def test_full_rate_cycles_are_the_published_figure(params):
    tokens = 4
    component = inspect("lqer-linear", **params)
    mismatches, _, _, cycles = bench_design("lqer-linear", params, vectors=tokens, seed=2,
                                            valid_probability=1, ready_probability=1)
    assert mismatches == 0
    assert cycles == tokens * component.cycles_per_token


@pytest.mark.parametrize("d_in, d_out, rank, block, lanes_main", [
    (128, 128, 32, 16, 4), (128, 512, 32, 16, 8), (512, 128, 32, 16, 1), (64, 64, 64, 16, 16),
    (4096, 4096, 32, 16, 16), (32, 32, 16, 8, 32),
])
def test_default_lowrank_lanes_never_stall_the_main_path(d_in, d_out, rank, block, lanes_main):
    latencies = dict(slots=4, dot_latency=3, acc_latency=6, quant_latency=5)
    lanes = default_lowrank_lanes(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                  lanes_main=lanes_main, **latencies)

    def steps(p):
        s = LQERSchedule(d_in, d_out, rank, block, lanes_main, p, **latencies)
        return s.lowrank_steps, s.main_steps

    low, main = steps(lanes)
    if lanes < block:
        assert low <= main
    if lanes > 1:  # the least such power of two
        low_half, _ = steps(lanes // 2)
        assert low_half > main
    # the closed form in the docs is a lower bound of the choice
    assert lanes >= min(block, lanes_main * rank * (1 / d_out + 1 / d_in))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"d_in": 40}, ValueError, "d_in must be a multiple of block (16); got 40"),
    ({"rank": 80}, ValueError, "rank must be at most min(d_in, d_out) = 64; got 80"),
    ({"lanes_main": 3}, ValueError,
     "lanes_main must divide d_out (64) and divide or be a multiple of block (16); got 3"),
    ({"output": "float"}, ValueError, 'output must be one of "terms", "mxint"; got \'float\''),
    ({"bias": True}, ValueError, 'bias must be False unless output is "mxint" (the two-term '
                                 "output leaves the bias to its consumer); got True"),
    ({"acc_slots": 5}, ValueError, "acc_slots must be an integer in 1..4; got 5"),
    ({"lanes_lowrank": 3}, ValueError,
     "lanes_lowrank must be 0 (default) or a power of two in 1..16 (it divides block); got 3"),
    ({"lowrank_format": MXIntFormat(width=6)}, ValueError,
     "lowrank_width must equal a_width (8) when rank > 0 (one low-rank dot array takes x, then "
     "t); got 6"),
    ({"w_format": MXIntFormat(width=4, block=8)}, ValueError,
     "w_format.block must equal a_format.block (16); got 8"),
    ({"a_format": MXIntFormat(width=8, flavour="lqer")}, ValueError,
     'a_format.flavour must be "ocp" in hardware; got \'lqer\''),
    ({"d_out": 2.0}, TypeError, "d_out must be an integer in 1..8192; got 2.0"),
])
def test_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        LQERLinear(**kwargs)
    assert str(info.value) == message


def _mx_tensor(q) -> MXTensor:
    return MXTensor(torch.from_numpy(np.asarray(q.mantissas, np.int64)),
                    torch.from_numpy(np.asarray(q.exponents, np.int64)), q.format)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapter_reference_is_the_bittrue_layer(seed):
    """The reference the RTL is checked against equals sw.bittrue.lqer_linear (W, A, B
    from floats, activations quantized on the way in)."""
    rng = np.random.default_rng(seed)
    d_in, d_out, rank, block = 32, 16, 8, 8
    component = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=rank, block=block,
                        lanes_main=2, guard_bits=[8, 2, 0][seed])
    x = rng.standard_normal((6, d_in)) * rng.choice([1e-3, 1.0, 50.0], size=(6, 1))
    qw = quantize(rng.standard_normal((d_out, d_in)), width=4, block=block, axis=-1)
    qa = quantize(rng.standard_normal((rank, d_in)) * 0.1, width=8, block=block, axis=-1)
    qb = quantize(rng.standard_normal((d_out, rank)) * 0.1, width=8, block=block, axis=-1)
    qx = quantize(x, width=8, block=block, axis=-1)
    inputs = {}
    for key, q in (("x", qx), ("w", qw), ("a", qa), ("b", qb)):
        inputs[f"{key}_mantissas"] = q.mantissas.astype(np.int64)
        inputs[f"{key}_exponents"] = q.exponents.astype(np.int64)
    adapter = get_adapter("lqer-linear")
    ref = adapter.reference(component, adapter.validate(component, inputs))
    want = lqer_linear(torch.from_numpy(x), weight=_mx_tensor(qw), a_t=_mx_tensor(qa),
                       b_t=_mx_tensor(qb), guard_bits=component.guard_bits)
    assert np.array_equal(ref["main_values"].reshape(6, d_out), want.main[0].numpy())
    assert np.array_equal(ref["main_exponents"].reshape(6, d_out), want.main[1].numpy())
    assert np.array_equal(ref["u_mantissas"].reshape(6, d_out), want.u.mantissas.numpy())
    assert np.array_equal(ref["u_exponents"].reshape(6, -1), want.u.exponents.numpy())


# --- ResQ mode (resq-linear) ------------------------------------------------------------
# two terms, r = d/4; merged with a bias, narrow single-lane; narrow path the longer one
# (r = 3/4 d_in, one slot pair, one-stage dot arrays); wide path alone (r = 0)
RESQ_TERMS = {"d_in": 32, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 2}
RESQ_MERGED = {"d_in": 32, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 4, "merged": 1,
               "bias": 1, "quant_stages": 2, "merge_stages": 2}
RESQ_NARROW_BOUND = {"d_in": 16, "d_out": 16, "rank": 12, "block": 4, "lanes_main": 8,
                     "lanes_high": 4, "acc_slots": 2, "dot_stages": 1}
RESQ_WIDE_ONLY = {"d_in": 16, "d_out": 16, "rank": 0, "block": 4, "lanes_main": 4,
                  "acc_stages": 0}
RESQ_CASES = [RESQ_TERMS, RESQ_MERGED, RESQ_NARROW_BOUND, RESQ_WIDE_ONLY]
RESQ_IDS = ["terms", "merged-bias", "narrow-bound", "wide-only"]


def test_resq_mode_is_registered_with_its_own_ports():
    resq = inspect("resq-linear")
    assert resq.mode == "resq" and inspect("lqer-linear").mode == "lqer"
    assert (resq.d_in, resq.d_out, resq.rank, resq.block) == (128, 128, 16, 16)
    assert (resq.a_format.width, resq.w_format.width, resq.lowrank_format.width) == (4, 4, 8)
    assert set(resq.i.payload.shape().members) == {"x", "h", "w", "f"}
    assert set(resq.o.payload.shape().members) == {"main_values", "main_exponents",
                                                   "high_values", "high_exponents"}
    merged = inspect("resq-linear", merged=1, bias=1)
    assert merged.out_format == merged.lowrank_format
    assert set(merged.i.payload.shape().members) == {"x", "h", "w", "f", "b"}
    # the wide path reduces d_in - r coordinates; the narrow path adds no steps
    assert resq.schedule.nb_in == (128 - 16) // 16
    lanes = resq.schedule.lanes_main                 # output channels per step
    assert resq.steps_per_token == resq.schedule.main_steps == 128 // lanes * 7
    wide = inspect("resq-linear", rank=0)
    assert set(wide.i.payload.shape().members) == {"x", "w"}
    assert wide.steps_per_token == 128 // lanes * 8


@pytest.mark.parametrize("params", RESQ_CASES, ids=RESQ_IDS)
def test_resq_mode_matches_reference_and_published_cycles(params):
    """Bit-exact with sw.resq_reference under random stalls, and at full rate exactly the
    published cycles per token."""
    component = inspect("resq-linear", **params)
    mismatches, got, want, _ = bench_design("resq-linear", params, vectors=3, seed=7,
                                            valid_probability=0.7, ready_probability=0.6)
    assert len(want) == 3 * params["d_out"] // params["block"]
    assert mismatches == 0 and len(got) == len(want)
    mismatches, _, _, cycles = bench_design("resq-linear", params, vectors=2, seed=2,
                                            valid_probability=1, ready_probability=1)
    assert mismatches == 0
    assert cycles == 2 * component.cycles_per_token
    assert component.latency == component.cycles_per_token - component.steps_per_token


@pytest.mark.parametrize("d_in, d_out, rank, block, lanes_main", [
    (128, 128, 16, 16, 4), (128, 128, 16, 16, 16), (4096, 4096, 512, 16, 16),
    (512, 128, 64, 16, 32), (64, 64, 48, 16, 4), (32, 32, 8, 8, 8),
])
def test_resq_default_lanes_never_stall_the_wide_path(d_in, d_out, rank, block, lanes_main):
    latencies = dict(slots=4, dot_latency=3, acc_latency=9, quant_latency=5, mode="resq")
    lanes = default_lowrank_lanes(d_in=d_in, d_out=d_out, rank=rank, block=block,
                                  lanes_main=lanes_main, **latencies)

    def steps(p):
        s = LQERSchedule(d_in, d_out, rank, block, lanes_main, p, **latencies)
        return s.lowrank_steps, s.main_steps

    low, main = steps(lanes)
    if lanes < block:
        assert low <= main
    if lanes > 1:
        assert steps(lanes // 2)[0] > main
    # the closed form in the docs is a lower bound of the choice
    assert lanes >= min(block, lanes_main * rank / (d_in - rank))
    component = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=rank, block=block,
                        lanes_main=lanes_main)
    assert component.lanes_lowrank == lanes


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rank": 64}, ValueError, "rank must be in 0..63 (below d_in); got 64"),
    ({"rank": 20}, ValueError, "rank must be a multiple of block (16); got 20"),
    ({"mode": "resq2"}, ValueError, 'mode must be one of "lqer", "resq"; got \'resq2\''),
    ({"lowrank_format": MXIntFormat(width=8, rounding="away")}, ValueError,
     "lowrank_format.rounding must be 'even' (the datapath rounds half to even); got 'away'"),
    ({"w_format": MXIntFormat(width=4, rounding="away")}, ValueError,
     "w_format.rounding must be 'even' (the datapath rounds half to even); got 'away'"),
    ({"a_format": MXIntFormat(width=4, rounding="away")}, ValueError,
     "a_format.rounding must be 'even' (the datapath rounds half to even); got 'away'"),
])
def test_resq_bad_parameters_get_one_line(kwargs, error, message):
    with pytest.raises(error) as info:
        LQERLinear(**{"mode": "resq", "a_format": MXIntFormat(width=4), **kwargs})
    assert str(info.value) == message


def test_resq_mode_takes_any_high_width():
    """Unlike LQER (one low-rank array takes x, then t) the narrow path has its own format."""
    c = inspected(LQERLinear(mode="resq", d_in=64, d_out=32, rank=16,
                             a_format=MXIntFormat(width=4),
                             lowrank_format=MXIntFormat(width=6)))
    assert c.lowrank_format.width == 6 and c.out_format.width == 6


@pytest.mark.parametrize("seed", [0, 1])
def test_resq_adapter_reference_is_the_bittrue_layer(seed):
    """The reference the RTL is checked against equals sw.resq_emulation.resq_linear (the
    bit-true layer) on the same projected coordinates, both outputs summed as its y."""
    from sw.resq_emulation import resq_linear
    rng = np.random.default_rng(seed)
    d_in, d_out, rank, block = 32, 16, 8, 8
    component = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=rank, block=block,
                        lanes_main=2, guard_bits=[8, 2][seed])
    a_fmt, h_fmt = component.a_format, component.lowrank_format
    z = rng.standard_normal((6, d_in)) * rng.choice([1e-3, 1.0, 50.0], size=(6, 1))
    z_low, z_high = z[:, :d_in - rank], z[:, d_in - rank:]
    qw = quantize(rng.standard_normal((d_out, d_in - rank)), component.w_format, axis=-1)
    qwh = quantize(rng.standard_normal((d_out, rank)), h_fmt, axis=-1)
    inputs = {}
    for key, q in (("x", quantize(z_low, a_fmt, axis=-1)), ("h", quantize(z_high, h_fmt, axis=-1)),
                   ("w", qw), ("wh", qwh)):
        inputs[f"{key}_mantissas"] = q.mantissas.astype(np.int64)
        inputs[f"{key}_exponents"] = q.exponents.astype(np.int64)
    adapter = get_adapter("resq-linear")
    ref = adapter.reference(component, adapter.validate(component, inputs))
    want = resq_linear(torch.from_numpy(z_low), torch.from_numpy(z_high),
                       weight_low=_mx_tensor(qw), weight_high=_mx_tensor(qwh), a_format=a_fmt,
                       high_format=h_fmt, guard_bits=component.guard_bits)
    assert np.array_equal(ref["main_values"].reshape(6, d_out), want.low[0].numpy())
    assert np.array_equal(ref["main_exponents"].reshape(6, d_out), want.low[1].numpy())
    assert np.array_equal(ref["high_values"].reshape(6, d_out), want.high[0].numpy())
    assert np.array_equal(ref["high_exponents"].reshape(6, d_out), want.high[1].numpy())


def _doc_table(name: str) -> list[list[str]]:
    """Rows (cells) of the table between ``<!-- generated:NAME -->`` markers in
    docs/lqer_linear.md (scripts/hw_tables.py writes it)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "lqer_linear.md").read_text()
    body = text.split(f"<!-- generated:{name} -->")[1].split(f"<!-- /generated:{name} -->")[0]
    lines = [line for line in body.strip().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_docs_resq_cycles_table_is_what_the_components_publish():
    rows = _doc_table("resq-cycles")
    assert len(rows) >= 4
    for shape, r, p_m, p_l, wide, resq, lqer in rows:
        d_in, d_out = (int(v) for v in shape.split(" x "))
        r, p_m = int(r), int(p_m)
        wide_c = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=0, lanes_main=p_m)
        resq_c = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=r, lanes_main=p_m)
        lqer_c = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=min(32, d_in // 2),
                         lanes_main=p_m)
        assert (int(p_l), int(wide), int(resq)) == (
            resq_c.lanes_lowrank, wide_c.cycles_per_token, resq_c.cycles_per_token), shape
        assert lqer == f"{lqer_c.cycles_per_token} (P_l {lqer_c.lanes_lowrank})", shape


def test_docs_lqer_cycles_table_is_what_the_components_publish():
    rows = _doc_table("lqer-cycles")
    assert len(rows) >= 4
    for shape, p_m, p_l, main_only, dual in rows:
        d_in, d_out = (int(v) for v in shape.split(" x "))
        main_c = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=0, lanes_main=int(p_m))
        dual_c = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=32, lanes_main=int(p_m))
        assert (int(p_l), int(main_only), int(dual)) == (
            dual_c.lanes_lowrank, main_c.cycles_per_token, dual_c.cycles_per_token), shape
