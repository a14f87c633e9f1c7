"""The design registry and `lqer-hw gen`."""

from __future__ import annotations


import pytest

from hw import designs
from hw.designs import DESIGNS, Design, Param, elaborate, emit, get_design, inspect, parse_params

BUILTIN = ("quantize", "dot", "dot-array", "accumulator")


def test_builtin_designs_are_registered():
    for name in BUILTIN:
        assert get_design(name).name == name


def test_unknown_design_names_the_choices():
    with pytest.raises(ValueError) as info:
        get_design("dott")
    message = str(info.value)
    assert message.startswith("design must be one of quantize, dot, dot-array, accumulator")
    assert message.endswith("; got 'dott'")


@pytest.mark.parametrize("name", BUILTIN)
def test_defaults_are_in_range_and_build(name):
    design = get_design(name)
    for p in design.params:
        assert p.check(p.default) == p.default
    component = inspect(name)
    assert component.latency >= 1


def test_parse_params_fills_defaults_and_accepts_any_int_literal():
    design = get_design("dot")
    params = parse_params(design, ["block=8", "x_width=0x6"])
    assert params == {**design.defaults, "block": 8, "x_width": 6}


@pytest.mark.parametrize("assignments, message", [
    (["block=12"], "block must be a power of two in 1..256; got 12"),
    (["block=x"], "block must be a power of two in 1..256; got 'x'"),
    (["x_width=17"], "x_width must be an integer in 2..16; got 17"),
    (["block"], "parameter must be NAME=VALUE; got 'block'"),
    (["=3"], "parameter must be NAME=VALUE; got '=3'"),
    (["lanes=2"], "parameter of dot must be one of block, x_width, w_width, exponent_bits, "
                  "stages; got 'lanes'"),
    (["block=4", "block=8"], "block must be given once; got it twice"),
])
def test_parse_params_errors(assignments, message):
    with pytest.raises(ValueError) as info:
        parse_params(get_design("dot"), assignments)
    assert str(info.value) == message


def test_elaborate_checks_ranges_and_cross_parameter_rules():
    with pytest.raises(ValueError, match=r"^lanes must be an integer in 1\.\.256; got 0$"):
        elaborate("dot-array", lanes=0)
    with pytest.raises(ValueError, match=r"^lanes must be a power of two when out_width > 0"):
        elaborate("accumulator", lanes=3, out_width=8)


def test_emit_is_deterministic_and_names_the_top():
    a = emit(elaborate("dot", block=4), fmt="verilog", name="dot")
    b = emit(elaborate("dot", block=4), fmt="verilog", name="dot")
    assert a == b and "module dot(" in a
    assert "/work" not in a  # no source paths: the text is a function of the design only
    il = emit(elaborate("dot", block=4), fmt="rtlil", name="dot")
    assert "module \\dot" in il
    with pytest.raises(ValueError, match=r'^fmt must be one of "verilog", "rtlil"; got \'vhdl\'$'):
        emit(inspect("dot"), fmt="vhdl", name="dot")


def test_register_rejects_a_second_design_of_the_same_name():
    clash = Design("dot", "another", (), lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        designs.register(clash)
    assert DESIGNS["dot"] is not clash


def test_param_check_rejects_bools_and_non_powers():
    p = Param("block", 16, 1, 64, "doc", power_of_two=True)
    for bad in (True, 3, 128, 0, "4"):
        with pytest.raises(ValueError):
            p.check(bad)
