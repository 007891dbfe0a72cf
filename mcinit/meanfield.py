"""The infinite-width (mean-field) view of a network, and its depth-to-width regime (docs/design.md section 13).

**The q-map** (Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos", without biases: mcinit's networks have none).  With W_l's entries of variance
v_l and h^(l-1) given, a pre-activation a_i = (W_l h^(l-1))_i has variance q^a_l = v_l ||h^(l-1)||^2;
at infinite width the units of a layer are independent N(0, q^a_l) and ||h^l||^2 / n_l tends to
E[phi(sqrt(q^a_l) z)^2], z ~ N(0, 1).  With sigma_w^2 = v_l n_(l-1) (2 for He weights on equal
widths) the map from one layer's q^a to the next is

    q -> sigma_w^2 E[phi(sqrt(q) z)^2],

its fixed point q* and its slope chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] (the mean squared
singular value of a layer's Jacobian): chi_1 < 1 ordered (nearby inputs converge), > 1 chaotic,
= 1 critical.  For the homogeneous activations E[phi(sqrt(q) z)^2] = q E[phi(z)^2] and
E[phi'^2] = E[phi(z)^2] (phi'^2 is constant on each half-line, where E[z^2] = 1), so the map is
linear, chi_1 = sigma_w^2 E[phi(z)^2] does not depend on q, and the critical variance is
1 / E[phi(z)^2], the activation's gain squared (mcinit.activations.gain).

**Expectations** E[f(sqrt(q) z)]: closed forms for relu, leaky-relu, abs and linear;
for tanh and gelu a composite Gauss-Legendre rule in z on [-40, 40] (the Gaussian's mass
beyond is e^-800), its panels cut at every integer z (the Gaussian's scale) and at
z = +-2^k / sqrt(q), k = -3..6 (phi's scale, where tanh and gelu bend), 32 nodes per panel.
One Gauss-Hermite rule (numpy's hermegauss) would not do: its nodes are spaced on the
Gaussian's scale, and as q grows phi bends between them (with 200 nodes
E[tanh'(sqrt(q) z)^2] is off by 2e-8 at q = 3 and by 2e-4 at q = 10); the panels keep 1e-12 at every q
(tests/test_meanfield.py, against scipy.integrate.quad to 1e-10).  phi and phi' are
mcinit.activations' (the kernels' functions).

**The depth-to-width regime** (one input, ReLU, Gaussian weights).  ln rho_L is a sum of
independent ln(v_l chi2(K_l)), K_l ~ Binomial(n_l, 1/2) (docs/design.md section 4).  Given
the network is alive (every K_l >= 1; K_l = 0 is a dead network, rho = 0, of probability
1 - prod_l (1 - 2^-n_l)) its mean and variance are exact: E ln chi2(k) = digamma(k/2) + ln 2
and Var ln chi2(k) = trigamma(k/2), mixed over K_l given K_l >= 1.  Expanding
ln X = (X - 1) - (X - 1)^2/2 + ... with X = chi2(K)/(n/2) (E X = 1, Var X = 5/n, higher
central moments O(n^-2)), each layer adds ln(v n / 2) - 5/(2n) + O(n^-2) to the mean and
5/n + O(n^-2) to the variance, so with beta = sum_l 1/n_l, as the widths grow with beta fixed,

    ln rho_L -> N(sum_l ln(v_l n_l / 2) - 5 beta / 2,  5 beta)

(derived here from the per-layer cumulants; Hanin & Nica, arXiv:1812.05994, prove a Gaussian
limit of this kind for products of many large random matrices).  :func:`ks_distance` gives the
exact Kolmogorov-Smirnov distance between the law of ln rho_L given alive and that limit.
"""

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import optimize, signal, special, stats

from . import activations

__all__ = ["phi_moment", "dphi_moment", "q_map", "fixed_point", "chi_1", "critical_variance", "Prediction",
           "predict", "predict_run", "input_sq_norm", "beta", "LogRatioLaw", "log_ratio_law", "ks_distance",
           "ks_defined"]

