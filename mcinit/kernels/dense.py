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


@njit(cache=True)
def dense_trial(trial, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                store, wbuf, H, D0, D1, row, z, e, hn2, dn2, fwd, bwd):
    """One trial; H[l] is (N, n_l) for l = 0..L; returns the dead flag."""
    L = widths.shape[0] - 1
    draw_inputs(k0, k1, trial, data, X0, N, widths[0], H[0])
    # forward: a_i = W_l[i, :] . h, W_l[i, :] from philox(key, (trial, l, 0, i, j))
    off = 0
    for l in range(1, L + 1):
        n_in = widths[l - 1]
        n_out = widths[l]
        Hin = H[l - 1]
        Hout = H[l]
        for i in range(n_out):
            if store:
                w = wbuf[off + i * n_in: off + (i + 1) * n_in]
            else:
                w = row
            weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1], w)
            for x in range(N):
                a = dot(w, Hin[x], n_in)
                Hout[x, i] = a if a > 0.0 else 0.0
        if store:
            off += n_out * n_in
    # head: z = W_o h^L, W_o ~ N(0, 1) rows of layer L + 1
    nL = widths[L]
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_WEIGHTS)
    woff = off
    for c in range(K):
        w = wbuf[woff + c * nL: woff + (c + 1) * nL] if store else row
        rng.fill_normal_row(k0, k1, c2, c3, c, 1.0, w, nL)
        for x in range(N):
            z[x, c] = dot(w, H[L][x], nL)
    for x in range(N):
        head_error(k0, k1, trial, L + 1, head, z[x], x, e[x], K)
    # delta^L = 1[a^L > 0] (W_o^T e)
    Dcur = D0
    for x in range(N):
        for j in range(nL):
            Dcur[x, j] = 0.0
    for c in range(K):
        if store:
            w = wbuf[woff + c * nL: woff + (c + 1) * nL]
        else:
            w = row
            rng.fill_normal_row(k0, k1, c2, c3, c, 1.0, w, nL)
        for x in range(N):
            ec = e[x, c]
            for j in range(nL):
                Dcur[x, j] += w[j] * ec
    for x in range(N):
        s = 0.0
        for j in range(nL):
            if H[L][x, j] <= 0.0:
                Dcur[x, j] = 0.0
            s += Dcur[x, j] * Dcur[x, j]
        dn2[x, L] = s
    # backward: delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
    Dnext = D1
    for l in range(L, 1, -1):
        n_in = widths[l - 1]
        n_out = widths[l]
        off -= n_out * n_in if store else 0
        for x in range(N):
            for j in range(n_in):
                Dnext[x, j] = 0.0
        for i in range(n_out):
            if store:
                w = wbuf[off + i * n_in: off + (i + 1) * n_in]
            else:
                w = row
                weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1], w)
            for x in range(N):
                d = Dcur[x, i]
                if d != 0.0:
                    for j in range(n_in):
                        Dnext[x, j] += w[j] * d
        Hm = H[l - 1]
        for x in range(N):
            s = 0.0
            for j in range(n_in):
                if Hm[x, j] <= 0.0:
                    Dnext[x, j] = 0.0
                s += Dnext[x, j] * Dnext[x, j]
            dn2[x, l - 1] = s
        Dcur, Dnext = Dnext, Dcur
    dead = False
    for x in range(N):
        for l in range(L + 1):
            hn2[x, l] = dot(H[l][x], H[l][x], widths[l])
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
        H = [np.empty((N, widths[l])) for l in range(L + 1)]
        wbuf = np.empty(nw if store else 0)
        D0 = np.empty((N, nmax))
        D1 = np.empty((N, nmax))
        row = np.empty(nmax)
        z = np.empty((N, K))
        e = np.empty((N, K))
        hn2 = np.empty((N, L + 1))
        dn2 = np.zeros((N, L + 1))
        for t in range(lo, hi):
            j = t - first
            dead[j] = dense_trial(t, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                                  store, wbuf, H, D0, D1, row, z, e, hn2, dn2, fwd[j], bwd[j])


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
