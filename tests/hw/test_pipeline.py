"""hw.pipeline: register placement of the stall pipeline, and its output FIFO."""

import itertools
import random

import pytest
from amaranth.sim import Simulator

from amaranth.hdl import Module, Signal, signed

from hw.pipeline import (DELAY_CHUNK_BITS, MEMORY_DELAY, SLICE_BITS, OutputFIFO, Pipeline,
                         delay_line, next_below, next_equals, register_counts)


def _largest_group(delays, counts):
    worst = run = 0.0
    for d, c in zip(delays, counts):
        run += d
        if c:
            worst, run = max(worst, run), 0.0
    return worst


@pytest.mark.parametrize("delays", [[1] * 7, [3, 1, 1, 1, 1, 4, 2], [5, 1, 1, 1, 1, 1]])
def test_registers_balance_the_delay_between_them(delays):
    levels = len(delays)
    for stages in range(1, 10):
        counts = register_counts(levels, stages, delays)
        assert sum(counts) == stages and counts[-1] >= 1 and len(counts) == levels
        if stages <= levels:
            assert max(counts) == 1
            # no other placement of the same number of registers does better
            best = min(_largest_group(delays, [int(i in set(c) or i == levels - 1)
                                               for i in range(levels)])
                       for c in itertools.combinations(range(levels - 1), stages - 1))
            assert _largest_group(delays, counts) == best


def test_uniform_levels_and_extra_registers():
    assert register_counts(4, 2) == [0, 1, 0, 1]
    assert register_counts(2, 4) == [1, 3]
    assert register_counts(3, 1) == [0, 0, 1]
    with pytest.raises(ValueError, match=r"^delays must have one entry per level \(3\)"):
        register_counts(3, 2, [1, 2])


@pytest.mark.parametrize("slice_bits, slice_enables", [(None, False), (3, False), (3, True)])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_output_fifo_keeps_order_with_random_writes_and_reads(depth, slice_bits, slice_enables):
    """Writes only while fewer than ``depth`` items are inside (what the credit count
    guarantees); every item comes out once, in order, ``r_rdy`` exactly when one is held;
    the same with the word stored in slices (3 + 3 + 2 bits), and with each slice on its
    own write enable."""
    fifo = OutputFIFO(width=8, depth=depth, slice_bits=slice_bits, slice_enables=slice_enables)
    assert len(fifo.w_en_slices) == (3 if slice_enables else 0)
    rng = random.Random(depth)
    plan = [(rng.random() < 0.6, rng.random() < 0.5) for _ in range(400)]
    got, held = [], []

    async def bench(ctx):
        count = 0
        for write, read in plan:
            write = write and len(held) < depth
            ctx.set(fifo.w_en, write)
            for w_en in fifo.w_en_slices:
                ctx.set(w_en, write)
            ctx.set(fifo.w_data, count)
            ctx.set(fifo.r_en, read)
            assert ctx.get(fifo.r_rdy) == bool(held)
            if read and held:
                got.append(ctx.get(fifo.r_data))
                held.pop(0)
            if write:
                held.append(count)
                count = (count + 1) % 256
            await ctx.tick()
        assert got == list(range(len(got)))
        assert len(got) > 100

    sim = Simulator(fifo)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_output_fifo_depth_is_checked():
    with pytest.raises(ValueError) as info:
        OutputFIFO(width=8, depth=1)
    assert str(info.value) == "depth must be >= 2; got 1"
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError) as info:
            OutputFIFO(width=8, depth=2, slice_bits=bad)
        assert str(info.value) == f"slice_bits must be None or an int >= 1; got {bad!r}"
    with pytest.raises(ValueError) as info:
        OutputFIFO(width=8, depth=2, slice_enables=True)
    assert str(info.value) == "slice_enables needs slice_bits"


def test_output_fifo_slices_have_their_own_pointers():
    """Each slice's memory has its own write and read pointer, named as replicas so
    synthesis keeps them apart; without slices the FIFO is one memory and one pair."""
    import re

    from amaranth.back import rtlil

    from hw.pipeline import REPLICA_TAG
    m = Module()
    m.submodules.fifo = fifo = OutputFIFO(width=8, depth=4, slice_bits=3)
    text = rtlil.convert(m, name="top", ports=[fifo.w_data, fifo.w_en, fifo.r_data,
                                               fifo.r_rdy, fifo.r_en])
    assert re.findall(r"memory width (\d+) size 4 \\storage_(\d)", text) == \
        [("3", "0"), ("3", "1"), ("2", "2")]
    for kind in ("w_ptr", "r_ptr"):
        assert sorted(re.findall(rf"wire width 2 \\{kind}_{REPLICA_TAG}_(\d)\n", text)) == \
            ["0", "1", "2"]
    m = Module()
    m.submodules.fifo = fifo = OutputFIFO(width=8, depth=4)
    text = rtlil.convert(m, name="top", ports=[fifo.w_data, fifo.w_en, fifo.r_data,
                                               fifo.r_rdy, fifo.r_en])
    assert len(re.findall(r"memory width 8 size 4 ", text)) == 1 and REPLICA_TAG not in text


