"""The logic around the parts: control (step counters, handshakes, phase logic) and the
access logic of buffers held in registers, fitted from syntheses of a whole datapath.

A datapath synthesised whole is its parts plus *glue*. The glue of each whole design a
method names (``lqer-linear``, ``resq-linear``, ``fp16-linear``, ``llm-int8-linear``,
``w8a8-linear``; and
the MXINT designs with their merged output, ``"lqer-linear merged"``, ``"resq-linear
merged"``: the keys of :data:`DESIGN_FITS`) is modelled per design, target and resource as

    LUTs  = a * operand_mux + b * result_mux + base + second * second_path
    FFs   = register_bits                    + base + second * second_path

counted by construction from the method's buffer list (:mod:`hw.cost.methods`):
``operand_mux`` / ``result_mux`` are ``sum width * mux_luts(depth)`` (the LUTs of the
read multiplexer trees, one per read port: :func:`mux_luts`) over the buffers in
registers that feed an arithmetic unit every step (activations, t, codes, running sums)
and over those read once per output block (results, u; a memory with both reads, as
``fp-accumulate``'s sums, counts in both); ``register_bits`` their bits plus the fixed register banks (the
requantizer staging); ``second_path`` is 1 when a second datapath (the low-rank, high or
outlier path) is present. The two kinds of buffer are costed apart because they are: an
operand multiplexer sits in front of the multipliers, where synthesis can fold a small
one into the partial products and cannot fold a larger one, while a result multiplexer
is a plain tree (``lqer-linear`` on xc7-nodsp: doubling ``d_out`` at ``d_in = 32`` adds
26 LUTs, doubling ``d_in`` at ``d_out = 64`` adds 320). The coefficients come from
synthesising the design at its :data:`DESIGN_FITS` shapes (``d_in`` and ``d_out`` varied
apart) and subtracting its parts synthesised alone; a feature that does not vary over a
design's fit points is folded into ``base`` (its coefficient is 0); other resources
(carry cells, transistors, ...) are fitted as LUTs are.

When buffers are memories (``buffers="memory"``, the cost model's engines at full
size: docs/cost.md), their bits go to block RAMs and the glue is the control alone
(no multiplexers, ``register_bits`` = the fixed banks): that figure is an
extrapolation and is reported as ``estimated``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.cost.parts import FIGURES

__all__ = ["DESIGN_FITS", "FIT_SHAPES", "GlueFeatures", "GlueFit", "features", "fit_shapes", "mux_luts",
           "fit", "implemented_buffers", "rank_field", "fit_config", "design_of"]

# glue key -> its fit points (method, d_in, d_out, rank), sizes in blocks; ``rank`` is the
# method's rank field (:func:`rank_field`: LQER's rank, ResQ's r, nothing otherwise). A key
# is a design, or an MXINT design and its output, "<design> merged" (merged=1: the output
# stage's join, counters and handshakes are control the two-term design does not have;
# :func:`fit_config`); the merged keys are fitted at the two-term keys' shapes.
_LQER_FITS = (("mxint", 2, 2, 0), ("mxint", 2, 4, 0), ("mxint", 4, 4, 0), ("lqer", 4, 4, 1))
_RESQ_FITS = (("resq", 2, 2, 1), ("resq", 2, 4, 1), ("resq", 4, 4, 1), ("resq", 4, 4, 2))
DESIGN_FITS = {
    "lqer-linear": _LQER_FITS,
    "lqer-linear merged": _LQER_FITS,
    "resq-linear": _RESQ_FITS,
    "resq-linear merged": _RESQ_FITS,
    # 64 x 128: the sums memory at 8 words, where a 6-LUT read multiplexer tree costs more
    # than at 2 and 4 (mux_luts); without it that coefficient would not be fitted
    "fp16-linear": (("fp16", 2, 2, 0), ("fp16", 2, 4, 0), ("fp16", 4, 4, 0), ("fp16", 4, 8, 0)),
    "llm-int8-linear": (("llm-int8", 2, 2, 0), ("llm-int8", 2, 4, 0), ("llm-int8", 4, 4, 0)),
    # 128 x 32: the activation memories at 8 words (fp16 blocks) and 128 (int8 codes), where
    # the read trees step up (mux_luts); fitted at 2 and 4 words alone, the operand
    # coefficient took up the rest of d_in's growth and over-predicted 128 x 64 by 28% on lut6
    "w8a8-linear": (("w8a8", 2, 2, 0), ("w8a8", 2, 4, 0), ("w8a8", 4, 4, 0), ("w8a8", 8, 2, 0)),
}
# lqer-linear's fit points (d_in, d_out, rank), in blocks
FIT_SHAPES = tuple(p[1:] for p in DESIGN_FITS["lqer-linear"])


def design_of(key: str) -> str:
    """The design a glue key (:data:`DESIGN_FITS`) synthesises."""
    return key.split(" ")[0]


def fit_config(cfg, key: str):
    """``cfg`` (:class:`hw.cost.methods.CostConfig`) as the fit points of glue ``key``
    need it: the layer output the key names (the MXINT designs: "merged" for
    ``"<design> merged"``, else "terms"); other keys take ``cfg`` as it is."""
    import dataclasses
    from hw.cost.methods import MERGEABLE, MERGED, TERMS
    if design_of(key) not in MERGEABLE:
        return cfg
    return dataclasses.replace(cfg, layer_output=MERGED if key.endswith(f" {MERGED}") else TERMS)


def rank_field(method: str) -> str | None:
    """The :class:`hw.cost.methods.CostConfig` field a method's third shape entry sets."""
    return {"lqer": "rank", "l2qer": "rank", "resq": "resq_rank"}.get(method)


