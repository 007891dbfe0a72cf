"""Kernels: one strategy per module, one call shape ``fill(plan, first, count, fwd, bwd, dead)``.

- ``dense``      draws every weight; any initialisation; the ground truth
- ``blocked``    the dense kernel's weights, whole layers at a time, products by BLAS:
                 for many inputs per network (float32 too)
- ``projected``  exact in law for Gaussian and orthogonal weights, O((n_l + n_(l-1)) N) normals per layer
- ``law``        exact in law for one input: Gaussian weights, O(L) per trial for relu, leaky-relu,
                 abs and linear, O(sum n_l) for tanh and gelu; orthogonal weights
"""

import numpy as np

from ..config import ConfigError, check_precision
from ..initializers import DIST_NORMAL, DIST_ORTHOGONAL

__all__ = ["get", "resolve", "choose", "able", "cost", "cost_terms", "release"]


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


#: seconds per unit of each cost term (cost_terms), one thread, fitted to measured times by
#: benchmarks/auto_choice.py --fit (AMD EPYC, 2 vCPUs; the terms' ratios matter, not the machine);
#: law's last two (a layer of a trial drawn one at a time, a normal of the chain), which the grid of
#: ReLU networks does not exercise, from law.fill's times on one thread at widths 20-500 and 3-10 layers
COST = {
    "dense": (5.7e-9, 1.24e-10, 4.0e-6),
    "blocked": (4.6e-9, 4.1e-11, 3.2e-9, 2.2e-6),
    "projected": (2.0e-9, 7.7e-10, 0.0, 2.5e-9, 9.8e-7),
    "law": (1.9e-8, 2.3e-8, 0.0, 3.0e-7, 2.0e-8),
}


def release(name):
    """Let a kernel free what it keeps between fills of one run (blocked: its workspaces)."""
    free = getattr(get(name), "release", None)
    if free is not None:
        free()


def cost_terms(name, widths, samples, classes, backward=True, activation="relu", orthogonal=False):
    """The terms of a trial's cost for a kernel (each multiplied by its COST constant):

    dense      normals drawn, multiply-adds in row loops, layers (ReLU draws only the columns
               that meet an active unit; other activations every column)
    blocked    normals drawn, multiply-adds by BLAS, elementwise passes, array operations
    projected  normals drawn, multiply-adds, orthogonalisation work, head work, layers
    law        layers of ReLU Gaussian lane blocks, classes, 1, layers of the other activations or
               orthogonal weights (drawn a trial at a time), normals of the chain (tanh, gelu, and
               orthogonal weights' backward: sum n_l, orthogonal sum max(n_(l-1), n_l), forward
               and as many backward)

    Orthogonal weights (``orthogonal``; dense and projected) add their QR work: dense draws
    every entry and counts the Householder QR and the forming of Q as 6 n_l n_(l-1)
    min(n_l, n_(l-1)) row-loop multiply-adds (their measured time: 5.4 at width 256, 6.3 at
    1024, depth 5, one thread); projected draws rows of max(n_l, n_(l-1)) and orthogonalises
    about three sets of N of them per layer (kernels/projected.py)."""
    n = np.asarray(widths, dtype=float)
    N = float(samples)
    L = len(n) - 1
    K = float(classes)
    w = n[1:] * n[:-1]
    if name == "law":
        if activation == "relu" and not orthogonal:
            return (float(L), K, 1.0, 0.0, 0.0)
        from ..activations import homogeneous
        chain = not homogeneous(activation) or (orthogonal and backward)
        drawn = float(np.sum(np.maximum(n[1:], n[:-1]) if orthogonal else n[1:]))
        normals = drawn * (2.0 if backward else 1.0) if chain else 0.0
        return (0.0, K, 1.0, float(L), normals)
    if name == "dense":
        active = 1.0 - 0.5 ** N if activation == "relu" else 1.0   # a column meets an active unit of some input
        drawn = w[0] + float(np.sum(w[1:])) * active + K * n[-1] * active
        macs = N * drawn * (2.0 if backward else 1.0)
        if orthogonal:
            drawn = float(np.sum(w)) + K * n[-1] * active
            macs += 6.0 * float(np.sum(w * np.minimum(n[1:], n[:-1])))
        return (drawn, macs, float(L))
    if name == "blocked":
        drawn = float(np.sum(w)) + (K * n[-1] if backward else 0.0)
        macs = N * (float(np.sum(w)) + ((float(np.sum(w[1:])) + 2 * K * n[-1]) if backward else 0.0))
        passes = N * float(np.sum(n)) * (2.0 if backward else 1.0)
        ops = float(L) * (3.0 if backward else 1.0)
        return (drawn, macs, passes, ops)
    r = np.minimum(n, N)
    g = float(np.sum(r[:-1] * n[1:] + np.minimum(n[1:], N) * n[:-1]))
    qr = float(np.sum(n * N * r))
    if orthogonal:
        M = np.maximum(n[1:], n[:-1])
        g = float(np.sum((r[:-1] + np.minimum(n[1:], N)) * M))
        qr += 3.0 * float(np.sum(M * N * r[:-1]))
    return (g, g * N, qr, K * n[-1] * N, float(L))


