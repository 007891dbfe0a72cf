"""The law kernel beyond ReLU and Gaussian weights (docs/design.md section 14): its closed forms
(leaky-relu, abs, linear; orthogonal weights) and its chain (every activation) against an
independent NumPy Monte Carlo of whole networks, against each other, and against exact laws
computed with scipy.

Statistical tests: fixed seeds; each Kolmogorov-Smirnov test fails for a correct kernel with
probability below 1e-6 (threshold p < 1e-6).  This module runs fewer than 300 of them, so a
false failure of the module has probability below 3e-4; with the fixed seeds the outcome is
deterministic.
"""

import numba
import numpy as np
import pytest
from scipy import special, stats

from mcinit import config, engine, kernels
from mcinit.config import ConfigError
from mcinit.initializers import scheme_of
from mcinit.kernels import common, law

P_MIN = 1e-6

# -------------------------------------------------------------- an independent NumPy network

#: phi and phi' of each activation, written here from their definitions (not mcinit.activations)
PHI = {
    "relu": (lambda a, s: np.maximum(a, 0.0), lambda a, s: (a > 0) * 1.0),
    "leaky-relu": (lambda a, s: np.where(a > 0, a, s * a), lambda a, s: np.where(a > 0, 1.0, s)),
    "abs": (lambda a, s: np.abs(a), lambda a, s: np.sign(a)),
    "linear": (lambda a, s: a, lambda a, s: np.ones_like(a)),
    "tanh": (lambda a, s: np.tanh(a), lambda a, s: 1.0 / np.cosh(a) ** 2),
    "gelu": (lambda a, s: 0.5 * a * (1.0 + special.erf(a / np.sqrt(2.0))),
             lambda a, s: 0.5 * (1.0 + special.erf(a / np.sqrt(2.0))) + a * np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)),
}


def haar(g, T, M):
    """T Haar-distributed M x M orthogonal matrices (QR of a Gaussian matrix, R's diagonal made positive)."""
    Q, R = np.linalg.qr(g.standard_normal((T, M, M)))
    return Q * np.sign(np.diagonal(R, axis1=1, axis2=2))[:, None, :]


