"""The blocked kernel: the dense kernel's networks, a whole layer at a time, products by BLAS.

A trial draws every weight of its network exactly as the dense kernel does (row i of
W_l is row i of (layer l, STREAM_WEIGHTS)), but into a matrix of the layer, and passes
all N inputs through it at once:

    forward   A = W_l H^(l-1)            (n_l x N; one gemm),  H^l = ReLU(A)
    head      Z = W_o H^L,  E = softmax(Z) - T  (or E ~ N(0, I))
    backward  D^L = 1[H^L > 0] (W_o^T E),  D^(l-1) = 1[H^(l-1) > 0] (W_l^T D^l)

The column norms ||h^l(x)||^2 and ||delta^l(x)||^2 are accumulated in float64 in the
pass that applies the ReLU or its mask.  The weights W_2..W_L and the head are kept for
the backward pass when they fit the workspace budget (common.workspace_mb), else each
layer is drawn again from its counters: the same numbers either way.

So a trial's numbers are the dense kernel's up to the order of rounding in the sums
(the BLAS orders its own).  Within one machine the order is fixed: every product runs
on one BLAS thread (threads work on different trials), so a trial's results are the
same bits for every thread count, batch size, shard and resume.  ``precision float32``
keeps the weights (the float64 numbers, rounded), activations and products in float32
(sgemm); norms and ratios stay float64.  With ``properties forward`` the head and the
backward pass are skipped.

With ``plan.wn_direction`` (--wn-grad direction, weight-normalised rows) the backward ratio
is that of the gradient with respect to the row directions: the backward pass also sums
c_l(x) = sum_i (D^l[i, x] H^l[i, x])^2 (float64), and direction_bwd gives
gamma_l^dir = (||delta^l||^2 ||h^(l-1)||^2 - c_l / g_l^2) / (||x||^2 ||delta^L||^2)
(common.direction_ratios; docs/design.md section 2).

The trial itself (``blocked_trial``) is written against a small set of array operations
(:class:`Ops`): the same code runs with NumPy arrays and BLAS here and with device
arrays and cuBLAS on a GPU (mcinit.kernels.cuda.blocked).
"""

import threading

import numpy as np
from numba import njit

from .. import rng
from ..initializers import DIST_NORMAL, DIST_UNIFORM
from .common import DATA_FIXED, direction_ratios, draw_inputs, head_error, run_chunks, workspace_mb

__all__ = ["fill", "release", "Ops", "Workspace", "blocked_trial", "weights_fit", "kept_weight_bytes", "one_blas_thread"]


# -- the operations of a trial, on the CPU ------------------------------------------------------


@njit(cache=True, nogil=True)
def layer_weights(k0, k1, trial, layer, n_out, n_in, dist, var, gain, out, scratch, ws):
    """out[i, :] = row i of W_layer (i < n_out), as the dense kernel draws it; out is an
    (n_out, n_in) float64 or float32 array (float32: the float64 numbers, rounded).
    scratch: float64 of max(rng.BLOCK_VALUES, n_in); ws: rng.block_workspace(n_in)."""
    c2, c3 = rng.counter_words(trial, layer, rng.STREAM_WEIGHTS)
    if dist == DIST_NORMAL:
        sd = np.sqrt(var)
        cols = np.arange(n_in)
        step = rng.block_rows(n_in)
        for i0 in range(0, n_out, step):
            nb = min(step, n_out - i0)
            blk = scratch[:nb * n_in]
            rng.fill_normal_block_cols(k0, k1, c2, c3, i0, nb, sd, cols, n_in, blk, ws)
            for r in range(nb):
                o = out[i0 + r]
                for j in range(n_in):
                    o[j] = blk[r * n_in + j]
        return
    row = scratch[:n_in]
    for i in range(n_out):
        if dist == DIST_UNIFORM:
            a = np.sqrt(3.0 * var)
            rng.fill_uniform_row(k0, k1, c2, c3, i, -a, a, row, n_in)
        else:
            rng.fill_normal_row(k0, k1, c2, c3, i, 1.0, row, n_in)
            s = 0.0
            for j in range(n_in):
                s += row[j] * row[j]
            s = gain / np.sqrt(s)
            for j in range(n_in):
                row[j] *= s
        o = out[i]
        for j in range(n_in):
            o[j] = row[j]


