"""Orthogonal (Haar) weights, --init orthogonal (docs/design.md section 10).

The matrix of layer l (n_out x n_in, gain g) is g times a Haar matrix with orthonormal
rows when n_out <= n_in and orthonormal columns when n_out > n_in, drawn as
torch.nn.init.orthogonal_ draws it: G is the Gaussian matrix whose row i is row i of
(layer l, STREAM_WEIGHTS) (the numbers of the normal rows, at scale 1); A = G (n_out >=
n_in) or A = G^T (n_out < n_in) is QR-decomposed by Householder reflections, and the
columns of the thin Q are multiplied by sign(diag R), which makes Q D Haar (Mezzadri 2007:
it is the unique Q with R's diagonal positive); W = g Q D, or g (Q D)^T.  The matrix is a
pure function of (seed, trial, layer): the same numbers for any thread count, batch size
or shard.  A whole matrix is drawn at once: O(n_out n_in min(n_out, n_in)) per layer.
"""

import math

import numpy as np
from numba import njit

from .. import rng
from .common import dot

__all__ = ["layer_matrix", "workspace_size", "matrix"]


@njit(cache=True)
def householder_q(B, n, m, tau, d, QT):
    """The Q of A's QR, A (m x n, m >= n) given by B = A^T (n x m, A's columns as rows, C order):
    on return QT (n x m) holds (Q D)^T, Q the thin m x n factor and D = diag(sign R_kk), so
    that its rows are the columns of the QR with R's diagonal positive.  B is overwritten by
    the Householder vectors; tau, d (n,) scratch.  O(m n^2)."""
    # A's column k is reflected by H_k = I - tau_k v_k v_k^T onto R_kk e_k, R_kk = -sign(x_0) ||x||
    for k in range(n):
        x = B[k, k:]
        mk = m - k
        nx2 = dot(x, x, mk)
        nx = math.sqrt(nx2)
        if nx == 0.0:            # a zero column: probability 0; H_k = I
            tau[k] = 0.0
            d[k] = 1.0
            continue
        alpha = -nx if x[0] >= 0.0 else nx
        d[k] = 1.0 if alpha > 0.0 else -1.0
        tau[k] = 1.0 / (nx * (nx + abs(x[0])))     # 2 / ||x - alpha e_1||^2
        x[0] -= alpha
        for j in range(k + 1, n):
            y = B[j, k:]
            s = tau[k] * dot(x, y, mk)
            for t in range(mk):
                y[t] -= s * x[t]
    # column j of Q = H_0 H_1 ... H_j e_j (H_k, k > j, leaves e_j as it is), times d_j
    for j in range(n):
        q = QT[j]
        for t in range(m):
            q[t] = 0.0
        q[j] = 1.0
        for k in range(j, -1, -1):
            v = B[k, k:]
            y = q[k:]
            s = tau[k] * dot(v, y, m - k)
            for t in range(m - k):
                y[t] -= s * v[t]
        for t in range(m):
            q[t] *= d[j]


@njit(cache=True)
def workspace_size(widths):
    """Floats of the buffer layer_matrix needs for every layer of a network of these widths
    (n_0 .. n_L): two matrices of the largest layer and 3 of the largest width."""
    size = 0
    nmax = 0
    for l in range(widths.shape[0]):
        nmax = max(nmax, widths[l])
        if l >= 1:
            size = max(size, widths[l] * widths[l - 1])
    return 2 * size + 3 * nmax


@njit(cache=True)
def layer_matrix(k0, k1, trial, layer, n_out, n_in, g, buf):
    """W_layer (n_out x n_in, C order) into buf[:n_out n_in]: g times the Haar matrix drawn from
    the layer's Gaussian rows (module docstring).  buf: workspace_size floats (the rest of it
    is scratch).  O(n_out n_in min(n_out, n_in))."""
    c2, c3 = rng.counter_words(trial, layer, rng.STREAM_WEIGHTS)
    size = n_out * n_in
    n = min(n_out, n_in)
    m = max(n_out, n_in)
    W = buf[:size]
    B = buf[:size].reshape((n, m))             # A^T; W once Q is formed
    QT = buf[size:2 * size].reshape((n, m))
    tau = buf[2 * size: 2 * size + n]
    d = buf[2 * size + n: 2 * size + 2 * n]
    row = buf[2 * size + 2 * n: 2 * size + 2 * n + n_in]
    if n_out < n_in:
        # A = G^T: B = G, row i of the layer's stream in row i
        for i in range(n_out):
            rng.fill_normal_row(k0, k1, c2, c3, i, 1.0, B[i], n_in)
        householder_q(B, n, m, tau, d, QT)
        # W = g (Q D)^T = g QT
        for i in range(n_out):
            for j in range(n_in):
                W[i * n_in + j] = g * QT[i, j]
        return
    # A = G: B = G^T, row i of the stream in column i
    for i in range(n_out):
        rng.fill_normal_row(k0, k1, c2, c3, i, 1.0, row, n_in)
        for j in range(n_in):
            B[j, i] = row[j]
    householder_q(B, n, m, tau, d, QT)
    # W = g Q D: W[i, j] = g QT[j, i]
    for i in range(n_out):
        for j in range(n_in):
            W[i * n_in + j] = g * QT[j, i]


def matrix(plan, trial, layer):
    """W_layer of a trial (n_l x n_(l-1) NumPy array) as the dense kernel draws it for a plan
    with orthogonal weights (layer 1..L)."""
    n_out = int(plan.widths[layer])
    n_in = int(plan.widths[layer - 1])
    buf = np.empty(workspace_size(plan.widths))
    layer_matrix(plan.k0, plan.k1, trial, layer, n_out, n_in, float(plan.gain[layer - 1]), buf)
    return buf[:n_out * n_in].reshape(n_out, n_in).copy()
