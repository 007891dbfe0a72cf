"""Batched PyTorch CPU reference with autograd: a second baseline of the benchmark suite.

Where ``numpy_reference.py`` is the per-trial loop of the authors' code, this is
what a careful PyTorch user writes: B independent networks at once, every
weight of the batch drawn by one ``torch.randn`` per layer, the forward pass as
batched matrix products (``torch.bmm``) and ``relu``, the backward pass by
autograd (``loss.backward()``), all in float64 so that the numbers are the same
as mcinit's and the NumPy reference's to rounding.

Mathematics (docs/design.md sections 1 and 2), He initialisation (Var = 2/fan_out
= 2/n_l), Gaussian weights, softmax head with K classes (W_o ~ N(0, 1)),
inputs x ~ N(0, I), random soft targets t (K uniforms normalised to sum 1, one
per input):

    a^l = W_l h^(l-1),  h^l = ReLU(a^l),  h^0 = x
    loss = sum over trials and inputs of -sum_k t_k log softmax(z)_k,  z = W_o h^L
    delta^l = dloss/da^l                      (autograd)
    rho_l   = ||h^l||^2 / ||x||^2
    gamma_l = ||dloss/dW_l||_F^2 / (||x||^2 ||delta^L||^2)

Summing the losses of all trials and inputs does not mix them: each input's
loss depends only on its own activations, so dloss/da^l of one input is that
input's own delta^l.  The weight gradient of one input is delta^l (h^(l-1))^T,
so ||dloss/dW_l||_F = ||delta^l|| ||h^(l-1)||.  ``ratios(..., grad="weights")``
asks autograd for dloss/dW_l itself instead (one input per trial only, since
with several inputs the weight gradient sums over them); the benchmark uses
the default, gradients with respect to the pre-activations, which needs no
n_l x n_(l-1) gradient matrix per trial and is the faster of the two.

Shapes (batched, inputs as columns):

    Ws  [W_1..W_L], W_l of shape (B, n_l, n_(l-1));  Wo (B, K, n_L)
    X   (B, n_0, N);  T (B, K, N), each column summing to 1

Only torch is needed (and NumPy for ``from_numpy_trials``).
"""

import math

import torch

__all__ = ["he_std", "draw_batch", "ratios", "run_trials", "batch_size", "from_numpy_trials"]

DTYPE = torch.float64


def he_std(fan_out):
    """Standard deviation of a He (fan_out) weight: sqrt(2 / n_l)."""
    return math.sqrt(2.0 / fan_out)


def draw_batch(gen, widths, samples, classes, B, dtype=DTYPE):
    """B trials' random numbers from a torch.Generator.

    widths   (n_0, n_1, ..., n_L)
    returns  Ws, Wo, X, T as in the module docstring
    """
    Ws = []
    for l in range(1, len(widths)):
        # W_l ~ N(0, 2 / n_l) entrywise (He, fan_out), B independent draws
        W = torch.randn((B, widths[l], widths[l - 1]), generator=gen, dtype=dtype)
        W.mul_(he_std(widths[l]))
        Ws.append(W)
    # W_o ~ N(0, 1) entrywise (the authors' head)
    Wo = torch.randn((B, classes, widths[-1]), generator=gen, dtype=dtype)
    # x ~ N(0, I_(n_0)), one column per input
    X = torch.randn((B, widths[0], samples), generator=gen, dtype=dtype)
    # t = u / sum(u), u ~ U(0, 1)^K, one column per input
    T = torch.rand((B, classes, samples), generator=gen, dtype=dtype)
    T /= T.sum(dim=1, keepdim=True)
    return Ws, Wo, X, T


