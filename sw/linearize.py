"""Every linear map of a decoder block as a plain ``nn.Linear``, so one quantization path serves all.

Two layouts hold linear weights in something other than ``nn.Linear``:

* **Conv1D** (``transformers.pytorch_utils.Conv1D``: GPT-2 and its family):
  ``y = x @ W + b`` with ``W`` stored ``(d_in, d_out)``, the transpose of
  ``nn.Linear``'s. It becomes an ``nn.Linear`` whose weight is the transposed
  view of the same storage (no copy); GPT-2's fused q/k/v ``c_attn`` stays one
  layer of width ``3 * hidden``.
* **Fused experts** (transformers 5 mixture-of-experts, e.g. Mixtral, PhiMoE,
  Qwen-MoE, OLMoE: ``gate_up_proj`` ``(E, 2I, H)`` and ``down_proj``
  ``(E, H, I)`` parameters, routed by ``forward(hidden, top_k_index,
  top_k_weights)``). It becomes :class:`ExpertLinears`: per expert ``e`` an
  ``nn.Linear`` ``gate_up_proj.e`` (``H -> 2I``) and ``down_proj.e``
  (``I -> H``) on views of the same storage, and the eager expert loop of
  transformers (``integrations/moe.py``): ``act(gate) * up`` of the
  concatenated halves, the down projection, times the routing weight, summed
  over the chosen experts. Each expert GEMM is then quantized like any layer.
  Only that layout is taken (``is_concatenated``, not ``is_transposed``, no
  bias, gated by ``act_fn``, no post-expert norm); any other fused layout is
  left as it is, and :func:`sw.models.quantizable_layers` reports it.

Each new linear carries ``weight_layout`` (``"conv1d"`` or ``"experts"``),
which the factor files record.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ExpertLinears", "linearize", "is_conv1d", "fused_experts_layout", "WEIGHT_LAYOUTS"]

# how a quantized layer's weight was stored in the checkpoint
WEIGHT_LAYOUTS = ("linear", "conv1d", "experts")


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is transformers' GPT-2-style ``Conv1D`` (weight ``(d_in, d_out)``)."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(module, Conv1D)


def fused_experts_layout(module: nn.Module) -> str | None:
    """None when ``module`` holds fused experts :class:`ExpertLinears` can take, else why not.

    Only meaningful for a module that holds a parameter of 3 or more dimensions.
    """
    params = dict(module.named_parameters(recurse=False))
    gate_up, down = params.get("gate_up_proj"), params.get("down_proj")
    if gate_up is None or down is None or gate_up.dim() != 3 or down.dim() != 3:
        return "not gate_up_proj (E, 2I, H) and down_proj (E, H, I) parameters"
    if set(params) != {"gate_up_proj", "down_proj"} or getattr(module, "has_bias", False):
        return "expert biases or other parameters"
    if getattr(module, "is_transposed", False):
        return "transposed expert weights"
    if not getattr(module, "is_concatenated", True):
        return "interleaved gate/up rows"
    if not getattr(module, "has_gate", True) or getattr(module, "has_post_expert_norm", False):
        return "no gate or a post-expert norm"
    try:
        from transformers.integrations.moe import _default_apply_gate
    except ImportError:  # pragma: no cover
        return "an unknown transformers version"
    if getattr(type(module), "_apply_gate", _default_apply_gate) is not _default_apply_gate:
        return "its own gate function"
    if not isinstance(getattr(module, "act_fn", None), nn.Module):
        return "no act_fn"
    experts, two_i, hidden = gate_up.shape
    if two_i % 2 or tuple(down.shape) != (experts, hidden, two_i // 2):
        return f"shapes {tuple(gate_up.shape)} and {tuple(down.shape)} that do not chain"
    return None


def _linear_view(weight: torch.Tensor, bias: torch.Tensor | None, layout: str) -> nn.Linear:
    d_out, d_in = weight.shape
    with torch.device("meta"):  # no storage of its own; the parameters below are views
        linear = nn.Linear(d_in, d_out, bias=bias is not None)
    linear.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        linear.bias = nn.Parameter(bias, requires_grad=False)
    linear.weight_layout = layout
    return linear


class ExpertLinears(nn.Module):
    """Fused experts as per-expert ``nn.Linear`` layers (views of the fused weights).

    ``forward(hidden_states (T, H), top_k_index (T, k), top_k_weights (T, k)) -> (T, H)``,
    the contract of transformers' experts modules; indices outside ``0..E-1`` are
    skipped, as transformers skips its expert-parallel sentinel.
    """

    def __init__(self, fused: nn.Module):
        super().__init__()
        gate_up, down = fused.gate_up_proj.detach(), fused.down_proj.detach()
        self.num_experts = int(gate_up.shape[0])
        self.act_fn = fused.act_fn
        self.fused_type = type(fused).__name__
        self.gate_up_proj = nn.ModuleList(_linear_view(gate_up[e], None, "experts")
                                          for e in range(self.num_experts))
        self.down_proj = nn.ModuleList(_linear_view(down[e], None, "experts")
                                       for e in range(self.num_experts))

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, from={self.fused_type}"

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden_states)
        for e in torch.unique(top_k_index).tolist():  # one sync per call
            if not 0 <= e < self.num_experts:
                continue
            token, slot = torch.where(top_k_index == e)
            gate, up = self.gate_up_proj[e](hidden_states[token]).chunk(2, dim=-1)
            y = self.down_proj[e](self.act_fn(gate) * up)
            y = y * top_k_weights[token, slot, None]
            out.index_add_(0, token, y.to(out.dtype))
        return out


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def linearize(model: nn.Module) -> dict[str, str]:
    """Replace Conv1D layers and fused experts of a supported layout in place; name -> layout.

    The model computes the same function afterwards (the same weights, the same
    operations; GEMM rounding may differ in the last bit). Idempotent.
    """
    done: dict[str, str] = {}
    for name, module in list(model.named_modules()):
        if not name:
            continue
        if is_conv1d(module):
            _set(model, name, _linear_view(module.weight.detach().t(), None if module.bias is None
                                           else module.bias.detach(), "conv1d"))
            done[name] = "conv1d"
        elif (any(p.dim() >= 3 for p in module.parameters(recurse=False))
              and not isinstance(module, nn.modules.conv._ConvNd)
              and fused_experts_layout(module) is None):
            _set(model, name, ExpertLinears(module))
            done[name] = "experts"
    return done
