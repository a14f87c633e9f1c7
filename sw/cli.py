"""``lqer-hw quantize`` and ``lqer-hw eval``.

    lqer-hw quantize --model PATH|default --method l2qer|lqer|mxint --rank 32 --w-width 4
                     --a-width 8 --block 16 --calib FILE|default --out DIR
    lqer-hw eval --model PATH|default [--quantized DIR | --method ...] --data FILE|default
                 [--bit-true] [--json]

Every bad input is one line on stderr, ``lqer-hw NAME: error: PARAM must be
...; got ...``, exit code 2, and nothing written. ``quantize`` writes its
folder only after every layer's factors are computed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

__all__ = ["main"]


class UsageError(Exception):
    """A bad command line or input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; say it in one line instead
        raise UsageError(_rephrase(message))


def _rephrase(message: str) -> str:
    """argparse's messages in the project's 'PARAM must be ...; got ...' form."""
    required = "the following arguments are required: "
    unknown = "unrecognized arguments: "
    if message.startswith(required):
        first = message[len(required):].split(",")[0].strip()
        return f"{first} must be given; got nothing"
    if message.startswith(unknown):
        return f"arguments must be options of this command; got {message[len(unknown):]!r}"
    if message.startswith("argument ") and ": expected one argument" in message:
        name = message[len("argument "):].split(":")[0].split("/")[-1]
        return f"{name} must have a value; got nothing"
    return message


def _int(name: str, value: str, low: int, high: int | None = None) -> int:
    try:
        number = int(value, 10)
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high):
        allowed = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
        raise UsageError(f"{name} must be {allowed}; got {value!r}")
    return number


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _power_of_two(name: str, value: str) -> int:
    number = _int(name, value, 1)
    if number & (number - 1):
        raise UsageError(f"{name} must be a power of two (1, 2, 4, ...); got {value!r}")
    return number


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="local Hugging Face model folder, or 'default'")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] when present")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code shipped with the checkpoint (off by default)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _add_quant_options(p: argparse.ArgumentParser, *, for_eval: bool) -> None:
    methods = "fp, mxint, lqer, l2qer" if for_eval else "mxint, lqer, l2qer"
    p.add_argument("--method", required=not for_eval, help=methods)
    # defaults are applied after parsing, so eval can tell which ones were given
    p.add_argument("--rank", help="low-rank k (default 32)")
    p.add_argument("--w-width", help="weight mantissa bits (default 4)")
    p.add_argument("--a-width", help="activation mantissa bits (default 8)")
    p.add_argument("--lowrank-width", help="A, B, t, u mantissa bits (default 8)")
    p.add_argument("--block", help="MXINT block size (default 16)")
    p.add_argument("--exponent-bits", help="shared exponent bits (default 8)")
    p.add_argument("--blocking", help="reduction (default; A along d_in, B along k) or paper")
    p.add_argument("--svd", help="full (default) or randomized")
    p.add_argument("--seed", help="randomized-SVD seed (default 0)")
    p.add_argument("--calib", help="calibration text file, or 'default' (default)")
    p.add_argument("--calib-sequences", help="calibration sequences (default 32)")
    p.add_argument("--calib-length", help="tokens per calibration sequence (default 128)")
    p.add_argument("--calib-batch", help="sequences per calibration batch (default 8)")
    p.add_argument("--layers", help="regular expression narrowing the quantized layers")


QUANT_DEFAULTS = {"rank": "32", "w_width": "4", "a_width": "8", "lowrank_width": "8", "block": "16",
                  "exponent_bits": "8", "blocking": "reduction", "svd": "full", "seed": "0",
                  "calib": "default", "calib_sequences": "32", "calib_length": "128",
                  "calib_batch": "8"}


def _parser(prog: str, command: str) -> argparse.ArgumentParser:
    if command == "quantize":
        p = _Parser(prog=prog, description="Compute LQER / L2QER factors of a model's linear layers.")
        _add_model_options(p)
        _add_quant_options(p, for_eval=False)
        p.add_argument("--out", required=True, help="output folder (factors.safetensors, manifest.json)")
    else:
        p = _Parser(prog=prog, description="Perplexity of a float or quantized model over a text file.")
        _add_model_options(p)
        _add_quant_options(p, for_eval=True)
        p.add_argument("--quantized", help="folder written by 'lqer-hw quantize'")
        p.add_argument("--data", default="default", help="text file, or 'default' (held-out split)")
        p.add_argument("--bit-true", action="store_true",
                       help="bit-true arithmetic (block dot products, accumulator rule)")
        p.add_argument("--guard-bits", default="8", help="accumulator guard bits, or 'exact' (default 8)")
        p.add_argument("--seq-len", help="tokens per window (default: the model's maximum, at most 2048)")
        p.add_argument("--batch-size", help="windows per forward pass (default: about 4096 tokens' worth)")
        p.add_argument("--max-windows", help="score only the first N windows")
    return p


