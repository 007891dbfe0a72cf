"""The kernels against the exact law (docs/design.md section 4), an independent NumPy
implementation (docs/design.md section 1), and each other.

Statistical tests: fixed seeds; each Kolmogorov-Smirnov, binomial or z test
fails for a correct kernel with probability below 1e-6 (threshold p < 1e-6, or
6 sigma).  With fewer than 60 such tests in this module, a false failure of
the module has probability below 6e-5; with the fixed seeds the outcome is
deterministic.
"""

import numpy as np
import pytest
from scipy import stats

from mcinit import config, engine, rng
from mcinit.initializers import scheme_of
from mcinit.kernels import blocked, common, dense, law, projected

import reference

P_MIN = 1e-6
KERNELS = {"dense": dense, "blocked": blocked, "projected": projected, "law": law}


def fill(kernel, cfg, data, first, count, **kw):
    plan = common.make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    fwd = np.empty((count, N, L))
    bwd = np.empty((count, N, L))
    dead = np.zeros(count, dtype=bool)
    KERNELS[kernel].fill(plan, first, count, fwd, bwd, dead, **kw)
    return fwd, bwd, dead


def factor_cdf(x, n, v):
    """P(v chi2(K) <= x), K ~ Binomial(n, 1/2), chi2(0) = 0: one layer's factor."""
    k = np.arange(n + 1)
    w = stats.binom.pmf(k, n, 0.5)
    x = np.asarray(x, dtype=float)[..., None]
    c = np.where(k == 0, (x >= 0).astype(float), stats.chi2.cdf(x / v, np.maximum(k, 1)))
    return np.sum(w * c, axis=-1)


# ------------------------------------------------------------------ reference

REFERENCE_CASES = [
    dict(widths="30,50,20", head="softmax:7", init="he"),                      # fixed correlated data
    dict(input_dim=23, widths="40,17,33", samples=3, head="gaussian:5", init="he-in"),
    dict(input_dim=11, widths="25,25", samples=2, data="sphere", init="glorot", dist="uniform"),
    dict(input_dim=16, widths="24,12,30", samples=2, init="wn"),
    dict(input_dim=16, widths="24,24", samples=1, init="wn-unit", head="softmax:3"),
    dict(input_dim=9, widths="5,6,4,7", samples=1, init="lecun", seed=2 ** 63 + 11),
]


@pytest.mark.parametrize("case", range(len(REFERENCE_CASES)))
@pytest.mark.parametrize("kernel", ["dense", "blocked"])
def test_kernel_matches_numpy_reference(kernel, case, correlated_npy):
    """dense and blocked draw the same weights as the reference: its numbers to rounding."""
    kw = dict(REFERENCE_CASES[case])
    if case == 0:
        kw["data"] = correlated_npy[0]
    cfg, data = config.build(trials=10, kernel=kernel, **kw)
    for first in (0, 2 ** 33 + 5):           # trial indices above 2**32 use the high counter word
        fwd, bwd, dead = fill(kernel, cfg, data, first, 6)
        for j in range(6):
            rho, gamma = reference.trial_ratios(cfg, first + j, data)
            np.testing.assert_allclose(fwd[j], rho, rtol=1e-11, atol=0)
            np.testing.assert_allclose(bwd[j], gamma, rtol=1e-9, atol=0)
            assert dead[j] == bool(np.any(rho == 0) or np.any(np.isinf(gamma)))


@pytest.mark.parametrize("case", range(len(REFERENCE_CASES)))
def test_blocked_float32_is_float64_to_single_precision(case, correlated_npy):
    """float32 weights are the float64 numbers rounded: the same trials, to single precision.
    Bound: a ratio is a quotient of sums of squares after at most four layers of products of
    length <= 50 in float32 (unit roundoff 6e-8); 1e-4 is far above its rounding error."""
    kw = dict(REFERENCE_CASES[case])
    if case == 0:
        kw["data"] = correlated_npy[0]
    cfg, data = config.build(trials=10, kernel="blocked", **kw)
    cfg32, _ = config.build(trials=10, kernel="blocked", precision="float32", **kw)
    a = fill("blocked", cfg, data, 0, 10)
    b = fill("blocked", cfg32, data, 0, 10)
    np.testing.assert_allclose(b[0], a[0], rtol=1e-4, atol=0)
    live = ~a[2]
    np.testing.assert_allclose(b[1][live], a[1][live], rtol=1e-4, atol=0)
    assert np.array_equal(a[2], b[2])


