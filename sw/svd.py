"""Truncated SVD, full or randomized, for the low-rank factors.

``randomized_svd`` is the range finder of Halko, Martinsson and Tropp (2011)
with power iterations (re-orthonormalised by QR each half step), drawn from
a seeded CPU generator so the same seed gives the same factors on any device.
"""

from __future__ import annotations

import torch

from sw.qconfig import SVD_METHODS

__all__ = ["SVD_METHODS", "truncated_svd", "randomized_svd"]


def randomized_svd(m: torch.Tensor, rank: int, *, oversample: int = 8, power_iterations: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Approximate top-``rank`` ``(U, S, Vh)`` of a 2-d ``m``."""
    rows, cols = m.shape
    width = min(rank + oversample, rows, cols)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    omega = torch.randn(cols, width, generator=gen, dtype=m.dtype).to(m.device)
    q, _ = torch.linalg.qr(m @ omega)
    for _ in range(power_iterations):
        z, _ = torch.linalg.qr(m.T @ q)
        q, _ = torch.linalg.qr(m @ z)
    u_small, s, vh = torch.linalg.svd(q.T @ m, full_matrices=False)
    return (q @ u_small)[:, :rank], s[:rank], vh[:rank]


def truncated_svd(m: torch.Tensor, rank: int, *, method: str = "full", oversample: int = 8,
                  power_iterations: int = 2, seed: int = 0):
    """Top-``rank`` ``(U, S, Vh)`` by a full SVD (exact) or a randomized one."""
    if method == "full":
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        return u[:, :rank], s[:rank], vh[:rank]
    if method == "randomized":
        return randomized_svd(m, rank, oversample=oversample, power_iterations=power_iterations,
                              seed=seed)
    raise ValueError(f'svd must be one of "full", "randomized"; got {method!r}')
