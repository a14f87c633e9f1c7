"""Adapters of ``lqer-linear`` and ``resq-linear`` (:class:`hw.lqer_linear.LQERLinear` in its
two modes): operand matrices in, one output item per block of output channels per token;
reference :func:`sw.lqer_reference.lqer_linear_terms` / :func:`sw.resq_reference.resq_linear_terms`
(two-term output) or :func:`sw.lqer_reference.lqer_linear_output` /
:func:`sw.resq_reference.resq_linear_output` (merged output).

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
from sw.resq_reference import resq_linear_output, resq_linear_terms

__all__ = ["LQERLinearAdapter", "ResQLinearAdapter"]


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

    def _mx(self, dut, inputs, key) -> MXQuantized:
        """Operand ``key`` as an MXQuantized blocked along axis 1 (the bias: a vector)."""
        fmt = self._operands(dut)[key][2]
        q = MXQuantized(mantissas=inputs[f"{key}_mantissas"],
                        exponents=inputs[f"{key}_exponents"], format=fmt, axis=1)
        if key == "bias":
            q = MXQuantized(mantissas=q.mantissas[0], exponents=q.exponents[0], format=fmt,
                            axis=0)
        return q

    @staticmethod
    def _merged(dut, y) -> dict:
        return {"exponents": y.exponents.reshape(-1).astype(np.int64),
                "mantissas": y.mantissas.reshape(-1, dut.block).astype(np.int64)}

    # the edge tokens of random_inputs: operands whose rows are tokens
    _token_operands = ("x",)
    # operands with 2% of their blocks at the extreme exponents
    _wild_operands = ("x", "w")

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
            return self._mx(dut, inputs, key)

        b, fmt = dut.block, dut.lowrank_format
        low = (mx("a"), mx("b")) if dut.rank else (None, None)
        if dut.output == "mxint":
            bias = mx("bias") if dut.bias else None
            y = lqer_linear_output(mx("x"), mx("w"), *low, bias, out_format=dut.a_format,
                                   lowrank_format=fmt, guard_bits=dut.guard_bits)
            return self._merged(dut, y)
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
            if key in self._wild_operands:  # (LQER: an extreme A or B block would swamp
                wild = rng.random((rows, nb))  # every t or u)
                e = np.where(wild < 0.02, lo, np.where(wild > 0.98, hi, e))
            out[f"{key}_mantissas"], out[f"{key}_exponents"] = m, e
        ops = self._operands(dut)
        for key in self._token_operands:
            if key not in ops:
                continue
            xf = ops[key][2]
            lo, hi = xf.exponent_range
            q = xf.mantissa_max
            edges = [(0, lo), (q, hi), (None, lo)]
            for k, (value, exp) in enumerate(edges[:max(0, n // 4)]):
                row = out[f"{key}_mantissas"][k]
                row[:] = np.resize([q, -q], row.size) if value is None else value
                out[f"{key}_exponents"][k] = exp
        return out


register_adapter(LQERLinearAdapter())


class ResQLinearAdapter(LQERLinearAdapter):
    """``resq-linear`` (:class:`hw.lqer_linear.LQERLinear`, ``mode="resq"``): T tokens of
    projected, quantized coordinates (z_l and, when ``r > 0``, z_h) and the layer's W_l,
    W_h in; ``T * d_out / block`` output items out. The projection ``z = x U`` is outside
    the datapath (:mod:`sim.lqer_layer` does it in float64 for ``--factors``)."""

    design = "resq-linear"
    inputs = (
        FieldSpec("x_mantissas", "", "(T, d_in-r) mantissas of z_l, the low-precision "
                  "coordinates (a_width bits)"),
        FieldSpec("x_exponents", "", "(T, (d_in-r)/block) z_l block exponents"),
        FieldSpec("h_mantissas", "", "(T, r) mantissas of z_h, the high-precision "
                  "coordinates (high_width bits; r > 0)"),
        FieldSpec("h_exponents", "", "(T, r/block) z_h block exponents"),
        FieldSpec("w_mantissas", "", "(d_out, d_in-r) W_l mantissas (w_width bits)"),
        FieldSpec("w_exponents", "", "(d_out, (d_in-r)/block) W_l block exponents"),
        FieldSpec("wh_mantissas", "", "(d_out, r) W_h mantissas (high_width bits)"),
        FieldSpec("wh_exponents", "", "(d_out, r/block) W_h block exponents"),
        FieldSpec("bias_mantissas", "", "(1, d_out) bias mantissas (merged output with bias; "
                  "high_width bits)"),
        FieldSpec("bias_exponents", "", "(1, d_out/block) bias block exponents"),
    )
    outputs = (
        FieldSpec("main_values", "main_values",
                  "(T*d_out/block, block) wide-path accumulator per channel (low), row = "
                  "token * d_out/block + output block"),
        FieldSpec("main_exponents", "main_exponents", "(T*d_out/block, block) low = "
                  "main_values * 2**main_exponents"),
        FieldSpec("high_values", "high_values", "(T*d_out/block, block) narrow-path "
                  "accumulator per channel (high)"),
        FieldSpec("high_exponents", "high_exponents", "(T*d_out/block, block) high = "
                  "high_values * 2**high_exponents; y = fl64(low + high) + bias"),
    )
    merged_outputs = (
        FieldSpec("exponents", "exponent", "(T*d_out/block,) shared exponent of the output "
                  "block (merged output)"),
        FieldSpec("mantissas", "mantissas", "(T*d_out/block, block) MXINT(high_width) "
                  "mantissas of y (merged output)"),
    )
    _token_operands = ("x", "h")
    _wild_operands = ("x", "h", "w", "wh")

    @staticmethod
    def _operands(dut) -> dict:
        """Operand key -> (rows, columns, format); rows ``"T"`` for the coordinates."""
        s = dut.schedule
        low = s.d_in - s.rank
        ops = {"x": ("T", low, dut.a_format)}
        if dut.rank:
            ops["h"] = ("T", s.rank, dut.lowrank_format)
        ops["w"] = (s.d_out, low, dut.w_format)
        if dut.rank:
            ops["wh"] = (s.d_out, s.rank, dut.lowrank_format)
        if dut.bias:
            ops["bias"] = (1, s.d_out, dut.out_format)
        return ops

    def input_stream(self, dut, inputs):
        """Tiled stream: per token a table of z_l and z_h blocks, per step the W_l and W_h
        slots (:func:`hw.lqer_schedule.weight_steps` in ResQ mode, stored once)."""
        s = dut.schedule
        ops = [inputs["w_mantissas"], inputs["w_exponents"], None, None]
        ops += [inputs["wh_mantissas"], inputs["wh_exponents"]] if dut.rank else [None, None]
        if dut.bias:
            ops += [inputs["bias_mantissas"][0], inputs["bias_exponents"][0]]
        high = (inputs["h_mantissas"], inputs["h_exponents"]) if dut.rank else (None, None)
        return InputStream(tokens=activation_blocks(s, inputs["x_mantissas"],
                                                    inputs["x_exponents"], *high),
                           steps=weight_steps(s, *ops), index=activation_order(s))

    def reference(self, dut, inputs):
        """:func:`sw.resq_reference.resq_linear_terms` (two-term output) or
        :func:`~sw.resq_reference.resq_linear_output` (merged: ``out_format`` and
        ``high_format`` MXINT(high_width)) with the datapath's ``guard_bits``, reshaped to
        output items."""
        def mx(key):
            return self._mx(dut, inputs, key)

        b = dut.block
        high = (mx("h"), mx("wh")) if dut.rank else (None, None)
        if dut.output == "mxint":
            y = resq_linear_output(mx("x"), mx("w"), *high, mx("bias") if dut.bias else None,
                                   out_format=dut.out_format, high_format=dut.lowrank_format,
                                   guard_bits=dut.guard_bits)
            return self._merged(dut, y)
        terms = resq_linear_terms(mx("x"), mx("w"), *high, guard_bits=dut.guard_bits)
        low = terms["low"]
        out = {"main_values": low[0].reshape(-1, b), "main_exponents": low[1].reshape(-1, b)}
        if dut.rank:
            out["high_values"] = terms["high"][0].reshape(-1, b)
            out["high_exponents"] = terms["high"][1].reshape(-1, b)
        return out


register_adapter(ResQLinearAdapter())
