"""mcinit.meanfield: the q-map against closed forms and scipy's quadrature, the fixed points and critical
variances, a run's prediction against the exact means and a NumPy network, and the depth-to-width law of
ln rho_L (its exact cumulants, its CDF and the KS distance to its Gaussian limit) against independent
computations."""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from mcinit import activations, meanfield as mf
from mcinit.config import build as _build
from mcinit.initializers import expected_forward, scheme_of
from mcinit.report.curves import exact_log_density

SMOOTH = ("tanh", "gelu")


def build(**kw):
    return _build(**kw)[0]


def _quad(f, q):
    """E[f(sqrt(q) z)] by scipy's adaptive quadrature over a, a ~ N(0, q), cut where phi bends."""
    s = math.sqrt(q)
    g = lambda a: f(np.array([a]))[0] * math.exp(-a * a / (2 * q)) / math.sqrt(2 * math.pi * q)
    pts = sorted({p for p in (-10.0, -3.0, -1.0, 0.0, 1.0, 3.0, 10.0) if abs(p) < 38 * s} | {0.0})
    return integrate.quad(g, -40 * s, 40 * s, points=pts, epsabs=1e-15, epsrel=1e-13, limit=1000)[0]


def test_homogeneous_closed_forms():
    for q in (0.0, 1e-3, 1.0, 7.5, 1e6):
        assert mf.phi_moment("relu", q) == q / 2
        assert mf.phi_moment("linear", q) == q
        assert mf.phi_moment("abs", q) == q
        assert mf.phi_moment("leaky-relu:0.2", q) == pytest.approx(q * 0.52, rel=1e-15)
        for s2 in (0.5, 2.0, 3.0):
            assert mf.chi_1("relu", s2, q) == s2 / 2
            assert mf.chi_1("linear", s2, q) == s2
            assert mf.q_map("relu", q, s2) == s2 * q / 2


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 10.0, 100.0, 1e4])
def test_quadrature_against_scipy(activation, q):
    """The composite Gauss-Legendre rule agrees with scipy.integrate.quad to 1e-10 at every scale of q."""
    phi2 = lambda a: activations.apply(activation, a) ** 2
    dphi2 = lambda a: activations.derivative(activation, a) ** 2
    assert abs(mf.phi_moment(activation, q) - _quad(phi2, q)) <= 1e-10 * max(1.0, q)
    assert abs(mf.dphi_moment(activation, q) - _quad(dphi2, q)) <= 1e-10


def test_quadrature_at_q_one_is_the_activations_second_moment():
    for a in SMOOTH:
        assert mf.phi_moment(a, 1.0) == pytest.approx(activations.second_moment(a), abs=1e-14)


def test_tanh_small_q_expansion():
    """tanh(x)^2 = x^2 - 2x^4/3 + 17x^6/45 - ...: E = q - 2q^2 + 17q^3/3 + O(q^4); tanh'(x)^2 = sech(x)^4 =
    1 - 2x^2 + 7x^4/3 - ...: E = 1 - 2q + 7q^2 + O(q^3)."""
    for q in (1e-4, 1e-3):
        assert abs(mf.phi_moment("tanh", q) - (q - 2 * q ** 2 + 17 * q ** 3 / 3)) < 30 * q ** 4
        assert abs(mf.dphi_moment("tanh", q) - (1 - 2 * q + 7 * q ** 2)) < 100 * q ** 3


def test_fixed_points():
    # tanh: q* = 0 up to sigma_w^2 = 1, then the positive root of the map
    assert mf.fixed_point("tanh", 0.8) == 0.0
    assert mf.fixed_point("tanh", 1.0) == 0.0
    q = mf.fixed_point("tanh", 2.0)
    assert q > 0 and mf.q_map("tanh", q, 2.0) == pytest.approx(q, rel=1e-12)
    assert mf.fixed_point("tanh", 2.0, q0=50.0) == pytest.approx(q, rel=1e-12)   # stable from above too
    # homogeneous: 0 below the critical variance, inf above, every q at it
    assert mf.fixed_point("relu", 1.9, 3.0) == 0.0
    assert mf.fixed_point("relu", 2.1, 3.0) == math.inf
    assert mf.fixed_point("relu", 2.0, 3.0) == 3.0
    # gelu at its gain (g^2 = 1 / E[gelu(z)^2]): q = 1 is a fixed point, unstable: below it falls, above grows
    g2 = activations.gain("gelu") ** 2
    assert mf.fixed_point("gelu", g2, 1.0) == 1.0
    assert mf.fixed_point("gelu", g2, 0.9) == 0.0
    assert mf.fixed_point("gelu", g2, 1.1) == math.inf
    assert mf.fixed_point("gelu", 1.5, 5.0) == 0.0 and mf.fixed_point("gelu", 4.5, 1e-6) == math.inf


