"""The registry of generated designs: names, parameters with ranges, builders.

Used by ``lqer-hw gen``, ``lqer-hw sim``, the cocotb benches and the synthesis
flow. Each :class:`Design` lists its integer parameters (default and range);
``build(**params)`` returns the Amaranth component. Other packages add designs
with :func:`register`; the modules named in ``EXTENSION_MODULES`` are imported
(when present) the first time the registry is read, so their designs appear in
``lqer-hw gen --list`` without editing this file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from hw.memory_collision import mark_collision_free
from hw.params import is_power_of_two
from hw.unused import inspected
from sw import mxint
from sw.mxint import MXIntFormat

__all__ = ["Param", "Design", "DESIGNS", "register", "get_design", "parse_params",
           "elaborate", "inspect", "emit", "top_name", "all_designs", "block_param",
           "width_param", "exponent_bits_param", "params_format"]

# Modules that register further designs when imported (see register()).
EXTENSION_MODULES = ("hw.lqer_linear", "hw.fp.designs", "hw.baselines")


@dataclass(frozen=True)
class Param:
    name: str
    default: int
    minimum: int
    maximum: int
    doc: str
    power_of_two: bool = False

    def describe(self) -> str:
        kind = "a power of two" if self.power_of_two else "an integer"
        return f"{kind} in {self.minimum}..{self.maximum}"

    def check(self, value) -> int:
        """``value`` if allowed; ``ValueError`` naming the parameter and its range."""
        if (isinstance(value, bool) or not isinstance(value, int)
                or not self.minimum <= value <= self.maximum
                or (self.power_of_two and not is_power_of_two(value))):
            raise ValueError(f"{self.name} must be {self.describe()}; got {value!r}")
        return value


@dataclass(frozen=True)
class Design:
    name: str
    summary: str
    params: tuple[Param, ...]
    build: Callable[..., wiring.Component]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(f"parameter of {self.name} must be one of "
                         f"{', '.join(p.name for p in self.params)}; got {name!r}")

    @property
    def defaults(self) -> dict[str, int]:
        return {p.name: p.default for p in self.params}


DESIGNS: dict[str, Design] = {}
_extensions_loaded = False


def register(design: Design) -> Design:
    """Add ``design`` to the registry; a second design of the same name is an error."""
    if design.name in DESIGNS and DESIGNS[design.name] is not design:
        raise ValueError(f"design name must be unique; {design.name!r} is already registered")
    DESIGNS[design.name] = design
    return design


def _load_extensions() -> None:
    global _extensions_loaded
    if _extensions_loaded:
        return
    _extensions_loaded = True
    for module in EXTENSION_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def all_designs() -> list[Design]:
    """Every registered design, extension modules included, in registration order."""
    _load_extensions()
    return list(DESIGNS.values())


def get_design(name: str) -> Design:
    _load_extensions()
    if name not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}; got {name!r}")
    return DESIGNS[name]


def parse_params(design: Design, assignments: list[str]) -> dict[str, int]:
    """``["NAME=VALUE", ...]`` -> validated parameters with defaults filled in."""
    params = design.defaults
    seen = set()
    for text in assignments:
        name, sep, raw = text.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name:
            raise ValueError(f"parameter must be NAME=VALUE; got {text!r}")
        p = design.param(name)
        if name in seen:
            raise ValueError(f"{name} must be given once; got it twice")
        seen.add(name)
        try:
            value = int(raw, 0)
        except ValueError:
            raise ValueError(f"{name} must be {p.describe()}; got {raw!r}") from None
        params[name] = p.check(value)
    return params


def elaborate(name: str, **params) -> wiring.Component:
    """Build design ``name`` with ``params`` (missing ones take their defaults)."""
    design = get_design(name)
    full = design.defaults
    for key, value in params.items():
        full[key] = design.param(key).check(value)
    return design.build(**full)


def inspect(name: str, **params) -> wiring.Component:
    """Like :func:`elaborate`, for reading the component's properties (latency, widths,
    ports) without turning it into a netlist: no "created but never used" warning."""
    return inspected(elaborate(name, **params))


def top_name(design_name: str) -> str:
    """Verilog/RTLIL module name of a design: ``dot-array`` -> ``dot_array``."""
    return design_name.replace("-", "_")


def emit(component: wiring.Component, *, fmt: str, name: str) -> str:
    """Verilog or RTLIL text of ``component`` as top module ``name`` (no source paths,
    so the text depends only on the design and its parameters)."""
    if fmt == "verilog":
        return verilog.convert(component, name=name, emit_src=False)
    if fmt == "rtlil":
        return mark_collision_free(rtlil.convert(component, name=name, emit_src=False))
    raise ValueError(f'fmt must be one of "verilog", "rtlil"; got {fmt!r}')


# --- the MXINT format's parameters, from the one rule in sw.mxint -----------------------

def block_param(default: int = 16, doc: str = "elements per MXINT block") -> Param:
    """The ``block`` parameter: a power of two in 1..``sw.mxint.MAX_BLOCK``."""
    return Param("block", default, 1, mxint.MAX_BLOCK, doc, power_of_two=True)


def width_param(name: str, default: int, doc: str) -> Param:
    """An MXINT element width (sign included) in ``sw.mxint.WIDTH_RANGE``."""
    return Param(name, default, *mxint.WIDTH_RANGE, doc)


def exponent_bits_param(default: int = 8) -> Param:
    """Shared-exponent bits in ``sw.mxint.EXPONENT_BITS_RANGE``."""
    return Param("exponent_bits", default, *mxint.EXPONENT_BITS_RANGE, "shared exponent bits")


def params_format(params: dict, width: str) -> MXIntFormat:
    """The format of parameter ``width`` with the design's ``block`` and ``exponent_bits``."""
    return MXIntFormat(width=params[width], block=params["block"],
                       exponent_bits=params["exponent_bits"])


