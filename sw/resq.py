"""ResQ bases: the second moment of each quantized layer's input, its principal directions, and a
seeded random rotation inside each subspace (Saxena et al. 2024, "ResQ", arXiv 2412.14363).

For a layer whose input x has width d (docs/sw.md, "ResQ")::

    M   = sum over calibration tokens of x^T x          float64, raw (not mean-centred)
    M'  = M + 0.01 mean(diag M) I                        damping, as the authors' code
    M'  = V diag(lambda) V^T                             torch.linalg.eigh, lambda descending
    V_h = the top r eigenvectors, V_l = the other d - r
    U   = [V_l R_l | V_h R_h]                            R_l, R_h: seeded random orthogonal

``R`` is the Q of a QR decomposition of a standard Gaussian matrix with the signs of R's
diagonal moved into Q (Mezzadri 2007), so it is Haar-distributed; the Gaussian comes from a
CPU generator seeded by ``(seed, basis name, subspace)``, so a seed gives the same bases on
any device. Each eigenvector's sign is fixed (its largest-magnitude entry positive) before
the rotation, so the basis does not depend on the LAPACK build's sign choice.

Layers that read the very same input tensor (q/k/v, gate/up) have the same M; it is
accumulated once (by the first of them to run). ``resq_basis="shared"`` gives them one
basis (the paper's one projection per input, as its U_A for attention and MLP inputs);
``"per-layer"`` (default) one each -- the same subspaces, different random rotations.

A calibration set is singular for a layer when its inputs span fewer than ``r`` directions
(eigenvalues of M above ``d * eps64 * lambda_max``): the 8-bit subspace would not be
determined by data. That is a :class:`sw.calibration.CalibrationError` naming the layer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from sw.calibration import CalibrationError, InputHooks
from sw.finite import NonFiniteError, describe_origin, first_nonfinite
from sw.models import check_token_ids
from sw.qconfig import RESQ_BASES as BASIS_MODES
from sw.resq_plan import LayerPlan
from sw.resq_reference import sylvester_hadamard

__all__ = ["DAMPING", "BASIS_MODES", "Basis", "MomentCollector", "collect_moments", "seed_for",
           "random_orthogonal", "pca_basis", "fixed_basis", "build_bases"]

DAMPING = 0.01          # times mean(diag M), added to M's diagonal before eigh (the authors' value)


@dataclass
class Basis:
    """One orthogonal basis ``matrix`` (d, d) float64, columns ``[U_l | U_h]`` (the last
    ``rank`` are the high-precision directions), and where it came from."""

    name: str                        # the layer it was computed for (shared: the group's first)
    matrix: torch.Tensor
    rank: int
    rotation: str                    # "pca", "hadamard" or "random-orthogonal"
    eigenvalues: torch.Tensor | None = None   # of the undamped M, descending (pca only)
    tokens: int = 0                  # calibration tokens behind M

    @property
    def energy_high(self) -> float | None:
        """The share of ``||X||_F^2`` (trace M) in the top-``rank`` subspace (pca only)."""
        if self.eigenvalues is None:
            return None
        lam = self.eigenvalues.clamp_min(0)
        total = float(lam.sum())
        return float(lam[: self.rank].sum()) / total if total > 0 else 0.0


def seed_for(seed: int, name: str, part: str) -> int:
    """A 56-bit generator seed from the user's ``seed``, a basis name and a part name."""
    return int.from_bytes(hashlib.sha256(f"resq:{seed}:{name}:{part}".encode()).digest()[:7], "big")


