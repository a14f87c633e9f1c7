"""hw.cost.validate: the cost model's prediction of lqer-linear (parts synthesised alone,
counted, plus the fitted glue and the register buffers) against the whole datapath
synthesised, within +-10% LUTs and FFs on xc7-nodsp and lut6 at the two smallest
shapes that are not fit shapes (rank 0 and rank > 0). Slow: marked ``synth``; results are
cached for the session (tests/synth/conftest.py's pattern)."""

from __future__ import annotations

import pytest

from hw.cost import validate
from hw.cost.glue import fit_shapes
from hw.cost.methods import CostConfig
from hw.synth.cache import ResultCache


def test_validation_shapes_are_not_fit_shapes_and_cover_both_paths():
    fits = set(map(tuple, fit_shapes(CostConfig())))
    assert not fits & set(validate.SHAPES)
    assert {s[2] > 0 for s in validate.SMALLEST} == {True, False}
    with pytest.raises(ValueError, match=r"^shape must not be a fit shape"):
        validate.points(CostConfig(), [(32, 32, 0)])


@pytest.mark.synth
def test_prediction_within_ten_percent_of_synthesis_on_the_smallest_shapes(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    rows = validate.validate(CostConfig(), validate.SMALLEST, validate.TARGETS,
                             root / "cost-validate", cache=ResultCache(root / "synth"),
                             workers=2)
    assert {(r["d_in"], r["d_out"], r["rank"], r["target"]) for r in rows} == \
        {(*s, t) for s in validate.SMALLEST for t in validate.TARGETS}
    for r in rows:
        assert abs(r["luts_error"]) <= validate.BOUND, r
        assert abs(r["ffs_error"]) <= validate.BOUND, r