def test_blocked_forward_only_equals_the_forward_of_both(correlated_npy):
    """properties forward skips the head and the backward pass; the forward ratios are the same bits."""
    kw = dict(data=correlated_npy[0], widths="30,50,20", init="he-in", kernel="blocked")
    cfg, data = config.build(trials=10, **kw)
    cfg_f, _ = config.build(trials=10, properties="forward", **kw)
    a = fill("blocked", cfg, data, 0, 10)
    b = fill("blocked", cfg_f, data, 0, 10)
    assert np.array_equal(a[0], b[0])


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_blocked_redrawn_weights_equal_kept_weights(precision, correlated_npy, monkeypatch):
    """A budget too small to keep W_2..W_L for the backward pass redraws them: the same bits."""
    cfg, data = config.build(trials=10, data=correlated_npy[0], widths="30,50,20", init="he-in",
                             kernel="blocked", precision=precision)
    plan = common.make_plan(cfg, data)
    assert blocked.weights_fit(plan)
    a = fill("blocked", cfg, data, 3, 7)
    monkeypatch.setenv("MCINIT_WORKSPACE_MB", "0")
    assert not blocked.weights_fit(plan)
    b = fill("blocked", cfg, data, 3, 7)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_blocked_bit_identical_across_threads_and_batch_sizes(precision):
    import numba
    kw = dict(trials=60, input_dim=20, widths="16,24,8", samples=7, init="he-in", kernel="blocked",
              precision=precision)
    cfg, data = config.build(**kw)
    base = engine.run(cfg, data, threads=1, batch_size=60)
    for threads, batch in ((2, 7), (numba.config.NUMBA_NUM_THREADS, 16)):
        other = engine.run(cfg, data, threads=threads, batch_size=batch)
        for f in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
            assert np.array_equal(base.records[f], other.records[f]), f


def test_blocked_products_run_on_one_blas_thread(monkeypatch):
    """Whichever thread ran a fill before (here the main thread, directly), the products of
    later fills on the engine's threads see one BLAS thread."""
    from threadpoolctl import ThreadpoolController
    libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    seen = set()
    matmul = blocked.Ops.matmul

    def spy(self, A, B, out):
        seen.add(tuple(c.get_num_threads() for c in libs))
        matmul(self, A, B, out)

    monkeypatch.setattr(blocked.Ops, "matmul", spy)
    cfg, data = config.build(trials=8, input_dim=16, width=32, depth=3, samples=4, kernel="blocked")
    fill("blocked", cfg, data, 0, 2)
    engine.run(cfg, data, threads=2, batch_size=2)
    fill("blocked", cfg, data, 0, 2)
    assert seen == {(1,) * len(libs)}


def test_blocked_leaves_blas_threads_as_it_found_them():
    from threadpoolctl import threadpool_info
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    cfg, data = config.build(trials=20, input_dim=8, widths="8,8", samples=4, kernel="blocked")
    engine.run(cfg, data, threads=2, batch_size=3)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_dense_regenerated_weights_equal_stored_weights(correlated_npy):
    cfg, data = config.build(trials=10, data=correlated_npy[0], widths="30,50,20", init="he-in")
    a = fill("dense", cfg, data, 3, 7, store=True)
    b = fill("dense", cfg, data, 3, 7, store=False)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


# ------------------------------------------------------------------ exact law

UNEVEN = dict(input_dim=45, widths="37,80,51,120,64,90")


# the law kernel's cases take 20-50 s on 2 cores (pytest -m slow); its exactness stays in the default
# run through test_last_layer_mean_and_variance and test_law_lanes_equal_law_trial
@pytest.mark.parametrize("kernel,trials,init", [("dense", 12000, "he-in"), ("blocked", 12000, "he"),
                                                pytest.param("projected", 60000, "he", marks=pytest.mark.slow),
                                                pytest.param("projected", 60000, "he-in", marks=pytest.mark.slow),
                                                pytest.param("law", 200000, "he", marks=pytest.mark.slow),
                                                pytest.param("law", 200000, "glorot", marks=pytest.mark.slow)])
