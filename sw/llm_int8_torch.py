"""LLM.int8() and W8A8 emulated linear layers for PyTorch models (contract: :mod:`sw.llm_int8`).

A :class:`LLMInt8Linear` replaces an ``nn.Linear``; its weights are
quantized once, by the NumPy reference itself (:func:`sw.llm_int8.quantize_weight`).
Per forward, the input ``(..., d_in)`` is flattened to tokens in row-major order
(batch outer, position inner), so a detection group of ``T`` tokens is ``T``
consecutive positions (crossing into the next sequence when ``T`` does not
divide the sequence length); ``group=None`` detects over the whole call, as
bitsandbytes does. The output is rounded to the input's dtype.

Arithmetic:

* both: the activation quantization (binary16 rounding, outlier detection,
  ``s_x``, ``fl32(fl32(1 / s_x) * 127)``, round half to even) is the reference's
  exactly: element-wise IEEE binary32 operations, which PyTorch performs
  correctly rounded on CPU and CUDA.
* ``bit-true``: ``C`` from a float64 GEMM of the codes (every partial sum is an
  integer below 2^53, so exact in any order); the dequantization order of the
  reference; the outlier path as a sequential binary32 sum over outlier columns
  in increasing index, vectorised over tokens and outputs. Equal to
  :func:`sw.llm_int8.linear` bit for bit.
* ``fast``: ``C`` from a float32 GEMM of the codes (exact while
  ``127^2 d_in <= 2^24``, i.e. ``d_in <= 1040``; otherwise each partial sum
  rounds), the same dequantization, and the outlier path as one float32 GEMM
  over the outlier columns (products exact, summation order the BLAS's).
  Bound against bit-true, ``u = 2^-24``, ``n = d_in``, ``gamma_n = n u / (1 - n u)``:
  ``|y_fast - y_bt| <= (2 gamma_n + 8u) T`` with ``T = S_int + S_out + |b|``,
  ``S_int = (|X_i8| |W_i8|^T) s_x w_scale`` and ``S_out = |X16_O| |W_O|^T`` (the
  sums of absolute terms): each path's GEMM is within ``gamma_n`` of its
  exact sum (Higham, *Accuracy and Stability of Numerical Algorithms*, Thm 3.5;
  the bit-true sums within the same), and at most eight further roundings of
  size ``u`` touch quantities bounded by ``T``. With ``d_in <= 1040`` and no
  outliers (W8A8) the two are equal bit for bit. The tests check both.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sw import llm_int8 as ref

__all__ = ["METHODS", "ARITHMETICS", "OUTLIER_WEIGHTS", "LLMInt8Linear", "binary16", "detect_outliers",
           "quantize_activations", "emulate_int8", "fast_error_bound"]

METHODS = ("llm-int8", "w8a8")
ARITHMETICS = ("fast", "bit-true")
OUTLIER_WEIGHTS = ("int8", "fp16")


def _nonfinite(x: torch.Tensor, x16: torch.Tensor, layer: str | None) -> ValueError:
    index = tuple(int(i) for i in (~torch.isfinite(x16)).nonzero()[0])
    return ValueError(ref.nonfinite_message("activations", layer, float(x[index]), index))


def binary16(x: torch.Tensor, layer: str | None) -> torch.Tensor:
    """``fl16(x)`` held in float32 ``(tokens, d_in)``; ``ValueError`` naming ``layer`` if not finite.

    float64 input is rounded to binary32 first (PyTorch converts through
    float); binary16, bfloat16 and binary32 inputs are rounded once, as the reference.
    """
    x16 = x.to(torch.float32).to(torch.float16).to(torch.float32)
    if not bool(torch.isfinite(x16).all()):
        raise _nonfinite(x, x16, layer)
    return x16


def _groups(tokens: int, group: int | None) -> int:
    return 1 if group is None else -(-tokens // group)


def detect_outliers(x16: torch.Tensor, threshold: float, group: int | None, *, mag: torch.Tensor | None = None):
    """Outlier entries and columns of binary16 activations ``(tokens, d_in)`` (float32 holding binary16).

    Returns ``(entries, columns)``: bool ``(tokens, d_in)`` where ``|x| >= threshold``,
    and bool ``(groups, d_in)``, the outlier columns of each detection group.
    ``None, None`` when ``threshold`` is infinite. ``mag``: ``|x16|`` if at hand.
    """
    t16 = float(ref.threshold_binary16(threshold))
    if math.isinf(t16):
        return None, None
    entries = (x16.abs() if mag is None else mag) >= t16  # exact: binary16 magnitude vs rounded-up threshold
    tokens, d_in = entries.shape
    if group is None or group >= tokens:
        return entries, entries.any(0, keepdim=True)
    pad = -tokens % group
    padded = torch.cat([entries, entries.new_zeros(pad, d_in)]) if pad else entries
    return entries, padded.view(-1, group, d_in).any(1)


def _token_mask(columns: torch.Tensor, tokens: int, group: int | None) -> torch.Tensor:
    """bool ``(tokens, d_in)``: the outlier columns of each token's group."""
    if columns.shape[0] == 1:
        return columns.expand(tokens, -1)
    return columns.repeat_interleave(group, 0)[:tokens]


