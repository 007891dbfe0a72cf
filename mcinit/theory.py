"""Analytic side of mcinit (docs/design.md sections 3 to 5).

Everything here is for one hidden-layer stack with Gaussian weights, no biases
and ReLU activations.  For a single input x != 0 the forward ratios
``rho_l = ||h^l||^2 / ||x||^2`` (l = 1..L, stored squared as everywhere in
mcinit) follow an exact product law (docs/design.md section 4):

    rho_l = r_1 r_2 ... r_l,   r_l = v_l * chi2(K_l),   K_l ~ Binomial(n_l, 1/2),

independent across layers, with v_l the per-entry weight variance of layer l and
chi2(0) = 0 (all units of the layer inactive: a dead network).

Deviations come in three forms (docs/design.md section 2): the *norm* form
``|sqrt(rho) - 1|``, the *squared* form ``|rho - 1|`` and the *symmetric* form
``max(sqrt(rho), 1/sqrt(rho)) - 1``.  A layer is *safe* at tolerance eps when its
deviation is at most eps, i.e. when rho lies in

    norm form:      [(1 - eps)^2, (1 + eps)^2]   (eps < 1),   (0, (1 + eps)^2]   (eps >= 1)
    squared form:   [1 - eps, 1 + eps]           (eps < 1),   (0, 1 + eps]       (eps >= 1)
    symmetric form: [(1 + eps)^-2, (1 + eps)^2]  (every eps)

(in the norm and squared forms eps >= 1 admits every rho down to 0: only a dead layer
fails there, however far the norm has collapsed; the symmetric form is not blind to it).

A dead layer (rho = 0) is never safe.  The *forward failure* event is "some
layer l = 1..L is not safe".

The same machinery covers the other homogeneous activations and orthogonal weights
(docs/design.md section 11; keywords ``activation=`` and ``gain=``, ``init="orthogonal"``):
leaky-relu's factor is a negative-binomial mixture of chi-squares, abs and linear give
v chi2(n), orthogonal weights g^2 Beta(K/2, (M - K)/2).  tanh and gelu have no exact law and
are refused.  :func:`exact_law_of` says which law, if any, describes a run's configuration.

Contents:

- :func:`layer_variances`: v_l of the Gaussian presets and orthogonal weights
  (mcinit.initializers.layer_scheme).
- :func:`paper_eps`, :func:`paper_delta`, :func:`paper_width`: the bound of
  Arpit & Bengio (arXiv:1901.03611) as encoded in the authors' reference code.
- :func:`factor_moment`, :func:`log_factor_moment`, :func:`moments`: exact
  moments of the layer factor r_l and of rho_l.
- :func:`exact_forward_failure`, :func:`exact_forward_failure_layers`: the exact
  single-input failure probability, accurate to about 8 significant digits
  also where it is 1e-12 or far smaller.
- :func:`chernoff_bound`: a rigorous Chernoff + union bound for N inputs.
- :func:`required_width`, :func:`required_widths`: the smallest equal hidden
  width at which each bound reaches a failure probability delta.
- :func:`residual_block_moments`, :func:`residual_block_cdf`, :func:`residual_moments`:
  the exact one-input law of a residual block (``--arch residual``), and the per-layer
  moments of rho_l of a residual network.  The plain-network laws and bounds above do not
  describe residual networks (docs/design.md section 9).
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

from .options import EXACT_INITS, FORMS, GAUSSIAN_INITS, HOMOGENEOUS_ACTIVATIONS  # enumerations live with the options

__all__ = [
    "GAUSSIAN_INITS", "EXACT_INITS", "EXACT_ACTIVATIONS", "FORMS", "layer_variances", "ExactLaw", "exact_law_of", "exact_law_shown", "leaky_mixture_terms", "SHOWN_MIXTURE_TERMS",
    "paper_applies", "check_exact_law",
    "paper_eps", "paper_delta", "paper_width", "norm_tolerance", "NORM_TOLERANCE_WORDS", "MAX_BOUND_WIDTH",
    "log_factor_moment", "factor_moment", "Moments", "moments",
    "exact_forward_failure", "exact_forward_failure_layers",
    "chernoff_bound", "required_width", "required_widths",
    "residual_block_moments", "residual_block_cdf", "residual_layer_moments", "residual_moments",
]


_LN2 = math.log(2.0)
#: Gauss-Legendre nodes per panel of the exact recursion
_GL_ORDER = 16
#: panel width of the exact recursion, in units of the narrowest local scale of the
#: densities of ln chi2(k) among the binomial terms kept (see _LayerLaw)
_PANEL_SD = 3.0
#: that local scale is taken where the density has fallen by e^-_FLANK from its mode
_FLANK = 37.0
#: the exact recursion drops at most this much probability in its first pass ...
_LOG_TOL_FIRST = math.log(1e-30)
#: ... and, when the result is small, reruns with 1e-10 times the result, never below this
_LOG_TOL_FLOOR = math.log(1e-300)
#: largest width required_width searches
_MAX_WIDTH = 2 ** 21
#: the widest layer the bounds are evaluated at (their cost grows with the width)
MAX_BOUND_WIDTH = _MAX_WIDTH
#: elements per chunk of the vectorised (t or node) x (k) computations
_CHUNK = 1 << 21


# ---------------------------------------------------------------------------
# argument checks and small numerical helpers

def _as_widths(widths):
    w = np.asarray(widths)
    if w.ndim != 1 or w.size == 0:
        raise ValueError("widths must be a non-empty 1-D sequence of hidden widths n_1..n_L")
    if w.dtype.kind not in "iuf" or np.any(w < 1) or np.any(w != np.floor(w)):
        raise ValueError(f"widths must be positive integers, got {widths!r}")
    return w.astype(np.int64)


def _as_positive_int(x, name):
    if isinstance(x, (bool, np.bool_)) or not float(x).is_integer() or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


def _check_form(form):
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _as_eps(eps):
    e = np.asarray(eps, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    return e


def _as_prob(delta, name="delta"):
    d = np.asarray(delta, dtype=float)
    if np.any(~(d > 0)) or np.any(d >= 1):
        raise ValueError(f"{name} must lie in (0, 1), got {delta!r}")
    return d


def _scalar_or_array(x, like_scalar):
    return float(x) if like_scalar else x


def _lse(x, axis=-1):
    """log(sum(exp(x))) along an axis; -inf for an all -inf slice."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - m), axis=axis)) + np.squeeze(m, axis=axis)


def _log_binom_half(n, k):
    """log P(K = k) for K ~ Binomial(n, 1/2), k an integer array in [0, n].

    Boost's binomial pmf (relative error ~1e-11 at n = 1e5, against 1e-10 for
    differences of log-gamma functions) where it does not underflow.
    """
    k = np.asarray(k, dtype=float)
    with np.errstate(divide="ignore"):
        direct = np.log(stats.binom.pmf(k, n, 0.5))
    small = direct < -600.0
    if np.any(small):
        ks = k[small]
        direct[small] = (special.gammaln(n + 1.0) - special.gammaln(ks + 1.0)
                         - special.gammaln(n - ks + 1.0) - n * _LN2)
    return direct


def _log_binom_below(n):
    """Array c of length n + 2 with c[j] = log P(K < j), K ~ Binomial(n, 1/2)."""
    lp = _log_binom_half(n, np.arange(n + 1))
    return np.concatenate(([-np.inf], np.logaddexp.accumulate(lp)))


def _log_safe_interval(eps, form):
    """(ln A, ln B) of the safe set of rho at tolerance eps (scalar); ln A = -inf when A = 0."""
    if form == "norm":
        a = 2.0 * math.log1p(-eps) if eps < 1 else -math.inf
        b = 2.0 * math.log1p(eps)
    elif form == "symmetric":
        b = 2.0 * math.log1p(eps)
        a = -b
    else:
        a = math.log1p(-eps) if eps < 1 else -math.inf
        b = math.log1p(eps)
    return a, b


# ---------------------------------------------------------------------------
# 1. initialisation

def layer_variances(widths, input_dim=None, init="he", *, activation="relu", gain=None):
    """Per-entry variance v_l of the weights of every hidden layer (mcinit.initializers.layer_scheme).

    Parameters
    ----------
    widths : sequence of int
        Hidden widths n_1..n_L.
    input_dim : int or None
        Input dimension n_0.  Needed by every preset except ``"he"`` and
        ``"paper-glorot"``, which use fan_out = n_l only (it is accepted and checked but unused there).
    init : str
        One of :data:`EXACT_INITS` (docs/design.md section 3):
        ``"he"``: v_l = g^2/n_l (fan_out, the paper's; g^2 = 2 for ReLU: exactly 2/n_l);
        ``"he-in"``: v_l = g^2/n_(l-1) (fan_in, torch's kaiming_normal_ default);
        ``"glorot"``: v_l = 2/(n_(l-1) + n_l);
        ``"lecun"``: v_l = 1/n_(l-1);
        ``"paper-glorot"``: v_l = 1/n_l (fan_out, what the paper's code calls glorot);
        ``"orthogonal"``: v_l = g^2/max(n_(l-1), n_l) (an entry's variance).
        The weight-normalised presets (``"wn"``, ``"wn-unit"``) are rejected.
    activation : str
        The activation's text; its gain g (mcinit.activations.gain) is the default of he,
        he-in and orthogonal.
    gain : float or None
        --gain: g of he, he-in and orthogonal (and a factor of the others), None for the default.

    Returns
    -------
    numpy.ndarray of float, shape (L,)
    """
    from .initializers import layer_scheme
    w = _as_widths(widths)
    _check_init(init)
    n0 = None if input_dim is None else _as_positive_int(input_dim, "input_dim")
    if n0 is None and init not in ("he", "paper-glorot"):
        raise ValueError(f"init={init!r} depends on fan_in, so input_dim (n_0) is required")
    all_widths = np.concatenate(([n0 if n0 is not None else 1], w))     # he, paper-glorot: n_0 unused
    return layer_scheme(init, "normal", all_widths, None, activation, gain)[1]


# ---------------------------------------------------------------------------
# 1b. the layer factor's law for each activation and weight law (docs/design.md section 11)

#: the activations whose one-input layer factor has an exact law here: the homogeneous ones
#: (phi(c a) = c phi(a), so the factor does not depend on ||h||)
EXACT_ACTIVATIONS = HOMOGENEOUS_ACTIVATIONS
#: the leaky-relu factor's negative-binomial mixture keeps the terms of weight above this
_LOG_TOL_MIXTURE = math.log(1e-300)
#: orthogonal weights: the Beta(k/2, beta) terms with beta below this (k near M, the atom
#: r = g^2 at k = M among them) are not smooth enough at their upper edge for the recursion's
#: panels; their paths are dropped there and their mass bounds the error (_first_exit)
_BETA_SMOOTH = 8.0
#: the exact recursion refuses a result whose bracket [P, P + dropped] is wider than this relatively
_BRACKET_REL = 1e-10


