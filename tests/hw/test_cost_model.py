"""hw.cost.model: the composition arithmetic on given part figures (any figures: the
test feeds a table, the command feeds syntheses), memories by kind, sources, totals."""

from __future__ import annotations

import pytest

from hw.cost import model
from hw.cost.glue import GlueFit
from hw.cost.methods import METHODS, CostConfig
from hw.cost.outliers import fixed_columns
from hw.cost.parts import ESTIMATED, FIGURES, SYNTHESISED
from hw.cost.shapes import read_model

TARGET = "xc7-nodsp"


def _figures(parts, target=TARGET):
    """Part k costs 100 (k + 1) LUTs, 10 (k + 1) FFs; proxies are estimates."""
    table = {}
    for k, part in enumerate(parts):
        estimated = part.name in ("int-accumulator", "outlier-detector", "compaction") or \
            part.name.startswith(("fp16", "fp32", "int32"))
        figures = {name: None for name in FIGURES}
        figures.update(luts=100 * (k + 1), ffs=10 * (k + 1), carries=k, dsps=0, brams=0, lutrams=0)
        table[(part, target)] = {"figures": figures, "source": ESTIMATED if estimated else SYNTHESISED,
                                 "basis": part.name, "cached": True, "wall_s": 0.0}
    return table


GLUE = GlueFit(TARGET, {"luts": (1.0, 0.5, 200.0, 1000.0), "ffs": (0.0, 0.0, 50.0, 300.0),
                        "carries": (0.0, 0.0, 1.0, 2.0), "dsps": (0.0, 0.0, 0.0, 0.0),
                        "brams": (0.0, 0.0, 0.0, 0.0), "lutrams": (0.0, 0.0, 0.0, 0.0),
                        "transistors": None},
               ({"shape": [32, 32, 0]}, {"shape": [64, 64, 0]}, {"shape": [64, 64, 16]}))


@pytest.fixture(scope="module")
def setup():
    """The two-term output (the arithmetic below counts its widths); the figures cover
    the merged output's parts too."""
    shapes = read_model("default")
    cfg = CostConfig(layer_output="terms")
    profile = fixed_columns(5, shapes)
    parts = []
    for c in (cfg, CostConfig(layer_output="merged")):
        keys = {k for ks in model.plan(shapes, list(METHODS), c, profile).values() for k in ks}
        parts += model.required_parts(sorted(keys, key=repr), c)
    return shapes, cfg, profile, _figures(list(dict.fromkeys(parts)))


def test_an_engine_is_its_parts_counted_plus_the_glue(setup):
    shapes, cfg, profile, figures = setup
    key = model.EngineKey("lqer", 128, 512)
    e = model.engine_cost(key, cfg, TARGET, figures, GLUE)
    uses = model.engine_uses(METHODS["lqer"], model.sizing_of(key, cfg))
    parts_luts = sum(n * figures[(p, TARGET)]["figures"]["luts"] for _, p, n in uses)
    staging = 16 * ((19 + 8 + 3) + 10)   # the requantizer's input: low-rank results and lsbs
    outputs = 2 * ((15 + 8 + 3 + 10) + 136)  # the two read registers of the main and u FIFOs
    glue = e["parts"][-1]
    assert glue["role"].startswith("control") and glue["source"] == ESTIMATED
    assert glue["luts"] == 200 + 1000 and glue["ffs"] == 50 + 300 + staging + outputs
    assert e["luts"] == parts_luts + glue["luts"]
    assert e["synthesised_luts"] == parts_luts and e["source"] == ESTIMATED
    assert e["transistors"] is None
    assert [m["kind"] for m in e["memories"]] == ["buffer", "buffer", "weights", "buffer",
                                                  "buffer", "weights", "weights"]
    # FIFOs: their entries, memory words and the two read registers (hw.fifo.RegisteredFIFO)
    assert e["buffer_bits"] == 8 * 136 + 514 * (15 + 8 + 3 + 10) + 2 * 136 + 34 * 136
    assert e["weights_bits"] == e["traffic_bits"]
    assert e["steps_per_token"] == 512 * 8 and e["lowrank_lanes"] == 1


