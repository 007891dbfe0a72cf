"""Per-trial records and mergeable per-layer summary statistics (DESIGN sections 2 and 7).

The reducer turns a batch of per-(trial, input, layer) ratios into per-trial
records (min and max over the trial's inputs) and updates, in global trial
order and input order, one Welford accumulator per (quantity, space, layer):

    quantity  0 = forward ratio rho_l, 1 = backward ratio gamma_l
    space     0 = the ratio itself (finite values), 1 = its natural log (values > 0;
              fdlibm's log, log_values: within an ulp, the same on every machine)

plus fixed-edge histograms.  Because the update order is the trial order, the
summary is bit-identical for any thread count and batch size; summaries of
disjoint runs merge exactly in count and to rounding in mean and M2 (Chan et al.).
"""

import math

import numpy as np
from numba import njit
from scipy import stats as sps

from . import rng
from .threads import on_threads

__all__ = ["Summary", "reduce_batch", "record_buffers", "failure_counts", "clopper_pearson", "log_values",
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


# fdlibm's logarithm (rng._log_reduced): the same numbers on every machine, vectorisable
_log_reduced = rng._log_reduced
_TWO54 = 18014398509481984.0


@njit(cache=True, error_model="numpy")
def _log_scalar(x):
    """_log_reduced for one finite x > 0 (any, subnormals included), by frexp."""
    k = 0
    if x < 2.2250738585072014e-308:
        x *= _TWO54
        k = -54
    m, e = math.frexp(x)            # x = m 2^e, m in [1/2, 1)
    m *= 2.0
    e -= 1                          # m in [1, 2)
    hm = int(m * 1048576.0) - 1048576   # the top 20 bits of the fraction
    j = (hm + 0x95f64) & 0x100000
    if j:
        m *= 0.5
        e += 1
    hx = hm
    big = ((hx - 0x6147a) | (0x6b851 - hx)) > 0
    return _log_reduced(m - 1.0, float(e + k), big)


@njit(cache=True, error_model="numpy")
def log_values(x, out, m, ws):
    """out[i] = log(x[i]) for finite x[i] > 0, NaN for every other x[i], i < m.

    fdlibm's algorithm (|error| < 1 ulp) in plain IEEE arithmetic on the bits: the same
    numbers on every machine, and it vectorises (libm's log is a call per value).
    x: contiguous float64; ws: int64 scratch of length 2 m."""
    xb = x[:m].view(np.int64)
    kb = ws[:m]
    fb = ws[m:2 * m]
    for i in range(m):
        ib = xb[i]
        hx = ib >> 32
        hm = hx & 0x000fffff
        j = (hm + 0x95f64) & 0x100000           # 0 when the fraction < sqrt(2), else 2^20
        # x = (1 + f) 2^k with 1 + f in [sqrt(2)/2, sqrt(2)): the fraction's bits, the
        # exponent set to 0 or -1; the form fdlibm picks, from the top 20 bits
        fb[i] = ((hm | (j ^ 0x3ff00000)) << 32) | (ib & 0xffffffff)
        kb[i] = ((hm - 0x6147a) | (0x6b851 - hm)) > 0
        out[i] = np.float64(np.int32(((hx >> 20) - 1023) + (j >> 20)))     # k (int32: vectorises)
    ff = fb.view(np.float64)
    tiny = False
    for i in range(m):
        out[i] = _log_reduced(ff[i] - 1.0, out[i], kb[i] != 0)
    for i in range(m):
        xi = x[i]
        ok = (xi > 0.0) & (xi < np.inf)
        tiny |= ok & (xi < 2.2250738585072014e-308)
        out[i] = out[i] if ok else np.nan
    if tiny:
        for i in range(m):
            if 0.0 < x[i] < 2.2250738585072014e-308:
                out[i] = _log_scalar(x[i])


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
    M = CH * N * L
    xs = np.empty(M)
    V = np.empty(M)
    ws = np.empty(2 * M, dtype=np.int64)
    for t in range(T):
        if s == 1 and t % CH == 0:
            # the logarithms of the next CH trials first, vectorised (NaN: no value)
            nt = min(CH, T - t)
            for tt in range(nt):
                for x in range(N):
                    for l in range(L):
                        xs[(tt * N + x) * L + l] = src[t + tt, x, l]
            log_values(xs, V, nt * N * L, ws)
        for x in range(N):
            for l in range(L):
                v = src[t, x, l] if s == 0 else V[((t % CH) * N + x) * L + l]
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


def _reduce(fwd, bwd, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """One job per (quantity, space), on up to four threads (the order within each is the
    trial order, so the numbers do not depend on the threads).  Python threads over the
    nogil job rather than a parallel numba function: that would re-optimise the job when
    it compiles, seconds of a newcomer's first run.  The logarithm jobs, the longer ones,
    go first."""
    order = [(0, 1), (1, 1), (0, 0), (1, 0)] if fwd.shape[0] >= 64 else []
    if not order:
        for q in (0, 1):
            for sp in (0, 1):
                _reduce_job(fwd if q == 0 else bwd, q, sp, rec_min, rec_max, count, mean, m2, vmin,
                            vmax, hist, lo[sp], hi[sp], nbins)
        return
    on_threads([(lambda q=q, sp=sp: _reduce_job(fwd if q == 0 else bwd, q, sp, rec_min, rec_max, count,
                                                 mean, m2, vmin, vmax, hist, lo[sp], hi[sp], nbins))
                 for q, sp in order])


def record_buffers(capacity, depth):
    """Arrays for reduce_batch's ``out``: the records of up to ``capacity`` trials."""
    return dict(rec_min=np.empty((2, capacity, depth)), rec_max=np.empty((2, capacity, depth)),
                dead=np.empty(capacity, dtype=bool))


def reduce_batch(fwd, bwd, dead, summary, out=None):
    """Per-trial records of a batch, and the summary updated in trial order.

    fwd, bwd  (T, N, L) ratios;  dead (T,) bool
    out       optional record_buffers(C >= T, L) to write the records into (fresh arrays
              otherwise): reusing them spares the page faults of fresh memory, which
              serialise threads
    returns   dict of fwd_min, fwd_max, bwd_min, bwd_max (T, L) and dead (T,)
    """
    T, N, L = fwd.shape
    if out is None:
        out = record_buffers(T, L)
    rec_min = out["rec_min"][:, :T]
    rec_max = out["rec_max"][:, :T]
    dead_rec = out["dead"][:T]
    dead_rec[:] = dead
    lo = np.array([r[0] for r in HIST_RANGE])
    hi = np.array([r[1] for r in HIST_RANGE])
    _reduce(fwd, bwd, rec_min, rec_max, summary.count, summary.mean, summary.m2,
            summary.min, summary.max, summary.hist, lo, hi, HIST_BINS)
    summary.trials += T
    summary.dead += int(np.count_nonzero(dead_rec))
    return dict(fwd_min=rec_min[0], fwd_max=rec_max[0], bwd_min=rec_min[1], bwd_max=rec_max[1],
                dead=dead_rec)


@njit(cache=True, inline="always")
def _dev(r, norm):
    if r != r or r == np.inf:
        return np.inf
    return abs(math.sqrt(r) - 1.0) if norm else abs(r - 1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _tally(fmin, fmax, bmin, bmax, eps, norm, nchunks, counts, c_lo, c_hi):
    """counts[chunk, prop, e]: failures of trials in a chunk (prop 0 forward, 1 backward, 2 both),
    for the chunks c_lo .. c_hi - 1 of nchunks.

    A trial's largest deviation max_l _dev(r_l) is max(_dev(min_l r_l), _dev(max_l r_l)):
    sqrt(r) - 1 and r - 1 are non-decreasing in r (correctly rounded), so |.| of them peaks
    at an end.  Two square roots per quantity and trial instead of 2 L; the same counts."""
    T, L = fmin.shape
    for c in range(c_lo, c_hi):
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
    args = (fmin, np.ascontiguousarray(records["fwd_max"], dtype=float),
            np.ascontiguousarray(records["bwd_min"], dtype=float),
            np.ascontiguousarray(records["bwd_max"], dtype=float), eps, form == "norm", nchunks, counts)
    on_threads([(lambda c=c: _tally(*args, c, c + 1)) for c in range(nchunks)])
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
