"""The engine: reproducibility across threads and batch sizes, summaries, failure counts."""

import numba
import numpy as np
import pytest
from scipy import stats

from mcinit import config, engine
from mcinit.stats import Summary, clopper_pearson, failure_counts, reduce_batch

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
            assert s.min[q, 1, l] == lv.min() and s.max[q, 0, l] == v.max()
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