@pytest.mark.parametrize("method", ["mxint", "lqer", "resq"])
def test_the_merged_output_is_costed_with_its_output_stage_and_its_own_glue(setup, method):
    shapes, terms_cfg, profile, figures = setup
    merged_cfg = CostConfig(layer_output="merged")
    key = model.EngineKey(method, 128, 512)
    assert {METHODS[method].glue_key(c) for c in (terms_cfg, merged_cfg)} == \
        {METHODS[method].glue_design, METHODS[method].glue_design + " merged"}
    t = model.engine_cost(key, terms_cfg, TARGET, figures, GLUE)
    m = model.engine_cost(key, merged_cfg, TARGET, figures, GLUE)
    roles = {r["role"] for r in m["parts"]} - {r["role"] for r in t["parts"]}
    assert roles == {"mxint": {"output requantizer (merged output)"},
                     "lqer": {"output requantizer (merged output)", "merge (main + term, "
                              "merged output)", "term blocks to groups (merged output)"},
                     "resq": {"output requantizer (merged output)", "merge (main + term, "
                              "merged output)", "term blocks to groups (merged output)",
                              "requantizer (high, merged output)"}}[method]
    uses = model.engine_uses(METHODS[method], model.sizing_of(key, merged_cfg))
    assert m["luts"] == sum(n * figures[(p, TARGET)]["figures"]["luts"] for _, p, n in uses) \
        + m["parts"][-1]["luts"]
    schedule = METHODS[method].schedule(model.sizing_of(key, merged_cfg))
    assert (m["cycles_per_token"], m["steps_per_token"]) == (schedule.cycles, schedule.steps)
    assert m["steps_per_token"] == t["steps_per_token"]
    assert m["cycles_per_token"] > t["cycles_per_token"]   # the merge and requantizer fill


def test_registers_mode_moves_buffers_into_the_glue(setup):
    shapes, cfg, profile, figures = setup
    key = model.EngineKey("mxint", 128, 128)
    mem = model.engine_cost(key, cfg, TARGET, figures, GLUE)
    reg = model.engine_cost(key, cfg, TARGET, figures, GLUE, buffers="registers")
    assert reg["buffer_bits"] == 0 and mem["buffer_bits"] > 0
    # the main FIFO's two read registers are in the glue either way
    assert reg["ffs"] - mem["ffs"] == mem["buffer_bits"] - 2 * (15 + 8 + 3 + 10)
    assert reg["luts"] > mem["luts"]


def test_layers_and_model_totals(setup):
    shapes, cfg, profile, figures = setup
    fits = {design: {TARGET: GLUE} for design in ("fp16-linear", "lqer-linear",
                                                  "llm-int8-linear")}
    with pytest.raises(KeyError, match="lqer-linear merged"):  # the merged output's own glue
        model.evaluate(shapes, ["mxint"], CostConfig(), [TARGET], figures, fits, profile)
    layers, engines = model.evaluate(shapes, ["fp16", "mxint", "llm-int8"], cfg, [TARGET],
                                     figures, fits, profile)
    assert len(layers) == 3 * len(shapes.layers)
    assert len(engines) == 3 * 3  # three distinct layer shapes
    fc1 = [r for r in layers if r["layer"].endswith("0.fc1")]
    fp16 = next(r for r in fc1 if r["method"] == "fp16")
    assert fp16["luts_vs_fp16"] == 1.0
    int8 = next(r for r in fc1 if r["method"] == "llm-int8")
    assert int8["fp_lanes"] == 1 and int8["gather_bits"] == 5 * 512 * 8
    totals = {t["method"]: t for t in model.model_totals(layers)}
    mx = [r for r in layers if r["method"] == "mxint"]
    assert totals["mxint"]["luts"] == max(r["luts"] for r in mx)
    assert totals["mxint"]["cycles_per_token"] == sum(r["cycles_per_token"] for r in mx)
    assert totals["mxint"]["weights_bits"] == sum(r["weights_bits"] for r in mx)
    assert totals["fp16"]["source"] == ESTIMATED
    assert totals["mxint"]["luts_vs_fp16"] == totals["mxint"]["luts"] / totals["fp16"]["luts"]
