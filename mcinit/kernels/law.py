"""The law kernel: one input, Gaussian (or orthogonal) weights, any activation, exact in law.

For one input, with s_l = ||h^l|| and g_l = W_l h^(l-1) / s_(l-1) ~ N(0, v_l I):
  h^l = s_(l-1) ReLU(g_l), so rho_l / rho_(l-1) = v_l c_l,  c_l = chi2(K_l),
  K_l = #{i: g_l,i > 0} ~ Binomial(n_l, 1/2)                          (docs/design.md section 4)
Backward, write delta^l = beta_l q_l + u_l with q_l = h^l / s_l and u_l orthogonal
to q_l on the active set S_l.  By the projected decomposition of W_l^T
(docs/design.md section 4, with Q = q_(l-1)), and since g_l restricted to S_l is parallel to q_l
(so g_l . u_l = 0):
  beta_(l-1)    = beta_l sqrt(v_l c_l)
  ||u_(l-1)||^2 = ||delta^l||^2 v_l d_(l-1),   d_(l-1) = chi2(K_(l-1) - 1)
  ||delta^l||^2 = beta_l^2 + ||u_l||^2
with the head (W_o ~ N(0, 1), G_o = W_o q_L ~ N(0, I_K), z = s_L G_o):
  beta_L = G_o . e,  ||u_L||^2 = ||e||^2 d_L.
All chi-square factors are independent given the K_l.  So every ratio of
docs/design.md section 2 is a function of 3L + O(K) scalar variates:
  rho_l = prod_(k<=l) v_k c_k,   gamma_l = ||delta^l||^2 rho_(l-1) / ||delta^L||^2.
||x|| enters only through the softmax logits: ||x||^2 ~ chi2(n_0) for gaussian
data, 1 on the sphere, the row's norm for a fixed input.

Random numbers: layer l, STREAM_LAW, row 0: K_l by inversion of the exact
binomial CDF with a 53-bit uniform; row 1: c_l; row 2: d_l; layer 0 row 0:
||x||^2; layer L+1 row 0: G_o; targets/errors as in every kernel (STREAM_TARGET).
Chi-square variates are 2 Gamma(k/2) by Marsaglia and Tsang's exact rejection
method, attempt j using block j of the row.

Two implementations draw these numbers: ``law_trial``, one trial at a time (the
reference, and what the CUDA kernel runs per thread), and ``law_block``, which the
CPU's ``fill`` runs: the same numbers for LANES trials at a time, stage by stage
(all binomials, then the first Marsaglia-Tsang attempt of every chi-square, then
the head), each stage a loop across the trials, so that independent Philox blocks,
normal inversions and exponentials overlap or vectorise instead of waiting on one
trial's branches.  The tests check the two trial by trial.

Other activations and orthogonal weights (docs/design.md section 14): homogeneous_trial draws
leaky-relu, abs and linear layers (and orthogonal relu) from closed forms, O(1) per layer, the
backward pass included for Gaussian weights; chain_trial draws any activation (tanh, gelu) exactly
in law from each layer's vector in its own coordinates, O(n_l) normals per layer.  Orthogonal
weights: the closed forms draw the forward ratios, the chain both.  fill picks one (method_of).

Residual networks (--arch residual, one input, the forward property): residual_law_trial
draws each block's ratio from its exact law, O(1) per layer (docs/design.md section 9).
"""

import math

import numpy as np
from numba import njit, prange
from scipy import stats

from .. import rng
from ..activations import ACT_ABS, ACT_LEAKY, ACT_LINEAR, ACT_RELU, dphi, phi
from ..initializers import DIST_NORMAL, DIST_ORTHOGONAL
from .common import DATA_FIXED, DATA_GAUSSIAN, HEAD_GAUSSIAN, forward_deaths, head_error, run_chunks

__all__ = ["fill", "method_of", "homogeneous_trial", "chain_trial", "tables", "binomial_tables", "guide_tables", "sample_binomial", "sample_binomial_guided",
           "law_trial", "law_block", "gamma_c_table", "LANES"]

@njit(cache=True)
def sample_binomial(cdf, lo, n, k0, k1, c2, c3, row):
    """K with P(K <= k) = cdf[lo + k], k = 0..n, by inversion of a 53-bit uniform."""
    w0, w1, w2, w3 = rng.philox_block(np.uint64(0), np.uint64(row), c2, c3, k0, k1)
    u = rng.words_to_u53(w0, w1)
    a = 0
    b = n
    while a < b:  # smallest k with u < cdf[k]
        m = (a + b) // 2
        if u < cdf[lo + m]:
            b = m
        else:
            a = m + 1
    return a


#: guide-table resolution: bucket g of a uniform u holds u in [g/GUIDE, (g+1)/GUIDE)
GUIDE = 4096


@njit(cache=True)
def sample_binomial_guided(cdf, lo, n, guide, glo, k0, k1, c2, c3, row):
    """The same K as sample_binomial, found from u's guide-table bucket by a short linear search."""
    w0, w1, w2, w3 = rng.philox_block(np.uint64(0), np.uint64(row), c2, c3, k0, k1)
    u = rng.words_to_u53(w0, w1)
    k = guide[glo + int(u * GUIDE)]
    while k < n and cdf[lo + k] <= u:
        k += 1
    return k


def guide_tables(cdf, offs):
    """For each table and bucket g, the smallest k with cdf[k] > g / GUIDE (the answer for
    any u in the bucket is at least that k)."""
    L = len(offs) - 1
    guide = np.empty(L * GUIDE, dtype=np.int64)
    g = np.arange(GUIDE) / GUIDE
    for i in range(L):
        c = cdf[offs[i]:offs[i + 1]]
        guide[i * GUIDE:(i + 1) * GUIDE] = np.searchsorted(c, g, side="right")
    return guide


def binomial_tables(widths):
    """Flat CDF tables of Binomial(n_l, 1/2), l = 1..L, and their offsets."""
    offs = np.zeros(len(widths) + 1, dtype=np.int64)
    parts = []
    for i, n in enumerate(widths):
        k = np.arange(n + 1)
        # lower half from the CDF, upper half from the survival function: both accurate
        cdf = np.where(k < n / 2, stats.binom.cdf(k, n, 0.5), 1.0 - stats.binom.sf(k, n, 0.5))
        cdf[-1] = 1.0
        parts.append(cdf)
        offs[i + 1] = offs[i] + n + 1
    return np.concatenate(parts), offs


