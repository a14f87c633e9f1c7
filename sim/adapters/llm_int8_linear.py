"""Adapters of ``llm-int8-linear`` and ``w8a8-linear`` (:class:`hw.llm_int8_linear.LLMInt8Linear`
with and without its outlier path). ``llm-int8-linear``: binary16
activations, the int8 weight (codes and binary16 row absmax), the binary16 outlier weights
the gather returns and an optional binary32 bias in; one output per channel per token;
reference :func:`sw.llm_int8.linear` with the tile as detection group and the outlier
weights as given (``outlier_weights="fp16"`` on the weight the memory holds: the
dequantized int8 weights for bitsandbytes' inference mode, or the original ones).

The input stream is tiled (:class:`sim.stream.InputStream`): per tile the activation
blocks, per step the weight codes and per-output constants of
:func:`hw.llm_int8_schedule.weight_steps`, stored once. The gather port is answered by
the bench's weight memory (:mod:`sim.gather`) from :meth:`LLMInt8LinearAdapter.gather_memory`.

``w8a8-linear`` (:class:`W8A8LinearAdapter`): the same fields without the outlier weights,
the same input stream, no gather; reference :func:`sw.llm_int8.w8a8_linear`.
"""

from __future__ import annotations

import math

import numpy as np

from hw.llm_int8_schedule import (activation_blocks, activation_order, gather_pieces,
                                  weight_steps)
from sim.adapters.base import Adapter, Bounds, FieldSpec, register_adapter
from sim.stream import InputStream
from sw import ieee, llm_int8
from sw.ieee import BINARY16, BINARY32

__all__ = ["LLMInt8LinearAdapter", "W8A8LinearAdapter", "weight_fields", "tie_values"]


def weight_fields(w, *, outlier_weights: str = "int8") -> dict[str, np.ndarray]:
    """The adapter's weight fields of a float weight ``(d_out, d_in)``, quantized once by
    :func:`sw.llm_int8.quantize_weight`: ``w_codes``, ``w_absmax`` (binary16 patterns),
    ``w_outlier`` (binary16 patterns of the dequantized int8 weight, or of ``fl16(W)``
    with ``outlier_weights="fp16"``)."""
    q = llm_int8.quantize_weight(w, keep_fp16=True)
    out16 = q.dequantized16() if outlier_weights == "int8" else q.weight16
    return {"w_codes": q.codes.astype(np.int64),
            "w_absmax": ieee.bits_of(q.absmax, BINARY16),
            "w_outlier": ieee.bits_of(out16, BINARY16)}


def tie_values(s_x: float) -> np.ndarray:
    """Positive binary16 values ``x <= s_x`` whose ``fl32(x r)`` (the quantizer's product)
    lies exactly half-way between two integers: round-half-even decides them."""
    r = (np.float32(1) / np.float32(s_x)).astype(np.float32) * np.float32(llm_int8.Q_MAX)
    x = np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16)
    x = x[x.astype(np.float64) <= s_x]
    v = (x.astype(np.float32) * np.float32(r)).astype(np.float32).astype(np.float64)
    return x[v - np.floor(v) == 0.5]


