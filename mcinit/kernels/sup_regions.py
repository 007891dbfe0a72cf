"""Exact extremes of the forward ratio over all inputs, for small input dimensions.

For one trial (the network sup.draw_weights draws: the dense kernel's, bit for bit) and
every layer l this computes

    min and max over unit x of rho_l(x) = ||h^l(x)||^2 / ||x||^2

by enumerating the activation regions that meet the sphere (docs/design.md, section 16):
``extremes(plan, first, count, smin, smax, exact, max_regions, regions)``.

Regions.  The network is plain ReLU without biases, so h^l is positively homogeneous
and linear, h^l = A x, on each activation region, a polyhedral cone.  R^(n_0) is first
cut into the n_0 + 1 simplicial cones spanned by n_0 of the vectors e_1, .., e_n0,
-(e_1 + .. + e_n0) (so every cone is pointed); layer by layer each cone of layer l - 1,
with its map A, is split by layer l's hyperplanes {(W_l A)_i . x = 0}, unit after unit,
and a piece's map is D W_l A (D: the piece's active units of layer l).  A cone is held in
double description: its extreme rays (unit vectors) and its constraint rows g (g . x >= 0;
unit vectors), with for each ray the set of constraints it is tight on (a bit mask).  A
hyperplane b meets a cone's interior iff some ray has b . r > 0 and another b . r < 0
(|b . r| <= 1e-12 |b| counts as on it); the split is one double-description step: the new
rays are s_p q - s_q p for the adjacent pairs (p, q) across b (adjacent: no third ray is
tight on every constraint both are tight on, the combinatorial test), tight on b and on
the constraints common to p and q; constraints tight on fewer than n_0 - 1 rays of a piece
are no facets of it and are dropped.

Extremes.  On a cone C with map A, rho_l = x^T M x (M = A^T A) on the sphere.  A minimiser
or maximiser over C lies in the relative interior of some face F of C, where it is a
stationary point of x^T M x on the unit sphere of span(F): an eigenvector of M restricted
to span(F) (Q^T M Q for an orthonormal basis Q of span(F)).  The faces are the
intersections of the facets (as ray sets: closure of the constraints' tight-ray sets
under intersection); for each face the eigenvectors of the restricted form (Jacobi
rotations, d <= n_0) are the candidates, both signs, kept when inside C (every g . x >=
-1e-9); a face of one ray is its ray.  Every kept candidate is evaluated by a forward pass
of the network (sup._forward), so the reported extremes are rho_l at actual inputs: the
max is never above the true max, the min never below the true min, and by the enumeration
they are the extremes up to rounding.  A repeated eigenvalue (e.g. 0 of a rank-deficient
map) has eigenvectors that may all miss C while their eigenspace meets it; its
intersection with C then has an extreme ray on a lower face, where it is again a
stationary point with the same value, so the extremes are still found (docs/design.md).
Faces (and cones) whose values are bounded within the extremes found so far, by their
eigenvalue range or by bounds from their rays (_ray_bounds), are not expanded: by
interlacing, their subfaces cannot hold anything more extreme.

Regions.  The activation regions of layer l are the distinct activation patterns of
layers 1..l among the cones (an activation region is convex, so the pieces the starting
cones cut it into share its pattern); they are counted by a 64-bit hash of the pattern.

Limits.  When a trial's activation regions at some layer exceed ``max_regions``, or its
cones exceed CONES_PER_REGION max_regions (the work and memory, about 2.5 kB per cone,
are proportional to the cones, 2 to 5 per region), or a cone has more than 248 rays or
constraints (the bit sets) or more than MAX_FACES faces, the trial stops there: exact is
False and smin / smax are NaN for that layer and all deeper ones.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.typed import List

from . import sup
from .common import n_chunks
from .. import rng

__all__ = ["extremes", "MAX_DIM", "MAX_REGIONS", "CONES_PER_REGION", "MAX_FACES", "initial_cones"]

#: largest input dimension accepted: at n_0 = 6 a trial of widths 8, 8 takes about a
#: second and widths 8, 8, 8 exceed MAX_REGIONS (measured: docs/design.md, section 16)
MAX_DIM = 6
#: default most activation regions per layer of a trial
MAX_REGIONS = 20000
#: most cones per layer of a trial, per max_regions (memory: about 2.5 kB per cone, per
#: running trial: 150 MB at the default)
CONES_PER_REGION = 3
#: most faces of one cone
MAX_FACES = 4096

_WB = 62              # bits used per int64 word of a bit set
_NW = 4               # words per bit set
_BITS = _WB * _NW     # most rays and constraints of one cone
_ON = 1e-12           # |b . r| <= _ON |b|: ray r (unit) lies on the hyperplane b
_IN = 1e-9            # g . x >= -_IN for every constraint: x (unit) is in the cone
_RANK = 1e-10         # Gram-Schmidt residual below this: dependent

_F2 = types.float64[:, ::1]
_I1 = types.int64[::1]
_I2 = types.int64[:, ::1]


#: bytes a cone of the enumeration holds (its rays, constraints, incidences and map), about:
#: measured 2.5 kB at n_0 <= 6 and widths up to 16
CONE_BYTES = 2560


def memory(max_regions=MAX_REGIONS):
    """Bytes a running trial's enumeration holds at most (CONES_PER_REGION cones per region
    of its cap): what the engine's memory check counts per thread."""
    return CONES_PER_REGION * int(max_regions) * CONE_BYTES


