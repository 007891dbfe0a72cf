"""Residual networks (--arch residual, single-skip): the dense kernel against an independent
NumPy network and finite differences, the law kernel and both kernels against the exact block
law (mcinit.theory), the run command end to end and its refusals.  docs/design.md section 9."""

import numpy as np
import pytest
from scipy import stats

from mcinit import config, theory
from mcinit.kernels import common, dense, law

import reference

P_MIN = 1e-6     # KS tests: a false failure in about one run of a million


def fill(mod, cfg, data, first, count, **kw):
    plan = common.make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    fwd = np.full((count, N, L), -1.0)
    bwd = np.full((count, N, L), -1.0)
    dead = np.zeros(count, dtype=bool)
    mod.fill(plan, first, count, fwd, bwd, dead, **kw)
    return fwd, bwd, dead


CASES = [
    dict(arch="residual", input_dim=7, widths="6,5,6,4,6", samples=3, head="softmax:4", init="he"),
    dict(arch="residual", input_dim=5, width=8, blocks=1, samples=2, head="gaussian:3", init="glorot",
         branch_scale="0.3", data="sphere"),
    dict(arch="residual", input_dim=6, width=5, blocks=2, samples=1, init="wn", dist="normal"),
    dict(arch="single-skip", input_dim=7, widths="6,5,7,4,6", samples=3, head="softmax:4", init="he",
         branch_scale="1/B"),
    dict(arch="single-skip", input_dim=4, width=6, blocks=1, samples=2, init="he", dist="uniform",
         head="gaussian:5"),
    dict(arch="single-skip", input_dim=6, width=5, blocks=3, samples=2, init="wn-unit", seed=2 ** 63 + 3),
]


@pytest.mark.slow       # the residual dense kernel's compile (about 15 s cold): with the slow tests
@pytest.mark.parametrize("store", [None, False])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_dense_residual_kernel_matches_numpy_reference(case, store):
    """The dense kernel draws the plain network's weights; with the skips it computes the NumPy
    network's rho and gamma to 1e-10 (kept or redrawn weights alike)."""
    cfg, data = config.build(trials=10, kernel="dense", **CASES[case])
    for first in (0, 2 ** 33 + 5):
        fwd, bwd, dead = fill(dense, cfg, data, first, 5, store=store)
        for j in range(5):
            rho, gamma = reference.residual_trial_ratios(cfg, first + j, data)
            np.testing.assert_allclose(fwd[j], rho, rtol=1e-10, atol=0)
            np.testing.assert_allclose(bwd[j], gamma, rtol=1e-10, atol=0)
            assert dead[j] == bool(np.any(rho == 0) or np.any(np.isinf(gamma)))


@pytest.mark.slow       # the residual dense kernel's compile (about 15 s cold): with the slow tests
@pytest.mark.parametrize("case", [0, 3])
def test_dense_residual_forward_only_equals_the_forward_of_both(case):
    cfg, data = config.build(trials=10, kernel="dense", **CASES[case])
    fcfg, _ = config.build(trials=10, kernel="dense", properties="forward", **CASES[case])
    fwd, _, _ = fill(dense, cfg, data, 3, 4)
    ffwd, fbwd, fdead = fill(dense, fcfg, data, 3, 4)
    np.testing.assert_array_equal(ffwd, fwd)
    assert np.all(fbwd == -1.0)                           # no backward pass: bwd left as it was
    assert np.array_equal(fdead, np.any(ffwd == 0, axis=(1, 2)))


# ------------------------------------------------------------------ finite differences

@pytest.mark.slow       # the residual dense kernel's compile (about 15 s cold): with the slow tests
@pytest.mark.parametrize("arch", ["residual", "single-skip"])
def test_backward_ratios_are_finite_differences_of_the_loss(arch):
    """gamma_l of the kernel equals ||dloss/dW_l||_F^2 / (||x||^2 ||g_L||^2) with every gradient
    taken by central differences of loss = e . z (gaussian head: e fixed), and ||g_L||^2 =
    ||dloss/dW_L||_F^2 / ||h^(L-1)||^2."""
    cfg, data = config.build(trials=4, kernel="dense", arch=arch, input_dim=3, widths="4,3,4",
                             samples=2, head="gaussian:3", branch_scale="0.6", seed=11)
    trial = 2
    _, bwd, _ = fill(dense, cfg, data, trial, 1)
    Ws, Wo = reference.weights(cfg, trial)
    X = reference.inputs(cfg, trial)
    E = reference.errors(cfg, trial, np.zeros((cfg.samples, 3)))   # gaussian head: e does not depend on z
    h = 1e-6
    for x in range(cfg.samples):
        def loss(ws):
            H, _ = reference.residual_forward(X[x:x + 1], ws, arch, cfg.branch_scale)
            return float(E[x] @ (Wo @ H[-1][0]))
        grad2 = []
        for l, W in enumerate(Ws):
            G = np.empty_like(W)
            for idx in np.ndindex(W.shape):
                up = [w.copy() for w in Ws]
                dn = [w.copy() for w in Ws]
                up[l][idx] += h
                dn[l][idx] -= h
                G[idx] = (loss(up) - loss(dn)) / (2 * h)
            grad2.append(np.sum(G * G))
        H, _ = reference.residual_forward(X[x:x + 1], Ws, arch, cfg.branch_scale)
        gL2 = grad2[-1] / np.sum(H[-2] ** 2)
        want = np.array(grad2) / (np.sum(X[x] ** 2) * gL2)
        np.testing.assert_allclose(bwd[0, x], want, rtol=1e-6)


