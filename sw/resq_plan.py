"""Which ResQ treatment each layer gets, decided from names and shapes alone (no torch, no data).

Rules (docs/sw.md, "ResQ"; Saxena et al. 2024, arXiv 2412.14363):

- **High-precision rank.** ``resq_rank="auto"``: ``r = d_in / 8`` (the paper's 1/8 of the
  hidden dimension) rounded to the nearest multiple of ``block``, ties up, and at least one
  block: ``r = block * max(1, floor(d_in / (8 block) + 1/2))``. An integer ``resq_rank``
  gives every such layer that ``r``. Either way ``1 <= r <= d_in - 1``; a rank that is not
  a multiple of the block runs in software (partial blocks are zero-padded) but not on the
  datapath (:func:`sw.datapath.resq_reason`).
- **Down projections** (the MLP's output layer, whose input is the MLP's intermediate
  activation: LLaMA ``down_proj``, OPT ``fc2``, GPT-2 ``mlp.c_proj``, fused experts'
  ``down_proj``, Mixtral's ``w2``, Falcon/GPT-NeoX ``dense_4h_to_h``): the paper keeps them
  in uniform low precision after an online Hadamard transform (``resq_down="hadamard"``:
  ``r = 0``, basis ``H / sqrt(d_in)``, Sylvester's construction; a ``d_in`` that is not a
  power of two gets a seeded random orthogonal matrix instead, recorded as such).
  ``resq_down="pca"`` treats them like every other layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DOWN_PROJECTION", "ROTATIONS", "LayerPlan", "is_down_projection", "auto_rank",
           "layer_rank", "plan_layers", "is_power_of_two"]

DOWN_PROJECTION = re.compile(r"(^|\.)(down_proj|fc2|mlp\.c_proj|dense_4h_to_h|w2)(\.\d+)?$")
ROTATIONS = ("pca", "hadamard", "random-orthogonal")


def is_down_projection(name: str) -> bool:
    """Whether module ``name`` is an MLP down projection (module docstring)."""
    return DOWN_PROJECTION.search(name) is not None


def is_power_of_two(n: int) -> bool:
    return n >= 1 and not n & (n - 1)


def auto_rank(d_in: int, block: int) -> int:
    """``d_in / 8`` rounded to the nearest multiple of ``block`` (ties up), at least ``block``."""
    return block * max(1, (2 * d_in + 8 * block) // (16 * block))


@dataclass(frozen=True)
class LayerPlan:
    """One layer's ResQ treatment: ``rank`` high-precision coordinates and the basis kind."""

    rank: int
    rotation: str   # one of ROTATIONS


def layer_rank(name: str, d_in: int, *, resq_rank, block: int) -> int:
    """The high-precision rank of a PCA layer; ``ValueError`` (one line) when it cannot fit.

    ``resq_rank`` is ``"auto"`` or an integer (module docstring).
    """
    r = auto_rank(d_in, block) if resq_rank == "auto" else resq_rank
    if not 1 <= r <= d_in - 1:
        if resq_rank == "auto":
            raise ValueError(f"resq-rank must be in 1..{d_in - 1} for layer {name} (d_in {d_in}); "
                             f"got auto = {r} (d_in / 8 rounded to a multiple of block {block}); "
                             "give --resq-rank or a smaller --block")
        raise ValueError(f"resq-rank must be in 1..{d_in - 1} for layer {name} (d_in {d_in}); "
                         f"got {r}")
    return r


def plan_layers(shapes: dict[str, tuple[int, int]], *, resq_rank, block: int,
                resq_down: str) -> dict[str, LayerPlan]:
    """``{name: LayerPlan}`` for layers ``{name: (d_out, d_in)}``, in order; bad ranks raise."""
    plans = {}
    for name, (_, d_in) in shapes.items():
        if resq_down == "hadamard" and is_down_projection(name):
            rotation = "hadamard" if is_power_of_two(d_in) else "random-orthogonal"
            plans[name] = LayerPlan(rank=0, rotation=rotation)
        else:
            plans[name] = LayerPlan(rank=layer_rank(name, d_in, resq_rank=resq_rank, block=block),
                                    rotation="pca")
    return plans