def random_orthogonal(n: int, seed: int) -> torch.Tensor:
    """A Haar-random orthogonal (n, n) float64 matrix on the CPU (QR of a seeded Gaussian, signs fixed)."""
    if n == 0:
        return torch.zeros((0, 0), dtype=torch.float64)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    g = torch.randn(n, n, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    signs = torch.sign(torch.diagonal(r))
    return q * torch.where(signs == 0, torch.ones_like(signs), signs)


# ---------------------------------------------------------------- second moments

class MomentCollector(InputHooks):
    """Forward pre-hooks accumulating ``sum x^T x`` (float64) per distinct layer input.

    The first layer (in call order) to read a tensor owns its moment; a layer reading the
    same tensor object afterwards (q/k/v, gate/up) adds nothing and records that owner
    (:attr:`owners`). Call :meth:`end_batch` after each forward pass.
    """

    def __init__(self, layers: dict[str, nn.Linear]):
        super().__init__(layers)
        self.moments: dict[str, torch.Tensor] = {}
        self.tokens: dict[str, int] = {}
        self.owners: dict[str, str] = {}
        self.batches = 0
        self._seen: dict[int, tuple] = {}

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._seen.clear()

    def _record(self, name: str, x: torch.Tensor) -> None:
        hit = self._seen.get(id(x))
        if hit is not None and hit[0] is x and hit[1] == x._version:
            owner = hit[2]
        else:
            owner = name
            self._seen[id(x)] = (x, x._version, name)
        if self.owners.setdefault(name, owner) != owner:
            raise CalibrationError(f"layer {name} must read the same input on every call to "
                                   f"share a second moment; it read {self.owners[name]}'s "
                                   f"input before and {owner}'s now")
        if owner != name:
            return
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        moment = flat.T @ flat
        if name in self.moments:
            self.moments[name] += moment
            self.tokens[name] += flat.shape[0]
        else:
            self.moments[name] = moment
            self.tokens[name] = flat.shape[0]

    def end_batch(self) -> None:
        self._seen.clear()
        self.batches += 1

    def first_nonfinite_layer(self) -> str | None:
        """The first layer (in layer order) whose moment is not finite; one device sync."""
        names = [n for n in self._layers if n in self.moments]
        if not names:
            return None
        finite = torch.stack([torch.isfinite(self.moments[n]).all() for n in names]).cpu()
        bad = torch.nonzero(~finite)
        return names[int(bad[0, 0])] if bad.numel() else None

    def check_complete(self) -> None:
        """``CalibrationError`` when no batch ran or a layer was never called."""
        if self.batches == 0:
            raise CalibrationError("calibration must see at least one batch; got none")
        missing = [n for n in self._layers if n not in self.owners]
        if missing:
            raise CalibrationError(f"calibration never reached layer {missing[0]} "
                                   f"({len(missing)} layers unseen)")


@torch.no_grad()
def collect_moments(model: nn.Module, layers: dict[str, nn.Linear], batches: Iterable[torch.Tensor],
                    *, device: str | torch.device = "cpu", progress: bool = False) -> MomentCollector:
    """Run ``batches`` of token ids through ``model``; return the filled :class:`MomentCollector`.

    Raises ``ModelError`` for a token id beyond the embedding, :class:`sw.finite.NonFiniteError`
    when a layer's input is not finite (naming the first module whose output is not), and
    :class:`CalibrationError` when a layer is never reached.
    """
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc="calibrate", unit="batch", disable=None)
    with MomentCollector(layers) as collector:
        for index, batch in enumerate(iterator):
            check_token_ids(model, batch, name="calibration text")
            batch = batch.to(device)
            model(input_ids=batch)
            collector.end_batch()
            layer = collector.first_nonfinite_layer()
            if layer is not None:
                with collector.paused():
                    origin = first_nonfinite(model, lambda: model(input_ids=batch))
                raise NonFiniteError(f"calibration inputs must be finite; layer {layer} sees a "
                                     f"non-finite value in batch {index}, first output by "
                                     f"{describe_origin(origin)}")
    collector.check_complete()
    return collector


# ---------------------------------------------------------------- bases

def _fix_signs(v: torch.Tensor) -> torch.Tensor:
    """Each column scaled by +-1 so that its largest-magnitude entry is positive."""
    index = v.abs().argmax(dim=0, keepdim=True)
    signs = torch.sign(torch.gather(v, 0, index))
    return v * torch.where(signs == 0, torch.ones_like(signs), signs)


