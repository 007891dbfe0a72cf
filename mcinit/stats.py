"""Per-trial records and mergeable per-layer summary statistics (DESIGN sections 2 and 7).

The reducer turns a batch of per-(trial, input, layer) ratios into per-trial
records (min and max over the trial's inputs) and updates, in global trial
order and input order, one Welford accumulator per (quantity, space, layer):

    quantity  0 = forward ratio rho_l, 1 = backward ratio gamma_l
    space     0 = the ratio itself (finite values), 1 = its natural log (values > 0)

plus fixed-edge histograms.  Because the update order is the trial order, the
summary is bit-identical for any thread count and batch size; summaries of
disjoint runs merge exactly in count and to rounding in mean and M2 (Chan et al.).
"""

import math

import numpy as np
from numba import njit, prange
from scipy import stats as sps

__all__ = ["Summary", "reduce_batch", "failure_counts", "clopper_pearson",
           "HIST_RANGE", "HIST_BINS"]

#: histogram edges: (lo, hi) per space, HIST_BINS equal bins plus an underflow and an overflow bin
HIST_RANGE = ((0.0, 4.0), (-4.0, 4.0))
HIST_BINS = 400
QUANTITIES = ("fwd", "bwd")
SPACES = ("ratio", "log")


class Summary:
    """Streaming statistics per (quantity, space, layer) over all (trial, input) pairs."""

    def __init__(self, depth):
        self.depth = depth
        shape = (2, 2, depth)
        self.count = np.zeros(shape, dtype=np.int64)
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)
        self.hist = np.zeros(shape + (HIST_BINS + 2,), dtype=np.int64)
        self.trials = 0
        self.dead = 0

    def arrays(self):
        return dict(count=self.count, mean=self.mean, m2=self.m2, min=self.min, max=self.max,
                    hist=self.hist)

    @staticmethod
    def edges(space):
        lo, hi = HIST_RANGE[space]
        return np.linspace(lo, hi, HIST_BINS + 1)

    def variance(self):
        """Unbiased variance per (quantity, space, layer) (NaN below two values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), np.nan)

    def merge(self, other):
        """Add another summary (disjoint trials) into this one (Chan's parallel update)."""
        na, nb = self.count.astype(float), other.count.astype(float)
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = np.where(n > 0, self.mean + delta * nb / np.maximum(n, 1), 0.0)
            m2 = self.m2 + other.m2 + delta ** 2 * na * nb / np.maximum(n, 1)
        self.mean = np.where(nb == 0, self.mean, np.where(na == 0, other.mean, mean))
        self.m2 = np.where(nb == 0, self.m2, np.where(na == 0, other.m2, m2))
        self.count = self.count + other.count
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        self.hist = self.hist + other.hist
        self.trials += other.trials
        self.dead += other.dead

    def copy(self):
        s = Summary(self.depth)
        for k, v in self.arrays().items():
            setattr(s, k, v.copy())
        s.trials, s.dead = self.trials, self.dead
        return s


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_job(src, q, s, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """The accumulators of quantity q (src) in space s: layer by layer in (trial, input)
    order, the layers interleaved so that their chains of dependent divisions overlap.
    Space 0 also writes the records (min and max over the inputs)."""
    T, N, L = src.shape
    # the bin 1 + (v - lo) / (hi - lo) nbins: with hi - lo a power of two the division is
    # a multiplication by its exact reciprocal, the same number
    span = hi - lo
    inv = 1.0 / span
    exact = inv * span == 1.0 and math.frexp(span)[0] == 0.5
    n_ = count[q, s].copy()
    mu = mean[q, s].copy()
    sq = m2[q, s].copy()
    mn_ = vmin[q, s].copy()
    mx_ = vmax[q, s].copy()
    h = hist[q, s]
    CH = 128
    V = np.empty((CH, N, L))
    for t in range(T):
        if s == 1 and t % CH == 0:
            # the logarithms of the next CH trials first (NaN: no value), so that no call
            # interrupts the update loop and the calls overlap one another
            for tt in range(min(CH, T - t)):
                for x in range(N):
                    for l in range(L):
                        r = src[t + tt, x, l]
                        V[tt, x, l] = math.log(r) if r > 0.0 and math.isfinite(r) else np.nan
        for x in range(N):
            for l in range(L):
                v = src[t, x, l] if s == 0 else V[t % CH, x, l]
                if not math.isfinite(v):
                    continue
                n = n_[l] + 1
                n_[l] = n
                d = v - mu[l]
                m = mu[l] + d / n
                mu[l] = m
                sq[l] += d * (v - m)
                if v < mn_[l]:
                    mn_[l] = v
                if v > mx_[l]:
                    mx_[l] = v
                if v < lo:
                    b = 0
                elif v >= hi:
                    b = nbins + 1
                else:
                    f = (v - lo) * inv if exact else (v - lo) / span
                    b = 1 + int(f * nbins)
                    if b > nbins:
                        b = nbins
                h[l, b] += 1
        if s == 0:
            for l in range(L):
                mn = np.inf
                mx = -np.inf
                for x in range(N):
                    r = src[t, x, l]
                    if r < mn:
                        mn = r
                    if r > mx:
                        mx = r
                rec_min[q, t, l] = mn
                rec_max[q, t, l] = mx
    count[q, s] = n_
    mean[q, s] = mu
    m2[q, s] = sq
    vmin[q, s] = mn_
    vmax[q, s] = mx_


@njit(cache=True, parallel=True, nogil=True)
def _reduce(fwd, bwd, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """One job per (quantity, space), in parallel (the order within each is the trial order)."""
    for job in prange(4):
        q = job // 2
        s = job % 2
        _reduce_job(fwd if q == 0 else bwd, q, s, rec_min, rec_max, count, mean, m2, vmin, vmax, hist,
                    lo[s], hi[s], nbins)


def reduce_batch(fwd, bwd, dead, summary):
    """Per-trial records of a batch, and the summary updated in trial order.

    fwd, bwd  (T, N, L) ratios;  dead (T,) bool
    returns   dict of fwd_min, fwd_max, bwd_min, bwd_max (T, L) and dead (T,)
    """
    T, N, L = fwd.shape
    rec_min = np.empty((2, T, L))
    rec_max = np.empty((2, T, L))
    lo = np.array([r[0] for r in HIST_RANGE])
    hi = np.array([r[1] for r in HIST_RANGE])
    _reduce(fwd, bwd, rec_min, rec_max, summary.count, summary.mean, summary.m2,
            summary.min, summary.max, summary.hist, lo, hi, HIST_BINS)
    summary.trials += T
    summary.dead += int(np.count_nonzero(dead))
    return dict(fwd_min=rec_min[0], fwd_max=rec_max[0], bwd_min=rec_min[1], bwd_max=rec_max[1],
                dead=np.array(dead, dtype=bool))


@njit(cache=True, inline="always")
def _dev(r, norm):
    if r != r or r == np.inf:
        return np.inf
    return abs(math.sqrt(r) - 1.0) if norm else abs(r - 1.0)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _tally(fmin, fmax, bmin, bmax, eps, norm, nchunks, counts):
    """counts[chunk, prop, e]: failures of trials in a chunk (prop 0 forward, 1 backward, 2 both).

    A trial's largest deviation max_l _dev(r_l) is max(_dev(min_l r_l), _dev(max_l r_l)):
    sqrt(r) - 1 and r - 1 are non-decreasing in r (correctly rounded), so |.| of them peaks
    at an end.  Two square roots per quantity and trial instead of 2 L; the same counts."""
    T, L = fmin.shape
    for c in prange(nchunks):
        for t in range((T * c) // nchunks, (T * (c + 1)) // nchunks):
            flo = np.inf
            fhi = -np.inf
            blo = np.inf
            bhi = -np.inf
            fbad = False
            bbad = False
            dead = False
            for l in range(L):
                a = fmin[t, l]
                b = fmax[t, l]
                fbad |= (a != a) | (b != b) | (a == np.inf) | (b == np.inf)
                dead |= a == 0.0
                flo = min(flo, a, b)
                fhi = max(fhi, a, b)
                a = bmin[t, l]
                b = bmax[t, l]
                bbad |= (a != a) | (b != b) | (a == np.inf) | (b == np.inf)
                blo = min(blo, a, b)
                bhi = max(bhi, a, b)
            fd = np.inf if fbad else max(_dev(flo, norm), _dev(fhi, norm))
            bd = np.inf if bbad else max(_dev(blo, norm), _dev(bhi, norm))
            for i in range(eps.shape[0]):
                ff = dead or fd > eps[i]
                bf = bd > eps[i]
                if ff:
                    counts[c, 0, i] += 1
                if bf:
                    counts[c, 1, i] += 1
                if ff or bf:
                    counts[c, 2, i] += 1


def failure_counts(records, eps, form="norm"):
    """Failures at each eps: dict prop -> int array (len(eps)), props forward, backward, both.

    A trial fails the forward property when some rho_l deviates by more than eps
    or some layer is dead (rho_l = 0); the backward property when some gamma_l
    deviates by more than eps (gamma = inf when delta^L = 0, a dead network)."""
    if form not in ("norm", "squared"):
        raise ValueError("form must be 'norm' or 'squared'")
    eps = np.ascontiguousarray(np.atleast_1d(np.asarray(eps, dtype=float)))
    fmin = np.ascontiguousarray(records["fwd_min"], dtype=float)
    nchunks = max(1, min(64, len(fmin) // 4096))
    counts = np.zeros((nchunks, 3, len(eps)), dtype=np.int64)
    _tally(fmin, np.ascontiguousarray(records["fwd_max"], dtype=float),
           np.ascontiguousarray(records["bwd_min"], dtype=float),
           np.ascontiguousarray(records["bwd_max"], dtype=float), eps, form == "norm", nchunks, counts)
    total = counts.sum(axis=0)
    return {"forward": total[0], "backward": total[1], "both": total[2]}


def clopper_pearson(k, n, level=0.95):
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k/n."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = 1.0 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, sps.beta.ppf(a / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, sps.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    return low, high
