"""Adapter of ``dot-array`` (:class:`hw.dot_array.DotArray`): one activation block against
``lanes`` weight blocks per vector; reference :func:`sw.blockmath.block_dot`.
(``lanes=1`` is the single dot product.)"""

from __future__ import annotations


from sim.adapters.base import (Adapter, Bounds, FieldSpec, edge_blocks, mx_blocks,
                               random_exponents, random_mantissas, register_adapter)
from sw.blockmath import block_dot

__all__ = ["DotArrayAdapter"]


class DotArrayAdapter(Adapter):
    """``dot-array``: N vectors of (x block, ``lanes`` w blocks) in, N x lanes exact dot
    products out, lane ``k`` being ``block_dot(x, w[k])``."""

    design = "dot-array"
    inputs = (
        FieldSpec("x_exponents", "x.exponent", "(N,) activation block exponents, unbiased"),
        FieldSpec("x_mantissas", "x.mantissas",
                  "(N, block) activation mantissas, |m| <= 2**(a_width-1)-1"),
        FieldSpec("w_exponents", "w.exponent", "(N, lanes) weight block exponents, unbiased"),
        FieldSpec("w_mantissas", "w.mantissas",
                  "(N, lanes, block) weight mantissas, |m| <= 2**(w_width-1)-1"),
    )
    outputs = (
        FieldSpec("sums", "sums", "(N, lanes) exact integer dot products"),
        FieldSpec("exponents", "exponents", "(N, lanes) value = sums * 2**exponents"),
    )

    def input_bounds(self, dut):
        """x: ``(N,)`` / ``(N, block)``; w: ``(N, lanes)`` / ``(N, lanes, block)``; each
        in its format's exponent range and ``|m| <= mantissa_max``."""
        xf, wf, b, p = dut.a_format, dut.w_format, dut.a_format.block, dut.lanes
        return {
            "x_exponents": Bounds(("N",), *xf.exponent_range),
            "x_mantissas": Bounds(("N", b), -xf.mantissa_max, xf.mantissa_max),
            "w_exponents": Bounds(("N", p), *wf.exponent_range),
            "w_mantissas": Bounds(("N", p, b), -wf.mantissa_max, wf.mantissa_max),
        }

    def reference(self, dut, inputs):
        """``sums`` and ``exponents`` ``(N, lanes)``: :func:`sw.blockmath.block_dot` of the
        activation block (broadcast over the lanes) with each weight block."""
        xm, xe = inputs["x_mantissas"][:, None, :], inputs["x_exponents"][:, None]
        sums, lsb = block_dot(mx_blocks(xm, xe, dut.a_format),
                              mx_blocks(inputs["w_mantissas"], inputs["w_exponents"],
                                        dut.w_format))
        return {"sums": sums[..., 0], "exponents": lsb[..., 0]}

    def random_inputs(self, dut, n, rng):
        """Random operands; the first ``min(n // 4, 64)`` vectors pair edge-case blocks
        (:func:`edge_blocks`) of x and w in a shuffled order."""
        xf, wf, b, p = dut.a_format, dut.w_format, dut.a_format.block, dut.lanes
        n_edge = min(n // 4, 64)
        xm = random_mantissas(rng, (n, b), xf.width)
        wm = random_mantissas(rng, (n, p, b), wf.width)
        xe = random_exponents(rng, (n,), xf)
        we = random_exponents(rng, (n, p), wf)
        xm[:n_edge], xe[:n_edge] = edge_blocks(n_edge, xf)
        em, ee = edge_blocks(n_edge, wf)
        order = rng.permutation(n_edge)  # pair edge cases with each other in varied ways
        wm[:n_edge] = em[order][:, None, :]
        we[:n_edge] = ee[order][:, None]
        return {"x_exponents": xe, "x_mantissas": xm, "w_exponents": we, "w_mantissas": wm}


register_adapter(DotArrayAdapter())