def initial_cones(n):
    """The n + 1 simplicial cones spanned by n of e_1, .., e_n, -(e_1 + .. + e_n): rays
    R (n+1, n, n) (unit rows), constraints G (n+1, n, n) (unit rows, g_k . r_j = 0 for
    j != k, g_k . r_k > 0), incidences I (n+1, n, _NW) (bit sets: ray j is tight on every
    constraint but j)."""
    V = np.vstack([np.eye(n), -np.ones((1, n))])
    R = np.empty((n + 1, n, n))
    G = np.empty((n + 1, n, n))
    I = np.zeros((n + 1, n, _NW), dtype=np.int64)
    full = (1 << n) - 1
    for c in range(n + 1):
        rays = np.delete(V, c, axis=0)
        rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
        g = np.linalg.inv(rays).T          # g_k . r_j = delta_kj
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        R[c] = rays
        G[c] = g
        for j in range(n):
            I[c, j, 0] = full & ~(1 << j)
    return R, G, I


@njit(cache=True, inline="always")
def _has(I, r, k):
    """Bit k of the bit set I[r]."""
    return (I[r, k // _WB] >> (k % _WB)) & 1


@njit(cache=True, inline="always")
def _set(I, r, k):
    I[r, k // _WB] |= np.int64(1) << (k % _WB)


@njit(cache=True, inline="always")
def _set1(g, k):
    g[k // _WB] |= np.int64(1) << (k % _WB)


@njit(cache=True)
def _prune(R, I, G, n):
    """Drop the constraints tight on fewer than n - 1 rays (no facets: a pointed cone keeps
    its facets, at least n) and renumber the incidence bits; returns (I, G)."""
    c = G.shape[0]
    m = R.shape[0]
    keep = np.zeros(c, dtype=np.int64)
    k = 0
    for j in range(c):
        cnt = 0
        for r in range(m):
            cnt += _has(I, r, j)
        if cnt >= n - 1:
            keep[k] = j
            k += 1
    if k == c:
        return I, G
    G2 = np.empty((k, G.shape[1]))
    I2 = np.zeros((m, _NW), dtype=np.int64)
    for a in range(k):
        G2[a] = G[keep[a]]
        for r in range(m):
            if _has(I, r, keep[a]):
                _set(I2, r, a)
    return I2, G2


@njit(cache=True)
def _split(R, I, G, b, n):
    """Split the cone (R, I, G) by the hyperplane b . x = 0.  Returns (kind, R+, I+, G+,
    R-, I-, G-): kind 1 the cone lies in b . x >= 0, -1 in b . x <= 0 (b = 0 too), 0 it
    was split into the two pieces, 2 a piece exceeds the bit sets."""
    m = R.shape[0]
    bn = math.sqrt(np.sum(b * b))
    tol = _ON * bn
    s = np.empty(m)
    npos = 0
    nneg = 0
    for r in range(m):
        v = 0.0
        for j in range(n):
            v += R[r, j] * b[j]
        s[r] = v
        if v > tol:
            npos += 1
        elif v < -tol:
            nneg += 1
    if nneg == 0 and npos > 0:
        return 1, R, I, G, R, I, G
    if npos == 0:
        return -1, R, I, G, R, I, G
    c = G.shape[0]
    if c >= _BITS:
        return 2, R, I, G, R, I, G
    # new rays on b: the adjacent pairs across it
    NR = np.empty((npos * nneg, n))
    NI = np.zeros((npos * nneg, _NW), dtype=np.int64)
    common = np.empty(_NW, dtype=np.int64)
    k = 0
    for p in range(m):
        if s[p] <= tol:
            continue
        for q in range(m):
            if s[q] >= -tol:
                continue
            cnt = 0
            for w in range(_NW):
                x = I[p, w] & I[q, w]
                common[w] = x
                while x != 0:
                    x &= x - 1
                    cnt += 1
            if cnt < n - 2:
                continue
            adjacent = True
            for r in range(m):
                if r != p and r != q:
                    sup_all = True
                    for w in range(_NW):
                        if (I[r, w] & common[w]) != common[w]:
                            sup_all = False
                            break
                    if sup_all:
                        adjacent = False
                        break
            if not adjacent:
                continue
            nr = 0.0
            for j in range(n):
                v = s[p] * R[q, j] - s[q] * R[p, j]
                NR[k, j] = v
                nr += v * v
            nr = 1.0 / math.sqrt(nr)
            for j in range(n):
                NR[k, j] *= nr
            for w in range(_NW):
                NI[k, w] = common[w]
            _set(NI, k, c)
            k += 1
    nzero = m - npos - nneg
    out = []
    for side in (1.0, -1.0):
        cnt = (npos if side > 0 else nneg) + nzero + k
        if cnt > _BITS:
            return 2, R, I, G, R, I, G
        R2 = np.empty((cnt, n))
        I2 = np.empty((cnt, _NW), dtype=np.int64)
        a = 0
        for r in range(m):
            v = side * s[r]
            on = abs(s[r]) <= tol
            if v > tol or on:
                R2[a] = R[r]
                I2[a] = I[r]
                if on:
                    _set(I2, a, c)
                a += 1
        for r in range(k):
            R2[a] = NR[r]
            I2[a] = NI[r]
            a += 1
        G2 = np.empty((c + 1, n))
        G2[:c] = G
        for j in range(n):
            G2[c, j] = side * b[j] / bn
        I2, G2 = _prune(R2, I2, G2, n)
        out.append((R2, I2, G2))
    return 0, out[0][0], out[0][1], out[0][2], out[1][0], out[1][1], out[1][2]


@njit(cache=True)
def _jacobi(S, V, d):
    """Eigen-decomposition of the symmetric S[:d, :d] in place by cyclic Jacobi rotations:
    S becomes diagonal (the eigenvalues), the columns of V[:d, :d] the eigenvectors."""
    for i in range(d):
        for j in range(d):
            V[i, j] = 1.0 if i == j else 0.0
    for sweep in range(60):
        off = 0.0
        tot = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    off += S[i, j] * S[i, j]
                tot += S[i, j] * S[i, j]
        if off <= 1e-32 * tot or off == 0.0:
            break
        for p in range(d - 1):
            for q in range(p + 1, d):
                apq = S[p, q]
                if apq == 0.0:
                    continue
                theta = (S[q, q] - S[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(d):
                    skp = S[k, p]
                    skq = S[k, q]
                    S[k, p] = c * skp - s * skq
                    S[k, q] = s * skp + c * skq
                for k in range(d):
                    spk = S[p, k]
                    sqk = S[q, k]
                    S[p, k] = c * spk - s * sqk
                    S[q, k] = s * spk + c * sqk
                for k in range(d):
                    vkp = V[k, p]
                    vkq = V[k, q]
                    V[k, p] = c * vkp - s * vkq
                    V[k, q] = s * vkp + c * vkq


@njit(cache=True)
def _restricted(A, Q, d, n, nl, AQ, S):
    """S[:d, :d] = (A Q^T)^T (A Q^T) for the orthonormal rows Q[:d] (A: nl x n)."""
    for i in range(nl):
        for a in range(d):
            v = 0.0
            for j in range(n):
                v += A[i, j] * Q[a, j]
            AQ[i, a] = v
    for a in range(d):
        for c in range(a, d):
            v = 0.0
            for i in range(nl):
                v += AQ[i, a] * AQ[i, c]
            S[a, c] = v
            S[c, a] = v


@njit(cache=True)
def _inside(G, x, n):
    for k in range(G.shape[0]):
        v = 0.0
        for j in range(n):
            v += G[k, j] * x[j]
        if v < -_IN:
            return False
    return True


@njit(cache=True, inline="always")
def _fold(v, x, n, ext, xe):
    """Fold the value v = rho_l(x) of a candidate x into ext = [min, max], its point into
    xe[0] (argmin) or xe[1] (argmax)."""
    if v < ext[0]:
        ext[0] = v
        for j in range(n):
            xe[0, j] = x[j]
    if v > ext[1]:
        ext[1] = v
        for j in range(n):
            xe[1, j] = x[j]


@njit(cache=True)
def _eigen_candidates(wbuf, offs, widths, l, A, G, Q, d, AQ, S, V, x, ext, xe):
    """The eigenvectors of M restricted to span(Q[:d]), both signs, inside the cone G, with
    their eigenvalues (x^T M x) folded into ext, xe.  Returns (lambda_min, lambda_max) of
    the restricted form."""
    n = widths[0]
    nl = widths[l]
    _restricted(A, Q, d, n, nl, AQ, S)
    _jacobi(S, V, d)
    lo = np.inf
    hi = -np.inf
    for e in range(d):
        lam = S[e, e]
        lo = min(lo, lam)
        hi = max(hi, lam)
        for j in range(n):
            v = 0.0
            for a in range(d):
                v += V[a, e] * Q[a, j]
            x[j] = v
        nx = math.sqrt(np.sum(x * x))
        for j in range(n):
            x[j] /= nx
        for sg in range(2):
            if _inside(G, x, n):
                _fold(lam, x, n, ext, xe)
            for j in range(n):
                x[j] = -x[j]
    return lo, hi


@njit(cache=True)
def _basis(R, face, n, Q):
    """Orthonormal rows Q[:d] spanning the rays of the face (a bit set over rays); returns d."""
    d = 0
    for r in range(R.shape[0]):
        if not (face[r // _WB] >> (r % _WB)) & 1:
            continue
        for j in range(n):
            Q[d, j] = R[r, j]
        for a in range(d):
            p = 0.0
            for j in range(n):
                p += Q[d, j] * Q[a, j]
            for j in range(n):
                Q[d, j] -= p * Q[a, j]
        nr = math.sqrt(np.sum(Q[d, :n] * Q[d, :n]))
        if nr > _RANK:
            for j in range(n):
                Q[d, j] /= nr
            d += 1
            if d == n:
                break
    return d


@njit(cache=True)
def _ray_bounds(R, face, A, vals, top, n, nl, u):
    """Bounds (lo, hi) of x^T M x over the unit x of the face (a bit set over the rays R;
    vals[r] = |A r_r|^2, top = lambda_max(M)).  With u the unit mean of the face's rays and
    delta = min u . r > 0, a unit x = sum c_r r_r (c >= 0) has sum c <= 1 / delta and
    u . x >= delta, so |A x| <= max |A r| / delta and |A x| >= |A u| - |A|_2 sqrt(2 - 2 delta)."""
    for j in range(n):
        u[j] = 0.0
    vmax = 0.0
    for r in range(R.shape[0]):
        if (face[r // _WB] >> (r % _WB)) & 1:
            for j in range(n):
                u[j] += R[r, j]
            vmax = max(vmax, vals[r])
    nu = math.sqrt(np.sum(u * u))
    if nu == 0.0:
        return 0.0, np.inf
    for j in range(n):
        u[j] /= nu
    delta = 1.0
    for r in range(R.shape[0]):
        if (face[r // _WB] >> (r % _WB)) & 1:
            v = 0.0
            for j in range(n):
                v += u[j] * R[r, j]
            delta = min(delta, v)
    if delta <= 0.0:
        return 0.0, np.inf
    au = 0.0
    for i in range(nl):
        v = 0.0
        for j in range(n):
            v += A[i, j] * u[j]
        au += v * v
    low = math.sqrt(au) - math.sqrt(max(top, 0.0)) * math.sqrt(max(2.0 - 2.0 * delta, 0.0))
    # a relative margin for the rounding of these sums
    hi = vmax / (delta * delta) * (1.0 + 1e-12)
    lo = low * low * (1.0 - 1e-12) if low > 0.0 else 0.0
    return lo, hi


@njit(cache=True)
def _cone_extremes(wbuf, offs, widths, l, R, I, G, A, vals, top, ext, xe, faces, table, g, Q,
                   AQ, S, V, x, u):
    """Fold the eigenvector candidates of the faces of dimension >= 2 of the cone (R, I, G)
    with map A into ext.  The faces are bit sets over the rays, generated from the cone
    itself by intersection with the constraints' tight-ray sets (every face is such an
    intersection); a face whose values are known to lie within ext (its restricted
    eigenvalues, or _ray_bounds) is not expanded: those of its subfaces lie within them
    too.  Returns False beyond MAX_FACES faces.  table: scratch hash set (indices, -1
    free); g: scratch bit set."""
    n = widths[0]
    m = R.shape[0]
    c = G.shape[0]
    fm = np.zeros((c, _NW), dtype=np.int64)
    for k in range(c):
        for r in range(m):
            if _has(I, r, k):
                _set(fm, k, r)
    H = table.shape[0]
    table[:] = -1
    faces[0] = 0
    for r in range(m):
        _set(faces, 0, r)
    nf = 1
    head = 0
    while head < nf:
        f = head
        head += 1
        d = _basis(R, faces[f], n, Q)
        if d < 2:
            continue                      # a ray: evaluated with the cone's rays
        lo, hi = _eigen_candidates(wbuf, offs, widths, l, A, G, Q, d, AQ, S, V, x, ext, xe)
        blo, bhi = _ray_bounds(R, faces[f], A, vals, top, n, widths[l], u)
        if min(hi, bhi) <= ext[1] and max(lo, blo) >= ext[0]:
            continue
        for k in range(c):
            nz = False
            same = True
            h = np.int64(7)
            for w in range(_NW):
                y = faces[f, w] & fm[k, w]
                g[w] = y
                nz = nz or y != 0
                same = same and y == faces[f, w]
                h = (h * np.int64(1000003)) ^ y
            if not nz or same:
                continue
            h = (h & np.int64(0x3FFFFFFFFFFFFFFF)) % H
            found = False
            while table[h] != -1:
                e = table[h]
                eq = True
                for w in range(_NW):
                    if faces[e, w] != g[w]:
                        eq = False
                        break
                if eq:
                    found = True
                    break
                h = (h + 1) % H
            if found:
                continue
            if nf >= faces.shape[0]:
                return False
            table[h] = nf
            faces[nf] = g
            nf += 1
    return True


@njit(cache=True)
def _ray_values(R, A, n, nl, vals):
    """vals[r] = ||A R[r]||^2 for every ray r of a cone (its map A: nl x n)."""
    for r in range(R.shape[0]):
        v = 0.0
        for i in range(nl):
            a = 0.0
            for j in range(n):
                a += A[i, j] * R[r, j]
            v += a * a
        vals[r] = v


@njit(cache=True)
def _layer_extremes(wbuf, offs, widths, l, Rs, Is, Gs, As, ext, xe, faces, table, gbits, Q,
                    AQ, S, V, x, u, vals, lam, top):
    """ext = [min, max] of rho_l over the cones of layer l; False if some cone has too
    many faces."""
    n = widths[0]
    nc = len(Rs)
    ext[0] = np.inf
    ext[1] = -np.inf
    # first the rays and the full-space eigenvectors: good extremes early, and each
    # cone's bounds
    nl = widths[l]
    for c in range(nc):
        R = Rs[c]
        A = As[c]
        _ray_values(R, A, n, nl, vals)
        for r in range(R.shape[0]):
            _fold(vals[r], R[r], n, ext, xe)
        for a in range(n):
            for j in range(n):
                Q[a, j] = 1.0 if a == j else 0.0
        lo, hi = _eigen_candidates(wbuf, offs, widths, l, A, Gs[c], Q, n, AQ, S, V, x, ext, xe)
        top[c] = hi
        gbits[:] = 0
        for r in range(R.shape[0]):
            _set1(gbits, r)
        blo, bhi = _ray_bounds(R, gbits, A, vals, hi, n, nl, u)
        lam[c, 0] = max(lo, blo)
        lam[c, 1] = min(hi, bhi)
    for c in range(nc):
        if lam[c, 1] <= ext[1] and lam[c, 0] >= ext[0]:
            continue
        R = Rs[c]
        A = As[c]
        _ray_values(R, A, n, nl, vals)
        if not _cone_extremes(wbuf, offs, widths, l, R, Is[c], Gs[c], A, vals, top[c], ext, xe,
                              faces, table, gbits, Q, AQ, S, V, x, u):
            return False
    return True


@njit(cache=True)
def _trial(trial, k0, k1, widths, var, gain, dist, offs, wbuf, R0, G0, I0, max_regions,
           smin, smax, exact, regions):
    """The exact extremes of one trial, layer by layer, into its rows of the outputs."""
    L = widths.shape[0] - 1
    n = widths[0]
    nmax = 0
    for k in range(L + 1):
        nmax = max(nmax, widths[k])
    sup.draw_weights(k0, k1, trial, widths, var, gain, dist, offs, wbuf)
    Rs = List.empty_list(_F2)
    Is = List.empty_list(_I2)
    Gs = List.empty_list(_F2)
    As = List.empty_list(_F2)
    for c in range(n + 1):
        Rs.append(R0[c].copy())
        Is.append(I0[c].copy())
        Gs.append(G0[c].copy())
        As.append(np.eye(n))
    # a hash of each cone's activation pattern (layers 1..l): distinct patterns are the
    # activation regions (convex, so the pieces of one region share its pattern)
    hs = np.zeros(n + 1, dtype=np.int64)
    faces = np.empty((MAX_FACES, _NW), dtype=np.int64)
    table = np.empty(2 * MAX_FACES + 1, dtype=np.int64)
    gbits = np.empty(_NW, dtype=np.int64)
    Q = np.empty((n, n))
    AQ = np.empty((nmax, n))
    S = np.empty((n, n))
    V = np.empty((n, n))
    x = np.empty(n)
    Aw = np.zeros((L + 1, nmax))
    Hw = np.zeros((L + 1, nmax))
    rw = np.zeros(L + 1)
    ext = np.empty(2)
    xe = np.zeros((2, n))
    u = np.empty(n)
    vals = np.empty(_BITS)
    b = np.empty(n)
    for l in range(1, L + 1):
        nl = widths[l]
        nin = widths[l - 1]
        W = wbuf[offs[l]:offs[l + 1]]
        nR = List.empty_list(_F2)
        nI = List.empty_list(_I2)
        nG = List.empty_list(_F2)
        nA = List.empty_list(_F2)
        nh = List.empty_list(types.int64)
        nreg = 0
        ok = True
        for c in range(len(Rs)):
            A = As[c]
            # B = W_l A: layer l's preactivations as linear forms of x on this cone
            B = np.zeros((nl, n))
            for i in range(nl):
                for k in range(nin):
                    w = W[i * nin + k]
                    if w != 0.0:
                        for j in range(n):
                            B[i, j] += w * A[k, j]
            pR = List.empty_list(_F2)
            pI = List.empty_list(_I2)
            pG = List.empty_list(_F2)
            pM = List.empty_list(_I1)
            pR.append(Rs[c])
            pI.append(Is[c])
            pG.append(Gs[c])
            pM.append(np.zeros(nl, dtype=np.int64))
            for i in range(nl):
                for j in range(n):
                    b[j] = B[i, j]
                qR = List.empty_list(_F2)
                qI = List.empty_list(_I2)
                qG = List.empty_list(_F2)
                qM = List.empty_list(_I1)
                for p in range(len(pR)):
                    kind, Rp, Ip, Gp, Rm, Im, Gm = _split(pR[p], pI[p], pG[p], b, n)
                    if kind == 2:
                        ok = False
                        break
                    if kind == 1 or kind == 0:
                        mk = pM[p].copy()
                        mk[i] = 1
                        qR.append(Rp)
                        qI.append(Ip)
                        qG.append(Gp)
                        qM.append(mk)
                    if kind == -1:
                        qR.append(Rm)
                        qI.append(Im)
                        qG.append(Gm)
                        qM.append(pM[p])
                    elif kind == 0:
                        qR.append(Rm)
                        qI.append(Im)
                        qG.append(Gm)
                        qM.append(pM[p].copy())
                if not ok or len(nR) + len(qR) > CONES_PER_REGION * max_regions:
                    ok = False
                    break
                pR, pI, pG, pM = qR, qI, qG, qM
            if not ok:
                break
            for p in range(len(pR)):
                An = np.zeros((nl, n))
                mk = pM[p]
                h = hs[c]
                for i in range(nl):
                    h = (h ^ (mk[i] + 2)) * np.int64(1099511628211)     # FNV-1a step
                nh.append(h)
                for i in range(nl):
                    if mk[i]:
                        for j in range(n):
                            An[i, j] = B[i, j]
                nR.append(pR[p])
                nI.append(pI[p])
                nG.append(pG[p])
                nA.append(An)
        if ok:
            hs = np.empty(len(nh), dtype=np.int64)
            for c in range(len(nh)):
                hs[c] = nh[c]
            nreg = np.unique(hs).shape[0]
            ok = nreg <= max_regions
        if ok:
            lam = np.empty((len(nR), 2))
            top = np.empty(len(nR))
            ok = _layer_extremes(wbuf, offs, widths, l, nR, nI, nG, nA, ext, xe, faces, table,
                                 gbits, Q, AQ, S, V, x, u, vals, lam, top)
        if not ok:
            for k in range(l, L + 1):
                smin[k - 1] = np.nan
                smax[k - 1] = np.nan
                exact[k - 1] = False
                regions[k - 1] = 0
            return
        # the extremes reported are rho_l at the extreme candidates, by a forward pass
        for e in range(2):
            for j in range(n):
                Hw[0, j] = xe[e, j]
            sup._forward(wbuf, offs, widths, l, Aw, Hw, rw)
            if e == 0:
                smin[l - 1] = rw[l]
            else:
                smax[l - 1] = rw[l]
        exact[l - 1] = True
        regions[l - 1] = nreg
        Rs, Is, Gs, As = nR, nI, nG, nA


@njit(cache=True, parallel=True)
def _batch(first, count, nchunks, k0, k1, widths, var, gain, dist, R0, G0, I0, max_regions,
           smin, smax, exact, regions):
    offs = sup.weight_offsets(widths)
    nw = offs[widths.shape[0]]
    for c in prange(nchunks):
        lo = (count * c) // nchunks
        hi = (count * (c + 1)) // nchunks
        wbuf = np.empty(nw)
        for t in range(lo, hi):
            _trial(first + t, k0, k1, widths, var, gain, dist, offs, wbuf, R0, G0, I0,
                   max_regions, smin[t], smax[t], exact[t], regions[t])


def extremes(plan, first, count, smin, smax, exact, max_regions=MAX_REGIONS, regions=None):
    """The exact min and max of rho_l over the unit sphere, trials first..first+count-1.

    plan         common.Plan of a plain ReLU network with normal, uniform or
                 weight-normalised rows (dist 0, 1, 2) and 3 <= n_0 <= MAX_DIM
    smin, smax   (count, L) float64: min and max of rho_l(x) = ||h^l(x)||^2 / ||x||^2 over
                 unit x (squared-norm ratios), NaN where not computed
    exact        (count, L) bool: True where smin / smax were computed (exact up to rounding)
    max_regions  most activation regions per layer of a trial (and CONES_PER_REGION times
                 as many cones); beyond, that layer and the deeper ones are not computed
                 (exact False, NaN)
    regions      (count, L) int64 or None: the number of activation regions of layers
                 1..l that meet the sphere, per layer (0 where not computed)
    """
    from .. import activations
    first, count, max_regions = int(first), int(count), int(max_regions)
    widths = np.asarray(plan.widths, dtype=np.int64)
    L = widths.shape[0] - 1
    n = int(widths[0])
    if n < 3 or n > MAX_DIM:
        raise ValueError(f"exact extremes need an input dimension from 3 to {MAX_DIM} (got {n})")
    if int(plan.dist) not in (0, 1, 2):
        raise ValueError("exact extremes need normal, uniform or weight-normalised weights")
    if getattr(plan, "arch", 0) != 0 or plan.act != activations.code_of("relu")[0]:
        raise ValueError("exact extremes need a plain ReLU network")
    if max_regions < 1:
        raise ValueError("max_regions must be at least 1")
    if first < 0 or count < 0 or first + count > rng.MAX_TRIALS:
        raise ValueError("trial indices must lie in [0, 2**40)")
    for name, a, dt in (("smin", smin, np.float64), ("smax", smax, np.float64),
                        ("exact", exact, np.bool_)):
        if a.shape != (count, L) or a.dtype != dt:
            raise ValueError(f"{name} must be a {np.dtype(dt).name} array of shape ({count}, {L})")
    own = regions is None
    if own:
        regions = np.zeros((count, L), dtype=np.int64)
    elif regions.shape != (count, L) or regions.dtype != np.int64:
        raise ValueError(f"regions must be an int64 array of shape ({count}, {L})")
    if count == 0:
        return
    R0, G0, I0 = initial_cones(n)
    _batch(first, count, n_chunks(count), plan.k0, plan.k1, widths, plan.var, plan.gain,
           int(plan.dist), R0, G0, I0, max_regions, smin, smax, exact, regions)
