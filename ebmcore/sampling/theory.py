r"""Theory sections for the Langevin family, as Markdown with LaTeX (``$...$``, ``$$...$$``).

The theory page shows :data:`SECTIONS` as they are (``st.markdown`` renders the maths).
"""

from __future__ import annotations

__all__ = ["SECTIONS", "section"]

UNDERDAMPED = r"""
### Underdamped Langevin in phase space

Overdamped Langevin moves the position alone. **Underdamped** (kinetic) Langevin gives each
chain a velocity $v$ and follows Newton's law with friction $\gamma$ and matching noise:

$$dx = v\,dt, \qquad dv = -\nabla E(x)\,dt - \gamma v\,dt + \sqrt{2\gamma T}\,dB_t .$$

Its invariant law is $\pi(x, v) \propto e^{-(E(x) + |v|^2/2)/T}$: the positions follow
$p^{1/T}$, the velocities are Maxwellian $\mathcal N(0, T I)$. Momentum carries chains
across a flat region in a straight line instead of a random walk, so they mix faster at the
same cost per step (one gradient). As $\gamma \to \infty$, with time rescaled by $\gamma$,
it becomes overdamped Langevin again.

**BAOAB** (Leimkuhler and Matthews, 2013) splits a step $h$ into a half kick
$B: v \leftarrow v - \tfrac h2 \nabla E(x)$, a half drift $A: x \leftarrow x + \tfrac h2 v$,
the exact friction-and-noise solve $O: v \leftarrow c\,v + \sqrt{T(1-c^2)}\,\xi$ with
$c = e^{-\gamma h}$, then $A$ and $B$ again. On a Gaussian target
$E = \tfrac12 (x-m)^\top A (x-m)$ its stationary law is known exactly at every stable step
($h^2 \lambda_{\max}(A) < 4$):

$$\operatorname{Cov}(x) = T A^{-1} \ \text{(exact)}, \qquad
\operatorname{Cov}(v) = T\left(I - \tfrac{h^2}{4} A\right),$$

whereas unadjusted overdamped Langevin (SGLD) at step $\varepsilon$ settles at
$T\left(A - \tfrac{\varepsilon}{2} A^2\right)^{-1}$: too wide. With $\gamma h$ large, $O$
redraws the velocity each step and BAOAB's positions follow
$x' = x - \delta \nabla E(x) + \sqrt{\delta T / 2}\,(\xi_{n-1} + \xi_n)$ with
$\delta = h^2/2$, an overdamped scheme.
"""

ANNEALED = r"""
### Annealed Langevin

Langevin started in one mode of a multimodal target stays there for a time that grows
like $e^{\Delta E / T}$ with the barrier $\Delta E$: it reports the wrong **mode weights**
long after each mode looks right. **Annealed Langevin** runs the chains through a ladder
of smoothed targets

$$p_\sigma = p * \mathcal N(0, \sigma^2 I), \qquad
\sigma_1 > \sigma_2 > \dots > \sigma_L = 0,$$

a few steps at each level, ending on $p$ itself. Wide smoothing merges the modes into one
blob, so the chains spread over all of them in proportion to their mass before the
barriers rise; the narrow levels then only refine each mode.

Here $p_\sigma$ is computed exactly on the grid: the quadrature of $p$ against the Gaussian
kernel, in log space so the tails stay accurate. Its gradient comes from **Tweedie's
formula**

$$\nabla \log p_\sigma(x) = \frac{\mathbb E[x_0 \mid x_0 + \sigma \xi = x] - x}{\sigma^2},$$

the pull towards the posterior mean of the clean point. Since
$-\nabla^2 \log p_\sigma \preceq I / \sigma^2$, a level can take steps up to $\sigma^2 / 4$.
The levels halve from $\sigma_{\max}$ (Song and Ermon, 2019, anneal a learned score the same
way). The mass of each mode (the points nearest to its centre) is compared with the exact
weights; for $N$ independent chains its standard error is $\sqrt{w(1-w)/N}$.
"""

STEPWISE = r"""
### One step at a time: MALA and HMC proposals

A Metropolis-adjusted sampler proposes a move $y$ and keeps it with probability
$\alpha = \min\{1, r\}$, where for a target $\pi$ and proposal density $q$

$$r = \frac{\pi(y)\, q(x \mid y)}{\pi(x)\, q(y \mid x)} .$$

**MALA** proposes one Langevin step,
$y = x - \varepsilon \nabla E(x) + \sqrt{2\varepsilon T}\,\xi$, so
$q(y \mid x) = \mathcal N(y;\, x - \varepsilon \nabla E(x),\, 2\varepsilon T I)$.
**HMC** draws a momentum $v \sim \mathcal N(0, I)$, follows $L$ leapfrog steps of the
Hamiltonian $H = E/T + |v|^2/2$ and proposes the end of the path; leapfrog is reversible
and preserves volume, so $\log r = H(x, v) - H(y, v')$: only the energy error of the
integrator is ever rejected. Watching the proposals step by step (accepted in green,
rejected in red, with $\log \alpha$ and the running acceptance rate) shows why a large step
is mostly rejected: its proposals land where $\pi$ is small, or the leapfrog path's energy
error grows.
"""

SECTIONS: dict[str, str] = {"underdamped": UNDERDAMPED, "annealed": ANNEALED,
                            "stepwise": STEPWISE}
"""Sampler (or view) name -> its theory section."""


def section(name: str) -> str:
    """The Markdown of one section (``underdamped``, ``annealed`` or ``stepwise``)."""
    return SECTIONS[name].strip()