@pytest.mark.parametrize("width, slices", [(2 * SLICE_BITS, None),
                                           (2 * SLICE_BITS + 1, 3), (224, 7)])
def test_a_pipeline_slices_its_output_fifo_beyond_two_slices(width, slices):
    """A back-pressured pipeline's output FIFO is one memory up to 2 * SLICE_BITS bits of
    payload, beyond that memories of at most SLICE_BITS bits with their own pointers."""
    import re

    from amaranth.back import rtlil
    m = Module()
    take, payload = Signal(), Signal(width)
    pipe = Pipeline(m, levels=1, stages=2, valid_in=take)
    out, = pipe.after(0, [payload])
    text = rtlil.convert(m, name="top", ports=[take, payload, out])
    widths = [int(w) for w in re.findall(r"memory width (\d+) size 3 ", text)]
    assert widths == ([width] if slices is None else
                      [SLICE_BITS] * (slices - 1) + [width - SLICE_BITS * (slices - 1)])
    # each slice is written on a copy of the last valid register of its own (a replica)
    copies = re.findall(r"wire width 1 \\pipe_l0_r0_valid_replica_(\d+)\n", text)
    assert sorted(map(int, copies)) == list(range(slices or 0))


def test_replicas_by_index_name_those_registers_only():
    """``after(..., replicas=frozenset(...))`` names the registers of those values as
    replicas (kept apart by synthesis) and no others; ``True`` names them all."""
    import re

    from amaranth.back import rtlil
    for replicas, expected in ((frozenset({1, 2}), ["pipe_l0_r0_0", "pipe_l0_r0_replica_1",
                                                    "pipe_l0_r0_replica_2"]),
                               (True, [f"pipe_l0_r0_replica_{j}" for j in range(3)]),
                               (False, [f"pipe_l0_r0_{j}" for j in range(3)])):
        m = Module()
        take, x = Signal(), Signal(4)
        pipe = Pipeline(m, levels=2, stages=2, valid_in=take)
        regs = pipe.after(0, [x, x, x], replicas=replicas)
        out = pipe.after(1, [regs[0] + regs[1] + regs[2]])
        text = rtlil.convert(m, name="top", ports=[take, x, *out])
        assert re.findall(r"wire width 4 \\(pipe_l0_r0\S*)\n", text) == expected


@pytest.mark.parametrize("levels", [1, 2])
def test_a_sliced_output_fifo_on_replica_enables_keeps_the_kept_items_in_order(levels):
    """A pipeline whose output FIFO is sliced (three slices, each written on its own copy
    of the last valid register) delivers its items whole and in order under random input
    and output stalls: with one level of two registers (the copies are of the level's own
    register), and with two levels of one (the last level has none of its own, as in the
    dot array: the copies are of the level before's, and ``keep`` drops the even words)."""
    from types import SimpleNamespace

    from hw.pipeline import register_counts
    width = 2 * SLICE_BITS + 8
    assert register_counts(levels, 2) == ([2] if levels == 1 else [1, 1])
    m = Module()
    i = SimpleNamespace(valid=Signal(), ready=Signal(), payload=Signal(width))
    o = SimpleNamespace(valid=Signal(), ready=Signal())
    pipe = Pipeline(m, levels=levels, stages=2, valid_in=i.valid & i.ready)
    if levels == 1:
        out, = pipe.after(0, [i.payload])
    else:
        held, = pipe.after(0, [i.payload])
        out, = pipe.after(1, [held], keep=held[0])
    pipe.connect(i, o)
    rng = random.Random(levels)
    words = [rng.getrandbits(width) for _ in range(300)]
    got = []

    async def bench(ctx):
        sent = 0
        for _ in range(1500):
            ctx.set(i.valid, sent < len(words) and rng.random() < 0.7)
            ctx.set(i.payload, words[min(sent, len(words) - 1)])
            ctx.set(o.ready, rng.random() < 0.5)
            if ctx.get(o.valid) and ctx.get(o.ready):
                got.append(ctx.get(out))
            if ctx.get(i.valid) and ctx.get(i.ready):
                sent += 1
            await ctx.tick()
        assert sent == len(words)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [w for w in words if levels == 1 or w & 1]


