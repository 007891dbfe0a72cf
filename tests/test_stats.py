"""The statistics of mcinit.stats: the summary reduction (bit for bit the value-by-value Welford
recursion it replaced, and against direct statistics), failure counts, fdlibm's log and
Clopper-Pearson intervals."""

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from mcinit import config
from mcinit.stats import (HIST_BINS, HIST_RANGE, Summary, clopper_pearson, deviation, failure_counts, input_fields,
                          log_values, record_buffers, reduce_batch)

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
    out = dict(fwd_min=rec_min[0], fwd_max=rec_max[0], bwd_min=rec_min[1], bwd_max=rec_max[1],
               dead=dead.copy())
    if N > 1:
        for q, src in (("fwd", fwd), ("bwd", bwd)):
            out.update({f"{q}_{k}": v for k, v in _sequential_moments(src).items()})
    return out


def _sequential_moments(src):
    """The statistics over the inputs (stats.INPUT_STATS) of src (T, N, L) by whole-array
    numpy steps in the reducer's order: sums over the inputs x = 0, 1, ... one input at a
    time, then the squared deviations from the mean the same way (so the same bits)."""
    T, N, L = src.shape
    out = {}
    with np.errstate(invalid="ignore", over="ignore"):
        for name, v in (("", src), ("norm_", np.sqrt(src))):
            total = np.zeros((T, L))
            for x in range(N):
                total = total + v[:, x]
            mean = total / N
            sq = np.zeros((T, L))
            for x in range(N):
                d = v[:, x] - mean
                sq = sq + d * d
            out[name + "mean"] = mean
            out[name + "sd"] = np.sqrt(sq / N)
    return out


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
        if k in input_fields():
            # against numpy's steps: the bits but a NaN's sign and payload (the sum of two NaNs
            # is either one: LLVM may commute the addition; numpy's sqrt of -5e-324 is +NaN)
            assert np.array_equal(_bits(_one_nan(r1[k])), _bits(_one_nan(r2[k]))), k
        else:
            assert np.array_equal(_bits(r1[k]), _bits(r2[k])), k


def _one_nan(a):
    return np.where(np.isnan(a), np.nan, a)


@pytest.mark.parametrize("T,N,L", [(1000, 1, 10), (300, 3, 7), (129, 2, 1), (50, 1, 13), (700, 5, 4),
                                   (5, 1, 3), (1, 1, 1), (2000, 1, 2), (200, 40, 30)])