class LLMInt8LinearAdapter(Adapter):
    """``llm-int8-linear``: ``N`` tokens (a multiple of the tile) and one layer in,
    ``N * d_out`` outputs out."""

    design = "llm-int8-linear"
    counts = {"N": "token"}
    memory_latency = 3
    inputs = (
        FieldSpec("x", "", "(N, d_in) binary16 bit patterns of the activations, finite; N a "
                  "multiple of tile"),
        FieldSpec("w_codes", "", "(d_out, d_in) int8 weight codes (sw.llm_int8 CB)"),
        FieldSpec("w_absmax", "", "(d_out,) binary16 bit patterns of the weight rows' absmax "
                  "s_w (SCB)"),
        FieldSpec("w_outlier", "", "(d_out, d_in) binary16 bit patterns of the weights the "
                  "gather returns (dequantized int8, or the original binary16)"),
        FieldSpec("bias", "", "(d_out,) binary32 bit patterns of the bias (bias=1)"),
    )
    outputs = (
        FieldSpec("y", "y", "(N*d_out,) binary16 (out_fp16=1) or binary32 bit patterns, "
                  "item = token * d_out + output"),
    )

    def input_bounds(self, dut):
        b = {"x": Bounds(("N", dut.d_in), 0, 0xFFFF),
             "w_codes": Bounds((dut.d_out, dut.d_in), -llm_int8.Q_MAX, llm_int8.Q_MAX),
             "w_absmax": Bounds((dut.d_out,), 0, 0x7BFF),
             "w_outlier": Bounds((dut.d_out, dut.d_in), 0, 0xFFFF)}
        if dut.bias:
            b["bias"] = Bounds((dut.d_out,), 0, 0xFFFFFFFF)
        return b

    def extra_checks(self, dut, inputs):
        n = inputs["x"].shape[0]
        if n % dut.tile:
            raise ValueError(f"x must hold a multiple of tile ({dut.tile}) tokens; got {n}")
        for name in ("x", "w_outlier"):
            if name not in inputs:      # w8a8-linear has no outlier weights
                continue
            bad = (inputs[name] & 0x7FFF) >= 0x7C00
            if bad.any():
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"{name} must be finite binary16 patterns; got "
                                 f"{hex(int(inputs[name][index]))} at {index}")
        if dut.bias and ((inputs["bias"] & 0x7FFFFFFF) >= 0x7F800000).any():
            raise ValueError("bias must be finite binary32 patterns; got a non-finite value")

    def output_count(self, dut, inputs):
        return inputs.counts["N"] * dut.d_out

    def _weight(self, inputs) -> llm_int8.Int8Weight:
        """The layer's weight as the reference takes it (the binary16 outlier weights
        only where the design has them)."""
        return llm_int8.Int8Weight(
            codes=inputs["w_codes"].astype(np.int8),
            absmax=ieee.values_of(inputs["w_absmax"], BINARY16).astype(np.float32),
            weight16=(ieee.values_of(inputs["w_outlier"], BINARY16)
                      if "w_outlier" in inputs else None))

    def _linear(self, dut, x, weight, bias) -> np.ndarray:
        """The reference's binary32 outputs: :func:`sw.llm_int8.linear` with the tile as
        detection group and the binary16 outlier weights."""
        return llm_int8.linear(x, weight, bias, threshold=dut.threshold, group=dut.tile,
                               outlier_weights="fp16").y

    def input_stream(self, dut, inputs):
        s = dut.schedule
        scale = ieee.bits_of(self._weight(inputs).int_scale(), BINARY32)
        return InputStream(tokens=activation_blocks(s, inputs["x"]),
                           steps=weight_steps(s, inputs["w_codes"], scale,
                                              inputs["bias"] if dut.bias else None),
                           index=activation_order(s))

    def reference(self, dut, inputs):
        x = ieee.values_of(inputs["x"], BINARY16)
        bias = ieee.values_of(inputs["bias"], BINARY32) if dut.bias else None
        bits = ieee.bits_of(self._linear(dut, x, self._weight(inputs), bias), BINARY32)
        if dut.out_fp16:
            bits = ieee.fp32_to_fp16(bits)
        return {"y": bits.reshape(-1)}

    def gather_memory(self, dut, inputs):
        """The weight memory's answers: ``({"w": (d_in * G_fp, P_fp)}, G_fp)``, column
        ``j``'s items at rows ``j G_fp ..`` (:func:`hw.llm_int8_schedule.gather_pieces`)."""
        s = dut.schedule
        w = np.concatenate([gather_pieces(s, inputs["w_outlier"], j) for j in range(s.d_in)])
        return {"w": w}, s.fp_groups

    def outlier_columns(self, dut, inputs) -> list[list[int]]:
        """The outlier columns of each tile (what the gather requests, per token)."""
        x = ieee.values_of(inputs["x"], BINARY16)
        q = llm_int8.quantize_rows(x, threshold=dut.threshold, group=dut.tile)
        return [np.flatnonzero(row).tolist() for row in q.outlier_columns]

    def cycle_bound(self, dut, inputs) -> int:
        """Full-rate cycles of the run, generously (for the benches' time limit)."""
        s = dut.schedule
        per_column = max(s.fp_groups, s.fp_hazard)
        total = 0
        for cols in self.outlier_columns(dut, inputs):
            total += s.steps + s.tile * (len(cols) * per_column + 2 * s.d_out + 100) + \
                s.passes(cols)
        return total

    def random_inputs(self, dut, n, rng):
        """``n`` tokens (rounded up to whole tiles) of a random layer. Tiles cycle through
        outlier patterns -- none, one column, ``M`` columns, ``M + 1`` in one chunk (an
        extra compaction pass), the first and the last column, many (a quarter of the
        columns) -- then: round-half-even ties (``s_x = 1.984375``, ``r = 64``), the
        reciprocal rule's case (``s_x = 1.01171875``, ``x = s_x / 2``), subnormal activations
        (a subnormal ``s_x``), an all-zero token. Weights: a random layer quantized by
        :func:`sw.llm_int8.quantize_weight`, its outlier weights the dequantized codes."""
        T, d_in, d_out = dut.tile, dut.d_in, dut.d_out
        n = math.ceil(n / T) * T
        w = rng.standard_normal((d_out, d_in)) * rng.choice([0.05, 0.5, 4.0], size=(d_out, 1))
        fields = weight_fields(w)
        thr = dut.threshold
        finite_thr = thr if math.isfinite(thr) and thr > 0 else 6.0
        top = min(finite_thr, 60000.0)
        x = rng.standard_normal((n, d_in)) * top / 5
        x = np.clip(x, -0.95 * top, 0.95 * top)
        # W8A8 has no compaction: its "outlier" patterns are large activations in as many
        # columns, which set s_x (the patterns of M and M + 1 columns with M = B / 4)
        M, B = dut.outputs or max(1, dut.x_lanes // 4), dut.x_lanes
        patterns = ["none", "one", "m", "m+1", "ends", "many", "ties", "reciprocal", "subnormal",
                    "zero"]
        for tile in range(n // T):
            kind = patterns[tile % len(patterns)]
            rows = slice(tile * T, tile * T + T)
            cols: list[int] = []
            if kind == "one":
                cols = [int(rng.integers(d_in))]
            elif kind == "m":
                cols = sorted(rng.choice(d_in, size=min(M, d_in), replace=False).tolist())
            elif kind == "m+1":
                c = int(rng.integers(d_in // B)) * B
                cols = list(range(c, c + min(M + 1, B)))
            elif kind == "ends":
                cols = [0, d_in - 1]
            elif kind == "many":
                cols = sorted(rng.choice(d_in, size=max(1, d_in // 4), replace=False).tolist())
            elif kind == "ties":       # r = 64 exactly: x = (k + 1/2) / 64 are ties
                s = 1.984375
                x[rows] = rng.choice(tie_values(s), size=(T, d_in)) * \
                    rng.choice([-1, 1], size=(T, d_in))
                x[rows, 0] = s
            elif kind == "reciprocal":  # 63.5 by division, 63.499996 by the reciprocal rule
                x[rows] = np.clip(x[rows], -1.01171875, 1.01171875)
                x[rows, 0], x[rows, min(1, d_in - 1)] = 1.01171875, 0.505859375
            elif kind == "subnormal":
                x[rows] = rng.integers(-1023, 1024, size=(T, d_in)) * 2.0 ** -24
            elif kind == "zero":
                x[rows] = 0.0
            for c in cols:   # an outlier in one token of the tile, sometimes negative
                t = tile * T + int(rng.integers(T))
                x[t, c] = min(finite_thr * rng.uniform(1.0, 4.0), 65504.0) * rng.choice([-1, 1])
        out = {"x": ieee.bits_of(x.astype(np.float16), BINARY16), **fields}
        if dut.bias:
            out["bias"] = ieee.bits_of(rng.standard_normal(d_out).astype(np.float32), BINARY32)
        return out


class W8A8LinearAdapter(LLMInt8LinearAdapter):
    """``w8a8-linear``: ``N`` tokens (a multiple of the tile) and one layer in, ``N *
    d_out`` outputs out; reference :func:`sw.llm_int8.w8a8_linear` (no outlier path: no
    gather, no outlier weights)."""

    design = "w8a8-linear"
    inputs = tuple(spec for spec in LLMInt8LinearAdapter.inputs if spec.name != "w_outlier")
    gather_memory = None      # no gather port (sim.runner, sim.amaranth_bench)

    def input_bounds(self, dut):
        b = super().input_bounds(dut)
        del b["w_outlier"]
        return b

    def _linear(self, dut, x, weight, bias) -> np.ndarray:
        return llm_int8.w8a8_linear(x, weight, bias).y

    def outlier_columns(self, dut, inputs) -> list[list[int]]:
        """No outlier column in any tile."""
        return [[] for _ in range(inputs["x"].shape[0] // dut.tile)]

    def cycle_bound(self, dut, inputs) -> int:
        """Full-rate cycles of the run, generously (for the benches' time limit)."""
        s = dut.schedule
        return inputs["x"].shape[0] // s.tile * (s.steps + s.tile * (2 * s.d_out + 100))

    def random_inputs(self, dut, n, rng):
        """As ``llm-int8-linear``'s (the patterns' large entries set ``s_x``), without the
        outlier weights."""
        out = super().random_inputs(dut, n, rng)
        del out["w_outlier"]
        return out


register_adapter(LLMInt8LinearAdapter())
register_adapter(W8A8LinearAdapter())
