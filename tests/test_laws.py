"""The exact one-input laws beyond ReLU and Gaussian weights (mcinit.theory; docs/design.md
section 11): leaky-relu, abs, linear and orthogonal weights, against independent computations
(scipy quadrature of the convolutions, the chi-square and Beta laws, orthogonal matrices drawn
by scipy) and Monte Carlo drawn from the laws with NumPy.

Statistical tests use fixed seeds and 6-sigma bands (false-failure rate below 1e-8 per check)."""

import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import integrate, special, stats

from mcinit import config, theory
from mcinit.cli import main


def _safe(eps):
    """The norm form's safe interval [A, B] of rho (A = 0 for eps >= 1; rho = 0 is never safe)."""
    return ((1 - eps) ** 2 if eps < 1 else 0.0), (1 + eps) ** 2


# ---------------------------------------------------------------------------
# independent laws of one factor

def _leaky_cdf_pdf(x, n, v, a2):
    """(CDF, density) of r = v (chi2(K) + a2 chi2(n - K)), K ~ Bin(n, 1/2), at x, by scipy.integrate.quad
    of the convolution of the two chi-square laws for each K."""
    F = f = 0.0
    for K in range(n + 1):
        pk = stats.binom.pmf(K, n, 0.5)
        if K == 0:
            F += pk * stats.chi2.cdf(x / (v * a2), n)
            f += pk * stats.chi2.pdf(x / (v * a2), n) / (v * a2)
        elif K == n:
            F += pk * stats.chi2.cdf(x / v, n)
            f += pk * stats.chi2.pdf(x / v, n) / v
        else:
            F += pk * integrate.quad(lambda u: stats.chi2.pdf(u, K) * stats.chi2.cdf((x / v - u) / a2, n - K),
                                     0, x / v, epsabs=0, epsrel=1e-12, limit=200)[0]
            f += pk * integrate.quad(lambda u: stats.chi2.pdf(u, K) * stats.chi2.pdf((x / v - u) / a2, n - K),
                                     0, x / v, epsabs=0, epsrel=1e-12, limit=200)[0] / (a2 * v)
    return F, f


def _ortho_tail(x, n, M, g2, upper):
    """P(r > x) (upper) or P(r < x) for r = g2 Beta(K/2, (M - K)/2), K ~ Bin(n, 1/2) (K = 0: r = 0;
    K = M: r = g2), summed term by term with betaincc / betainc (no cancellation)."""
    total = 0.0
    for K in range(n + 1):
        pk = stats.binom.pmf(K, n, 0.5)
        if K == 0:
            total += pk * (not upper)          # r = 0, dead: never safe
        elif K == M:
            total += pk * ((g2 > x) if upper else (g2 < x))
        else:
            u = min(x / g2, 1.0)
            total += pk * (special.betaincc(K / 2, (M - K) / 2, u) if upper else special.betainc(K / 2, (M - K) / 2, u))
    return total


def test_leaky_one_layer_matches_the_convolution_by_quadrature():
    """The negative-binomial mixture of chi-squares (section 11) against quad of the convolution:
    1e-8 relative, at three tolerances."""
    n, alpha = 5, 0.3
    a2 = alpha ** 2
    v = 2.0 / n / (1 + a2)          # he with leaky-relu's gain
    assert theory.layer_variances([n], activation=f"leaky-relu:{alpha}")[0] == pytest.approx(v, rel=1e-15)
    for eps in (0.1, 0.4, 0.8):
        A, B = _safe(eps)
        FA, _ = _leaky_cdf_pdf(A, n, v, a2)
        FB, _ = _leaky_cdf_pdf(B, n, v, a2)
        want = FA + (1 - FB)
        got = theory.exact_forward_failure(eps, [n], activation=f"leaky-relu:{alpha}")
        assert got == pytest.approx(want, rel=1e-8)


