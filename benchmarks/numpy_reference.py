"""Plain NumPy per-trial reference: the baseline of the benchmark suite.

This is how the authors' reference code (and most code of the field) computes a
network: per trial, draw every weight matrix with NumPy's ``default_rng``, push
the inputs through with BLAS matrix products, and read off the norms.  It is
deliberately straightforward (no tricks beyond in-place scaling), so that the
speed-ups the benchmarks print are against what a careful NumPy user writes.

Mathematics (docs/design.md sections 1 and 2), He initialisation (Var = 2/fan_out),
softmax head with K classes (W_o ~ N(0, 1)), random soft targets t:

    a^l = W_l h^(l-1),  h^l = ReLU(a^l),  h^0 = x
    z = W_o h^L,  e = softmax(z) - t
    delta^L = 1[a^L > 0] (W_o^T e),  delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
    rho_l   = ||h^l||^2 / ||x||^2
    gamma_l = ||delta^l||^2 ||h^(l-1)||^2 / (||x||^2 ||delta^L||^2)

``ratios`` takes weight matrices, inputs and targets and returns the per-input
rho and gamma, so it doubles as an independent check of the kernels:
``mcinit_draws`` gives it the very numbers mcinit's dense kernel draws (through
mcinit's public generator API), and the two must agree to rounding.

Many inputs per network: ``run_trials(..., X=X)`` passes the same N fixed inputs
(a dataset, one per row) through every network, all N at once (each product is one
BLAS gemm, n_l x n_(l-1) times n_(l-1) x N).  ``dtype=np.float32`` is the same loop
in single precision, as a NumPy user writes it: weights drawn as float32
(``standard_normal(dtype=np.float32)``), inputs, activations and products in float32
(sgemm); only the squared norms are summed in float64, as mcinit does.

Only NumPy is needed (``mcinit_draws`` imports mcinit when called).
"""

import numpy as np

__all__ = ["he_std", "draw_trial", "ratios", "norms2", "run_trials", "mcinit_draws"]


def he_std(fan_out):
    """Standard deviation of a He (fan_out) weight: sqrt(2 / n_l)."""
    return np.sqrt(2.0 / fan_out)


def draw_trial(gen, widths, samples, classes, X=None, dtype=np.float64):
    """One trial's random numbers from a NumPy Generator.

    widths   (n_0, n_1, ..., n_L)
    X        fixed inputs (N x n_0), returned as they are; None: drawn, N(0, I)
    dtype    np.float64 or np.float32: the weights' (and drawn inputs') precision
    returns  Ws [W_1..W_L] (W_l is n_l x n_(l-1)), Wo (K x n_L), X (N x n_0), T (N x K)
    """
    dtype = np.dtype(dtype).type
    Ws = []
    for l in range(1, len(widths)):
        # W_l ~ N(0, 2 / n_l) entrywise (He, fan_out)
        W = gen.standard_normal((widths[l], widths[l - 1]), dtype=dtype)
        W *= dtype(he_std(widths[l]))
        Ws.append(W)
    # W_o ~ N(0, 1) entrywise (the authors' head)
    Wo = gen.standard_normal((classes, widths[-1]), dtype=dtype)
    if X is None:
        # x ~ N(0, I_(n_0)), one row per input
        X = gen.standard_normal((samples, widths[0]), dtype=dtype)
    # t = u / sum(u), u ~ U(0, 1)^K, one row per input
    T = gen.random((samples, classes), dtype=dtype)
    T /= T.sum(axis=1, keepdims=True)
    return Ws, Wo, X, T