def cost(name, widths, samples, classes, precision="float64", backward=True, activation="relu",
         orthogonal=False):
    """Estimated seconds of one trial on one thread (COST times cost_terms): how auto chooses
    a kernel and the engine sizes batches (``activation``: --activation's text, which the dense
    and law kernels' terms distinguish; ``orthogonal``: --init orthogonal)."""
    c = COST[name]
    t = cost_terms(name, widths, samples, classes, backward, activation, orthogonal)
    if name == "blocked" and precision == "float32":
        t = (t[0], t[1] / 2, t[2], t[3])      # sgemm runs at twice dgemm's rate
    return float(np.dot(c, t))


#: the kernels that compute residual networks (law: arch residual, one Gaussian input, forward ratios)
RESIDUAL_KERNELS = ("dense", "law")


#: the kernels that compute activations other than ReLU (--activation)
ACTIVATION_KERNELS = ("dense", "projected", "law")
#: the kernels that draw orthogonal weights (--init orthogonal), and the properties they compute
ORTHOGONAL_KERNELS = {"dense": ("both", "forward", "backward"), "projected": ("both", "forward", "backward"),
                      "law": ("both", "forward", "backward")}


def able(dist_code, samples, precision="float64", arch="plain", properties="both", activation="relu"):
    """The kernels that can compute a configuration: float32 only the blocked kernel; projected
    and law need Gaussian weights, law one input per trial; residual networks the dense
    kernel, and law for the forward property of one Gaussian input with a skip in every
    block (arch residual; single-skip has no exact law); activations other than ReLU the
    ACTIVATION_KERNELS; orthogonal weights the ORTHOGONAL_KERNELS (the properties they compute)."""
    if precision != "float64":
        return ("blocked",) if activation == "relu" and dist_code != DIST_ORTHOGONAL else ()
    gaussian = dist_code == DIST_NORMAL
    if arch != "plain":
        law_ok = arch == "residual" and gaussian and samples == 1 and properties == "forward"
        return ("dense",) + (("law",) if law_ok else ())
    if dist_code == DIST_ORTHOGONAL:
        kinds = tuple(k for k, props in ORTHOGONAL_KERNELS.items()
                      if properties in props and (k != "law" or samples == 1))
    else:
        kinds = (("dense", "blocked") + (("projected",) if gaussian else ())
                 + (("law",) if gaussian and samples == 1 else ()))
    if activation != "relu":
        kinds = tuple(k for k in kinds if k in ACTIVATION_KERNELS)
    return kinds


