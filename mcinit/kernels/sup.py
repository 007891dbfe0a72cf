"""The sup kernel: the forward property over all inputs (the paper's third result).

For one trial (one network: the weights the dense kernel draws) and every layer
l it estimates, from below,

    dev_l = sup over unit x of |sqrt(rho_l(x)) - 1|,   rho_l(x) = ||h^l(x)||^2 / ||x||^2,

and records the min and max of rho_l over every input it evaluated
(``fill(plan, first, count, fwd_min, fwd_max, bwd_min, bwd_max, sup_dev, dead,
inputs, starts, steps)``).

Random inputs.  ``inputs`` points uniform on the unit sphere of R^(n_0), row x of
(layer 0, STREAM_DATA) as common.draw_inputs draws them: the ``sphere`` dataset of
a normal run with the same seed.  The dense kernel runs on them (``dense.fill``
with data = sphere, samples = inputs), so their rho_l and gamma_l are the dense
kernel's numbers bit for bit; bwd_min / bwd_max and the dense dead flag are over
these inputs only.

Local search, per layer l and direction, from each of the ``starts`` random
inputs with the largest rho_l (upward) and the ``starts`` with the smallest
(downward).  The search holds the trial's weights W_1..W_L (``dense.weight_row``,
the numbers the dense kernel draws) and evaluates layers 1..l only.  Inside an
activation region the network is linear, h^l(x) = A x, so on the sphere rho_l is
the quadratic form x^T M x, M = A^T A, whose half gradient g = M x = J_l(x)^T h^l(x)
is one backward pass of h^l through the ReLU masks at x.  One iteration:

- model: u = the unit tangent part of g; A u by one masked linear forward pass.
  On the great circle y(t) = cos t x + sin t u the region's quadratic is the 2x2
  form [[x'Mx, x'Mu], [x'Mu, u'Mu]]; its maximiser (upward) or minimiser
  (downward) t* is exact (a Rayleigh-Ritz step on span{x, g}; the power step
  x <- normalize(M x) is the shorter step t = atan(x'Mu / x'Mx) on the same
  circle, and has no downward counterpart);
- region boundary: while no mask changes, every preactivation of layers 1..l is
  cos t a(x) + sin t q(u) on that circle, so the first t_b at which a unit
  changes sign is known exactly, and every t between 0 and min(t*, t_b)
  improves on x;
- step: the long step t* first (it crosses many regions at once, which is what
  makes the search fast at realistic widths); if it is no improvement, half of
  it, and then the step just past the boundary, t_b (1 + 1e-7), which improves
  by continuity: so every model computed yields an improvement unless the
  point is converged;
- kinks: from layer 2 on, rho_l has kinks on the surfaces {a^k_i(x) = 0} that
  bend back (concave ones bound maxima, convex ones minima), where steepest
  ascent only zig-zags.  When the step just past a boundary is followed by a
  model pointing straight back across the same unit, the search follows that
  kink: the normal grad a^k_i(x) (one backward pass from unit i of layer k)
  is projected out of the search direction, so the search moves on the kink
  surface (a great circle within the region, on which a^k_i keeps its value);
  kinks are released when the steepest direction points back into the current
  region and dropped with the region.  Upward, up to n_0 - 2 kinks are followed
  at once; downward one, a further kink counting as convergence (perturbing
  sooner measured better for minima at n_0 = 16, widths 64).  In 3-D this makes
  the search converge to kink maxima to ~1e-10 and minima to ~1e-5 of the
  maximum, instead of ~1e-4 without it;
- converged (stationary direction, a kink, or no improvement from an exact
  model): a random perturbation of the search's best point, by an angle
  log-uniform on [0.01, pi] in a uniformly random tangent direction (n_0 + 1
  normals of row ``(k << 12) | (s << 1) | d`` of (trial, layer l, STREAM_SUP):
  s the start, d = 0 up / 1 down, k the iteration), and the search goes on from
  there (basin hopping: the best point is kept).  A search's trajectory does
  not depend on ``steps`` or ``starts``: more steps extend it, more starts add
  searches, so more work never reports less extreme values.  Angles up to pi reach the
  whole sphere, which matters in low dimension where the random inputs can
  leave a third of the circle unvisited.

``steps`` counts evaluated points: every iteration evaluates one new point (one
forward pass of layers 1..l); a model costs a backward and a masked forward pass
more, a followed kink another backward pass.  Every evaluated point, random or
searched, updates fwd_min / fwd_max of every layer it reached, so they are a min
and max over actual inputs and never less extreme than the random inputs';
sup_dev[t, l] = max(|sqrt(fwd_max) - 1|, |sqrt(fwd_min) - 1|).  ``dead`` is the
dense flag over the random inputs, or some evaluated point with some rho_k = 0.

Random-number streams: STREAM_WEIGHTS, STREAM_DATA and STREAM_TARGET as the
dense kernel; STREAM_SUP = 6 for the perturbations.
"""

