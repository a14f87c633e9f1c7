"""``lqer-hw sim lqer-linear|resq-linear --factors DIR --layer NAME --inputs X.npy --outputs Y.npz``.

Runs one layer saved by ``lqer-hw quantize`` on the RTL of :mod:`hw.lqer_linear`.

``lqer-linear`` (methods mxint, lqer, l2qer): the activations (tokens x d_in floats) are
quantized to MXINT on the way in (``sw.mxint.quantize``, as ``sw.bittrue`` does), the
layer's W_q, A and B stream in beside them; ``y = fl64(main + u) + bias``.

``resq-linear`` (method resq, MXINT formats): the activations are projected outside the
datapath, ``z = x U`` in float64 (:func:`sw.resq_reference.project`, as the emulation's
projection), z_l quantized to MXINT(a_width) and z_h to the high weights' format on the
way in, W_l and W_h stream in beside them; ``y = fl64(low + high) + bias``.

Y.npz receives

- ``y``: tokens x d_out float64, from the RTL's two exact terms (the bias is outside the
  datapath, added in float64 as in ``sw.bittrue`` / ``sw.resq_emulation``);
- ``datapath``: the same without the bias; ``cycles``: simulated clock cycles.

``--check`` compares ``y`` bit for bit with ``sw.lqer_reference.reference_lqer_linear``
(``sw.resq_reference.reference_resq_linear``).
"""

from __future__ import annotations


import numpy as np

from sim.layer_inputs import LayerError, read_activations

__all__ = ["layer_inputs", "outputs_to_y", "run_layer_command"]

DESIGN, RESQ_DESIGN = "lqer-linear", "resq-linear"
# the methods whose factors each design runs (llm-int8 has its own designs)
LQER_METHODS = ("mxint", "lqer", "l2qer")
METHODS = {DESIGN: LQER_METHODS, RESQ_DESIGN: ("resq",)}
REFERENCES = {DESIGN: "sw.lqer_reference", RESQ_DESIGN: "sw.resq_reference"}
# parameters a user may still set with -p; the rest come from the factors
FREE_PARAMS = {DESIGN: ("lanes_main", "lanes_lowrank", "guard_bits", "dot_stages"),
               RESQ_DESIGN: ("lanes_main", "lanes_high", "guard_bits", "dot_stages")}


def _transpose(q):
    from sw.lqer_reference import transpose
    return transpose(q)


def layer_params(layer, config) -> dict:
    """Design parameters of the datapath for one layer of the factors (``layer``: a
    :class:`sw.factors.LayerFactors`, ``config``: its :class:`sw.qconfig.QuantConfig`):
    ``lqer-linear``'s, or ``resq-linear``'s for ResQ factors."""
    params = {"d_in": layer.d_in, "d_out": layer.d_out, "rank": layer.rank,
              "block": config.block, "a_width": config.a_width, "w_width": config.w_width,
              "exponent_bits": config.exponent_bits}
    if config.method == "resq":
        params["high_width"] = config.high_width
    else:
        params["lowrank_width"] = config.lowrank_width if layer.rank else config.a_width
    return params


def _resq_formats(layer, config):
    """(z_l's format, z_h's format or None): MXINT(a_width) and the high weights' format,
    as :class:`sw.resq_emulation.ResQLinear` quantizes them."""
    a_format = config.act_format
    return a_format, (None if layer.weight_high is None else layer.weight_high.format)


def layer_inputs(layer, config, x: np.ndarray) -> dict:
    """The adapter's integer fields for activations ``x`` ``(T, d_in)`` floats: x quantized
    as ``sw.mxint.quantize`` does (``ValueError`` when not representable), W_q, and A^T,
    B^T when the layer has a rank. ResQ factors: ``z = x U`` (float64), z_l and z_h
    quantized, W_l and W_h."""
    from sw.mxint import quantize
    if config.method == "resq":
        from sw.resq_reference import project
        z_low, z_high = project(x, layer.basis, layer.rank)
        a_format, high_format = _resq_formats(layer, config)
        fields = {"x": quantize(z_low, a_format, axis=-1, name="inputs")}
        if layer.rank:
            fields["h"] = quantize(z_high, high_format, axis=-1, name="inputs")
        fields["w"] = layer.weight
        if layer.rank:
            fields["wh"] = layer.weight_high
        return _integer_fields(fields)
    qx = quantize(x, width=config.a_width, block=config.block, axis=-1,
                  exponent_bits=config.exponent_bits, rounding=config.rounding, name="inputs")
    fields = {"x": qx, "w": layer.weight}
    if layer.rank:
        fields.update(a=_transpose(layer.a), b=_transpose(layer.b))
    return _integer_fields(fields)


def _integer_fields(fields: dict) -> dict:
    out = {}
    for key, q in fields.items():
        out[f"{key}_mantissas"] = np.asarray(q.mantissas, np.int64)
        out[f"{key}_exponents"] = np.asarray(q.exponents, np.int64)
    return out


