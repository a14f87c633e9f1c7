"""Perplexity of a causal LM over token ids, in non-overlapping windows.

Each window of ``seq_len`` ids is scored on its own: every id after the
window's first is predicted from the ids before it in that window. The
perplexity is ``exp(total NLL / predicted tokens)``, summed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sw.text import split_windows

__all__ = ["PerplexityResult", "perplexity"]


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float        # mean negative log-likelihood per predicted token (nats)
    tokens: int       # predicted tokens
    windows: int


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, *, seq_len: int, batch_size: int = 8,
               device: str | torch.device = "cpu", progress: bool = False,
               max_windows: int | None = None) -> PerplexityResult:
    """Perplexity of ``model`` on the 1-d ``ids``; needs at least 2 ids."""
    windows = split_windows(ids, seq_len)
    if max_windows is not None:
        windows = windows[:max_windows]
    if not windows:
        raise ValueError(f"text must give at least 2 tokens for perplexity; got {ids.numel()}")
    # equal-length windows go in batches; the shorter tail alone
    full = [w for w in windows if w.numel() == seq_len]
    batches = [torch.stack(full[i:i + batch_size]) for i in range(0, len(full), batch_size)]
    batches += [w[None] for w in windows if w.numel() != seq_len]
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc="perplexity", unit="batch", disable=None)
    total = 0.0
    count = 0
    for batch in iterator:
        batch = batch.to(device)
        logits = model(input_ids=batch).logits[:, :-1].float()
        targets = batch[:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
        total -= float(logp.double().sum())
        count += targets.numel()
    nll = total / count
    return PerplexityResult(perplexity=math.exp(nll), nll=nll, tokens=count, windows=len(windows))
