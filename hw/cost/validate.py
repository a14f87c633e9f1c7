"""The model held against full synthesis of the whole datapath, for every method that
names a design (:attr:`hw.cost.methods.Method.design`).

For each method and shape ``(d_in, d_out, third)`` (``third``: the rank of lqer, ResQ's
``r``, LLM.int8()'s outlier columns that size its fp16 lanes, unused by mxint and fp16;
:func:`hw.cost.model.design_point`) the cost model predicts the method's design as
synthesis builds it on the target (its memories and FIFOs in RAM on xc7, as flip-flops
and multiplexers on the generic LUT targets: :func:`hw.cost.glue.implemented_buffers`):
the parts synthesised alone, counted (but those the design leaves outside its ports,
``Use.outside``), plus the glue fitted at that design's fit shapes
(:data:`hw.cost.glue.DESIGN_FITS`); the whole design is synthesised and the two compared
(LUTs and FFs; memories mapped to RAM are counted apart). Validation shapes are not fit
shapes. The bound the project holds: LUTs and FFs within +-10% on ``xc7-nodsp`` and
``lut6`` (``tests/hw/test_cost_validate.py`` on each method's smallest shape with the
smallest parts, :data:`TEST_CONFIG`; ``bench/bench_cost.py`` on all of :data:`SHAPES` at
block 16 and 16 MACs per cycle).

The MXINT designs are validated at both layer outputs (:func:`outputs_of`): the
two-term output (``merged=0``) and the merged one (``merged=1``), each against its own
glue fit (``"<design> merged"`` in :data:`hw.cost.glue.DESIGN_FITS`); ``cfg.layer_output``
says which one a call validates.

``llm-int4`` names no design and is not validated: no RTL computes it (docs/cost.md,
Validation). ``w8a8`` is held against ``w8a8-linear`` (``llm-int8-linear`` without its
outlier path).
"""

from __future__ import annotations

from hw.cost import model
from hw.cost.glue import fit_shapes, implemented_buffers, rank_field
from hw.cost.methods import LAYER_OUTPUTS, MERGEABLE, METHODS, CostConfig
from hw.cost.parts import Part, measure

__all__ = ["SMALLEST", "SHAPES", "TARGETS", "BOUND", "TEST_CONFIG", "VALIDATED",
           "method_design", "scaled",
           "at_block", "points", "validate", "THIRD", "markdown", "outputs_of"]

TARGETS = ("xc7-nodsp", "lut6")
BOUND = 0.10
# method -> its validation shapes (d_in, d_out, third) at the default block 16, smallest
# first (for lqer and resq the high / low-rank lanes follow the designs' default rules;
# llm-int8 at 8 outlier columns of 64 x 32 gets two fp16 lanes)
SHAPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "mxint": ((64, 32, 0), (128, 64, 0)),
    "lqer": ((64, 32, 16), (32, 64, 16), (32, 32, 16), (64, 64, 32), (128, 128, 32)),
    "fp16": ((64, 32, 0), (32, 128, 0), (128, 64, 0)),
    "llm-int8": ((64, 32, 1), (64, 32, 8), (128, 64, 4)),
    "w8a8": ((64, 32, 0), (128, 64, 0)),
    "resq": ((64, 32, 16), (128, 64, 16), (64, 128, 32)),
}
VALIDATED = tuple(SHAPES)
# what the third entry of a shape is, and the second path's lanes a row reports, per method
THIRD = {"mxint": ("–", "–"), "lqer": ("rank", "P_l"), "fp16": ("–", "–"),
         "llm-int8": ("outlier columns", "P_fp"), "resq": ("r", "P_h"), "w8a8": ("–", "–")}
SMALLEST = {method: shapes[:1] for method, shapes in SHAPES.items()}
# The test's configuration: the smallest parts (block 4, 4 MACs per cycle: one MXINT lane,
# four fp16 / int8 lanes), with SMALLEST scaled to it (tests/hw/test_cost_validate.py)
TEST_CONFIG = CostConfig(block=4, macs_per_cycle=4)


