"""The dense kernel of residual networks (--arch residual and single-skip): every weight drawn.

A residual network has depth L = 1 + 2B and widths n_1..n_L; h^0 = x, a^l = W_l h^(l-1)
is layer l's product and h^1 = ReLU(a^1).

``residual`` (a skip in every block; s = plan.branch_scale), for blocks b = 1..B:
  h^(2b)   = ReLU(a^(2b))                    the block's hidden layer
  h^(2b+1) = h^(2b-1) + s a^(2b+1)           the block's output (no ReLU; n_(2b+1) = n_1)
``single-skip`` (the paper's code's variant: one skip around a chain of 2B ReLU layers):
  h^l = ReLU(a^l), l = 2..L-1,    h^L = h^1 + s ReLU(a^L)    (n_L = n_1)

Backward, with eta^l = dloss/dh^l, g_l = dloss/da^l and eta^L = W_o^T e (the head as in
every kernel):
  residual     g_(2b+1) = s eta^(2b+1),  eta^(2b) = W_(2b+1)^T g_(2b+1),
               g_(2b) = 1[a^(2b) > 0] eta^(2b),
               eta^(2b-1) = eta^(2b+1) + W_(2b)^T g_(2b)      (the skip carries eta back)
               g_1 = 1[a^1 > 0] eta^1
  single-skip  g_L = s 1[a^L > 0] eta^L,
               g_(l-1) = 1[a^(l-1) > 0] (W_l^T g_l)             for l = L..3,
               g_1 = 1[a^1 > 0] (eta^L + W_2^T g_2)           (the skip carries eta^L to h^1)
The gradient of W_l is g_l (h^(l-1))^T, so ||dloss/dW_l||_F^2 = ||g_l||^2 ||h^(l-1)||^2 and

    rho_l = ||h^l||^2 / ||x||^2,    gamma_l = ||g_l||^2 ||h^(l-1)||^2 / (||x||^2 ||g_L||^2)

(common.write_ratios with dn2[l] = ||g_l||^2; for a plain network g_l is delta^l).
docs/design.md section 9.

Weights, inputs, head and targets are the plain dense kernel's: row i of W_l is row i of
(layer l, STREAM_WEIGHTS) (dense.weight_row), the head W_o rows of layer L + 1, so a
residual network and the plain network of the same widths and seed share every weight.
Whole rows are drawn (no support skipping) and kept for the backward pass when they fit
the workspace budget (dense.weights_fit), else redrawn from their counters.
"""

import numpy as np
from numba import njit

from ..initializers import DIST_NORMAL
from .common import ARCH_RESIDUAL, draw_inputs, head_errors_of_inputs, run_chunks
from .dense import add_outer, input_ratios, mask_norms, row_times, weight_row, weights_fit

__all__ = ["fill"]


@njit(cache=True)
def _weights(k0, k1, trial, l, i, n_in, dist, var, gain, store, wbuf, woff, wrow):
    """Row i of W_l: its stored copy (store) or drawn into wrow."""
    if store:
        return wbuf[woff[l] + i * n_in: woff[l] + (i + 1) * n_in]
    weight_row(k0, k1, trial, l, i, n_in, dist, var, gain, wrow)
    return wrow


@njit(cache=True)
def _back(k0, k1, trial, l, n_in, n_out, dist, var, gain, store, wbuf, woff, wrow, G, out):
    """out += W_l^T G: G (n_out, N) the layer's g, out (n_in, N); rows with g = 0 skipped."""
    N = G.shape[1]
    for i in range(n_out):
        d = G[i]
        active = False
        for x in range(N):
            if d[x] != 0.0:
                active = True
        if not active:
            continue
        w = _weights(k0, k1, trial, l, i, n_in, dist, var, gain, store, wbuf, woff, wrow)
        add_outer(w, d, n_in, N, out)


