"""The composition: each method's layer engine per target, from its parts, its glue and
its memories, for every layer of a model; and the model's totals.

:func:`plan` lists the engines a run needs and :func:`required_parts` the parts they
and the glue fits need; :func:`hw.cost.parts.measure` gives the parts' figures;
:func:`glue_fits` fits each design's glue per target; :func:`engine_cost` composes one engine;
:func:`evaluate` does it all for a model. The figures of an engine:

- ``luts``, ``ffs``, ``carries``, ``dsps``, ``lutrams``, ``transistors``: its parts
  (count x the part's figures) plus the glue; ``brams`` are the block RAMs Yosys
  inferred inside parts (none today), kept apart from the memories below;
- memories by kind: ``buffer`` (per-token buffers), ``table`` (constants), in bits and
  in the target's block RAMs (:mod:`hw.cost.memory`); ``weights`` (the layer's stored
  operands) reported apart, with ``traffic_bits``: weight and factor bits read per token;
- ``steps_per_token``, ``cycles_per_token``, ``extra_cycles`` (data-dependent).

``source`` is ``synthesised`` when every part and the glue were measured on a netlist
of a project design, else ``estimated``; ``synthesised_luts`` says how many of the LUTs
were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hw.cost import glue as glue_mod
from hw.cost.memory import Memory
from hw.cost.methods import METHODS, CostConfig, Method, Sizing
from hw.cost.parts import ESTIMATED, FIGURES, SYNTHESISED, Part
from hw.synth.targets import get_target

__all__ = ["schedule_memo", "EngineKey", "plan", "required_parts", "design_point", "fit_points",
           "glue_designs", "glue_fits", "engine_cost",
           "evaluate", "model_totals", "MEMORY_KINDS"]

MEMORY_KINDS = ("buffer", "table", "weights")


class schedule_memo:
    """Context manager: :data:`hw.cost.methods.CYCLES_MEMO` loaded from and saved to
    ``<cache root>/schedules-<hash of hw/lqer_schedule.py>.json`` (the cycle model's
    results outlive the process; a change to the schedule module starts a new file)."""

    def __init__(self, cache):
        import hashlib
        from pathlib import Path

        import hw.lqer_schedule as schedule_module
        digest = hashlib.sha256(Path(schedule_module.__file__).read_bytes()).hexdigest()[:16]
        self.path = None if cache is None else Path(cache.root) / f"schedules-{digest}.json"

    def __enter__(self):
        import json
        from hw.cost.methods import CYCLES_MEMO
        if self.path is not None:
            try:
                CYCLES_MEMO.update(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                pass
        return self

    def __exit__(self, exc_type, exc, tb):
        import json
        from hw.cost.methods import CYCLES_MEMO
        from lqer_hw.files import write_text
        if exc_type is None and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(CYCLES_MEMO, indent=0) + "\n")
        return False


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on: the method, the layer shape and its outlier counts."""

    method: str
    d_in: int
    d_out: int
    outliers: object = None  # OutlierCounts for llm-int8, else None


def plan(shapes, methods: list[str], cfg: CostConfig, profile=None) -> dict[str, list[EngineKey]]:
    """Layer name -> the engine keys of its methods, in method order."""
    out = {}
    for layer in shapes.layers:
        keys = []
        for name in methods:
            counts = profile.of(layer.name) if METHODS[name].needs_outliers else None
            keys.append(EngineKey(name, layer.d_in, layer.d_out, counts))
        out[layer.name] = keys
    return out


def sizing_of(key: EngineKey, cfg: CostConfig) -> Sizing:
    return Sizing(cfg, key.d_in, key.d_out, key.outliers)


def engine_uses(method: Method, sizing: Sizing, *, design_only: bool = False
                ) -> list[tuple[str, Part, int]]:
    """``(role, part, count)`` of the engine; parts counted 0 are left out, and with
    ``design_only`` those the method's design leaves outside (``Use.outside``)."""
    uses = [(u.role, u.part(sizing), u.count(sizing)) for u in method.uses
            if not (design_only and u.outside)]
    return [(role, part, n) for role, part, n in uses if n > 0]


