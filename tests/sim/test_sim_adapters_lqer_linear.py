"""sim.adapters.lqer_linear: operand checks (fixed rows beside T tokens), the reference
(sw.lqer_reference), and the input stream of hw.lqer_schedule: its order, step by step
against the documented rule, and its size, which must not grow with the token count
beyond the activations."""

from __future__ import annotations

import numpy as np
import pytest

from hw.designs import inspect
from hw.lqer_schedule import input_items
from sim.adapters import get_adapter
from sim.codec import PayloadCodec
from sw.lqer_reference import lqer_linear_terms, reference_lqer_linear, transpose
from sw.mxint import quantize

ADAPTER = get_adapter("lqer-linear")
SHAPES = [
    {"d_in": 32, "d_out": 32, "rank": 16, "block": 8, "lanes_main": 2},
    {"d_in": 16, "d_out": 32, "rank": 0, "block": 8, "lanes_main": 4},
    {"d_in": 8, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 16, "lanes_lowrank": 8},
    {"d_in": 24, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 8, "lanes_lowrank": 1,
     "dot_stages": 1},
]


def _fields(qx, qw, qa_t=None, qb_t=None):
    out = {}
    for key, q in (("x", qx), ("w", qw), ("a", qa_t), ("b", qb_t)):
        if q is not None:
            out[f"{key}_mantissas"] = np.asarray(q.mantissas, np.int64)
            out[f"{key}_exponents"] = np.asarray(q.exponents, np.int64)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_is_the_float_layer_of_sw_lqer_reference(seed):
    """Factors in the layout of sw.factors (A: d_in x k, B: k x d_out, blocked along the
    reduction axis) and float activations: the adapter's reference on the quantized
    operands equals reference_lqer_linear's main and u."""
    rng = np.random.default_rng(seed)
    d_in, d_out, rank, block = 32, 16, 8, 8
    dut = inspect("lqer-linear", d_in=d_in, d_out=d_out, rank=rank, block=block, lanes_main=2,
                  guard_bits=[8, 1][seed])
    x = rng.standard_normal((5, d_in)) * rng.choice([1e-3, 1.0, 40.0], size=(5, 1))
    w = quantize(rng.standard_normal((d_out, d_in)), width=4, block=block, axis=1)
    a = quantize(rng.standard_normal((d_in, rank)) * 0.1, width=8, block=block, axis=0)
    b = quantize(rng.standard_normal((rank, d_out)) * 0.1, width=8, block=block, axis=0)
    want = reference_lqer_linear(x, w, a, b, guard_bits=dut.guard_bits)
    inputs = ADAPTER.validate(dut, _fields(want["x"], w, transpose(a), transpose(b)))
    got = ADAPTER.reference(dut, inputs)
    assert np.array_equal(got["main_values"], want["main"][0].reshape(-1, block))
    assert np.array_equal(got["main_exponents"], want["main"][1].reshape(-1, block))
    assert np.array_equal(got["u_mantissas"], want["u"].mantissas.reshape(-1, block))
    assert np.array_equal(got["u_exponents"], want["u"].exponents.reshape(-1))
    assert ADAPTER.output_count(dut, inputs) == 5 * d_out // block == len(got["u_exponents"])


def test_terms_refuse_half_a_low_rank_pair_and_a_wrong_blocking():
    rng = np.random.default_rng(0)
    qx = quantize(rng.standard_normal((2, 8)), width=8, block=8)
    qw = quantize(rng.standard_normal((4, 8)), width=4, block=8)
    with pytest.raises(ValueError, match=r"^a_t and b_t must be given together$"):
        lqer_linear_terms(qx, qw, qw)
    with pytest.raises(ValueError, match=r"^weight must be blocked along its reduction axis"):
        lqer_linear_terms(qx, quantize(rng.standard_normal((8, 8)), width=4, block=8, axis=0))
    assert lqer_linear_terms(qx, qw)["t"] is None


