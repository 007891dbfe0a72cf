"""Kernels: one strategy per module, one call shape ``fill(plan, first, count, fwd, bwd, dead)``.

- ``dense``      draws every weight; any initialisation; the ground truth
- ``blocked``    the dense kernel's weights, whole layers at a time, products by BLAS:
                 for many inputs per network (float32 too)
- ``projected``  exact in law for Gaussian weights, O((n_l + n_(l-1)) N) normals per layer
- ``law``        exact in law for Gaussian weights and one input, O(L) per trial
"""

import numpy as np

from ..config import ConfigError
from ..initializers import DIST_NORMAL

__all__ = ["get", "resolve", "cost"]


def get(name):
    """The kernel module of a name."""
    if name == "dense":
        from . import dense as mod
    elif name == "blocked":
        from . import blocked as mod
    elif name == "projected":
        from . import projected as mod
    elif name == "law":
        from . import law as mod
    else:
        raise ConfigError(f"unknown kernel {name!r}")
    return mod


def cost(name, widths, samples, classes):
    """Rough work per trial (normals drawn plus multiply-adds), to choose kernels and batch sizes."""
    n = np.asarray(widths, dtype=float)
    N = float(samples)
    if name == "law":
        return 60.0 * (len(n) - 1) + 10.0 * classes
    if name == "dense":
        w = float(np.sum(n[1:] * n[:-1])) + classes * n[-1]
        return w * (1.0 + 2.5 * N)
    r = np.minimum(n, N)
    g = float(np.sum(r[:-1] * n[1:] + np.minimum(n[1:], N) * n[:-1]))
    qr = float(np.sum(n * N * r)) * 6.0
    return g * (1.0 + 2.0 * N) + qr + classes * n[-1] * N


def resolve(requested, dist_code, widths, samples, classes, init, precision="float64"):
    """The concrete kernel for a request ('auto' or a name), or a ConfigError."""
    gaussian = dist_code == DIST_NORMAL
    if precision != "float64" and requested not in ("auto", "blocked"):
        raise ConfigError(f"--precision {precision} is computed by the blocked kernel; use --kernel blocked "
                          f"or auto, not {requested}")
    if requested in ("projected", "law") and not gaussian:
        why = "weight-normalised rows" if init.startswith("wn") else "uniform weights"
        raise ConfigError(f"the {requested} kernel is exact for Gaussian weights only, not {why}; use --kernel dense")
    if requested == "law" and samples != 1:
        raise ConfigError("the law kernel handles one input per trial (--samples 1)")
    if requested != "auto":
        return requested
    if precision != "float64":
        return "blocked"
    if not gaussian:
        return "dense"
    if samples == 1:
        return "law"
    if cost("projected", widths, samples, classes) < cost("dense", widths, samples, classes):
        return "projected"
    return "dense"