@dataclass(frozen=True)
class GlueFeatures:
    operand_mux: int
    result_mux: int
    register_bits: int
    second_path: int


def mux_luts(depth: int, lut_inputs: int | None) -> int:
    """LUTs of one bit of a ``depth``:1 multiplexer built as a tree of ``lut_inputs``-input
    LUTs (``None``: of 2:1 multiplexer cells, a target without LUTs). A k-input LUT
    selects among ``m`` inputs where ``m + log2(m) <= k`` (4 on a 6-LUT, 2 on a 4-LUT), and
    each one removes ``m - 1`` inputs: ``ceil((depth - 1) / (m - 1))``. So a 6-LUT tree
    costs the same at 2 and 4 words and three times that at 8, which a count of
    multiplexer inputs (``depth - 1``) misses (fp16-linear on lut6: its sums memory, two
    read ports of 512 bits, adds about 2,000 LUTs from 4 to 8 words and almost none from 2
    to 4)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1; got {depth!r}")
    m = 2
    if lut_inputs is not None:
        while 2 * m + (2 * m).bit_length() - 1 <= lut_inputs:
            m *= 2
    return -(-(depth - 1) // (m - 1))


def features(method, sizing, buffers: str, *, lut_inputs: int | None) -> GlueFeatures:
    """The glue features of ``method`` (:class:`hw.cost.methods.Method`) at ``sizing``
    with per-token buffers held in ``buffers`` (``"registers"`` or ``"memory"``) on a
    target of ``lut_inputs``-input LUTs (:attr:`hw.synth.targets.Target.lut_inputs`;
    :func:`mux_luts`)."""
    if buffers not in ("registers", "memory"):
        raise ValueError(f'buffers must be one of "registers", "memory"; got {buffers!r}')
    mux = {"operand": 0, "result": 0}
    regs = 0
    for store in method.stores_at(sizing):
        depth, width = store.depth(sizing), store.width(sizing)
        if store.kind == "registers" or (store.kind == "buffer" and buffers == "registers"):
            regs += depth * width
            if store.kind == "buffer":
                for read in store.reads:
                    mux[read] += width * mux_luts(depth, lut_inputs)
        elif store.kind == "buffer" and store.fifo:
            regs += width * store.fifo  # the FIFO's read register(s) in logic
    return GlueFeatures(mux["operand"], mux["result"], regs, int(method.second_path))


def implemented_buffers(target: str) -> str:
    """How synthesis implements ``lqer-linear``'s memories and FIFOs on ``target``:
    ``"memory"`` where the target has RAM primitives, ``"registers"`` on the generic LUT
    targets and ``cmos`` (Yosys maps a memory to flip-flops and multiplexers there)."""
    from hw.cost.memory import block_ram
    return "memory" if block_ram(target) is not None else "registers"


def fit_shapes(cfg, design: str = "lqer-linear") -> list[tuple[int, int, int]]:
    """The fit points ``(d_in, d_out, rank)`` of glue key ``design`` for ``cfg`` (``d_out``
    a multiple of the lanes: of ``P`` for the MXINT designs, of ``M`` for those taking a
    column per step)."""
    b = cfg.block
    lanes = cfg.lanes if design_of(design) in ("lqer-linear", "resq-linear") \
        else cfg.macs_per_cycle
    group = math.lcm(b, lanes)
    return [(i * b, -(-o * b // group) * group, r * b) for _, i, o, r in DESIGN_FITS[design]]


def fit_methods(design: str) -> list[str]:
    """The method of each fit point of ``design``."""
    return [p[0] for p in DESIGN_FITS[design]]


@dataclass(frozen=True)
class GlueFit:
    """Fitted glue of one design (``design``) on one target: per resource, ``(per operand mux input, per result mux
    input, base, second path)``; for ``ffs`` the register bits count one each on top."""

    target: str
    coefficients: dict[str, tuple[float, float, float, float] | None]
    points: tuple[dict, ...] = ()
    design: str = "lqer-linear"

    def predict(self, f: GlueFeatures) -> dict[str, float | None]:
        out = {}
        for name, c in self.coefficients.items():
            if c is None:
                out[name] = None
                continue
            value = c[0] * f.operand_mux + c[1] * f.result_mux + c[2] + c[3] * f.second_path
            if name == "ffs":
                value += f.register_bits
            out[name] = value
        return out


def _fit_nonnegative_muxes(rows, residual, use: list[int]) -> tuple[float, ...]:
    """Least squares over the columns ``use`` of ``rows`` (the base among them) with the
    multiplexer coefficients (columns 0 and 1: resources per mux input) held at or above
    0: every subset of the mux columns is fitted and the best fit with no negative mux
    coefficient kept (exact non-negative least squares for two constrained columns; the
    base and the second path are free)."""
    muxes = [k for k in use if k < 2]
    free = [k for k in use if k >= 2]
    best, best_error = None, math.inf
    for mask in range(1 << len(muxes)):
        cols = [k for i, k in enumerate(muxes) if mask >> i & 1] + free
        solution = np.linalg.lstsq(rows[:, cols], residual, rcond=None)[0]
        if any(v < 0 for k, v in zip(cols, solution) if k < 2):
            continue
        error = float(np.sum((rows[:, cols] @ solution - residual) ** 2))
        if error < best_error:
            values = [0.0] * 4
            for k, v in zip(cols, solution):
                values[k] = float(v)
            best, best_error = tuple(values), error
    return best


def fit(target: str, points: list[dict], design: str = "lqer-linear") -> GlueFit:
    """Least-squares glue coefficients of ``target`` from ``points``: each
    ``{"features": GlueFeatures, "measured": figures, "parts": figures}`` (whole design,
    and its parts summed). The multiplexer coefficients are LUTs (or cells) per input
    and so not negative: a fit that would make one negative (three fit points and a
    design whose parts move between them can) drops that feature instead
    (:func:`_fit_nonnegative_muxes`). A resource the target lacks stays ``None``."""
    rows = np.array([[p["features"].operand_mux, p["features"].result_mux, 1.0,
                      p["features"].second_path] for p in points], dtype=float)
    # a feature constant over the points cannot be told from the base: folded into it
    varies = [True, True, True, bool(np.ptp(rows[:, 3]))]
    for k in (0, 1):
        varies[k] = bool(np.ptp(rows[:, k]))
    coefficients: dict[str, tuple[float, float, float, float] | None] = {}
    for name in FIGURES:
        if any(p["measured"].get(name) is None or p["parts"].get(name) is None for p in points):
            coefficients[name] = None
            continue
        residual = np.array([p["measured"][name] - p["parts"][name]
                             - (p["features"].register_bits if name == "ffs" else 0)
                             for p in points], dtype=float)
        # registers are counted exactly: for FFs, fit the constants only
        use = [k for k in range(4) if varies[k] and (name != "ffs" or k >= 2)]
        coefficients[name] = _fit_nonnegative_muxes(rows, residual, use)
    provenance = tuple({"features": vars(p["features"]), "measured": p["measured"],
                        "parts": p["parts"], "shape": p.get("shape")} for p in points)
    return GlueFit(target, coefficients, provenance, design)
