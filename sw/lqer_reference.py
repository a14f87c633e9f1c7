"""NumPy reference of one LQER linear layer, composed from :mod:`sw.mxint` and :mod:`sw.blockmath`.

The bit-true emulation (:mod:`sw.bittrue`) and the RTL datapath answer to
this, bit for bit. With reduction-axis blocking (W_q and A along d_in, B
along the rank), on tokens x (T, d_in)::

    x_q  = quantize(x, a_width, axis=-1)
    main = accumulate(block_matmul_partials(x_q, W_q))              (A_m, lsb_m)
    t    = quantize_exact(accumulate(block_matmul_partials(x_q, A^T)), lowrank_width)
    u    = quantize_exact(accumulate(block_matmul_partials(t, B^T)), lowrank_width)
    y    = fl64(A_m * 2**lsb_m + u) + bias

The datapath's complete output (:func:`lqer_linear_output`) merges the terms in
hardware and requantizes them for the next layer::

    y_q  = quantize_exact(accumulate([main partials..., u, bias]), out_format)

i.e. u and the (MXINT) bias are two more partials of each output channel's main
accumulation, under the same running-max rule (so the merge needs no wider register
than the main accumulator), and the result is MXINT along ``d_out``.
"""

from __future__ import annotations

import numpy as np

from sw.blockmath import accumulate, block_matmul_partials
from sw.mxint import MXQuantized, quantize, quantize_exact

__all__ = ["transpose", "lqer_linear_terms", "lqer_linear_output", "reference_lqer_linear",
           "element_partials"]


def transpose(q: MXQuantized) -> MXQuantized:
    """The same 2-d MXINT tensor transposed (its blocks move with their axis)."""
    return q.transpose()


def _check_last_axis(q: MXQuantized, what: str) -> None:
    if q.axis != 1:
        raise ValueError(f"{what} must be blocked along its reduction axis for the bit-true layer")


def lqer_linear_terms(qx: MXQuantized, weight_t: MXQuantized, a_t: MXQuantized | None = None,
                      b_t: MXQuantized | None = None, *, lowrank_width: int = 8,
                      exponent_bits: int = 8, rounding: str = "even",
                      guard_bits: int | None = 8, acc_rounding: str = "even") -> dict:
    """The layer's exact terms on already quantized operands: keys main, t, u.

    Every operand is blocked along its last (reduction) axis: activations ``qx``
    ``(T, d_in)``; ``weight_t`` = W_q ``(d_out, d_in)``; ``a_t`` = A^T ``(rank, d_in)``;
    ``b_t`` = B^T ``(d_out, rank)`` (both or neither). ``main`` is the accumulator
    ``(A_m, lsb_m)``, each ``(T, d_out)`` int64 (value ``A_m * 2**lsb_m``); ``t``
    ``(T, rank)`` and ``u`` ``(T, d_out)`` are MXINT(``lowrank_width``) blocks along the
    last axis, or ``None`` without ``a_t``. Accumulation is
    :func:`sw.blockmath.accumulate` (``guard_bits``, ``acc_rounding``); requantization is
    :func:`sw.mxint.quantize_exact` (``rounding``). Raises ``ValueError`` when an operand is
    not blocked along its last axis or only one of ``a_t``, ``b_t`` is given.
    """
    _check_last_axis(weight_t, "weight")
    if (a_t is None) != (b_t is None):
        raise ValueError("a_t and b_t must be given together")
    main = accumulate(*block_matmul_partials(qx, weight_t), guard_bits=guard_bits,
                      rounding=acc_rounding)
    qt = qu = None
    if a_t is not None:
        _check_last_axis(a_t, "a")
        _check_last_axis(b_t, "b")
        t_acc = accumulate(*block_matmul_partials(qx, a_t), guard_bits=guard_bits,
                           rounding=acc_rounding)
        qt = quantize_exact(t_acc[0], t_acc[1], width=lowrank_width, block=a_t.block, axis=-1,
                            exponent_bits=exponent_bits, rounding=rounding)
        u_acc = accumulate(*block_matmul_partials(qt, b_t), guard_bits=guard_bits,
                           rounding=acc_rounding)
        qu = quantize_exact(u_acc[0], u_acc[1], width=lowrank_width, block=b_t.block, axis=-1,
                            exponent_bits=exponent_bits, rounding=rounding)
    return {"main": main, "t": qt, "u": qu}


def element_partials(q: MXQuantized) -> tuple[np.ndarray, np.ndarray]:
    """A 2-d or 1-d MXINT tensor blocked along its last axis as one partial per element:
    ``(mantissas, lsb_exponents)``, both shaped like the mantissas (value ``m * 2**lsb``)."""
    if q.axis != q.mantissas.ndim - 1:
        raise ValueError("the tensor must be blocked along its last axis")
    lsb = np.repeat(q.lsb_exponents, q.block, axis=-1)[..., :q.mantissas.shape[-1]]
    return q.mantissas.astype(np.int64), lsb.astype(np.int64)