def test_reduction_is_bit_identical_to_the_scalar_recursion(T, N, L):
    """Records and summary, bit for bit (signed zeros and NaN payloads included), in one batch
    and in batches of uneven sizes, from a summary that already holds values; with N > 1
    also the statistics over the inputs (in the batches' own arrays or in out's)."""
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
        parts = [reduce_batch(fwd[a:b], bwd[a:b], dead[a:b], s, out=record_buffers(T + 5, L, input_stats=N > 1 and i % 2 == 1))
                 for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])) if b > a]
        assert set(parts[0]) == set(r_ref)
        r = {k: np.concatenate([p[k] for p in parts]) for k in r_ref}
        _assert_same(s_ref, r_ref, s, r)
        if N > 1:       # the batches' numbers are one batch's, bit for bit (NaN payloads too)
            for k in input_fields():
                whole = r_whole[k] if len(cuts) > 2 else r[k]
                assert np.array_equal(_bits(r[k]), _bits(whole)), k
        r_whole = r


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
    made) equal failure_counts of the records, in every form, with zeros, infinities, NaN,
    negatives and values at a tolerance; with one input per trial also into one array for
    min and max (record_buffers(single=True)), whose records are the min records."""
    from mcinit.stats import failure_counts, reduce_and_tally
    rs = np.random.RandomState(11 * T + N)
    fwd, bwd = _ratios(rs, (T, N, L))
    fwd[rs.rand(T, N, L) < 0.05] = 0.5625     # sqrt = 0.75: exactly at eps = 0.25
    dead = rs.rand(T) < 0.1
    eps = np.array([0.0, 0.1, 0.25, 0.5, 1.0, np.inf])
    for single in ((False, True) if N == 1 else (False,)):
        for form in ("norm", "squared", "symmetric"):
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


def test_summary_equals_direct_statistics():
    cfg, data = config.build(trials=400, input_dim=12, widths="10,14,6", samples=5, kernel="dense")
    from mcinit.kernels import common, dense
    plan = common.make_plan(cfg, data)
    fwd = np.empty((400, 5, 3))
    bwd = np.empty((400, 5, 3))
    dead = np.zeros(400, dtype=bool)
    dense.fill(plan, 0, 400, fwd, bwd, dead)
    s = Summary(3)
    rec = reduce_batch(fwd[:150], bwd[:150], dead[:150], s)
    rec2 = reduce_batch(fwd[150:], bwd[150:], dead[150:], s)
    np.testing.assert_array_equal(np.concatenate([rec["fwd_min"], rec2["fwd_min"]]), fwd.min(axis=1))
    np.testing.assert_array_equal(np.concatenate([rec["bwd_max"], rec2["bwd_max"]]), bwd.max(axis=1))
    for q, arr in enumerate((fwd, bwd)):
        for l in range(3):
            v = arr[:, :, l].ravel()
            v = v[np.isfinite(v)]
            assert s.count[q, 0, l] == v.size
            np.testing.assert_allclose(s.mean[q, 0, l], v.mean(), rtol=1e-12)
            np.testing.assert_allclose(s.m2[q, 0, l] / (v.size - 1), v.var(ddof=1), rtol=1e-10)
            lv = np.log(v[v > 0])
            np.testing.assert_allclose(s.mean[q, 1, l], lv.mean(), rtol=1e-10, atol=1e-14)
            # logarithms: fdlibm's (stats.log_values), within an ulp of NumPy's
            np.testing.assert_allclose(s.min[q, 1, l], lv.min(), rtol=3e-16, atol=3e-16)
            assert s.max[q, 0, l] == v.max()
            h, _ = np.histogram(np.clip(v, 0, np.nextafter(4.0, 0)), bins=Summary.edges(0))
            over = np.sum(v >= 4.0)
            assert s.hist[q, 0, l, -1] == over
            np.testing.assert_array_equal(s.hist[q, 0, l, 1:-1] + np.eye(1, 400, 399, dtype=int)[0] * over, h)


def test_failure_counts_by_hand():
    # exactly representable values: sqrt(0.5625) = 0.75, sqrt(1.5625) = 1.25
    rec = dict(fwd_min=np.array([[0.5625, 0.9], [0.5, 0.0], [1.0, 1.0]]),
               fwd_max=np.array([[1.5625, 1.1], [1.0, 0.0], [1.0, 1.0]]),
               bwd_min=np.array([[1.0, 1.0], [np.inf, np.inf], [0.5625, 1.0]]),
               bwd_max=np.array([[1.0, 1.0], [np.inf, np.inf], [1.0, 1.0]]))
    # norm form: trial 0 deviates by 0.25 (not > 0.25); trial 1 is dead; trial 2 bwd by 0.25
    c = failure_counts(rec, [0.1, 0.25, 0.3, 2.0], "norm")
    assert c["forward"].tolist() == [2, 1, 1, 1]
    assert c["backward"].tolist() == [2, 1, 1, 1]
    assert c["both"].tolist() == [3, 1, 1, 1]
    # squared form: trial 0 forward deviates by 0.5625, trial 2 backward by 0.4375
    c = failure_counts(rec, [0.4, 0.5, 0.6], "squared")
    assert c["forward"].tolist() == [2, 2, 1] and c["backward"].tolist() == [2, 1, 1]


def test_symmetric_form_by_hand_and_vanishing_ratios():
    """The symmetric form max(sqrt(r), 1/sqrt(r)) - 1: the norm form above 1; below 1 it grows
    without bound, so a ratio of 0 (a dead layer forward, a vanished gamma backward) fails
    at every eps, where the norm form at eps >= 1 sees nothing."""
    rec = dict(fwd_min=np.array([[0.25, 1.0], [1e-4, 1.0], [1.0, 1.0], [1.0, 0.0]]),
               fwd_max=np.array([[1.0, 1.0], [1.0, 1.0], [4.0, 1.0], [1.0, 0.0]]),
               bwd_min=np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [np.inf, np.inf]]),
               bwd_max=np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [np.inf, np.inf]]))
    eps = [0.5, 1.0, 98.9, 99.1, 1e300]
    c = failure_counts(rec, eps, "symmetric")
    # forward: trial 0 deviates by 1 (sqrt 0.5), 1 by 99, 2 by 1 (sqrt 4), 3 is dead
    assert c["forward"].tolist() == [4, 2, 2, 1, 1]
    # backward: trial 2 has gamma = 0 (every eps), trial 3 is dead (gamma = inf)
    assert c["backward"].tolist() == [2, 2, 2, 2, 2]
    assert c["both"].tolist() == [4, 3, 3, 2, 2]
    n = failure_counts(rec, eps, "norm")
    assert n["forward"].tolist() == [3, 1, 1, 1, 1]         # 1e-4 deviates by 0.99 only
    assert n["backward"].tolist() == [2, 1, 1, 1, 1]        # gamma = 0 deviates by 1 only
    with pytest.raises(ValueError, match="symmetric"):
        failure_counts(rec, eps, "log")


def test_failure_counts_equal_the_layerwise_definition():
    """The tally's shortcut (the largest deviation is at a trial's smallest or largest
    ratio) gives the counts of the definition, layer by layer, with zeros, infinities,
    NaNs and values exactly at a tolerance, in every form (the symmetric form computed
    here directly with NumPy); mcinit.stats.deviation is the same definition."""
    rs = np.random.RandomState(3)
    T, L = 20000, 7
    rec = {}
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max"):
        a = rs.gamma(20, 1 / 20, (T, L))
        for v, p in ((0.0, 0.01), (np.inf, 0.01), (np.nan, 0.005), (1.0, 0.02), (0.5625, 0.02), (1.5625, 0.02),
                     (0.25, 0.02), (4.0, 0.02), (1e-12, 0.01)):
            a[rs.rand(T, L) < p] = v
        rec[k] = a
    # 0.25 and 4 deviate by exactly 1 in the symmetric form (sqrt 0.5 and 2)
    eps = np.array([0.0, 0.1, 0.25, 0.3, 0.4375, 0.5625, 1.0, 2.0, 1e6])
    for form in ("norm", "squared", "symmetric"):
        def dev(r):
            with np.errstate(invalid="ignore", divide="ignore"):
                if form == "symmetric":
                    d = np.maximum(np.sqrt(r), 1.0 / np.sqrt(r)) - 1.0      # +inf at r = 0
                else:
                    d = np.abs(np.sqrt(r) - 1.0) if form == "norm" else np.abs(r - 1.0)
            return np.where(np.isnan(r) | (r == np.inf), np.inf, d)
        fd = np.maximum(dev(rec["fwd_min"]), dev(rec["fwd_max"])).max(axis=1)
        bd = np.maximum(dev(rec["bwd_min"]), dev(rec["bwd_max"])).max(axis=1)
        dead = (rec["fwd_min"] == 0.0).any(axis=1)
        ff = dead[:, None] | (fd[:, None] > eps)
        bf = bd[:, None] > eps
        c = failure_counts(rec, eps, form)
        for k in rec:
            np.testing.assert_array_equal(deviation(rec[k], form), dev(rec[k]))
        assert c["forward"].tolist() == ff.sum(axis=0).tolist()
        assert c["backward"].tolist() == bf.sum(axis=0).tolist()
        assert c["both"].tolist() == (ff | bf).sum(axis=0).tolist()


def test_log_values_is_within_an_ulp_of_libm():
    """stats.log_values (fdlibm's algorithm, vectorised) against math.log over the whole
    range, subnormals and the special values included."""
    rs = np.random.RandomState(5)
    x = np.concatenate([rs.gamma(50, 1 / 50, 200000), np.exp(rs.uniform(-700, 700, 200000)),
                        1 + rs.uniform(-1e-6, 1e-6, 20000), rs.uniform(0, 1e-308, 1000),
                        [1.0, 2.0, 0.5, np.sqrt(2), np.sqrt(2) / 2, 5e-324, 2.2250738585072014e-308,
                         1.7976931348623157e308, 0.0, -0.0, -1.0, np.inf, -np.inf, np.nan]])
    out = np.empty_like(x)
    log_values(x, out, x.size, np.empty(2 * x.size, dtype=np.int64))
    ok = (x > 0) & np.isfinite(x)
    assert np.all(np.isnan(out[~ok]))
    ref = np.array([math.log(v) for v in x[ok]])
    assert np.all(np.abs(out[ok] - ref) <= np.spacing(np.abs(ref)))
    assert out[x == 1.0][0] == 0.0


def test_summary_equals_the_sequential_welford_recursion():
    """reduce_batch's summary is, bit for bit, Welford's recursion run value by value in
    (trial, input) order per (quantity, space, layer), with ratios that are 0, inf or NaN."""
    rs = np.random.RandomState(4)
    T, N, L = 700, 3, 4
    fwd = rs.gamma(30, 1 / 30, (T, N, L))
    bwd = rs.gamma(3, 1 / 2, (T, N, L))
    fwd[rs.rand(T, N, L) < 0.02] = 0.0
    bwd[rs.rand(T, N, L) < 0.02] = np.inf
    bwd[rs.rand(T, N, L) < 0.01] = np.nan
    s = Summary(L)
    for lo in range(0, T, 256):
        reduce_batch(fwd[lo:lo + 256], bwd[lo:lo + 256], np.zeros(min(256, T - lo), dtype=bool), s)
    for q, arr in enumerate((fwd, bwd)):
        for sp in range(2):
            for l in range(L):
                n, mean, m2 = 0, 0.0, 0.0
                hist = np.zeros(HIST_BINS + 2, dtype=np.int64)
                lo_, hi_ = HIST_RANGE[sp]
                vals = arr[:, :, l].ravel().copy()
                logs = np.empty_like(vals)
                log_values(vals, logs, vals.size, np.empty(2 * vals.size, dtype=np.int64))
                for r, lr in zip(vals, logs):
                    if not math.isfinite(r) or (sp == 1 and not r > 0.0):
                        continue
                    v = r if sp == 0 else lr
                    n += 1
                    d = v - mean
                    mean += d / n
                    m2 += d * (v - mean)
                    b = 0 if v < lo_ else (HIST_BINS + 1 if v >= hi_ else
                                           min(HIST_BINS, 1 + int((v - lo_) / (hi_ - lo_) * HIST_BINS)))
                    hist[b] += 1
                assert s.count[q, sp, l] == n
                assert s.mean[q, sp, l] == mean and s.m2[q, sp, l] == m2, (q, sp, l)
                assert np.array_equal(s.hist[q, sp, l], hist)


def test_clopper_pearson_matches_scipy():
    for k, n in ((0, 10), (3, 10), (10, 10), (517, 100000)):
        lo, hi = clopper_pearson(k, n, 0.95)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        assert np.isclose(lo, ci.low, rtol=1e-9, atol=1e-15) and np.isclose(hi, ci.high, rtol=1e-9)


@pytest.mark.parametrize("T,N,L", [(300, 3, 4), (200, 1, 5)])
def test_one_quantity_reduces_and_tallies_as_its_part_of_both(T, N, L):
    """A summary of one quantity (properties forward or backward) reduces that quantity
    only: its records, accumulators and failure counts are bit for bit those of a summary
    of both, the other quantity's accumulators stay empty, and its array is never read
    (None, or anything at all).  failure_counts of the records counts that property only."""
    from mcinit.stats import PROPS_OF, QUANTITIES_OF, properties_of, record_fields, reduce_and_tally
    rs = np.random.RandomState(7 * T + N)
    fwd, bwd = _ratios(rs, (T, N, L))
    fwd[rs.rand(T, N, L) < 0.03] = 0.0
    dead = rs.rand(T) < 0.1
    eps = np.array([0.1, 0.25, 0.5, 2.0])
    both = Summary(L)
    rec_b, counts_b = reduce_and_tally(fwd, bwd, dead, both, eps, "norm")
    for props in ("forward", "backward"):
        qs = QUANTITIES_OF[props]
        q = 0 if props == "forward" else 1
        one = Summary(L, qs)
        assert one.quantities == qs and properties_of(qs) == props
        out = record_buffers(T, L, single=N == 1, quantities=qs, input_stats=N > 1)
        assert set(out) == set(record_fields(qs, input_stats=N > 1)) | {"dead"}
        junk = np.full((T, N, L), np.nan)
        args = (fwd, None) if props == "forward" else (junk, bwd)
        rec, counts = reduce_and_tally(*args, dead, one, eps, "norm", out=out)
        assert set(rec) == set(record_fields(qs, N > 1)) | {"dead"} and set(counts) == set(PROPS_OF[props]) == {props}
        for k in record_fields(qs, N > 1):
            assert np.array_equal(_bits(rec[k]), _bits(rec_b[k])), (props, k)
        assert counts[props].tolist() == counts_b[props].tolist()
        assert failure_counts(rec, eps)[props].tolist() == counts_b[props].tolist()
        assert set(failure_counts(rec, eps)) == {props}
        for key in ACCUMULATORS:
            assert np.array_equal(_bits(getattr(one, key)[q]), _bits(getattr(both, key)[q])), (props, key)
        assert np.all(one.count[1 - q] == 0) and np.all(one.hist[1 - q] == 0)
        assert one.trials == both.trials and one.dead == both.dead
        merged = one.copy()
        merged.merge(one)
        assert merged.quantities == qs and merged.trials == 2 * T
        with pytest.raises(ValueError, match="cannot merge"):
            merged.merge(both)
    with pytest.raises(ValueError, match="quantities"):
        Summary(L, ("fwd", "rho"))