def _activation_of(activation):
    """(name, alpha) of an activation's text, refusing those without an exact law."""
    from .activations import name_of, slope_of
    name, alpha = name_of(activation), slope_of(activation)
    if name not in EXACT_ACTIVATIONS:
        raise ValueError(f"the {name} activation has no exact law (the layer factor depends on ||h||): "
                         "estimate its failure probability by Monte Carlo (mcinit run --activation "
                         f"{name})")
    if name == "leaky-relu" and alpha == 0.0:
        name = "relu"
    if name == "leaky-relu" and abs(alpha) == 1.0:
        name = "linear"                       # phi(a)^2 = a^2: the same factor as linear and abs
    return name, alpha


def check_exact_law(init, activation="relu"):
    """Raise a one-line ValueError where no exact law covers an init and activation (tanh, gelu;
    weight-normalised rows; orthogonal weights with leaky-relu), naming the alternative."""
    _check_init(init)
    name, _ = _activation_of(activation)
    if init == "orthogonal" and name == "leaky-relu":
        raise ValueError("the exact law of orthogonal weights covers relu, abs and linear; with leaky-relu the "
                         "factor is a mixture it does not compute: estimate it by Monte Carlo (mcinit run)")


def _check_init(init):
    if init not in EXACT_INITS:
        raise ValueError(f"init must be one of {EXACT_INITS} (Gaussian or orthogonal weights; the exact "
                         f"laws do not cover weight-normalised rows), got {init!r}")


