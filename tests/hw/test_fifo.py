"""hw.fifo.RegisteredFIFO: every item arrives, in order, under stalls and back-pressure; an
item every cycle at full rate, at the published latency; ``depth`` items fit without a
read; the read data comes from a register, not from the memory."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.fifo import LATENCY, BufferedFIFO, PREFETCH_LATENCY, PrefetchFIFO, RegisteredFIFO
from hw.lqer_schedule import FIFO_LATENCY
from hw.memory_collision import mark_collision_free
from hw.unused import inspected
from sim.amaranth_bench import run_amaranth
from sim.codec import PayloadCodec

LAYOUT = data.StructLayout({"value": signed(9), "exponent": signed(5)})


@pytest.mark.parametrize("depth", [3, 4, 9])
@pytest.mark.parametrize("valid, ready", [(1.0, 1.0), (0.7, 0.4), (0.4, 0.9)])
@pytest.mark.parametrize("registered_ready", [False, True])
def test_items_arrive_in_order(depth, valid, ready, registered_ready):
    dut = RegisteredFIFO(shape=LAYOUT, depth=depth, registered_ready=registered_ready)
    n = 60
    cycles = _in_order_cycles(dut, n, valid, ready, depth)
    if valid == ready == 1.0 and depth > 3 and not registered_ready:
        # an item per cycle, the first after the latency
        assert cycles == n + dut.latency
    elif valid == ready == 1.0 and depth > 3:  # an item every other cycle
        assert cycles == 2 * n - 1 + dut.latency


def _in_order_cycles(dut, n: int, valid: float, ready: float, seed: int) -> int:
    """Streams ``n`` random ``LAYOUT`` items through ``dut`` under stalls, asserts they all
    arrive in order; returns the cycles taken."""
    rng = np.random.default_rng(seed + 100 * isinstance(dut, PrefetchFIFO))
    values = {"value": rng.integers(-256, 256, n), "exponent": rng.integers(-16, 16, n)}
    codec = PayloadCodec.from_layout(LAYOUT)
    got, cycles = run_amaranth(dut, codec.pack(values), n, valid_probability=valid,
                               ready_probability=ready, seed=seed)
    out = codec.unpack(got)
    for key in values:
        assert np.array_equal(out[key], values[key]), key
    return cycles


def _accepted_without_reads(depth: int, cycles: int, registered_ready: bool = False,
                            dut=None) -> tuple[int, list[int]]:
    """Offers ``cycles`` items with the output blocked, then drains: the count taken and the
    items that came out."""
    if dut is None:
        dut = RegisteredFIFO(shape=8, depth=depth, registered_ready=registered_ready)
    taken, out = [0], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for c in range(cycles):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, taken[0])  # held until taken
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if ready:
                taken[0] += 1
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * depth + 4):  # registered_ready: an item every other cycle
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return taken[0], out


@pytest.mark.parametrize("depth", [3, 4, 9])
@pytest.mark.parametrize("valid, ready", [(1.0, 1.0), (0.7, 0.4), (0.4, 0.9)])
def test_unchecked_writes_arrive_in_order(depth, valid, ready):
    """A writer that offers an item only while ``i.ready`` is high (as a schedule that never
    fills the FIFO does): every item arrives in order; at full rate, as the checked FIFO."""
    dut = RegisteredFIFO(shape=8, depth=depth, registered_ready=True, unchecked_writes=True)
    rng = np.random.default_rng(depth)
    n = 60
    items = [int(v) for v in rng.integers(0, 256, n)]
    sent, out, cycles = [0], [], [0]

    async def bench(ctx):
        while len(out) < n:
            assert cycles[0] < 20 * n, "no completion"
            offer = (sent[0] < n and ctx.get(dut.i.ready) == 1
                     and (valid >= 1 or rng.random() < valid))
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, items[sent[0]] if offer else int(rng.integers(0, 256)))
            ctx.set(dut.o.ready, ready >= 1 or rng.random() < ready)
            _, _, o_valid, o_ready, payload = await ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload)
            sent[0] += offer
            if o_valid and o_ready:
                out.append(payload)
            cycles[0] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == items
    if valid == ready == 1.0 and depth > 3:  # an item every other cycle, as registered_ready
        assert cycles[0] == 2 * n - 1 + dut.latency


@pytest.mark.parametrize("depth", [3, 5, 17])
@pytest.mark.parametrize("registered_ready", [False, True])
def test_depth_items_fit_without_a_read(depth, registered_ready):
    taken, out = _accepted_without_reads(depth, depth + 6, registered_ready)
    assert taken == depth
    assert out == list(range(depth))


def test_registered_ready_is_checked_and_published():
    assert inspected(RegisteredFIFO(shape=4, depth=3, registered_ready=True)).registered_ready
    with pytest.raises(TypeError, match=r"^registered_ready must be a bool; got 'yes'$"):
        RegisteredFIFO(shape=4, depth=3, registered_ready="yes")
    assert inspected(RegisteredFIFO(shape=4, depth=3, registered_ready=True,
                                    unchecked_writes=True)).unchecked_writes
    with pytest.raises(TypeError, match=r"^unchecked_writes must be a bool; got 2$"):
        RegisteredFIFO(shape=4, depth=3, registered_ready=True, unchecked_writes=2)
    with pytest.raises(ValueError, match=r"^unchecked_writes needs registered_ready=True$"):
        RegisteredFIFO(shape=4, depth=3, unchecked_writes=True)


def test_latency_matches_the_lqer_schedule():
    assert inspected(RegisteredFIFO(shape=4, depth=3)).latency == LATENCY == FIFO_LATENCY


def test_read_data_leaves_from_a_register():
    """``o.payload`` is a flip-flop whose next value is the memory's read data or itself:
    no logic between the memory and the register (the enable goes to the flip-flop's
    clock enable). The buffered FIFO's memory is declared collision-free, and the RTLIL the flows read
    says so on its read port (``hw.memory_collision``), so Yosys builds no read-write
    collision emulation between the read data and the register."""
    dut = RegisteredFIFO(shape=12, depth=5)
    ports = [dut.i.payload, dut.i.valid, dut.i.ready, dut.o.payload, dut.o.valid, dut.o.ready]
    text = rtlil.convert(dut, ports=ports)
    top = text[text.index("module \\top\n"):]
    top = top[:top.index("\nend\n")]
    d_inputs = re.findall(r"cell \$dff \S+\n(?:\s+parameter .*\n)*\s+connect \\D (\S+) "
                          r"\[11:0\]\n\s+connect \\CLK .*\n\s+connect \\Q \\o__payload\n", top)
    assert len(d_inputs) == 1
    sources = set(re.findall(rf"assign {re.escape(d_inputs[0])} \[11:0\] (\S+) \[11:0\]", top))
    assert sources == {"\\o__payload", "\\r_data"}
    assert re.search(r"cell \\top\.buffer \\buffer\n(?:.*\n)*?\s+connect \\r_data \\r_data ", top)
    buffer = text[text.index("module \\top.buffer\n"):]
    assert re.search(r"attribute \\no_rw_check 1\n\s*memory width 12 size 3 ", buffer)
    assert re.search(r"connect \\DATA \\r_data\n", buffer)
    assert re.findall(r"parameter \\COLLISION_X_MASK (\S+)", text) == ["1'0"]
    marked = mark_collision_free(text)
    assert re.findall(r"parameter \\COLLISION_X_MASK (\S+)", marked) == ["1'1"]
    assert marked.replace("COLLISION_X_MASK 1'1", "COLLISION_X_MASK 1'0") == text
    assert inspected(RegisteredFIFO(shape=12, depth=5)).memory_words == 3


class _BesideAmaranth(wiring.Component):
    """A :class:`BufferedFIFO` and Amaranth's ``SyncFIFOBuffered`` of the same depth, fed
    the same writes and reads."""

    def __init__(self, depth: int):
        self._depth = depth
        super().__init__({"w_data": In(8), "w_en": In(1), "r_en": In(1),
                          "ours": Out(10), "theirs": Out(10)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ours = ours = BufferedFIFO(width=8, depth=self._depth)
        m.submodules.theirs = theirs = SyncFIFOBuffered(width=8, depth=self._depth)
        for fifo, out in ((ours, self.ours), (theirs, self.theirs)):
            m.d.comb += [fifo.w_data.eq(self.w_data), fifo.w_en.eq(self.w_en),
                         fifo.r_en.eq(self.r_en),
                         out.eq(Cat(fifo.w_rdy, fifo.r_rdy, Mux(fifo.r_rdy, fifo.r_data, 0)))]
        return m


@pytest.mark.parametrize("depth", [2, 3, 5, 9])
def test_buffered_fifo_is_amaranths_cycle_for_cycle(depth):
    """Random writes and reads (a read offered whether or not an item is ready, a write
    whether or not there is room): the ready flags and the read data (when ready) are the
    same as ``amaranth.lib.fifo.SyncFIFOBuffered``'s in every cycle."""
    dut = _BesideAmaranth(depth)
    rng = np.random.default_rng(depth)
    cycles = 600
    w_en, r_en = rng.random(cycles) < 0.6, rng.random(cycles) < 0.5
    data = rng.integers(0, 256, cycles)
    seen = []

    async def testbench(ctx):
        for t in range(cycles):
            ctx.set(dut.w_data, int(data[t]))
            ctx.set(dut.w_en, int(w_en[t]))
            ctx.set(dut.r_en, int(r_en[t]))
            seen.append((ctx.get(dut.ours), ctx.get(dut.theirs)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert [o for o, _ in seen] == [t for _, t in seen]
    assert sum(o & 2 == 2 for o, _ in seen) > cycles // 4      # reads were ready
    assert sum(o & 1 == 0 for o, _ in seen) > 0                # and it was full at times


def test_buffered_fifo_parameters():
    with pytest.raises(ValueError, match=r"^depth must be an integer in 2\.\.65536; got 1$"):
        BufferedFIFO(width=4, depth=1)
    with pytest.raises(ValueError, match=r"^width must be an integer in 1\.\.65536; got 0$"):
        BufferedFIFO(width=0, depth=4)
    assert inspected(BufferedFIFO(width=4, depth=7)).depth == 7


def test_parameters():
    with pytest.raises(ValueError, match=r"^depth must be an integer in 3\.\.65536; got 2$"):
        RegisteredFIFO(shape=4, depth=2)
    with pytest.raises(TypeError, match=r"^depth must be an integer in 3\.\.65536; got 4\.0$"):
        RegisteredFIFO(shape=4, depth=4.0)


# --- PrefetchFIFO ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 3, 8])
@pytest.mark.parametrize("valid, ready", [(1.0, 1.0), (0.7, 0.4), (0.4, 0.9)])
def test_prefetch_items_arrive_in_order(depth, valid, ready):
    dut = PrefetchFIFO(shape=LAYOUT, depth=depth)
    n = 60
    cycles = _in_order_cycles(dut, n, valid, ready, depth)
    if valid == ready == 1.0 and depth > 2:
        # an item per cycle, the first after the published latency
        assert cycles == n + dut.latency
        assert dut.latency == PREFETCH_LATENCY == 2


@pytest.mark.parametrize("depth", [2, 5, 17])
def test_prefetch_depth_items_fit_without_a_read(depth):
    taken, out = _accepted_without_reads(depth, depth + 6,
                                         dut=PrefetchFIFO(shape=8, depth=depth))
    assert taken == depth
    assert out == list(range(depth))


def test_prefetch_ready_and_read_data_are_registers():
    """``i.ready``, ``o.valid`` and ``o.payload`` are flip-flop outputs (no logic after the
    FIFO's state on either handshake)."""
    dut = PrefetchFIFO(shape=12, depth=5)
    text = rtlil.convert(dut, ports=[dut.i.payload, dut.i.valid, dut.i.ready,
                                     dut.o.payload, dut.o.valid, dut.o.ready])
    top = text[text.index("module \\top\n"):]
    top = top[:top.index("\nend\n")]
    flops = set(re.findall(r"connect \\Q (\S+)\n", top))   # the flip-flops' outputs
    assert {"\\i__ready", "\\o__valid", "\\o__payload"} <= flops


def test_prefetch_parameters():
    with pytest.raises(ValueError, match=r"^depth must be an integer in 2\.\.65536; got 1$"):
        PrefetchFIFO(shape=4, depth=1)
