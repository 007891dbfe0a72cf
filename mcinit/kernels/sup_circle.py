"""Exact extremes of the forward ratio over all inputs of dimension 2 (the unit circle).

For one trial (the network of the dense kernel: ``sup.draw_weights``) and every layer
l = 1..L, ``extremes(plan, first, count, smin, smax, arcs)`` computes

    min and max over t of rho_l(x(t)) = ||h^l(x(t))||^2,   x(t) = (cos t, sin t),

exactly up to the floating-point rounding of the 2x2 forms below (docs/design.md
section 15).  A plain ReLU network without biases is positively homogeneous and
piecewise linear, so the circle splits into arcs on each of which h^l(x) = A x for one
n_l x 2 matrix A:

- arcs: layer 1 starts from the whole circle, [t0, t0 + 2 pi) with t0 a zero of unit 0
  of layer 1 (a cut of every layer, so no artificial cut is counted), and A_0 = I.  On an
  arc of layer k - 1 with map A, the preactivations are B = W_k A (n_k x 2): unit i's is
  |b_i| cos(t - phi_i), zero at phi_i +- pi/2.  The arc splits at the zeros inside it
  (on an arc shorter than pi, a unit has one exactly when its signs at the two ends
  differ, a cheap test that spares most atan2s); each piece's mask is the sign at its midpoint (a unit with b_i = 0 is off), and its
  map is diag(mask) B.  Zeros closer than ``_TIE`` radians to an end of the arc or to
  each other are merged (a rounding sliver: rho changes by at most that times its
  Lipschitz constant over it);
- extremes on a piece: rho_k = x^T M x, M = A^T A = [[p, q], [q, r]], is
  (p + r)/2 + (p - r)/2 cos 2t + q sin 2t = c0 + R cos(2t - theta), theta = atan2(2q, p - r),
  so its max and min over the piece are at the ends or at the interior critical points
  t = theta/2 + m pi/2 (values c0 + R, m even, and c0 - R, m odd);
- the arcs of layer k refine those of layer k - 1, and a piece's map needs only its parent's:
  the pieces are visited depth first (one arc per layer on a stack: O(sum n_l) memory,
  whatever the number of arcs).  An arc on which some layer is dead (all units off) has
  the map 0 at every deeper layer and is not split further.

Cost: one product W_(k+1) A (the active columns only, as axpys along the rows of
W_(k+1)^T) per arc of layer k < L, so about sum_k arcs_k n_k n_(k+1) multiply-adds per
trial; the arcs grow by about 2 n_l per layer, so about n^3 L^2 at width n
(docs/design.md section 15 has measured numbers).  No cap: the memory, O(sum n_l) per
thread, does not depend on the number of arcs.

``arcs[t, l - 1]`` counts the arcs of layer l's partition of the circle (adjacent arcs
may carry the same map; a dead arc counts once at each deeper layer).

Results of a trial depend on its index only (not on threads or on how trials are split
into calls); the arithmetic is float64.
"""

import math

import numpy as np
from numba import njit, prange

from .. import activations, rng
from .common import ARCH_PLAIN, n_chunks
from .sup import draw_weights, weight_offsets

__all__ = ["extremes"]

_TWO_PI = 2.0 * math.pi
_HALF_PI = 0.5 * math.pi
_TIE = 1e-14          # zeros this close (radians) to an arc's end or to each other are merged


@njit(cache=True)
def _split(B, n, s, e, pts, z):
    """The zeros of the preactivations B[0, i] cos t + B[1, i] sin t (i < n) inside the arc
    (s, e) (e - s <= 2 pi), sorted, into pts = [s, zeros..., e]; returns the number of
    pieces.  z is scratch (2 n)."""
    short = e - s < 3.0                                  # < pi: at most one zero of a unit inside
    f0c = math.cos(s)
    f0s = math.sin(s)
    f1c = math.cos(e)
    f1s = math.sin(e)
    m = 0
    for i in range(n):
        b0 = B[0, i]
        b1 = B[1, i]
        if short and (b0 * f0c + b1 * f0s > 0.0) == (b0 * f1c + b1 * f1s > 0.0):
            continue                                     # no sign change: no zero inside
        if b0 == 0.0 and b1 == 0.0:
            continue
        phi = math.atan2(b1, b0)
        for side in range(2):
            d = phi + (_HALF_PI if side == 0 else -_HALF_PI) - s
            d -= _TWO_PI * math.floor(d / _TWO_PI)      # the representative in [s, s + 2 pi)
            t = s + d
            if d > _TIE and e - t > _TIE:
                z[m] = t
                m += 1
    if m > 24:
        z[:m] = np.sort(z[:m])
    else:
        for a in range(1, m):                            # insertion sort: few zeros per arc
            v = z[a]
            b = a - 1
            while b >= 0 and z[b] > v:
                z[b + 1] = z[b]
                b -= 1
            z[b + 1] = v
    pts[0] = s
    k = 0
    for a in range(m):
        if z[a] - pts[k] > _TIE:
            k += 1
            pts[k] = z[a]
    pts[k + 1] = e
    return k + 1


