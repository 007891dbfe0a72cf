"""Certified bounds on the extremes of rho_l over the sphere (mcinit.kernels.sup_bound).

Everything checked here is deterministic, no statistics: the bounds are certificates, so a
single violation is a bug, whatever the network.

- soundness against brute force: upper >= rho_l and lower <= rho_l at every point of a dense
  sample of the unit sphere (a grid of the circle, a Fibonacci sphere, random points),
  computed by the independent NumPy network (tests/reference.py); the NumPy values carry their
  own rounding (~1e-15 relative), far inside the bounds' margin (>= 1e-9);
- the found extremes only move outward, lie within the bounds, and are attained: in 2-D no
  real input can beat a circle grid of spacing d by more than the Lipschitz constant
  prod_k ||W_k||_2 of sqrt(rho_l) times d;
- the gap closes in 2-D with a generous budget, against a fine circle scan;
- the relaxation: the propagated unit bounds contain the unit values at random points of
  random boxes;
- determinism across thread counts and call splits; skip leaves layers untouched.
"""

import math

import numba
import numpy as np
import pytest

from mcinit import config
from mcinit.kernels import common, sup, sup_bound

import reference


def plan_of(input_dim, widths, seed=1, **kw):
    cfg, _ = config.build(trials=10, input_dim=input_dim, widths=widths, data="sphere", samples=8,
                          seed=seed, **kw)
    return cfg, common.make_plan(cfg)


def run(plan, first, count, boxes, gap, found=None, skip=None):
    L = len(plan.widths) - 1
    if found is None:
        fmin = np.full((count, L), np.inf)
        fmax = np.full((count, L), -np.inf)
    else:
        fmin, fmax = (a.copy() for a in found)
    lower = np.full((count, L), np.nan)
    upper = np.full((count, L), np.nan)
    used = np.full((count, L), -7, dtype=np.int64)
    sup_bound.bounds(plan, first, count, fmin, fmax, lower, upper, boxes, gap, skip=skip, used=used)
    return dict(fmin=fmin, fmax=fmax, lower=lower, upper=upper, used=used)


def circle(n):
    t = np.arange(n) * (2 * np.pi / n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def fibonacci(n):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = i * np.pi * (3 - np.sqrt(5))
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sphere_points(n0, n=100_000, seed=0):
    if n0 == 2:
        return circle(200_000)
    if n0 == 3:
        return fibonacci(n)
    X = np.random.default_rng(seed).standard_normal((n, n0))
    X = np.concatenate([X, np.eye(n0), -np.eye(n0)])
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def rhos(Ws, X):
    """rho_l at the unit rows of X, (N, L), by the NumPy network."""
    out = []
    H = X
    for W in Ws:
        H = np.maximum(H @ W.T, 0.0)
        out.append((H * H).sum(axis=1))
    return np.stack(out, axis=1)


def lipschitz(Ws):
    """prod_(k<=l) ||W_k||_2, per layer: a Lipschitz constant of sqrt(rho_l) on the sphere."""
    return np.cumprod([np.linalg.norm(W, 2) for W in Ws])


def check_sound(cfg, plan, first, count, r, X):
    for j in range(count):
        Ws, _ = reference.weights(cfg, first + j)
        R = rhos(Ws, X)
        bmax = R.max(axis=0)
        bmin = R.min(axis=0)
        tol = 1e-12 * bmax            # the NumPy network's own rounding
        assert np.all(r["upper"][j] >= bmax - tol), (j, r["upper"][j], bmax)
        assert np.all(r["lower"][j] <= bmin + tol), (j, r["lower"][j], bmin)
        assert np.all(r["lower"][j] >= 0.0)
        # the found values are real inputs' values: inside the certified bounds
        assert np.all(r["fmax"][j] <= r["upper"][j])
        assert np.all(r["fmin"][j] >= r["lower"][j])
        if X.shape[1] == 2:
            # and no higher (lower) than the grid allows: sqrt(rho) is Lipschitz
            d = np.pi / X.shape[0] * lipschitz(Ws) * (1 + 1e-9) + 1e-12
            assert np.all(np.sqrt(r["fmax"][j]) <= np.sqrt(bmax) + d)
            assert np.all(np.sqrt(r["fmin"][j]) >= np.sqrt(bmin) - d)


@pytest.mark.slow       # compiles the branch-and-bound (about 30 s cold): the default suite leaves it to -m slow
def test_bounds_contain_a_circle_scan_and_the_fallback_is_the_spectral_product():
    """The default-suite test: one tiny 2-D network, 3 trials, both the branch-and-bound and
    (fewer than 2 n_0 boxes) the spectral fallback."""
    cfg, plan = plan_of(2, "4,5,3", seed=7)
    X = circle(20_000)
    r = run(plan, 0, 3, 64, 1e-3)
    check_sound(cfg, plan, 0, 3, r, X)
    assert np.all((r["used"] >= 4) & (r["used"] <= 128))
    f = run(plan, 0, 3, 3, 1e-3)
    for j in range(3):
        Ws, _ = reference.weights(cfg, j)
        spec = np.cumprod([np.linalg.norm(W, 2) ** 2 for W in Ws])
        m = np.array([sup_bound.margin(plan.widths, l) for l in range(1, 4)])
        assert np.allclose(f["upper"][j], spec * (1 + m), rtol=1e-12, atol=0)
    assert np.all(f["lower"] == 0.0) and np.all(f["used"] == 0)
    assert np.all(np.isinf(f["fmax"]))         # nothing evaluated
    assert np.all(r["upper"] <= f["upper"])     # the boxes' bound never above the fallback


def test_bad_arguments():
    cfg, plan = plan_of(3, "4,4")
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="shape"):
        sup_bound.bounds(plan, 0, 2, z, z, z, np.zeros((2, 3)), 16, 1e-3)
    with pytest.raises(ValueError, match="non-negative"):
        sup_bound.bounds(plan, 0, 2, z, z, z, z, -1, 1e-3)
    with pytest.raises(ValueError, match="non-negative"):
        sup_bound.bounds(plan, 0, 2, z, z, z, z, 16, float("nan"))
    with pytest.raises(ValueError, match="skip"):
        sup_bound.bounds(plan, 0, 2, z, z, z, z, 16, 1e-3, skip=np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="used"):
        sup_bound.bounds(plan, 0, 2, z, z, z, z, 16, 1e-3, used=z)
    _, tanh = plan_of(3, "4,4", activation="tanh")
    with pytest.raises(ValueError, match="plain ReLU"):
        sup_bound.bounds(tanh, 0, 2, z, z, z, z, 16, 1e-3)