def lqer_linear_output(qx: MXQuantized, weight_t: MXQuantized, a_t: MXQuantized | None = None,
                       b_t: MXQuantized | None = None, bias: MXQuantized | None = None, *,
                       out_format, lowrank_format=None, guard_bits: int = 8,
                       acc_rounding: str = "even") -> MXQuantized:
    """The LQER datapath's complete output on already quantized operands: MXINT blocks of
    ``out_format`` along ``d_out``, ``(T, d_out)``.

    Per token and output channel, the partials of the main dot product (one per block of
    ``d_in``, in order), then ``u`` (the low-rank term, MXINT ``lowrank_format`` blocks along
    ``d_out``; see :func:`lqer_linear_terms`), then the bias (``bias``: MXINT ``(d_out,)``
    blocked along ``d_out``, when given) are accumulated by :func:`sw.blockmath.accumulate`
    (``guard_bits``, ``acc_rounding``: the same register and rule as the main path), and the
    results are requantized by :func:`sw.mxint.quantize_exact` in ``out_format``.

    Error against the exact ``main + u + bias``: the accumulation's bound (below
    ``(n - 1) * 2**(E - G)``, half that for "even", with ``n = d_in/block + 2`` partials and
    ``E`` the largest partial exponent) plus half a step of the output block (unless an
    element saturates). Raises ``ValueError`` as :func:`lqer_linear_terms` does, or when
    ``guard_bits`` is None (the hardware has no exact mode).
    """
    if guard_bits is None:
        raise ValueError("guard_bits must be an integer for the merged output (the datapath's "
                         "register); got None")
    sums, lsb = block_matmul_partials(qx, weight_t)              # (T, d_out, nb_in)
    extra_s, extra_p = [], []
    if a_t is not None:
        fmt = lowrank_format if lowrank_format is not None else out_format
        terms = lqer_linear_terms(qx, weight_t, a_t, b_t, lowrank_width=fmt.width,
                                  exponent_bits=fmt.exponent_bits, rounding=fmt.rounding,
                                  guard_bits=guard_bits, acc_rounding=acc_rounding)
        us, up = element_partials(terms["u"])                     # (T, d_out)
        extra_s.append(us)
        extra_p.append(up)
    if bias is not None:
        bs, bp = element_partials(bias)                           # (d_out,)
        extra_s.append(np.broadcast_to(bs, sums.shape[:2]))
        extra_p.append(np.broadcast_to(bp, sums.shape[:2]))
    if extra_s:
        sums = np.concatenate([sums, np.stack(extra_s, axis=-1)], axis=-1)
        lsb = np.concatenate([lsb, np.stack(extra_p, axis=-1)], axis=-1)
    acc, acc_lsb = accumulate(sums, lsb, guard_bits=guard_bits, rounding=acc_rounding)
    return quantize_exact(acc, acc_lsb, out_format, axis=-1)


def reference_lqer_linear(x, weight: MXQuantized, a: MXQuantized | None = None,
                          b: MXQuantized | None = None, bias=None, *, a_width: int = 8,
                          lowrank_width: int = 8, exponent_bits: int = 8, rounding: str = "even",
                          guard_bits: int | None = 8, acc_rounding: str = "even") -> dict:
    """Every intermediate of the layer on x (T, d_in): keys x, main, t, u, y.

    ``weight`` (d_out, d_in) axis 1; ``a`` (d_in, k) axis 0; ``b`` (k, d_out)
    axis 0 -- the layout of :class:`sw.factors.LayerFactors`. ``x`` is quantized to
    MXINT(``a_width``) along its last axis (:func:`sw.mxint.quantize`), then
    :func:`lqer_linear_terms` gives main, t, u, and ``y = fl64(main + u) + bias``.
    """
    _check_last_axis(weight, "weight")
    qx = quantize(np.asarray(x), width=a_width, block=weight.block, axis=-1,
                  exponent_bits=exponent_bits, rounding=rounding)
    a_t = b_t = None
    if a is not None:
        a_t, b_t = transpose(a), transpose(b)
    terms = lqer_linear_terms(qx, weight, a_t, b_t, lowrank_width=lowrank_width,
                              exponent_bits=exponent_bits, rounding=rounding,
                              guard_bits=guard_bits, acc_rounding=acc_rounding)
    main = terms["main"]
    y = np.ldexp(main[0].astype(np.float64), main[1].astype(np.int32))
    if terms["u"] is not None:
        y = y + terms["u"].dequantize()
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return {"x": qx, **terms, "y": y}
