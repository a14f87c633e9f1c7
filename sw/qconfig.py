"""One validated set of quantization options, shared by factors, emulation, manifest and CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sw.mxint import MXIntFormat

__all__ = ["METHODS", "QUANT_METHODS", "BLOCKINGS", "SVD_METHODS", "QuantConfig"]

METHODS = ("fp", "mxint", "lqer", "l2qer")
QUANT_METHODS = ("mxint", "lqer", "l2qer")  # the methods that produce factors
BLOCKINGS = ("reduction", "paper")
SVD_METHODS = ("full", "randomized")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """Formats and factor options of one quantized model (docs/design.md, Software shape).

    ``blocking="reduction"`` blocks A along ``d_in`` and B along the rank (what
    hardware needs); ``"paper"`` blocks A along the rank and B along ``d_out``,
    as the LQER authors' emulation does (fast arithmetic only).
    """

    method: str
    rank: int = 32
    w_width: int = 4
    a_width: int = 8
    lowrank_width: int = 8
    block: int = 16
    exponent_bits: int = 8
    rounding: str = "even"
    flavour: str = "ocp"
    blocking: str = "reduction"
    svd: str = "full"
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if not _is_int(self.rank) or self.rank < 1:
            raise ValueError(f"rank must be an integer >= 1; got {self.rank!r}")
        for name in ("w_width", "a_width", "lowrank_width"):
            value = getattr(self, name)
            if not _is_int(value) or not 2 <= value <= 8:
                raise ValueError(f"{name} must be an integer in 2..8; got {value!r}")
        MXIntFormat(width=self.a_width, block=self.block, exponent_bits=self.exponent_bits,
                    rounding=self.rounding, flavour=self.flavour)
        if self.blocking not in BLOCKINGS:
            raise ValueError(f"blocking must be one of {', '.join(BLOCKINGS)}; got {self.blocking!r}")
        if self.svd not in SVD_METHODS:
            raise ValueError(f"svd must be one of {', '.join(SVD_METHODS)}; got {self.svd!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {self.seed!r}")

    @property
    def low_rank(self) -> bool:
        """Whether the method adds the low-rank correction."""
        return self.method in ("lqer", "l2qer")

    @property
    def quantized(self) -> bool:
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