SOUND = [
    (2, "3", dict()),
    (2, "5,4,6,3", dict(init="glorot", dist="uniform")),
    (2, "6,6", dict(init="wn")),
    (3, "5,4", dict()),
    (3, "4,7,3", dict(init="wn")),
    (3, "6", dict(dist="uniform")),
    (4, "6,5,4", dict()),
    (4, "5,5,5,5", dict(init="he-in", dist="uniform")),
    (5, "7,6", dict(init="wn")),
    (5, "4,6,5", dict()),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(SOUND)))
def test_bounds_contain_every_brute_force_value(case):
    """n_0 = 2..5, depths 1..4, the three weight distributions, two seeds, 4 trials each:
    the bounds contain every rho_l of a dense sample, and the found extremes (started from the
    sample's first 50 points: real values) only move outward."""
    n0, widths, kw = SOUND[case]
    X = sphere_points(n0)
    for seed in (case, 2 ** 40 + case):
        cfg, plan = plan_of(n0, widths, seed=seed, **kw)
        first, count = 3, 4
        start = np.stack([rhos(reference.weights(cfg, first + j)[0], X[:50])
                          for j in range(count)])
        found = (start.min(axis=1), start.max(axis=1))
        for boxes, gap in ((2 * n0, 0.0), (40, 1e-2), (300, 1e-4)):
            r = run(plan, first, count, boxes, gap, found=found)
            check_sound(cfg, plan, first, count, r, X)
            assert np.all(r["fmax"] >= found[1]) and np.all(r["fmin"] <= found[0])
            assert np.all(r["used"] <= 2 * boxes)


@pytest.mark.slow
@pytest.mark.parametrize("widths", ["6,5,7", "8,8,8,8"])
def test_the_gap_closes_on_the_circle(widths):
    """n_0 = 2, a generous budget: upper within (1 + gap) of a fine circle scan's max (up to the
    scan's spacing times the Lipschitz constant, and the margin), lower likewise of its min."""
    gap = 1e-4
    N = 1_000_000
    X = circle(N)
    for seed in (11, 12):
        cfg, plan = plan_of(2, widths, seed=seed)
        r = run(plan, 0, 4, 1 << 14, gap)
        assert np.all(r["used"] < 2 * (1 << 14))          # stopped by the gap
        for j in range(4):
            Ws, _ = reference.weights(cfg, j)
            R = rhos(Ws, X)
            d = np.pi / N * lipschitz(Ws)
            m = np.array([sup_bound.margin(plan.widths, l) for l in range(1, len(Ws) + 1)])
            smax = (np.sqrt(R.max(axis=0)) + d) ** 2
            smin = np.maximum(np.sqrt(R.min(axis=0)) - d, 0.0) ** 2
            assert np.all(r["upper"][j] <= (1 + gap) * (1 + m) * smax)
            assert np.all(r["lower"][j] >= smin / (1 + gap) * (1 - m) - 1e-300)
            assert np.all(r["upper"][j] >= R.max(axis=0)) and np.all(r["lower"][j] <= R.min(axis=0))


