"""A free-running pipeline with credit-based back-pressure.

Each datapath is a sequence of combinational *levels* (a multiplier, one
adder-tree level, ...), each with an estimated delay (in LUT levels; equal when
not given). ``stages`` registers are placed at level boundaries so that the
largest delay between two registers is as small as it can be (a linear
partition, :func:`register_counts`), the last always at the output; a datapath
may also give the counts itself. The latency is exactly ``stages`` cycles.

The registers have no enable: the pipeline never stalls, so no stall signal fans
out to every register (on FPGAs that fan-out, not the logic, set the clock of a
stalling pipeline). Back-pressure is handled by credit instead: the last register
is a small FIFO of ``stages + 1`` entries (:class:`OutputFIFO`: its writes need no
ready), and the input is ready only while fewer
than that many items are inside (in flight or waiting in the FIFO), a count held in
a register. So ``ready`` depends on registers alone, an item is never lost, and with
an always-ready consumer one item passes per cycle. A datapath inside a larger one
whose output is never blocked can drop the FIFO (``backpressure=False``): its input
is then always ready and its output is the last register.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, Value
from amaranth.lib.memory import Memory

from hw.unused import rejectable

__all__ = ["register_counts", "Pipeline", "OutputFIFO", "REPLICA_TAG", "SLICE_BITS",
           "register_delay", "delay_line", "MEMORY_DELAY", "DELAY_CHUNK_BITS", "next_equals",
           "next_below"]

# In the name of registers that copy one value for separate consumers; the synthesis
# flows mark them ``keep`` (hw.synth.targets), so Yosys does not merge them back.
REPLICA_TAG = "replica"
# The widest memory slice with pointers of its own (a block RAM's widest port, 36 bits):
# a pipeline's output FIFO wider than two slices is sliced (OutputFIFO's slice_bits), as
# are hw.fifo.RegisteredFIFO's reads. One pointer register addressing the LUT RAMs of a
# wide payload spread across the device was dot-array's clock path at 8 lanes (224 bits:
# 6.8 ns of routing on ECP5, docs/synth.md).
SLICE_BITS = 36


def register_counts(levels: int, stages: int, delays: list[float] | None = None) -> list[int]:
    """How many registers follow each of ``levels`` levels; they sum to ``stages``.

    ``delays`` (one per level, default all 1) are cut into ``min(stages, levels)``
    contiguous groups whose largest sum is minimal; a register follows each group,
    so the last one is the output register. Registers beyond one per level are added
    at the output (they add latency, not speed).
    """
    delays = [1.0] * levels if delays is None else [float(d) for d in delays]
    if len(delays) != levels or levels < 1 or stages < 1:
        raise ValueError(f"delays must have one entry per level ({levels}) and stages >= 1; "
                         f"got {len(delays)} delays, {stages} stages")
    groups = min(stages, levels)
    prefix = [0.0]
    for d in delays:
        prefix.append(prefix[-1] + d)
    inf = float("inf")
    # best[k][i]: smallest largest-group delay cutting levels [0, i) into k groups
    best = [[inf] * (levels + 1) for _ in range(groups + 1)]
    cut = [[0] * (levels + 1) for _ in range(groups + 1)]
    best[0][0] = 0.0
    for k in range(1, groups + 1):
        for i in range(k, levels + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i] or (cost == best[k][i] and j > cut[k][i]):
                    best[k][i], cut[k][i] = cost, j
    counts = [0] * levels
    i = levels
    for k in range(groups, 0, -1):
        counts[i - 1] += 1
        i = cut[k][i]
    counts[-1] += stages - groups
    return counts


class OutputFIFO(Elaboratable):
    """The pipeline's output register: a FIFO of ``depth`` entries of ``width`` bits whose
    write needs no ready (the credit count never lets more than ``depth`` items in).

    Ports as :class:`amaranth.lib.fifo.SyncFIFO`'s: ``w_data``, ``w_en``; ``r_data``,
    ``r_rdy``, ``r_en`` (first-word fall-through, read combinationally). SyncFIFO gates
    every write with ``level != depth``, so the write enable of all its storage (a net
    as wide as the payload) depended on the level register and fed it back: on ECP5
    that loop set dot-array's clock at 8 lanes (docs/synth.md). Here the storage's
    write enable is ``w_en`` itself.

    ``slice_bits`` (default None: one memory): the word is stored in memories of at most
    this many bits, each with its own write and read pointer registers (named as
    replicas, :data:`REPLICA_TAG`, so synthesis keeps them apart), so no one pointer
    register drives the address of every LUT RAM of a wide payload across the device
    (``fp16-linear``'s 512-bit output: an 11.2 ns route on ECP5, docs/synth.md). Same
    ports and cycles. ``slice_enables`` (with ``slice_bits``; default False): each slice
    writes on its own enable, ``w_en_slices[k]``, which the caller drives with the value of
    ``w_en`` from a register of its own (``fp16-linear``: one ``w_en`` register into the
    write enables of all its slices was an 8.3 ns route); ``w_en`` still counts the level.
    Raises ``ValueError`` naming the parameter.
    """

    def __init__(self, *, width: int, depth: int, slice_bits: int | None = None,
                 slice_enables: bool = False):
        with rejectable(self):
            if depth < 2:
                raise ValueError(f"depth must be >= 2; got {depth}")
            if slice_bits is not None and (isinstance(slice_bits, bool)
                                           or not isinstance(slice_bits, int)
                                           or slice_bits < 1):
                raise ValueError(f"slice_bits must be None or an int >= 1; got {slice_bits!r}")
            if slice_enables and slice_bits is None:
                raise ValueError("slice_enables needs slice_bits")
        self.width, self.depth, self.slice_bits = width, depth, slice_bits
        self.w_data = Signal(width)
        self.w_en = Signal()
        slices = len(range(0, width, slice_bits)) if slice_enables else 0
        self.w_en_slices = [Signal(name=f"w_en_slice_{k}") for k in range(slices)]
        self.r_data = Signal(width)
        self.r_rdy = Signal()
        self.r_en = Signal()

    def elaborate(self, platform):
        if self.slice_bits is not None:
            return self._elaborate_slices()
        m = Module()
        depth = self.depth
        m.submodules.storage = storage = Memory(shape=self.width, depth=depth, init=[])
        write = storage.write_port()
        read = storage.read_port(domain="comb")
        w_ptr, r_ptr = Signal(range(depth)), Signal(range(depth))
        level = Signal(range(depth + 1))
        take = self.r_en & self.r_rdy
        m.d.comb += [write.addr.eq(w_ptr), write.data.eq(self.w_data), write.en.eq(self.w_en),
                     read.addr.eq(r_ptr), self.r_data.eq(read.data),
                     self.r_rdy.eq(level != 0)]
        with m.If(self.w_en):
            m.d.sync += w_ptr.eq(Mux(w_ptr == depth - 1, 0, w_ptr + 1))
        with m.If(take):
            m.d.sync += r_ptr.eq(Mux(r_ptr == depth - 1, 0, r_ptr + 1))
        m.d.sync += level.eq(level + self.w_en - take)
        return m

    def _elaborate_slices(self):
        m = Module()
        depth = self.depth
        level = Signal(range(depth + 1))
        take = self.r_en & self.r_rdy
        m.d.comb += self.r_rdy.eq(level != 0)
        m.d.sync += level.eq(level + self.w_en - take)
        for k, lo in enumerate(range(0, self.width, self.slice_bits)):
            hi = min(lo + self.slice_bits, self.width)
            m.submodules[f"storage_{k}"] = storage = Memory(shape=hi - lo, depth=depth, init=[])
            write = storage.write_port()
            read = storage.read_port(domain="comb")
            w_ptr = Signal(range(depth), name=f"w_ptr_{REPLICA_TAG}_{k}")
            r_ptr = Signal(range(depth), name=f"r_ptr_{REPLICA_TAG}_{k}")
            w_en = self.w_en_slices[k] if self.w_en_slices else self.w_en
            # the slice's own copy of the level: its read pointer's enable is r_en and a
            # register beside it, not one level register's route across the device
            # (dot-array at 8 lanes on ECP5: level -> take -> far pointers, 6.9 ns)
            slice_level = Signal(range(depth + 1), name=f"level_{REPLICA_TAG}_{k}")
            take = self.r_en & (slice_level != 0)
            m.d.sync += slice_level.eq(slice_level + w_en - take)
            m.d.comb += [write.addr.eq(w_ptr), write.data.eq(self.w_data[lo:hi]),
                         write.en.eq(w_en), read.addr.eq(r_ptr),
                         self.r_data[lo:hi].eq(read.data)]
            with m.If(w_en):
                m.d.sync += w_ptr.eq(Mux(w_ptr == depth - 1, 0, w_ptr + 1))
            with m.If(take):
                m.d.sync += r_ptr.eq(Mux(r_ptr == depth - 1, 0, r_ptr + 1))
        return m


def next_equals(count: Value, up: Value, down: Value, value: int) -> Value:
    """Whether ``count + up - down`` (``up``, ``down``: one bit each) equals ``value``: the
    compares of ``count`` itself with ``value - 1``, ``value`` and ``value + 1``, selected
    by the step, so a flag registered from it (a FIFO's room, a counter's "not zero") has no
    adder in front of its compare."""
    return ((up & ~down & (count == value - 1)) | (~up & down & (count == value + 1))
            | ((up == down) & (count == value)))


def next_below(count: Value, steps: list[tuple[Value, int]], bound: int) -> Value:
    """Whether ``count + sum(w for bit, w in steps if bit)`` is below ``bound`` (each
    ``bit`` one bit, ``w`` a constant): compares of ``count`` itself with the constants
    ``bound - total``, one per subset of the steps, selected by the bits. A flag registered
    from it (a pipeline's room) has no adder in front of its compare."""
    terms = []
    for mask in range(1 << len(steps)):
        chosen = [((mask >> k) & 1, bit, w) for k, (bit, w) in enumerate(steps)]
        total = sum(w for on, _, w in chosen if on)
        match = Const(1)
        for on, bit, _ in chosen:
            match = match & (bit if on else ~bit)
        terms.append(match & (count < bound - total))
    return Cat(*terms).any()


# Delays of at least this many cycles go through a memory (delay_line)
MEMORY_DELAY = 3
# A delay line's values are packed into memories of at most this many bits, each with its
# own pointers (delay_line)
DELAY_CHUNK_BITS = 32


def register_delay(m: Module, value: Value, cycles: int, name: str, *,
                   reset_less: bool = True) -> Value:
    """``value`` delayed by ``cycles`` (>= 0) free-running registers of the ``sync`` domain,
    named ``{name}_d{k}`` (``reset_less=False``: each resets to 0 with the domain)."""
    value = Value.cast(value)
    for k in range(cycles):
        reg = Signal(len(value), name=f"{name}_d{k}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def delay_line(m: Module, values: list[Value], cycles: int, name: str) -> list[Value]:
    """``values`` delayed by exactly ``cycles`` (>= 0) clock cycles of the ``sync`` domain,
    free-running (no enable): through registers below :data:`MEMORY_DELAY` cycles, else
    through memories of a power-of-two depth >= ``cycles``, each written every cycle at a
    wrapping pointer and read (synchronously, not transparently) ``cycles - 1`` entries
    behind it, so that Yosys maps the delay to LUT RAM instead of ``cycles`` flip-flops per
    bit. The values are packed in order into memories of at most :data:`DELAY_CHUNK_BITS`
    bits (a wider value alone), and each memory has a write pointer and a read pointer
    register of its own (named with :data:`REPLICA_TAG`, so synthesis keeps the copies):
    no comparator or subtractor sits before a read address, and each pointer drives only
    the LUT RAMs of its memory, placed beside that memory's consumers (docs/synth.md,
    "Reaching 150 MHz on ECP5"). Returns signals of the values' shapes."""
    values = [Value.cast(v) for v in values]
    if cycles < 0:
        raise ValueError(f"cycles must be >= 0; got {cycles}")
    if cycles == 0 or not values:
        return values
    if cycles < MEMORY_DELAY:
        bundle = register_delay(m, Cat(*values), cycles, f"{name}_delay")
        return _unpack(m, values, bundle, name)
    chunks: list[list[Value]] = []
    for v in values:
        if chunks and sum(len(c) for c in chunks[-1]) + len(v) <= DELAY_CHUNK_BITS:
            chunks[-1].append(v)
        else:
            chunks.append([v])
    bits = (cycles - 1).bit_length()
    delayed = []
    for c, chunk in enumerate(chunks):
        bundle = Cat(*chunk)
        suffix = "" if len(chunks) == 1 else f"_{c}"
        memory = Memory(shape=len(bundle), depth=1 << bits, init=[])
        m.submodules[f"{name}_delay{suffix}"] = memory
        write, read = memory.write_port(), memory.read_port()
        w_ptr = Signal(bits, name=f"{name}_delay_{REPLICA_TAG}_write{suffix}")
        r_ptr = Signal(bits, name=f"{name}_delay_{REPLICA_TAG}_read{suffix}",
                       init=-(cycles - 1) % (1 << bits))
        m.d.sync += [w_ptr.eq(w_ptr + 1), r_ptr.eq(r_ptr + 1)]
        m.d.comb += [write.addr.eq(w_ptr), write.data.eq(bundle), write.en.eq(1),
                     read.addr.eq(r_ptr), read.en.eq(1)]
        delayed.append(read.data)
    return _unpack(m, values, Cat(*delayed), name)


def _unpack(m: Module, values: list[Value], bundle: Value, name: str) -> list[Value]:
    out, offset = [], 0
    for v in values:
        sig = Signal(v.shape(), name=f"{name}_delayed_{len(out)}")
        m.d.comb += sig.eq(bundle[offset:offset + len(v)])
        offset += len(v)
        out.append(sig)
    return out


class Pipeline:
    """Register placement, the valid chain and the output of one datapath inside module ``m``.

    ``valid_in``: an item enters this cycle (the input stream's ``valid & ready``).
    Either ``stages`` (placed by :func:`register_counts` over ``levels`` with ``delays``)
    or ``counts`` (registers after each level, the last at least 1) is given.
    Close the levels in order with :meth:`after`; then :meth:`connect` the streams. With
    back-pressure the output register is an :class:`OutputFIFO`, sliced at
    :data:`SLICE_BITS` when the payload is wider than two slices, each slice then written
    on a copy of the last valid register of its own (replicas: the same value, no one
    register driving every slice's write enable across the device).
    """

    def __init__(self, m, *, levels: int, valid_in: Value, name: str = "pipe",
                 stages: int | None = None, delays: list[float] | None = None,
                 counts: list[int] | None = None, backpressure: bool = True):
        if (stages is None) == (counts is None):
            raise ValueError("give either stages or counts")
        if counts is None:
            counts = register_counts(levels, stages, delays)
        if len(counts) != levels or counts[-1] < 1 or min(counts) < 0:
            raise ValueError(f"counts must have one entry per level ({levels}), the last >= 1; "
                             f"got {counts}")
        self._m = m
        self._counts = list(counts)
        self._name = name
        self._next_level = 0
        self._valid = valid_in
        self._backpressure = backpressure
        self._fifo = None
        self._valid_input: Value | None = None
        self._dropped = Signal(name=f"{name}_dropped")
        self.latency = sum(counts)

    @property
    def counts(self) -> list[int]:
        """Registers after each level."""
        return list(self._counts)

    @property
    def valid(self) -> Value:
        """Whether the values at the next level to close hold an item (before its registers)."""
        return self._valid

    def _register(self, values: list[Value], tag: str, replicas=False) -> list[Value]:
        # data registers need no reset: the valid chain says what they hold
        def kind(j):
            marked = replicas if isinstance(replicas, bool) else j in replicas
            return f"_{REPLICA_TAG}" if marked else ""
        regs = [Signal(Value.cast(v).shape(), name=f"{tag}{kind(j)}_{j}", reset_less=True)
                for j, v in enumerate(values)]
        valid = Signal(name=f"{tag}_valid")
        self._m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
        self._m.d.sync += valid.eq(self._valid)
        self._valid_input = self._valid  # what the valid register copies
        self._valid = valid
        return regs

    def _valid_copies(self, count: int) -> list[Signal]:
        """``count`` more copies of the last valid register (replicas, kept apart by the
        synthesis flows) for consumers of their own; [] when no register holds it."""
        if self._valid_input is None:
            return []
        copies = [Signal(name=f"{self._valid.name}_{REPLICA_TAG}_{j}") for j in range(count)]
        self._m.d.sync += [c.eq(self._valid_input) for c in copies]
        return copies

    def bypass(self, values: list[Value], start: int, stop: int, name: str) -> list[Value]:
        """``values`` as they enter level ``start``, delivered as they enter level ``stop``
        (``start < stop``; the last level's index + 1 is the output): delayed by the
        registers of levels ``start .. stop - 1`` (:func:`delay_line`), for values that
        those levels do not change, so a long pipeline carries them in a memory."""
        if not 0 <= start < stop <= len(self._counts):
            raise ValueError(f"levels must satisfy 0 <= start < stop <= {len(self._counts)}; "
                             f"got {start}, {stop}")
        return delay_line(self._m, values, sum(self._counts[start:stop]),
                          f"{self._name}_{name}")

    def after(self, level: int, values: list[Value], *, keep: Value | None = None,
              replicas: bool | frozenset[int] = False) -> list[Value]:
        """Close ``level`` (in order): ``values`` delayed by its registers.

        At the last level, ``keep`` (default: every item) selects the items that leave
        through the output; the others end here (an accumulator's partials).
        ``replicas``: ``values`` may repeat one value on purpose (a copy per consumer, so
        each copy's fan-out stays local); their registers are named with
        :data:`REPLICA_TAG`, which the synthesis flows keep apart (Yosys merges identical
        flip-flops otherwise); a set of indices marks those values' registers only."""
        if level != self._next_level:
            raise RuntimeError(f"levels must be closed in order; expected {self._next_level}, "
                               f"got {level}")
        self._next_level += 1
        last = self._next_level == len(self._counts)
        if keep is not None and not last:
            raise RuntimeError("keep applies to the last level only")
        n = self._counts[level]
        for k in range(n - 1 if last else n):
            values = self._register(values, f"{self._name}_l{level}_r{k}", replicas)
        if not last:
            return values
        keep = Value.cast(1) if keep is None else keep
        values = [Value.cast(v) for v in values]
        if not self._backpressure:
            m = self._m
            kept = Signal(name=f"{self._name}_keep")
            m.d.comb += kept.eq(keep)
            self._valid = self._valid & kept
            return self._register(values, f"{self._name}_out")
        # the output register is a FIFO of stages + 1 entries; sliced when wide, each
        # slice written on its own copy of the last valid register (one valid register
        # into every slice's LUT RAM write enable: dot-array at 8 lanes, a 6.7 ns route on
        # ECP5, docs/synth.md)
        width = sum(len(v) for v in values)
        sliced = width > 2 * SLICE_BITS
        copies = self._valid_copies(len(range(0, width, SLICE_BITS))) if sliced else []
        self._fifo = fifo = OutputFIFO(width=width, depth=self.latency + 1,
                                       slice_bits=SLICE_BITS if sliced else None,
                                       slice_enables=bool(copies))
        self._m.submodules[f"{self._name}_fifo"] = fifo
        self._m.d.comb += [fifo.w_data.eq(Cat(*values)), fifo.w_en.eq(self._valid & keep),
                           self._dropped.eq(self._valid & ~keep)]
        self._m.d.comb += [w.eq(c & keep) for w, c in zip(fifo.w_en_slices, copies)]
        out, offset = [], 0
        for v in values:
            sig = Signal(v.shape(), name=f"{self._name}_out_{len(out)}")
            self._m.d.comb += sig.eq(fifo.r_data[offset:offset + len(v)])
            offset += len(v)
            out.append(sig)
        return out

    def connect(self, i, o) -> None:
        """Tie the pipeline to input stream ``i`` and output stream ``o`` (every level closed).

        With back-pressure: ``i.ready`` while fewer than ``stages + 1`` items are inside;
        ``o`` from the FIFO. Without: ``i.ready`` always, ``o.valid`` the last register's
        valid, and ``o.ready`` must be high whenever an item leaves."""
        if self._next_level != len(self._counts):
            raise RuntimeError("connect before every level was closed")
        m = self._m
        if not self._backpressure:
            m.d.comb += [i.ready.eq(1), o.valid.eq(self._valid)]
            return
        fifo = self._fifo
        inside = Signal(range(self.latency + 2), name=f"{self._name}_inside")
        take = i.valid & i.ready
        pop = o.valid & o.ready
        m.d.sync += inside.eq(inside + take - pop - self._dropped)
        m.d.comb += [i.ready.eq(inside < self.latency + 1),
                     o.valid.eq(fifo.r_rdy), fifo.r_en.eq(o.ready)]
