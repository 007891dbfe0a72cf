"""Orthogonal (Haar) weights, --init orthogonal (kernels/orthogonal.py, the dense and projected kernels).

The matrices against NumPy's QR of the same Gaussian rows; their Haar laws; the dense
kernel's ratios against the exact one-input law (docs/design.md, "Orthogonal weights") and
against the NumPy network of tests/reference.py; the projected kernel against the dense one.

Statistical tests: fixed seeds; each Kolmogorov-Smirnov, binomial or z test fails for a
correct kernel with probability below 1e-6 (threshold p < 1e-6, or 6 sigma); with fewer than
150 such tests here a false failure of the module has probability below 1.5e-4, and with the
fixed seeds the outcome is deterministic.
"""

import numpy as np
import pytest
from scipy import stats

from mcinit import config, engine, rng
from mcinit.config import ConfigError
from mcinit.kernels import common, dense, orthogonal

import reference

P_MIN = 1e-6


def plan_of(widths, gain=None, **kw):
    """The plan of a network n_0 = widths[0], hidden widths widths[1:], orthogonal weights."""
    args = dict(trials=10, input_dim=widths[0], widths=",".join(map(str, widths[1:])), init="orthogonal",
                kernel="dense", samples=1, seed=11)
    if gain is not None:
        args["gain"] = gain
    args.update(kw)
    cfg, data = config.build(**args)
    return cfg, data, common.make_plan(cfg, data)


def fill(cfg, data, first, count, **kw):
    plan = common.make_plan(cfg, data)
    fwd = np.empty((count, cfg.samples, cfg.depth))
    bwd = np.empty((count, cfg.samples, cfg.depth))
    dead = np.zeros(count, dtype=bool)
    dense.fill(plan, first, count, fwd, bwd, dead, **kw)
    return fwd, bwd, dead


# ------------------------------------------------------------------ the matrices

SHAPES = [(6, 6), (4, 9), (9, 4), (1, 7), (7, 1), (1, 1)]     # (n_out, n_in): square, wide, tall