@pytest.mark.slow
@pytest.mark.parametrize("n0,widths,kw", [(2, "5,4,6", {}), (4, "6,5,7", dict(init="wn")),
                                          (7, "9,8", dict(dist="uniform"))])
def test_the_relaxation_contains_the_unit_values(n0, widths, kw):
    """Per unit of h^l, 0 <= lo_i <= h_i(y) <= hi_i at 200 random points of each of 30 random
    boxes (on faces and inside the cube), and the sums the box bound uses are the units'."""
    cfg, plan = plan_of(n0, widths, seed=5, **kw)
    g = np.random.default_rng(1)
    L = len(plan.widths) - 1
    nmax = int(plan.widths.max())
    offs = sup.weight_offsets(plan.widths)
    wbuf = np.empty(offs[-1])
    sup.draw_weights(plan.k0, plan.k1, 2, plan.widths, plan.var, plan.gain, plan.dist, offs, wbuf)
    Ws, _ = reference.weights(cfg, 2)
    for l in range(1, L + 1):      # the same network (weight normalisation rounds its own way)
        assert np.allclose(wbuf[offs[l]:offs[l + 1]].reshape(Ws[l - 1].shape), Ws[l - 1],
                           rtol=1e-14, atol=0)
    scratch = [np.empty((nmax, n0 + 1)) for _ in range(4)] + [np.empty(nmax) for _ in range(6)]
    for b in range(30):
        a, c = np.sort(g.uniform(-1, 1, (2, n0)) * g.uniform(0.01, 1), axis=0)
        if b % 2 == 0:
            j = g.integers(n0)
            a[j] = c[j] = g.choice([-1.0, 1.0])
        Y = a + (c - a) * g.uniform(0, 1, (200, n0))
        Y = np.concatenate([Y, [a, c]])
        H = Y
        for l in range(1, L + 1):
            H = np.maximum(H @ Ws[l - 1].T, 0.0)
            shi, slo = sup_bound._box_bounds(wbuf, offs, plan.widths, l, a, c, *scratch)
            lo = scratch[8][:plan.widths[l]]
            hi = scratch[9][:plan.widths[l]]
            tol = 1e-12 * (1 + np.abs(H).max())
            assert np.all(lo >= 0) and np.all(lo <= hi)
            assert np.all(H >= lo - tol) and np.all(H <= hi + tol), (b, l)
            assert math.isclose(shi, float((hi * hi).sum()), rel_tol=1e-12)
            assert math.isclose(slo, float((lo * lo).sum()), rel_tol=1e-12, abs_tol=1e-300)


@pytest.mark.slow
def test_deterministic_across_threads_and_call_splits():
    cfg, plan = plan_of(3, "6,5,4", seed=9)
    whole = run(plan, 10, 6, 200, 1e-5)
    parts = [run(plan, 10, 2, 200, 1e-5), run(plan, 12, 4, 200, 1e-5)]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run(plan, 10, 6, 200, 1e-5)
    finally:
        numba.set_num_threads(threads)
    for k in whole:
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts])), k
        assert np.array_equal(whole[k], one[k]), k


@pytest.mark.slow
def test_skip_leaves_layers_untouched():
    """Skipped layers keep their bounds, found values and box counts; the others' bounds and
    counts are those of the run without skip (a layer's search sees only its own found values)."""
    cfg, plan = plan_of(3, "6,5,4", seed=9)
    L = 3
    skip = np.zeros((4, L), dtype=bool)
    skip[0, 1] = skip[2, 0] = skip[3, :] = True
    found = (np.full((4, L), 0.5), np.full((4, L), 0.6))
    full = run(plan, 0, 4, 120, 1e-4, found=found)
    part = run(plan, 0, 4, 120, 1e-4, found=found, skip=skip)
    assert np.all(np.isnan(part["upper"][skip])) and np.all(np.isnan(part["lower"][skip]))
    assert np.all(part["used"][skip] == -7)
    assert np.all(part["fmin"][skip] == 0.5) and np.all(part["fmax"][skip] == 0.6)
    for k in ("upper", "lower", "used"):
        assert np.array_equal(part[k][~skip], full[k][~skip]), k


def test_widen_and_memory():
    """widen: exact extremes moved outward by the deepest layer's margin (the largest);
    memory: the open boxes' words of a work unit."""
    widths = np.array([3, 5, 4], dtype=np.int64)
    m = [sup_bound.margin(widths, l) for l in (1, 2)]
    assert 1e-9 < m[0] < m[1] < 2e-9
    lo, hi = sup_bound.widen(np.array([0.5, 0.0]), np.array([2.0, 3.0]), widths)
    assert np.array_equal(lo, np.array([0.5, 0.0]) * (1 - m[1]))
    assert np.array_equal(hi, np.array([2.0, 3.0]) * (1 + m[1]))
    assert sup_bound.memory(widths, 256) == (6 + 128 + 1) * 8 * 8
