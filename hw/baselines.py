"""Registers the baseline datapaths in :mod:`hw.designs` (imported through
``hw.designs.EXTENSION_MODULES``): ``fp16-linear`` (:mod:`hw.fp16_linear`), the FP16
datapath every area is normalised to, ``llm-int8-linear`` (:mod:`hw.llm_int8_linear`)
with its parts, the LLM.int8() scatter/gather datapath LQER is compared with, and
``w8a8-linear``, the same datapath without its outlier path (``outliers=False``: W8A8,
vector-wise int8 weights and activations).

Defaults: 16 multiply-accumulates per cycle on the main path (``lanes=16``), one token
at a time, the units' pipelines at one register per level (the 150 MHz ECP5 goal).
"""

from __future__ import annotations

from hw.designs import Design, Param, register
from hw.fp.common import MAX_STAGES
from hw.fp.fp16_mul import FP16Mul
from hw.fp.fp32_add import FP32Add
from hw.fp.fp32_mul import FP32Mul
from hw.fp.fp32_to_fp16 import FP32ToFP16
from hw.fp_accumulate import MAX_LANES
from sw.datapath import MAX_DIM

__all__ = ["THRESHOLD_DOC", "threshold_bits"]


def _stages(name: str, unit, doc: str) -> Param:
    return Param(name, len(unit.LEVELS), 1, MAX_STAGES,
                 f"pipeline stages of {doc} (default one per level: {len(unit.LEVELS)})")


def _build_fp16_linear(*, out_fp16, **p):
    from hw.fp16_linear import FP16Linear
    return FP16Linear(out_fp16=bool(out_fp16), **p)


def _threshold(bits: int) -> float:
    """The binary16 pattern ``bits`` (0..0x7C00) as a float (0x7C00: infinity)."""
    import numpy as np
    return float(np.array([bits], np.uint16).view(np.float16)[0])


def threshold_bits(threshold: float) -> int:
    """The ``threshold_bits`` parameter of a threshold (``sw.llm_int8.threshold_binary16``)."""
    import numpy as np

    from sw.llm_int8 import threshold_binary16
    return int(np.array([threshold_binary16(threshold)]).view(np.uint16)[0])


def _build_llm_int8(*, threshold_bits, bias, out_fp16, **p):
    from hw.llm_int8_linear import LLMInt8Linear
    return LLMInt8Linear(threshold=_threshold(threshold_bits), bias=bool(bias),
                         out_fp16=bool(out_fp16), **p)


def _build_w8a8(*, bias, out_fp16, **p):
    from hw.llm_int8_linear import LLMInt8Linear
    return LLMInt8Linear(outliers=False, bias=bool(bias), out_fp16=bool(out_fp16), **p)


def _build_detector(**p):
    from hw.int8_detector import Int8Detector
    return Int8Detector(**p)


def _build_quantizer(**p):
    from hw.int8_quantizer import Int8Quantizer
    return Int8Quantizer(**p)


def _build_compaction(**p):
    from hw.int8_compaction import Int8Compaction
    return Int8Compaction(**p)


def _build_int_path(*, bias, **p):
    from hw.int8_int_path import Int8IntPath
    return Int8IntPath(bias=bool(bias), **p)


def _build_fp_accumulate(**p):
    from hw.fp_accumulate import FPAccumulate
    return FPAccumulate(**p)


def _build_merge(*, out_fp16):
    from hw.int8_merge import Int8Merge
    return Int8Merge(out_fp16=bool(out_fp16))


