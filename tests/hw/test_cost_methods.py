"""hw.cost.methods: iso-throughput (every method's main path takes the same steps per
token at the same MACs per cycle), the sizing rules of the second paths, the part
lists as data, and the configuration's checks."""

from __future__ import annotations

import dataclasses

import pytest

from hw.cost.methods import LAYER_OUTPUTS, MERGEABLE, METHODS, CostConfig, Sizing
from hw.cost.outliers import OutlierCounts
from hw.lqer_schedule import LQERSchedule

SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096), (4096, 1024), (128, 512), (768, 2304)]
COUNTS = OutlierCounts(mean=40.5, p50=30, p99=353, max=700)


@pytest.mark.parametrize("macs", [16, 64])
@pytest.mark.parametrize("d_in, d_out", SHAPES)
def test_every_method_takes_the_same_main_steps_per_token(d_in, d_out, macs):
    cfg = CostConfig(macs_per_cycle=macs)
    s = Sizing(cfg, d_in, d_out, COUNTS)
    steps = {name: m.schedule(s).steps for name, m in METHODS.items()}
    want = d_out // cfg.lanes * (d_in // cfg.block)
    assert s.main_steps == want
    assert {name: v for name, v in steps.items() if name != "resq"} == \
        {name: want for name in METHODS if name != "resq"}
    # ResQ's main path covers the d_in - r low-precision coordinates only
    assert steps["resq"] == d_out // cfg.lanes * (d_in - s.resq_rank) // cfg.block


@pytest.mark.parametrize("d_in, d_out", SHAPES)
def test_cycles_add_only_fills_passes_and_the_documented_data_dependent_part(d_in, d_out):
    cfg = CostConfig()
    s = Sizing(cfg, d_in, d_out, COUNTS)
    for name, m in METHODS.items():
        sch = m.schedule(s)
        fill = sch.cycles - sch.steps
        # the activation passes: absmax a block per cycle, codes an element per cycle;
        # fp16-linear reads its d_out sums out one group of M per cycle after the token
        front = s.nb_in + s.din_p if name in ("w8a8", "llm-int8", "llm-int4") else \
            s.dout_m // s.M if name == "fp16" else 0
        assert front <= fill <= front + 64, name
        assert set(sch.extra) == ({"mean", "p99", "max"} if m.needs_outliers else set())
    extra = METHODS["llm-int8"].schedule(s).extra
    assert extra["mean"] == 0 and extra["p99"] == 0  # the fp16 lanes are sized at p99
    assert extra["max"] == max(0, s.outlier_cycles(min(700, d_in)) - s.main_steps)


@pytest.mark.parametrize("d_in, d_out", SHAPES)
def test_the_lowrank_lanes_never_stall_the_main_path_and_are_the_fewest(d_in, d_out):
    s = Sizing(CostConfig(), d_in, d_out)
    sch = s.lqer_schedule(s.rank)
    assert sch.lowrank_steps <= sch.main_steps or s.lowrank_lanes == s.block
    if s.lowrank_lanes > 1:
        fewer = LQERSchedule(s.din_p, s.dout_p, s.rank, s.block, s.P, s.lowrank_lanes // 2,
                             s.cfg.dot_stages)
        assert fewer.lowrank_steps > fewer.main_steps


@pytest.mark.parametrize("d_in, d_out", SHAPES)
def test_llm_int8_fp16_lanes_are_the_fewest_that_fit_the_sized_count(d_in, d_out):
    s = Sizing(CostConfig(), d_in, d_out, COUNTS)
    n = min(COUNTS.p99, d_in)
    assert s.outlier_columns == n
    assert s.outlier_cycles(n) <= s.main_steps or s.fp_lanes == 1
    assert s.dout_m % s.fp_lanes == 0   # llm-int8-linear: fp_lanes divides d_out
    for fewer in range(1, s.fp_lanes):
        if s.dout_m % fewer == 0:
            assert s.dout_m // fewer * n > s.main_steps
    # the LQER authors' LLaMA-7B FFN: 353 columns at 16 MACs/cycle need two fp16 lanes
    assert Sizing(CostConfig(), 4096, 11008, COUNTS).fp_lanes == 2


