"""The summary reduction: bit for bit the value-by-value Welford recursion it replaced."""

import math

import numpy as np
import pytest
from numba import njit

from mcinit.stats import HIST_BINS, HIST_RANGE, Summary, log_values, record_buffers, reduce_batch

ACCUMULATORS = ("count", "mean", "m2", "min", "max", "hist")


@njit(cache=True, error_model="numpy")
def _reference_job(src, q, s, rec_min, rec_max, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """The scalar reducer (stats._reduce_job before the vectorised one), for one quantity and
    space: each finite value in (trial, input) order, skipping the others."""
    T, N, L = src.shape
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


def _reference(fwd, bwd, dead, summary):
    """reduce_batch by the reference reducer."""
    T, N, L = fwd.shape
    rec_min = np.empty((2, T, L))
    rec_max = np.empty((2, T, L))
    for q, src in enumerate((fwd, bwd)):
        for s in range(2):
            _reference_job(src, q, s, rec_min, rec_max, summary.count, summary.mean, summary.m2,
                           summary.min, summary.max, summary.hist, HIST_RANGE[s][0], HIST_RANGE[s][1],
                           HIST_BINS)
    summary.trials += T
    summary.dead += int(np.count_nonzero(dead))
    return dict(fwd_min=rec_min[0], fwd_max=rec_max[0], bwd_min=rec_min[1], bwd_max=rec_max[1],
                dead=dead.copy())


def _ratios(rs, shape):
    """Ratios with the special values sprinkled in: zeros of both signs, infinities, NaN,
    negatives, subnormals, huge values, and values within an ulp of the histogram edges."""
    edges = np.concatenate([Summary.edges(0), np.exp(Summary.edges(1))])
    near = edges[rs.randint(0, edges.size, shape)]
    near = np.where(rs.rand(*shape) < 0.5, near, np.nextafter(near, rs.choice([-np.inf, np.inf], shape)))
    out = []
    for a in (rs.gamma(30, 1 / 30, shape), 3 * rs.gamma(2, 1, shape)):
        pick = rs.rand(*shape) < 0.1
        a[pick] = near[pick]
        for v, p in ((0.0, .02), (-0.0, .01), (np.inf, .01), (-np.inf, .005), (np.nan, .01), (-1.5, .01),
                     (5e-324, .005), (-5e-324, .005), (1e-310, .005), (4.0, .01), (1e300, .003),
                     (1.7976931348623157e308, .002)):
            a[rs.rand(*shape) < p] = v
        out.append(a)
    return out


def _bits(a):
    a = np.asarray(a)
    return a.view(np.int64) if a.dtype == np.float64 else a


def _assert_same(s1, r1, s2, r2):
    for k in ACCUMULATORS:
        assert np.array_equal(_bits(getattr(s1, k)), _bits(getattr(s2, k))), k
    assert (s1.trials, s1.dead) == (s2.trials, s2.dead)
    for k in r1:
        assert np.array_equal(_bits(r1[k]), _bits(r2[k])), k


@pytest.mark.parametrize("T,N,L", [(1000, 1, 10), (300, 3, 7), (129, 2, 1), (50, 1, 13), (700, 5, 4),
                                   (5, 1, 3), (1, 1, 1), (2000, 1, 2), (200, 40, 30)])
def test_reduction_is_bit_identical_to_the_scalar_recursion(T, N, L):
    """Records and summary, bit for bit (signed zeros and NaN payloads included), in one batch
    and in batches of uneven sizes, from a summary that already holds values."""
    rs = np.random.RandomState(T + 7 * N + 31 * L)
    fwd, bwd = _ratios(rs, (T, N, L))
    dead = rs.rand(T) < 0.1
    pre_f, pre_b = _ratios(rs, (3, N, L))
    s_ref = Summary(L)
    _reference(pre_f, pre_b, np.zeros(3, bool), s_ref)
    r_ref = _reference(fwd, bwd, dead, s_ref)
    for cuts in ([0, T], sorted({0, T // 3, T // 3 + 1, min(T, 200), T})):
        s = Summary(L)
        reduce_batch(pre_f, pre_b, np.zeros(3, bool), s)
        parts = [reduce_batch(fwd[a:b], bwd[a:b], dead[a:b], s, out=record_buffers(T + 5, L))
                 for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        r = {k: np.concatenate([p[k] for p in parts]) for k in r_ref}
        _assert_same(s_ref, r_ref, s, r)


def test_empty_rows_leave_the_summary_alone():
    """Trials whose ratios are all NaN or infinite count in no accumulator and no bin."""
    L = 4
    fwd = np.full((70, 2, L), np.nan)
    fwd[::2] = np.inf
    s = Summary(L)
    rec = reduce_batch(fwd, fwd.copy(), np.zeros(70, bool), s)
    empty = Summary(L)
    for k in ACCUMULATORS:
        assert np.array_equal(_bits(getattr(s, k)), _bits(getattr(empty, k))), k
    assert np.all(rec["fwd_min"][::2] == np.inf) and np.all(rec["fwd_max"][1::2] == -np.inf)


@pytest.mark.parametrize("T,N,L", [(1000, 1, 10), (300, 3, 7), (5000, 1, 3), (129, 2, 1)])
def test_tally_from_the_reduction_equals_the_tally_of_the_records(T, N, L):
    """reduce_and_tally's failure counts (from each trial's extremes, taken as its records are
    made) equal failure_counts of the records, in both forms, with zeros, infinities, NaN,
    negatives and values at a tolerance; with one input per trial also into one array for
    min and max (record_buffers(single=True)), whose records are the min records."""
    from mcinit.stats import failure_counts, reduce_and_tally
    rs = np.random.RandomState(11 * T + N)
    fwd, bwd = _ratios(rs, (T, N, L))
    fwd[rs.rand(T, N, L) < 0.05] = 0.5625     # sqrt = 0.75: exactly at eps = 0.25
    dead = rs.rand(T) < 0.1
    eps = np.array([0.0, 0.1, 0.25, 0.5, 1.0, np.inf])
    for single in ((False, True) if N == 1 else (False,)):
        for form in ("norm", "squared"):
            out = record_buffers(T, L, single=single)
            assert (out["fwd_max"] is out["fwd_min"]) == single
            rec, counts = reduce_and_tally(fwd, bwd, dead, Summary(L), eps, form, out=out)
            direct = failure_counts(rec, eps, form)
            for k in ("forward", "backward", "both"):
                assert counts[k].tolist() == direct[k].tolist(), (single, form, k)
            full = reduce_batch(fwd, bwd, dead, Summary(L), out=record_buffers(T, L))
            for k in ("fwd_min", "bwd_min"):
                assert np.array_equal(_bits(rec[k]), _bits(full[k]))
            if single:      # min and max differ only where a ratio is NaN (max -inf, min +inf)
                nan = np.isnan(bwd[:, 0])
                assert np.array_equal(_bits(rec["bwd_max"][~nan]), _bits(full["bwd_max"][~nan]))
                assert np.all(rec["bwd_max"][nan] == np.inf) and np.all(full["bwd_max"][nan] == -np.inf)
    if N > 1:
        with pytest.raises(ValueError, match="one input per trial"):
            reduce_batch(fwd, bwd, dead, Summary(L), out=record_buffers(T, L, single=True))
