"""The dense kernel: draws every weight; the ground truth for the other kernels.

Forward  a^l = W_l h^(l-1), h^l = ReLU(a^l); logits z = W_o h^L.
Backward delta^L = 1[a^L > 0] (W_o^T e), delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l).
Row i of W_l is row i of (layer l, STREAM_WEIGHTS): N(0, v_l), U(-a, a) with
a = sqrt(3 v_l), or g_l v/||v|| with v ~ N(0, I) (weight normalisation); the head
W_o is N(0, 1), layer L + 1.  The backward pass reads the weights stored by the
forward pass or, when they exceed the workspace budget, regenerates each row
from its counter: both give identical numbers.
"""

import math

import numpy as np
from numba import njit, prange

from .. import rng
from ..initializers import DIST_NORMAL, DIST_UNIFORM
from .common import dot, draw_inputs, head_error, n_chunks, workspace_mb, write_ratios

__all__ = ["fill", "weights_fit"]


@njit(cache=True)
def weight_row(k0, k1, trial, layer, i, n_in, dist, var, gain, out):
    """Row i of W_layer (length n_in) into out."""
    c2, c3 = rng.counter_words(trial, layer, rng.STREAM_WEIGHTS)
    if dist == DIST_NORMAL:
        rng.fill_normal_row(k0, k1, c2, c3, i, math.sqrt(var), out, n_in)
    elif dist == DIST_UNIFORM:
        a = math.sqrt(3.0 * var)
        rng.fill_uniform_row(k0, k1, c2, c3, i, -a, a, out, n_in)
    else:
        rng.fill_normal_row(k0, k1, c2, c3, i, 1.0, out, n_in)
        s = gain / math.sqrt(dot(out, out, n_in))
        for j in range(n_in):
            out[j] *= s


@njit(cache=True, inline="always")
def row_times(w, H, n, N, out):
    """out[x] = sum_j w[j] H[j, x]: one row of W times the (n x N) activations."""
    if N == 1:
        out[0] = dot(w, H.ravel(), n)
        return
    for x in range(N):
        out[x] = 0.0
    for j in range(n):
        wj = w[j]
        for x in range(N):   # contiguous in x: vectorised without reordering any sum
            out[x] += wj * H[j, x]


@njit(cache=True, inline="always")
def add_outer(w, d, n, N, out):
    """out[j, x] += w[j] d[x]: one row of W^T delta, accumulated."""
    if N == 1:
        o = out.ravel()
        dd = d[0]
        for j in range(n):
            o[j] += w[j] * dd
        return
    for j in range(n):
        wj = w[j]
        for x in range(N):
            out[j, x] += wj * d[x]


@njit(cache=True, inline="always")
def mask_norms(D, H, n, N, dn2, l):
    """D = 1[h > 0] D (the ReLU's derivative) and dn2[x, l] = ||D[:, x]||^2."""
    for x in range(N):
        dn2[x, l] = 0.0
    for j in range(n):
        for x in range(N):
            if H[j, x] <= 0.0:
                D[j, x] = 0.0
            dn2[x, l] += D[j, x] * D[j, x]


