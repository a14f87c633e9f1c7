"""Where a model's values first stop being finite (NaN or inf).

Checking every module output on every forward would cost a pass over each
activation; the callers (calibration, perplexity) check one reduced value per
forward instead (one device sync) and, only when that value is not finite,
run the same batch again under :class:`FiniteProbe` to find the first module
whose output is not finite. The probe registers a forward hook on every
module; each hook keeps a 0-d ``isfinite(...).all()`` tensor on the device,
and one sync at the end finds the first module (in the order the modules
finished their forward, so a layer is named before the block holding it).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["NonFiniteError", "FiniteProbe", "first_nonfinite", "describe_origin", "is_nonfinite_input_error"]


class NonFiniteError(ValueError):
    """A model that produces NaN or inf; the message is one line naming where it starts."""


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif hasattr(value, "to_tuple"):  # transformers ModelOutput
        yield from _tensors(value.to_tuple())


class FiniteProbe:
    """Forward hooks on every module of ``model`` recording whether its floating outputs are finite."""

    def __init__(self, model: nn.Module):
        self._model = model
        self._handles = []
        self._flags: list[tuple[str, nn.Module, torch.Tensor]] = []

    def __enter__(self) -> "FiniteProbe":
        for name, module in self._model.named_modules():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, args, output):
            flags = [torch.isfinite(t).all() for t in _tensors(output) if t.is_floating_point()]
            if flags:
                self._flags.append((name, module, torch.stack(flags).all()))
        return hook

    def first(self) -> tuple[str, nn.Module] | None:
        """``(name, module)`` of the first module whose output was not finite, or None."""
        if not self._flags:
            return None
        finite = torch.stack([flag for _, _, flag in self._flags]).cpu()  # the one sync
        bad = torch.nonzero(~finite)
        if not bad.numel():
            return None
        name, module, _ = self._flags[int(bad[0, 0])]
        return (name or "the model"), module


def first_nonfinite(model: nn.Module, run: Callable[[], object]) -> tuple[str, nn.Module] | None:
    """Call ``run()`` (a forward of ``model``) under a :class:`FiniteProbe`; its first non-finite module.

    A ``ValueError`` from inside the forward (a quantizer refusing non-finite
    input, say) ends the run; the modules that finished before it still count.
    """
    with torch.no_grad(), FiniteProbe(model) as probe:
        try:
            run()
        except ValueError:
            pass
    return probe.first()


def is_nonfinite_input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an MXINT quantizer's refusal of a NaN/inf input (``sw.mxint*``)."""
    return isinstance(exc, ValueError) and "MXINT input must be finite" in str(exc)


def describe_origin(origin: tuple[str, nn.Module] | None) -> str:
    """``"NAME (TYPE)"`` plus the first non-finite parameter the module itself holds, if any."""
    if origin is None:
        return "no module output (the non-finite value arises after the model's last module)"
    name, module = origin
    text = f"{name} ({type(module).__name__})"
    for pname, param in module.named_parameters(recurse=False):
        bad = ~torch.isfinite(param.detach())
        if bool(bad.any()):
            index = tuple(int(i) for i in torch.nonzero(bad)[0])
            return f"{text}, whose {pname} holds {param.detach()[index].item()} at index {index}"
    return text