def quantize_activations(x: torch.Tensor, threshold: float, group: int | None, layer: str | None = None):
    """Steps 1-4 of :mod:`sw.llm_int8` on activations ``(tokens, d_in)`` of any float dtype.

    Returns ``(x16, codes, absmax, columns)``: ``fl16(x)`` held in float32;
    the codes as float32 integers; ``s_x`` float32 ``(tokens,)``; the outlier
    columns bool ``(groups, d_in)``, or ``None`` when there are none (or the
    threshold is infinite). ``ValueError`` naming ``layer`` if ``fl16(x)`` is
    not finite.
    """
    x16 = x.to(torch.float32).to(torch.float16).to(torch.float32)
    mag = x16.abs()
    rowmax = mag.amax(1)  # NaN and inf reach the row maxima
    if not bool(torch.isfinite(rowmax).all()):
        raise _nonfinite(x, x16, layer)
    t16 = float(ref.threshold_binary16(threshold))
    columns = None
    absmax = rowmax
    if x16.shape[0] and float(rowmax.max()) >= t16:  # any outlier at all (never for inf)
        entries, columns = detect_outliers(x16, threshold, group, mag=mag)
        absmax = mag.masked_fill(entries, 0).amax(1)
    nonzero = absmax > 0
    r = torch.where(nonzero, torch.reciprocal(absmax) * 127.0, torch.zeros_like(absmax))
    codes = torch.round(x16 * r[:, None])
    if columns is not None:
        codes = codes.masked_fill(_token_mask(columns, x16.shape[0], group), 0.0)
    return x16, codes, absmax, columns


class LLMInt8Linear(nn.Module):
    """An ``nn.Linear`` computed as LLM.int8() (``threshold`` finite) or W8A8 (``threshold=inf``).

    Build it with :meth:`from_linear` or :meth:`from_weight`. ``weight`` is the
    outlier-path weight (binary16 values in float32: the dequantized int8
    weight, or the original weight for ``outlier_weights="fp16"``), so code that
    reads ``layer.weight`` keeps working. ``counts`` tallies, over the forwards
    since :meth:`reset_counts`, the detection groups seen, the outlier columns
    summed over them, and the most in one group (LLM.int8() only).
    """

    def __init__(self, weight: ref.Int8Weight, bias=None, *, threshold: float = ref.THRESHOLD,
                 group: int | None = None, arithmetic: str = "fast", outlier_weights: str = "int8",
                 name: str | None = None, device: torch.device | str = "cpu"):
        super().__init__()
        self.threshold = ref.check_threshold(threshold)
        self.group = ref.check_group(group)
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)}; got {arithmetic!r}")
        if outlier_weights not in OUTLIER_WEIGHTS:
            raise ValueError(f"outlier_weights must be one of {', '.join(OUTLIER_WEIGHTS)}; "
                             f"got {outlier_weights!r}")
        if outlier_weights == "fp16" and weight.weight16 is None:
            raise ValueError("outlier_weights 'fp16' needs a weight quantized with keep_fp16=True")
        self.arithmetic = arithmetic
        self.outlier_weights = outlier_weights
        self.name = name
        self.in_features = weight.d_in
        self.out_features = weight.d_out
        codes_dtype = torch.float64 if arithmetic == "bit-true" else torch.float32
        w_out = weight.dequantized16() if outlier_weights == "int8" else weight.weight16
        buffers = {
            "codes": torch.from_numpy(weight.codes.astype(np.float32)).to(codes_dtype),
            "absmax": torch.from_numpy(weight.absmax.copy()),
            "int_scale": torch.from_numpy(weight.int_scale()),
            "weight": torch.from_numpy(w_out.astype(np.float32)),
            "bias": None if bias is None else torch.from_numpy(ref._bias32(bias, weight.d_out, name)),
        }
        for key, value in buffers.items():
            self.register_buffer(key, None if value is None else value.to(device), persistent=False)
        self.reset_counts()

    def reset_counts(self) -> None:
        """Zero the running outlier counts (``groups``, ``outlier_columns``, ``max_columns``)."""
        self.counts = {"groups": 0, "outlier_columns": 0, "max_columns": 0}

    @classmethod
    def from_weight(cls, weight: ref.Int8Weight, bias=None, **options) -> "LLMInt8Linear":
        """From an already quantized weight (e.g. loaded from a file)."""
        return cls(weight, bias, **options)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, name: str | None = None, **options) -> "LLMInt8Linear":
        """Quantize ``linear``'s weight by the reference and wrap it (``options``: see the class)."""
        keep = options.get("outlier_weights", "int8") == "fp16"
        w = linear.weight.detach().to("cpu", torch.float32).numpy()
        weight = ref.quantize_weight(w, keep_fp16=keep, layer=name)
        bias = None if linear.bias is None else linear.bias.detach().to("cpu", torch.float32).numpy()
        return cls(weight, bias, name=name, device=linear.weight.device, **options)

    @property
    def method(self) -> str:
        return "w8a8" if math.isinf(self.threshold) else "llm-int8"

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"threshold={self.threshold}, group={self.group}, arithmetic={self.arithmetic}, "
                f"outlier_weights={self.outlier_weights}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        x16, codes, absmax, columns = quantize_activations(x2, self.threshold, self.group, self.name)
        c = codes.to(self.codes.dtype) @ self.codes.T
        if self.arithmetic == "bit-true":
            c = c + 0.0  # an all -0 sum is the integer 0
        y = (c.to(torch.float32) * absmax[:, None]) * self.int_scale
        if self.bias is not None:
            y = y + self.bias
        if not math.isinf(self.threshold):
            self._count(columns, x2.shape[0])
        if columns is not None:
            y = self._outliers(y, x16, columns, columns.any(0).nonzero().flatten())
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def _count(self, columns, tokens: int) -> None:
        self.counts["groups"] += _groups(tokens, self.group) if tokens else 0
        if columns is not None:
            per_group = columns.sum(1)
            total, most = (int(v) for v in torch.stack([per_group.sum(), per_group.max()]).tolist())
            self.counts["outlier_columns"] += total
            self.counts["max_columns"] = max(self.counts["max_columns"], most)

    def _outliers(self, y, x16, columns, used):
        tokens = x16.shape[0]
        mask = None if columns.shape[0] == 1 else _token_mask(columns, tokens, self.group)
        if self.arithmetic == "fast":
            xo = x16[:, used]
            if mask is not None:
                xo = xo.masked_fill(~mask[:, used], 0.0)
            return torch.addmm(y, xo, self.weight[:, used].T)
        acc = torch.zeros_like(y)
        for j in used.tolist():  # increasing column index
            term = x16[:, j, None] * self.weight[None, :, j]  # exact binary16 x binary16 product
            acc = acc + term if mask is None else torch.where(mask[:, j, None], acc + term, acc)
        return y + acc