def _config(args, method: str):
    from sw.qconfig import QuantConfig

    values = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in QUANT_DEFAULTS.items()}
    config = QuantConfig(
        method=method,
        rank=_int("rank", values["rank"], 1),
        w_width=_int("w-width", values["w_width"], 2, 8),
        a_width=_int("a-width", values["a_width"], 2, 8),
        lowrank_width=_int("lowrank-width", values["lowrank_width"], 2, 8),
        block=_power_of_two("block", values["block"]),
        exponent_bits=_int("exponent-bits", values["exponent_bits"], 2, 8),
        blocking=_choice("blocking", values["blocking"], ("reduction", "paper")),
        svd=_choice("svd", values["svd"], ("full", "randomized")),
        seed=_int("seed", values["seed"], 0),
    )
    return config, values


def _calib_options(values):
    from sw.pipeline import CalibOptions

    return CalibOptions(sequences=_int("calib-sequences", values["calib_sequences"], 1),
                        length=_int("calib-length", values["calib_length"], 2),
                        batch=_int("calib-batch", values["calib_batch"], 1))


def _device(spec: str):
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


def _check_text_file(name: str, path: str) -> None:
    from sw.text import read_text

    read_text(path, name=name)  # raises TextError with one line


def _load(args, device):
    from sw.default_model import model_path
    from sw.models import load_model, load_tokenizer

    path = model_path(args.model)
    model = load_model(path, device=str(device), trust_remote_code=args.trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=args.trust_remote_code)
    return path, model, tokenizer


def _check_length(name: str, length: int, model) -> None:
    from sw.models import max_positions

    limit = max_positions(model)
    if limit is not None and length > limit:
        raise UsageError(f"{name} must be in 2..{limit} for this model; got {length}")


def _quantize(args, prog: str) -> int:
    from sw.default_model import calib_path
    from sw.qconfig import QUANT_METHODS

    method = _choice("method", args.method, QUANT_METHODS)
    config, values = _config(args, method)
    calib = _calib_options(values)

    from sw.factors import save_factors
    from sw.models import model_hash
    from sw.pipeline import build_factors
    from sw.text import read_text

    device = _device(args.device)
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"out must be a folder (new or existing); got the file {out!r}")
    calib_file = calib_path(values["calib"])
    calib_text = read_text(calib_file, name="calib") if method == "l2qer" else None
    started = time.time()
    path, model, tokenizer = _load(args, device)
    if method == "l2qer":
        _check_length("calib-length", calib.length, model)
    factors, calib_record = build_factors(model, tokenizer, config, calib_text=calib_text,
                                          calib=calib, layer_pattern=args.layers, device=device,
                                          progress=not args.json)
    if calib_record is not None:
        calib_record["file"] = os.path.abspath(calib_file) if values["calib"] != "default" else "default"
    source = {"path": os.path.abspath(path) if args.model != "default" else "default",
              "model_type": getattr(model.config, "model_type", None), "hash": model_hash(model)}
    save_factors(out, factors, config=config, source=source, calibration=calib_record)
    seconds = time.time() - started
    for name, f in factors.items():
        errs = " ".join(f"{k}={v:.4g}" for k, v in f.errors.items())
        print(f"{name}: {f.d_out}x{f.d_in} rank {f.rank} {errs}")
    print(f"wrote {len(factors)} layers to {out} in {seconds:.1f} s")
    if args.json:
        print(json.dumps({"out": out, "layers": len(factors), "method": method, **config.to_json(),
                          "calib": calib_record, "model": args.model, "model_hash": source["hash"],
                          "seconds": round(seconds, 3)}))
    return 0


