"""Dynamics-embedding samplers: exact log densities, entropy accounting, the bound, gradients.

Everything runs in float64 with analytic energies, so most checks are exact to
rounding; the few Monte Carlo checks derive their tolerance beside them.
"""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.ebm.flows import HamiltonianFlow, LangevinFlow, make_flow
from ebmcore.ebm.initial import InitialDistribution
from ebmcore.energies import ValidationError

A = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)  # precision of the Gaussian
M = torch.tensor([0.3, -0.2], dtype=torch.float64)
LOG_Z = math.log(2 * math.pi) - 0.5 * math.log(float(torch.linalg.det(A)))  # over R^2


def gauss(x: torch.Tensor) -> torch.Tensor:
    d = x - M
    return 0.5 * ((d @ A) * d).sum(1)


def quartic(x: torch.Tensor) -> torch.Tensor:
    """A non-Gaussian energy (two wells in x, gradients growing only linearly)."""
    return (1 + (x[:, 0] ** 2 - 1) ** 2).sqrt() + 0.5 * (x[:, 1] - 0.3 * x[:, 0]) ** 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise(flow, seed: int):
    """Random phi: every parameter moved by N(0, 0.3^2) (couplings get non-trivial too)."""
    g = gen(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def log_gauss(y: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``(n,)`` log N(y; mean, cov) by Cholesky, written independently of the flows."""
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, (y - mean).T, upper=False).T
    k = y.shape[1]
    return -0.5 * (z**2).sum(1) - chol.diagonal().log().sum() - 0.5 * k * math.log(2 * math.pi)


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
@pytest.mark.parametrize("lam", [None, 2.5])
def test_exact_q_gives_log_z_per_draw(kind, lam):
    # q0 = p and no steps: -E(x) - log q0(x) = log Z for every draw, and for HMC the
    # velocity terms cancel when sigma_v^2 = 1 / lambda.  Exact up to float64 rounding of
    # O(10)-sized terms: 1e-12.
    flow = make_flow(kind, 0).double()
    flow.q0.set_gaussian(M, torch.linalg.inv(A))
    if lam is not None and kind == "hmc":
        with torch.no_grad():
            flow.log_lam.fill_(math.log(lam))
            flow.log_sigma_v.fill_(-0.5 * math.log(lam))
    w = flow(gauss, 500, gen()).log_weights
    assert w.shape == (500,)
    torch.testing.assert_close(w, torch.full_like(w, LOG_Z), atol=1e-12, rtol=0)


def _langevin_matrix(eps: torch.Tensor, t: int) -> torch.Tensor:
    """Linear map u = (x0, eta_1..eta_T) -> (x_T, v_1..v_T) for grad E = A (x - M), M = 0."""
    k = 2 + 2 * t
    x = torch.zeros(2, k, dtype=torch.float64)
    x[:, :2] = torch.eye(2, dtype=torch.float64)
    vs = []
    for i in range(t):
        sel = torch.zeros(2, k, dtype=torch.float64)
        sel[:, 2 + 2 * i: 4 + 2 * i] = torch.eye(2, dtype=torch.float64)
        v = -eps[i] * A @ x + sel
        x = x + v
        vs.append(v)
    return torch.cat([x, *vs])


def _leapfrog_matrix(eps: torch.Tensor, lam: float, t: int) -> torch.Tensor:
    """Linear map (x0, v0) -> (x_T, v_T) of T leapfrog steps on grad E = A x."""
    x = torch.cat([torch.eye(2), torch.zeros(2, 2)], 1).double()
    v = torch.cat([torch.zeros(2, 2), torch.eye(2)], 1).double()
    for i in range(t):
        v = v - 0.5 * eps[i] * A @ x
        x = x + eps[i] * lam * v
        v = v - 0.5 * eps[i] * A @ x
    return torch.cat([x, v])


def _centred(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((x @ A) * x).sum(1)


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
def test_entropy_accounting_on_linear_dynamics(kind):
    # On E = x^T A x / 2 the flows are linear maps of the Gaussian noise u, so the final
    # state is Gaussian with covariance J C J^T.  Independently of the flow's bookkeeping:
    # det J = 1, its entropy equals H(q0) + the noise entropies, and every draw's log q
    # equals the joint Gaussian log density of (x_T, v).
    t, n = 4, 300
    flow = randomise(make_flow(kind, t).double(), seed=3)
    eps = flow.log_eps.detach().exp()
    mu0, l0 = flow.q0.mean.detach()[0], flow.q0.scale_tril.detach()[0]
    if kind == "langevin":
        jac = _langevin_matrix(eps, t)
        sig = flow.log_sigma.detach().exp()
        var = torch.cat([torch.zeros(2, dtype=torch.float64), sig.repeat_interleave(2) ** 2])
    else:
        jac = _leapfrog_matrix(eps, float(flow.log_lam.detach().exp()), t)
        sv2 = float(flow.log_sigma_v.detach().exp()) ** 2
        var = torch.tensor([0.0, 0.0, sv2, sv2], dtype=torch.float64)
    cov_u = torch.diag(var)
    cov_u[:2, :2] = l0 @ l0.T
    mean_u = torch.cat([mu0, torch.zeros(len(var) - 2, dtype=torch.float64)])
    assert abs(float(torch.linalg.det(jac)) - 1) < 1e-10
    cov = jac @ cov_u @ jac.T
    k = cov.shape[0]
    h_exact = 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))
    assert abs(float(flow.entropy().detach()) - h_exact) < 1e-10 * k
    # Replay the documented noise: 2n normals for x0, then the steps' (or v0's) normals.
    g = gen(7)
    z0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    rest = torch.randn((t if kind == "langevin" else 1) * n * 2, generator=g, dtype=torch.float64)
    noise = rest.view(-1, n, 2).permute(1, 0, 2).reshape(n, -1) * var[2:].sqrt()
    u = torch.cat([mu0 + z0 @ l0.T, noise], 1)
    s = flow(_centred, n, gen(7))
    y = u @ jac.T  # (n, k): x_T then the velocities
    torch.testing.assert_close(s.x, y[:, :2], atol=1e-10, rtol=0)
    torch.testing.assert_close(s.log_q, log_gauss(y, mean_u @ jac.T, cov), atol=1e-8, rtol=0)
    # The Monte Carlo entropy -mean log q: Var(log q) = k / 2 for a k-dim Gaussian, so with
    # n = 300 the standard error is sqrt(k / 2 / n) <= 0.13 (k <= 10); 4 sigma.
    assert abs(float(-s.log_q.detach().mean()) - h_exact) < 4 * math.sqrt(k / 2 / n)


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
def test_importance_weights_are_normalised(kind):
    # E_q[exp(w)] = Z exactly when log q is the true density of the augmented state and
    # log_norm the true normaliser of exp(-K): a far stronger check than the bound being
    # low.  The log of the mean of n draws has standard error ~ std(exp w) / (mean sqrt n)
    # (delta method), measured on the draws themselves; 4 of those.
    flow = make_flow(kind, 3, 0.05 if kind == "langevin" else 0.3).double()
    flow.q0.set_gaussian(M, 1.3 * torch.linalg.inv(A))
    n = 40_000
    with torch.no_grad():  # values only (the flow still differentiates E in x inside)
        w = flow(gauss, n, gen(1)).log_weights
    ratio = (w - w.max()).exp()
    log_mean = float(ratio.mean().log() + w.max())
    rel_se = float(ratio.std() / ratio.mean()) / math.sqrt(n)
    assert rel_se < 0.05  # the test is informative only when q is not too far from p
    assert abs(log_mean - LOG_Z) < 4 * rel_se
    # ... while the bound itself sits below log Z by more than its own noise (q != p).
    bound, se = float(w.mean()), float(w.std()) / math.sqrt(n)
    assert bound < LOG_Z - 4 * se


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
def test_gradients_reach_phi_through_the_dynamics(kind):
    # d bound / d phi by autograd (create_graph through grad E) against central finite
    # differences of the same function (same generator seed, so the same noise).  float64:
    # the FD error with h = 1e-6 is ~1e-10, gradcheck's default tolerances are 1e-5.
    flow = randomise(make_flow(kind, 3, 0.02, components=3, layers=1, hidden=4).double(), 5)
    # gradcheck needs the parameters as inputs: rebind them functionally.
    names = [name for name, _ in flow.named_parameters()]

    def f(*values):
        out = torch.func.functional_call(flow, dict(zip(names, values, strict=True)),
                                         (quartic, 64, gen(2)), {"create_graph": True})
        return out.log_weights.mean()

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in flow.parameters())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    flow(quartic, 64, gen(2), create_graph=True).log_weights.mean().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in flow.parameters())


def test_initial_distribution_log_prob_and_jacobian():
    # log q0 of a draw equals log_prob of the same point, and the couplings' log det
    # equals the log det of the autograd Jacobian of z -> x.
    q0 = randomise(InitialDistribution(layers=3, hidden=8).double(), seed=1)  # K = 1
    x, log_q = q0.sample(50, gen(4))
    torch.testing.assert_close(q0.log_prob(x), log_q, atol=1e-10, rtol=0)
    z = torch.randn(50, 2, generator=gen(4), dtype=torch.float64)  # the same draws

    def forward(zi):
        xi = q0.mean[0] + zi @ q0.scale_tril[0].T
        for layer in q0.couplings:
            xi, _ = layer(xi[None])
            xi = xi[0]
        return xi

    for i in range(5):
        jac = torch.autograd.functional.jacobian(forward, z[i])
        log_n = -0.5 * float((z[i] ** 2).sum()) - math.log(2 * math.pi)
        log_det = math.log(abs(float(torch.linalg.det(jac))))
        assert abs(log_n - log_det - float(log_q[i].detach())) < 1e-10
    assert q0.entropy() is None
    plain = InitialDistribution(std=0.5).double()
    h = math.log(2 * math.pi * math.e) + 2 * math.log(0.5)  # H(N(0, 0.25 I)) in 2D
    # The parameters are created in float32 and cast: log 0.5 carries ~3e-8 of rounding.
    assert abs(float(plain.entropy().detach()) - h) < 1e-7


def test_noise_use_is_fixed():
    # The generator advances by the same amount whatever phi is, so runs that differ only
    # in phi (or in the energy) consume the same random numbers afterwards.
    for kind in ("langevin", "hmc"):
        g1, g2 = gen(9), gen(9)
        make_flow(kind, 3)(gauss, 10, g1)
        randomise(make_flow(kind, 3, 0.3, layers=1), seed=2)(quartic, 10, g2)
        assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))


def test_validation():
    with pytest.raises(ValidationError, match="unknown flow"):
        make_flow("nuts", 3)
    with pytest.raises(ValidationError, match="flow steps"):
        make_flow("langevin", -1)
    with pytest.raises(ValidationError, match="step size"):
        make_flow("hmc", 2, 0.0)
    assert isinstance(make_flow("langevin", 2), LangevinFlow)
    assert isinstance(make_flow("hmc", 2), HamiltonianFlow)


def test_mixture_q0_is_a_normalised_density_and_fits_clusters():
    # A random 3-component q0 with a coupling: draws' log q equals log_prob, and exp(log_prob)
    # integrates to 1 (midpoint rule on a box holding all but ~e^-30 of the mass; the
    # quadrature's own error estimate bounds the rest).
    from ebmcore.exact.density import quadrature

    q0 = randomise(InitialDistribution(components=3, layers=1, hidden=4, std=0.5).double(), 4)
    x, log_q = q0.sample(200, gen(5))
    torch.testing.assert_close(q0.log_prob(x), log_q, atol=1e-10, rtol=0)
    with torch.no_grad():
        gd = quadrature(lambda p: -q0.log_prob(p), (-9.0, 9.0, -9.0, 9.0), 512)
    assert abs(gd.log_z) < 1e-6 + gd.log_z_err
    # k-means start: three well separated clusters of 300 points with std 0.2 each; the
    # fitted means are cluster means, within 4 standard errors 4 * 0.2 / sqrt(300) = 0.046.
    centres = torch.tensor([[-3.0, 0.0], [0.0, 3.0], [3.0, -1.0]], dtype=torch.float64)
    pts = (centres[:, None, :] + 0.2 * torch.randn(3, 300, 2, generator=gen(6),
                                                   dtype=torch.float64)).reshape(-1, 2)
    fitted = InitialDistribution(components=3).double().fit(pts)
    got = fitted.mean.detach()
    dist = torch.cdist(centres, got).min(1).values
    assert float(dist.max()) < 4 * 0.2 / math.sqrt(300)
