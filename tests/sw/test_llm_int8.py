"""The LLM.int8() NumPy reference: hand-worked vectors, properties, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from sw import llm_int8 as L

F32 = np.float32
INV127 = F32(1 / 127)

# every positive finite binary16 value, as float64
ALL_F16 = np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)


def f32(x) -> np.float32:
    return F32(x)


def r_of(s) -> np.float32:
    """fl32(fl32(1/s) * 127): the quantization factor of a row with absmax s."""
    return F32(F32(F32(1) / F32(s)) * F32(127))


def weight_127(rows):
    """A quantized weight whose every row has absmax 127: the codes are the entries themselves."""
    w = np.array(rows, dtype=np.float64)
    q = L.quantize_weight(w)
    assert np.all(q.absmax == 127)
    return q


# ---------------------------------------------------------------- hand-worked vectors


def test_tie_at_the_rounding_point_goes_to_even():
    # s = 127 gives r = fl32(fl32(1/127) * 127) = 1 exactly: the codes are round_half_even(x)
    assert r_of(127) == 1
    x = np.array([[127, 62.5, -62.5, 63.5, 0.5, 1.5, -2.5, 126.5]], dtype=np.float16)
    q = L.quantize_rows(x)
    assert q.codes.tolist() == [[127, 62, -62, 64, 0, 2, -2, 126]]
    assert q.absmax.tolist() == [127.0]


def test_reciprocal_rule_decides_a_tie_as_bitsandbytes_does():
    # s = 1.01171875, x = s / 2: exactly 63.5. The reciprocal rule gives fl32(x * r) = 63.499996 -> 63;
    # a true division fl32(127 / s) would give exactly 63.5 -> 64.
    s, x = 1.01171875, 0.505859375
    assert F32(x) * r_of(s) == F32(63.499996)
    assert np.rint(F32(x) * (F32(127) / F32(s))) == 64
    q = L.quantize_rows(np.array([[s, x, -x]], dtype=np.float16))
    assert q.codes.tolist() == [[127, 63, -63]]


def test_all_zero_row_quantizes_to_zero_and_outputs_the_bias():
    w = weight_127([[127, -64, 3, 1], [5, 127, 0, -127]])
    x = np.zeros((2, 4))
    x[1] = [2, 0, 0, 0]
    out = L.linear(x, w, bias=[0.25, -1.5])
    assert out.x.codes[0].tolist() == [0, 0, 0, 0] and out.x.absmax[0] == 0
    assert out.y[0].tolist() == [0.25, -1.5]
    # row 1: s = 2, code 127 in column 0; C = 127 * [127, 5]
    c = np.array([127 * 127, 127 * 5], dtype=F32)
    expected = (c * F32(2)) * F32(127 / 16129) + F32([0.25, -1.5])
    assert out.y[1].tolist() == expected.astype(F32).tolist()


def test_row_whose_every_entry_is_an_outlier_goes_through_the_outlier_path_only():
    w = weight_127([[127, -64, 3, 1], [5, 127, 0, -127]])
    x = np.array([[7.0, -8.0, 6.5, 9.0]])
    out = L.linear(x, w, bias=[1.0, 0.0], threshold=6.0)
    assert out.x.codes.tolist() == [[0, 0, 0, 0]] and out.x.absmax.tolist() == [0.0]
    assert out.x.outlier_columns.tolist() == [[True, True, True, True]]
    # the dequantized weights are the integers (absmax 127; binary16 absorbs the fl32(1/127) error)
    assert w.dequantized16().tolist() == [[127, -64, 3, 1], [5, 127, 0, -127]]
    # y = (0 + b) + sequential binary32 sum, all exact here
    assert out.y.tolist() == [[1 + 7 * 127 + 8 * 64 + 6.5 * 3 + 9 * 1, 7 * 5 - 8 * 127 - 9 * 127]]


def test_absmax_exactly_at_the_threshold_is_an_outlier():
    just_below = float(np.nextafter(np.float16(6), np.float16(0)))  # 5.99609375
    x = np.array([[6.0, 3.0, -1.5, 0.0], [just_below, 3.0, 1.0, 0.0]], dtype=np.float16)
    q = L.quantize_rows(x, threshold=6.0, group=1)
    assert q.outlier_columns.tolist() == [[True, False, False, False], [False] * 4]
    # row 0: 6.0 leaves the absmax; s = 3, r = fl32(fl32(1/3) * 127) = 42.333336
    assert q.absmax.tolist() == [3.0, just_below]
    assert r_of(3) == F32(42.333336)
    assert F32(-1.5) * r_of(3) == F32(-63.500004)
    assert q.codes[0].tolist() == [0, 127, -64, 0]
    r = r_of(just_below)
    assert q.codes[1].tolist() == [127, int(np.rint(F32(3) * r)), int(np.rint(F32(1) * r)), 0] == [127, 64, 21, 0]


def test_fp16_subnormal_inputs():
    tiny = 2.0 ** -24  # the smallest binary16 subnormal
    x = np.array([[tiny, 3 * tiny, -2 * tiny, 0.0]])
    q = L.quantize_rows(L.to_binary16(x))
    assert q.absmax.tolist() == [3 * tiny]
    # 1/(3 * 2^-24) = 5592405.33 -> fl32 5592405.5; * 127 -> fl32 710235520
    r = r_of(3 * tiny)
    assert r == F32(710235520)
    assert q.codes.tolist() == [[42, 127, -85, 0]]
    assert [int(np.rint(F32(v) * r)) for v in (tiny, -2 * tiny)] == [42, -85]
    # binary32 inputs round to binary16 first, subnormals included; half the smallest is a tie -> 0
    x16 = L.to_binary16(np.array([[1e-7, tiny / 2, tiny * 0.75, -1.5 * tiny]], dtype=np.float32))
    assert x16.astype(np.float64).tolist() == [[2 * tiny, 0.0, tiny, -2 * tiny]]


def test_subnormal_threshold_and_outlier_products_are_exact():
    tiny = 2.0 ** -24
    w = weight_127([[127, -3]])
    out = L.linear(np.array([[5 * tiny, tiny]]), w, threshold=4 * tiny)
    assert out.x.outlier_columns.tolist() == [[True, False]]
    assert out.x.absmax.tolist() == [tiny] and out.x.codes.tolist() == [[0, 127]]
    c = F32(127 * -3)
    assert out.y.tolist() == [[float(F32(F32(F32(c * F32(tiny)) * F32(127 / 16129)) + F32(5 * tiny * 127)))]]


def test_column_outlier_in_one_token_of_the_group_only():
    w = weight_127([[127, 2, -1], [1, -127, 4]])
    x = np.array([[1.0, 7.0, 2.0], [1.0, 2.0, 4.0], [-3.0, 0.5, 1.0]])
    whole = L.linear(x, w, threshold=6.0)  # one group of three tokens
    assert whole.x.outlier_columns.tolist() == [[False, True, False]]
    # column 1 is zeroed in every token, but its sub-threshold entries still set that token's absmax
    assert whole.x.absmax.tolist() == [2.0, 4.0, 3.0]
    assert whole.x.codes[:, 1].tolist() == [0, 0, 0]
    assert whole.x.codes[1].tolist() == [int(np.rint(F32(1) * r_of(4))), 0, 127] == [32, 0, 127]
    # and every token takes column 1 through the outlier path
    wd = w.dequantized16().astype(F32)
    c1 = whole.x.codes[1].astype(np.int64) @ w.codes.astype(np.int64).T
    y_int = (c1.astype(F32) * F32(4)) * F32(127 / 16129)
    assert whole.y[1].tolist() == (y_int + F32(2) * wd[:, 1]).astype(F32).tolist()
    # per-token groups: only token 0 has the outlier column
    single = L.linear(x, w, threshold=6.0, group=1)
    assert single.x.outlier_columns.tolist() == [[False, True, False], [False] * 3, [False] * 3]
    assert single.x.codes[1].tolist() == [32, 64, 127]
    np.testing.assert_array_equal(single.y[0], whole.y[0])


def test_groups_of_t_tokens_with_a_short_tail():
    x = np.zeros((5, 3))
    x[3, 2] = 9.0
    x[:, 0] = 1.0
    q = L.quantize_rows(L.to_binary16(x), threshold=6.0, group=2)
    assert q.outlier_columns.tolist() == [[False] * 3, [False, False, True], [False] * 3]
    assert q.token_outliers()[:, 2].tolist() == [False, False, True, True, False]
    assert L.group_ids(5, 2).tolist() == [0, 0, 1, 1, 2]


def test_weights_quantize_like_activations_without_outliers():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [100.0, 8.0, -7.0]])
    q = L.quantize_weight(w)
    assert q.absmax.tolist() == [1.0, 0.0, 100.0]
    assert q.codes[0].tolist() == [64, -127, 32]  # 63.5 -> 64, 31.75 -> 32
    assert q.codes[1].tolist() == [0, 0, 0]
    r = r_of(100)
    assert q.codes[2].tolist() == [127, int(np.rint(F32(8) * r)), int(np.rint(F32(-7) * r))]
    assert q.int_scale().tolist() == [float(F32(1 / 16129)), 0.0, float(F32(100 / 16129))]
    wd = q.dequantized16()
    assert wd.dtype == np.float16
    assert wd[2].tolist() == [float(np.float16(F32(F32(c * F32(100)) * INV127))) for c in q.codes[2]]


def test_outlier_weights_fp16_use_the_original_binary16_weights():
    w = np.array([[1.0, 0.3, -0.7]])
    q = L.quantize_weight(w, keep_fp16=True)
    x = np.array([[10.0, 0.0, 0.0]])
    assert L.linear(x, q, outlier_weights="fp16").y.tolist() == [[10.0]]
    wd = float(q.dequantized16()[0, 0])
    assert L.linear(x, q, outlier_weights="int8").y.tolist() == [[float(F32(10 * wd))]]


def test_outlier_sum_is_sequential_in_increasing_column_order():
    # products 2^-8, -130048, 130048: in column order the 2^-8 is absorbed by -130048 and the result
    # is 0; summing the two large terms first (pairwise, or BLAS blocking) would keep 2^-8
    w = weight_127([[1, 127, 127]])
    assert w.dequantized16().tolist() == [[1, 127, 127]]
    x = np.array([[2.0 ** -8, -1024.0, 1024.0]])
    out = L.linear(x, w, threshold=2.0 ** -9)
    assert out.x.outlier_columns.all()
    assert out.y.tolist() == [[0.0]]
    assert F32(F32(-130048) + F32(130048)) + F32(2.0 ** -8) == 2.0 ** -8


def test_merge_adds_the_bias_to_the_int_path_before_the_outlier_path():
    # y_int = 127, b = 2^24, outlier product 9 * 127: (y_int + b) + acc = 16778488,
    # (y_int + acc) + b would be 16778486
    w = weight_127([[127, 127]])
    x = np.array([[1.0, 9.0]])  # column 1 is an outlier; column 0 has s = 1, code 127
    out = L.linear(x, w, bias=[2.0 ** 24], threshold=6.0)
    y_int = F32(F32(F32(127 * 127) * F32(1)) * F32(127 / 16129))
    assert y_int == 127
    assert out.y.tolist() == [[16778488.0]]
    assert F32(F32(y_int + F32(9 * 127)) + F32(2.0 ** 24)) == 16778486.0


def test_non_finite_activations_name_the_layer():
    w = L.quantize_weight(np.ones((2, 3)))
    x = np.ones((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^activations of layer blk\.0\.fc1 must be finite in binary16 "
                                         r"\(\|x\| <= 65504\); got nan at token 1, feature 2$"):
        L.linear(x, w, layer="blk.0.fc1")
    x = np.ones((2, 3), dtype=np.float32)
    x[0, 1] = 70000.0  # finite in binary32, infinite in binary16
    with pytest.raises(ValueError, match=r"^activations of layer q must be finite in binary16 "
                                         r"\(\|x\| <= 65504\); got 70000\.0 at token 0, feature 1$"):
        L.linear(x, w, layer="q")
    with pytest.raises(ValueError, match="^weights of layer k must be finite in binary16"):
        L.quantize_weight(np.array([[1.0, np.inf]]), layer="k")


@pytest.mark.parametrize("kwargs,message", [
    (dict(threshold=-1.0), "threshold must be a number >= 0 (inf: no outliers); got -1.0"),
    (dict(threshold=math.nan), "threshold must be a number >= 0 (inf: no outliers); got nan"),
    (dict(threshold="6"), "threshold must be a number >= 0 (inf: no outliers); got '6'"),
    (dict(group=0), "group must be an integer >= 1 (tokens per detection group) or None; got 0"),
    (dict(group=2.0), "group must be an integer >= 1 (tokens per detection group) or None; got 2.0"),
    (dict(outlier_weights="fp32"), "outlier_weights must be one of int8, fp16; got 'fp32'"),
    (dict(outlier_weights="fp16"), "outlier_weights 'fp16' needs a weight quantized with keep_fp16=True"),
])
def test_bad_parameters_are_one_line_errors(kwargs, message):
    w = L.quantize_weight(np.ones((2, 3)))
    with pytest.raises(ValueError) as info:
        L.linear(np.ones((1, 3)), w, **kwargs)
    assert str(info.value) == message


def test_bad_shapes():
    w = L.quantize_weight(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^activations of layer a must have 3 features; got shape \(1, 4\)$"):
        L.linear(np.ones((1, 4)), w, layer="a")
    with pytest.raises(ValueError, match=r"^activations must be a 2-d array; got shape \(3,\)$"):
        L.linear(np.ones(3), w)
    with pytest.raises(ValueError, match=r"^bias must have shape \(2,\); got \(3,\)$"):
        L.linear(np.ones((1, 3)), w, bias=np.ones(3))
    with pytest.raises(ValueError, match="^bias must be finite in binary32; got a non-finite value$"):
        L.linear(np.ones((1, 3)), w, bias=[1.0, np.inf])


@pytest.mark.parametrize("t", [0.0, 2.0 ** -30, 2.0 ** -24, 1e-5, 0.1, 5.9, 6.0, 6.001, 65504.0, 65505.0, 1e9,
                               math.inf])
def test_threshold_binary16_is_the_same_test_on_binary16_magnitudes(t):
    t16 = float(L.threshold_binary16(t))
    mags = np.concatenate([[0.0], ALL_F16])
    np.testing.assert_array_equal(mags >= t, mags >= t16)
    assert t16 >= t


# ---------------------------------------------------------------- properties

f16 = st.floats(min_value=-300, max_value=300, width=16, allow_nan=False, allow_infinity=False)


@st.composite
def layers(draw, max_tokens=6, max_in=24, max_out=5):
    tokens = draw(st.integers(1, max_tokens))
    d_in = draw(st.integers(1, max_in))
    d_out = draw(st.integers(1, max_out))
    x = draw(hnp.arrays(np.float16, (tokens, d_in), elements=f16))
    w = draw(hnp.arrays(np.float16, (d_out, d_in), elements=st.floats(-4, 4, width=16)))
    b = draw(st.none() | hnp.arrays(np.float32, (d_out,), elements=st.floats(-8, 8, width=32)))
    return x, w, b


def vectorwise_int8(x16, w, b):
    """Plain vector-wise int8 (no outliers), restated from the paper's formula with scalar binary32 steps."""
    def quant(row):
        s = float(np.max(np.abs(row.astype(np.float64)), initial=0.0))
        if s == 0:
            return [0] * row.size, F32(0)
        r = r_of(s)
        return [int(np.rint(F32(v) * r)) for v in row], F32(s)

    wq = [quant(row) for row in w.astype(np.float16)]
    y = np.empty((x16.shape[0], w.shape[0]), dtype=F32)
    for t, row in enumerate(x16):
        qx, sx = quant(row)
        for i, (qw, sw) in enumerate(wq):
            c = sum(a * b_ for a, b_ in zip(qx, qw))
            v = F32(F32(F32(c) * sx) * F32(float(sw) / 16129))
            y[t, i] = v if b is None else F32(v + F32(b[i]))
    return y