import copy
import math

import numpy as np
from numba import njit, prange

from .. import rng
from . import dense
from .common import DATA_SPHERE, dot, draw_inputs, n_chunks

__all__ = ["fill", "weight_offsets", "draw_weights", "STREAM_SUP", "PARAMS", "MAX_STARTS", "MAX_STEPS", "search_cost"]

#: the search's perturbations (the stream's number lives in rng with the others)
STREAM_SUP = rng.STREAM_SUP
#: limits of that row layout
MAX_STARTS = 1 << 11
MAX_STEPS = 1 << 20

# The search's tuning constants, one array for the compiled code (index: meaning):
#   P_KINKS_UP, P_KINKS_DOWN  most kinks followed at once upward / downward
#            (at most n_0 - 2 in any case; -1: n_0 - 2)
#   P_POWER  first upward step: 0 the Rayleigh-Ritz maximiser, 1 the power step
#   P_HALVE  halvings of a rejected long step before the step past the boundary
#   P_AMIN, P_AMAX  range of the log-uniform perturbation angle (radians)
# The defaults were chosen by measurement (module docstring).
P_KINKS_UP, P_KINKS_DOWN, P_POWER, P_HALVE, P_AMIN, P_AMAX = 0, 1, 2, 3, 4, 5
PARAMS = np.array([-1.0, 1.0, 0.0, 2.0, 0.01, math.pi])

_HALF_PI = 0.5 * math.pi
_OVER = 1e-7          # relative overshoot past a region boundary
_STATIONARY = 1e-13   # |tangent part of g| / |g| below this: a stationary point


@njit(cache=True)
def weight_offsets(widths):
    """offs (L+2,) int64: W_l (n_l x n_(l-1), row-major) starts at offs[l] of a trial's weight
    buffer, l = 1..L; offs[L+1] is the buffer's length (offs[0] = 0 is unused)."""
    L = widths.shape[0] - 1
    offs = np.zeros(L + 2, dtype=np.int64)
    for l in range(2, L + 2):
        offs[l] = offs[l - 1] + widths[l - 1] * widths[l - 2]
    return offs


@njit(cache=True)
def draw_weights(k0, k1, trial, widths, var, gain, dist, offs, wbuf):
    """W_1..W_L of one trial into wbuf (layout weight_offsets), row by row as the dense kernel
    draws them (dense.weight_row): the network every method of the forward property over all
    inputs works on."""
    L = widths.shape[0] - 1
    for l in range(1, L + 1):
        n_in = widths[l - 1]
        for i in range(widths[l]):
            dense.weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1],
                             wbuf[offs[l] + i * n_in: offs[l] + (i + 1) * n_in])


@njit(cache=True)
def _forward(wbuf, offs, widths, l, A, H, r):
    """H[0, :n_0] holds the input; A[k], H[k] = pre- and post-ReLU of layers k = 1..l,
    r[k] = rho_k = ||h^k||^2 / ||x||^2 (as common.write_ratios computes it)."""
    x2 = dot(H[0], H[0], widths[0])
    for k in range(1, l + 1):
        n_in = widths[k - 1]
        n_out = widths[k]
        off = offs[k]
        hin = H[k - 1]
        for i in range(n_out):
            a = dot(wbuf[off + i * n_in: off + (i + 1) * n_in], hin, n_in)
            A[k, i] = a
            H[k, i] = a if a > 0.0 else 0.0
        r[k] = dot(H[k], H[k], n_out) / x2


