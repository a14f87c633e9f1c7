"""``lqer-hw sim llm-int8-linear --model PATH|default --layer NAME --inputs X.npy --outputs
Y.npz [--threshold 6.0] [--check]``.

Runs one linear layer of a checkpoint on the RTL of :mod:`hw.llm_int8_linear`: the
layer's weight is quantized once as ``sw.llm_int8.quantize_weight`` does (int8 codes,
row absmax; the gather's memory holds the codes dequantized to binary16, bitsandbytes'
inference mode), the activations (tokens x d_in floats) are rounded to binary16 on the
way in, and Y.npz receives

- ``y``: tokens x d_out float32, the RTL's outputs (binary16 values unless
  ``-p out_fp16=0``);
- ``outliers``: per token, the number of outlier columns of its tile (the gather
  requests it made); ``cycles``: simulated clock cycles.

``--check`` compares ``y`` bit for bit with :func:`sw.llm_int8.linear` (detection group =
the tile, rounded to binary16 for a binary16 output). Design parameters other than the
layer's shape, bias and threshold may be set with ``-p`` (:data:`FREE_PARAMS`).
"""

from __future__ import annotations


import numpy as np

from sim.layer_inputs import LayerError, read_activations

__all__ = ["FREE_PARAMS", "layer_fields", "run_layer_command"]

DESIGN = "llm-int8-linear"
# parameters a user may still set with -p; the rest come from the layer and --threshold
FREE_PARAMS = ("x_lanes", "lanes", "fp_lanes", "outputs", "tile", "out_fp16", "outstanding")


def layer_fields(weight: np.ndarray, bias: np.ndarray | None, x: np.ndarray,
                 layer: str) -> dict[str, np.ndarray]:
    """The adapter's integer fields for a float layer ``weight`` ``(d_out, d_in)``, ``bias``
    ``(d_out,)`` or ``None`` and activations ``x`` ``(tokens, d_in)``. ``ValueError``
    (naming ``layer``) for a value that is not finite in binary16 / binary32."""
    from sim.adapters.llm_int8_linear import weight_fields
    from sw import ieee, llm_int8
    fields = weight_fields(weight)
    fields["x"] = ieee.bits_of(llm_int8.to_binary16(x, what="inputs", layer=layer),
                               ieee.BINARY16)
    if bias is not None:
        with np.errstate(over="ignore"):
            b = np.asarray(bias).astype(np.float32)
        if not np.isfinite(b).all():
            raise LayerError(f"bias of layer {layer} must be finite in binary32")
        fields["bias"] = ieee.bits_of(b, ieee.BINARY32)
    return fields


def _load_layer(spec: str, name: str):
    """(weight float32 (d_out, d_in), bias or None) of layer ``name`` of model ``spec``."""
    import torch

    from sw.default_model import model_path
    from sw.models import ModelError, load_model
    path = model_path(spec)
    try:
        model = load_model(path)
    except ModelError as exc:
        raise LayerError(str(exc)) from None
    linears = {n: mod for n, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}
    if name not in linears:
        names = list(linears)
        raise LayerError(f"layer must be a linear layer of {spec} (e.g. {names[0]!r}); "
                         f"got {name!r}")
    mod = linears[name]
    weight = mod.weight.detach().to(torch.float32).numpy()
    bias = None if mod.bias is None else mod.bias.detach().to(torch.float32).numpy()
    return weight, bias


def _prepare(args):
    from hw.designs import get_design, parse_params
    from lqer_hw.files import check_output_file
    from sim.cli import check_build_dir, check_simulator
    from sw.llm_int8 import MAX_D_IN, THRESHOLD
    if args.model is None:
        raise LayerError("threshold must be given with --model (the llm-int8-linear form); "
                         f"got --threshold {args.threshold:g} alone")
    if args.design != DESIGN:
        raise LayerError(f"model needs design {DESIGN}; got {args.design!r}")
    if args.factors is not None:
        raise LayerError("factors must not be given with --model (it is the lqer-linear and "
                         "resq-linear form)")
    if args.layer is None:
        raise LayerError("layer must be given with --model (the module name of a linear layer)")
    design = get_design(DESIGN)
    given = {text.partition("=")[0].strip() for text in args.param}
    fixed = sorted(given - set(FREE_PARAMS))
    if fixed:
        raise LayerError(f"param may set only {', '.join(FREE_PARAMS)} with --model (the rest "
                         f"come from the layer and --threshold); got {fixed[0]!r}")
    params = parse_params(design, args.param)
    out = check_output_file(args.outputs, name="outputs", suffix=".npz")
    simulator, build_dir = check_simulator(args.simulator), check_build_dir(args.build_dir)
    weight, bias = _load_layer(args.model, args.layer)
    d_out, d_in = weight.shape
    if d_in > MAX_D_IN:
        raise LayerError(f"layer must have d_in <= {MAX_D_IN} (int32 sums); got {d_in}")
    threshold = THRESHOLD if args.threshold is None else args.threshold
    from hw.baselines import threshold_bits
    params.update(d_in=d_in, d_out=d_out, bias=int(bias is not None),
                  threshold_bits=threshold_bits(threshold))
    for name, value in params.items():
        design.param(name).check(value)
    x = read_activations(args.inputs, d_in)
    if len(x) % params["tile"]:
        raise LayerError(f"inputs must hold a multiple of tile ({params['tile']}) tokens; "
                         f"got {len(x)}")
    return weight, bias, x, threshold, params, out, simulator, build_dir


def run_layer_command(args, prog: str, display) -> int:
    """The ``--model`` form of ``lqer-hw sim`` (module doc) on parsed ``args``; status and
    progress through ``display`` (:class:`sim.cli.StatusDisplay`). Returns the exit status:
    2 after a one-line usage error, 1 when the simulator failed or ``--check`` found a
    mismatch, else 0."""
    from hw.designs import inspect
    from sim.adapters import get_adapter
    from sim.cli import run_simulation, write_npz
    from sw import ieee
    weight, bias, x, threshold, params, out, simulator, build_dir = _prepare(args)
    component = inspect(DESIGN, **params)
    adapter = get_adapter(DESIGN)
    inputs = adapter.validate(component, layer_fields(weight, bias, x, args.layer))
    result = run_simulation(args, prog, display, adapter, component, inputs,
                            simulator=simulator, build_dir=build_dir, check=args.check)
    if result is None:
        return 1
    fmt = ieee.BINARY16 if component.out_fp16 else ieee.BINARY32
    y = ieee.values_of(result.outputs["y"], fmt).astype(np.float32).reshape(len(x), -1)
    per_tile = adapter.outlier_columns(component, inputs)
    outliers = np.repeat([len(c) for c in per_tile], component.tile).astype(np.int64)
    write_npz(out, {"y": y, "outliers": outliers, "cycles": np.int64(result.cycles)})
    tokens = f"{len(x)} token" + ("" if len(x) == 1 else "s")
    cpt = component.cycles_per_token
    line = (f"{DESIGN} {args.layer} ({component.d_in}x{component.d_out}, threshold "
            f"{threshold:g}) on {simulator}: {tokens}, {int(outliers.sum())} outlier columns "
            f"gathered, in {result.cycles} cycles ({cpt:g} per token at full rate without "
            f"outliers); wrote {out}")
    if args.check:
        line += f"; {result.mismatches} mismatches against sw.llm_int8"
    print(line)
    return 1 if args.check and result.mismatches else 0

