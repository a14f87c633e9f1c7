"""Registers the floating-point units in :mod:`hw.designs` (imported through
``hw.designs.EXTENSION_MODULES``).

Every unit has one parameter, ``stages`` (pipeline registers = latency in cycles,
1..16, placed over the unit's combinational levels by their estimated delays,
:func:`hw.pipeline.register_counts`); the default puts one register after each
level, which is what the project-wide 150 MHz ECP5 goal needs.
"""

from __future__ import annotations

from hw.designs import Design, Param, register
from hw.fp.common import MAX_STAGES
from hw.fp.fp16_mul import FP16Mul
from hw.fp.fp32_add import FP32Add
from hw.fp.fp32_mul import FP32Mul
from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp.int32_to_fp32 import Int32ToFP32

__all__ = ["FP_UNITS"]

# design name -> (component class, summary)
FP_UNITS = {
    "fp16-mul": (FP16Mul, "binary16 x binary16 -> exact binary32 product (sw.ieee.fp16_mul_fp32)"),
    "fp32-add": (FP32Add, "binary32 adder, round to nearest even, subnormals kept "
                          "(sw.ieee.fp32_add)"),
    "int32-to-fp32": (Int32ToFP32, "int32 -> binary32, round to nearest even "
                                   "(sw.ieee.int32_to_fp32)"),
    "fp32-mul": (FP32Mul, "binary32 multiplier, round to nearest even, subnormals kept "
                          "(sw.ieee.fp32_mul)"),
    "fp32-to-fp16": (FP32ToFP16, "binary32 -> binary16, round to nearest even, overflow to "
                                 "infinity (sw.ieee.fp32_to_fp16)"),
}


def _register() -> None:
    for name, (cls, summary) in FP_UNITS.items():
        stages = Param("stages", len(cls.LEVELS), 1, MAX_STAGES,
                       f"pipeline register stages (= latency in cycles); levels: "
                       f"{', '.join(cls.LEVELS)}")
        register(Design(name, summary, (stages,), lambda cls=cls, **p: cls(**p)))


_register()