# ------------------------------------------------------------------ the exact block law

BLOCK = dict(arch="residual", input_dim=4, widths="6,3,6", init="he", branch_scale="0.8")


def block_law(cfg):
    """residual_block_cdf's arguments of the first block of a config: n, m, v_hidden, v_out, s."""
    n, m = cfg.widths[0], cfg.widths[1]
    v = theory.layer_variances(cfg.widths, cfg.input_dim, cfg.init)
    return n, m, v[1], v[2], cfg.branch_scale


def test_block_cdf_equals_a_direct_double_integral():
    """residual_block_cdf (a quad_vec over the quantile of chi2(K)) against scipy's quad over c
    with the chi-square density, term by term, at a few points: to 1e-8."""
    from scipy import integrate
    n, m, vh, vo, s = 4, 3, 0.5, 0.7, 0.9
    a = s * s * vh * vo
    r = np.array([0.2, 0.95, 1.0, 1.3, 3.0, 9.0])
    got = theory.residual_block_cdf(r, n, m, vh, vo, s)
    for i, x in enumerate(r):
        want = stats.binom.pmf(0, m, 0.5) * (x >= 1.0)
        for k in range(1, m + 1):
            f = lambda c: stats.chi2.pdf(c, k) * stats.ncx2.cdf(x / (a * c), n, 1.0 / (a * c))
            val = integrate.quad(f, 0, np.inf, epsabs=1e-12, limit=500, points=None)[0]
            want += stats.binom.pmf(k, m, 0.5) * val
        assert abs(got[i] - want) < 1e-8, (x, got[i], want)


def test_block_moments_are_those_of_the_mixture():
    """E R and E R^2 of residual_block_moments against 10^6 draws of R = (1 + sigma Z)^2 +
    sigma^2 chi2(n - 1), sigma^2 = a chi2(K), by NumPy's generator: within 6 standard errors
    (a false failure below 1e-8)."""
    n, m, vh, vo, s = 5, 4, 0.5, 0.4, 0.7
    mo = theory.residual_block_moments(n, m, vh, vo, s)
    g = np.random.default_rng(2024)
    T = 1_000_000
    K = g.binomial(m, 0.5, T)
    c = np.where(K > 0, g.chisquare(np.maximum(K, 1), T), 0.0)
    sig2 = s * s * vh * vo * c
    R = (1 + np.sqrt(sig2) * g.standard_normal(T)) ** 2 + sig2 * g.chisquare(n - 1, T)
    assert abs(R.mean() - mo.mean) < 6 * R.std() / np.sqrt(T)
    R2 = R * R
    assert abs(R2.mean() - (mo.var + mo.mean ** 2)) < 6 * R2.std() / np.sqrt(T)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["law", "dense"])
def test_block_ratio_follows_the_exact_law(kernel):
    """rho_3 / rho_1 of a one-block network (one Gaussian input) has residual_block_cdf's law:
    a KS test at p > 1e-6 (a false failure about once in a million runs)."""
    T = 300
    cfg, data = config.build(trials=T, kernel=kernel, properties="forward", seed=5, **BLOCK)
    fwd, _, _ = fill(law if kernel == "law" else dense, cfg, data, 0, T)
    live = fwd[:, 0, 0] > 0                       # a dead first layer (K_1 = 0) has no block ratio
    ratio = fwd[live, 0, 2] / fwd[live, 0, 0]
    n, m, vh, vo, s = block_law(cfg)
    p = stats.kstest(ratio, lambda r: theory.residual_block_cdf(r, n, m, vh, vo, s)).pvalue
    assert p > P_MIN, p
    hidden = fwd[live, 0, 1] / fwd[live, 0, 0]    # the hidden layer: v chi2(K), K ~ Bin(m, 1/2)
    kk = np.arange(m + 1)
    w = stats.binom.pmf(kk, m, 0.5)
    cdf = lambda x: np.sum(w * np.where(kk == 0, np.asarray(x)[..., None] >= 0,
                                        stats.chi2.cdf(np.asarray(x)[..., None] / vh, np.maximum(kk, 1))), axis=-1)
    assert stats.kstest(hidden, cdf).pvalue > P_MIN


