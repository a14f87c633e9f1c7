"""``lqer-hw quantize`` and ``lqer-hw eval``: parsers, shared steps, and ``quantize``.

    lqer-hw quantize --model PATH|default --method l2qer|lqer|mxint|resq [--rank 32 ...]
                     --out DIR [--overwrite]
    lqer-hw quantize --model PATH|default --method llm-int8|w8a8 [--threshold 6.0 ...] --out DIR
    lqer-hw eval --model PATH|default [--quantized DIR | --method ...] --data FILE|default
                 [--bit-true [--guard-bits N]] [--json] [--verbose]

The quantization options are generated from :class:`sw.qconfig.QuantConfig`
and :class:`sw.qconfig.CalibOptions` (flag, help, default, allowed values).
Every bad input is one line on stderr, ``lqer-hw NAME: error: PARAM must be
...; got ...``, exit status 2, nothing written (``lqer_hw.args.run``); Ctrl-C
is ``lqer-hw NAME: interrupted``, exit status 130. ``quantize`` checks its
output folder before any work and writes it whole (``lqer_hw.files``).
``eval`` lives in :mod:`sw.cli_eval`; both hand ``--method llm-int8|w8a8`` to
:mod:`sw.llm_int8_cli`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from lqer_hw.args import (Parser, UsageError, add_field_options, choice, given_fields, run,
                          status)
from sw import llm_int8_cli
from sw.options import options_of
from sw.qconfig import CALIBRATED_METHODS, METHODS, QUANT_METHODS, CalibOptions, QuantConfig

__all__ = ["main", "parser", "quant_config", "calib_options", "check_applicable", "factor_builder",
           "datapath_fit"]

CALIB = "calib_"  # dest prefix of the CalibOptions fields


def _add_model_options(p: Parser) -> None:
    p.add_argument("--model", default="default", metavar="PATH",
                   help="local Hugging Face model folder, or 'default', the embedded model "
                        "(default 'default')")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] when present")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code shipped with the checkpoint (off by default)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _add_quant_options(p: Parser, *, for_eval: bool) -> None:
    methods = (METHODS if for_eval else QUANT_METHODS) + llm_int8_cli.METHODS
    p.add_argument("--method", required=not for_eval, type=choice(methods), metavar="METHOD",
                   help=f"{', '.join(methods)}" + (" (default: the float model, fp)" if for_eval
                                                     else " (required)"))
    add_field_options(p, QuantConfig, group="quantization (defaults of QuantConfig)")
    p.add_argument("--calib", metavar="FILE", default=None,
                   help="l2qer / resq calibration text file, or 'default', the embedded "
                        "calibration text (default 'default')")
    add_field_options(p, CalibOptions, group="calibration (l2qer, resq)", prefix=CALIB)
    llm_int8_cli.add_options(p)
    p.add_argument("--layers", metavar="REGEX",
                   help="regular expression narrowing the quantized layers (module names)")


def parser(prog: str, command: str) -> Parser:
    """The parser of ``quantize`` or ``eval``."""
    if command == "quantize":
        p = Parser(prog=prog, description="Compute LQER / L2QER / ResQ factors (or LLM.int8() / W8A8 "
                                          "int8 weights) of a model's linear layers.")
        _add_model_options(p)
        _add_quant_options(p, for_eval=False)
        p.add_argument("--out", required=True, metavar="DIR",
                       help="output folder, new or empty (factors.safetensors, manifest.json)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace a non-empty output folder (once every factor is computed)")
        return p
    p = Parser(prog=prog, description="Perplexity of a float or quantized model over a text file.")
    _add_model_options(p)
    _add_quant_options(p, for_eval=True)
    p.add_argument("--quantized", metavar="DIR", help="folder written by 'lqer-hw quantize'")
    p.add_argument("--data", default="default", metavar="FILE",
                   help="text file, or 'default', the embedded held-out split (default 'default')")
    p.add_argument("--bit-true", action="store_true",
                   help="bit-true arithmetic (block dot products, accumulator rule)")
    from lqer_hw.args import integer, integer_or
    p.add_argument("--guard-bits", type=integer_or("exact", 0, 32), metavar="N|exact",
                   help="accumulator guard bits, or 'exact'; with --bit-true only (default 8)")
    p.add_argument("--seq-len", type=integer(2), metavar="N",
                   help="tokens per window (default: the model's maximum, at most 2048)")
    p.add_argument("--batch-size", type=integer(1), metavar="N",
                   help="windows per forward pass (default: about 4096 tokens' worth)")
    p.add_argument("--max-windows", type=integer(1), metavar="N",
                   help="score only the first N windows")
    p.add_argument("--verbose", action="store_true",
                   help="also score the float model on the same windows (the baseline)")
    return p


# ---------------------------------------------------------------- options

def _flag(name: str) -> str:
    return name.replace("_", "-")


def check_applicable(args, method: str) -> None:
    """Refuse an option that would do nothing with ``method`` (one line naming it)."""
    llm_int8_cli.check_applicable(args, method)
    if method in llm_int8_cli.METHODS:
        return
    for cls, prefix in ((QuantConfig, ""), (CalibOptions, CALIB)):
        for name, value in given_fields(args, cls, prefix=prefix).items():
            opt, _ = options_of(cls)[name]
            flag = opt.flag.lstrip("-")
            if method == "fp":
                raise UsageError(f"{flag} must not be given without --method (the float model is "
                                 f"not quantized); got {value!r}")
            if opt.methods is not None and method not in opt.methods:
                raise UsageError(f"{flag} must not be given with --method {method} (it applies to "
                                 f"{', '.join(opt.methods)} only); got {value!r}")
    if args.calib is not None and method not in CALIBRATED_METHODS:
        raise UsageError(f"calib must not be given with --method {method} (only "
                         f"{', '.join(CALIBRATED_METHODS)} calibrate); got {args.calib!r}")
    if method == "resq" and getattr(args, "resq_format", None) == "int":
        for name in ("block", "exponent_bits", "rounding", "flavour"):
            if getattr(args, name, None) is not None:
                raise UsageError(f"{name.replace('_', '-')} must not be given with --resq-format int "
                                 f"(MXINT options; the integer formats have none); "
                                 f"got {getattr(args, name)!r}")
    if args.layers is not None and method == "fp":
        raise UsageError("layers must not be given without --method (the float model is not "
                         f"quantized); got {args.layers!r}")


def quant_config(args, method: str) -> QuantConfig:
    """The :class:`QuantConfig` of the given options (defaults for the rest)."""
    return QuantConfig(method=method, **given_fields(args, QuantConfig))


def calib_options(args) -> CalibOptions:
    return CalibOptions(**given_fields(args, CalibOptions, prefix=CALIB))


# ---------------------------------------------------------------- shared steps

def device_of(spec: str):
    """The torch device of ``--device``; :class:`UsageError` when absent or malformed."""
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise UsageError(f"device must be cpu or cuda[:N]; got {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device must be cpu or an available CUDA device; got {spec!r} "
                             "(no CUDA device found)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device index must be below {torch.cuda.device_count()}; got {spec!r}")
    elif device.type != "cpu":
        raise UsageError(f"device must be cpu or cuda[:N]; got {spec!r}")
    return device


def load(args, device):
    """``(path, model, tokenizer)`` of ``--model``."""
    from sw.default_model import model_path
    from sw.models import load_model, load_tokenizer

    path = model_path(args.model)
    model = load_model(path, device=str(device), trust_remote_code=args.trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=args.trust_remote_code)
    return path, model, tokenizer


def check_length(name: str, length: int, model) -> None:
    from sw.models import max_positions

    limit = max_positions(model)
    if limit is not None and length > limit:
        raise UsageError(f"{name} must be in 2..{limit} for this model; got {length}")


def check_calibration(model, tokenizer, text: str, calib: CalibOptions) -> None:
    """Refuse a calibration set the model or the text cannot give, before any work."""
    from sw.calibration import calibration_batches
    from sw.text import tokenize

    check_length("calib-length", calib.length, model)
    ids = tokenize(tokenizer, text, max_tokens=calib.sequences * calib.length)
    calibration_batches(ids, sequences=calib.sequences, length=calib.length, batch_size=calib.batch)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 token``, ``2 tokens``; ``many`` where the plural is not ``word + "s"``."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def select_layers(model, config: QuantConfig, pattern: str | None):
    """The quantizable layers (``--layers``), with the rank checked against every one."""
    from sw.factors import check_rank
    from sw.models import quantizable_layers

    layers = quantizable_layers(model, pattern=pattern)
    if config.low_rank:
        check_rank(config.rank, {n: tuple(m.weight.shape) for n, m in layers.items()})
    if config.method == "resq":
        from sw.resq_factors import check_resq_layers
        check_resq_layers(config, {n: tuple(m.weight.shape) for n, m in layers.items()})
    return layers


def factor_builder(method: str):
    """The function computing ``method``'s factors (``sw.pipeline.build_factors``'s call shape)."""
    if method == "resq":
        from sw.resq_factors import build_resq_factors
        return build_resq_factors
    from sw.pipeline import build_factors
    return build_factors


def datapath_fit(config: QuantConfig, layers) -> tuple[str, dict]:
    """``(datapath name, record)``: whether its datapath can run ``layers``' factors (``sw.datapath``)."""
    from sw.datapath import datapath_of, datapath_record

    shapes = {n: tuple(m.weight.shape) for n, m in layers.items()}
    ranks = None
    if config.method == "resq":
        from sw.resq_factors import check_resq_layers
        ranks = {n: p.rank for n, p in check_resq_layers(config, shapes).items()}
    return datapath_of(config), datapath_record(config, shapes, ranks=ranks)


