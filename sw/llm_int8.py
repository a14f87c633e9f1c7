"""Bit-exact NumPy reference of LLM.int8() inference (Dettmers et al. 2022, arXiv 2208.07339).

This module *is* the contract of the LLM.int8() datapath: the RTL (issue 13)
and the PyTorch emulation (:mod:`sw.llm_int8_torch`) answer to it bit for bit.
Semantics are those of bitsandbytes' ``Linear8bitLt`` in inference mode
(``has_fp16_weights=False``, ``threshold=6.0``); every operation below is one
IEEE 754 binary16 / binary32 operation rounded to nearest, ties to even
(written with explicit NumPy ``float16`` / ``float32`` casts), or exact
integer arithmetic. Subnormals are kept (NumPy never flushes them).

Shapes: activations ``X (tokens, d_in)``, weights ``W (d_out, d_in)``,
output ``Y (tokens, d_out)``. ``fl16``/``fl32``: round to binary16/binary32.

1. **Inputs in binary16.** ``X16 = fl16(X)``, ``W16 = fl16(W)`` (a binary16
   input is taken as is; binary32/64 is rounded once). A NaN, an infinity, or a
   finite value beyond the binary16 range (|x| > 65504 rounds to inf) is a
   ``ValueError`` naming the layer, the token and the feature. bitsandbytes
   casts both operands to ``float16`` before quantizing them, likewise.
2. **Outliers.** Entry ``(t, j)`` is an outlier when ``|X16[t, j]| >= threshold``
   (compared exactly, in real arithmetic; hardware compares the binary16
   magnitude against :func:`threshold_binary16`, the smallest binary16 value
   ``>= threshold``, which is the same test). Tokens are cut into detection
   groups of ``group`` consecutive tokens (the last may be shorter;
   ``group=None``: one group of every token, as bitsandbytes, which detects over
   the whole batch of one call). Column ``j`` is an *outlier column* of a group
   when some token of that group has an outlier entry in column ``j``.
   ``threshold = inf`` finds none (plain vector-wise int8, W8A8);
   ``threshold = 0`` makes every column an outlier column. (bitsandbytes treats
   ``threshold = 0.0`` as "no decomposition"; here that is ``inf``.)
3. **Activation scale.** ``s_x[t] = max{|X16[t, j]| : |X16[t, j]| < threshold}``,
   0 when there is none: the absmax over the token's non-outlier *entries*
   (bitsandbytes zeroes the outlier entries, then takes the row absmax, so an
   entry below the threshold in an outlier column still counts). ``s_x`` is a
   binary16 value, held exactly in binary32.
4. **Quantize.** ``r[t] = fl32(fl32(1 / s_x[t]) * 127)`` (a correctly rounded
   binary32 reciprocal, then a binary32 product), then ``X_i8[t, j] =
   round_half_even(fl32(X16[t, j] * r[t]))``, and ``X_i8[t, j] = 0`` in the
   outlier columns of the token's group and in a row with ``s_x = 0``. This is
   bitsandbytes' CPU rule bit for bit: ``torch.round(A * (127.0 / row_stats))``,
   where PyTorch evaluates ``127.0 / tensor`` as ``tensor.reciprocal() * 127.0``
   (``Tensor.__rtruediv__``); a true division ``fl32(127 / s_x)`` differs for
   8273 of the 31743 positive binary16 ``s_x`` and moves codes at a tie
   (``s_x = 1.01171875``, ``x = s_x / 2``, exactly 63.5: 63 here, 64 by
   division, as ``fl32(x * r) = 63.499996``). Its
   CUDA kernel uses the approximate ``__fdividef(127, s)``. As ``s_x`` is a
   binary16 value, ``r`` depends on its 10 fraction bits and its exponent only
   (a 1024-entry table in hardware). For an all-zero row bitsandbytes forms
   ``0 * inf = NaN`` and casts it to int8 (0 on x86, undefined in C++); here the
   row is 0 by rule. ``|X_i8| <= 127`` always: ``|x| <= s_x`` and
   ``fl32(x * r) <= 127 (1 + 2^-24)^3 < 127.5``.
5. **Weights** are quantized once, by the same rule with ``threshold = inf``:
   ``s_w[i] = max_j |W16[i, j]|``, ``W_i8[i, j] = round_half_even(fl32(W16[i, j]
   * fl32(fl32(1 / s_w[i]) * 127)))`` -- bit for bit bitsandbytes' ``CB``, ``SCB``.
6. **Int path.** ``C = X_i8 @ W_i8^T`` exact (|C| <= 127^2 d_in < 2^31 for
   ``d_in <= MAX_D_IN``: an int32 accumulator, any order), then
   ``Y_int = fl32(fl32(fl32(C) * s_x[t]) * w_scale[i])`` with
   ``w_scale[i] = fl32(s_w[i] / 127^2)`` (correctly rounded, computed once per
   weight row; ``fl32(C)`` rounds only when |C| > 2^24). Departure: bitsandbytes'
   CPU path computes ``fl32(fl32(fl32(C) * fl32(s_x * s_w)) * fl32(6.200124e-05))``,
   whose constant is 1/127^2 mistyped (``6.2000124e-05`` is meant): it scales
   every int-path output by 1 + 1.8e-5. Its CUDA kernel forms
   ``fma(fl32(fl32(C * s_x) * s_w), fl32(1/127^2), bias)``. The order here
   takes two binary32 products per output, with no constant.
7. **Outlier path.** The weights of the outlier columns are the int8 weights
   dequantized to binary16 (inference mode: only int8 weights are stored):
   ``W_deq[i, j] = fl16(fl32(fl32(W_i8[i, j] * s_w[i]) * fl32(1/127)))``, exactly
   bitsandbytes' ``int8_vectorwise_dequant(...).to(float16)``. Option
   ``outlier_weights`` = the original binary16 weights ``W16`` instead (the
   paper's setting and bitsandbytes' ``has_fp16_weights=True``). Then, per
   output, ``acc = +0.0`` and for each outlier column ``j`` of the token's group
   in increasing ``j``: ``acc = fl32(acc + X16[t, j] * W_deq[i, j])`` -- the
   binary16 x binary16 product is exact in binary32 (22 significant bits), so
   only the additions round. (bitsandbytes adds ``A[:, O] @ W_deq[:, O]^T`` with
   one ``addmm``, whose order is its BLAS's.)
8. **Merge.** ``Y = fl32(fl32(Y_int + b) + acc)`` (``fl32(Y_int + acc)`` without a
   bias; ``b`` is the binary32 bias), the order of bitsandbytes, which adds the
   bias in the int-path dequantization and the outlier product after it.
   The output is binary32 (bitsandbytes rounds it to the input dtype, float16
   in its usual use; the emulation rounds it to the model's dtype).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "THRESHOLD",
    "Q_MAX",
    "MAX_D_IN",
    "Int8Rows",
    "Int8Weight",
    "Int8Output",
    "check_threshold",
    "check_group",
    "threshold_binary16",
    "to_binary16",
    "nonfinite_message",
    "group_ids",
    "quantize_rows",
    "quantize_weight",
    "linear",
    "w8a8_linear",
]

THRESHOLD = 6.0          # the paper's and bitsandbytes' default outlier threshold
Q_MAX = 127              # int8 codes lie in -127..127 (symmetric absmax)
MAX_D_IN = (2**31 - 1) // (Q_MAX * Q_MAX)  # 133143: C = X_i8 @ W_i8^T fits int32

_F32_127 = np.float32(Q_MAX)
_F32_INV_127 = np.float32(1.0 / Q_MAX)     # fl32(1/127), bitsandbytes' 7.874015718698502e-3
_F16_MAX = float(np.finfo(np.float16).max)  # 65504


def check_threshold(threshold) -> float:
    """``threshold`` as a float; ``ValueError`` unless it is a real number >= 0 (``inf`` allowed)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"threshold must be a number >= 0 (inf: no outliers); got {threshold!r}")
    value = float(threshold)
    if math.isnan(value) or value < 0:
        raise ValueError(f"threshold must be a number >= 0 (inf: no outliers); got {threshold!r}")
    return value