class _Factor:
    """The law of one layer factor r = rho_l / rho_(l-1) for one input, as a mixture.

    family "chi2": r = exp(log_scale) Gamma(k/2, 1) (= v chi2(k) with log_scale = ln 2v);
    family "beta": r = exp(log_scale) Beta(k/2, (M - k)/2) (g^2 Beta; k = M: r = g^2 exactly).
    k: the support (float array, sorted, k >= 1), logw: log P(k); log_dead: log P(r = 0).
    complete: whether k and logw are the whole law (else a mixture truncated below 1e-300).
    """

    relu_n = None        # n for the ReLU Gaussian factor (its recursion keeps Hoeffding's range of K)

    def __init__(self, family, k, logw, log_scale, log_dead, M=None, complete=True):
        self.family, self.k, self.logw = family, np.asarray(k, dtype=float), np.asarray(logw, dtype=float)
        self.log_scale, self.log_dead, self.M, self.complete = float(log_scale), float(log_dead), M, complete
        self.dead = math.exp(log_dead)

    def terms(self, t, k=None, logw=None):
        """Matrix (len(t), len(k)) of log(P(k) E[r^t | k]) over the support (or a part of it)."""
        k = self.k if k is None else k
        logw = self.logw if logw is None else logw
        if self.family == "chi2":
            return _log_moment_terms(k, logw, self.log_scale, t)
        hk = 0.5 * k
        t = np.asarray(t, dtype=float)[:, None]
        hm = 0.5 * self.M          # E B^t = Gamma(k/2 + t) Gamma(M/2) / (Gamma(k/2) Gamma(M/2 + t))
        return logw + t * self.log_scale + special.gammaln(hk + t) - special.gammaln(hk) \
            + special.gammaln(hm) - special.gammaln(hm + t)

    def log_moment(self, t, k=None, logw=None):
        """log E[r^t ; k in the given part] for an array t, chunked over t."""
        k = self.k if k is None else k
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = np.empty(t.shape)
        step = max(1, _CHUNK // max(1, len(k)))
        for i in range(0, len(t), step):
            out[i:i + step] = _lse(self.terms(t[i:i + step], k, logw), axis=1)
        return out

    def two_moments(self):
        """(E r, E r^2), exact."""
        lm = self.log_moment([1.0, 2.0])
        return math.exp(lm[0]), math.exp(lm[1])


def _nb_mixture(n, p):
    """Support j and log weights of J, J | K ~ NegBinomial(K/2, p), K ~ Binomial(n, 1/2), truncated
    below exp(_LOG_TOL_MIXTURE); log P(J = j) = log sum_K P(K) Gamma(K/2 + j) / (Gamma(K/2) j!) p^(K/2) (1-p)^j."""
    kk = np.arange(0, n + 1, dtype=float)
    lk = _log_binom_half(n, kk)
    keep = lk > _LOG_TOL_MIXTURE - math.log(n + 1.0)
    kk, lk = kk[keep], lk[keep]
    a = 0.5 * kk
    lq = math.log1p(-p)
    mean, sd = a.max() * (1 - p) / p, math.sqrt(a.max() * (1 - p)) / p
    jmax = int(mean + 40.0 * sd + (-_LOG_TOL_MIXTURE + 50.0) / -lq) + 1
    j = np.arange(0, jmax + 1, dtype=float)
    out = np.full(j.shape, -np.inf)
    step = max(1, _CHUNK // max(1, len(kk)))
    pos = a > 0
    for i in range(0, len(j), step):
        jj = j[i:i + step, None]
        with np.errstate(invalid="ignore"):
            terms = np.where(pos, special.gammaln(a + jj) - special.gammaln(np.where(pos, a, 1.0))
                             - special.gammaln(jj + 1.0) + a * math.log(p) + jj * lq,
                             np.where(jj == 0, 0.0, -np.inf))
        out[i:i + step] = _lse(terms + lk, axis=1)
    keep = out > _LOG_TOL_MIXTURE
    return j[keep], out[keep]


_FACTORS = {}


def _factor(n, n_prev, v, activation, orthogonal):
    """The _Factor of a layer of width n (input width n_prev), entry variance v (orthogonal:
    g^2 = v max(n_prev, n)), activation (name, alpha) from _activation_of."""
    name, alpha = activation
    key = (n, n_prev if orthogonal else None, float(v), name, alpha if name == "leaky-relu" else 0.0, orthogonal)
    if key in _FACTORS:
        return _FACTORS[key]
    if orthogonal:
        M = max(n, n_prev)
        log_g2 = math.log(v * M)
        if name == "relu":          # K active coordinates of a uniform direction in R^M
            k = np.arange(1, n + 1, dtype=float)
            f = _Factor("beta", k, _log_binom_half(n, k), log_g2, -n * _LN2, M)
        elif name in ("abs", "linear"):
            f = _Factor("beta", [float(n)], [0.0], log_g2, -math.inf, M)
        else:
            raise ValueError("the exact law of orthogonal weights covers relu, abs and linear; with "
                             "leaky-relu the factor is a mixture it does not compute: estimate it by "
                             "Monte Carlo (mcinit run)")
    elif name == "relu":
        k = np.arange(1, n + 1, dtype=float)
        f = _Factor("chi2", k, _log_binom_half(n, k), math.log(2.0 * v), -n * _LN2)
        f.relu_n = n
    elif name in ("abs", "linear"):
        f = _Factor("chi2", [float(n)], [0.0], math.log(2.0 * v), -math.inf)
    else:
        # v (chi2(K) + alpha^2 chi2(n - K)) = v beta chi2(n + 2J), beta = min(1, alpha^2),
        # J | K ~ NegBin(K/2, p), p = min(alpha^2, 1/alpha^2) (section 11)
        a2 = alpha * alpha
        j, lw = _nb_mixture(n, min(a2, 1.0 / a2))
        f = _Factor("chi2", n + 2.0 * j, lw, math.log(2.0 * v * min(1.0, a2)), -math.inf, complete=False)
    if len(_FACTORS) > 256:
        _FACTORS.clear()
    _FACTORS[key] = f
    return f


def _factors(widths, input_dim, init, activation, gain):
    """The layers' _Factors (widths validated) and the variances."""
    w = _as_widths(widths)
    check_exact_law(init, activation)
    act = _activation_of(activation)
    v = layer_variances(w, input_dim, init, activation=activation, gain=gain)
    prev = np.concatenate(([input_dim if input_dim is not None else 0], w[:-1]))
    return w, v, [_factor(int(n), int(p), float(vv), act, init == "orthogonal") for n, p, vv in zip(w, prev, v)]


class ExactLaw(NamedTuple):
    """The exact one-input law of a run's forward ratios, as theory's arguments: pass
    ``widths, form, input_dim, init`` as usual and ``**law.keywords`` (activation, gain)."""
    widths: tuple
    input_dim: int
    init: str
    activation: str
    gain: float

    @property
    def keywords(self):
        """activation= and gain= of theory's functions."""
        return {"activation": self.activation, "gain": self.gain}

    @property
    def chernoff(self):
        """Whether chernoff_bound computes this law's bound (not for leaky-relu)."""
        return _chernoff_applies(self.activation)

    @property
    def relu_gaussian(self):
        """Whether it is the ReLU law of Gaussian weights (docs/design.md section 4), the one the
        FFT densities of mcinit.report.curves and the paper's figures compute."""
        return _activation_of(self.activation)[0] == "relu" and self.init in GAUSSIAN_INITS


#: the run summary and the report show leaky-relu's exact law where its chi-square mixture
#: has at most this many terms in every layer (about 10 s for the summary's seven eps at
#: 10 layers); a smaller slope spreads the mixture over ~ n / alpha^2 terms (minutes to hours),
#: which exact_forward_failure still computes when asked
SHOWN_MIXTURE_TERMS = 10000


def leaky_mixture_terms(n, alpha):
    """About how many chi-square terms the exact law of a leaky-relu layer of width n has (the
    negative-binomial mixture's support, _nb_mixture): mean + 40 sd of J at K = n."""
    p = min(alpha * alpha, 1.0 / (alpha * alpha))
    if p >= 1.0:
        return 1
    a = 0.5 * n
    return int(a * (1 - p) / p + 40.0 * math.sqrt(a * (1 - p)) / p) + 1


def exact_law_shown(cfg):
    """(law, why): exact_law_of(cfg) where the summary and the report show it, else None with the
    reason in words (no exact law; leaky-relu's mixture too large to compute in seconds)."""
    law = exact_law_of(cfg)
    if law is None:
        return None, f"no exact law for --activation {cfg.activation} with --init {cfg.init}"
    name, alpha = _activation_of(cfg.activation)
    if name == "leaky-relu" and alpha not in (0.0, 1.0, -1.0):
        terms = max(leaky_mixture_terms(int(n), alpha) for n in cfg.widths)
        if terms > SHOWN_MIXTURE_TERMS:
            return None, (f"leaky-relu:{alpha:g}'s exact law is a mixture of ~{terms:,} chi-square terms, too "
                          "many to show here (mcinit.theory.exact_forward_failure computes it, slowly)")
    return law, ""


def exact_law_of(cfg):
    """The :class:`ExactLaw` of a run's configuration (a RunConfig), or None where no exact law
    describes it: residual networks (section 9), uniform or weight-normalised weights, tanh and
    gelu, orthogonal weights with leaky-relu.  The one place that decides where the report, the
    summary and the results' p_exact show the exact laws (and the Chernoff bound)."""
    if cfg.residual or cfg.dist != "normal":
        return None
    try:
        check_exact_law(cfg.init, cfg.activation)
    except ValueError:
        return None
    return ExactLaw(tuple(int(w) for w in cfg.widths), cfg.input_dim, cfg.init, cfg.activation, cfg.gain)


# ---------------------------------------------------------------------------
# 2. the paper's bound

def paper_eps(width, samples, depth, delta):
    """Tolerance eps of the paper bound: (1 + 4 ln(4 N L / delta) / m)^L - 1.

    Claimed: with probability at least 1 - delta, every norm-form deviation
    |sqrt(rho) - 1| over the N inputs and L layers is at most this eps.

    Provenance: Arpit & Bengio, "The Benefits of Over-parameterization at
    Initialization in Deep ReLU Networks" (arXiv:1901.03611), as encoded in the
    authors' public reference code for their bound-comparison figure
    (repository devansharpit/overparametrization_benefits, file
    bound_comparison.py: ``epsilon = (1 + (4/m) log(4 N L / delta))**L - 1``).
    It is derived for He initialisation (v = 2/n_l); the authors compare it
    with the norm form, and mcinit applies it to that form, for the forward and
    the backward property alike (docs/design.md section 5).

    Caution: the encoded bound decays like exp(-m eps / (4 L)) while the true
    probability decays like exp(-c m eps^2 / L), so at small eps and large m
    it is *not* an upper bound: at m = 4000, L = 10, N = 1, eps = 0.15,
    :func:`paper_delta` gives 3.1e-5 where the exact probability
    (:func:`exact_forward_failure`) is 9.6e-3.

    Parameters
    ----------
    width : float or array
        Hidden width m (real values allowed, as in the reference code's curves).
    samples : int or array
        Number of inputs N.
    depth : int or array
        Number of hidden layers L.
    delta : float or array
        Failure probability, in (0, 1).

    Returns float for scalar arguments, else a broadcast array.
    """
    m, N, L = (np.asarray(x, dtype=float) for x in (width, samples, depth))
    d = _as_prob(delta)
    if np.any(m <= 0) or np.any(N < 1) or np.any(L < 1):
        raise ValueError("width must be > 0, samples and depth >= 1")
    x = 4.0 * (np.log(4.0 * N * L) - np.log(d)) / m
    out = np.expm1(L * np.log1p(x))
    return _scalar_or_array(out, out.ndim == 0)


def paper_delta(width, eps, samples, depth):
    """Failure probability of the paper bound: min(1, 4 N L exp(-m ((1+eps)^(1/L) - 1) / 4)).

    The inverse of :func:`paper_eps` in delta; ``eps`` is a norm-form
    tolerance > 0, the other arguments are as in :func:`paper_eps`.

    Provenance: Arpit & Bengio (arXiv:1901.03611), the bound as encoded in the
    authors' reference code (devansharpit/overparametrization_benefits,
    bound_comparison.py), solved for delta; derived for He initialisation and
    applied to the norm form (docs/design.md section 5).  See the caution in
    :func:`paper_eps`: at small eps and large m this value lies below the
    exact failure probability.
    """
    m, N, L = (np.asarray(x, dtype=float) for x in (width, samples, depth))
    e = _as_eps(eps)
    if np.any(m <= 0) or np.any(N < 1) or np.any(L < 1):
        raise ValueError("width must be > 0, samples and depth >= 1")
    eps_layer = np.expm1(np.log1p(e) / L)
    out = np.exp(np.minimum(0.0, np.log(4.0 * N * L) - m * eps_layer / 4.0))
    return _scalar_or_array(out, out.ndim == 0)


#: norm_tolerance in words, by form (the norm form's is eps itself)
NORM_TOLERANCE_WORDS = {"norm": "eps", "squared": "sqrt(1+eps)-1", "symmetric": "eps/(1+eps)"}


def norm_tolerance(eps, form):
    """The norm-form tolerance of ``eps`` given in ``form``, the largest at which every
    norm-safe rho is safe in ``form``: eps itself; sqrt(1 + eps) - 1 for the squared form
    (computed without cancellation, so that it stays positive for every eps > 0: at least
    the smallest positive float64, where the paper bound is 1 anyway); eps / (1 + eps) for
    the symmetric form (1 - eps / (1 + eps) = 1 / (1 + eps), its lower edge of sqrt(rho))."""
    _check_form(form)
    eps = np.asarray(eps, dtype=float)
    if form == "norm":
        return eps
    if form == "symmetric":
        return eps / (1.0 + eps)
    return np.maximum(np.expm1(0.5 * np.log1p(eps)), np.nextafter(0.0, 1.0))


def paper_width(eps, delta, samples, depth):
    """Width the paper bound requires: ceil(4 ln(4 N L / delta) / ((1+eps)^(1/L) - 1)).

    The smallest integer m with :func:`paper_delta` (m, eps) <= delta.
    ``eps`` is a norm-form tolerance > 0, ``delta`` in (0, 1), N = samples,
    L = depth.  Returns int for scalar arguments, else an int64 array.

    Provenance: Arpit & Bengio (arXiv:1901.03611), as encoded in the authors'
    reference code (devansharpit/overparametrization_benefits,
    bound_comparison.py, whose comment gives m = (4/eps') log(4 N L / delta)
    with eps' = (1+eps)^(1/L) - 1); derived for He initialisation and applied
    to the norm form (docs/design.md section 5).  See the caution in :func:`paper_eps`.
    """
    e = _as_eps(eps)
    d = _as_prob(delta)
    N, L = np.asarray(samples, dtype=float), np.asarray(depth, dtype=float)
    if np.any(N < 1) or np.any(L < 1):
        raise ValueError("samples and depth must be >= 1")
    eps_layer = np.expm1(np.log1p(e) / L)
    with np.errstate(divide="ignore", over="ignore"):
        m = np.ceil(4.0 * (np.log(4.0 * N * L) - np.log(d)) / eps_layer)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"the paper bound needs a width beyond any number at eps={eps!r}: "
                         "(1+eps)^(1/L) - 1 is 0 in float64")
    if m.ndim == 0:
        return int(m)       # exact as an integer (a Python int beyond 2**63)
    if np.any(m >= 2.0 ** 63):
        raise ValueError("the paper bound needs widths beyond 2**63 at these eps")
    return m.astype(np.int64)


# ---------------------------------------------------------------------------
# 3. moments

def _log_moment_terms(k, logw, log2v, t):
    """Matrix (len(t), len(k)) of log(P(K=k) E[(v chi2(k))^t]) = logw + t ln(2v) + lnG(k/2+t) - lnG(k/2)."""
    hk = 0.5 * k
    t = np.asarray(t, dtype=float)[:, None]
    return logw - special.gammaln(hk) + t * log2v + special.gammaln(hk + t)


def _log_moment(k, logw, log2v, t):
    """log sum_k P(K=k) E[(v chi2(k))^t] for an array t, chunked over t."""
    t = np.atleast_1d(np.asarray(t, dtype=float))
    out = np.empty(t.shape)
    step = max(1, _CHUNK // max(1, len(k)))
    for i in range(0, len(t), step):
        out[i:i + step] = _lse(_log_moment_terms(k, logw, log2v, t[i:i + step]), axis=1)
    return out


def log_factor_moment(t, width, variance, kmin=0, *, activation="relu", init=None, input_width=None):
    """log E[r^t ; K >= kmin] for the layer factor r = v chi2(K), K ~ Binomial(n, 1/2).

    The natural logarithm of :func:`factor_moment`; see there.  Computed in log
    space (log-gamma ratios, log-sum-exp over the binomial), accurate for widths
    up to 1e5 and beyond and for |t| in the hundreds or thousands.
    """
    n = _as_positive_int(width, "width")
    v = float(variance)
    if not v > 0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    if isinstance(kmin, (bool, np.bool_)) or not float(kmin).is_integer() or kmin < 0:
        raise ValueError(f"kmin must be a non-negative integer, got {kmin!r}")
    kmin = int(kmin)
    tt = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(tt)):
        raise ValueError("t must be finite")
    act = _activation_of(activation)
    if act[0] != "relu" or init == "orthogonal":
        if init not in (None, "orthogonal"):
            raise ValueError(f"init must be None (Gaussian weights) or 'orthogonal', got {init!r}")
        n_prev = _as_positive_int(input_width, "input_width") if init == "orthogonal" else 0
        f = _factor(n, n_prev, v, act, init == "orthogonal")
        keep = f.k >= kmin
        if f.dead == 0.0:
            kmin = max(kmin, int(f.k[keep][0]) if np.any(keep) else kmin)
        if np.any((tt < 0) & (tt <= -kmin / 2.0)):
            raise ValueError(f"E[r^t; k >= {kmin}] is infinite for t <= -kmin/2 = {-kmin / 2.0} "
                             f"(got t = {t!r})")
        flat = tt.ravel()
        out = f.log_moment(flat, f.k[keep], f.logw[keep]) if np.any(keep) else np.full(flat.shape, -np.inf)
        if f.dead > 0 and kmin == 0:
            out = np.where(flat == 0, np.logaddexp(out, f.log_dead), out)
        return _scalar_or_array(out.reshape(tt.shape), tt.ndim == 0)
    if np.any((tt < 0) & (tt <= -kmin / 2.0)):
        raise ValueError(f"E[r^t; K >= {kmin}] is infinite for t <= -kmin/2 = {-kmin / 2.0}; "
                         f"raise kmin above -2t (got t = {t!r})")
    k = np.arange(max(kmin, 1), n + 1)
    flat = tt.ravel()
    out = _log_moment(k, _log_binom_half(n, k), math.log(2.0 * v), flat) if k.size else \
        np.full(flat.shape, -np.inf)
    if kmin == 0:  # r = 0 on K = 0: r^0 = 1 there, r^t = 0 for t > 0
        out = np.where(flat == 0, np.logaddexp(out, -n * _LN2), out)
    out = out.reshape(tt.shape)
    return _scalar_or_array(out, tt.ndim == 0)


def factor_moment(t, width, variance, kmin=0, *, activation="relu", init=None, input_width=None):
    """E[r^t ; K >= kmin] for one layer factor r = rho_l / rho_(l-1) = v chi2(K).

    With another ``activation`` (leaky-relu:ALPHA, abs, linear) or ``init="orthogonal"``
    (``input_width`` = n_(l-1); variance = g^2 / max(n_(l-1), n)), the factor of docs/design.md
    section 11, kmin restricting its mixture's shape parameter k (the K of ReLU; n for abs and
    linear; n + 2J for leaky-relu, whose mixture is truncated below 1e-300).

    For one input and Gaussian weights of per-entry variance v, the factor is
    r = v chi2(K) with K ~ Binomial(n, 1/2) (chi2(0) = 0, a dead layer), so

        E[r^t ; K >= kmin] = sum_{k >= kmin} P(K=k) v^t 2^t Gamma(k/2 + t) / Gamma(k/2),

    where the K = 0 term (present only for kmin = 0) is 0 for t > 0 and
    P(K = 0) for t = 0 (r^0 = 1).  Negative moments exist only away from small
    K: for t < 0 the sum is finite iff t > -kmin/2, and a ValueError is raised
    otherwise (in particular for any t < 0 with kmin = 0): it never restricts
    the event silently.

    Parameters
    ----------
    t : float or array
        Real order(s) of the moment.
    width : int
        n, the width of the layer (the number of ReLU units).
    variance : float
        v, the per-entry weight variance (:func:`layer_variances`).
    kmin : int
        Restrict the expectation to the event K >= kmin.

    Returns float for scalar t, else an array of t's shape.  Underflows to 0
    and overflows to inf where the value is beyond double precision; use
    :func:`log_factor_moment` there.
    """
    with np.errstate(over="ignore"):
        out = np.exp(log_factor_moment(t, width, variance, kmin, activation=activation, init=init,
                                       input_width=input_width))
    return _scalar_or_array(out, np.ndim(t) == 0)


class Moments(NamedTuple):
    """Per-layer mean and variance of rho_l for one input (arrays of shape (L,))."""
    mean: np.ndarray
    var: np.ndarray


def _moment_ratio_logs(w, prev, init, activation):
    """ln(E r_l^2 / (E r_l)^2) per layer, exact (docs/design.md sections 4 and 11)."""
    name, alpha = _activation_of(activation)
    n = w.astype(float)
    if init == "orthogonal":
        M = np.maximum(n, prev.astype(float))
        if name == "relu":       # E B = K/M, E B^2 = K (K + 2) / (M (M + 2)), K ~ Bin(n, 1/2)
            return np.log1p((5.0 * M - 2.0 * n) / (n * (M + 2.0)))
        if name in ("abs", "linear"):
            return np.log1p(2.0 * (M - n) / (n * (M + 2.0)))
        _factor(1, 1, 1.0, (name, alpha), True)          # refuses leaky-relu in its words
    # r / v = sum_i c_i z_i^2, c_i = 1 or alpha^2 with probability 1/2 (relu: alpha = 0):
    # E r^2 / (E r)^2 = 1 + (3 E[c^2] / E[c]^2 - 1) / n
    a2 = {"relu": 0.0, "leaky-relu": alpha * alpha}.get(name, 1.0)
    ec, ec2 = 0.5 * (1.0 + a2), 0.5 * (1.0 + a2 * a2)
    return np.log1p((3.0 * ec2 / ec ** 2 - 1.0) / n)


def moments(widths, input_dim=None, init="he", *, activation="relu", gain=None):
    """Exact E rho_l and Var rho_l, l = 1..L, for one input.

    rho_l = ||h^l||^2 / ||x||^2 is in squared form.  With independent factors,
    E rho_l = prod_k E r_k and E rho_l^2 = prod_k E r_k^2, where for ReLU and
    Gaussian weights E r = v n / 2 and E r^2 = v^2 n (n + 5) / 4, so that

        Var rho_l = (E rho_l)^2 (prod_(k<=l) (1 + 5/n_k) - 1),

    computed without cancellation.  For He (v = 2/n) E rho_l = 1 and
    Var rho_l = prod_(k<=l) (1 + 5/n_k) - 1 (docs/design.md section 4).  The other
    activations and orthogonal weights (docs/design.md section 11): E r = v n E[phi(z)^2]
    for Gaussian weights, with 1 + 5/n replaced by 1 + (3 E[c^2] / E[c]^2 - 1) / n
    (c = phi(z)^2 / z^2: 1 + 2/n for abs and linear); orthogonal weights, M = max(n_(l-1), n_l):
    ReLU E r = g^2 n / (2M), E r^2 = g^4 n (n + 5) / (4 M (M + 2)); abs and linear
    E r = g^2 n / M, E r^2 = g^4 n (n + 2) / (M (M + 2)).

    Parameters are those of :func:`layer_variances`.  Returns a
    :class:`Moments` (mean, var).
    """
    w = _as_widths(widths)
    v = layer_variances(w, input_dim, init, activation=activation, gain=gain)
    name, _ = _activation_of(activation)
    if name == "relu" and init != "orthogonal":
        mean = np.cumprod(v * w / 2.0)
        rel = np.expm1(np.cumsum(np.log1p(5.0 / w)))
        return Moments(mean=mean, var=mean ** 2 * rel)
    from .activations import second_moment
    prev = np.concatenate(([input_dim if input_dim is not None else 0], w[:-1]))
    if init == "orthogonal":
        mean_factor = v * w * (0.5 if name == "relu" else 1.0)    # g^2 n / (2M) = v n / 2 (relu)
    else:
        mean_factor = v * w * second_moment(activation)
    mean = np.cumprod(mean_factor)
    rel = np.expm1(np.cumsum(_moment_ratio_logs(w, prev, init, activation)))
    return Moments(mean=mean, var=mean ** 2 * rel)


# ---------------------------------------------------------------------------
# 4. exact single-input forward failure probability

class _LayerLaw:
    """Law of s = ln r for one layer of the chi2 family (r = v chi2(k), k from the factor's
    mixture), the mixture restricted to k in [klo, khi] (k >= 1).

    The kept range drops at most exp(log_tol) of probability (ReLU: Hoeffding's bound on each
    binomial tail; other mixtures: their cumulative weights); r = 0 (dead) is kept aside as a
    certain exit.
    """

    dropped = 0.0        # no term is left out for want of smoothness (_BetaLaw's is)

    def __init__(self, n, v, log_tol, factor=None):
        # (n, v): the ReLU Gaussian factor v chi2(K), K ~ Bin(n, 1/2); else the factor's mixture
        if factor is None:
            factor = _factor(int(n), 0, float(v), ("relu", 0.0), False)
        n = factor.relu_n
        if n is not None:
            half = math.sqrt(0.5 * n * (_LN2 - log_tol))       # P(|K - n/2| >= half) <= exp(log_tol)
            self.klo = max(1, math.ceil(n / 2.0 - half))
            self.khi = min(n, math.floor(n / 2.0 + half))
            self.k = np.arange(self.klo, self.khi + 1, dtype=float)
            self.logw = _log_binom_half(n, self.k)
        else:
            self.k, self.logw = _kept(factor.k, factor.logw, log_tol)
            self.klo, self.khi = float(self.k[0]), float(self.k[-1])
        self.w = np.exp(self.logw)
        self.dead = factor.dead
        self.log2v = factor.log_scale
        self._c = self.logw - special.gammaln(0.5 * self.k)
        # Narrowest local scale of the kept densities of w = ln(chi2/2): the log-density
        # (k/2) w - e^w has curvature e^w, largest on the right flank; at the point where the
        # density of the largest kept k has fallen e^-_FLANK below its mode, e^w = s x with
        # s = khi/2 and x - 1 - ln x = _FLANK / s (x > 1, a Lambert W solution).
        s = 0.5 * self.khi
        x = -special.lambertw(-math.exp(-1.0 - _FLANK / s), k=-1).real
        self.scale = 1.0 / math.sqrt(s * x)

    def density(self, s):
        """Sub-density of ln r at s (array), for the kept K.

        With w = s - ln(2v), ln chi2(k) = ln(2) + w has density
        exp((k/2) w - e^w - lnGamma(k/2)).
        """
        s = np.asarray(s, dtype=float)
        flat = s.ravel() - self.log2v
        out = np.empty(flat.shape)
        step = max(1, _CHUNK // len(self.k))
        for i in range(0, flat.size, step):
            wv = flat[i:i + step]
            with np.errstate(over="ignore"):
                out[i:i + step] = _lse(self._c + 0.5 * self.k * wv[:, None], axis=1) - np.exp(wv)
        return np.exp(out).reshape(s.shape)

    def exit_prob(self, x, a, b):
        """P(x + ln r not in [a, b]) for the kept K, plus the dead mass P(K = 0); x an array."""
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        out = np.full(flat.shape, self.dead)
        hk = 0.5 * self.k
        step = max(1, _CHUNK // len(self.k))
        for i in range(0, flat.size, step):
            xs = flat[i:i + step, None]
            # v chi2(k) > B e^-x  <=>  Gamma(k/2, 1) variate > exp(b - x - ln 2v)
            with np.errstate(over="ignore"):
                p = special.gammaincc(hk, np.exp(b - xs - self.log2v))
                if a > -math.inf:
                    p = p + special.gammainc(hk, np.exp(a - xs - self.log2v))
            out[i:i + step] += p @ self.w
        return out.reshape(x.shape)

    def below(self, x, c):
        """P(x + ln r < c, K kept) at the points x (array): the mass entering the lumped low state."""
        x = np.asarray(x, dtype=float)
        with np.errstate(over="ignore"):
            p = special.gammainc(0.5 * self.k, np.exp(c - x.ravel()[:, None] - self.log2v))
        return (p @ self.w).reshape(x.shape)

    def log_moment(self, t):
        """log E[r^t ; K in [klo, khi]] for an array t."""
        return _log_moment(self.k, self.logw, self.log2v, t)

    def exit_first(self, a, b):
        """P(ln r not in [a, b]) (the first layer, x = 0)."""
        return self.exit_prob(np.zeros(1), a, b)[0]


def _kept(k, logw, log_tol):
    """The central part of a mixture's support dropping at most exp(log_tol) of its weight."""
    lo = np.logaddexp.accumulate(logw)
    hi = np.logaddexp.accumulate(logw[::-1])[::-1]
    cut = log_tol - _LN2
    i = int(np.searchsorted(lo, cut, side="right"))          # lo[:i] <= cut: terms 0..i-1 droppable
    j = len(k) - int(np.searchsorted(hi[::-1], cut, side="right"))
    i, j = min(i, len(k) - 1), max(j, i + 1)
    return k[i:j], logw[i:j]


class _BetaLaw:
    """Law of s = ln r for one layer of orthogonal weights, r = g^2 Beta(k/2, (M - k)/2), the
    interface of _LayerLaw.  Terms with (M - k)/2 < _BETA_SMOOTH (their density ends at r = g^2
    too abruptly for the panels; k = M, r = g^2 exactly, among them) are left out of the
    density and of the exits after the first layer: their weight, ``dropped``, bounds the error."""

    def __init__(self, factor, log_tol):
        self.factor = factor
        self.M = factor.M
        smooth = (factor.M - factor.k) >= 2.0 * _BETA_SMOOTH
        self.dropped = float(np.sum(np.exp(factor.logw[~smooth])))
        if not np.any(smooth):
            self.k = np.zeros(0)
            self.klo = self.khi = float(factor.k[-1])
            self.w = self.logw = np.zeros(0)
        else:
            self.k, self.logw = _kept(factor.k[smooth], factor.logw[smooth], log_tol)
            self.klo, self.khi = float(self.k[0]), float(self.k[-1])
            self.w = np.exp(self.logw)
        self.dead = factor.dead
        self.lng2 = factor.log_scale
        self.a = 0.5 * self.k
        self.b = 0.5 * (self.M - self.k)
        self._c = self.logw - special.betaln(self.a, self.b) if self.k.size else self.logw
        # narrowest local scale: the log-density of w = ln B, a w + (b - 1) ln(1 - e^w), has
        # curvature (b - 1) e^w / (1 - e^w)^2, largest on its right flank; taken at the mode and
        # where the term's weighted density has fallen e^-_FLANK below the heaviest term's, for
        # a spread of the kept terms
        scales = []
        top_w = float(np.max(self.logw)) if self.k.size else 0.0
        for i in np.unique(np.linspace(0, len(self.k) - 1, 33).astype(int)) if self.k.size else []:
            a, b = self.a[i], self.b[i]
            mode = math.log(a / (a + b - 1.0))
            points = [mode]
            depth = _FLANK - (top_w - self.logw[i])
            if depth > 0:
                g = lambda w: a * w + (b - 1.0) * math.log(-math.expm1(w))
                top = g(mode)
                points.append(optimize.brentq(lambda w: g(w) - top + depth, mode, -1e-300))
            for w in points:
                scales.append(1.0 / math.sqrt((b - 1.0) * math.exp(w) / math.expm1(w) ** 2))
        self.scale = min(scales) if scales else 1.0

    def density(self, s):
        """Sub-density of ln r at s (array), for the kept terms."""
        s = np.asarray(s, dtype=float)
        flat = s.ravel() - self.lng2
        out = np.full(flat.shape, -np.inf)
        inside = flat < 0
        wv_all = flat[inside]
        res = np.empty(wv_all.shape)
        step = max(1, _CHUNK // max(1, len(self.k)))
        for i in range(0, wv_all.size, step):
            wv = wv_all[i:i + step, None]
            res[i:i + step] = _lse(self._c + self.a * wv + (self.b - 1.0) * np.log(-np.expm1(wv)), axis=1)
        out[inside] = res
        return np.exp(out).reshape(s.shape)

    def _cdf(self, u):
        """Matrix P(B_k <= u) for u (column) in [0, inf)."""
        return special.betainc(self.a, self.b, np.minimum(u, 1.0))

    def exit_prob(self, x, a, b):
        """P(x + ln r not in [a, b]) for the kept terms, plus the dead mass; x an array."""
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        out = np.full(flat.shape, self.dead)
        step = max(1, _CHUNK // max(1, len(self.k)))
        for i in range(0, flat.size, step):
            xs = flat[i:i + step, None]
            with np.errstate(over="ignore"):
                p = 1.0 - self._cdf(np.exp(b - xs - self.lng2))
                if a > -math.inf:
                    p = p + self._cdf(np.exp(a - xs - self.lng2))
            out[i:i + step] += p @ self.w
        return out.reshape(x.shape)

    def exit_first(self, a, b):
        """P(ln r not in [a, b]) over every term (the first layer, x = 0), the atom r = g^2 included."""
        f = self.factor
        aa, bb = 0.5 * f.k, 0.5 * (f.M - f.k)
        with np.errstate(over="ignore"):
            ub, ua = math.exp(b - self.lng2), math.exp(a - self.lng2) if a > -math.inf else 0.0
        atom = bb == 0
        bf = np.where(atom, 1.0, bb)
        up = np.where(atom, float(ub < 1.0), special.betaincc(aa, bf, min(ub, 1.0)) if ub < 1.0 else 0.0)
        dn = np.where(atom, float(ua > 1.0), special.betainc(aa, bf, min(ua, 1.0)))
        return self.dead + float(np.exp(f.logw) @ (up + dn))

    def below(self, x, c):
        """P(x + ln r < c, kept terms) at the points x (array)."""
        x = np.asarray(x, dtype=float)
        with np.errstate(over="ignore"):
            p = self._cdf(np.exp(c - x.ravel()[:, None] - self.lng2))
        return (p @ self.w).reshape(x.shape)

    def log_moment(self, t):
        """log E[r^t ; kept terms] for an array t."""
        if not self.k.size:
            return np.full(np.shape(np.atleast_1d(t)), -np.inf)
        return self.factor.log_moment(t, self.k, self.logw)


def _truncated_domain(a, b, laws, log_tol):
    """Interval [lo, hi] of the recursion's nodes, for the layers' laws (layers 1..L).

    Chernoff bounds on the kept-K walk y_l = ln rho_l, with
    Lambda_l(t) = sum_(k<=l) log E[r_k^t ; K_k kept] (any t gives a valid
    point; a geometric grid of t is used):

    - hi: P(y_l >= hi) <= exp(Lambda_l(t) - t hi) <= exp(log_tol) / L for the
      layers l = 1..L-1 whose sub-densities are propagated;
    - lo, when a > -inf: likewise P(y_l <= lo) <= exp(log_tol) / L;
    - lo, when a = -inf (no lower exit): paths below lo are lumped into one
      state that can only die, and lo = hi - D <= b - D with D such that a rise of D
      over any window of layers 2..L has probability <= exp(log_tol) / L
      (Lambda over a window <= sum of the positive parts Lambda_k^+).
    Mass moving outside [lo, hi] (and inside [a, b]) is dropped with these
    probabilities, never added.
    """
    walk = laws[:-1]
    L = len(walk)
    c = math.log(L) - log_tol
    uniq = {id(law): law for law in laws}
    nmax = max(law.khi for law in laws)
    t_up = np.geomspace(1e-3, 40.0 * math.sqrt(nmax) + 2.0 * c, 64)
    up = {i: law.log_moment(t_up) for i, law in uniq.items()}
    lam_up = np.cumsum([up[id(law)] for law in walk], axis=0)
    hi = min(b, np.max(np.min((lam_up + c) / t_up, axis=1)))
    if a == -math.inf:
        rise = np.sum([np.maximum(up[id(law)], 0.0) for law in laws[1:]], axis=0)
        return hi - np.min((rise + c) / t_up), hi
    kmin = min(law.klo for law in walk)
    t_dn = np.geomspace(min(1e-3, 0.25 * kmin), 0.5 * kmin * (1.0 - 1e-9), 64)
    dn = {id(law): law.log_moment(-t_dn) for law in walk}
    lam_dn = np.cumsum([dn[id(law)] for law in walk], axis=0)
    lo = np.min(np.max(-(lam_dn + c) / t_dn, axis=1))
    return max(a, lo), hi


def _toeplitz_apply(qd, g):
    """out[i, al] = sum_(j, be) qd[i - j + P - 1, al, be] g[j, be] for panels i, j = 0..P-1."""
    P = g.shape[0]
    out = np.zeros_like(g)
    for d in range(-(P - 1), P):
        blk = qd[d + P - 1].T
        if d >= 0:
            out[d:] += g[:P - d] @ blk
        else:
            out[:P + d] += g[-d:] @ blk
    return out


def _first_exit(a, b, factors, log_tol, refine):
    """First-exit probabilities e_l = P(layers < l safe, layer l not safe), l = 1..L.

    Recursion on the sub-density f_l of y = ln rho_l restricted to the safe
    interval [a, b] (rho_0 = 1: y_0 = 0).  Composite Gauss-Legendre panels on
    [lo, hi] (:func:`_truncated_domain`), of width _PANEL_SD / refine local
    scales of the narrowest kept density (see _LayerLaw):

        e_l      = sum_j W_j f_(l-1)(x_j) P(x_j + ln r_l not in [a, b])
        f_l(y_i) = sum_j W_j f_(l-1)(x_j) q_l(y_i - x_j),

    q_l the density of ln r_l.  When a = -inf (eps >= 1), the mass z below lo
    is kept as one state whose only exit is death, P(K_l = 0).  All terms
    are positive; the truncations of the binomials and of the domain drop
    (never add) at most exp(log_tol) of probability in all.
    """
    L = len(factors)
    log_tol_k = log_tol - math.log(3.0 * L)
    cache = {}
    laws = []
    for f in factors:
        if id(f) not in cache:
            cache[id(f)] = (_BetaLaw(f, log_tol_k) if f.family == "beta"
                            else _LayerLaw(None, None, log_tol_k, factor=f))
        laws.append(cache[id(f)])
    e = np.empty(L)
    e[0] = laws[0].exit_first(a, b)
    if L == 1:
        return e, 0.0
    # the terms a law leaves out (_BetaLaw.dropped): their paths are neither followed nor
    # counted as exits, so the result lies in [sum e, sum e + dropped]
    dropped = min(1.0, sum(law.dropped for law in laws))
    lo, hi = _truncated_domain(a, b, laws, log_tol - math.log(3.0))
    if hi <= lo:
        # the kept walk is inside [a, b] after any of the layers 1..L-1 with probability
        # <= exp(log_tol) (the Chernoff intervals miss the safe set): no later exit counts
        e[1:] = 0.0
        return e, dropped
    scale = min(law.scale for law in laws)
    P = max(1, math.ceil((hi - lo) * refine / (_PANEL_SD * scale)))
    h = (hi - lo) / P
    u, wq = np.polynomial.legendre.leggauss(_GL_ORDER)
    x = lo + h * (np.arange(P)[:, None] + 0.5 * (u + 1.0))          # (P, p) nodes
    W = 0.5 * h * wq                                                 # weights of every panel
    diffs = h * (np.arange(-(P - 1), P)[:, None, None] + 0.5 * (u[:, None] - u[None, :]))
    lumped = a == -math.inf
    kernels, exits, drops = {}, {}, {}
    f = laws[0].density(x)
    z = laws[0].below(np.zeros(1), lo)[0] if lumped else 0.0
    for l in range(1, L):
        law = laws[l]
        if id(law) not in exits:
            exits[id(law)] = law.exit_prob(x, a, b)
        g = W * f
        e[l] = np.sum(g * exits[id(law)]) + z * law.dead
        if l < L - 1:
            if id(law) not in kernels:
                kernels[id(law)] = law.density(diffs)
            if lumped:
                if id(law) not in drops:
                    drops[id(law)] = law.below(x, lo)
                z = z * (1.0 - law.dead) + np.sum(g * drops[id(law)])
            f = _toeplitz_apply(kernels[id(law)], g)
    return e, dropped


def _exact_layers_one(eps, factors, form, refine):
    """(first-exit terms, dropped) at one eps: a pass dropping <= 1e-30, rerun at 1e-10 x the
    result when small; ``dropped`` bounds the mass of the paths left out (_first_exit)."""
    a, b = _log_safe_interval(eps, form)
    points = [f.family == "beta" and f.M == f.k[-1] and f.k.size == 1 for f in factors]
    if all(points):        # orthogonal abs/linear with n_l >= n_(l-1): rho_l = g^(2l) exactly
        y = np.cumsum([f.log_scale for f in factors])
        out = np.zeros(len(factors))
        bad = np.nonzero((y < a) | (y > b))[0]
        if bad.size:
            out[bad[0]] = 1.0
        return out, 0.0
    identity = [p and f.log_scale == 0.0 for p, f in zip(points, factors)]
    if any(identity) and not all(identity):       # r = 1 exactly (g = 1): such a layer neither moves nor exits
        rest = [f for f, i in zip(factors, identity) if not i]
        e, dropped = _exact_layers_one(eps, rest, form, refine)
        out = np.zeros(len(factors))
        out[~np.asarray(identity)] = e
        return out, dropped
    if len(factors) > 1 and any(points):
        raise ValueError("the exact law does not cover orthogonal weights that keep the norm exactly in some "
                         "layers (abs or linear, n_l >= n_(l-1)) but not in others: estimate it by Monte Carlo "
                         "(mcinit run)")
    e, dropped = _first_exit(a, b, factors, _LOG_TOL_FIRST, refine)
    total = e.sum()
    if total < 1e9 * math.exp(_LOG_TOL_FIRST):
        log_tol = max(math.log(total) + math.log(1e-10), _LOG_TOL_FLOOR) if total > 0 else _LOG_TOL_FLOOR
        e, dropped = _first_exit(a, b, factors, log_tol, refine)
    return e, dropped


def _exact_bracket(eps, widths, form, input_dim, init, activation, gain, refine=1):
    """(first-exit terms of shape np.shape(eps) + (L,), dropped of np.shape(eps)): the exact
    probability lies in [sum, sum + dropped] (dropped = 0 but for orthogonal weights, _BetaLaw)."""
    _check_form(form)
    _check_init(init)
    e = _as_eps(eps)
    if not (float(refine).is_integer() and refine >= 1):
        raise ValueError(f"refine must be a positive integer, got {refine!r}")
    w, _, factors = _factors(widths, input_dim, init, activation, gain)
    out = np.empty(e.shape + (len(w),))
    dropped = np.empty(e.shape)
    for idx in np.ndindex(e.shape):
        out[idx], dropped[idx] = _exact_layers_one(float(e[idx]), factors, form, int(refine))
    return out, dropped


def exact_forward_failure_layers(eps, widths, form="norm", input_dim=None, init="he", *, refine=1,
                                 activation="relu", gain=None):
    """Per-layer first-exit probabilities of the single-input forward failure.

    e_l = P(layers 1..l-1 safe, layer l not safe) for one input; their sum over l is
    :func:`exact_forward_failure`.  Arguments as there.  Returns an array of shape
    ``np.shape(eps) + (L,)``.
    """
    out, dropped = _exact_bracket(eps, widths, form, input_dim, init, activation, gain, refine)
    total = out.sum(axis=-1)
    if np.any(dropped > _BRACKET_REL * total):
        raise ValueError(f"orthogonal weights at these widths: the exact recursion leaves out paths of total "
                         f"probability up to {float(np.max(dropped)):.3g} (layers whose factor's Beta law is "
                         "not smooth enough at its top, r = g^2 among them), too much beside the result "
                         f"{float(np.min(total)):.3g}; wider layers or Monte Carlo (mcinit run) give it")
    return out


def exact_forward_failure(eps, widths, form="norm", input_dim=None, init="he", *, refine=1,
                          activation="relu", gain=None):
    """Exact P(some layer l = 1..L has deviation > eps) for one input.

    The deviation of rho_l is |sqrt(rho_l) - 1| (form="norm"), |rho_l - 1|
    (form="squared") or max(sqrt(rho_l), 1/sqrt(rho_l)) - 1 (form="symmetric"); a dead
    layer (rho_l = 0) is a failure at every eps, also for eps >= 1 (docs/design.md
    section 2).  The value does not
    depend on the input (any x != 0).

    Computed as the sum of the first-exit probabilities of
    :func:`exact_forward_failure_layers`, every one a sum of positive terms,
    by a recursion over layers on the sub-density of ln rho_l kept inside the
    safe interval (Gauss-Legendre panels; chi-square tails from the regularised
    incomplete gamma functions; the binomial mixture over K).  Accuracy: in
    the tests it agrees with independent one- and two-layer computations to
    about 1e-13 relative and is stable under refinement to about 1e-12, also
    for probabilities of 1e-12 and far below, where 1 - P(success) would lose
    every digit.  The truncations drop at most 1e-30 of probability,
    and when the result is below 1e-21 the computation is rerun dropping at
    most 1e-10 times the result (never below 1e-300), so tiny probabilities
    keep their relative accuracy down to about 1e-290.

    Parameters
    ----------
    eps : float or array
        Tolerance(s) > 0, in the given form.
    widths : sequence of int
        Hidden widths n_1..n_L.
    form : {"norm", "squared", "symmetric"}
        Deviation form.
    input_dim : int or None
        n_0, needed for fan_in-based inits (:func:`layer_variances`).
    init : str
        A Gaussian initialisation preset (:data:`GAUSSIAN_INITS`) or ``"orthogonal"``
        (:data:`EXACT_INITS`; orthogonal needs input_dim).
    refine : int
        Divides the quadrature panel width (1 is converged; larger values
        are for convergence checks and cost ~refine^2 more).
    activation : str
        relu, leaky-relu:ALPHA, abs or linear (:data:`EXACT_ACTIVATIONS`; tanh and gelu
        have no exact law).  The layer factor's law for each is in docs/design.md
        section 11: leaky-relu's is a negative-binomial mixture of chi-squares, whose
        cost grows like 1/alpha^2; orthogonal weights give Beta laws, and their
        recursion leaves out the terms too close to r = g^2 to be smooth, raising a
        ValueError where those could move the result by more than 1e-10 relatively
        (layers of a few dozen units).  Orthogonal weights with leaky-relu are refused.
    gain : float or None
        --gain (None: the default of the init and activation, :func:`layer_variances`).

    Returns float for scalar eps, else an array of eps's shape.
    """
    out = exact_forward_failure_layers(eps, widths, form, input_dim, init, refine=refine,
                                       activation=activation, gain=gain).sum(axis=-1)
    return _scalar_or_array(np.minimum(out, 1.0), np.ndim(eps) == 0)  # a probability, despite rounding


# ---------------------------------------------------------------------------
# 5. Chernoff + union bound

#: the lower tail uses K_l >= kmin_l with P(K_l < kmin_l) <= 10^-s for s in this list
#: (and kmin_l = 1, the dead event alone); the smallest resulting bound is reported
_KMIN_LEVELS = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128, 180, 256, 300)
_T_GRID = 96
#: the largest ln B the Chernoff bound's t grid is sized for (chernoff_bound)
_LOG_B_GRID = 50.0


class _MomentTables:
    """log E[r^t ; k >= k_j] of one layer factor (a _Factor), tabulated on t grids, with scalar
    refinement; the kmin levels are positions j into the factor's support k (k_j = k[j])."""

    def __init__(self, factor, t_pos, t_neg, kmin_cols):
        self.factor = factor
        self.k, self.logw = factor.k, factor.logw
        self.pos = factor.log_moment(t_pos)
        cols = np.asarray(kmin_cols, dtype=np.int64)           # the kmin positions needed
        self.neg = {}
        table = np.empty((len(t_neg), len(cols)))
        step = max(1, _CHUNK // len(self.k))
        for i in range(0, len(t_neg), step):
            tt = t_neg[i:i + step]
            with np.errstate(invalid="ignore"):
                terms = factor.terms(-tt)
            terms[self.k[None, :] <= 2.0 * tt[:, None]] = np.inf   # infinite moments: not allowed
            # reverse cumulative log-sum: rev[:, j] = log sum_(positions >= j)
            rev = np.logaddexp.accumulate(terms[:, ::-1], axis=1)[:, ::-1]
            table[i:i + step] = rev[:, cols]
        for c, j in enumerate(cols):
            self.neg[int(j)] = table[:, c]

    def log_moment(self, t, kmin=0):
        """log E[r^t ; k >= k[kmin]] at one t; +inf where the moment is infinite (t <= -k[kmin]/2)."""
        if t <= -0.5 * self.k[kmin]:
            return math.inf
        return float(self.factor.log_moment([t], self.k[kmin:], self.logw[kmin:])[0])


def _best_t(grid_vals, t, scalar_fun):
    """min over t of a convex function: grid argmin, then minimize_scalar in the bracketing cell."""
    i = int(np.argmin(grid_vals))
    best = grid_vals[i]
    if not np.isfinite(best):
        return best
    j, k = max(i - 1, 0), min(i + 1, len(t) - 1)
    lo = t[j] if np.isfinite(grid_vals[j]) else t[i]       # stay where the moments are finite
    hi = t[k] if np.isfinite(grid_vals[k]) else t[i]
    if lo == hi:
        return best
    res = optimize.minimize_scalar(scalar_fun, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-4 * t[i]})
    return min(best, float(res.fun))


def _log_dead_union(log_p):
    """log P(some layer event), independent events of log-probabilities log_p."""
    log_p = np.asarray(log_p, dtype=float)
    if np.max(log_p) < -30:                 # union bound, relative excess < 1e-13, never below
        return float(_lse(log_p))
    return math.log(-math.expm1(np.sum(np.log1p(-np.exp(log_p)))))


def chernoff_bound(eps, widths, samples=1, form="norm", input_dim=None, init="he", *, activation="relu",
                   gain=None):
    """Rigorous upper bound on P(some input, some layer has deviation > eps).

    For N inputs and Gaussian weights: by the union bound over inputs (each
    input has the single-input law, docs/design.md section 4),

        P(fail) <= min(1, N [P(D) + sum_l (P(rho_l > B) + P(rho_l < A, not D))]),

    with [A, B] the safe set of rho (module docstring) and D the event that
    some layer has K_l < kmin_l, which contains the dead networks (kmin_l >= 1),
    so a dead layer counts as a failure at every eps.  Each tail is bounded by
    Chernoff/Markov with the exact moments of the layer factors:

        P(rho_l > B)          <= inf_(t>0)        prod_(k<=l) E[r_k^t] / B^t,
        P(rho_l < A, not D)   <= inf_(0<t<kmin/2) prod_(k<=l) E[r_k^-t ; K_k >= kmin_k] A^t,

    the infimum taken per layer over t (a grid, then
    scipy.optimize.minimize_scalar on the bracketing interval), and
    P(D) = 1 - prod_l (1 - P(K_l < kmin_l)).  kmin_l is searched over the
    binomial quantiles P(K_l < kmin_l) <= 10^-s, s in a fixed ladder from 2
    to 300, and kmin_l = 1; every choice gives a valid bound and the smallest
    is returned.  When A = 0 (eps >= 1) the lower tail is the dead event alone.
    Work is in log space; the cost is O(n) per layer width per t.

    Parameters
    ----------
    eps : float or array
        Tolerance(s) > 0 in the given form.
    widths : sequence of int
        Hidden widths n_1..n_L.
    samples : int
        N, the number of inputs.
    form : {"norm", "squared", "symmetric"}
        Deviation form.
    input_dim, init, activation, gain
        As in :func:`layer_variances` (init: :data:`EXACT_INITS`).  The factors' moments are
        those of docs/design.md section 11 (abs and linear: chi2(n); orthogonal weights: Beta
        moments, the atom r = g^2 included, and K_l as for ReLU); leaky-relu's mixture is
        infinite and is refused here.

    Returns float for scalar eps, else an array of eps's shape.
    """
    _check_form(form)
    e = _as_eps(eps)
    N = _as_positive_int(samples, "samples")
    _check_init(init)
    w, v, factors = _factors(widths, input_dim, init, activation, gain)
    if not all(f.complete for f in factors):
        raise ValueError(f"the Chernoff bound needs every moment of the layer factor exactly; the "
                         f"{activation} factor's is an infinite mixture: use the exact probability "
                         "(exact_forward_failure, or bound='exact') instead")
    keys, tidx = [], []
    for f in factors:                      # distinct factors, and each layer's
        if not any(f is g for g in keys):
            keys.append(f)
        tidx.append(next(i for i, g in enumerate(keys) if g is f))
    tidx = np.asarray(tidx)
    L = len(w)
    # the t grid of the upper tails reaches B / (2 v); beyond B = e^_LOG_B_GRID (norm-form eps
    # above 1e10) a longer grid only overflows: every t gives a valid bound, and at such B
    # the upper tails' bounds are far below the dead event's probability anyway
    log_b_max = min(_log_safe_interval(float(np.max(e)), form)[1], _LOG_B_GRID)
    t_pos = np.geomspace(1e-3, math.exp(log_b_max) / (2.0 * float(np.min(v))) + 10.0, _T_GRID)
    nmax = max(f.k[-1] for f in keys)
    t_neg = np.geomspace(1e-3, 0.5 * nmax, _T_GRID)
    # kmin per level and layer type, as positions j into the support k (P(r = 0 or k < k_j)):
    # the dead event alone, then the quantiles
    below = [np.concatenate(([f.log_dead], np.logaddexp(f.log_dead, np.logaddexp.accumulate(f.logw))))
             for f in keys]
    kmins = [[0] * len(keys)]
    for s in _KMIN_LEVELS:
        kmins.append([max(0, min(len(f.k) - 1, int(np.searchsorted(below[j], -s * math.log(10.0),
                                                                    side="right")) - 1))
                      for j, f in enumerate(keys)])
    tables = [_MomentTables(f, t_pos, t_neg, sorted({km[j] for km in kmins})) for j, f in enumerate(keys)]
    lam_pos = np.cumsum([tables[j].pos for j in tidx], axis=0)          # (L, T)

    log_pd = [_log_dead_union([below[j][km[j]] for j in tidx]) for km in kmins]
    counts = [np.bincount(tidx[:l + 1], minlength=len(keys)) for l in range(L)]

    def lam_scalar(l, t, km):
        return sum(c * tables[j].log_moment(t, km[j]) for j, c in enumerate(counts[l]) if c)

    out = np.empty(e.shape)
    for idx in np.ndindex(e.shape):
        a, b = _log_safe_interval(float(e[idx]), form)
        upper = [_best_t(lam_pos[l] - t_pos * b, t_pos, lambda t, l=l: lam_scalar(l, t, [0] * len(keys)) - t * b)
                 for l in range(L)]
        log_upper = _lse(np.asarray(upper))
        if a == -math.inf:                       # A = 0: the lower tail is the dead event alone
            out[idx] = math.exp(min(0.0, math.log(N) + np.logaddexp(log_pd[0], log_upper)))
            continue
        # the lower tail at every kmin level on the grid; refine the best level only
        grid = []
        for km in kmins:
            lam = np.cumsum([tables[j].neg[km[j]] for j in tidx], axis=0)           # (L, T)
            cap = 0.5 * np.minimum.accumulate(np.asarray([keys[j].k[km[j]] for j in tidx], dtype=float))
            vals = np.where(t_neg[None, :] < cap[:, None], lam + t_neg * a, np.inf)
            grid.append(vals)
        totals = [np.logaddexp(pd, np.logaddexp(log_upper, _lse(np.min(vals, axis=1))))
                  for pd, vals in zip(log_pd, grid)]
        i = int(np.argmin(totals))
        km, vals = kmins[i], grid[i]
        lower = [_best_t(vals[l], t_neg, lambda t, l=l: lam_scalar(l, -t, km) + t * a) for l in range(L)]
        best = np.logaddexp(log_pd[i], np.logaddexp(log_upper, _lse(np.asarray(lower))))
        out[idx] = math.exp(min(0.0, math.log(N) + min(best, totals[i])))
    return _scalar_or_array(out, e.ndim == 0)


# ---------------------------------------------------------------------------
# 6. required widths

_BOUNDS = ("paper", "chernoff", "exact")


def _equal_width_bound(kind, eps, m, depth, samples, form, init, activation="relu", gain=None):
    """Failure bound at equal hidden widths m (n_0 = m) for the bounds other than the paper's:
    (low, high), equal but for the exact probability of orthogonal weights (_exact_bracket)."""
    widths = [m] * depth
    if kind == "chernoff":
        c = chernoff_bound(eps, widths, samples, form, m, init, activation=activation, gain=gain)
        return c, c
    e, dropped = _exact_bracket(eps, widths, form, m, init, activation, gain)
    total = float(e.sum())
    return min(1.0, samples * total), min(1.0, samples * (total + float(dropped)))


def paper_applies(init, activation="relu", gain=None):
    """Whether the paper's bound is of this setting: ReLU, Gaussian He weights (he, or he-in:
    the same at equal widths) of the default gain sqrt 2."""
    from .activations import name_of
    return (init in ("he", "he-in") and name_of(activation) == "relu"
            and (gain is None or abs(float(gain) ** 2 - 2.0) <= 1e-12))


def _chernoff_applies(activation):
    return _activation_of(activation)[0] != "leaky-relu"


def required_width(eps, delta, depth, samples=1, bound="paper", form="norm", init="he", *, activation="relu",
                   gain=None):
    """Smallest equal hidden width m at which a bound on the forward failure is <= delta.

    All L hidden layers have width m and the input dimension is n_0 = m, so
    ``"he-in"`` coincides with ``"he"`` and ``"glorot"`` and ``"lecun"`` have
    E r_l = 1/2 in every layer.

    Parameters
    ----------
    eps : float
        Tolerance > 0 in the given form.
    delta : float
        Target failure probability in (0, 1).
    depth : int
        L, the number of hidden layers.
    samples : int
        N, the number of inputs.
    bound : {"paper", "chernoff", "exact"}
        ``"paper"``: :func:`paper_width` in closed form.  That bound is
        derived for He initialisation and stated for the *norm* form; it is
        accepted for init "he" and "he-in" only, and for form="squared" it is
        applied at the norm tolerance sqrt(1 + eps) - 1, which implies a
        squared deviation <= eps on both sides (form="symmetric": at
        eps / (1 + eps); :func:`norm_tolerance`).
        ``"chernoff"``: :func:`chernoff_bound` with N inputs.
        ``"exact"``: N times :func:`exact_forward_failure` (capped at 1), the
        exact probability for N = 1 and for N > 1 the union bound over inputs
        (the exact N-input probability has no closed form; docs/design.md section 5).
    form : {"norm", "squared", "symmetric"}
        Deviation form of eps.
    init : str
        One of :data:`EXACT_INITS`.
    activation, gain
        As in :func:`exact_forward_failure`; the paper's bound is for ReLU and the default
        gain only (:func:`paper_applies`), the Chernoff bound is refused for leaky-relu.  For
        orthogonal weights the exact probability is known within [P, P + dropped]
        (:func:`exact_forward_failure`); a width is decided by that bracket, and a ValueError
        is raised where delta falls inside it.

    Returns
    -------
    int
        m with bound(m) <= delta < bound(m - 1) (bound(0) counts as 1).  The
        chernoff and exact widths are found by doubling and integer
        bisection, which assumes the bound decreases in m (true of the paper
        bound; observed for the others under He).  A ValueError is raised
        when the large-width limit of some rho_l (prod_k v_k n_k / 2) lies
        outside the open safe interval, so that no width suffices, or when
        more than 2**21 units would be needed (MAX_BOUND_WIDTH).
    """
    _check_form(form)
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {_BOUNDS}, got {bound!r}")
    _check_init(init)
    e = float(_as_eps(eps))
    d = float(_as_prob(delta))
    L = _as_positive_int(depth, "depth")
    N = _as_positive_int(samples, "samples")
    if bound == "paper":
        if not paper_applies(init, activation, gain):
            raise ValueError("the paper bound is derived for ReLU networks with Gaussian He weights; "
                             f"it does not apply to init={init!r}, activation={activation!r}"
                             + ("" if gain is None else f", gain={gain!r}"))
        return paper_width(float(norm_tolerance(e, form)), d, N, L)
    if bound == "chernoff" and not _chernoff_applies(activation):
        raise ValueError(f"the Chernoff bound is not computed for {activation} (its factor's moments are an "
                         "infinite mixture): use bound='exact'")
    # large-width limit of rho_l: E rho_l does not depend on m when n_0 = m
    m0 = 2
    limit = np.log(moments([m0] * L, m0, init, activation=activation, gain=gain).mean)
    a, b = _log_safe_interval(e, form)
    if np.any(limit <= a) or np.any(limit >= b):
        tends = ", ".join(f"{v:.4g}" for v in np.exp(limit))
        raise ValueError(f"with init={init!r} rho_l tends to ({tends}) as the width grows, "
                         f"not inside the safe set at eps={e} ({form} form): no width suffices")

    def ok(m):
        # the Chernoff bound is at least the one-input probability (exact, and cheap): where
        # that exceeds delta the bound does too, and is not computed (at large m it costs
        # seconds per width)
        if bound == "chernoff" and _equal_width_bound("exact", e, m, L, 1, form, init, activation,
                                                      gain)[0] > d * (1 + 1e-9):
            return False
        low, high = _equal_width_bound(bound, e, m, L, N, form, init, activation, gain)
        if low <= d < high:
            raise ValueError(f"at width {m} the exact probability of orthogonal weights is known only within "
                             f"[{low:.6g}, {high:.6g}] (_BetaLaw), which holds delta={d}: try another delta")
        return high <= d
    lo, hi = 0, 1                                       # invariant: bound(lo) > delta (lo = 0: by convention)
    while not ok(hi):
        lo, hi = hi, 2 * hi
        if hi > _MAX_WIDTH:
            raise ValueError(f"the {bound} bound needs a width above {_MAX_WIDTH} at eps={e}, delta={d}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def required_widths(eps, delta, depth, samples=1, form="norm", init="he", *, activation="relu", gain=None):
    """:func:`required_width` for every bound: {"paper": m, "chernoff": m, "exact": m}.

    Arguments as in :func:`required_width` ("exact" is the union bound
    N * P_exact for N > 1; "paper" is for the norm form and He
    initialisation, and is None for init "glorot" and "lecun", where it does
    not apply, and for every activation but ReLU or another gain, :func:`paper_applies`;
    "chernoff" is None for leaky-relu).
    """
    out = {}
    for kind in _BOUNDS:
        if (kind == "paper" and not paper_applies(init, activation, gain)) or \
                (kind == "chernoff" and not _chernoff_applies(activation)):
            out[kind] = None
        else:
            out[kind] = required_width(eps, delta, depth, samples, kind, form, init, activation=activation,
                                       gain=gain)
    return out


# ---------------------------------------------------------------------------
# 7. residual networks (--arch residual; docs/design.md section 9)

def _residual_check(widths):
    w = _as_widths(widths)
    L = w.size
    if L < 3 or L % 2 == 0:
        raise ValueError(f"a residual network has depth 1 + 2B, not {L}")
    if np.any(w[2::2] != w[0]):
        raise ValueError("every block's output width must be the first layer's")
    return w


def _block_arguments(n, m, v_hidden, v_out, branch_scale):
    n = _as_positive_int(n, "n (the block's output width)")
    m = _as_positive_int(m, "m (the block's hidden width)")
    for x, name in ((v_hidden, "v_hidden"), (v_out, "v_out"), (branch_scale, "branch_scale")):
        if not (np.isfinite(x) and x > 0):
            raise ValueError(f"{name} must be a positive number, got {x!r}")
    return n, m, float(v_hidden) * float(v_out) * float(branch_scale) ** 2


def residual_block_moments(n, m, v_hidden, v_out, branch_scale=1.0):
    """Mean and variance of one residual block's ratio R = ||h^(2b+1)||^2 / ||h^(2b-1)||^2 for
    one input and Gaussian weights (docs/design.md section 9).

    With K ~ Binomial(m, 1/2) active hidden units, c = chi2(K) and
    sigma^2 = s^2 v_out v_hidden c, R given c is sigma^2 chi2'_n(1 / sigma^2), so
    E[R | c] = 1 + n sigma^2 and Var[R | c] = 2 n sigma^4 + 4 sigma^2; with
    E c = m / 2 and E c^2 = m (m + 5) / 4:

        E R   = 1 + n a m / 2,                                  a = s^2 v_out v_hidden
        E R^2 = 1 + (n + 2) a m + n (n + 2) a^2 m (m + 5) / 4

    Parameters
    ----------
    n : int          the block's output width n_(2b+1) (= n_1)
    m : int          its hidden width n_(2b)
    v_hidden, v_out : float
                     the entry variances v_(2b) and v_(2b+1) of its two layers
    branch_scale : float
                     the branch's scale s

    Returns a :class:`Moments` of floats (mean, var)."""
    n, m, a = _block_arguments(n, m, v_hidden, v_out, branch_scale)
    mean = 1.0 + n * a * m / 2.0
    second = 1.0 + (n + 2.0) * a * m + n * (n + 2.0) * a * a * m * (m + 5.0) / 4.0
    return Moments(mean=mean, var=second - mean * mean)


#: where residual_block_cdf's integral over the quantile u starts new panels: the integrand
#: steepens towards both ends (sigma_u -> 0 as u -> 0, sigma_u -> infinity as u -> 1)
_BLOCK_CDF_POINTS = (1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9, 0.99, 1 - 1e-4, 1 - 1e-6)


def residual_block_cdf(r, n, m, v_hidden, v_out, branch_scale=1.0, tol=1e-10):
    """The exact CDF P(R <= r) of one residual block's ratio (:func:`residual_block_moments`'
    arguments): the binomial mixture over K of the noncentral chi-square law given c = chi2(K),

        P(R <= r) = P(K = 0) 1[r >= 1]
                    + sum_(K>=1) P(K) int_0^1 F'_n(r / sigma_u^2; 1 / sigma_u^2) du,

    sigma_u^2 = s^2 v_out v_hidden chi2_K^(-1)(u) and F'_n(.; lambda) the noncentral
    chi-square CDF of n degrees of freedom (scipy.stats.ncx2), the integral over the
    quantile u of c by scipy.integrate.quad_vec (absolute error below ``tol``, binomial
    terms below tol / 10 dropped): accurate to 1e-8.  r: a number or an array; returns the
    same shape."""
    from scipy import integrate
    n, m, a = _block_arguments(n, m, v_hidden, v_out, branch_scale)
    r = np.asarray(r, dtype=float)
    x = np.ravel(r)
    k = np.arange(1, m + 1)
    pk = stats.binom.pmf(k, m, 0.5)
    keep = pk > tol / 10.0
    k, pk = k[keep], pk[keep]
    pos = x > 0

    xp = x[pos][None, :]

    def integrand(u):
        s2 = a * stats.chi2.ppf(u, k)[:, None]                  # sigma_u^2 per K
        small = s2 < 1e-8
        s2f = np.where(small, 1.0, s2)       # ncx2.cdf is not evaluated there (it takes minutes at lambda ~ 1e18)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f = stats.ncx2.cdf(xp / s2f, n, 1.0 / s2f)
            # sigma^2 < 1e-8 (lambda > 1e8, where ncx2.cdf fails): R = (1 + sigma Z)^2 + sigma^2 chi2(n - 1)
            # with chi2(n - 1) at its mean, to O(sigma^4); a set of u of measure below 1e-4
            t = np.sqrt(np.maximum(xp - s2 * (n - 1), 0.0))
            sd = np.sqrt(s2)
            near = stats.norm.cdf((t - 1.0) / sd) - stats.norm.cdf((-t - 1.0) / sd)
        f = np.where(small, near, f)
        f = np.where(s2 > 0, f, xp >= 1.0)                     # sigma = 0: R = 1
        return pk @ f

    out = stats.binom.pmf(0, m, 0.5) * (x >= 1.0)
    if np.any(pos):
        val, _ = integrate.quad_vec(integrand, 0.0, 1.0, epsabs=tol, epsrel=0.0, norm="max",
                                    points=_BLOCK_CDF_POINTS)
        out[pos] += val
    out = np.clip(out, 0.0, 1.0)
    return float(out[0]) if r.ndim == 0 else out.reshape(r.shape)


def residual_layer_moments(widths, variances, branch_scale=1.0, gaussian=True):
    """Per-layer E rho_l and Var rho_l (l = 1..L) of a residual network (``--arch residual``)
    from its widths n_1..n_L and entry variances v_1..v_L, for one input:

        rho_1 = v_1 chi2(K_1),  rho_(2b) = rho_(2b-1) v_(2b) chi2(K_(2b)),  rho_(2b+1) = rho_(2b-1) R_b,

    each factor independent of rho_(2b-1) (R_b: :func:`residual_block_moments`), so the means
    and second moments multiply.  The means hold for any zero-mean symmetric weights
    (E (w . h)^2 = v ||h||^2 and E ReLU(y)^2 = E y^2 / 2); the variances (Gaussian
    weights only) are NaN with ``gaussian`` False.  Returns a :class:`Moments` of arrays (L,)."""
    w = _residual_check(widths)
    v = np.asarray(variances, dtype=float)
    L = w.size
    mean = np.empty(L)
    second = np.empty(L)

    def factor(l):                       # E and E^2 of v_l chi2(K_l), K_l ~ Bin(n_l, 1/2)
        return v[l - 1] * w[l - 1] / 2.0, v[l - 1] ** 2 * w[l - 1] * (w[l - 1] + 5.0) / 4.0

    mean[0], second[0] = factor(1)
    for b in range(1, (L - 1) // 2 + 1):
        f1, f2 = factor(2 * b)
        mean[2 * b - 1] = mean[2 * b - 2] * f1
        second[2 * b - 1] = second[2 * b - 2] * f2
        mo = residual_block_moments(w[0], w[2 * b - 1], v[2 * b - 1], v[2 * b], branch_scale)
        mean[2 * b] = mean[2 * b - 2] * mo.mean
        second[2 * b] = second[2 * b - 2] * (mo.var + mo.mean ** 2)
    var = second - mean ** 2 if gaussian else np.full(L, np.nan)
    return Moments(mean=mean, var=var)


def residual_moments(widths, input_dim=None, init="he", branch_scale=1.0):
    """:func:`residual_layer_moments` of a residual network of Gaussian weights, the variances
    from ``init`` (:func:`layer_variances`' arguments): E rho_l and Var rho_l, l = 1..L."""
    return residual_layer_moments(widths, layer_variances(widths, input_dim, init), branch_scale)
