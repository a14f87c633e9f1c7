"""The model held against full synthesis of the whole datapath.

For each shape ``(d_in, d_out, rank)`` the cost model predicts ``lqer-linear`` as
synthesis builds it on the target (its memories and FIFOs in RAM on xc7, as flip-flops
and multiplexers on the generic LUT targets: :func:`hw.cost.glue.implemented_buffers`):
the parts synthesised alone, counted, plus the glue fitted at
:data:`hw.cost.glue.FIT_SHAPES`; the whole design is synthesised and the two compared
(LUTs and FFs; memories mapped to RAM are counted apart). Validation shapes are not fit
shapes. The bound the project holds: LUTs and FFs within +-10% on ``xc7-nodsp`` and
``lut6`` (``tests/hw/test_cost_validate.py`` on the smallest shapes with the smallest
parts, :data:`TEST_CONFIG`; ``bench/bench_cost.py`` on all of :data:`SHAPES` at block 16).
"""

from __future__ import annotations

import dataclasses

from hw.cost import model
from hw.cost.glue import fit_shapes, implemented_buffers
from hw.cost.methods import METHODS, CostConfig, Sizing
from hw.cost.parts import Part, measure

__all__ = ["SMALLEST", "SHAPES", "TARGETS", "BOUND", "TEST_CONFIG", "scaled", "points",
           "validate"]

TARGETS = ("xc7-nodsp", "lut6")
BOUND = 0.10
# (d_in, d_out, rank) at the default block 16; low-rank lanes follow the default rule
SMALLEST = ((64, 32, 0), (64, 32, 16))
SHAPES = SMALLEST + ((32, 64, 16), (32, 32, 16), (64, 64, 32), (128, 64, 0), (128, 128, 32))
# The test's configuration: the smallest parts (block 4, one main lane), with SMALLEST scaled
# to it (tests/hw/test_cost_validate.py; the bench holds block 16 at every shape)
TEST_CONFIG = CostConfig(block=4, macs_per_cycle=4)


def scaled(shapes, block: int) -> tuple[tuple[int, int, int], ...]:
    """``shapes`` (at block 16) at ``block``: every size in the same number of blocks."""
    return tuple(tuple(n * block // 16 for n in shape) for shape in shapes)


def _key_and_config(cfg: CostConfig, shape) -> tuple[model.EngineKey, CostConfig]:
    d_in, d_out, rank = shape
    method = "lqer" if rank else "mxint"
    return model.EngineKey(method, d_in, d_out), dataclasses.replace(cfg, rank=rank or cfg.block)


def points(cfg: CostConfig, shapes) -> list[tuple[tuple[int, int, int], Part, list[Part]]]:
    """Per shape: the whole design and the parts the prediction needs."""
    fits = set(map(tuple, fit_shapes(cfg)))
    out = []
    for shape in shapes:
        if tuple(shape) in fits:
            raise ValueError(f"shape must not be a fit shape {sorted(fits)}; got {shape}")
        key, kcfg = _key_and_config(cfg, shape)
        method = METHODS[key.method]
        sizing = Sizing(kcfg, key.d_in, key.d_out)
        name, params = method.design
        parts = [p for _, p, _ in model.engine_uses(method, sizing)]
        out.append((tuple(shape), Part.of(name, **params(sizing)), parts))
    return out


def validate(cfg: CostConfig, shapes, targets, build, *, cache=None, workers: int = 1,
             progress=None, announce=None) -> list[dict]:
    """Predicted and synthesised figures per shape and target, with the relative errors
    ``(predicted - synthesised) / synthesised`` of LUTs and FFs."""
    from hw.synth.targets import get_target

    pts = points(cfg, shapes)
    needed = model.required_parts([], cfg)
    for _, design, parts in pts:
        needed += parts + [design]
    figures = measure(list(dict.fromkeys(needed)), [get_target(t) for t in targets], build,
                      cache=cache, workers=workers, progress=progress, announce=announce)
    fits = model.glue_fits(cfg, list(targets), figures)
    rows = []
    for shape, design, _ in pts:
        key, kcfg = _key_and_config(cfg, shape)
        for target in targets:
            predicted = model.engine_cost(key, kcfg, target, figures, fits[target],
                                          buffers=implemented_buffers(target))
            measured = figures[(design, target)]["figures"]
            row = {"d_in": shape[0], "d_out": shape[1], "rank": shape[2], "target": target,
                   "lowrank_lanes": predicted.get("lowrank_lanes", 0),
                   "synth_s": figures[(design, target)]["wall_s"],
                   "cached": figures[(design, target)]["cached"]}
            for name in ("luts", "ffs"):
                row[f"predicted_{name}"] = predicted[name]
                row[f"synthesised_{name}"] = measured[name]
                row[f"{name}_error"] = (predicted[name] - measured[name]) / measured[name]
            rows.append(row)
    return rows
