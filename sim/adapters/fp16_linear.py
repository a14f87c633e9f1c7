"""Adapter of ``fp16-linear`` (:class:`hw.fp16_linear.FP16Linear`): binary16 activations and
weights in (bit patterns), one output item per group of ``lanes`` outputs per token;
reference :func:`sw.fp16_linear.fp16_linear_bits` (then :func:`sw.ieee.fp32_to_fp16` with
``out_fp16``).

The stream is tiled (:class:`sim.stream.InputStream`): per token the activations, per step
the weight slots of :func:`hw.fp16_linear_schedule.weight_steps`, stored once.
"""

from __future__ import annotations

import numpy as np

from hw.fp16_linear_schedule import activation_blocks, activation_order, weight_steps
from sim.adapters.base import Adapter, Bounds, FieldSpec, register_adapter
from sim.stream import InputStream
from sw import ieee
from sw.fp16_linear import fp16_linear_bits

__all__ = ["FP16LinearAdapter", "random_binary16", "special_binary16"]


def random_binary16(rng: np.random.Generator, shape: tuple, *, centre: int = 15,
                    spread: int = 4) -> np.ndarray:
    """Random finite binary16 bit patterns ``shape``: biased exponents about ``centre``
    (+- ``spread``, clipped to 0..30, so a few subnormals), uniform fractions, 5% with a
    short fraction (ties in the sums), 5% zeros of either sign."""
    e = np.clip(centre + rng.integers(-spread, spread + 1, size=shape), 0, 30)
    f = rng.integers(0, 1 << 10, size=shape)
    f = np.where(rng.random(shape) < 0.05, f & 0x300, f)
    sign = rng.integers(0, 2, size=shape)
    bits = (sign << 15) | (e << 10) | f
    return np.where(rng.random(shape) < 0.05, sign << 15, bits).astype(np.int64)


def special_binary16() -> np.ndarray:
    """Edge binary16 patterns: signed zeros, subnormals, the smallest normal, one, the
    largest finite, infinities, NaNs."""
    mags = [0, 1, 0x3FF, 0x200, 0x400, 0x3C00, 0x7BFF, 0x7C00, 0x7E00, 0x7C01]
    return np.array(mags + [v | 0x8000 for v in mags], np.int64)


class FP16LinearAdapter(Adapter):
    """``fp16-linear``: ``T`` tokens of activations and one weight matrix in, ``T * G``
    output items (``G = d_out / lanes``) out."""

    design = "fp16-linear"
    counts = {"T": "token"}
    inputs = (
        FieldSpec("x", "", "(T, d_in) binary16 bit patterns of the activations (T tokens)"),
        FieldSpec("w", "", "(d_out, d_in) binary16 bit patterns of the weights"),
    )
    outputs = (
        FieldSpec("y", "y", "(T*d_out/lanes, lanes) binary32 bit patterns (binary16 with "
                  "out_fp16), row = token * d_out/lanes + group"),
    )

    def input_bounds(self, dut):
        return {"x": Bounds(("T", dut.d_in), 0, 0xFFFF),
                "w": Bounds((dut.d_out, dut.d_in), 0, 0xFFFF)}

    def output_count(self, dut, inputs):
        return inputs.counts["T"] * dut.schedule.groups

    def input_stream(self, dut, inputs):
        s = dut.schedule
        return InputStream(tokens=activation_blocks(s, inputs["x"]),
                           steps=weight_steps(s, inputs["w"]), index=activation_order(s))

    def cycle_bound(self, dut, inputs) -> int:
        """Full-rate cycles of the run (for the benches' time limit): the published
        ``cycles_per_token`` per token, which counts the column gaps the items do not."""
        return inputs.counts["T"] * dut.cycles_per_token

    def reference(self, dut, inputs):
        y = fp16_linear_bits(inputs["x"], inputs["w"])
        if dut.out_fp16:
            y = ieee.fp32_to_fp16(y)
        return {"y": y.reshape(-1, dut.lanes)}

    def random_inputs(self, dut, n, rng):
        """``n`` tokens of a random layer (weights about 2**-4, activations about 1, a few
        subnormals and zeros, short fractions), edge tokens first (up to ``n // 4``): all
        subnormal activations; large activations against large weights (sums near 2**32);
        the edge patterns (infinities, NaNs) cycled along the row."""
        w = random_binary16(rng, (dut.d_out, dut.d_in), centre=11, spread=5)
        x = random_binary16(rng, (n, dut.d_in), centre=15, spread=6)
        edges = n // 4
        if edges >= 1:
            x[0] = rng.integers(0, 1 << 10, size=dut.d_in) | (rng.integers(0, 2, dut.d_in) << 15)
        if edges >= 2:
            x[1] = random_binary16(rng, (dut.d_in,), centre=29, spread=1)
            w[0] = random_binary16(rng, (dut.d_in,), centre=29, spread=1)
        if edges >= 3:
            x[2] = np.resize(special_binary16(), dut.d_in)
        return {"x": x, "w": w}


register_adapter(FP16LinearAdapter())