# the outlier columns of the llm-int8-linear fit points (one fp16 lane)
FIT_OUTLIER_COLUMNS = 1


def design_point(method_name: str, cfg: CostConfig, shape) -> tuple[Method, Sizing, Part]:
    """``(method, sizing, whole design)`` of ``method_name`` at ``shape = (d_in, d_out,
    third)``; ``third`` is the rank (lqer, l2qer; 0 = the mxint layer), ResQ's ``r``, or
    LLM.int8()'s outlier columns (the fp16 lanes are sized for them); ignored otherwise."""
    from hw.cost.outliers import OutlierCounts
    d_in, d_out, third = shape
    field = glue_mod.rank_field(method_name)
    kcfg = dataclasses.replace(cfg, **{field: third or cfg.block}) if field else cfg
    method = METHODS[method_name]
    outliers = OutlierCounts(third, third, third, third) if method.needs_outliers else None
    sizing = Sizing(kcfg, d_in, d_out, outliers)
    name, params = method.design
    return method, sizing, Part.of(name, **params(sizing))


def fit_points(cfg: CostConfig, design: str = "lqer-linear") -> list[tuple[Method, Sizing, Part]]:
    """The glue fit points of ``design`` (a glue key, :data:`hw.cost.glue.DESIGN_FITS`):
    (the method whose parts are subtracted, its sizing, the whole design to synthesise),
    under ``cfg`` with the key's layer output (:func:`hw.cost.glue.fit_config`)."""
    points = []
    cfg = glue_mod.fit_config(cfg, design)
    for method, shape in zip(glue_mod.fit_methods(design), glue_mod.fit_shapes(cfg, design)):
        if METHODS[method].needs_outliers:
            shape = (*shape[:2], FIT_OUTLIER_COLUMNS)
        points.append(design_point(method, cfg, shape))
    return points


def glue_designs(keys, cfg: CostConfig) -> list[str]:
    """The glue keys (:meth:`hw.cost.methods.Method.glue_key`) the engines ``keys`` need
    under ``cfg``, without repeats."""
    return list(dict.fromkeys(METHODS[k.method].glue_key(cfg) for k in keys))


def required_parts(keys, cfg: CostConfig, designs=None) -> list[Part]:
    """Every part the engines ``keys`` and the glue fit points of ``designs`` (default:
    those the engines need) need, without repeats."""
    parts = {}
    for key in keys:
        for _, part, _ in engine_uses(METHODS[key.method], sizing_of(key, cfg)):
            parts[part] = None
    for design in glue_designs(keys, cfg) if designs is None else designs:
        for method, sizing, whole in fit_points(cfg, design):
            for _, part, _ in engine_uses(method, sizing, design_only=True):
                parts[part] = None
            parts[whole] = None
    return list(parts)


def _sum(rows: list[dict]) -> dict:
    total = {}
    for name in FIGURES:
        values = [r[name] for r in rows if r.get(name) is not None]
        total[name] = sum(values) if values else None
    return total


def _parts_total(method: Method, sizing: Sizing, target: str, figures: dict) -> dict:
    rows = []
    for _, part, n in engine_uses(method, sizing, design_only=True):
        f = figures[(part, target)]["figures"]
        rows.append({k: None if f.get(k) is None else n * f[k] for k in FIGURES})
    return _sum(rows)


