"""hw.designs: the design registry, its parameters (from the one MXINT rule), emission."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hw import designs
from hw.designs import DESIGNS, Design, Param, elaborate, emit, get_design, inspect, parse_params

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ("quantizer", "dot-array", "accumulator")


def test_builtin_designs_are_registered():
    for name in BUILTIN:
        assert get_design(name).name == name


def test_unknown_design_names_the_choices():
    with pytest.raises(ValueError) as info:
        get_design("dott")
    message = str(info.value)
    assert message.startswith("design must be one of quantizer, dot-array, accumulator")
    assert message.endswith("; got 'dott'")


@pytest.mark.parametrize("name", BUILTIN)
def test_defaults_are_in_range_and_build(name):
    design = get_design(name)
    for p in design.params:
        assert p.check(p.default) == p.default
    component = inspect(name)
    assert component.latency >= 1


def test_parse_params_fills_defaults_and_accepts_any_int_literal():
    design = get_design("dot-array")
    params = parse_params(design, ["block=8", "a_width=0x6"])
    assert params == {**design.defaults, "block": 8, "a_width": 6}


@pytest.mark.parametrize("assignments, message", [
    (["block=12"], "block must be a power of two in 1..256; got 12"),
    (["block=x"], "block must be a power of two in 1..256; got 'x'"),
    (["a_width=17"], "a_width must be an integer in 2..16; got 17"),
    (["block"], "parameter must be NAME=VALUE; got 'block'"),
    (["=3"], "parameter must be NAME=VALUE; got '=3'"),
    (["lane=2"], "parameter of dot-array must be one of lanes, block, a_width, w_width, "
                 "exponent_bits, stages; got 'lane'"),
    (["block=4", "block=8"], "block must be given once; got it twice"),
])
def test_parse_params_errors(assignments, message):
    with pytest.raises(ValueError) as info:
        parse_params(get_design("dot-array"), assignments)
    assert str(info.value) == message


def test_elaborate_checks_ranges_and_cross_parameter_rules():
    with pytest.raises(ValueError, match=r"^lanes must be an integer in 1\.\.256; got 0$"):
        elaborate("dot-array", lanes=0)
    with pytest.raises(ValueError, match=r"^lanes must be a power of two when out_width > 0"):
        elaborate("accumulator", lanes=3, out_width=8)


def test_emit_is_deterministic_and_names_the_top():
    a = emit(elaborate("dot-array", block=4), fmt="verilog", name="dot")
    b = emit(elaborate("dot-array", block=4), fmt="verilog", name="dot")
    assert a == b and "module dot(" in a
    assert "/work" not in a  # no source paths: the text is a function of the design only
    il = emit(elaborate("dot-array", block=4), fmt="rtlil", name="dot")
    assert "module \\dot" in il
    with pytest.raises(ValueError, match=r'^fmt must be one of "verilog", "rtlil"; got \'vhdl\'$'):
        emit(inspect("dot-array"), fmt="vhdl", name="dot")


def test_register_rejects_a_second_design_of_the_same_name():
    clash = Design("dot-array", "another", (), lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        designs.register(clash)
    assert DESIGNS["dot-array"] is not clash


def test_param_check_rejects_bools_and_non_powers():
    p = Param("block", 16, 1, 64, "doc", power_of_two=True)
    for bad in (True, 3, 128, 0, "4"):
        with pytest.raises(ValueError):
            p.check(bad)


FORMAT_PARAMS = {"block", "exponent_bits", "width", "a_width", "w_width", "lowrank_width"}


def test_format_parameters_follow_the_one_rule_in_sw_mxint():
    """Tighten the rule in sw.mxint alone (before anything else is imported): every
    design's format parameters, the hardware components, QuantConfig and the reference
    follow it."""
    code = """
import sw.mxint as m
m.MAX_BLOCK, m.WIDTH_RANGE, m.EXPONENT_BITS_RANGE = 64, (3, 12), (4, 8)
from hw.designs import all_designs
from hw.dot_array import DotArray
from sw.qconfig import QuantConfig
seen = set()
for d in all_designs():
    for p in d.params:
        if p.name == "block":
            assert (p.minimum, p.maximum, p.power_of_two) == (1, 64, True), (d.name, p)
        elif p.name == "exponent_bits":
            assert (p.minimum, p.maximum) == (4, 8), (d.name, p)
        elif p.name in ("width", "a_width", "w_width", "lowrank_width"):
            assert (p.minimum, p.maximum) == (3, 12), (d.name, p)
        else:
            continue
        seen.add(p.name)
for make in (lambda: m.MXIntFormat(block=128), lambda: m.quantize([1.0], width=13),
             lambda: QuantConfig(method="mxint", block=128),
             lambda: DotArray(a_format=m.MXIntFormat(width=2))):
    try:
        make()
    except ValueError as exc:
        print("refused:", exc)
    else:
        raise AssertionError("accepted")
print(" ".join(sorted(seen)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ["refused: block must be a power of two in 1..64; got 128",
                         "refused: width must be an integer in 3..12; got 13",
                         "refused: block must be a power of two in 1..64; got 128",
                         "refused: width must be an integer in 3..12; got 2"]
    assert set(lines[4].split()) == FORMAT_PARAMS
