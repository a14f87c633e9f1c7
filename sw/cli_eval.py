"""``lqer-hw eval``: perplexity of a float or quantized model, in small steps.

:func:`evaluate` = :func:`plan` (options -> :class:`EvalPlan`, every check that
needs no model) -> load the model -> :func:`data_ids` (tokens, the minimum
checked) -> :func:`quantize_layers` (factors from ``--quantized`` or computed,
layers swapped for emulated ones) -> :func:`score` -> :func:`report`.

The data must give at least ``sw.perplexity.MIN_TOKENS`` scored tokens (after
windowing and ``--max-windows``): below that a perplexity is noise.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from lqer_hw.args import UsageError, status
from sw.cli import (calib_options, check_applicable, check_calibration, check_length, device_of,
                    factor_builder, load, parser, plural, quant_config, select_layers)
from sw.qconfig import CALIBRATED_METHODS, CalibOptions, QuantConfig

__all__ = ["EvalPlan", "plan", "data_ids", "quantize_layers", "score",
           "report", "evaluate"]

PROGRESS_EVERY_S = 10.0  # status lines on stderr when it is not a terminal


@dataclass
class EvalPlan:
    """What one ``eval`` run does, decided from the options before the model is loaded."""

    method: str
    arithmetic: str                      # "fast" or "bit-true"
    config: QuantConfig | None           # None with --quantized until the factors are read;
    #                                      Int8Options for llm-int8 / w8a8
    calib: CalibOptions | None
    calib_text: str | None
    guard_bits: int | None
    seq_len: int | None
    batch_size: int | None
    max_windows: int | None
    data_file: str
    text: str
    factors: dict | None = None
    manifest: dict | None = None
    emulated: int = 0
    extra: dict = field(default_factory=dict)


def plan(args) -> EvalPlan:
    """Validate the options (one-line :class:`UsageError` / ``ValueError``) and read the inputs."""
    from sw.default_model import calib_path, data_path
    from sw.factor_files import load_factors
    from sw.text import read_text

    arithmetic = "bit-true" if args.bit_true else "fast"
    if args.guard_bits is not None and not args.bit_true:
        raise UsageError("guard-bits must not be given without --bit-true (fast arithmetic has no "
                         f"accumulator); got {args.guard_bits!r}")
    guard_bits = 8 if args.guard_bits is None else (None if args.guard_bits == "exact"
                                                    else args.guard_bits)
    factors = manifest = config = calib = calib_text = None
    from sw import llm_int8_cli
    if args.quantized is None and args.method in llm_int8_cli.METHODS:
        # LLM.int8() / W8A8: Int8Options in place of a QuantConfig (sw.llm_int8_cli)
        check_applicable(args, args.method)
        config = llm_int8_cli.int8_options(args, args.method)
        data_file = data_path(args.data)
        return EvalPlan(method=args.method, arithmetic=arithmetic, config=config, calib=None,
                        calib_text=None, guard_bits=None, seq_len=args.seq_len,
                        batch_size=args.batch_size, max_windows=args.max_windows,
                        data_file=data_file, text=read_text(data_file, name="data"))
    if args.quantized is not None:
        if args.method is not None:
            raise UsageError("quantized and method must not both be given (the factors fix the "
                             f"method); got --method {args.method!r}")
        given = [k for k in vars(args) if k in _quant_dests() and getattr(args, k) is not None]
        if given:
            raise UsageError(f"{given[0].replace('calib_', 'calib-').replace('_', '-')} must not "
                             "be given with --quantized (the factors fix it)")
        factors, config, manifest = load_factors(args.quantized)
        method = config.method
    else:
        method = args.method or "fp"
        check_applicable(args, method)
        if method != "fp":
            config = quant_config(args, method)
        if method in CALIBRATED_METHODS:
            calib = calib_options(args)
            calib_text = read_text(calib_path(args.calib or "default"), name="calib")
    if arithmetic == "bit-true" and method == "fp":
        raise UsageError("method must be one of mxint, lqer, l2qer, resq, llm-int8, w8a8 for "
                         "--bit-true; got 'fp'")
    if arithmetic == "bit-true" and method == "resq" and config.resq_format != "mxint":
        raise UsageError("resq-format must be mxint for --bit-true (the paper's integer formats "
                         f"are emulated in floating point only); got {config.resq_format!r}")
    if arithmetic == "bit-true" and config.low_rank and config.blocking != "reduction":
        raise UsageError("blocking must be reduction for --bit-true (hardware blocks along the "
                         "reduction axis); got 'paper'")
    data_file = data_path(args.data)
    return EvalPlan(method=method, arithmetic=arithmetic, config=config, calib=calib,
                    calib_text=calib_text, guard_bits=guard_bits, seq_len=args.seq_len,
                    batch_size=args.batch_size, max_windows=args.max_windows, data_file=data_file,
                    text=read_text(data_file, name="data"), factors=factors, manifest=manifest)


def _quant_dests() -> set[str]:
    from sw.options import options_of
    from sw.llm_int8_cli import OPTION_DESTS
    return ({*options_of(QuantConfig)} | {f"calib_{n}" for n in options_of(CalibOptions)}
            | {"calib", "layers", *OPTION_DESTS})


def data_ids(p: EvalPlan, model, tokenizer):
    """Token ids of the data, with ``seq_len`` / ``batch_size`` settled and the minimum checked."""
    from sw.models import max_positions
    from sw.perplexity import MIN_TOKENS, predicted_tokens
    from sw.text import split_windows, tokenize

    if p.seq_len is None:
        p.seq_len = min(max_positions(model) or 2048, 2048)
    check_length("seq-len", p.seq_len, model)
    if p.batch_size is None:
        p.batch_size = max(1, 4096 // p.seq_len)
    ids = tokenize(tokenizer, p.text)
    windows = split_windows(ids, p.seq_len)[:p.max_windows]
    scored = predicted_tokens(ids.numel(), p.seq_len, p.max_windows)
    if scored < MIN_TOKENS:
        raise UsageError(f"data must give at least {MIN_TOKENS} scored tokens (each "
                         f"window's first is not scored); got {scored} from {p.data_file!r} "
                         f"({plural(ids.numel(), 'token')}, {plural(len(windows), 'window')} "
                         f"of at most {p.seq_len})")
    return ids


def quantize_layers(p: EvalPlan, args, model, tokenizer, device, prog: str) -> None:
    """Swap the quantized layers for emulated ones (factors read or computed); sets ``p.emulated``."""
    from sw.emulation import emulate_model
    from sw.models import model_hash

    if p.method == "fp":
        return
    from sw import llm_int8_cli
    if p.method in llm_int8_cli.METHODS:
        from sw.llm_int8_pipeline import emulate
        p.emulated = len(emulate(model, p.config, arithmetic=p.arithmetic,
                                 layer_pattern=args.layers))
        return
    if p.manifest is not None:
        digest = model_hash(model)
        if p.manifest["source_model"].get("hash") != digest:
            raise UsageError(f"quantized must hold factors of this model; {args.quantized!r} was "
                             f"computed from another (hash "
                             f"{p.manifest['source_model'].get('hash', '?')[:12]}, this model "
                             f"{digest[:12]})")
    else:
        if p.method in CALIBRATED_METHODS:
            check_calibration(model, tokenizer, p.calib_text, p.calib)
        layers = select_layers(model, p.config, args.layers)
        if p.method == "resq":
            from sw.resq_factors import check_resq_calibration
            check_resq_calibration(p.config, {n: tuple(m.weight.shape) for n, m in layers.items()},
                                   p.calib)
        if not sys.stderr.isatty():
            status(prog, f"computing {p.method} factors of {plural(len(layers), 'layer')}")
        p.factors, _ = factor_builder(p.method)(model, tokenizer, p.config,
                                                calib_text=p.calib_text,
                                                calib=p.calib or CalibOptions(), device=device,
                                                layers=layers, progress=not args.json)
    originals = emulate_model(model, p.factors, mode=p.method, arithmetic=p.arithmetic,
                              a_width=p.config.a_width, guard_bits=p.guard_bits)
    p.emulated = len(originals)


class _BatchProgress:
    """Status lines ``scored batch i/N`` every :data:`PROGRESS_EVERY_S` seconds (a forward hook)."""

    def __init__(self, model, total: int, prog: str, what: str):
        self.total, self.prog, self.what = total, prog, what
        self.done = 0
        self.last = time.monotonic()
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.done += 1
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S and self.done < self.total:
            self.last = now
            status(self.prog, f"{self.what}: batch {self.done}/{self.total}")

    def close(self):
        self.handle.remove()


def score(p: EvalPlan, model, ids, device, prog: str, *, what: str, progress: bool):
    """Perplexity of ``model`` over ``ids``; status lines on stderr for long runs."""
    from sw.perplexity import perplexity
    from sw.text import split_windows

    windows = split_windows(ids, p.seq_len)[:p.max_windows]
    full = sum(1 for w in windows if w.numel() == p.seq_len)
    batches = -(-full // p.batch_size) + (len(windows) - full)
    tty = sys.stderr.isatty()
    slow = p.arithmetic == "bit-true" and what != "float baseline"
    watcher = None
    if slow or not tty:  # a terminal shows the progress bar; a log gets status lines
        status(prog, f"{what}: scoring {plural(len(windows), 'window')} of up to {p.seq_len} "
                     f"tokens in {plural(batches, 'batch', 'batches')}"
                     + (" (bit-true arithmetic: slow)" if slow else ""))
    if not tty:
        watcher = _BatchProgress(model, batches, prog, what)
    try:
        return perplexity(model, ids, seq_len=p.seq_len, batch_size=p.batch_size, device=device,
                          progress=progress and tty, max_windows=p.max_windows)
    finally:
        if watcher is not None:
            watcher.close()


def _label(p: EvalPlan) -> str:
    if p.method == "fp":
        return "fp"
    c = p.config
    return (f"{p.method} W{c.w_width}A{c.a_width}" + (f" rank {c.rank}" if c.low_rank else "")
            + (f" high {c.high_width} rank {c.resq_rank}" if c.method == "resq" else "")
            + f" block {c.block}, {p.arithmetic}; {plural(p.emulated, 'layer')} emulated")


def report(p: EvalPlan, args, result, baseline, seconds: float, device) -> None:
    """The human line(s) and, with ``--json``, one JSON object on the last line."""
    if baseline is not None:
        print(f"float baseline: perplexity {baseline.perplexity:.4f} over "
              f"{plural(baseline.tokens, 'token')} (fp)")
    print(f"perplexity {result.perplexity:.4f} over {plural(result.tokens, 'token')} ({_label(p)})")
    if not args.json:
        return
    record = {"perplexity": result.perplexity, "nll": result.nll, "tokens": result.tokens,
              "windows": result.windows, "method": p.method, "arithmetic": p.arithmetic,
              "model": args.model, "data": args.data, "quantized": args.quantized,
              "seq_len": p.seq_len, "batch_size": p.batch_size, "max_windows": p.max_windows,
              "layers": args.layers, "emulated_layers": p.emulated, "device": str(device),
              "fp_perplexity": None if baseline is None else baseline.perplexity,
              "seconds": round(seconds, 3)}
    if p.config is not None:
        record.update({k: v for k, v in p.config.to_json().items() if k != "method"})
        record["guard_bits"] = p.guard_bits if p.arithmetic == "bit-true" else None
    if p.calib is not None:
        record["calib"] = {"file": args.calib or "default", **p.calib.to_json()}
    elif p.manifest is not None:
        record["calib"] = p.manifest.get("calibration")
    print(json.dumps(record))


def evaluate(argv: list[str], prog: str) -> int:
    """``lqer-hw eval``: returns the exit status (errors raise; ``sw.cli.main`` reports them)."""
    args = parser(prog, "eval").parse_args(argv)
    from sw import llm_int8_cli
    if llm_int8_cli.handles(args):
        return llm_int8_cli.evaluate(args, prog)
    p = plan(args)
    device = device_of(args.device)
    started = time.time()
    _, model, tokenizer = load(args, device)
    ids = data_ids(p, model, tokenizer)
    baseline = None
    if args.verbose and p.method != "fp":
        baseline = score(p, model, ids, device, prog, what="float baseline",
                         progress=not args.json)
    quantize_layers(p, args, model, tokenizer, device, prog)
    result = score(p, model, ids, device, prog, what=p.method, progress=not args.json)
    report(p, args, result, baseline, time.time() - started, device)
    return 0