@pytest.mark.slow
def test_leaky_two_layers_match_a_double_quadrature():
    """Two layers: P(r1 not safe) + int_safe f1(x) P(x r2 not safe) dx by nested quad, to 1e-8 relative
    per layer (the recursion agrees to about 1e-14)."""
    n, alpha, eps = 3, 0.5, 0.4
    a2 = alpha ** 2
    v = 2.0 / n / (1 + a2)
    A, B = _safe(eps)

    def exit_at(x):
        return 1 - _leaky_cdf_pdf(B / x, n, v, a2)[0] + _leaky_cdf_pdf(A / x, n, v, a2)[0]
    first = exit_at(1.0)
    second = integrate.quad(lambda x: _leaky_cdf_pdf(x, n, v, a2)[1] * exit_at(x), A, B,
                            epsabs=0, epsrel=1e-10, limit=200)[0]
    got = theory.exact_forward_failure_layers(eps, [n, n], activation=f"leaky-relu:{alpha}")
    np.testing.assert_allclose(got, [first, second], rtol=1e-8)


@pytest.mark.parametrize("activation", ["abs", "linear", "leaky-relu:1", "leaky-relu:-1.0"])
def test_abs_and_linear_follow_the_chi2_n_law(activation):
    """r = v chi2(n) (never dead): one layer from the chi-square tails, two layers by quad of the
    log-chi-square density, to 1e-8 relative."""
    n, eps = 7, 0.3
    v = theory.layer_variances([n], activation=activation)[0]
    assert v == pytest.approx(1.0 / n, rel=1e-15)
    A, B = _safe(eps)
    first = stats.chi2.cdf(A / v, n) + stats.chi2.sf(B / v, n)
    second = integrate.quad(lambda x: stats.chi2.pdf(x / v, n) / v * (stats.chi2.cdf(A / x / v, n)
                                                                     + stats.chi2.sf(B / x / v, n)),
                            A, B, epsabs=0, epsrel=1e-12)[0]
    got = theory.exact_forward_failure_layers(eps, [n, n], activation=activation)
    np.testing.assert_allclose(got, [first, second], rtol=1e-8)
    m = theory.moments([n, n], activation=activation)
    np.testing.assert_allclose(m.mean, [1.0, 1.0], rtol=1e-14)
    np.testing.assert_allclose(m.var, [2.0 / n, (1 + 2.0 / n) ** 2 - 1], rtol=1e-12)   # chi2(n)/n


@pytest.mark.parametrize("n, n0", [(6, 6), (6, 9), (9, 6)])
def test_orthogonal_one_layer_is_the_beta_mixture(n, n0):
    """One layer of orthogonal weights: r = g^2 Beta(K/2, (M - K)/2), the atom r = g^2 at K = M = n
    included, at tolerances where the atom is safe and where it is not."""
    M = max(n, n0)
    g2 = 2.0
    for eps in (0.2, 0.5, 1.5):
        A, B = _safe(eps)
        want = _ortho_tail(B, n, M, g2, True) + _ortho_tail(A, n, M, g2, False)
        got = theory.exact_forward_failure(eps, [n], input_dim=n0, init="orthogonal")
        assert got == pytest.approx(want, rel=1e-12)


def test_orthogonal_law_matches_networks_of_haar_matrices():
    """The Beta law itself, against one-layer ReLU networks with orthogonal weights drawn by
    scipy.stats.ortho_group (n_0 = 6 -> n = 4 and 4 -> 6): P(r in a few intervals) within 6 sigma."""
    rng = np.random.default_rng(1)
    T = 20000
    for n0, n in ((6, 4), (4, 6)):
        M = max(n0, n)
        Q = stats.ortho_group.rvs(M, size=T, random_state=rng)
        W = math.sqrt(2.0) * Q[:, :n, :n0]      # orthonormal rows (n <= n0) or columns (n > n0)
        x = rng.standard_normal(n0)
        h = np.maximum(W @ x, 0.0)
        r = np.sum(h * h, axis=1) / np.dot(x, x)
        for eps in (0.1, 0.3, 0.6):
            A, B = _safe(eps)
            p = theory.exact_forward_failure(eps, [n], input_dim=n0, init="orthogonal")
            k = np.count_nonzero((r < A) | (r > B))
            assert abs(k - T * p) <= 6 * math.sqrt(T * p * (1 - p)) + 1