@njit(cache=True)
def residual_trial(trial, k0, k1, widths, var, gain, dist, arch, s, head, K, data, X0, N,
                   store, backward, wbuf, woff, H, R, E, G0, G1, a, wrow, z, e, col, hn2, dn2, fwd, bwd):
    """One trial of a residual network (the module's docstring); H[l] (n_l, N), input x in
    column x.  R (n_L, N): ReLU(a^L) of single-skip.  Returns the dead flag."""
    L = widths.shape[0] - 1
    n0 = widths[0]
    draw_inputs(k0, k1, trial, data, X0, N, n0, col)
    for x in range(N):
        for j in range(n0):
            H[0][j, x] = col[x, j]
    # forward: a_i = W_l[i, :] h^(l-1), W_l[i, :] from philox(key, (trial, l, 0, i, :))
    for l in range(1, L + 1):
        n_in = widths[l - 1]
        Hout = H[l]
        skip = (arch == ARCH_RESIDUAL and l % 2 == 1 and l > 1) or (arch != ARCH_RESIDUAL and l == L)
        for i in range(widths[l]):
            w = wbuf[woff[l] + i * n_in: woff[l] + (i + 1) * n_in] if store and l >= 2 else wrow
            weight_row(k0, k1, trial, l, i, n_in, dist, var[l - 1], gain[l - 1], w)
            row_times(w, H[l - 1], n_in, N, a)
            if not skip:                       # h = ReLU(a)
                for x in range(N):
                    Hout[i, x] = a[x] if a[x] > 0.0 else 0.0
            elif arch == ARCH_RESIDUAL:        # h^(2b+1) = h^(2b-1) + s a
                Hp = H[l - 2]
                for x in range(N):
                    Hout[i, x] = Hp[i, x] + s * a[x]
            else:                              # h^L = h^1 + s ReLU(a)
                H1 = H[1]
                for x in range(N):
                    r = a[x] if a[x] > 0.0 else 0.0
                    R[i, x] = r
                    Hout[i, x] = H1[i, x] + s * r
    if not backward:
        return input_ratios(H, widths, N, hn2, dn2, False, fwd, bwd, False, dn2, gain)
    # head: z = W_o h^L (rows of layer L + 1, N(0, 1)); e per input; eta^L = W_o^T e
    nL = widths[L]
    for c in range(K):
        w = wbuf[woff[L + 1] + c * nL: woff[L + 1] + (c + 1) * nL] if store else wrow
        weight_row(k0, k1, trial, L + 1, c, nL, DIST_NORMAL, 1.0, 0.0, w)
        row_times(w, H[L], nL, N, z[c])
    head_errors_of_inputs(k0, k1, trial, L + 1, head, z, col, e, N, K)
    Eta = E[:nL]
    Eta[:, :] = 0.0
    for c in range(K):
        w = _weights(k0, k1, trial, L + 1, c, nL, DIST_NORMAL, 1.0, 0.0, store, wbuf, woff, wrow)
        add_outer(w, e[c], nL, N, Eta)
    if arch == ARCH_RESIDUAL:
        for b in range(L // 2, 0, -1):
            lo = 2 * b + 1                     # the block's output layer
            lh = 2 * b                         # its hidden layer
            n1 = widths[lo]
            nh = widths[lh]
            Go = G0[:n1]
            for x in range(N):
                dn2[x, lo] = 0.0
            for j in range(n1):                # g_(2b+1) = s eta^(2b+1)
                for x in range(N):
                    Go[j, x] = s * Eta[j, x]
                    dn2[x, lo] += Go[j, x] * Go[j, x]
            Gh = G1[:nh]
            Gh[:, :] = 0.0                     # eta^(2b) = W_(2b+1)^T g_(2b+1)
            _back(k0, k1, trial, lo, nh, n1, dist, var[lo - 1], gain[lo - 1], store, wbuf, woff, wrow, Go, Gh)
            mask_norms(Gh, H[lh], nh, N, dn2, lh)
            # eta^(2b-1) = eta^(2b+1) + W_(2b)^T g_(2b), in place (n_(2b-1) = n_(2b+1))
            _back(k0, k1, trial, lh, n1, nh, dist, var[lh - 1], gain[lh - 1], store, wbuf, woff, wrow, Gh, Eta)
        G = G0[:widths[1]]
        G[:, :] = Eta
        mask_norms(G, H[1], widths[1], N, dn2, 1)
    else:
        G = G0[:nL]                            # g_L = s 1[a^L > 0] eta^L
        for j in range(nL):
            for x in range(N):
                G[j, x] = s * Eta[j, x]
        mask_norms(G, R, nL, N, dn2, L)
        use0 = False
        for l in range(L, 2, -1):              # g_(l-1) = 1[a^(l-1) > 0] W_l^T g_l
            n_in = widths[l - 1]
            Gn = G0[:n_in] if use0 else G1[:n_in]
            Gn[:, :] = 0.0
            _back(k0, k1, trial, l, n_in, widths[l], dist, var[l - 1], gain[l - 1], store, wbuf, woff, wrow, G, Gn)
            mask_norms(Gn, H[l - 1], n_in, N, dn2, l - 1)
            G = Gn
            use0 = not use0
        # g_1 = 1[a^1 > 0] (eta^L + W_2^T g_2)
        _back(k0, k1, trial, 2, widths[1], widths[2], dist, var[1], gain[1], store, wbuf, woff, wrow, G, Eta)
        mask_norms(Eta, H[1], widths[1], N, dn2, 1)
    return input_ratios(H, widths, N, hn2, dn2, True, fwd, bwd, False, dn2, gain)


@njit(cache=True, nogil=True)
def _chunk(lo, hi, first, k0, k1, widths, var, gain, dist, arch, s, head, K, data, X0, N,
           store, backward, fwd, bwd, dead):
    """Trials lo..hi-1 with one set of buffers: a work unit of fill (common.run_chunks)."""
    L = widths.shape[0] - 1
    nmax = 0
    for l in range(L + 1):
        nmax = max(nmax, widths[l])
    woff = np.zeros(L + 2, dtype=np.int64)
    for l in range(2, L + 1):
        woff[l + 1] = woff[l] + widths[l] * widths[l - 1]
    nw = woff[L + 1] + K * widths[L]
    H = [np.empty((widths[l], N)) for l in range(L + 1)]
    R = np.empty((widths[L], N))
    E = np.empty((nmax, N))
    G0 = np.empty((nmax, N))
    G1 = np.empty((nmax, N))
    a = np.empty(N)
    wrow = np.empty(nmax)
    wbuf = np.empty(nw if store else 0)
    z = np.empty((K, N))
    e = np.empty((K, N))
    col = np.empty((N, max(widths[0], 2 * K)))
    hn2 = np.empty((N, L + 1))
    dn2 = np.zeros((N, L + 1))
    for t in range(lo, hi):
        j = t - first
        dead[j] = residual_trial(t, k0, k1, widths, var, gain, dist, arch, s, head, K, data, X0, N,
                                 store, backward, wbuf, woff, H, R, E, G0, G1, a, wrow, z, e, col,
                                 hn2, dn2, fwd[j], bwd[j])


def refuse(arch, wn_grad, backend="cpu"):
    """A ConfigError for what residual networks are not computed with: --wn-grad direction and
    the CUDA backend (the engine asks before it creates anything; fill asks again)."""
    from ..config import ConfigError
    if arch == "plain":
        return
    if wn_grad == "direction":
        raise ConfigError("residual networks are computed with --wn-grad weight only (the gradient of the "
                          "effective weight), not direction")
    if backend == "cuda":
        raise ConfigError(f"residual networks (--arch {arch}) are computed on the CPU: use --backend cpu")


def fill(plan, first, count, fwd, bwd, dead, store=None):
    """Compute trials first..first+count-1 of a residual network into fwd, bwd (count, N, L) and
    dead (count,); bwd is left as it is without the backward property (plan.backward False)."""
    refuse(plan.config.arch, plan.config.wn_grad)
    backward = bool(plan.backward)
    if store is None:
        store = weights_fit(plan)
    run_chunks(_chunk, first, count, (first, plan.k0, plan.k1, plan.widths, plan.var, plan.gain, plan.dist,
                                      plan.arch, plan.branch_scale, plan.head, plan.classes, plan.data, plan.X0,
                                      plan.samples, bool(store) and backward, backward, fwd, bwd, dead))
