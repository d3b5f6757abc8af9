"""Initial distributions ``q0`` of the dynamics-embedding flows (:mod:`ebmcore.ebm.flows`).

``q0`` must be sampled by reparameterisation and have an exact log density: an
equal-weight mixture of full-covariance Gaussians (the component of a draw is
chosen independently of the parameters, so gradients flow through the draw and
through the log-sum-exp density), optionally followed by affine coupling layers
(a small normalising flow whose log-Jacobian is the sum of its log-scales).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["D", "InitialDistribution"]

D = 2  # dimension of x
_LOG_2PI = math.log(2 * math.pi)


def _log_normal(z: Tensor) -> Tensor:
    """``(n,)`` log density of standard normal rows ``z (n, d)``."""
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * _LOG_2PI


class _Coupling(nn.Module):
    """Affine coupling: ``x[b] <- x[b] exp(s(x[a])) + t(x[a])``, starting as the identity."""

    def __init__(self, a: int, hidden: int) -> None:
        super().__init__()
        self.a, self.b = a, 1 - a
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def _st(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(xa[:, None]).unbind(1)
        return 2.0 * torch.tanh(s / 2.0), t  # |s| < 2: no layer scales by more than e^2

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._st(x[:, self.a])
        cols = [x[:, 0], x[:, 1]]
        cols[self.b] = x[:, self.b] * s.exp() + t
        return torch.stack(cols, 1), s

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._st(y[:, self.a])
        cols = [y[:, 0], y[:, 1]]
        cols[self.b] = (y[:, self.b] - t) * (-s).exp()
        return torch.stack(cols, 1), s


class InitialDistribution(nn.Module):
    """``q0``: an equal-weight mixture of ``N(mean_k, L_k L_k^T)``, then affine couplings.

    ``L_k`` is lower triangular with a positive diagonal.  The component of each
    draw is chosen with probabilities that do not depend on phi, so the draws are
    reparameterised and ``log q0`` (a log-sum-exp over components) is exact.

    Args:
        components: ``K >= 1`` Gaussian components (1 = a plain Gaussian).
        layers: affine coupling layers after the mixture (0 = none).
        hidden: width of each coupling's network.
        std: initial standard deviation (isotropic) of every component.
    """

    def __init__(self, components: int = 1, layers: int = 0, hidden: int = 32,
                 std: float = 1.0) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(components, D))
        self.log_diag = nn.Parameter(torch.full((components, D), math.log(std)))
        self.off = nn.Parameter(torch.zeros(components))  # L_k[1, 0]
        self.couplings = nn.ModuleList(_Coupling(i % 2, hidden) for i in range(layers))

    @property
    def components(self) -> int:
        return self.mean.shape[0]

    @property
    def scale_tril(self) -> Tensor:
        """``(K, 2, 2)`` the factors ``L_k``."""
        d = self.log_diag.exp()
        row0 = torch.stack([d[:, 0], torch.zeros_like(self.off)], 1)
        return torch.stack([row0, torch.stack([self.off, d[:, 1]], 1)], 1)

    @torch.no_grad()
    def set_gaussian(self, mean: Tensor, cov: Tensor) -> InitialDistribution:
        """Components ``N(mean_k, cov_k)``; means ``(K, 2)`` or ``(2,)``, covs ``(K, 2, 2)``."""
        k = self.components
        mean = torch.as_tensor(mean, dtype=torch.float64).expand(k, D)
        cov = torch.as_tensor(cov, dtype=torch.float64).expand(k, D, D)
        chol = torch.linalg.cholesky(cov)
        self.mean.copy_(mean)
        self.log_diag.copy_(chol.diagonal(dim1=1, dim2=2).log())
        self.off.copy_(chol[:, 1, 0])
        return self

    @torch.no_grad()
    def fit(self, points: Tensor, iters: int = 20, jitter: float = 1e-3) -> InitialDistribution:
        """Start the mixture at a k-means clustering of ``points (n, 2)``, deterministically.

        Centres start at farthest points (from the one nearest the mean); each
        component gets its cluster's covariance plus ``jitter`` (the pooled one if
        the cluster has fewer than 3 points).
        """
        p = points.detach().to(torch.float64)
        k = min(self.components, len(p))
        centres = [int(((p - p.mean(0)) ** 2).sum(1).argmin())]
        for _ in range(1, k):
            d = torch.cdist(p, p[centres]).min(1).values
            centres.append(int(d.argmax()))
        c = p[centres]
        for _ in range(iters):
            label = torch.cdist(p, c).argmin(1)
            c = torch.stack([p[label == j].mean(0) if (label == j).any() else c[j]
                             for j in range(k)])
        label = torch.cdist(p, c).argmin(1)
        pooled = torch.cov((p - c[label]).T)
        eye = torch.eye(D, dtype=torch.float64)
        covs = torch.stack([torch.cov(p[label == j].T) if int((label == j).sum()) >= 3
                            else pooled for j in range(k)]) + jitter * eye
        reps = -(-self.components // k)  # fewer points than components: repeat
        return self.set_gaussian(c.repeat(reps, 1)[: self.components],
                                 covs.repeat(reps, 1, 1)[: self.components])

    def _mixture_log_prob(self, x: Tensor) -> Tensor:
        """``(n,)`` log density of the mixture at ``x (n, 2)`` (before the couplings)."""
        d = self.log_diag.exp()
        r = x[:, None, :] - self.mean  # (n, K, 2)
        z0 = r[..., 0] / d[:, 0]
        z1 = (r[..., 1] - self.off * z0) / d[:, 1]
        log_n = -0.5 * (z0**2 + z1**2) - self.log_diag.sum(1) - _LOG_2PI  # (n, K)
        return torch.logsumexp(log_n, 1) - math.log(self.components)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``x (n, 2)`` reparameterised draws and their ``log q0 (n,)``.

        Consumes ``2 n`` normals, and with ``K > 1`` first ``n`` component indices.
        """
        k = self.components
        idx = torch.randint(k, (n,), generator=generator) if k > 1 else None
        z = torch.randn(n, D, generator=generator, dtype=self.mean.dtype)
        if idx is None:
            x = self.mean[0] + z @ self.scale_tril[0].T
            log_q = _log_normal(z) - self.log_diag[0].sum()
        else:
            x = self.mean[idx] + (self.scale_tril[idx] @ z[:, :, None])[:, :, 0]
            log_q = self._mixture_log_prob(x)
        for layer in self.couplings:
            x, s = layer(x)
            log_q = log_q - s
        return x, log_q

    def log_prob(self, x: Tensor) -> Tensor:
        """``(n,)`` ``log q0(x)`` of any points ``x (n, 2)``."""
        log_det = torch.zeros_like(x[:, 0])
        for layer in reversed(self.couplings):
            x, s = layer.inverse(x)
            log_det = log_det + s
        return self._mixture_log_prob(x) - log_det

    def entropy(self) -> Tensor | None:
        """Closed-form ``H(q0)`` of a plain Gaussian; ``None`` with components or couplings."""
        if len(self.couplings) or self.components > 1:
            return None
        return 0.5 * D * (1 + _LOG_2PI) + self.log_diag.sum()