def _draw_leaky(rng, T, widths, alpha):
    rho = np.ones(T)
    out = []
    for n in widths:
        v = 2.0 / n / (1 + alpha ** 2)
        K = rng.binomial(n, 0.5, T)
        rho = rho * v * (rng.chisquare(np.maximum(K, 1)) * (K > 0)
                         + alpha ** 2 * rng.chisquare(np.maximum(n - K, 1)) * (K < n))
        out.append(rho.copy())
    return np.array(out)


def _draw_orthogonal(rng, T, widths, n0):
    rho = np.ones(T)
    out = []
    prev = n0
    for n in widths:
        M = max(n, prev)
        K = rng.binomial(n, 0.5, T)
        B = np.where(K == M, 1.0, rng.beta(np.maximum(K, 1) / 2, np.maximum(M - K, 1) / 2)) * (K > 0)
        rho = rho * 2.0 * B
        out.append(rho.copy())
        prev = n
    return np.array(out)


def _fails(rho, eps):
    A, B = _safe(eps)
    return np.any((rho < A) | (rho > B) | (rho <= 0), axis=0)


def test_exact_failure_matches_monte_carlo_drawn_from_the_laws():
    """Three layers, leaky-relu (Gaussian) and ReLU with orthogonal weights: the exact probability
    inside the 6-sigma binomial band of 200000 networks drawn from the factors' laws; the moments of
    rho_L within 6 standard errors."""
    rng = np.random.default_rng(7)
    T = 200000
    cases = [(_draw_leaky(rng, T, [12, 20, 16], 0.2), dict(activation="leaky-relu:0.2"), [12, 20, 16], None),
             (_draw_orthogonal(rng, T, [128, 160, 128], 128), dict(init="orthogonal"), [128, 160, 128], 128)]
    for rho, kw, widths, n0 in cases:
        for eps in (0.2, 0.35):
            p = theory.exact_forward_failure(eps, widths, input_dim=n0, **kw)
            k = np.count_nonzero(_fails(rho, eps))
            assert abs(k - T * p) <= 6 * math.sqrt(T * p * (1 - p)) + 1, (kw, eps, k / T, p)
        m = theory.moments(widths, n0, **kw)
        last = rho[-1]
        assert abs(last.mean() - m.mean[-1]) <= 6 * last.std() / math.sqrt(T)
        sq = (last - m.mean[-1]) ** 2
        assert abs(sq.mean() - m.var[-1]) <= 6 * sq.std() / math.sqrt(T)


@pytest.mark.slow
def test_orthogonal_two_layers_match_a_quadrature():
    """Two layers of 128 units, orthogonal weights: the recursion against quad of the Beta mixture's
    density times the second layer's exit probability, to 1e-8 relative (about 1e-12 observed)."""
    n, eps, g2 = 128, 0.3, 2.0
    A, B = _safe(eps)
    K = np.arange(1, n)
    pk = stats.binom.pmf(K, n, 0.5)

    def exit_at(x):
        return _ortho_tail(B / x, n, n, g2, True) + _ortho_tail(A / x, n, n, g2, False)

    def density(x):
        return pk @ stats.beta.pdf(x / g2, K / 2, (n - K) / 2) / g2
    first = exit_at(1.0)
    second = integrate.quad(lambda x: density(x) * exit_at(x), A, B, epsabs=0, epsrel=1e-11, limit=400,
                            points=[g2, B / g2, A / g2])[0]
    second += 2.0 ** -n * exit_at(g2) if A <= g2 <= B else 0.0       # the atom r_1 = g^2
    got = theory.exact_forward_failure_layers(eps, [n, n], input_dim=n, init="orthogonal")
    np.testing.assert_allclose(got, [first, second], rtol=1e-8)


def test_orthogonal_narrow_layers_are_refused_not_guessed():
    """At 24 units the Beta terms near r = g^2 carry too much mass for the recursion: a ValueError
    naming Monte Carlo, never a number; one layer stays exact."""
    with pytest.raises(ValueError, match="Monte Carlo"):
        theory.exact_forward_failure(0.3, [24, 24], input_dim=24, init="orthogonal")
    assert 0 < theory.exact_forward_failure(0.3, [24], input_dim=24, init="orthogonal") < 1


