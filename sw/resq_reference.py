"""NumPy reference of one ResQ linear layer (Saxena et al. 2024, arXiv 2412.14363), composed from
:mod:`sw.mxint`, :mod:`sw.blockmath` and :mod:`sw.lqer_reference`.

A layer ``y = x W^T + b`` (W: d_out x d_in) with an orthogonal basis ``U = [U_l | U_h]``
(d_in x d_in; U_l the ``d_in - r`` low-precision directions, U_h the ``r`` high-precision
ones) is computed as ``y = (x U_l) (W U_l)^T + (x U_h) (W U_h)^T + b``, which equals the
float layer exactly before quantization since ``U U^T = I``. With the project's MXINT formats
(docs/design.md, Datapaths; every operand blocked along its reduction axis)::

    z_l, z_h = x U_l, x U_h                         float64 GEMM, outside the datapath
    zq_l = quantize(z_l, a_width),  zq_h = quantize(z_h, high_width)     blocks along the axis
    W_l  = quantize(W U_l, w_width), W_h = quantize(W U_h, high_width)   quantized once
    low  = accumulate(block_matmul_partials(zq_l, W_l))        (A_l, lsb_l)
    high = accumulate(block_matmul_partials(zq_h, W_h))        (A_h, lsb_h)
    y    = fl64(A_l 2**lsb_l + A_h 2**lsb_h) + bias

Each path is the main GEMM of the LQER reference (:func:`sw.lqer_reference.lqer_linear_terms`
without the low-rank factors): one MXINT dot product per block and the project's
cross-block accumulator (:func:`sw.blockmath.accumulate`). The merge is one float64
rounding of the exact sum of the two accumulator values (each exact in float64 while
``|A| < 2**53``), then the bias in float64, as LQER's ``fl64(main + u) + bias``.

The projection ``x U`` is a float GEMM the datapath does not compute: the paper fuses the
projections it can into neighbouring weights and computes the rest online (docs/sw.md,
"ResQ"). The contract of the datapath starts at ``z``: :func:`resq_linear_terms` takes
already quantized coordinates. :func:`project` is the reference's own projection, one
float64 matrix product (NumPy); the emulation projects in float64 too, and its bit-true
layer is tested bit for bit against this module on the same ``z``.

``r = 0`` (a down projection after a Hadamard transform) leaves the high path empty:
``y = fl64(A_l 2**lsb_l) + bias``.

The datapath's complete output (:func:`resq_linear_output`) merges in hardware as the LQER
datapath does (:func:`sw.lqer_reference.lqer_linear_output`), with the narrow path's result
in the place of LQER's ``u``::

    h    = quantize_exact(accumulate(block_matmul_partials(zq_h, W_h)), high_format)   along d_out
    y_q  = quantize_exact(accumulate([wide-path partials..., h, bias]), out_format)

so the merge needs no register wider than the wide path's accumulator.
"""

from __future__ import annotations

import numpy as np

from sw.blockmath import accumulate, block_matmul_partials
from sw.lqer_reference import element_partials, lqer_linear_terms
from sw.mxint import MXIntFormat, MXQuantized, quantize, quantize_exact

__all__ = ["sylvester_hadamard", "project", "resq_linear_terms", "merge", "resq_linear_output",
           "reference_resq_linear"]