@pytest.mark.parametrize("cycles", [0, 1, 2, MEMORY_DELAY, 4, 5, 8, 9, 17])
def test_delay_line_delays_every_value_by_exactly_its_cycles(cycles):
    """Registers below MEMORY_DELAY, a memory from there on: the same values, exactly
    ``cycles`` later, every cycle (free-running), whatever the shapes."""
    m = Module()
    a, b = Signal(7), Signal(signed(5))
    out = delay_line(m, [a, b], cycles, "t")
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)  # a sync domain even for cycles = 0
    assert [o.shape() for o in out] == [a.shape(), b.shape()]
    assert bool(m._named_submodules) == (cycles >= MEMORY_DELAY)  # the memory
    rng = random.Random(cycles)
    inputs = [(rng.randrange(128), rng.randrange(-16, 16)) for _ in range(60)]

    async def bench(ctx):
        for t, (x, y) in enumerate(inputs):
            ctx.set(a, x)
            ctx.set(b, y)
            if t >= cycles:
                assert (ctx.get(out[0]), ctx.get(out[1])) == inputs[t - cycles], t
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("cycles", [MEMORY_DELAY, 9])
def test_delay_line_packs_values_into_memories_of_at_most_the_chunk_bits(cycles):
    """Values packed in order into memories of at most DELAY_CHUNK_BITS bits (a wider value
    alone), each with its own pointers: every value still exactly ``cycles`` later."""
    m = Module()
    half = DELAY_CHUNK_BITS // 2
    shapes = [half + 1, signed(half + 1), DELAY_CHUNK_BITS + 3, 3, signed(4), 1]
    values = [Signal(sh) for sh in shapes]
    out = delay_line(m, values, cycles, "t")
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    assert len(m._named_submodules) == 4  # [half+1], [half+1], [wide], [3, 4, 1]
    rng = random.Random(cycles)
    ranges = [(v.shape().signed, len(v)) for v in values]
    inputs = [[rng.randrange(-2 ** (n - 1), 2 ** (n - 1)) if sg else rng.randrange(2 ** n)
               for sg, n in ranges] for _ in range(40)]

    async def bench(ctx):
        for t, row in enumerate(inputs):
            for v, x in zip(values, row):
                ctx.set(v, x)
            if t >= cycles:
                assert [ctx.get(o) for o in out] == inputs[t - cycles], t
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_delay_line_rejects_a_negative_delay():
    m = Module()
    with pytest.raises(ValueError, match=r"^cycles must be >= 0; got -1$"):
        delay_line(m, [Signal(2)], -1, "t")
    Simulator(m)  # used


def test_next_equals_is_the_stepped_count_compared():
    """``next_equals(count, up, down, value)`` == ``(count + up - down == value)`` for every
    count of a 3-bit counter, step and value (values just outside the range included)."""
    count, up, down = Signal(3), Signal(), Signal()
    flags = {v: Signal(name=f"eq_{v + 1}") for v in range(-1, 10)}
    m = Module()
    m.d.comb += [flags[v].eq(next_equals(count, up, down, v)) for v in flags]

    async def bench(ctx):
        for c, u, d in itertools.product(range(8), (0, 1), (0, 1)):
            ctx.set(count, c)
            ctx.set(up, u)
            ctx.set(down, d)
            for v, flag in flags.items():
                assert ctx.get(flag) == int(c + u - d == v), (c, u, d, v)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_next_below_is_the_stepped_count_compared():
    """``next_below(count, steps, bound)`` == ``(count + sum of the set steps < bound)`` for
    every count of a 3-bit counter, every choice of the steps (+1, -1, -1: a pipeline's
    take, pop and dropped item) and bounds around the range."""
    count, take, pop, drop = Signal(3), Signal(), Signal(), Signal()
    steps = [(take, 1), (pop, -1), (drop, -1)]
    flags = {b: Signal(name=f"below_{b + 2}") for b in range(-2, 11)}
    m = Module()
    m.d.comb += [flags[b].eq(next_below(count, steps, b)) for b in flags]

    async def bench(ctx):
        for c, t, p, d in itertools.product(range(8), (0, 1), (0, 1), (0, 1)):
            for sig, v in ((count, c), (take, t), (pop, p), (drop, d)):
                ctx.set(sig, v)
            for b, flag in flags.items():
                assert ctx.get(flag) == int(c + t - p - d < b), (c, t, p, d, b)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
