"""``lqer-hw profile``: LLM.int8() outlier statistics of a model over a text, as JSON + Markdown.

    lqer-hw profile --model PATH|default --data FILE|default [--threshold 6.0] [--group T]
                    --out FILE.json [--seq-len N] [--batch-size N] [--max-windows N]
                    [--layers REGEX] [--device cpu|cuda[:N]] [--trust-remote-code]

The work is :func:`run_profile`; :func:`main` is a thin argparse layer (bad
input: one line ``lqer-hw profile: error: PARAM must be ...; got ...``, exit
status 2, nothing written). The JSON file is written whole or not at all, after
the profile is complete; the Markdown summary goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

__all__ = ["run_profile", "main"]


def _check_out(out: str) -> str:
    if not out.endswith(".json"):
        raise ValueError(f"out must be a file name ending in .json; got {out!r}")
    if os.path.isdir(out):
        raise ValueError(f"out must be a file, not a folder; got {out!r}")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ValueError(f"out must be in an existing folder; got {out!r}")
    return out


def _write_json(path: str, record: dict) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run_profile(*, out: str, model: str = "default", data: str = "default", threshold: float = 6.0,
                group: int | None = None, seq_len: int | None = None, batch_size: int | None = None,
                max_windows: int | None = None, layers: str | None = None, device: str = "cpu",
                trust_remote_code: bool = False, progress: bool = True) -> dict:
    """Profile ``model`` over ``data`` and write the report to ``out`` (JSON); returns the report.

    Defaults as ``lqer-hw eval``: windows of the model's maximum length (at
    most 2048), about 4096 tokens per forward batch; ``group=None`` detects over
    each whole batch. ``ValueError`` (one line) on any bad input, before any work.
    """
    import torch

    from sw.default_model import data_path, model_path
    from sw.models import load_model, load_tokenizer, max_positions, model_hash, quantizable_layers
    from sw.outliers import OutlierProfiler, profile_model
    from sw.text import read_text, tokenize

    _check_out(out)
    OutlierProfiler({"check": torch.nn.Linear(1, 1)}, threshold=threshold, group=group)  # validates
    data_file = data_path(data)
    text = read_text(data_file, name="data")
    path = model_path(model)
    started = time.time()
    net = load_model(path, device=device, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    chosen = quantizable_layers(net, pattern=layers)
    limit = max_positions(net)
    if seq_len is None:
        seq_len = min(limit or 2048, 2048)
    elif limit is not None and seq_len > limit:
        raise ValueError(f"seq-len must be in 2..{limit} for this model; got {seq_len}")
    if batch_size is None:
        batch_size = max(1, 4096 // seq_len)
    ids = tokenize(tokenizer, text)
    report = profile_model(net, ids, chosen, threshold=threshold, group=group, seq_len=seq_len,
                           batch_size=batch_size, device=device, progress=progress,
                           max_windows=max_windows)
    seconds = time.time() - started
    report = {**{k: report[k] for k in ("format", "version", "threshold", "group")},
              "model": os.path.abspath(path) if model != "default" else "default",
              "model_type": getattr(getattr(net, "config", None), "model_type", None),
              "model_hash": model_hash(net),
              "data": os.path.abspath(data_file) if data != "default" else "default",
              **{k: report[k] for k in ("tokens", "windows", "seq_len", "batch_size")},
              "seconds": round(seconds, 3), "tokens_per_second": round(report["tokens"] / seconds, 1),
              "summary": report["summary"], "layers": report["layers"]}
    _write_json(out, report)
    return report


# ---------------------------------------------------------------- thin command-line layer

class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line in the project's form, never the usage block
        required = "the following arguments are required: "
        unknown = "unrecognized arguments: "
        if message.startswith(required):
            message = f"{message[len(required):].split(',')[0].strip().lstrip('-')} must be given; got nothing"
        elif message.startswith(unknown):
            message = f"arguments must be options of this command; got {message[len(unknown):]!r}"
        elif message.startswith("argument ") and message.endswith(": expected one argument"):
            name = message[len("argument "):].split(":")[0].split("/")[-1].lstrip("-")
            message = f"{name} must have a value; got nothing"
        raise _UsageError(message)


def _device(spec: str) -> str:
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise _UsageError(f"device must be cpu or cuda[:N]; got {spec!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _UsageError(f"device must be cpu or an available CUDA device; got {spec!r} (no CUDA device found)")
    return str(device)


def _int(name, low):
    def convert(text):
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < low:
            raise _UsageError(f"{name} must be an integer >= {low}; got {text!r}")
        return value
    return convert


def _threshold(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise _UsageError(f"threshold must be a finite number > 0; got {text!r}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, allow_abbrev=False,
                description="LLM.int8() outlier statistics of a model's linear-layer inputs over a text.")
    p.add_argument("--model", default="default", help="local Hugging Face model folder, or 'default'")
    p.add_argument("--data", default="default", help="text file, or 'default' (held-out split)")
    p.add_argument("--threshold", default="6.0", help="outlier magnitude (default 6.0)")
    p.add_argument("--group", help="tokens per detection group (default: the whole batch)")
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument("--seq-len", help="tokens per window (default: the model's maximum, at most 2048)")
    p.add_argument("--batch-size", help="windows per forward pass (default: about 4096 tokens' worth)")
    p.add_argument("--max-windows", help="profile only the first N windows")
    p.add_argument("--layers", help="regular expression narrowing the profiled layers")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def main(argv: list[str], prog: str = "lqer-hw profile") -> int:
    """Entry point of ``lqer-hw profile``."""
    try:
        args = _parser(prog).parse_args(argv)
        options = dict(
            threshold=_threshold(args.threshold),
            group=None if args.group is None else _int("group", 1)(args.group),
            seq_len=None if args.seq_len is None else _int("seq-len", 2)(args.seq_len),
            batch_size=None if args.batch_size is None else _int("batch-size", 1)(args.batch_size),
            max_windows=None if args.max_windows is None else _int("max-windows", 1)(args.max_windows))
        from sw.outliers import summary_markdown

        report = run_profile(out=args.out, model=args.model, data=args.data, layers=args.layers,
                             device=_device(args.device), trust_remote_code=args.trust_remote_code, **options)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (_UsageError, ValueError) as exc:
        if os.environ.get("LQER_DEBUG"):
            raise
        lines = str(exc).strip().splitlines()
        print(f"{prog}: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)
        return 2
    print(summary_markdown(report), end="")
    print(f"wrote {args.out} ({report['tokens']} tokens, {report['tokens_per_second']:.0f} tokens/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