_Z_MAX = 40
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)
_INV_SQRT_2PI = 0.3989422804014327
#: the q range scanned for the fixed points of a non-homogeneous activation's map
_Q_SCAN = np.geomspace(1e-12, 1e12, 241)


@functools.lru_cache(maxsize=4096)
def _nodes(q):
    """(z, w): the composite Gauss-Legendre rule of E[f(sqrt(q) z)] = sum_i w_i f(sqrt(q) z_i) (module docstring)."""
    cuts = set(range(-_Z_MAX, _Z_MAX + 1))
    s = math.sqrt(q)
    for k in range(-3, 7):
        z = 2.0 ** k / s
        if z < _Z_MAX:
            cuts.update((z, -z))
    e = np.array(sorted(cuts), dtype=float)
    a, b = e[:-1, None], e[1:, None]
    z = (0.5 * (b - a) * _GL_X + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * _GL_W).ravel() * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return z, w


def _check_q(q):
    q = float(q)
    if not q >= 0:
        raise ValueError(f"the variance q must be >= 0, got {q}")
    return q


def _limit_dphi2(activation):
    """E[phi'(sqrt(q) z)^2] as q -> infinity: (phi'(+inf)^2 + phi'(-inf)^2) / 2."""
    d = activations.derivative(activation, np.array([1e30, -1e30]))
    return 0.5 * float(d[0] ** 2 + d[1] ** 2)


def phi_moment(activation, q):
    """E[phi(sqrt(q) z)^2], z ~ N(0, 1): the mean square of a unit whose pre-activation is N(0, q).

    activation  its text ('relu', 'leaky-relu:0.1', 'tanh', ...; mcinit.options.ACTIVATIONS)
    q           the pre-activation variance, >= 0 (q = inf: inf for every activation but tanh's 1)
    Homogeneous phi: q E[phi(z)^2] exactly; tanh, gelu: the composite quadrature (module docstring)."""
    q = _check_q(q)
    if activations.homogeneous(activation):
        return q * activations.second_moment(activation)
    if math.isinf(q):
        return 1.0 if activations.name_of(activation) == "tanh" else math.inf
    if q == 0.0:
        return float(activations.apply(activation, np.zeros(1))[0] ** 2)
    z, w = _nodes(q)
    return float(w @ activations.apply(activation, math.sqrt(q) * z) ** 2)


def dphi_moment(activation, q):
    """E[phi'(sqrt(q) z)^2], z ~ N(0, 1) (q = inf: its limit).  Homogeneous phi: E[phi(z)^2] for every q
    (module docstring); tanh, gelu: the composite quadrature."""
    q = _check_q(q)
    if activations.homogeneous(activation):
        return activations.second_moment(activation)
    if math.isinf(q):
        return _limit_dphi2(activation)
    if q == 0.0:
        return float(activations.derivative(activation, np.zeros(1))[0] ** 2)
    z, w = _nodes(q)
    return float(w @ activations.derivative(activation, math.sqrt(q) * z) ** 2)


def q_map(activation, q, sigma_w2):
    """One layer of the q-map: sigma_w^2 E[phi(sqrt(q) z)^2] (no biases)."""
    return sigma_w2 * phi_moment(activation, q)


def _roots(activation, sigma_w2):
    """The positive fixed points of the map of a non-homogeneous activation in the scanned range (sorted)."""
    g = lambda q: sigma_w2 * phi_moment(activation, q) / q - 1.0
    vals = np.array([g(q) for q in _Q_SCAN])
    out = []
    for i in np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) <= 0)[0]:
        if vals[i] == 0.0:
            out.append(float(_Q_SCAN[i]))
        elif vals[i + 1] != 0.0:
            lo, hi = math.log(_Q_SCAN[i]), math.log(_Q_SCAN[i + 1])
            out.append(math.exp(optimize.brentq(lambda t: g(math.exp(t)), lo, hi, xtol=1e-15, rtol=1e-15)))
    return sorted(set(out))