# ---------------------------------------------------------------- quantize

def _quantize(argv: list[str], prog: str) -> int:
    from sw.default_model import calib_path

    args = parser(prog, "quantize").parse_args(argv)
    if args.method in llm_int8_cli.METHODS:
        return llm_int8_cli.quantize(args, prog)
    method = args.method
    check_applicable(args, method)
    config = quant_config(args, method)
    calib = calib_options(args)
    from lqer_hw.files import OutputFolder

    output = OutputFolder(args.out, overwrite=args.overwrite, name="out")  # before any work
    device = device_of(args.device)
    from sw.factor_files import write_factors
    from sw.models import model_hash
    from sw.text import read_text

    calib_spec = args.calib or "default"
    calib_file = calib_path(calib_spec)
    calib_text = read_text(calib_file, name="calib") if method in CALIBRATED_METHODS else None
    started = time.time()
    path, model, tokenizer = load(args, device)
    if method in CALIBRATED_METHODS:
        check_calibration(model, tokenizer, calib_text, calib)
    layers = select_layers(model, config, args.layers)
    if method == "resq":
        from sw.resq_factors import check_resq_calibration
        check_resq_calibration(config, {n: tuple(m.weight.shape) for n, m in layers.items()}, calib)
    datapath, fit = datapath_fit(config, layers)
    if not fit[datapath]:
        status(prog, f"note: these factors cannot run on the {datapath} datapath: {fit['reason']}")
    if not sys.stderr.isatty():
        status(prog, f"computing {method} factors of {plural(len(layers), 'layer')}")
    factors, calib_record = factor_builder(method)(model, tokenizer, config, calib_text=calib_text,
                                                   calib=calib, device=device, layers=layers,
                                                   progress=not args.json)
    if calib_record is not None:
        calib_record["file"] = os.path.abspath(calib_file) if calib_spec != "default" else "default"
    source = {"path": os.path.abspath(path) if args.model != "default" else "default",
              "model_type": getattr(model.config, "model_type", None), "hash": model_hash(model)}
    extra = {}
    if method == "resq":
        from sw.resq_factors import resq_record
        extra["resq"] = resq_record(config)
    with output as tmp:
        write_factors(tmp, factors, config=config, source=source, calibration=calib_record, **extra)
    seconds = time.time() - started
    for name, f in factors.items():
        errs = " ".join(f"{k}={v:.4g}" for k, v in f.errors.items())
        print(f"{name}: {f.d_out}x{f.d_in} rank {f.rank} {errs}")
    print(f"wrote {plural(len(factors), 'layer')} to {args.out} in {seconds:.1f} s")
    if args.json:
        print(json.dumps({"out": args.out, "layers": len(factors), "method": method,
                          **config.to_json(), "calib": calib_record, "model": args.model,
                          "model_hash": source["hash"], "datapath": fit,
                          "seconds": round(seconds, 3)}))
    return 0


def main(argv: list[str], prog: str = "lqer-hw eval") -> int:
    """Entry point for ``lqer-hw quantize`` and ``lqer-hw eval`` (chosen by the last word of ``prog``)."""
    command = prog.split()[-1]
    if command == "quantize":
        return run(prog, lambda: _quantize(argv, prog))
    if command == "eval":
        from sw.cli_eval import evaluate
        return run(prog, lambda: evaluate(argv, prog))
    print(f"{prog}: error: command must be quantize or eval; got {command!r}", file=sys.stderr)
    return 2