@njit(cache=True)
def dense_trial(trial, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                store, wbuf, H, D0, D1, row, z, e, col, hn2, dn2, fwd, bwd):
    """One trial; H[l] is (n_l, N) for l = 0..L (input x in column x); returns the dead flag."""
    L = widths.shape[0] - 1
    n0 = widths[0]
    draw_inputs(k0, k1, trial, data, X0, N, n0, col)   # (N, n0) rows into col ...
    for x in range(N):
        for j in range(n0):
            H[0][j, x] = col[x, j]                      # ... as columns of H[0]
    # forward: a_i = W_l[i, :] h, W_l[i, :] from philox(key, (trial, l, 0, i, j))
    off = 0
    for l in range(1, L + 1):
        n_in = widths[l - 1]
        n_out = widths[l]
        Hin = H[l - 1]
        Hout = H[l]
        for i in range(n_out):
            w = wbuf[off + i * n_in: off + (i + 1) * n_in] if store else row
            weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1], w)
            a = Hout[i]
            row_times(w, Hin, n_in, N, a)
            for x in range(N):
                if a[x] < 0.0:
                    a[x] = 0.0
        if store:
            off += n_out * n_in
    # head: z = W_o h^L, W_o ~ N(0, 1) rows of layer L + 1
    nL = widths[L]
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_WEIGHTS)
    woff = off
    for c in range(K):
        w = wbuf[woff + c * nL: woff + (c + 1) * nL] if store else row
        rng.fill_normal_row(k0, k1, c2, c3, c, 1.0, w, nL)
        row_times(w, H[L], nL, N, z[c])
    for x in range(N):
        for c in range(K):
            col[x, c] = z[c, x]
        head_error(k0, k1, trial, L + 1, head, col[x], x, col[x, K:], K)
        for c in range(K):
            e[c, x] = col[x, K + c]
    # delta^L = 1[a^L > 0] (W_o^T e)
    Dcur = D0[:nL]
    Dcur[:, :] = 0.0
    for c in range(K):
        if store:
            w = wbuf[woff + c * nL: woff + (c + 1) * nL]
        else:
            w = row
            rng.fill_normal_row(k0, k1, c2, c3, c, 1.0, w, nL)
        add_outer(w, e[c], nL, N, Dcur)
    mask_norms(Dcur, H[L], nL, N, dn2, L)
    # backward: delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
    use0 = False   # D0 holds delta^L; the next delta goes into the other buffer
    for l in range(L, 1, -1):
        n_in = widths[l - 1]
        n_out = widths[l]
        off -= n_out * n_in if store else 0
        Dnext = D0[:n_in] if use0 else D1[:n_in]
        Dnext[:, :] = 0.0
        for i in range(n_out):
            d = Dcur[i]
            active = False
            for x in range(N):
                if d[x] != 0.0:
                    active = True
            if not active:   # a unit no input activates passes nothing back
                continue
            if store:
                w = wbuf[off + i * n_in: off + (i + 1) * n_in]
            else:
                w = row
                weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1], w)
            add_outer(w, d, n_in, N, Dnext)
        mask_norms(Dnext, H[l - 1], n_in, N, dn2, l - 1)
        use0 = not use0
        Dcur = Dnext
    dead = False
    for x in range(N):
        for l in range(L + 1):
            s = 0.0
            Hl = H[l]
            for j in range(widths[l]):
                s += Hl[j, x] * Hl[j, x]
            hn2[x, l] = s
        if write_ratios(hn2[x], dn2[x], L, fwd[x], bwd[x]):
            dead = True
    return dead


@njit(cache=True, parallel=True, nogil=True)
def _batch(first, count, nchunks, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
           store, fwd, bwd, dead):
    L = widths.shape[0] - 1
    nmax = 0
    nw = 0
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
        if l >= 1:
            nw += widths[l] * widths[l - 1]
    nw += K * widths[L]
    for c in prange(nchunks):
        lo = first + (count * c) // nchunks
        hi = first + (count * (c + 1)) // nchunks
        H = [np.empty((widths[l], N)) for l in range(L + 1)]
        wbuf = np.empty(nw if store else 0)
        D0 = np.empty((nmax, N))
        D1 = np.empty((nmax, N))
        row = np.empty(nmax)
        z = np.empty((K, N))
        e = np.empty((K, N))
        col = np.empty((N, max(widths[0], 2 * K)))
        hn2 = np.empty((N, L + 1))
        dn2 = np.zeros((N, L + 1))
        for t in range(lo, hi):
            j = t - first
            dead[j] = dense_trial(t, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                                  store, wbuf, H, D0, D1, row, z, e, col, hn2, dn2, fwd[j], bwd[j])


def weights_fit(plan):
    """Whether one trial's weights fit the workspace budget (else they are regenerated)."""
    w = plan.widths
    nw = int(np.sum(w[1:] * w[:-1])) + plan.classes * int(w[-1])
    return nw * 8 <= workspace_mb() * 2 ** 20


def fill(plan, first, count, fwd, bwd, dead, store=None):
    """Compute trials first..first+count-1 into fwd, bwd (count, N, L) and dead (count,)."""
    if store is None:
        store = weights_fit(plan)
    _batch(first, count, n_chunks(count), plan.k0, plan.k1, plan.widths, plan.var, plan.gain,
           plan.dist, plan.head, plan.classes, plan.data, plan.X0, plan.samples, bool(store),
           fwd, bwd, dead)
