"""Hand-worked MXINT vectors (values derived on paper from docs/design.md, Number formats) and bad-input messages."""

import numpy as np
import pytest

from sw.mxint import MXIntFormat, quantize, quantize_exact


def mx(x, **kw):
    return quantize(np.asarray(x), **kw)


# --- MXINT8 (grid step 2**(e-6), codes -127..127) ---------------------------------------------

def test_mxint8_ties_round_half_even_and_away():
    # max 1.0 -> e = 0, step 1/64: 1/128 = 0.5 step, 3/128 = 1.5, -5/128 = -2.5
    x = [1.0, 1 / 128, 3 / 128, -5 / 128]
    even = mx(x, width=8, block=4)
    assert even.exponents.tolist() == [0]
    assert even.mantissas.tolist() == [64, 0, 2, -2]
    away = mx(x, width=8, block=4, rounding="away")
    assert away.mantissas.tolist() == [64, 1, 2, -3]


def test_mxint8_saturates_at_block_max():
    # 1.999 * 64 = 127.94 rounds to 128, one past the largest code
    q = mx([1.999, 1.0, -1.999, 0.0], width=8, block=4)
    assert q.exponents.tolist() == [0]
    assert q.mantissas.tolist() == [127, 64, -127, 0]


def test_mxint8_padded_tail_keeps_its_own_exponent():
    # second block is [0.3, pad, pad, pad]: e = floor(log2 0.3) = -2, 0.3 * 2**8 = 76.8 -> 77
    q = mx([1.0, 1.0, 1.0, 1.0, 0.3], width=8, block=4)
    assert q.exponents.tolist() == [0, -2]
    assert q.mantissas.tolist() == [64, 64, 64, 64, 77]
    assert q.mantissas.shape == (5,)


def test_mxint8_exponent_clamps_high_and_saturates():
    # exponent_bits=4 -> e in [-7, 7]; max 1000 wants e = 9, clamps to 7, step 2
    q = mx([1000.0, 1.0, 0.0, 0.0], width=8, block=4, exponent_bits=4)
    assert q.exponents.tolist() == [7]
    assert q.mantissas.tolist() == [127, 0, 0, 0]  # 1.0 / 2 = 0.5 ties to even 0


def test_mxint8_exponent_clamps_low():
    x = [2.0 ** -9, 3 * 2.0 ** -10, 0.0, 0.0]
    clamped = mx(x, width=8, block=4, exponent_bits=4)   # e wants -9, clamps to -7: step 2**-13
    assert clamped.exponents.tolist() == [-7]
    assert clamped.mantissas.tolist() == [16, 24, 0, 0]
    free = mx(x, width=8, block=4, exponent_bits=8)      # e = -9: step 2**-15
    assert free.exponents.tolist() == [-9]
    assert free.mantissas.tolist() == [64, 96, 0, 0]


def test_all_zero_block_gets_minimum_exponent():
    assert mx([0.0] * 4, width=8, block=4).exponents.tolist() == [-127]
    q = mx([0.0, -0.0, 0.0, 0.0], width=4, block=4, exponent_bits=4)
    assert q.exponents.tolist() == [-7]
    assert q.mantissas.tolist() == [0, 0, 0, 0]


def test_float32_subnormals():
    x = np.array([2.0 ** -140, 3 * 2.0 ** -142, -(2.0 ** -149), 0.0], dtype=np.float32)
    q = quantize(x, width=16, block=4)  # e wants -140, clamps to -127: step 2**-141
    assert q.exponents.tolist() == [-127]
    assert q.mantissas.tolist() == [2, 2, 0, 0]  # 1.5 steps ties to 2; 2**-8 steps -> 0


def test_float16_subnormals():
    x = np.array([2.0 ** -20, 2.0 ** -24, 0, 0], dtype=np.float16)  # below f16 normal range
    q = quantize(x, width=8, block=4)
    assert q.exponents.tolist() == [-20]
    assert q.mantissas.tolist() == [64, 4, 0, 0]


def test_other_axis_and_dequantize():
    x = np.array([[1.0, 0.25], [0.5, -0.125]])  # blocks run down the columns
    q = quantize(x, width=8, block=2, axis=0)
    assert q.exponents.tolist() == [[0, -2]]
    assert q.mantissas.tolist() == [[64, 64], [32, -32]]
    np.testing.assert_array_equal(q.dequantize(), x)


# --- MXINT4 (grid step 2**(e-2), codes -7..7); ocp vs lqer ------------------------------------