THRESHOLD_DOC = ("binary16 pattern of the outlier threshold (0x4600 = 6.0; 0x7C00 = "
                 "infinity: no outliers)")


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
    register(Design("llm-int8-linear", "LLM.int8() linear layer: outlier detector, int8 "
                    "quantizer, compaction and gather port, int8 path, binary16 outlier path, "
                    "merge (sw.llm_int8)", (
        Param("d_in", 64, 1, MAX_DIM, "input features (a multiple of x_lanes, >= lanes)"),
        Param("d_out", 64, 1, MAX_DIM, "output features (a multiple of lanes and fp_lanes)"),
        Param("x_lanes", 16, 1, 256, "activations per input item (detector and compaction "
              "width)"),
        Param("lanes", 16, 1, 256, "int8 multiply-accumulates per cycle (int path)"),
        Param("fp_lanes", 4, 1, MAX_LANES, "binary16 multiply-accumulates per cycle (outlier "
              "path)"),
        Param("outputs", 4, 1, 256, "M: outlier column indices per compaction pass"),
        Param("threshold_bits", 0x4600, 0, 0x7C00, THRESHOLD_DOC),
        Param("tile", 1, 1, 16, "T: tokens per tile (the outlier detection group)"),
        Param("bias", 0, 0, 1, "1: add a binary32 bias per output"),
        Param("out_fp16", 1, 0, 1, "1: binary16 outputs (as bitsandbytes); 0: binary32"),
        Param("outstanding", 4, 1, 16, "gather requests in flight"),
    ), _build_llm_int8))
    # the same datapath without the outlier path: a mode of LLMInt8Linear (as resq-linear
    # is of LQERLinear), its own name because its ports differ (no gather)
    register(Design("w8a8-linear", "W8A8 linear layer (LLM.int8() without outliers): "
                    "absmax, int8 quantizer, int8 path, no outlier path (sw.llm_int8."
                    "w8a8_linear)", (
        Param("d_in", 64, 1, MAX_DIM, "input features (a multiple of x_lanes, >= lanes)"),
        Param("d_out", 64, 1, MAX_DIM, "output features (a multiple of lanes)"),
        Param("x_lanes", 16, 1, 256, "activations per input item (absmax width)"),
        Param("lanes", 16, 1, 256, "int8 multiply-accumulates per cycle (int path)"),
        Param("bias", 0, 0, 1, "1: add a binary32 bias per output"),
        Param("out_fp16", 1, 0, 1, "1: binary16 outputs (as bitsandbytes); 0: binary32"),
    ), _build_w8a8))
    # the parts, for the area split (docs/llm_int8_rtl.md)
    register(Design("llm-int8-detector", "LLM.int8() outlier detector: mask and non-outlier "
                    "absmax of a block of binary16 activations", (
        Param("lanes", 16, 1, 256, "activations per item"),
        Param("threshold_bits", 0x4600, 0, 0x7C00, THRESHOLD_DOC),
        Param("stages", 5, 1, 16, "pipeline stages (compare, then the max tree)"),
    ), _build_detector))
    register(Design("llm-int8-quantizer", "LLM.int8() activation quantizer: reciprocal table, "
                    "binary32 product, round half to even", (
        _stages("mul_stages", FP32Mul, "the binary32 multiplier"),
    ), _build_quantizer))
    register(Design("llm-int8-compaction", "LLM.int8() compaction network: mask chunks to "
                    "lists of up to M column indices per pass", (
        Param("lanes", 16, 1, 256, "mask bits per chunk"),
        Param("outputs", 4, 1, 256, "M: indices per pass (at most lanes)"),
        Param("chunks", 4, 1, 65536, "chunks per mask (sets the index width)"),
    ), _build_compaction))
    register(Design("llm-int8-int-path", "LLM.int8() int path: P lanes of int8 x int8, exact "
                    "sums, binary32 dequantization (and bias)", (
        Param("lanes", 16, 1, 256, "multiply-accumulates per cycle"),
        Param("d_in", 64, 1, MAX_DIM, "columns per sum (>= lanes)"),
        Param("bias", 0, 0, 1, "1: add a bias"),
    ), _build_int_path))
    register(Design("fp-accumulate", "binary16 x binary16 products added column by column "
                    "into binary32 sums held in a memory (fp16-linear, LLM.int8() outlier path)", (
        Param("lanes", 4, 1, MAX_LANES, "products per cycle"),
        Param("groups", 16, 1, 8192, "groups of lanes outputs (d_out / lanes)"),
    ), _build_fp_accumulate))
    register(Design("llm-int8-merge", "LLM.int8() merge: binary32 add of the two paths, "
                    "optional binary16 output", (
        Param("out_fp16", 1, 0, 1, "1: binary16 outputs; 0: binary32"),
    ), _build_merge))


_register()
