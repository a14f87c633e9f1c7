"""Column-at-a-time binary32 accumulation of binary16 products into a memory of results.

``P`` lanes; ``G`` groups of ``P`` outputs; the results ``acc[g][p]`` (binary32) live in
``P`` memories of ``G`` words, one per lane, each addressed from registers of its own
(docs/synth.md: one address register across every lane was the ECP5 limit). An item
``{x, w[P], first}`` is one *piece* of a weight column:
the binary16 activation ``x`` and the binary16 weights of the ``P`` outputs of group ``g``;
a column is ``G`` pieces in group order (the group is counted here)::

    acc[g][p] = fl32((+0.0 if first else acc[g][p]) + x * w[p])

with the exact binary16 x binary16 product of :class:`hw.fp.fp16_mul.FP16Mul` and the
round-to-nearest-even sum of :class:`hw.fp.fp32_add.FP32Add` -- the order of
:func:`sw.fp16_linear.accumulate_columns` (columns in the order they come, each output
summed from ``+0.0``). It is the arithmetic of the ``fp16-linear`` baseline and of the
LLM.int8() outlier path.

Timing: both units run free (no enable). A piece accepted in cycle ``a`` enters each
lane's own input register (a copy of the activation per lane) and has its product at
``a + Lm`` (``Lm`` counts that register and the multiplier); the read of ``acc[g]`` is
issued at ``a + Lm - 1`` (a transparent,
one-cycle read); the product and the read value (or +0 for a first piece) are registered
(the memory's read is not followed by adder logic in the same cycle: the critical path on
ECP5 otherwise), and the sum leaves the adder and is written at ``a + Lm + La``
(:attr:`FPAccumulate.latency`; ``La`` counts that register and the adder). The next piece of the same group must read after that
write: at least ``D = La + 1`` cycles (:attr:`hazard_distance`) after this one. Pieces of
a column follow each other, so with ``G >= D`` nothing waits; otherwise the input is not
ready for ``E = D - G`` cycles after each column's last piece (:attr:`column_gap`).

Results are read through a second port (``rd_addr`` -> ``rd_data`` one cycle later,
transparent for the write of that cycle); ``column_written`` is high in the cycle the
last piece of a column is written (its results are readable from then on).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.fp.fp16_mul import FP16Mul
from hw.fp.fp32_add import FP32Add
from hw.params import check_int
from hw.pipeline import REPLICA_TAG, register_delay
from hw.unused import owned, rejectable

__all__ = ["FPAccumulate", "MAX_LANES", "MAX_GROUPS", "BROADCAST_FANOUT", "input_levels",
           "tree_copies", "input_register_bits", "owned_list"]

MAX_LANES = 64
# the activation reaches the lanes through a tree of registers, each copy driving at most
# this many copies of the next level (the last level: one copy per lane's multiplier)
BROADCAST_FANOUT = 4
OPERAND_LEVELS = 1         # the adder's operands registered (one comes from a memory read)
MAX_GROUPS = 8192


def input_levels(lanes: int) -> int:
    """Registers from an accepted piece to a lane's multiplier input: the levels of the
    activation's broadcast tree, ``ceil(log_F(lanes))`` with ``F =``
    :data:`BROADCAST_FANOUT`, at least 1 (each lane's own copy). The weights are delayed
    as many cycles beside it. One register into all 16 lanes of ``fp16-linear`` was an
    8.2 ns route on ECP5 (docs/synth.md)."""
    levels, reach = 1, BROADCAST_FANOUT
    while reach < lanes:
        levels, reach = levels + 1, reach * BROADCAST_FANOUT
    return levels


def tree_copies(lanes: int) -> list[int]:
    """Copies of the activation at each level of the broadcast tree above the lanes' own,
    from the input side: ``ceil(lanes / F**j)`` for ``j = L - 1 .. 1`` (``L`` =
    :func:`input_levels`, ``F`` = :data:`BROADCAST_FANOUT`); empty up to ``F`` lanes."""
    levels = input_levels(lanes)
    return [-(-lanes // BROADCAST_FANOUT ** j) for j in range(levels - 1, 0, -1)]


def input_register_bits(lanes: int) -> int:
    """Flip-flops of the lanes' input registers (binary16 activation copies and weights):
    each lane's activation copy and weight, the broadcast tree's copies above them
    (:func:`tree_copies`) and the weights' delays beside the tree (``lanes`` words per
    extra level)."""
    tree = tree_copies(lanes)
    return 16 * (2 * lanes + sum(tree) + len(tree) * lanes)


def owned_list(parts: list) -> list:
    """``parts``, each marked as owned (:func:`hw.unused.owned`) as soon as it exists, so a
    later parameter error leaves no "never used" warning behind."""
    owned(*parts)
    return parts


class FPAccumulate(wiring.Component):
    """Ports: ``i`` (stream of ``{"x": unsigned(16), "w": ArrayLayout(unsigned(16), lanes),
    "first": 1}``), ``column_written`` (Out 1), ``rd_addr`` (In ``ArrayLayout(range(groups),
    lanes)``: lane ``p``'s result memory is read at ``rd_addr[p]``; a caller drives every
    element with the same group, each from a register of its own where it can, so no one
    address register drives every lane's LUT RAMs), ``rd_data`` (Out
    ``ArrayLayout(unsigned(32), lanes)``).

    Parameters (keyword-only): ``lanes`` (1..``MAX_LANES``), ``groups`` (1..``MAX_GROUPS``),
    ``mul_stages`` / ``add_stages`` (the units' pipeline stages; default one after each of
    their levels). Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, lanes: int, groups: int, mul_stages: int | None = None,
                 add_stages: int | None = None):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._groups = check_int("groups", groups, 1, MAX_GROUPS)
            # every lane multiplies the same activation: each keeps its own copy of it
            self._muls = owned_list([FP16Mul(stages=mul_stages, backpressure=False,
                                             replicas=True)
                                     for _ in range(lanes)])
            self._adds = owned_list([FP32Add(stages=add_stages, backpressure=False)
                                     for _ in range(lanes)])
        word = data.ArrayLayout(unsigned(32), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": unsigned(16), "w": data.ArrayLayout(unsigned(16), lanes), "first": 1}))),
            "column_written": Out(1),
            "rd_addr": In(data.ArrayLayout(range(max(groups, 2)), lanes)),
            "rd_data": Out(word),
        })

    # -- published facts ----------------------------------------------------------------
    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def groups(self) -> int:
        return self._groups

    @property
    def mul_latency(self) -> int:
        """``Lm``: cycles from an accepted piece to its product: the lane's input registers
        (:func:`input_levels`) and the binary16 multiplier."""
        return input_levels(self._lanes) + self._muls[0].latency

    @property
    def add_latency(self) -> int:
        """``La``: cycles from a product to its sum: the operand register
        (:data:`OPERAND_LEVELS`) and the binary32 adder."""
        return OPERAND_LEVELS + self._adds[0].latency

    @property
    def latency(self) -> int:
        """Cycles from an accepted piece to the write of its sum, ``Lm + La``."""
        return self.mul_latency + self.add_latency

    @property
    def hazard_distance(self) -> int:
        """``D = La + 1``: least cycles between two pieces of one group."""
        return self.add_latency + 1

    @property
    def column_gap(self) -> int:
        """``E = max(0, D - G)``: cycles the input waits after a column's last piece."""
        return max(0, self.hazard_distance - self._groups)

    @property
    def memory_bits(self) -> int:
        """Bits of the result memory, ``32 * d_out`` (``G`` words of ``P`` results)."""
        return 32 * self._lanes * self._groups

    # -- hardware ------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        P, G = self._lanes, self._groups
        lm, la = self.mul_latency, self.add_latency
        gap = self.column_gap

        accept = Signal(name="accept")
        group = Signal(range(max(G, 2)), name="group")
        col_end = Signal(name="column_end")
        m.d.comb += [accept.eq(self.i.valid & self.i.ready), col_end.eq(group == G - 1)]
        with m.If(accept):
            m.d.sync += group.eq(Mux(col_end, 0, group + 1))
        if gap:
            wait = Signal(range(gap + 1), name="column_wait")
            with m.If(accept & col_end):
                m.d.sync += wait.eq(gap)
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)
            m.d.comb += self.i.ready.eq(wait == 0)
        else:
            m.d.comb += self.i.ready.eq(1)

        # (group, first, column end) beside the units, one register per cycle
        ctrl = [Cat(group, self.i.payload.first, col_end)]
        for k in range(lm + la):
            reg = Signal(len(ctrl[0]), name=f"ctrl_d{k + 1}", reset_less=True)
            m.d.sync += reg.eq(ctrl[-1])
            ctrl.append(reg)
        gbits = len(group)
        # an accepted piece, beside ctrl (with reset: nothing is written before a piece)
        accepted = [accept]
        for k in range(lm + la - 1):
            reg = Signal(name=f"accepted_d{k + 1}")
            m.d.sync += reg.eq(accepted[-1])
            accepted.append(reg)

        def copies(value, lane_name: str, p: int, *, reset_less: bool = True):
            """``value`` registered once for lane ``p``: each lane's memory and operand
            select take their own copy (kept apart through synthesis, hw.pipeline's
            replica tag), so no one register drives every lane across the device."""
            reg = Signal(len(value), name=f"{lane_name}_{REPLICA_TAG}_{p}",
                         reset_less=reset_less)
            m.d.sync += reg.eq(value)
            return reg

        at_write = ctrl[lm + la]
        # the piece into each lane's own input register (the last of input_levels): a copy
        # of the activation per lane, so that no one register and no one unpack drives all
        # the lanes' multipliers (Yosys merges identical logic cones, so the copies must
        # start here; on ECP5 the merged unpack was fp16-linear's clock path,
        # docs/synth.md); above BROADCAST_FANOUT lanes the copies come from a tree of
        # registers, each driving at most BROADCAST_FANOUT copies of the next level
        levels = input_levels(P)
        # level k's copy i feeds lanes i * F**(levels - k) onwards; level 0 is the input
        tree = [[self.i.payload.x]]
        for k, count in enumerate(tree_copies(P), start=1):
            tree.append([copies(tree[-1][i // BROADCAST_FANOUT if k > 1 else 0],
                                f"input_x_l{k}", i) for i in range(count)])
        pieces_valid = Signal(name="pieces_valid")
        m.d.sync += pieces_valid.eq(register_delay(m, accept, levels - 1, "pieces_valid",
                                                   reset_less=False))
        operands_valid = Signal(name="operands_valid")
        m.d.sync += operands_valid.eq(self._muls[0].o.valid)
        for p in range(P):
            mul, add = self._muls[p], self._adds[p]
            m.submodules[f"mul_{p}"] = mul
            m.submodules[f"add_{p}"] = add
            # lane p's results: a memory of its own, its addresses, enable and first flag
            # registered beside it
            m.submodules[f"results_{p}"] = mem = Memory(shape=unsigned(32), depth=G, init=[])
            wp = mem.write_port()
            loop_rd = mem.read_port(transparent_for=(wp,))
            out_rd = mem.read_port(transparent_for=(wp,))
            if lm >= 2:
                read_at = copies(ctrl[lm - 2][:gbits], "read_group", p)
            else:
                read_at = ctrl[lm - 1][:gbits]
            first = copies(ctrl[lm - 1][gbits], "first", p)   # as ctrl[lm] holds it
            write_at = copies(ctrl[lm + la - 1][:gbits], "write_group", p)
            write_en = copies(accepted[-1], "write_enable", p, reset_less=False)
            m.d.comb += [loop_rd.addr.eq(read_at), loop_rd.en.eq(1),
                         out_rd.addr.eq(self.rd_addr[p]), out_rd.en.eq(1),
                         self.rd_data[p].eq(out_rd.data)]
            # the operands registered: the memory read and the product, then the adder
            old_sum = Signal(32, name=f"operand_sum_{p}", reset_less=True)
            product = Signal(32, name=f"operand_product_{p}", reset_less=True)
            m.d.sync += [old_sum.eq(Mux(first, 0, loop_rd.data)),
                         product.eq(mul.o.payload.y)]
            x = copies(tree[-1][p // BROADCAST_FANOUT if levels > 1 else 0], "input_x", p)
            w = Signal(16, name=f"input_w_{p}", reset_less=True)
            m.d.sync += w.eq(register_delay(m, self.i.payload.w[p], levels - 1,
                                            f"input_w_{p}"))
            m.d.comb += [mul.i.valid.eq(pieces_valid), mul.i.payload.a.eq(x),
                         mul.i.payload.b.eq(w), mul.o.ready.eq(1),
                         add.i.valid.eq(operands_valid), add.i.payload.a.eq(old_sum),
                         add.i.payload.b.eq(product), add.o.ready.eq(1),
                         wp.addr.eq(write_at), wp.data.eq(add.o.payload.y), wp.en.eq(write_en)]
        written = self._adds[0].o.valid
        m.d.comb += self.column_written.eq(written & at_write[gbits + 1])
        return m