@functools.lru_cache(maxsize=1024)
def _roots_cached(activation, sigma_w2):
    return tuple(_roots(activation, sigma_w2))


def fixed_point(activation, sigma_w2, q0=0.0):
    """q*: the limit of the q-map q -> sigma_w^2 E[phi(sqrt(q) z)^2] iterated from q0.

    Returns 0.0 (the norms vanish), a positive q* or math.inf (they grow without bound).
    Homogeneous phi: the map is linear with slope c = sigma_w^2 E[phi(z)^2]: 0 for c < 1, inf for
    c > 1, and q0 itself at the critical variance c = 1 (every q is a fixed point).  tanh, gelu:
    the map's positive fixed points in q in [1e-12, 1e12] are found by bracketing; from q0 the
    iterates fall to the largest one below q0 where the map is below the diagonal (else 0) and rise
    to the smallest one above q0 where it is above (else inf).  q0 = 0 (the default) means q0 -> 0+:
    the branch through q = 0 (tanh with sigma_w^2 <= 1 and gelu with sigma_w^2 < 4 have q* = 0;
    tanh above 1 its positive stable fixed point)."""
    q0 = _check_q(q0)
    if activations.homogeneous(activation):
        c = sigma_w2 * activations.second_moment(activation)
        if abs(c - 1.0) <= 1e-12:
            return q0
        return 0.0 if c < 1.0 else math.inf
    roots = _roots_cached(activation, float(sigma_w2))
    if q0 == 0.0:        # the slope at 0: sigma_w^2 phi'(0)^2 (E[phi(sqrt(q) z)^2] / q -> phi'(0)^2)
        up = sigma_w2 * dphi_moment(activation, 0.0) > 1.0
    else:
        gap = sigma_w2 * phi_moment(activation, q0) - q0
        if abs(gap) <= 1e-13 * q0:
            return q0
        up = gap > 0
    if up:
        above = [r for r in roots if r > q0]
        return above[0] if above else math.inf
    below = [r for r in roots if r < q0]
    return below[-1] if below else 0.0


def chi_1(activation, sigma_w2, q):
    """chi_1 = sigma_w^2 E[phi'(sqrt(q) z)^2] at the pre-activation variance q (q*, usually; inf: its limit)."""
    return sigma_w2 * dphi_moment(activation, q)


def critical_variance(activation):
    """sigma_w^2 at which chi_1 = 1 at the fixed point of the branch through q = 0 (fixed_point's default).

    Homogeneous phi: 1 / E[phi(z)^2] (2 for relu, 2/(1 + alpha^2) for leaky-relu, 1 for abs and linear).
    tanh and gelu (phi(0) = 0): on the branch through 0, q* = 0 and chi_1 = sigma_w^2 phi'(0)^2 as long
    as the map's slope at 0, the same number, is below 1; so the critical variance is 1 / phi'(0)^2:
    1 for tanh (beyond it q* > 0, and chi_1 = 1 + O((sigma_w^2 - 1)^2) > 1: the map's fixed point and
    chi_1 move together at first, q* = (1 - 1/sigma_w^2)/2 + ...), 4 for gelu (beyond it the map lies
    above the diagonal everywhere, E[gelu(sqrt(q) z)^2] / q rising from 1/4 at q = 0 to 1/2, so q* = inf
    and chi_1 = sigma_w^2 / 2 > 1).  tests/test_meanfield.py checks chi_1 on both sides."""
    if activations.homogeneous(activation):
        return 1.0 / activations.second_moment(activation)
    return 1.0 / dphi_moment(activation, 0.0)


# ---------------------------------------------------------------------------
# a run's prediction