@njit(cache=True, nogil=True)
def relu_norms(A, n2):
    """A = ReLU(A) in place and n2[x] = ||A[:, x]||^2 (float64), one pass over A (n x N)."""
    # one array in and out, so that the loop over x vectorises (a select, no branch: the
    # signs of a layer's pre-activations are a coin toss, and a branch on them mispredicts)
    n, N = A.shape
    zero = A.dtype.type(0.0)
    acc = np.zeros(N)
    for j in range(n):
        a = A[j]
        for x in range(N):
            v = a[x] if a[x] > 0 else zero
            a[x] = v
            f = np.float64(v)
            acc[x] += f * f
    for x in range(N):
        n2[x] = acc[x]


@njit(cache=True, nogil=True)
def masked_norms(D, H, n2):
    """D = 1[H > 0] D in place and n2[x] = ||D[:, x]||^2 (float64), one pass over D (n x N):
    the ReLU's derivative at a layer's output H applied to a delta D (D and H distinct)."""
    n, N = D.shape
    zero = D.dtype.type(0.0)
    acc = np.zeros(N)
    for j in range(n):
        d = D[j]
        h = H[j]
        for x in range(N):
            v = d[x] if h[x] > 0 else zero
            d[x] = v
            f = np.float64(v)
            acc[x] += f * f
    for x in range(N):
        n2[x] = acc[x]


@njit(cache=True, nogil=True)
def product_norms(D, H, n2):
    """n2[x] = sum_j (D[j, x] H[j, x])^2 (float64): a delta against the layer's own output,
    the term c_l of the direction gradient (direction_bwd)."""
    n, N = D.shape
    acc = np.zeros(N)
    for j in range(n):
        d = D[j]
        h = H[j]
        for x in range(N):
            f = np.float64(d[x]) * np.float64(h[x])
            acc[x] += f * f
    for x in range(N):
        n2[x] = acc[x]


@njit(cache=True, nogil=True)
def column_norms(A, n2):
    """n2[x] = ||A[:, x]||^2 (float64)."""
    n, N = A.shape
    acc = np.zeros(N)
    for j in range(n):
        a = A[j]
        for x in range(N):
            f = np.float64(a[x])
            acc[x] += f * f
    for x in range(N):
        n2[x] = acc[x]


@njit(cache=True, nogil=True)
def trial_inputs(k0, k1, trial, data, X0, N, n0, rows, H0):
    """H0[:, x] = input x of the trial (common.draw_inputs; rows: float64 (N, n0) scratch)."""
    draw_inputs(k0, k1, trial, data, X0, N, n0, rows)
    for j in range(n0):
        for x in range(N):
            H0[j, x] = rows[x, j]


@njit(cache=True, nogil=True)
def head_errors(k0, k1, trial, layer, head, Z, E, zx, ex):
    """E[:, x] = the head's error for logits Z[:, x] (common.head_error), in float64."""
    K, N = Z.shape
    for x in range(N):
        for c in range(K):
            zx[c] = Z[c, x]
        head_error(k0, k1, trial, layer, head, zx, x, ex, K)
        for c in range(K):
            E[c, x] = ex[c]


@njit(cache=True, nogil=True)
def ratios(hn2, dn2, L, backward, fwd, bwd):
    """fwd[x, l-1] = hn2[l, x] / hn2[0, x]; bwd[x, l-1] = (dn2[l, x] / dn2[L, x])
    (hn2[l-1, x] / hn2[0, x]) (+inf where delta^L(x) = 0), when ``backward``.
    hn2, dn2: (L + 1, N).  Returns the dead flag: some h^l(x) = 0 or (backward) some
    delta^L(x) = 0."""
    N = hn2.shape[1]
    dead = False
    for x in range(N):
        h0 = hn2[0, x]
        for l in range(1, L + 1):
            fwd[x, l - 1] = hn2[l, x] / h0
            if hn2[l, x] == 0.0:
                dead = True
        if backward:
            dL = dn2[L, x]
            if dL == 0.0:
                dead = True
            for l in range(1, L + 1):
                bwd[x, l - 1] = np.inf if dL == 0.0 else (dn2[l, x] / dL) * (hn2[l - 1, x] / h0)
    return dead