@njit(cache=True)
def law_trial(trial, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
              c, d, rho, dn2, Go, z, e, fwd, bwd):
    # the rows below are passed as int64 (np.int64(j)), not as literal constants: numba compiles
    # a callee once more for each literal argument, and law_block calls the same helpers with
    # int64 rows, so one compiled version serves both
    L = widths.shape[0] - 1
    # forward: rho_l = prod v_k chi2(K_k)
    r = 1.0
    for l in range(1, L + 1):
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
        Kl = sample_binomial_guided(cdf, offs[l - 1], widths[l], guide, (l - 1) * GUIDE, k0, k1, c2, c3, 0)
        c[l] = 2.0 * rng.sample_gamma(0.5 * Kl, k0, k1, c2, c3, np.int64(1))
        d[l] = 2.0 * rng.sample_gamma(0.5 * (Kl - 1), k0, k1, c2, c3, np.int64(2)) if Kl > 1 else 0.0
        r *= var[l - 1] * c[l]
        rho[l] = r
    # ||x||^2
    if data == DATA_FIXED:
        s02 = xnorm2
    elif data == DATA_GAUSSIAN:
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_LAW)
        s02 = 2.0 * rng.sample_gamma(0.5 * widths[0], k0, k1, c2, c3, np.int64(0))
    else:
        s02 = 1.0
    # head: G_o ~ N(0, I_K), z = s_L G_o, beta_L = G_o . e, ||u_L||^2 = ||e||^2 d_L
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_LAW)
    rng.fill_normal_row(k0, k1, c2, c3, np.int64(0), 1.0, Go, K)
    sL = math.sqrt(s02 * rho[L])
    for j in range(K):
        z[j] = sL * Go[j]
    head_error(k0, k1, trial, L + 1, head, z, np.int64(0), e, K)
    beta = 0.0
    e2 = 0.0
    for j in range(K):
        beta += Go[j] * e[j]
        e2 += e[j] * e[j]
    if rho[L] == 0.0:
        beta = 0.0
        e2 = 0.0
    dn2[L] = beta * beta + e2 * d[L]
    # backward: beta_(l-1) = beta_l sqrt(v_l c_l), ||u_(l-1)||^2 = ||delta^l||^2 v_l d_(l-1)
    for l in range(L, 1, -1):
        beta *= math.sqrt(var[l - 1] * c[l])
        dn2[l - 1] = beta * beta + dn2[l] * var[l - 1] * d[l - 1]
    dead = dn2[L] == 0.0
    prev = 1.0
    for l in range(1, L + 1):
        fwd[l - 1] = rho[l]
        if rho[l] == 0.0:
            dead = True
        bwd[l - 1] = np.inf if dn2[L] == 0.0 else (dn2[l] / dn2[L]) * prev
        prev = rho[l]
    return dead


#: trials per lane block of the batched CPU path: every stage below is a loop over
#: the block's trials, so independent Philox blocks and normal inversions overlap
#: (and vectorise) instead of running one trial's chain at a time
LANES = 64
_THIRD = 1.0 / 3.0


@njit(cache=True)
def gamma_c_table(widths):
    """c[j] = 1 / sqrt(9 (j / 2 - 1/3)), Marsaglia-Tsang's c of the shape a = j / 2, for
    j = 0 .. max(widths) (rng.sample_gamma's numbers, which compute it per call; NaN or
    unused below a = 1): every chi-square of a trial has such a shape (K_l, K_l - 1, n_0)."""
    n = 0
    for w in widths:
        n = max(n, w)
    c = np.empty(n + 1)
    for j in range(n + 1):
        d = 0.5 * j - 1.0 / 3.0
        c[j] = 1.0 / math.sqrt(9.0 * d) if d > 0.0 else np.nan
    return c


@njit(cache=True)
def _gamma_after_squeeze(a, x, u, k0, k1, c2, c3, row):
    """rng.sample_gamma(a, ...) for a >= 1, given attempt 0's normal x and uniform u
    (from block 0 of the row): the same number, continuing its rejection loop."""
    d = a - _THIRD
    c = 1.0 / math.sqrt(9.0 * d)
    r = np.uint64(row)
    j = 0
    while True:
        if j > 0:
            w0, w1, w2, w3 = rng.philox_block(np.uint64(j), r, c2, c3, k0, k1)
            x = rng.u32_to_normal(w0)
            u = rng.u32_to_uniform(w1)
        j += 1
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or rng.log_pos(u) < 0.5 * x2 + d * (1.0 - v + rng.log_pos(v)):
            return d * v


@njit(cache=True, error_model="numpy")
def _normals(W, X, m, Y):
    """X[i] = rng.u32_to_normal(W[i]), i < m (W uint32 words): the generator's own vectorised
    passes (central values for all, the tail words gathered).  Y: float64 scratch, 2 m."""
    rng.normals_of_words(W, m, 1.0, X, Y)


