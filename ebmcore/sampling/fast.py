"""An in-place SGLD loop for targets with a closed-form gradient.

:func:`ebmcore.sampling.kernels.sgld_step` is a pure function: every step allocates a
new state and (for most targets) runs autograd.  For the analytic targets the
gradient is a handful of elementwise operations, so the Python and allocator
overhead dominates.  :func:`sgld_loop` instead advances the positions in place
with preallocated buffers; the gradient is written by an *in-place gradient*
``grad_fn(x, out)`` into a buffer it is given.

The loop consumes the generator exactly as ``sgld_step`` does (one
``randn(N, 2)`` draw per step, same dtype and device), so from the same seed
both produce the same positions up to floating-point rounding.

It never checks for divergence: callers run it in chunks and check between
chunks (as :func:`ebmcore.sampling.runner.run` does every few steps), while an
``on_step`` hook copies out what they keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.sampling.noise import Rng, fill_normal_

__all__ = [
    "FAST_GRADS",
    "InplaceGrad",
    "banana_grad",
    "gaussian_grad",
    "inplace_grad",
    "mixture_grad",
    "sgld_loop",
    "wrap_grad",
]


class InplaceGrad(Protocol):
    """Writes ``grad E(x)`` for ``x (N, 2)`` into ``out (N, 2)`` and returns ``out``."""

    def __call__(self, x: Tensor, out: Tensor) -> Tensor: ...


def sgld_loop(
    x: Tensor,
    grad_fn: InplaceGrad,
    n_steps: int,
    step_size: float,
    temperature: float,
    generator: Rng,
    noise_buf: Tensor | None = None,
    *,
    grad_buf: Tensor | None = None,
    paths_out: Tensor | None = None,
    on_step: Callable[[int, Tensor], object] | None = None,
) -> Tensor:
    """Run ``n_steps`` of ``x <- x - eps grad E(x) + sqrt(2 eps T) xi`` in place.

    Args:
        x: ``(N, 2)`` floating positions, overwritten (and returned).
        grad_fn: in-place closed-form gradient, see :class:`InplaceGrad`.
        n_steps: number of transitions (0 is allowed and does nothing).
        step_size: ``eps > 0``.
        temperature: ``T >= 0``; 0 is gradient descent and draws no noise.
        generator: the random stream, on ``x``'s device.
        noise_buf: optional ``(N, 2)`` scratch for the noise, same dtype/device as ``x``.
        grad_buf: optional ``(N, 2)`` scratch for the gradient.
        paths_out: optional ``(K, n_steps, 2)`` buffer (any device/dtype, K <= N) that
            receives the first K chains' positions after every step, so a caller can keep
            full paths of a few chains while running long chunks.
        on_step: optional ``f(i, x)`` called after step ``i`` (1-based) with the positions,
            to copy what it keeps (recorded frames, thinned paths); it must not modify ``x``.

    Returns:
        ``x``, advanced.
    """
    if x.ndim != 2 or x.shape[1] != 2 or not x.is_floating_point():
        raise ValidationError(f"positions must be a floating (N, 2) tensor, got {tuple(x.shape)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValidationError(f"n_steps must be a whole number >= 0, got {n_steps!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValidationError(f"step size must be a finite number > 0, got {step_size}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValidationError(f"temperature must be a finite number >= 0, got {temperature}")
    grad = _scratch(grad_buf, x, "grad_buf")
    scale = math.sqrt(2.0 * step_size * temperature)
    noise = _scratch(noise_buf, x, "noise_buf") if scale > 0 else None
    if paths_out is not None and (paths_out.ndim != 3 or paths_out.shape[1:] != (n_steps, 2)
                                  or paths_out.shape[0] > x.shape[0]):
        raise ValidationError(f"paths_out must have shape (K <= N, {n_steps}, 2)")
    with torch.no_grad():
        for i in range(n_steps):
            grad_fn(x, grad)
            x.add_(grad, alpha=-step_size)
            if noise is not None:
                fill_normal_(noise, generator)
                x.add_(noise, alpha=scale)
            if paths_out is not None:
                paths_out[:, i] = x[: paths_out.shape[0]]
            if on_step is not None:
                on_step(i + 1, x)
    return x


def _scratch(buf: Tensor | None, like: Tensor, name: str) -> Tensor:
    if buf is None:
        return torch.empty_like(like)
    if buf.shape != like.shape or buf.dtype != like.dtype or buf.device != like.device:
        raise ValidationError(f"{name} must match the positions' shape, dtype and device")
    return buf


class _Workspace:
    """``(N,)`` scratch vectors, reallocated only when N, dtype or device change."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._bufs: list[Tensor] = []

    def get(self, x: Tensor) -> list[Tensor]:
        b = self._bufs
        if not b or b[0].shape[0] != x.shape[0] or b[0].dtype != x.dtype or b[0].device != x.device:
            self._bufs = [x.new_empty(x.shape[0]) for _ in range(self._count)]
        return self._bufs


def gaussian_grad(mean: tuple[float, ...], cov: tuple[float, ...]) -> InplaceGrad:
    """In-place gradient of ``N(mean, cov)``: ``out = (x - m) P`` with ``P = cov^-1``.

    Written as six elementwise operations on the columns rather than one
    ``addmm``: a ``(N, 2) x (2, 2)`` product goes through the BLAS, whose
    threads collapse (x100 slower) when other processes share the cores.

    Args:
        mean: ``(m0, m1)``.
        cov: the covariance as 4 numbers, row-major.
    """
    a, b, c, d = cov
    det = a * d - b * c
    p00, p01, p11 = d / det, -0.5 * (b + c) / det, a / det  # symmetric precision
    m0, m1 = mean
    c0, c1 = p00 * m0 + p01 * m1, p01 * m0 + p11 * m1  # m P

    def grad(x: Tensor, out: Tensor) -> Tensor:
        u, v, o0, o1 = x[:, 0], x[:, 1], out[:, 0], out[:, 1]
        torch.mul(u, p00, out=o0)
        o0.add_(v, alpha=p01).sub_(c0)
        torch.mul(u, p01, out=o1)
        o1.add_(v, alpha=p11).sub_(c1)
        return out

    return grad


