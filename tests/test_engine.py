"""The engine: reproducibility across threads and batch sizes, summaries, failure counts."""

import numba
import numpy as np
import pytest
from scipy import stats

from mcinit import config, engine
from mcinit.stats import Summary, clopper_pearson, failure_counts, reduce_batch
from mcinit.store import MemorySink

FIELDS = ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead")


def _run(kernel, threads, batch_size, **kw):
    cfg, data = config.build(kernel=kernel, **kw)
    return engine.run(cfg, data, threads=threads, batch_size=batch_size)


@pytest.mark.parametrize("kernel,kw", [
    ("dense", dict(trials=150, input_dim=20, widths="16,24,8", samples=3, init="he-in")),
    ("projected", dict(trials=300, input_dim=20, widths="16,24,8", samples=3)),
    ("law", dict(trials=5000, input_dim=20, widths="16,24,8")),
])
def test_bit_identical_across_threads_and_batch_sizes(kernel, kw):
    base = _run(kernel, 1, kw["trials"], **kw)
    others = [_run(kernel, 2, 7, **kw), _run(kernel, numba.config.NUMBA_NUM_THREADS, 64, **kw)]
    for other in others:
        for f in FIELDS:
            assert np.array_equal(base.records[f], other.records[f]), f
        for k, v in base.summary.arrays().items():
            assert np.array_equal(v, other.summary.arrays()[k]), k
    assert np.array_equal(base.records["index"], np.arange(kw["trials"]))


class _CopyingSink(MemorySink):
    """A MemorySink that lends no storage: the engine's own reused record arrays, copied."""

    def buffers(self, first, count, depth):
        return None


@pytest.mark.parametrize("kernel", ["law", "dense"])
def test_records_reduced_in_the_sinks_storage_equal_copied_ones(kernel):
    kw = dict(trials=3000 if kernel == "law" else 200, input_dim=12, widths="16,8", samples=1 if kernel == "law" else 2)
    cfg, data = config.build(kernel=kernel, **kw)
    lent = engine.run(cfg, data, threads=2, batch_size=97)
    copied = engine.run(cfg, data, sink=_CopyingSink(), threads=2, batch_size=97)
    assert lent.sink.buffers(0, 1, 2) is not None and lent.failures.keys() == copied.failures.keys()
    for f in FIELDS + ("index",):
        assert np.array_equal(lent.records[f], copied.records[f]), f
    for k in lent.failures:
        assert np.array_equal(lent.failures[k], copied.failures[k])
    for k, v in lent.summary.arrays().items():
        assert np.array_equal(v, copied.summary.arrays()[k]), k


def test_a_trial_does_not_depend_on_the_total_number_of_trials():
    a = _run("projected", None, None, trials=40, input_dim=10, widths="8,8", samples=2)
    b = _run("projected", None, None, trials=100, input_dim=10, widths="8,8", samples=2)
    for f in FIELDS:
        assert np.array_equal(a.records[f], b.records[f][:40])


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


