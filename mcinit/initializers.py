"""Initialisation schemes (docs/design.md section 3), resolved to plain arrays for the kernels.

Variance-scaling family: Var(W_l,ij) = g^2 c / fan with fan_in = n_(l-1), fan_out = n_l,
fan_avg = (n_(l-1) + n_l) / 2, and g the gain (--gain; by default the activation's gain
for he and he-in, mcinit.activations.gain, sqrt 2 for ReLU, and 1 for the others); normal
or uniform (same variance: U(-a, a) with a = sqrt(3 Var)).  Orthogonal weights are g times
a Haar matrix with orthonormal rows (n_l <= n_(l-1)) or columns (n_l > n_(l-1)), as
torch.nn.init.orthogonal_ draws them: an entry's variance is g^2 / max(n_(l-1), n_l).
Weight-normalised schemes draw each row as g_l v / ||v||, v ~ N(0, I).
"""

import numpy as np

__all__ = ["SCHEMES", "layer_scheme", "scheme_of", "expected_forward", "DIST_NORMAL", "DIST_UNIFORM",
           "DIST_WN", "DIST_ORTHOGONAL", "init_gain_squared"]

DIST_NORMAL, DIST_UNIFORM, DIST_WN, DIST_ORTHOGONAL = 0, 1, 2, 3

#: name -> (c, fan, whose gain by default: the activation's or 1) for the variance-scaling presets
SCHEMES = {
    "he": (1.0, "fan_out", "activation"),
    "he-in": (1.0, "fan_in", "activation"),
    "glorot": (2.0, "fan_avg", "one"),          # 2 / (n_(l-1) + n_l)
    "lecun": (1.0, "fan_in", "one"),
    "paper-glorot": (1.0, "fan_out", "one"),     # what the paper's code calls glorot: N(0, 1/n_l)
}


def init_gain_squared(init, activation="relu", gain=None):
    """g^2 of a variance-scaling preset or of orthogonal weights: ``gain`` squared when given,
    else the activation's (1 / E[phi(z)^2]: exactly 2 for ReLU) for he, he-in and orthogonal,
    1 for glorot, lecun and paper-glorot."""
    if gain is not None:
        return float(gain) ** 2
    if init == "orthogonal" or SCHEMES[init][2] == "activation":
        from .activations import second_moment
        return 1.0 / second_moment(activation)
    return 1.0


def layer_scheme(init, dist, all_widths, wn_gain=None, activation="relu", gain=None):
    """(dist_code, variance[L], gain[L]) for hidden layers 1..L.

    all_widths  (n_0, n_1, ..., n_L)
    wn_gain     a constant gain for weight-normalised rows (None: the init's gains)
    activation  the activation's text (its gain is the default of he, he-in, orthogonal)
    gain        --gain of the variance-scaling presets and orthogonal weights (None: init_gain's)
    variance    per-entry variance v_l of W_l (for wn schemes: g_l^2 / n_(l-1), the variance
                of one entry of g v/||v||; orthogonal: g^2 / max(n_(l-1), n_l))
    gain        g_l for weight-normalised and orthogonal schemes, 0 otherwise
    """
    n = np.asarray(all_widths, dtype=np.float64)
    fan_in, fan_out = n[:-1], n[1:]
    L = len(n) - 1
    if init in SCHEMES:
        c, fan, _ = SCHEMES[init]
        f = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": fan_in + fan_out}[fan]
        var = init_gain_squared(init, activation, gain) * c / f      # he with ReLU: exactly 2 / fan
        code = DIST_NORMAL if dist == "normal" else DIST_UNIFORM
        return code, var, np.zeros(L)
    if init == "orthogonal":
        g2 = init_gain_squared(init, activation, gain)
        return DIST_ORTHOGONAL, g2 / np.maximum(fan_in, fan_out), np.full(L, np.sqrt(g2))
    if wn_gain is not None:
        gain = np.full(L, float(wn_gain))
    elif init == "wn":
        gain = np.sqrt(2.0 * fan_in / fan_out)
    elif init == "wn-unit":
        gain = np.ones(L)
    else:
        raise ValueError(f"unknown init {init!r}")
    return DIST_WN, gain ** 2 / fan_in, gain


def scheme_of(cfg):
    """layer_scheme of a RunConfig."""
    return layer_scheme(cfg.init, cfg.dist, cfg.all_widths, cfg.wn_gain, cfg.activation, cfg.gain)


def expected_forward(cfg):
    """Per-input E rho_l and, for Gaussian and orthogonal weights, Var rho_l (else NaN), l = 1..L.

    One layer factor r = rho_l / rho_(l-1): for Gaussian weights r = v chi2(K),
    K ~ Binomial(n_l, 1/2), so E r = v n/2 and E r^2 = v^2 (n^2/4 + 5n/4).  For
    orthogonal weights r = g^2 Beta(K/2, (M - K)/2), M = max(n_(l-1), n_l), v = g^2 / M
    (docs/design.md section 10), so E r^2 = v^2 (n^2/4 + 5n/4) M / (M + 2).
    For any symmetric weights E r = v n / 2 (weight-normalised: g^2 n_l / (2 n_(l-1))).
    Residual networks: mcinit.theory.residual_layer_moments (--arch residual), NaN for
    single-skip, which has no exact law (docs/design.md section 9).
    """
    code, var, _ = scheme_of(cfg)
    if cfg.arch == "single-skip":
        return np.full(cfg.depth, np.nan), np.full(cfg.depth, np.nan)
    if cfg.residual:
        from .theory import residual_layer_moments
        m = residual_layer_moments(cfg.widths, var, cfg.branch_scale, gaussian=code == DIST_NORMAL)
        return m.mean, m.var
    n = np.asarray(cfg.widths, dtype=np.float64)
    m1 = var * n / 2
    mean = np.cumprod(m1)
    if code in (DIST_NORMAL, DIST_ORTHOGONAL):
        m2 = var ** 2 * (n ** 2 / 4 + 5 * n / 4)
        if code == DIST_ORTHOGONAL:
            M = np.maximum(np.asarray(cfg.all_widths[:-1], dtype=np.float64), n)
            m2 = m2 * M / (M + 2)
        variance = np.cumprod(m2) - mean ** 2
    else:
        variance = np.full(len(n), np.nan)
    return mean, variance
