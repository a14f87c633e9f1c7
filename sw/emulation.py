"""Emulated quantized linear layers: a drop-in replacement for ``nn.Linear``.

Modes (docs/design.md, Datapaths): ``fp`` (the float layer), ``mxint`` (W_q, activations
quantized, no correction), ``lqer`` / ``l2qer`` (plus the low-rank path;
the two differ only in how their factors were computed); ``resq`` layers are
:class:`sw.resq_emulation.ResQLinear` (a subclass), which :func:`emulate_model` builds.

Arithmetic:

* ``fast`` -- fake quantization in floating point with
  :func:`sw.mxint_torch.fake_quantize`; W_q, A and B are dequantized once
  at construction (cached buffers), only activations and the low-rank
  intermediates are quantized per forward::

      x_q = Q_a(x);  y = x_q @ W_q^T + b + Q_lr(Q_lr(x_q @ A) @ B)

* ``bit-true`` -- :func:`sw.bittrue.lqer_linear`: exact block dot
  products, the cross-block accumulator rule and exact requantization,
  as the hardware computes (reduction-axis blocking only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sw import bittrue
from sw.factors import LayerFactors
from sw.mxint import MXIntFormat, MXQuantized
from sw.mxint_torch import fake_quantize
from sw.qconfig import METHODS

__all__ = ["ARITHMETICS", "SharedInputCache", "EmulatedLinear", "emulate_model", "restore_model"]

ARITHMETICS = ("fast", "bit-true")


class SharedInputCache:
    """The last quantized activation, shared by the layers of one model.

    Attention projections (q, k, v) and gated MLPs (gate, up) read the very
    same input tensor; quantizing it once saves a third of the activation
    quantizations. A hit needs the same tensor object, unmodified (its
    version counter unchanged), and the same format.
    """

    def __init__(self):
        self._slot = None

    def get(self, x: torch.Tensor, key, compute):
        slot = self._slot
        if slot is not None and slot[0] is x and slot[1] == x._version and slot[2] == key:
            return slot[3]
        value = compute(x)
        self._slot = (x, x._version, key, value)
        return value

    def clear(self) -> None:
        self._slot = None


def _dequantized(q: MXQuantized, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(q.dequantize()).to(dtype)


def _mx_rows(q: MXQuantized, *, transpose: bool) -> bittrue.MXTensor:
    """An operand as rows blocked along the last axis (transposed first when asked)."""
    m = torch.from_numpy(q.mantissas.astype("int16"))
    e = torch.from_numpy(q.exponents.astype("int16"))
    if transpose:
        m, e = m.T.contiguous(), e.T.contiguous()
    return bittrue.MXTensor(m, e, q.format)


class EmulatedLinear(nn.Module):
    """A linear layer computed in an emulated number format.

    Build it with :meth:`from_factors` (quantized modes) or :meth:`from_linear`
    (``fp``). ``weight`` is the dequantized W_q (or the float weight), so code
    that reads ``layer.weight`` keeps working.
    """

    def __init__(self, *, in_features: int, out_features: int, mode: str, arithmetic: str = "fast",
                 a_format: MXIntFormat | None = None, lowrank_format: MXIntFormat | None = None,
                 guard_bits: int | None = 8, acc_rounding: str = "even"):
        super().__init__()
        if mode not in METHODS:
            raise ValueError(f"mode must be one of {', '.join(METHODS)}; got {mode!r}")
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)}; got {arithmetic!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.mode = mode
        self.arithmetic = arithmetic
        self.a_format = a_format          # activations (None in fp mode)
        self.lowrank_format = lowrank_format  # t and u (low-rank modes)
        self.guard_bits = guard_bits
        self.acc_rounding = acc_rounding
        self.bias: torch.Tensor | None
        self._bit_true_operands: dict[str, bittrue.MXTensor] = {}
        self.input_cache: SharedInputCache | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "EmulatedLinear":
        """The ``fp`` mode: the float layer itself."""
        layer = cls(in_features=linear.in_features, out_features=linear.out_features, mode="fp")
        layer.register_buffer("weight", linear.weight.detach().clone(), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        layer.register_buffer("bias", bias, persistent=False)
        return layer

    @classmethod
    def from_factors(cls, factors: LayerFactors, *, mode: str, arithmetic: str = "fast",
                     a_width: int = 8, dtype: torch.dtype = torch.float32,
                     device: torch.device | str = "cpu", guard_bits: int | None = 8,
                     acc_rounding: str = "even") -> "EmulatedLinear":
        """A quantized layer (``mxint``, ``lqer`` or ``l2qer``) from its factors."""
        if mode not in ("mxint", "lqer", "l2qer"):
            raise ValueError(f"mode must be one of mxint, lqer, l2qer for factors; got {mode!r}")
        low_rank = mode in ("lqer", "l2qer")
        if low_rank and factors.a is None:
            raise ValueError(f"mode {mode} needs low-rank factors; these have none (method mxint)")
        w = factors.weight
        # activations, t and u: the weights' block and exponent bits, round half to even, ocp
        blocking = MXIntFormat(block=w.block, exponent_bits=w.exponent_bits)
        layer = cls(in_features=factors.d_in, out_features=factors.d_out, mode=mode,
                    arithmetic=arithmetic, a_format=blocking.replace(width=a_width),
                    lowrank_format=blocking.replace(width=factors.a.width) if low_rank else None,
                    guard_bits=guard_bits, acc_rounding=acc_rounding)
        if arithmetic == "bit-true":
            ops = [w] + ([factors.a, factors.b] if low_rank else [])
            if any(q.flavour != "ocp" for q in ops):
                raise ValueError("arithmetic 'bit-true' needs flavour 'ocp' factors")
            if low_rank and (factors.a.axis != 0 or factors.b.axis != 0):
                raise ValueError("arithmetic 'bit-true' needs reduction-axis blocking (A along d_in, "
                                 "B along the rank); these factors use paper blocking")
        layer.register_buffer("weight", _dequantized(w, dtype).to(device), persistent=False)
        bias = None if factors.bias is None else torch.from_numpy(factors.bias).to(dtype).to(device)
        layer.register_buffer("bias", bias, persistent=False)
        if low_rank:
            layer.register_buffer("lowrank_a", _dequantized(factors.a, dtype).to(device), persistent=False)
            layer.register_buffer("lowrank_b", _dequantized(factors.b, dtype).to(device), persistent=False)
            # x_q @ [W_q^T | A] in one GEMM: one pass over x_q for both paths
            layer.register_buffer("fused_weight", torch.cat([layer.weight, layer.lowrank_a.T], 0),
                                  persistent=False)
        if arithmetic == "bit-true":
            layer._bit_true_operands["weight"] = _mx_rows(w, transpose=False)
            if low_rank:
                layer._bit_true_operands["a_t"] = _mx_rows(factors.a, transpose=True)
                layer._bit_true_operands["b_t"] = _mx_rows(factors.b, transpose=True)
        return layer

    @property
    def low_rank(self) -> bool:
        return self.mode in ("lqer", "l2qer")

    def extra_repr(self) -> str:
        text = (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"mode={self.mode}, arithmetic={self.arithmetic}")
        if self.a_format is not None:
            text += f", a_width={self.a_format.width}, block={self.a_format.block}"
        return text

    @staticmethod
    def _fq(x: torch.Tensor, fmt: MXIntFormat) -> torch.Tensor:
        return fake_quantize(x, fmt, dim=-1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (..., in_features), any float dtype -> (..., out_features) in x's dtype.

        ``fast``: fake quantization in x's floating point (``sw.mxint_torch.fake_quantize``,
        bit-identical to the reference's values), one GEMM for both paths. ``bit-true``:
        ``sw.bittrue.lqer_linear`` (exact integer block arithmetic, float64 merge), cast to
        x's dtype. Raises ``ValueError`` when the bit-true accumulator would exceed 53 bits.
        """
        if self.mode == "fp":
            return F.linear(x, self.weight, self.bias)
        if self.arithmetic == "bit-true":
            return self._forward_bit_true(x)
        if self.input_cache is None:
            xq = self._fq(x, self.a_format)
        else:
            xq = self.input_cache.get(x, self.a_format, lambda t: self._fq(t, self.a_format))
        if not self.low_rank:
            return F.linear(xq, self.weight, self.bias)
        both = F.linear(xq, self.fused_weight)
        y, t = both[..., : self.out_features], both[..., self.out_features:]
        lr = self.lowrank_format
        u = self._fq(self._fq(t, lr) @ self.lowrank_b, lr)
        if self.bias is None:
            return y + u
        out = y + self.bias  # (x W + b) + u: the float order of the unfused formula
        return out.add_(u)

    def _forward_bit_true(self, x: torch.Tensor) -> torch.Tensor:
        ops = {k: v.to(x.device) for k, v in self._bit_true_operands.items()}
        out = bittrue.lqer_linear(
            x.reshape(-1, self.in_features), weight=ops["weight"], a_t=ops.get("a_t"),
            b_t=ops.get("b_t"), bias=self.bias, a_format=self.a_format,
            lowrank_format=self.lowrank_format, guard_bits=self.guard_bits,
            acc_rounding=self.acc_rounding)
        return out.y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, module)
    return old


