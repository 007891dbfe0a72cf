"""The dense kernel: draws every weight; the ground truth for the other kernels.

Forward  a^l = W_l h^(l-1), h^l = phi(a^l); logits z = W_o h^L.
Backward delta^L = phi'(a^L) (W_o^T e), delta^(l-1) = phi'(a^(l-1)) (W_l^T delta^l).
phi is the plan's activation (mcinit.activations.phi and dphi, codes plan.act, plan.alpha).
Row i of W_l is row i of (layer l, STREAM_WEIGHTS): N(0, v_l), U(-a, a) with
a = sqrt(3 v_l), or g_l v/||v|| with v ~ N(0, I) (weight normalisation); orthogonal
weights are g_l times the Haar matrix of the layer's N(0, 1) rows, drawn whole
(kernels/orthogonal.py, O(n_l n_(l-1) min(n_l, n_(l-1))) per layer); the head
W_o is N(0, 1), layer L + 1.  For ReLU only the weights that meet an active unit
are drawn (the columns of the support of h^(l-1); about half of them past the first
layer), or read there from the whole orthogonal matrix; phi'(a) = 1[h > 0] is read
from h, and a unit no input activates passes no delta back.  Other activations have
no such sparsity (every unit of leaky-relu, tanh and gelu carries a gradient; abs
and gelu cannot recover a from h): every column is drawn, the pre-activations a^l of
every layer are kept, and the mask is phi'(a).  The backward pass reads the rows
the forward pass kept (those of active units, at those columns; every row for other
activations) or, when they exceed the workspace budget, redraws them from their
counters (an orthogonal layer's matrix whole again): both give identical numbers.
A plan without the backward property (``plan.backward`` False) stops after the
forward pass: no head, no backward pass, bwd left as it is, and the forward numbers
those of a run of both.

With ``plan.wn_direction`` (--wn-grad direction, weight-normalised rows w_i = g_l u_i,
u_i = v_i/||v_i||) the backward ratio is that of dloss/dv_i = g_l delta_i (h - u_i (u_i . h))
at ||v_i|| = 1, h = h^(l-1), divided by g_l: the trial also sums c_l = sum_i (delta^l_i a^l_i)^2
in the backward pass (for ReLU a^l_i = h^l_i wherever delta^l_i != 0, so h^l is read), and
common.direction_ratios gives
gamma_l^dir = (||delta^l||^2 ||h^(l-1)||^2 - c_l / g_l^2) / (||x||^2 ||delta^L||^2).
"""

import math

import numpy as np
from numba import njit

from .. import rng
from ..activations import ACT_RELU, dphi, phi
from ..initializers import DIST_NORMAL, DIST_ORTHOGONAL, DIST_UNIFORM
from . import orthogonal
from .common import (dot, direction_ratios, draw_inputs, head_errors_of_inputs, run_chunks, workspace_mb,
                     write_forward_ratios, write_ratios)

__all__ = ["fill", "weights_fit"]


@njit(cache=True)
def weight_row(k0, k1, trial, layer, i, n_in, dist, var, gain, out):
    """Row i of W_layer (length n_in) into out; not for orthogonal weights, whose rows come from
    the whole matrix (orthogonal.layer_matrix; the kernels that call this refuse them)."""
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
def weight_cols(k0, k1, c2, c3, i, n_in, dist, var, gain, cols, m, out, full, ws):
    """out[k] = W[i, cols[k]], k < m: row i of a layer's weights (counter words c2, c3)
    at the columns asked for, the same numbers as weight_row's.  Normal rows
    transform only those columns; uniform and weight-normalised rows (whose scale
    needs the whole row) are drawn whole into ``full`` and picked; orthogonal rows are
    picked from the layer's matrix, which ``full`` holds (orthogonal.layer_matrix)."""
    if dist == DIST_ORTHOGONAL:
        for k in range(m):
            out[k] = full[i * n_in + cols[k]]
        return
    if dist == DIST_NORMAL:
        if m == n_in:
            rng.fill_normal_row_ws(k0, k1, c2, c3, i, math.sqrt(var), out, n_in, ws)
        else:
            rng.fill_normal_cols_ws(k0, k1, c2, c3, i, math.sqrt(var), cols, m, out, ws)
        return
    if dist == DIST_UNIFORM:
        a = math.sqrt(3.0 * var)
        rng.fill_uniform_row(k0, k1, c2, c3, i, -a, a, full, n_in)
    else:
        rng.fill_normal_row_ws(k0, k1, c2, c3, i, 1.0, full, n_in, ws)
        s = gain / math.sqrt(dot(full, full, n_in))
        for j in range(n_in):
            full[j] *= s
    for k in range(m):
        out[k] = full[cols[k]]


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
def relu_row(w, Hc, m, N, a):
    """a[x] = ReLU(w . Hc[:, x]), one unit for every input; True when some input activates it."""
    row_times(w, Hc, m, N, a)
    on = False
    for x in range(N):
        if a[x] > 0.0:
            on = True
        else:
            a[x] = 0.0
    return on


