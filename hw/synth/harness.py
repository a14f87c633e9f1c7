"""A timing harness: every port of a design behind registers, three pins in all.

Place and route needs a design that fits a package's pins and whose paths all
start and end at flip-flops, so that the reported Fmax covers the design's own
logic (including what sits between its inputs and its first register). The
harness shifts the design's inputs in serially from ``sin`` into a chain that a
launch register copies every cycle (one cycle behind the chain); the design's
outputs pass a catch register every cycle, and ``load`` copies that into a register
shifted out through ``sout``.

The launch and catch registers are the design's only neighbours in the harness: each
drives or takes one design port bit and a bit of a chain, and the chains themselves
are register-to-register paths. Without them a port bit's register was also a link
of the shift chain, so the placer pulled it towards its neighbours in the chain, in
the port order, and a design's port path (its output's valid, through the consumer's
ready, back into the design) carried a route the harness had set (docs/synth.md,
"The timing harness").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.pipeline import REPLICA_TAG

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
        """Flip-flops the harness itself adds around the design: two per port bit (a
        chain's and the launch or catch register's)."""
        return 2 * (self.input_bits + self.output_bits)

    def elaborate(self, platform):
        m = Module()
        m.submodules[DESIGN_SUBMODULE] = self._design
        if self._inputs:
            shift_in = Signal(self.input_bits, name="shift_in")
            # ``launch[k]`` copies ``shift_in[k]`` every cycle, so it equals
            # ``shift_in[k + 1]``: replica-named (hw.pipeline.REPLICA_TAG), the synthesis
            # flows keep it apart instead of merging the two. (Loaded on ``load`` instead,
            # the launch registers' clock enables, one pin net into every one of them,
            # left router1 unable to finish dot-array at 8 lanes: docs/synth.md.)
            launch = Signal(self.input_bits, name=f"launch_{REPLICA_TAG}_bits")
            m.d.sync += [shift_in.eq(Cat(self.sin, shift_in[:-1])), launch.eq(shift_in)]
            m.d.comb += Cat(*self._inputs).eq(launch)
        if self._outputs:
            catch = Signal(self.output_bits, name="catch")
            captured = Signal(self.output_bits, name="captured")
            m.d.sync += catch.eq(Cat(*self._outputs))
            with m.If(self.load):
                m.d.sync += captured.eq(catch)
            with m.Else():
                m.d.sync += captured.eq(captured >> 1)
            m.d.comb += self.sout.eq(captured[0])
        return m
