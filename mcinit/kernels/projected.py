"""The projected kernel: exact in law for Gaussian and orthogonal weights, without drawing W (docs/design.md section 4).

Let H = [h^(l-1)(x_1) .. h^(l-1)(x_N)] = Q R (thin QR, Q orthonormal, rank r).
- forward:  a^l(x) = W_l h^(l-1)(x) = G R[:, x] with G = W_l Q an n_l x r matrix of
            independent N(0, v_l) entries (its columns are rows of (layer l, STREAM_PROJ_G));
- backward: W_l (I - QQ^T) is independent of G and of every delta^l, so with
            Delta = [delta^l(x_j)] = Q_D R_D,
            W_l^T Delta = Q G^T Delta + (I - QQ^T) Y R_D,
            Y an n_(l-1) x rank(Delta) matrix of N(0, v_l) (columns from STREAM_PROJ_Y).
The head W_o (N(0, 1), layer L + 1) is handled the same way with Delta = E, the
errors.  The argument needs nothing of the activation: h^l = phi(a^l) and
delta^(l-1) = phi'(a^(l-1)) (W_l^T delta^l) for the plan's phi (mcinit.activations; for
activations other than ReLU the pre-activations a^l are kept for phi').  The inputs
enter only through R of H = X (no input is ever drawn for random data: R is sampled
directly by the Bartlett decomposition), and only the rows of Y on the units some
input activates are computed (the others never reach a delta; for other activations
every unit can carry one, so every row is).  Only Gram-matrix information of each
layer's inputs enters, so the cost per layer is O((n_l + n_(l-1)) N) normals instead of n_l n_(l-1).  A plan without
the backward property (``plan.backward`` False) stops after the forward pass: no head,
no backward pass, bwd left as it is, and the forward numbers those of a run of both.

Orthogonal weights W_l = g O (--init orthogonal, docs/design.md section 10): G's rows are
those of g T^T, T a Haar M x r isometry (M = max(n_l, n_(l-1))) of which O Q is the first
n_l rows, and the backward pass's rest is Y^T R_u with R_u of the deltas' parts outside
T's columns and Y a Haar isometry's rows into the complement of the inputs' span
(orthogonal_forward_rows, orthogonal_back_rows): O((n_l + n_(l-1)) N^2) per layer.
"""

import math

import numpy as np
from numba import njit

from .. import rng
from ..activations import ACT_RELU, dphi, phi
from ..initializers import DIST_NORMAL, DIST_ORTHOGONAL
from .common import DATA_FIXED, DATA_SPHERE, dot, head_error, run_chunks, write_forward_ratios, write_ratios

__all__ = ["fill"]

#: a column whose residual after projection is below this fraction of its norm
#: lies in the span of the previous ones (its part outside is rounding noise)
RANK_TOL = 1e-10


@njit(cache=True)
def mgs(A, N, n, Q, R, v):
    """Thin QR of the N vectors A[x, :n]: Q[k, :n] orthonormal (k < r), A[x] = sum_k R[k, x] Q[k].

    Modified Gram-Schmidt with one re-orthogonalisation; columns in the span of
    earlier ones add no basis vector.  Returns the rank r."""
    r = 0
    rmax = Q.shape[0]
    for x in range(N):
        for j in range(n):
            v[j] = A[x, j]
        for k in range(r):
            R[k, x] = 0.0
        a2 = dot(v, v, n)
        if a2 == 0.0:
            continue
        for _ in range(2):
            for k in range(r):
                c = dot(Q[k], v, n)
                R[k, x] += c
                for j in range(n):
                    v[j] -= c * Q[k, j]
        nv = math.sqrt(dot(v, v, n))
        if r < rmax and nv > RANK_TOL * math.sqrt(a2):
            inv = 1.0 / nv
            for j in range(n):
                Q[r, j] = v[j] * inv
            for xp in range(x):
                R[r, xp] = 0.0
            R[r, x] = nv
            r += 1
    return r


