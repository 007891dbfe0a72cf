"""What every kernel shares: the resolved plan, small numba helpers, the ratio formulas.

Every kernel has one call shape (``fill(plan, first, count, fwd, bwd, dead)``):
trials ``first .. first+count-1`` are computed into

    fwd[t, x, l-1] = rho_l(x)   = ||h^l(x)||^2 / ||x||^2
    bwd[t, x, l-1] = gamma_l(x) = ||dloss/dW_l||_F^2 / (||x||^2 ||delta^L(x)||^2)
    dead[t]        = some h^l(x) = 0 or some delta^L(x) = 0

(docs/design.md section 2); with weight-normalised rows and ``plan.wn_direction``
(--wn-grad direction) bwd holds the ratio of the gradient with respect to the row
directions instead, gamma_l^dir (direction_ratios).  gamma is +inf where delta^L(x) = 0 (undefined: a dead
network); rho is 0 from a dead layer on.  The kernels know nothing of files.

A plan without the backward property (``plan.backward`` False, ``--properties forward``)
wants fwd and the forward deaths only: dead[t] = some h^l(x) = 0 (no delta^L is
computed, so none counts).  A kernel may then skip the head and the backward pass and
leave bwd as it is (blocked, dense, projected), or compute both and set dead by
forward_deaths (law).
"""

import math
import os

import numpy as np
from numba import njit

from .. import activations, initializers, rng
from ..config import DATA_RANDOM

__all__ = ["Plan", "make_plan", "n_chunks", "work_units", "forward_deaths"]

HEAD_SOFTMAX, HEAD_GAUSSIAN = 0, 1
ARCH_PLAIN, ARCH_RESIDUAL, ARCH_SINGLE_SKIP = 0, 1, 2
_ARCH_CODES = {"plain": ARCH_PLAIN, "residual": ARCH_RESIDUAL, "single-skip": ARCH_SINGLE_SKIP}
DATA_GAUSSIAN, DATA_SPHERE, DATA_FIXED = 0, 1, 2


class Plan:
    """A run configuration resolved to plain arrays and scalars for nopython code.

    widths   int64 (L+1,): n_0 .. n_L
    var      float64 (L,): per-entry weight variance v_l
    gain     float64 (L,): weight-normalisation gains (0 when unused)
    dist     0 normal, 1 uniform, 2 weight-normalised rows
    head     0 softmax, 1 gaussian; classes = K
    data     0 gaussian, 1 sphere, 2 fixed; X0 (N, n_0) the fixed inputs (else empty)
    k0, k1   the Philox key of the seed
    dtype    numpy float64 or float32: the arithmetic of weights, activations and products
    arch     0 plain, 1 residual (a skip in every block), 2 single-skip (one skip around
             the chain of blocks): ARCH_PLAIN, ARCH_RESIDUAL, ARCH_SINGLE_SKIP
    branch_scale
             the residual branch's scale s (1.0 for a plain network)
    act, alpha
             the activation's code (mcinit.activations.ACT_*) and leaky-relu slope
    wn_direction
             the backward ratio of weight-normalised rows is of the gradient with respect to
             the row direction (--wn-grad direction), not the effective weight
    forward, backward
             whether the trial's forward ratios / backward ratios are wanted (a kernel may
             skip the head and the backward pass when backward is False)
    """

    def __init__(self, config, fixed_data=None):
        self.config = config
        self.widths = np.asarray(config.all_widths, dtype=np.int64)
        self.depth = config.depth
        self.samples = config.samples
        self.dist, self.var, self.gain = initializers.scheme_of(config)
        self.head = HEAD_SOFTMAX if config.head[0] == "softmax" else HEAD_GAUSSIAN
        self.classes = config.head[1]
        if config.data in DATA_RANDOM:
            self.data = DATA_GAUSSIAN if config.data == "gaussian" else DATA_SPHERE
            self.X0 = np.zeros((0, config.input_dim))
        else:
            if fixed_data is None:
                from ..config import ConfigError
                from ..data import load_fixed
                _, fixed_data, sha = load_fixed(config.data, samples=config.samples,
                                                normalize=config.normalize,
                                                scale_free=config.head[0] == "gaussian")
                if sha != config.data_sha256:
                    raise ConfigError(f"the data file {config.data} changed since this run was configured")
            self.data = DATA_FIXED
            self.X0 = np.ascontiguousarray(fixed_data, dtype=np.float64)
        self.arch = _ARCH_CODES[config.arch]
        self.branch_scale = float(config.branch_scale)
        self.wn_direction = config.wn_grad == "direction"
        self.act, self.alpha = activations.code_of(config.activation)
        self.dtype = np.float32 if config.precision == "float32" else np.float64
        self.forward = config.properties in ("both", "forward")
        self.backward = config.properties in ("both", "backward")
        k0, k1 = rng.seed_key(config.seed)
        self.k0, self.k1 = np.uint64(k0), np.uint64(k1)