def test_resq_high_precision_path_keeps_up_with_the_low_one():
    for d_in, d_out in SHAPES:
        s = Sizing(CostConfig(), d_in, d_out)
        assert s.resq_rank % s.block == 0 and s.block <= s.resq_rank < s.din_p
        low = s.dout_p // s.P * s.nb_low
        assert s.dout_p // s.resq_high_lanes * s.nb_high <= low or s.resq_high_lanes == s.block
    assert Sizing(CostConfig(), 4096, 4096).resq_rank == 512


def test_part_lists_are_data_and_name_every_part_with_its_parameters():
    # pipeline depths: lqer-linear's registry defaults; the two-term output (the merged
    # one's additions: test_the_merged_output_adds_the_merge_and_the_output_requantizer)
    cfg = CostConfig(layer_output="terms")
    s = Sizing(cfg, 4096, 11008, COUNTS)
    lqer = [(u.role, u.part(s).label, u.count(s)) for u in METHODS["lqer"].uses if u.count(s)]
    assert lqer == [
        ("main dot array", "dot-array lanes=1 block=16 a_width=8 w_width=4 exponent_bits=8 "
                           f"stages={cfg.dot_stages} backpressure=0", 1),
        ("main accumulator", "accumulator lanes=1 slots=4 stages=5 block=16 a_width=8 "
                             "w_width=4 exponent_bits=8 guard_bits=8 max_partials=256 "
                             "backpressure=0", 1),
        ("main results, groups to blocks", "rechunk value_width=31 exponent_width=10 n_in=1 "
                                           "n_out=16", 1),
        ("low-rank dot array", "dot-array lanes=1 block=16 a_width=8 w_width=8 exponent_bits=8 "
                               f"stages={cfg.dot_stages} backpressure=0", 1),
        ("low-rank accumulator", "accumulator lanes=1 slots=4 stages=5 block=16 a_width=8 "
                                 "w_width=8 exponent_bits=8 guard_bits=8 max_partials=256 "
                                 "backpressure=0", 1),
        ("requantizer (t, u)", "quantizer block=16 in_width=35 lsb_width=10 width=8 "
                               f"exponent_bits=8 stages={cfg.quant_stages} backpressure=0", 1)]
    fp16 = {u.part(s).label: u.count(s) for u in METHODS["fp16"].uses}
    assert fp16 == {"fp16-mul backpressure=0 replicas=1": 16, "fp32-add backpressure=0": 16}
    int8 = {u.part(s).label: (u.count(s), u.outside) for u in METHODS["llm-int8"].uses}
    assert int8 == {
        "llm-int8-detector lanes=16 threshold_bits=17920 backpressure=0": (1, False),
        "llm-int8-compaction lanes=16 outputs=4 chunks=256": (1, False),
        "llm-int8-quantizer": (1, False),
        "llm-int8-int-path lanes=16 d_in=4096 bias=0": (1, False),
        "fp16-mul backpressure=0 replicas=1": (2, False), "fp32-add backpressure=0": (2, False),
        "llm-int8-merge out_fp16=0": (1, False),
        # the gathered int8 weights' dequantization, outside llm-int8-linear's port
        "int32-to-fp32 backpressure=0": (2, True), "fp32-mul backpressure=0": (4, True),
        "fp32-to-fp16 backpressure=0": (2, True)}
    # the designs the methods name, at the engine's sizes (iso-throughput: M lanes of one
    # column per step on fp16-linear and llm-int8-linear, P = M / block MXINT lanes)
    assert METHODS["fp16"].design[1](s) == {"d_in": 4096, "d_out": 11008, "lanes": 16,
                                            "out_fp16": 0}
    assert METHODS["llm-int8"].design[1](s) == {
        "d_in": 4096, "d_out": 11008, "x_lanes": 16, "lanes": 16, "fp_lanes": 2, "outputs": 4,
        "threshold_bits": 0x4600, "tile": 1, "bias": 0, "out_fp16": 0, "outstanding": 4}
    resq = METHODS["resq"].design[1](s)
    assert (resq["rank"], resq["lanes_main"], resq["lanes_high"]) == (512, 1, 1)
    # w8a8: llm-int8-linear without its outlier path, the same parts the engine counts
    assert METHODS["w8a8"].design[1](s) == {
        "d_in": 4096, "d_out": 11008, "x_lanes": 16, "lanes": 16, "bias": 0, "out_fp16": 0}
    w8a8 = {u.part(s).label: u.count(s) for u in METHODS["w8a8"].uses}
    assert w8a8 == {"llm-int8-detector lanes=16 threshold_bits=31744 backpressure=0": 1,
                    "llm-int8-quantizer": 1, "llm-int8-int-path lanes=16 d_in=4096 bias=0": 1}
    assert [m for m in METHODS if METHODS[m].design is None] == ["llm-int4"]
    assert {m.glue_design for m in METHODS.values()} == {
        "fp16-linear", "llm-int8-linear", "w8a8-linear", "lqer-linear", "resq-linear"}