def choose(requested, dist_code, widths, samples, classes, init, precision="float64", arch="plain",
           properties="both", activation="relu"):
    """(kernel, why, costs) for a request ('auto' or a name), or a ConfigError: the concrete
    kernel, the rule that picked it in words, and the estimated seconds of one trial on one
    thread (``cost``) of every kernel that can compute the configuration, as auto compares them."""
    gaussian = dist_code == DIST_NORMAL
    check_precision(requested, precision)
    kinds = able(dist_code, samples, precision, arch, properties, activation)
    if precision != "float64" and not kinds:
        raise ConfigError(f"--precision {precision} is computed by the blocked kernel, which computes ReLU "
                          "networks of row-wise weights: not --activation or --init orthogonal")
    if dist_code == DIST_ORTHOGONAL and requested != "auto" and requested not in kinds:
        raise ConfigError(f"orthogonal weights (--init orthogonal) with --properties {properties} are computed "
                          f"by the {' and '.join(kinds)} kernel{'s' if len(kinds) > 1 else ''}, not {requested}")
    if (activation != "relu" and requested != "auto" and requested not in kinds
            and not (requested == "law" and samples != 1)):        # law's own words below
        which = kinds or ACTIVATION_KERNELS
        names = " and ".join(([", ".join(which[:-1])] if len(which) > 1 else []) + [which[-1]])
        raise ConfigError(f"--activation {activation} is computed by the {names} "
                          f"kernel{'s' if len(which) > 1 else ''}, not {requested}")
    if requested in ("projected", "law") and not gaussian and dist_code != DIST_ORTHOGONAL:
        why = "weight-normalised rows" if init.startswith("wn") else "uniform weights"
        raise ConfigError(f"the {requested} kernel is exact for Gaussian or orthogonal weights only, not {why}; "
                          "use --kernel dense")
    if requested == "law" and samples != 1:
        raise ConfigError("the law kernel handles one input per trial (--samples 1)")
    if arch != "plain":
        if precision != "float64":
            raise ConfigError(f"residual networks are computed by the dense kernel, in float64: --precision "
                              f"{precision} does not apply")
        if requested not in ("auto",) + RESIDUAL_KERNELS:
            raise ConfigError(f"residual networks are computed by the dense kernel (and law for the forward "
                              f"property of one Gaussian input), not {requested}")
        if requested == "law" and arch != "residual":
            raise ConfigError(f"the law kernel draws residual networks with a skip in every block (--arch "
                              f"residual); --arch {arch} has no exact law: use --kernel dense")
        if requested == "law" and properties != "forward":
            raise ConfigError("the law kernel of residual networks draws the forward ratios: use --properties "
                              "forward, or --kernel dense")
    costs = {k: cost(k, widths, samples, classes, precision, True, activation, dist_code == DIST_ORTHOGONAL)
             for k in kinds}
    if requested != "auto":
        return requested, f"--kernel {requested} asked for it", costs
    if precision != "float64":
        return "blocked", f"--precision {precision} is computed by the blocked kernel alone", costs
    if arch != "plain":
        if "law" in kinds:
            return "law", ("auto: a residual network of Gaussian weights, one input per trial and the forward "
                           "property, where the law kernel draws each block's ratio from its exact law"), costs
        return "dense", "auto: residual networks are computed by the dense kernel", costs
    if "law" in kinds and gaussian and activation == "relu":
        return "law", ("auto: Gaussian weights and one input per trial, where the law kernel draws each "
                       "layer's ratio from its exact law, O(L) per trial"), costs
    if "law" in kinds:
        return "law", ("auto: one input per trial, where the law kernel draws each layer from its exact "
                       "law"), costs
    if kinds == ("dense",):
        why = "orthogonal weights" if dist_code == DIST_ORTHOGONAL else f"--activation {activation}"
        return "dense", f"auto: {why} are computed by the dense kernel", costs
    found = min((k for k in kinds if k != "law"), key=lambda k: costs[k])
    why = "auto: the least estimated seconds per trial among " + ", ".join(k for k in kinds if k != "law")
    if not gaussian and dist_code != DIST_ORTHOGONAL:
        why += " (projected and law are exact for Gaussian or orthogonal weights only)"
    return found, why, costs


def resolve(requested, dist_code, widths, samples, classes, init, precision="float64", arch="plain",
            properties="both", activation="relu"):
    """The concrete kernel for a request ('auto' or a name), or a ConfigError (``choose``)."""
    return choose(requested, dist_code, widths, samples, classes, init, precision, arch, properties,
                  activation)[0]