def make_plan(config, fixed_data=None):
    return Plan(config, fixed_data)


def n_chunks(count):
    """Work units of a batch: a few per thread, so threads stay busy to the end."""
    from numba import get_num_threads
    return max(1, min(count, 4 * get_num_threads()))


def work_units(count, threads):
    """Bounds b[0] = 0 < ... < b[-1] = count of the work units of a batch on ``threads``
    threads: guided sizes, each about 1 / (2 threads) of the trials left and none below
    count / (16 threads), so that the last units, which decide when the threads finish,
    are short (a batch ends with the threads idle for about half a last unit; with equal
    units of count / (4 threads), 2 threads were busy 1.90 of the time on law batches,
    1.96 with these)."""
    if threads <= 1:
        return [0, count]
    least = max(1, count // (16 * threads))
    bounds = [0]
    left = count
    while left > 0:
        size = min(left, max(least, -(-left // (2 * threads))))
        bounds.append(bounds[-1] + size)
        left -= size
    return bounds


def run_chunks(chunk, first, count, args):
    """chunk(lo, hi, *args) over the work units (work_units) of trials first..first+count-1,
    on threads (mcinit.threads.on_threads; chunk is a nogil @njit function).  A trial's
    numbers do not depend on the unit it falls in."""
    from functools import partial

    from numba import get_num_threads

    from ..threads import on_threads
    b = work_units(count, get_num_threads())
    on_threads([partial(chunk, first + lo, first + hi, *args) for lo, hi in zip(b[:-1], b[1:])])


@njit(cache=True, inline="always")
def dot(a, b, n):
    """sum_j a[j] b[j] in a fixed order (four interleaved partial sums)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - n % 4
    for j in range(0, m, 4):
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
    for j in range(m, n):
        s0 += a[j] * b[j]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def draw_inputs(k0, k1, trial, data, X0, N, n0, H0):
    """H0[x, :] = input x of the trial: fixed rows, N(0, I) or uniform on the sphere."""
    if data == DATA_FIXED:
        for x in range(N):
            for j in range(n0):
                H0[x, j] = X0[x, j]
        return
    c2, c3 = rng.counter_words(trial, 0, rng.STREAM_DATA)
    for x in range(N):
        rng.fill_normal_row(k0, k1, c2, c3, x, 1.0, H0[x], n0)
        if data == DATA_SPHERE:
            s = 1.0 / math.sqrt(dot(H0[x], H0[x], n0))
            for j in range(n0):
                H0[x, j] *= s


@njit(cache=True)
def head_error(k0, k1, trial, layer, head, z, x, e, K):
    """e = softmax(z) - t for input x (t: K uniforms normalised to sum 1), or e ~ N(0, I_K).
    The exponentials are rng.exp's (fdlibm's): the same on every machine and backend.

    The targets / errors are row x of (layer, STREAM_TARGET), layer = L + 1."""
    c2, c3 = rng.counter_words(trial, layer, rng.STREAM_TARGET)
    if head == HEAD_GAUSSIAN:
        rng.fill_normal_row(k0, k1, c2, c3, x, 1.0, e, K)
        return
    rng.fill_uniform_row(k0, k1, c2, c3, x, 0.0, 1.0, e, K)
    ts = 0.0
    for c in range(K):
        ts += e[c]
    zmax = z[0]
    for c in range(1, K):
        if z[c] > zmax:
            zmax = z[c]
    s = 0.0
    for c in range(K):
        s += rng.exp(z[c] - zmax)
    for c in range(K):
        e[c] = rng.exp(z[c] - zmax) / s - e[c] / ts


@njit(cache=True, inline="always")
def head_errors_of_inputs(k0, k1, trial, layer, head, z, col, e, N, K):
    """e[:, x] = head_error of input x's logits z[:, x], for every input (col: (N, >= 2K) scratch)."""
    for x in range(N):
        for c in range(K):
            col[x, c] = z[c, x]
        head_error(k0, k1, trial, layer, head, col[x], x, col[x, K:], K)
        for c in range(K):
            e[c, x] = col[x, K + c]


@njit(cache=True)
def write_ratios(hn2, dn2, L, fwd, bwd):
    """Ratios of one input from its squared norms hn2[l] = ||h^l||^2 (l = 0..L) and
    dn2[l] = ||delta^l||^2 (l = 1..L).  Returns True when the input makes the trial dead."""
    dead = dn2[L] == 0.0
    for l in range(1, L + 1):
        fwd[l - 1] = hn2[l] / hn2[0]
        if hn2[l] == 0.0:
            dead = True
        if dn2[L] == 0.0:
            bwd[l - 1] = np.inf
        else:
            bwd[l - 1] = (dn2[l] / dn2[L]) * (hn2[l - 1] / hn2[0])
    return dead


@njit(cache=True)
def direction_ratios(hn2, dn2, dc2, gain, L, bwd):
    """The backward ratios of one input with respect to the row directions of weight-normalised
    layers (--wn-grad direction; docs/design.md section 2):

        gamma_l^dir = sum_i delta_i^2 (||h^(l-1)||^2 - (u_i . h^(l-1))^2) / (||x||^2 ||delta^L||^2)
                    = (||delta^l||^2 ||h^(l-1)||^2 - c_l / g_l^2) / (||x||^2 ||delta^L||^2),

    u_i the unit direction of row i, g_l the layer's gain, c_l = sum_i (delta^l_i a^l_i)^2
    (u_i . h^(l-1) = a_i / g_l; for ReLU h^l_i = a_i wherever delta^l_i != 0, so the kernels
    may sum h^l there, and any other activation's a^l).  hn2[l], dn2[l] and
    dc2[l] = c_l (l = 0..L) as in write_ratios; bwd as write_ratios left it (+inf where
    delta^L = 0, kept).  Rounding can take a value a few ulps below 0 (n_(l-1) = 1, where
    it is 0): it is clipped at 0."""
    dL = dn2[L]
    if dL == 0.0:
        return
    for l in range(1, L + 1):
        g = gain[l - 1]
        v = (dn2[l] * hn2[l - 1] - dc2[l] / (g * g)) / (dL * hn2[0])
        bwd[l - 1] = max(v, 0.0)


@njit(cache=True)
def write_forward_ratios(hn2, L, fwd):
    """write_ratios without the backward pass: the forward ratios of one input from hn2[l] =
    ||h^l||^2 (l = 0..L).  Returns True when some h^l = 0 (a forward death)."""
    dead = False
    for l in range(1, L + 1):
        fwd[l - 1] = hn2[l] / hn2[0]
        if hn2[l] == 0.0:
            dead = True
    return dead


def refuse_unbuilt(plan, name, arch=False, wn_direction=False, activation=False, orthogonal=False):
    """A ConfigError when the plan asks for what the kernel ``name`` does not compute yet
    (arch: residual networks; wn_direction: --wn-grad direction; activation: an activation
    other than ReLU; orthogonal: --init orthogonal)."""
    from ..config import ConfigError
    if plan.arch != ARCH_PLAIN and not arch:
        raise ConfigError(f"the {name} kernel does not compute residual networks")
    if plan.wn_direction and not wn_direction:
        raise ConfigError(f"the {name} kernel does not compute --wn-grad direction (the dense and blocked "
                          "kernels do)")
    if plan.act != activations.ACT_RELU and not activation:
        raise ConfigError(f"the {name} kernel computes ReLU networks only, not --activation "
                          f"{plan.config.activation}: use --kernel dense")
    if plan.dist == initializers.DIST_ORTHOGONAL and not orthogonal:
        raise ConfigError(f"the {name} kernel does not draw orthogonal weights: use --kernel dense")


def forward_deaths(fwd, dead):
    """dead[t] = some rho_l(x) = 0 in fwd (T, N, L): the dead flag of a plan without the
    backward property, for a kernel that computes both (rho_l(x) = ||h^l(x)||^2 / ||x||^2
    is 0 when h^l(x) = 0, and otherwise only below the smallest float64 quotient, which no
    network reaches)."""
    np.any(fwd == 0.0, axis=(1, 2), out=dead)


def workspace_mb():
    """Per-work-unit memory budget for stored dense weights (MCINIT_WORKSPACE_MB, default 512)."""
    try:
        return float(os.environ.get("MCINIT_WORKSPACE_MB", "512"))
    except ValueError:
        return 512.0