@pytest.mark.slow
def test_law_kernel_layer_means_are_the_exact_moments():
    """The law kernel's per-layer mean of rho_l over 200,000 trials is residual_moments' E rho_l
    within 6 standard errors (a false failure below 1e-8 per layer)."""
    T = 200_000
    cfg, data = config.build(trials=T, kernel="law", properties="forward", arch="residual", input_dim=3,
                             widths="10,7,10,12,10", init="glorot", branch_scale="0.5", seed=8)
    fwd, _, dead = fill(law, cfg, data, 0, T)
    mo = theory.residual_moments(cfg.widths, cfg.input_dim, cfg.init, cfg.branch_scale)
    se = np.sqrt(mo.var / T)
    assert np.all(np.abs(fwd[:, 0].mean(axis=0) - mo.mean) < 6 * se)
    assert np.array_equal(dead, np.any(fwd[:, 0] == 0, axis=1))


@pytest.mark.slow  # compiles the residual law kernel (about 14 s on 2 cores)
def test_law_kernel_trials_do_not_depend_on_the_batch():
    cfg, data = config.build(trials=100, kernel="law", properties="forward", seed=3, **BLOCK)
    whole, _, _ = fill(law, cfg, data, 0, 100)
    part, _, _ = fill(law, cfg, data, 40, 30)
    np.testing.assert_array_equal(part, whole[40:70])


# ------------------------------------------------------------------ the command line

def invoke(*args):
    from click.testing import CliRunner

    from mcinit.cli import main
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.slow       # the residual dense kernel's compile (about 15 s cold): with the slow tests
@pytest.mark.parametrize("arch, samples", [("residual", 1), ("single-skip", 3)])
def test_run_end_to_end(tmp_path, arch, samples):
    """mcinit run writes a residual run; its layer table carries the residual law's means
    (single-skip: none), and no plain-network law or paper bound is shown."""
    from mcinit import results
    out = tmp_path / "r.h5"
    r = invoke("run", "--arch", arch, "--blocks", 2, "--width", 6, "--input-dim", 4, "--samples", samples,
               "--trials", 300, "--branch-scale", "1/B", "-o", out)
    assert r.exit_code == 0, r.output
    assert f"arch {arch}, 2 blocks, branch scale 0.5" in r.output
    assert "paper: - (the bound is of plain networks" in r.output
    res = results.load(out)
    (run,) = res.runs
    assert run.config.arch == arch and run.config.blocks == 2 and run.config.kernel == "dense"
    layers = res.layers()
    fail = res.failure(eps=[0.5], prop="forward")
    assert np.all(np.isnan(fail["p_exact"])) and np.all(np.isnan(fail["paper_delta"]))
    if arch == "residual":
        mo = theory.residual_moments(run.config.widths, branch_scale=0.5)
        np.testing.assert_allclose(layers["exact_rho_mean"], mo.mean)
        assert "exact: - (no exact failure probability for residual networks)" in r.output
    else:
        assert layers["exact_rho_mean"].isna().all()
        assert "no exact law for this architecture" in r.output


@pytest.mark.slow  # compiles the residual law kernel (about 14 s on 2 cores)
def test_auto_draws_one_gaussian_input_forward_from_the_law(tmp_path):
    out = tmp_path / "l.h5"
    r = invoke("run", "--arch", "residual", "--blocks", 3, "--width", 5, "--trials", 1000, "--properties", "forward",
               "-o", out, "-q")
    assert r.exit_code == 0, r.output
    from mcinit import results
    assert results.load(out).runs[0].config.kernel == "law"


@pytest.mark.parametrize("args, words", [
    (("--arch", "residual", "--kernel", "blocked"), "computed by the dense kernel"),
    (("--arch", "residual", "--kernel", "projected"), "computed by the dense kernel"),
    (("--arch", "single-skip", "--precision", "float32"), "float32"),
    (("--arch", "residual", "--sup-search", "2,5", "--samples", 4), "supremum search is of plain networks"),
    (("--arch", "single-skip", "--kernel", "law", "--properties", "forward"), "no exact law"),
    (("--arch", "residual", "--kernel", "law"), "--properties forward"),
    (("--arch", "residual", "--init", "wn", "--wn-grad", "direction"), "--wn-grad weight only"),
])
def test_refusals_are_one_error_line(tmp_path, args, words):
    out = tmp_path / "x.h5"
    r = invoke("run", "--blocks", 1, "--width", 4, "--input-dim", 3, "--trials", 10, *args, "-o", out)
    lines = r.output.strip().splitlines()
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("mcinit: error:"), r.output
    assert words in lines[0], lines[0]
    assert not out.exists()


def test_layer_variances_are_the_kernels_for_every_gaussian_init():
    """theory.layer_variances (the exact laws' v_l) is the kernels' variance (initializers) for every
    Gaussian preset, paper-glorot's N(0, 1/n_l) included."""
    from mcinit.initializers import layer_scheme
    from mcinit.options import GAUSSIAN_INITS
    for init in GAUSSIAN_INITS:
        np.testing.assert_allclose(theory.layer_variances([5, 7, 3], 4, init),
                                   layer_scheme(init, "normal", (4, 5, 7, 3))[1], rtol=1e-15, err_msg=init)
