"""Adapter of ``accumulator`` (:class:`hw.accumulator.Accumulator`): partial sums in, one
accumulated (optionally requantized) result per ``last`` flag out; reference
:func:`sw.blockmath.accumulate` (and :func:`sw.mxint.quantize_exact`)."""

from __future__ import annotations

import numpy as np

from sim.adapters.base import Adapter, Bounds, FieldSpec, register_adapter
from sw.blockmath import accumulate
from sw.mxint import quantize_exact

__all__ = ["AccumulatorAdapter"]


class AccumulatorAdapter(Adapter):
    """``accumulator``: N partials of ``lanes`` lanes in (a result closes at each
    ``last``); M = number of ``last`` flags results out."""

    design = "accumulator"
    inputs = (
        FieldSpec("sums", "sums", "(N, lanes) partial sums (dot-product outputs)"),
        FieldSpec("exponents", "exponents",
                  "(N, lanes) partial exponents: value = sums * 2**exponents"),
        FieldSpec("last", "last", "(N,) 1 on the final partial of each result; last[-1] must be 1"),
    )
    outputs = (
        FieldSpec("values", "values",
                  "(M, lanes) accumulator A per result (M = number of last flags)"),
        FieldSpec("exponents", "exponents", "(M, lanes) value = values * 2**exponents"),
    )
    #: outputs when the accumulator requantizes (``out_width > 0``)
    requantized_outputs = (
        FieldSpec("exponents", "exponent",
                  "(M,) shared exponent of the requantized block (out_width > 0)"),
        FieldSpec("mantissas", "mantissas", "(M, lanes) requantized mantissas (out_width > 0)"),
    )

    def output_fields(self, dut):
        """:attr:`outputs`, or :attr:`requantized_outputs` when ``dut`` requantizes."""
        return self.outputs if dut.out_format is None else self.requantized_outputs

    def input_bounds(self, dut):
        """``sums`` ``(N, lanes)`` signed ``sum_width`` bits; ``exponents`` ``(N, lanes)``
        in the partial exponent range; ``last`` ``(N,)`` 0 or 1."""
        lanes, sw_ = dut.lanes, dut.sum_width
        return {"sums": Bounds(("N", lanes), -2 ** (sw_ - 1), 2 ** (sw_ - 1) - 1),
                "exponents": Bounds(("N", lanes), *dut.exponent_range),
                "last": Bounds(("N",), 0, 1)}

    def extra_checks(self, dut, inputs):
        """``last[-1]`` is 1 and no result has more than ``max_partials`` partials (the
        register width holds that many; :func:`sw.blockmath.accumulator_width`)."""
        last = inputs["last"]
        if last[-1] != 1:
            raise ValueError("last must be 1 on the final partial (last[-1]); got 0")
        ends = np.flatnonzero(last)
        lengths = np.diff(np.concatenate([[-1], ends]))
        if lengths.max() > dut.max_partials:
            raise ValueError(f"partials per result must be at most max_partials = "
                             f"{dut.max_partials}; got {int(lengths.max())}")

    def output_count(self, dut, inputs):
        """One output per ``last`` flag."""
        return int(np.count_nonzero(inputs["last"]))

    def reference(self, dut, inputs):
        """Per result: :func:`sw.blockmath.accumulate` over its partials (``guard_bits``,
        ``rounding``), then, with ``out_format``, :func:`sw.mxint.quantize_exact`."""
        sums, exps, last = inputs["sums"], inputs["exponents"], inputs["last"]
        ends = np.flatnonzero(last)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts + 1
        m, lanes = len(ends), dut.lanes
        acc = np.zeros((m, lanes), np.int64)
        lsb = np.zeros((m, lanes), np.int64)
        for length in np.unique(lengths):  # one vectorised call per result length
            which = np.flatnonzero(lengths == length)
            idx = starts[which, None] + np.arange(length)  # (g, length)
            a, e = accumulate(np.moveaxis(sums[idx], 1, 2), np.moveaxis(exps[idx], 1, 2),
                              guard_bits=dut.guard_bits, rounding=dut.rounding)
            acc[which], lsb[which] = a, e
        f = dut.out_format
        if f is None:
            return {"values": acc, "exponents": lsb}
        q = quantize_exact(acc, lsb, f)
        return {"exponents": q.exponents[:, 0].astype(np.int64),
                "mantissas": q.mantissas.astype(np.int64)}

    def random_inputs(self, dut, n, rng):
        """About ``n`` partials in results of 1..min(max_partials, 12) partials; one
        full-length result of maximal same-sign partials at the largest exponent (the
        register width) when ``max_partials <= n // 2``; exponents mostly within a few
        guard-bit spans of a per-result base, some at the extremes."""
        lanes, g = dut.lanes, dut.guard_bits
        lo, hi = dut.exponent_range
        smax = 2 ** (dut.sum_width - 1) - 1
        longest = min(dut.max_partials, 12)
        draws = rng.integers(1, longest + 1, size=n)
        draws = draws[:int(np.searchsorted(np.cumsum(draws), n)) + 1]
        full = [dut.max_partials] if dut.max_partials <= n // 2 else []
        lengths = np.concatenate([full, draws]).astype(np.int64)
        total = int(lengths.sum())
        s = rng.integers(-smax, smax + 1, size=(total, lanes))
        s >>= rng.integers(0, dut.sum_width, size=(total, lanes))
        s *= rng.random((total, lanes)) > 0.05  # some zero partials
        base = rng.integers(lo, hi + 1, size=(len(lengths), 1))
        base = np.repeat(base, lengths, axis=0)
        spread = rng.integers(0, g + 4, size=(total, lanes))
        e = np.clip(base - spread, lo, hi)
        wild = rng.random((total, lanes))
        e = np.where(wild < 0.03, lo, np.where(wild > 0.97, hi, e))
        e = np.where((wild > 0.4) & (wild < 0.45), rng.integers(lo, hi + 1, (total, lanes)), e)
        last = np.zeros(total, np.int64)
        last[np.cumsum(lengths) - 1] = 1
        if full:
            s[:lengths[0]] = smax if rng.random() < 0.5 else -smax - 1
            e[:lengths[0]] = hi
        return {"sums": s, "exponents": e, "last": last}


register_adapter(AccumulatorAdapter())
