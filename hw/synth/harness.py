"""A timing harness: every port of a design behind registers, three pins in all.

Place and route needs a design that fits a package's pins and whose paths all
start and end at flip-flops, so that the reported Fmax covers the design's own
logic (including what sits between its inputs and its first register). The
harness feeds all of the design's inputs from one shift register loaded
serially from ``sin``, and captures all of its outputs in a register that
``load`` fills and otherwise shifts out through ``sout``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TimingHarness", "DESIGN_SUBMODULE"]

# the design's submodule name: its module is ``<harness top>.design`` in the emitted RTLIL
DESIGN_SUBMODULE = "design"


class TimingHarness(wiring.Component):
    """Wraps ``design`` (a :class:`wiring.Component` in the ``sync`` domain)."""

    def __init__(self, design: wiring.Component):
        if not isinstance(design, wiring.Component):
            raise TypeError(f"design must be an amaranth wiring.Component; got {design!r}")
        self._design = design
        ports = list(design.signature.flatten(design))
        self._inputs = [Value.cast(v) for _, member, v in ports if member.flow == In]
        self._outputs = [Value.cast(v) for _, member, v in ports if member.flow == Out]
        super().__init__({"sin": In(1), "load": In(1), "sout": Out(1)})

    @property
    def input_bits(self) -> int:
        return sum(len(v) for v in self._inputs)

    @property
    def output_bits(self) -> int:
        return sum(len(v) for v in self._outputs)

    @property
    def register_bits(self) -> int:
        """Flip-flops the harness itself adds around the design."""
        return self.input_bits + self.output_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules[DESIGN_SUBMODULE] = self._design
        if self._inputs:
            shift_in = Signal(self.input_bits)
            m.d.sync += shift_in.eq(Cat(self.sin, shift_in[:-1]))
            m.d.comb += Cat(*self._inputs).eq(shift_in)
        if self._outputs:
            captured = Signal(self.output_bits)
            with m.If(self.load):
                m.d.sync += captured.eq(Cat(*self._outputs))
            with m.Else():
                m.d.sync += captured.eq(captured >> 1)
            m.d.comb += self.sout.eq(captured[0])
        return m