@njit(cache=True)
def _backward(wbuf, offs, widths, k, H, D0, D1, g):
    """g = J^T D0[:n_k]: the input-space gradient of D0 . a^k (D0 given at layer k's
    preactivations), back through the masks of H (layers k-1 .. 1).  D0, D1 scratch."""
    cur = D0
    nxt = D1
    for j in range(k, 0, -1):
        n_in = widths[j - 1]
        n_out = widths[j]
        off = offs[j]
        for c in range(n_in):
            nxt[c] = 0.0
        for i in range(n_out):
            d = cur[i]
            if d != 0.0:
                base = off + i * n_in
                for c in range(n_in):
                    nxt[c] += wbuf[base + c] * d
        if j > 1:
            for c in range(n_in):
                if H[j - 1, c] <= 0.0:
                    nxt[c] = 0.0
        cur, nxt = nxt, cur
    for c in range(widths[0]):
        g[c] = cur[c]


@njit(cache=True)
def _tangent(wbuf, offs, widths, l, A, T, Q):
    """The region's linear map applied to T[0, :n_0]: Q[k] = W_k T[k-1] (preactivations),
    T[k] = 1[A[k] > 0] Q[k], k = 1..l."""
    for k in range(1, l + 1):
        n_in = widths[k - 1]
        n_out = widths[k]
        off = offs[k]
        tin = T[k - 1]
        for i in range(n_out):
            q = dot(wbuf[off + i * n_in: off + (i + 1) * n_in], tin, n_in)
            Q[k, i] = q
            T[k, i] = q if A[k, i] > 0.0 else 0.0


@njit(cache=True)
def _first_boundary(widths, l, A, Q, sgn, where):
    """Smallest t in (0, pi/2) at which some preactivation cos t A[k,i] + sgn sin t Q[k,i]
    of layers 1..l changes sign (pi/2 if none); its unit into where = (k, i)."""
    tb = _HALF_PI
    where[0] = 0
    where[1] = 0
    for k in range(1, l + 1):
        for i in range(widths[k]):
            a = A[k, i]
            q = sgn * Q[k, i]
            if (a > 0.0 and q < 0.0) or (a <= 0.0 and q > 0.0):
                t = math.atan2(abs(a), abs(q))
                if t < tb:
                    tb = t
                    where[0] = k
                    where[1] = i
    return tb


@njit(cache=True)
def _record(r, l, fmin, fmax):
    """Fold rho_1..rho_l of one point into the running min / max; True if some rho is 0."""
    dead = False
    for k in range(1, l + 1):
        v = r[k]
        if v < fmin[k - 1]:
            fmin[k - 1] = v
        if v > fmax[k - 1]:
            fmax[k - 1] = v
        if v == 0.0:
            dead = True
    return dead


@njit(cache=True, inline="always")
def _normalize(v, n):
    s = math.sqrt(dot(v, v, n))
    if s > 0.0:
        inv = 1.0 / s
        for j in range(n):
            v[j] *= inv
    return s


@njit(cache=True)
def _regram(n0, nact, Rn, Nrm, x):
    """Nrm[:nact] = the raw kink normals Rn[:nact] made tangent at x and orthonormal."""
    for m in range(nact):
        for j in range(n0):
            Nrm[m, j] = Rn[m, j]
        p = dot(Nrm[m], x, n0)
        for j in range(n0):
            Nrm[m, j] -= p * x[j]
        for q in range(m):
            p = dot(Nrm[m], Nrm[q], n0)
            for j in range(n0):
                Nrm[m, j] -= p * Nrm[q, j]
        _normalize(Nrm[m], n0)


