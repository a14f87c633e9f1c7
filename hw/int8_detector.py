"""LLM.int8() outlier detector: the outlier mask and the non-outlier absmax of a block.

Per item, ``B`` binary16 activations (bit patterns) of one token (``sw.llm_int8`` steps
2-3): entry ``k`` is an outlier when ``|x_k| >= threshold``, compared as the binary16
magnitude against the smallest binary16 value ``>= threshold``
(:func:`sw.llm_int8.threshold_binary16`, the ``threshold_bits`` parameter: for
non-negative binary16 values the order of the bit patterns is the order of the values, so
the comparison is an unsigned compare of 15 bits); the absmax of the block is the largest
magnitude among the non-outlier entries (0 when there is none), a binary16 magnitude
pattern. The datapath keeps the running maximum over a token's blocks (its ``s_x``) and
ORs the masks of a detection group.

Levels: the threshold compare (and the non-outlier magnitudes), then the max tree in
rounds, each of which takes the largest of up to four values in two levels: every pair
compared (a 15-bit carry chain each), then the first largest selected (a one-hot of the
registered compares and an AND-OR); ``ceil(log4 B)`` rounds, ``stages`` registers over the
levels (default one after each). A binary tree whose levels compare and select at once
placed at 6.6 to 7.4 ns on ECP5 (the compare's result driving 15 selects); this one has the
same five levels at 16 lanes.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import check_int
from hw.pipeline import Pipeline
from hw.shifting import wire
from hw.unused import rejectable

__all__ = ["Int8Detector", "INF_BITS", "MAX_LANES"]

INF_BITS = 0x7C00   # binary16 +infinity: a threshold no finite value reaches
MAX_LANES = 256
COMPARE_DELAY = 3.0
MAX_DELAY = 2.0     # each level of a max round: a carry chain, or a one-hot and an AND-OR
ARITY = 4           # values reduced to one by each round of the max tree


def tree_levels(lanes: int) -> int:
    """Levels of the max tree: two per round of :data:`ARITY`-to-one reductions."""
    rounds = 0
    while lanes > 1:
        lanes = -(-lanes // ARITY)
        rounds += 1
    return 2 * rounds


class Int8Detector(wiring.Component):
    """Ports: ``i`` (stream of ``{"x": ArrayLayout(unsigned(16), lanes)}``) and ``o``
    (stream of ``{"mask": unsigned(lanes), "absmax": unsigned(15)}``; mask bit ``k`` set
    for an outlier entry).

    Parameters (keyword-only): ``lanes`` (1..256), ``threshold_bits`` (the binary16 pattern
    of the threshold, 0..0x7C00; 0x7C00 = infinity: no outliers), ``stages`` (1..16,
    default one per level), ``backpressure`` (see :class:`hw.pipeline.Pipeline`).
    Raises ``ValueError`` / ``TypeError`` naming the parameter.
    """

    def __init__(self, *, lanes: int = 16, threshold_bits: int = 0x4600,
                 stages: int | None = None, backpressure: bool = True):
        with rejectable(self):
            self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
            self._threshold = check_int("threshold_bits", threshold_bits, 0, INF_BITS)
            self._levels = 1 + tree_levels(lanes)
            self._stages = check_int("stages", self._levels if stages is None else stages, 1, 16)
            self._backpressure = bool(backpressure)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(unsigned(16), lanes)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "mask": unsigned(lanes), "absmax": unsigned(15)}))),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def threshold_bits(self) -> int:
        return self._threshold

    @property
    def latency(self) -> int:
        """Cycles from an accepted block to its mask and absmax (= ``stages``)."""
        return self._stages

    def elaborate(self, platform):
        m = Module()
        B = self._lanes
        delays = [COMPARE_DELAY] + [MAX_DELAY] * (self._levels - 1)
        pipe = Pipeline(m, levels=self._levels, stages=self._stages, delays=delays,
                        valid_in=self.i.valid & self.i.ready, name="detect",
                        backpressure=self._backpressure)
        mags = [wire(m, self.i.payload.x[k][:15], f"mag_{k}") for k in range(B)]
        outlier = [wire(m, mag >= self._threshold, f"outlier_{k}") for k, mag in enumerate(mags)]
        kept = [wire(m, Mux(o, 0, mag), f"kept_{k}") for k, (o, mag) in enumerate(zip(outlier,
                                                                                      mags))]
        values = pipe.after(0, [Cat(*outlier)] + kept)
        mask, kept = values[0], values[1:]
        level = 1
        while len(kept) > 1:
            groups = [kept[g:g + ARITY] for g in range(0, len(kept), ARITY)]
            # compare level: ge[(j, k)] = group[j] >= group[k] for j < k
            pairs = [(g, j, k) for g, group in enumerate(groups)
                     for j in range(len(group)) for k in range(j + 1, len(group))]
            ge = [wire(m, groups[g][j] >= groups[g][k], f"max_{level}_{g}_ge_{j}{k}")
                  for g, j, k in pairs]
            values = pipe.after(level, [mask] + kept + ge)
            mask, kept, ge = values[0], values[1:1 + len(kept)], values[1 + len(kept):]
            ge = dict(zip(pairs, ge))
            # select level: the first largest of each group (larger than those before it,
            # at least as large as those after it), by an AND-OR of its one-hot
            chosen = []
            for g in range(len(groups)):
                group = kept[g * ARITY:(g + 1) * ARITY]
                out = 0
                for j, value in enumerate(group):
                    wins = [~ge[(g, i, j)] for i in range(j)] + \
                           [ge[(g, j, k)] for k in range(j + 1, len(group))]
                    hot = wire(m, Cat(*wins).all(), f"max_{level}_{g}_hot_{j}") if wins else 1
                    out = out | Mux(hot, value, 0)
                chosen.append(wire(m, out, f"max_{level}_{g}"))
            values = pipe.after(level + 1, [mask] + chosen)
            mask, kept = values[0], values[1:]
            level += 2
        pipe.connect(self.i, self.o)
        m.d.comb += [self.o.payload.mask.eq(mask), self.o.payload.absmax.eq(kept[0])]
        return m

