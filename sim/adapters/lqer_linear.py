"""Adapter of ``lqer-linear`` (:class:`hw.lqer_linear.LQERLinear`): operand matrices in, one
output item per block of output channels per token; reference
:func:`sw.lqer_reference.lqer_linear_terms` (two-term output) or
:func:`sw.lqer_reference.lqer_linear_output` (merged output).

The user gives the layer's operands once (W_q, A^T, B^T) and T tokens of activations;
the input stream is laid out by :mod:`hw.lqer_schedule` as per-token activation blocks
beside per-layer weight steps (:class:`sim.stream.InputStream`, tiled form), so it
does not grow with T beyond the activations themselves.
"""

from __future__ import annotations

import numpy as np

from hw.lqer_schedule import activation_blocks, activation_order, weight_steps
from sim.adapters.base import (Adapter, Bounds, FieldSpec, random_mantissas,
                               register_adapter)
from sim.stream import InputStream
from sw.lqer_reference import lqer_linear_output, lqer_linear_terms
from sw.mxint import MXQuantized

__all__ = ["LQERLinearAdapter"]


class LQERLinearAdapter(Adapter):
    """``lqer-linear``: T tokens of activations and one layer's operands in (A^T and B^T
    only when ``rank > 0``); ``T * d_out / block`` output items out."""

    design = "lqer-linear"
    counts = {"T": "token"}
    inputs = (
        FieldSpec("x_mantissas", "", "(T, d_in) activation mantissas (T tokens)"),
        FieldSpec("x_exponents", "", "(T, d_in/block) activation block exponents"),
        FieldSpec("w_mantissas", "", "(d_out, d_in) W_q mantissas (w_width bits)"),
        FieldSpec("w_exponents", "", "(d_out, d_in/block) W_q block exponents"),
        FieldSpec("a_mantissas", "", "(rank, d_in) A^T mantissas (rank > 0)"),
        FieldSpec("a_exponents", "", "(rank, d_in/block) A^T block exponents"),
        FieldSpec("b_mantissas", "", "(d_out, rank) B^T mantissas"),
        FieldSpec("b_exponents", "", "(d_out, rank/block) B^T block exponents"),
        FieldSpec("bias_mantissas", "", "(1, d_out) bias mantissas (merged output with bias)"),
        FieldSpec("bias_exponents", "", "(1, d_out/block) bias block exponents"),
    )
    outputs = (
        FieldSpec("main_values", "main_values",
                  "(T*d_out/block, block) main accumulator per channel, row = token * "
                  "d_out/block + output block"),
        FieldSpec("main_exponents", "main_exponents", "(T*d_out/block, block) main = "
                  "main_values * 2**main_exponents"),
        FieldSpec("u_exponents", "u.exponent", "(T*d_out/block,) exponent of the u block"),
        FieldSpec("u_mantissas", "u.mantissas", "(T*d_out/block, block) u mantissas; "
                  "y = main + u * 2**(u_exponents - (lowrank_width - 2))"),
    )

    #: outputs of the merged datapath (``output="mxint"``)
    merged_outputs = (
        FieldSpec("exponents", "exponent", "(T*d_out/block,) shared exponent of the output "
                  "block (merged output)"),
        FieldSpec("mantissas", "mantissas", "(T*d_out/block, block) MXINT(a_width) "
                  "mantissas of y (merged output)"),
    )

    def output_fields(self, dut):
        """Main terms, plus the u block when ``rank > 0``; or the merged MXINT blocks."""
        if dut.output == "mxint":
            return self.merged_outputs
        return self.outputs if dut.rank else self.outputs[:2]

    @staticmethod
    def _operands(dut) -> dict:
        """Operand key -> (rows, columns, format); rows ``"T"`` for the activations."""
        s = dut.schedule
        ops = {"x": ("T", s.d_in, dut.a_format), "w": (s.d_out, s.d_in, dut.w_format)}
        if dut.rank:
            ops.update(a=(s.rank, s.d_in, dut.lowrank_format),
                       b=(s.d_out, s.rank, dut.lowrank_format))
        if dut.bias:
            ops["bias"] = (1, s.d_out, dut.a_format)
        return ops

    def input_bounds(self, dut):
        """Per operand, mantissas ``(rows, cols)`` with ``|m| <= mantissa_max`` and
        exponents ``(rows, cols / block)`` in the exponent range of its format; rows are
        T for x, d_out for W_q and B^T, rank for A^T."""
        bounds = {}
        for key, (rows, cols, fmt) in self._operands(dut).items():
            bounds[f"{key}_mantissas"] = Bounds((rows, cols), -fmt.mantissa_max,
                                                fmt.mantissa_max)
            bounds[f"{key}_exponents"] = Bounds((rows, cols // fmt.block), *fmt.exponent_range)
        return bounds

    def output_count(self, dut, inputs):
        """``T * d_out / block``."""
        return inputs.counts["T"] * dut.schedule.nb_out

    def input_stream(self, dut, inputs):
        """Tiled stream: per token the activation blocks, per step the weight slots
        (:func:`hw.lqer_schedule.weight_steps`, stored once)."""
        s = dut.schedule
        ops = [inputs["w_mantissas"], inputs["w_exponents"]]
        if dut.rank:
            ops += [inputs[k] for k in ("a_mantissas", "a_exponents", "b_mantissas",
                                        "b_exponents")]
        else:
            ops += [None] * 4
        if dut.bias:
            ops += [inputs["bias_mantissas"][0], inputs["bias_exponents"][0]]
        return InputStream(tokens=activation_blocks(s, inputs["x_mantissas"],
                                                    inputs["x_exponents"]),
                           steps=weight_steps(s, *ops), index=activation_order(s))

    def reference(self, dut, inputs):
        """:func:`sw.lqer_reference.lqer_linear_terms` on the operands, with the datapath's
        ``guard_bits`` and round-half-even, reshaped to output items."""
        def mx(key):
            fmt = self._operands(dut)[key][2]
            return MXQuantized(mantissas=inputs[f"{key}_mantissas"],
                               exponents=inputs[f"{key}_exponents"], format=fmt, axis=1)

        b, fmt = dut.block, dut.lowrank_format
        low = (mx("a"), mx("b")) if dut.rank else (None, None)
        if dut.output == "mxint":
            bias = None
            if dut.bias:
                q = mx("bias")
                bias = MXQuantized(mantissas=q.mantissas[0], exponents=q.exponents[0],
                                   format=q.format, axis=0)
            y = lqer_linear_output(mx("x"), mx("w"), *low, bias, out_format=dut.a_format,
                                   lowrank_format=fmt, guard_bits=dut.guard_bits)
            return {"exponents": y.exponents.reshape(-1).astype(np.int64),
                    "mantissas": y.mantissas.reshape(-1, b).astype(np.int64)}
        terms = lqer_linear_terms(mx("x"), mx("w"), *low, lowrank_width=fmt.width,
                                  exponent_bits=fmt.exponent_bits, guard_bits=dut.guard_bits)
        main = terms["main"]
        out = {"main_values": main[0].reshape(-1, b), "main_exponents": main[1].reshape(-1, b)}
        if dut.rank:
            qu = terms["u"]
            out["u_exponents"] = qu.exponents.reshape(-1).astype(np.int64)
            out["u_mantissas"] = qu.mantissas.reshape(-1, b).astype(np.int64)
        return out

    def random_inputs(self, dut, n, rng):
        """``n`` tokens of a random layer: exponents mostly in a band around a random centre
        (so the guard bits and the requantizers round); 2% of the activation and W_q blocks
        at the format's extreme exponents; edge tokens first (up to ``n // 4``): all zero,
        all +max at the largest exponent (t and u saturate), alternating signs at the
        smallest exponent."""
        out = {}
        for key, (rows, cols, fmt) in self._operands(dut).items():
            rows = n if rows == "T" else rows
            nb = cols // fmt.block
            m = random_mantissas(rng, (rows, nb, fmt.block), fmt.width).reshape(rows, cols)
            lo, hi = fmt.exponent_range
            centre = int(rng.integers(max(lo, -8), min(hi, 8) + 1))
            e = np.clip(centre + rng.integers(-6, 7, size=(rows, nb)), lo, hi)
            if key in ("x", "w"):  # an extreme A or B block would swamp every t or u
                wild = rng.random((rows, nb))
                e = np.where(wild < 0.02, lo, np.where(wild > 0.98, hi, e))
            out[f"{key}_mantissas"], out[f"{key}_exponents"] = m, e
        xf = dut.a_format
        lo, hi = xf.exponent_range
        q = xf.mantissa_max
        edges = [(0, lo), (q, hi), (None, lo)]
        for k, (value, exp) in enumerate(edges[:max(0, n // 4)]):
            row = out["x_mantissas"][k]
            row[:] = np.resize([q, -q], row.size) if value is None else value
            out["x_exponents"][k] = exp
        return out


register_adapter(LQERLinearAdapter())