def test_single_input_layer_factors_follow_the_exact_law(kernel, trials, init, precision="float64"):
    """rho_l / rho_(l-1) = v_l chi2(K_l), K_l ~ Binomial(n_l, 1/2), independent across layers."""
    cfg, data = config.build(trials=trials, init=init, kernel=kernel, precision=precision, **UNEVEN)
    fwd, bwd, dead = fill(kernel, cfg, data, 0, trials)
    rho = fwd[:, 0, :]
    _, var, _ = scheme_of(cfg)
    prev = np.ones(trials)
    factors = []
    for l, n in enumerate(cfg.widths):
        ok = prev > 0
        f = rho[ok, l] / prev[ok]
        p = stats.kstest(f, lambda x: factor_cdf(x, n, var[l])).pvalue
        assert p > P_MIN, (kernel, l, p)
        factors.append(rho[:, l] / prev)
        prev = rho[:, l]
    for a, b in zip(factors[:-1], factors[1:]):   # independence of consecutive factors
        assert abs(np.corrcoef(a, b)[0, 1]) < 6 / np.sqrt(trials)


@pytest.mark.slow
def test_blocked_float32_layer_factors_follow_the_exact_law():
    """float32 runs are held to the exact law as float64 runs are."""
    test_single_input_layer_factors_follow_the_exact_law("blocked", 12000, "he-in", precision="float32")


@pytest.mark.parametrize("kernel,trials", [("law", 1_000_000), ("projected", 100_000)])
def test_last_layer_mean_and_variance(kernel, trials):
    """E rho_L = 1 and Var rho_L = prod(1 + 5/n_l) - 1 for He (docs/design.md section 4), to 6 sigma."""
    widths = [64, 48, 64, 80, 64]
    res, cfg, _ = run_memory_rho(kernel, trials, widths)
    r = res
    m, s2 = r.mean(), r.var(ddof=1)
    var = np.prod(1 + 5 / np.array(widths)) - 1
    assert abs(m - 1) < 6 * np.sqrt(var / trials)
    se_var = np.sqrt(np.var((r - m) ** 2) / trials)
    assert abs(s2 - var) < 6 * se_var


def run_memory_rho(kernel, trials, widths):
    cfg, data = config.build(trials=trials, input_dim=30, widths=",".join(map(str, widths)), kernel=kernel)
    res = engine.run(cfg, data)
    # the streamed summary over (trial, input) pairs equals the records' statistics
    last = res.records["fwd_max"][:, -1]
    assert res.summary.count[0, 0, -1] == trials
    np.testing.assert_allclose(res.summary.mean[0, 0, -1], last.mean(), rtol=1e-10)
    return last, cfg, data


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
def test_dead_network_probability_is_exact():
    """One input: P(dead) = 1 - prod_l (1 - 2^-n_l) (some layer has no active unit)."""
    widths = [3, 2, 4]
    p = 1 - np.prod([1 - 0.5 ** n for n in widths])
    for kernel, trials in (("law", 200000), ("projected", 100000), ("dense", 100000), ("blocked", 100000)):
        cfg, data = config.build(trials=trials, input_dim=5, widths="3,2,4", kernel=kernel)
        fwd, bwd, dead = fill(kernel, cfg, data, 0, trials)
        k = int(dead.sum())
        assert stats.binomtest(k, trials, p).pvalue > P_MIN, (kernel, k / trials, p)
        assert np.all(np.isinf(bwd[dead])) and np.all(np.isfinite(bwd[~dead]))
        assert np.all(fwd[dead][:, 0, -1] == 0)


# ------------------------------------------------------------------ two-sample

def _two_sample(a, b, label):
    for name in ("fwd_min", "fwd_max", "bwd_min", "bwd_max"):
        for l in range(a[name].shape[1]):
            x, y = a[name][:, l], b[name][:, l]
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            p = stats.ks_2samp(x, y).pvalue
            assert p > P_MIN, (label, name, l, p)


@pytest.mark.parametrize("head", ["softmax:20", "gaussian:4"])
def test_kernels_agree_on_one_input(head):
    kw = dict(input_dim=50, widths="30,70,40,25", head=head, init="he-in")
    recs = {}
    for kernel, trials in (("dense", 30000), ("projected", 30000), ("law", 30000)):
        cfg, data = config.build(trials=trials, kernel=kernel, seed=1 + len(recs), **kw)
        recs[kernel] = engine.run(cfg, data).records
    _two_sample(recs["dense"], recs["projected"], "dense-projected")
    _two_sample(recs["dense"], recs["law"], "dense-law")