def scaled(shapes, block: int) -> tuple[tuple[int, int, int], ...]:
    """``shapes`` (at block 16) at ``block``: every size in the same number of blocks."""
    return tuple(tuple(n * block // 16 for n in shape) for shape in shapes)


def _scaled_third(method: str, shape, block: int) -> tuple[int, int, int]:
    d_in, d_out, third = scaled([shape], block)[0]
    if METHODS[method].needs_outliers:  # a count of columns, not a size in blocks
        third = max(1, third)
    return d_in, d_out, third


def at_block(shapes: dict, block: int) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """``shapes`` (method -> shapes at block 16) at ``block`` (:func:`scaled`; outlier
    counts at least 1)."""
    return {m: tuple(_scaled_third(m, s, block) for s in ss) for m, ss in shapes.items()}


def points(cfg: CostConfig, shapes: dict) -> list[tuple[str, tuple[int, int, int], Part,
                                                         list[Part]]]:
    """Per method and shape: the whole design and the parts the prediction needs."""
    out = []
    for method_name, method_shapes in shapes.items():
        method = METHODS[method_name]
        if method.design is None:
            raise ValueError(f"method must name a design ({', '.join(VALIDATED)}); got "
                             f"{method_name!r}")
        design = method.glue_key(cfg)
        fits = set(map(tuple, fit_shapes(cfg, design)))
        sized = rank_field(method_name) is not None or method_name == "mxint"
        for shape in method_shapes:
            if (tuple(shape) if sized else tuple(shape[:2])) in \
                    {f if sized else f[:2] for f in fits}:
                raise ValueError(f"shape must not be a fit shape of {design} {sorted(fits)}; "
                                 f"got {shape}")
            m, sizing, whole = model.design_point(method_name, cfg, shape)
            parts = [p for _, p, _ in model.engine_uses(m, sizing, design_only=True)]
            out.append((method_name, tuple(shape), whole, parts))
    return out


def method_design(method: str, cfg: CostConfig) -> str:
    """The glue key (:data:`hw.cost.glue.DESIGN_FITS`) ``method``'s design takes under
    ``cfg``."""
    return METHODS[method].glue_key(cfg)


def outputs_of(method: str) -> tuple[str, ...]:
    """The layer outputs (:data:`hw.cost.methods.LAYER_OUTPUTS`) ``method`` is validated
    at: both for the MXINT designs, the default for the others (whose output is
    finished either way)."""
    if METHODS[method].design[0] in MERGEABLE:
        return LAYER_OUTPUTS
    return (CostConfig().layer_output,)


def _key_and_config(cfg: CostConfig, method: str, shape):
    m, sizing, _ = model.design_point(method, cfg, shape)
    return model.EngineKey(method, sizing.d_in, sizing.d_out, sizing.outliers), sizing.cfg


def validate(cfg: CostConfig, shapes: dict, targets, build, *, cache=None, workers: int = 1,
             progress=None, announce=None) -> list[dict]:
    """Predicted and synthesised figures per method, shape and target, with the relative
    errors ``(predicted - synthesised) / synthesised`` of LUTs and FFs."""
    from hw.synth.targets import get_target

    pts = points(cfg, shapes)
    # per target, the designs validated there and the parts they need
    designs: dict[str, list[str]] = {}
    needed: dict[str, list[Part]] = {}
    for method, _, design, parts in pts:
        for target in targets:
            designs.setdefault(target, [])
            key = method_design(method, cfg)
            if key not in designs[target]:
                designs[target].append(key)
                needed.setdefault(target, []).extend(model.required_parts([], cfg, [key]))
            needed[target] += parts + [design]
    figures, fits = {}, {}
    for target in designs:
        figures.update(measure(list(dict.fromkeys(needed[target])), [get_target(target)],
                               build, cache=cache, workers=workers, progress=progress,
                               announce=announce))
        for design, by_target in model.glue_fits(cfg, [target], figures,
                                                 designs[target]).items():
            fits.setdefault(design, {}).update(by_target)
    rows = []
    for method, shape, design, _ in pts:
        key, kcfg = _key_and_config(cfg, method, shape)
        for target in targets:
            predicted = model.engine_cost(key, kcfg, target, figures,
                                          fits[method_design(method, cfg)][target],
                                          buffers=implemented_buffers(target), design_only=True)
            measured = figures[(design, target)]["figures"]
            row = {"method": method, "design": design.name,
                   "merged": int(design.kwargs.get("merged", 0)), "d_in": shape[0],
                   "d_out": shape[1], "third": shape[2], "target": target,
                   "lanes": {"lqer": predicted.get("lowrank_lanes", 0),
                             "resq": predicted.get("high_lanes", 0),
                             "llm-int8": predicted.get("fp_lanes", 0)}.get(method, 0),
                   "synth_s": figures[(design, target)]["wall_s"],
                   "cached": figures[(design, target)]["cached"]}
            for name in ("luts", "ffs"):
                row[f"predicted_{name}"] = predicted[name]
                row[f"synthesised_{name}"] = measured[name]
                row[f"{name}_error"] = (predicted[name] - measured[name]) / measured[name]
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows of :func:`validate` as a Markdown table, with the largest error."""
    lines = ["| method (design) | d_in x d_out | rank / r / outliers | lanes | target | LUTs "
             "predicted | synthesised | error | FFs predicted | synthesised | error |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        third, lanes = THIRD[r["method"]]
        third = "–" if third == "–" else f"{third} {r['third']}"
        lanes = "–" if lanes == "–" else f"{lanes} = {r['lanes']}"
        lines.append(
            f"| {r['method']} ({r['design']}{' merged' if r.get('merged') else ''}) | {r['d_in']} x {r['d_out']} | {third} | "
            f"{lanes} | {r['target']} | {round(r['predicted_luts']):,} | "
            f"{r['synthesised_luts']:,} | {100 * r['luts_error']:+.1f}% | "
            f"{round(r['predicted_ffs']):,} | {r['synthesised_ffs']:,} | "
            f"{100 * r['ffs_error']:+.1f}% |")
    worst = max(max(abs(r["luts_error"]), abs(r["ffs_error"])) for r in rows)
    return "\n".join(lines) + f"\n\nLargest |error|: {100 * worst:.1f}%."
