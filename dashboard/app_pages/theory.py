"""Theory: energy-based models, maximum likelihood, Langevin sampling, adversarial training.

Each section ends with buttons that open the page it explains, with matching
settings passed as query parameters (the pages read every setting from the URL).
"""

from __future__ import annotations

import streamlit as st

from dashboard import state
from ebmcore.sampling.theory import section

PAGE = "theory"


def _open(label: str, page: str, params: dict[str, str], key: str, *,
          help: str | None = None, primary: bool = False) -> None:
    """A button that switches to ``page`` (a file in app_pages) with ``params`` in the URL."""
    if st.button(label, key=state.widget_key(PAGE, key), help=help,
                 type="primary" if primary else "secondary", icon=":material/open_in_new:"):
        st.switch_page(f"app_pages/{page}", query_params=params)


REFERENCE = {"target": "gaussian", "p.cov": "2, 1, 1, 2", "eps": "0.3", "steps": "1000"}


def section_ebm() -> None:
    st.markdown("### 1 · Energy-based models")
    st.markdown(
        "A generative model should assign high probability to data like ours. An **energy-based "
        "model** (EBM) does so through a single scalar function, the *energy* $E_\\theta(x)$: "
        "low energy means likely. Any positive density can be written this way:")
    st.latex(r"p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z_\theta}, \qquad "
             r"Z_\theta = \int e^{-E_\theta(x)}\,dx, \qquad "
             r"\log p_\theta(x) = -E_\theta(x) - \log Z_\theta .")
    st.markdown(
        "The energy can be anything, a neural network included, which is what makes EBMs "
        "flexible. The price is the normalising constant $Z_\\theta$: an integral over the whole "
        "space, intractable in high dimension. Everything below is a way around it. In this lab "
        "$x$ lives in the plane, so we *can* compute $Z$ exactly (a fine grid over a box), and "
        "every approximation can be checked against the truth.")
    _open("Open the reference Gaussian in the playground", "playground.py", REFERENCE, "go_ebm",
          primary=True)


def section_mle() -> None:
    st.markdown("### 2 · Maximum likelihood and its two phases")
    st.markdown(
        "We fit $\\theta$ by maximising the log-likelihood of the data (equivalently, "
        "minimising the cross-entropy between the data and the model). Differentiating the log "
        "of the integral $Z_\\theta$ brings out an expectation under the model itself:")
    st.latex(r"\nabla_\theta \log Z_\theta = \frac{\int -\nabla_\theta E_\theta(x)\, "
             r"e^{-E_\theta(x)}\,dx}{Z_\theta} = -\,\mathbb{E}_{x\sim p_\theta}"
             r"\big[\nabla_\theta E_\theta(x)\big]")
    st.latex(r"\nabla_\theta \log p_\theta(x_{\text{data}}) = "
             r"\underbrace{-\nabla_\theta E_\theta(x_{\text{data}})}_{\text{push data energy down}}"
             r" \;+\; \underbrace{\mathbb{E}_{x\sim p_\theta}\big[\nabla_\theta E_\theta(x)\big]}"
             r"_{\text{push model samples' energy up}}")
    st.markdown(
        "The first term is easy. The second needs samples from the model, the *negatives*. "
        "Training methods differ only in how they get them: short Langevin runs from noise, "
        "persistent chains carried across iterations, a replay buffer, or (in 2D) the exact "
        "grid, which gives the true gradient to compare with.")
    cols = st.columns(3)
    for col, (method, label) in zip(cols, (("persistent", "persistent chains"),
                                           ("short-run", "short-run chains"),
                                           ("exact", "the exact gradient")), strict=True):
        with col:
            _open(f"Train with {label}", "training.py", {"method": method}, f"go_mle_{method}")