@njit(cache=True, error_model="numpy")
def _gammas(A, C, W, U, X, G, m, k0, k1, t0, L, idx, Y, V):
    """G[s LANES + i] = rng.sample_gamma(A[s LANES + i], ...) of trial t0 + i in slot s (layer
    s // 2 + 1, row 1 + s % 2 for s < 2 L; layer 0, row 0 after), given attempt 0's words:
    W (uint32, for the normal) and U (as a uniform), for the m = slots x LANES entries;
    C[i]: the shape's c (gamma_c_table), rng.sample_gamma's number for A[i] >= 1.

    Marsaglia-Tsang's first attempt for every entry, branch-free up to its squeeze
    (which accepts about 90%); then, for the others, its logarithmic test in vectorised
    passes (fdlibm's log, rng.log_pos's numbers); what is left (v <= 0, a rejected
    first attempt, a < 1: about 1%) is finished one by one.
    idx: int64 scratch (m); Y: float64 scratch (2 m); V: float64 scratch (4 m)."""
    _normals(W, X, m, Y)
    for i in range(m):
        d = A[i] - _THIRD
        c = C[i]
        x = X[i]
        v = 1.0 + c * x
        v3 = v * v * v
        x2 = x * x
        ok = (v > 0.0) & (U[i] < 1.0 - 0.0331 * x2 * x2) & (A[i] >= 1.0)
        G[i] = d * v3 if ok else -1.0
    k = 0
    for i in range(m):
        idx[k] = i
        k += G[i] < 0.0
    # the log test log u < x^2 / 2 + d (1 - v + log v) of the failures, in gathered arrays
    Ug = V[:k]
    Vg = V[k:2 * k]
    Lu = V[2 * k:3 * k]
    Lv = V[3 * k:4 * k]
    for j in range(k):
        i = idx[j]
        Ug[j] = U[i]
        v = 1.0 + C[i] * X[i]
        Vg[j] = v * v * v          # <= 0 when v <= 0: its log is NaN, the test fails
    ws = Y.view(np.int64)
    rng.log_values(Ug, Lu, k, ws)
    rng.log_values(Vg, Lv, k, ws)
    for j in range(k):
        i = idx[j]
        d = A[i] - _THIRD
        x = X[i]
        v3 = Vg[j]
        ok = (Lu[j] < 0.5 * (x * x) + d * (1.0 - v3 + Lv[j])) & (A[i] >= 1.0)
        G[i] = d * v3 if ok else -1.0
    r = 0
    for j in range(k):
        i = idx[j]
        idx[r] = i
        r += G[i] < 0.0
    for j in range(r):
        i = idx[j]
        a = A[i]
        s = i // LANES
        layer = s // 2 + 1 if s < 2 * L else 0
        row = 1 + s % 2 if s < 2 * L else 0
        c2, c3 = rng.counter_words(t0 + i % LANES, layer, rng.STREAM_LAW)
        if a <= 0.0:
            G[i] = 0.0
        elif a < 1.0:
            G[i] = rng.sample_gamma(a, k0, k1, c2, c3, row)
        else:
            G[i] = _gamma_after_squeeze(a, X[i], U[i], k0, k1, c2, c3, row)


@njit(cache=True, error_model="numpy")
def _softmax_error(Z, T, E, K, n, Q, A, ws):
    """E[:, i] = softmax(Z[:, i]) - T[:, i] / sum(T[:, i]) for i < n, as common.head_error
    computes it (the same sums in the same order, rng.exp's exponentials), in loops over i.
    Q: (3, LANES) scratch; A: (K, LANES) float64 scratch; ws: int64 scratch (2 K LANES)."""
    ts = Q[0]
    zmax = Q[1]
    s = Q[2]
    for i in range(n):
        ts[i] = 0.0
        zmax[i] = Z[0, i]
        s[i] = 0.0
    for j in range(K):
        for i in range(n):
            ts[i] += T[j, i]
    for j in range(1, K):
        for i in range(n):
            z = Z[j, i]
            zmax[i] = z if z > zmax[i] else zmax[i]
    for j in range(K):
        for i in range(n):
            A[j, i] = Z[j, i] - zmax[i]
    rng.exp_values(A.reshape(-1), E.reshape(-1), K * LANES, ws)
    for j in range(K):
        for i in range(n):
            s[i] += E[j, i]
    for j in range(K):
        for i in range(n):
            E[j, i] = E[j, i] / s[i] - T[j, i] / ts[i]


