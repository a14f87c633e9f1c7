"""Reference-model adapters of the simulated designs, one module per design.

:mod:`sim.adapters.base` holds :class:`Adapter`, :class:`FieldSpec`, :class:`Bounds`,
:class:`CheckedInputs`, the registry (:func:`register_adapter`, :func:`get_adapter`,
``ADAPTERS``) and the random-operand helpers; each design module registers its adapter
once when imported here.
"""

from __future__ import annotations

from sim.adapters import accumulator, dot_array, fp, lqer_linear, quantizer  # noqa: F401  (register)
from sim.adapters import fp16_linear, llm_int8_linear  # noqa: F401  (register)
from sim.adapters.base import (ADAPTERS, Adapter, Bounds, CheckedInputs, FieldSpec,
                               get_adapter, register_adapter)

__all__ = ["Adapter", "FieldSpec", "Bounds", "CheckedInputs", "ADAPTERS", "register_adapter",
           "get_adapter"]