def test_orthogonal_linear_keeps_the_norm_exactly():
    """Linear (or abs) with orthogonal weights of gain 1 and n_l >= n_(l-1): rho_l = 1, never a failure;
    with gain 1.1 every layer multiplies rho by 1.21, failing at the first layer past 1 + eps."""
    assert theory.exact_forward_failure(0.01, [8, 8, 8], input_dim=8, init="orthogonal", activation="linear") == 0
    e = theory.exact_forward_failure_layers(0.15, [8, 8, 8], input_dim=8, init="orthogonal", activation="abs",
                                            gain=1.1)
    np.testing.assert_array_equal(e, [0.0, 1.0, 0.0])        # 1.1^2 = 1.21 < 1.3225 < 1.4641
    assert theory.required_width(0.01, 1e-6, 4, bound="exact", init="orthogonal", activation="linear") == 1
    m = theory.moments([8, 6, 6], 8, "orthogonal", activation="linear")
    np.testing.assert_allclose(m.mean, [1.0, 6 / 8, 6 / 8], rtol=1e-14)     # only 8 -> 6 loses norm


def test_moment_formulas_match_the_mixtures():
    """E r and E r^2 of moments() (closed forms, section 11) against factor_moment (the mixtures'
    gamma-function sums) for leaky-relu, abs and orthogonal ReLU."""
    for kw, n, n0 in ((dict(activation="leaky-relu:0.3"), 10, 12), (dict(activation="abs"), 10, 12),
                      (dict(init="orthogonal"), 10, 12), (dict(init="orthogonal"), 12, 10)):
        init = kw.get("init", "he")
        act = kw.get("activation", "relu")
        v = theory.layer_variances([n], n0, init, activation=act)[0]
        m = theory.moments([n], n0, init, activation=act)
        e1, e2 = theory.factor_moment([1.0, 2.0], n, v, activation=act, init=kw.get("init"), input_width=n0)
        assert m.mean[0] == pytest.approx(e1, rel=1e-12)
        assert m.var[0] == pytest.approx(e2 - e1 ** 2, rel=1e-10)


def test_chernoff_bounds_the_exact_probability_for_the_new_laws():
    for kw, n0, epss in ((dict(activation="abs"), None, (0.15, 0.3, 1.5)), (dict(init="orthogonal"), 200, (0.15, 0.3)),
                         (dict(init="orthogonal", activation="linear"), 260, (0.15, 0.3, 1.5))):
        for eps in epss:
            c = theory.chernoff_bound(eps, [200] * 3, 1, "norm", n0, **kw)
            p = theory.exact_forward_failure(eps, [200] * 3, "norm", n0, **kw)
            assert p <= c <= 1
    with pytest.raises(ValueError, match="exact"):
        theory.chernoff_bound(0.3, [50] * 2, activation="leaky-relu:0.2")


def test_relu_numbers_and_variances_unchanged():
    """he with ReLU: v = 2/n exactly; the default keywords give the same numbers as before."""
    assert np.array_equal(theory.layer_variances([3, 7]), 2.0 / np.array([3, 7]))
    assert theory.layer_variances([4], 6, "orthogonal")[0] == 2.0 / 6
    assert theory.layer_variances([4], 6, "orthogonal", activation="linear", gain=1.5)[0] == 2.25 / 6
    assert (theory.exact_forward_failure(0.2, [50, 60], "norm", 40, "glorot")
            == theory.exact_forward_failure(0.2, [50, 60], "norm", 40, "glorot", activation="relu"))


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_tanh_and_gelu_are_refused_in_one_line(activation):
    for call in (lambda: theory.exact_forward_failure(0.2, [10], activation=activation),
                 lambda: theory.moments([10], activation=activation),
                 lambda: theory.required_widths(0.2, 1e-3, 2, activation=activation)):
        with pytest.raises(ValueError, match="Monte Carlo") as err:
            call()
        assert "\n" not in str(err.value)