def test_weights_and_factors_are_the_stored_bits():
    s = Sizing(CostConfig(), 4096, 11008)
    def bits(method, kind="weights"):
        return sum(st.depth(s) * st.width(s) for st in METHODS[method].stores if st.kind == kind)
    w4 = 4096 * 11008 * 4 + 11008 * 256 * 8           # mantissas + one exponent per block
    assert bits("mxint") == w4
    factors = 32 * 4096 * 8 + 32 * 256 * 8 + 11008 * 32 * 8 + 11008 * 2 * 8
    assert bits("lqer") == w4 + factors
    assert bits("fp16") == 4096 * 11008 * 16
    assert bits("w8a8") == 4096 * 11008 * 8 + 11008 * 32
    assert bits("resq") == 11008 * 3584 * 4 + 11008 * 224 * 8 + 11008 * 512 * 8 + 11008 * 32 * 8


@pytest.mark.parametrize("change, message", [
    ({"macs_per_cycle": 24}, r"^macs-per-cycle must be a multiple of block \(16\); got 24$"),
    ({"macs_per_cycle": 8}, r"^macs-per-cycle must be a multiple of block \(16\); got 8$"),
    ({"rank": 40}, r"^rank must be a positive multiple of block \(16\); got 40$"),
    ({"outlier_sizing": "p90"}, r"^outlier-sizing must be one of mean, p50, p99, max; got 'p90'$"),
    ({"layer_output": "mxint"}, r"^layer-output must be one of terms, merged; got 'mxint'$"),
    ({"w_width": 17}, r"^width must be"),
])
def test_inconsistent_configurations_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CostConfig(), **change).check()


def test_llm_int8_needs_outlier_counts():
    with pytest.raises(ValueError, match=r"^outliers must be given for llm-int8"):
        Sizing(CostConfig(), 64, 64).fp_lanes


MXINT_ENGINES = [m for m in METHODS if METHODS[m].design is not None
                 and METHODS[m].design[0] in MERGEABLE]


def _uses(method, s):
    return {role: (u.label, n) for role, u, n in
            ((u.role, u.part(s), u.count(s)) for u in METHODS[method].uses) if n}


