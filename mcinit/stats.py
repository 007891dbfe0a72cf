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

from .rng import log_values
from .threads import on_threads

__all__ = ["Summary", "reduce_batch", "record_buffers", "failure_counts", "clopper_pearson", "log_values",
           "HIST_RANGE", "HIST_BINS"]

#: histogram edges: (lo, hi) per space, HIST_BINS equal bins plus an underflow and an overflow bin
HIST_RANGE = ((0.0, 4.0), (-4.0, 4.0))
HIST_BINS = 400
# _reduce_job bins (v - lo) (nbins / (hi - lo)), the bin of (v - lo) / (hi - lo) nbins when
# hi - lo is a power of two
assert all(math.frexp(hi - lo)[0] == 0.5 for lo, hi in HIST_RANGE), "HIST_RANGE spans must be powers of two"
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


#: values per pass of _reduce_job (whole trials): its buffers stay in the core's caches
_CHUNK_VALUES = 1024
#: lanes from which LLVM vectorises _reduce_job's row loop (its cost model's minimum trip
#: count on AVX2); rows of half as many lanes or more are padded up to it with empty lanes
_VECTOR_LANES = 20


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_job(src, q, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """The accumulators of quantity q (src, (T, N, L)) in both spaces, updated per (trial,
    input) row in order, and its records rec_min, rec_max (T, L): min and max over the inputs.

    A row's 2 L values (the ratios where finite, their logarithms where positive, NaN
    where there is none) are the lanes of one loop, one accumulator chain per lane.  Its
    body is branch-free (a NaN changes nothing) so that it vectorises across the lanes and
    the chains' dependent divisions overlap; each chain takes the same operations in the
    same order as the value-by-value recursion, so the numbers are the same.  The loop also
    writes each value's histogram bin; a scalar pass counts them."""
    T, N, L = src.shape
    K = 2 * L
    KP = max(K, _VECTOR_LANES) if 2 * K >= _VECTOR_LANES else K
    W = nbins + 2
    fn = np.float64(nbins)
    # lane k = L space + layer: the accumulators (the count as a float: no conversion in the
    # loop) and its bin constants.  The bin of v is 1 + int((v - lo) / (hi - lo) nbins), at
    # most nbins; with hi - lo a power of two (HIST_RANGE), (v - lo) c with c = nbins / (hi - lo)
    # is the same number (or both are below 1).  Empty lanes (KP > K) take neutral values.
    acc = np.zeros((5, KP))
    con = np.ones((3, KP))
    off = np.empty(KP, dtype=np.int32)
    for k in range(KP):
        off[k] = k * W + 1
    for s in range(2):
        for l in range(L):
            k = s * L + l
            acc[0, k] = count[q, s, l]
            acc[1, k] = mean[q, s, l]
            acc[2, k] = m2[q, s, l]
            acc[3, k] = vmin[q, s, l]
            acc[4, k] = vmax[q, s, l]
            con[0, k] = lo[s]
            con[1, k] = hi[s]
            con[2, k] = fn / (hi[s] - lo[s])
    n0 = acc[0, :K].copy()
    h = np.zeros(KP * W, dtype=np.int64)
    R = N * L
    CH = max(1, _CHUNK_VALUES // R)
    flat = src.reshape(T * R)
    V = np.full((CH * N, KP), np.nan)
    B = np.empty((CH * N, KP), dtype=np.uint32)
    lg = np.empty(CH * R)
    lg2 = lg.reshape(CH * N, L)
    ws = np.empty(2 * CH * R, dtype=np.int64)
    for t0 in range(0, T, CH):
        nt = min(CH, T - t0)
        log_values(flat[t0 * R:(t0 + nt) * R], lg, nt * R, ws)
        blk = src[t0:t0 + nt]
        for t in range(nt):
            x0 = blk[t, 0]
            rmn = rec_min[t0 + t]
            rmx = rec_max[t0 + t]
            for l in range(L):
                r = x0[l]
                rmn[l] = r if r < np.inf else np.inf
                rmx[l] = r if r > -np.inf else -np.inf
            for x in range(1, N):
                xr = blk[t, x]
                for l in range(L):
                    r = xr[l]
                    a = rmn[l]
                    b = rmx[l]
                    rmn[l] = r if r < a else a
                    rmx[l] = r if r > b else b
            for x in range(N):
                xr = blk[t, x]
                vr = V[t * N + x]
                lr = lg2[t * N + x]
                for l in range(L):
                    r = xr[l]
                    vr[l] = r if r - r == 0.0 else np.nan
                    vr[L + l] = lr[l]
        for j in range(nt * N):
            vr = V[j]
            br = B[j]
            for k in range(KP):
                v = vr[k]
                n = acc[0, k]
                mu = acc[1, k]
                sq = acc[2, k]
                mn = acc[3, k]
                mx = acc[4, k]
                ok = v == v
                d = v - mu
                m = mu + d / (n + 1.0)
                e = sq + d * (v - m)
                acc[0, k] = n + (1.0 if ok else 0.0)
                acc[1, k] = m if ok else mu
                acc[2, k] = e if ok else sq
                acc[3, k] = v if v < mn else mn
                acc[4, k] = v if v > mx else mx
                # the bin, less one (NaN: the underflow bin, taken out below)
                c = (v - con[0, k]) * con[2, k]
                c = c if c < fn - 1.0 else fn - 1.0
                c = c if v >= con[0, k] else -1.0
                c = fn if v >= con[1, k] else c
                br[k] = np.uint32(np.int32(c) + off[k])
        for j in range(nt * N):
            br = B[j]
            for k in range(K):
                h[br[k]] += 1
    hq = hist[q]
    for s in range(2):
        for l in range(L):
            k = s * L + l
            count[q, s, l] = np.int64(acc[0, k])
            mean[q, s, l] = acc[1, k]
            m2[q, s, l] = acc[2, k]
            vmin[q, s, l] = acc[3, k]
            vmax[q, s, l] = acc[4, k]
            for i in range(W):
                hq[s, l, i] += h[k * W + i]
            hq[s, l, 0] -= T * N - np.int64(acc[0, k] - n0[k])


def _reduce(fwd, bwd, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """One job per quantity, on up to two threads (the order within each is the trial
    order, so the numbers do not depend on the threads); rec_min, rec_max: (fwd's, bwd's)
    (T, L) records.  Python threads over the nogil
    job rather than a parallel numba function: that would re-optimise the job when it
    compiles, seconds of a newcomer's first run."""
    jobs = [(lambda q=q: _reduce_job(fwd if q == 0 else bwd, q, rec_min[q], rec_max[q], count, mean, m2,
                                      vmin, vmax, hist, lo, hi, nbins)) for q in (0, 1)]
    if fwd.shape[0] < 64:
        for job in jobs:
            job()
        return
    on_threads(jobs)


def record_buffers(capacity, depth):
    """Arrays for reduce_batch's ``out``: the records of up to ``capacity`` trials."""
    return dict(fwd_min=np.empty((capacity, depth)), fwd_max=np.empty((capacity, depth)),
                bwd_min=np.empty((capacity, depth)), bwd_max=np.empty((capacity, depth)),
                dead=np.empty(capacity, dtype=bool))


def reduce_batch(fwd, bwd, dead, summary, out=None):
    """Per-trial records of a batch, and the summary updated in trial order.

    fwd, bwd  (T, N, L) ratios, N >= 1;  dead (T,) bool
    out       optional record_buffers(C >= T, L), or any such dict of C-contiguous rows
              (a sink's own storage), to write the records into (fresh arrays otherwise):
              reusing them spares the page faults of fresh memory, which serialise threads
    returns   dict of fwd_min, fwd_max, bwd_min, bwd_max (T, L) and dead (T,)
    """
    fwd = np.ascontiguousarray(fwd, dtype=np.float64)
    bwd = np.ascontiguousarray(bwd, dtype=np.float64)
    T, N, L = fwd.shape
    if N < 1:
        raise ValueError("reduce_batch needs at least one input per trial")
    if out is None:
        out = record_buffers(T, L)
    rec = {k: out[k][:T] for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max")}
    rec_min = (rec["fwd_min"], rec["bwd_min"])
    rec_max = (rec["fwd_max"], rec["bwd_max"])
    dead_rec = out["dead"][:T]
    dead_rec[:] = dead
    lo = np.array([r[0] for r in HIST_RANGE])
    hi = np.array([r[1] for r in HIST_RANGE])
    _reduce(fwd, bwd, rec_min, rec_max, summary.count, summary.mean, summary.m2,
            summary.min, summary.max, summary.hist, lo, hi, HIST_BINS)
    summary.trials += T
    summary.dead += int(np.count_nonzero(dead_rec))
    rec["dead"] = dead_rec
    return rec


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
