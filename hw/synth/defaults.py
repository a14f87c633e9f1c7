"""The default design set of ``make synth`` / ``make pnr``: every registered design at the
paper's configuration, the dot-product array at several lane counts, and the targets each
point runs on.

The LQER paper's configuration is block 16, 8-bit activations, 4-bit weights and
8-bit shared exponents; a parameter of that name is set to it, every other
parameter keeps the design's default. A design that implements another paper names
where it differs in ``PAPER_OVERRIDES`` (``resq-linear``: ResQ's W4A4 with the
r = d/8 high-precision coordinates at 8 bits). Designs that register later (for example
``lqer-linear``) join the set with no change here; ``SWEEPS`` adds points for
the designs it names (a name not registered is skipped).

Targets: a point with at most :data:`HEAVY_MULTIPLIERS` multipliers and at most
:data:`HEAVY_WIRE_BITS` bits of wires runs on every target; a larger one (a datapath) on
:data:`DATAPATH_TARGETS` only (fabric-only 7-series, ECP5 as
``lqer-hw pnr`` places it, and the DSP families, where multipliers cost little synthesis
time), and a whole layer design on :data:`LAYER_TARGETS`: the targets the cost model and
the place-and-route report read (``make synth`` runs a layer on ``xc7-nodsp`` only). A
point with no multiplier skips a DSP target whose fabric-only twin is in the set (``xc7``:
``xc7-nodsp`` gives its figures). A point of a sweep other than its first value (the
dot array at 2, 4 and 8 lanes) runs on :data:`SWEEP_TARGETS`: the sweep shows how the
design grows, and the first value shows it on every target. Synthesis time grows with the multipliers a target maps
to LUTs (docs/synth.md, "Where the time goes"), and a layer's figures on the other targets say
nothing its parts there do not, so this keeps a cold ``make synth`` inside its budget as
designs join. ``lqer-hw synth DESIGN -t ...`` runs any point on any target, and ``-p``
sweeps any parameter (``llm-int8-linear -p outputs=2,4,8``).
"""

from __future__ import annotations

import itertools
import re

__all__ = ["PAPER_CONFIGURATION", "PAPER_OVERRIDES", "SWEEPS", "HEAVY_MULTIPLIERS",
           "DATAPATH_TARGETS", "LAYER_TARGETS", "HEAVY_WIRE_BITS", "SWEEP_TARGETS", "wire_bits", "paper_configuration", "registered_designs", "design_points",
           "default_points", "point_targets", "default_plan"]

_WIRE = re.compile(r"^\s*wire (?:width (\d+) )?", re.M)

PAPER_CONFIGURATION = {"block": 16, "a_width": 8, "w_width": 4, "exponent_bits": 8}
# designs that follow another paper: design -> the parameters where that paper differs.
# ResQ (Saxena et al. 2024): W4A4 on the d - r low-precision coordinates, 8 bits on the
# r = d/8 high-precision ones (the design's defaults: d_in 128, rank 16, high_width 8).
PAPER_OVERRIDES: dict[str, dict[str, int]] = {"resq-linear": {"a_width": 4, "high_width": 8}}
# design -> {parameter: values}; each listed design is synthesised at every value.
SWEEPS: dict[str, dict[str, tuple[int, ...]]] = {
    "dot-array": {"lanes": (1, 2, 4, 8)},
}
# A point with more multipliers than this is a datapath: DATAPATH_TARGETS only.
HEAVY_MULTIPLIERS = 64
# A point whose RTLIL declares more wire bits than this is a datapath too, whatever its
# $mul count: many lanes of logic with no $mul (fp-accumulate's four FP16 multipliers are
# trees of partial products) or with few (llm-int8-int-path's 16 int8 products). At the
# defaults it separates the parts of at most 11,078 bits (dot-array at 4 lanes; the
# quantizer 9,519) from llm-int8-int-path (20,757), fp-accumulate (28,385) and the layers.
HEAVY_WIRE_BITS = 16384
DATAPATH_TARGETS = ("xc7", "xc7-nodsp", "ecp5", "ecp5-nodsp", "gowin")
# A sweep point other than the first value: the cost model's fabric-only 7-series and
# ECP5 as ``make synth`` maps it and as ``make pnr`` places it.
SWEEP_TARGETS = ("xc7-nodsp", "ecp5", "ecp5-nodsp")
# A whole layer design (it publishes a ``schedule``): the targets its figures are read on,
# the cost model's fabric-only 7-series and ECP5 as ``lqer-hw pnr`` places it (fabric only:
# a MULT18X18D stage alone takes about 8 ns, docs/synth.md "ECP5 multipliers"). ``make synth`` runs the
# first; ``make pnr`` synthesises and places the second.
LAYER_TARGETS = ("xc7-nodsp", "ecp5-nodsp")


