"""sw.intq (ResQ's integer formats) and its PyTorch twin sw.intq_torch: the rules, their error
bounds, and bit-identity between the two on float64 input."""

import numpy as np
import pytest
import torch

from sw.intq import quantize_per_channel_symmetric, quantize_per_token_asymmetric
from sw.intq_torch import fake_quantize_per_channel_symmetric, fake_quantize_per_token_asymmetric


def _rows(seed, rows=64, n=40):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n)) * np.exp2(rng.integers(-12, 6, size=(rows, 1)))
    x[0] = 0.0                       # an all-zero row
    x[1] = np.abs(x[1])              # all positive: lo = 0
    x[2] = -np.abs(x[2])             # all negative: hi = 0
    x[3, :] = 0.0
    x[3, 7] = 2.5                    # one non-zero element
    return x


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_torch_twin_is_bit_identical_on_float64(bits):
    x = _rows(bits)
    asym = quantize_per_token_asymmetric(x, bits).dequantize()
    sym = quantize_per_channel_symmetric(x, bits).dequantize()
    t = torch.from_numpy(x)
    assert np.array_equal(fake_quantize_per_token_asymmetric(t, bits).numpy(), asym)
    assert np.array_equal(fake_quantize_per_channel_symmetric(t, bits).numpy(), sym)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_codes_stay_in_range_and_the_error_is_half_a_step(bits):
    x = _rows(10 + bits)
    a = quantize_per_token_asymmetric(x, bits)
    assert a.codes.min() >= 0 and a.codes.max() <= 2 ** bits - 1
    err = np.abs(a.dequantize() - x)
    # the zero point is rounded, so the range may shift by up to half a step: one step at most
    assert np.all(err <= a.scales[:, None] * (1 + 1e-12))
    s = quantize_per_channel_symmetric(x, bits)
    assert s.codes.min() >= -(2 ** (bits - 1)) and s.codes.max() <= 2 ** (bits - 1) - 1
    assert np.all(np.abs(s.dequantize() - x) <= s.scales[:, None] / 2 * (1 + 1e-12))


def test_hand_worked_rows():
    # asymmetric 2-bit: lo = -1, hi = 2, s = 1, z = 1: codes round(x) + 1 clamped to 0..3
    a = quantize_per_token_asymmetric([[-1.0, 0.4, 0.5, 2.0]], 2)
    assert a.scales.tolist() == [1.0] and a.zeros.tolist() == [1.0]
    assert a.codes.tolist() == [[0, 1, 1, 3]]          # 0.5 rounds half to even: 0
    assert a.dequantize().tolist() == [[-1.0, 0.0, 0.0, 2.0]]
    # symmetric 3-bit: peak 3, s = 1, codes in -4..3
    s = quantize_per_channel_symmetric([[3.0, -2.5, 1.5, 0.2]], 3)
    assert s.codes.tolist() == [[3, -2, 2, 0]]
    # an all-zero row: the authors' range (-1, 1) and floor 1e-5
    assert quantize_per_token_asymmetric([[0.0, 0.0]], 4).dequantize().tolist() == [[0.0, 0.0]]
    assert quantize_per_channel_symmetric([[0.0, 0.0]], 4).scales.tolist() == [1e-5 / 7]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"^bits must be an integer in 2\.\.16; got 1$"):
        quantize_per_token_asymmetric([[1.0]], 1)
    with pytest.raises(ValueError, match=r"^w must be finite; got nan at index \(0, 1\)$"):
        quantize_per_channel_symmetric([[1.0, float("nan")]], 4)
    with pytest.raises(ValueError, match=r"^x must be 2-d \(rows, n\); got 1-d$"):
        quantize_per_token_asymmetric([1.0, 2.0], 4)
