"""The default design set of ``make synth``: every registered design at the paper's
configuration, and the dot-product array at several lane counts.

The LQER paper's configuration is block 16, 8-bit activations, 4-bit weights and
8-bit shared exponents; a parameter of that name is set to it, every other
parameter keeps the design's default. A design that implements another paper names
where it differs in ``PAPER_OVERRIDES`` (``resq-linear``: ResQ's W4A4 with the
r = d/8 high-precision coordinates at 8 bits). Designs that register later (for example
``lqer-linear``) join the set with no change here; ``SWEEPS`` adds points for
the designs it names (a name not registered is skipped).
"""

from __future__ import annotations

import itertools

__all__ = ["PAPER_CONFIGURATION", "PAPER_OVERRIDES", "SWEEPS", "paper_configuration",
           "registered_designs", "design_points", "default_points"]

PAPER_CONFIGURATION = {"block": 16, "a_width": 8, "w_width": 4, "exponent_bits": 8}
# designs that follow another paper: design -> the parameters where that paper differs.
# ResQ (Saxena et al. 2024): W4A4 on the d - r low-precision coordinates, 8 bits on the
# r = d/8 high-precision ones (the design's defaults: d_in 128, rank 16, high_width 8).
PAPER_OVERRIDES: dict[str, dict[str, int]] = {"resq-linear": {"a_width": 4, "high_width": 8}}
# design -> {parameter: values}; each listed design is synthesised at every value.
SWEEPS: dict[str, dict[str, tuple[int, ...]]] = {
    "dot-array": {"lanes": (1, 2, 4, 8)},
    # M, the outlier column indices per compaction pass (hw.llm_int8_linear)
    "llm-int8-linear": {"outputs": (2, 4, 8)},
}


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
