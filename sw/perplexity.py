"""Perplexity of a causal LM over token ids, in non-overlapping windows.

Each window of ``seq_len`` ids is scored on its own: every id after the
window's first is predicted from the ids before it in that window. The
perplexity is ``exp(total NLL / predicted tokens)``, summed in float64.

A perplexity over a handful of tokens says nothing about a model, so fewer
than :data:`MIN_TOKENS` predicted tokens (after ``max_windows``) is a
``TextError``. Token ids beyond the model's embedding are a ``ModelError``;
a batch whose log-likelihood is not finite is a
:class:`sw.finite.NonFiniteError` naming the first module whose output is
not finite. All three are ``ValueError``s with a one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sw.finite import NonFiniteError, describe_origin, first_nonfinite, is_nonfinite_input_error
from sw.models import check_token_ids
from sw.text import TextError, split_windows

__all__ = ["MIN_TOKENS", "PerplexityResult", "perplexity", "predicted_tokens"]

# The fewest predicted (scored) tokens a perplexity is reported over: below it the figure is
# noise (a standard error of several per cent on the embedded model). `lqer-hw eval` checks it
# before any model work; the library function checks it too.
MIN_TOKENS = 100


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float        # mean negative log-likelihood per predicted token (nats)
    tokens: int       # predicted tokens
    windows: int


def predicted_tokens(n_ids: int, seq_len: int, max_windows: int | None = None) -> int:
    """How many tokens :func:`perplexity` predicts from ``n_ids`` ids (each window predicts all but its first)."""
    windows = [min(seq_len, n_ids - start) for start in range(0, n_ids, seq_len)]
    windows = [w for w in windows if w >= 2]
    if max_windows is not None:
        windows = windows[:max_windows]
    return sum(w - 1 for w in windows)


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, *, seq_len: int, batch_size: int = 8,
               device: str | torch.device = "cpu", progress: bool = False,
               max_windows: int | None = None) -> PerplexityResult:
    """Perplexity of ``model`` on the 1-d ``ids``; needs at least :data:`MIN_TOKENS` predicted tokens."""
    windows = split_windows(ids, seq_len)
    if max_windows is not None:
        windows = windows[:max_windows]
    predicted = sum(w.numel() - 1 for w in windows)
    if predicted < MIN_TOKENS:
        cap = f", at most {max_windows} of them" if max_windows is not None else ""
        raise TextError(f"text must give at least {MIN_TOKENS} predicted tokens for a perplexity; got "
                        f"{predicted} (from {ids.numel()} tokens in windows of {seq_len}{cap})")
    check_token_ids(model, torch.cat(windows))
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
    for index, batch in enumerate(iterator):
        batch = batch.to(device)
        try:
            logits = model(input_ids=batch).logits[:, :-1].float()
        except ValueError as exc:
            if not is_nonfinite_input_error(exc):  # a bit-true layer refuses NaN/inf input
                raise
            nll = math.nan
        else:
            targets = batch[:, 1:]
            logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
            nll = -float(logp.double().sum())  # the one sync per batch
        if not math.isfinite(nll):
            origin = first_nonfinite(model, lambda: model(input_ids=batch))
            raise NonFiniteError(f"model outputs must be finite; batch {index} of {len(batches)} gives "
                                 f"non-finite values, first output by {describe_origin(origin)}")
        total += nll
        count += batch[:, 1:].numel()
    nll = total / count
    return PerplexityResult(perplexity=math.exp(nll), nll=nll, tokens=count, windows=len(windows))
