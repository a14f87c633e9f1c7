"""The floating-point units (hw.fp): registry entries, ports, parameter checks, and on
Amaranth's simulator every pipeline depth bit-exact with published latency and full rate.

The RTL's long bit-exact runs are the cocotb benches (tests/hw/test_fp_benches.py)."""

from __future__ import annotations

import numpy as np
import pytest


from hw.designs import get_design, inspect
from hw.fp.common import MAX_STAGES
from hw.fp.designs import FP_UNITS
from hw.pipeline import register_counts
from sim.adapters import ADAPTERS, get_adapter
from sim.amaranth_bench import bench_design
from sim.adapters.fp import FP_ADAPTERS, edge_values

UNITS = tuple(FP_UNITS)
PORTS = {  # design: (input fields and widths, output width)
    "fp16-mul": ({"a": 16, "b": 16}, 32),
    "fp32-add": ({"a": 32, "b": 32}, 32),
    "int32-to-fp32": ({"a": 32}, 32),
    "fp32-mul": ({"a": 32, "b": 32}, 32),
    "fp32-to-fp16": ({"a": 32}, 16),
}


def test_units_are_registered_with_one_stages_parameter():
    assert UNITS == ("fp16-mul", "fp32-add", "int32-to-fp32", "fp32-mul", "fp32-to-fp16")
    for name in UNITS:
        design = get_design(name)
        assert [p.name for p in design.params] == ["stages"]
        levels = FP_UNITS[name][0].LEVELS
        assert design.defaults == {"stages": len(levels)}
        assert design.param("stages").describe() == f"an integer in 1..{MAX_STAGES}"


@pytest.mark.parametrize("name", UNITS)
def test_ports_and_published_facts(name):
    unit = inspect(name)
    fields, out_width = PORTS[name]
    members = unit.i.payload.shape().members
    assert {k: v.width for k, v in members.items()} == fields
    assert unit.o.payload.shape().members["y"].width == out_width
    assert unit.latency == len(unit.levels) == get_design(name).defaults["stages"]
    assert len(unit.delays) == len(unit.levels) and unit.register_counts == [1] * len(unit.levels)
    assert inspect(name, stages=2).latency == 2
    assert members["a"].signed == (name == "int32-to-fp32")


@pytest.mark.parametrize("name", UNITS)
@pytest.mark.parametrize("stages, error, message", [
    (0, ValueError, f"stages must be an integer in 1..{MAX_STAGES}; got 0"),
    (MAX_STAGES + 1, ValueError, f"stages must be an integer in 1..{MAX_STAGES}; "
                                 f"got {MAX_STAGES + 1}"),
    ("2", TypeError, f"stages must be an integer in 1..{MAX_STAGES}; got '2'"),
    (True, TypeError, f"stages must be an integer in 1..{MAX_STAGES}; got True"),
])
def test_bad_stages_name_the_parameter(name, stages, error, message):
    with pytest.raises(error) as info:
        FP_UNITS[name][0](stages=stages)
    assert str(info.value) == message


