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

__all__ = ["METHODS", "QUANT_METHODS", "LOW_RANK_METHODS", "BLOCKINGS", "SVD_METHODS", "QuantConfig",
           "CalibOptions"]

METHODS = ("fp", "mxint", "lqer", "l2qer")
QUANT_METHODS = ("mxint", "lqer", "l2qer")  # the methods that produce factors
LOW_RANK_METHODS = ("lqer", "l2qer")        # the methods with A and B
BLOCKINGS = ("reduction", "paper")
SVD_METHODS = ("full", "randomized")

# the format rules come from the one rule in sw.mxint (docs/design.md, Number formats)
_WIDTH = Rule("int", *mxint.WIDTH_RANGE)
_BLOCK = Rule("power_of_two", 1, mxint.MAX_BLOCK)
_EXPONENT_BITS = Rule("int", *mxint.EXPONENT_BITS_RANGE)


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """Formats and factor options of one quantized model (docs/design.md, Software shape).

    ``blocking="reduction"`` blocks A along ``d_in`` and B along the rank (what
    hardware needs); ``"paper"`` blocks A along the rank and B along ``d_out``,
    as the LQER authors' emulation does (fast arithmetic only).
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
    seed: int = option(0, flag="--seed", rule=Rule("int", 0), methods=LOW_RANK_METHODS,
                       help="randomized-SVD seed")

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
    """L2QER calibration set: the first ``sequences`` windows of ``length`` tokens, in batches.

    Raises ``ValueError`` naming the field (``calib_length``, ...) outside its rule.
    """

    sequences: int = option(32, flag="--calib-sequences", rule=Rule("int", 1), methods=("l2qer",),
                            help="calibration sequences")
    length: int = option(128, flag="--calib-length", rule=Rule("int", 2), methods=("l2qer",),
                         help="tokens per calibration sequence (at most the model's context)")
    batch: int = option(8, flag="--calib-batch", rule=Rule("int", 1), methods=("l2qer",),
                        help="calibration sequences per forward pass")

    def __post_init__(self):
        check_fields(self, prefix="calib_")

    def to_json(self) -> dict:
        return asdict(self)