def input_sq_norm(cfg):
    """||x||^2 of a run's inputs as the mean-field view takes it: n_0 for gaussian data (its mean),
    1 on the sphere or for a dataset scaled to unit norm (--normalize unit), None otherwise (a fixed
    dataset's inputs have norms of their own)."""
    if cfg.data == "gaussian":
        return float(cfg.input_dim)
    if cfg.data == "sphere" or cfg.normalize == "unit":
        return 1.0
    return None


class Prediction(NamedTuple):
    """The mean-field view of one network configuration (:func:`predict`).

    rho         (L,) the prediction of rho_l = ||h^l||^2 / ||x||^2, l = 1..L
    q           (L,) the pre-activation variances q^a_l = v_l E||h^(l-1)||^2
    sigma_w2    (L,) v_l n_(l-1), the mean-field weight variance of each layer
    q_star      the fixed point of the last layer's map reached from its q^a_L (fixed_point)
    chi_1       sigma_w2[-1] E[phi'(sqrt(q*) z)^2]
    critical    the critical sigma_w^2 of the activation (critical_variance)
    beta        sum_l 1 / n_l"""
    rho: np.ndarray
    q: np.ndarray
    sigma_w2: np.ndarray
    q_star: float
    chi_1: float
    critical: float
    beta: float


def predict(activation, all_widths, variances, sq_norm=None):
    """The mean-field prediction for a network of widths (n_0, n_1, ..., n_L) and per-entry weight
    variances v_1..v_L (mcinit.initializers.layer_scheme's), for an input of squared norm sq_norm.

    E||h^l||^2 = n_l E[phi(sqrt(q^a_l) z)^2] with q^a_l = v_l E||h^(l-1)||^2 and h^0 = x: the
    infinite-width recursion with each layer's norm replaced by its mean.  For relu (and the other
    homogeneous activations) it is E rho_l exactly at every width, for any zero-mean weights of
    these variances; for tanh and gelu the limit as the widths grow.  sq_norm: needed for tanh and
    gelu (ValueError without it); homogeneous activations do not depend on it."""
    n = np.asarray(all_widths, dtype=float)
    v = np.asarray(variances, dtype=float)
    if len(v) != len(n) - 1:
        raise ValueError(f"{len(n) - 1} layers need {len(n) - 1} variances, got {len(v)}")
    if sq_norm is None:
        if not activations.homogeneous(activation):
            raise ValueError(f"the mean-field prediction of {activation} depends on ||x||^2: give sq_norm")
        sq_norm = 1.0
    hsq, rho, q = float(sq_norm), [], []
    for l in range(len(v)):
        q.append(v[l] * hsq)
        hsq = n[l + 1] * phi_moment(activation, q[-1])
        rho.append(hsq / sq_norm)
    s = v * n[:-1]
    q_star = fixed_point(activation, float(s[-1]), q[-1])
    return Prediction(np.array(rho), np.array(q), s, q_star, chi_1(activation, float(s[-1]), q_star),
                      critical_variance(activation), beta(n[1:]))


def predict_run(cfg):
    """:func:`predict` of a RunConfig, or None where the mean-field view here does not describe it:
    residual networks, and tanh or gelu on a fixed dataset of unnormalised inputs (input_sq_norm)."""
    from .initializers import scheme_of
    if cfg.residual:
        return None
    sq = input_sq_norm(cfg)
    if sq is None and not activations.homogeneous(cfg.activation):
        return None
    _, var, _ = scheme_of(cfg)
    return predict(cfg.activation, cfg.all_widths, var, sq)


# ---------------------------------------------------------------------------
# the depth-to-width regime

def beta(widths):
    """beta = sum_l 1 / n_l over the hidden widths n_1..n_L."""
    return float(np.sum(1.0 / np.asarray(widths, dtype=float)))