@njit(cache=True, inline="always")
def phi_row(w, Hc, m, N, a, h, act, alpha):
    """a[x] = w . Hc[:, x] (kept for phi') and h[x] = phi(a[x]), one unit for every input
    (activations other than ReLU: every unit can carry a delta, so always True)."""
    row_times(w, Hc, m, N, a)
    for x in range(N):
        h[x] = phi(act, alpha, a[x])
    return True


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


@njit(cache=True, inline="always")
def dphi_norms(D, A, n, N, dn2, l, act, alpha):
    """D = phi'(A) D (A the layer's pre-activations) and dn2[x, l] = ||D[:, x]||^2: mask_norms
    of any activation."""
    for x in range(N):
        dn2[x, l] = 0.0
    for j in range(n):
        for x in range(N):
            D[j, x] *= dphi(act, alpha, A[j, x])
            dn2[x, l] += D[j, x] * D[j, x]


@njit(cache=True, inline="always")
def direction_sums(D, H, n, N, dc2, l):
    """dc2[x, l] = sum_j (D[j, x] H[j, x])^2: delta^l (masked) against the layer's own
    pre-activations a^l (for ReLU its output h^l, equal to a^l wherever delta^l != 0), the
    term c_l of the direction gradient (common.direction_ratios)."""
    for x in range(N):
        dc2[x, l] = 0.0
    for j in range(n):
        for x in range(N):
            p = D[j, x] * H[j, x]
            dc2[x, l] += p * p


@njit(cache=True, inline="always")
def support(H, n, N, cols, Hc, every=False):
    """cols = the units j some input activates (H[j, x] != 0), ascending; Hc = those rows of
    H, compacted.  Returns their number m.  Outside them a weight column meets only zeros,
    forward and (ReLU) backward, so it is never drawn.  With ``every`` (activations other
    than ReLU, whose phi' need not vanish where h does) every unit is in it."""
    if every:
        for j in range(n):
            cols[j] = j
            for x in range(N):
                Hc[j, x] = H[j, x]
        return n
    m = 0
    for j in range(n):
        on = False
        for x in range(N):
            if H[j, x] != 0.0:
                on = True
        if on:
            cols[m] = j
            for x in range(N):
                Hc[m, x] = H[j, x]
            m += 1
    return m


@njit(cache=True)
def input_ratios(H, widths, N, hn2, dn2, backward, fwd, bwd, direction, dc2, gain):
    """hn2[x, l] = ||h^l(x)||^2 from H (H[l] (n_l, N)), and the ratios of every input
    (write_ratios; write_forward_ratios without ``backward``; the direction gradient's
    backward ratios, common.direction_ratios, with ``direction``, from dc2 (N, L + 1) and the
    gains).  Returns the dead flag."""
    L = widths.shape[0] - 1
    dead = False
    for x in range(N):
        for l in range(L + 1):
            s = 0.0
            Hl = H[l]
            for j in range(widths[l]):
                s += Hl[j, x] * Hl[j, x]
            hn2[x, l] = s
        if backward:
            if write_ratios(hn2[x], dn2[x], L, fwd[x], bwd[x]):
                dead = True
            if direction:
                direction_ratios(hn2[x], dn2[x], dc2[x], gain, L, bwd[x])
        elif write_forward_ratios(hn2[x], L, fwd[x]):
            dead = True
    return dead