@njit(cache=True, nogil=True)
def direction_bwd(hn2, dn2, dc2, gain, L, bwd):
    """bwd[x, l-1] = gamma_l^dir(x), the backward ratio of the direction gradient
    (common.direction_ratios), from the squared norms hn2, dn2 and the sums dc2 ((L + 1) x N
    each) and the layers' gains; after ``ratios`` (which set +inf where delta^L(x) = 0)."""
    N = hn2.shape[1]
    for x in range(N):
        direction_ratios(hn2[:, x], dn2[:, x], dc2[:, x], gain, L, bwd[x])


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]     # [fills running, the threadpoolctl limiter whose limits to restore]


def _free_blas_control():
    """Let the calling thread set OpenBLAS's thread count.  With OpenBLAS's own (pthreads)
    thread pool, threadpoolctl lets only one Python thread, the first that set a limit,
    change it while that thread lives, and ignores the others silently; a fill that ran
    on the main thread would otherwise keep every later fill, on engine threads, from
    limiting the BLAS."""
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:
        return
    OpenBLASController.clear_controlling_thread(force=True)


class one_blas_thread:
    """While any fill of this kernel runs, BLAS uses one thread (threadpoolctl): every
    product's order of summation is then fixed, and threads work on different trials
    instead of waiting for each other inside a product.  Fills may overlap (the engine
    runs two at once, on different threads): the limit is set by the first and the
    original limits restored by the last, whichever threads they run on."""

    def __enter__(self):
        with _BLAS_LOCK:
            if _BLAS_USERS[0] == 0:
                from threadpoolctl import threadpool_limits
                _free_blas_control()
                _BLAS_USERS[1] = threadpool_limits(limits=1, user_api="blas")
            _BLAS_USERS[0] += 1
        return self

    def __exit__(self, *exc):
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _free_blas_control()
                _BLAS_USERS[1].restore_original_limits()
                _BLAS_USERS[1] = None
                _free_blas_control()
        return False


class Ops:
    """The array operations of a blocked trial, on the CPU: NumPy arrays, BLAS products
    (numpy.matmul) and the fused loops above.  A GPU version provides the same methods on
    device arrays (mcinit.kernels.cuda.blocked)."""

    xp = np

    def __init__(self, plan):
        self.plan = plan
        n = int(max(plan.widths))
        self.scratch = np.empty(max(rng.BLOCK_VALUES, n))
        self.ws = rng.block_workspace(n)
        K = plan.classes
        self.zx = np.empty(K)
        self.ex = np.empty(K)
        self.rows = np.empty((plan.samples, int(plan.widths[0])))

    def empty(self, shape):
        return np.empty(shape, dtype=self.plan.dtype)

    def weights(self, trial, layer, out):
        """out = W_layer (n_out x n_in) of the trial; layer L + 1 is the head (N(0, 1))."""
        p = self.plan
        L = p.widths.shape[0] - 1
        n_out, n_in = out.shape
        if layer == L + 1:
            dist, var, gain = DIST_NORMAL, 1.0, 0.0
        else:
            dist, var, gain = p.dist, float(p.var[layer - 1]), float(p.gain[layer - 1])
        layer_weights(p.k0, p.k1, trial, layer, n_out, n_in, dist, var, gain, out, self.scratch, self.ws)

    def inputs(self, trial, H0):
        p = self.plan
        trial_inputs(p.k0, p.k1, trial, p.data, p.X0, p.samples, int(p.widths[0]), self.rows, H0)

    def matmul(self, A, B, out):
        np.matmul(A, B, out=out)

    def relu_norms(self, A, n2):
        """A = ReLU(A), n2 = its squared column norms (float64)."""
        relu_norms(A, n2)

    def mask_norms(self, D, H, n2):
        """D = 1[H > 0] D, n2 = its squared column norms (float64)."""
        masked_norms(D, H, n2)

    def column_norms(self, A, n2):
        column_norms(A, n2)

    def product_norms(self, D, H, n2):
        """n2[x] = sum_j (D[j, x] H[j, x])^2 (float64)."""
        product_norms(D, H, n2)

    def head_errors(self, trial, Z, E):
        p = self.plan
        L = p.widths.shape[0] - 1
        if E.dtype == np.float64 and Z.dtype == np.float64:
            head_errors(p.k0, p.k1, trial, L + 1, p.head, Z, E, self.zx, self.ex)
        else:
            E64 = np.empty(E.shape)
            head_errors(p.k0, p.k1, trial, L + 1, p.head, Z.astype(np.float64), E64, self.zx, self.ex)
            E[...] = E64

    def norms(self, n2):
        """n2 (the norms, on the device for a GPU) as a NumPy array."""
        return n2