@pytest.mark.parametrize("precision", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_blocked_agrees_with_projected_on_many_inputs(precision, correlated_npy):
    """The many-input regime: blocked (float64 and float32) against the projected kernel's exact law."""
    kw = dict(data=correlated_npy[0], widths="20,35,8,30", head="softmax:5", init="he-in")
    cfg, data = config.build(trials=20000, kernel="blocked", precision=precision, seed=21, **kw)
    a = engine.run(cfg, data).records
    cfg, data = config.build(trials=20000, kernel="projected", seed=22, **kw)
    b = engine.run(cfg, data).records
    _two_sample(a, b, f"blocked-{precision}")


def test_projected_agrees_with_dense_on_a_correlated_dataset(correlated_npy):
    kw = dict(data=correlated_npy[0], widths="20,35,8,30", head="softmax:5", init="he-in")
    recs = {}
    for kernel, trials in (("dense", 20000), ("projected", 20000)):
        cfg, data = config.build(trials=trials, kernel=kernel, seed=5 + len(recs), **kw)
        recs[kernel] = engine.run(cfg, data).records
    _two_sample(recs["dense"], recs["projected"], "fixed-data")


@pytest.mark.parametrize("data,samples", [("gaussian", 8), ("sphere", 3), ("sphere", 1)])
def test_projected_agrees_with_dense_on_random_inputs(data, samples):
    """Includes more inputs than the input dimension and the narrowest layer (rank-deficient)."""
    kw = dict(input_dim=6, widths="5,9,4", samples=samples, data=data, head="softmax:3")
    recs = {}
    for kernel in ("dense", "projected"):
        cfg, data = config.build(trials=20000, kernel=kernel, seed=9 + len(recs), **kw)
        recs[kernel] = engine.run(cfg, data).records
    _two_sample(recs["dense"], recs["projected"], "rank-deficient")


def test_projected_and_law_refuse_non_gaussian_weights():
    for kernel in ("projected", "law"):
        for kw in (dict(dist="uniform"), dict(init="wn")):
            cfg, data = config.build(trials=5, input_dim=4, widths="3,3", kernel=kernel, **kw)
            with pytest.raises(config.ConfigError, match="Gaussian"):
                engine.run(cfg, data)
    cfg, data = config.build(trials=5, input_dim=4, widths="3,3", samples=2, kernel="law")
    with pytest.raises(config.ConfigError, match="one input"):
        engine.run(cfg, data)


def test_binomial_guide_table_gives_the_binary_search_answer():
    """The law kernel's guided search returns exactly the inversion by binary search."""
    from numba import njit
    from mcinit import rng
    from mcinit.kernels.law import GUIDE, binomial_tables, guide_tables, sample_binomial, sample_binomial_guided

    @njit
    def mismatches(T, cdf, offs, guide, ws, k0, k1):
        bad = 0
        for t in range(T):
            for l in range(len(ws)):
                c2, c3 = rng.counter_words(t, l + 1, rng.STREAM_LAW)
                a = sample_binomial(cdf, offs[l], ws[l], k0, k1, c2, c3, 0)
                b = sample_binomial_guided(cdf, offs[l], ws[l], guide, l * GUIDE, k0, k1, c2, c3, 0)
                bad += a != b
        return bad

    ws = np.array([1, 2, 3, 37, 1024, 5000])
    cdf, offs = binomial_tables(ws)
    k0, k1 = rng.seed_key(5)
    assert mismatches(100000, cdf, offs, guide_tables(cdf, offs), ws, k0, k1) == 0


@pytest.mark.parametrize("kw,first,count", [
    pytest.param(dict(input_dim=1024, width=1024, depth=10), 0, 3000, marks=pytest.mark.slow),
    (dict(input_dim=3, widths="1,2,3,1,2"), 5, 2011),                    # K = 0, 1, 2: a < 1 and a = 0
    (dict(input_dim=5, widths="4,3,7", head="gaussian:3", data="sphere"), 2 ** 33 + 7, 1000),
    (dict(input_dim=5, widths="40,30,70", head="softmax:37", seed=2 ** 63 + 5), 2 ** 32 - 100, 777),
    (dict(input_dim=6, widths="9,8", head="gaussian:1", init="glorot"), 1, 63),
])
def test_law_lanes_equal_law_trial(kw, first, count):
    """The CPU law kernel's lane blocks draw exactly law_trial's numbers (what the CUDA
    kernel runs), trial by trial, for every block size and offset."""
    cfg, data = config.build(trials=10, kernel="law", **kw)
    plan = common.make_plan(cfg, data)
    L = cfg.depth
    out = []
    for batch in (law.fill_in_chunks, law.fill_by_law_trial):
        fwd = np.full((count, 1, L), -1.0)
        bwd = np.full((count, 1, L), -1.0)
        dead = np.zeros(count, dtype=bool)
        cdf, offs, guide = law.tables(plan.widths[1:])
        batch(first, count, 3, plan.k0, plan.k1, plan.widths, plan.var, plan.head, plan.classes, plan.data,
              1.0, cdf, offs, guide, fwd, bwd, dead)
        out.append((fwd, bwd, dead))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_law_fixed_input_equals_law_trial(correlated_npy):
    cfg, data = config.build(trials=10, kernel="law", data=correlated_npy[0], samples=1, widths="30,50,20")
    plan = common.make_plan(cfg, data)
    fwd, bwd, dead = fill("law", cfg, data, 17, 300)
    cdf, offs, guide = law.tables(plan.widths[1:])
    f2, b2, d2 = np.empty_like(fwd), np.empty_like(bwd), np.zeros_like(dead)
    law.fill_by_law_trial(17, 300, 2, plan.k0, plan.k1, plan.widths, plan.var, plan.head, plan.classes,
                          plan.data, float(plan.X0[0] @ plan.X0[0]), cdf, offs, guide, f2, b2, d2)
    assert np.array_equal(fwd, f2) and np.array_equal(bwd, b2) and np.array_equal(dead, d2)


@pytest.mark.slow
@pytest.mark.parametrize("kernel,trials", [("law", 10_000_000), ("projected", 2_000_000)])
def test_failure_probability_equals_the_exact_one_at_scale(kernel, trials):
    """Long run (pytest -m slow): the measured single-input forward failure probability equals
    theory.exact_forward_failure at three tolerances, two-sided binomial test p > 1e-6 each."""
    from mcinit import theory
    from mcinit.stats import failure_counts
    widths = [64, 96, 128, 96, 64]
    cfg, data = config.build(trials=trials, input_dim=80, widths=",".join(map(str, widths)), kernel=kernel,
                             init="he-in", seed=11)
    res = engine.run(cfg, data)
    eps = np.array([0.4, 0.8, 1.2])
    k = failure_counts(res.records, eps, "norm")["forward"]
    p = theory.exact_forward_failure(eps, widths, "norm", input_dim=80, init="he-in")
    for ki, pi in zip(k, p):
        assert stats.binomtest(int(ki), trials, float(pi)).pvalue > P_MIN, (ki / trials, pi)


# ------------------------------------------------------------------ --wn-grad direction

def _direction_loss(X, t, Vs, gains, Wo):
    """Softmax cross-entropy -sum_c t_c log softmax(z)_c of one input x (t: the soft target),
    the network of weight-normalised rows W_l = g_l V_l / ||rows of V_l|| with the direction
    parameters V_l explicit."""
    h = X
    for V, g in zip(Vs, gains):
        h = np.maximum((g * V / np.linalg.norm(V, axis=1, keepdims=True)) @ h, 0.0)
    z = Wo @ h
    z = z - z.max()
    return -float(np.sum(t * (z - np.log(np.sum(np.exp(z))))))


def _direction_gamma_by_differences(cfg, trial, step=1e-6):
    """gamma_l^dir (N, L) of one trial from dloss/dV_l by central finite differences at the rows'
    directions (||v_i|| = 1), divided by g_l ||x|| ||delta^L|| (squared): independent of the
    kernels' formula.  delta^L is the reference's (1[a^L > 0] W_o^T (softmax(z) - t))."""
    dist, var, gain = scheme_of(cfg)
    Ws, Wo = reference.weights(cfg, trial)
    Us = [W / np.linalg.norm(W, axis=1, keepdims=True) for W in Ws]       # unit rows: V at ||v|| = 1
    X = reference.inputs(cfg, trial)
    K = cfg.head[1]
    T = rng.uniform_matrix(cfg.seed, trial, cfg.depth + 1, rng.STREAM_TARGET, cfg.samples, K)
    T = T / T.sum(axis=1, keepdims=True)
    out = np.empty((cfg.samples, cfg.depth))
    for x in range(cfg.samples):
        h = [X[x]]
        for W in Ws:
            h.append(np.maximum(W @ h[-1], 0.0))
        z = Wo @ h[-1]
        p = np.exp(z - z.max())
        dL = (h[-1] > 0) * (Wo.T @ (p / p.sum() - T[x]))
        for l in range(cfg.depth):
            G = np.empty_like(Us[l])
            for i in range(G.shape[0]):
                for j in range(G.shape[1]):
                    Vp = [U.copy() for U in Us]
                    Vm = [U.copy() for U in Us]
                    Vp[l][i, j] += step
                    Vm[l][i, j] -= step
                    G[i, j] = (_direction_loss(X[x], T[x], Vp, gain, Wo)
                               - _direction_loss(X[x], T[x], Vm, gain, Wo)) / (2 * step)
            out[x, l] = np.sum(G * G) / (gain[l] ** 2 * (X[x] @ X[x]) * (dL @ dL))
    return out


@pytest.mark.parametrize("init", ["wn", "wn-unit"])
def test_wn_direction_gradient_matches_finite_differences(init):
    """The dense kernel's gamma^dir is ||dloss/dV_l||^2 / (g_l^2 ||x||^2 ||delta^L||^2), dloss/dV_l
    by central differences of the loss in the direction parameters (step 1e-6: truncation
    ~1e-12, cancellation ~1e-10 of gradient entries of order 0.1 to 1).  Tolerance 1e-6."""
    cfg, data = config.build(trials=4, kernel="dense", input_dim=5, widths="4,6,3", samples=2, init=init,
                             wn_grad="direction", head="softmax:3", seed=21)
    fwd, bwd, dead = fill("dense", cfg, data, 0, 3)
    for j in range(3):
        assert not dead[j]
        np.testing.assert_allclose(bwd[j], _direction_gamma_by_differences(cfg, j), rtol=1e-6, atol=0)
        rho, gamma = reference.trial_ratios(cfg, j)
        np.testing.assert_allclose(fwd[j], rho, rtol=1e-11, atol=0)     # the forward pass is unchanged
        assert np.all(bwd[j] < gamma)       # the direction gradient drops each row's radial part


@pytest.mark.parametrize("precision,rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_wn_direction_blocked_equals_dense(precision, rtol, correlated_npy):
    """blocked (float64: to rounding; float32: to single precision, as
    test_blocked_float32_is_float64_to_single_precision) gives the dense kernel's gamma^dir,
    on random and on fixed inputs, with kept and with redrawn weights."""
    for kw in (dict(input_dim=16, widths="24,12,30", samples=3),
               dict(data=correlated_npy[0], widths="20,9")):
        cfg, data = config.build(trials=6, kernel="dense", init="wn", wn_grad="direction", **kw)
        d = fill("dense", cfg, data, 0, 6)
        cfg_b, data_b = config.build(trials=6, kernel="blocked", init="wn", wn_grad="direction",
                                     precision=precision, **kw)
        b = fill("blocked", cfg_b, data_b, 0, 6)
        np.testing.assert_allclose(b[0], d[0], rtol=rtol, atol=0)
        np.testing.assert_allclose(b[1], d[1], rtol=rtol, atol=0)
        assert np.array_equal(b[2], d[2])
        weight = fill("dense", config.build(trials=6, kernel="dense", init="wn", **kw)[0], data, 0, 6)[1]
        assert np.all(d[1] < weight)


def test_wn_direction_dense_redrawn_equals_stored():
    cfg, data = config.build(trials=4, kernel="dense", input_dim=7, widths="9,8,5", samples=2, init="wn",
                             wn_grad="direction")
    a = fill("dense", cfg, data, 0, 4, store=True)
    b = fill("dense", cfg, data, 0, 4, store=False)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_wn_direction_needs_weight_normalised_rows():
    with pytest.raises(config.ConfigError, match="wn-grad"):
        config.build(trials=4, input_dim=5, widths="4,4", init="he", wn_grad="direction")