@njit(cache=True)
def _perturb(wbuf, offs, widths, l, xb, amin, amax, k0, k1, c2, c3, row, z, Ac, Hc, rc):
    """Hc[0] = cos(alpha) xb + sin(alpha) v and its forward pass: v a uniformly random
    unit tangent at xb, alpha log-uniform on [amin, amax], from the n_0 + 1 normals of
    row ``row`` of the perturbation stream (the last one gives alpha)."""
    n0 = widths[0]
    rng.fill_normal_row(k0, k1, c2, c3, row, 1.0, z, n0 + 1)
    alpha = amin * math.exp(0.5 * math.erfc(-z[n0] / math.sqrt(2.0)) * math.log(amax / amin))
    p = dot(z, xb, n0)
    for j in range(n0):
        z[j] -= p * xb[j]
    if _normalize(z, n0) == 0.0:
        z[0] = 1.0
    ca = math.cos(alpha)
    sa = math.sin(alpha)
    for j in range(n0):
        Hc[0, j] = ca * xb[j] + sa * z[j]
    _normalize(Hc[0], n0)
    _forward(wbuf, offs, widths, l, Ac, Hc, rc)


@njit(cache=True, inline="always")
def _better(up, a, b):
    return a > b if up else a < b


@njit(cache=True)
def _search(wbuf, offs, widths, l, up, x0, steps, par, k0, k1, c2, c3, rowlow,
            Ac, Hc, At, Ht, Q, T, D0, D1, g, u, z, xb, Nrm, Rn, side, actk,
            where, rc, rt, fmin, fmax):
    """Local search for rho_l from the unit vector x0, upward (maximise) or downward,
    ``steps`` evaluated points; every point is folded into fmin / fmax.  Returns True
    if some evaluated point has some rho_k = 0."""
    n0 = widths[0]
    maxact = int(par[P_KINKS_UP] if up else par[P_KINKS_DOWN])
    if maxact < 0 or maxact > n0 - 2:
        maxact = max(n0 - 2, 0)
    power = up and par[P_POWER] > 0.0
    maxh = int(par[P_HALVE])
    for j in range(n0):
        Hc[0, j] = x0[j]
        xb[j] = x0[j]
    _forward(wbuf, offs, widths, l, Ac, Hc, rc)
    dead = _record(rc, l, fmin, fmax)
    f = rc[l]             # the current point's rho_l
    fb = f                # the best of this search, at xb
    need = True           # the model at the current point is still to be computed
    jump = False          # converged: perturb next
    crossing = False      # the pending step goes just past the region boundary
    theta = 0.0           # the pending step (radians, signed, along u)
    tb = 0.0              # distance to the region boundary along u
    sgn = 1.0
    bk = 0                # the unit (layer bk, index bi) at that boundary
    bi = 0
    nh = 0                # halvings of the pending step
    nact = 0              # kink units followed: raw normals Rn, orthonormal Nrm
    lastk = -1            # the unit crossed by the last accepted boundary step
    lasti = -1
    free = 0              # models computed since the last evaluation
    it = 0
    while it < steps:
        if f == 0.0 and not up:
            break                                   # the infimum 0 is reached
        if need and not jump:
            need = False
            free += 1
            if free > n0 + 3:                       # no evaluation for too long
                jump = True
                continue
            # g = J^T h^l: half the gradient of rho_l at x (|x| = 1)
            for i in range(widths[l]):
                D0[i] = Hc[l, i]
            _backward(wbuf, offs, widths, l, Hc, D0, D1, g)
            gn = math.sqrt(dot(g, g, n0))
            if gn == 0.0:
                jump = True
                continue
            xg = dot(Hc[0], g, n0)
            for j in range(n0):
                u[j] = g[j] - xg * Hc[0, j]
            if nact > 0:
                # leave the kink surfaces if the steepest direction points into
                # the current region (else project it onto them)
                sd = 1.0 if up else -1.0
                for m in range(nact):
                    if sd * side[m] * dot(u, Rn[m], n0) > 0.0:
                        nact = 0
                        break
                for m in range(nact):
                    p = dot(u, Nrm[m], n0)
                    for j in range(n0):
                        u[j] -= p * Nrm[m, j]
            if _normalize(u, n0) <= _STATIONARY * gn:
                jump = True
                continue
            # the region's quadratic on the great circle cos t x + sin t u
            for j in range(n0):
                T[0, j] = u[j]
            _tangent(wbuf, offs, widths, l, Ac, T, Q)
            a = dot(Hc[l], Hc[l], widths[l]) / dot(Hc[0], Hc[0], n0)
            b = dot(Hc[l], T[l], widths[l])
            d = dot(T[l], T[l], widths[l])
            phi = 0.5 * math.atan2(2.0 * b, a - d)  # its maximiser, in [0, pi/2]
            if up:
                ts = phi
            else:
                ts = phi - _HALF_PI if phi > 0.0 else phi + _HALF_PI
            sgn = 1.0 if ts >= 0.0 else -1.0
            tb = _first_boundary(widths, l, Ac, Q, sgn, where)
            bk = where[0]
            bi = where[1]
            if abs(ts) > tb and tb < 1e-4 * abs(ts) and bk == lastk and bi == lasti:
                # the kink just crossed bends back: follow it (upward), or stop here
                if nact >= maxact:
                    jump = True
                    continue
                for i in range(widths[bk]):
                    D0[i] = 0.0
                D0[bi] = 1.0
                _backward(wbuf, offs, widths, bk, Hc, D0, D1, z)   # grad of a^bk_bi
                for j in range(n0):
                    Rn[nact, j] = z[j]
                side[nact] = 1.0 if Ac[bk, bi] > 0.0 else -1.0
                actk[nact] = bk
                nact += 1
                _regram(n0, nact, Rn, Nrm, Hc[0])
                lastk = -1
                need = True
                continue
            theta = math.atan2(b, a) if power else ts
            crossing = False
            nh = 0
            if abs(theta) > tb and maxh == 0:
                theta = sgn * tb * (1.0 + _OVER)
                crossing = True
        if jump:
            # converged: a random perturbation of the search's best point
            jump = False
            nact = 0
            lastk = -1
            _perturb(wbuf, offs, widths, l, xb, par[P_AMIN], par[P_AMAX], k0, k1, c2, c3,
                     (it << 12) | rowlow, z, Ac, Hc, rc)
            it += 1
            free = 0
            if _record(rc, l, fmin, fmax):
                dead = True
            f = rc[l]
            if _better(up, f, fb):
                fb = f
                for j in range(n0):
                    xb[j] = Hc[0, j]
            need = True
            continue
        # evaluate the point at angle theta on the great circle
        ct = math.cos(theta)
        st = math.sin(theta)
        for j in range(n0):
            Ht[0, j] = ct * Hc[0, j] + st * u[j]
        _normalize(Ht[0], n0)
        _forward(wbuf, offs, widths, l, At, Ht, rt)
        it += 1
        free = 0
        if _record(rt, l, fmin, fmax):
            dead = True
        ft = rt[l]
        if _better(up, ft, f):
            Ac, At = At, Ac
            Hc, Ht = Ht, Hc
            rc, rt = rt, rc
            f = ft
            if _better(up, f, fb):
                fb = f
                for j in range(n0):
                    xb[j] = Hc[0, j]
            if abs(theta) > tb:
                # a new region: kink normals of units above the first changed
                # layer change with it (all of them after a long step)
                keep = 0
                if crossing:
                    for m in range(nact):
                        if actk[m] <= bk:
                            actk[keep] = actk[m]
                            side[keep] = side[m]
                            for j in range(n0):
                                Rn[keep, j] = Rn[m, j]
                            keep += 1
                nact = keep
                _regram(n0, nact, Rn, Nrm, Hc[0])
                lastk = bk if crossing else -1
                lasti = bi
            need = True
        elif crossing or abs(theta) <= tb:
            jump = True                             # the model was exact: converged
        else:
            nh += 1                                 # back off towards the boundary
            theta *= 0.5
            if abs(theta) <= tb or nh >= maxh:
                theta = sgn * tb * (1.0 + _OVER)    # past the boundary: an improvement
                crossing = True
    return dead


