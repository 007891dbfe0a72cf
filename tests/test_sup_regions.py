"""Exact extremes of the forward ratio over all inputs in small input dimensions
(mcinit.kernels.sup_regions).

What is checked, and how likely a correct kernel is to fail:

- brute force: for input dimensions 3, 4, 5 (and two networks in 6), widths 2..8, depths
  1..4, the three weight distributions and several seeds, the independent NumPy network
  of tests/reference.py evaluated on a dense point set of the sphere (a Fibonacci grid
  of GRID points on S^2; GRID uniform random points on the higher spheres), refined by
  Nelder-Mead (scipy.optimize.minimize, on y -> rho_l(y / |y|)) from the REFINE best
  points of each side. The grid and the refinements are values at actual inputs, so the
  exact max must not be below their best by more than rounding (1e-9 relative): no
  statistics. The other side (agreement within 1e-6 of the max) holds when some
  refinement reaches the global extreme; measured on exactly the networks of these tests
  (72 trials): the exact and refined values differed by at most 7.7e-16 of the max on
  either side, so the margin is about 1e9 and, with the fixed seeds, the outcome is
  deterministic.
- exactness (no statistics): a first layer narrower than the input has a null space,
  where rho_l = 0: the exact min is 0 (the repeated eigenvalue 0); the first layer's
  activation regions are those of n_1 hyperplanes in general position.
- limits (exact): with max_regions small, exact is False and smin / smax NaN from the
  first layer whose cones exceed it, and the layers before are the full run's bit for bit.
- determinism (exact): results do not depend on how trials are split into calls or on the
  thread count (bit for bit).
"""

import numba
import numpy as np
import pytest
from scipy.optimize import minimize

from mcinit import config
from mcinit.kernels import common, sup_regions

import reference

GRID = 60_000
REFINE = 6


def build(n0, widths, seed=1, dist="normal", init="he"):
    """dist: normal, uniform or wn (weight-normalised rows, --init wn)."""
    if dist == "wn":
        dist, init = "normal", "wn"
    cfg, _ = config.build(trials=10, input_dim=n0, widths=widths, data="sphere", samples=8,
                          kernel="dense", sup_search="3,25", seed=seed, init=init, dist=dist)
    return cfg


def run(cfg, first, count, max_regions=sup_regions.MAX_REGIONS):
    plan = common.make_plan(cfg)
    L = cfg.depth
    smin = np.full((count, L), -1.0)
    smax = np.full((count, L), -1.0)
    exact = np.zeros((count, L), dtype=bool)
    regions = np.full((count, L), -1, dtype=np.int64)
    sup_regions.extremes(plan, first, count, smin, smax, exact, max_regions, regions)
    return smin, smax, exact, regions


def sphere_points(n0, m, seed=0):
    if n0 == 3:                                   # the Fibonacci grid of S^2
        k = np.arange(m) + 0.5
        z = 1.0 - 2.0 * k / m
        phi = np.pi * (1.0 + 5 ** 0.5) * k
        r = np.sqrt(1.0 - z * z)
        return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    X = np.random.default_rng(seed).standard_normal((m, n0))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def rho(Ws, X):
    """rho_l of the rows of X (any norms), l = 1..L: (len(X), L)."""
    H = X.T
    x2 = (H * H).sum(axis=0)
    out = []
    for W in Ws:
        H = np.maximum(W @ H, 0.0)
        out.append((H * H).sum(axis=0) / x2)
    return np.array(out).T


def brute(cfg, trial):
    """(min, max) of rho_l per layer from the grid refined by Nelder-Mead: values at inputs."""
    Ws, _ = reference.weights(cfg, trial)
    X = sphere_points(cfg.input_dim, GRID, seed=trial)
    R = rho(Ws, X)
    lo = R.min(axis=0)
    hi = R.max(axis=0)
    for l in range(cfg.depth):
        for sign in (1.0, -1.0):
            order = np.argsort(-sign * R[:, l])[:REFINE]
            for i in order:
                f = lambda y: -sign * rho(Ws, y[None, :])[0, l]
                res = minimize(f, X[i], method="Nelder-Mead",
                               options=dict(xatol=1e-12, fatol=1e-16, maxiter=4000, maxfev=8000))
                v = -sign * res.fun
                lo[l] = min(lo[l], v)
                hi[l] = max(hi[l], v)
    return lo, hi


def check_against_brute(cfg, first, count, gaps=None):
    smin, smax, exact, _ = run(cfg, first, count)
    assert exact.all()
    for t in range(count):
        lo, hi = brute(cfg, first + t)
        # values at actual inputs: the exact extremes are never less extreme
        assert np.all(smax[t] >= hi * (1 - 1e-9))
        assert np.all(smin[t] <= lo + 1e-9 * hi)
        if gaps is not None:
            gaps.append(max(np.max((smax[t] - hi) / hi), np.max((lo - smin[t]) / hi)))
        # and some refinement reaches them
        assert np.all(smax[t] <= hi * (1 + 1e-6)), (smax[t], hi)
        assert np.all(smin[t] >= lo - 1e-6 * hi), (smin[t], lo)