@njit(cache=True, error_model="numpy")
def law_block(t0, n, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide, ctab, ws, fwd, bwd, dead, j0):
    """Trials t0 .. t0+n-1 (n <= LANES) into fwd[j0 + i, 0], bwd[j0 + i, 0], dead[j0 + i]:
    law_trial's numbers, computed stage by stage across the block's trials.

    ctab: gamma_c_table(widths); ws: the workspace of make_workspace."""
    KL, S, W, P, U, X, G, V, A, rho, cc, dd, H, R, Z, E, I, Y, Q, Wb, Cs = ws
    L = widths.shape[0] - 1
    # K_l by guided inversion (layer l, row 0, block 0)
    for l in range(1, L + 1):
        rng.philox_lanes(k0, k1, 0, 0, t0, n, l, rng.STREAM_LAW, Wb, 0, LANES)
        for i in range(n):
            U[i] = rng.words_to_u53(Wb[i], Wb[LANES + i])
        lo = offs[l - 1]
        glo = (l - 1) * GUIDE
        nl = widths[l]
        for i in range(n):
            u = U[i]
            k = guide[glo + int(u * GUIDE)]
            while k < nl and cdf[lo + k] <= u:
                k += 1
            KL[l, i] = k
    # Gamma shapes, in slots: c_l (layer l, row 1), d_l (layer l, row 2), ||x||^2 (layer 0, row 0)
    ns = 2 * L + (1 if data == DATA_GAUSSIAN else 0)
    for s in range(ns):
        if s < 2 * L:
            l = s // 2 + 1
            rw = 1 + s % 2
        else:
            l = 0
            rw = 0
        if s >= 2 * L:
            for i in range(n):
                S[s * LANES + i] = 0.5 * widths[0]
                Cs[s * LANES + i] = ctab[widths[0]]
        elif rw == 1:
            for i in range(n):
                k = KL[l, i]
                S[s * LANES + i] = 0.5 * k
                Cs[s * LANES + i] = ctab[k]
        else:
            for i in range(n):
                k = KL[l, i]
                S[s * LANES + i] = 0.5 * (k - 1) if k > 1 else 0.0
                Cs[s * LANES + i] = ctab[k - 1] if k > 1 else np.nan
        for i in range(n, LANES):
            S[s * LANES + i] = 1.0
            Cs[s * LANES + i] = ctab[2]
        rng.philox_lanes(k0, k1, 0, rw, t0, LANES, l, rng.STREAM_LAW, Wb, 0, LANES)
        for i in range(LANES):
            W[s * LANES + i] = Wb[i]
            U[s * LANES + i] = rng.u32_to_uniform(Wb[LANES + i])
    _gammas(S, Cs, W, U, X, G, ns * LANES, k0, k1, t0, L, I, Y, V)
    # forward: rho_l = prod v_k c_k, c_l = 2 Gamma(K_l / 2); d_l = 2 Gamma((K_l - 1) / 2)
    for i in range(n):
        rho[0, i] = 1.0
    for l in range(1, L + 1):
        vl = var[l - 1]
        for i in range(n):
            cl = 2.0 * G[(2 * l - 2) * LANES + i]
            cc[l, i] = cl
            dd[l, i] = 2.0 * G[(2 * l - 1) * LANES + i] if KL[l, i] > 1 else 0.0
            rho[l, i] = rho[l - 1, i] * (vl * cl)
    # ||x||^2, then the head's logits z = s_L G_o, G_o ~ N(0, I_K) (layer L+1, row 0)
    nb = (K + 3) // 4
    for i in range(n):
        if data == DATA_FIXED:
            s02 = xnorm2
        elif data == DATA_GAUSSIAN:
            s02 = 2.0 * G[2 * L * LANES + i]
        else:
            s02 = 1.0
        R[i] = math.sqrt(s02 * rho[L, i])
    for b in range(nb):
        rng.philox_lanes(k0, k1, b, 0, t0, n, L + 1, rng.STREAM_LAW, W, 4 * b * LANES, LANES)
    _normals(W, X, K * LANES, Y)
    Go = X[:K * LANES].reshape((K, LANES))
    for j in range(K):
        for i in range(n):
            Z[j, i] = R[i] * Go[j, i]
    # targets or errors (layer L+1, STREAM_TARGET, row 0), as common.head_error
    for b in range(nb):
        rng.philox_lanes(k0, k1, b, 0, t0, n, L + 1, rng.STREAM_TARGET, W, 4 * b * LANES, LANES)
    T = P[:K * LANES].reshape((K, LANES))
    if head == HEAD_GAUSSIAN:
        _normals(W, G, K * LANES, Y)
        for j in range(K):
            for i in range(n):
                E[j, i] = G[j * LANES + i]
    else:
        for j in range(K):
            for i in range(n):
                T[j, i] = rng.u32_to_uniform(W[j * LANES + i])
        _softmax_error(Z, T, E, K, n, Q, A, I)
    # beta_L = G_o . e, ||delta^L||^2 = beta_L^2 + ||e||^2 d_L; then the backward recursion
    bt = Q[0]
    e2 = Q[1]
    for i in range(n):
        bt[i] = 0.0
        e2[i] = 0.0
    for j in range(K):
        for i in range(n):
            bt[i] += Go[j, i] * E[j, i]
            e2[i] += E[j, i] * E[j, i]
    for i in range(n):
        live = rho[L, i] != 0.0
        beta = bt[i] if live else 0.0
        H[L, i] = beta * beta + (e2[i] if live else 0.0) * dd[L, i]
        R[i] = beta
    for l in range(L, 1, -1):
        vl = var[l - 1]
        for i in range(n):
            beta = R[i] * math.sqrt(vl * cc[l, i])
            R[i] = beta
            H[l - 1, i] = beta * beta + H[l, i] * vl * dd[l - 1, i]
    # the ratios, layer by layer across the trials; rho_l = 0 from a dead layer on, so
    # rho_L = 0 exactly when some layer is dead
    for l in range(1, L + 1):
        for i in range(n):
            dn2L = H[L, i]
            fwd[j0 + i, 0, l - 1] = rho[l, i]
            bwd[j0 + i, 0, l - 1] = np.inf if dn2L == 0.0 else (H[l, i] / dn2L) * rho[l - 1, i]
    for i in range(n):
        dead[j0 + i] = (H[L, i] == 0.0) | (rho[L, i] == 0.0)


@njit(cache=True)
def make_workspace(L, K):
    """Scratch of law_block for depth L and K classes."""
    m = max(2 * L + 1, K + 4 - K % 4 if K % 4 else K) * LANES
    return (np.zeros((L + 1, LANES), dtype=np.int64), np.ones(m), np.zeros(m, dtype=np.uint32), np.full(m, 0.5), np.full(m, 0.5),
            np.zeros(m), np.zeros(m), np.zeros(4 * m), np.zeros((K, LANES)),
            np.zeros((L + 1, LANES)), np.zeros((L + 1, LANES)), np.zeros((L + 1, LANES)),
            np.zeros((L + 1, LANES)), np.zeros(LANES), np.zeros((K, LANES)), np.zeros((K, LANES)),
            np.zeros(2 * m, dtype=np.int64), np.zeros(2 * m),
            np.zeros((3, LANES)), np.zeros(4 * LANES, dtype=np.uint32), np.full(m, np.nan))


@njit(cache=True, nogil=True)
def _chunk(lo, hi, first, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide, ctab,
                   fwd, bwd, dead):
    """Trials lo..hi-1 in blocks of LANES, with one workspace: a work unit of fill."""
    L = widths.shape[0] - 1
    ws = make_workspace(L, K)
    for t0 in range(lo, hi, LANES):
        law_block(t0, min(LANES, hi - t0), k0, k1, widths, var, head, K, data, xnorm2, cdf, offs,
                  guide, ctab, ws, fwd, bwd, dead, t0 - first)


def fill_in_chunks(first, count, nchunks, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
                   fwd, bwd, dead):
    """fill's work units, nchunks of them, one after the other (for tests)."""
    ctab = gamma_c_table(widths)
    for ch in range(nchunks):
        _chunk(first + (count * ch) // nchunks, first + (count * (ch + 1)) // nchunks, first,
               k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide, ctab, fwd, bwd, dead)


@njit(cache=True, parallel=True, nogil=True)
def fill_by_law_trial(first, count, nchunks, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs,
                      guide, fwd, bwd, dead):
    """The reference path: law_trial one trial at a time (what the CUDA kernel runs)."""
    L = widths.shape[0] - 1
    for ch in prange(nchunks):
        lo = first + (count * ch) // nchunks
        hi = first + (count * (ch + 1)) // nchunks
        c = np.zeros(L + 1)
        d = np.zeros(L + 1)
        rho = np.zeros(L + 1)
        dn2 = np.zeros(L + 1)
        Go = np.empty(K)
        z = np.empty(K)
        e = np.empty(K)
        for t in range(lo, hi):
            j = t - first
            dead[j] = law_trial(t, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
                                c, d, rho, dn2, Go, z, e, fwd[j, 0], bwd[j, 0])