@njit(cache=True)
def _piece(p, q, r, s, e):
    """(min, max) over t in [s, e] of p cos^2 t + 2 q cos t sin t + r sin^2 t."""
    cs = math.cos(s)
    ss = math.sin(s)
    ce = math.cos(e)
    se = math.sin(e)
    fs = p * cs * cs + 2.0 * q * cs * ss + r * ss * ss
    fe = p * ce * ce + 2.0 * q * ce * se + r * se * se
    lo = min(fs, fe)
    hi = max(fs, fe)
    c0 = 0.5 * (p + r)
    c1 = 0.5 * (p - r)
    R = math.hypot(c1, q)
    if R > 0.0:
        th = 0.5 * math.atan2(q, c1)                     # maxima at th + m pi, minima at th + pi/2 + m pi
        tmax = th + math.pi * math.ceil((s - th) / math.pi)
        if s < tmax < e:
            hi = max(hi, c0 + R)
        tmin = th + _HALF_PI + math.pi * math.ceil((s - th - _HALF_PI) / math.pi)
        if s < tmin < e:
            lo = min(lo, c0 - R)
    return max(lo, 0.0), max(hi, 0.0)


@njit(cache=True, inline="always")
def _axpy2(w, b0, b1, y0, y1, n):
    """y0 += b0 w, y1 += b1 w (n entries)."""
    for j in range(n):
        y0[j] += w[j] * b0
        y1[j] += w[j] * b1


@njit(cache=True)
def _trial(wt, offs, widths, Bs, pts, npc, cur, act, z, fmin, fmax, arcs):
    """The exact extremes of rho_1..rho_L of one network into fmin, fmax (L,), the arc
    counts into arcs (L,).  wt holds W_l^T (n_(l-1) x n_l, row-major) at offs[l]; Bs[k]
    (2 x n_k) the preactivations' two columns on the current arc of layer k - 1."""
    L = widths.shape[0] - 1
    for l in range(L):
        fmin[l] = np.inf
        fmax[l] = -np.inf
        arcs[l] = 0
    # layer 1: B = W_1 (A_0 = I), on the circle cut at a zero of unit 0
    n1 = widths[1]
    o = offs[1]
    for i in range(n1):
        Bs[1, 0, i] = wt[o + i]
        Bs[1, 1, i] = wt[o + n1 + i]
    t0 = 0.0
    if Bs[1, 0, 0] != 0.0 or Bs[1, 1, 0] != 0.0:
        t0 = math.atan2(Bs[1, 1, 0], Bs[1, 0, 0]) + _HALF_PI
    npc[1] = _split(Bs[1], n1, t0, t0 + _TWO_PI, pts[1], z)
    cur[1] = 0
    k = 1
    while k >= 1:
        if cur[k] == npc[k]:
            k -= 1
            continue
        c = cur[k]
        cur[k] = c + 1
        s = pts[k, c]
        e = pts[k, c + 1]
        # the piece's mask (sign at its midpoint) and M = A^T A of A = diag(mask) B
        tm = 0.5 * (s + e)
        cm = math.cos(tm)
        sm = math.sin(tm)
        nk = widths[k]
        na = 0
        p = 0.0
        q = 0.0
        r = 0.0
        for i in range(nk):
            b0 = Bs[k, 0, i]
            b1 = Bs[k, 1, i]
            if b0 * cm + b1 * sm > 0.0:
                act[k, na] = i
                na += 1
                p += b0 * b0
                q += b0 * b1
                r += b1 * b1
        lo, hi = _piece(p, q, r, s, e)
        arcs[k - 1] += 1
        if lo < fmin[k - 1]:
            fmin[k - 1] = lo
        if hi > fmax[k - 1]:
            fmax[k - 1] = hi
        if k == L:
            continue
        if na == 0:                                       # dead: the map is 0 from here on
            for j in range(k, L):
                arcs[j] += 1
                if fmin[j] > 0.0:
                    fmin[j] = 0.0
                if fmax[j] < 0.0:
                    fmax[j] = 0.0
            continue
        # B' = W_(k+1) A, over the active units of layer k: axpys along rows of W_(k+1)^T
        n2 = widths[k + 1]
        o = offs[k + 1]
        y0 = Bs[k + 1, 0]
        y1 = Bs[k + 1, 1]
        for j in range(n2):
            y0[j] = 0.0
            y1[j] = 0.0
        for m in range(na):
            i = act[k, m]
            _axpy2(wt[o + i * n2: o + (i + 1) * n2], Bs[k, 0, i], Bs[k, 1, i], y0, y1, n2)
        npc[k + 1] = _split(Bs[k + 1], n2, s, e, pts[k + 1], z)
        cur[k + 1] = 0
        k += 1