def test_exact_law_of_decides_where_laws_are_shown():
    def law(**kw):
        shape = dict(blocks=1) if "arch" in kw else dict(depth=2)
        return theory.exact_law_of(config.build(trials=10, width=8, **shape, **kw)[0])
    assert law().relu_gaussian and law().chernoff
    assert law(activation="tanh") is None and law(activation="gelu") is None
    assert law(dist="uniform") is None and law(init="wn") is None
    assert law(arch="residual") is None
    assert law(init="orthogonal", activation="leaky-relu:0.1") is None
    leaky = law(activation="leaky-relu:0.1")
    assert leaky is not None and not leaky.relu_gaussian and not leaky.chernoff
    ortho = law(init="orthogonal")
    assert ortho.init == "orthogonal" and not ortho.relu_gaussian
    assert not theory.paper_applies("he", "leaky-relu:0.1") and not theory.paper_applies("he", "relu", 1.0)
    assert theory.paper_applies("he-in", "relu", math.sqrt(2.0)) and not theory.paper_applies("he", "tanh")


def test_no_relu_numbers_for_tanh_and_new_numbers_for_the_new_laws():
    """What a run's tables show: nothing exact for tanh (no paper bound, no Chernoff, no p_exact,
    no exact moments), theory's new values for leaky-relu (no Chernoff) and orthogonal weights."""
    from mcinit import initializers, results, summary_text
    eps = np.array([0.2, 0.4])

    def cfg(width=64, **kw):
        return config.build(trials=10, width=width, depth=2, input_dim=64, **kw)[0]
    tanh = cfg(activation="tanh")
    assert results.paper_bound(tanh, eps, "forward") is None
    assert all(np.all(np.isnan(v)) for v in results._bounds(tanh, eps, "forward", "norm").values())
    assert summary_text._exact_forward(tanh, eps) is None
    assert np.all(np.isnan(initializers.expected_forward(tanh)[0]))
    leaky = results._bounds(cfg(activation="leaky-relu:0.2"), eps, "forward", "norm")
    assert np.all(np.isnan(leaky["paper_delta"])) and np.all(np.isnan(leaky["chernoff"]))
    np.testing.assert_array_equal(leaky["p_exact"], theory.exact_forward_failure(
        eps, [64, 64], "norm", 64, activation="leaky-relu:0.2"))
    ortho = results._bounds(cfg(init="orthogonal", width=128), eps, "forward", "norm")
    np.testing.assert_array_equal(ortho["p_exact"], theory.exact_forward_failure(
        eps, [128, 128], "norm", 64, "orthogonal"))
    assert np.all(ortho["chernoff"] >= ortho["p_exact"])


def test_cli_bound_covers_the_new_laws():
    runner = CliRunner()
    out = runner.invoke(main, ["bound", "--eps", "0.3", "--delta", "1e-3", "--depth", "2", "--activation", "abs",
                               "--width", "100"])
    assert out.exit_code == 0, out.output
    assert "does not apply: derived for ReLU and He, not init he with abs" in out.output
    want = theory.required_width(0.3, 1e-3, 2, bound="exact", activation="abs")
    assert any(line.split()[:2] == ["exact", f"{want:,}"] for line in out.output.splitlines())
    for bad, words in ((["--activation", "tanh"], "no exact law"),
                       (["--init", "orthogonal", "--activation", "leaky-relu:0.2"], "Monte Carlo")):
        out = runner.invoke(main, ["bound", "--eps", "0.3", "--delta", "1e-3", "--depth", "2"] + bad)
        assert out.exit_code != 0
        assert out.output.startswith("mcinit: error:") and words in out.output
        assert len(out.output.strip().splitlines()) == 1


def test_leaky_relu_exact_law_is_shown_only_where_its_mixture_is_small():
    """A small leaky slope spreads the exact law over ~ n / alpha^2 chi-square terms: the summary
    and the report leave it out (with the reason) rather than compute for minutes; the moments
    stay (exact_law_of)."""
    from mcinit import config, theory
    small = config.build(trials=10, width=64, depth=4, activation="leaky-relu:0.01")[0]
    law, why = theory.exact_law_shown(small)
    assert law is None and "chi-square terms" in why and theory.exact_law_of(small) is not None
    assert theory.leaky_mixture_terms(64, 0.01) > 100 * theory.leaky_mixture_terms(64, 0.3)
    big = config.build(trials=10, width=64, depth=4, activation="leaky-relu:0.3")[0]
    assert theory.exact_law_shown(big) == (theory.exact_law_of(big), "")
    tanh = config.build(trials=10, width=64, depth=4, activation="tanh")[0]
    assert theory.exact_law_shown(tanh)[0] is None