def sylvester_hadamard(n: int) -> np.ndarray:
    """The orthonormal Walsh-Hadamard matrix ``H_n / sqrt(n)`` (float64, n a power of two).

    Sylvester's construction, ``H_2n = [[H_n, H_n], [H_n, -H_n]]``; symmetric and orthogonal.
    Raises ``ValueError`` when ``n`` is not a power of two.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n & (n - 1):
        raise ValueError(f"n must be a power of two (1, 2, 4, ...); got {n!r}")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def project(x, basis: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``(z_l, z_h) = (x U_l, x U_h)`` in float64: x (T, d_in), basis (d_in, d_in), ``rank`` = r.

    ``U_l`` is the first ``d_in - r`` columns of ``basis``, ``U_h`` the last ``r``.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.asarray(basis, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] != u.shape[1] or x.ndim != 2 or x.shape[1] != u.shape[0]:
        raise ValueError(f"x (T, d_in) and basis (d_in, d_in) must agree; got {x.shape} and {u.shape}")
    if not 0 <= rank < u.shape[0]:
        raise ValueError(f"rank must be in 0..{u.shape[0] - 1}; got {rank}")
    z = x @ u
    split = u.shape[0] - rank
    return z[:, :split], z[:, split:]


def resq_linear_terms(qz_low: MXQuantized, weight_low: MXQuantized,
                      qz_high: MXQuantized | None = None, weight_high: MXQuantized | None = None,
                      *, guard_bits: int | None = 8, acc_rounding: str = "even") -> dict:
    """The layer's exact terms on quantized coordinates: keys ``low``, ``high`` (or None).

    ``qz_low`` (T, d_in - r) and ``weight_low`` = W_l (d_out, d_in - r); ``qz_high`` (T, r)
    and ``weight_high`` = W_h (d_out, r), both or neither -- every operand blocked along its
    last (reduction) axis. Each term is an accumulator ``(A, lsb)`` of int64 (T, d_out)
    arrays (value ``A * 2**lsb``): the main GEMM of :func:`sw.lqer_reference.lqer_linear_terms`
    (``guard_bits``, ``acc_rounding`` as there). Raises ``ValueError`` when only one of the
    high operands is given or an operand is not blocked along its last axis.
    """
    if (qz_high is None) != (weight_high is None):
        raise ValueError("qz_high and weight_high must be given together")
    low = lqer_linear_terms(qz_low, weight_low, guard_bits=guard_bits,
                            acc_rounding=acc_rounding)["main"]
    high = None
    if qz_high is not None:
        high = lqer_linear_terms(qz_high, weight_high, guard_bits=guard_bits,
                                 acc_rounding=acc_rounding)["main"]
    return {"low": low, "high": high}


def _value(acc: tuple) -> np.ndarray:
    return np.ldexp(acc[0].astype(np.float64), acc[1].astype(np.int32))


def merge(terms: dict, bias=None) -> np.ndarray:
    """``y = fl64(low + high) + bias`` (float64, (T, d_out)) of :func:`resq_linear_terms`' terms."""
    y = _value(terms["low"])
    if terms["high"] is not None:
        y = y + _value(terms["high"])
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def resq_linear_output(qz_low: MXQuantized, weight_low: MXQuantized,
                       qz_high: MXQuantized | None = None, weight_high: MXQuantized | None = None,
                       bias: MXQuantized | None = None, *, out_format: MXIntFormat,
                       high_format: MXIntFormat | None = None, guard_bits: int = 8,
                       acc_rounding: str = "even") -> MXQuantized:
    """The ResQ datapath's complete output on quantized coordinates: MXINT ``out_format`` blocks
    along ``d_out``, (T, d_out).

    Per token and output channel: the wide path's partials (one per block of ``d_in - r``, in
    order), then ``h``, the narrow path's accumulator (the ``high`` term of
    :func:`resq_linear_terms`) requantized in ``high_format`` along ``d_out`` (default:
    ``out_format`` at the high weights' width), then the bias (MXINT ``(d_out,)`` along
    ``d_out``, when given), accumulated by :func:`sw.blockmath.accumulate` and requantized by
    :func:`sw.mxint.quantize_exact` -- the merge of :func:`sw.lqer_reference.lqer_linear_output`
    with ``h`` for ``u``.

    Error against the exact ``low + h + bias``: below ``(n - 1) * 2**(E - G) / 2`` (round half
    even; ``n`` = wide-path blocks + 2, ``E`` the largest partial exponent) plus half a step
    of the output block, unless an element saturates. Raises ``ValueError`` as
    :func:`resq_linear_terms`, or for ``guard_bits=None`` (the hardware has no exact mode).
    """
    if guard_bits is None:
        raise ValueError("guard_bits must be an integer for the merged output (the datapath's "
                         "register); got None")
    if (qz_high is None) != (weight_high is None):
        raise ValueError("qz_high and weight_high must be given together")
    sums, lsb = block_matmul_partials(qz_low, weight_low)          # (T, d_out, nb_low)
    extra_s, extra_p = [], []
    if qz_high is not None:
        fmt = high_format if high_format is not None else out_format.replace(width=weight_high.width)
        acc = lqer_linear_terms(qz_high, weight_high, guard_bits=guard_bits,
                                acc_rounding=acc_rounding)["main"]
        hs, hp = element_partials(quantize_exact(acc[0], acc[1], fmt, axis=-1))
        extra_s.append(hs)
        extra_p.append(hp)
    if bias is not None:
        bs, bp = element_partials(bias)
        extra_s.append(np.broadcast_to(bs, sums.shape[:2]))
        extra_p.append(np.broadcast_to(bp, sums.shape[:2]))
    if extra_s:
        sums = np.concatenate([sums, np.stack(extra_s, axis=-1)], axis=-1)
        lsb = np.concatenate([lsb, np.stack(extra_p, axis=-1)], axis=-1)
    acc, acc_lsb = accumulate(sums, lsb, guard_bits=guard_bits, rounding=acc_rounding)
    return quantize_exact(acc, acc_lsb, out_format, axis=-1)


def reference_resq_linear(x, basis: np.ndarray, weight_low: MXQuantized,
                          weight_high: MXQuantized | None = None, bias=None, *, a_format: MXIntFormat,
                          high_format: MXIntFormat | None = None, guard_bits: int | None = 8,
                          acc_rounding: str = "even") -> dict:
    """Every intermediate of the ResQ layer on x (T, d_in): keys z_low, z_high, x_low, x_high, low,
    high, y.

    ``basis`` (d_in, d_in) float64 with columns ``[U_l | U_h]``; ``weight_low`` W_l
    (d_out, d_in - r) and ``weight_high`` W_h (d_out, r, or None for r = 0), both blocked
    along axis 1 -- the layout of :class:`sw.factor_files.LayerFactors` for ResQ.
    ``a_format`` quantizes z_l, ``high_format`` z_h (default: ``weight_high``'s format);
    their blocks must equal the weights'. ``y`` is float64 (T, d_out).
    """
    rank = 0 if weight_high is None else weight_high.mantissas.shape[1]
    z_low, z_high = project(x, basis, rank)
    if weight_low.mantissas.shape[1] != z_low.shape[1]:
        raise ValueError(f"weight_low must have {z_low.shape[1]} columns (d_in - r); "
                         f"got {weight_low.mantissas.shape[1]}")
    x_low = quantize(z_low, a_format, axis=-1, name="z_low")
    x_high = None
    if weight_high is not None:
        high_format = weight_high.format if high_format is None else high_format
        x_high = quantize(z_high, high_format, axis=-1, name="z_high")
    terms = resq_linear_terms(x_low, weight_low, x_high, weight_high, guard_bits=guard_bits,
                              acc_rounding=acc_rounding)
    return {"z_low": z_low, "z_high": z_high, "x_low": x_low, "x_high": x_high, **terms,
            "y": merge(terms, bias)}