@njit(cache=True)
def _transpose(wbuf, offs, widths, wt):
    """wt[offs[l]:offs[l+1]] = W_l^T (n_(l-1) x n_l, row-major), l = 1..L."""
    for l in range(1, widths.shape[0]):
        n_in = widths[l - 1]
        n_out = widths[l]
        o = offs[l]
        for i in range(n_out):
            for c in range(n_in):
                wt[o + c * n_out + i] = wbuf[o + i * n_in + c]


@njit(cache=True, parallel=True, nogil=True)
def _batch(first, count, nchunks, k0, k1, widths, var, gain, dist, smin, smax, arcs):
    L = widths.shape[0] - 1
    nmax = 0
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
    offs = weight_offsets(widths)
    for c in prange(nchunks):
        lo = (count * c) // nchunks
        hi = (count * (c + 1)) // nchunks
        wbuf = np.empty(offs[L + 1])
        wt = np.empty(offs[L + 1])
        Bs = np.zeros((L + 1, 2, nmax))
        pts = np.empty((L + 1, 2 * nmax + 2))
        npc = np.zeros(L + 1, dtype=np.int64)
        cur = np.zeros(L + 1, dtype=np.int64)
        act = np.zeros((L + 1, nmax), dtype=np.int64)
        z = np.empty(2 * nmax)
        for j in range(lo, hi):
            draw_weights(k0, k1, first + j, widths, var, gain, dist, offs, wbuf)
            _transpose(wbuf, offs, widths, wt)
            _trial(wt, offs, widths, Bs, pts, npc, cur, act, z, smin[j], smax[j], arcs[j])


def extremes(plan, first, count, smin, smax, arcs=None):
    """The exact min and max of rho_l over the unit circle, trials first..first+count-1.

    plan        common.Plan of a plain ReLU network with input dimension n_0 = 2 and
                row-wise weights (normal, uniform or weight-normalised), float64;
                its data source and sample count are not used
    smin, smax  (count, L) float64: min and max over unit x of rho_l(x) = ||h^l(x)||^2
    arcs        (count, L) int64 or None: the number of arcs (linear pieces) of layer l's
                map on the circle
    """
    first, count = int(first), int(count)
    widths = np.asarray(plan.widths, dtype=np.int64)
    L = len(widths) - 1
    if widths[0] != 2:
        raise ValueError(f"the exact extremes on the circle need input dimension 2, not {widths[0]}")
    if plan.arch != ARCH_PLAIN:
        raise ValueError("the exact extremes on the circle are of plain networks")
    if plan.act != activations.ACT_RELU:
        raise ValueError("the exact extremes on the circle are of ReLU networks")
    if plan.dist not in (0, 1, 2):
        raise ValueError("the exact extremes on the circle need row-wise weights "
                         "(normal, uniform or weight-normalised)")
    if plan.dtype != np.float64:
        raise ValueError("the exact extremes on the circle are of the float64 network")
    if first < 0 or count < 0 or first + count > rng.MAX_TRIALS:
        raise ValueError("trial indices must lie in [0, 2**40)")
    for name, a in (("smin", smin), ("smax", smax)):
        if not isinstance(a, np.ndarray) or a.shape != (count, L) or a.dtype != np.float64:
            raise ValueError(f"{name} must be a float64 array of shape ({count}, {L})")
    if arcs is None:
        arcs = np.empty((count, L), dtype=np.int64)
    elif not isinstance(arcs, np.ndarray) or arcs.shape != (count, L) or arcs.dtype != np.int64:
        raise ValueError(f"arcs must be an int64 array of shape ({count}, {L})")
    if count == 0:
        return
    _batch(first, count, n_chunks(count), plan.k0, plan.k1, widths, plan.var, plan.gain,
           int(plan.dist), smin, smax, arcs)
