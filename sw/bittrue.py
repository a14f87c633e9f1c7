"""Bit-true MXINT block arithmetic in vectorised PyTorch (the hardware's datapath, for emulation).

Each function is the PyTorch twin of a piece of the NumPy reference and
returns the same integers:

* :func:`block_partials`  -- :func:`sw.blockmath.block_matmul_partials`
  (exact per-block dot products; computed on float tensors, which is exact
  because every partial sum of at most ``block`` products is an integer
  below ``2**24`` (float32) or ``2**53`` (float64) -- the dtype is chosen by
  :func:`sw.blockmath.dot_sum_width`);
* :func:`rshift_round`, :func:`accumulate` -- :func:`sw.blockmath.rshift_round`,
  :func:`sw.blockmath.accumulate` (running-max alignment, in int64);
* :func:`requantize` -- :func:`sw.mxint.quantize_exact` of ``A * 2**lsb``:
  the value is formed exactly in float64 (``|A| < 2**53``) and quantized
  by the bit-identical :func:`sw.mxint_torch.quantize_torch`.

:func:`lqer_linear` chains them into the LQER layer of docs/design.md (Datapaths) with
reduction-axis blocking. Its output merge is ``y = fl64(main + u) + bias``:
one float64 rounding of the exact sum of the main accumulator and the
requantized low-rank output (exact whenever their bits span <= 53), then
the bias added in float64 (the bias is outside the datapath).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sw.blockmath import ACC_ROUNDINGS, accumulator_width, dot_sum_width
from sw.mxint import MXIntFormat
from sw.mxint_torch import quantize_torch

__all__ = ["MXTensor", "pow2", "exact_value", "block_partials", "rshift_round", "accumulate",
           "requantize", "lqer_linear", "LQEROutputs"]

_CHUNK_ELEMENTS = 1 << 22  # partial-sum elements formed at once (bounds memory)


@dataclass(frozen=True)
class MXTensor:
    """A 2-d MXINT operand blocked along its last axis: mantissas (R, n) int, exponents (R, nb)
    int, in ``format`` (:class:`sw.mxint.MXIntFormat`)."""

    mantissas: torch.Tensor
    exponents: torch.Tensor
    format: MXIntFormat

    @property
    def width(self) -> int:
        return self.format.width

    @property
    def block(self) -> int:
        return self.format.block

    @property
    def frac_bits(self) -> int:
        return self.format.frac_bits

    def to(self, device) -> "MXTensor":
        """The same operand on ``device``."""
        return MXTensor(self.mantissas.to(device), self.exponents.to(device), self.format)

    @property
    def lsb_exponents(self) -> torch.Tensor:
        return self.exponents.to(torch.int64) - self.frac_bits

    def values(self) -> torch.Tensor:
        """Exact float64 values."""
        lsb = self.lsb_exponents.repeat_interleave(self.block, dim=-1)[..., : self.mantissas.shape[-1]]
        return self.mantissas.to(torch.float64) * pow2(lsb)


def pow2(k: torch.Tensor) -> torch.Tensor:
    """Exact float64 ``2**k`` from its bit pattern (``-1022 <= k <= 1023``)."""
    return ((k.to(torch.int64) + 1023) << 52).view(torch.float64)


def exact_value(acc: torch.Tensor, lsb: torch.Tensor) -> torch.Tensor:
    """``acc * 2**lsb`` in float64, exact for ``|acc| < 2**53``."""
    return acc.to(torch.float64) * pow2(lsb)


def _partials_block_major(x: MXTensor, w: MXTensor) -> torch.Tensor:
    """Exact block sums of ``x @ w.T`` as int64 (nb, T, O)."""
    if x.block != w.block or x.mantissas.shape[-1] != w.mantissas.shape[-1]:
        raise ValueError("block and reduction length must match between operands; got "
                         f"{x.block}/{x.mantissas.shape[-1]} and {w.block}/{w.mantissas.shape[-1]}")
    block = x.block
    sum_bits = dot_sum_width(block, x.width, w.width)
    if sum_bits <= 25 and x.mantissas.device.type == "cpu":  # |sum| < 2**24, every partial too
        dtype = torch.float32  # (on CUDA float64: a float32 GEMM may run in TF32 there)
    elif sum_bits <= 54:
        dtype = torch.float64
    else:
        raise ValueError(f"block dot products need {sum_bits} bits; at most 54 supported")
    n = x.mantissas.shape[-1]
    pad = -n % block
    xm = torch.nn.functional.pad(x.mantissas.to(dtype), (0, pad))
    wm = torch.nn.functional.pad(w.mantissas.to(dtype), (0, pad))
    t, o = xm.shape[0], wm.shape[0]
    nb = (n + pad) // block
    xb = xm.reshape(t, nb, block).transpose(0, 1)        # (nb, T, B)
    wb = wm.reshape(o, nb, block).permute(1, 2, 0)       # (nb, B, O)
    return torch.bmm(xb, wb).to(torch.int64)             # exact integers


def block_partials(x: MXTensor, w: MXTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact block partials of ``x @ w.T``: x (T, n), w (O, n) -> sums, lsb (T, O, nb) int64."""
    sums = _partials_block_major(x, w).permute(1, 2, 0)
    lsb = x.lsb_exponents[:, None, :] + w.lsb_exponents[None, :, :]
    return sums, lsb