def section_langevin() -> None:
    st.markdown("### 3 · Sampling with Langevin dynamics")
    st.markdown(
        "To draw from $p(x)$ we only need the gradient of its log, and there $Z$ disappears: "
        "$\\nabla_x \\log p(x) = -\\nabla_x E(x)$. Stochastic gradient Langevin dynamics (SGLD) "
        "starts anywhere and follows that gradient, plus Gaussian noise scaled to the step:")
    st.latex(r"x_{t+1} = x_t - \varepsilon\,\nabla_x E(x_t) + \sqrt{2\varepsilon}\;\eta_t, "
             r"\qquad \eta_t \sim \mathcal N(0, I).")
    st.markdown(
        "Without the noise this is gradient descent: every chain slides into the nearest mode, "
        "the maximum a posteriori (MAP) point, and the samples all collapse there. The noise is "
        "what keeps them spread out exactly as much as $p$ is. The update is the Euler–Maruyama "
        "discretisation of the **Langevin stochastic differential equation**")
    st.latex(r"dX_t = -\nabla E(X_t)\,dt + \sqrt{2}\,dB_t ,")
    st.markdown(
        "driven by a Brownian motion $B_t$. Its Fokker–Planck equation "
        "$\\partial_t \\rho = \\nabla\\cdot(\\rho\\,\\nabla E + \\nabla \\rho)$ vanishes for "
        "$\\rho \\propto e^{-E}$: under mild conditions $p$ is its unique stationary law, and the "
        "chain forgets where it started.")
    st.markdown(
        "At a finite step the discretisation is **biased**. For a Gaussian with precision $A$ "
        "the chain is linear and its stationary covariance is exactly "
        "$(A - \\varepsilon A^2/2)^{-1}$, wider than $A^{-1}$ and unstable once "
        "$\\varepsilon \\ge 2/\\lambda_{\\max}(A)$. The Metropolis-adjusted variant (MALA) treats "
        "the step as a proposal and accepts it with the Metropolis–Hastings ratio, which removes "
        "the bias at any $\\varepsilon$; HMC does the same with longer, deterministic "
        "leapfrog moves.")
    c = st.columns(4)
    with c[0]:
        _open("SGLD on the Gaussian", "playground.py", REFERENCE, "go_sgld")
    with c[1]:
        _open("Noise off vs on", "versus.py", REFERENCE, "go_map",
              help="The same chains with and without noise, side by side; and the ε sweep.")
    with c[2]:
        _open("SGLD at ε = 1.2 (biased)", "playground.py",
              {**REFERENCE, "eps": "1.2", "chains": "5000"}, "go_bias")
    with c[3]:
        _open("MALA at ε = 1.2 (exact)", "playground.py",
              {**REFERENCE, "eps": "1.2", "chains": "5000", "sampler": "mala"}, "go_mala")


def section_adversarial() -> None:
    st.markdown("### 4 · A variational bound on log Z, and adversarial training")
    st.markdown(
        "Instead of sampling $p_\\theta$ inside the loss, bound its normaliser with any "
        "distribution $q_\\phi$ we can sample and whose density we know. By Jensen's inequality,")
    st.latex(r"\log Z_\theta = \log \mathbb{E}_{x\sim q_\phi}\!\left[\frac{e^{-E_\theta(x)}}"
             r"{q_\phi(x)}\right] \;\ge\; \mathbb{E}_{q_\phi}\big[-E_\theta(x)\big] + "
             r"H(q_\phi),")
    st.markdown(
        "with a gap of exactly $\\mathrm{KL}(q_\\phi \\,\\|\\, p_\\theta)$. Replacing $\\log Z$ "
        "by the bound turns maximum likelihood into a game: $q_\\phi$ tightens the bound (a "
        "generator), $E_\\theta$ lowers the energy of data relative to $q$'s samples (a "
        "discriminator):")
    st.latex(r"\max_\theta\;\min_\phi\;\; \mathbb{E}_{\text{data}}\big[-E_\theta(x)\big] - "
             r"\Big(\mathbb{E}_{q_\phi}\big[-E_\theta(x)\big] + H(q_\phi)\Big).")
    st.markdown("In 2D the lab computes $\\log Z_\\theta$ exactly, so the bound and its gap are "
                "drawn live during training.")
    _open("Train adversarially", "training.py", {"method": "adversarial"}, "go_adv")


def section_dynamics() -> None:
    st.markdown("### 5 · The entropy term: dynamics with unit Jacobian")
    st.markdown(
        "The bound needs $H(q_\\phi)$, hence $q$'s density at its own samples. Dynamics "
        "embedding builds $q$ by running a sampler from a simple start $q_0$ and keeps track of "
        "the density through the change of variables: if every map has Jacobian determinant 1, "
        "the density of the final state *is* the density of the initial one. A Langevin step "
        "written with an explicit velocity is two shears,")
    st.latex(r"v_i = -\varepsilon\,\nabla E(x_{i-1}) + \eta_i, \qquad x_i = x_{i-1} + v_i,")
    st.markdown(
        "each with unit Jacobian, so "
        "$\\log q(x_T, v_{1:T}) = \\log q_0(x_0) + \\sum_i \\log p(\\eta_i)$. The model is "
        "augmented to $p(x, v_{1:T}) \\propto \\exp\\big(-E(x) - "
        "\\tfrac{\\lambda}{2}\\sum_i \\lVert v_i\\rVert^2\\big)$, whose $x$-marginal is the EBM, "
        "and the bound is taken on the joint. With many steps the product of noise densities "
        "makes it loose. Hamiltonian dynamics avoid that: $(x_0, v_0) \\sim q_0$, leapfrog steps "
        "are volume preserving, and $H(q) = H(q_0)$ however many steps are taken.")
    c = st.columns(2)
    with c[0]:
        _open("Langevin flow", "training.py", {"method": "adversarial", "flow": "langevin"},
              "go_flow_l")
    with c[1]:
        _open("Hamiltonian flow", "training.py", {"method": "adversarial", "flow": "hmc"},
              "go_flow_h")