def check_group(group) -> int | None:
    """``group`` (tokens per outlier-detection group) or ``None``; ``ValueError`` unless an int >= 1."""
    if group is None:
        return None
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or group < 1:
        raise ValueError(f"group must be an integer >= 1 (tokens per detection group) or None; "
                         f"got {group!r}")
    return int(group)


def threshold_binary16(threshold: float) -> np.float16:
    """The smallest binary16 value ``>= threshold`` (``inf`` above 65504).

    For a binary16 magnitude ``a``: ``a >= threshold`` exactly when
    ``a >= threshold_binary16(threshold)``; the comparison hardware makes.
    """
    t = check_threshold(threshold)
    if t > _F16_MAX:
        return np.float16(np.inf)
    h = np.float16(t)  # round to nearest; step up once when it fell below
    if float(h) < t:
        h = np.nextafter(h, np.float16(np.inf))
    return h


def _where(layer: str | None) -> str:
    return f" of layer {layer}" if layer else ""


def to_binary16(x, *, what: str = "activations", layer: str | None = None) -> np.ndarray:
    """``fl16(x)`` as a ``float16`` array (any shape); ``ValueError`` on a non-finite result.

    ``x``: float16 (taken as is), float32/float64 or integer (rounded to
    nearest, ties to even). The error names ``what``, ``layer`` and the first bad
    index (for a 2-d input: token and feature).
    """
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{what}{_where(layer)} must be a real float array; got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        h = a.astype(np.float16)
    bad = ~np.isfinite(h)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(nonfinite_message(what, layer, float(a[index]), index))
    return h