@njit(cache=True)
def dense_trial(trial, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                store, backward, wbuf, H, D0, D1, Dc, Hc, cols, ncols, rows, nrows, roff,
                wrow, full, ws, wblk, wsb, z, e, col, hn2, dn2, fwd, bwd, direction, dc2,
                act, alpha, A):
    """One trial; H[l] is (n_l, N) for l = 0..L (input x in column x); returns the dead flag.
    act, alpha: the activation (mcinit.activations.phi); for activations other than ReLU
    A[l] (n_l, N) receives the pre-activations a^l, l = 1..L (for ReLU A is not touched).
    Without ``backward`` the trial ends after the forward pass (fwd and the forward deaths
    only; store must then be False: nothing is kept for a backward pass).  With
    ``direction`` (weight-normalised rows, --wn-grad direction) bwd holds gamma_l^dir, from
    the sums c_l into dc2 (N, L + 1) (module docstring).

    For ReLU only the weights that meet an active unit are drawn: W_l[i, j] for j in the
    support of h^(l-1) (the forward pass), kept (``store``) or redrawn for the rows i
    that delta^l reaches (the backward pass, l >= 2); other activations draw every column
    (but W_1's on zero inputs) and keep every row.  The numbers are those of the whole
    matrices; sums run over the support only, so they differ from sums over all columns
    only by the order of rounding."""
    L = widths.shape[0] - 1
    n0 = widths[0]
    draw_inputs(k0, k1, trial, data, X0, N, n0, col)   # (N, n0) rows into col ...
    for x in range(N):
        for j in range(n0):
            H[0][j, x] = col[x, j]                      # ... as columns of H[0]
    # forward: a_i = sum_(j in support) W_l[i, j] h_j, W_l[i, :] from philox(key, (trial, l, 0, i, j))
    relu = act == ACT_RELU
    off = 0
    for l in range(1, L + 1):
        n_in = widths[l - 1]
        n_out = widths[l]
        Hout = H[l]
        Aout = A[l]
        m = support(H[l - 1], n_in, N, cols[l - 1], Hc, not relu and l >= 2)   # W_1 is only used forward
        ncols[l - 1] = m
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
        roff[l] = off
        keep = store and l >= 2   # W_1 is never needed backward
        if dist == DIST_NORMAL:
            # blocks of rows at once; only the rows of active units are kept
            sd = math.sqrt(var[l - 1])
            step = rng.block_rows(n_in)
            nr = 0
            for i0 in range(0, n_out, step):
                nb = min(step, n_out - i0)
                blk = wblk[:nb * m]
                rng.fill_normal_block_cols(k0, k1, c2, c3, i0, nb, sd, cols[l - 1], m, blk, wsb)
                for r in range(nb):
                    i = i0 + r
                    w = blk[r * m:(r + 1) * m]
                    if relu:
                        on = relu_row(w, Hc, m, N, Hout[i])
                    else:
                        on = phi_row(w, Hc, m, N, Aout[i], Hout[i], act, alpha)
                    if on and keep:
                        wbuf[off: off + m] = w
                        rows[l, nr] = i
                        nr += 1
                        off += m
            nrows[l] = nr
            continue
        if dist == DIST_ORTHOGONAL:   # the whole matrix into full, O(n^3): weight_cols reads its rows
            orthogonal.layer_matrix(k0, k1, trial, l, n_out, n_in, gain[l - 1], full)
        nr = 0
        for i in range(n_out):
            w = wbuf[off: off + m] if keep else wrow
            weight_cols(k0, k1, c2, c3, i, n_in, dist, var[l - 1], gain[l - 1],
                        cols[l - 1], m, w, full, ws)
            if relu:
                on = relu_row(w, Hc, m, N, Hout[i])
            else:
                on = phi_row(w, Hc, m, N, Aout[i], Hout[i], act, alpha)
            if on and keep:     # only rows that can carry a delta are kept
                rows[l, nr] = i
                nr += 1
                off += m
        nrows[l] = nr
    if not backward:
        return input_ratios(H, widths, N, hn2, dn2, False, fwd, bwd, False, dc2, gain)
    # head: z = W_o h^L, W_o ~ N(0, 1) rows of layer L + 1
    nL = widths[L]
    m = support(H[L], nL, N, cols[L], Hc, not relu)
    ncols[L] = m
    c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_WEIGHTS)
    woff = off
    step = rng.block_rows(nL)
    for c0 in range(0, K, step):
        nr = min(step, K - c0)
        blk = wbuf[woff + c0 * m: woff + (c0 + nr) * m] if store else wblk[:nr * m]
        rng.fill_normal_block_cols(k0, k1, c2, c3, c0, nr, 1.0, cols[L], m, blk, wsb)
        for r in range(nr):
            row_times(blk[r * m:(r + 1) * m], Hc, m, N, z[c0 + r])
    head_errors_of_inputs(k0, k1, trial, L + 1, head, z, col, e, N, K)
    # delta^L = phi'(a^L) (W_o^T e), on the support of h^L (ReLU; else every unit)
    Dcur = D0[:nL]
    Dcur[:, :] = 0.0
    Dcc = Dc[:m]
    Dcc[:, :] = 0.0
    for c in range(K):
        if store:
            w = wbuf[woff + c * m: woff + (c + 1) * m]
        else:
            w = wrow
            rng.fill_normal_cols_ws(k0, k1, c2, c3, c, 1.0, cols[L], m, w, ws)
        add_outer(w, e[c], m, N, Dcc)
    for k in range(m):
        for x in range(N):
            Dcur[cols[L][k], x] = Dcc[k, x]
    if relu:
        mask_norms(Dcur, H[L], nL, N, dn2, L)
    else:
        dphi_norms(Dcur, A[L], nL, N, dn2, L, act, alpha)
    if direction:
        direction_sums(Dcur, H[L] if relu else A[L], nL, N, dc2, L)
    # backward: delta^(l-1) = phi'(a^(l-1)) (W_l^T delta^l), on the support of h^(l-1) (ReLU)
    use0 = False   # D0 holds delta^L; the next delta goes into the other buffer
    for l in range(L, 1, -1):
        n_in = widths[l - 1]
        n_out = widths[l]
        m = ncols[l - 1]
        cl = cols[l - 1]
        Dcc = Dc[:m]
        Dcc[:, :] = 0.0
        c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
        nr = nrows[l] if store else n_out
        if dist == DIST_ORTHOGONAL and not store:   # the same matrix again
            orthogonal.layer_matrix(k0, k1, trial, l, n_out, n_in, gain[l - 1], full)
        for r in range(nr):
            i = rows[l, r] if store else r
            d = Dcur[i]
            active = False
            for x in range(N):
                if d[x] != 0.0:
                    active = True
            if not active:   # a unit no input activates passes nothing back
                continue
            if store:
                w = wbuf[roff[l] + r * m: roff[l] + (r + 1) * m]
            else:
                w = wrow
                weight_cols(k0, k1, c2, c3, i, n_in, dist, var[l - 1], gain[l - 1], cl, m, w, full, ws)
            add_outer(w, d, m, N, Dcc)
        Dnext = D0[:n_in] if use0 else D1[:n_in]
        Dnext[:, :] = 0.0
        for k in range(m):
            for x in range(N):
                Dnext[cl[k], x] = Dcc[k, x]
        if relu:
            mask_norms(Dnext, H[l - 1], n_in, N, dn2, l - 1)
        else:
            dphi_norms(Dnext, A[l - 1], n_in, N, dn2, l - 1, act, alpha)
        if direction:
            direction_sums(Dnext, H[l - 1] if relu else A[l - 1], n_in, N, dc2, l - 1)
        use0 = not use0
        Dcur = Dnext
    return input_ratios(H, widths, N, hn2, dn2, True, fwd, bwd, direction, dc2, gain)