@njit(cache=True)
def back_step(Q, r, G, n_out, D, Nv, rd, Rd, Y, n, Hmask, Dout, v, act, alpha, A):
    """Dout[x] = phi'(a[x]) (Q G^T D[x] + (I - QQ^T) sum_m Rd[m, x] Y[m]).

    Q (r x n) basis of the layer's inputs, G (r x n_out) the layer's projected
    weights (G^T row by row), D (N x n_out) the deltas above, Rd (rd x N) their R
    factor, Y (rd x n) fresh Gaussian rows.  ReLU (act) reads phi'(a) = 1[h > 0] from
    the layer's outputs Hmask (N x n); other activations take phi' of its
    pre-activations A (N x n)."""
    for x in range(Nv):
        for j in range(n):
            v[j] = 0.0
        for m in range(rd):
            c = Rd[m, x]
            for j in range(n):
                v[j] += c * Y[m, j]
        for k in range(r):
            c = dot(Q[k], v, n)
            p = dot(G[k], D[x], n_out)
            for j in range(n):
                v[j] += (p - c) * Q[k, j]
        if act == ACT_RELU:
            for j in range(n):
                Dout[x, j] = v[j] if Hmask[x, j] > 0.0 else 0.0
        else:
            for j in range(n):
                Dout[x, j] = v[j] * dphi(act, alpha, A[x, j])


@njit(cache=True)
def orthogonal_forward_rows(k0, k1, trial, l, r, M, g, Gl, Rz, v):
    """Orthogonal weights W_l = g O (docs/design.md section 10, the projected kernel):
    Gl[k, :M] = g T[:, k], k < r, T an M x r Haar isometry (M = max(n_l, n_(l-1))): the
    Gram-Schmidt rows of r Gaussian rows of (layer l, STREAM_PROJ_G).  O Q is T's first n_l
    rows, so Gl[:, :n_l] = (W_l Q)^T as for Gaussian weights; the wide case (n_l < n_(l-1))
    keeps T's other rows for the backward pass.  Rz (>= r x r) scratch."""
    c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_G)
    for k in range(r):
        rng.fill_normal_row(k0, k1, c2, c3, k, 1.0, Gl[k], M)
    mgs(Gl, r, M, Gl, Rz, v)        # in place: row x is read before any row >= x is written
    for k in range(r):
        for j in range(M):
            Gl[k, j] *= g


@njit(cache=True)
def orthogonal_back_rows(k0, k1, trial, l, Qb, r, Gl, n_out, n, M, g, D, N, U, Qs, Rs, Y, Rz, v):
    """The backward pass of orthogonal weights W_l = g O, in back_step's form: returns rd and fills
    Rs (rd x N), Y (rd x n) so that back_step gives W_l^T D exactly in law.  With T (M x r) of
    orthogonal_forward_rows (Gl = g T^T) and the deltas D[x] (length n_out):
    - u_x = [D[x]; 0] - T T^T [D[x]; 0] in R^M, and its thin QR u = Qs Rs (rank rd);
    - Y rows: Gaussian rows of length M, (layer l, STREAM_PROJ_Y), their first n entries
      projected off the span of Qb (r x n, the layer's input basis), Gram-Schmidt
      orthonormalised, their first n entries times g.
    Then (I - QQ^T) W_l^T D = Y^T Rs in law, given W_l Q (docs/design.md section 10).  The
    Gaussian rows span M - r dimensions and rd <= M - r (u is orthogonal to T's columns), so
    their Gram-Schmidt keeps all rd of them with probability 1."""
    ginv2 = 1.0 / (g * g)
    for x in range(N):
        u = U[x]
        for j in range(M):
            u[j] = D[x, j] if j < n_out else 0.0
        for k in range(r):
            c = dot(Gl[k], D[x], n_out) * ginv2
            for j in range(M):
                u[j] -= c * Gl[k, j]
    rd = mgs(U, N, M, Qs, Rs, v)
    c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_Y)
    for m in range(rd):
        y = Y[m]
        rng.fill_normal_row(k0, k1, c2, c3, m, 1.0, y, M)
        for _ in range(2):
            for k in range(r):
                c = dot(Qb[k], y, n)
                for j in range(n):
                    y[j] -= c * Qb[k, j]
    mgs(Y, rd, M, Y, Rz, v)          # in place, as in orthogonal_forward_rows
    for m in range(rd):
        for j in range(n):
            Y[m, j] *= g
    return rd


