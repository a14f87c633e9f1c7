"""NumPy reference of one LQER linear layer, composed from :mod:`sw.mxint` and :mod:`sw.blockmath`.

The bit-true emulation (:mod:`sw.bittrue`) and the RTL datapath answer to
this, bit for bit. With reduction-axis blocking (W_q and A along d_in, B
along the rank), on tokens x (T, d_in)::

    x_q  = quantize(x, a_width, axis=-1)
    main = accumulate(block_matmul_partials(x_q, W_q))              (A_m, lsb_m)
    t    = quantize_exact(accumulate(block_matmul_partials(x_q, A^T)), lowrank_width)
    u    = quantize_exact(accumulate(block_matmul_partials(t, B^T)), lowrank_width)
    y    = fl64(A_m * 2**lsb_m + u) + bias
"""

from __future__ import annotations

import numpy as np

from sw.blockmath import accumulate, block_matmul_partials
from sw.mxint import MXQuantized, quantize, quantize_exact

__all__ = ["transpose", "reference_lqer_linear"]


def transpose(q: MXQuantized) -> MXQuantized:
    """The same 2-d MXINT tensor transposed (its blocks move with their axis)."""
    return q.transpose()


def _check_last_axis(q: MXQuantized, what: str) -> None:
    if q.axis != 1:
        raise ValueError(f"{what} must be blocked along its reduction axis for the bit-true layer")


def reference_lqer_linear(x, weight: MXQuantized, a: MXQuantized | None = None,
                          b: MXQuantized | None = None, bias=None, *, a_width: int = 8,
                          lowrank_width: int = 8, exponent_bits: int = 8, rounding: str = "even",
                          guard_bits: int | None = 8, acc_rounding: str = "even") -> dict:
    """Every intermediate of the layer on x (T, d_in): keys x, main, t, u, y.

    ``weight`` (d_out, d_in) axis 1; ``a`` (d_in, k) axis 0; ``b`` (k, d_out)
    axis 0 -- the layout of :class:`sw.factors.LayerFactors`.
    """
    _check_last_axis(weight, "weight")
    block = weight.block
    qx = quantize(np.asarray(x), width=a_width, block=block, axis=-1, exponent_bits=exponent_bits,
                  rounding=rounding)
    main = accumulate(*block_matmul_partials(qx, weight), guard_bits=guard_bits,
                      rounding=acc_rounding)
    y = np.ldexp(main[0].astype(np.float64), main[1].astype(np.int32))
    qt = qu = None
    if a is not None:
        a_t, b_t = transpose(a), transpose(b)
        _check_last_axis(a_t, "a")
        _check_last_axis(b_t, "b")
        t_acc = accumulate(*block_matmul_partials(qx, a_t), guard_bits=guard_bits,
                           rounding=acc_rounding)
        qt = quantize_exact(t_acc[0], t_acc[1], width=lowrank_width, block=block, axis=-1,
                            exponent_bits=exponent_bits, rounding=rounding)
        u_acc = accumulate(*block_matmul_partials(qt, b_t), guard_bits=guard_bits,
                           rounding=acc_rounding)
        qu = quantize_exact(u_acc[0], u_acc[1], width=lowrank_width, block=block, axis=-1,
                            exponent_bits=exponent_bits, rounding=rounding)
        y = y + qu.dequantize()
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return {"x": qx, "main": main, "t": qt, "u": qu, "y": y}
