"""Theory curves for the report: the exact density of ln rho_L and the bounds against width or eps."""

import math

import numpy as np
from scipy import signal, special, stats

from .. import theory
from .common import GAUSSIAN_INITS, PAPER_INITS, paper_eps

# ---------------------------------------------------------------------------
# exact density of ln rho_L

def _log_gamma_const(a):
    """a ln a - a - lnGamma(a), without cancellation for large a (Stirling series)."""
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    big = a >= 20.0
    ab = a[big]
    out[big] = (0.5 * np.log(ab / (2.0 * math.pi))
                - (1.0 / (12.0 * ab) - 1.0 / (360.0 * ab ** 3) + 1.0 / (1260.0 * ab ** 5)
                   - 1.0 / (1680.0 * ab ** 7)))
    sm = a[~big]
    out[~big] = sm * np.log(sm) - sm - special.gammaln(sm)
    return out


def _layer_log_density(n, v, h, tol):
    """(j0, f): density of ln(v chi2(K)), K ~ Binomial(n, 1/2) restricted to K >= 1, at y = (j0 + i) h."""
    k = np.arange(1, n + 1)
    pmf = stats.binom.pmf(k, n, 0.5)
    left = np.cumsum(pmf)
    right = np.cumsum(pmf[::-1])[::-1]
    keep = (left > tol) & (right > tol)            # drops at most tol on either side
    k, pmf = k[keep], pmf[keep]
    a = 0.5 * k
    log2v = math.log(2.0 * v)
    lo = log2v + math.log(special.gammaincinv(a[0], tol))
    hi = log2v + math.log(special.gammainccinv(a[-1], tol))
    j0, j1 = math.floor(lo / h), math.ceil(hi / h)
    y = h * np.arange(j0, j1 + 1)
    f = np.zeros(len(y))
    c = _log_gamma_const(a) + np.log(pmf)
    la = np.log(a)
    step = max(1, (1 << 22) // len(y))
    for i in range(0, len(k), step):
        u = (y - log2v)[None, :] - la[i:i + step, None]          # ln(G/a), G ~ Gamma(a, 1)
        with np.errstate(over="ignore"):
            f += np.exp(c[i:i + step, None] - a[i:i + step, None] * (np.expm1(u) - u)).sum(axis=0)
    return j0, f


def _trim(j0, f, h, tol):
    """Drop tail points whose total mass is below tol on each side."""
    m = np.cumsum(f) * h
    total = m[-1]
    i0 = int(np.searchsorted(m, tol, side="right"))
    i1 = int(np.searchsorted(m, total - tol, side="left")) + 1
    i0 = max(0, min(i0, len(f) - 1))
    i1 = max(i0 + 1, min(i1 + 1, len(f)))
    return j0 + i0, f[i0:i1]


def exact_log_density(widths, input_dim=None, init="he", *, tol=1e-15, points_per_sd=8):
    """Exact density of y = ln rho_L for one input and Gaussian weights, on a uniform grid.

    rho_L = prod_l v_l chi2(K_l), K_l ~ Binomial(n_l, 1/2) independent (docs/design.md section 4), so
    ln rho_L is a sum of independent log-factors, each a binomial mixture of densities
    of ln(v_l chi2(k)).  Each is sampled on the lattice y = j h (h = 1/points_per_sd of
    the narrowest log-chi-square sd) and the sum's density is their FFT convolution
    (a trapezoidal rule on R for smooth, fast-decaying densities: spectrally accurate).

    The atom at rho_L = 0 (some K_l = 0: a dead network, probability p_dead) has no
    density and is left out: the returned sub-density integrates to 1 - p_dead, up to
    the truncations (binomial and chi-square tails, each below ``tol``).

    widths, input_dim, init   as in mcinit.theory.layer_variances
    Returns (y, f, p_dead): the grid (spacing h = y[1] - y[0]), the density of ln rho_L
    there, and P(rho_L = 0) = 1 - prod_l (1 - 2^-n_l).
    """
    w = [int(n) for n in widths]
    v = theory.layer_variances(w, input_dim, init)
    kmax = []
    for n in w:                                   # the largest kept k of each layer sets the finest scale
        pmf = stats.binom.pmf(np.arange(1, n + 1), n, 0.5)
        right = np.cumsum(pmf[::-1])[::-1]
        kmax.append(int(np.nonzero(right > tol)[0][-1]) + 1)
    h = min(math.sqrt(special.polygamma(1, 0.5 * k)) for k in kmax) / points_per_sd
    j0, f = None, None
    for n, vv in zip(w, v):
        jl, fl = _layer_log_density(n, float(vv), h, tol)
        if f is None:
            j0, f = jl, fl
        else:
            f = np.maximum(signal.fftconvolve(f, fl) * h, 0.0)
            j0 = j0 + jl
        j0, f = _trim(j0, f, h, tol)
    p_dead = max(0.0, -math.expm1(sum(math.log1p(-2.0 ** -n) for n in w)))
    return h * np.arange(j0, j0 + len(f)), f, p_dead


def exact_ratio_density(r, y, f):
    """Density of rho_L at r > 0 from exact_log_density's (y, f): f(ln r)/r (0 outside the grid)."""
    r = np.asarray(r, dtype=float)
    out = np.zeros(r.shape)
    pos = r > 0
    out[pos] = np.interp(np.log(r[pos]), y, f, left=0.0, right=0.0) / r[pos]
    return out


def theory_curves(c, eps, form, widths=None):
    """Bound curves for a run's configuration: vary the equal width (widths given) or eps (widths None).

    Returns dict of arrays over the varied axis: paper, chernoff, exact (one input), union (N*exact)."""
    gaussian = c.dist == "normal" and c.init in GAUSSIAN_INITS and not c.residual   # plain networks' laws
    paper = c.init in PAPER_INITS and not c.residual
    out = {}
    if widths is not None:         # arrays (len(eps), len(widths)); the paper's on a finer real grid
        e = np.atleast_1d(np.asarray(eps, dtype=float))
        if paper:
            wf = np.geomspace(widths[0], widths[-1], 200)
            out["paper_x"] = wf
            out["paper"] = np.asarray(theory.paper_delta(wf[None, :], paper_eps(e, form)[:, None],
                                                         c.samples, c.depth))
        if gaussian:
            ch = np.empty((len(e), len(widths)))
            ex = np.empty((len(e), len(widths)))
            for j, m in enumerate(widths):
                ws = [int(m)] * c.depth
                ch[:, j] = theory.chernoff_bound(e, ws, c.samples, form, c.input_dim, c.init)
                ex[:, j] = theory.exact_forward_failure(e, ws, form, c.input_dim, c.init)
            out["chernoff"], out["exact"] = ch, ex
    else:
        e = np.asarray(eps, dtype=float)
        if paper:
            out["paper"] = np.asarray(theory.paper_delta(min(c.widths), paper_eps(e, form), c.samples, c.depth))
        if gaussian:
            out["chernoff"] = np.asarray(theory.chernoff_bound(e, list(c.widths), c.samples, form, c.input_dim,
                                                               c.init))
            out["exact"] = np.asarray(theory.exact_forward_failure(e, list(c.widths), form, c.input_dim, c.init))
    if "exact" in out:
        out["union"] = np.minimum(1.0, c.samples * out["exact"])
    return out