class LogRatioLaw(NamedTuple):
    """The law of ln rho_L for one input, ReLU and Gaussian weights, given the network is alive.

    mean, var           exact, given every K_l >= 1
    p_dead              1 - prod_l (1 - 2^-n_l), the probability that rho_L = 0 (left out)
    limit_mean, limit_var   the Gaussian limit: sum_l ln(v_l n_l / 2) - 5 beta / 2, 5 beta
    beta                sum_l 1 / n_l
    layer_mean, layer_var   (L,) each layer's share of mean and var"""
    mean: float
    var: float
    p_dead: float
    limit_mean: float
    limit_var: float
    beta: float
    layer_mean: np.ndarray
    layer_var: np.ndarray


def _alive_binomial(n, tol=1e-300):
    """(k, weights) of K ~ Binomial(n, 1/2) given K >= 1, the k of negligible weight dropped."""
    k = np.arange(1, n + 1)
    w = stats.binom.pmf(k, n, 0.5)
    keep = w > tol * w.max()
    return k[keep].astype(float), w[keep] / w[keep].sum()


def _checked(widths, variances):
    w = [int(x) for x in np.atleast_1d(widths)]
    v = np.asarray(variances, dtype=float)
    if not w or min(w) < 1 or len(v) != len(w) or not (v > 0).all():
        raise ValueError("need hidden widths >= 1 and as many positive variances")
    return w, v


def log_ratio_law(widths, variances):
    """The exact mean and variance of ln rho_L given alive and its Gaussian limit (LogRatioLaw).

    widths     hidden widths n_1..n_L
    variances  per-entry weight variances v_1..v_L (Gaussian weights; ReLU)"""
    w, v = _checked(widths, variances)
    lm, lv = [], []
    for n, vv in zip(w, v):
        k, p = _alive_binomial(n)
        dg = special.digamma(0.5 * k)
        m = float(p @ dg)
        lm.append(math.log(2.0 * vv) + m)
        lv.append(float(p @ special.polygamma(1, 0.5 * k) + p @ (dg - m) ** 2))
    b = beta(w)
    p_dead = max(0.0, -math.expm1(sum(math.log1p(-2.0 ** -n) for n in w)))
    limit_mean = float(sum(math.log(vv * n / 2.0) for n, vv in zip(w, v))) - 2.5 * b
    return LogRatioLaw(float(sum(lm)), float(sum(lv)), p_dead, limit_mean, 5.0 * b, b, np.array(lm), np.array(lv))


class _LastLayerCdf:
    """P(ln(v chi2(K)) <= s, K >= 1) for K ~ Binomial(n, 1/2): a sub-CDF of mass 1 - 2^-n, from
    mcinit.theory's law of one layer's log-factor (its binomial range drops at most 1e-18)."""

    def __init__(self, n, v):
        from .theory import _LayerLaw
        self.law = _LayerLaw(n, v, math.log(1e-18))
        self.mass = -math.expm1(-n * math.log(2.0))

    def __call__(self, s):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        return self.law.below(-s, 0.0)                 # P(-s + ln r < 0)

    def support(self, tol=1e-17):
        """(lo, hi): below lo the sub-CDF is < tol, above hi within tol of its mass."""
        law = self.law
        return (law.log2v + math.log(special.gammaincinv(0.5 * law.klo, tol)),
                law.log2v + math.log(special.gammainccinv(0.5 * law.khi, tol)))


def ks_defined(cfg):
    """Whether :func:`ks_distance` describes a run (cfg: RunConfig): a plain ReLU network with
    Gaussian weights of a variance-scaling preset (normal distribution), one input's law."""
    from .initializers import DIST_NORMAL, scheme_of
    return (not cfg.residual and activations.name_of(cfg.activation) == "relu"
            and scheme_of(cfg)[0] == DIST_NORMAL)


