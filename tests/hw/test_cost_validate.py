"""hw.cost.validate: the cost model's prediction of each method's whole datapath
(lqer-linear for mxint and lqer, resq-linear, fp16-linear, llm-int8-linear, w8a8-linear
for w8a8: parts synthesised alone, counted, plus the design's fitted glue and the register
buffers) against the whole datapath synthesised, within +-10% LUTs and FFs on xc7-nodsp and
lut6 at each method's smallest shape that is not a fit shape, with the smallest parts (block
4, 4 MACs per cycle; bench/bench_cost.py holds block 16 at every shape); the MXINT designs
at both layer outputs (merged=0 and merged=1, each with its own glue fit). Slow: marked
``synth``; results are cached for the session (tests/hw/cost_cache.py).

Each (design, layer output) is validated on one of the two targets by default
(:data:`TEST_TARGETS`: both targets, both outputs of each MXINT design and the LLM.int8()
design's lut6 netlist are all covered, at half the synthesis time); ``LQER_VALIDATE_TARGETS=all``
validates every point on both, as ``scripts/cost_tables.py --validation`` does at block 16."""

from __future__ import annotations

import dataclasses
import os

import pytest

from hw.cost import validate
from hw.cost.glue import DESIGN_FITS, fit_shapes
from hw.cost.methods import LAYER_OUTPUTS, METHODS, CostConfig
from hw.synth.cache import ResultCache
from tests.hw.cost_cache import session_cache_root


def test_every_method_with_a_design_is_validated_off_its_fit_shapes():
    assert set(validate.VALIDATED) == {m for m in METHODS if METHODS[m].design is not None} - {
        "l2qer"}  # the lqer datapath (docs/cost.md)
    assert {METHODS[m].glue_key(dataclasses.replace(validate.TEST_CONFIG, layer_output=o))
            for m in validate.VALIDATED for o in validate.outputs_of(m)} == set(DESIGN_FITS)
    assert {m: validate.outputs_of(m) for m in validate.VALIDATED} == {
        "mxint": LAYER_OUTPUTS, "lqer": LAYER_OUTPUTS, "resq": LAYER_OUTPUTS,
        "fp16": ("merged",), "llm-int8": ("merged",), "w8a8": ("merged",)}
    for cfg in (CostConfig(), validate.TEST_CONFIG):
        shapes = validate.at_block(validate.SHAPES, cfg.block)
        assert len(validate.points(cfg, shapes)) == sum(map(len, validate.SHAPES.values()))
        for method, method_shapes in shapes.items():
            fits = {f[:2] for f in fit_shapes(cfg, METHODS[method].design[0])}
            if method in ("fp16", "llm-int8", "w8a8"):  # no rank: the sizes alone differ
                assert not fits & {s[:2] for s in method_shapes}, method
    small = validate.at_block(validate.SMALLEST, validate.TEST_CONFIG.block)
    assert small == {"mxint": ((16, 8, 0),), "lqer": ((16, 8, 4),), "fp16": ((16, 8, 0),),
                     "llm-int8": ((16, 8, 1),), "resq": ((16, 8, 4),), "w8a8": ((16, 8, 0),)}
    # w8a8 is llm-int8-linear without its outlier path
    w8a8 = validate.points(CostConfig(), {"w8a8": small["w8a8"]})[0]
    assert (w8a8[2].name, w8a8[2].kwargs["d_in"]) == ("w8a8-linear", 16)
    assert {p.name for p in w8a8[3]} == {"llm-int8-detector", "llm-int8-quantizer",
                                        "llm-int8-int-path"}
    assert validate.points(validate.TEST_CONFIG, {"lqer": small["lqer"]})[0][2].kwargs["rank"] == 4
    # llm-int8 at 8 outlier columns of 64 x 32 (16 MACs per cycle): two fp16 lanes
    llm = validate.points(CostConfig(), {"llm-int8": ((64, 32, 8),)})[0][2]
    assert llm.kwargs["fp_lanes"] == 2
    with pytest.raises(ValueError, match=r"^shape must not be a fit shape of lqer-linear"):
        validate.points(CostConfig(), {"mxint": [(32, 32, 0)]})
    with pytest.raises(ValueError, match=r"^shape must not be a fit shape of fp16-linear"):
        validate.points(CostConfig(), {"fp16": [(32, 64, 0)]})
    with pytest.raises(ValueError, match=r"^method must name a design .*; got 'llm-int4'$"):
        validate.points(CostConfig(), {"llm-int4": [(64, 32, 1)]})
    with pytest.raises(ValueError, match=r"^shape must not be a fit shape of w8a8-linear"):
        validate.points(CostConfig(), {"w8a8": [(32, 64, 0)]})


# (design, layer output) -> the target it is validated on by default; mxint and lqer share
# lqer-linear's glue fits, so they share a target per output
TEST_TARGETS = {("lqer-linear", "terms"): "lut6", ("lqer-linear", "merged"): "xc7-nodsp",
                ("resq-linear", "terms"): "xc7-nodsp", ("resq-linear", "merged"): "lut6",
                ("fp16-linear", "merged"): "xc7-nodsp", ("llm-int8-linear", "merged"): "lut6",
                ("w8a8-linear", "merged"): "xc7-nodsp"}


def targets_for(method: str, output: str) -> tuple[str, ...]:
    """The targets ``method`` at layer output ``output`` is validated on in this run."""
    chosen = os.environ.get("LQER_VALIDATE_TARGETS", "")
    if chosen not in ("", "all"):
        raise ValueError(f"LQER_VALIDATE_TARGETS must be 'all' or unset; got {chosen!r}")
    if chosen == "all":
        return validate.TARGETS
    return (TEST_TARGETS[(METHODS[method].design[0], output)],)


def test_the_default_targets_cover_both_targets_and_every_design_output():
    pairs = {(METHODS[m].design[0], o) for m in validate.VALIDATED for o in validate.outputs_of(m)}
    assert set(TEST_TARGETS) == pairs
    assert set(TEST_TARGETS.values()) == set(validate.TARGETS)
    for design in ("lqer-linear", "resq-linear"):  # each output on its own target
        assert {TEST_TARGETS[(design, o)] for o in LAYER_OUTPUTS} == set(validate.TARGETS)
    # the generic LUT target's init-dropping flow (hw.synth.targets.DROP_INIT_TOPS)
    assert TEST_TARGETS[("llm-int8-linear", "merged")] == "lut6"


@pytest.mark.synth
@pytest.mark.parametrize("method, output", [(m, o) for m in validate.VALIDATED
                                            for o in validate.outputs_of(m)])
def test_prediction_within_ten_percent_of_synthesis_on_the_smallest_shape(method, output,
                                                                          tmp_path_factory):
    cfg = dataclasses.replace(validate.TEST_CONFIG, layer_output=output)
    shapes = validate.at_block({method: validate.SMALLEST[method]}, cfg.block)
    targets = targets_for(method, output)
    rows = validate.validate(cfg, shapes, targets, tmp_path_factory.mktemp("cost-validate"),
                             cache=ResultCache(session_cache_root(tmp_path_factory)), workers=2)
    assert {(r["method"], r["d_in"], r["d_out"], r["third"], r["target"]) for r in rows} == \
        {(method, *s, t) for s in shapes[method] for t in targets}
    assert {r["merged"] for r in rows} == {int(output == "merged" and
                                           method in ("mxint", "lqer", "resq"))}
    for r in rows:
        assert abs(r["luts_error"]) <= validate.BOUND, r
        assert abs(r["ffs_error"]) <= validate.BOUND, r