def glue_fits(cfg: CostConfig, targets: list[str], figures: dict, designs=("lqer-linear",)
              ) -> dict[str, dict[str, glue_mod.GlueFit]]:
    """Per glue key (``designs``: :data:`hw.cost.glue.DESIGN_FITS` keys) and target, the
    glue fitted from that key's fit points."""
    fits: dict[str, dict[str, glue_mod.GlueFit]] = {}
    for design in designs:
        for target in targets:
            points = []
            for method, sizing, whole in fit_points(cfg, design):
                field = glue_mod.rank_field(method.name)
                points.append({
                    "features": glue_mod.features(method, sizing,
                                                  glue_mod.implemented_buffers(target),
                                                  lut_inputs=get_target(target).lut_inputs),
                    "measured": figures[(whole, target)]["figures"],
                    "parts": _parts_total(method, sizing, target, figures),
                    "shape": [sizing.d_in, sizing.d_out,
                              getattr(sizing.cfg, field) if field and method.second_path
                              else 0],
                })
            fits.setdefault(design, {})[target] = glue_mod.fit(target, points, design)
    return fits


def engine_cost(key: EngineKey, cfg: CostConfig, target: str, figures: dict,
                fit: glue_mod.GlueFit, *, buffers: str = "memory",
                design_only: bool = False) -> dict:
    """One engine on one target (module docstring); ``buffers``: where per-token buffers
    live: ``"memory"`` (the cost model: in RAM, counted in bits and block RAMs) or
    ``"registers"`` (flip-flops and multiplexers, counted in the glue: what synthesis
    makes of memories on a target without RAM); ``design_only``: leave out the parts the
    method's design leaves outside (the prediction of that design)."""
    method = METHODS[key.method]
    sizing = sizing_of(key, cfg)
    rows = []
    for role, part, n in engine_uses(method, sizing, design_only=design_only):
        f = figures[(part, target)]
        rows.append({"role": role, "part": part.label, "count": n, "source": f["source"],
                     "basis": f["basis"],
                     **{k: None if f["figures"].get(k) is None else n * f["figures"][k]
                        for k in FIGURES}})
    g = fit.predict(glue_mod.features(method, sizing, buffers,
                                      lut_inputs=get_target(target).lut_inputs))
    shapes = ", ".join(f"{p['shape'][0]}x{p['shape'][1]}"
                       + (f" rank {p['shape'][2]}" if glue_mod.design_of(fit.design) in (
                           "lqer-linear", "resq-linear") else "")
                       for p in fit.points)
    where = "buffers in registers" if buffers == "registers" else "buffers as memories"
    rows.append({"role": "control and buffer logic (glue)", "part": "glue", "count": 1,
                 "source": ESTIMATED,
                 "basis": f"fitted on {fit.design} syntheses ({shapes}); {where}",
                 **{k: None if v is None else max(0, round(v)) for k, v in g.items()}})
    totals = _sum(rows)
    synthesised = sum(r["luts"] or 0 for r in rows if r["source"] == SYNTHESISED)
    memories = []
    for store in method.stores_at(sizing):
        if store.kind == "registers" or (store.kind == "buffer" and buffers == "registers"):
            continue  # counted in the glue's flip-flops
        mem = Memory(store.role, store.depth(sizing), store.width(sizing), store.kind)
        memories.append({"role": mem.role, "kind": mem.kind, "depth": mem.depth,
                         "width": mem.width, "bits": mem.bits, "brams": mem.blocks(target)})
    schedule = method.schedule(sizing)
    record = {
        "method": key.method, "target": target, "d_in": key.d_in, "d_out": key.d_out,
        "d_in_padded": sizing.din_p, "d_out_padded": sizing.dout_p,
        "macs_per_cycle": cfg.macs_per_cycle, "lanes": sizing.P,
        **{k: totals[k] for k in FIGURES},
        "source": SYNTHESISED if all(r["source"] == SYNTHESISED for r in rows) else ESTIMATED,
        "synthesised_luts": synthesised,
        "steps_per_token": schedule.steps, "cycles_per_token": schedule.cycles,
        "extra_cycles": dict(schedule.extra),
        "parts": rows, "memories": memories,
    }
    for kind in MEMORY_KINDS:
        mine = [m for m in memories if m["kind"] == kind]
        record[f"{kind}_bits"] = sum(m["bits"] for m in mine)
        brams = [m["brams"] for m in mine]
        record[f"{kind}_brams"] = None if any(b is None for b in brams) else sum(brams)
    record["traffic_bits"] = record["weights_bits"]  # every weight is read once per token
    record["gather_bits"] = 0
    if method.needs_outliers:
        # the outlier path reads the gathered columns' weights again, at run-time
        # addresses: counted at the sizing statistic
        record["gather_bits"] = int(round(sizing.outlier_columns * sizing.dout_p
                                          * method.gather_width))
        record["fp_lanes"] = sizing.fp_lanes
        record["outlier_columns"] = sizing.outlier_columns
    if method.uses_rank:
        record["lowrank_lanes"] = sizing.lowrank_lanes
        record["rank"] = cfg.rank
    if key.method == "resq":
        record["resq_rank"] = sizing.resq_rank
        record["high_lanes"] = sizing.resq_high_lanes
    return record


