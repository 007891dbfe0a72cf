"""The activations (mcinit/activations.py) and the kernels that compute them (dense, projected).

- the NumPy reference network (tests/reference.py) with any activation: its gradients against
  central finite differences of the loss;
- mcinit.activations' phi and phi' against the reference's own formulas, and the gains;
- the dense kernel against the reference on the same weights (every activation, one and
  three inputs, Gaussian, uniform and weight-normalised rows, kept and redrawn weights);
- the projected kernel against the dense kernel in distribution.

Statistical tests: fixed seeds; each two-sample Kolmogorov-Smirnov test fails for a correct
kernel with probability below 1e-6 (threshold p < 1e-6).  The module makes fewer than 200
of them, so a false failure of the module has probability below 2e-4; with the fixed seeds
the outcome is deterministic.
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from mcinit import activations, config, engine, rng
from mcinit.initializers import scheme_of
from mcinit.kernels import common, dense, projected
from mcinit.options import ACTIVATIONS

import reference

P_MIN = 1e-6
CASES = ["relu", "leaky-relu:0.1", "leaky-relu:-0.5", "abs", "linear", "tanh", "gelu"]


def test_cases_cover_every_activation():
    assert {c.partition(":")[0] for c in CASES} == set(ACTIVATIONS)


def fill(kernel, cfg, data, first, count, **kw):
    plan = common.make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    fwd = np.zeros((count, N, L))
    bwd = np.zeros((count, N, L))
    dead = np.zeros(count, dtype=bool)
    {"dense": dense, "projected": projected}[kernel].fill(plan, first, count, fwd, bwd, dead, **kw)
    return fwd, bwd, dead


# ------------------------------------------------------------------ the reference's gradients

def _loss(X, T, Ws, Wo, activation):
    """Softmax cross-entropy sum_x -sum_c T[x, c] log softmax(z(x))_c (rows of T sum to 1)."""
    H, _ = reference.forward(X, Ws, activation)
    Z = H[-1] @ Wo.T
    Z = Z - Z.max(axis=1, keepdims=True)
    return -float(np.sum(T * (Z - np.log(np.sum(np.exp(Z), axis=1, keepdims=True)))))


@pytest.mark.parametrize("activation", CASES)
def test_reference_gradients_match_finite_differences(activation):
    """dloss/dW_l = sum_x delta^l(x) h^(l-1)(x)^T from the reference's backward pass equals central
    differences of the loss (step 1e-6: truncation ~1e-12 for the smooth activations, none for
    the piecewise linear ones away from their kinks; every |a| > 1e-3 here, far beyond the step's
    reach), relative 1e-5."""
    g = np.random.default_rng(1)
    n = [4, 5, 3, 6]
    X = g.standard_normal((3, n[0]))
    Ws = [g.standard_normal((n[l], n[l - 1])) / np.sqrt(n[l - 1]) for l in range(1, len(n))]
    Wo = g.standard_normal((4, n[-1]))
    T = g.uniform(size=(3, 4))
    T /= T.sum(axis=1, keepdims=True)
    H, A = reference.forward(X, Ws, activation)
    assert min(np.min(np.abs(a)) for a in A) > 1e-3
    Z = H[-1] @ Wo.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    D = reference.backward(A, Ws, Wo, P / P.sum(axis=1, keepdims=True) - T, activation)
    step = 1e-6
    for l, W in enumerate(Ws):
        grad = D[l].T @ H[l]
        fd = np.empty_like(W)
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                Wp = [w.copy() for w in Ws]
                Wm = [w.copy() for w in Ws]
                Wp[l][i, j] += step
                Wm[l][i, j] -= step
                fd[i, j] = (_loss(X, T, Wp, Wo, activation) - _loss(X, T, Wm, Wo, activation)) / (2 * step)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * np.max(np.abs(fd)))


# ------------------------------------------------------------------ phi, phi' and the gains

@pytest.mark.parametrize("activation", CASES)
def test_kernel_functions_equal_the_reference(activation):
    """mcinit.activations' compiled phi and phi' (what the kernels call) against the reference's
    formulas, on a grid with the kinks (0) and saturated values.  Relative 1e-12: gelu's Phi(a)
    (erfc here, scipy's ndtr in the reference) is within a few ulps where it is small, but the
    rounding of its argument a / sqrt 2 moves it by up to |a|^2 ulps.  tanh' is 1 - tanh^2 in
    mcinit and 1/cosh^2 here: equal to an absolute 1e-15 (the rounding of tanh near 1)."""
    a = np.concatenate([np.linspace(-9.0, 9.0, 1801), [0.0, -0.0, 1e-300, -1e-300, 30.0, -30.0]])
    f, df = reference.phi_of(activation)
    np.testing.assert_allclose(activations.apply(activation, a), f(a), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(activations.derivative(activation, a), df(a), rtol=1e-12, atol=1e-15)


def _gauss_hermite_mean(fun, nodes=200):
    """E[fun(z)], z ~ N(0, 1), by Gauss-Hermite quadrature (probabilists' weights); exact for
    the piecewise quadratics of relu, leaky-relu and abs squared (symmetric nodes, none at 0)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return float(np.sum(w * fun(z)) / np.sqrt(2 * np.pi))


@pytest.mark.parametrize("activation", CASES)
def test_gain_keeps_the_pre_activation_variance(activation):
    """g^2 E[phi(z)^2] = 1: a layer of variance g^2 / fan_in keeps E a_i^2 = 1 for unit-variance
    pre-activations below; for the homogeneous activations also E[phi(g z)^2] = 1 (E q kept for
    every q).  Quadrature of 200 nodes, the reference's phi; relative 1e-12."""
    f, _ = reference.phi_of(activation)
    g = activations.gain(activation)
    assert g ** 2 * _gauss_hermite_mean(lambda z: f(z) ** 2) == pytest.approx(1.0, rel=1e-12)
    assert activations.second_moment(activation) == pytest.approx(1 / g ** 2, rel=1e-14)
    if activations.homogeneous(activation):
        assert _gauss_hermite_mean(lambda z: f(g * z) ** 2) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_second_moments_of_the_smooth_activations_by_adaptive_quadrature(activation):
    f, _ = reference.phi_of(activation)
    val = sum(integrate.quad(lambda z: f(np.array(z)) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                             lo, hi, epsabs=1e-14, epsrel=1e-13)[0] for lo, hi in ((-np.inf, 0.0), (0.0, np.inf)))
    assert activations.second_moment(activation) == pytest.approx(val, rel=1e-12)


@pytest.mark.parametrize("alpha", [0.01, 0.1, -0.5, 0.2])
def test_gains_equal_torch_calculate_gain(alpha):
    """torch.nn.init.calculate_gain: relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)), linear 1
    (its formulas, hard-coded; torch is not needed)."""
    assert activations.gain("relu") == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert activations.gain("linear") == 1.0
    assert activations.gain(f"leaky-relu:{alpha}") == pytest.approx(math.sqrt(2.0 / (1 + alpha ** 2)), rel=1e-15)


# ------------------------------------------------------------------ dense against the reference

def _check_against_reference(cfg, data, first, count, **kw):
    fwd, bwd, dead = fill("dense", cfg, data, first, count, **kw)
    for j in range(count):
        rho, gamma = reference.trial_ratios(cfg, first + j, data)
        np.testing.assert_allclose(fwd[j], rho, rtol=1e-10, atol=0)
        np.testing.assert_allclose(bwd[j], gamma, rtol=1e-10, atol=0)
        assert dead[j] == bool(np.any(rho == 0) or np.any(np.isinf(gamma)))
    return fwd, bwd, dead


@pytest.mark.parametrize("samples", [1, 3])
@pytest.mark.parametrize("activation", CASES)
def test_dense_matches_numpy_reference(activation, samples):
    """The dense kernel's fwd, bwd and dead equal the reference's on the same weights, to 1e-10."""
    cfg, data = config.build(trials=8, kernel="dense", input_dim=7, widths="9,6,8", samples=samples,
                             head="softmax:4", activation=activation, init="he", seed=3)
    _check_against_reference(cfg, data, 0, 6)


@pytest.mark.parametrize("activation", ["leaky-relu:0.2", "tanh", "gelu"])
@pytest.mark.parametrize("kw", [dict(dist="uniform", init="glorot"), dict(init="wn"), dict(init="orthogonal"),
                                dict(init="he-in", head="gaussian:3", data="sphere")])
@pytest.mark.parametrize("store", [True, False])
def test_dense_matches_reference_for_every_row_distribution(activation, kw, store):
    """Uniform, weight-normalised and orthogonal weights, kept and redrawn weights, the gaussian
    head, inputs on the sphere, trial numbers above 2^32."""
    cfg, data = config.build(trials=8, kernel="dense", input_dim=6, widths="7,5,4", samples=2,
                             activation=activation, **kw)
    _check_against_reference(cfg, data, 2 ** 33 + 1, 4, store=store)


@pytest.mark.parametrize("activation", ["abs", "gelu"])
def test_dense_matches_reference_on_fixed_data(activation, correlated_npy):
    """Fixed, correlated (and collinear) inputs."""
    cfg, data = config.build(trials=4, kernel="dense", data=correlated_npy[0], widths="12,10",
                             head="softmax:3", activation=activation)
    _check_against_reference(cfg, data, 0, 4)


def test_dense_forward_only_equals_the_forward_of_both():
    kw = dict(trials=6, kernel="dense", input_dim=5, widths="6,7,4", samples=2, activation="tanh")
    both = fill("dense", *config.build(**kw), 0, 6)
    fwd, bwd, dead = fill("dense", *config.build(properties="forward", **kw), 0, 6)
    np.testing.assert_array_equal(fwd, both[0])
    assert not np.any(bwd) and not np.any(dead)


def test_dense_dead_flag_of_non_relu_networks():
    """Width-1 layers: a ReLU network dies whenever one unit is off (here in most of 300 trials);
    leaky-relu, abs, tanh and gelu units vanish only at a = 0 (probability 0): never dead."""
    for activation, some_dead in (("relu", True), ("leaky-relu:0.1", False), ("abs", False),
                                  ("tanh", False), ("gelu", False)):
        cfg, data = config.build(trials=300, kernel="dense", input_dim=2, widths="1,1,1", head="softmax:2",
                                 activation=activation, seed=8)
        fwd, bwd, dead = fill("dense", cfg, data, 0, 300)
        assert np.any(dead) == some_dead, activation
        assert np.all(np.isfinite(bwd)) != some_dead


# ------------------------------------------------------------------ --wn-grad direction

def _direction_gamma_by_differences(cfg, trial, step=1e-6):
    """gamma_l^dir (N, L) of one trial from dloss/dV_l by central differences at the rows'
    directions (||v_i|| = 1), divided by g_l^2 ||x||^2 ||delta^L||^2: independent of the
    kernel's formula c_l = sum_i (delta_i a_i)^2."""
    _, _, gain = scheme_of(cfg)
    Ws, Wo = reference.weights(cfg, trial)
    Us = [W / np.linalg.norm(W, axis=1, keepdims=True) for W in Ws]
    X = reference.inputs(cfg, trial)
    K = cfg.head[1]
    T = rng.uniform_matrix(cfg.seed, trial, cfg.depth + 1, rng.STREAM_TARGET, cfg.samples, K)
    T = T / T.sum(axis=1, keepdims=True)

    def loss(x, Vs):
        W = [g * V / np.linalg.norm(V, axis=1, keepdims=True) for V, g in zip(Vs, gain)]
        return _loss(X[x:x + 1], T[x:x + 1], W, Wo, cfg.activation)

    H, A = reference.forward(X, Ws, cfg.activation)
    Z = H[-1] @ Wo.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    dL = reference.backward(A, Ws, Wo, P / P.sum(axis=1, keepdims=True) - T, cfg.activation)[-1]
    out = np.empty((cfg.samples, cfg.depth))
    for x in range(cfg.samples):
        for l in range(cfg.depth):
            G = np.empty_like(Us[l])
            for i in range(G.shape[0]):
                for j in range(G.shape[1]):
                    Vp = [U.copy() for U in Us]
                    Vm = [U.copy() for U in Us]
                    Vp[l][i, j] += step
                    Vm[l][i, j] -= step
                    G[i, j] = (loss(x, Vp) - loss(x, Vm)) / (2 * step)
            out[x, l] = np.sum(G * G) / (gain[l] ** 2 * (X[x] @ X[x]) * (dL[x] @ dL[x]))
    return out


@pytest.mark.parametrize("activation", ["tanh", "leaky-relu:0.2", "abs"])
def test_wn_direction_gradient_of_any_activation_matches_finite_differences(activation):
    """c_l = sum_i (delta_i a_i)^2 for any activation (h_i = a_i only for ReLU).  Step 1e-6:
    truncation ~1e-12, cancellation ~1e-10 of gradient entries of order 0.1 to 1; tolerance 1e-6."""
    cfg, data = config.build(trials=3, kernel="dense", input_dim=5, widths="4,6,3", samples=2, init="wn",
                             wn_grad="direction", head="softmax:3", activation=activation, seed=21)
    fwd, bwd, dead = fill("dense", cfg, data, 0, 2)
    for j in range(2):
        assert not dead[j]
        np.testing.assert_allclose(bwd[j], _direction_gamma_by_differences(cfg, j), rtol=1e-6, atol=0)


# ------------------------------------------------------------------ projected against dense

def _ks_per_layer(a, b, label):
    """Two-sample KS on every layer's forward and backward ratios of input 0 (one value per
    trial: independent draws), and on the minimum over inputs."""
    for name, x, y in (("fwd", a[0], b[0]), ("bwd", a[1], b[1])):
        for stat, u, v in (("x0", x[:, 0], y[:, 0]), ("min", x.min(axis=1), y.min(axis=1))):
            for l in range(u.shape[1]):
                p = stats.ks_2samp(u[:, l], v[:, l]).pvalue
                assert p > P_MIN, (label, name, stat, l, p)


@pytest.mark.parametrize("activation", CASES)
def test_projected_agrees_with_dense_in_distribution(activation):
    """3000 trials of a tiny network (more inputs than the narrowest layer: rank-deficient)
    with each kernel; every KS test p > 1e-6."""
    kw = dict(trials=3000, input_dim=5, widths="6,3,5", samples=4, head="softmax:3", activation=activation)
    a = fill("dense", *config.build(kernel="dense", seed=11, **kw), 0, 3000)
    b = fill("projected", *config.build(kernel="projected", seed=12, **kw), 0, 3000)
    _ks_per_layer(a, b, activation)


@pytest.mark.parametrize("activation", ["tanh", "leaky-relu:0.1"])
def test_projected_agrees_with_dense_on_one_input_fixed_data_and_orthogonal_weights(activation, correlated_npy):
    """One input (where ReLU takes a shortcut), fixed correlated inputs, and orthogonal weights at
    uneven widths (tall and wide layers); every KS test p > 1e-6."""
    for kw in (dict(input_dim=8, widths="7,9", samples=1), dict(data=correlated_npy[0], widths="8,6"),
               dict(input_dim=5, widths="7,3,6", samples=3, init="orthogonal")):
        a = fill("dense", *config.build(trials=3000, kernel="dense", seed=31, activation=activation, **kw), 0, 3000)
        b = fill("projected", *config.build(trials=3000, kernel="projected", seed=32, activation=activation,
                                            **kw), 0, 3000)
        _ks_per_layer(a, b, activation)


def test_projected_forward_only_equals_the_forward_of_both():
    kw = dict(trials=6, kernel="projected", input_dim=5, widths="6,7,4", samples=2, activation="gelu")
    both = fill("projected", *config.build(**kw), 0, 6)
    fwd, bwd, dead = fill("projected", *config.build(properties="forward", **kw), 0, 6)
    np.testing.assert_array_equal(fwd, both[0])
    assert not np.any(bwd)


def test_kernel_choice_for_activations():
    """dense and projected compute every activation (projected: Gaussian and orthogonal weights);
    blocked refuses them."""
    from mcinit import kernels
    from mcinit.initializers import DIST_NORMAL, DIST_ORTHOGONAL, DIST_UNIFORM
    assert set(kernels.able(DIST_NORMAL, 3, activation="tanh")) == {"dense", "projected"}
    assert set(kernels.able(DIST_ORTHOGONAL, 3, activation="gelu")) == {"dense", "projected"}
    assert kernels.able(DIST_UNIFORM, 3, activation="tanh") == ("dense",)
    cfg, data = config.build(trials=4, input_dim=4, widths="3,3", samples=2, kernel="projected", activation="gelu")
    assert engine.run(cfg, data).records["fwd_min"].shape[0] == 4
    # the cost model: ReLU draws the columns that meet an active unit, others every column
    assert kernels.cost_terms("dense", [5, 6, 7], 1, 3, activation="tanh")[0] == 5 * 6 + 6 * 7 + 3 * 7
    assert kernels.cost_terms("dense", [5, 6, 7], 1, 3)[0] == 5 * 6 + (6 * 7 + 3 * 7) / 2
    with pytest.raises(config.ConfigError, match="computed by the dense and projected kernels, not blocked"):
        engine.run(*config.build(trials=4, input_dim=4, widths="3,3", samples=2, kernel="blocked",
                                 activation="gelu"))