class Workspace:
    """The arrays of one blocked trial, reused from trial to trial: the activations of every
    layer, two delta buffers, the weights (kept for the backward pass, or one layer's), the
    logits and errors, and the squared norms (float64, (L + 1) x N)."""

    def __init__(self, ops, plan, keep):
        w = [int(v) for v in plan.widths]
        L = len(w) - 1
        N = plan.samples
        K = plan.classes
        self.H = [ops.empty((w[l], N)) for l in range(L + 1)]
        back = plan.backward
        nmax = max(w[1:]) if L else w[0]
        self.keep = keep and back
        if self.keep:
            self.W = [None, ops.empty((w[1], w[0]))] + [ops.empty((w[l], w[l - 1])) for l in range(2, L + 1)]
        else:
            self.W = None
            self.Wl = ops.xp.empty(max(w[l] * w[l - 1] for l in range(1, L + 1)), dtype=plan.dtype)
        self.Wo = ops.empty((K, w[L])) if back else None
        self.D = [ops.empty((nmax, N)), ops.empty((nmax, N))] if back else None
        self.Z = ops.empty((K, N)) if back else None
        self.E = ops.empty((K, N)) if back else None
        self.hn2 = ops.xp.zeros((L + 1, N))
        self.dn2 = ops.xp.zeros((L + 1, N))
        self.dc2 = ops.xp.zeros((L + 1, N)) if back and plan.wn_direction else None

    def weights(self, l, n_out, n_in):
        """The array that holds W_l."""
        if self.keep:
            return self.W[l]
        return self.Wl[:n_out * n_in].reshape(n_out, n_in)


def blocked_trial(ops, plan, trial, ws, fixed_inputs=False):
    """One trial into ws.hn2 and ws.dn2 (squared norms of h^l and delta^l, l = 0..L, for every
    input), and with plan.wn_direction ws.dc2 (c_l = sum_i (delta^l_i h^l_i)^2).
    fixed_inputs: ws.H[0] already holds the inputs (a fixed dataset: the same for every
    trial)."""
    w = [int(v) for v in plan.widths]
    L = len(w) - 1
    H = ws.H
    if not fixed_inputs:
        ops.inputs(trial, H[0])
        ops.column_norms(H[0], ws.hn2[0])
    for l in range(1, L + 1):
        W = ws.weights(l, w[l], w[l - 1])
        ops.weights(trial, l, W)
        ops.matmul(W, H[l - 1], H[l])
        ops.relu_norms(H[l], ws.hn2[l])
    if not plan.backward:
        return
    ops.weights(trial, L + 1, ws.Wo)
    ops.matmul(ws.Wo, H[L], ws.Z)
    ops.head_errors(trial, ws.Z, ws.E)
    D = ws.D[0][:w[L]]
    ops.matmul(ws.Wo.T, ws.E, D)
    ops.mask_norms(D, H[L], ws.dn2[L])
    direction = ws.dc2 is not None
    if direction:
        ops.product_norms(D, H[L], ws.dc2[L])
    for l in range(L, 1, -1):
        W = ws.weights(l, w[l], w[l - 1])
        if not ws.keep:
            ops.weights(trial, l, W)
        Dn = ws.D[(L - l + 1) % 2][:w[l - 1]]
        ops.matmul(W.T, D, Dn)
        ops.mask_norms(Dn, H[l - 1], ws.dn2[l - 1])
        if direction:
            ops.product_norms(Dn, H[l - 1], ws.dc2[l - 1])
        D = Dn


