"""sw.fp16_linear: the FP16 baseline's order of sums, its bit-pattern form, its errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw import ieee, llm_int8
from sw.fp16_linear import accumulate_columns, fp16_linear, fp16_linear_bits
from sw.ieee import BINARY16, BINARY32

F16 = np.float16


def test_sums_run_in_increasing_column_order_from_plus_zero():
    # terms 2**24, 1, -2**24: (2**24 + 1) rounds to 2**24 (a tie, to even), then 0;
    # any order that adds the 1 last would give 1
    x = np.array([[4096, 1, -4096]], F16)
    w = np.array([[4096, 1, 4096]], F16)
    assert fp16_linear(x, w)[0, 0] == 0.0
    assert accumulate_columns(x, w, columns=[0, 2, 1])[0, 0] == 1.0
    # +0 start: products -0 keep the sum +0 (x + (-0) = x, +0 + -0 = +0)
    y = fp16_linear(np.array([[-0.0, 0.0]], F16), np.array([[1.0, -1.0]], F16))
    assert np.signbit(y[0, 0]) == np.False_


def test_products_are_exact_and_subnormals_kept():
    tiny = F16(2.0 ** -24)                  # the smallest binary16 subnormal
    y = fp16_linear(np.array([[tiny]], F16), np.array([[tiny]], F16))
    assert y[0, 0] == np.float32(2.0 ** -48) and y[0, 0] != 0
    x = np.array([[1.0009765625]], F16)     # 1 + 2**-10, squared exactly: 22 bits
    assert fp16_linear(x, x)[0, 0] == np.float32(1 + 2.0 ** -9 + 2.0 ** -20)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 9), st.integers(1, 5))
def test_is_llm_int8_with_every_column_an_outlier(seed, tokens, d_in, d_out):
    """threshold 0 and the binary16 weights: the int path is 0 and the outlier path is this
    layer (sw.llm_int8, step 7)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((tokens, d_in)) * 4).astype(F16)
    w = (rng.standard_normal((d_out, d_in)) * 0.3).astype(F16)
    weight = llm_int8.quantize_weight(w, keep_fp16=True)
    want = llm_int8.linear(x, weight, threshold=0, outlier_weights="fp16").y
    assert np.array_equal(fp16_linear(x, w).view(np.uint32), want.view(np.uint32))


def test_bit_patterns_with_specials_give_the_canonical_nan():
    x = np.array([[0x7C00, 0x3C00], [0x7C00, 0xFC00], [0x7E01, 0]], np.int64)   # inf; inf, -inf; NaN
    w = np.array([[0x3C00, 0x3C00]], np.int64)
    y = fp16_linear_bits(x, w)
    assert y[:, 0].tolist() == [BINARY32.infinity, BINARY32.canonical_nan, BINARY32.canonical_nan]
    finite = fp16_linear_bits(np.array([[0x3C00, 0x4000]]), np.array([[0x4000, 0x3800]]))
    assert ieee.values_of(finite, BINARY32)[0, 0] == 3.0     # 1*2 + 2*0.5


@pytest.mark.parametrize("x, w, message", [
    (np.zeros((1, 2), np.float32), np.zeros((1, 2), F16), "x16 must be a float16 array; got dtype float32"),
    (np.zeros(2, F16), np.zeros((1, 2), F16), "x16 must be a 2-d array; got shape (2,)"),
    (np.zeros((1, 3), F16), np.zeros((1, 2), F16), "x16 must have 2 columns (w16's d_in); got shape (1, 3)"),
])
def test_bad_operands_get_one_line(x, w, message):
    with pytest.raises(ValueError) as info:
        fp16_linear(x, w)
    assert str(info.value) == message


def test_bit_pattern_errors():
    with pytest.raises(ValueError, match=r"^x_bits must be binary16 bit patterns in 0\.\.65535$"):
        fp16_linear_bits(np.array([[1 << 16]]), np.array([[0]]))
    assert BINARY16.width == 16
