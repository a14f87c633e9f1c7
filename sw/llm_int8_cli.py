"""``lqer-hw quantize`` / ``eval`` with ``--method llm-int8`` or ``--method w8a8``.

    lqer-hw quantize --model PATH|default --method llm-int8|w8a8 [--threshold 6.0]
                     [--outlier-group T] [--outlier-weights int8|fp16] --out DIR [--overwrite]
    lqer-hw eval --model PATH|default --method llm-int8 [--threshold 6.0] [--outlier-group T]
                 [--outlier-weights int8|fp16] --data FILE|default [--bit-true] [--json]
    lqer-hw eval --model PATH|default --method w8a8 --data FILE|default
    lqer-hw eval --model PATH|default --quantized DIR --data FILE|default

:mod:`sw.cli` builds the parsers (with :func:`add_options`) and hands these
methods here. ``quantize`` stores the int8 weights and scales (:mod:`sw.llm_int8_store`)
and records the threshold, group and outlier weights, which ``eval --quantized``
then uses; the shared steps (device, model, data, scoring) are those of
:mod:`sw.cli` and :mod:`sw.cli_eval`. The MXINT / LQER options and the
calibration do not apply to these methods and are refused when given, as the
LLM.int8() options are with the other methods.
"""

from __future__ import annotations

import json
import os
import sys
import time

from lqer_hw.args import UsageError, choice, given_fields, integer, number, status

__all__ = ["METHODS", "OPTION_DESTS", "add_options", "check_applicable", "int8_options", "quantize",
           "evaluate", "handles"]

METHODS = ("llm-int8", "w8a8")
OPTION_DESTS = ("threshold", "outlier_group", "outlier_weights")


def add_options(p) -> None:
    """The LLM.int8() options of ``quantize`` / ``eval`` (defaults None: given ones are told apart)."""
    g = p.add_argument_group("LLM.int8() (--method llm-int8; w8a8 has no outlier path)")
    g.add_argument("--threshold", type=number(above=0), metavar="T",
                   help="outlier magnitude: an activation column with |x| >= T in its detection group "
                        "takes the float16 path (default 6.0)")
    g.add_argument("--outlier-group", type=integer(1), metavar="N",
                   help="tokens per outlier-detection group (default: the whole batch of one forward "
                        "pass, as bitsandbytes)")
    g.add_argument("--outlier-weights", type=choice(("int8", "fp16")), metavar="{int8,fp16}",
                   help="weights of the outlier columns: the int8 weights dequantized to float16 "
                        "(bitsandbytes inference) or the original float16 weights (default int8)")


def _flag(dest: str) -> str:
    return dest.replace("_", "-")


def check_applicable(args, method: str) -> None:
    """Refuse an option that does nothing with ``method`` (one line naming it)."""
    given = {d: getattr(args, d) for d in OPTION_DESTS if getattr(args, d, None) is not None}
    if method not in METHODS:
        if given:
            dest, value = next(iter(given.items()))
            if method == "fp":
                raise UsageError(f"{_flag(dest)} must not be given without --method (the float model is "
                                 f"not quantized); got {value!r}")
            raise UsageError(f"{_flag(dest)} must not be given with --method {method} (it applies to "
                             f"llm-int8 only); got {value!r}")
        return
    if method == "w8a8" and given:
        dest, value = next(iter(given.items()))
        raise UsageError(f"{_flag(dest)} must not be given with --method w8a8 (it has no outlier path); "
                         f"got {value!r}")
    from sw.options import options_of
    from sw.qconfig import CALIBRATED_METHODS, CalibOptions, QuantConfig

    for cls, prefix in ((QuantConfig, ""), (CalibOptions, "calib_")):
        for name, value in given_fields(args, cls, prefix=prefix).items():
            opt, _ = options_of(cls)[name]
            raise UsageError(f"{opt.flag.lstrip('-')} must not be given with --method {method} (weights "
                             f"and activations are int8 vector-wise, not MXINT); got {value!r}")
    if getattr(args, "calib", None) is not None:
        raise UsageError(f"calib must not be given with --method {method} (only "
                         f"{', '.join(CALIBRATED_METHODS)} calibrate); "
                         f"got {args.calib!r}")
    if getattr(args, "guard_bits", None) is not None:
        raise UsageError(f"guard-bits must not be given with --method {method} (it has no MXINT "
                         f"accumulator); got {args.guard_bits!r}")


def int8_options(args, method: str):
    """The :class:`sw.llm_int8_pipeline.Int8Options` of the given options (defaults for the rest)."""
    from sw.llm_int8_pipeline import Int8Options

    values = {"method": method}
    if args.threshold is not None:
        values["threshold"] = args.threshold
    if args.outlier_group is not None:
        values["group"] = args.outlier_group
    if args.outlier_weights is not None:
        values["outlier_weights"] = args.outlier_weights
    return Int8Options(**values)


def handles(args) -> bool:
    """Whether this module runs the command: an int8 ``--method``, or ``--quantized`` int8 weights."""
    if getattr(args, "method", None) in METHODS:
        return True
    if getattr(args, "quantized", None) is not None and args.method is None:
        from sw.llm_int8_store import int8_method

        return int8_method(args.quantized) is not None
    return False


def _label(options, arithmetic: str, emulated: int) -> str:
    from sw.cli import plural

    base = "w8a8" if options.method == "w8a8" else (
        f"llm-int8 threshold {options.threshold:g}, group "
        f"{'batch' if options.group is None else options.group}, outlier weights {options.outlier_weights}")
    return f"{base}, {arithmetic}; {plural(emulated, 'layer')} emulated"


# ---------------------------------------------------------------- quantize

