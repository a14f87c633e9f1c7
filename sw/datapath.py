"""Which quantized layers the ``lqer-linear`` datapath can run: the rule, stated once.

The software keeps any rank in ``1..min(d_in, d_out)`` and any power-of-two
block (the emulation pads a partial block). The datapath
(``hw/lqer_linear.py``, docs/lqer_linear.md) streams whole MXINT blocks on
every axis it reduces or produces, so it needs:

- ``d_in``, ``d_out`` and ``rank`` multiples of ``block`` (no partial blocks),
  ``block`` a power of two in 1..256 and every dimension at most 8192;
- the OCP flavour with round-half-to-even (what its quantizer implements);
- ``reduction`` blocking (A along ``d_in``, B along the rank: the axes its dot
  products reduce);
- ``lowrank_width == a_width`` when ``rank > 0`` (one low-rank dot array takes
  x, then t).

:func:`lqer_linear_reason` answers for one layer; :func:`datapath_record`
for a set of layers, in the form the factors manifest stores. NumPy-free and
torch-free, so ``hw`` may call it.

ResQ factors (``method="resq"``) are answered for by :func:`resq_reason`, the rule of the
ResQ mode of the dual-path datapath (``resq-linear``: ``hw/lqer_linear.py`` with
``mode="resq"``, docs/lqer_linear.md): the wide path takes the ``d_in - r`` low-precision coordinates, the narrow path the
``r`` high-precision ones, each streaming whole MXINT blocks, so ``d_in``, ``d_out`` and
``r`` must be multiples of ``block`` (``r = 0``: the wide path alone, a Hadamard-transformed
down projection), with the OCP flavour, round half to even and the MXINT formats (the
paper's integer formats are emulated only).
"""

from __future__ import annotations

from sw import mxint

__all__ = ["DATAPATH", "RESQ_DATAPATH", "MAX_DIM", "lqer_linear_reason", "resq_reason",
           "datapath_record", "datapath_of"]

DATAPATH = "lqer-linear"
RESQ_DATAPATH = "resq-linear"
MAX_DIM = 8192  # largest d_in, d_out or rank of the datapath's counters and memories


def lqer_linear_reason(*, d_in: int, d_out: int, rank: int, block: int, a_width: int,
                       lowrank_width: int, flavour: str = "ocp", rounding: str = "even",
                       blocking: str = "reduction") -> str | None:
    """Why a layer with these shapes and formats cannot run on ``lqer-linear``; None when it can.

    ``rank`` 0 is the main path alone (plain MXINT). The reason is one line in the
    project's form, ``PARAM must be ...; got ...``, e.g. ``"rank must be a multiple of
    block (16); got 20"``; ``hw.lqer_linear.LQERLinear`` raises it as its ``ValueError``.
    """
    if not 1 <= block <= mxint.MAX_BLOCK or block & (block - 1):
        return f"block must be a power of two in 1..{mxint.MAX_BLOCK}; got {block}"
    for name, value in (("d_in", d_in), ("d_out", d_out), ("rank", rank)):
        if value % block:
            return f"{name} must be a multiple of block ({block}); got {value}"
        if value > MAX_DIM:
            return f"{name} must be at most {MAX_DIM}; got {value}"
    if rank > min(d_in, d_out):
        return f"rank must be at most min(d_in, d_out) = {min(d_in, d_out)}; got {rank}"
    if flavour != "ocp":
        return f"flavour must be 'ocp' (the datapath's quantizer); got {flavour!r}"
    if rounding != "even":
        return f"rounding must be 'even' (round half to even); got {rounding!r}"
    if rank and blocking != "reduction":
        return (f"blocking must be 'reduction' (A along d_in, B along the rank, the axes the "
                f"datapath reduces); got {blocking!r}")
    if rank and lowrank_width != a_width:
        return (f"lowrank_width must equal a_width ({a_width}) when rank > 0 (one low-rank "
                f"dot array takes x, then t); got {lowrank_width}")
    return None


def resq_reason(*, d_in: int, d_out: int, rank: int, block: int, flavour: str = "ocp",
                rounding: str = "even", resq_format: str = "mxint") -> str | None:
    """Why a ResQ layer cannot run on the ``resq-linear`` datapath; None when it can.

    ``rank`` is the high-precision r (0: the wide path alone). The reason is one line in
    the project's form, e.g. ``"rank must be a multiple of block (16); got 20"``.
    """
    if resq_format != "mxint":
        return f"resq_format must be 'mxint' (the datapath's number format); got {resq_format!r}"
    if not 1 <= block <= mxint.MAX_BLOCK or block & (block - 1):
        return f"block must be a power of two in 1..{mxint.MAX_BLOCK}; got {block}"
    for name, value in (("d_in", d_in), ("d_out", d_out), ("rank", rank)):
        if value % block:
            return f"{name} must be a multiple of block ({block}); got {value}"
        if value > MAX_DIM:
            return f"{name} must be at most {MAX_DIM}; got {value}"
    if not 0 <= rank < d_in:
        return f"rank must be in 0..{d_in - 1} (below d_in); got {rank}"
    if flavour != "ocp":
        return f"flavour must be 'ocp' (the datapath's quantizer); got {flavour!r}"
    if rounding != "even":
        return f"rounding must be 'even' (round half to even); got {rounding!r}"
    return None


def datapath_of(config) -> str:
    """The datapath that runs ``config``'s factors: ``resq-linear`` for ResQ, else ``lqer-linear``."""
    return RESQ_DATAPATH if config.method == "resq" else DATAPATH


def datapath_record(config, shapes: dict[str, tuple[int, int]], *,
                    ranks: dict[str, int] | None = None) -> dict:
    """``{"lqer-linear": bool, "reason": str | None}`` for layers ``{name: (d_out, d_in)}``.

    ``config`` is a :class:`sw.qconfig.QuantConfig`; the reason names the first
    layer that does not fit (in ``shapes`` order) when the fault is the layer's shape.
    ResQ (``config.method == "resq"``): ``{"resq-linear": bool, "reason": ...}`` by
    :func:`resq_reason`, with each layer's high-precision rank from ``ranks`` (required).
    """
    resq = config.method == "resq"
    if resq and ranks is None:
        raise ValueError("ranks must be given for ResQ factors (each layer's high-precision r)")
    key = datapath_of(config)
    rank = config.rank if config.low_rank else 0
    for name, (d_out, d_in) in shapes.items():
        if resq:
            reason = resq_reason(d_in=d_in, d_out=d_out, rank=ranks[name], block=config.block,
                                 flavour=config.flavour, rounding=config.rounding,
                                 resq_format=config.resq_format)
        else:
            reason = lqer_linear_reason(d_in=d_in, d_out=d_out, rank=rank, block=config.block,
                                        a_width=config.a_width, lowrank_width=config.lowrank_width,
                                        flavour=config.flavour, rounding=config.rounding,
                                        blocking=config.blocking)
        if reason is not None:
            # the faults of one layer's shape name it (a ResQ rank is per layer)
            if reason.startswith(("d_in", "d_out", "rank") if resq else ("d_in", "d_out")):
                reason = f"{reason} (layer {name})"
            return {key: False, "reason": reason}
    return {key: True, "reason": None}