def test_mxint4_power_of_two_max_is_where_flavours_differ():
    x = [2.0, 0.75, -1.0, 0.5]
    ocp = mx(x, width=4, block=4)                 # e = 1, step 0.5; 0.75 -> 1.5 ties to 2
    assert ocp.exponents.tolist() == [1]
    assert ocp.mantissas.tolist() == [4, 2, -2, 1]
    assert ocp.dequantize().tolist() == [2.0, 1.0, -1.0, 0.5]
    lqer = mx(x, width=4, block=4, flavour="lqer")  # e = ceil(log2 2) = 1, step 0.25; 8 -> 7
    assert lqer.exponents.tolist() == [1]
    assert lqer.mantissas.tolist() == [7, 3, -4, 2]
    assert lqer.dequantize().tolist() == [1.75, 0.75, -1.0, 0.5]


def test_mxint4_flavours_agree_without_power_of_two_max():
    x = [3.0, 0.75, -1.0, 0.5]
    ocp = mx(x, width=4, block=4)
    lqer = mx(x, width=4, block=4, flavour="lqer")
    assert ocp.exponents.tolist() == [1] and lqer.exponents.tolist() == [2]
    assert ocp.mantissas.tolist() == lqer.mantissas.tolist() == [6, 2, -2, 1]
    assert ocp.dequantize().tolist() == lqer.dequantize().tolist()


def test_mxint4_ties_both_directions():
    # max 1.5 -> e = 0, step 0.25: 0.125 = 0.5 step, 0.375 = 1.5, -0.625 = -2.5
    x = [1.5, 0.125, 0.375, -0.625]
    assert mx(x, width=4, block=4).mantissas.tolist() == [6, 0, 2, -2]
    assert mx(x, width=4, block=4, rounding="away").mantissas.tolist() == [6, 1, 2, -3]


def test_mxint4_saturation():
    q = mx([1.9, -1.9, 1.0, 0.0], width=4, block=4)  # 7.6 -> 8 -> 7
    assert q.mantissas.tolist() == [7, -7, 4, 0]


def _authors_example(dtype):
    # issue 10 item 16: width 3, block 16, block max 1.5323340e-03 -> e = ceil(log2 max) = -9,
    # m = 2 fraction bits, step 2**-11; x = -2**-12 is exactly half a step, 3 * 2**-12 is 1.5 steps
    x = np.zeros(16, dtype=dtype)
    x[:3] = [1.5323340e-03, -(2.0 ** -12), 3 * 2.0 ** -12]
    return x


@pytest.mark.parametrize("dtype, expected", [
    # float32: -2**-12 + 1e-9 survives the addition (|x| < 2**-5): 0.5 + 2e-6 steps rounds to -1;
    # 1.5 steps + a little rounds to 2 (as the tie would); max 3.138 steps -> 3
    (np.float32, [3, -1, 2]),
    # float64: the same
    (np.float64, [3, -1, 2]),
    # float16: 1e-9 rounds to 0 in float16, so the tie goes to even (0), as in "ocp"
    (np.float16, [3, 0, 2]),
])
def test_lqer_flavour_adds_the_authors_nudge_in_the_input_dtype(dtype, expected):
    q = mx(_authors_example(dtype), width=3, block=16, flavour="lqer")
    assert q.exponents.tolist() == [-9]
    assert q.mantissas[:3].tolist() == expected
    assert not q.mantissas[3:].any()  # zeros stay zero (no nudge)
    ocp = mx(_authors_example(dtype), width=3, block=16)
    assert ocp.exponents.tolist() == [-10]  # floor(log2 max); step 2**-11 as well
    assert ocp.mantissas[:3].tolist() == [3, 0, 2]


def test_lqer_nudge_in_bfloat16_is_lost_at_this_magnitude():
    # the same values held by a bfloat16 tensor: 1e-9 (-> 9.97e-10 in bfloat16) is far below
    # half an ulp of 2**-12, so the tie goes to even; the max rounds to 1.5335e-03
    x = _authors_example(np.float32)
    x[0] = 1.53350830078125e-03  # the nearest bfloat16
    q = mx(x, width=3, block=16, flavour="lqer", source_dtype="bfloat16")
    assert q.mantissas[:3].tolist() == [3, 0, 2]
    with pytest.raises(ValueError, match=r"^x must hold bfloat16 values for source_dtype 'bfloat16'; "
                       r"it has values that are not$"):
        mx(_authors_example(np.float32), width=3, block=16, flavour="lqer", source_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"^source_dtype must be one of float16, bfloat16, float32, "
                       r"float64; got 'int8'$"):
        mx(x, flavour="lqer", source_dtype="int8")


# --- the fixed-point entry used by hardware quantizers ----------------------------------------

def test_quantize_exact_fixed_point_matches_float_entry():
    values = np.array([[300, -7, 0, 64], [0, 0, 0, 0], [-1, 1, 2, 3]])  # * 2**-6
    qi = quantize_exact(values, -6, width=4, block=4)
    qf = quantize(values * 2.0 ** -6, width=4, block=4)
    np.testing.assert_array_equal(qi.mantissas, qf.mantissas)
    np.testing.assert_array_equal(qi.exponents, qf.exponents)
    # by hand: block 0: max 300/64 = 4.69 -> e = 2, step 1: 4.69 -> 5, -0.11 -> 0, 1.0 -> 1
    assert qi.exponents.tolist() == [[2], [-127], [-5]]
    assert qi.mantissas[0].tolist() == [5, 0, 0, 1]