def nonfinite_message(what: str, layer: str | None, value: float, index: tuple[int, ...]) -> str:
    """The one-line error for a value that is not finite in binary16 (shared with the emulation)."""
    where = f"token {index[0]}, feature {index[1]}" if len(index) == 2 else f"index {index}"
    return (f"{what}{_where(layer)} must be finite in binary16 (|x| <= 65504); "
            f"got {value!r} at {where}")


def group_ids(tokens: int, group: int | None) -> np.ndarray:
    """Detection group of each token (int64, ``(tokens,)``): ``t // group``, or all 0 for ``None``."""
    t = np.arange(tokens, dtype=np.int64)
    return np.zeros_like(t) if group is None else t // group


@dataclass(frozen=True)
class Int8Rows:
    """A vector-wise int8 tensor: row ``r`` is ``codes[r] * absmax[r] / 127``.

    ``codes``: int8 ``(rows, cols)``, in -127..127. ``absmax``: float32
    ``(rows,)``, each a binary16 value (the row scale, bitsandbytes' ``SCA`` /
    ``SCB``). ``outlier_columns``: bool ``(groups, cols)``, the outlier columns
    of each detection group (all False for weights). ``group``: tokens per group
    (``None``: one group).
    """

    codes: np.ndarray
    absmax: np.ndarray
    outlier_columns: np.ndarray
    group: int | None = None

    def token_outliers(self) -> np.ndarray:
        """bool ``(rows, cols)``: the outlier columns of each row's group."""
        return self.outlier_columns[group_ids(self.codes.shape[0], self.group)]


@dataclass(frozen=True)
class Int8Weight:
    """A weight quantized once for LLM.int8(): int8 rows, their binary16 absmax, binary16 original.

    ``codes`` int8 ``(d_out, d_in)``; ``absmax`` float32 ``(d_out,)`` (binary16
    values, ``s_w``); ``weight16``: the original weight in binary16 (kept only
    when the ``"fp16"`` outlier-weight option needs it, else ``None``).
    """

    codes: np.ndarray
    absmax: np.ndarray
    weight16: np.ndarray | None = None

    @property
    def d_out(self) -> int:
        return self.codes.shape[0]

    @property
    def d_in(self) -> int:
        return self.codes.shape[1]

    def int_scale(self) -> np.ndarray:
        """``w_scale = fl32(s_w / 127^2)`` per output (float32 ``(d_out,)``), correctly rounded.

        The float64 quotient of two binary32 values rounded to binary32 is the
        correctly rounded binary32 quotient (53 >= 2*24 + 2: double rounding is
        innocuous for division).
        """
        return (self.absmax.astype(np.float64) / float(Q_MAX * Q_MAX)).astype(np.float32)

    def dequantized16(self) -> np.ndarray:
        """``W_deq = fl16(fl32(fl32(W_i8 * s_w) * fl32(1/127)))``, float16 ``(d_out, d_in)``."""
        w = (self.codes.astype(np.float32) * self.absmax[:, None]) * _F32_INV_127
        return w.astype(np.float16)


@dataclass(frozen=True)
class Int8Output:
    """What :func:`linear` computed: ``y`` float32 ``(tokens, d_out)``, the quantized activations."""

    y: np.ndarray
    x: Int8Rows


def _check_2d(a: np.ndarray, what: str, layer: str | None) -> None:
    if a.ndim != 2:
        raise ValueError(f"{what}{_where(layer)} must be a 2-d array; got shape {a.shape}")


def quantize_rows(x16: np.ndarray, *, threshold: float = math.inf, group: int | None = None
                  ) -> Int8Rows:
    """Vector-wise int8 of a binary16 ``(rows, cols)`` array with outlier columns zeroed (steps 2-4).

    ``threshold``: outlier magnitude (``inf``: none). ``group``: rows per
    detection group (``None``: all rows).
    """
    threshold = check_threshold(threshold)
    group = check_group(group)
    x16 = np.asarray(x16)
    if x16.dtype != np.float16:
        raise ValueError(f"x16 must be a float16 array (see to_binary16); got dtype {x16.dtype}")
    _check_2d(x16, "x16", None)
    rows, cols = x16.shape
    mag = np.abs(x16).astype(np.float64)            # exact
    is_outlier = mag >= threshold                   # exact comparison against a float64
    groups = group_ids(rows, group)
    n_groups = int(groups[-1]) + 1 if rows else 0
    outlier_columns = np.zeros((n_groups, cols), dtype=bool)
    np.logical_or.at(outlier_columns, groups, is_outlier)
    absmax = np.where(is_outlier, 0.0, mag).max(axis=1, initial=0.0).astype(np.float32)  # exact
    nonzero = absmax > 0
    reciprocal = (np.float32(1) / np.where(nonzero, absmax, np.float32(1))).astype(np.float32)
    r = np.where(nonzero, reciprocal * _F32_127, np.float32(0)).astype(np.float32)
    keep = ~outlier_columns[groups] & nonzero[:, None]
    product = np.where(keep, x16.astype(np.float32) * r[:, None], np.float32(0)).astype(np.float32)
    codes = np.rint(product)                        # round half to even, exact on binary32
    assert not codes.size or np.abs(codes).max() <= Q_MAX
    return Int8Rows(codes=codes.astype(np.int8), absmax=absmax,
                    outlier_columns=outlier_columns, group=group)


