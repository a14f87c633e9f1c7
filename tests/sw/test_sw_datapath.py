"""sw.datapath: the one rule for what the lqer-linear datapath can run, one reason per fault kind."""

import pytest

from sw.datapath import datapath_record, lqer_linear_reason
from sw.qconfig import QuantConfig

OK = dict(d_in=64, d_out=128, rank=32, block=16, a_width=8, lowrank_width=8)


@pytest.mark.parametrize("change, reason", [
    ({"rank": 20}, "rank must be a multiple of block (16); got 20"),
    ({"d_in": 40}, "d_in must be a multiple of block (16); got 40"),
    ({"d_out": 100}, "d_out must be a multiple of block (16); got 100"),
    ({"block": 512, "d_in": 512, "d_out": 512, "rank": 512},
     "block must be a power of two in 1..256; got 512"),
    ({"d_in": 16384}, "d_in must be at most 8192; got 16384"),
    ({"rank": 80}, "rank must be at most min(d_in, d_out) = 64; got 80"),
    ({"flavour": "lqer"}, "flavour must be 'ocp' (the datapath's quantizer); got 'lqer'"),
    ({"rounding": "away"}, "rounding must be 'even' (round half to even); got 'away'"),
    ({"blocking": "paper"}, "blocking must be 'reduction' (A along d_in, B along the rank, the "
                            "axes the datapath reduces); got 'paper'"),
    ({"lowrank_width": 4}, "lowrank_width must equal a_width (8) when rank > 0 (one low-rank dot "
                           "array takes x, then t); got 4"),
])
def test_each_fault_kind_has_its_reason(change, reason):
    assert lqer_linear_reason(**OK) is None
    assert lqer_linear_reason(**{**OK, **change}) == reason


def test_the_main_path_alone_ignores_low_rank_options():
    assert lqer_linear_reason(**{**OK, "rank": 0, "blocking": "paper", "lowrank_width": 4}) is None


def test_record_names_the_first_layer_that_does_not_fit():
    config = QuantConfig(method="lqer", rank=16)
    assert datapath_record(config, {"a": (64, 64), "b": (48, 64)}) == {"lqer-linear": True, "reason": None}
    assert datapath_record(config, {"a": (64, 64), "b": (40, 64), "c": (8, 64)}) == {
        "lqer-linear": False, "reason": "d_out must be a multiple of block (16); got 40 (layer b)"}
    assert datapath_record(QuantConfig(method="mxint", rank=20), {"a": (64, 64)})["lqer-linear"] is True