def _documented_step(dut, ins, t, s):
    """Item s of token t by the rule in hw/lqer_schedule.py's module doc, element by element:
    step s of a phase over nb blocks serves slot k = s % K, block (s // K) % nb and group
    (s // (K nb)) K + k; rows of padded groups are zero."""
    sch, b, slots = dut.schedule, dut.block, dut.schedule.slots

    def operand(prefix, phase_step, blocks, lanes, rows):
        group = (phase_step // (slots * blocks)) * slots + phase_step % slots
        col = (phase_step // slots) % blocks
        m, e = np.zeros((lanes, b), int), np.zeros(lanes, int)
        for lane in range(lanes):
            row = group * lanes + lane
            if row < rows:
                m[lane] = ins[f"{prefix}_mantissas"][row, col * b:(col + 1) * b]
                e[lane] = ins[f"{prefix}_exponents"][row, col]
        return m, e

    j = (s // slots) % sch.nb_in
    item = {"x.mantissas": ins["x_mantissas"][t, j * b:(j + 1) * b],
            "x.exponent": ins["x_exponents"][t, j]}
    pm = sch.lanes_main
    wm, we = (operand("w", s, sch.nb_in, pm, dut.d_out) if s < sch.main_steps
              else (np.zeros((pm, b), int), np.zeros(pm, int)))
    item.update({"w.mantissas": wm, "w.exponent": we})
    if dut.rank:
        pl = sch.lanes_lowrank
        fm, fe = np.zeros((pl, b), int), np.zeros(pl, int)
        if s < sch.t_steps:
            fm, fe = operand("a", s, sch.nb_in, pl, dut.rank)
        elif sch.u_start <= s < sch.lowrank_steps:
            fm, fe = operand("b", s - sch.u_start, sch.nb_k, pl, dut.d_out)
        item.update({"f.mantissas": fm, "f.exponent": fe})
    return item


@pytest.mark.parametrize("params", SHAPES, ids=["dual", "main-only", "lowrank-bound", "one-lane"])
def test_stream_follows_the_documented_order(params):
    dut = inspect("lqer-linear", **params)
    ins = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 3, np.random.default_rng(9)))
    stream = ADAPTER.input_stream(dut, ins)
    steps = dut.steps_per_token
    assert stream.tiled and len(stream) == 3 * steps and stream.steps_per_token == steps
    rows = stream.rows()
    for t in range(3):
        for s in range(steps):
            want = _documented_step(dut, ins, t, s)
            for key, value in want.items():
                assert np.array_equal(rows[key][t * steps + s], value), (t, s, key)
    # the explicit merge in hw.lqer_schedule and the bench's lazy packing agree
    explicit = input_items(dut.schedule, ins["x_mantissas"], ins["x_exponents"], stream.steps)
    assert explicit.keys() == rows.keys()
    assert all(np.array_equal(explicit[k], rows[k]) for k in rows)
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    assert list(stream.pack(codec)) == codec.pack(rows)


def test_stream_file_does_not_grow_with_tokens_beyond_the_activations(tmp_path):
    """Bytes written for 1 and for 600 tokens of a 64 x 64 rank-32 layer: the difference
    is the activations' own size (int8 mantissas and exponents), the weights are stored
    once (the old layout wrote every step of every token)."""
    dut = inspect("lqer-linear", d_in=64, d_out=64, rank=32, block=16, lanes_main=4)
    rng = np.random.default_rng(1)
    layer = ADAPTER.random_inputs(dut, 600, rng)
    sizes = {}
    for tokens in (1, 600):
        fields = {**layer, "x_mantissas": layer["x_mantissas"][:tokens],
                  "x_exponents": layer["x_exponents"][:tokens]}
        stream = ADAPTER.input_stream(dut, ADAPTER.validate(dut, fields))
        sizes[tokens] = stream.save(tmp_path / f"{tokens}.npz")
    per_token = 64 + 64 // 16  # d_in mantissas and d_in/block exponents, one byte each
    assert sizes[600] - sizes[1] <= 599 * per_token + 256
    weights = (64 * 64 + 2 * 64 * 32)  # W_q, A^T, B^T mantissas at one byte
    assert weights <= sizes[1] <= 4 * weights


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(w_mantissas=d["w_mantissas"][:16]),
     "w_mantissas must have shape (32, 32); got (16, 32)"),
    (lambda d: d.update(x_exponents=d["x_exponents"][:2]),
     "x_exponents must have shape (T, 4) with T = 3; got (2, 4)"),
    (lambda d: d.update(b_exponents=d["b_exponents"][:, :1]),
     "b_exponents must have shape (32, 2); got (32, 1)"),
    (lambda d: d.pop("a_exponents"), "inputs must contain field 'a_exponents' (fields: "
     "x_mantissas, x_exponents, w_mantissas, w_exponents, a_mantissas, a_exponents, "
     "b_mantissas, b_exponents)"),
    (lambda d: d["w_mantissas"].__setitem__((0, 0), 8), "w_mantissas must be in -7..7; got 8"),
    (lambda d: d.update(x_mantissas=d["x_mantissas"][:0], x_exponents=d["x_exponents"][:0]),
     "inputs must hold at least one token; got T = 0"),
])
def test_bad_operands_get_one_line(mutate, message):
    dut = inspect("lqer-linear", **SHAPES[0])
    ins = ADAPTER.random_inputs(dut, 3, np.random.default_rng(0))
    mutate(ins)
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(dut, ins)
    assert str(info.value) == message