@pytest.mark.parametrize("d_in, d_out", SHAPES)
def test_the_merged_output_adds_the_merge_and_the_output_requantizer(d_in, d_out):
    """merged = terms + the output stage lqer-linear's merged=1 builds: the term's blocks
    to groups, the merge and the output requantizer (ResQ: the high path requantized
    first, into a FIFO of MXINT blocks instead of exact results); the main accumulator
    takes u and the bias as two more partials. Nothing else changes."""
    assert MXINT_ENGINES == ["mxint", "lqer", "l2qer", "resq"]
    terms_cfg, merged_cfg = (CostConfig(layer_output=o) for o in ("terms", "merged"))
    assert CostConfig().layer_output == "merged" and LAYER_OUTPUTS == ("terms", "merged")
    for method in MXINT_ENGINES:
        terms, merged = Sizing(terms_cfg, d_in, d_out), Sizing(merged_cfg, d_in, d_out)
        before, after = _uses(method, terms), _uses(method, merged)
        stage = {"output requantizer (merged output)"}
        if method != "mxint":
            stage |= {"term blocks to groups (merged output)", "merge (main + term, merged output)"}
        if method == "resq":
            stage.add("requantizer (high, merged output)")
        assert set(after) - set(before) == stage and set(before) <= set(after), method
        main = "low-precision" if method == "resq" else "main"
        path = merged.resq_low if method == "resq" else merged.main
        assert path.partials == (terms.resq_low if method == "resq" else terms.main).partials + 2
        for role in before:
            if role.startswith(f"{main} accumulator") or role.startswith(f"{main} results"):
                continue  # wider by the two partials
            assert before[role] == after[role], (method, role)
        stores = {st.role for st in METHODS[method].stores_at(merged)}
        if method == "resq":
            assert {st.role for st in METHODS[method].stores_at(terms)} ^ stores == {
                "high-path FIFO (exact results)",
                "high-path FIFO (requantized blocks, merged output)"}
        else:
            assert stores == {st.role for st in METHODS[method].stores_at(terms)}
    for method in set(METHODS) - set(MXINT_ENGINES):  # finished outputs either way
        counts = OutlierCounts(4, 4, 4, 4)
        assert _uses(method, Sizing(terms_cfg, d_in, d_out, counts)) == \
            _uses(method, Sizing(merged_cfg, d_in, d_out, counts))
        assert METHODS[method].glue_key(terms_cfg) == METHODS[method].glue_key(merged_cfg)


@pytest.mark.parametrize("output", LAYER_OUTPUTS)
@pytest.mark.parametrize("method, shape, cfg", [
    ("mxint", (64, 32, 0), CostConfig(block=4, macs_per_cycle=4)),
    ("lqer", (64, 32, 16), CostConfig(block=4, macs_per_cycle=4)),
    ("resq", (64, 32, 16), CostConfig(block=4, macs_per_cycle=4)),
    ("lqer", (128, 64, 32), CostConfig()),
    ("resq", (128, 256, 32), CostConfig(macs_per_cycle=32)),
    ("lqer", (256, 128, 32), CostConfig(macs_per_cycle=64, a_width=6)),
])
def test_parts_and_cycles_are_those_of_the_design_the_method_names(method, shape, cfg, output):
    """The design's parameters carry the output (merged=0/1); each part the engine
    counts has the interface of the one the design builds; cycles per token are the
    design's (its LQERSchedule, merge and output requantizer latencies included)."""
    from hw.cost import model
    from hw.cost.parts import resolve
    from hw.designs import elaborate
    cfg = dataclasses.replace(cfg, layer_output=output)
    m, s, whole = model.design_point(method, cfg, shape)
    assert whole.kwargs["merged"] == (output == "merged") and whole.kwargs["bias"] == 0
    design = elaborate(whole.name, **whole.kwargs)
    assert design.output == ("mxint" if output == "merged" else "terms")
    assert m.schedule(s).cycles == design.cycles_per_token
    assert m.schedule(s).steps == design.steps_per_token
    assert (s.resq_high_lanes if method == "resq" else s.lowrank_lanes if method == "lqer"
            else 0) == design.lanes_lowrank
    built = {role: resolve(part).build() for role, part, _ in model.engine_uses(m, s)}
    # the design's own parts (private attributes of hw.lqer_linear.LQERLinear)
    main = "low-precision accumulator" if method == "resq" else "main accumulator"
    expect = {main: design._main_acc,
              "output requantizer (merged output)": design._out_quant,
              "merge (main + term, merged output)": design._merge,
              "requantizer (t, u)": design._quant,
              "requantizer (high, merged output)": design._quant}
    checked = 0
    for role, part in built.items():
        if role in expect:
            assert expect[role] is not None, role
            assert part.signature == expect[role].signature, role
            assert getattr(part, "latency", None) == getattr(expect[role], "latency", None)
            checked += 1
    assert checked == {"mxint": 1, "lqer": 2, "resq": 1}[method] + \
        (0 if output == "terms" else {"mxint": 1, "lqer": 2, "resq": 3}[method])
