"""The law kernel: one input, Gaussian weights, forward and backward in O(L) per trial.

For one input, with s_l = ||h^l|| and g_l = W_l h^(l-1) / s_(l-1) ~ N(0, v_l I):
  h^l = s_(l-1) ReLU(g_l), so rho_l / rho_(l-1) = v_l c_l,  c_l = chi2(K_l),
  K_l = #{i: g_l,i > 0} ~ Binomial(n_l, 1/2)                          (DESIGN 4)
Backward, write delta^l = beta_l q_l + u_l with q_l = h^l / s_l and u_l orthogonal
to q_l on the active set S_l.  By the projected decomposition of W_l^T
(DESIGN 4, with Q = q_(l-1)), and since g_l restricted to S_l is parallel to q_l
(so g_l . u_l = 0):
  beta_(l-1)    = beta_l sqrt(v_l c_l)
  ||u_(l-1)||^2 = ||delta^l||^2 v_l d_(l-1),   d_(l-1) = chi2(K_(l-1) - 1)
  ||delta^l||^2 = beta_l^2 + ||u_l||^2
with the head (W_o ~ N(0, 1), G_o = W_o q_L ~ N(0, I_K), z = s_L G_o):
  beta_L = G_o . e,  ||u_L||^2 = ||e||^2 d_L.
All chi-square factors are independent given the K_l.  So every ratio of
DESIGN section 2 is a function of 3L + O(K) scalar variates:
  rho_l = prod_(k<=l) v_k c_k,   gamma_l = ||delta^l||^2 rho_(l-1) / ||delta^L||^2.
||x|| enters only through the softmax logits: ||x||^2 ~ chi2(n_0) for gaussian
data, 1 on the sphere, the row's norm for a fixed input.

Random numbers: layer l, STREAM_LAW, row 0: K_l by inversion of the exact
binomial CDF with a 53-bit uniform; row 1: c_l; row 2: d_l; layer 0 row 0:
||x||^2; layer L+1 row 0: G_o; targets/errors as in every kernel (STREAM_TARGET).
Chi-square variates are 2 Gamma(k/2) by Marsaglia and Tsang's exact rejection
method, attempt j using block j of the row.
"""

import math

import numpy as np
from numba import njit, prange
from scipy import stats

from .. import rng
from .common import DATA_FIXED, DATA_GAUSSIAN, head_error, n_chunks

__all__ = ["fill", "binomial_tables", "guide_tables", "sample_binomial", "sample_binomial_guided"]

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
    L = widths.shape[0] - 1
    # forward: rho_l = prod v_k chi2(K_k)
    r = 1.0
    for l in range(1, L + 1):
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_LAW)
        Kl = sample_binomial_guided(cdf, offs[l - 1], widths[l], guide, (l - 1) * GUIDE, k0, k1, c2, c3, 0)
        c[l] = 2.0 * rng.sample_gamma(0.5 * Kl, k0, k1, c2, c3, 1)
        d[l] = 2.0 * rng.sample_gamma(0.5 * (Kl - 1), k0, k1, c2, c3, 2) if Kl > 1 else 0.0
        r *= var[l - 1] * c[l]
        rho[l] = r
    # ||x||^2
    if data == DATA_FIXED:
        s02 = xnorm2
    elif data == DATA_GAUSSIAN:
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_LAW)
        s02 = 2.0 * rng.sample_gamma(0.5 * widths[0], k0, k1, c2, c3, 0)
    else:
        s02 = 1.0
    # head: G_o ~ N(0, I_K), z = s_L G_o, beta_L = G_o . e, ||u_L||^2 = ||e||^2 d_L
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_LAW)
    rng.fill_normal_row(k0, k1, c2, c3, 0, 1.0, Go, K)
    sL = math.sqrt(s02 * rho[L])
    for j in range(K):
        z[j] = sL * Go[j]
    head_error(k0, k1, trial, L + 1, head, z, 0, e, K)
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


@njit(cache=True, parallel=True, nogil=True)
def _batch(first, count, nchunks, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
           fwd, bwd, dead):
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


def fill(plan, first, count, fwd, bwd, dead):
    """Compute trials first..first+count-1 into fwd, bwd (count, 1, L) and dead (count,)."""
    if plan.dist != 0 or plan.samples != 1:
        raise ValueError("the law kernel needs Gaussian weights and one input per trial")
    if not hasattr(plan, "_law_tables"):
        cdf, offs = binomial_tables(plan.widths[1:])
        plan._law_tables = cdf, offs, guide_tables(cdf, offs)
    cdf, offs, guide = plan._law_tables
    xnorm2 = float(plan.X0[0] @ plan.X0[0]) if plan.data == DATA_FIXED else 1.0
    _batch(first, count, n_chunks(count), plan.k0, plan.k1, plan.widths, plan.var, plan.head,
           plan.classes, plan.data, xnorm2, cdf, offs, guide, fwd, bwd, dead)