def quantize(args, prog: str) -> int:
    """``lqer-hw quantize --method llm-int8|w8a8``: int8 weights and scales -> ``--out``."""
    from lqer_hw.files import OutputFolder
    from sw.cli import device_of, load, plural
    from sw.llm_int8_pipeline import quantize_layers
    from sw.llm_int8_store import write_int8
    from sw.models import model_hash, quantizable_layers

    method = args.method
    check_applicable(args, method)
    options = int8_options(args, method)
    output = OutputFolder(args.out, overwrite=args.overwrite, name="out")  # before any work
    device = device_of(args.device)
    started = time.time()
    path, model, _ = load(args, device)
    layers = quantizable_layers(model, pattern=args.layers)
    if not sys.stderr.isatty():
        status(prog, f"quantizing {plural(len(layers), 'layer')} to int8 ({method})")
    weights = quantize_layers(layers, options, progress=not args.json)
    source = {"path": os.path.abspath(path) if args.model != "default" else "default",
              "model_type": getattr(model.config, "model_type", None), "hash": model_hash(model)}
    with output as tmp:
        write_int8(tmp, weights, config=options.to_json(), source=source)
    seconds = time.time() - started
    for name, (w, _) in weights.items():
        print(f"{name}: {w.d_out}x{w.d_in} int8, absmax {float(w.absmax.min()):.4g}..{float(w.absmax.max()):.4g}")
    print(f"wrote {plural(len(weights), 'layer')} to {args.out} in {seconds:.1f} s")
    if args.json:
        print(json.dumps({"out": args.out, "layers": len(weights), **options.to_json(), "model": args.model,
                          "model_hash": source["hash"], "seconds": round(seconds, 3)}))
    return 0


# ---------------------------------------------------------------- eval

def evaluate(args, prog: str) -> int:
    """``lqer-hw eval`` of an llm-int8 / w8a8 model (method given, or ``--quantized`` int8 weights)."""
    from sw.cli import device_of, load
    from sw.cli_eval import EvalPlan, data_ids, score
    from sw.default_model import data_path
    from sw.factor_files import FactorsError
    from sw.llm_int8_pipeline import Int8Options, emulate, outlier_counts
    from sw.llm_int8_store import load_int8
    from sw.models import model_hash
    from sw.text import read_text

    arithmetic = "bit-true" if args.bit_true else "fast"
    weights = manifest = None
    if args.quantized is not None:
        if args.method is not None:
            raise UsageError("quantized and method must not both be given (the weights fix the method); "
                             f"got --method {args.method!r}")
        check_applicable(args, "llm-int8")  # MXINT / LQER options and calibration are refused
        for dest in (*OPTION_DESTS, "layers"):
            if getattr(args, dest, None) is not None:
                raise UsageError(f"{_flag(dest)} must not be given with --quantized (the weights fix it); "
                                 f"got {getattr(args, dest)!r}")
        weights, config, manifest = load_int8(args.quantized)
        try:
            options = Int8Options.from_json(config)
        except (TypeError, ValueError) as exc:
            raise FactorsError(f"quantized manifest config is invalid: {exc}") from None
    else:
        check_applicable(args, args.method)
        options = int8_options(args, args.method)
    data_file = data_path(args.data)
    p = EvalPlan(method=options.method, arithmetic=arithmetic, config=None, calib=None, calib_text=None,
                 guard_bits=None, seq_len=args.seq_len, batch_size=args.batch_size,
                 max_windows=args.max_windows, data_file=data_file, text=read_text(data_file, name="data"))
    device = device_of(args.device)
    started = time.time()
    _, model, tokenizer = load(args, device)
    ids = data_ids(p, model, tokenizer)
    if manifest is not None:
        digest = model_hash(model)
        if manifest["source_model"].get("hash") != digest:
            raise UsageError(f"quantized must hold weights of this model; {args.quantized!r} was computed "
                             f"from another (hash {manifest['source_model'].get('hash', '?')[:12]}, this "
                             f"model {digest[:12]})")
    baseline = None
    if args.verbose:
        baseline = score(p, model, ids, device, prog, what="float baseline", progress=not args.json)
    originals = emulate(model, options, arithmetic=arithmetic, layer_pattern=args.layers, weights=weights)
    p.emulated = len(originals)
    result = score(p, model, ids, device, prog, what=options.method, progress=not args.json)
    counts = outlier_counts(model)
    seconds = time.time() - started
    from sw.cli import plural

    if baseline is not None:
        print(f"float baseline: perplexity {baseline.perplexity:.4f} over "
              f"{plural(baseline.tokens, 'token')} (fp)")
    found = ("" if options.method == "w8a8" else
             f"; outlier columns per group: mean {counts['mean_columns']:.2f}, max {counts['max_columns']}")
    print(f"perplexity {result.perplexity:.4f} over {plural(result.tokens, 'token')} "
          f"({_label(options, arithmetic, p.emulated)}{found})")
    if args.json:
        record = {"perplexity": result.perplexity, "nll": result.nll, "tokens": result.tokens,
                  "windows": result.windows, **options.to_json(), "arithmetic": arithmetic,
                  "model": args.model, "data": args.data, "quantized": args.quantized,
                  "seq_len": p.seq_len, "batch_size": p.batch_size, "max_windows": p.max_windows,
                  "layers": args.layers, "emulated_layers": p.emulated, "device": str(device),
                  "fp_perplexity": None if baseline is None else baseline.perplexity,
                  "outliers": None if options.method == "w8a8" else
                  {k: counts[k] for k in ("mean_columns", "max_columns", "layers_affected")},
                  "seconds": round(seconds, 3)}
        print(json.dumps(record))
    return 0