@njit(cache=True)
def _trial(trial, k0, k1, widths, var, gain, dist, N, starts, steps, par, offs, wbuf, X, X0,
           fwdR, Ac, Hc, At, Ht, Q, T, D0, D1, g, u, z, xb, Nrm, Rn, side, actk, where,
           rc, rt, fmin, fmax):
    """The searches of one trial (fmin / fmax already hold the random inputs' extremes)."""
    L = widths.shape[0] - 1
    draw_weights(k0, k1, trial, widths, var, gain, dist, offs, wbuf)
    draw_inputs(k0, k1, trial, np.int64(DATA_SPHERE), X0, N, widths[0], X)   # int64: the dense kernel's version
    dead = False
    S = min(starts, N)
    for l in range(1, L + 1):
        order = np.argsort(fwdR[:, l - 1], kind="mergesort")
        c2, c3 = rng.counter_words(trial, l, STREAM_SUP)
        for s in range(S):
            for direction in range(2):
                up = direction == 0
                x = order[N - 1 - s] if up else order[s]
                if _search(wbuf, offs, widths, l, up, X[x], steps, par, k0, k1, c2, c3,
                           (s << 1) | direction, Ac, Hc, At, Ht, Q, T, D0, D1, g, u,
                           z, xb, Nrm, Rn, side, actk, where, rc, rt, fmin, fmax):
                    dead = True
    return dead