def quantize_weight(w, *, keep_fp16: bool = False, layer: str | None = None) -> Int8Weight:
    """The int8 weight of a ``(d_out, d_in)`` float array (step 5), once per layer.

    ``keep_fp16``: also keep ``W16`` for ``outlier_weights="fp16"``.
    ``ValueError`` (naming ``layer``) on a non-finite weight or a bad shape.
    """
    w16 = to_binary16(w, what="weights", layer=layer)
    _check_2d(w16, "weights", layer)
    if w16.shape[1] > MAX_D_IN:
        raise ValueError(f"weights{_where(layer)} must have d_in <= {MAX_D_IN} (int32 accumulator); "
                         f"got {w16.shape[1]}")
    q = quantize_rows(w16)
    return Int8Weight(codes=q.codes, absmax=q.absmax, weight16=w16 if keep_fp16 else None)


def _bias32(bias, d_out: int, layer: str | None) -> np.ndarray:
    with np.errstate(over="ignore"):
        b = np.asarray(bias).astype(np.float32)
    if b.shape != (d_out,):
        raise ValueError(f"bias{_where(layer)} must have shape ({d_out},); got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"bias{_where(layer)} must be finite in binary32; got a non-finite value")
    return b


def linear(x, weight: Int8Weight, bias=None, *, threshold: float = THRESHOLD,
           group: int | None = None, outlier_weights: str = "int8", layer: str | None = None
           ) -> Int8Output:
    """LLM.int8() ``Y = X W^T + b`` (steps 1-8): float32 ``(tokens, d_out)``.

    ``x``: ``(tokens, d_in)`` float. ``bias``: ``(d_out,)`` or ``None``
    (rounded to binary32). ``outlier_weights``: ``"int8"`` (dequantized int8
    weights, bitsandbytes inference) or ``"fp16"`` (``weight.weight16``).
    ``ValueError`` naming ``layer`` on non-finite activations or bad shapes.
    """
    threshold = check_threshold(threshold)
    group = check_group(group)
    if outlier_weights not in ("int8", "fp16"):
        raise ValueError(f"outlier_weights must be one of int8, fp16; got {outlier_weights!r}")
    if outlier_weights == "fp16" and weight.weight16 is None:
        raise ValueError("outlier_weights 'fp16' needs a weight quantized with keep_fp16=True")
    x16 = to_binary16(x, what="activations", layer=layer)
    _check_2d(x16, "activations", layer)
    if x16.shape[1] != weight.d_in:
        raise ValueError(f"activations{_where(layer)} must have {weight.d_in} features; "
                         f"got shape {x16.shape}")
    q = quantize_rows(x16, threshold=threshold, group=group)
    # int path: exact integer GEMM (NumPy's integer matmul), then two binary32 products
    c = q.codes.astype(np.int64) @ weight.codes.astype(np.int64).T
    c32 = c.astype(np.int32).astype(np.float32)      # |c| < 2^31; rounds only above 2^24
    y = (c32 * q.absmax[:, None]).astype(np.float32) * weight.int_scale()[None, :]
    if bias is not None:
        b = _bias32(bias, weight.d_out, layer)
        y = y + b[None, :]
    # outlier path: exact binary16 products, sequential binary32 sums in increasing column order
    w_out = (weight.dequantized16() if outlier_weights == "int8" else weight.weight16).astype(np.float32)
    mask = q.token_outliers()
    acc = np.zeros_like(y)
    x32 = x16.astype(np.float32)
    for j in np.flatnonzero(q.outlier_columns.any(axis=0)):
        term = x32[:, j, None] * w_out[None, :, j]   # exact
        acc = np.where(mask[:, j, None], acc + term, acc)
    return Int8Output(y=(y + acc).astype(np.float32), x=q)


def w8a8_linear(x, weight: Int8Weight, bias=None, *, layer: str | None = None) -> Int8Output:
    """Vector-wise int8 with no outlier path: :func:`linear` with ``threshold = inf``."""
    return linear(x, weight, bias, threshold=math.inf, layer=layer)