@njit(cache=True, nogil=True)
def _chunk(lo, hi, first, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
           store, backward, direction, act, alpha, fwd, bwd, dead):
    """Trials lo..hi-1 with one set of buffers: a work unit of fill (common.run_chunks)."""
    L = widths.shape[0] - 1
    nmax = 0
    nw = 0
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
        if l >= 2:
            nw += widths[l] * widths[l - 1]
    nw += K * widths[L]
    H = [np.empty((widths[l], N)) for l in range(L + 1)]
    A = [np.empty((widths[l] if act != ACT_RELU else 0, N)) for l in range(L + 1)]   # a^l, not for ReLU
    wbuf = np.empty(nw if store else 0)
    D0 = np.empty((nmax, N))
    D1 = np.empty((nmax, N))
    Dc = np.empty((nmax, N))
    Hc = np.empty((nmax, N))
    cols = np.empty((L + 1, nmax), dtype=np.int64)
    ncols = np.empty(L + 1, dtype=np.int64)
    rows = np.empty((L + 1, nmax), dtype=np.int64)
    nrows = np.zeros(L + 1, dtype=np.int64)
    roff = np.zeros(L + 1, dtype=np.int64)
    wrow = np.empty(nmax)
    full = np.empty(orthogonal.workspace_size(widths) if dist == DIST_ORTHOGONAL else nmax)
    ws = rng.row_workspace(nmax)
    wsb = rng.block_workspace(nmax)
    wblk = np.empty(max(rng.BLOCK_VALUES, nmax))
    z = np.empty((K, N))
    e = np.empty((K, N))
    col = np.empty((N, max(widths[0], 2 * K)))
    hn2 = np.empty((N, L + 1))
    dn2 = np.zeros((N, L + 1))
    dc2 = np.zeros((N, L + 1))
    for t in range(lo, hi):
        j = t - first
        dead[j] = dense_trial(t, k0, k1, widths, var, gain, dist, head, K, data, X0, N,
                              store, backward, wbuf, H, D0, D1, Dc, Hc, cols, ncols, rows, nrows, roff,
                              wrow, full, ws, wblk, wsb, z, e, col, hn2, dn2, fwd[j], bwd[j],
                              direction, dc2, act, alpha, A)