@pytest.mark.parametrize("name", UNITS)
def test_every_pipeline_depth_is_bit_exact_under_stalls(name):
    """Registers at every placement register_counts makes, and more stages than levels."""
    unit_class = FP_UNITS[name][0]
    levels = len(unit_class.LEVELS)
    for stages in sorted({1, 2, levels // 2 + 1, levels, levels + 2}):
        assert sum(register_counts(levels, stages, list(unit_class.DELAYS))) == stages
        mismatches, got, want, _ = bench_design(name, {"stages": stages}, vectors=300,
                                                seed=stages, valid_probability=0.7,
                                                ready_probability=0.6)
        assert len(got) == len(want) == 300
        assert mismatches == 0, f"stages={stages}"


@pytest.mark.parametrize("name", UNITS)
def test_full_rate_and_published_latency(name):
    """With valid and ready always high, N items take exactly N + latency cycles."""
    unit = inspect(name)
    mismatches, got, want, cycles = bench_design(name, {}, vectors=64, seed=3,
                                                 valid_probability=1.0, ready_probability=1.0)
    assert mismatches == 0 and len(got) == 64
    assert cycles == 64 + unit.latency


def test_the_edge_pairs_cover_every_class():
    """The edge values hold both signed zeros, subnormals, normals, infinities, NaNs."""
    from sw.ieee import BINARY16, BINARY32
    for fmt in (BINARY16, BINARY32):
        e = edge_values(fmt)
        magnitude = e & (fmt.sign_bit - 1)
        field = magnitude >> fmt.fraction_bits
        assert {0, fmt.sign_bit} <= set(e.tolist())                    # signed zeros
        assert ((field == 0) & (magnitude != 0)).sum() >= 2 * 5         # subnormals
        assert {fmt.max_finite, fmt.infinity, fmt.canonical_nan, fmt.infinity + 1} <= set(
            magnitude.tolist())
        assert (magnitude > fmt.infinity).sum() == 2 * 3                # NaNs, both signs


@pytest.mark.parametrize("name", UNITS)
def test_bench_vectors_hold_the_edge_classes_in_full(name):
    adapter = get_adapter(name)
    unit = inspect(name)
    edges = adapter.edge_inputs()
    count = len(edges["a"])
    inputs = adapter.random_inputs(unit, count + 500, np.random.default_rng(1))
    assert len(inputs["a"]) == count + 500
    for key, values in edges.items():
        assert np.array_equal(inputs[key][:count], values)
    adapter.validate(unit, inputs)  # every vector is a legal bit pattern
    small = adapter.random_inputs(unit, 10, np.random.default_rng(1))
    assert len(small["a"]) == 10


def test_adapter_rejects_out_of_range_patterns():
    adapter = get_adapter("fp16-mul")
    with pytest.raises(ValueError) as info:
        adapter.validate(inspect("fp16-mul"), {"a": np.array([1, 65536]), "b": np.array([1, 2])})
    assert str(info.value) == "a must be in 0..65535; got 65536"
    with pytest.raises(ValueError) as info:
        get_adapter("int32-to-fp32").validate(inspect("int32-to-fp32"),
                                              {"a": np.array([2 ** 31])})
    assert str(info.value) == "a must be in -2147483648..2147483647; got 2147483648"


def test_fp32_to_fp16_sweep_covers_every_exponent_and_its_ties():
    adapter = get_adapter("fp32-to-fp16")
    inputs = adapter.random_inputs(inspect("fp32-to-fp16"), 512 * 40, np.random.default_rng(2))
    a = inputs["a"]
    assert set(((a >> 23) & 0xFF).tolist()) == set(range(256))
    # a tie of the binary16 normal rounding: the 13 dropped bits exactly 1 << 12
    normal = ((a >> 23) & 0xFF) > 112
    assert np.any(normal & ((a & 0x1FFF) == 0x1000))


def test_the_units_are_registered_for_simulation():
    for name in UNITS:
        assert ADAPTERS[name] is FP_ADAPTERS[name]

def test_precomputed_exponent_choices_need_three_bases_and_minus():
    from amaranth.hdl import Module, Signal

    from hw.fp.common import exponent_choices
    from sw.ieee import BINARY32
    bases = [Signal(10) for _ in range(3)]
    for args, kwargs in (((bases,), {}), ((bases[:2],), {"minus": Signal(3)})):
        with pytest.raises(ValueError) as info:
            exponent_choices(Module(), *args, BINARY32, "x", **kwargs)
        assert str(info.value) == "three precomputed exponents need minus"


def test_fp32_mul_feeds_the_partial_products_from_copies_of_a():
    """a's normalised significand reaches the 24 rows of partial products through
    A_COPIES registers (the first plain, the others named as replicas so synthesis keeps
    them apart): one register into every row was the unit's ECP5 clock path
    (docs/synth.md)."""
    import re

    from amaranth.back import rtlil

    from hw.fp.fp32_mul import A_COPIES, FP32Mul
    from hw.pipeline import REPLICA_TAG
    text = rtlil.convert(FP32Mul(), name="top")
    level = FP32Mul.LEVELS.index("fine")
    copies = re.findall(rf"wire width 24 \\fp_l{level}_r0_(\w+)\n", text)
    assert len(copies) == A_COPIES + 1  # a's copies and b's significand
    assert sum(c.startswith(f"{REPLICA_TAG}_") for c in copies) == A_COPIES - 1


def test_a_stage_drops_only_carried_names():
    from amaranth.hdl import Module, Signal

    from hw.fp.common import Stage
    from hw.pipeline import Pipeline
    from hw.unused import owned
    m = Module()
    owned(m)
    stage = Stage(Pipeline(m, levels=2, stages=2, valid_in=Signal()))
    flag = Signal()
    stage.carry(flag=flag)
    with pytest.raises(ValueError) as info:
        stage.drop("flag", "other")
    assert str(info.value) == "names must be carried; got ['other']"
    assert stage.drop("flag").flag is flag
    assert not hasattr(stage.close(x=Signal()), "flag")


def test_equal_is_the_equality_of_every_pair_and_needs_one_width():
    """``common.equal`` (the NOR of ``a ^ b``, so Yosys cannot take it from a compare's
    subtraction) is ``a == b`` on every pair of 4-bit values."""
    from amaranth.hdl import Module, Signal

    from hw.fp.common import equal
    from tests.hw.comb import comb_outputs
    m = Module()
    a, b = Signal(4), Signal(4)
    out = equal(m, a, b, "eq")
    pairs = [(x, y) for x in range(16) for y in range(16)]
    assert comb_outputs(m, [a, b], out, pairs) == [int(x == y) for x, y in pairs]
    with pytest.raises(ValueError) as info:
        equal(Module(), Signal(4), Signal(5), "eq")
    assert str(info.value) == "a and b must have one width; got 4 and 5"
