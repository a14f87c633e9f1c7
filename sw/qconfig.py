"""One validated set of quantization options, shared by factors, emulation, manifest and CLI.

Each option field carries its flag, help, default and allowed values
(:mod:`sw.options`); ``lqer-hw quantize`` / ``eval`` generate their options
from them, and :class:`QuantConfig` validates through the same rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sw import mxint
from sw.mxint import FLAVOURS, ROUNDINGS, MXIntFormat
from sw.options import Rule, check_fields, option

__all__ = ["METHODS", "QUANT_METHODS", "LOW_RANK_METHODS", "CALIBRATED_METHODS", "BLOCKINGS",
           "SVD_METHODS", "RESQ_BASES", "RESQ_DOWN", "RESQ_FORMATS", "QuantConfig", "CalibOptions"]

METHODS = ("fp", "mxint", "lqer", "l2qer", "resq")
QUANT_METHODS = ("mxint", "lqer", "l2qer", "resq")  # the methods that produce factors
LOW_RANK_METHODS = ("lqer", "l2qer")        # the methods with A and B
CALIBRATED_METHODS = ("l2qer", "resq")      # the methods that read calibration text
BLOCKINGS = ("reduction", "paper")
SVD_METHODS = ("full", "randomized")
RESQ_BASES = ("per-layer", "shared")        # one ResQ basis per layer, or per input tensor
RESQ_DOWN = ("hadamard", "pca")             # down projections: the paper's Hadamard, or PCA
RESQ_FORMATS = ("mxint", "int")             # the project's MXINT, or the paper's integer formats

# the format rules come from the one rule in sw.mxint (docs/design.md, Number formats)
_WIDTH = Rule("int", *mxint.WIDTH_RANGE)
_BLOCK = Rule("power_of_two", 1, mxint.MAX_BLOCK)
_EXPONENT_BITS = Rule("int", *mxint.EXPONENT_BITS_RANGE)


@dataclass(frozen=True)
class _RankOrAuto(Rule):
    """ResQ's high-precision rank: ``auto`` (d_in / 8 per layer) or an integer >= 1."""

    def allowed(self) -> str:
        return "auto or an integer >= 1"

    def ok(self, value) -> bool:
        return value == "auto" or Rule("int", 1).ok(value)

    def parse(self, text: str):
        if text == "auto":
            return text
        try:
            value = int(text, 10)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.ok(value):
            raise ValueError(f"must be {self.allowed()}; got {text!r}")
        return value


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """Formats and factor options of one quantized model (docs/design.md, Software shape).

    ``blocking="reduction"`` blocks A along ``d_in`` and B along the rank (what
    hardware needs); ``"paper"`` blocks A along the rank and B along ``d_out``,
    as the LQER authors' emulation does (fast arithmetic only). The ``high_width``
    and ``resq_*`` fields belong to ResQ (docs/sw.md, "ResQ").
    Raises ``ValueError`` naming the first field outside its rule.
    """

    method: str
    rank: int = option(32, flag="--rank", rule=Rule("int", 1), methods=LOW_RANK_METHODS,
                       help="low-rank k: columns of A, rows of B, in 1..min(d_in, d_out)")
    w_width: int = option(4, flag="--w-width", rule=_WIDTH, help="weight mantissa bits")
    a_width: int = option(8, flag="--a-width", rule=_WIDTH, help="activation mantissa bits")
    lowrank_width: int = option(8, flag="--lowrank-width", rule=_WIDTH, methods=LOW_RANK_METHODS,
                                help="mantissa bits of A, B and the low-rank products t, u")
    block: int = option(16, flag="--block", rule=_BLOCK,
                        help="MXINT block size (elements sharing one exponent)")
    exponent_bits: int = option(8, flag="--exponent-bits", rule=_EXPONENT_BITS,
                                help="bits of the shared exponent")
    rounding: str = option("even", flag="--rounding", rule=Rule("choice", choices=ROUNDINGS),
                           help="mantissa rounding: even (round half to even) or away")
    flavour: str = option("ocp", flag="--flavour", rule=Rule("choice", choices=FLAVOURS),
                          help="MXINT flavour: ocp (OCP MX spec) or lqer (the LQER authors' "
                               "emulation)")
    blocking: str = option("reduction", flag="--blocking", rule=Rule("choice", choices=BLOCKINGS),
                           methods=LOW_RANK_METHODS,
                           help="reduction: A blocked along d_in, B along k (what hardware "
                                "needs); paper: A along k, B along d_out (fast arithmetic only)")
    svd: str = option("full", flag="--svd", rule=Rule("choice", choices=SVD_METHODS),
                      methods=LOW_RANK_METHODS,
                      help="full SVD, or randomized (range finder + 2 power iterations, seeded)")
    seed: int = option(0, flag="--seed", rule=Rule("int", 0), methods=LOW_RANK_METHODS + ("resq",),
                       help="randomized-SVD seed (lqer, l2qer); random-rotation seed (resq)")
    high_width: int = option(8, flag="--high-width", rule=_WIDTH, methods=("resq",),
                             help="bits of ResQ's r high-precision coordinates and their weights")
    resq_rank: int | str = option("auto", flag="--resq-rank", rule=_RankOrAuto("int"),
                                  methods=("resq",), metavar="N|auto",
                                  help="ResQ high-precision rank r of every layer (down "
                                       "projections: 0 with --resq-down hadamard); auto: d_in/8 "
                                       "rounded to the nearest multiple of block (ties up, at "
                                       "least one block)")
    resq_basis: str = option("per-layer", flag="--resq-basis",
                             rule=Rule("choice", choices=RESQ_BASES), methods=("resq",),
                             help="one ResQ basis per layer, or shared by the layers that read "
                                  "the same input (q/k/v, gate/up)")
    resq_down: str = option("hadamard", flag="--resq-down", rule=Rule("choice", choices=RESQ_DOWN),
                            methods=("resq",),
                            help="down projections: hadamard (the paper: Hadamard transform, "
                                 "all low precision) or pca (like every other layer)")
    resq_format: str = option("mxint", flag="--resq-format",
                              rule=Rule("choice", choices=RESQ_FORMATS), methods=("resq",),
                              help="mxint (the project's formats) or int (the paper's: "
                                   "per-token asymmetric activations, per-channel symmetric "
                                   "weights; fast arithmetic only)")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        check_fields(self)  # the format fields follow sw.mxint's rule, so every format is valid

    def _format(self, width: int) -> MXIntFormat:
        return MXIntFormat(width=width, block=self.block, exponent_bits=self.exponent_bits,
                           rounding=self.rounding, flavour=self.flavour)

    @property
    def weight_format(self) -> MXIntFormat:
        """W_q's format (blocks along d_in)."""
        return self._format(self.w_width)

    @property
    def act_format(self) -> MXIntFormat:
        """The activations' format (blocks along the hidden axis)."""
        return self._format(self.a_width)

    @property
    def lowrank_format(self) -> MXIntFormat:
        """The format of A, B and the low-rank products t and u."""
        return self._format(self.lowrank_width)

    @property
    def high_format(self) -> MXIntFormat:
        """ResQ's high-precision format (its r coordinates and W U_h)."""
        return self._format(self.high_width)

    @property
    def low_rank(self) -> bool:
        """Whether the method adds the low-rank correction."""
        return self.method in LOW_RANK_METHODS

    @property
    def quantized(self) -> bool:
        """Whether any layer is quantized (every method but ``fp``)."""
        return self.method != "fp"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "QuantConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"quantization options must be among {', '.join(sorted(names))}; "
                             f"got {unknown[0]!r}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class CalibOptions:
    """L2QER / ResQ calibration set: the first ``sequences`` windows of ``length`` tokens, in batches.

    Raises ``ValueError`` naming the field (``calib_length``, ...) outside its rule.
    """

    sequences: int = option(32, flag="--calib-sequences", rule=Rule("int", 1),
                            methods=CALIBRATED_METHODS, help="calibration sequences")
    length: int = option(128, flag="--calib-length", rule=Rule("int", 2), methods=CALIBRATED_METHODS,
                         help="tokens per calibration sequence (at most the model's context)")
    batch: int = option(8, flag="--calib-batch", rule=Rule("int", 1), methods=CALIBRATED_METHODS,
                        help="calibration sequences per forward pass")

    def __post_init__(self):
        check_fields(self, prefix="calib_")

    def to_json(self) -> dict:
        return asdict(self)