def ratios(Ws, Wo, X, T):
    """Per-input forward and backward ratios of one network.

    Ws  [W_1..W_L], W_l of shape (n_l, n_(l-1));  Wo (K, n_L)
    X   (N, n_0) inputs, one per row;  T (N, K) targets, rows summing to 1
    returns rho (N, L), gamma (N, L).  gamma is +inf for an input whose
    delta^L is zero (a dead network), as in mcinit.
    The arithmetic is the weights' dtype (float64, or float32: sgemm); the squared
    norms are summed in float64 either way.
    """
    L = len(Ws)
    dtype = Ws[0].dtype
    zero = dtype.type(0)
    # h^0 = x, as columns: H is (n_0, N)
    H = np.asarray(X, dtype=dtype).T
    hn2 = [norms2(H)]
    active = []
    for W in Ws:
        # a^l = W_l h^(l-1)
        A = W @ H
        # h^l = ReLU(a^l); keep 1[a^l > 0] for the backward pass
        mask = A > zero
        H = np.where(mask, A, zero)
        active.append(mask)
        hn2.append(norms2(H))
    # z = W_o h^L
    Z = Wo @ H
    # e = softmax(z) - t  (softmax over the K classes of each input)
    P = np.exp(Z - Z.max(axis=0))
    P /= P.sum(axis=0)
    E = P - np.asarray(T, dtype=dtype).T
    # delta^L = 1[a^L > 0] (W_o^T e)
    D = (Wo.T @ E) * active[L - 1]
    dn2 = [None] * (L + 1)
    dn2[L] = norms2(D)
    for l in range(L, 1, -1):
        # delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
        D = (Ws[l - 1].T @ D) * active[l - 2]
        dn2[l - 1] = norms2(D)
    hn2 = np.array(hn2)          # (L + 1, N): ||h^l||^2, l = 0..L
    dn2 = np.array(dn2[1:])      # (L, N):     ||delta^l||^2, l = 1..L
    # rho_l = ||h^l||^2 / ||x||^2
    rho = hn2[1:] / hn2[0]
    # gamma_l = ||dloss/dW_l||_F^2 / (||x||^2 ||delta^L||^2), ||dloss/dW_l||_F = ||delta^l|| ||h^(l-1)||
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = (dn2 / dn2[-1]) * (hn2[:-1] / hn2[0])
    gamma[:, dn2[-1] == 0.0] = np.inf
    return rho.T, gamma.T


def norms2(A):
    """Squared column norms ||A[:, x]||^2, summed in float64 (A is float64 or float32)."""
    if A.dtype == np.float64:
        return np.einsum("ij,ij->j", A, A)
    A = A.astype(np.float64)
    return np.einsum("ij,ij->j", A, A)


def run_trials(widths, samples, classes, trials, seed=0, X=None, dtype=np.float64):
    """Run ``trials`` independent networks; returns rho, gamma of shape (trials, N, L).

    One Generator (PCG64, default_rng(seed)) feeds all trials in order.
    X      fixed inputs (N x n_0, N = samples), the same in every trial; None: N(0, I)
           inputs drawn per trial
    dtype  np.float64 or np.float32 (module docstring)"""
    gen = np.random.default_rng(seed)
    L = len(widths) - 1
    if X is not None:
        X = np.asarray(X, dtype=dtype)    # cast once, not per trial
    rho = np.empty((trials, samples, L))
    gamma = np.empty((trials, samples, L))
    for t in range(trials):
        rho[t], gamma[t] = ratios(*draw_trial(gen, widths, samples, classes, X, dtype))
    return rho, gamma


def mcinit_draws(seed, trial, widths, samples, classes, X=None):
    """The weights, inputs and targets that mcinit's dense (and blocked) kernel draws
    for one trial (He normal weights, softmax head; gaussian data, or the fixed inputs
    X, N x n_0), as ``draw_trial`` returns them; feed them to ``ratios`` to check the
    kernel."""
    from mcinit import rng

    L = len(widths) - 1
    Ws = [rng.normal_matrix(seed, trial, l, rng.STREAM_WEIGHTS, widths[l], widths[l - 1],
                            he_std(widths[l])) for l in range(1, L + 1)]
    Wo = rng.normal_matrix(seed, trial, L + 1, rng.STREAM_WEIGHTS, classes, widths[L])
    if X is None:
        X = rng.normal_matrix(seed, trial, 0, rng.STREAM_DATA, samples, widths[0])
    T = rng.uniform_matrix(seed, trial, L + 1, rng.STREAM_TARGET, samples, classes)
    T /= T.sum(axis=1, keepdims=True)
    return Ws, Wo, X, T