@settings(max_examples=150, deadline=None)
@given(layers())
def test_infinite_threshold_is_plain_vectorwise_int8(layer):
    x, w, b = layer
    q = L.quantize_weight(w)
    out = L.linear(x, q, b, threshold=math.inf)
    assert not out.x.outlier_columns.any()
    expected = vectorwise_int8(x, w, b)
    np.testing.assert_array_equal(out.y.view(np.uint32), (expected + F32(0)).view(np.uint32))
    np.testing.assert_array_equal(L.w8a8_linear(x, q, b).y, out.y)
    # a finite threshold above every magnitude finds nothing and changes nothing
    above = float(np.abs(x.astype(np.float64)).max()) + 1
    np.testing.assert_array_equal(L.linear(x, q, b, threshold=above).y, out.y)


@settings(max_examples=150, deadline=None)
@given(layers(), st.sampled_from(["int8", "fp16"]))
def test_zero_threshold_is_the_fp16_gemm_of_the_outlier_weights(layer, outlier_weights):
    x, w, b = layer
    q = L.quantize_weight(w, keep_fp16=True)
    out = L.linear(x, q, b, threshold=0.0, outlier_weights=outlier_weights)
    assert out.x.outlier_columns.all() and not out.x.codes.any()
    wo = (q.dequantized16() if outlier_weights == "int8" else w).astype(np.float64)
    x64 = x.astype(np.float64)
    for t in range(x.shape[0]):
        for i in range(w.shape[0]):
            acc = F32(0)
            for j in range(x.shape[1]):  # sequential binary32 sum of exact products
                acc = F32(acc + F32(x64[t, j] * wo[i, j]))
            base = F32(0) if b is None else F32(b[i])
            assert out.y[t, i] == F32(base + acc)
    # and the fp16 x fp16 -> fp32 GEMM is within the summation bound of the exact product
    exact = x64 @ wo.T + (0 if b is None else b.astype(np.float64))
    n = x.shape[1] + 2
    gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)
    slack = gamma * (np.abs(x64) @ np.abs(wo).T + (0 if b is None else np.abs(b.astype(np.float64))))
    assert np.all(np.abs(out.y - exact) <= slack)