def _eval(args, prog: str) -> int:
    from sw.default_model import calib_path, data_path
    from sw.qconfig import METHODS

    given = [k for k in (*QUANT_DEFAULTS, "layers") if getattr(args, k) is not None]
    if args.quantized is not None and args.method is not None:
        raise UsageError("quantized and method must not both be given (the factors fix the method); "
                         f"got --method {args.method!r}")
    if args.quantized is not None and given:
        raise UsageError(f"{given[0].replace('_', '-')} must not be given with --quantized "
                         "(the factors fix it)")
    method = _choice("method", args.method, METHODS) if args.method is not None else "fp"
    arithmetic = "bit-true" if args.bit_true else "fast"
    guard_bits = None if args.guard_bits == "exact" else _int("guard-bits", args.guard_bits, 0, 32)
    batch_size = None if args.batch_size is None else _int("batch-size", args.batch_size, 1)
    max_windows = None if args.max_windows is None else _int("max-windows", args.max_windows, 1)
    seq_len = None if args.seq_len is None else _int("seq-len", args.seq_len, 2)
    from sw.emulation import emulate_model
    from sw.factors import load_factors
    from sw.models import max_positions, model_hash
    from sw.perplexity import perplexity
    from sw.pipeline import build_factors
    from sw.text import read_text, tokenize

    device = _device(args.device)
    data_file = data_path(args.data)
    text = read_text(data_file, name="data")
    factors = manifest = None
    if args.quantized is not None:
        factors, config, manifest = load_factors(args.quantized)
        method = config.method
        calib = None
    else:
        config, values = _config(args, method)
        calib = _calib_options(values)
        calib_text = read_text(calib_path(values["calib"]), name="calib") if method == "l2qer" else None
    if arithmetic == "bit-true" and config.blocking != "reduction" and config.low_rank:
        raise UsageError("blocking must be reduction for --bit-true (hardware blocks along the "
                         "reduction axis); got 'paper'")
    if arithmetic == "bit-true" and method == "fp":
        raise UsageError("method must be one of mxint, lqer, l2qer for --bit-true; got 'fp'")
    started = time.time()
    path, model, tokenizer = _load(args, device)
    limit = max_positions(model)
    if seq_len is None:
        seq_len = min(limit or 2048, 2048)
    _check_length("seq-len", seq_len, model)
    if batch_size is None:
        batch_size = max(1, 4096 // seq_len)
    if manifest is not None:
        digest = model_hash(model)
        if manifest["source_model"].get("hash") != digest:
            raise UsageError(f"quantized must hold factors of this model; {args.quantized!r} was "
                             f"computed from another (hash {manifest['source_model'].get('hash', '?')[:12]}, "
                             f"this model {digest[:12]})")
        emulate_model(model, factors, mode=method, arithmetic=arithmetic, a_width=config.a_width,
                      guard_bits=guard_bits)
    elif config.quantized:
        if method == "l2qer":
            _check_length("calib-length", calib.length, model)
        factors, _ = build_factors(model, tokenizer, config, calib_text=calib_text, calib=calib,
                                   layer_pattern=args.layers, device=device, progress=not args.json)
        emulate_model(model, factors, mode=method, arithmetic=arithmetic, a_width=config.a_width,
                      guard_bits=guard_bits)
    ids = tokenize(tokenizer, text)
    if ids.numel() < 2:
        raise UsageError(f"data must give at least 2 tokens; got {ids.numel()} from {data_file!r}")
    result = perplexity(model, ids, seq_len=seq_len, batch_size=batch_size, device=device,
                        progress=not args.json, max_windows=max_windows)
    seconds = time.time() - started
    label = method if method == "fp" else (f"{method} W{config.w_width}A{config.a_width}"
                                           + (f" rank {config.rank}" if config.low_rank else "")
                                           + f" block {config.block}, {arithmetic}")
    print(f"perplexity {result.perplexity:.4f} over {result.tokens} tokens ({label})")
    if args.json:
        record = {"perplexity": result.perplexity, "nll": result.nll, "tokens": result.tokens,
                  "windows": result.windows, "method": method, "arithmetic": arithmetic,
                  "model": args.model, "data": args.data, "quantized": args.quantized,
                  "seq_len": seq_len, "device": str(device), "seconds": round(seconds, 3)}
        if config.quantized:
            record.update({k: v for k, v in config.to_json().items() if k != "method"})
            record["guard_bits"] = guard_bits if arithmetic == "bit-true" else None
        if calib is not None and method == "l2qer":
            record["calib"] = {"file": values["calib"], **calib.to_json()}
        print(json.dumps(record))
    return 0


def main(argv: list[str], prog: str = "lqer-hw eval") -> int:
    """Entry point for ``lqer-hw quantize`` and ``lqer-hw eval`` (chosen by the last word of ``prog``)."""
    command = prog.split()[-1]
    if command not in ("quantize", "eval"):
        print(f"{prog}: error: command must be quantize or eval; got {command!r}", file=sys.stderr)
        return 2
    try:
        args = _parser(prog, command).parse_args(argv)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        return _quantize(args, prog) if command == "quantize" else _eval(args, prog)
    # every bad-input error of sw (ModelError, TextError, FactorsError, ...) is a ValueError
    except (UsageError, ValueError) as exc:
        if os.environ.get("LQER_DEBUG"):
            raise
        message = str(exc).strip().splitlines()
        print(f"{prog}: error: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        return 2