# ------------------------------------------------------------ other activations, orthogonal weights

#: STREAM_LAW rows of the closed forms (homogeneous_trial) beyond law_trial's rows 0..2 of a layer
ROW_OTHER_CHI2 = 3      # chi2(n_l - K_l): the inactive units (Gaussian) / Gamma((n_l - K_l)/2) (orthogonal)
ROW_OTHER_DCHI2 = 4     # chi2(n_l - K_l - 1): backward, the inactive units orthogonal to q_l
ROW_MIX_NORMAL = 5      # w ~ N(0, 1): backward, the component of the plane of u_S, u_C orthogonal to q_l
ROW_REST_GAMMA = 6      # Gamma((M - n_l)/2): orthogonal weights, the coordinates beyond n_l
#: STREAM_LAW rows of the chain (chain_trial): layer l's forward normals, and its backward normals
#: (layer l: y in R^(n_(l-1)) for W_l^T delta^l; layer L+1: y in R^(n_L) for W_o^T e)
ROW_CHAIN_FORWARD = 8
ROW_CHAIN_BACKWARD = 9


@njit(cache=True)
def _slope2(act, alpha):
    """alpha^2 of D = diag(phi'(a)) on the inactive units: relu 0, leaky-relu alpha^2; abs and
    linear have no inactive units (every unit counts as active, K = n, phi'^2 = 1)."""
    if act == ACT_RELU:
        return 0.0
    if act == ACT_LEAKY:
        return alpha * alpha
    return 1.0


@njit(cache=True)
def homogeneous_trial(trial, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data, xnorm2,
                      cdf, offs, guide, V, KK, S, R, Gm, rho, dn2, Go, z, e, fwd, bwd):
    """One trial of relu, leaky-relu, abs or linear layers in O(1) per layer (docs/design.md
    section 14); returns the dead flag (the forward deaths only without ``backward``).

    Layer l: K_l ~ Bin(n_l, 1/2) active units (abs, linear: K_l = n_l), A_l = chi2(K_l) and
    B_l = chi2(n_l - K_l) (drawn only for leaky-relu), alpha2 = alpha^2:
      Gaussian:    rho_l / rho_(l-1) = v_l (A_l + alpha2 B_l)
      orthogonal:  rho_l / rho_(l-1) = g_l^2 (G_a + alpha2 G_b) / (G_a + G_b + G_c), G_a, G_b, G_c
                   Gamma(K_l/2), Gamma((n_l - K_l)/2), Gamma((M_l - n_l)/2), M_l = max(n_(l-1), n_l)
                   (relu: G_b + G_c drawn as one Gamma((M_l - K_l)/2)); forward only.
    Backward (Gaussian), p_l the coefficient of q_l in W_(l+1)^T delta^(l+1) (p_L = G_o . e) and
    sigma_l^2 = v_(l+1) ||delta^(l+1)||^2 (sigma_L^2 = ||e||^2), cos^2 = A_l / (A_l + alpha2 B_l):
      ||delta^l||^2 = p^2 (cos^2 + alpha2 sin^2) + 2 p sigma w |sin cos| (alpha2 - 1)
                      + sigma^2 (w^2 (sin^2 + alpha2 cos^2) + chi2(K_l - 1) + alpha2 chi2(n_l - K_l - 1)),
      p_(l-1) = sqrt(v_l (A_l + alpha2 B_l)) p_l,   w ~ N(0, 1) (0 unless 0 < K_l < n_l).
    Rows of layer l (STREAM_LAW): 0 K_l, 1 A_l, 2 chi2(K_l - 1), as law_trial (relu's numbers are
    law_trial's); ROW_OTHER_CHI2, ROW_OTHER_DCHI2, ROW_MIX_NORMAL, ROW_REST_GAMMA.
    Scratch: V (5, L+1) (A, B, chi2(K - 1), chi2(n - K - 1), w of each layer), KK (L+1) int64,
    S (4) float64, R (4) int64, Gm (4): every Gamma variate of a layer is drawn at one call of
    rng.sample_gamma in a loop (one inlined copy of the sampler: numba compiles it in seconds)."""
    L = widths.shape[0] - 1
    a2 = _slope2(act, alpha)
    full = act == ACT_ABS or act == ACT_LINEAR
    r = 1.0
    rho[0] = 1.0
    s02 = xnorm2 if data == DATA_FIXED else 1.0
    for l in range(0 if data == DATA_GAUSSIAN and backward else 1, L + 1):
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
        # the layer's Gamma shapes and rows
        if l == 0:
            S[0] = 0.5 * widths[0]          # ||x||^2 = chi2(n_0), layer 0 row 0
            R[0] = 0
            m = 1
        else:
            n = widths[l]
            if full:
                Kl = n
            else:
                Kl = sample_binomial_guided(cdf, offs[l - 1], n, guide, (l - 1) * GUIDE, k0, k1, c2, c3, 0)
            KK[l] = Kl
            S[0] = 0.5 * Kl
            R[0] = 1
            R[1] = ROW_OTHER_CHI2
            if orth:
                M = max(widths[l - 1], n)
                S[1] = 0.5 * (M - Kl) if a2 == 0.0 else 0.5 * (n - Kl)
                S[2] = 0.0 if a2 == 0.0 else 0.5 * (M - n)
                R[2] = ROW_REST_GAMMA
                m = 3
            else:
                S[1] = 0.5 * (n - Kl) if a2 != 0.0 else 0.0
                S[2] = 0.5 * (Kl - 1)
                R[2] = 2
                S[3] = 0.5 * (n - Kl - 1) if a2 != 0.0 else 0.0
                R[3] = ROW_OTHER_DCHI2
                m = 4 if backward else 2
        for i in range(m):
            Gm[i] = rng.sample_gamma(S[i], k0, k1, c2, c3, R[i])      # 0 for a shape <= 0
        if l == 0:
            s02 = 2.0 * Gm[0]
            continue
        if orth:
            g = gain[l - 1]
            r *= g * g * ((Gm[0] + a2 * Gm[1]) / (Gm[0] + Gm[1] + Gm[2]))
        else:
            for i in range(4):
                V[i, l] = 2.0 * Gm[i] if i < m else 0.0
            r *= var[l - 1] * (V[0, l] + a2 * V[1, l])
            V[4, l] = 0.0
            if backward and a2 != 0.0 and Kl > 0 and Kl < n:
                w0, w1, w2, w3 = rng.philox_block(np.uint64(0), np.uint64(ROW_MIX_NORMAL), c2, c3, k0, k1)
                V[4, l] = rng.u32_to_normal(w0)                        # fill_normal_row's first normal
        rho[l] = r
    dead = False
    for l in range(1, L + 1):
        fwd[l - 1] = rho[l]
        if rho[l] == 0.0:
            dead = True
    if not backward:
        return dead
    # the head z = s_L G_o (layer L+1, row 0) and e, as law_trial
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_LAW)
    rng.fill_normal_row(k0, k1, c2, c3, np.int64(0), 1.0, Go, K)
    sL = math.sqrt(s02 * rho[L])
    for j in range(K):
        z[j] = sL * Go[j]
    head_error(k0, k1, trial, L + 1, head, z, np.int64(0), e, K)
    p = 0.0
    sig2 = 0.0
    for j in range(K):
        p += Go[j] * e[j]
        sig2 += e[j] * e[j]
    if rho[L] == 0.0:
        p = 0.0
        sig2 = 0.0
    for l in range(L, 0, -1):
        A = V[0, l]
        B = V[1, l]
        w = V[4, l]
        N2 = A + a2 * B
        if N2 > 0.0:
            cos2 = A / N2
            sin2 = a2 * B / N2
        else:
            cos2 = 1.0
            sin2 = 0.0
        cross = 2.0 * p * math.sqrt(sig2) * w * math.sqrt(sin2 * cos2) * (a2 - 1.0)
        dn2[l] = p * p * (cos2 + a2 * sin2) + cross + sig2 * (w * w * (sin2 + a2 * cos2) + V[2, l] + a2 * V[3, l])
        p *= math.sqrt(var[l - 1] * N2)
        sig2 = var[l - 1] * dn2[l]
    if dn2[L] == 0.0:
        dead = True
    prev = 1.0
    for l in range(1, L + 1):
        bwd[l - 1] = np.inf if dn2[L] == 0.0 else (dn2[l] / dn2[L]) * prev
        prev = rho[l]
    return dead