@settings(max_examples=200, deadline=None)
@given(layers(), st.sampled_from([0.5, 1.0, 6.0, 20.0, math.inf]), st.sampled_from([None, 1, 2, 4]))
def test_error_against_the_float_layer_is_within_the_absmax_bound(layer, threshold, group):
    x, w, b = layer
    q = L.quantize_weight(w)
    out = L.linear(x, q, b, threshold=threshold, group=group)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    exact = x64 @ w64.T + (0 if b is None else b.astype(np.float64))
    s_x = out.x.absmax.astype(np.float64)[:, None]   # (tokens, 1)
    s_w = q.absmax.astype(np.float64)[None, :]       # (1, d_out)
    e_x = s_x * (1 / 254 + 2.0 ** -21)                # half a step, plus binary32 rounding of x * r
    e_w = s_w * (1 / 254 + 2.0 ** -21)
    mask = out.x.token_outliers()
    ax = np.abs(x64)
    in_int = np.where(mask, 0.0, ax)
    bound = in_int @ np.ones_like(w64).T * e_w + (~mask).astype(float) @ np.ones_like(w64).T * e_x * s_w
    bound += np.where(mask, ax, 0.0) @ np.ones_like(w64).T * s_w * (1 / 254 + 2.0 ** -10)
    n = x.shape[1] + 8
    bound += n * 2.0 ** -23 * ((ax + s_x) @ np.ones_like(w64).T * s_w + (0 if b is None else np.abs(b)))
    assert np.all(np.abs(out.y - exact) <= bound)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12), elements=f16),
       st.sampled_from([0.5, 6.0, math.inf]), st.sampled_from([None, 1, 3]))
def test_codes_are_in_range_and_zero_exactly_in_outlier_columns(x, threshold, group):
    q = L.quantize_rows(x, threshold=threshold, group=group)
    assert q.codes.dtype == np.int8 and np.abs(q.codes.astype(int)).max(initial=0) <= 127
    mask = q.token_outliers()
    assert not q.codes[mask].any()
    mag = np.abs(x.astype(np.float64))
    below = np.where(mag < threshold, mag, 0.0)
    np.testing.assert_array_equal(q.absmax, below.max(axis=1, initial=0.0))
    # each row's absmax entry (outside the outlier columns) maps to +-127
    for t in range(x.shape[0]):
        if q.absmax[t] > 0:
            at = (mag[t] == q.absmax[t]) & ~mask[t]
            assert np.all(np.abs(q.codes[t][at]) == 127)


def test_reference_imports_neither_torch_nor_hardware():
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, sw.llm_int8; print(' '.join(sys.modules))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert not {m for m in loaded if m in ("torch", "amaranth") or m.startswith(("hw.", "sim.", "torch."))}