def registered_designs() -> list:
    from hw import designs
    designs._load_extensions()  # designs registered by extension modules
    return list(designs.DESIGNS.values())


def _allowed(param, value) -> bool:
    try:
        param.check(value)
    except ValueError:
        return False
    return True


def paper_configuration(name: str) -> dict[str, int]:
    """The paper configuration of design ``name``: :data:`PAPER_CONFIGURATION` with the
    design's entry of :data:`PAPER_OVERRIDES` over it."""
    return {**PAPER_CONFIGURATION, **PAPER_OVERRIDES.get(name, {})}


def design_points(design, *, base: dict | None = None,
                  sweeps: dict | None = None) -> list[dict[str, int]]:
    """Parameter sets of ``design``: defaults, overridden by ``base`` (default: the design's
    :func:`paper_configuration`) where the design has the parameter (and the value is
    allowed), times ``sweeps`` ({parameter: values}; default: this design's entry in
    :data:`SWEEPS`)."""
    base = paper_configuration(design.name) if base is None else base
    sweeps = SWEEPS.get(design.name, {}) if sweeps is None else sweeps
    params = design.defaults
    names = {p.name: p for p in design.params}
    for name, value in base.items():
        if name in names and _allowed(names[name], value):
            params[name] = value
    axes = [(name, [v for v in values if _allowed(names[name], v)])
            for name, values in sweeps.items() if name in names]
    axes = [(name, values) for name, values in axes if values]
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        point = dict(params)
        point.update(zip((name for name, _ in axes), combo))
        points.append(point)
    return points


def default_points() -> list[tuple[str, dict[str, int]]]:
    """(design name, parameters) for every registered design."""
    return [(d.name, p) for d in registered_designs() for p in design_points(d)]


def wire_bits(rtlil: str) -> int:
    """The bits of every wire an RTLIL text declares (a size of a design before synthesis)."""
    return sum(int(width or 1) for width in _WIRE.findall(rtlil))


def point_targets(multiplier_count: int, targets, *, layer: bool = False, bits: int = 0,
                  sweep: bool = False) -> list:
    """The targets (names or :class:`~hw.synth.targets.Target` objects, in their order) a
    point with ``multiplier_count`` multipliers and ``bits`` bits of wires
    (:func:`wire_bits`) runs on in the default set: every one, or
    :data:`DATAPATH_TARGETS` for one with more than :data:`HEAVY_MULTIPLIERS` or more than
    :data:`HEAVY_WIRE_BITS`, and every one
    but a DSP target with its fabric-only twin among ``targets`` (``xc7`` beside
    ``xc7-nodsp``) for one with no multiplier: Yosys's DSP mapping acts on ``$mul`` cells
    only, so the two give the same netlist to within a few LUTs (docs/synth.md, "The
    default set"); a ``layer`` design (one that
    publishes a ``schedule``: a whole linear layer, whatever its multipliers, the IEEE
    multipliers being trees of partial products, not ``$mul``) on :data:`LAYER_TARGETS`; a
    ``sweep`` point (a value of :data:`SWEEPS` other than the first) on those of
    :data:`SWEEP_TARGETS` the rest leaves it."""
    names = [getattr(t, "name", t) for t in targets]
    if layer:
        allowed = LAYER_TARGETS
    elif multiplier_count > HEAVY_MULTIPLIERS or bits > HEAVY_WIRE_BITS:
        allowed = DATAPATH_TARGETS
    else:
        allowed = tuple(names)
    if multiplier_count == 0 and not layer:
        # no $mul: a DSP target's only difference from its fabric-only twin is gone
        allowed = tuple(n for n in allowed if f"{n}-nodsp" not in names)
    if sweep:
        allowed = tuple(n for n in allowed if n in SWEEP_TARGETS)
    return [t for t in targets if getattr(t, "name", t) in allowed]


def default_plan(targets) -> list[tuple[str, dict[str, int], list, object, str]]:
    """``(design, parameters, targets, elaborated component, its RTLIL)`` for every default
    point, the targets chosen from ``targets`` by :func:`point_targets` (points left with
    none are dropped). Each component is elaborated and emitted once, here."""
    from hw.designs import elaborate, emit, top_name
    from hw.synth.flow import multipliers
    plan = []
    for design, params in default_points():
        component = elaborate(design, **params)
        rtlil = emit(component, fmt="rtlil", name=top_name(design))
        sweep = any(name in params and params[name] != values[0]
                    for name, values in SWEEPS.get(design, {}).items())
        chosen = point_targets(multipliers(rtlil)[0], targets,
                               layer=hasattr(component, "schedule"), bits=wire_bits(rtlil),
                               sweep=sweep)
        if chosen:
            plan.append((design, params, chosen, component, rtlil))
    return plan
