"""PyTorch path of the MXINT contract, for emulation inside models.

Bit-identical to :mod:`sw.mxint` (the reference) on float16, bfloat16,
float32 and float64 input, on any device: the tests compare mantissas and
exponents on >= 100,000 random blocks. It stays in floating point for speed,
and is exact because

* the shared exponent comes from the exponent field of each block's max |x| (the float's own bits);
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


def _abs_and_amax(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|xb|, max |x| of each block)``: (..., nb, block) -> same, and (..., nb).

    The maximum is a max-pool over the flat rows with window and stride
    ``block``: several times faster on CPU than a reduction over a short last
    axis (``aminmax`` / ``amax``), and exact (a maximum rounds nothing).
    """
    block = xb.shape[-1]
    a = xb.abs()
    if block == 1:
        return a, a[..., 0].clone()
    rows = a.reshape(-1, 1, a.shape[-2] * block)
    return a, torch.nn.functional.max_pool1d(rows, block).reshape(xb.shape[:-1])


def _block_amax(xb: torch.Tensor) -> torch.Tensor:
    """max |x| of each block: (..., nb, block) -> (..., nb)."""
    return _abs_and_amax(xb)[1]


# float layout: (integer view, mantissa bits, exponent bias)
_LAYOUT = {torch.float32: (torch.int32, 23, 127), torch.float64: (torch.int64, 52, 1023)}


def _exponents_of(amax: torch.Tensor, fmt: MXIntFormat) -> torch.Tensor:
    """Shared exponents (int32 / int64, amax's shape) from the bits of each block's max |x|.

    ``floor(log2 amax)`` ("ocp") or ``ceil(log2 amax)`` ("lqer") is the float's
    exponent field (plus one when the mantissa field is nonzero, for "lqer").
    Zero and subnormal maxima lie below every format's ``emin`` (>= -127), so
    the clamp gives them ``emin``, as the reference gives an all-zero block;
    the one exception, a float32 subnormal in (2**-127, 2**-126) whose ceil is
    -126, is kept apart by comparing the bits with 2**-127's.
    """
    emin, emax = fmt.exponent_range
    int_dtype, mantissa_bits, bias = _LAYOUT[amax.dtype]
    bits = amax.view(int_dtype)
    e = (bits >> mantissa_bits) - bias
    if fmt.flavour != "ocp":
        e = e + ((bits & ((1 << mantissa_bits) - 1)) != 0).to(e.dtype)
        if amax.dtype == torch.float32:
            e = e - (bits <= 1 << (mantissa_bits - 1)).to(e.dtype)  # subnormals up to 2**-127: ceil <= -127
    return e.clamp_(emin, emax)


def _block_exponents(xb: torch.Tensor, fmt: MXIntFormat) -> torch.Tensor:
    """Shared exponents ((..., nb), int32 or int64) of blocks (..., nb, block)."""
    return _exponents_of(_block_amax(xb), fmt)


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
    a, amax = _abs_and_amax(xb)
    rb = _lqer_rounded(x, dim, fmt.block) if fmt.flavour == "lqer" else xb
    if _needs_split_scale(amax, fmt, dtype):  # tiny blocks: 2**k not a normal number
        k = (fmt.frac_bits - _exponents_of(amax, fmt)).unsqueeze(-1)  # scaled = x * 2**k
        q = _round_clamp_(_scale(rb, k), fmt)
        y = _scale(q, -k)
    else:
        # Common case: one exact multiply each way, by 2**k and 2**-k; the product goes
        # into |x|'s buffer (no longer needed) unless autograd is watching
        scale, inverse = _normal_scales(amax, fmt)
        out = a if not a.requires_grad else None
        q = _round_clamp_(torch.mul(rb, scale.unsqueeze(-1), out=out), fmt)
        y = q.mul_(inverse.unsqueeze(-1))
    return y.reshape(*y.shape[:-2], -1)[..., :n].movedim(-1, dim)


def _normal_scales(amax: torch.Tensor, fmt: MXIntFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2**k, 2**-k)`` per block, ``k = frac_bits - e``, from the bits of ``amax``.

    Built on the biased exponent ``E = e + bias``: ``2**k`` has exponent field
    ``frac_bits + 2 bias - E``, ``2**-k`` has ``E - frac_bits``. ``E`` is
    clamped to the format's exponent range and to where both fields are
    normal (1 .. 2 bias); the latter moves only blocks that are all zero
    (any scale gives them 0) or tiny, which :func:`_needs_split_scale` sends
    to the exact two-factor path first.
    """
    emin, emax = fmt.exponent_range
    int_dtype, mantissa_bits, bias = _LAYOUT[amax.dtype]
    f = fmt.frac_bits
    if fmt.flavour == "ocp":
        biased = amax.view(int_dtype) >> mantissa_bits  # floor(log2 amax) + bias, for normal amax
    else:
        biased = _exponents_of(amax, fmt) + bias
    biased = biased.clamp_(max(emin + bias, f + 1), min(emax + bias, f + 2 * bias - 1))
    scale = (((f + 2 * bias) - biased) << mantissa_bits).view(amax.dtype)
    inverse = ((biased - f) << mantissa_bits).view(amax.dtype)
    return scale, inverse


# |k| up to which 2**k and 2**-k are both normal numbers of the compute dtype
_NORMAL_K = {torch.float32: 126, torch.float64: 1022}


def _needs_split_scale(amax: torch.Tensor, fmt: MXIntFormat, dtype: torch.dtype) -> bool:
    """Whether a nonzero block's ``k = frac_bits - e`` leaves the range of one normal scale.

    Decided from the format where its exponent range cannot reach the limit
    (no device sync); otherwise from the block maxima: ``k > limit`` exactly
    when ``0 < amax < 2**(frac_bits - limit)``, ``k < -limit`` when
    ``amax >= 2**(frac_bits + limit + 1)``.
    """
    limit = _NORMAL_K[dtype]
    emin, emax = fmt.exponent_range
    low = fmt.frac_bits - emin > limit       # tiny blocks possible
    high = fmt.frac_bits - emax < -limit     # huge blocks possible (width 2, emax 127)
    if not (low or high):
        return False
    bad = torch.zeros((), dtype=torch.bool, device=amax.device)
    if low:
        bad = ((amax < 2.0 ** (fmt.frac_bits - limit)) & (amax != 0)).any()
    if high:
        bad = bad | (amax >= 2.0 ** (fmt.frac_bits + limit + 1)).any()
    return bool(bad)


def _check_dim(x: torch.Tensor, dim) -> int:
    nd = x.dim()
    if isinstance(dim, bool) or not isinstance(dim, int) or not -nd <= dim < nd:
        raise ValueError(f"dim must be an integer in {-nd}..{nd - 1} for a {nd}-d input; got {dim!r}")
    return dim % nd
