"""hw.cost.validate: the cost model's prediction of lqer-linear (parts synthesised alone,
counted, plus the fitted glue and the register buffers) against the whole datapath
synthesised, within +-10% LUTs and FFs on xc7-nodsp and lut6 at the two smallest
shapes that are not fit shapes (rank 0 and rank > 0), with the smallest parts (block 4;
bench/bench_cost.py holds block 16 at every shape). Slow: marked ``synth``; results are
cached for the session (tests/hw/cost_cache.py)."""

from __future__ import annotations

import pytest

from hw.cost import validate
from hw.cost.glue import fit_shapes
from hw.cost.methods import CostConfig
from hw.synth.cache import ResultCache
from tests.hw.cost_cache import session_cache_root


def test_validation_shapes_are_not_fit_shapes_and_cover_both_paths():
    fits = set(map(tuple, fit_shapes(CostConfig())))
    assert not fits & set(validate.SHAPES)
    assert {s[2] > 0 for s in validate.SMALLEST} == {True, False}
    cfg = validate.TEST_CONFIG
    small = validate.scaled(validate.SMALLEST, cfg.block)
    assert small == ((16, 8, 0), (16, 8, 4)) and not set(map(tuple, fit_shapes(cfg))) & set(small)
    assert validate.points(cfg, small)[1][1].kwargs["rank"] == 4
    with pytest.raises(ValueError, match=r"^shape must not be a fit shape"):
        validate.points(CostConfig(), [(32, 32, 0)])


@pytest.mark.synth
def test_prediction_within_ten_percent_of_synthesis_on_the_smallest_shapes(tmp_path_factory):
    cfg = validate.TEST_CONFIG
    shapes = validate.scaled(validate.SMALLEST, cfg.block)
    rows = validate.validate(cfg, shapes, validate.TARGETS,
                             tmp_path_factory.mktemp("cost-validate"),
                             cache=ResultCache(session_cache_root(tmp_path_factory)), workers=2)
    assert {(r["d_in"], r["d_out"], r["rank"], r["target"]) for r in rows} == \
        {(*s, t) for s in shapes for t in validate.TARGETS}
    for r in rows:
        assert abs(r["luts_error"]) <= validate.BOUND, r
        assert abs(r["ffs_error"]) <= validate.BOUND, r