def test_quantize_exact_per_element_exponents():
    # values 3 * 2**4 = 48 and 1 * 2**0 = 1 in one block: e = 5, step 2**3
    q = quantize_exact(np.array([3, 1]), np.array([4, 0]), width=4, block=2)
    assert q.exponents.tolist() == [5]
    assert q.mantissas.tolist() == [6, 0]


# --- bad input: one line naming the parameter and what is allowed -----------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(width=1), "width must be an integer in 2..16; got 1"),
    (dict(width=17), "width must be an integer in 2..16; got 17"),
    (dict(width=8.0), "width must be an integer in 2..16; got 8.0"),
    (dict(block=12), "block must be a power of two in 1..256; got 12"),
    (dict(block=0), "block must be a power of two in 1..256; got 0"),
    (dict(exponent_bits=1), "exponent_bits must be an integer in 2..8; got 1"),
    (dict(exponent_bits=9), "exponent_bits must be an integer in 2..8; got 9"),
    (dict(rounding="nearest"), 'rounding must be one of "even", "away"; got \'nearest\''),
    (dict(flavour="mx"), 'flavour must be one of "ocp", "lqer"; got \'mx\''),
    (dict(axis=2), "axis must be an integer in -2..1 for a 2-d input; got 2"),
    (dict(axis=-3), "axis must be an integer in -2..1 for a 2-d input; got -3"),
])
def test_bad_parameters_give_one_exact_line(kwargs, message):
    with pytest.raises(ValueError) as info:
        quantize(np.ones((2, 4)), **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_names_tensor_and_first_index(bad):
    x = np.ones((3, 4), dtype=np.float32)
    x[1, 2] = bad
    x[2, 0] = bad
    with pytest.raises(ValueError) as info:
        quantize(x, block=4, name="weight")
    assert str(info.value) == (f"weight has a non-finite value ({np.float64(bad)}) at index (1, 2); "
                               "MXINT input must be finite")


def test_non_numeric_input_is_rejected():
    with pytest.raises(ValueError, match=r"^x must be a real float or integer array; got dtype"):
        quantize(np.array([1 + 2j]))


def test_quantize_exact_rejects_floats_and_wide_values():
    with pytest.raises(ValueError, match=r"^values must be an integer array; got dtype float64$"):
        quantize_exact(np.array([1.5]), width=8, block=2)
    with pytest.raises(ValueError, match=r"^values must have magnitudes below 2\*\*53; got 9007199254740992$"):
        quantize_exact(np.array([2 ** 53]), width=8, block=2)


@pytest.mark.parametrize("values, got", [
    (np.array([-2 ** 63], dtype=np.int64), -2 ** 63),      # wrapped to +2**63 by abs() before
    (np.array([2 ** 64 - 1], dtype=np.uint64), 2 ** 64 - 1),  # wrapped to -1 by astype(int64)
    (np.array([1, -2 ** 53], dtype=np.int64), -2 ** 53),
])
def test_quantize_exact_range_is_checked_before_conversion(values, got):
    with pytest.raises(ValueError) as info:
        quantize_exact(values, width=8, block=4)
    assert str(info.value) == f"values must have magnitudes below 2**53; got {got}"
    with pytest.raises(ValueError) as info:  # integer input to quantize takes the same path
        quantize(values, width=8, block=4)
    assert str(info.value) == f"x must have magnitudes below 2**53; got {got}"


def test_format_object_and_keywords_are_the_same_quantizer():
    fmt = MXIntFormat(width=5, block=8, exponent_bits=6, rounding="away")
    x = np.random.default_rng(3).standard_normal((4, 24))
    by_object = quantize(x, fmt, axis=1)
    by_keywords = quantize(x, width=5, block=8, exponent_bits=6, rounding="away", axis=1)
    assert by_object.format == by_keywords.format == fmt
    np.testing.assert_array_equal(by_object.mantissas, by_keywords.mantissas)
    np.testing.assert_array_equal(by_object.exponents, by_keywords.exponents)
    assert (fmt.frac_bits, fmt.mantissa_max, fmt.exponent_range, fmt.lsb_range) == \
        (3, 15, (-31, 31), (-34, 28))
    assert MXIntFormat(width=5, flavour="lqer").frac_bits == 4
    with pytest.raises(TypeError, match=r"^give either fmt or format keywords, not both"):
        quantize(x, fmt, width=5)
    with pytest.raises(TypeError, match=r"^fmt must be an MXIntFormat; got 8$"):
        quantize(x, 8)