def ks_distance(widths, variances, points_per_sd=32):
    """sup_y |F(y) - G(y)|: the Kolmogorov-Smirnov distance between the exact law F of ln rho_L given
    alive (one input, ReLU, Gaussian weights of per-entry variances v_l) and its Gaussian limit G,
    N(sum_l ln(v_l n_l / 2) - 5 beta / 2, 5 beta) (log_ratio_law).

    F(y) = integral f(s) P(ln r_L <= y - s) ds, f the density of the first L - 1 layers' sum
    (mcinit.report.curves.exact_log_density, on a lattice of 1/points_per_sd of the narrowest
    layer's sd) and the last layer's CDF exact (a binomial mixture of regularised incomplete gamma
    functions): a trapezoidal sum of a smooth, fast-decaying integrand, computed on the whole lattice
    by one FFT convolution.  The sup: at the largest lattice value, F is evaluated directly at 33
    points between its neighbours (where that costs at most 5e6 gamma functions, else the lattice
    values are kept), and the parabola through the largest of these and its neighbours gives its
    vertex; doubling points_per_sd changes the distance by less than 1e-9 (tests/test_meanfield.py)."""
    w, v = _checked(widths, variances)
    return _ks_distance(tuple(w), tuple(float(x) for x in v), int(points_per_sd))


@functools.lru_cache(maxsize=256)
def _ks_distance(w, v, points_per_sd):
    from .report.curves import exact_log_density
    v = np.array(v)
    law = log_ratio_law(w, v)
    gauss = stats.norm(law.limit_mean, math.sqrt(law.limit_var))
    alive = 1.0 - law.p_dead
    last = _LastLayerCdf(w[-1], v[-1])
    h = min(math.sqrt(special.polygamma(1, 0.5 * max(1, n // 2))) for n in w) / points_per_sd
    lo_l, hi_l = last.support()
    if len(w) == 1:
        ys = h * np.arange(math.floor(lo_l / h), math.ceil(hi_l / h) + 1)
        lattice = last(ys) / alive
    else:
        s, f, _ = exact_log_density(w[:-1], variances=v[:-1], spacing=h)
        tail = np.concatenate(([0.0], np.cumsum(f) * h))   # h * sum_(j < i) f_j
        # on the lattice y = s_0 + (m0 + t) h at once: the last layer's CDF at the offsets m h, m0..m1,
        # convolved with f (FFT), plus the whole CDF's mass times f's mass left of the offsets
        m0, m1 = math.floor(lo_l / h), math.ceil(hi_l / h)
        g = last(h * np.arange(m0, m1 + 1))
        conv = signal.fftconvolve(f, g) * h
        t = np.arange(len(conv))
        whole = tail[np.clip(t - (m1 - m0), 0, len(f))] * last.mass
        ys = s[0] + h * (m0 + t)
        lattice = (conv + whole) / alive
    d = np.abs(lattice - gauss.cdf(ys))
    i = int(np.argmax(d))
    if 0 < i < len(d) - 1 and (len(w) == 1 or len(last.law.k) * len(f) * _REFINE <= _REFINE_COST):
        # between the neighbours, F evaluated directly at _REFINE points (the same trapezoidal sum)
        yy = np.linspace(ys[i - 1], ys[i + 1], _REFINE)
        if len(w) == 1:
            fy = last(yy) / alive
        else:
            fy = np.array([h * (f @ last(y - s)) / alive for y in yy])
        d = np.abs(fy - gauss.cdf(yy))
        i = int(np.argmax(d))
    return _vertex(d, i)


#: the sup's refinement: points between the lattice neighbours, and the largest cost (gamma functions)
_REFINE, _REFINE_COST = 33, 5e6


def _vertex(d, i):
    """The largest value of |D| near d[i], its largest sample: the vertex of the parabola through it and its
    neighbours (d[i] itself at an end or where the samples are not concave)."""
    if 0 < i < len(d) - 1:
        a, b, c = d[i - 1], d[i], d[i + 1]
        curv = a - 2 * b + c
        if curv < 0:
            return float(max(b, b - (a - c) ** 2 / (8 * curv)))
    return float(d[i])
