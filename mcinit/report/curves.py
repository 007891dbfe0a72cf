"""Theory curves for the report: the exact density of ln rho_L and the bounds against width or eps."""

import math

import numpy as np
from scipy import signal, special, stats

from .. import theory
from .common import paper_eps

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


def exact_log_density(widths, input_dim=None, init="he", *, tol=1e-15, points_per_sd=8, variances=None,
                      spacing=None):
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
    variances                 the per-entry variances v_l themselves (input_dim and init unused)
    spacing                   the grid's spacing h (default: 1/points_per_sd of the narrowest sd)
    Returns (y, f, p_dead): the grid (spacing h = y[1] - y[0]), the density of ln rho_L
    there, and P(rho_L = 0) = 1 - prod_l (1 - 2^-n_l).
    """
    w = [int(n) for n in widths]
    v = theory.layer_variances(w, input_dim, init) if variances is None else np.asarray(variances, float)
    kmax = []
    for n in w:                                   # the largest kept k of each layer sets the finest scale
        pmf = stats.binom.pmf(np.arange(1, n + 1), n, 0.5)
        right = np.cumsum(pmf[::-1])[::-1]
        kmax.append(int(np.nonzero(right > tol)[0][-1]) + 1)
    h = spacing or min(math.sqrt(special.polygamma(1, 0.5 * k)) for k in kmax) / points_per_sd
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


# ---------------------------------------------------------------------------
# bound curves: exact theory values at the points drawn, computed where the curve needs them

def plain_gaussian(c):
    """Whether an exact law (and, but for leaky-relu, the Chernoff bound) describes a run (c: its
    RunConfig): theory.exact_law_of -- a plain network of Gaussian or orthogonal weights and relu,
    leaky-relu, abs or linear.  (The name is the ReLU Gaussian law's, the first one.)"""
    return theory.exact_law_shown(c)[0] is not None


def paper_curve(c):
    """Whether the paper's bound is drawn as a curve over equal widths m for a run's configuration:
    He, Gaussian weights, a plain network (E rho_l = 1 at every width; he-in only where n_0 = m)."""
    return c.dist == "normal" and c.init == "he" and not c.residual and theory.paper_applies(c.init, c.activation,
                                                                                              c.gain)


def _bounds_at(eps, widths, samples, form, input_dim, init, activation="relu", gain=None):
    """(chernoff, exact one-input) arrays over the tuple ``eps`` for one configuration, computed once
    (results.chernoff_values, results.exact_values): a configuration the report draws twice, or
    its table holds, is computed once."""
    from ..results import chernoff_values, exact_values
    return (chernoff_values(eps, widths, samples, form, input_dim, init, activation, gain),
            exact_values(eps, widths, form, input_dim, init, activation, gain))


def _max_points(c):
    """How many exact values a curve of a run's configuration may take: 48 for the ReLU Gaussian
    law (tens of milliseconds each), 8 for the other exact laws, whose mixtures (leaky-relu) and
    Beta factors (orthogonal) take up to about a second a value."""
    law = theory.exact_law_shown(c)[0]
    return 48 if law is not None and law.relu_gaussian else 8


def _refine(x0, evaluate, between, position, floor, tol=0.15, max_points=48):
    """Points where curves need their exact values, and those values.

    x0        the points that are always computed (sorted; the measured ones)
    evaluate  x -> 1-d array of the curves' values at x (probabilities)
    between   (a, b) -> a point strictly between a and b, or None when there is none
    position  x -> the point's coordinate on the axis (log width, or eps)
    The midpoint of every interval is computed, and the interval halved again while the
    straight line between its ends (in log10 of the values, floored at ``floor``) misses the
    value there by more than tol decades: where a curve is smooth, the lines between the points
    kept then miss it by about tol/4 decades (a few hundredths: below a line's width) with few
    points.  A curve below the floor at the midpoint and at an end is left there (it has left the
    drawn range).  Returns (x sorted, values (len(x), k))."""
    vals = {x: evaluate(x) for x in x0}

    def lg(v):
        return np.log10(np.maximum(np.nan_to_num(v, nan=floor), floor))
    todo = list(zip(x0[:-1], x0[1:]))
    while todo and len(vals) < max_points:
        a, b = todo.pop()
        m = between(a, b)
        if m is None:
            continue
        vals[m] = evaluate(m)
        t = (position(m) - position(a)) / (position(b) - position(a))
        # curves that leave the drawn range here (below the floor at the midpoint and an end) need no more
        seen = (vals[m] > floor) | ((vals[a] > floor) & (vals[b] > floor))
        miss = np.max(np.abs(lg(vals[m]) - ((1 - t) * lg(vals[a]) + t * lg(vals[b])))[seen], initial=0.0)
        if miss > tol:
            todo += [(a, m), (m, b)]
    xs = sorted(vals)
    return np.asarray(xs), np.asarray([vals[x] for x in xs])


def _mid_width(a, b):
    m = int(round(math.sqrt(a * b)))
    return m if a < m < b else None


def width_curves(c, eps, form, widths, floor=1e-6, known=None):
    """Chernoff and exact curves of a run's configuration over the equal hidden width m.

    c       a RunConfig (its depth, samples, input_dim, init); eps: the tolerances (in ``form``)
    widths  the measured equal widths: the curves span [min, max] and pass through them
    floor   the smallest probability drawn (the curves are refined only above it)
    known   {m: (chernoff, exact)} arrays over eps already computed (the report's table)
    Returns {width (m), chernoff, exact (one input), union (min(1, N exact))}, arrays
    (len(eps), len(m)); {} where the bounds do not describe the configuration (plain_gaussian).
    Every value is theory's at that width (chernoff_bound over the same eps array,
    exact_forward_failure); the widths between the measured ones are chosen by _refine."""
    if not plain_gaussian(c):
        return {}
    e = tuple(float(x) for x in np.atleast_1d(eps))
    known = known or {}
    k = len(e)

    def evaluate(m):
        if m in known:
            ch, ex = known[m]
        else:
            ch, ex = _bounds_at(e, (int(m),) * c.depth, c.samples, form, c.input_dim, c.init, c.activation, c.gain)
        return np.concatenate((ch, ex))
    ws = sorted({int(w) for w in widths})
    m, v = _refine(ws, evaluate, _mid_width, math.log, floor, max_points=_max_points(c))
    ex = v[:, k:].T
    return dict(width=m, chernoff=v[:, :k].T, exact=ex, union=np.minimum(1.0, c.samples * ex))


def eps_curves(c, lo, hi, form, floor=1e-6, points=9):
    """Chernoff and exact curves of a run's configuration (its own widths) over eps in [lo, hi].

    Starts from ``points`` equally spaced tolerances and adds midpoints where the curves bend
    (_refine); every value is theory's at that eps (chernoff_bound and exact_forward_failure
    at the single tolerance).  Returns {eps, chernoff, exact, union}, or {} where the bounds do
    not describe the configuration (plain_gaussian)."""
    if not plain_gaussian(c):
        return {}
    widths = tuple(int(w) for w in c.widths)

    def evaluate(x):
        return np.concatenate(_bounds_at((float(x),), widths, c.samples, form, c.input_dim, c.init, c.activation,
                                         c.gain))

    def between(a, b):
        return 0.5 * (a + b) if b - a > 1e-3 * (hi - lo) else None
    if _max_points(c) < 48:
        points = min(points, 5)
    x, v = _refine([float(x) for x in np.linspace(lo, hi, points)], evaluate, between, float, floor,
                   max_points=_max_points(c))
    return dict(eps=x, chernoff=v[:, 0], exact=v[:, 1], union=np.minimum(1.0, c.samples * v[:, 1]))


def paper_width_curve(c, eps, form, wmin, wmax, points=200):
    """The paper's bound (closed form, cheap) over equal widths on a fine real grid:
    (m, delta (len(eps), points)), or None outside its setting (paper_curve)."""
    if not paper_curve(c):
        return None
    e = np.atleast_1d(np.asarray(eps, dtype=float))
    wf = np.geomspace(wmin, wmax, points)
    return wf, np.asarray(theory.paper_delta(wf[None, :], paper_eps(e, form)[:, None], c.samples, c.depth))


def paper_eps_curve(c, eps, form):
    """The paper's bound of a run (its narrowest width) at the tolerances ``eps``, or None
    outside its setting (Gaussian weights with E rho_l = 1: results.paper_bound)."""
    from ..results import paper_bound
    if c.residual:
        return None
    d = paper_bound(c, np.asarray(eps, dtype=float), "forward", form)
    return None if d is None else np.asarray(d, float)
