"""Exact block arithmetic and the cross-block accumulator rule, against exact rationals."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw.blockmath import (accumulate, accumulate_exact, accumulator_width, block_dot,
                          block_matmul_partials, dot_sum_width, rshift_round)
from sw.mxint import quantize, quantize_exact


def exact(v, e):
    return Fraction(int(v)) * Fraction(2) ** int(e)


def test_block_dot_is_exact():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 40)) * 100
    w = rng.standard_normal((5, 40))
    qx, qw = quantize(x, width=8, block=16), quantize(w, width=4, block=16)
    sums, lsb = block_dot(qx, qw)
    assert sums.shape == lsb.shape == (5, 3)
    xv, wv = qx.dequantize(), qw.dequantize()
    for r in range(5):
        for b in range(3):
            sl = slice(16 * b, 16 * (b + 1))
            want = sum(Fraction(float(a)) * Fraction(float(c)) for a, c in zip(xv[r, sl], wv[r, sl]))
            assert exact(sums[r, b], lsb[r, b]) == want
    assert np.abs(sums).max() < 2 ** (dot_sum_width(16, 8, 4) - 1)


def test_dot_sum_width_bound_is_reached_but_never_exceeded():
    # all mantissas at the symmetric extreme: 16 * 127 * 7 = 14224 < 2**14 = 2**(15-1)
    assert dot_sum_width(16, 8, 4) == 15
    assert 16 * 127 * 7 < 2 ** 14 and 16 * 127 * 7 > 2 ** 13


def test_block_matmul_partials_match_block_dot():
    rng = np.random.default_rng(4)
    qx = quantize(rng.standard_normal((3, 32)), width=8, block=16)
    qw = quantize(rng.standard_normal((4, 32)), width=4, block=16)
    sums, lsb = block_matmul_partials(qx, qw)
    for t in range(3):
        for o in range(4):
            one_x = quantize(qx.dequantize()[t], width=8, block=16)
            one_w = quantize(qw.dequantize()[o], width=4, block=16)
            s, p = block_dot(one_x, one_w)
            np.testing.assert_array_equal(sums[t, o], s)
            np.testing.assert_array_equal(lsb[t, o], p)


@given(st.integers(-2 ** 40, 2 ** 40), st.integers(0, 70), st.sampled_from(["floor", "even"]))
def test_rshift_round_against_fractions(v, r, rounding):
    got = int(rshift_round(np.int64(v), np.int64(r), rounding))
    q = Fraction(v, 2 ** r)
    if rounding == "floor":
        assert got == q.__floor__()
    else:
        assert got == round(q)  # Python rounds Fractions half to even


partials = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-(2 ** 14) + 1, 2 ** 14 - 1), min_size=n, max_size=n),
    st.lists(st.integers(-60, 60), min_size=n, max_size=n)))


@settings(max_examples=400, deadline=None)
@given(partials, st.integers(0, 20), st.sampled_from(["floor", "even"]))
def test_accumulator_error_bound_width_and_exactness(pe, guard_bits, rounding):
    sums, exps = (np.array(v, dtype=np.int64) for v in pe)
    acc, lsb = accumulate(sums, exps, guard_bits=guard_bits, rounding=rounding)
    truth = sum(exact(s, e) for s, e in zip(sums, exps))
    got = exact(acc, lsb)
    e_final = int(exps.max())
    assert lsb == e_final - guard_bits
    n = len(sums)
    ulp = Fraction(2) ** (e_final - guard_bits)
    bound = (n - 1) * ulp * (Fraction(1, 2) if rounding == "even" else 1)
    assert abs(got - truth) <= bound
    # never overflows the published register width
    assert abs(int(acc)) < 2 ** (accumulator_width(15, guard_bits, n) - 1)
    # exact whenever the non-zero partials span at most guard_bits
    nz = exps[sums != 0]
    if nz.size == 0 or e_final - nz.min() <= guard_bits:
        assert got == truth


@settings(max_examples=200, deadline=None)
@given(partials)
def test_exact_mode(pe):
    sums, exps = (np.array(v, dtype=np.int64) for v in pe)
    acc, lsb = accumulate(sums, exps, guard_bits=None)
    assert exact(acc, lsb) == sum(exact(s, e) for s, e in zip(sums, exps))


def test_accumulate_is_vectorised_over_leading_axes():
    rng = np.random.default_rng(5)
    sums = rng.integers(-1000, 1000, (3, 4, 6))
    exps = rng.integers(-10, 10, (3, 4, 6))
    acc, lsb = accumulate(sums, exps, guard_bits=4)
    for i in range(3):
        for j in range(4):
            a, l = accumulate(sums[i, j], exps[i, j], guard_bits=4)
            assert (acc[i, j], lsb[i, j]) == (a, l)


def test_floor_rule_by_hand():
    # (5, 0) then (3, 2), G = 1: A = 10, E = 0 -> E' = 2: A = floor(10/4) + (6 << 0) = 2 + 6 = 8
    acc, lsb = accumulate(np.array([5, 3]), np.array([0, 2]), guard_bits=1, rounding="floor")
    assert (int(acc), int(lsb)) == (8, 1)           # 8 * 2**1 = 16 (true 17)
    acc, lsb = accumulate(np.array([5, 3]), np.array([0, 2]), guard_bits=1, rounding="even")
    assert (int(acc), int(lsb)) == (8, 1)           # 10/4 = 2.5 ties to 2
    acc, lsb = accumulate(np.array([7, 3]), np.array([0, 2]), guard_bits=1, rounding="even")
    assert (int(acc), int(lsb)) == (10, 1)          # 14/4 = 3.5 ties to 4; 4 + 6


def test_requantize_accumulator_output():
    # The accumulator result requantizes through the same MXINT rule as any value.
    acc = np.array([1000, -3, 0, 77])
    lsb = np.array([-4, 2, 0, -1])
    q = quantize_exact(acc, lsb, width=8, block=4)
    values = np.array([float(exact(a, l)) for a, l in zip(acc, lsb)])
    ref = quantize(values, width=8, block=4)
    np.testing.assert_array_equal(q.mantissas, ref.mantissas)
    np.testing.assert_array_equal(q.exponents, ref.exponents)


@pytest.mark.parametrize("kwargs, message", [
    (dict(guard_bits=-1), "guard_bits must be an integer in 0..32 or None (exact); got -1"),
    (dict(rounding="up"), "rounding must be one of \"floor\", \"even\"; got 'up'"),
])
def test_accumulate_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        accumulate(np.array([1]), np.array([0]), **kwargs)
    assert str(info.value) == message


def test_exact_mode_beyond_63_bits():
    acc, lsb = accumulate_exact(np.array([1, -3, 5]), np.array([0, 80, -40]))
    assert exact(acc, lsb) == 1 - 3 * Fraction(2) ** 80 + 5 * Fraction(2) ** -40
