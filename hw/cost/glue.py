"""The logic around the parts: control (step counters, handshakes, phase logic) and the
access logic of buffers held in registers, fitted from syntheses of a whole datapath.

A datapath synthesised whole is its parts plus *glue*. The glue of ``lqer-linear``
(which keeps its per-token buffers in registers today) is modelled per target and
resource as

    LUTs  = a * operand_mux + b * result_mux + base + second * second_path
    FFs   = register_bits                    + base + second * second_path

counted by construction from the method's buffer list (:mod:`hw.cost.methods`):
``operand_mux`` / ``result_mux`` are ``sum width * (depth - 1)`` (the read multiplexers'
inputs) over the buffers in registers that feed a dot array every step (activations,
t) and over those read once per output block (results, u); ``register_bits`` their bits
plus the fixed register banks (the requantizer staging); ``second_path`` is 1 when a
second datapath (the low-rank path) is present. The two kinds of buffer are costed
apart because they are: an operand multiplexer sits in front of the multipliers, where
synthesis can fold a small one into the partial products and cannot fold a larger one,
while a result multiplexer is a plain tree (measured: doubling ``d_out`` at
``d_in = 32`` adds 26 LUTs, doubling ``d_in`` at ``d_out = 64`` adds 320). The four LUT
and two FF coefficients come from synthesising ``lqer-linear`` at the four
:data:`FIT_SHAPES` (three main-only sizes varying ``d_in`` and ``d_out`` apart, one with
rank) and subtracting the parts synthesised alone; other resources (carry cells,
transistors, ...) are fitted as LUTs are.

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

__all__ = ["FIT_SHAPES", "GlueFeatures", "GlueFit", "features", "fit_shapes", "fit",
           "implemented_buffers"]

# (d_in, d_out, rank) of the fit points, in blocks
FIT_SHAPES = ((2, 2, 0), (2, 4, 0), (4, 4, 0), (4, 4, 1))


@dataclass(frozen=True)
class GlueFeatures:
    operand_mux: int
    result_mux: int
    register_bits: int
    second_path: int


def features(method, sizing, buffers: str) -> GlueFeatures:
    """The glue features of ``method`` (:class:`hw.cost.methods.Method`) at ``sizing``
    with per-token buffers held in ``buffers`` (``"registers"`` or ``"memory"``)."""
    if buffers not in ("registers", "memory"):
        raise ValueError(f'buffers must be one of "registers", "memory"; got {buffers!r}')
    mux = {"operand": 0, "result": 0}
    regs = 0
    for store in method.stores:
        depth, width = store.depth(sizing), store.width(sizing)
        if store.kind == "registers" or (store.kind == "buffer" and buffers == "registers"):
            regs += depth * width
            if store.kind == "buffer":
                mux[store.read] += width * (depth - 1)
        elif store.kind == "buffer" and store.fifo:
            regs += width  # a buffered FIFO's output register
    return GlueFeatures(mux["operand"], mux["result"], regs, int(method.second_path))


def implemented_buffers(target: str) -> str:
    """How synthesis implements ``lqer-linear``'s memories and FIFOs on ``target``:
    ``"memory"`` where the target has RAM primitives, ``"registers"`` on the generic LUT
    targets and ``cmos`` (Yosys maps a memory to flip-flops and multiplexers there)."""
    from hw.cost.memory import block_ram
    return "memory" if block_ram(target) is not None else "registers"


def fit_shapes(cfg) -> list[tuple[int, int, int]]:
    """The fit points ``(d_in, d_out, rank)`` for ``cfg`` (d_out a multiple of the lanes)."""
    b = cfg.block
    group = math.lcm(b, cfg.lanes)
    return [(i * b, -(-o * b // group) * group, r * b) for i, o, r in FIT_SHAPES]


@dataclass(frozen=True)
class GlueFit:
    """Fitted glue of one target: per resource, ``(per operand mux input, per result mux
    input, base, second path)``; for ``ffs`` the register bits count one each on top."""

    target: str
    coefficients: dict[str, tuple[float, float, float, float] | None]
    points: tuple[dict, ...] = ()

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


def fit(target: str, points: list[dict]) -> GlueFit:
    """Least-squares glue coefficients of ``target`` from ``points``: each
    ``{"features": GlueFeatures, "measured": figures, "parts": figures}`` (whole design,
    and its parts summed). A resource the target lacks stays ``None``."""
    rows = np.array([[p["features"].operand_mux, p["features"].result_mux, 1.0,
                      p["features"].second_path] for p in points])
    coefficients: dict[str, tuple[float, float, float, float] | None] = {}
    for name in FIGURES:
        if any(p["measured"].get(name) is None or p["parts"].get(name) is None for p in points):
            coefficients[name] = None
            continue
        residual = np.array([p["measured"][name] - p["parts"][name]
                             - (p["features"].register_bits if name == "ffs" else 0)
                             for p in points], dtype=float)
        if name == "ffs":  # registers are counted exactly: fit the constants only
            solution, *_ = np.linalg.lstsq(rows[:, 2:], residual, rcond=None)
            coefficients[name] = (0.0, 0.0, float(solution[0]), float(solution[1]))
        else:
            solution, *_ = np.linalg.lstsq(rows, residual, rcond=None)
            coefficients[name] = tuple(float(v) for v in solution)
    provenance = tuple({"features": vars(p["features"]), "measured": p["measured"],
                        "parts": p["parts"], "shape": p.get("shape")} for p in points)
    return GlueFit(target, coefficients, provenance)