def banana_grad(x_std: float, bend: float, y_std: float) -> InplaceGrad:
    """In-place gradient of the ``banana`` target (parameters as in ``ebmcore.targets.registry``).

    With ``a2 = x_std^2``, ``s2 = y_std^2``, ``b = bend y_std / a2`` and
    ``r = (y - b (x^2 - a2)) / s2``: ``grad E = (x (1/a2 - 2 b r), r)``.
    """
    a2, s2 = x_std * x_std, y_std * y_std
    b = bend * y_std / a2
    work = _Workspace(2)

    def grad(x: Tensor, out: Tensor) -> Tensor:
        r, t = work.get(x)
        u, v = x[:, 0], x[:, 1]
        torch.addcmul(v, u, u, value=-b, out=r)  # y - b x^2
        r.add_(b * a2)
        if s2 != 1.0:
            r.mul_(1.0 / s2)
        torch.mul(r, -2.0 * b, out=t)
        t.add_(1.0 / a2)
        torch.mul(u, t, out=out[:, 0])
        out[:, 1].copy_(r)
        return out

    return grad


def mixture_grad(k: float, radius: float, std: float) -> InplaceGrad:
    """In-place gradient of the ``mixture`` target: ``(x - sum_j w_j mu_j) / std^2``.

    ``w`` is the softmax over components of ``-|x - mu_j|^2 / 2 std^2``, laid out
    ``(k, N)`` so that every reduction runs along the long axis (a softmax over a
    short last axis is ~10x slower on the CPU), shifted by the nearest centre's
    distance so that the largest weight is exactly 1 and nothing underflows to 0/0.
    """
    k_int = int(k)
    ang = torch.arange(k_int, dtype=torch.float64) * (2.0 * math.pi / k_int)
    centres = torch.stack([radius * torch.cos(ang), radius * torch.sin(ang)])  # (2, k)
    var = std * std
    cache: dict[tuple, tuple[Tensor, list[Tensor]]] = {}

    def grad(x: Tensor, out: Tensor) -> Tensor:
        key = (x.shape[0], x.dtype, x.device)
        if key not in cache:
            cache.clear()
            mu = centres.to(x.dtype).to(x.device)
            n = x.shape[0]
            bufs = [x.new_empty(k_int, n), x.new_empty(k_int, n), x.new_empty(2, n)]
            cache[key] = (mu, bufs)
        mu, (d2, t, m) = cache[key]
        u, v = x[:, 0], x[:, 1]
        torch.sub(u[None, :], mu[0][:, None], out=d2)
        d2.square_()
        torch.sub(v[None, :], mu[1][:, None], out=t)
        d2.addcmul_(t, t)
        torch.amin(d2, 0, out=m[0])
        # Unnormalised weights, max 1; below e^-40 (4e-18 of the largest, invisible even in
        # float64) they are clamped: exp of very negative numbers goes through slow denormals.
        d2.sub_(m[0]).mul_(-0.5 / var).clamp_(min=-40.0).exp_()
        torch.mm(mu, d2, out=m)  # (2, N): sum_j w_j mu_j, unnormalised
        torch.sum(d2, 0, out=t[0])
        m.div_(t[0])
        torch.sub(x, m.T, out=out)
        return out.mul_(1.0 / var)

    return grad


FAST_GRADS: dict[str, Callable[..., InplaceGrad]] = {
    "gaussian": gaussian_grad,
    "banana": banana_grad,
    "mixture": mixture_grad,
}
"""Target name -> builder of its in-place gradient from the target's ``params``."""


def wrap_grad(grad: Callable[[Tensor], Tensor]) -> InplaceGrad:
    """Adapt an allocating closed-form gradient ``(N, 2) -> (N, 2)`` to the in-place protocol."""

    def inplace(x: Tensor, out: Tensor) -> Tensor:
        return out.copy_(grad(x))

    return inplace


def inplace_grad(target: Target) -> InplaceGrad | None:
    """The fastest in-place gradient for ``target``; None when it has no closed form.

    A specialised kernel from :data:`FAST_GRADS` is used only if it agrees with
    ``target.grad`` on probe points (so a target rebuilt with other meanings
    for its parameters falls back safely); otherwise ``target.grad`` is wrapped.
    """
    if target.grad is None:
        return None
    build = FAST_GRADS.get(target.name)
    if build is not None:
        try:
            fast = build(**_float_params(target.params))
        except (TypeError, ValueError):
            fast = None
        if fast is not None and _agrees(fast, target.grad, target):
            return fast
    return wrap_grad(target.grad)


def _float_params(params: Mapping[str, object]) -> dict[str, object]:
    return {k: tuple(float(c) for c in v) if isinstance(v, (tuple, list)) else float(v)
            for k, v in params.items()}


def _agrees(fast: InplaceGrad, grad: Callable[[Tensor], Tensor], target: Target) -> bool:
    x0, x1, y0, y1 = target.box
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(16, 2, generator=gen, dtype=torch.float64)
    pts = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], 1)
    ref = grad(pts)
    got = fast(pts, torch.empty_like(pts))
    return bool(torch.allclose(got, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max() + 1)))