def test_summary_merge_equals_the_single_run():
    cfg, data = config.build(trials=3000, input_dim=12, widths="10,14,6", kernel="law")
    whole = engine.run(cfg, data).summary
    parts = []
    for lo, hi in ((0, 1000), (1000, 3000)):
        s = Summary(3)
        from mcinit.kernels import common, law
        plan = common.make_plan(cfg, data)
        fwd = np.empty((hi - lo, 1, 3))
        bwd = np.empty((hi - lo, 1, 3))
        dead = np.zeros(hi - lo, dtype=bool)
        law.fill(plan, lo, hi - lo, fwd, bwd, dead)
        reduce_batch(fwd, bwd, dead, s)
        parts.append(s)
    parts[0].merge(parts[1])
    np.testing.assert_array_equal(parts[0].count, whole.count)
    np.testing.assert_array_equal(parts[0].hist, whole.hist)
    np.testing.assert_allclose(parts[0].mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(parts[0].m2, whole.m2, rtol=1e-10)
    assert parts[0].trials == whole.trials == 3000


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


def test_failure_counts_equal_the_layerwise_definition():
    """The tally's shortcut (the largest deviation is at a trial's smallest or largest
    ratio) gives the counts of the definition, layer by layer, with zeros, infinities,
    NaNs and values exactly at a tolerance."""
    rs = np.random.RandomState(3)
    T, L = 20000, 7
    rec = {}
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max"):
        a = rs.gamma(20, 1 / 20, (T, L))
        for v, p in ((0.0, 0.01), (np.inf, 0.01), (np.nan, 0.005), (1.0, 0.02), (0.5625, 0.02), (1.5625, 0.02)):
            a[rs.rand(T, L) < p] = v
        rec[k] = a
    eps = np.array([0.0, 0.1, 0.25, 0.3, 0.4375, 0.5625, 1.0, 2.0])
    for form in ("norm", "squared"):
        def dev(r):
            with np.errstate(invalid="ignore"):
                d = np.abs(np.sqrt(r) - 1.0) if form == "norm" else np.abs(r - 1.0)
            return np.where(np.isnan(r) | (r == np.inf), np.inf, d)
        fd = np.maximum(dev(rec["fwd_min"]), dev(rec["fwd_max"])).max(axis=1)
        bd = np.maximum(dev(rec["bwd_min"]), dev(rec["bwd_max"])).max(axis=1)
        dead = (rec["fwd_min"] == 0.0).any(axis=1)
        ff = dead[:, None] | (fd[:, None] > eps)
        bf = bd[:, None] > eps
        c = failure_counts(rec, eps, form)
        assert c["forward"].tolist() == ff.sum(axis=0).tolist()
        assert c["backward"].tolist() == bf.sum(axis=0).tolist()
        assert c["both"].tolist() == (ff | bf).sum(axis=0).tolist()


def test_log_values_is_within_an_ulp_of_libm():
    """stats.log_values (fdlibm's algorithm, vectorised) against math.log over the whole
    range, subnormals and the special values included."""
    import math
    from mcinit.stats import log_values
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
    import math
    from mcinit.stats import HIST_BINS, HIST_RANGE, log_values
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


def test_engine_failure_tally_equals_records():
    res = _run("law", None, 333, trials=4000, input_dim=20, widths="16,24,8")
    direct = failure_counts(res.records, res.eps, "norm")
    for k in direct:
        assert np.array_equal(direct[k], res.failures[k])


def test_clopper_pearson_matches_scipy():
    for k, n in ((0, 10), (3, 10), (10, 10), (517, 100000)):
        lo, hi = clopper_pearson(k, n, 0.95)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        assert np.isclose(lo, ci.low, rtol=1e-9, atol=1e-15) and np.isclose(hi, ci.high, rtol=1e-9)


def test_auto_picks_the_cheapest_exact_kernel():
    def pick(**kw):
        cfg, _ = config.build(trials=1, **kw)
        return engine.resolve(cfg).kernel
    assert pick() == "law"
    assert pick(dist="uniform") == "dense"
    assert pick(init="wn") == "dense"
    assert pick(samples=4, width=256, input_dim=300) == "projected"
    assert pick(samples=2000, width=100, input_dim=500) == "dense"


class _FailingSink(MemorySink):
    def write(self, first, records, summary):
        if first >= 300:
            raise OSError("disk full")
        super().write(first, records, summary)


@pytest.mark.parametrize("threads", [1, 2])
def test_errors_of_any_step_reach_the_caller(threads, monkeypatch):
    """An error in a batch's fill (a background thread with more than one thread), in its
    reduction or in the sink comes back to the caller as itself, after the batches before
    it were handed over in order; the run does not hang."""
    from mcinit.kernels import law
    cfg, data = config.build(kernel="law", trials=2000, input_dim=12, widths="16,8")
    real = law.fill

    def failing_fill(plan, first, count, fwd, bwd, dead):
        if first >= 500:
            raise RuntimeError("kernel failed")
        real(plan, first, count, fwd, bwd, dead)

    monkeypatch.setattr(law, "fill", failing_fill)
    sink = MemorySink()
    with pytest.raises(RuntimeError, match="kernel failed"):
        engine.run(cfg, data, sink=sink, threads=threads, batch_size=100)
    assert sink.completed == 500 and np.array_equal(sink.records["index"], np.arange(500))
    monkeypatch.setattr(law, "fill", real)
    with pytest.raises(OSError, match="disk full"):
        engine.run(cfg, data, sink=_FailingSink(), threads=threads, batch_size=100)

    def failing_reduce(*a, **k):
        raise ValueError("reduction failed")

    monkeypatch.setattr(engine, "reduce_and_tally", failing_reduce)
    with pytest.raises(ValueError, match="reduction failed"):
        engine.run(cfg, data, threads=threads, batch_size=100)