@pytest.mark.parametrize("n_out,n_in", SHAPES)
def test_rows_or_columns_are_orthonormal_times_the_gain(n_out, n_in):
    """W W^T = g^2 I (n_out <= n_in) or W^T W = g^2 I (n_out > n_in), to 1e-12."""
    _, _, plan = plan_of([n_in, n_out, 3], gain=1.7)
    for trial in (0, 5, 2 ** 33 + 1):
        W = orthogonal.matrix(plan, trial, 1)
        assert W.shape == (n_out, n_in)
        P = W @ W.T if n_out <= n_in else W.T @ W
        np.testing.assert_allclose(P, 1.7 ** 2 * np.eye(min(n_out, n_in)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_out,n_in", SHAPES)
def test_matrix_is_numpys_sign_corrected_qr_of_the_layers_gaussian_rows(n_out, n_in):
    """The Householder QR in numba gives torch.nn.init.orthogonal_'s matrix of the layer's
    N(0, 1) rows (reference.haar, NumPy's QR), to 1e-12; the default gain is ReLU's, sqrt 2."""
    cfg, _, plan = plan_of([3, n_in, n_out])
    for trial in (0, 3):
        W = orthogonal.matrix(plan, trial, 2)
        G = rng.normal_matrix(cfg.seed, trial, 2, rng.STREAM_WEIGHTS, n_out, n_in)
        np.testing.assert_allclose(W, np.sqrt(2.0) * reference.haar(G), rtol=0, atol=1e-12)


def test_matrix_depends_on_seed_trial_and_layer_only():
    """The same numbers from another plan of the same seed (other widths elsewhere, another
    gain: scaled), and other numbers for another trial or layer."""
    _, _, a = plan_of([5, 6, 6, 4], gain=1.0)
    _, _, b = plan_of([5, 6, 8, 3], gain=2.0, trials=99)
    assert np.array_equal(2.0 * orthogonal.matrix(a, 7, 1), orthogonal.matrix(b, 7, 1))
    assert not np.allclose(orthogonal.matrix(a, 7, 1), orthogonal.matrix(a, 8, 1))
    assert not np.allclose(orthogonal.matrix(a, 7, 1), orthogonal.matrix(a, 7, 2)[:, :5])


@pytest.mark.parametrize("n_out,n_in", [(7, 3), (3, 7), (5, 5)])
def test_squared_entries_follow_the_haar_beta_law(n_out, n_in):
    """(W_ij / g)^2 ~ Beta(1/2, (M - 1)/2), M = max(n_out, n_in): a Haar column (or row) is a
    uniform unit vector of R^M.  One entry per trial (its place cycling), so the sample is i.i.d."""
    _, _, plan = plan_of([n_in, n_out], gain=1.3)
    M = max(n_out, n_in)
    T = 4000
    x = np.empty(T)
    for t in range(T):
        W = orthogonal.matrix(plan, t, 1) / 1.3
        x[t] = W[t % n_out, (3 * t + t // n_out) % n_in] ** 2
    p = stats.kstest(x, stats.beta(0.5, (M - 1) / 2).cdf).pvalue
    assert p > P_MIN, p


def test_squared_norm_of_a_fixed_unit_vector_follows_beta():
    """n_out < n_in: ||W u / g||^2 ~ Beta(n_out/2, (n_in - n_out)/2) for a fixed unit u (the
    projection of a uniform unit vector on a uniform n_out-dimensional subspace)."""
    n_out, n_in = 3, 8
    _, _, plan = plan_of([n_in, n_out], gain=0.9)
    u = np.arange(1.0, n_in + 1)
    u /= np.linalg.norm(u)
    T = 4000
    x = np.array([np.sum((orthogonal.matrix(plan, t, 1) @ u / 0.9) ** 2) for t in range(T)])
    p = stats.kstest(x, stats.beta(n_out / 2, (n_in - n_out) / 2).cdf).pvalue
    assert p > P_MIN, p


# ------------------------------------------------------------------ the dense kernel

def continuous_factor_cdf(x, n_l, M, g2):
    """P(r <= x | 0 < K < M) of one layer's factor r = g^2 Beta(K/2, (M - K)/2), K ~ Binomial(n_l, 1/2):
    the law without its atoms r = 0 (K = 0) and r = g^2 (K = M, only when n_l = M)."""
    K = np.arange(1, min(n_l, M - 1) + 1)
    w = stats.binom.pmf(K, n_l, 0.5)
    x = np.asarray(x, dtype=float)[..., None]
    return np.sum(w * stats.beta.cdf(x / g2, K / 2, (M - K) / 2), axis=-1) / np.sum(w)


def test_one_input_layer_factors_follow_the_exact_law():
    """ReLU, one input, widths 5, 9, 4, 7 (tall, wide, tall): rho_l / rho_(l-1) = g^2 Beta(K/2, (M - K)/2),
    K ~ Binomial(n_l, 1/2), M = max(n_(l-1), n_l); K = 0 gives 0 and K = M (n_l = M) exactly g^2.
    The atoms by binomial tests, the rest by a KS test against the mixture's CDF (scipy)."""
    widths = [5, 9, 4, 7]
    g = 1.2
    T = 4000
    cfg, data, _ = plan_of(widths, gain=g, trials=T, properties="forward")
    fwd, _, _ = fill(cfg, data, 0, T)
    rho = fwd[:, 0, :]
    prev = np.ones(T)
    for l in range(1, len(widths)):
        n_l, M = widths[l], max(widths[l - 1], widths[l])
        ok = prev > 0                         # h^(l-1) != 0: the factor's law does not depend on it
        r = rho[ok, l - 1] / prev[ok]
        zero = r == 0.0
        top = np.abs(r - g * g) <= 1e-12 * g * g
        assert stats.binomtest(int(zero.sum()), r.size, 0.5 ** n_l).pvalue > P_MIN, l
        p_top = 0.5 ** n_l if n_l == M else 0.0
        if p_top:
            assert stats.binomtest(int(top.sum()), r.size, p_top).pvalue > P_MIN, l
        else:
            assert not top.any()
        assert np.all(r <= g * g * (1 + 1e-12))
        rest = r[~zero & ~top]
        p = stats.kstest(rest, lambda x: continuous_factor_cdf(x, n_l, M, g * g)).pvalue
        assert p > P_MIN, (l, p)
        prev = rho[:, l - 1]


ORTHO_CASES = [
    dict(input_dim=6, widths="9,4,7", samples=1, head="softmax:3"),
    dict(input_dim=12, widths="12,12,12", samples=3, head="gaussian:4", gain=0.8),
    dict(input_dim=10, widths="5,11,8", samples=2, head="softmax:5", data="sphere"),
]


@pytest.mark.parametrize("case", range(len(ORTHO_CASES)))
def test_dense_matches_a_numpy_network_of_orthogonal_weights(case):
    """Forward and backward ratios against tests/reference.py's network, whose matrices are
    NumPy's QR of the same Gaussian rows: 1e-10 relative."""
    cfg, data = config.build(trials=8, init="orthogonal", kernel="dense", seed=case + 20, **ORTHO_CASES[case])
    for first in (0, 2 ** 33 + 5):
        fwd, bwd, dead = fill(cfg, data, first, 5)
        for j in range(5):
            rho, gamma = reference.trial_ratios(cfg, first + j, data)
            np.testing.assert_allclose(fwd[j], rho, rtol=1e-10, atol=0)
            np.testing.assert_allclose(bwd[j], gamma, rtol=1e-10, atol=0)
            assert dead[j] == bool(np.any(rho == 0) or np.any(np.isinf(gamma)))


def test_redrawn_matrices_equal_kept_rows():
    """Without room to keep the weights the backward pass draws each matrix again: the same numbers."""
    cfg, data = config.build(trials=10, init="orthogonal", kernel="dense", input_dim=7, widths="8,5,9", samples=2)
    a = fill(cfg, data, 2, 6, store=True)
    b = fill(cfg, data, 2, 6, store=False)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_same_numbers_for_any_thread_count_and_batch_size():
    import numba
    cfg, data = config.build(trials=40, init="orthogonal", kernel="dense", input_dim=6, widths="7,5", samples=2)
    base = engine.run(cfg, data, threads=1, batch_size=40)
    for threads, batch in ((2, 7), (numba.config.NUMBA_NUM_THREADS, 16)):
        other = engine.run(cfg, data, threads=threads, batch_size=batch)
        for f in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
            assert np.array_equal(base.records[f], other.records[f]), f


@pytest.mark.parametrize("kernel", ["dense", "projected"])
def test_a_run_of_orthogonal_weights_completes(tmp_path, kernel):
    """mcinit run --init orthogonal with either kernel that draws them writes its results."""
    from click.testing import CliRunner

    from mcinit.cli import main
    out = tmp_path / "o.h5"
    r = CliRunner().invoke(main, ["run", "--trials", "20", "--init", "orthogonal", "--width", "5", "--depth", "2",
                                  "--input-dim", "4", "--samples", "2", "--kernel", kernel, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "20 trials" in r.output and f"kernel {kernel}" in r.output.splitlines()[0]
    assert out.exists()


# ------------------------------------------------------------------ the projected kernel

PROJECTED_CASES = [
    dict(input_dim=6, widths="9,4,7", samples=3, head="softmax:3"),                 # tall, wide, tall
    dict(input_dim=5, widths="3,8,8,2", samples=4, head="gaussian:4", gain=1.1),    # ranks below N
    dict(input_dim=10, widths="6,6,6", samples=2, data="sphere"),                   # square
]


def run_kernel(name, cfg, data, first, count):
    from mcinit.kernels import projected
    plan = common.make_plan(cfg, data)
    fwd = np.empty((count, cfg.samples, cfg.depth))
    bwd = np.empty((count, cfg.samples, cfg.depth))
    dead = np.zeros(count, dtype=bool)
    {"dense": dense, "projected": projected}[name].fill(plan, first, count, fwd, bwd, dead)
    return fwd, bwd, dead


@pytest.mark.parametrize("case", range(len(PROJECTED_CASES)))
def test_projected_equals_dense_in_law(case):
    """The projected kernel's orthogonal weights (W_l Q an isometry's rows, the backward pass's rest a
    Haar isometry of the complements) against the dense kernel's whole matrices: two-sample KS on
    every layer's forward and backward ratio of every input and of the log quotient of two inputs'
    ratios (their joint law), and a z test of the dead rate (6000 trials each, other trials for each
    kernel; p > 1e-6 or 6 sigma each, at most 41 tests a case)."""
    T = 6000
    cfg, data = config.build(trials=T, init="orthogonal", kernel="dense", seed=3, **PROJECTED_CASES[case])
    a = run_kernel("dense", cfg, data, 0, T)
    b = run_kernel("projected", cfg, data, 10 ** 6, T)
    for i in (0, 1):
        for l in range(cfg.depth):
            for x in range(cfg.samples):
                xa, xb = a[i][:, x, l], b[i][:, x, l]
                p = stats.ks_2samp(xa[np.isfinite(xa)], xb[np.isfinite(xb)]).pvalue
                assert p > P_MIN, (i, l, x, p)
            with np.errstate(divide="ignore", invalid="ignore"):
                qa, qb = (np.log(c[i][:, 0, l] / c[i][:, 1, l]) for c in (a, b))
            p = stats.ks_2samp(qa[np.isfinite(qa)], qb[np.isfinite(qb)]).pvalue
            assert p > P_MIN, (i, l, "quotient", p)
    pooled = (a[2].sum() + b[2].sum()) / (2 * T)   # two binomial proportions: a z test, 6 sigma
    z = (a[2].mean() - b[2].mean()) / np.sqrt(2 * pooled * (1 - pooled) / T + 1e-300)
    assert abs(z) < 6, z


def test_projected_one_input_layer_factors_follow_the_exact_law():
    """The projected kernel's one-input ratios obey the exact law of the dense kernel's test."""
    widths = [5, 9, 4, 7]
    T = 4000
    cfg, data = config.build(trials=T, init="orthogonal", kernel="projected", gain=1.2, input_dim=5,
                             widths="9,4,7", samples=1, seed=11, properties="forward")
    fwd, _, _ = run_kernel("projected", cfg, data, 0, T)
    rho = fwd[:, 0, :]
    prev = np.ones(T)
    for l in range(1, len(widths)):
        n_l, M = widths[l], max(widths[l - 1], widths[l])
        ok = prev > 0
        r = rho[ok, l - 1] / prev[ok]
        zero = r == 0.0
        top = np.abs(r - 1.44) <= 1e-12 * 1.44
        assert stats.binomtest(int(zero.sum()), r.size, 0.5 ** n_l).pvalue > P_MIN, l
        rest = r[~zero & ~top]
        p = stats.kstest(rest, lambda x: continuous_factor_cdf(x, n_l, M, 1.44)).pvalue
        assert p > P_MIN, (l, p)
        prev = rho[:, l - 1]


def test_auto_picks_the_cheaper_of_dense_and_projected():
    """Both compute orthogonal weights; auto compares their estimated costs with the QR work counted."""
    from mcinit import kernels
    from mcinit.initializers import DIST_ORTHOGONAL
    wide = (784, 1024, 1024, 1024)
    k, why, costs = kernels.choose("auto", DIST_ORTHOGONAL, wide, 2, 10, "orthogonal")
    assert set(costs) == {"dense", "projected"} and k == "projected" and "Gaussian" not in why
    assert kernels.choose("projected", DIST_ORTHOGONAL, wide, 2, 10, "orthogonal")[0] == "projected"
    with pytest.raises(ConfigError):
        kernels.choose("blocked", DIST_ORTHOGONAL, wide, 2, 10, "orthogonal")
    with pytest.raises(ConfigError):
        kernels.choose("law", DIST_ORTHOGONAL, wide, 2, 10, "orthogonal")
    # one input: the law kernel draws orthogonal weights exactly in law (tests/test_law_chain.py)
    assert kernels.choose("auto", DIST_ORTHOGONAL, wide, 1, 10, "orthogonal")[0] == "law"


def test_exact_moments_are_the_beta_mixtures():
    """initializers.expected_forward's mean and variance of rho_l for orthogonal weights against the
    moments of the one-input law computed with scipy (the mixture over K of g^2 Beta(K/2, (M - K)/2),
    independent factors)."""
    from mcinit.initializers import expected_forward
    widths = [5, 9, 4, 7]
    cfg, _, _ = plan_of(widths, gain=1.2)
    mean, var = expected_forward(cfg)
    m1 = m2 = 1.0
    for l in range(1, len(widths)):
        n_l, M = widths[l], max(widths[l - 1], widths[l])
        K = np.arange(1, n_l + 1)
        w = stats.binom.pmf(K, n_l, 0.5)
        b = [stats.beta(k / 2, (M - k) / 2) if k < M else None for k in K]
        e1 = sum(wk * (bk.mean() if bk else 1.0) for wk, bk in zip(w, b))
        e2 = sum(wk * (bk.moment(2) if bk else 1.0) for wk, bk in zip(w, b))
        m1 *= 1.44 * e1
        m2 *= 1.44 ** 2 * e2
        assert mean[l - 1] == pytest.approx(m1, rel=1e-12)
        assert var[l - 1] == pytest.approx(m2 - m1 ** 2, rel=1e-10)


def test_the_summary_shows_the_orthogonal_law(tmp_path):
    """The run summary's exact columns are those of orthogonal weights, and say so."""
    from click.testing import CliRunner

    from mcinit.cli import main
    r = CliRunner().invoke(main, ["run", "--trials", "20", "--init", "orthogonal", "--width", "6", "--depth", "2",
                                  "--input-dim", "4", "--kernel", "dense", "-o", str(tmp_path / "o.h5")])
    assert r.exit_code == 0, r.output
    assert "exact = its one-input law for orthogonal weights (section 10)" in r.output
    # layer 1: M = 6, n = 6, g^2 = 2: mean 1, sd sqrt(2^2 (36 + 30) / (4 * 6 * 8) - 1) = sqrt(0.375) = 0.6124
    row = next(ln for ln in r.output.splitlines() if ln.split()[:2] == ["1", "6"])
    assert row.split()[4:6] == ["1.00000", "0.6124"], row
