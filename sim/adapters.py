"""Reference-model adapters: what each design's streams carry, and what they must carry.

For each registered design an :class:`Adapter` knows

- the user-facing ``.npz`` fields of its input and output streams (documented
  in ``lqer-hw sim --help``) and how they map to payload fields;
- how to validate user inputs (shape and range; one-line ``ValueError``);
- the bit-exact reference outputs (``sw.mxint`` / ``sw.blockmath``);
- random vectors plus edge cases for the benches.

Add an adapter for a new design with :func:`register_adapter`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sw.blockmath import accumulate, block_dot, block_matmul_partials
from sw.mxint import MXQuantized, quantize_exact

__all__ = ["Adapter", "FieldSpec", "ADAPTERS", "register_adapter", "get_adapter"]


@dataclass(frozen=True)
class FieldSpec:
    name: str       # .npz field
    payload: str    # payload key (see sim.codec)
    doc: str


class Adapter:
    """Base: subclasses set ``design``, ``inputs``, ``outputs`` and the methods below."""

    design: str = ""
    inputs: tuple[FieldSpec, ...] = ()
    outputs: tuple[FieldSpec, ...] = ()

    # -- per design ---------------------------------------------------------------
    def input_bounds(self, dut) -> dict[str, tuple[tuple, int, int]]:
        """Field -> (shape after N, lowest, highest) accepted on the port."""
        raise NotImplementedError

    def output_fields(self, dut) -> tuple[FieldSpec, ...]:
        return self.outputs

    def reference(self, dut, inputs: dict) -> dict:
        raise NotImplementedError

    def random_inputs(self, dut, n: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def output_count(self, dut, inputs: dict) -> int:
        return len(next(iter(inputs.values())))

    def extra_checks(self, dut, inputs: dict) -> None:
        """Constraints beyond shapes and ranges (raise a one-line ValueError)."""

    # -- shared -------------------------------------------------------------------
    def validate(self, dut, inputs: dict) -> dict:
        """Checked int64 copies of the input fields; ``ValueError`` names the first bad one."""
        bounds = self.input_bounds(dut)
        out, n = {}, None
        for spec in self.inputs:
            if spec.name not in inputs:
                raise ValueError(f"inputs must contain field {spec.name!r} "
                                 f"(fields: {', '.join(s.name for s in self.inputs)})")
            a = np.asarray(inputs[spec.name])
            if a.dtype == np.bool_:
                a = a.astype(np.int64)
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{spec.name} must be an integer array; got dtype {a.dtype}")
            dims, lo, hi = bounds[spec.name]
            if n is None:
                n = a.shape[0] if a.ndim else 0
            if a.shape != (n,) + dims:
                shape = "(" + ", ".join(["N"] + [str(d) for d in dims]) + (")" if dims else ",)")
                raise ValueError(f"{spec.name} must have shape {shape} with N = {n}; "
                                 f"got {a.shape}")
            if a.size and (a.min() < lo or a.max() > hi):
                bad = a.flat[int(np.argmax((a < lo) | (a > hi)))]
                raise ValueError(f"{spec.name} must be in {lo}..{hi}; got {int(bad)}")
            out[spec.name] = a.astype(np.int64)
        if not n:
            raise ValueError("inputs must hold at least one vector; got N = 0")
        self.extra_checks(dut, out)
        return out

    def to_payload(self, specs, arrays: dict) -> dict:
        return {s.payload: arrays[s.name] for s in specs}

    def from_payload(self, specs, arrays: dict) -> dict:
        return {s.name: arrays[s.payload] for s in specs}


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    ADAPTERS[adapter.design] = adapter
    return adapter


def get_adapter(design: str) -> Adapter:
    if design not in ADAPTERS:
        raise ValueError(f"design must be one of {', '.join(ADAPTERS)} for simulation; "
                         f"got {design!r}")
    return ADAPTERS[design]


# --- random MXINT operands ------------------------------------------------------------

def _mantissas(rng, shape, width):
    """Random symmetric mantissas with varied magnitude scales and some zeros."""
    qmax = 2 ** (width - 1) - 1
    m = rng.integers(-qmax, qmax + 1, size=shape)
    m >>= rng.integers(0, width, size=shape[:-1] + (1,))  # whole-block scale
    m = np.where(m < 0, m + 1, m) * (rng.random(shape) > 0.1)  # stay symmetric; some zeros
    return m


def _exponents(rng, shape, fmt):
    lo, hi = fmt.exponent_range
    e = rng.integers(lo, hi + 1, size=shape)
    edge = rng.random(shape)
    return np.where(edge < 0.05, lo, np.where(edge > 0.95, hi, e))


def _mx(mantissas, exponents, fmt) -> MXQuantized:
    """An MXQuantized of blocks ``mantissas`` (..., block) with ``exponents`` (...)."""
    return MXQuantized(mantissas=mantissas, exponents=exponents[..., None], format=fmt,
                       axis=mantissas.ndim - 1)


def _operand_edges(rng, n, fmt):
    """Edge-case blocks: zero, all +max, all -max, alternating, single element; at the
    extreme exponents."""
    q, b = fmt.mantissa_max, fmt.block
    lo, hi = fmt.exponent_range
    blocks = [np.zeros(b), np.full(b, q), np.full(b, -q), np.resize([q, -q], b),
              np.eye(1, b, b - 1)[0] * q, np.ones(b)]
    m = np.array([blocks[k % len(blocks)] for k in range(n)], dtype=np.int64)
    e = np.array([[lo, hi, 0][k % 3] for k in range(n)], dtype=np.int64)
    return m, e


class DotAdapter(Adapter):
    """Base of the dot-array adapter (one dot product per vector)."""

    design = ""
    inputs = (
        FieldSpec("x_exponents", "x.exponent", "(N,) activation block exponents, unbiased"),
        FieldSpec("x_mantissas", "x.mantissas",
                  "(N, block) activation mantissas, |m| <= 2**(a_width-1)-1"),
        FieldSpec("w_exponents", "w.exponent", "(N,) weight block exponents, unbiased"),
        FieldSpec("w_mantissas", "w.mantissas",
                  "(N, block) weight mantissas, |m| <= 2**(w_width-1)-1"),
    )
    outputs = (
        FieldSpec("sums", "sum", "(N,) exact integer dot products"),
        FieldSpec("exponents", "exponent", "(N,) value = sums * 2**exponents"),
    )

    def _lanes(self, dut) -> tuple:
        return ()

    def input_bounds(self, dut):
        xf, wf, b = dut.a_format, dut.w_format, dut.a_format.block
        lanes = self._lanes(dut)
        return {
            "x_exponents": ((), *xf.exponent_range),
            "x_mantissas": ((b,), -xf.mantissa_max, xf.mantissa_max),
            "w_exponents": (lanes, *wf.exponent_range),
            "w_mantissas": (lanes + (b,), -wf.mantissa_max, wf.mantissa_max),
        }

    def reference(self, dut, inputs):
        lanes = self._lanes(dut)
        xm, xe = inputs["x_mantissas"], inputs["x_exponents"]
        if lanes:  # broadcast the activation block over the lanes
            xm, xe = xm[:, None, :], xe[:, None]
        sums, lsb = block_dot(_mx(xm, xe, dut.a_format),
                              _mx(inputs["w_mantissas"], inputs["w_exponents"], dut.w_format))
        return {"sums": sums[..., 0], "exponents": lsb[..., 0]}

    def random_inputs(self, dut, n, rng):
        xf, wf, b = dut.a_format, dut.w_format, dut.a_format.block
        lanes = self._lanes(dut)
        n_edge = min(n // 4, 64)
        xm = _mantissas(rng, (n, b), xf.width)
        wm = _mantissas(rng, (n,) + lanes + (b,), wf.width)
        xe = _exponents(rng, (n,), xf)
        we = _exponents(rng, (n,) + lanes, wf)
        em, ee = _operand_edges(rng, n_edge, xf)
        xm[:n_edge], xe[:n_edge] = em, ee
        em, ee = _operand_edges(rng, n_edge, wf)
        order = rng.permutation(n_edge)  # pair edge cases with each other in varied ways
        if lanes:
            wm[:n_edge] = em[order][:, None, :]
            we[:n_edge] = ee[order][:, None]
        else:
            wm[:n_edge], we[:n_edge] = em[order], ee[order]
        return {"x_exponents": xe, "x_mantissas": xm, "w_exponents": we, "w_mantissas": wm}


class DotArrayAdapter(DotAdapter):
    design = "dot-array"
    inputs = (
        FieldSpec("x_exponents", "x.exponent", "(N,) activation block exponents, unbiased"),
        FieldSpec("x_mantissas", "x.mantissas", "(N, block) activation mantissas"),
        FieldSpec("w_exponents", "w.exponent", "(N, lanes) weight block exponents, unbiased"),
        FieldSpec("w_mantissas", "w.mantissas", "(N, lanes, block) weight mantissas"),
    )
    outputs = (
        FieldSpec("sums", "sums", "(N, lanes) exact integer dot products"),
        FieldSpec("exponents", "exponents", "(N, lanes) value = sums * 2**exponents"),
    )

    def _lanes(self, dut) -> tuple:
        return (dut.lanes,)


class QuantizeAdapter(Adapter):
    design = "quantizer"
    inputs = (FieldSpec("values", "values",
                        "(N, block) signed in_width-bit integers worth values * 2**-frac_bits"),)
    outputs = (
        FieldSpec("exponents", "exponent", "(N,) shared exponents, unbiased"),
        FieldSpec("mantissas", "mantissas", "(N, block) mantissas, as sw.mxint.quantize"),
    )

    def input_bounds(self, dut):
        w = dut.in_width
        return {"values": ((dut.out_format.block,), -2 ** (w - 1), 2 ** (w - 1) - 1)}

    def reference(self, dut, inputs):
        f = dut.out_format
        q = quantize_exact(inputs["values"], -dut.frac_bits, width=f.width, block=f.block,
                           exponent_bits=f.exponent_bits, rounding=f.rounding)
        return {"exponents": q.exponents[:, 0].astype(np.int64),
                "mantissas": q.mantissas.astype(np.int64)}

    def random_inputs(self, dut, n, rng):
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
        k = 0
        for edge in (np.zeros(b), np.full(b, -top), np.full(b, top - 1), np.eye(1, b, 0)[0],
                     -np.eye(1, b, b - 1)[0], np.resize([top - 1, -top], b)):
            if k < n:
                v[k] = edge
                k += 1
        return {"values": v.astype(np.int64)}


class AccumulatorAdapter(Adapter):
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
    requantized_outputs = (
        FieldSpec("exponents", "exponent",
                  "(M,) shared exponent of the requantized block (out_width > 0)"),
        FieldSpec("mantissas", "mantissas", "(M, lanes) requantized mantissas (out_width > 0)"),
    )

    def output_fields(self, dut):
        return self.outputs if dut.out_format is None else self.requantized_outputs

    def input_bounds(self, dut):
        lanes, sw_ = (dut.lanes,), dut.sum_width
        return {"sums": (lanes, -2 ** (sw_ - 1), 2 ** (sw_ - 1) - 1),
                "exponents": (lanes, *dut.exponent_range),
                "last": ((), 0, 1)}

    def extra_checks(self, dut, inputs):
        last = inputs["last"]
        if last[-1] != 1:
            raise ValueError("last must be 1 on the final partial (last[-1]); got 0")
        ends = np.flatnonzero(last)
        lengths = np.diff(np.concatenate([[-1], ends]))
        if lengths.max() > dut.max_partials:
            raise ValueError(f"partials per result must be at most max_partials = "
                             f"{dut.max_partials}; got {int(lengths.max())}")

    def output_count(self, dut, inputs):
        return int(np.count_nonzero(inputs["last"]))

    def reference(self, dut, inputs):
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
        q = quantize_exact(acc, lsb, width=f.width, block=f.block, exponent_bits=f.exponent_bits,
                           rounding=f.rounding)
        return {"exponents": q.exponents[:, 0].astype(np.int64),
                "mantissas": q.mantissas.astype(np.int64)}

    def random_inputs(self, dut, n, rng):
        lanes, g = dut.lanes, dut.guard_bits
        lo, hi = dut.exponent_range
        smax = 2 ** (dut.sum_width - 1) - 1
        longest = min(dut.max_partials, 12)
        draws = rng.integers(1, longest + 1, size=n)
        draws = draws[:int(np.searchsorted(np.cumsum(draws), n)) + 1]
        # one full-length result of maximal same-sign partials (register width check)
        full = [dut.max_partials] if dut.max_partials <= n // 2 else []
        lengths = np.concatenate([full, draws]).astype(np.int64)
        total = int(lengths.sum())
        s = rng.integers(-smax, smax + 1, size=(total, lanes))
        s >>= rng.integers(0, dut.sum_width, size=(total, lanes))
        s *= rng.random((total, lanes)) > 0.05  # some zero partials
        # exponents: mostly within a few guard-bit spans of a per-result base, some extremes
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


for _adapter in (DotArrayAdapter(), QuantizeAdapter(), AccumulatorAdapter()):
    register_adapter(_adapter)


# --- the LQER dual-path linear layer ---------------------------------------------------

class LQERLinearAdapter(Adapter):
    """``lqer-linear``: operand matrices in, one output item per block of output channels.

    :meth:`validate` also lays the operands out as the input stream the datapath
    expects (:meth:`schedule`), under the private key ``"_payload"``.
    """

    design = "lqer-linear"
    inputs = (
        FieldSpec("x_mantissas", "", "(T, d_in) activation mantissas (T tokens)"),
        FieldSpec("x_exponents", "", "(T, d_in/block) activation block exponents"),
        FieldSpec("w_mantissas", "", "(d_out, d_in) W_q mantissas (w_width bits)"),
        FieldSpec("w_exponents", "", "(d_out, d_in/block) W_q block exponents"),
        FieldSpec("a_mantissas", "", "(rank, d_in) A^T mantissas (rank > 0)"),
        FieldSpec("a_exponents", "", "(rank, d_in/block) A^T block exponents"),
        FieldSpec("b_mantissas", "", "(d_out, rank) B^T mantissas"),
        FieldSpec("b_exponents", "", "(d_out, rank/block) B^T block exponents"),
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

    def output_fields(self, dut):
        return self.outputs if dut.rank else self.outputs[:2]

    def _operands(self, dut):
        s = dut.schedule
        xf, wf, lf = dut.a_format, dut.w_format, dut.lowrank_format
        ops = {"x": (None, s.d_in, xf), "w": (s.d_out, s.d_in, wf)}
        if dut.rank:
            ops.update(a=(s.rank, s.d_in, lf), b=(s.d_out, s.rank, lf))
        return ops

    def input_bounds(self, dut):
        bounds = {}
        for key, (rows, cols, fmt) in self._operands(dut).items():
            bounds[f"{key}_mantissas"] = ((rows, cols), -fmt.mantissa_max, fmt.mantissa_max)
            bounds[f"{key}_exponents"] = ((rows, cols // fmt.block), *fmt.exponent_range)
        return bounds

    def validate(self, dut, inputs):
        out = {}
        for name, (shape, lo, hi) in self.input_bounds(dut).items():
            if name not in inputs:
                raise ValueError(f"inputs must contain field {name!r} "
                                 f"(fields: {', '.join(self.input_bounds(dut))})")
            a = np.asarray(inputs[name])
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be an integer array; got dtype {a.dtype}")
            rows = a.shape[0] if shape[0] is None and a.ndim else shape[0]
            if a.shape != (rows, shape[1]):
                want = f"(T, {shape[1]})" if shape[0] is None else str((rows, shape[1]))
                raise ValueError(f"{name} must have shape {want}; got {a.shape}")
            if a.size and (a.min() < lo or a.max() > hi):
                bad = a.flat[int(np.argmax((a < lo) | (a > hi)))]
                raise ValueError(f"{name} must be in {lo}..{hi}; got {int(bad)}")
            out[name] = a.astype(np.int64)
        if out["x_mantissas"].shape[0] != out["x_exponents"].shape[0]:
            raise ValueError("x_exponents must have one row per token (x_mantissas rows); got "
                             f"{out['x_exponents'].shape[0]} and {out['x_mantissas'].shape[0]}")
        if not out["x_mantissas"].shape[0]:
            raise ValueError("inputs must hold at least one token; got T = 0")
        out["_payload"] = self.schedule(dut, out)
        return out

    def to_payload(self, specs, arrays):
        if specs is self.inputs:
            return arrays["_payload"]
        return super().to_payload(specs, arrays)

    def output_count(self, dut, inputs):
        return inputs["x_mantissas"].shape[0] * dut.schedule.nb_out

    @staticmethod
    def schedule(dut, ops: dict) -> dict:
        """The input stream (payload arrays, one row per step) of :class:`hw.lqer_schedule.
        LQERSchedule`: x blocks, W_q blocks of the main group, A^T / B^T blocks of the
        low-rank group; unused slots are zero."""
        s, b = dut.schedule, dut.block
        t_count = ops["x_mantissas"].shape[0]
        steps = np.arange(s.steps)
        j = steps % s.nb_in
        xm = ops["x_mantissas"].reshape(t_count, s.nb_in, b)
        pay = {"x.mantissas": xm[:, j].reshape(-1, b),
               "x.exponent": ops["x_exponents"][:, j].reshape(-1)}
        # main: W_q rows of group s // nb_in, block j
        pm = s.lanes_main
        main = steps < s.main_steps
        rows = (np.minimum(steps // s.nb_in, s.d_out // pm - 1)[:, None] * pm + np.arange(pm))
        wm = ops["w_mantissas"].reshape(s.d_out, s.nb_in, b)[rows, j[:, None]]
        we = ops["w_exponents"][rows, j[:, None]]
        pay["w.mantissas"] = np.tile(wm * main[:, None, None], (t_count, 1, 1))
        pay["w.exponent"] = np.tile(we * main[:, None], (t_count, 1))
        if dut.rank:
            pl = dut.lanes_lowrank
            fm = np.zeros((s.steps, pl, b), np.int64)
            fe = np.zeros((s.steps, pl), np.int64)
            t_steps = steps[:s.t_steps]
            rows = (t_steps // s.nb_in)[:, None] * pl + np.arange(pl)
            am = ops["a_mantissas"].reshape(s.rank, s.nb_in, b)
            fm[:s.t_steps] = am[rows, (t_steps % s.nb_in)[:, None]]
            fe[:s.t_steps] = ops["a_exponents"][rows, (t_steps % s.nb_in)[:, None]]
            u_steps = steps[s.u_start:s.lowrank_steps] - s.u_start
            rows = (u_steps // s.nb_k)[:, None] * pl + np.arange(pl)
            bm = ops["b_mantissas"].reshape(s.d_out, s.nb_k, b)
            fm[s.u_start:s.lowrank_steps] = bm[rows, (u_steps % s.nb_k)[:, None]]
            fe[s.u_start:s.lowrank_steps] = ops["b_exponents"][rows, (u_steps % s.nb_k)[:, None]]
            pay["f.mantissas"] = np.tile(fm, (t_count, 1, 1))
            pay["f.exponent"] = np.tile(fe, (t_count, 1))
        return pay

    def reference(self, dut, inputs):
        """``sw.lqer_reference.reference_lqer_linear`` on already quantized activations."""
        ops = self._operands(dut)

        def mx(key):
            fmt = ops[key][2]
            return MXQuantized(mantissas=inputs[f"{key}_mantissas"],
                               exponents=inputs[f"{key}_exponents"], format=fmt, axis=1)

        def acc(qa, qb):
            return accumulate(*block_matmul_partials(qa, qb), guard_bits=dut.guard_bits,
                              rounding="even")

        b, fmt = dut.block, dut.lowrank_format
        qx = mx("x")
        main = acc(qx, mx("w"))
        out = {"main_values": main[0].reshape(-1, b), "main_exponents": main[1].reshape(-1, b)}
        if dut.rank:
            t = acc(qx, mx("a"))
            qt = quantize_exact(t[0], t[1], width=fmt.width, block=b, axis=-1,
                                exponent_bits=fmt.exponent_bits)
            u = acc(qt, mx("b"))
            qu = quantize_exact(u[0], u[1], width=fmt.width, block=b, axis=-1,
                                exponent_bits=fmt.exponent_bits)
            out["u_exponents"] = qu.exponents.reshape(-1).astype(np.int64)
            out["u_mantissas"] = qu.mantissas.reshape(-1, b).astype(np.int64)
        return out

    def random_inputs(self, dut, n, rng):
        """``n`` tokens of a random layer: exponents mostly in a realistic band (so the
        guard bits and the requantizers round); some activation and W_q blocks at the
        format's extremes; edge tokens: all zero, all +max at the largest exponent
        (t and u saturate), alternating signs at the smallest exponent."""
        out = {}
        for key, (rows, cols, fmt) in self._operands(dut).items():
            rows = n if rows is None else rows
            nb = cols // fmt.block
            m = _mantissas(rng, (rows, nb, fmt.block), fmt.width).reshape(rows, cols)
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