def section_flow() -> None:
    st.markdown("### 6 · The law of the chains: the Fokker–Planck equation")
    st.markdown(
        "A single chain is random; the *distribution* $\\rho_t$ of many chains is not. For the "
        "Langevin SDE $dX_t = -\\nabla E(X_t)\\,dt + \\sqrt{2T}\\,dB_t$ it obeys a "
        "deterministic partial differential equation,")
    st.latex(r"\frac{\partial \rho_t}{\partial t} = \nabla\cdot\big(\rho_t\,\nabla E\big)"
             r" + T\,\Delta \rho_t ,")
    st.markdown(
        "whose only stationary state is $p_T \\propto e^{-E/T}$, and along which "
        "$\\mathrm{KL}(\\rho_t \\,\\|\\, p_T)$ never increases. In 2D the lab solves it on the "
        "grid with finite volumes (Scharfetter–Gummel fluxes, so that the normalised "
        "$e^{-E/T}$ is the exact discrete stationary state, mass is conserved and "
        "$\\rho \\ge 0$). For a Gaussian target this is the Ornstein–Uhlenbeck process: "
        "with $A = \\Sigma^{-1}$, $m_t = \\mu + e^{-At}(m_0 - \\mu)$ and the KL decays like "
        "$e^{-2\\lambda_{\\min}(A) t}$. SGLD with step $\\varepsilon$ approximates "
        "$\\rho_{k\\varepsilon}$ after $k$ steps: its histogram follows the exact law, then stalls "
        "at its discretisation bias while the exact KL keeps falling to 0.")
    c = st.columns(3)
    with c[0]:
        _open("See the law move (ε = 0.3)", "dynamics.py",
              {"target": "gaussian", "eps": "0.3", "chains": "20000", "t": "10",
               "init": "gaussian", "x0": "4, -3", "std": "1"}, "go_fp",
              primary=True)
    with c[1]:
        _open("At ε = 1.2: the bias, made visible", "dynamics.py",
              {"target": "gaussian", "eps": "1.2", "chains": "20000", "t": "12",
               "init": "gaussian", "x0": "4, -3", "std": "1"}, "go_fp_bias")
    with c[2]:
        _open("The mixture from one mode", "dynamics.py",
              {"target": "mixture", "eps": "0.05", "chains": "20000", "t": "5",
               "init": "point", "x0": "2, 0", "arrows": "1"}, "go_fp_mix")


def section_family() -> None:
    st.markdown(section("underdamped").replace("### ", "### 7 · ", 1))
    c = st.columns(2)
    with c[0]:
        _open("Phase space", "samplers.py", {"view": "phase", "target": "gaussian"}, "go_ud",
              primary=True)
    with c[1]:
        _open("Overdamped vs underdamped", "samplers.py", {"view": "race", "target": "mixture"},
              "go_race")
    st.markdown(section("annealed").replace("### ", "### 8 · ", 1))
    _open("Annealed vs plain on the mixture", "samplers.py",
          {"view": "annealed", "target": "mixture"}, "go_annealed")
    st.markdown(section("stepwise").replace("### ", "### 9 · ", 1))
    c = st.columns(3)
    with c[0]:
        _open("HMC step by step", "samplers.py",
              {"view": "stepwise", "target": "banana", "sb_sampler": "hmc"}, "go_sb_hmc")
    with c[1]:
        _open("MALA step by step", "samplers.py",
              {"view": "stepwise", "target": "banana", "sb_sampler": "mala"}, "go_sb_mala")
    with c[2]:
        _open("MALA with a too large step", "samplers.py",
              {"view": "stepwise", "target": "banana", "sb_sampler": "mala", "sb_eps": "1.5"},
              "go_sb_big")


def main() -> None:
    st.markdown("## Theory")
    st.caption("The ideas behind every page, in brief. Each section opens the page that shows "
               "it, with matching settings.")
    for part in (section_ebm, section_mle, section_langevin, section_adversarial,
                 section_dynamics, section_flow, section_family):
        with st.container(border=True):
            part()
    st.caption("Further reading: Y. Song and D. P. Kingma, *How to Train Your Energy-Based "
               "Models* (2021); G. A. Pavliotis, *Stochastic Processes and Applications* "
               "(Springer, 2014) for the Langevin equation; B. Dai et al., *Exponential Family "
               "Estimation via Adversarial Dynamics Embedding* (NeurIPS 2019, arXiv 1904.12083).")


main()
