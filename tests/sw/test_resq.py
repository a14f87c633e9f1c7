"""sw.resq: second moments by hooks, the PCA basis (orthogonality, the top-r subspace, damping,
singular sets), seeded rotations, and bases shared by the layers that read one input."""

import pytest
import torch
from torch import nn

from sw.calibration import CalibrationError
from sw.resq import (MomentCollector, build_bases, fixed_basis, pca_basis, random_orthogonal,
                     seed_for)
from sw.resq_plan import LayerPlan

EYE_TOL = 1e-10


def _orthogonal(u: torch.Tensor) -> bool:
    eye = torch.eye(u.shape[1], dtype=torch.float64)
    return float((u.T @ u - eye).abs().max()) <= EYE_TOL


def _planted(tokens=2000, d=64, k=8, noise=1e-2, seed=0):
    """Activations with a planted k-dim subspace carrying most of the energy, plus outliers."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    coeff = torch.randn(tokens, k, generator=g, dtype=torch.float64) * torch.linspace(20, 5, k,
                                                                                      dtype=torch.float64)
    x = coeff @ basis.T + noise * torch.randn(tokens, d, generator=g, dtype=torch.float64)
    return x, basis


def test_random_orthogonal_is_orthogonal_and_seeded():
    for n in (1, 7, 64):
        q = random_orthogonal(n, seed=3)
        assert q.dtype == torch.float64 and _orthogonal(q)
        assert torch.equal(q, random_orthogonal(n, seed=3))
    assert not torch.equal(random_orthogonal(16, 1), random_orthogonal(16, 2))
    assert random_orthogonal(0, 1).shape == (0, 0)
    assert seed_for(0, "a", "low") != seed_for(0, "a", "high") != seed_for(1, "a", "high")


def test_pca_basis_is_orthogonal_and_its_top_r_subspace_captures_the_most_energy():
    x, planted = _planted()
    d, r = x.shape[1], 8
    basis = pca_basis(x.T @ x, r, seed=0, name="layer", tokens=x.shape[0])
    u = basis.matrix
    assert _orthogonal(u) and basis.rank == r
    total = float((x ** 2).sum())
    share = float(((x @ u[:, -r:]) ** 2).sum()) / total
    assert share == pytest.approx(basis.energy_high, rel=1e-9)
    # the planted subspace is the top one: the high-precision projector is its projector
    p_high = u[:, -r:] @ u[:, -r:].T
    assert float((p_high - planted @ planted.T).abs().max()) < 1e-3
    assert share > 0.999
    # ... and no other r-dim subspace captures more: random ones, the first r coordinates, and
    # the low-precision subspace's own r leading columns
    g = torch.Generator().manual_seed(5)
    others = [torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))[0] for _ in range(50)]
    others += [torch.eye(d, dtype=torch.float64)[:, :r], u[:, :r]]
    for q in others:
        assert float(((x @ q) ** 2).sum()) / total <= share + 1e-12


def test_seed_rotates_inside_the_subspaces_but_keeps_them():
    x, _ = _planted(seed=4)
    m = x.T @ x
    a = pca_basis(m, 8, seed=0, name="l")
    assert torch.equal(a.matrix, pca_basis(m, 8, seed=0, name="l").matrix)     # deterministic
    b = pca_basis(m, 8, seed=1, name="l")
    c = pca_basis(m, 8, seed=0, name="other layer")
    for other in (b, c):
        assert not torch.allclose(a.matrix, other.matrix)
        for cols in (slice(0, 56), slice(56, 64)):
            pa, po = a.matrix[:, cols] @ a.matrix[:, cols].T, other.matrix[:, cols] @ other.matrix[:, cols].T
            assert float((pa - po).abs().max()) < 1e-10


def test_a_singular_calibration_set_is_one_line_naming_the_layer():
    x, _ = _planted(tokens=500, k=4, noise=0.0)            # spans exactly 4 directions
    assert pca_basis(x.T @ x, 4, seed=0, name="l").rank == 4
    with pytest.raises(CalibrationError, match=r"^calibration inputs of layer q must span at least 8 "
                                               r"directions \(the high-precision rank\); they span 4 "
                                               r"of 64 over 500 tokens \(a singular calibration set\)"):
        pca_basis(x.T @ x, 8, seed=0, name="l", tokens=500, layer="q")
    with pytest.raises(CalibrationError, match=r"they span 0 of 64 over 3 tokens"):
        pca_basis(torch.zeros(64, 64, dtype=torch.float64), 8, seed=0, name="l", tokens=3)


def test_damping_is_one_percent_of_the_mean_diagonal():
    """The eigenvalues reported are the undamped moment's; the damping leaves the basis a basis."""
    m = torch.diag(torch.tensor([100.0, 4.0, 1.0, 0.0], dtype=torch.float64))
    with pytest.raises(CalibrationError, match="they span 3 of 4"):
        pca_basis(m, 4, seed=0, name="l")
    b = pca_basis(m, 1, seed=0, name="l")
    assert b.eigenvalues.tolist() == pytest.approx([100.0, 4.0, 1.0, 0.0], abs=1e-12)
    assert _orthogonal(b.matrix) and b.matrix[:, -1].abs().tolist() == pytest.approx([1, 0, 0, 0])