@pytest.mark.slow       # compiles the enumeration (about 45 s cold): the default suite leaves it to -m slow
def test_agrees_with_brute_force_in_three_dimensions():
    check_against_brute(build(3, "5,4", seed=3), 0, 3)


BRUTE = [(n0, widths, dist, seed)
         for n0 in (3, 4, 5)
         for widths, dist, seed in (("2", "normal", 1), ("8", "uniform", 2), ("3,6", "wn", 3),
                                    ("6,2,5", "normal", 4), ("4,4,4,4", "uniform", 5),
                                    ("7,5,3", "wn", 6), ("8,8", "normal", 7))]
BRUTE += [(6, "3,5", "uniform", 12), (6, "7,4", "wn", 13)]


@pytest.mark.slow
@pytest.mark.parametrize("n0,widths,dist,seed", BRUTE)
def test_agrees_with_brute_force(n0, widths, dist, seed):
    check_against_brute(build(n0, widths, seed=seed, dist=dist), 5, 3)


@pytest.mark.slow
def test_first_layer_regions_are_those_of_a_generic_arrangement():
    """n_1 central hyperplanes in general position (Gaussian weights: probability 1) cut
    R^(n_0) into 2 sum_(k < n_0) C(n_1 - 1, k) cones (exact, no statistics); and deeper
    layers only split regions."""
    from math import comb
    for n0, widths in ((3, "7,5"), (4, "6,3")):
        cfg = build(n0, widths, seed=14)
        n1 = cfg.widths[0]
        _, _, exact, regions = run(cfg, 0, 3)
        assert exact.all()
        assert np.all(regions[:, 0] == 2 * sum(comb(n1 - 1, k) for k in range(n0)))
        assert np.all(regions[:, 1] >= regions[:, 0])


@pytest.mark.slow
def test_the_minimum_is_zero_on_a_null_space():
    """n_1 = 2 < n_0: W_1 has a null space, where every rho_l is 0: the exact min is 0, found
    as rho_l at a computed null vector (0 up to rounding: below 1e-12 of the max)."""
    cfg = build(3, "2,5,4", seed=8)
    smin, smax, exact, _ = run(cfg, 0, 4)
    assert exact.all()
    assert np.all(smin >= 0.0) and np.all(smin <= 1e-12 * smax)
    assert np.all(smax > 0.0)


@pytest.mark.slow
def test_beyond_max_regions_nothing_is_reported():
    cfg = build(3, "6,6,6", seed=9)
    smin, smax, exact, regions = run(cfg, 0, 4)
    assert exact.all() and np.all(regions > 0)
    cut = int(regions[:, 1].min())                # below every trial's count at layer 2
    a, b, e, r = run(cfg, 0, 4, max_regions=cut - 1)
    assert not e[:, 1:].any() and e[:, 0].all()
    assert np.isnan(a[:, 1:]).all() and np.isnan(b[:, 1:]).all()
    assert np.all(r[:, 1:] == 0)
    assert np.array_equal(a[:, 0], smin[:, 0]) and np.array_equal(b[:, 0], smax[:, 0])
    assert np.array_equal(r[:, 0], regions[:, 0])


@pytest.mark.slow
def test_deterministic_across_calls_and_threads():
    cfg = build(4, "5,4", seed=10)
    base = run(cfg, 0, 6)
    parts = [run(cfg, 0, 2), run(cfg, 2, 4)]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run(cfg, 0, 6)
    finally:
        numba.set_num_threads(threads)
    for k in range(4):
        assert np.array_equal(base[k], np.concatenate([p[k] for p in parts]), equal_nan=True)
        assert np.array_equal(base[k], single[k], equal_nan=True)


def test_bad_arguments():
    L = 2
    ok = dict(smin=np.empty((2, L)), smax=np.empty((2, L)), exact=np.zeros((2, L), dtype=bool))
    for n0 in (2, sup_regions.MAX_DIM + 1):
        plan = common.make_plan(build(n0, "4,4"))
        with pytest.raises(ValueError, match="input dimension"):
            sup_regions.extremes(plan, 0, 2, **ok)
    plan = common.make_plan(build(3, "4,4"))
    with pytest.raises(ValueError, match="smin"):
        sup_regions.extremes(plan, 0, 2, np.empty((2, 3)), ok["smax"], ok["exact"])
    with pytest.raises(ValueError, match="exact"):
        sup_regions.extremes(plan, 0, 2, ok["smin"], ok["smax"], np.zeros((2, L)))
    with pytest.raises(ValueError, match="regions"):
        sup_regions.extremes(plan, 0, 2, **ok, regions=np.zeros((2, L)))
    with pytest.raises(ValueError, match="max_regions"):
        sup_regions.extremes(plan, 0, 2, **ok, max_regions=0)
    cfg, _ = config.build(trials=10, input_dim=3, widths="4,4", init="orthogonal", data="sphere")
    with pytest.raises(ValueError):
        sup_regions.extremes(common.make_plan(cfg), 0, 2, **ok)
