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

from hw.params import is_power_of_two

__all__ = ["Param", "Design", "DESIGNS", "register", "get_design", "parse_params",
           "elaborate", "emit", "top_name", "EMIT_FORMATS"]

EMIT_FORMATS = ("verilog", "rtlil")

# Modules that register further designs when imported (see register()).
EXTENSION_MODULES = ("hw.lqer_linear", "hw.llm_int8")


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


def top_name(design_name: str) -> str:
    """Verilog/RTLIL module name of a design: ``dot-array`` -> ``dot_array``."""
    return design_name.replace("-", "_")


def emit(component: wiring.Component, *, fmt: str, name: str) -> str:
    """Verilog or RTLIL text of ``component`` as top module ``name`` (no source paths,
    so the text depends only on the design and its parameters)."""
    if fmt == "verilog":
        return verilog.convert(component, name=name, emit_src=False)
    if fmt == "rtlil":
        return rtlil.convert(component, name=name, emit_src=False)
    raise ValueError(f'fmt must be one of "verilog", "rtlil"; got {fmt!r}')


def _builtin_designs() -> None:
    # Builders import lazily so that reading the registry stays cheap.
    def build_dot(**p):
        from hw.dot import DotProduct
        return DotProduct(**p)

    block = Param("block", 16, 1, 256, "elements per MXINT block", power_of_two=True)
    x_width = Param("x_width", 8, 2, 16, "activation mantissa bits")
    w_width = Param("w_width", 4, 2, 16, "weight mantissa bits")
    exponent_bits = Param("exponent_bits", 8, 2, 8, "shared exponent bits")
    stages = Param("stages", 2, 1, 8, "pipeline register stages (= latency in cycles)")

    register(Design("dot", "MXINT block dot product: exact integer sum and its exponent",
                    (block, x_width, w_width, exponent_bits, stages), build_dot))


_builtin_designs()