def emulate_model(model: nn.Module, factors: dict[str, LayerFactors], *, mode: str,
                  arithmetic: str = "fast", a_width: int = 8, guard_bits: int | None = 8,
                  acc_rounding: str = "even") -> dict[str, nn.Module]:
    """Replace each named layer by its :class:`EmulatedLinear`, in place.

    Returns the replaced modules (name -> original), for :func:`restore_model`.
    The new layers share one :class:`SharedInputCache`.
    """
    originals = {}
    cache = SharedInputCache()
    for name, f in factors.items():
        old = model.get_submodule(name)
        # nn.Linear's own forward contract only: a subclass with its own forward (an MoE
        # router returning a tuple) must never be replaced
        if not (isinstance(old, EmulatedLinear)
                or (isinstance(old, nn.Linear) and type(old).forward is nn.Linear.forward)):
            raise ValueError(f"layer {name} must be a torch.nn.Linear (with nn.Linear's forward); "
                             f"got {type(old).__name__}")
        if (old.in_features, old.out_features) != (f.d_in, f.d_out):
            raise ValueError(f"factors of layer {name} must be {old.out_features}x{old.in_features}; "
                             f"got {f.d_out}x{f.d_in}")
        weight = old.weight
        cls = EmulatedLinear
        if mode == "resq":  # ResQ layers (sw.resq_emulation; imported here: it builds on this module)
            from sw.resq_emulation import ResQLinear as cls
        new = cls.from_factors(f, mode=mode, arithmetic=arithmetic, a_width=a_width,
                               dtype=weight.dtype, device=weight.device,
                               guard_bits=guard_bits, acc_rounding=acc_rounding)
        new.input_cache = cache
        originals[name] = _set_module(model, name, new)
    return originals


def restore_model(model: nn.Module, originals: dict[str, nn.Module]) -> None:
    """Put back the modules :func:`emulate_model` replaced."""
    for name, module in originals.items():
        _set_module(model, name, module)
