"""Emulated ResQ linear layers (a drop-in ``nn.Linear`` replacement) and their bit-true arithmetic.

The layer (docs/sw.md, "ResQ"; reference :mod:`sw.resq_reference`)::

    z      = x U                       float64 (x cast to float64), one GEMM, both arithmetics
    z_l, z_h = z[:, :d-r], z[:, d-r:]
    fast:      y = [Q_a(z_l) | Q_h(z_h)] @ [W_l | W_h]^T + b     one GEMM in x's dtype
    bit-true:  y = fl64(acc(Q_a(z_l) . W_l) + acc(Q_h(z_h) . W_h)) + b     exact block dots

The quantized coordinates are computed once per input, in float64, by the same code in
both arithmetics (and shared by the layers of one basis through the model's
:class:`sw.emulation.SharedInputCache`), so fast and bit-true differ only in their GEMMs:
float rounding of the fast GEMM against the accumulator rule (:func:`resq_linear`).
``resq_format="int"`` factors (the paper's integer formats) run in fast arithmetic only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sw.bittrue import MXTensor, exact_value, linear_accumulate
from sw.blockmath import accumulator_width, dot_sum_width
from sw.emulation import EmulatedLinear, _mx_rows
from sw.factor_files import LayerFactors
from sw.intq import IntQuantized
from sw.intq_torch import fake_quantize_per_token_asymmetric
from sw.mxint import MXIntFormat
from sw.mxint_torch import fake_quantize, quantize_torch

__all__ = ["ResQLinear", "ResQOutputs", "resq_linear"]


@dataclass(frozen=True)
class ResQOutputs:
    """Every intermediate of one bit-true ResQ layer call (all exact)."""

    x_low: MXTensor              # Q_a(z_l), (T, d_in - r)
    x_high: MXTensor | None      # Q_h(z_h), (T, r)
    low: tuple                   # (acc, lsb) of the wide path, (T, d_out)
    high: tuple | None           # (acc, lsb) of the narrow path
    y: torch.Tensor              # float64 (T, d_out)


def _check_width(block: int, a_width: int, w_width: int, n_blocks: int, guard_bits) -> None:
    if guard_bits is None:
        return
    width = accumulator_width(dot_sum_width(block, a_width, w_width), guard_bits, n_blocks)
    if width > 53:
        raise ValueError(f"guard_bits must keep the accumulator within 53 bits; got {guard_bits} "
                         f"({width} bits)")


def resq_linear(z_low: torch.Tensor, z_high: torch.Tensor | None, *, weight_low: MXTensor,
                weight_high: MXTensor | None = None, bias: torch.Tensor | None = None,
                a_format: MXIntFormat, high_format: MXIntFormat | None = None,
                guard_bits: int | None = 8, acc_rounding: str = "even") -> ResQOutputs:
    """The bit-true ResQ layer on projected coordinates: the twin of
    :func:`sw.resq_reference.resq_linear_terms` + :func:`~sw.resq_reference.merge`.

    ``z_low`` (T, d_in - r) and ``z_high`` (T, r) float (the datapath's input);
    ``weight_low`` W_l (d_out, d_in - r), ``weight_high`` W_h (d_out, r) blocked along
    their last axis. ``a_format`` quantizes z_l, ``high_format`` z_h; their blocks must be
    the weights'. Raises ``ValueError`` when the accumulator would exceed 53 bits.
    """
    for fmt, w in ((a_format, weight_low), (high_format, weight_high)):
        if w is None:
            continue
        if fmt.block != w.block:
            raise ValueError(f"activation block must equal the weight block ({w.block}); got {fmt.block}")
        _check_width(w.block, fmt.width, w.width, w.exponents.shape[-1], guard_bits)
    m, e = quantize_torch(z_low, a_format, dim=-1, name="z_low")
    x_low = MXTensor(m, e, a_format)
    low = linear_accumulate(x_low, weight_low, guard_bits=guard_bits, rounding=acc_rounding)
    y = exact_value(*low)
    x_high = high = None
    if weight_high is not None:
        m, e = quantize_torch(z_high, high_format, dim=-1, name="z_high")
        x_high = MXTensor(m, e, high_format)
        high = linear_accumulate(x_high, weight_high, guard_bits=guard_bits, rounding=acc_rounding)
        y = y + exact_value(*high)
    if bias is not None:
        y = y + bias.to(torch.float64)
    return ResQOutputs(x_low=x_low, x_high=x_high, low=low, high=high, y=y)


def _dequantized(q, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(q.dequantize()).to(dtype)


class ResQLinear(EmulatedLinear):
    """A ResQ layer (mode ``resq``) built from its factors with :meth:`from_factors`.

    ``weight`` is the effective dequantized weight in the input's own basis,
    ``[W_l | W_h] U^T``, so code that reads ``layer.weight`` keeps working.
    """

    @classmethod
    def from_factors(cls, factors: LayerFactors, *, mode: str = "resq", arithmetic: str = "fast",
                     a_width: int = 8, dtype: torch.dtype = torch.float32,
                     device: torch.device | str = "cpu", guard_bits: int | None = 8,
                     acc_rounding: str = "even") -> "ResQLinear":
        """The ResQ layer of ``factors``; activations of the low path at ``a_width`` bits, of the
        high path at the high weights' width (MXINT: the weights' block and exponent bits,
        round half to even, OCP flavour, as every emulated activation)."""
        if mode != "resq":
            raise ValueError(f"mode must be resq for ResQ factors; got {mode!r}")
        if factors.basis is None:
            raise ValueError("mode resq needs ResQ factors (a basis); these have none")
        integer = isinstance(factors.weight, IntQuantized)
        w, wh = factors.weight, factors.weight_high
        rank = factors.rank
        if integer:
            a_format = high_format = None
        else:
            blocking = MXIntFormat(block=w.block, exponent_bits=w.exponent_bits)
            a_format = blocking.replace(width=a_width)
            high_format = blocking.replace(width=wh.width) if wh is not None else None
        layer = cls(in_features=factors.d_in, out_features=factors.d_out, mode="resq",
                    arithmetic=arithmetic, a_format=a_format, guard_bits=guard_bits,
                    acc_rounding=acc_rounding)
        if arithmetic == "bit-true":
            if integer:
                raise ValueError("arithmetic 'bit-true' needs MXINT ResQ factors (resq-format "
                                 "mxint); these use the paper's integer formats")
            if any(q.flavour != "ocp" for q in (w, wh) if q is not None):
                raise ValueError("arithmetic 'bit-true' needs flavour 'ocp' factors")
        layer.rank = rank
        layer.high_format = high_format
        layer.a_bits = a_width if integer else None
        layer.high_bits = wh.bits if integer and wh is not None else None
        layer.basis_name = factors.basis_name
        layer.register_buffer("basis", torch.from_numpy(factors.basis).to(torch.float64).to(device),
                              persistent=False)
        parts = [_dequantized(w, dtype)] + ([_dequantized(wh, dtype)] if wh is not None else [])
        projected = torch.cat(parts, dim=1).to(device)
        layer.register_buffer("projected_weight", projected, persistent=False)
        layer.register_buffer("weight", (projected.double() @ layer.basis.T).to(dtype),
                              persistent=False)
        bias = None if factors.bias is None else torch.from_numpy(factors.bias).to(dtype).to(device)
        layer.register_buffer("bias", bias, persistent=False)
        if arithmetic == "bit-true":
            layer._bit_true_operands["low"] = _mx_rows(w, transpose=False)
            if wh is not None:
                layer._bit_true_operands["high"] = _mx_rows(wh, transpose=False)
        return layer

    @property
    def low_rank(self) -> bool:
        return False

    def extra_repr(self) -> str:
        return super().extra_repr() + f", resq_rank={self.rank}, basis={self.basis_name}"

    def project(self, x2d: torch.Tensor) -> torch.Tensor:
        """``z = x U`` in float64 for x (T, d_in): the one projection both arithmetics use."""
        return x2d.to(torch.float64) @ self.basis

    def _fake_quantized(self, z: torch.Tensor) -> torch.Tensor:
        split = self.in_features - self.rank
        low, high = z[:, :split], z[:, split:]
        if self.a_format is None:  # the paper's integer formats
            parts = [fake_quantize_per_token_asymmetric(low, self.a_bits)]
            if self.rank:
                parts.append(fake_quantize_per_token_asymmetric(high, self.high_bits))
        else:
            parts = [fake_quantize(low, self.a_format, dim=-1)]
            if self.rank:
                parts.append(fake_quantize(high, self.high_format, dim=-1))
        return torch.cat(parts, dim=-1)

    def _quantized_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """Q(x U) (T, d_in) float64 for x (..., d_in); shared by the layers of one basis."""
        key = ("resq", self.basis_name, self.rank, self.a_format, self.high_format, self.a_bits,
               self.high_bits)

        def compute(t):
            return self._fake_quantized(self.project(t.reshape(-1, self.in_features)))

        if self.input_cache is None:
            return compute(x)
        return self.input_cache.get(x, key, compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (..., in_features), any float dtype -> (..., out_features) in x's dtype.

        ``fast``: the float64 quantized coordinates cast to x's dtype, one GEMM with the
        dequantized ``[W_l | W_h]``, plus the bias. ``bit-true``: :func:`resq_linear` on the
        same projection (exact block arithmetic, float64 merge), cast to x's dtype.
        """
        if self.arithmetic == "bit-true":
            out = self._forward_resq_bit_true(x.reshape(-1, self.in_features))
        else:
            zq = self._quantized_coordinates(x)
            out = F.linear(zq.to(x.dtype), self.projected_weight, self.bias)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _forward_resq_bit_true(self, x2d: torch.Tensor) -> torch.Tensor:
        ops = {k: v.to(x2d.device) for k, v in self._bit_true_operands.items()}
        z = self.project(x2d)
        split = self.in_features - self.rank
        out = resq_linear(z[:, :split], z[:, split:] if self.rank else None,
                          weight_low=ops["low"], weight_high=ops.get("high"), bias=self.bias,
                          a_format=self.a_format, high_format=self.high_format,
                          guard_bits=self.guard_bits, acc_rounding=self.acc_rounding)
        return out.y