def weights_fit(plan):
    """Whether the weights one trial may keep for its backward pass (W_2..W_L and the
    head) fit the workspace budget (else they are redrawn)."""
    w = plan.widths
    nw = int(np.sum(w[2:] * w[1:-1])) + plan.classes * int(w[-1])
    return nw * 8 <= workspace_mb() * 2 ** 20


def fill(plan, first, count, fwd, bwd, dead, store=None):
    """Compute trials first..first+count-1 into fwd, bwd (count, N, L) and dead (count,);
    bwd is left as it is when the plan wants no backward ratios (plan.backward False).
    With plan.wn_direction bwd holds the ratios of the direction gradient (gamma_l^dir).
    Residual networks (plan.arch) are computed by kernels/residual.py."""
    from .common import ARCH_PLAIN, refuse_unbuilt
    if plan.arch != ARCH_PLAIN:       # residual networks: their own trial (kernels/residual.py)
        from . import residual
        return residual.fill(plan, first, count, fwd, bwd, dead, store)
    refuse_unbuilt(plan, "dense", wn_direction=True, activation=True, orthogonal=True)
    backward = bool(plan.backward)
    if store is None:
        store = weights_fit(plan)
    run_chunks(_chunk, first, count, (first, plan.k0, plan.k1, plan.widths, plan.var, plan.gain,
                                      plan.dist, plan.head, plan.classes, plan.data, plan.X0,
                                      plan.samples, bool(store) and backward, backward,
                                      bool(plan.wn_direction) and backward, int(plan.act), float(plan.alpha),
                                      fwd, bwd, dead))