@njit(cache=True)
def input_factor(k0, k1, trial, data, R0fixed, r0fixed, n0, N, R, xn2):
    """R (r x N) with R^T R = the Gram matrix of the trial's inputs; returns r.

    Fixed data: the precomputed thin-QR factor.  Gaussian data, by the Bartlett
    decomposition of a Gaussian n0 x N matrix X = Q R: R[k, k] = chi(n0 - k),
    R[k, j] ~ N(0, 1) for j > k, k < min(N, n0); the sphere divides each column
    by its norm.  Rows: (layer 0, STREAM_PROJ_G, row k) for R[k, j], and
    (layer 0, STREAM_PROJ_Y, row k) for the chi-square R[k, k]^2."""
    if data == DATA_FIXED:
        for k in range(r0fixed):
            for x in range(N):
                R[k, x] = R0fixed[k, x]
        r = r0fixed
    else:
        r = min(N, n0)
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_PROJ_G)
        d2, d3 = rng.counter_words(trial, 0, rng.STREAM_PROJ_Y)
        for k in range(r):
            rng.fill_normal_row(k0, k1, c2, c3, k, 1.0, R[k], N)
            for x in range(k):
                R[k, x] = 0.0
            R[k, k] = math.sqrt(2.0 * rng.sample_gamma(0.5 * (n0 - k), k0, k1, d2, d3, k))
        if data == DATA_SPHERE:
            for x in range(N):
                s = 0.0
                for k in range(min(x + 1, r)):
                    s += R[k, x] * R[k, x]
                s = 1.0 / math.sqrt(s)
                for k in range(min(x + 1, r)):
                    R[k, x] *= s
    for x in range(N):
        s = 0.0
        for k in range(r):
            s += R[k, x] * R[k, x]
        xn2[x] = s
    return r


@njit(cache=True)
def support(H, N, n, need, every):
    """need[j] = 1 where some input has h_j > 0 (outside it no delta or basis vector lives):
    ReLU; with ``every`` (other activations, every unit can carry a delta) every unit."""
    if every:
        for j in range(n):
            need[j] = 1
        return
    for j in range(n):
        need[j] = H[0, j] > 0.0
    for x in range(1, N):
        for j in range(n):
            need[j] |= H[x, j] > 0.0