@njit(cache=True)
def chain_trial(trial, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data, xnorm2,
                offs, Abuf, Hbuf, Zs, Dn, Y, ws, s, dn2, Go, z, e, fwd, bwd):
    """One trial of any activation, exact in law, O(n_l) normals per layer (docs/design.md
    section 14); returns the dead flag (the forward deaths only without ``backward``).

    Forward, in each layer's own coordinates: a^l = sqrt(v_l) s_(l-1) z, z ~ N(0, I_(n_l))
    (orthogonal: a^l = g_l s_(l-1) (z_1..z_(n_l)) / ||z||, z ~ N(0, I_M)), h^l = phi(a^l), s_l = ||h^l||.
    Backward: W_l^T delta^l = q_(l-1) (a^l . delta^l) / s_(l-1) + sqrt(v_l) ||delta^l|| (I - q q^T) y,
    q = h^(l-1) / s_(l-1), y ~ N(0, I); delta^(l-1) = phi'(a^(l-1)) * W_l^T delta^l; the head
    W_o^T e = q_L (G_o . e) + ||e|| (I - q q^T) y.  Orthogonal weights: the same with
    g_l sqrt(||delta^l||^2 - (w . delta^l)^2) / ||(I - q q^T) y||, y ~ N(0, I_M), w = a^l / (g_l s_(l-1)),
    for sqrt(v_l) ||delta^l|| (docs/design.md section 14).
    a^l, h^l: Abuf, Hbuf[offs[l - 1]:offs[l - 1] + n_l]; Zs (max M), Dn, Y (max n), ws (rng.row_workspace(max M)): scratch;
    s (L+1), dn2 (L+1).  Rows: ROW_CHAIN_FORWARD, ROW_CHAIN_BACKWARD of layer l; ||x||^2 and
    G_o as law_trial."""
    L = widths.shape[0] - 1
    if data == DATA_FIXED:
        s02 = xnorm2
    elif data == DATA_GAUSSIAN:
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_LAW)
        s02 = 2.0 * rng.sample_gamma(0.5 * widths[0], k0, k1, c2, c3, np.int64(0))
    else:
        s02 = 1.0
    s[0] = math.sqrt(s02)
    dead = False
    for l in range(1, L + 1):
        n = widths[l]
        o = offs[l - 1]
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
        if orth:
            M = max(widths[l - 1], n)
            rng.fill_normal_row_ws(k0, k1, c2, c3, np.int64(ROW_CHAIN_FORWARD), 1.0, Zs, M, ws)
            zz = 0.0
            for i in range(M):
                zz += Zs[i] * Zs[i]
            scale = gain[l - 1] * s[l - 1] / math.sqrt(zz)
            for i in range(n):
                Abuf[o + i] = scale * Zs[i]
        else:
            rng.fill_normal_row_ws(k0, k1, c2, c3, np.int64(ROW_CHAIN_FORWARD), math.sqrt(var[l - 1]) * s[l - 1],
                                   Abuf[o:o + n], n, ws)
        h2 = 0.0
        for i in range(n):
            h = phi(act, alpha, Abuf[o + i])
            Hbuf[o + i] = h
            h2 += h * h
        s[l] = math.sqrt(h2)
        fwd[l - 1] = h2 / s02
        if h2 == 0.0:
            dead = True
    if not backward:
        return dead
    # head: G_o ~ N(0, I_K) (layer L+1, row 0), z = s_L G_o, e
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_LAW)
    rng.fill_normal_row(k0, k1, c2, c3, np.int64(0), 1.0, Go, K)
    for j in range(K):
        z[j] = s[L] * Go[j]
    head_error(k0, k1, trial, L + 1, head, z, np.int64(0), e, K)
    t = 0.0
    e2 = 0.0
    for j in range(K):
        t += Go[j] * e[j]
        e2 += e[j] * e[j]
    if s[L] == 0.0:
        for l in range(L + 1):
            dn2[l] = 0.0
    else:
        # delta^(l-1) = phi'(a^(l-1)) * (q t + sigma (y - q (q . y))), from layer l = L+1 (the head) down
        d2 = 0.0
        for l in range(L + 1, 1, -1):
            m = widths[l - 1]
            o = offs[l - 2]
            my = max(m, widths[l]) if orth and l <= L else m
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
            rng.fill_normal_row_ws(k0, k1, c2, c3, np.int64(ROW_CHAIN_BACKWARD), 1.0, Y, my, ws)
            inv = 1.0 / s[l - 1]
            qy = 0.0
            for i in range(m):
                qy += Hbuf[o + i] * inv * Y[i]
            if l == L + 1:
                sig = math.sqrt(e2)
            elif orth:
                # W_l^T delta = g (O^T [delta; 0])_(1..n_(l-1)), O^T x = q (w . x) + ||x - w (w . x)|| nu, nu uniform
                # on the unit sphere of q's complement in R^M: nu = (y - q (q . y)) / ||y - q (q . y)||, y ~ N(0, I_M)
                g = gain[l - 1]
                wd = t / g
                yy = 0.0
                for i in range(my):
                    yy += Y[i] * Y[i]
                sig = g * math.sqrt(max(d2 - wd * wd, 0.0) / (yy - qy * qy))
            else:
                sig = math.sqrt(var[l - 1] * d2)
            d2 = 0.0
            for i in range(m):
                q = Hbuf[o + i] * inv
                d = dphi(act, alpha, Abuf[o + i]) * (q * t + sig * (Y[i] - q * qy))
                Dn[i] = d
                d2 += d * d
            dn2[l - 1] = d2
            # for the next layer down: t = a^(l-1) . delta^(l-1) / s_(l-2) (and ||delta^(l-1)||^2 = d2)
            if l > 2:
                ad = 0.0
                for i in range(m):
                    ad += Abuf[o + i] * Dn[i]
                t = ad / s[l - 2]
    if dn2[L] == 0.0:
        dead = True
    prev = 1.0
    for l in range(1, L + 1):
        bwd[l - 1] = np.inf if dn2[L] == 0.0 else (dn2[l] / dn2[L]) * prev
        prev = fwd[l - 1]
    return dead


