"""Outlier profiler: how many LLM.int8() outlier columns each layer's activations have.

Forward pre-hooks on the quantizable linear layers see every input of a float
model run over text. Each input is flattened to tokens and rounded to binary16,
and outliers are found exactly as :mod:`sw.llm_int8` finds them (an entry is an
outlier when ``|x| >= threshold``; a column is an outlier column of a detection
group of ``group`` consecutive tokens when one of its tokens has an outlier
entry there; ``group=None``: the whole forward batch). Per layer the profiler
keeps only histograms and per-column counts, so memory is flat in the amount
of text.

Reported per layer (the cost model sizes the hardware's outlier path from it):

* ``outlier_columns_per_group``: mean, p50, p99, max of the number of outlier
  columns in a group (percentiles by nearest rank: the smallest count with at
  least that share of groups at or below it), and ``histogram``
  (``[[count, groups], ...]``);
* ``groups_affected``: share of groups with at least one outlier column;
  ``tokens_affected``: share of token positions with at least one outlier entry
  (the paper's "sequence dimensions affected");
* ``columns``: the most frequent outlier columns (share of groups, share of tokens).

Model-wide: ``layers_affected`` (share of layers with any outlier), the same
per-group statistics over every (layer, group), and ``features``: per input
width, the columns that recur across layers, flagged ``systematic`` by the
paper's criterion (Dettmers et al. 2022, §4.1: magnitude >= threshold in at least
25% of the layers and at least 6% of the sequence positions).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from torch import nn

from sw import llm_int8 as ref
from sw.llm_int8_torch import binary16, detect_outliers
from sw.text import split_windows

__all__ = ["FORMAT", "VERSION", "TOP_COLUMNS", "SYSTEMATIC_LAYERS", "SYSTEMATIC_TOKENS",
           "OutlierProfiler", "profile_model", "nearest_rank", "summary_markdown"]

FORMAT = "lqer-hw-outliers"
VERSION = 1
TOP_COLUMNS = 16          # columns listed per layer
TOP_FEATURES = 32         # recurring features listed per input width
SYSTEMATIC_LAYERS = 0.25  # paper §4.1: in >= 25% of the layers ...
SYSTEMATIC_TOKENS = 0.06  # ... and >= 6% of the sequence positions


def nearest_rank(histogram: np.ndarray, q: float) -> int:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of the values whose counts are ``histogram[v]``."""
    total = int(histogram.sum())
    if total == 0:
        return 0
    rank = max(1, math.ceil(q * total))
    return int(np.searchsorted(np.cumsum(histogram), rank))