def test_main_only_layer_needs_no_factors():
    dut = inspect("lqer-linear", **SHAPES[1])
    ins = ADAPTER.random_inputs(dut, 2, np.random.default_rng(0))
    assert set(ins) == {"x_mantissas", "x_exponents", "w_mantissas", "w_exponents"}
    checked = ADAPTER.validate(dut, ins)
    assert set(ADAPTER.reference(dut, checked)) == {"main_values", "main_exponents"}
    assert [s.name for s in ADAPTER.output_fields(dut)] == ["main_values", "main_exponents"]


# --- resq-linear -------------------------------------------------------------------------
RESQ = get_adapter("resq-linear")
RESQ_SHAPES = [
    {"d_in": 32, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 2},
    {"d_in": 16, "d_out": 16, "rank": 12, "block": 4, "lanes_main": 8, "lanes_high": 4,
     "acc_slots": 2},
    {"d_in": 32, "d_out": 16, "rank": 8, "block": 8, "lanes_main": 4, "merged": 1, "bias": 1},
    {"d_in": 16, "d_out": 16, "rank": 0, "block": 4, "lanes_main": 4},
]
RESQ_IDS = ["terms", "narrow-bound", "merged-bias", "wide-only"]


@pytest.mark.parametrize("seed", [0, 1])
def test_resq_reference_is_the_float_layer_of_sw_resq_reference(seed):
    """Float activations and a basis: the adapter's terms on the quantized coordinates are
    reference_resq_linear's low and high, and y = fl64(low + high) + bias is its y."""
    from sw.resq_reference import reference_resq_linear
    rng = np.random.default_rng(seed)
    d_in, d_out, rank, block = 32, 16, 8, 8
    dut = inspect("resq-linear", d_in=d_in, d_out=d_out, rank=rank, block=block, lanes_main=2,
                  guard_bits=[8, 1][seed])
    basis, _ = np.linalg.qr(rng.standard_normal((d_in, d_in)))
    x = rng.standard_normal((5, d_in)) * rng.choice([1e-3, 1.0, 40.0], size=(5, 1))
    w = rng.standard_normal((d_out, d_in)) @ basis
    wl = quantize(w[:, :d_in - rank], dut.w_format, axis=1)
    wh = quantize(w[:, d_in - rank:], dut.lowrank_format, axis=1)
    bias = rng.standard_normal(d_out)
    want = reference_resq_linear(x, basis, wl, wh, bias, a_format=dut.a_format,
                                 guard_bits=dut.guard_bits)
    fields = {}
    for key, q in (("x", want["x_low"]), ("h", want["x_high"]), ("w", wl), ("wh", wh)):
        fields[f"{key}_mantissas"] = np.asarray(q.mantissas, np.int64)
        fields[f"{key}_exponents"] = np.asarray(q.exponents, np.int64)
    got = RESQ.reference(dut, RESQ.validate(dut, fields))
    assert np.array_equal(got["main_values"], want["low"][0].reshape(-1, block))
    assert np.array_equal(got["main_exponents"], want["low"][1].reshape(-1, block))
    assert np.array_equal(got["high_values"], want["high"][0].reshape(-1, block))
    assert np.array_equal(got["high_exponents"], want["high"][1].reshape(-1, block))
    y = (np.ldexp(got["main_values"].astype(float), got["main_exponents"])
         + np.ldexp(got["high_values"].astype(float), got["high_exponents"])).reshape(5, d_out)
    assert np.array_equal(y + bias, want["y"])