@njit(cache=True, parallel=True, nogil=True)
def _batch(first, count, nchunks, k0, k1, widths, var, gain, dist, N, starts, steps, par,
           fwdR, bwdR, dense_dead, fmin, fmax, bmin, bmax, sdev, dead):
    L = widths.shape[0] - 1
    n0 = widths[0]
    nmax = 0
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
    offs = weight_offsets(widths)
    nw = offs[L + 1]
    search = steps > 0 and starts > 0
    for c in prange(nchunks):
        lo = (count * c) // nchunks
        hi = (count * (c + 1)) // nchunks
        wbuf = np.empty(nw if search else 0)
        X = np.empty((N, n0))
        X0 = np.empty((0, n0))
        Ac = np.zeros((L + 1, nmax))
        Hc = np.zeros((L + 1, nmax))
        At = np.zeros((L + 1, nmax))
        Ht = np.zeros((L + 1, nmax))
        Q = np.zeros((L + 1, nmax))
        T = np.zeros((L + 1, nmax))
        D0 = np.empty(nmax)
        D1 = np.empty(nmax)
        g = np.empty(n0)
        u = np.empty(n0)
        z = np.empty(n0 + 1)
        xb = np.empty(n0)
        Nrm = np.empty((n0, n0))
        Rn = np.empty((n0, n0))
        side = np.empty(n0)
        actk = np.empty(n0, dtype=np.int64)
        where = np.zeros(2, dtype=np.int64)
        rc = np.zeros(L + 1)
        rt = np.zeros(L + 1)
        for j in range(lo, hi):
            for l in range(L):
                fmn = np.inf
                fmx = -np.inf
                bmn = np.inf
                bmx = -np.inf
                for x in range(N):      # the reduction of stats.reduce_batch
                    r = fwdR[j, x, l]
                    if r < fmn:
                        fmn = r
                    if r > fmx:
                        fmx = r
                    r = bwdR[j, x, l]
                    if r < bmn:
                        bmn = r
                    if r > bmx:
                        bmx = r
                fmin[j, l] = fmn
                fmax[j, l] = fmx
                bmin[j, l] = bmn
                bmax[j, l] = bmx
            dj = dense_dead[j]
            if search:
                if _trial(first + j, k0, k1, widths, var, gain, dist, N, starts, steps, par,
                          offs, wbuf, X, X0, fwdR[j], Ac, Hc, At, Ht, Q, T, D0, D1, g, u, z,
                          xb, Nrm, Rn, side, actk, where, rc, rt, fmin[j], fmax[j]):
                    dj = True
            dead[j] = dj
            for l in range(L):
                sdev[j, l] = max(abs(math.sqrt(fmax[j, l]) - 1.0), abs(math.sqrt(fmin[j, l]) - 1.0))