def test_fixed_bases():
    h = fixed_basis(16, "hadamard", seed=0, name="fc2").matrix
    assert _orthogonal(h) and float(h.abs().min()) == 0.25
    r = fixed_basis(12, "random-orthogonal", seed=0, name="fc2")
    assert _orthogonal(r.matrix) and r.rank == 0
    with pytest.raises(ValueError, match="^rotation must be hadamard or random-orthogonal; got 'pca'$"):
        fixed_basis(8, "pca", seed=0, name="x")


class _Attention(nn.Module):
    """q, k, v read the same tensor; o reads another."""

    def __init__(self, d=32):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        return self.o(torch.tanh(self.q(x) + self.k(x) * self.v(x)))


def test_moments_are_taken_once_per_input_tensor():
    torch.manual_seed(0)
    block = _Attention()
    layers = dict(q=block.q, k=block.k, v=block.v, o=block.o)
    xs = [torch.randn(3, 5, 32) for _ in range(2)]
    with MomentCollector(layers) as c, torch.no_grad():
        for x in xs:
            block(x)
            c.end_batch()
    c.check_complete()
    assert c.owners == {"q": "q", "k": "q", "v": "q", "o": "o"}
    assert set(c.moments) == {"q", "o"} and c.tokens == {"q": 30, "o": 30}
    flat = torch.cat([x.reshape(-1, 32) for x in xs]).double()
    assert torch.allclose(c.moments["q"], flat.T @ flat, rtol=1e-12, atol=1e-12)

    plans = {n: LayerPlan(rank=8, rotation="pca") for n in layers}
    shapes = {n: (32, 32) for n in layers}
    shared = build_bases(plans, shapes, c, mode="shared", seed=0)
    assert shared["q"] is shared["k"] is shared["v"] and shared["o"] is not shared["q"]
    assert shared["k"].name == "q"
    per_layer = build_bases(plans, shapes, c, mode="per-layer", seed=0)
    assert len({id(b) for b in per_layer.values()}) == 4 and per_layer["k"].name == "k"
    uq, uk = per_layer["q"].matrix, per_layer["k"].matrix
    assert not torch.allclose(uq, uk)      # one subspace, two rotations
    assert torch.allclose(uq[:, -8:] @ uq[:, -8:].T, uk[:, -8:] @ uk[:, -8:].T, atol=1e-10)


def test_a_layer_never_reached_is_named():
    block = _Attention()
    with MomentCollector({"q": block.q, "extra": nn.Linear(32, 32)}) as c:
        block(torch.randn(2, 32))
        c.end_batch()
    with pytest.raises(CalibrationError, match=r"^calibration never reached layer extra"):
        c.check_complete()
    with pytest.raises(ValueError, match=r"^resq_basis must be one of per-layer, shared; got 'x'$"):
        build_bases({}, {}, c, mode="x", seed=0)