def _documented_resq_step(dut, ins, t, s):
    """Item s of token t by the ResQ rule of hw/lqer_schedule.py's module doc: x and h carry
    row q = (s // K) % max(nb_in, nb_k) of the token (z_l block q, z_h block q, zero past
    the end); W_l as W_q, W_h in B^T's place from step 0."""
    sch, b, slots = dut.schedule, dut.block, dut.schedule.slots
    q = (s // slots) % max(sch.nb_in, sch.nb_k)

    def block_of(prefix, blocks):
        if q >= blocks:
            return np.zeros(b, int), 0
        return ins[f"{prefix}_mantissas"][t, q * b:(q + 1) * b], ins[f"{prefix}_exponents"][t, q]

    def operand(prefix, blocks, lanes):
        group = (s // (slots * blocks)) * slots + s % slots
        col = (s // slots) % blocks
        m, e = np.zeros((lanes, b), int), np.zeros(lanes, int)
        for lane in range(lanes):
            row = group * lanes + lane
            if row < dut.d_out:
                m[lane] = ins[f"{prefix}_mantissas"][row, col * b:(col + 1) * b]
                e[lane] = ins[f"{prefix}_exponents"][row, col]
        return m, e

    item = dict(zip(("x.mantissas", "x.exponent"), block_of("x", sch.nb_in)))
    pm, pl = sch.lanes_main, sch.lanes_lowrank
    wm, we = (operand("w", sch.nb_in, pm) if s < sch.main_steps
              else (np.zeros((pm, b), int), np.zeros(pm, int)))
    item.update({"w.mantissas": wm, "w.exponent": we})
    if dut.rank:
        item.update(zip(("h.mantissas", "h.exponent"), block_of("h", sch.nb_k)))
        fm, fe = (operand("wh", sch.nb_k, pl) if s < sch.lowrank_steps
                  else (np.zeros((pl, b), int), np.zeros(pl, int)))
        item.update({"f.mantissas": fm, "f.exponent": fe})
    if dut.bias:
        m = np.zeros(b, int) if s >= sch.nb_out else ins["bias_mantissas"][0, s * b:(s + 1) * b]
        e = 0 if s >= sch.nb_out else ins["bias_exponents"][0, s]
        item.update({"b.mantissas": m, "b.exponent": e})
    return item


@pytest.mark.parametrize("params", RESQ_SHAPES, ids=RESQ_IDS)
def test_resq_stream_follows_the_documented_order(params):
    dut = inspect("resq-linear", **params)
    ins = RESQ.validate(dut, RESQ.random_inputs(dut, 3, np.random.default_rng(9)))
    stream = RESQ.input_stream(dut, ins)
    steps = dut.steps_per_token
    assert stream.tiled and len(stream) == 3 * steps
    rows = stream.rows()
    for t in range(3):
        for s in range(steps):
            want = _documented_resq_step(dut, ins, t, s)
            assert want.keys() == rows.keys()
            for key, value in want.items():
                assert np.array_equal(rows[key][t * steps + s], value), (t, s, key)
    high = (ins["h_mantissas"], ins["h_exponents"]) if dut.rank else (None, None)
    explicit = input_items(dut.schedule, ins["x_mantissas"], ins["x_exponents"], stream.steps,
                           *high)
    assert explicit.keys() == rows.keys()
    assert all(np.array_equal(explicit[k], rows[k]) for k in rows)
    codec = PayloadCodec.from_layout(dut.i.payload.shape())
    assert list(stream.pack(codec)) == codec.pack(rows)


def test_resq_random_inputs_start_with_edge_tokens_on_both_paths():
    dut = inspect("resq-linear", **RESQ_SHAPES[0])
    ins = RESQ.random_inputs(dut, 12, np.random.default_rng(0))
    for key, fmt in (("x", dut.a_format), ("h", dut.lowrank_format)):
        q, (lo, hi) = fmt.mantissa_max, fmt.exponent_range
        assert not ins[f"{key}_mantissas"][0].any() and (ins[f"{key}_exponents"][0] == lo).all()
        assert (ins[f"{key}_mantissas"][1] == q).all() and (ins[f"{key}_exponents"][1] == hi).all()
        assert (abs(ins[f"{key}_mantissas"][2]) == q).all()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(w_mantissas=d["w_mantissas"][:, :16]),
     "w_mantissas must have shape (16, 24); got (16, 16)"),
    (lambda d: d.update(h_exponents=d["h_exponents"][:2]),
     "h_exponents must have shape (T, 1) with T = 3; got (2, 1)"),
    (lambda d: d["x_mantissas"].__setitem__((0, 0), 8), "x_mantissas must be in -7..7; got 8"),
    (lambda d: d.pop("wh_exponents"), "inputs must contain field 'wh_exponents' (fields: "
     "x_mantissas, x_exponents, h_mantissas, h_exponents, w_mantissas, w_exponents, "
     "wh_mantissas, wh_exponents)"),
])
def test_resq_bad_operands_get_one_line(mutate, message):
    dut = inspect("resq-linear", **RESQ_SHAPES[0])
    ins = RESQ.random_inputs(dut, 3, np.random.default_rng(0))
    mutate(ins)
    with pytest.raises(ValueError) as info:
        RESQ.validate(dut, ins)
    assert str(info.value) == message
