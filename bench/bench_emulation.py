"""Emulation overhead: forward time of the W4A8 L2QER model (fast arithmetic) / the float model.

Same inputs, same run, median of several repeats, for the embedded default
model and for a wider random OPT (where the GEMMs dominate as in real
LLMs). The goal is <= 1.5x in fast mode. The bit-true arithmetic is timed
once on the embedded model for scale.

    .venv/bin/python bench/bench_emulation.py [--threads N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from sw.default_model import CALIB, DIRECTORY, HELDOUT  # noqa: E402
from sw.emulation import emulate_model, restore_model  # noqa: E402
from sw.models import load_model, load_tokenizer  # noqa: E402
from sw.pipeline import CalibOptions, build_factors  # noqa: E402
from sw.qconfig import QuantConfig  # noqa: E402
from sw.text import read_text, tokenize  # noqa: E402

CONFIG = QuantConfig(method="l2qer", rank=32, w_width=4, a_width=8, block=16)


@torch.no_grad()
def timed(model, batch, repeats: int) -> float:
    model(input_ids=batch)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(input_ids=batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def wide_opt():
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    return OPTForCausalLM(OPTConfig(vocab_size=4096, hidden_size=1024, num_hidden_layers=2, ffn_dim=4096,
                                    num_attention_heads=16, max_position_embeddings=128,
                                    word_embed_proj_dim=1024)).eval()


def measure(name, model, tokenizer, batch, repeats, *, bit_true=False):
    factors, _ = build_factors(model, tokenizer, CONFIG, calib_text=read_text(CALIB),
                               calib=CalibOptions(sequences=8, length=128))
    t_float = timed(model, batch, repeats)
    originals = emulate_model(model, factors, mode="l2qer", arithmetic="fast")
    t_fast = timed(model, batch, repeats)
    restore_model(model, originals)
    t_float2 = timed(model, batch, repeats)  # float again, to see drift
    t_float = min(t_float, t_float2)
    print(f"{name}: float {t_float * 1e3:8.1f} ms   L2QER W4A8 fast {t_fast * 1e3:8.1f} ms   "
          f"ratio {t_fast / t_float:.2f}x  ({batch.numel()} tokens per forward)")
    if bit_true:
        originals = emulate_model(model, factors, mode="l2qer", arithmetic="bit-true")
        t_bit = timed(model, batch[:1], 1)
        restore_model(model, originals)
        t_one = timed(model, batch[:1], repeats)
        print(f"{name}: bit-true {t_bit * 1e3:8.1f} ms for {batch[:1].numel()} tokens, "
              f"{t_bit / t_one:.0f}x the float model")
    return t_fast / t_float


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(DIRECTORY)
    ids = tokenize(tokenizer, read_text(HELDOUT), max_tokens=8 * 128)
    batch = ids.reshape(8, 128)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    measure("embedded OPT (hidden 128)", load_model(DIRECTORY), tokenizer, batch, 15, bit_true=True)
    measure("random OPT (hidden 1024)", wide_opt(), tokenizer, batch, 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
