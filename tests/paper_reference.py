"""An independent NumPy implementation of the paper's experiments, for tests.

Its own generator (numpy's default_rng), its own loops, one input at a time, as the
paper's code runs them: ONE network drawn once, then for each of N inputs a fresh
x ~ N(0, I_n) and a fresh soft target (20 uniforms normalised to sum 1), softmax
cross-entropy with a head W_o ~ N(0, 1).  Nothing here is shared with mcinit: the tests
compare the two in distribution (many networks each), never draw for draw.
"""

import math

import numpy as np

CLASSES = 20


def _rows(rng, m, n, init):
    """(W, gain) of one layer m x n: Gaussian entries of the init's variance, or
    normalised rows (unit norm) with the weight-normalised gain."""
    V = rng.standard_normal((m, n))
    if init == "he":
        return V * math.sqrt(2.0 / m), 1.0
    if init == "paper-glorot":
        return V * math.sqrt(1.0 / m), 1.0
    U = V / np.linalg.norm(V, axis=1)[:, None]
    return U, (math.sqrt(2.0 * n / m) if init == "wn" else 1.0)


def plain_network(rng, n0, width, depth, init):
    """[(W_l, gain_l)] of a plain chain and the head W_o."""
    layers = [_rows(rng, width, n0 if l == 0 else width, init) for l in range(depth)]
    return layers, rng.standard_normal((CLASSES, width))


def plain_input(rng, layers, Wo, n0, wn_direction=False):
    """Norm ratios of one fresh input: forward ||h^l||/||x|| and backward
    ||dloss/dW_l|| / (||x|| ||delta^L||) (for weight-normalised rows with wn_direction,
    the gradient with respect to the unit row direction, as the paper's code)."""
    x = rng.standard_normal(n0)
    t = rng.random(CLASSES)
    t /= t.sum()
    hs = [x]
    h = x
    for U, g in layers:
        h = np.maximum(0.0, g * U.dot(h))
        hs.append(h)
    z = Wo.dot(h)
    p = np.exp(z - z.max())
    p /= p.sum()
    d = (hs[-1] > 0) * Wo.T.dot(p - t)
    dL = np.linalg.norm(d)
    nx = np.linalg.norm(x)
    fwd = [np.linalg.norm(hh) / nx for hh in hs[1:]]
    bwd = [0.0] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        U, g = layers[l]
        hin = hs[l]
        if wn_direction:
            proj = U.dot(hin)                                  # w_i . h for unit rows w_i
            rows = hin[None, :] - U * proj[:, None]            # h - w_i (w_i . h)
            G = d[:, None] * rows
        else:
            G = np.outer(d, hin)
        bwd[l] = np.linalg.norm(G) / (nx * dL) if dL > 0 else np.inf     # a dead network, as mcinit stores it
        d = (hin > 0) * (g * U.T.dot(d))
    return np.array(fwd), np.array(bwd)


def plain_experiment(seed, n0, width, depth, samples, networks, init, wn_direction=False):
    """Per network: (fwd, bwd), each (networks, samples, depth) norm ratios."""
    rng = np.random.default_rng(seed)
    F = np.empty((networks, samples, depth))
    B = np.empty((networks, samples, depth))
    for t in range(networks):
        layers, Wo = plain_network(rng, n0, width, depth, init)
        for i in range(samples):
            F[t, i], B[t, i] = plain_input(rng, layers, Wo, n0, wn_direction)
    return F, B


def resnet_output(seed, n0, width, blocks, samples, networks, init, scale, single_skip=True):
    """Output norm ratios ||h_out|| / ||x|| (networks, samples) of the paper's ResNet: a first
    ReLU layer, then B blocks of two ReLU layers; single_skip: one skip around the whole
    chain (the paper's code: every layer of the chain a ReLU layer), else a skip around every
    block, y = h + s W_2 ReLU(W_1 h) (mcinit's --arch residual).  scale: the branch's factor."""
    rng = np.random.default_rng(seed)
    out = np.empty((networks, samples))
    for t in range(networks):
        first = _rows(rng, width, n0, init)
        blocks_w = [(_rows(rng, width, width, init), _rows(rng, width, width, init)) for _ in range(blocks)]
        for i in range(samples):
            x = rng.standard_normal(n0)
            U, g = first
            h = np.maximum(0.0, g * U.dot(x))
            r = h
            for (U1, g1), (U2, g2) in blocks_w:
                a = g2 * U2.dot(np.maximum(0.0, g1 * U1.dot(r)))
                r = np.maximum(0.0, a) if single_skip else r + scale * a
            y = h + scale * r if single_skip else r
            out[t, i] = np.linalg.norm(y) / np.linalg.norm(x)
    return out


def k_n_paper(n):
    """K_n as the paper's code writes it: the surface of S^k as 2 pi times the volume of the
    unit ball of R^(k-1), and W_(n-1) by the product over odd or even factors."""
    def surface(k):
        j = k - 1
        return 2 * math.pi * math.pi ** (j / 2) / math.gamma(j / 2 + 1)

    def wallis(k):                   # W_(k-1): pi/2 prod (i/(i+1)) over odd i < k, or prod over even i < k
        c, i = (1.0, 2) if k % 2 == 0 else (math.pi / 2, 1)
        while i < k:
            c *= i / (i + 1)
            i += 2
        return c
    return 2 * wallis(n) * surface(n - 1) / surface(n)