def evaluate(shapes, methods: list[str], cfg: CostConfig, targets: list[str], figures: dict,
             fits: dict, profile=None) -> tuple[list[dict], list[dict]]:
    """Per-layer records (one per layer, method, target) and the distinct engines."""
    layer_keys = plan(shapes, methods, cfg, profile)
    engines: dict[tuple[EngineKey, str], dict] = {}
    layers = []
    for layer in shapes.layers:
        for key in layer_keys[layer.name]:
            for target in targets:
                if (key, target) not in engines:
                    fit = fits[METHODS[key.method].glue_key(cfg)][target]
                    engines[(key, target)] = engine_cost(key, cfg, target, figures, fit)
                e = engines[(key, target)]
                layers.append({"layer": layer.name, "kind": layer.kind, "block_index": layer.index,
                               **{k: v for k, v in e.items() if k not in ("parts", "memories")}})
    fp16 = {(r["layer"], r["target"]): r["luts"] for r in layers if r["method"] == "fp16"}
    for r in layers:
        base = fp16.get((r["layer"], r["target"]))
        r["luts_vs_fp16"] = None if not base else r["luts"] / base
    return layers, list(engines.values())


def model_totals(layers: list[dict]) -> list[dict]:
    """Per method and target: one engine for the whole model, the layers running one after
    another on it: its logic is that of the layer engine with the most LUTs (``sized_by``),
    its buffers the largest any layer needs; weights, traffic and cycles per token are
    summed over the layers."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in layers:
        groups.setdefault((r["method"], r["target"]), []).append(r)
    out = []
    for (method, target), rows in groups.items():
        total = {"method": method, "target": target, "layers": len(rows)}
        largest = max(rows, key=lambda r: (r["luts"] or 0, r["d_in"] * r["d_out"]))
        total["sized_by"] = largest["layer"]
        for k in FIGURES + ("synthesised_luts",):
            total[k] = largest[k]
        for k in ("buffer_bits", "table_bits"):
            total[k] = max(r[k] for r in rows)
        for k in ("buffer_brams", "table_brams"):
            values = [r[k] for r in rows]
            total[k] = None if any(v is None for v in values) else max(values)
        for k in ("weights_bits", "traffic_bits", "gather_bits", "steps_per_token",
                  "cycles_per_token"):
            total[k] = sum(r[k] for r in rows)
        brams = [r["weights_brams"] for r in rows]
        total["weights_brams"] = None if any(b is None for b in brams) else sum(brams)
        stats = sorted({s for r in rows for s in r["extra_cycles"]})
        total["extra_cycles"] = {s: sum(r["extra_cycles"].get(s, 0) for r in rows) for s in stats}
        total["source"] = ESTIMATED if any(r["source"] == ESTIMATED for r in rows) else SYNTHESISED
        out.append(total)
    fp16 = {t["target"]: t["luts"] for t in out if t["method"] == "fp16"}
    for t in out:
        base = fp16.get(t["target"])
        t["luts_vs_fp16"] = None if not base else t["luts"] / base
    return out