def kept_weight_bytes(plan):
    """Bytes of the weights a trial keeps for its backward pass (W_1..W_L and the head)."""
    w = np.asarray(plan.widths, dtype=np.int64)
    nw = int(np.sum(w[1:] * w[:-1])) + plan.classes * int(w[-1])
    return nw * np.dtype(plan.dtype).itemsize


def weights_fit(plan, budget=None):
    """Whether the weights a trial keeps for its backward pass fit ``budget`` bytes (the
    workspace budget when None); else each layer is drawn again for the backward pass."""
    if budget is None:
        budget = workspace_mb() * 2 ** 20
    return kept_weight_bytes(plan) <= budget


class WorkspacePool:
    """Workspaces lent to work units and kept for the next ones of the same shape: a work
    unit of the paper's regime needs about 90 MB (n 500, N 2000), whose first touch would
    cost a few percent of its time if every unit allocated its own.  Holds at most as many
    workspaces as work units ran at once, of the last shape asked for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.key = None
        self.free = []

    def take(self, plan, keep):
        key = (tuple(int(v) for v in plan.widths), plan.samples, plan.classes, np.dtype(plan.dtype).str,
               bool(keep), bool(plan.backward), bool(plan.wn_direction))
        with self.lock:
            if key != self.key:
                self.key, self.free = key, []
            if self.free:
                return key, self.free.pop()
        return key, (Ops(plan), None)

    def give(self, key, item):
        with self.lock:
            if key == self.key:
                self.free.append(item)

    def clear(self):
        with self.lock:
            self.key, self.free = None, []


POOL = WorkspacePool()


def _chunk(lo, hi, first, plan, keep, fwd, bwd, dead):
    """Trials lo..hi-1 with one workspace: a work unit of fill (common.run_chunks)."""
    key, (ops, ws) = POOL.take(plan, keep)
    ops.plan = plan
    if ws is None:
        ws = Workspace(ops, plan, keep)
    try:
        _trials(lo, hi, first, plan, ops, ws, fwd, bwd, dead)
    finally:
        POOL.give(key, (ops, ws))


def _trials(lo, hi, first, plan, ops, ws, fwd, bwd, dead):
    L = plan.widths.shape[0] - 1
    fixed = plan.data == DATA_FIXED
    if fixed:
        ops.inputs(lo, ws.H[0])
        ops.column_norms(ws.H[0], ws.hn2[0])
    for t in range(lo, hi):
        j = t - first
        blocked_trial(ops, plan, t, ws, fixed_inputs=fixed)
        hn2, dn2 = ops.norms(ws.hn2), ops.norms(ws.dn2)
        dead[j] = ratios(hn2, dn2, L, plan.backward, fwd[j], bwd[j])
        if ws.dc2 is not None:
            direction_bwd(hn2, dn2, ops.norms(ws.dc2), plan.gain, L, bwd[j])


def fill(plan, first, count, fwd, bwd, dead):
    """Compute trials first..first+count-1 into fwd, bwd (count, N, L) and dead (count,);
    bwd is left as it is when the plan wants no backward ratios.  With plan.wn_direction bwd
    holds the ratios of the direction gradient (gamma_l^dir)."""
    from .common import refuse_unbuilt
    refuse_unbuilt(plan, "blocked", wn_direction=True)
    keep = weights_fit(plan)
    with one_blas_thread():
        run_chunks(_chunk, first, count, (first, plan, keep, fwd, bwd, dead))


def release():
    """Free the workspaces kept between fills (the engine calls it when a run ends)."""
    POOL.clear()