def numpy_ratios(cfg, T, seed, x0=None):
    """rho, gamma (T, L) of T networks of a configuration (one Gaussian input, softmax head),
    drawn with NumPy's generator: every weight, the input (x0 when given), the targets; orthogonal weights are
    g times the top-left n_l x n_(l-1) block of a Haar matrix of size max(n_(l-1), n_l)."""
    g = np.random.default_rng(seed)
    name, _, slope = cfg.activation.partition(":")
    s = float(slope) if slope else 0.0
    phi, dphi = PHI[name]
    dist, var, gain = scheme_of(cfg)
    n = cfg.all_widths
    L = cfg.depth
    x = g.standard_normal((T, n[0])) if x0 is None else np.tile(x0, (T, 1))
    H, A, Ws = [x], [], []
    for l in range(1, L + 1):
        if cfg.init == "orthogonal":
            M = max(n[l - 1], n[l])
            W = gain[l - 1] * haar(g, T, M)[:, :n[l], :n[l - 1]]
        else:
            W = np.sqrt(var[l - 1]) * g.standard_normal((T, n[l], n[l - 1]))
        A.append(np.einsum("tij,tj->ti", W, H[-1]))
        H.append(phi(A[-1], s))
        Ws.append(W)
    K = cfg.head[1]
    Wo = g.standard_normal((T, K, n[L]))
    z = np.einsum("tki,ti->tk", Wo, H[-1])
    t = g.uniform(size=(T, K))
    t /= t.sum(axis=1, keepdims=True)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    e = p / p.sum(axis=1, keepdims=True) - t
    D = [None] * L
    D[L - 1] = dphi(A[L - 1], s) * np.einsum("tki,tk->ti", Wo, e)
    for l in range(L - 1, 0, -1):
        D[l - 1] = dphi(A[l - 1], s) * np.einsum("tij,ti->tj", Ws[l], D[l])
    x2 = np.sum(x * x, axis=1)
    h2 = np.stack([np.sum(h * h, axis=1) for h in H], axis=1)
    d2 = np.stack([np.sum(d * d, axis=1) for d in D], axis=1)
    rho = h2[:, 1:] / x2[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = d2 * h2[:, :-1] / (x2[:, None] * d2[:, -1:])
    return rho, gamma


# -------------------------------------------------------------- the law kernel's draws

def law_ratios(cfg, first=0, count=None, method=None, data=None):
    """fwd, bwd (count, L) and dead (count,) of the law kernel (``method``: law.fill's)."""
    count = cfg.trials if count is None else count
    plan = common.make_plan(cfg, data)
    L = cfg.depth
    fwd = np.full((count, 1, L), np.nan)
    bwd = np.full((count, 1, L), np.nan)
    dead = np.zeros(count, dtype=bool)
    law.fill(plan, first, count, fwd, bwd, dead, method=method)
    return fwd[:, 0], bwd[:, 0], dead


def build(activation, trials, widths="5,3,6", init="he", properties="both", seed=1, **kw):
    cfg, data = config.build(trials=trials, input_dim=4, widths=widths, head="softmax:3", activation=activation,
                             init=init, properties=properties, kernel="law", seed=seed, **kw)
    return cfg


def two_sample(a, b, label):
    """KS per layer between two (T, L) samples of ratios (finite values: a dead network's gamma is inf),
    in float32, so that an atom (orthogonal abs layers of n_l = M preserve the norm: ratio g^2) is one
    value in both samples whatever its rounding."""
    for l in range(a.shape[1]):
        x, y = a[:, l].astype(np.float32), b[:, l].astype(np.float32)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        p = stats.ks_2samp(x, y).pvalue
        assert p > P_MIN, (label, l + 1, p)


ACTIVATIONS = ["relu", "leaky-relu:0.2", "leaky-relu:-0.5", "abs", "linear", "tanh", "gelu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_law_kernel_matches_numpy_networks(activation):
    """Every layer's forward and backward ratio of the law kernel (closed form or chain, as auto
    runs it) has the law of whole NumPy networks of Gaussian weights."""
    cfg = build(activation, 20000)
    fwd, bwd, _ = law_ratios(cfg)
    rho, gamma = numpy_ratios(cfg, 20000, seed=11)
    two_sample(fwd, rho, (activation, "forward"))
    two_sample(bwd, gamma, (activation, "backward"))


@pytest.mark.parametrize("activation", ["leaky-relu:0.2", "tanh"])
def test_fixed_input_matches_numpy_networks(activation, correlated_npy):
    """A fixed input (its norm matters to tanh, which is not homogeneous): the law kernel against
    NumPy networks of that input."""
    cfg, data = config.build(trials=20000, data=correlated_npy[0], samples=1, widths="5,3,6", head="softmax:3",
                             activation=activation, kernel="law", seed=4)
    fwd, bwd, _ = law_ratios(cfg, data=data)
    rho, gamma = numpy_ratios(cfg, 20000, seed=13, x0=common.make_plan(cfg, data).X0[0])
    two_sample(fwd, rho, (activation, "forward"))
    two_sample(bwd, gamma, (activation, "backward"))


@pytest.mark.parametrize("activation", ["relu", "leaky-relu:0.2", "abs", "tanh", "gelu"])
def test_orthogonal_backward_matches_numpy_networks(activation):
    """Orthogonal weights, both properties (the chain's Haar decomposition of W_l^T delta^l) against
    NumPy networks of Haar matrices: widths that shrink and grow, so both cases of M occur."""
    cfg = build(activation, 20000, widths="6,3,5,5", init="orthogonal")
    fwd, bwd, _ = law_ratios(cfg)
    rho, gamma = numpy_ratios(cfg, 20000, seed=14)
    two_sample(fwd, rho, (activation, "orthogonal forward"))
    two_sample(bwd, gamma, (activation, "orthogonal backward"))


@pytest.mark.parametrize("activation", ["relu", "leaky-relu:0.2", "abs", "tanh", "gelu"])
def test_orthogonal_forward_matches_numpy_networks(activation):
    """Orthogonal weights' forward ratios (Beta laws or the chain on the sphere) against NumPy networks
    of Haar matrices: widths that shrink (rows orthonormal) and grow (columns orthonormal)."""
    cfg = build(activation, 20000, widths="6,3,5", init="orthogonal", properties="forward")
    fwd, _, _ = law_ratios(cfg)
    rho, _ = numpy_ratios(cfg, 20000, seed=12)
    two_sample(fwd, rho, (activation, "orthogonal"))


@pytest.mark.parametrize("activation", ["leaky-relu:0.2", "abs"] + [pytest.param(a, marks=pytest.mark.slow) for a in
                                        ("relu", "leaky-relu:-0.5", "leaky-relu:1.5", "linear")])
def test_closed_forms_match_the_chain(activation):
    """The closed forms (a few scalars per layer) and the chain (the layers' vectors) draw the same law
    with different random numbers: forward and backward, Gaussian weights, and orthogonal forward.
    At widths 3, 3 and 100,000 trials the backward comparison sees leaky-relu's cross term: without
    it (2 p sigma w |sin cos| (alpha^2 - 1) taken as 0) gamma_1 fails with p about 1e-23."""
    for widths, trials in (("7,4,6,3", 40000), ("3,3", 100000)):
        cfg = build(activation, trials, widths=widths)
        closed = law_ratios(cfg, method="closed")
        chain = law_ratios(cfg, method="chain")
        two_sample(closed[0], chain[0], (activation, widths, "forward"))
        two_sample(closed[1], chain[1], (activation, widths, "backward"))
    cfg = build(activation, 40000, widths="7,4,6,3", init="orthogonal", properties="forward")
    two_sample(law_ratios(cfg, method="closed")[0], law_ratios(cfg, method="chain")[0], (activation, "orth"))


def factors(fwd):
    """Each layer's factor rho_l / rho_(l-1) (T, L), independent across layers."""
    f = fwd.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        f[:, 1:] = fwd[:, 1:] / fwd[:, :-1]
    return f


def leaky_factor_cdf(x, n, v, a2, nodes=800):
    """P(v (chi2(K) + a2 chi2(n - K)) <= x), K ~ Bin(n, 1/2): for each K, the convolution
    int_0^1 F_chi2(K)(x / v - a2 Q_chi2(n-K)(u)) du by the midpoint rule in u."""
    u = (np.arange(nodes) + 0.5) / nodes
    total = np.zeros_like(x)
    for k in range(n + 1):
        y = stats.chi2.ppf(u, n - k) if n - k > 0 else np.zeros(1)
        arg = x[:, None] / v - a2 * y[None, :]
        Fk = stats.chi2.cdf(arg, k) if k > 0 else (arg >= 0).astype(float)
        total += stats.binom.pmf(k, n, 0.5) * Fk.mean(axis=1)
    return total


def ks_against(sample, cdf_on_grid, label):
    """One-sample KS of a sample against a CDF given on a fine grid (linear interpolation)."""
    grid = np.linspace(0.0, sample.max() * 1.0001, 600)
    F = cdf_on_grid(grid)
    p = stats.kstest(sample, lambda t: np.interp(t, grid, F)).pvalue
    assert p > P_MIN, (label, p)


@pytest.mark.parametrize("activation", ["leaky-relu:0.3", pytest.param("leaky-relu:-1.4", marks=pytest.mark.slow)])
def test_leaky_forward_factor_follows_its_exact_law(activation):
    """v (chi2(K) + alpha^2 chi2(n - K)), its CDF by quadrature of the convolution."""
    cfg = build(activation, 30000, widths="5,2,8")
    f = factors(law_ratios(cfg)[0])
    _, var, _ = scheme_of(cfg)
    a2 = float(activation.partition(":")[2]) ** 2
    for l, n in enumerate(cfg.widths):
        ks_against(f[:, l], lambda t: leaky_factor_cdf(t, n, var[l], a2), (activation, l + 1))


@pytest.mark.parametrize("activation", ["abs", "linear"])
def test_abs_and_linear_forward_factor_is_chi_square(activation):
    """phi'^2 = 1: each layer's factor is v chi2(n_l)."""
    cfg = build(activation, 30000, widths="5,2,8")
    f = factors(law_ratios(cfg)[0])
    _, var, _ = scheme_of(cfg)
    for l, n in enumerate(cfg.widths):
        p = stats.kstest(f[:, l] / var[l], stats.chi2(n).cdf).pvalue
        assert p > P_MIN, (activation, l + 1, p)


def test_orthogonal_relu_factor_follows_the_beta_binomial_mixture():
    """g^2 Beta(K/2, (M - K)/2), K ~ Bin(n_l, 1/2) (K = 0: 0; K = M: g^2), M = max(n_(l-1), n_l):
    the atoms' frequencies (binomial tests) and the KS test of the rest against the mixture's
    continuous part."""
    g2 = 1.3 ** 2
    cfg = build("relu", 40000, widths="7,3,9", init="orthogonal", properties="forward", gain=1.3)
    fwd = law_ratios(cfg)[0]
    all_n = cfg.all_widths
    prev = np.ones(len(fwd))
    for l in range(1, cfg.depth + 1):
        n, M = all_n[l], max(all_n[l - 1], all_n[l])
        live = prev > 0
        f = fwd[live, l - 1] / prev[live]
        prev = fwd[:, l - 1]
        k = np.arange(1, min(n, M - 1) + 1)
        w = stats.binom.pmf(k, n, 0.5)
        w0, wM = 0.5 ** n, (0.5 ** n if n == M else 0.0)
        zero, top = f == 0.0, np.abs(f - g2) < 1e-9 * g2
        assert stats.binomtest(int(zero.sum()), len(f), w0).pvalue > P_MIN, l
        if wM:
            assert stats.binomtest(int(top.sum()), len(f), wM).pvalue > P_MIN, l
        else:
            assert not top.any()
        inner = f[~zero & ~top]

        def cdf(t):
            t = np.asarray(t, dtype=float)[..., None]
            return np.sum(w * stats.beta.cdf(t / g2, k / 2, (M - k) / 2), axis=-1) / w.sum()
        p = stats.kstest(inner, cdf).pvalue
        assert p > P_MIN, (l, p)


def test_zero_slope_leaky_relu_draws_relus_numbers():
    """leaky-relu:0 through the closed form draws exactly the ReLU law kernel's numbers (the same
    rows, the same arithmetic): its backward recursion reduces to law_trial's."""
    relu = law_ratios(build("relu", 500, widths="6,1,4,5"))
    leaky = law_ratios(build("leaky-relu:0", 500, widths="6,1,4,5"))
    assert relu[2].any()          # width 1: dead networks included
    for a, b in zip(relu, leaky):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("activation,init", [("leaky-relu:0.1", "he"), ("tanh", "he"), ("gelu", "orthogonal")])
def test_same_numbers_across_threads_and_batches(activation, init):
    """A trial's numbers depend on its index only: not on the thread count or on how the trials
    are split into fills."""
    cfg = build(activation, 300, widths="4,6,3", init=init)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = law_ratios(cfg, first=40, count=300)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = law_ratios(cfg, first=40, count=300)
    finally:
        numba.set_num_threads(before)
    parts = [law_ratios(cfg, first=40, count=7), law_ratios(cfg, first=47, count=293)]
    split = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    for r in (two, split):
        for a, b in zip(one, r):
            assert np.array_equal(a, b, equal_nan=True)
    assert np.isfinite(one[0]).all()


# -------------------------------------------------------------- choice, refusals, cost

@pytest.mark.parametrize("activation", ["tanh", "leaky-relu:0.1"])
def test_auto_picks_law_for_one_input(activation):
    cfg, data = config.build(trials=50, widths="5,4", input_dim=3, activation=activation)
    assert kernels.resolve(cfg.kernel, *_choice_args(cfg)) == "law"
    rec = engine.run(cfg, data).records
    assert np.isfinite(rec["fwd_min"]).all() and np.isfinite(rec["bwd_min"]).all()


def _choice_args(cfg):
    dist, _, _ = scheme_of(cfg)
    return (dist, cfg.all_widths, cfg.samples, cfg.head[1], cfg.init, cfg.precision, cfg.arch, cfg.properties,
            cfg.activation)


def test_auto_picks_law_for_orthogonal_weights_of_one_input():
    """auto picks law for orthogonal weights and one input (the closed forms for the forward ratios of
    the homogeneous activations, the chain otherwise), dense or projected for several inputs."""
    for act, props, method in (("tanh", "forward", "chain"), ("relu", "forward", "closed"),
                               ("leaky-relu:0.1", "both", "chain"), ("relu", "backward", "chain")):
        cfg, _ = config.build(trials=5, widths="5,4", input_dim=3, init="orthogonal", properties=props,
                              activation=act)
        assert kernels.resolve("auto", *_choice_args(cfg)) == "law"
        assert law.method_of(common.make_plan(cfg)) == method
    cfg, _ = config.build(trials=5, widths="5,4", input_dim=3, init="orthogonal", samples=2)
    assert kernels.resolve("auto", *_choice_args(cfg)) in ("dense", "projected")


def test_law_cost_counts_the_chains_normals():
    """The chain's estimated cost grows with the widths (a term per normal drawn); the closed forms'
    does not."""
    narrow, wide = (10, 20, 20), (10, 400, 400)
    for act, grows in (("tanh", True), ("gelu", True), ("leaky-relu:0.1", False), ("relu", False)):
        a = kernels.cost("law", narrow, 1, 10, activation=act)
        b = kernels.cost("law", wide, 1, 10, activation=act)
        assert (b > 2 * a) == grows, act
    assert kernels.cost_terms("law", wide, 1, 10, activation="tanh")[4] == 1600
    assert kernels.cost_terms("law", wide, 1, 10, backward=False, activation="tanh", orthogonal=True)[4] == 800
    assert kernels.cost_terms("law", wide, 1, 10, backward=False, orthogonal=True)[4] == 0
    assert kernels.cost_terms("law", wide, 1, 10, orthogonal=True)[4] == 1600


def test_activation_refusals_name_the_kernels_that_compute_it():
    """One input: dense, projected and law compute other activations; several inputs: dense and
    projected, and law says it takes one input; uniform weights: dense alone."""
    with pytest.raises(ConfigError, match="computed by the dense, projected and law kernels, not blocked"):
        kernels.choose("blocked", 0, (4, 5, 5), 1, 3, "he", activation="tanh")
    with pytest.raises(ConfigError, match="computed by the dense and projected kernels, not blocked"):
        kernels.choose("blocked", 0, (4, 5, 5), 2, 3, "he", activation="gelu")
    with pytest.raises(ConfigError, match="computed by the dense kernel, not blocked"):
        kernels.choose("blocked", 1, (4, 5, 5), 2, 3, "he", activation="gelu")
    with pytest.raises(ConfigError, match="one input per trial"):
        kernels.choose("law", 0, (4, 5, 5), 2, 3, "he", activation="abs")