def _block(inputs, L):
    """Trials per dense call: its (block, inputs, L) ratio arrays within about 64 MiB."""
    return max(1, (1 << 26) // (16 * inputs * L))


def fill(plan, first, count, fwd_min, fwd_max, bwd_min, bwd_max, sup_dev, dead,
         inputs, starts, steps, params=None, ratios=None):
    """Trials first..first+count-1 of the sup kernel.

    plan      common.Plan; its data source and sample count are not used (the
              random inputs are ``inputs`` sphere inputs)
    outputs   fwd_min, fwd_max, bwd_min, bwd_max, sup_dev (count, L) float64, dead (count,) bool
    inputs    random inputs per trial (>= 1): the sphere dataset of the seed
    starts    local searches per layer and direction (at most ``inputs``); 0: none
    steps     points evaluated per local search; 0: none
    params    tuning constants (default PARAMS; for experiments)
    ratios    (fwd, bwd, dense_dead): the dense kernel's rho, gamma (count, inputs, L) float64 and
              dead flags (count,) bool on these trials' random inputs, when the caller has them
              (the engine's, for a dense run on the sphere dataset): the search starts from them
              and the dense kernel is not run again; None: computed here
    """
    inputs, starts, steps = int(inputs), int(starts), int(steps)
    first, count = int(first), int(count)
    L = len(plan.widths) - 1
    if inputs < 1:
        raise ValueError("inputs must be at least 1")
    if starts < 0 or steps < 0:
        raise ValueError("starts and steps must be non-negative")
    if min(starts, inputs) > MAX_STARTS or steps > MAX_STEPS:
        raise ValueError(f"starts must be at most {MAX_STARTS} and steps at most {MAX_STEPS}")
    if first < 0 or count < 0 or first + count > rng.MAX_TRIALS:
        raise ValueError("trial indices must lie in [0, 2**40)")
    for name, a in (("fwd_min", fwd_min), ("fwd_max", fwd_max), ("bwd_min", bwd_min),
                    ("bwd_max", bwd_max), ("sup_dev", sup_dev)):
        if a.shape != (count, L) or a.dtype != np.float64:
            raise ValueError(f"{name} must be a float64 array of shape ({count}, {L})")
    if dead.shape != (count,) or dead.dtype != np.bool_:
        raise ValueError(f"dead must be a bool array of shape ({count},)")
    if ratios is not None:
        fwdR, bwdR, ddead = ratios
        for name, a in (("fwd", fwdR), ("bwd", bwdR)):
            if a.shape != (count, inputs, L) or a.dtype != np.float64:
                raise ValueError(f"ratios: {name} must be a float64 array of shape ({count}, {inputs}, {L})")
        if ddead.shape != (count,) or ddead.dtype != np.bool_:
            raise ValueError(f"ratios: dead must be a bool array of shape ({count},)")
    par = np.array(PARAMS if params is None else params, dtype=np.float64)
    if ratios is not None:
        _batch(first, count, n_chunks(count), plan.k0, plan.k1, plan.widths, plan.var, plan.gain,
               plan.dist, inputs, starts, steps, par, np.ascontiguousarray(fwdR), np.ascontiguousarray(bwdR),
               ddead, fwd_min, fwd_max, bwd_min, bwd_max, sup_dev, dead)
        return
    sphere = copy.copy(plan)            # the dense kernel on the sphere dataset
    sphere.data = DATA_SPHERE
    sphere.samples = inputs
    sphere.X0 = np.zeros((0, int(plan.widths[0])))
    B = _block(inputs, L)
    for lo in range(0, count, B):
        n = min(B, count - lo)
        fwdR = np.empty((n, inputs, L))
        bwdR = np.empty((n, inputs, L))
        ddead = np.zeros(n, dtype=bool)
        dense.fill(sphere, first + lo, n, fwdR, bwdR, ddead)
        s = slice(lo, lo + n)
        _batch(first + lo, n, n_chunks(n), plan.k0, plan.k1, plan.widths, plan.var, plan.gain,
               plan.dist, inputs, starts, steps, par, fwdR, bwdR, ddead,
               fwd_min[s], fwd_max[s], bwd_min[s], bwd_max[s], sup_dev[s], dead[s])


def search_cost(widths, inputs, starts, steps):
    """Rough multiply-adds per trial: the dense trial on the random inputs plus, per
    layer l, 2 min(starts, inputs) searches of ``steps`` points at up to three
    passes (forward, backward, masked forward) of layers 1..l."""
    n = np.asarray(widths, dtype=float)
    w = n[1:] * n[:-1]                   # one pass of each layer
    dense_part = float(w.sum()) * (1.0 + 3.0 * inputs)
    return dense_part + 6.0 * min(starts, inputs) * steps * float(np.cumsum(w).sum())
