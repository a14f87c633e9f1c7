"""The L2QER activation scale, collected by forward hooks (docs/design.md, Datapaths).

For each quantized linear layer with input ``x`` of width ``d_in``:

* per calibration batch, ``m_b = mean(|x|)`` over every token of the batch
  (all axes but the last);
* ``s`` is the running element-wise maximum of ``m_b`` over batches;
* at the end ``s = max(s, 1e-4)`` and ``s = s / sqrt(min(s) * max(s))``.

Only one ``d_in`` vector per layer is kept between batches, so memory stays
flat however many sequences are used. Statistics are taken in float64.

Bad input is one line (a ``ValueError`` subclass): token ids outside the
model's embedding (a tokenizer larger than the model's vocabulary), and
non-finite layer inputs (a NaN norm weight, say) -- checked once per batch,
then traced to the first module whose output is not finite
(:mod:`sw.finite`), instead of a non-finite scale reaching the SVD.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch
from torch import nn

from sw.finite import NonFiniteError, describe_origin, first_nonfinite
from sw.models import check_token_ids

__all__ = ["SCALE_FLOOR", "CalibrationError", "ScaleCollector", "normalise_scale", "calibrate",
           "calibration_batches"]

SCALE_FLOOR = 1e-4


class CalibrationError(ValueError):
    """Calibration that cannot produce a scale (no data, a layer never called, bad sizes)."""


def normalise_scale(running_max: torch.Tensor) -> torch.Tensor:
    """``s = max(s, 1e-4); s / sqrt(min(s) * max(s))`` (float64)."""
    s = running_max.to(torch.float64).clamp_min(SCALE_FLOOR)
    return s / torch.sqrt(s.min() * s.max())


class InputHooks:
    """Forward pre-hooks on named layers, installed by ``with`` and removed on exit; a
    subclass records each call's input in ``_record(name, x)`` (``x``: the layer's first
    positional argument). :meth:`paused` turns recording off for a diagnostic forward."""

    def __init__(self, layers: dict[str, nn.Linear]):
        self._layers = dict(layers)
        self._handles = []
        self._paused = False

    def __enter__(self):
        for name, layer in self._layers.items():
            self._handles.append(layer.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @contextlib.contextmanager
    def paused(self):
        """A context in which the hooks record nothing (for a diagnostic forward)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def _hook(self, name: str):
        def hook(module, args):
            if not self._paused:
                self._record(name, args[0])
        return hook

    def _record(self, name: str, x: torch.Tensor) -> None:
        raise NotImplementedError


class ScaleCollector(InputHooks):
    """Forward pre-hooks on named linear layers that keep the running max of per-batch mean |x|.

    Use as a context manager around the calibration forward passes; call
    :meth:`end_batch` after each batch (it folds that batch's means into the
    running maximum).
    """

    def __init__(self, layers: dict[str, nn.Linear]):
        super().__init__(layers)
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.running_max: dict[str, torch.Tensor] = {}
        self.batches = 0

    def _record(self, name: str, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        total = flat.abs().sum(dim=0)
        # a layer may run more than once per batch (shared modules): pool its tokens
        if name in self._sums:
            self._sums[name] += total
            self._counts[name] += flat.shape[0]
        else:
            self._sums[name] = total
            self._counts[name] = flat.shape[0]

    def end_batch(self) -> None:
        for name, total in self._sums.items():
            mean = total / self._counts[name]
            prev = self.running_max.get(name)
            self.running_max[name] = mean if prev is None else torch.maximum(prev, mean)
        self._sums.clear()
        self._counts.clear()
        self.batches += 1

    def first_nonfinite_layer(self) -> str | None:
        """The first layer (in layer order) whose running statistic is not finite; one device sync."""
        names = [n for n in self._layers if n in self.running_max]
        if not names:
            return None
        finite = torch.stack([torch.isfinite(self.running_max[n]).all() for n in names]).cpu()
        bad = torch.nonzero(~finite)
        return names[int(bad[0, 0])] if bad.numel() else None

    def scales(self) -> dict[str, torch.Tensor]:
        """The normalised scale of every layer (float64, on the layer's device)."""
        if self.batches == 0:
            raise CalibrationError("calibration must see at least one batch; got none")
        missing = [n for n in self._layers if n not in self.running_max]
        if missing:
            raise CalibrationError(f"calibration never reached layer {missing[0]} "
                                   f"({len(missing)} layers unseen)")
        return {name: normalise_scale(self.running_max[name]) for name in self._layers}


def calibration_batches(ids: torch.Tensor, *, sequences: int, length: int,
                        batch_size: int) -> list[torch.Tensor]:
    """The first ``sequences`` non-overlapping windows of ``length`` ids, grouped in batches.

    ``CalibrationError`` when the ids hold fewer than ``sequences * length`` tokens.
    """
    needed = sequences * length
    if ids.numel() < needed:
        raise CalibrationError(f"calibration text must give at least {needed} tokens "
                               f"({sequences} sequences x {length}); got {ids.numel()}")
    windows = ids[:needed].reshape(sequences, length)
    return list(torch.split(windows, batch_size))


@torch.no_grad()
def calibrate(model: nn.Module, layers: dict[str, nn.Linear], batches: Iterable[torch.Tensor],
              *, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, torch.Tensor]:
    """Run ``batches`` of token ids through ``model``; return the L2QER scale of each layer.

    Raises ``ModelError`` for a token id beyond the model's embedding and
    :class:`sw.finite.NonFiniteError` when a layer's input is not finite,
    naming the layer and the first module whose output is not finite.
    """
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc="calibrate", unit="batch", disable=None)
    with ScaleCollector(layers) as collector:
        for index, batch in enumerate(iterator):
            check_token_ids(model, batch, name="calibration text")
            batch = batch.to(device)
            model(input_ids=batch)
            collector.end_batch()
            layer = collector.first_nonfinite_layer()
            if layer is not None:
                with collector.paused():
                    origin = first_nonfinite(model, lambda: model(input_ids=batch))
                raise NonFiniteError(f"calibration inputs must be finite; layer {layer} sees a non-finite "
                                     f"value in batch {index}, first output by {describe_origin(origin)}")
    return collector.scales()
