"""sim.adapters.accumulator: fields, the last-flag checks, the reference and the random
partials."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hw.designs import inspect
from sim.adapters import get_adapter

ADAPTER = get_adapter("accumulator")


@pytest.mark.parametrize("slots", [1, 3])
def test_results_of_equal_exponents_are_exact(slots):
    """With one exponent per result nothing is shifted out: A * 2**E is the exact sum. Item
    i belongs to slot i mod slots; results come out in the order of their last items."""
    dut = inspect("accumulator", lanes=2, guard_bits=2, max_partials=8, slots=slots)
    rng = np.random.default_rng(4)
    lengths = [1, 3, 8, 2]
    per_slot = sum(lengths)
    total = per_slot * slots
    sums = rng.integers(-2 ** 10, 2 ** 10, (total, 2))
    exps = np.zeros((total, 2), int)
    last = np.zeros(total, int)
    results = []  # (index of the last item, item indices) per result
    for k in range(slots):
        idx = np.arange(k, total, slots)
        exps[idx] = np.repeat(rng.integers(-20, 20, (len(lengths), 2)), lengths, axis=0)
        ends = np.cumsum(lengths) - 1
        last[idx[ends]] = 1
        starts = np.concatenate([[0], ends[:-1] + 1])
        results += [(idx[e], idx[s:e + 1]) for s, e in zip(starts, ends)]
    results.sort(key=lambda r: r[0])
    inputs = ADAPTER.validate(dut, {"sums": sums, "exponents": exps, "last": last})
    assert ADAPTER.output_count(dut, inputs) == len(lengths) * slots
    ref = ADAPTER.reference(dut, inputs)
    for r, (_, items) in enumerate(results):
        for lane in range(2):
            want = sum(Fraction(int(sums[i, lane])) * Fraction(2) ** int(exps[i, lane])
                       for i in items)
            got = int(ref["values"][r, lane]) * Fraction(2) ** int(ref["exponents"][r, lane])
            assert got == want


def test_requantizing_accumulator_has_block_outputs():
    dut = inspect("accumulator", lanes=4, out_width=6)
    assert [s.name for s in ADAPTER.output_fields(dut)] == ["exponents", "mantissas"]
    inputs = ADAPTER.validate(dut, ADAPTER.random_inputs(dut, 300, np.random.default_rng(5)))
    ref = ADAPTER.reference(dut, inputs)
    m = ADAPTER.output_count(dut, inputs)
    assert ref["mantissas"].shape == (m, 4) and ref["exponents"].shape == (m,)
    assert np.abs(ref["mantissas"]).max() <= 31


def test_random_partials_include_a_full_length_extreme_result():
    dut = inspect("accumulator", lanes=2, max_partials=16)
    ins = ADAPTER.random_inputs(dut, 32 * dut.slots, np.random.default_rng(6))
    slot0 = slice(0, 16 * dut.slots, dut.slots)  # item i belongs to slot i mod slots
    assert ins["last"][slot0].tolist() == [0] * 15 + [1]
    smax = 2 ** (dut.sum_width - 1) - 1
    assert abs(int(ins["sums"][0, 0])) >= smax and len(np.unique(ins["sums"][slot0])) == 1
    assert ADAPTER.validate(dut, ins)["last"][-1] == 1


@pytest.mark.parametrize("slots, last, message", [
    (1, [0, 1, 0], "last must be 1 on the final partial of every slot (slot 0, item 2); got 0"),
    (2, [1, 1, 1, 0], "last must be 1 on the final partial of every slot (slot 1, item 3); "
                         "got 0"),
    (1, [1, 0, 0, 0, 1], "partials per result must be at most max_partials = 3; got 4"),
    (2, [1, 0, 0, 0, 0, 0, 0, 1, 1, 1],
     "partials per result must be at most max_partials = 3; got 4"),
    (1, [1, 2, 1], "last must be in 0..1; got 2"),
])
def test_bad_last_flags_get_one_line(slots, last, message):
    dut = inspect("accumulator", lanes=1, max_partials=3, slots=slots)
    n = len(last)
    with pytest.raises(ValueError) as info:
        ADAPTER.validate(dut, {"sums": np.ones((n, 1), int), "exponents": np.zeros((n, 1), int),
                               "last": np.array(last)})
    assert str(info.value) == message
