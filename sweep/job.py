"""One point of a sweep: quantize, evaluate the perplexity, cost the area -> one result row.

:func:`run_point` takes the JSON-able job of :meth:`sweep.spec.Point.job` and
returns the row that becomes one line of ``results.jsonl``. The evaluation is
``lqer-hw eval``'s own steps (``sw.cli_eval``: plan, tokens, factors and
emulated layers, perplexity), so a point's perplexity is what ``lqer-hw eval``
with the same options prints. A process keeps each model it loaded and puts
back its layers after every point, so many points share one load.

Any exception of a point is caught and recorded as ``status: "failed"`` with
its first line; ``KeyboardInterrupt`` is not (an interrupted sweep stops).
"""

from __future__ import annotations

import contextlib
import io
import time

__all__ = ["ROW_FIELDS", "TIMING_FIELDS", "run_point", "failed_row", "loaded_model", "error_line"]

PROG = "lqer-hw sweep"
ROW_FIELDS = ("key", "index", "label", "status", "error", "config", "hardware", "targets",
              "area_provider", "perplexity", "nll", "tokens", "windows", "seq_len", "batch_size",
              "emulated_layers", "model_hash", "area", "timing")
TIMING_FIELDS = ("timing",)  # everything else is the same on every run of the same job

_MODELS: dict[tuple, tuple] = {}  # (model, device, trust_remote_code) -> (model, tokenizer, hash)


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def loaded_model(args, device):
    """``(model, tokenizer, model hash)`` of ``--model``, loaded once per process."""
    from sw.cli import load
    from sw.models import model_hash

    key = (args.model, str(device), bool(args.trust_remote_code))
    if key not in _MODELS:
        _, model, tokenizer = load(args, device)
        _MODELS[key] = (model, tokenizer, model_hash(model))
    return _MODELS[key]


def _put_back(model, before: dict) -> None:
    """Put back every module replaced since ``before = dict(model.named_modules())``."""
    for name, module in before.items():
        if not name:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if getattr(parent, child) is not module:
            setattr(parent, child, module)


def _evaluate(argv: list[str]) -> dict:
    from sw.cli import device_of
    from sw.cli_eval import data_ids, plan, quantize_layers, score
    from sw.cli import parser

    args = parser(PROG, "eval").parse_args(argv)
    args.json = True  # eval's steps: no progress bars
    p = plan(args)
    device = device_of(args.device)
    model, tokenizer, digest = loaded_model(args, device)
    with contextlib.redirect_stderr(io.StringIO()):  # eval's status lines are not the sweep's
        ids = data_ids(p, model, tokenizer)
        before = dict(model.named_modules())
        try:
            quantize_layers(p, args, model, tokenizer, device, PROG)
            result = score(p, model, ids, device, PROG, what=p.method, progress=False)
        finally:
            _put_back(model, before)
    return {"perplexity": result.perplexity, "nll": result.nll, "tokens": result.tokens,
            "windows": result.windows, "seq_len": p.seq_len, "batch_size": p.batch_size,
            "emulated_layers": p.emulated, "model_hash": digest}


def _base_row(job: dict) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(key=job["key"], index=job["index"], label=job["label"], config=job["config"],
               hardware=job["hardware"], targets=job["targets"], area_provider=job["area"])
    return row


def failed_row(job: dict, error: str, seconds: float | None = None) -> dict:
    """The row of a point that failed with ``error`` (one line)."""
    row = _base_row(job)
    row.update(status="failed", error=error, timing={"seconds": seconds})
    return row


def run_point(job: dict) -> dict:
    """Quantize, evaluate and cost one point; the row (``status`` ``ok`` or ``failed``)."""
    from sweep.area import area_of, resolve

    started = time.perf_counter()
    try:
        result = _evaluate(job["argv"])
        provider, _ = resolve(job["area"], default="")
        area = area_of(provider, job["config"], job["hardware"], job["targets"])
    except Exception as exc:  # one point's failure never stops the others
        return failed_row(job, error_line(exc), round(time.perf_counter() - started, 3))
    row = _base_row(job)
    row.update(status="ok", **result, area=area,
               timing={"seconds": round(time.perf_counter() - started, 3)})
    return row
