"""Registers the baseline datapaths in :mod:`hw.designs` (imported through
``hw.designs.EXTENSION_MODULES``): ``fp16-linear`` (:mod:`hw.fp16_linear`), the FP16
datapath every area is normalised to, and ``llm-int8-linear`` (:mod:`hw.llm_int8_linear`)
with its parts, the LLM.int8() scatter/gather datapath LQER is compared with.

Defaults: 16 multiply-accumulates per cycle on the main path (``lanes=16``), one token
at a time, the units' pipelines at one register per level (the 150 MHz ECP5 goal).
"""

from __future__ import annotations

from hw.designs import Design, Param, register
from hw.fp.common import MAX_STAGES
from hw.fp.fp16_mul import FP16Mul
from hw.fp.fp32_add import FP32Add
from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp_accumulate import MAX_LANES
from sw.datapath import MAX_DIM

__all__ = []


def _stages(name: str, unit, doc: str) -> Param:
    return Param(name, len(unit.LEVELS), 1, MAX_STAGES,
                 f"pipeline stages of {doc} (default one per level: {len(unit.LEVELS)})")


def _build_fp16_linear(*, out_fp16, **p):
    from hw.fp16_linear import FP16Linear
    return FP16Linear(out_fp16=bool(out_fp16), **p)


def _register() -> None:
    register(Design("fp16-linear", "FP16 linear layer (baseline): P lanes of binary16 x "
                    "binary16 products, one binary32 sum per output (sw.fp16_linear)", (
        Param("d_in", 64, 1, MAX_DIM, "input features"),
        Param("d_out", 64, 1, MAX_DIM, "output features (a multiple of lanes)"),
        Param("lanes", 16, 1, MAX_LANES, "multiply-accumulates per cycle (outputs per step)"),
        _stages("mul_stages", FP16Mul, "each binary16 multiplier"),
        _stages("add_stages", FP32Add, "each binary32 adder"),
        Param("out_fp16", 0, 0, 1, "1: round the outputs to binary16; 0: binary32 outputs"),
        _stages("out_stages", FP32ToFP16, "each binary32 -> binary16 conversion (out_fp16=1)"),
    ), _build_fp16_linear))


_register()
