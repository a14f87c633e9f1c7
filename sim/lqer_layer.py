"""``lqer-hw sim lqer-linear --factors DIR --layer NAME --inputs X.npy --outputs Y.npz``.

Runs one layer saved by ``lqer-hw quantize`` on the RTL of :mod:`hw.lqer_linear`:
the activations (tokens x d_in floats) are quantized to MXINT on the way in
(``sw.mxint.quantize``, as ``sw.bittrue`` does), the layer's W_q, A and B stream in
beside them, and Y.npz receives

- ``y``: tokens x d_out float64, ``fl64(main + u) + bias`` from the RTL's exact terms
  (the bias is outside the datapath, added in float64 as in ``sw.bittrue``);
- ``datapath``: the same without the bias; ``cycles``: simulated clock cycles.

``--check`` compares ``y`` bit for bit with ``sw.lqer_reference.reference_lqer_linear``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["layer_inputs", "outputs_to_y", "run_layer_command"]

DESIGN = "lqer-linear"
# the methods whose factors this datapath runs (resq and llm-int8 have their own designs)
LQER_METHODS = ("mxint", "lqer", "l2qer")
# parameters a user may still set with -p; the rest come from the factors
FREE_PARAMS = ("lanes_main", "lanes_lowrank", "guard_bits", "dot_stages")


class LayerError(ValueError):
    """A one-line problem with the command's inputs."""


def _transpose(q):
    from sw.lqer_reference import transpose
    return transpose(q)


def layer_params(layer, config) -> dict:
    """Design parameters of the datapath for one layer of the factors (``layer``: a
    :class:`sw.factors.LayerFactors`, ``config``: its :class:`sw.qconfig.QuantConfig`)."""
    return {"d_in": layer.d_in, "d_out": layer.d_out, "rank": layer.rank, "block": config.block,
            "a_width": config.a_width, "w_width": config.w_width,
            "lowrank_width": config.lowrank_width if layer.rank else config.a_width,
            "exponent_bits": config.exponent_bits}


def layer_inputs(layer, config, x: np.ndarray) -> dict:
    """The adapter's integer fields for activations ``x`` ``(T, d_in)`` floats: x quantized
    as ``sw.mxint.quantize`` does (``ValueError`` when not representable), W_q, and A^T,
    B^T when the layer has a rank."""
    from sw.mxint import quantize
    qx = quantize(x, width=config.a_width, block=config.block, axis=-1,
                  exponent_bits=config.exponent_bits, rounding=config.rounding, name="inputs")
    fields = {"x": qx, "w": layer.weight}
    if layer.rank:
        fields.update(a=_transpose(layer.a), b=_transpose(layer.b))
    out = {}
    for key, q in fields.items():
        out[f"{key}_mantissas"] = np.asarray(q.mantissas, np.int64)
        out[f"{key}_exponents"] = np.asarray(q.exponents, np.int64)
    return out


def outputs_to_y(component, outputs: dict, tokens: int) -> np.ndarray:
    """``fl64(main + u)`` ``(tokens, d_out)`` float64 from the RTL's output fields (the
    adapter's ``main_*`` and ``u_*``), as ``sw.bittrue`` merges them."""
    d_out = component.d_out
    y = np.ldexp(outputs["main_values"].astype(np.float64),
                 outputs["main_exponents"].astype(np.int32)).reshape(tokens, d_out)
    if component.rank:
        lsb = outputs["u_exponents"][:, None] - component.lowrank_format.frac_bits
        u = np.ldexp(outputs["u_mantissas"].astype(np.float64), lsb.astype(np.int32))
        y = y + u.reshape(tokens, d_out)
    return y