def test_critical_variances():
    assert mf.critical_variance("relu") == 2.0
    assert mf.critical_variance("leaky-relu:0.2") == pytest.approx(2 / 1.04, rel=1e-15)
    assert mf.critical_variance("abs") == 1.0 and mf.critical_variance("linear") == 1.0
    assert mf.critical_variance("tanh") == 1.0
    assert mf.critical_variance("gelu") == 4.0
    for a in SMOOTH:                           # chi_1 at the fixed point crosses 1 there
        c = mf.critical_variance(a)
        for s2, below in ((0.9 * c, True), (0.99 * c, True), (1.05 * c, False), (1.5 * c, False)):
            chi = mf.chi_1(a, s2, mf.fixed_point(a, s2))
            assert (chi < 1) == below, (a, s2, chi)


@pytest.mark.parametrize("init,widths,n0", [("he", [7, 12, 5], 9), ("he-in", [6, 6, 6, 6], 10),
                                            ("glorot", [20, 8], 4), ("orthogonal", [8, 8, 8], 8)])
def test_relu_prediction_is_the_exact_mean(init, widths, n0):
    """For ReLU the mean-field recursion is E rho_l exactly (initializers.expected_forward)."""
    cfg = build(widths=widths, input_dim=n0, init=init)
    p = mf.predict_run(cfg)
    mean, _ = expected_forward(cfg)
    np.testing.assert_allclose(p.rho, mean, rtol=1e-13)
    assert p.beta == pytest.approx(sum(1 / n for n in widths))
    _, v, _ = scheme_of(cfg)
    assert p.chi_1 == pytest.approx(v[-1] * cfg.all_widths[-2] / 2, rel=1e-15)   # sigma_w^2 / 2
    if init == "orthogonal":
        assert p.chi_1 == pytest.approx(1.0, rel=1e-15)    # sigma_w^2 = 2 on equal widths: critical


def test_prediction_follows_the_q_map_and_needs_the_input_norm():
    v = [1.5 / 10, 1.5 / 30, 1.5 / 30]
    p = mf.predict("tanh", [10, 30, 30, 30], v, sq_norm=10.0)
    q = 1.5
    for l in range(3):                        # sigma_w^2 = v_l n_(l-1) = 1.5 at every layer
        assert p.q[l] == pytest.approx(q, rel=1e-14)
        assert p.rho[l] == pytest.approx(30 * mf.phi_moment("tanh", q) / 10, rel=1e-14)
        q = mf.q_map("tanh", q, 1.5)
    with pytest.raises(ValueError, match="sq_norm"):
        mf.predict("tanh", [10, 30], [0.1])
    assert mf.input_sq_norm(build(widths=[4], input_dim=6)) == 6.0
    assert mf.input_sq_norm(build(widths=[4], input_dim=6, data="sphere")) == 1.0
    assert mf.predict_run(build(width=4, input_dim=4, arch="residual", blocks=1)) is None


def test_tanh_prediction_against_a_wide_numpy_network():
    """rho_l of a tanh network of width 1000 (sigma_w^2 = 1.5, gaussian input) averaged over 16 networks
    lies within 6 sd of the mean-field prediction (sd from the networks themselves; the mean field's bias
    at this width is O(1/n), well inside): false failure < 1e-8."""
    rng = np.random.default_rng(20261207)
    n0, n, L, s2, nets = 50, 1000, 3, 1.5, 16
    widths = [n0] + [n] * L
    v = [s2 / m for m in widths[:-1]]
    rho = np.empty((nets, L))
    for t in range(nets):
        x = rng.standard_normal(n0)
        h = x
        for l in range(L):
            h = np.tanh(rng.normal(0.0, math.sqrt(v[l]), (n, len(h))) @ h)
            rho[t, l] = h @ h / (x @ x)
    p = mf.predict("tanh", widths, v, sq_norm=n0)
    sd = rho.std(axis=0, ddof=1) / math.sqrt(nets)
    assert (np.abs(rho.mean(axis=0) - p.rho) < 6 * sd).all(), (rho.mean(axis=0), p.rho, sd)


def test_log_ratio_law_against_the_exact_density():
    """The exact mean and variance of ln rho_L given alive against the moments of the FFT density."""
    widths, v = [6, 9, 4], [0.3, 2 / 9, 0.5]
    law = mf.log_ratio_law(widths, v)
    y, f, p_dead = exact_log_density(widths, variances=v, points_per_sd=16)
    h = y[1] - y[0]
    mass = f.sum() * h
    assert mass == pytest.approx(1 - p_dead, abs=1e-12)
    assert law.p_dead == pytest.approx(p_dead, rel=1e-14)
    m = (y * f).sum() * h / mass
    assert law.mean == pytest.approx(m, abs=1e-10)
    assert law.var == pytest.approx(((y - m) ** 2 * f).sum() * h / mass, abs=1e-10)
    assert law.beta == pytest.approx(1 / 6 + 1 / 9 + 1 / 4)
    assert law.limit_var == pytest.approx(5 * law.beta)