def rshift_round(v: torch.Tensor, r: torch.Tensor, rounding: str) -> torch.Tensor:
    """``v * 2**-r`` rounded to an integer (``r >= 0``), as :func:`sw.blockmath.rshift_round`.

    Half-to-even as one add and one shift: ``(v + 2**(r-1) - 1 + odd) >> r``
    with ``odd`` the lowest bit of ``v >> r`` (and no bias at ``r = 0``).
    """
    r = r.clamp(max=62)
    if rounding == "floor":
        return v >> r
    odd = (v >> r) & 1
    bias = ((torch.ones_like(r) << r) >> 1) - 1 + odd
    return (v + torch.where(r > 0, bias, 0)) >> r


def accumulate(sums: torch.Tensor, lsb: torch.Tensor, *, guard_bits: int | None = 8,
               rounding: str = "even") -> tuple[torch.Tensor, torch.Tensor]:
    """The cross-block accumulator of :func:`sw.blockmath.accumulate`, over the last axis."""
    if rounding not in ACC_ROUNDINGS:
        raise ValueError(f'rounding must be one of "floor", "even"; got {rounding!r}')
    if guard_bits is None:
        return _accumulate_exact(sums, lsb)
    return _accumulate_block_major(sums.movedim(-1, 0), lsb.movedim(-1, 0), guard_bits, rounding)


def _accumulate_block_major(sums, lsb_of, guard_bits: int, rounding: str):
    """The running-max rule over the first axis; ``lsb_of`` is a tensor or a function j -> lsb_j."""
    lsb = lsb_of if callable(lsb_of) else lsb_of.__getitem__
    acc = sums[0] << guard_bits
    e = lsb(0)
    for j in range(1, sums.shape[0]):
        p = lsb(j)
        term = sums[j] << guard_bits
        # one of the two alignment shifts is zero (and rshift by 0 is the identity): shift
        # only the operand with the smaller exponent
        d = p - e
        new_max = d > 0
        acc = (torch.where(new_max, term, acc)
               + rshift_round(torch.where(new_max, acc, term), d.abs(), rounding))
        e = torch.maximum(e, p)
    return acc, e - guard_bits


