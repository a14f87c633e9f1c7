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

Targets: a point with at most :data:`HEAVY_MULTIPLIERS` multipliers runs on every target;
a larger one (a datapath) on :data:`DATAPATH_TARGETS` only (fabric-only 7-series, ECP5 as
``lqer-hw pnr`` places it, and the DSP families, where multipliers cost little synthesis
time), and a whole layer design on :data:`LAYER_TARGETS`: the targets the cost model and
the place-and-route report read (``make synth`` runs a layer on ``xc7-nodsp`` only). A
point with no multiplier skips a DSP target whose fabric-only twin is in the set (``xc7``:
``xc7-nodsp`` gives its figures). Synthesis time grows with the multipliers a target maps
to LUTs (docs/synth.md, "Where the time goes"), and a layer's figures on the other targets say
nothing its parts there do not, so this keeps a cold ``make synth`` inside its budget as
designs join. ``lqer-hw synth DESIGN -t ...`` runs any point on any target, and ``-p``
sweeps any parameter (``llm-int8-linear -p outputs=2,4,8``).
"""

from __future__ import annotations

import itertools

__all__ = ["PAPER_CONFIGURATION", "PAPER_OVERRIDES", "SWEEPS", "HEAVY_MULTIPLIERS",
           "DATAPATH_TARGETS", "LAYER_TARGETS", "paper_configuration", "registered_designs", "design_points",
           "default_points", "point_targets", "default_plan"]

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
DATAPATH_TARGETS = ("xc7", "xc7-nodsp", "ecp5", "ecp5-nodsp", "gowin")
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


def point_targets(multiplier_count: int, targets, *, layer: bool = False) -> list:
    """The targets (names or :class:`~hw.synth.targets.Target` objects, in their order) a
    point with ``multiplier_count`` multipliers runs on in the default set: every one, or
    :data:`DATAPATH_TARGETS` for one with more than :data:`HEAVY_MULTIPLIERS`, and every one
    but a DSP target with its fabric-only twin among ``targets`` (``xc7`` beside
    ``xc7-nodsp``) for one with no multiplier: Yosys's DSP mapping acts on ``$mul`` cells
    only, so the two give the same netlist to within a few LUTs (docs/synth.md, "The
    default set"); a ``layer`` design (one that
    publishes a ``schedule``: a whole linear layer, whatever its multipliers, the IEEE
    multipliers being trees of partial products, not ``$mul``) on :data:`LAYER_TARGETS`."""
    names = [getattr(t, "name", t) for t in targets]
    if layer:
        allowed = LAYER_TARGETS
    elif multiplier_count > HEAVY_MULTIPLIERS:
        allowed = DATAPATH_TARGETS
    elif multiplier_count == 0:
        # no $mul: a DSP target's only difference from its fabric-only twin is gone
        allowed = tuple(n for n in names if f"{n}-nodsp" not in names)
    else:
        return list(targets)
    return [t for t in targets if getattr(t, "name", t) in allowed]


def default_plan(targets) -> list[tuple[str, dict[str, int], list, object, str]]:
    """``(design, parameters, targets, elaborated component, its RTLIL)`` for every default
    point, the targets chosen from ``targets`` by :func:`point_targets` (points left with
    none are dropped). Each component is elaborated and emitted once, here."""
    from hw.designs import elaborate, emit, top_name
    from hw.synth.flow import multipliers
    plan = []
    for name, params in default_points():
        component = elaborate(name, **params)
        rtlil = emit(component, fmt="rtlil", name=top_name(name))
        chosen = point_targets(multipliers(rtlil)[0], targets,
                               layer=hasattr(component, "schedule"))
        if chosen:
            plan.append((name, params, chosen, component, rtlil))
    return plan
