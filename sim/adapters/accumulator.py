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
        FieldSpec("last", "last", "(N,) 1 on the final partial of each result; item i belongs "
                  "to slot i mod slots, and each slot's final item must be 1"),
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

    @staticmethod
    def _slots(dut, n: int) -> list[np.ndarray]:
        """Item indices of each slot: item ``i`` belongs to slot ``i mod slots``."""
        return [np.arange(k, n, dut.slots) for k in range(dut.slots)]

    def extra_checks(self, dut, inputs):
        """Every slot's last item has ``last`` = 1 (item ``i`` belongs to slot ``i mod
        slots``), and no result has more than ``max_partials`` partials (the register
        width holds that many; :func:`sw.blockmath.accumulator_width`)."""
        last = inputs["last"]
        for k, idx in enumerate(self._slots(dut, len(last))):
            if len(idx) and last[idx[-1]] != 1:
                raise ValueError(f"last must be 1 on the final partial of every slot (slot {k}, "
                                 f"item {int(idx[-1])}); got 0")
            ends = np.flatnonzero(last[idx])
            if len(ends):
                lengths = np.diff(np.concatenate([[-1], ends]))
                if lengths.max() > dut.max_partials:
                    raise ValueError(f"partials per result must be at most max_partials = "
                                     f"{dut.max_partials}; got {int(lengths.max())}")

    def output_count(self, dut, inputs):
        """One output per ``last`` flag."""
        return int(np.count_nonzero(inputs["last"]))

    @staticmethod
    def _serial(dut, sums, exps, last):
        """Results of one slot's partials: ``(A, lsb, index of each result's last item)``."""
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
        return acc, lsb, ends

    def reference(self, dut, inputs):
        """Per result, in the order of their ``last`` items: :func:`sw.blockmath.accumulate`
        over its slot's partials (``guard_bits``, ``rounding``), then, with ``out_format``,
        :func:`sw.mxint.quantize_exact`."""
        sums, exps, last = inputs["sums"], inputs["exponents"], inputs["last"]
        parts = []
        for idx in self._slots(dut, len(last)):
            acc, lsb, ends = self._serial(dut, sums[idx], exps[idx], last[idx])
            parts.append((acc, lsb, idx[ends]))
        order = np.argsort(np.concatenate([p[2] for p in parts]), kind="stable")
        acc = np.concatenate([p[0] for p in parts])[order]
        lsb = np.concatenate([p[1] for p in parts])[order]
        f = dut.out_format
        if f is None:
            return {"values": acc, "exponents": lsb}
        q = quantize_exact(acc, lsb, f)
        return {"exponents": q.exponents[:, 0].astype(np.int64),
                "mantissas": q.mantissas.astype(np.int64)}

    def random_inputs(self, dut, n, rng):
        """About ``n`` partials: per slot, results of 1..min(max_partials, 12) partials
        (all slots equally long, each ending with ``last``), interleaved round-robin; in
        slot 0 one full-length result of maximal same-sign partials at the largest
        exponent (the register width) when there is room; exponents mostly within a few
        guard-bit spans of a per-result base, some at the extremes."""
        per_slot = -(-n // dut.slots)
        streams = [self._serial_inputs(dut, per_slot, rng, full=(k == 0))
                   for k in range(dut.slots)]
        total = per_slot * dut.slots
        out = {key: np.zeros((total,) + streams[0][key].shape[1:], np.int64)
               for key in streams[0]}
        for k, stream in enumerate(streams):
            for key, value in stream.items():
                out[key][k::dut.slots] = value
        return out

    @staticmethod
    def _serial_inputs(dut, total, rng, *, full):
        """Exactly ``total`` partials of one slot, ending with a ``last``."""
        lanes, g = dut.lanes, dut.guard_bits
        lo, hi = dut.exponent_range
        smax = 2 ** (dut.sum_width - 1) - 1
        longest = min(dut.max_partials, 12)
        head = [dut.max_partials] if full and dut.max_partials <= total // 2 else []
        draws = rng.integers(1, longest + 1, size=total)
        lengths = np.concatenate([head, draws]).astype(np.int64)
        cut = int(np.searchsorted(np.cumsum(lengths), total))
        lengths = lengths[:cut + 1]
        lengths[-1] -= int(lengths.sum()) - total
        lengths = lengths[lengths > 0]
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
        if head:
            s[:lengths[0]] = smax if rng.random() < 0.5 else -smax - 1
            e[:lengths[0]] = hi
        return {"sums": s, "exponents": e, "last": last}


register_adapter(AccumulatorAdapter())
