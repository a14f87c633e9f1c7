"""``lqer-hw profile``: LLM.int8() outlier statistics of a model over a text, as JSON + Markdown.

    lqer-hw profile --model PATH|default --data FILE|default [--threshold 6.0] [--group T]
                    --out FILE.json [--seq-len N] [--batch-size N] [--max-windows N]
                    [--layers REGEX] [--device cpu|cuda[:N]] [--trust-remote-code]

The work is :func:`run_profile`; :func:`main` is the thin command layer (the
``lqer_hw`` kit: bad input is one line ``lqer-hw profile: error: PARAM must be
...; got ...``, exit status 2, nothing written; Ctrl-C exits 130). The output
file is checked before any work and written whole (``lqer_hw.files``) after the
profile is complete; the Markdown summary goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = ["run_profile", "main"]


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

    from lqer_hw.files import check_output_file, write_text
    from sw.default_model import data_path, model_path
    from sw.models import (check_token_ids, load_model, load_tokenizer, max_positions, model_hash,
                           quantizable_layers)
    from sw.outliers import OutlierProfiler, profile_model
    from sw.text import read_text, tokenize

    check_output_file(out, name="out", suffix=".json")
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
    check_token_ids(net, ids, name="data")
    profiling = time.time()
    report = profile_model(net, ids, chosen, threshold=threshold, group=group, seq_len=seq_len,
                           batch_size=batch_size, device=device, progress=progress,
                           max_windows=max_windows)
    now = time.time()
    seconds, rate = now - started, report["tokens"] / max(now - profiling, 1e-9)
    report = {**{k: report[k] for k in ("format", "version", "threshold", "group")},
              "model": os.path.abspath(path) if model != "default" else "default",
              "model_type": getattr(getattr(net, "config", None), "model_type", None),
              "model_hash": model_hash(net),
              "data": os.path.abspath(data_file) if data != "default" else "default",
              **{k: report[k] for k in ("tokens", "windows", "seq_len", "batch_size")},
              "seconds": round(seconds, 3), "tokens_per_second": round(rate, 1),
              "summary": report["summary"], "layers": report["layers"]}
    write_text(out, json.dumps(report, indent=1) + "\n")
    return report


# ---------------------------------------------------------------- command line

def parser(prog: str):
    """The parser of ``lqer-hw profile``."""
    from lqer_hw.args import Parser, integer, number

    p = Parser(prog=prog, description="LLM.int8() outlier statistics of a model's linear-layer inputs "
                                      "over a text: JSON report + Markdown summary.")
    p.add_argument("--model", default="default", metavar="PATH",
                   help="local Hugging Face model folder, or 'default', the embedded model (default 'default')")
    p.add_argument("--data", default="default", metavar="FILE",
                   help="text file, or 'default', the embedded held-out split (default 'default')")
    p.add_argument("--threshold", type=number(above=0), default=6.0, metavar="T",
                   help="outlier magnitude (default 6.0)")
    p.add_argument("--group", type=integer(1), metavar="N",
                   help="tokens per detection group (default: the whole batch of one forward pass)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")
    p.add_argument("--seq-len", type=integer(2), metavar="N",
                   help="tokens per window (default: the model's maximum, at most 2048)")
    p.add_argument("--batch-size", type=integer(1), metavar="N",
                   help="windows per forward pass (default: about 4096 tokens' worth)")
    p.add_argument("--max-windows", type=integer(1), metavar="N", help="profile only the first N windows")
    p.add_argument("--layers", metavar="REGEX", help="regular expression narrowing the profiled layers")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] when present")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code shipped with the checkpoint (off by default)")
    return p


def _profile(argv: list[str], prog: str) -> int:
    from sw.cli import device_of
    from sw.outliers import summary_markdown

    args = parser(prog).parse_args(argv)
    report = run_profile(out=args.out, model=args.model, data=args.data, threshold=args.threshold,
                         group=args.group, seq_len=args.seq_len, batch_size=args.batch_size,
                         max_windows=args.max_windows, layers=args.layers,
                         device=str(device_of(args.device)), trust_remote_code=args.trust_remote_code,
                         progress=sys.stderr.isatty())
    print(summary_markdown(report), end="")
    print(f"wrote {args.out} ({report['tokens']} tokens, {report['tokens_per_second']:.0f} tokens/s)")
    return 0


def main(argv: list[str], prog: str = "lqer-hw profile") -> int:
    """Entry point of ``lqer-hw profile``."""
    from lqer_hw.args import run

    return run(prog, lambda: _profile(argv, prog))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