def _load_x(path: str, d_in: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise LayerError(f"inputs must name an existing .npy file; got {path!r}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise LayerError(f"inputs must be a NumPy .npy array; could not read {path!r}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise LayerError(f"inputs must be a numeric .npy array (tokens x {d_in}); got {path!r}")
    if x.ndim != 2 or x.shape[1] != d_in or x.shape[0] < 1:
        raise LayerError(f"inputs must have shape (tokens, {d_in}) with tokens >= 1; "
                         f"got {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        where = tuple(int(v) for v in bad)
        raise LayerError(f"inputs must be finite; got {x[tuple(bad)]} at {where}")
    return x


def _prepare(args):
    from hw.designs import get_design, parse_params
    from lqer_hw.files import check_output_file
    from sim.cli import check_build_dir, check_simulator
    from sw.datapath import lqer_linear_reason
    from sw.factor_files import load_factors  # NumPy and safetensors only: no torch here
    if args.design != DESIGN:
        raise LayerError(f"factors needs design {DESIGN}; got {args.design!r}")
    if args.factors is None or args.layer is None:
        raise LayerError("factors and layer must be given together; got only "
                         + ("factors" if args.layer is None else "layer"))
    factors, config, _ = load_factors(args.factors)
    if config.method not in LQER_METHODS:
        raise LayerError(f"factors must come from method {', '.join(LQER_METHODS)} for "
                         f"{DESIGN}; got {config.method!r}")
    if args.layer not in factors:
        names = list(factors)
        raise LayerError(f"layer must be a layer of {args.factors} (e.g. {names[0]!r}); "
                         f"got {args.layer!r}")
    layer = factors[args.layer]
    reason = lqer_linear_reason(d_in=layer.d_in, d_out=layer.d_out, rank=layer.rank,
                                block=config.block, a_width=config.a_width,
                                lowrank_width=config.lowrank_width, flavour=config.flavour,
                                rounding=config.rounding, blocking=config.blocking)
    if reason is not None:
        raise LayerError(f"factors must run on the {DESIGN} datapath: {reason}")
    design = get_design(DESIGN)
    given = {text.partition("=")[0].strip() for text in args.param}
    fixed = sorted(given - set(FREE_PARAMS))
    if fixed:
        raise LayerError(f"param may set only {', '.join(FREE_PARAMS)} with --factors (the rest "
                         f"come from the factors); got {fixed[0]!r}")
    params = parse_params(design, args.param)
    params.update(layer_params(layer, config))
    for name, value in params.items():
        design.param(name).check(value)
    x = _load_x(args.inputs, layer.d_in)
    out = check_output_file(args.outputs, name="outputs", suffix=".npz")
    return layer, config, params, x, out, check_simulator(args.simulator), \
        check_build_dir(args.build_dir)


def run_layer_command(args, prog: str, display) -> int:
    """The ``--factors`` form of ``lqer-hw sim`` (module doc) on parsed ``args``; status
    and progress through ``display`` (:class:`sim.cli.StatusDisplay`). Returns the exit
    status: 2 after a one-line usage error, 1 when the simulator failed or ``--check``
    found a mismatch, else 0."""
    from hw.designs import inspect
    from sim.adapters import get_adapter
    from sim.cli import write_npz
    from sim.runner import SimulationError, simulate
    layer, config, params, x, out, simulator, build_dir = _prepare(args)
    component = inspect(DESIGN, **params)
    adapter = get_adapter(DESIGN)
    inputs = adapter.validate(component, layer_inputs(layer, config, x))
    try:
        result = simulate(adapter, component, inputs, simulator=simulator, check=False,
                          seed=args.seed, valid_probability=1 - args.stall,
                          ready_probability=1 - args.stall, build_dir=build_dir,
                          log=display.log, progress=display.progress)
    except SimulationError as exc:
        display.close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    display.close()
    datapath = outputs_to_y(component, result.outputs, len(x))
    y = datapath if layer.bias is None else datapath + layer.bias.astype(np.float64)
    mismatches = 0
    if args.check:
        from sw.lqer_reference import reference_lqer_linear
        ref = reference_lqer_linear(x, layer.weight, layer.a, layer.b, layer.bias,
                                    a_width=config.a_width, lowrank_width=config.lowrank_width,
                                    exponent_bits=config.exponent_bits,
                                    guard_bits=params["guard_bits"])
        mismatches = int(np.count_nonzero(ref["y"] != y))
    write_npz(out, {"y": y, "datapath": datapath, "cycles": np.int64(result.cycles)})
    tokens = f"{len(x)} token" + ("" if len(x) == 1 else "s")
    line = (f"{DESIGN} {args.layer} ({layer.d_in}x{layer.d_out}, rank {layer.rank}) on "
            f"{simulator}: {tokens} in {result.cycles} cycles "
            f"({component.cycles_per_token} per token at full rate); wrote {out}")
    if args.check:
        line += f"; {mismatches} mismatches against sw.lqer_reference"
    print(line)
    return 1 if mismatches else 0
