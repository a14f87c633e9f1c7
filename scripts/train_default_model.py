"""Train the embedded default model (a small OPT causal LM) and its tokenizer.

Deterministic: fixed seed, deterministic algorithms, one CPU thread (so the
result does not depend on the core count); the corpus is text that every
CPython carries -- the ``pydoc_data`` topics and the docstrings of the
standard library, read with ``ast`` (nothing is imported or executed).
Documents go to the held-out split by a hash of their name, so the split
does not depend on file order.

The same CPython minor version, torch build and CPU give the same bytes;
the committed files record which ones were used (``training.json``).

    .venv/bin/python scripts/train_default_model.py            # ~13 min on one core
    .venv/bin/python scripts/train_default_model.py --steps 20 --out /tmp/m   # smoke run
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from sw.text import tokenize  # noqa: E402

SEED = 20240701
VOCAB = 4096
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]  # OPT's ids 0..3 (bos/eos = 2, pad = 1)
HIDDEN, LAYERS, HEADS, FFN, MAX_POS = 128, 4, 4, 512, 128
SEQ_LEN, BATCH = 128, 32
LR, WARMUP, WEIGHT_DECAY = 3e-3, 60, 0.1
HELDOUT_EVERY = 20  # 1 in 20 documents, by name hash
CALIB_CHARS = 120_000

# Standard-library folders left out: tests, GUI tools, vendored or generated code.
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "tkinter", "turtledemo",
             "ensurepip", "__pycache__", "unittest", "dist-packages"}


def corpus_documents() -> dict[str, str]:
    """Name -> text for every pydoc topic and every standard-library file with docstrings."""
    import pydoc_data.topics

    docs = {f"topic:{key}": text.strip() for key, text in pydoc_data.topics.topics.items()}
    root = sysconfig.get_paths()["stdlib"]
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(("test", "config-")))
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            path = os.path.join(folder, file)
            try:
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            parts = []
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and doc.strip():
                        parts.append(doc.strip())
            if parts:
                docs["module:" + os.path.relpath(path, root)] = "\n\n".join(parts)
    return docs


def split_documents(docs: dict[str, str]) -> tuple[str, str]:
    """(train text, held-out text); a document is held out when its name hash says so."""
    train, held = [], []
    for name in sorted(docs):
        h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
        (held if h % HELDOUT_EVERY == 0 else train).append(docs[name])
    return "\n\n".join(train) + "\n", "\n\n".join(held) + "\n"


def train_tokenizer(text: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    pieces = [text[i:i + 4096] for i in range(0, len(text), 4096)]
    tok.train_from_iterator(pieces, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_model(vocab_size: int):
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, ffn_dim=FFN,
        num_attention_heads=HEADS, max_position_embeddings=MAX_POS, word_embed_proj_dim=HIDDEN,
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
        pad_token_id=1, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True,
    )
    return OPTForCausalLM(config)


def learning_rate(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def mean_nll(model, ids: torch.Tensor) -> tuple[float, int]:
    """Mean next-token NLL over non-overlapping SEQ_LEN windows (each window's first token unpredicted)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, ids.numel() - 1, SEQ_LEN):
            window = ids[start:start + SEQ_LEN]
            if window.numel() < 2:
                break
            logits = model(input_ids=window[None]).logits[0, :-1].double()
            nll = torch.nn.functional.cross_entropy(logits, window[1:], reduction="sum")
            total += float(nll)
            count += window.numel() - 1
    return total / count, count


def unigram_nll(train_ids: torch.Tensor, ids: torch.Tensor, vocab: int) -> float:
    """Held-out NLL of an add-one-smoothed unigram model of the training ids (same predicted tokens)."""
    counts = torch.bincount(train_ids, minlength=vocab).double() + 1.0
    logp = torch.log(counts / counts.sum())
    predicted = torch.cat([w[1:] for w in torch.split(ids, SEQ_LEN) if w.numel() >= 2])
    return float(-logp[predicted].mean())


def train(model, ids: torch.Tensor, steps: int, log) -> list[float]:
    gen = torch.Generator().manual_seed(SEED + 1)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "embed_positions" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "embed_positions" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))
    losses = []
    model.train()
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps)
        starts = torch.randint(0, ids.numel() - SEQ_LEN, (BATCH,), generator=gen)
        batch = torch.stack([ids[s:s + SEQ_LEN] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}/{steps}  loss {loss.item():.4f}  {time.time() - t0:7.1f} s")
    return losses


def write_outputs(out: str, model, tokenizer, heldout: str, calib: str, record: dict) -> None:
    """Write everything into a temporary folder, then move each file into ``out`` (atomic per file)."""
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".train-", dir=out)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        portable_tokenizer_config(tmp)
        for name, text in (("heldout.txt", heldout), ("calib.txt", calib)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        with open(os.path.join(tmp, "training.json"), "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def portable_tokenizer_config(folder: str) -> None:
    """Name the generic fast-tokenizer class, which transformers 4.x and 5.x both load."""
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path) as f:
        config = json.load(f)
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["model_max_length"] = MAX_POS
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "sw", "default_model"))
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args(argv)

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    docs = corpus_documents()
    train_text, heldout = split_documents(docs)
    log(f"corpus: {len(docs)} documents, train {len(train_text)} chars, held-out {len(heldout)} chars")
    tokenizer = train_tokenizer(train_text)
    train_ids = tokenize(tokenizer, train_text)
    held_ids = tokenize(tokenizer, heldout)
    log(f"tokens: train {train_ids.numel()}, held-out {held_ids.numel()}, vocab {len(tokenizer)}")

    model = build_model(len(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    log(f"model: {params} parameters")
    t0 = time.time()
    losses = train(model, train_ids, args.steps, log)
    seconds = time.time() - t0
    nll, count = mean_nll(model, held_ids)
    uni = unigram_nll(train_ids, held_ids, len(tokenizer))
    log(f"held-out perplexity {math.exp(nll):.3f} (unigram {math.exp(uni):.1f}) over {count} tokens")

    record = {
        "seed": SEED, "steps": args.steps, "batch": BATCH, "seq_len": SEQ_LEN, "lr": LR,
        "warmup": WARMUP, "weight_decay": WEIGHT_DECAY, "parameters": params,
        "train_tokens": int(train_ids.numel()), "heldout_tokens": int(held_ids.numel()),
        "documents": len(docs), "heldout_every": HELDOUT_EVERY,
        "final_losses": [round(x, 5) for x in losses[-10:]],
        "heldout_perplexity": math.exp(nll), "unigram_perplexity": math.exp(uni),
        "train_seconds": round(seconds, 1), "threads": 1,
        "python": platform.python_version(), "torch": torch.__version__,
        "machine": platform.machine(),
    }
    # calibration text: the first CALIB_CHARS of the training split (cut at a line end)
    cut = train_text.rfind("\n", 0, CALIB_CHARS) + 1
    write_outputs(args.out, model, tokenizer, heldout, train_text[:cut], record)
    log(f"wrote {args.out}: model.safetensors sha256 "
        f"{sha256_file(os.path.join(args.out, 'model.safetensors'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
