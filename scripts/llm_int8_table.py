"""The LLM.int8() perplexity table of docs/llm_int8.md (and the README), produced by code.

Held-out perplexity of the embedded model and of tiny random LLaMA- and
OPT-style checkpoints (the tests' configurations, seeded): float, W8A8,
LLM.int8() at threshold 6.0 and at a lower threshold that finds outliers in
these small models (with the outlier columns it found per detection group),
and, on the embedded model, MXINT / LQER / L2QER at W4A8 (rank 32, block 16,
the README's settings). Fast arithmetic; detection group = the whole batch.

    .venv/bin/python scripts/llm_int8_table.py [--write docs/llm_int8.md README.md]

Also a profile excerpt (``lqer-hw profile`` at threshold 4). ``--write``
replaces the text between ``<!-- table:llm-int8 -->`` and ``<!-- /table:llm-int8 -->``
(and ``<!-- profile:llm-int8 -->`` ... ``<!-- /profile:llm-int8 -->``) in each file.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from sw.default_model import CALIB, DIRECTORY, HELDOUT  # noqa: E402
from sw.llm_int8_pipeline import Int8Options, evaluate  # noqa: E402
from sw.models import load_model, load_tokenizer  # noqa: E402
from sw.perplexity import perplexity  # noqa: E402
from sw.text import read_text, tokenize  # noqa: E402

MARKS = {"table": ("<!-- table:llm-int8 -->", "<!-- /table:llm-int8 -->"),
         "profile": ("<!-- profile:llm-int8 -->", "<!-- /profile:llm-int8 -->")}
PROFILE_THRESHOLD = 4.0


def tiny(family: str):
    """The tiny random checkpoints of tests/sw/test_sw_models.py (seed 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    if family == "opt":
        return OPTForCausalLM(OPTConfig(vocab_size=4096, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                        num_attention_heads=2, max_position_embeddings=64,
                                        word_embed_proj_dim=32)).eval()
    return LlamaForCausalLM(LlamaConfig(vocab_size=4096, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                        max_position_embeddings=64)).eval()


def int8_row(model, ids, seq_len, low: float) -> dict:
    batch = max(1, 4096 // seq_len)
    row = {"fp": perplexity(model, ids, seq_len=seq_len, batch_size=batch).perplexity}
    for key, options in (("w8a8", Int8Options(method="w8a8")), ("t6", Int8Options(threshold=6.0)),
                         ("low", Int8Options(threshold=low))):
        result, counts = evaluate(model, ids, options, seq_len=seq_len, batch_size=batch)
        row[key] = result.perplexity
        row[key + "_counts"] = counts
    row["low_threshold"] = low
    return row


def lqer_rows(model, tokenizer, ids, seq_len) -> dict:
    from sw.emulation import restore_model
    from sw.pipeline import CalibOptions, quantize_model
    from sw.qconfig import QuantConfig

    out = {}
    for method in ("mxint", "lqer", "l2qer"):
        config = QuantConfig(method=method, rank=32, w_width=4, a_width=8, block=16)
        originals, _ = quantize_model(model, tokenizer, config, calib_text=read_text(CALIB),
                                      calib=CalibOptions())
        out[method] = perplexity(model, ids, seq_len=seq_len, batch_size=4096 // seq_len).perplexity
        restore_model(model, originals)
    return out


def _found(counts: dict) -> str:
    return (f"{counts['mean_columns']:.1f} / {counts['max_columns']}, "
            f"{100 * counts['layers_affected']:.0f}% of layers")


def table() -> str:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = load_tokenizer(DIRECTORY)
    ids = tokenize(tokenizer, read_text(HELDOUT))
    default = load_model(DIRECTORY)
    rows = [("embedded OPT (4 layers, hidden 128)", int8_row(default, ids, 128, 4.0),
             lqer_rows(default, tokenizer, ids, 128))]
    for family, name in (("llama", "tiny random LLaMA (2 layers, hidden 32)"),
                         ("opt", "tiny random OPT (2 layers, hidden 32)")):
        rows.append((name, int8_row(tiny(family), ids, 64, 3.5), None))
    lines = ["| model | fp | W8A8 | LLM.int8() t=6 | LLM.int8() lower t | outlier columns per group at "
             "lower t (mean / max) | MXINT W4A8 | LQER W4A8 | L2QER W4A8 |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name, r, lq in rows:
        extra = (" | ".join(f"{lq[m]:.3f}" for m in ("mxint", "lqer", "l2qer")) if lq else "- | - | -")
        six = f"{r['t6']:.3f}" + ("" if r["t6_counts"]["max_columns"] == 0 else f" ({_found(r['t6_counts'])})")
        lines.append(f"| {name} | {r['fp']:.3f} | {r['w8a8']:.3f} | {six} | "
                     f"{r['low']:.3f} (t={r['low_threshold']:g}) | {_found(r['low_counts'])} | {extra} |")
    return "\n".join(lines) + "\n"


def profile_excerpt() -> str:
    """The profile of the embedded model at threshold 4 (whole-batch groups): last block's rows + summary."""
    from sw.models import quantizable_layers
    from sw.outliers import profile_model, summary_markdown

    model = load_model(DIRECTORY)
    ids = tokenize(load_tokenizer(DIRECTORY), read_text(HELDOUT))
    report = profile_model(model, ids, quantizable_layers(model), threshold=PROFILE_THRESHOLD, seq_len=128,
                           batch_size=32)
    return ("```\nlqer-hw profile --model default --data default --threshold 4 --out profile.json\n```\n\n"
            + summary_markdown(report, rows=r"layers\.3\."))


def write(path: str, texts: dict) -> None:
    with open(path) as fh:
        content = fh.read()
    for key, text in texts.items():
        begin, end = MARKS[key]
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if pattern.search(content):
            content = pattern.sub(lambda _: f"{begin}\n{text}{end}", content)
    with open(path, "w") as fh:
        fh.write(content)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", nargs="*", default=[], help="files whose marked table / profile to replace")
    args = p.parse_args(argv)
    texts = {"table": table(), "profile": profile_excerpt()}
    print(texts["table"] + "\n" + texts["profile"], end="")
    for path in args.write:
        write(path, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
