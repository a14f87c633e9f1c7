"""PyTorch path of the MXINT contract, for emulation inside models.

Bit-identical to :mod:`sw.mxint` (the reference) on float16, bfloat16,
float32 and float64 input, on any device: the tests compare mantissas and
exponents on >= 100,000 random blocks. It stays in floating point for speed,
and is exact because

* the shared exponent comes from ``torch.frexp`` (the float's own bits);
* scaling by ``2**k`` is split into two factors that are each a normal
  float32 power of two, so no intermediate over- or underflows in a way that
  could move a rounding decision (a product that underflows is far below 0.5);
* ``torch.round`` rounds half to even, and "away" is built from ``trunc`` and
  an exact fraction compare (adding 0.5 would round 0.49999997 up).

Half-precision input is computed in float32 (exact widening). Flavour "lqer"
adds the LQER authors' 1e-9 to each nonzero magnitude in the tensor's own
dtype first (``|x| + 1e-9`` on that tensor, as their code does), which is the
rule :func:`sw.mxint.lqer_nudged` states.
"""

from __future__ import annotations

import torch

from sw.mxint import LQER_NUDGE, MXIntFormat, as_format

__all__ = ["quantize_torch", "dequantize_torch", "fake_quantize"]


def _pow2(k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Exact 2**k built from its bit pattern; k must give a normal number (|k| < 127)."""
    if dtype == torch.float64:
        return ((k.to(torch.int64) + 1023) << 52).view(torch.float64)
    return ((k.to(torch.int32) + 127) << 23).view(torch.float32)


def _scale(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """x * 2**k exactly (up to harmless underflow), in two normal factors."""
    k1 = torch.div(k, 2, rounding_mode="floor")
    return x * _pow2(k1, x.dtype) * _pow2(k - k1, x.dtype)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got dtype {x.dtype}")
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _to_blocks(x: torch.Tensor, dim: int, block: int) -> tuple[torch.Tensor, int]:
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    pad = -n % block
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], (n + pad) // block, block), n


def _check_finite(x: torch.Tensor, name: str) -> None:
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{name} has a non-finite value ({x[index].item()}) at index {index}; "
                         "MXINT input must be finite")


def _block_exponents(xb: torch.Tensor, fmt: MXIntFormat) -> torch.Tensor:
    """Shared exponents (int32, (..., nb)) of blocks (..., nb, block)."""
    emin, emax = fmt.exponent_range
    lo, hi = torch.aminmax(xb, dim=-1)  # one pass over the data instead of abs + amax
    amax = torch.maximum(hi, -lo)
    mant, exp = torch.frexp(amax)  # amax = mant * 2**exp, mant in [0.5, 1)
    if fmt.flavour == "ocp":
        e = exp - 1
    else:
        e = torch.where(mant == 0.5, exp - 1, exp)  # ceil(log2 amax)
    return torch.where(amax == 0, torch.full_like(e, emin), e.clamp(emin, emax))


def _lqer_rounded(x: torch.Tensor, dim: int, block: int) -> torch.Tensor:
    """Flavour "lqer": blocks of ``sign(x) * fl(|x| + 1e-9)`` (0 where x is 0), widened."""
    # 1e-9 as a tensor of x's dtype: what PyTorch makes of the authors' scalar, on every device
    nudge = torch.tensor(LQER_NUDGE, dtype=x.dtype, device=x.device)
    r = torch.where(x == 0, x, torch.copysign(x.abs() + nudge, x))
    return _to_blocks(r.to(_compute_dtype(x)), dim, block)[0]


def _round_clamp_(scaled: torch.Tensor, fmt: MXIntFormat) -> torch.Tensor:
    """Round to integers (in place) and saturate to the symmetric range."""
    qmax = fmt.mantissa_max
    if fmt.rounding == "even":
        q = scaled.round_()
    else:
        t = torch.trunc(scaled)
        q = t.add_(torch.where((scaled - t).abs() >= 0.5, torch.sign(scaled), torch.zeros_like(t)))
    return q.clamp_(-qmax, qmax)


def quantize_torch(x: torch.Tensor, fmt: MXIntFormat | None = None, *, dim: int = -1,
                   name: str = "x", check_finite: bool = True,
                   **format_fields) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(mantissas, exponents)`` exactly as :func:`sw.mxint.quantize`.

    The format is ``fmt`` or built from keywords (:class:`sw.mxint.MXIntFormat`).
    ``mantissas`` (int16) has x's shape; ``exponents`` (int16) has x's shape
    with ``dim`` replaced by the number of blocks. Raises ``ValueError`` on a
    non-float tensor, a bad ``dim`` or format, and (``check_finite``) on NaN/inf.
    """
    fmt = as_format(fmt, format_fields)
    dim = _check_dim(x, dim)
    if check_finite:
        _check_finite(x, name)
    xb, n = _to_blocks(x.to(_compute_dtype(x)), dim, fmt.block)
    e = _block_exponents(xb, fmt)
    rb = _lqer_rounded(x, dim, fmt.block) if fmt.flavour == "lqer" else xb
    q = _round_clamp_(_scale(rb, (fmt.frac_bits - e).unsqueeze(-1)), fmt)
    q = q.reshape(*q.shape[:-2], -1)[..., :n].to(torch.int16).movedim(-1, dim)
    return q, e.to(torch.int16).movedim(-1, dim)


def dequantize_torch(mantissas: torch.Tensor, exponents: torch.Tensor,
                     fmt: MXIntFormat | None = None, *, dim: int = -1,
                     dtype: torch.dtype = torch.float32, **format_fields) -> torch.Tensor:
    """Values ``mantissas * 2**(exponent - frac_bits)``; exact in float32 for width <= 16."""
    fmt = as_format(fmt, format_fields)
    dim = _check_dim(mantissas, dim)
    m = mantissas.movedim(dim, -1).to(dtype)
    lsb = (exponents.movedim(dim, -1).to(torch.int32) - fmt.frac_bits)
    lsb = lsb.repeat_interleave(fmt.block, dim=-1)
    return _scale(m, lsb[..., : m.shape[-1]]).movedim(-1, dim)


def fake_quantize(x: torch.Tensor, fmt: MXIntFormat | None = None, *, dim: int = -1,
                  name: str = "x", check_finite: bool = False, **format_fields) -> torch.Tensor:
    """Quantize and dequantize in one pass; returns float32 (float64 for float64 input).

    The values are exactly those of ``sw.mxint.quantize(...).dequantize()``.
    Finiteness is not checked by default (it costs a device sync per call).
    """
    fmt = as_format(fmt, format_fields)
    dim = _check_dim(x, dim)
    if check_finite:
        _check_finite(x, name)
    dtype = _compute_dtype(x)
    xb, n = _to_blocks(x.to(dtype), dim, fmt.block)
    e = _block_exponents(xb, fmt)
    rb = _lqer_rounded(x, dim, fmt.block) if fmt.flavour == "lqer" else xb
    k = (fmt.frac_bits - e).unsqueeze(-1)  # scaled = x * 2**k
    limit = 1000 if dtype == torch.float64 else 126
    if bool(((k > limit) | (k < -limit)).any()):  # tiny blocks: scale not a normal number
        q = _round_clamp_(_scale(rb, k), fmt)
        y = _scale(q, -k)
    else:
        # Common case: one exact multiply each way. The inverse 2**-k is formed on
        # the small per-block tensor by an exact division (it may be subnormal).
        scale = _pow2(k, dtype)
        q = _round_clamp_(rb * scale, fmt)
        y = q.mul_(torch.reciprocal(scale))
    return y.reshape(*y.shape[:-2], -1)[..., :n].movedim(-1, dim)


def _check_dim(x: torch.Tensor, dim) -> int:
    nd = x.dim()
    if isinstance(dim, bool) or not isinstance(dim, int) or not -nd <= dim < nd:
        raise ValueError(f"dim must be an integer in {-nd}..{nd - 1} for a {nd}-d input; got {dim!r}")
    return dim % nd