@njit(cache=True, nogil=True)
def _homogeneous_chunk(lo, hi, first, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data,
                       xnorm2, cdf, offs, guide, fwd, bwd, dead):
    """Trials lo..hi-1 of homogeneous_trial: a work unit of fill."""
    L = widths.shape[0] - 1
    V = np.zeros((5, L + 1))
    KK = np.zeros(L + 1, dtype=np.int64)
    S = np.zeros(4)
    R = np.zeros(4, dtype=np.int64)
    Gm = np.zeros(4)
    rho = np.zeros(L + 1)
    dn2 = np.zeros(L + 1)
    Go = np.empty(K)
    z = np.empty(K)
    e = np.empty(K)
    for t in range(lo, hi):
        j = t - first
        dead[j] = homogeneous_trial(t, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data,
                                    xnorm2, cdf, offs, guide, V, KK, S, R, Gm, rho, dn2, Go, z, e, fwd[j, 0],
                                    bwd[j, 0])


@njit(cache=True, nogil=True)
def _chain_chunk(lo, hi, first, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data, xnorm2,
                 fwd, bwd, dead):
    """Trials lo..hi-1 of chain_trial: a work unit of fill."""
    L = widths.shape[0] - 1
    offs = np.zeros(L + 1, dtype=np.int64)
    for l in range(1, L + 1):
        offs[l] = offs[l - 1] + widths[l]
    m = 1
    for w in widths:
        m = max(m, w)
    Abuf = np.empty(offs[L])
    Hbuf = np.empty(offs[L])
    Zs = np.empty(m)
    Dn = np.empty(m)
    Y = np.empty(m)
    ws = rng.row_workspace(m)
    s = np.zeros(L + 1)
    dn2 = np.zeros(L + 1)
    Go = np.empty(K)
    z = np.empty(K)
    e = np.empty(K)
    for t in range(lo, hi):
        j = t - first
        dead[j] = chain_trial(t, k0, k1, widths, var, gain, orth, act, alpha, backward, head, K, data, xnorm2,
                              offs, Abuf, Hbuf, Zs, Dn, Y, ws, s, dn2, Go, z, e, fwd[j, 0], bwd[j, 0])


# ------------------------------------------------------------ residual networks (forward)

@njit(cache=True)
def residual_law_trial(trial, k0, k1, widths, var, s, cdf, offs, guide, z, fwd):
    """rho_1..rho_L of one trial of a residual network (--arch residual), one input, Gaussian
    weights, into fwd (L,); returns the forward dead flag (some rho_l = 0).

    rho_1 = v_1 chi2(K_1); block b: rho_(2b) = rho_(2b-1) v_(2b) c, c = chi2(K_(2b)), and
    rho_(2b+1) = rho_(2b-1) R with R = (sigma Z + 1)^2 + sigma^2 chi2(n_1 - 1),
    sigma^2 = s^2 v_(2b+1) v_(2b) c (docs/design.md section 9).  Random numbers: layer l,
    STREAM_LAW: a ReLU layer's K_l (row 0) and chi2(K_l) (row 1) as in law_trial; a block's
    output layer's Z (row 0, word 0) and chi2(n_1 - 1) (row 1)."""
    L = widths.shape[0] - 1
    n1 = widths[1]
    r = 1.0
    sig2 = 0.0
    dead = False
    for l in range(1, L + 1):
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
        if l == 1 or l % 2 == 0:
            # a ReLU layer: v_l chi2(K_l), K_l ~ Bin(n_l, 1/2)
            Kl = sample_binomial_guided(cdf, offs[l - 1], widths[l], guide, (l - 1) * GUIDE, k0, k1, c2, c3, 0)
            c = 2.0 * rng.sample_gamma(0.5 * Kl, k0, k1, c2, c3, np.int64(1))
            fwd[l - 1] = r * (var[l - 1] * c)
            if l == 1:
                r = fwd[0]                                 # rho_1, which the first block adds to
            else:
                sig2 = s * s * var[l] * var[l - 1] * c     # for the block's output layer l + 1
        else:
            # a block's output: rho_(2b+1) = rho_(2b-1) ((sigma Z + 1)^2 + sigma^2 chi2(n_1 - 1))
            rng.fill_normal_row(k0, k1, c2, c3, np.int64(0), 1.0, z, 1)
            q = 2.0 * rng.sample_gamma(0.5 * (n1 - 1), k0, k1, c2, c3, np.int64(1))
            u = math.sqrt(sig2) * z[0] + 1.0
            r *= u * u + sig2 * q
            fwd[l - 1] = r
        if fwd[l - 1] == 0.0:
            dead = True
    return dead


