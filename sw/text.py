"""Text files to token ids, and token ids to evaluation windows.

One tokenization path serves training of the embedded model, calibration
and perplexity, so all three see the same ids for the same text.
Text is tokenized in chunks cut at line ends, which keeps memory flat on
large files; no special tokens are added.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch

__all__ = ["TextError", "read_text", "iter_chunks", "tokenize", "split_windows"]

# Characters per tokenizer call; chunks end at a newline when one is near.
CHUNK_CHARS = 1 << 16


class TextError(ValueError):
    """A text input that cannot be used (missing, unreadable, empty, too short)."""


def read_text(path: str | os.PathLike, *, name: str = "text") -> str:
    """The UTF-8 text of ``path``; ``TextError`` naming ``name`` when missing, unreadable or empty."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TextError(f"{name} must be an existing text file; got {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TextError(f"{name} must be a readable UTF-8 text file; got {path!r} ({exc})") from None
    if not text.strip():
        raise TextError(f"{name} must contain text; got an empty file {path!r}")
    return text


def iter_chunks(text: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """Consecutive pieces of ``text`` of about ``chunk_chars``, cut just after a newline when possible."""
    start = 0
    n = len(text)
    while start < n:
        end = min(start + chunk_chars, n)
        if end < n:
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        yield text[start:end]
        start = end


def tokenize(tokenizer, text: str, *, max_tokens: int | None = None) -> torch.Tensor:
    """Token ids (1-d int64) of ``text``, chunk by chunk, stopping once ``max_tokens`` are reached."""
    pieces: list[list[int]] = []
    total = 0
    for chunk in iter_chunks(text):
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        pieces.append(ids)
        total += len(ids)
        if max_tokens is not None and total >= max_tokens:
            break
    flat = [i for piece in pieces for i in piece]
    if max_tokens is not None:
        flat = flat[:max_tokens]
    return torch.tensor(flat, dtype=torch.int64)


def split_windows(ids: torch.Tensor, seq_len: int) -> list[torch.Tensor]:
    """Non-overlapping windows of ``seq_len`` ids; a shorter tail is kept when it has >= 2 ids."""
    windows = list(torch.split(ids, seq_len))
    if windows and windows[-1].numel() < 2:
        windows.pop()
    return windows
