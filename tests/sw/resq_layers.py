"""Random ResQ layers for the tests: activations with outlier channels, a PCA basis, factors."""

import torch
from torch import nn

from sw.qconfig import QuantConfig
from sw.resq import fixed_basis, pca_basis
from sw.resq_factors import resq_layer_factors


def activations(tokens: int, d: int, *, seed: int, outliers: int = 3, scale: float = 30.0,
                structure: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Gaussian activations with a few outlier channels and a low-rank component; the outlier
    channels and the low-rank directions come from ``structure`` (fixed by default, as a
    layer's input statistics are), the tokens from ``seed``."""
    s = torch.Generator().manual_seed(10_000 + structure)
    mix = torch.randn(4, d, generator=s, dtype=torch.float64)
    channels = torch.randperm(d, generator=s)[:outliers]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d, generator=g, dtype=torch.float64)
    x += torch.randn(tokens, 4, generator=g, dtype=torch.float64) @ mix
    x[:, channels] *= scale
    return x.to(dtype)


def linear(d_in: int, d_out: int, *, seed: int, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out, bias=bias)


def resq_factors(layer: nn.Linear, x: torch.Tensor, *, rank: int = 16, seed: int = 0,
                 rotation: str = "pca", **config):
    """Factors of ``layer`` with a basis from the second moment of ``x`` (or a fixed one, rank 0)."""
    d_in = layer.in_features
    if rotation == "pca":
        xd = x.reshape(-1, d_in).double()
        basis = pca_basis(xd.T @ xd, rank, seed=seed, name="layer", tokens=xd.shape[0])
    else:
        basis = fixed_basis(d_in, rotation, seed=seed, name="layer")
    cfg = QuantConfig(method="resq", **{"w_width": 4, "a_width": 4, **config})
    return resq_layer_factors(layer.weight, basis=basis, config=cfg, bias=layer.bias, name="layer")
