"""Agreement of the LLM.int8() reference with bitsandbytes' own ``Linear8bitLt`` (skipped without it).

bitsandbytes is not a dependency of the project; install it to run these
(``pip install --no-deps bitsandbytes==0.50.2``: it needs only torch, numpy and
packaging). Its CPU path (eval mode, ``has_fp16_weights=False``) is compared
with :mod:`sw.llm_int8` at three levels:

* the int8 codes and scales of activations (with outlier detection) and of
  weights, the outlier columns, and the dequantized binary16 outlier weights:
  equal bit for bit;
* the int path: bitsandbytes' is the reference's times ``16129 * fl32(6.200124e-05)
  = 1 + 1.8e-5`` (its mistyped 1/127^2), within a few binary32 roundings;
* the whole layer in float16: within that factor on the int path plus the
  binary16 roundings bitsandbytes applies to the int path + bias, to the
  outlier product and to the output, and the outlier path's summation order.
"""

import numpy as np
import pytest
import torch

from sw import llm_int8 as L

bnb = pytest.importorskip("bitsandbytes")
F = pytest.importorskip("bitsandbytes.functional")

U32 = 2.0 ** -24
BNB_CONSTANT = float(np.float32(6.200124e-05)) * 16129  # bitsandbytes' (C * s_x s_w) * 6.200124e-05


def ulp16(v: np.ndarray) -> np.ndarray:
    """Spacing of binary16 at |v| (float64); 2^-24 below the normal range."""
    v = np.abs(np.asarray(v, dtype=np.float64))
    e = np.floor(np.log2(np.maximum(v, 2.0 ** -14)))
    return np.ldexp(1.0, (e - 10).astype(int))


def planted(seed, tokens, d_in, d_out, *, n_outliers=4):
    """fp16 activations with planted outlier columns (and one single-token outlier), fp16 weights, bias."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((tokens, d_in)) * 1.2
    cols = g.choice(d_in, n_outliers, replace=False)
    x[:, cols] *= g.uniform(4, 12, n_outliers)
    x[g.integers(tokens), g.integers(d_in)] = 7.5
    x[min(1, tokens - 1)] = 0.0
    w = g.standard_normal((d_out, d_in)) * 0.05
    b = g.standard_normal(d_out) * 0.1
    return x.astype(np.float16), w.astype(np.float16), b.astype(np.float16)


CASES = [(0, 16, 64, 32), (1, 40, 256, 96), (2, 7, 130, 48), (3, 64, 512, 64)]


@pytest.mark.parametrize("seed,tokens,d_in,d_out", CASES)
@pytest.mark.parametrize("threshold", [6.0, 3.0])
def test_codes_scales_and_outlier_columns_equal_bitsandbytes(seed, tokens, d_in, d_out, threshold):
    x, w, _ = planted(seed, tokens, d_in, d_out)
    q = L.quantize_rows(x, threshold=threshold)
    ca, sca, cols = F.int8_vectorwise_quant(torch.from_numpy(x.copy()), threshold=threshold)
    assert q.outlier_columns.any()
    np.testing.assert_array_equal(q.codes, ca.numpy())
    np.testing.assert_array_equal(q.absmax, sca.numpy())
    assert np.flatnonzero(q.outlier_columns[0]).tolist() == cols.tolist()
    wq = L.quantize_weight(w)
    cb, scb, _ = F.int8_vectorwise_quant(torch.from_numpy(w.copy()))
    np.testing.assert_array_equal(wq.codes, cb.numpy())
    np.testing.assert_array_equal(wq.absmax, scb.numpy())
    wd = F.int8_vectorwise_dequant(cb, scb).to(torch.float16).numpy()
    np.testing.assert_array_equal(wq.dequantized16().view(np.uint16), wd.view(np.uint16))


@pytest.mark.parametrize("seed,tokens,d_in,d_out", CASES)
def test_int_path_is_the_reference_times_the_mistyped_constant(seed, tokens, d_in, d_out):
    x, w, _ = planted(seed, tokens, d_in, d_out)
    q = L.quantize_rows(x)
    wq = L.quantize_weight(w)
    ours = L.linear(x, wq, threshold=np.inf).y.astype(np.float64)
    theirs = torch.ops.bitsandbytes.int8_scaled_mm.default(
        torch.from_numpy(q.codes), torch.from_numpy(wq.codes), torch.from_numpy(q.absmax),
        torch.from_numpy(wq.absmax), dtype=torch.float32).numpy().astype(np.float64)
    # each side is within 3 binary32 roundings of its exact value (fl32(C) is exact here: |C| < 2^24)
    assert np.all(np.abs(theirs - ours * BNB_CONSTANT) <= 8 * U32 * np.abs(ours))


@pytest.mark.parametrize("seed,tokens,d_in,d_out", CASES)
@pytest.mark.parametrize("threshold", [6.0, 3.0])
def test_linear8bitlt_eval_fp16_agrees_within_the_explained_bound(seed, tokens, d_in, d_out, threshold):
    x, w, b = planted(seed, tokens, d_in, d_out)
    layer = bnb.nn.Linear8bitLt(d_in, d_out, bias=True, has_fp16_weights=False, threshold=threshold)
    layer.load_state_dict({"weight": torch.from_numpy(w.copy()), "bias": torch.from_numpy(b.copy())})
    layer = layer.to("cpu").eval()
    with torch.no_grad():
        theirs = layer(torch.from_numpy(x.copy())[None]).numpy()[0].astype(np.float64)
    wq = L.quantize_weight(w)
    out = L.linear(x, wq, b, threshold=threshold)
    ours = out.y.astype(np.float64)
    # the reference's parts: the int path, the int path + bias, the outlier product
    c = out.x.codes.astype(np.int64) @ wq.codes.astype(np.int64).T
    y_int = ((c.astype(np.float32) * out.x.absmax[:, None]) * wq.int_scale()).astype(np.float64)
    y_int_b = y_int + b.astype(np.float64)
    xo = np.where(out.x.token_outliers(), x.astype(np.float64), 0.0)
    wd = wq.dequantized16().astype(np.float64)
    acc = xo @ wd.T
    bound = (np.abs(y_int) * (BNB_CONSTANT - 1 + 8 * U32)        # its constant, and its roundings
             + ulp16(y_int_b) / 2 + ulp16(acc) / 2 + ulp16(ours) / 2  # its three binary16 roundings
             + d_in * U32 * (np.abs(xo) @ np.abs(wd).T)           # the outlier sums' orders
             + 4 * U32 * (np.abs(y_int_b) + np.abs(acc)))         # the reference's own roundings
    diff = np.abs(theirs - ours)
    assert np.all(diff <= bound)
    # the difference is dominated by the binary16 output: at most about one binary16 step
    assert np.all(diff <= 1.5 * ulp16(np.maximum(np.abs(ours), np.abs(y_int_b))))