def outputs_to_y(component, outputs: dict, tokens: int) -> np.ndarray:
    """``fl64(main + u)`` ``(tokens, d_out)`` float64 from the RTL's output fields (the
    adapter's ``main_*`` and ``u_*``), as ``sw.bittrue`` merges them; ResQ mode:
    ``fl64(low + high)`` from ``main_*`` and ``high_*``, as ``sw.resq_reference.merge``."""
    d_out = component.d_out
    y = np.ldexp(outputs["main_values"].astype(np.float64),
                 outputs["main_exponents"].astype(np.int32)).reshape(tokens, d_out)
    if component.rank and component.mode == "resq":
        high = np.ldexp(outputs["high_values"].astype(np.float64),
                        outputs["high_exponents"].astype(np.int32))
        y = y + high.reshape(tokens, d_out)
    elif component.rank:
        lsb = outputs["u_exponents"][:, None] - component.lowrank_format.frac_bits
        u = np.ldexp(outputs["u_mantissas"].astype(np.float64), lsb.astype(np.int32))
        y = y + u.reshape(tokens, d_out)
    return y


def _load_x(path: str, d_in: int) -> np.ndarray:
    x = read_activations(path, d_in)
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
    from sw.datapath import lqer_linear_reason, resq_reason
    from sw.factor_files import load_factors  # NumPy and safetensors only: no torch here
    if args.design not in METHODS:
        raise LayerError(f"factors needs design {' or '.join(METHODS)}; got {args.design!r}")
    name = args.design
    if args.factors is None or args.layer is None:
        raise LayerError("factors and layer must be given together; got only "
                         + ("factors" if args.layer is None else "layer"))
    factors, config, _ = load_factors(args.factors)
    if config.method not in METHODS[name]:
        other = next(d for d, methods in METHODS.items() if d != name)
        hint = f" (run them on {other})" if config.method in METHODS[other] else ""
        raise LayerError(f"factors must come from method {', '.join(METHODS[name])} for "
                         f"{name}; got {config.method!r}{hint}")
    if args.layer not in factors:
        names = list(factors)
        raise LayerError(f"layer must be a layer of {args.factors} (e.g. {names[0]!r}); "
                         f"got {args.layer!r}")
    layer = factors[args.layer]
    if name == RESQ_DESIGN:
        reason = resq_reason(d_in=layer.d_in, d_out=layer.d_out, rank=layer.rank,
                             block=config.block, flavour=config.flavour,
                             rounding=config.rounding, resq_format=config.resq_format)
    else:
        reason = lqer_linear_reason(d_in=layer.d_in, d_out=layer.d_out, rank=layer.rank,
                                    block=config.block, a_width=config.a_width,
                                    lowrank_width=config.lowrank_width, flavour=config.flavour,
                                    rounding=config.rounding, blocking=config.blocking)
    if reason is not None:
        raise LayerError(f"factors must run on the {name} datapath: {reason}")
    design = get_design(name)
    given = {text.partition("=")[0].strip() for text in args.param}
    free = FREE_PARAMS[name]
    fixed = sorted(given - set(free))
    if fixed:
        raise LayerError(f"param may set only {', '.join(free)} with --factors (the rest "
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
    from sim.cli import run_simulation, write_npz
    layer, config, params, x, out, simulator, build_dir = _prepare(args)
    name = args.design
    component = inspect(name, **params)
    adapter = get_adapter(name)
    inputs = adapter.validate(component, layer_inputs(layer, config, x))
    result = run_simulation(args, prog, display, adapter, component, inputs,
                            simulator=simulator, build_dir=build_dir, check=False)
    if result is None:
        return 1
    datapath = outputs_to_y(component, result.outputs, len(x))
    y = datapath if layer.bias is None else datapath + layer.bias.astype(np.float64)
    mismatches = 0
    if args.check:
        ref = _reference(name, layer, config, x, params["guard_bits"])
        mismatches = int(np.count_nonzero(ref != y))
    write_npz(out, {"y": y, "datapath": datapath, "cycles": np.int64(result.cycles)})
    tokens = f"{len(x)} token" + ("" if len(x) == 1 else "s")
    line = (f"{name} {args.layer} ({layer.d_in}x{layer.d_out}, rank {layer.rank}) on "
            f"{simulator}: {tokens} in {result.cycles} cycles "
            f"({component.cycles_per_token} per token at full rate); wrote {out}")
    if args.check:
        line += f"; {mismatches} mismatches against {REFERENCES[name]}"
    print(line)
    return 1 if mismatches else 0


def _reference(name: str, layer, config, x: np.ndarray, guard_bits: int) -> np.ndarray:
    """The layer's float64 output by the design's NumPy reference (``--check``)."""
    if name == RESQ_DESIGN:
        from sw.resq_reference import reference_resq_linear
        a_format, high_format = _resq_formats(layer, config)
        return reference_resq_linear(x, layer.basis, layer.weight, layer.weight_high,
                                     layer.bias, a_format=a_format, high_format=high_format,
                                     guard_bits=guard_bits)["y"]
    from sw.lqer_reference import reference_lqer_linear
    return reference_lqer_linear(x, layer.weight, layer.a, layer.b, layer.bias,
                                 a_width=config.a_width, lowrank_width=config.lowrank_width,
                                 exponent_bits=config.exponent_bits, guard_bits=guard_bits)["y"]