@njit(cache=True)
def projected_trial(trial, k0, k1, widths, var, head, K, data, R0fixed, r0fixed, N, backward,
                    H, Q, R, rank, G, Go, Dl, Dn, E, Z, Qs, Rs, Y, v, need, ws, hn2, dn2, fwd, bwd,
                    ortho, gain, U, Rz, act, alpha, A):
    """One trial into fwd, bwd (N, L); returns the dead flag.  Without ``backward`` the
    trial ends after the forward pass (fwd and the forward deaths only).  With ``ortho`` the
    weights are orthogonal, W_l = gain[l - 1] O_l (orthogonal_forward_rows and
    orthogonal_back_rows; G[l] then has max(n_l, n_(l-1)) columns, U (N, >= those) and Rz
    (>= N x N) scratch).  act, alpha: the activation; for activations other than ReLU A[l]
    (N, n_l) receives a^l (l = 1..L)."""
    L = widths.shape[0] - 1
    relu = act == ACT_RELU
    rank[0] = input_factor(k0, k1, trial, data, R0fixed, r0fixed, widths[0], N, R[0], hn2[:, 0])
    # forward: a^l(x) = sum_k R[k, x] G[k, :], G = (W_l Q)^T rows ~ N(0, v_l); h^l = phi(a^l)
    for l in range(1, L + 1):
        n = widths[l]
        r = rank[l - 1]
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_G)
        sd = math.sqrt(var[l - 1])
        Gl = G[l]
        Rp = R[l - 1]
        Hl = H[l]
        if N == 1 and r == 1 and relu and not ortho:
            # one input: h = ReLU(||h^(l-1)|| g); G keeps only g's positive part, all the backward uses
            rng.fill_relu_normal_row_ws(k0, k1, c2, c3, np.int64(0), sd, Gl[0], n, ws)   # row 0, as int64
            s = Rp[0, 0]
            for i in range(n):
                Hl[0, i] = s * Gl[0, i]
            rank[l] = mgs(Hl, N, n, Q[l], R[l], v)
            continue
        if ortho:     # G = g T^T, its first n columns (W_l Q)^T
            orthogonal_forward_rows(k0, k1, trial, l, r, max(n, widths[l - 1]), gain[l - 1], Gl, Rz, v)
        else:
            for k in range(r):
                rng.fill_normal_row_ws(k0, k1, c2, c3, k, sd, Gl[k], n, ws)
        for x in range(N):
            for i in range(n):
                Hl[x, i] = 0.0
            for k in range(r):
                c = Rp[k, x]
                for i in range(n):
                    Hl[x, i] += c * Gl[k, i]
            if relu:
                for i in range(n):
                    if Hl[x, i] < 0.0:
                        Hl[x, i] = 0.0
            else:
                Al = A[l]
                for i in range(n):
                    Al[x, i] = Hl[x, i]
                    Hl[x, i] = phi(act, alpha, Al[x, i])
        rank[l] = mgs(Hl, N, n, Q[l], R[l], v)
    if not backward:
        dead = False
        for x in range(N):
            for l in range(1, L + 1):
                hn2[x, l] = dot(H[l][x], H[l][x], widths[l])
            if write_forward_ratios(hn2[x], L, fwd[x]):
                dead = True
        return dead
    # head: z = G_o R_L, G_o = W_o Q_L ~ N(0, 1)
    rL = rank[L]
    nL = widths[L]
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_G)
    for k in range(rL):
        rng.fill_normal_row(k0, k1, c2, c3, k, 1.0, Go[k], K)
    for x in range(N):
        for c in range(K):
            s = 0.0
            for k in range(rL):
                s += R[L][k, x] * Go[k, c]
            Z[x, c] = s
        head_error(k0, k1, trial, L + 1, head, Z[x], x, E[x], K)
    # delta^L = phi'(a^L) (Q_L G_o^T e + (I - Q_L Q_L^T) Y_o R_E)
    re = mgs(E, N, K, Qs, Rs, v)
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_Y)
    support(H[L], N, nL, need, not relu)
    for m in range(re):
        rng.fill_normal_row_where_ws(k0, k1, c2, c3, m, 1.0, Y[m], nL, need, ws)
    back_step(Q[L], rL, Go, K, E, N, re, Rs, Y, nL, H[L], Dl, v, act, alpha, A[L])
    for x in range(N):
        dn2[x, L] = dot(Dl[x], Dl[x], nL)
    # delta^(l-1) = phi'(a^(l-1)) (Q G_l^T delta^l + (I - QQ^T) Y_l R_D)
    for l in range(L, 1, -1):
        n_out = widths[l]
        n = widths[l - 1]
        if ortho:
            rd = orthogonal_back_rows(k0, k1, trial, l, Q[l - 1], rank[l - 1], G[l], n_out, n, max(n, n_out),
                                      gain[l - 1], Dl, N, U, Qs, Rs, Y, Rz, v)
        else:
            rd = mgs(Dl, N, n_out, Qs, Rs, v)
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_Y)
            sd = math.sqrt(var[l - 1])
            support(H[l - 1], N, n, need, not relu)
            for m in range(rd):
                rng.fill_normal_row_where_ws(k0, k1, c2, c3, m, sd, Y[m], n, need, ws)
        back_step(Q[l - 1], rank[l - 1], G[l], n_out, Dl, N, rd, Rs, Y, n, H[l - 1], Dn, v, act, alpha,
                  A[l - 1])
        for x in range(N):
            dn2[x, l - 1] = dot(Dn[x], Dn[x], n)
        Dl, Dn = Dn, Dl
    dead = False
    for x in range(N):
        for l in range(1, L + 1):
            hn2[x, l] = dot(H[l][x], H[l][x], widths[l])
        if write_ratios(hn2[x], dn2[x], L, fwd[x], bwd[x]):
            dead = True
    return dead


