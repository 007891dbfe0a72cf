"""An independent NumPy implementation of docs/design.md section 1, for tests.

It draws the same weights, inputs and targets as the dense kernel through the
generator's public API (``mcinit.rng.normal_matrix`` / ``uniform_matrix``, the
random-number contract) and computes the network with plain NumPy matrix
products, so it checks the kernel's network arithmetic, not its generator.

The activations (``phi_of``) are written here again, from their textbook formulas and
independently of mcinit.activations, with the same convention at the kinks: phi'(0) is
0 for relu and abs, alpha for leaky-relu.
"""

import numpy as np
from scipy.special import ndtr

from mcinit import rng
from mcinit.initializers import scheme_of


def weights(cfg, trial):
    """W_1..W_L and W_o of a trial, as the dense kernel draws them."""
    dist, var, gain = scheme_of(cfg)
    n = cfg.all_widths
    Ws = []
    for l in range(1, cfg.depth + 1):
        if dist == 0:
            W = rng.normal_matrix(cfg.seed, trial, l, rng.STREAM_WEIGHTS, n[l], n[l - 1], np.sqrt(var[l - 1]))
        elif dist == 1:
            a = np.sqrt(3 * var[l - 1])
            W = rng.uniform_matrix(cfg.seed, trial, l, rng.STREAM_WEIGHTS, n[l], n[l - 1], -a, a)
        elif dist == 2:
            V = rng.normal_matrix(cfg.seed, trial, l, rng.STREAM_WEIGHTS, n[l], n[l - 1])
            W = gain[l - 1] * V / np.linalg.norm(V, axis=1, keepdims=True)
        else:
            W = gain[l - 1] * haar(rng.normal_matrix(cfg.seed, trial, l, rng.STREAM_WEIGHTS, n[l], n[l - 1]))
        Ws.append(W)
    Wo = rng.normal_matrix(cfg.seed, trial, cfg.depth + 1, rng.STREAM_WEIGHTS, cfg.head[1], n[-1])
    return Ws, Wo


def haar(G):
    """The Haar matrix of a Gaussian matrix G (n_out x n_in) as torch.nn.init.orthogonal_ makes it:
    Q of the QR of G (or of G^T when n_out < n_in, then transposed), its columns multiplied by
    sign(diag R); orthonormal rows or columns."""
    wide = G.shape[0] < G.shape[1]
    Q, R = np.linalg.qr(G.T if wide else G)
    Q = Q * np.sign(np.diag(R))
    return Q.T if wide else Q


def inputs(cfg, trial, fixed=None):
    """X (N, n_0) of a trial."""
    if fixed is not None:
        return np.asarray(fixed, dtype=float)
    X = rng.normal_matrix(cfg.seed, trial, 0, rng.STREAM_DATA, cfg.samples, cfg.input_dim)
    if cfg.data == "sphere":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X


def errors(cfg, trial, Z):
    """e = softmax(z) - t per row of Z (N, K), or e ~ N(0, I_K) for the gaussian head."""
    kind, K = cfg.head
    N = Z.shape[0]
    layer = cfg.depth + 1
    if kind == "gaussian":
        return rng.normal_matrix(cfg.seed, trial, layer, rng.STREAM_TARGET, N, K)
    T = rng.uniform_matrix(cfg.seed, trial, layer, rng.STREAM_TARGET, N, K)
    T = T / T.sum(axis=1, keepdims=True)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True) - T


def phi_of(activation):
    """(phi, phi') of an activation's text ('relu', 'leaky-relu:0.1', 'abs', 'linear', 'tanh',
    'gelu') as NumPy functions of an array of pre-activations."""
    name, _, slope = activation.partition(":")
    if name == "relu":
        return (lambda a: np.where(a > 0, a, 0.0)), (lambda a: np.where(a > 0, 1.0, 0.0))
    if name == "leaky-relu":
        s = float(slope)
        return (lambda a: np.where(a > 0, a, s * a)), (lambda a: np.where(a > 0, 1.0, s))
    if name == "abs":
        return np.abs, (lambda a: np.sign(a).astype(float))
    if name == "linear":
        return (lambda a: a + 0.0), (lambda a: np.ones_like(a, dtype=float))
    if name == "tanh":
        return np.tanh, (lambda a: 1.0 / np.cosh(a) ** 2)
    if name == "gelu":       # a Phi(a), Phi the standard normal cdf (scipy's ndtr); phi' = Phi(a) + a N(a; 0, 1)
        return ((lambda a: a * ndtr(a)),
                (lambda a: ndtr(a) + a * np.exp(-a * a / 2) / np.sqrt(2 * np.pi)))
    raise ValueError(f"unknown activation {activation!r}")


def forward(X, Ws, activation="relu"):
    """(H, A): H[l] = h^l (N, n_l), l = 0..L, and A[l - 1] = a^l = W_l h^(l-1), h^l = phi(a^l)."""
    f, _ = phi_of(activation)
    H = [X]
    A = []
    for W in Ws:
        A.append(H[-1] @ W.T)
        H.append(f(A[-1]))
    return H, A