@njit(cache=True, nogil=True)
def _residual_chunk(lo, hi, first, k0, k1, widths, var, s, cdf, offs, guide, fwd, dead):
    """Trials lo..hi-1 of residual_law_trial: a work unit of fill."""
    z = np.empty(1)
    for t in range(lo, hi):
        j = t - first
        dead[j] = residual_law_trial(t, k0, k1, widths, var, s, cdf, offs, guide, z, fwd[j, 0])


def _fill_residual(plan, first, count, fwd, dead):
    """fill for a residual network: the forward ratios only (bwd is left as it is)."""
    from ..config import ConfigError
    from .common import ARCH_RESIDUAL
    if plan.dist != DIST_NORMAL or plan.act != ACT_RELU:
        raise ValueError("the law kernel draws residual networks of ReLU layers and Gaussian weights")
    if plan.arch != ARCH_RESIDUAL:
        raise ConfigError("the law kernel draws residual networks with a skip in every block (--arch "
                          "residual); single-skip has no exact law: use --kernel dense")
    if plan.backward:
        raise ConfigError("the law kernel of residual networks draws the forward ratios: use --properties "
                          "forward, or --kernel dense")
    cdf, offs, guide = plan_tables(plan)
    run_chunks(_residual_chunk, first, count, (first, plan.k0, plan.k1, plan.widths, plan.var,
                                               plan.branch_scale, cdf, offs, guide, fwd, dead))


_TABLES = {}


def tables(widths):
    """(cdf, offs, guide) for hidden widths n_1..n_L, kept for the process (a few runs' worth)."""
    key = tuple(int(n) for n in widths)
    if key not in _TABLES:
        if len(_TABLES) >= 16:
            _TABLES.pop(next(iter(_TABLES)))
        cdf, offs = binomial_tables(np.asarray(key))
        _TABLES[key] = cdf, offs, guide_tables(cdf, offs)
    return _TABLES[key]


def plan_tables(plan):
    """(cdf, offs, guide): the tables of a plan's hidden widths (``tables``), kept on the plan."""
    if not hasattr(plan, "_law_tables"):
        plan._law_tables = tables(plan.widths[1:])
    return plan._law_tables


def method_of(plan):
    """How fill draws a plan's trials: 'relu' (law_block: relu, Gaussian weights), 'closed'
    (homogeneous_trial: leaky-relu, abs, linear, and orthogonal relu's forward ratios) or 'chain'
    (chain_trial: tanh, gelu, and orthogonal weights' backward ratios)."""
    if plan.act == ACT_RELU and plan.dist == DIST_NORMAL:
        return "relu"
    if plan.act in (ACT_RELU, ACT_LEAKY, ACT_ABS, ACT_LINEAR) and not (plan.dist == DIST_ORTHOGONAL and plan.backward):
        return "closed"
    return "chain"


def fill(plan, first, count, fwd, bwd, dead, method=None):
    """Compute trials first..first+count-1 into fwd, bwd (count, 1, L) and dead (count,).
    Both properties are always computed (their draws are interleaved); without the
    backward property (plan.backward False) dead counts the forward deaths only.
    A residual network (--arch residual, forward property only): residual_law_trial's
    forward ratios, bwd left as it is.  Other activations and orthogonal weights: method_of's
    way; ``method`` 'closed' or 'chain' forces one ('chain' computes every activation and
    orthogonal weights' backward ratios, 'closed' the homogeneous activations, and orthogonal
    weights' forward ratios only)."""
    from .common import ARCH_PLAIN, refuse_unbuilt
    if plan.dist not in (DIST_NORMAL, DIST_ORTHOGONAL) or plan.samples != 1:
        raise ValueError("the law kernel needs Gaussian or orthogonal weights and one input per trial")
    if plan.arch != ARCH_PLAIN:
        return _fill_residual(plan, first, count, fwd, dead)
    refuse_unbuilt(plan, "law", activation=True, orthogonal=True)
    orth = plan.dist == DIST_ORTHOGONAL
    method = method or method_of(plan)
    if method == "closed" and orth and plan.backward:
        raise ValueError("the law kernel's closed forms draw orthogonal weights' forward ratios; the chain both")
    xnorm2 = float(plan.X0[0] @ plan.X0[0]) if plan.data == DATA_FIXED else 1.0
    if method == "relu":
        cdf, offs, guide = plan_tables(plan)
        if not hasattr(plan, "_law_ctab"):
            plan._law_ctab = gamma_c_table(plan.widths)
        args = (first, plan.k0, plan.k1, plan.widths, plan.var, plan.head, plan.classes, plan.data,
                xnorm2, cdf, offs, guide, plan._law_ctab, fwd, bwd, dead)
        run_chunks(_chunk, first, count, args)
    elif method == "closed":
        if plan.act not in (ACT_RELU, ACT_LEAKY, ACT_ABS, ACT_LINEAR):
            raise ValueError("the law kernel's closed forms are of relu, leaky-relu, abs and linear layers")
        cdf, offs, guide = plan_tables(plan)
        run_chunks(_homogeneous_chunk, first, count,
                   (first, plan.k0, plan.k1, plan.widths, plan.var, plan.gain, orth, plan.act, plan.alpha,
                    plan.backward, plan.head, plan.classes, plan.data, xnorm2, cdf, offs, guide, fwd, bwd, dead))
    else:
        run_chunks(_chain_chunk, first, count,
                   (first, plan.k0, plan.k1, plan.widths, plan.var, plan.gain, orth, plan.act, plan.alpha,
                    plan.backward, plan.head, plan.classes, plan.data, xnorm2, fwd, bwd, dead))
    if not plan.backward:
        forward_deaths(fwd[:count], dead[:count])