class _Tally:
    """Running counts of one layer."""

    def __init__(self, d_in: int):
        self.d_in = d_in
        self.tokens = 0
        self.groups = 0
        self.histogram = np.zeros(d_in + 1, dtype=np.int64)   # groups by outlier-column count
        self.column_groups = np.zeros(d_in, dtype=np.int64)   # groups where column j is an outlier
        self.column_tokens = np.zeros(d_in, dtype=np.int64)   # tokens with |x_tj| >= threshold
        self.tokens_affected = 0
        self.entries = 0
        self.max_abs = 0.0

    def add(self, x16: torch.Tensor, threshold: float, group: int | None) -> None:
        tokens = x16.shape[0]
        if tokens == 0:
            return
        mag = x16.abs()
        n_groups = 1 if group is None else -(-tokens // group)
        self.tokens += tokens
        self.groups += n_groups
        largest = float(mag.max())
        self.max_abs = max(self.max_abs, largest)
        if largest < threshold:  # no outlier in this input
            self.histogram[0] += n_groups
            return
        entries, columns = detect_outliers(x16, threshold, group, mag=mag)
        per_group = columns.sum(1).cpu().numpy()
        self.histogram += np.bincount(per_group, minlength=self.d_in + 1)
        self.column_groups += columns.sum(0).cpu().numpy()
        self.column_tokens += entries.sum(0).cpu().numpy()
        self.tokens_affected += int(entries.any(1).sum())
        self.entries += int(entries.sum())

    def record(self) -> dict:
        groups = max(self.groups, 1)
        tokens = max(self.tokens, 1)
        order = np.argsort(-self.column_groups, kind="stable")
        top = [int(j) for j in order[:TOP_COLUMNS] if self.column_groups[j] > 0]
        values = np.arange(self.d_in + 1)
        return {
            "d_in": self.d_in,
            "tokens": self.tokens,
            "groups": self.groups,
            "outlier_columns_per_group": _stats(self.histogram),
            "histogram": [[int(v), int(n)] for v, n in zip(values, self.histogram) if n],
            "groups_affected": float(self.groups - self.histogram[0]) / groups if self.groups else 0.0,
            "tokens_affected": self.tokens_affected / tokens,
            "outlier_entries": self.entries,
            "distinct_columns": int((self.column_groups > 0).sum()),
            "max_abs": self.max_abs,
            "columns": [{"column": j, "groups": int(self.column_groups[j]) / groups,
                         "tokens": int(self.column_tokens[j]) / tokens} for j in top],
        }


def _stats(histogram: np.ndarray) -> dict:
    total = int(histogram.sum())
    mean = float((np.arange(histogram.size) * histogram).sum() / total) if total else 0.0
    return {"mean": mean, "p50": nearest_rank(histogram, 0.50), "p99": nearest_rank(histogram, 0.99),
            "max": int(np.flatnonzero(histogram)[-1]) if total else 0}


class OutlierProfiler:
    """Forward pre-hooks that tally outliers of ``layers`` (name -> ``nn.Linear``); a context manager.

    ``threshold`` (> 0, finite) and ``group`` (tokens per detection group or
    ``None``) follow :mod:`sw.llm_int8`. A non-finite input raises
    ``ValueError`` naming the layer.
    """

    def __init__(self, layers: dict[str, nn.Module], *, threshold: float = ref.THRESHOLD,
                 group: int | None = None):
        threshold = ref.check_threshold(threshold)
        if threshold == 0 or math.isinf(threshold):
            raise ValueError(f"threshold must be a finite number > 0; got {threshold!r}")
        self.threshold = threshold
        self.group = ref.check_group(group)
        if not layers:
            raise ValueError("layers must name at least one linear layer; got none")
        self.layers = dict(layers)
        self.tallies = {name: _Tally(m.in_features) for name, m in self.layers.items()}
        self._handles = []

    def _hook(self, name: str):
        tally = self.tallies[name]

        def hook(module, inputs):
            x = inputs[0]
            tally.add(binary16(x.reshape(-1, x.shape[-1]).detach(), name), self.threshold, self.group)
        return hook

    def __enter__(self):
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False

    def report(self) -> dict:
        """The profile as a JSON-ready dict (``summary`` and ``layers``); see the module docstring."""
        layers = {name: tally.record() for name, tally in self.tallies.items()}
        histogram = np.zeros(max(t.d_in for t in self.tallies.values()) + 1, dtype=np.int64)
        for t in self.tallies.values():
            histogram[: t.histogram.size] += t.histogram
        affected = [name for name, t in self.tallies.items() if t.histogram[0] < t.groups]
        tokens = sum(t.tokens for t in self.tallies.values())
        summary = {
            "layers": len(layers),
            "layers_affected": len(affected) / len(layers),
            "tokens_affected": (sum(t.tokens_affected for t in self.tallies.values()) / tokens
                                if tokens else 0.0),
            "outlier_columns_per_group": _stats(histogram),
            "features": self._features(),
        }
        return {"format": FORMAT, "version": VERSION, "threshold": self.threshold, "group": self.group,
                "summary": summary, "layers": layers}

    def _features(self) -> list[dict]:
        """Columns recurring across layers of the same input width, most layers first."""
        by_width = defaultdict(list)
        for t in self.tallies.values():
            by_width[t.d_in].append(t)
        features = []
        for d_in, tallies in sorted(by_width.items()):
            present = np.stack([t.column_groups > 0 for t in tallies])            # (layers, d_in)
            share = np.stack([t.column_tokens / max(t.tokens, 1) for t in tallies])
            n_layers = present.sum(0)
            tokens = np.where(n_layers > 0, (share * present).sum(0) / np.maximum(n_layers, 1), 0.0)
            order = np.lexsort((-tokens, -n_layers))
            for j in order[:TOP_FEATURES]:
                if n_layers[j] == 0:
                    break
                layers_share = n_layers[j] / len(tallies)
                features.append({"d_in": d_in, "column": int(j), "layers": float(layers_share),
                                 "tokens": float(tokens[j]),
                                 "systematic": bool(layers_share >= SYSTEMATIC_LAYERS
                                                    and tokens[j] >= SYSTEMATIC_TOKENS)})
        return features


@torch.no_grad()
def profile_model(model: nn.Module, ids: torch.Tensor, layers: dict[str, nn.Module], *,
                  threshold: float = ref.THRESHOLD, group: int | None = None, seq_len: int,
                  batch_size: int = 8, device: str | torch.device = "cpu", progress: bool = False,
                  max_windows: int | None = None) -> dict:
    """Run ``model`` over ``ids`` in windows of ``seq_len`` (batches of ``batch_size``) and profile.

    Windows are those of :func:`sw.perplexity.perplexity` (non-overlapping; the
    shorter tail alone). Returns :meth:`OutlierProfiler.report` plus ``tokens``,
    ``windows``, ``seq_len`` and ``batch_size``.
    """
    profiler = OutlierProfiler(layers, threshold=threshold, group=group)
    windows = split_windows(ids, seq_len)
    if max_windows is not None:
        windows = windows[:max_windows]
    if not windows:
        raise ValueError(f"data must give at least 2 tokens for a profile; got {ids.numel()}")
    full = [w for w in windows if w.numel() == seq_len]
    batches = [torch.stack(full[i:i + batch_size]) for i in range(0, len(full), batch_size)]
    batches += [w[None] for w in windows if w.numel() != seq_len]
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc="profile", unit="batch", disable=None)
    with profiler:
        for batch in iterator:
            model(input_ids=batch.to(device))
    report = profiler.report()
    report.update(tokens=int(sum(w.numel() for w in windows)), windows=len(windows), seq_len=seq_len,
                  batch_size=batch_size)
    return report


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def summary_markdown(report: dict, *, max_features: int = 8, rows: str | None = None) -> str:
    """A Markdown summary of a profile: one table row per layer, then the model-wide figures.

    ``rows``: a regular expression; only the layers it matches get a row (the
    model-wide figures still cover every layer).
    """
    import re
    group = report["group"]
    lines = [f"Outliers |x| >= {report['threshold']:g}, detection group "
             f"{'the whole batch' if group is None else f'{group} tokens'}"
             + (f", {report['tokens']} tokens" if "tokens" in report else "") + ".",
             "",
             "| layer | d_in | outlier columns / group: mean | p50 | p99 | max | groups affected "
             "| tokens affected | top columns |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in report["layers"].items():
        if rows is not None and not re.search(rows, name):
            continue
        s = r["outlier_columns_per_group"]
        top = ", ".join(str(c["column"]) for c in r["columns"][:4]) or "-"
        lines.append(f"| {name} | {r['d_in']} | {s['mean']:.2f} | {s['p50']} | {s['p99']} | {s['max']} "
                     f"| {_pct(r['groups_affected'])} | {_pct(r['tokens_affected'])} | {top} |")
    s = report["summary"]
    t = s["outlier_columns_per_group"]
    systematic = [f for f in s["features"] if f["systematic"]]
    lines += ["",
              f"Layers affected: {_pct(s['layers_affected'])} of {s['layers']}; token positions "
              f"affected: {_pct(s['tokens_affected'])}; outlier columns per group over all layers: "
              f"mean {t['mean']:.2f}, p50 {t['p50']}, p99 {t['p99']}, max {t['max']}.",
              f"Systematic features (>= {SYSTEMATIC_LAYERS:.0%} of layers, >= {SYSTEMATIC_TOKENS:.0%} "
              f"of positions): {len(systematic)}"
              + (": " + ", ".join(f"column {f['column']} of {f['d_in']} ({_pct(f['layers'])} of layers, "
                                  f"{_pct(f['tokens'])} of positions)" for f in systematic[:max_features])
                 if systematic else "") + "."]
    return "\n".join(lines) + "\n"