def _build_dot_array(*, lanes, stages, **p):
    from hw.dot_array import DotArray
    return DotArray(lanes=lanes, a_format=params_format(p, "a_width"),
                    w_format=params_format(p, "w_width"), stages=stages)


def _build_quantizer(*, in_width, frac_bits, stages, **p):
    from hw.quantizer import Quantizer
    return Quantizer(out_format=params_format(p, "width"), in_width=in_width,
                     frac_bits=frac_bits, stages=stages)


def _build_accumulator(*, lanes, slots, stages, guard_bits, max_partials, floor_rounding, out_width,
                       out_stages, **p):
    """An accumulator sized for the partials of ``dot-array`` with these widths."""
    from hw.accumulator import Accumulator
    from hw.dot_array import DotGeometry
    dot = DotGeometry(a_format=params_format(p, "a_width"), w_format=params_format(p, "w_width"),
                      stages=1)
    out_format = None
    if out_width:
        if not is_power_of_two(lanes):
            raise ValueError(f"lanes must be a power of two when out_width > 0 (the lanes' "
                             f"results form one MXINT block); got {lanes}")
        out_format = MXIntFormat(width=out_width, block=lanes,
                                 exponent_bits=p["exponent_bits"])
    return Accumulator(sum_width=dot.sum_width, exponent_range=dot.exponent_range,
                       guard_bits=guard_bits, max_partials=max_partials,
                       rounding="floor" if floor_rounding else "even", lanes=lanes,
                       slots=slots, stages=stages, out_format=out_format,
                       out_stages=out_stages)


def _builtin_designs() -> None:
    wmin, wmax = mxint.WIDTH_RANGE
    register(Design("quantizer", "MXINT quantizer: fixed-point vector to one MXINT block", (
        block_param(),
        Param("in_width", 16, 2, 52, "input fixed-point bits (two's complement)"),
        Param("frac_bits", 8, -64, 64, "input fraction bits (value = input * 2**-frac_bits)"),
        width_param("width", 8, "output element bits"),
        exponent_bits_param(),
        Param("stages", 7, 1, 8, "pipeline register stages (= latency in cycles)"),
    ), _build_quantizer))
    register(Design("dot-array", "P-lane MXINT dot-product array: one activation block "
                    "against P weight blocks (lanes=1: one dot product)", (
        Param("lanes", 4, 1, 256, "weight blocks (output channels) per cycle"),
        block_param(),
        width_param("a_width", 8, "activation element bits"),
        width_param("w_width", 4, "weight element bits"),
        exponent_bits_param(),
        Param("stages", 7, 1, 8, "pipeline register stages (= latency in cycles)"),
    ), _build_dot_array))
    register(Design("accumulator", "cross-block accumulator (sw.blockmath.accumulate) of dot "
                    "partials, optionally requantized to MXINT", (
        Param("lanes", 1, 1, 256, "parallel accumulators sharing one 'last' flag"),
        Param("slots", 4, 1, 4, "registers in the accumulation loop = results in flight "
              "(item i of the input belongs to result slot i mod slots)"),
        Param("stages", 5, 0, 6, "registers before the loop (latency = stages + slots)"),
        block_param(doc="block of the dot products feeding it"),
        width_param("a_width", 8, "activation element bits of those dot products"),
        width_param("w_width", 4, "weight element bits of those dot products"),
        exponent_bits_param(),
        Param("guard_bits", 8, 0, 32, "fraction bits kept below the running maximum exponent"),
        Param("max_partials", 256, 1, 65536, "most partials per result (sets the register width)"),
        Param("floor_rounding", 0, 0, 1, "1: alignment shifts floor; 0: round half to even"),
        Param("out_width", 0, 0, wmax, f"0: emit (A, lsb exponent); {wmin}..{wmax}: requantize "
              "the lanes' results to one MXINT block of that width (lanes a power of two)"),
        Param("out_stages", 6, 1, 8, "pipeline stages of the requantizer (when out_width > 0)"),
    ), _build_accumulator))


_builtin_designs()
