"""Each method's layer engine, as data: its parts, its memories, its schedule.

Every engine runs one token at a time (a GEMV, as in decoding) with the weights
streamed in, and is sized for the same main-path throughput: ``macs_per_cycle``
multiply-accumulates per cycle, i.e. ``P = macs_per_cycle / block`` dot-product lanes of
``block`` elements each (the LQER authors' model: 16 MACs per cycle, block 16, one
lane). A token then takes the same ``main_steps = (d_out / P) * (d_in / block)`` cycles
on every method; what differs is the area, the memories and a method's own extra
cycles (LLM.int8()'s activation pass and its data-dependent outlier cycles). The
per-method choices are stated in the :data:`METHODS` entries and in docs/cost.md.

A :class:`Method` is a list of :class:`Use` (a part, counted), a list of :class:`Store`
(memories: ``buffer`` per token, ``table`` constants, ``registers`` fixed register banks,
``weights`` the stored layer operands) and a schedule. The entries are lambdas of a
:class:`Sizing`, the layer's derived sizes; adding a method or a part is adding entries.
A method whose whole datapath exists as a registered design names it (``design``):
the control logic around the parts is then fitted from that design's syntheses
(:mod:`hw.cost.glue`) and the prediction is validated against it.

The MXINT engines (``lqer-linear``, ``resq-linear``) are costed with the output
:attr:`CostConfig.layer_output` names: ``"merged"`` (default; the design's ``merged=1``:
the merge and the output requantizer are counted, the schedule is the merged one, the
glue is fitted on the merged design) or ``"terms"`` (``merged=0``). A part or store of
one output only is a :class:`Use` counted 0 or a :class:`Store` absent (``when``) under
the other (docs/cost.md, The layer output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from hw.cost.outliers import OutlierCounts, SIZINGS
from hw.cost.parts import Part
from hw.lqer_schedule import LQERSchedule, default_lowrank_lanes
from hw.params import signed_for_range
from sw.blockmath import accumulator_width, dot_sum_width
from sw.mxint import MXIntFormat

__all__ = ["CYCLES_MEMO", "lqer_cycles", "CostConfig", "Sizing", "Use", "Store", "Schedule",
           "Method", "METHODS", "LAYER_OUTPUTS", "MERGED", "TERMS", "MERGEABLE",
           "method_names", "HIGH_WIDTH", "THRESHOLD", "FP16_THRESHOLD"]

HIGH_WIDTH = 8              # LLM.int8()'s int8 path and ResQ's high-precision subspace
THRESHOLD = 6.0             # LLM.int8()'s outlier threshold (Dettmers et al. 2022)
FP16_THRESHOLD = 0x4600     # binary16 pattern of 6.0
INT32 = 32                  # LLM.int8()'s integer accumulator (sw.llm_int8: int32)
FP16, FP32 = 16, 32
RECIPROCAL_TABLE = 1024     # sw.llm_int8: r depends on s_x's 10 fraction bits (docs/llm_int8.md)
# LLM.int8()'s activation codes round(x * r) are made one element per cycle in a pass of
# d_in cycles (d_in is a small share of a token's d_in * d_out / MACs cycles); a block per
# cycle would take `block` multipliers for a pass of d_in / block cycles.
QUANTIZER_LANES = 1
# registers of the LLM.int8() engine's fill besides its fp units (detector, quantizer's
# conversion and rounding, the int MACs, the FIFOs): an estimate of the few cycles the
# design's tile model (hw.llm_int8_schedule) counts exactly
INT8_REGISTERS = 8
# What the MXINT engines (lqer-linear, resq-linear) hand on per output channel: "terms", the
# two exact terms (main and u; ResQ: low and high) whose sum the consumer forms, or
# "merged", the finished output: the terms merged (hw.merge.Merge) and requantized to
# MXINT blocks, the next layer's activations (lqer-linear's merged=1). FP16 and
# LLM.int8() engines always give a finished output; "merged" is the default so that every
# method is costed for the same work (docs/cost.md, The layer output).
TERMS, MERGED = "terms", "merged"
LAYER_OUTPUTS = (TERMS, MERGED)
MERGEABLE = ("lqer-linear", "resq-linear")   # the designs with both outputs


@dataclass(frozen=True)
class CostConfig:
    """The engine parameters shared by every method (defaults: the LQER paper's W4A8,
    block 16, 8-bit shared exponents, rank 32, 16 MACs per cycle)."""

    macs_per_cycle: int = 16
    block: int = 16
    rank: int = 32
    w_width: int = 4
    a_width: int = 8
    exponent_bits: int = 8
    # pipeline depths of the parts: lqer-linear's defaults (read from the registry)
    guard_bits: int = field(default_factory=lambda: _lqer_default("guard_bits"))
    dot_stages: int = field(default_factory=lambda: _lqer_default("dot_stages"))
    acc_slots: int = field(default_factory=lambda: _lqer_default("acc_slots"))
    acc_stages: int = field(default_factory=lambda: _lqer_default("acc_stages"))
    quant_stages: int = field(default_factory=lambda: _lqer_default("quant_stages"))
    resq_fraction: int = 8          # ResQ keeps d_in / resq_fraction directions in 8-bit
    resq_rank: int = 0              # ResQ's high-precision directions per layer (0: by fraction)
    outlier_sizing: str = "p99"     # which outlier count sizes LLM.int8()'s fp16 lanes
    layer_output: str = MERGED      # the MXINT engines' output: "terms" or "merged"
    merge_stages: int = field(default_factory=lambda: _lqer_default("merge_stages"))

    @property
    def lanes(self) -> int:
        """Main-path dot lanes ``P = macs_per_cycle / block``."""
        return self.macs_per_cycle // self.block

    def check(self) -> "CostConfig":
        """``self``; ``ValueError`` (one line, the CLI's option names) when inconsistent."""
        MXIntFormat(width=self.w_width, block=self.block, exponent_bits=self.exponent_bits)
        MXIntFormat(width=self.a_width, block=self.block, exponent_bits=self.exponent_bits)
        if self.macs_per_cycle < self.block or self.macs_per_cycle % self.block:
            raise ValueError(f"macs-per-cycle must be a multiple of block ({self.block}); got "
                             f"{self.macs_per_cycle}")
        if self.rank < self.block or self.rank % self.block:
            raise ValueError(f"rank must be a positive multiple of block ({self.block}); got "
                             f"{self.rank}")
        if self.resq_rank < 0 or self.resq_rank % self.block:
            raise ValueError(f"resq-rank must be 0 (d_in / resq-fraction) or a multiple of block "
                             f"({self.block}); got {self.resq_rank}")
        if self.outlier_sizing not in SIZINGS:
            raise ValueError(f"outlier-sizing must be one of {', '.join(SIZINGS)}; got "
                             f"{self.outlier_sizing!r}")
        if self.layer_output not in LAYER_OUTPUTS:
            raise ValueError(f"layer-output must be one of {', '.join(LAYER_OUTPUTS)}; got "
                             f"{self.layer_output!r}")
        return self

    @property
    def merged(self) -> bool:
        """Whether the MXINT engines give the finished, requantized output."""
        return self.layer_output == MERGED

    def formats(self) -> dict[str, MXIntFormat]:
        e, b = self.exponent_bits, self.block
        return {"a": MXIntFormat(width=self.a_width, block=b, exponent_bits=e),
                "w": MXIntFormat(width=self.w_width, block=b, exponent_bits=e),
                "high": MXIntFormat(width=HIGH_WIDTH, block=b, exponent_bits=e)}


def _lqer_default(name: str) -> int:
    from hw.designs import get_design
    return get_design("lqer-linear").defaults[name]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _block_bits(fmt: MXIntFormat) -> int:
    return fmt.block * fmt.width + fmt.exponent_bits


@dataclass(frozen=True)
class _Path:
    """An MXINT dot array and its accumulator: the widths the buffers need."""

    a: MXIntFormat
    w: MXIntFormat
    partials: int
    guard_bits: int

    @property
    def sum_width(self) -> int:
        return dot_sum_width(self.a.block, self.a.width, self.w.width)

    @property
    def acc_width(self) -> int:
        return accumulator_width(self.sum_width, self.guard_bits, self.partials)

    @property
    def exponent_range(self) -> tuple[int, int]:
        """Range of an accumulator result's exponent (``hw.accumulator``
        out_exponent_range: the dot array's ``E - G``)."""
        (alo, ahi), (wlo, whi) = self.a.lsb_range, self.w.lsb_range
        return alo + wlo - self.guard_bits, ahi + whi - self.guard_bits

    @property
    def exponent_width(self) -> int:
        """Bits of an accumulator result's exponent."""
        return signed_for_range(*self.exponent_range).width

    @property
    def result_width(self) -> int:
        return self.acc_width + self.exponent_width


class Sizing:
    """Derived sizes of one layer's engine: ``d_in`` x ``d_out`` under ``cfg``, with the
    layer's outlier counts (LLM.int8()) when known.

    Feature counts are padded to whole blocks (a short tail block is zero-padded, as in
    the reference) and ``d_out`` to whole groups of ``P`` lanes.
    """

    def __init__(self, cfg: CostConfig, d_in: int, d_out: int,
                 outliers: OutlierCounts | None = None):
        self.cfg = cfg
        self.d_in, self.d_out = d_in, d_out
        self.outliers = outliers
        b, p = cfg.block, cfg.lanes
        self.block, self.P = b, p
        self.nb_in = _ceil(d_in, b)
        self.din_p = self.nb_in * b
        group = math.lcm(b, p)
        self.dout_p = _ceil(d_out, group) * group
        self.nb_out = self.dout_p // b
        self.fmt = cfg.formats()
        self.e = cfg.exponent_bits

    # ---- the common schedule
    @property
    def M(self) -> int:
        """MACs per cycle: the lanes of the designs that take one column per step
        (``fp16-linear``'s and ``llm-int8-linear``'s ``lanes``)."""
        return self.cfg.macs_per_cycle

    @property
    def dout_m(self) -> int:
        """``d_out`` padded to whole groups of ``M`` outputs (and of blocks)."""
        group = math.lcm(self.block, self.M)
        return _ceil(self.d_out, group) * group

    @property
    def column_steps(self) -> int:
        """Steps of a design taking one column of ``M`` outputs per step,
        ``d_in * d_out / M`` (= :attr:`main_steps` when ``d_out`` is a multiple of ``M``)."""
        return self.din_p * self.dout_m // self.M

    @property
    def main_steps(self) -> int:
        """Cycles of the main path per token, ``(d_out / P) * (d_in / block)``."""
        return self.dout_p // self.P * self.nb_in

    @property
    def index_width(self) -> int:
        return max(1, (self.din_p - 1).bit_length())

    # ---- MXINT paths (lqer-linear)
    @property
    def merged(self) -> bool:
        """The finished output (:attr:`CostConfig.layer_output`)."""
        return self.cfg.merged

    @property
    def merged_partials(self) -> int:
        """Partials the merged output adds to each main accumulation: u and the bias (the
        datapath sizes its main accumulator for both, bias or not: ``hw.lqer_linear``)."""
        return 2 if self.merged else 0

    @cached_property
    def main(self) -> _Path:
        return _Path(self.fmt["a"], self.fmt["w"], self.nb_in + self.merged_partials,
                     self.cfg.guard_bits)

    @property
    def rank(self) -> int:
        return self.cfg.rank

    @property
    def nb_k(self) -> int:
        return self.rank // self.block

    @cached_property
    def lowrank_lanes(self) -> int:
        """P_l: the least power of two that never stalls the main path (hw.lqer_schedule)."""
        return default_lowrank_lanes(d_in=self.din_p, d_out=self.dout_p, rank=self.rank,
                                     block=self.block, lanes_main=self.P, **self.latencies)

    @cached_property
    def lowrank(self) -> _Path:
        return _Path(self.fmt["a"], self.fmt["a"], max(self.nb_in, self.nb_k), self.cfg.guard_bits)

    @property
    def lowrank_lsb_width(self) -> int:
        return self.lowrank.exponent_width

    @property
    def acc_latency(self) -> int:
        """Latency of an accumulator (``hw.accumulator``: its stages plus its slots)."""
        return self.cfg.acc_stages + self.cfg.acc_slots

    @property
    def latencies(self) -> dict:
        """The part latencies and output ``hw.lqer_schedule.LQERSchedule`` takes (as
        ``hw.lqer_linear`` passes them: the merge and output requantizer for the merged
        output, no bias)."""
        c = self.cfg
        return dict(slots=c.acc_slots, dot_latency=c.dot_stages, acc_latency=self.acc_latency,
                    quant_latency=c.quant_stages, output="mxint" if self.merged else "terms",
                    merge_latency=c.merge_stages if self.merged else 0,
                    out_quant_latency=c.quant_stages if self.merged else 0)

    def lqer_schedule(self, rank: int) -> LQERSchedule:
        return LQERSchedule(self.din_p, self.dout_p, rank, self.block, self.P,
                            self.lowrank_lanes if rank else 1, **self.latencies)

    def lqer_design(self, rank: int) -> dict[str, int]:
        """``lqer-linear`` parameters of this engine (rank 0: the MXINT layer; ``merged``
        as :attr:`CostConfig.layer_output`, no bias)."""
        c = self.cfg
        return {"d_in": self.din_p, "d_out": self.dout_p, "rank": rank, "block": self.block,
                "a_width": c.a_width, "w_width": c.w_width, "lowrank_width": c.a_width,
                "exponent_bits": c.exponent_bits, "lanes_main": self.P, "lanes_lowrank": 0,
                "guard_bits": c.guard_bits, "dot_stages": c.dot_stages,
                "acc_slots": c.acc_slots, "acc_stages": c.acc_stages,
                "quant_stages": c.quant_stages, "merged": int(self.merged), "bias": 0,
                "merge_stages": c.merge_stages}

    # ---- ResQ
    @property
    def resq_rank(self) -> int:
        """High-precision directions: ``cfg.resq_rank`` when given, else ``d_in /
        resq_fraction`` rounded up to a block; at least one block, leaving at least one
        block to the low-precision path."""
        r = self.cfg.resq_rank or \
            _ceil(_ceil(self.din_p, self.cfg.resq_fraction), self.block) * self.block
        return min(max(r, self.block), self.din_p - self.block)

    @property
    def nb_high(self) -> int:
        return self.resq_rank // self.block

    @property
    def nb_low(self) -> int:
        return self.nb_in - self.nb_high

    @cached_property
    def resq_low(self) -> _Path:
        return _Path(self.fmt["a"], self.fmt["w"], self.nb_low + self.merged_partials,
                     self.cfg.guard_bits)

    @cached_property
    def resq_high(self) -> _Path:
        return _Path(self.fmt["high"], self.fmt["high"], self.nb_high, self.cfg.guard_bits)

    @cached_property
    def resq_high_lanes(self) -> int:
        """Smallest power of two <= block whose high path never stalls the low one
        (``resq-linear``'s own rule, :func:`hw.lqer_schedule.default_lowrank_lanes`)."""
        return default_lowrank_lanes(d_in=self.din_p, d_out=self.dout_p, rank=self.resq_rank,
                                     block=self.block, lanes_main=self.P, mode="resq",
                                     **self.latencies)

    def resq_schedule(self) -> LQERSchedule:
        return LQERSchedule(self.din_p, self.dout_p, self.resq_rank, self.block, self.P,
                            self.resq_high_lanes, **self.latencies, mode="resq")

    def resq_design(self) -> dict[str, int]:
        """``resq-linear`` parameters of this engine (``merged`` as
        :attr:`CostConfig.layer_output`, no bias)."""
        c = self.cfg
        return {"d_in": self.din_p, "d_out": self.dout_p, "rank": self.resq_rank,
                "block": self.block, "a_width": c.a_width, "w_width": c.w_width,
                "high_width": HIGH_WIDTH, "exponent_bits": c.exponent_bits,
                "lanes_main": self.P, "lanes_high": self.resq_high_lanes,
                "guard_bits": c.guard_bits, "dot_stages": c.dot_stages,
                "acc_slots": c.acc_slots, "acc_stages": c.acc_stages,
                "quant_stages": c.quant_stages, "merged": int(self.merged), "bias": 0,
                "merge_stages": c.merge_stages}

    # ---- FP16 (fp16-linear)
    def fp16_design(self) -> dict[str, int]:
        """``fp16-linear`` parameters: ``M`` lanes, one column per step, binary32 sums
        out (the IEEE units at their default stages)."""
        return {"d_in": self.din_p, "d_out": self.dout_m, "lanes": self.M, "out_fp16": 0}

    # ---- LLM.int8()
    @property
    def outlier_columns(self) -> float:
        """The outlier count the fp16 lanes are sized for (cfg.outlier_sizing; at most d_in)."""
        if self.outliers is None:
            raise ValueError("outliers must be given for llm-int8 (--outliers PROFILE.json or "
                             "--outlier-columns N); got neither")
        return min(self.outliers.at(self.cfg.outlier_sizing), self.d_in)

    @property
    def fp_lanes(self) -> int:
        """fp16 lanes F (``llm-int8-linear``'s ``fp_lanes``): the fewest dividing
        ``d_out`` whose ``outlier_cycles(outlier_columns)`` fit within the column steps
        (at least 1; at most one per output channel)."""
        n = math.ceil(self.outlier_columns)
        if n == 0:
            return 1
        per_lane = self.column_steps // n  # output channels one lane can take in time
        need = self.dout_m if per_lane == 0 else _ceil(self.dout_m, per_lane)
        return next(f for f in range(need, self.dout_m + 1) if self.dout_m % f == 0)

    @property
    def compaction_outputs(self) -> int:
        """M_c, outlier column indices per compaction pass: ``block / 4`` (the ratio of
        ``llm-int8-linear``'s defaults, 4 of 16): a chunk of ``block`` columns with up to
        ``block / 4`` outliers takes one pass."""
        return max(1, self.block // 4)

    def llm_int8_design(self, threshold_bits: int | None = None) -> dict[str, int]:
        """``llm-int8-linear`` parameters: ``x_lanes`` = block, ``lanes`` = M (one
        column per step), ``fp_lanes`` = F, one token per tile, binary32 outputs."""
        return {"d_in": self.din_p, "d_out": self.dout_m, "x_lanes": self.block,
                "lanes": self.M, "fp_lanes": self.fp_lanes if self.outliers is not None else 1,
                "outputs": self.compaction_outputs,
                "threshold_bits": FP16_THRESHOLD if threshold_bits is None else threshold_bits,
                "tile": 1, "bias": 0, "out_fp16": 0, "outstanding": 4}

    def w8a8_design(self) -> dict[str, int]:
        """``w8a8-linear`` parameters (``llm-int8-linear`` without its outlier path):
        ``x_lanes`` = block, ``lanes`` = M, binary32 outputs."""
        return {"d_in": self.din_p, "d_out": self.dout_m, "x_lanes": self.block,
                "lanes": self.M, "bias": 0, "out_fp16": 0}

    def outlier_statistics(self) -> dict[str, float]:
        """The profile's outlier counts at which extra cycles are reported."""
        o = self.outliers
        return {k: min(v, self.d_in) for k, v in (("mean", o.mean), ("p99", o.p99), ("max", o.max))}

    def outlier_cycles(self, columns: float) -> int:
        """Cycles of the fp16 path for ``columns`` outlier columns: each lane takes one
        output channel at a time through the columns in order (``sw.llm_int8``)."""
        return _ceil(self.dout_m, self.fp_lanes) * math.ceil(columns)


# ---------------------------------------------------------------- method entries

@dataclass(frozen=True)
class Use:
    """``count`` instances of ``part`` (both functions of a :class:`Sizing`) in ``role``."""

    role: str
    part: Callable[[Sizing], Part]
    count: Callable[[Sizing], int] = lambda s: 1
    # a part the engine needs that the method's design leaves outside its ports (counted
    # in the engine, left out of the prediction held against that design)
    outside: bool = False


@dataclass(frozen=True)
class Store:
    """A memory ``depth`` words x ``width`` bits of ``kind`` buffer / table / registers /
    weights (functions of a :class:`Sizing`). ``read``: how a buffer is read, ``"operand"``
    (a dot array's operand, every step: activations, t) or ``"result"`` (once per output
    block: results awaiting the merge), or a tuple of them, one per read port (the
    running sums of ``fp-accumulate``: read back by the adders and read out); the glue
    model costs the two apart."""

    role: str
    depth: Callable[[Sizing], int]
    width: Callable[[Sizing], int]
    kind: str = "buffer"
    read: str | tuple[str, ...] = "result"   # or one entry per read port
    # a FIFO: the words of register it keeps in logic beside its memory (1: a
    # hw.fifo.BufferedFIFO's read register; 2: hw.fifo.RegisteredFIFO, the datapath's FIFOs,
    # which add a fabric read register); 0: not a FIFO
    fifo: int = 0
    # whether the engine at a sizing has this store (None: always), e.g. a FIFO of one
    # layer output and not of the other
    when: Callable[[Sizing], bool] | None = None

    def present(self, s: Sizing) -> bool:
        return self.when is None or bool(self.when(s))

    @property
    def reads(self) -> tuple[str, ...]:
        """How each read port reads the buffer (``read`` as a tuple)."""
        return (self.read,) if isinstance(self.read, str) else tuple(self.read)


@dataclass(frozen=True)
class Schedule:
    """Per token: ``steps`` (input items, the iso-throughput part), ``cycles`` (at full
    rate, with fills and passes), ``extra`` (statistic -> data-dependent extra cycles)."""

    steps: int
    cycles: int
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    uses: tuple[Use, ...]
    stores: tuple[Store, ...]
    schedule: Callable[[Sizing], Schedule]
    design: tuple[str, Callable[[Sizing], dict]] | None = None
    second_path: bool = False       # a second datapath beside the main one (glue model)
    status: str = ""                # what exists in RTL today
    needs_outliers: bool = False    # sized from the LLM.int8() outlier counts
    uses_rank: bool = False         # sized by the LQER rank
    gather_width: int = 0           # bits of a weight gathered at run time (outlier path)
    glue: str | None = None         # the design whose fitted glue a method without one borrows

    @property
    def glue_design(self) -> str:
        """The design whose syntheses the glue is fitted from: the method's own, else
        :attr:`glue`."""
        return self.design[0] if self.design is not None else self.glue

    def glue_key(self, cfg: CostConfig) -> str:
        """The glue fit the engine takes under ``cfg`` (:data:`hw.cost.glue.DESIGN_FITS`):
        :attr:`glue_design`, with ``" merged"`` for an MXINT design giving the merged
        output (its output stage has its own control)."""
        if cfg.merged and self.glue_design in MERGEABLE:
            return f"{self.glue_design} {MERGED}"
        return self.glue_design

    def stores_at(self, s: Sizing) -> tuple[Store, ...]:
        """The stores the engine has at ``s`` (:meth:`Store.present`)."""
        return tuple(st for st in self.stores if st.present(s))


def _dot(path_of, lanes_of) -> Callable[[Sizing], Part]:
    def part(s: Sizing) -> Part:
        p = path_of(s)
        return Part.of("dot-array", lanes=lanes_of(s), block=s.block, a_width=p.a.width,
                       w_width=p.w.width, exponent_bits=s.e, stages=s.cfg.dot_stages,
                       backpressure=0)
    return part


def _acc(path_of, lanes_of) -> Callable[[Sizing], Part]:
    def part(s: Sizing) -> Part:
        p = path_of(s)
        return Part.of("accumulator", lanes=lanes_of(s), slots=s.cfg.acc_slots,
                       stages=s.cfg.acc_stages, block=s.block, a_width=p.a.width,
                       w_width=p.w.width, exponent_bits=s.e, guard_bits=p.guard_bits,
                       max_partials=p.partials, backpressure=0)
    return part


def _merged(s: Sizing) -> int:
    return int(s.merged)


def _term_exponent_width(fmt: MXIntFormat) -> int:
    """Bits of an MXINT element's exponent as a partial (``hw.lqer_linear``'s term pieces:
    ``fmt.lsb_range``)."""
    return signed_for_range(*fmt.lsb_range).width


def _merge_exponent_width(path: _Path, term: MXIntFormat) -> int:
    """Bits of the output requantizer's exponent input: ``hw.lqer_linear`` sizes it for
    ``hw.merge.Merge.out_exponent_range``, the whole range of the merge's exponent
    (the running maximum over the results' ``E`` and the term's exponents, less ``G``)."""
    (rlo, rhi), (tlo, thi), g = path.exponent_range, term.lsb_range, path.guard_bits
    width = signed_for_range(min(rlo + g, tlo) - g, max(rhi + g, thi) - g).width
    return signed_for_range(-2 ** (width - 1), 2 ** (width - 1) - 1).width


def _merged_output(path_of, term_of) -> tuple[Use, ...]:
    """The merged output stage of ``lqer-linear`` / ``resq-linear`` (``merged=1``, no bias;
    ``hw.lqer_linear._merged_output``): the term's blocks to groups of ``P`` channels
    (ResQ: the requantized high blocks), the merge continuing each channel's accumulation
    with the term, and the output requantizer to blocks of ``MXINT(term width)`` (the
    main results' groups to blocks is the two-term output's rechunker, kept). Counted
    only when :attr:`CostConfig.layer_output` is merged."""
    return (
        Use("term blocks to groups (merged output)", lambda s: Part.of(
            "rechunk", value_width=term_of(s).width,
            exponent_width=_term_exponent_width(term_of(s)), n_in=s.block, n_out=s.P),
            _merged),
        Use("merge (main + term, merged output)", lambda s: Part.of(
            "merge", lanes=s.P, acc_width=path_of(s).acc_width,
            result_lo=path_of(s).exponent_range[0], result_hi=path_of(s).exponent_range[1],
            term_width=term_of(s).width, term_lo=term_of(s).lsb_range[0],
            term_hi=term_of(s).lsb_range[1], guard_bits=path_of(s).guard_bits,
            stages=s.cfg.merge_stages), _merged),
        _output_quantizer(path_of, term_of,
                          lambda s: _merge_exponent_width(path_of(s), term_of(s))),
    )


def _output_quantizer(path_of, format_of, lsb_width_of) -> Use:
    """The merged output's requantizer (``hw.lqer_linear``: back-pressured, the output
    port's ready)."""
    return Use("output requantizer (merged output)", lambda s: Part.of(
        "quantizer", block=s.block, in_width=path_of(s).acc_width, lsb_width=lsb_width_of(s),
        width=format_of(s).width, exponent_bits=s.e, stages=s.cfg.quant_stages,
        backpressure=1), _merged)


def _fp(name: str) -> Callable[[Sizing], Part]:
    return lambda s: Part.of(name)


# LQERSchedule.cycles_per_token runs the output stage's cycle model over a whole token
# (seconds at LLaMA sizes): memoised by the schedule (its repr), in this process and, when
# hw.cost.model.schedule_memo loads one, beside the synthesis cache across runs.
CYCLES_MEMO: dict[str, int] = {}


def lqer_cycles(schedule: LQERSchedule) -> int:
    """``schedule.cycles_per_token``, memoised in :data:`CYCLES_MEMO`."""
    key = repr(schedule)
    if key not in CYCLES_MEMO:
        CYCLES_MEMO[key] = schedule.cycles_per_token
    return CYCLES_MEMO[key]


def _lqer_schedule(rank_of) -> Callable[[Sizing], Schedule]:
    def schedule(s: Sizing) -> Schedule:
        sch = s.lqer_schedule(rank_of(s))
        return Schedule(sch.steps, lqer_cycles(sch))
    return schedule


# the MXINT main path of lqer-linear
_MAIN = (
    Use("main dot array", _dot(lambda s: s.main, lambda s: s.P)),
    Use("main accumulator", _acc(lambda s: s.main, lambda s: s.P)),
    Use("main results, groups to blocks", lambda s: Part.of(
        "rechunk", value_width=s.main.acc_width, exponent_width=s.main.exponent_width,
        n_in=s.P, n_out=s.block)),
)
_MAIN_STORES = (
    Store("x memory (MXINT activations)", lambda s: s.nb_in, lambda s: _block_bits(s.fmt["a"]),
          read="operand"),
    Store("main FIFO (results awaiting u)", lambda s: s.dout_p // s.P + 2,
          lambda s: s.P * s.main.result_width, fifo=2),
    Store("W_q (MXINT weights)", lambda s: s.main_steps,
          lambda s: s.P * _block_bits(s.fmt["w"]), "weights"),
)
_LOWRANK = (
    Use("low-rank dot array", _dot(lambda s: s.lowrank, lambda s: s.lowrank_lanes)),
    Use("low-rank accumulator", _acc(lambda s: s.lowrank, lambda s: s.lowrank_lanes)),
    Use("requantizer (t, u)", lambda s: Part.of(
        "quantizer", block=s.block, in_width=s.lowrank.acc_width, lsb_width=s.lowrank_lsb_width,
        width=s.cfg.a_width, exponent_bits=s.e, stages=s.cfg.quant_stages, backpressure=0)),
)
# the merged output of lqer-linear with a low-rank path: u merged into the main results
_LQER_MERGED = _merged_output(lambda s: s.main, lambda s: s.fmt["a"])
# ... and without one (rank 0): the main results requantized alone
_MXINT_MERGED = (_output_quantizer(lambda s: s.main, lambda s: s.fmt["a"],
                                   lambda s: s.main.exponent_width),)
_LOWRANK_STORES = (
    Store("t memory", lambda s: s.nb_k, lambda s: _block_bits(s.fmt["a"]), read="operand"),
    Store("u FIFO", lambda s: s.nb_out + 2, lambda s: _block_bits(s.fmt["a"]), fifo=2),
    Store("requantizer staging", lambda s: 1,
          lambda s: s.block * (s.lowrank.acc_width + s.lowrank_lsb_width), "registers"),
    Store("A^T (low-rank factor)", lambda s: s.rank // s.lowrank_lanes * s.nb_in,
          lambda s: s.lowrank_lanes * _block_bits(s.fmt["a"]), "weights"),
    Store("B^T (low-rank factor)", lambda s: s.dout_p // s.lowrank_lanes * s.nb_k,
          lambda s: s.lowrank_lanes * _block_bits(s.fmt["a"]), "weights"),
)


def _fp16_schedule(s: Sizing) -> Schedule:
    """``fp16-linear``'s timing (:class:`hw.fp16_linear_schedule.FP16LinearSchedule`)."""
    from hw.cost.parts import fp_latency
    from hw.fp16_linear_schedule import FP16LinearSchedule
    from hw.fp_accumulate import OPERAND_LEVELS, input_levels
    sch = FP16LinearSchedule(s.din_p, s.dout_m, s.M, input_levels(s.M) + fp_latency("fp16-mul"),
                             OPERAND_LEVELS + fp_latency("fp32-add"), 0)
    return Schedule(sch.steps, sch.cycles_per_token)


def _int8_schedule(s: Sizing, outliers: bool) -> Schedule:
    """``llm-int8-linear``'s token: the X phase (the detector, one block per cycle), the
    codes one element per cycle (the quantizer), the int path one column per step, the
    fp16 path beside it (LLM.int8() only; more outlier columns than it was sized for take
    data-dependent extra cycles), the merge one output per cycle."""
    from hw.cost.parts import fp_latency
    latency = INT8_REGISTERS + 2 * fp_latency("fp32-mul") + fp_latency("int32-to-fp32")
    steps = s.column_steps
    extra = {}
    if outliers:
        latency += fp_latency("fp32-add")
        counts = s.outlier_statistics()
        extra = {k: max(0, s.outlier_cycles(v) - steps) for k, v in counts.items()}
    passes = s.nb_in + _ceil(s.din_p, QUANTIZER_LANES)
    return Schedule(steps, passes + steps + latency, extra)


def _resq_schedule(s: Sizing) -> Schedule:
    sch = s.resq_schedule()
    return Schedule(sch.steps, lqer_cycles(sch))


def _unit(name: str) -> Callable[[Sizing], Part]:
    """An IEEE unit as the datapaths build it (free-running, default stages)."""
    return lambda s: Part.of(name, backpressure=0)


def _detector(threshold_bits: int) -> Use:
    return Use("outlier detector and absmax (llm-int8-detector)", lambda s: Part.of(
        "llm-int8-detector", lanes=s.block, threshold_bits=threshold_bits, backpressure=0))


_QUANTIZER = Use("activation quantizer (reciprocal table, x * r, round)",
                 lambda s: Part.of("llm-int8-quantizer"))
_INT_PATH = Use("int path: M int8 lanes, dequantization (llm-int8-int-path)",
                lambda s: Part.of("llm-int8-int-path", lanes=s.M, d_in=s.din_p, bias=0))


def _fp_path(role: str, count) -> tuple[Use, ...]:
    """``fp-accumulate``'s units: binary16 products added into binary32 sums (its sums
    memory is a store; the rest of it is glue)."""
    # the lanes share the activation: each multiplier keeps its own first registers
    products = lambda s: Part.of("fp16-mul", backpressure=0, replicas=1)  # noqa: E731
    return (Use(f"{role} fp16 products".lstrip(), products, count),
            Use(f"{role} fp32 accumulating adders".lstrip(), _unit("fp32-add"), count))


def _fp_inputs(count) -> Store:
    """``fp-accumulate``'s lane input registers: each of ``count`` lanes registers its own
    copy of the activation and its weight (binary16) ahead of its multiplier, above four
    lanes through a broadcast tree (hw.fp_accumulate.input_register_bits)."""
    def bits(s: Sizing) -> int:
        from hw.fp_accumulate import input_register_bits
        return input_register_bits(count(s))
    return Store("fp16 lane input registers (activation copies, weights)", lambda s: 1, bits,
                 "registers")


# the outlier weights, gathered as int8 codes and dequantized to binary16 at the weight
# memory's port (sw.llm_int8's default): llm-int8-linear's gather port takes binary16
_GATHER_DEQUANT = (
    Use("gathered weight int -> fp32 (outside the datapath's port)", _unit("int32-to-fp32"),
        lambda s: s.fp_lanes, outside=True),
    Use("gathered weight dequantization (outside the datapath's port)", _unit("fp32-mul"),
        lambda s: 2 * s.fp_lanes, outside=True),
    Use("gathered weight fp32 -> fp16 (outside the datapath's port)", _unit("fp32-to-fp16"),
        lambda s: s.fp_lanes, outside=True),
)


def _column_bits(s: Sizing) -> int:
    return max(1, (s.din_p - 1).bit_length())


def _int8_stores(outliers: bool) -> tuple[Store, ...]:
    """``llm-int8-linear``'s memories (its ``memory_bits``) and the layer's weights;
    without the outlier path ``w8a8-linear``'s (its int results FIFO is the output)."""
    stores = (
        Store("x memory (fp16 activations)", lambda s: s.nb_in, lambda s: s.block * FP16,
              read="operand"),
        Store("x codes (int8)", lambda s: s.din_p, lambda s: HIGH_WIDTH, read="operand"),
        Store("W (int8 weights)", lambda s: s.column_steps, lambda s: s.M * HIGH_WIDTH,
              "weights"),
        Store("s_w / 127^2 (per row, fp32)", lambda s: s.dout_m, lambda s: FP32, "weights"),
    )
    if not outliers:
        stores += (Store("output FIFO (int results, fp32)", lambda s: s.dout_m + 1,
                         lambda s: FP32, fifo=1),)
    if outliers:
        stores += (
            Store("outlier mask", lambda s: s.nb_in, lambda s: s.block),
            Store("outlier column lists", lambda s: s.nb_in * _ceil(s.block, s.compaction_outputs),
                  lambda s: s.compaction_outputs * _column_bits(s)
                  + s.compaction_outputs.bit_length()),
            Store("fp32 outlier sums", lambda s: s.dout_m // s.fp_lanes,
                  lambda s: s.fp_lanes * FP32, read=("operand", "result")),
            Store("int results awaiting merge (fp32)", lambda s: s.dout_m + 1, lambda s: FP32,
                  fifo=1),
            _fp_inputs(lambda s: s.fp_lanes),
        )
    return stores


def _int4_front() -> tuple[Use, ...]:
    """LLM.int4()'s int path (no RTL: the int4 dot array and a proxy accumulator)."""
    return (
        Use("int4 dot array", lambda s: Part.of(
            "int-dot-array", lanes=s.P, block=s.block, a_width=4, w_width=4,
            stages=s.cfg.dot_stages)),
        Use("int32 accumulator", lambda s: Part.of(
            "int-accumulator", lanes=s.P, in_width=dot_sum_width(s.block, 4, 4),
            acc_width=INT32)),
        Use("dequantization int32 -> fp32", _unit("int32-to-fp32")),
        Use("dequantization (x s_x, x s_w/q^2)", _unit("fp32-mul"), lambda s: 2),
    )


_MERGE = Use("merge (int + outlier, llm-int8-merge)", lambda s: Part.of("llm-int8-merge",
                                                                        out_fp16=0))

METHODS: dict[str, Method] = {m.name: m for m in (
    Method(
        "fp16", "FP16 baseline (fp16-linear): M binary16 x binary16 products per cycle, one "
        "binary32 sum per output",
        _fp_path("", lambda s: s.M),
        (Store("fp32 sums (d_out)", lambda s: s.dout_m // s.M, lambda s: s.M * FP32,
               read=("operand", "result")),
         Store("W (fp16 weights)", lambda s: s.column_steps, lambda s: s.M * FP16, "weights"),
         _fp_inputs(lambda s: s.M)),
        _fp16_schedule,
        design=("fp16-linear", lambda s: s.fp16_design()), status="RTL: fp16-linear"),
    Method(
        "w8a8", "vector-wise int8 weights and activations (LLM.int8() without outliers)",
        (_detector(0x7C00), _QUANTIZER, _INT_PATH),
        _int8_stores(False),
        lambda s: _int8_schedule(s, outliers=False),
        design=("w8a8-linear", lambda s: s.w8a8_design()),
        status="RTL: w8a8-linear (llm-int8-linear without its outlier path)"),
    Method(
        "mxint", "MXINT weights and activations, no correction (lqer-linear, rank 0)",
        _MAIN + _MXINT_MERGED, _MAIN_STORES, _lqer_schedule(lambda s: 0),
        design=("lqer-linear", lambda s: s.lqer_design(0)), status="RTL: lqer-linear rank 0"),
    Method(
        "lqer", "LQER: MXINT main path plus the 8-bit low-rank correction (lqer-linear)",
        _MAIN + _LOWRANK + _LQER_MERGED, _MAIN_STORES + _LOWRANK_STORES,
        _lqer_schedule(lambda s: s.rank),
        design=("lqer-linear", lambda s: s.lqer_design(s.rank)), second_path=True,
        uses_rank=True, status="RTL: lqer-linear"),
    Method(
        "l2qer", "L2QER: the LQER datapath; the activation scale is folded into A offline",
        _MAIN + _LOWRANK + _LQER_MERGED, _MAIN_STORES + _LOWRANK_STORES,
        _lqer_schedule(lambda s: s.rank),
        design=("lqer-linear", lambda s: s.lqer_design(s.rank)), second_path=True,
        uses_rank=True, status="RTL: lqer-linear"),
    Method(
        "llm-int8", "LLM.int8() (llm-int8-linear): int8 path plus fp16 outlier columns "
        "gathered at run time",
        (_detector(FP16_THRESHOLD),
         Use("compaction network (llm-int8-compaction)", lambda s: Part.of(
             "llm-int8-compaction", lanes=s.block, outputs=s.compaction_outputs,
             chunks=s.nb_in)),
         _QUANTIZER, _INT_PATH) + _fp_path("outlier", lambda s: s.fp_lanes)
        + (_MERGE,) + _GATHER_DEQUANT,
        _int8_stores(True),
        lambda s: _int8_schedule(s, outliers=True),
        design=("llm-int8-linear", lambda s: s.llm_int8_design()), second_path=True,
        needs_outliers=True, gather_width=HIGH_WIDTH, status="RTL: llm-int8-linear"),
    Method(
        "llm-int4", "LLM.int4() (the LQER authors' comparison): LLM.int8() with a 4-bit int path",
        (_detector(FP16_THRESHOLD),
         Use("compaction network (llm-int8-compaction)", lambda s: Part.of(
             "llm-int8-compaction", lanes=s.block, outputs=s.compaction_outputs,
             chunks=s.nb_in)),
         Use("activation quantizer (llm-int8-quantizer; a 4-bit table assumed alike)",
             lambda s: Part.of("llm-int8-quantizer"))) + _int4_front()
        + _fp_path("outlier", lambda s: s.fp_lanes) + (_MERGE,) + _GATHER_DEQUANT,
        tuple(st for st in _int8_stores(True) if "int8" not in st.role) + (
            Store("x codes (int4)", lambda s: s.din_p, lambda s: 4, read="operand"),
            Store("W (int4 weights)", lambda s: s.main_steps, lambda s: s.P * s.block * 4,
                  "weights")),
        lambda s: _int8_schedule(s, outliers=True), second_path=True, needs_outliers=True,
        gather_width=4, glue="llm-int8-linear",
        status="as llm-int8 with an int4 path (no RTL, no sw reference: round(x * 7 / s_x) "
               "assumed; int accumulator is a proxy)"),
    Method(
        "resq", "ResQ (resq-linear): low-precision path over d - r projected coordinates, "
        "8-bit path over r",
        (Use("low-precision dot array", _dot(lambda s: s.resq_low, lambda s: s.P)),
         Use("low-precision accumulator", _acc(lambda s: s.resq_low, lambda s: s.P)),
         Use("low-precision results, groups to blocks", lambda s: Part.of(
             "rechunk", value_width=s.resq_low.acc_width,
             exponent_width=s.resq_low.exponent_width, n_in=s.P, n_out=s.block)),
         Use("high-precision dot array", _dot(lambda s: s.resq_high, lambda s: s.resq_high_lanes)),
         Use("high-precision accumulator", _acc(lambda s: s.resq_high,
                                                lambda s: s.resq_high_lanes)),
         Use("requantizer (high, merged output)", lambda s: Part.of(
             "quantizer", block=s.block, in_width=s.resq_high.acc_width,
             lsb_width=s.resq_high.exponent_width, width=HIGH_WIDTH, exponent_bits=s.e,
             stages=s.cfg.quant_stages, backpressure=0), _merged))
        + _merged_output(lambda s: s.resq_low, lambda s: s.fmt["high"]),
        (Store("x memory, low subspace", lambda s: s.nb_low, lambda s: _block_bits(s.fmt["a"]),
               read="operand"),
         Store("z_h memory, high subspace", lambda s: s.nb_high,
               lambda s: _block_bits(s.fmt["high"]), read="operand"),
         Store("low-path FIFO (results awaiting the high ones)", lambda s: s.dout_p // s.P + 2,
               lambda s: s.P * s.resq_low.result_width, fifo=2),
         Store("high-path staging", lambda s: 1, lambda s: s.block * s.resq_high.result_width,
               "registers"),
         Store("high-path FIFO (exact results)", lambda s: s.nb_out + 2,
               lambda s: s.block * s.resq_high.result_width, fifo=2,
               when=lambda s: not s.merged),
         Store("high-path FIFO (requantized blocks, merged output)", lambda s: s.nb_out + 2,
               lambda s: _block_bits(s.fmt["high"]), fifo=2, when=lambda s: s.merged),
         Store("low-precision weights", lambda s: s.dout_p // s.P * s.nb_low,
               lambda s: s.P * _block_bits(s.fmt["w"]), "weights"),
         Store("high-precision weights", lambda s: s.dout_p // s.resq_high_lanes * s.nb_high,
               lambda s: s.resq_high_lanes * _block_bits(s.fmt["high"]), "weights")),
        _resq_schedule, design=("resq-linear", lambda s: s.resq_design()), second_path=True,
        status="RTL: resq-linear"),
)}


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)