def ratios(Ws, Wo, X, T, grad="activations"):
    """Per-trial, per-input forward and backward ratios of a batch of networks.

    grad  "activations": autograd's dloss/da^l (any number of inputs);
          "weights": autograd's dloss/dW_l, one input per trial only.
    returns rho (B, N, L), gamma (B, N, L), float64.  gamma is +inf for an input
    whose delta^L is zero (a dead network), as in mcinit.
    """
    if grad not in ("activations", "weights"):
        raise ValueError(f"grad must be 'activations' or 'weights', not {grad!r}")
    if grad == "weights" and X.shape[2] != 1:
        raise ValueError("grad='weights' gives per-input gradients only for one input per trial")
    L = len(Ws)
    with torch.no_grad():
        xn2 = (X * X).sum(dim=1)                              # (B, N): ||x||^2
    if grad == "weights":
        Ws = [W.detach().requires_grad_(True) for W in Ws]
    H = X
    pre = []                                                  # a^l, l = 1..L
    hn2 = [xn2]                                               # ||h^l||^2, l = 0..L
    for W in Ws:
        # a^l = W_l h^(l-1)
        A = torch.bmm(W, H)
        if grad == "activations":
            if A.requires_grad:
                A.retain_grad()          # a^l, l >= 2: keep dloss/da^l
            else:
                A.requires_grad_(True)   # a^1: the leaf autograd starts from
        pre.append(A)
        # h^l = ReLU(a^l)
        H = torch.relu(A)
        with torch.no_grad():
            hn2.append((H * H).sum(dim=1))
    # z = W_o h^L;  loss = softmax cross-entropy against the soft targets
    Z = torch.bmm(Wo, H)
    loss = -(T * torch.log_softmax(Z, dim=1)).sum()
    loss.backward()
    with torch.no_grad():
        if grad == "activations":
            # ||dloss/dW_l||_F^2 = ||delta^l||^2 ||h^(l-1)||^2
            dn2 = [(A.grad * A.grad).sum(dim=1) for A in pre]                 # ||delta^l||^2
            gw2 = [dn2[l] * hn2[l] for l in range(L)]
            dL2 = dn2[-1]
        else:
            # the weight gradient itself, Frobenius norm per trial (N = 1)
            gw2 = [(W.grad * W.grad).sum(dim=(1, 2)).unsqueeze(1) for W in Ws]
            # delta^L from the last weight gradient: dloss/dW_L = delta^L (h^(L-1))^T
            dL2 = gw2[-1] / hn2[L - 1]
        hn2 = torch.stack(hn2, dim=2)                         # (B, N, L + 1)
        gw2 = torch.stack(gw2, dim=2)                         # (B, N, L)
        rho = hn2[:, :, 1:] / hn2[:, :, :1]
        gamma = gw2 / (hn2[:, :, :1] * dL2.unsqueeze(2))
        gamma[(dL2 == 0).unsqueeze(2).expand_as(gamma)] = math.inf
    return rho, gamma


def run_trials(widths, samples, classes, trials, B, seed=0, grad="activations"):
    """Run ``trials`` independent networks in batches of (at most) B; returns rho,
    gamma of shape (trials, N, L), float64.  One Generator (torch.Generator,
    manual_seed(seed)) feeds all batches in order."""
    gen = torch.Generator().manual_seed(seed)
    L = len(widths) - 1
    rho = torch.empty((trials, samples, L), dtype=DTYPE)
    gamma = torch.empty((trials, samples, L), dtype=DTYPE)
    done = 0
    while done < trials:
        b = min(B, trials - done)
        r, g = ratios(*draw_batch(gen, widths, samples, classes, b), grad=grad)
        rho[done:done + b] = r
        gamma[done:done + b] = g
        done += b
    return rho, gamma


def batch_size(widths, samples, classes, budget=512 << 20, cap=256):
    """Trials per batch: as many as keep the batch's float64 tensors under ``budget``
    bytes (at least 1, at most ``cap``).

    Per trial: the weights (autograd keeps them for the backward pass), the
    head, and per input a handful of copies of every layer's activations
    (a^l, h^l, their gradients)."""
    weights = sum(widths[l] * widths[l - 1] for l in range(1, len(widths))) + classes * widths[-1]
    acts = samples * (widths[0] + 4 * sum(widths[1:]) + 3 * classes)
    return max(1, min(cap, budget // (8 * (weights + acts))))


def from_numpy_trials(trials):
    """Stack per-trial NumPy draws [(Ws, Wo, X, T), ...] as ``numpy_reference.draw_trial``
    or ``mcinit_draws`` return them (X (N, n_0), T (N, K)) into one batch for ``ratios``."""
    import numpy as np

    L = len(trials[0][0])
    Ws = [torch.from_numpy(np.stack([t[0][l] for t in trials])).to(DTYPE) for l in range(L)]
    Wo = torch.from_numpy(np.stack([t[1] for t in trials])).to(DTYPE)
    X = torch.from_numpy(np.stack([np.asarray(t[2]).T for t in trials])).to(DTYPE)
    T = torch.from_numpy(np.stack([np.asarray(t[3]).T for t in trials])).to(DTYPE)
    return Ws, Wo, X, T