def backward(A, Ws, Wo, E, activation="relu"):
    """D[l - 1] = delta^l = dloss/da^l (N, n_l), l = 1..L, from the errors E = dloss/dz (N, K):
    delta^L = phi'(a^L) (W_o^T e), delta^(l-1) = phi'(a^(l-1)) (W_l^T delta^l)."""
    _, df = phi_of(activation)
    D = [None] * len(Ws)
    D[-1] = df(A[-1]) * (E @ Wo)
    for l in range(len(Ws) - 1, 0, -1):
        D[l - 1] = df(A[l - 1]) * (D[l] @ Ws[l])
    return D


def ratios(X, Ws, Wo, error_fn, activation="relu"):
    """rho (N, L) and gamma (N, L) of docs/design.md section 2 for inputs X (N, n_0)."""
    H, A = forward(X, Ws, activation)
    E = error_fn(H[-1] @ Wo.T)         # e = dloss/dz
    return layer_ratios(X, H, backward(A, Ws, Wo, E, activation))


def layer_ratios(X, H, D):
    """rho, gamma (N, L) from the layers H[l] = h^l (l = 0..L) and D[l - 1] = dloss/da^l (l = 1..L):
    ||dloss/dW_l||_F^2 = ||D[l - 1]||^2 ||h^(l-1)||^2 (outer product), relative to ||x||^2 ||D[L - 1]||^2."""
    x2 = np.sum(X * X, axis=1)
    rho = np.stack([np.sum(h * h, axis=1) / x2 for h in H[1:]], axis=1)
    grad2 = np.stack([np.sum(np.einsum("ni,nj->nij", D[l], H[l]) ** 2, axis=(1, 2))
                      for l in range(len(D))], axis=1)
    dL2 = np.sum(D[-1] ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(dL2[:, None] > 0, grad2 / (x2 * dL2)[:, None], np.inf)
    return rho, gamma


def trial_ratios(cfg, trial, fixed=None):
    """rho, gamma (N, L) of one trial of the dense kernel, computed independently."""
    Ws, Wo = weights(cfg, trial)
    X = inputs(cfg, trial, fixed)
    return ratios(X, Ws, Wo, lambda Z: errors(cfg, trial, Z), cfg.activation)


def residual_forward(X, Ws, arch, s):
    """(H, A) of a residual network (docs/design.md section 9): H[l] = h^l (N, n_l), l = 0..L,
    A[l - 1] = a^l = W_l h^(l-1); arch 'residual' or 'single-skip', s the branch scale."""
    H = [X]
    A = []
    L = len(Ws)
    for l, W in enumerate(Ws, start=1):
        A.append(H[-1] @ W.T)
        if arch == "residual" and l > 1 and l % 2 == 1:
            H.append(H[l - 2] + s * A[-1])                   # h^(2b+1) = h^(2b-1) + s a^(2b+1)
        elif arch == "single-skip" and l == L:
            H.append(H[1] + s * np.maximum(A[-1], 0.0))      # h^L = h^1 + s ReLU(a^L)
        else:
            H.append(np.maximum(A[-1], 0.0))
    return H, A


def residual_grads(H, A, Ws, Eta, arch, s):
    """g_l = dloss/da^l (N, n_l), l = 1..L, from eta^L = dloss/dh^L (N, n_L): the chain rule
    through the skips, one layer at a time from the top."""
    L = len(Ws)
    eta = {L: Eta}                      # dloss/dh^l, accumulated over every path from h^l
    G = [None] * (L + 1)
    for l in range(L, 0, -1):
        if arch == "residual" and l > 1 and l % 2 == 1:
            G[l] = s * eta[l]
            eta[l - 2] = eta.get(l - 2, 0.0) + eta[l]        # the skip h^(l-2) -> h^l
        elif arch == "single-skip" and l == L:
            G[l] = s * (A[l - 1] > 0) * eta[l]
            eta[1] = eta.get(1, 0.0) + eta[l]                # the skip h^1 -> h^L
        else:
            G[l] = (A[l - 1] > 0) * eta[l]
        if l > 1:
            eta[l - 1] = eta.get(l - 1, 0.0) + G[l] @ Ws[l - 1]
    return G[1:]


def residual_ratios(X, Ws, Wo, error_fn, arch, s):
    """rho, gamma (N, L) of a residual network (docs/design.md section 9) for inputs X (N, n_0)."""
    H, A = residual_forward(X, Ws, arch, s)
    E = error_fn(H[-1] @ Wo.T)
    return layer_ratios(X, H, residual_grads(H, A, Ws, E @ Wo, arch, s))


def residual_trial_ratios(cfg, trial, fixed=None):
    """rho, gamma (N, L) of one trial of a residual network, computed independently."""
    Ws, Wo = weights(cfg, trial)
    X = inputs(cfg, trial, fixed)
    return residual_ratios(X, Ws, Wo, lambda Z: errors(cfg, trial, Z), cfg.arch, cfg.branch_scale)