def pca_basis(moment: torch.Tensor, rank: int, *, seed: int, name: str, tokens: int = 0,
              layer: str | None = None) -> Basis:
    """The ResQ basis of a second moment ``moment`` (d, d) (module docstring); computed in float64 on
    the CPU.

    ``layer`` names the layer in the singular-calibration error (default ``name``). Raises
    :class:`CalibrationError` when the data span fewer than ``rank`` directions.
    """
    m = moment.detach().to("cpu", torch.float64)
    m = (m + m.T) / 2  # exact symmetry (the accumulated GEMMs may differ in the last bit)
    d = m.shape[0]
    diag = torch.diagonal(m)
    damp = DAMPING * float(diag.mean())
    values, vectors = torch.linalg.eigh(m + damp * torch.eye(d, dtype=torch.float64))
    values, vectors = values.flip(0) - damp, _fix_signs(vectors.flip(1))
    tol = d * torch.finfo(torch.float64).eps * max(float(values[0]) + damp, 0.0)
    span = int((values > tol).sum()) if float(diag.sum()) > 0 else 0
    if span < rank:
        raise CalibrationError(
            f"calibration inputs of layer {layer or name} must span at least {rank} directions "
            f"(the high-precision rank); they span {span} of {d} over {tokens} tokens (a "
            "singular calibration set): give more calibration text or a smaller --resq-rank")
    low = vectors[:, rank:] @ random_orthogonal(d - rank, seed_for(seed, name, "low"))
    high = vectors[:, :rank] @ random_orthogonal(rank, seed_for(seed, name, "high"))
    return Basis(name=name, matrix=torch.cat([low, high], dim=1), rank=rank, rotation="pca",
                 eigenvalues=values, tokens=tokens)


def fixed_basis(d: int, rotation: str, *, seed: int, name: str) -> Basis:
    """A data-free basis of rank 0: ``"hadamard"`` (``H / sqrt(d)``, d a power of two) or
    ``"random-orthogonal"`` (seeded)."""
    if rotation == "hadamard":
        matrix = torch.from_numpy(sylvester_hadamard(d))
    elif rotation == "random-orthogonal":
        matrix = random_orthogonal(d, seed_for(seed, name, "down"))
    else:
        raise ValueError(f"rotation must be hadamard or random-orthogonal; got {rotation!r}")
    return Basis(name=name, matrix=matrix, rank=0, rotation=rotation)


def build_bases(plans: dict[str, LayerPlan], shapes: dict[str, tuple[int, int]],
                collector: MomentCollector | None, *, mode: str, seed: int,
                progress: bool = False) -> dict[str, Basis]:
    """``{layer: Basis}`` for every planned layer.

    PCA layers take the moment of their input's owner (``collector``); with ``mode="shared"``
    the layers with one owner and one rank get one :class:`Basis` object, named after the
    owner, else each layer gets its own (named after itself). Raises ``ValueError`` for an
    unknown ``mode`` and :class:`CalibrationError` for a singular calibration set.
    """
    if mode not in BASIS_MODES:
        raise ValueError(f"resq_basis must be one of {', '.join(BASIS_MODES)}; got {mode!r}")
    items = plans.items()
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="bases", unit="layer", disable=None)
    bases: dict[str, Basis] = {}
    shared: dict[tuple[str, int], Basis] = {}
    for name, plan in items:
        d_in = shapes[name][1]
        if plan.rotation != "pca":
            bases[name] = fixed_basis(d_in, plan.rotation, seed=seed, name=name)
            continue
        owner = collector.owners[name]
        key = (owner, plan.rank)
        if mode == "shared" and key in shared:
            bases[name] = shared[key]
            continue
        basis_name = owner if mode == "shared" else name
        basis = pca_basis(collector.moments[owner], plan.rank, seed=seed, name=basis_name,
                          tokens=collector.tokens[owner], layer=name)
        if mode == "shared":
            shared[key] = basis
        bases[name] = basis
    return bases
