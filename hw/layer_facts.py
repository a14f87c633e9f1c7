"""The facts a layer datapath publishes from its schedule, written once.

A layer design (``fp16-linear``, ``llm-int8-linear``, ``lqer-linear``) keeps its stream
order and timing model in a schedule object (``hw/*_schedule.py``) held as
``self._schedule``; these mixins publish what every such design shares, for the tests,
the simulator adapters and the cost model to read.
"""

from __future__ import annotations

__all__ = ["LayerFacts", "TokenSteps"]


class LayerFacts:
    """``schedule``, ``d_in``, ``d_out`` and ``latency`` of a layer datapath (from
    ``self._schedule``)."""

    @property
    def schedule(self):
        """The stream order and timing model (the design's ``hw/*_schedule.py``)."""
        return self._schedule

    @property
    def d_in(self) -> int:
        """Input features of the layer."""
        return self._schedule.d_in

    @property
    def d_out(self) -> int:
        """Output features of the layer."""
        return self._schedule.d_out

    @property
    def latency(self) -> int:
        """Cycles from a token's last input item to its last output, at full rate (the
        schedule's ``latency``)."""
        return self._schedule.latency


class TokenSteps:
    """``steps_per_token`` and ``cycles_per_token`` of a datapath taking a fixed number of
    input items per token (``self._schedule.steps``, ``.cycles_per_token``)."""

    @property
    def steps_per_token(self) -> int:
        """Input items per token."""
        return self._schedule.steps

    @property
    def cycles_per_token(self) -> int:
        """Cycles per token at full rate (input always valid, output always ready)."""
        return self._schedule.cycles_per_token