def test_log_ratio_law_tends_to_its_gaussian_limit():
    """At fixed beta = L/n the exact mean and variance approach -5 beta/2 and 5 beta, the gaps falling as 1/n."""
    gaps = []
    for n in (16, 64, 256):
        law = mf.log_ratio_law([n] * (n // 8), [2.0 / n] * (n // 8))      # beta = 1/8, He
        assert law.limit_mean == pytest.approx(-2.5 / 8) and law.limit_var == pytest.approx(5 / 8)
        gaps.append((abs(law.mean - law.limit_mean), abs(law.var - law.limit_var)))
    for (m0, v0), (m1, v1) in zip(gaps, gaps[1:]):
        assert 3 < m0 / m1 < 6 and 3 < v0 / v1 < 6


def test_ks_one_layer_against_scipy():
    """One layer: the KS distance against the chi-square mixture CDF of scipy on a fine grid."""
    n, v = 5, 0.4
    k = np.arange(1, n + 1)
    pk = stats.binom.pmf(k, n, 0.5) / (1 - 2.0 ** -n)
    law = mf.log_ratio_law([n], [v])
    y = np.linspace(-12, 5, 400001)
    F = stats.chi2.cdf(np.exp(y)[:, None] / v, k[None, :]) @ pk
    d = np.abs(F - stats.norm.cdf(y, law.limit_mean, math.sqrt(law.limit_var))).max()
    ks = mf.ks_distance([n], [v])
    assert d - 1e-12 <= ks <= d + 1e-8


@pytest.mark.slow
def test_ks_two_layers_against_adaptive_quadrature():
    """Two layers: F(y) = E_K1 of the integral over ln r_1's density of P(ln r_2 <= y - s), by scipy.quad,
    on a grid fine enough that the sup between its points is within 1e-6 of its largest value."""
    w, v = [3, 4], [0.7, 0.5]
    law = mf.log_ratio_law(w, v)
    p1 = stats.binom.pmf([1, 2, 3], 3, 0.5)
    p2 = stats.binom.pmf([1, 2, 3, 4], 4, 0.5)

    def F(y):
        tot = 0.0
        for k1, a in zip((1, 2, 3), p1):
            dens = lambda s: stats.chi2.pdf(math.exp(s) / v[0], k1) * math.exp(s) / v[0]
            cdf2 = lambda t: stats.chi2.cdf(math.exp(t) / v[1], [1, 2, 3, 4]) @ p2
            tot += a * integrate.quad(lambda s: dens(s) * cdf2(y - s), -60, 8, epsabs=1e-13, limit=400)[0]
        return tot / (1 - law.p_dead)
    ys = np.linspace(-3.0, 2.0, 201)
    gauss = stats.norm(law.limit_mean, math.sqrt(law.limit_var))
    d = np.array([abs(F(y) - gauss.cdf(y)) for y in ys])
    i = int(d.argmax())
    fine = np.linspace(ys[max(0, i - 1)], ys[min(len(ys) - 1, i + 1)], 41)
    best = max(abs(F(y) - gauss.cdf(y)) for y in fine)
    ks = mf.ks_distance(w, v)
    assert best - 1e-9 <= ks <= best + 1e-6


def test_ks_accuracy_and_decay_at_fixed_beta():
    """Doubling the lattice's density changes the KS distance by < 1e-9; at fixed beta = L/n = 1/8 it falls
    as the widths grow (about as 1/n)."""
    ks = []
    for n in (16, 64, 256):
        w, v = [n] * (n // 8), [2.0 / n] * (n // 8)
        a, b = mf.ks_distance(w, v), mf.ks_distance(w, v, points_per_sd=64)
        assert abs(a - b) < 1e-9
        ks.append(a)
    assert ks[0] > 2.5 * ks[1] > 6 * ks[2] > 0


def test_ks_defined():
    assert mf.ks_defined(build(widths=[8, 8], input_dim=8))
    assert not mf.ks_defined(build(widths=[8, 8], input_dim=8, dist="uniform"))
    assert not mf.ks_defined(build(widths=[8, 8], input_dim=8, init="wn"))
    assert not mf.ks_defined(build(widths=[8, 8], input_dim=8, activation="tanh"))
    assert not mf.ks_defined(build(widths=[8, 8], input_dim=8, init="orthogonal"))