def _accumulate_exact(sums: torch.Tensor, lsb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`sw.blockmath.accumulate_exact`: the sum at the smallest non-zero partial exponent."""
    nonzero = sums != 0
    big = torch.iinfo(torch.int64).max
    low = torch.where(nonzero, lsb, torch.full_like(lsb, big)).amin(dim=-1)
    low = torch.where(nonzero.any(dim=-1), low, torch.zeros_like(low))
    shift = torch.where(nonzero, lsb - low[..., None], torch.zeros_like(lsb))
    bits = torch.frexp(sums.abs().to(torch.float64))[1].to(torch.int64) + shift
    n = sums.shape[-1]
    if bits.numel() and int(bits.max()) + (n - 1).bit_length() > 62:
        raise ValueError("exact accumulation needs more than 63 bits for these partials; "
                         "use guard_bits to bound the register")
    return (sums << shift).sum(dim=-1), low


def requantize(acc: torch.Tensor, lsb: torch.Tensor, fmt: MXIntFormat) -> MXTensor:
    """MXINT ``fmt`` (blocks along the last axis) of the exact values ``acc * 2**lsb``."""
    if acc.numel() and int(acc.abs().max()) >= 2 ** 53:
        raise ValueError("requantize needs accumulator values below 2**53 in magnitude")
    m, e = quantize_torch(exact_value(acc, lsb), fmt, dim=-1)
    return MXTensor(m, e, fmt)


def linear_accumulate(x: MXTensor, w: MXTensor, *, guard_bits: int | None,
                      rounding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``x @ w.T`` through block partials and the accumulator, in token chunks: (acc, lsb) (T, O)."""
    t, o = x.mantissas.shape[0], w.mantissas.shape[0]
    nb = x.exponents.shape[-1]
    step = max(1, _CHUNK_ELEMENTS // max(1, o * nb))
    accs, lsbs = [], []
    for start in range(0, t, step):
        part = MXTensor(x.mantissas[start:start + step], x.exponents[start:start + step],
                        x.format)
        if guard_bits is None:
            sums, lsb = block_partials(part, w)
            acc, low = _accumulate_exact(sums, lsb)
        else:
            xl, wl = part.lsb_exponents, w.lsb_exponents
            acc, low = _accumulate_block_major(_partials_block_major(part, w),
                                               lambda j: xl[:, j, None] + wl[None, :, j],
                                               guard_bits, rounding)
        accs.append(acc)
        lsbs.append(low)
    if not accs:
        empty = torch.zeros((0, o), dtype=torch.int64, device=x.mantissas.device)
        return empty, empty.clone()
    return torch.cat(accs), torch.cat(lsbs)


@dataclass(frozen=True)
class LQEROutputs:
    """Every intermediate of one bit-true LQER layer call (all exact)."""

    x: MXTensor                  # quantized input, (T, d_in)
    main: tuple                  # (acc, lsb) of x_q @ W_q^T, (T, d_out)
    t: MXTensor | None           # Q(x_q @ A), (T, k)
    u: MXTensor | None           # Q(t @ B), (T, d_out)
    y: torch.Tensor              # float64 (T, d_out)


def lqer_linear(x: torch.Tensor, *, weight: MXTensor, a_t: MXTensor | None = None,
                b_t: MXTensor | None = None, bias: torch.Tensor | None = None,
                a_format: MXIntFormat | None = None, lowrank_format: MXIntFormat | None = None,
                guard_bits: int | None = 8, acc_rounding: str = "even") -> LQEROutputs:
    """The bit-true LQER layer on x (T, d_in) (float tensor of any float dtype).

    ``weight``: W_q as (d_out, d_in); ``a_t``: A transposed, (k, d_in);
    ``b_t``: B transposed, (d_out, k) -- each blocked along its last
    (reduction) axis. Without ``a_t``/``b_t`` it is the plain MXINT layer.
    ``a_format``: the activations' MXINT format (its block is the operands' block);
    ``lowrank_format``: that of t and u; both default to MXINT8 with the weight's block
    and exponent bits, round half to even. Returns every
    intermediate (:class:`LQEROutputs`); ``y`` is float64 (T, d_out).

    Raises ``ValueError`` when ``guard_bits`` would let the accumulator exceed 53 bits
    (the exact float64 forms of the values need it) or the operands' blocks differ.
    """
    default = MXIntFormat(width=8, block=weight.block, exponent_bits=weight.format.exponent_bits)
    a_format = default if a_format is None else a_format
    lowrank_format = default if lowrank_format is None else lowrank_format
    if a_format.block != weight.block:
        raise ValueError(f"a_format.block must equal the weight block ({weight.block}); "
                         f"got {a_format.block}")
    block = weight.block
    if guard_bits is not None:
        lr_width = lowrank_format.width
        n_blocks = max(weight.exponents.shape[-1], 1 if a_t is None else b_t.exponents.shape[-1])
        width = accumulator_width(dot_sum_width(block, max(a_format.width, lr_width),
                                                max(weight.width, lr_width)),
                                  guard_bits, n_blocks)
        if width > 53:
            raise ValueError(f"guard_bits must keep the accumulator within 53 bits; got {guard_bits} "
                             f"({width} bits)")
    xm, xe = quantize_torch(x, a_format, dim=-1)
    xq = MXTensor(xm, xe, a_format)
    main = linear_accumulate(xq, weight, guard_bits=guard_bits, rounding=acc_rounding)
    y = exact_value(*main)
    t = u = None
    if a_t is not None:
        t_acc = linear_accumulate(xq, a_t, guard_bits=guard_bits, rounding=acc_rounding)
        t = requantize(*t_acc, lowrank_format)
        u_acc = linear_accumulate(t, b_t, guard_bits=guard_bits, rounding=acc_rounding)
        u = requantize(*u_acc, lowrank_format)
        y = y + u.values()
    if bias is not None:
        y = y + bias.to(torch.float64)
    return LQEROutputs(x=xq, main=main, t=t, u=u, y=y)
