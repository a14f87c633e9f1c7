"""Adapter of ``quantize`` (:class:`hw.quantizer.Quantizer`): fixed-point blocks in, MXINT
blocks out; reference :func:`sw.mxint.quantize_exact`."""

from __future__ import annotations

import numpy as np

from sim.adapters.base import Adapter, Bounds, FieldSpec, register_adapter
from sw.mxint import quantize_exact

__all__ = ["QuantizerAdapter"]


class QuantizerAdapter(Adapter):
    """``quantize``: N blocks of signed ``in_width``-bit integers worth
    ``values * 2**-frac_bits`` in, N MXINT blocks out."""

    design = "quantizer"
    inputs = (FieldSpec("values", "values",
                        "(N, block) signed in_width-bit integers worth values * 2**-frac_bits"),)
    outputs = (
        FieldSpec("exponents", "exponent", "(N,) shared exponents, unbiased"),
        FieldSpec("mantissas", "mantissas", "(N, block) mantissas, as sw.mxint.quantize"),
    )

    def input_bounds(self, dut):
        """``values``: ``(N, block)`` in ``-2**(in_width-1) .. 2**(in_width-1)-1``."""
        w = dut.in_width
        return {"values": Bounds(("N", dut.out_format.block), -2 ** (w - 1), 2 ** (w - 1) - 1)}

    def reference(self, dut, inputs):
        """``quantize_exact(values, -frac_bits)`` in the output format and rounding."""
        f = dut.out_format
        q = quantize_exact(inputs["values"], -dut.frac_bits, f)
        return {"exponents": q.exponents[:, 0].astype(np.int64),
                "mantissas": q.mantissas.astype(np.int64)}

    def random_inputs(self, dut, n, rng):
        """Blocks at every block-maximum exponent, 20% exact rounding ties, 10% power-of-two
        maxima; the first six are zero, all most-negative, all most-positive, one element
        set at either end, and alternating extremes."""
        f, w = dut.out_format, dut.in_width
        b = f.block
        top = 2 ** (w - 1)
        v = rng.integers(-top, top, size=(n, b))
        v >>= rng.integers(0, w, size=(n, 1))  # every block-maximum exponent
        # ties: a grid of the output step with exactly half a step added
        ties = rng.random((n, 1)) < 0.2
        step_bits = rng.integers(1, w, size=(n, 1))
        tie = ((v >> step_bits) << step_bits) + np.where(step_bits > 0, 1 << (step_bits - 1), 0)
        v = np.where(ties, np.clip(tie, -top, top - 1), v)
        # power-of-two maxima
        p2 = rng.random(n) < 0.1
        pos = rng.integers(0, b, n)
        mag = np.int64(1) << rng.integers(0, w - 1, n)
        v[p2, :] %= np.maximum(mag[p2, None], 1)
        v[p2, pos[p2]] = np.where(rng.random(p2.sum()) < 0.5, mag[p2], -mag[p2])
        edges = (np.zeros(b), np.full(b, -top), np.full(b, top - 1), np.eye(1, b, 0)[0],
                 -np.eye(1, b, b - 1)[0], np.resize([top - 1, -top], b))
        for k, edge in enumerate(edges[:n]):
            v[k] = edge
        return {"values": v.astype(np.int64)}


register_adapter(QuantizerAdapter())
