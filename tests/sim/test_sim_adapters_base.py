"""sim.adapters.base: the shared input check (per-field leading counts and fixed rows),
the registry, and the random-operand helpers."""

from __future__ import annotations

import numpy as np
import pytest

from sw.mxint import MXIntFormat
from sim.adapters import ADAPTERS, get_adapter
from sim.adapters.base import (Adapter, Bounds, CheckedInputs, FieldSpec, edge_blocks,
                               mx_blocks, random_exponents, random_mantissas, register_adapter)


class Toy(Adapter):
    """T tokens of (3,) values, a fixed (2, 3) matrix, per-token flags; and a field that
    exists only when ``dut`` says so."""

    design = "toy"
    counts = {"T": "token"}
    inputs = (FieldSpec("x", "x", ""), FieldSpec("w", "w", ""), FieldSpec("flag", "flag", ""),
              FieldSpec("extra", "extra", ""))

    def input_bounds(self, dut):
        bounds = {"x": Bounds(("T", 3), -4, 3), "w": Bounds((2, 3), -1, 1),
                  "flag": Bounds(("T",), 0, 1)}
        if dut == "with-extra":
            bounds["extra"] = Bounds(("T", 2, 2), 0, 9)
        return bounds

    def extra_checks(self, dut, inputs):
        if inputs["flag"].sum() > 2:
            raise ValueError("flag must be set at most twice; got 3")


def _good(tokens=4):
    return {"x": np.zeros((tokens, 3), np.int32), "w": np.ones((2, 3), np.int8),
            "flag": np.zeros(tokens, bool)}


def test_valid_inputs_come_back_as_int64_checked_inputs():
    checked = Toy().validate(None, {**_good(), "unrelated": np.zeros(1)})
    assert isinstance(checked, CheckedInputs) and checked.design == "toy"
    assert checked.counts == {"T": 4}
    assert set(checked) == {"x", "w", "flag"}
    assert all(a.dtype == np.int64 for a in checked.values())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("w"), "inputs must contain field 'w' (fields: x, w, flag)"),
    (lambda d: d.update(x=np.zeros((4, 2), int)),
     "x must have shape (T, 3) with T = 4; got (4, 2)"),
    (lambda d: d.update(x=np.zeros(4, int)), "x must have shape (T, 3) with T = 4; got (4,)"),
    (lambda d: d.update(x=np.zeros((), int)), "x must have shape (T, 3); got ()"),
    (lambda d: d.update(w=np.zeros((3, 3), int)), "w must have shape (2, 3); got (3, 3)"),
    (lambda d: d.update(flag=np.zeros(5, int)), "flag must have shape (T,) with T = 4; got (5,)"),
    (lambda d: d.update(w=np.full((2, 3), 0.5)), "w must be an integer array; got dtype float64"),
    (lambda d: d["x"].__setitem__((1, 2), -5), "x must be in -4..3; got -5"),
    (lambda d: d.update(x=np.zeros((0, 3), int), flag=np.zeros(0, int)),
     "inputs must hold at least one token; got T = 0"),
    (lambda d: d.update(flag=np.ones(4, int)), "flag must be set at most twice; got 3"),
])
def test_bad_inputs_get_one_line_naming_the_field(mutate, message):
    inputs = _good()
    mutate(inputs)
    with pytest.raises(ValueError) as info:
        Toy().validate(None, inputs)
    assert str(info.value) == message


def test_fields_that_the_component_lacks_are_neither_needed_nor_listed():
    toy = Toy()
    assert [s.name for s in toy.input_fields(None)] == ["x", "w", "flag"]
    assert [s.name for s in toy.input_fields("with-extra")] == ["x", "w", "flag", "extra"]
    with pytest.raises(ValueError, match=r"^inputs must contain field 'extra' \(fields: x, w, "
                                         r"flag, extra\)$"):
        toy.validate("with-extra", _good())
    checked = toy.validate("with-extra", {**_good(), "extra": np.zeros((4, 2, 2), int)})
    assert set(checked) == {"x", "w", "flag", "extra"}


def test_the_default_stream_is_flat_in_payload_keys():
    class Flat(Toy):
        inputs = (FieldSpec("x", "p.x", ""), FieldSpec("flag", "p.flag", ""))

        def input_bounds(self, dut):
            return {"x": Bounds(("T", 3), -4, 3), "flag": Bounds(("T",), 0, 1)}

    flat = Flat()
    inputs = _good(3)
    inputs["x"][2] = 3
    stream = flat.input_stream(None, flat.validate(None, inputs))
    assert not stream.tiled and len(stream) == 3 and set(stream.tokens) == {"p.x", "p.flag"}
    assert stream.tokens["p.x"][2].tolist() == [3, 3, 3]


def test_registry_holds_each_design_once():
    # every simulated design (the parts of llm-int8-linear are registered for synthesis only)
    simulated = {"quantizer", "dot-array", "accumulator", "lqer-linear", "resq-linear",
                 "fp16-mul", "fp32-add", "int32-to-fp32", "fp32-mul", "fp32-to-fp16",
                 "fp16-linear", "llm-int8-linear", "w8a8-linear"}
    for name in simulated:
        get_adapter(name)
    assert set(ADAPTERS) == simulated
    assert all(get_adapter(name).design == name for name in ADAPTERS)
    with pytest.raises(ValueError) as info:
        register_adapter(type(get_adapter("quantizer"))())
    assert str(info.value) == "design 'quantizer' already has an adapter"
    with pytest.raises(ValueError) as info:
        get_adapter("dot")
    assert str(info.value) == ("design must be one of " + ", ".join(ADAPTERS)
                               + " for simulation; got 'dot'")


def test_every_registered_adapter_documents_its_fields():
    for adapter in ADAPTERS.values():
        assert adapter.inputs and adapter.outputs
        assert all(spec.doc.startswith("(") for spec in adapter.inputs + adapter.outputs)


@pytest.mark.parametrize("width", [2, 4, 8])
def test_random_mantissas_are_symmetric_varied_and_sometimes_zero(width):
    m = random_mantissas(np.random.default_rng(width), (4000, 16), width)
    q = 2 ** (width - 1) - 1
    assert m.min() >= -q and m.max() <= q  # never the unused most negative code
    assert m.min() == -q and m.max() == q
    assert 0.05 < np.mean(m == 0) < (0.8 if width == 2 else 0.6)
    assert abs(np.mean(m < 0) - np.mean(m > 0)) < 0.03
    block_max = np.abs(m).max(axis=1)
    assert len(np.unique(block_max)) > min(q, 3)  # blocks at several magnitude scales


def test_random_exponents_hit_both_extremes():
    fmt = MXIntFormat(width=4, block=8, exponent_bits=4)
    e = random_exponents(np.random.default_rng(0), (2000,), fmt)
    lo, hi = fmt.exponent_range
    assert e.min() == lo and e.max() == hi
    assert np.mean(e == lo) > 0.04 and np.mean(e == hi) > 0.04


def test_edge_blocks_and_mx_blocks():
    fmt = MXIntFormat(width=4, block=4, exponent_bits=3)
    m, e = edge_blocks(7, fmt)
    assert m.tolist() == [[0, 0, 0, 0], [7, 7, 7, 7], [-7, -7, -7, -7], [7, -7, 7, -7],
                          [0, 0, 0, 7], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert e.tolist() == [-3, 3, 0, -3, 3, 0, -3]
    q = mx_blocks(m, e, fmt)
    assert q.dequantize()[1].tolist() == [7 * 2.0 ** (3 - 2)] * 4
    assert edge_blocks(0, fmt)[0].shape == (0, 4)
