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
"""

from __future__ import annotations

__all__ = ["DATAPATH", "MAX_BLOCK", "MAX_DIM", "lqer_linear_reason", "datapath_record"]

DATAPATH = "lqer-linear"
MAX_BLOCK = 256
MAX_DIM = 8192


def lqer_linear_reason(*, d_in: int, d_out: int, rank: int, block: int, a_width: int,
                       lowrank_width: int, flavour: str = "ocp", rounding: str = "even",
                       blocking: str = "reduction") -> str | None:
    """Why a layer with these shapes and formats cannot run on ``lqer-linear``; None when it can.

    ``rank`` 0 is the main path alone (plain MXINT). The reason is one phrase,
    e.g. ``"rank 20 is not a multiple of block 16"``.
    """
    if block < 1 or block & (block - 1) or block > MAX_BLOCK:
        return f"block {block} is not a power of two in 1..{MAX_BLOCK}"
    for name, value in (("d_in", d_in), ("d_out", d_out), ("rank", rank)):
        if value % block:
            return f"{name} {value} is not a multiple of block {block}"
        if value > MAX_DIM:
            return f"{name} {value} is above {MAX_DIM}"
    if flavour != "ocp":
        return f"flavour {flavour!r} is not 'ocp'"
    if rounding != "even":
        return f"rounding {rounding!r} is not 'even' (round half to even)"
    if rank and blocking != "reduction":
        return (f"blocking {blocking!r} blocks A along the rank and B along d_out "
                "(the datapath needs 'reduction')")
    if rank and lowrank_width != a_width:
        return (f"lowrank_width {lowrank_width} differs from a_width {a_width} "
                "(one low-rank dot array takes x, then t)")
    return None


def datapath_record(config, shapes: dict[str, tuple[int, int]]) -> dict:
    """``{"lqer-linear": bool, "reason": str | None}`` for layers ``{name: (d_out, d_in)}``.

    ``config`` is a :class:`sw.qconfig.QuantConfig`; the reason names the first
    layer that does not fit (in ``shapes`` order).
    """
    rank = config.rank if config.low_rank else 0
    for name, (d_out, d_in) in shapes.items():
        reason = lqer_linear_reason(d_in=d_in, d_out=d_out, rank=rank, block=config.block,
                                    a_width=config.a_width, lowrank_width=config.lowrank_width,
                                    flavour=config.flavour, rounding=config.rounding,
                                    blocking=config.blocking)
        if reason is not None:
            if not reason.startswith(("d_in", "d_out")):
                return {DATAPATH: False, "reason": reason}
            return {DATAPATH: False, "reason": f"{reason} (layer {name})"}
    return {DATAPATH: True, "reason": None}
