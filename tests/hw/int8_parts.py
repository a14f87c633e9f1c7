"""Helpers shared by the tests of the LLM.int8() parts."""

from __future__ import annotations

import numpy as np

from sw import llm_int8


def threshold_pattern(threshold: float) -> int:
    """The binary16 pattern the hardware compares with (sw.llm_int8.threshold_binary16)."""
    return int(np.array([llm_int8.threshold_binary16(threshold)]).view(np.uint16)[0])