@njit(cache=True, nogil=True)
def _chunk(lo, hi, first, k0, k1, widths, var, head, K, data, R0fixed, r0fixed, N, backward,
           fwd, bwd, dead, ortho, gain, act, alpha):
    """Trials lo..hi-1 with one set of buffers: a work unit of fill (common.run_chunks)."""
    L = widths.shape[0] - 1
    nmax = K
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
    rs = min(N, nmax)
    H = [np.empty((N if l > 0 else 0, widths[l])) for l in range(L + 1)]
    A = [np.empty((N if l > 0 and act != ACT_RELU else 0, widths[l])) for l in range(L + 1)]   # a^l
    Q = [np.empty((min(N, widths[l]) if l > 0 else 0, widths[l])) for l in range(L + 1)]
    R = [np.empty((min(N, widths[l]), N)) for l in range(L + 1)]
    G = [np.empty((min(N, widths[max(l - 1, 0)]), max(widths[l], widths[max(l - 1, 0)]) if ortho else widths[l]))
         for l in range(L + 1)]
    Go = np.empty((min(N, widths[L]), K))
    rank = np.zeros(L + 1, dtype=np.int64)
    Dl = np.empty((N, nmax))
    Dn = np.empty((N, nmax))
    E = np.empty((N, K))
    Z = np.empty((N, K))
    Qs = np.empty((rs, nmax))
    Rs = np.empty((rs, N))
    Y = np.empty((rs, nmax))
    v = np.empty(nmax)
    need = np.zeros(nmax, dtype=np.uint8)
    ws = rng.row_workspace(nmax)
    hn2 = np.empty((N, L + 1))
    dn2 = np.zeros((N, L + 1))
    U = np.empty((N if ortho else 0, nmax))
    Rz = np.empty((rs, rs))
    for t in range(lo, hi):
        j = t - first
        dead[j] = projected_trial(t, k0, k1, widths, var, head, K, data, R0fixed, r0fixed, N, backward,
                                  H, Q, R, rank, G, Go, Dl, Dn, E, Z, Qs, Rs, Y, v, need, ws,
                                  hn2, dn2, fwd[j], bwd[j], ortho, gain, U, Rz, act, alpha, A)


def fixed_input_factor(plan):
    """(R0, r0) of a plan: the thin QR factor R0 (min(N, n_0), N) of its fixed inputs and their
    rank r0 (zeros and 0 for random inputs), computed once and kept on the plan."""
    if not hasattr(plan, "_input_factor"):
        N, n0 = plan.samples, int(plan.widths[0])
        R0 = np.zeros((min(N, n0), N))
        r0 = 0
        if plan.data == DATA_FIXED:
            r0 = mgs(plan.X0, N, n0, np.empty((min(N, n0), n0)), R0, np.empty(n0))
        plan._input_factor = (R0, r0)
    return plan._input_factor


def fill(plan, first, count, fwd, bwd, dead):
    """Compute trials first..first+count-1 into fwd, bwd (count, N, L) and dead (count,);
    bwd is left as it is when the plan wants no backward ratios (plan.backward False)."""
    from .common import refuse_unbuilt
    refuse_unbuilt(plan, "projected", activation=True, orthogonal=True)
    if plan.dist not in (DIST_NORMAL, DIST_ORTHOGONAL):
        raise ValueError("the projected kernel is exact for Gaussian and orthogonal weights only")
    R0, r0 = fixed_input_factor(plan)
    run_chunks(_chunk, first, count, (first, plan.k0, plan.k1, plan.widths, plan.var, plan.head,
                                      plan.classes, plan.data, R0, r0, plan.samples, bool(plan.backward),
                                      fwd, bwd, dead, plan.dist == DIST_ORTHOGONAL, plan.gain,
                                      int(plan.act), float(plan.alpha)))