def fast_error_bound(layer: LLMInt8Linear, x: torch.Tensor) -> torch.Tensor:
    """The bound on ``|fast - bit-true|`` stated in this module's docstring, per output (float64)."""
    x16, codes, absmax, columns = quantize_activations(x.reshape(-1, layer.in_features), layer.threshold,
                                                       layer.group, layer.name)
    u = 2.0 ** -24
    gamma = layer.in_features * u / (1 - layer.in_features * u)
    total = (codes.abs().double() @ layer.codes.abs().double().T) * absmax[:, None].double() \
        * layer.int_scale.double()
    if layer.bias is not None:
        total = total + layer.bias.abs().double()
    if columns is not None:
        mask = _token_mask(columns, x16.shape[0], layer.group)
        total = total + x16.abs().masked_fill(~mask, 0.0).double() @ layer.weight.abs().double().T
    return ((2 * gamma + 8 * u) * total).reshape(*x.shape[:-1], layer.out_features)


def emulate_int8(model: nn.Module, layers: dict[str, nn.Linear], *, method: str = "llm-int8",
                 threshold: float = ref.THRESHOLD, group: int | None = None,
                 arithmetic: str = "fast", outlier_weights: str = "int8",
                 weights: dict[str, tuple[ref.Int8Weight, np.ndarray | None]] | None = None
                 ) -> dict[str, nn.Module]:
    """Replace each of ``layers`` (name -> ``nn.Linear``) by an :class:`LLMInt8Linear`, in place.

    ``method="w8a8"`` forces ``threshold=inf``. ``weights`` (name -> (weight,
    bias)) supplies quantized weights instead of quantizing ``layers``' own.
    Returns name -> original module, for :func:`sw.emulation.restore_model`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "w8a8":
        threshold = math.inf
    elif math.isinf(ref.check_threshold(threshold)) or threshold <= 0:
        raise ValueError(f"threshold must be a finite number > 0 for method llm-int8; got {threshold!r}")
    options = dict(threshold=threshold, group=group, arithmetic=arithmetic,
                   outlier_weights=outlier_weights)
    new = {}
    for name, linear in layers.items():
        # nn.Linear's own forward only: a subclass with its own (an MoE router) is never replaced
        if not (isinstance(linear, nn.Linear) and type(linear).forward is nn.Linear.forward):
            raise ValueError(f"layer {name} must be a torch.nn.Linear (with nn.Linear's forward); "
                             f"got {type(linear).__name__}")
        if weights is not None:
            w, b = weights[name]
            if (w.d_in, w.d_out) != (linear.in_features, linear.out_features):
                raise ValueError(f"weights of layer {name} must be {linear.out_features}x"
                                 f"{linear.in_features}; got {w.d_out}x{w.d_in}")
            new[name] = LLMInt8Linear.from_weight(w, b, name=name, device=linear.weight.device, **options)
        else:
            new[name] = LLMInt8Linear.from_linear(linear, name=name, **options)
    originals = {}
    for name, module in new.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        originals[name] = getattr(parent, child)
        setattr(parent, child, module)
    return originals
