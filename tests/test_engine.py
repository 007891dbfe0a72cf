"""The engine: reproducibility across threads and batch sizes, merged summaries, tallies, kernels, errors."""

import numba
import numpy as np
import pytest

from mcinit import config, engine
from mcinit.stats import Summary, failure_counts, reduce_batch
from mcinit.store import MemorySink

FIELDS = ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead")
#: with more than one input per trial, the statistics over the inputs too
INPUT_FIELDS = ("fwd_mean", "fwd_sd", "fwd_norm_mean", "fwd_norm_sd", "bwd_mean", "bwd_sd", "bwd_norm_mean",
                "bwd_norm_sd")


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
    fields = FIELDS + (INPUT_FIELDS if kw.get("samples", 1) > 1 else ())
    assert set(base.records) == set(fields) | {"index"}
    for other in others:
        for f in fields:
            assert np.array_equal(base.records[f], other.records[f], equal_nan=True), f
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
    assert set(lent.records) == set(copied.records)
    for f in lent.records:
        assert np.array_equal(lent.records[f], copied.records[f], equal_nan=True), f
    for k in lent.failures:
        assert np.array_equal(lent.failures[k], copied.failures[k])
    for k, v in lent.summary.arrays().items():
        assert np.array_equal(v, copied.summary.arrays()[k]), k


def test_a_trial_does_not_depend_on_the_total_number_of_trials():
    a = _run("projected", None, None, trials=40, input_dim=10, widths="8,8", samples=2)
    b = _run("projected", None, None, trials=100, input_dim=10, widths="8,8", samples=2)
    for f in FIELDS:
        assert np.array_equal(a.records[f], b.records[f][:40])


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


def test_engine_failure_tally_equals_records():
    res = _run("law", None, 333, trials=4000, input_dim=20, widths="16,24,8")
    direct = failure_counts(res.records, res.eps, "norm")
    for k in direct:
        assert np.array_equal(direct[k], res.failures[k])


def test_auto_picks_the_cheapest_exact_kernel():
    def pick(**kw):
        cfg, _ = config.build(trials=1, **kw)
        return engine.resolve(cfg).kernel
    assert pick() == "law"
    assert pick(dist="uniform") == "dense"
    assert pick(init="wn") == "dense"
    assert pick(samples=4, width=256, input_dim=300) == "projected"
    assert pick(samples=2000, width=100, input_dim=500) == "blocked"
    assert pick(samples=2000, width=100, input_dim=500, dist="uniform") == "blocked"
    assert pick(samples=64, width=16, input_dim=8, depth=2, init="wn") == "dense"
    assert pick(samples=4, width=256, input_dim=300, precision="float32") == "blocked"


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


#: one configuration per kernel (law: one input), for the runs of one property
_PROPERTY_CASES = {
    "dense": dict(trials=120, input_dim=10, widths="12,16,6", samples=3, dist="uniform"),
    "blocked": dict(trials=120, input_dim=10, widths="12,16,6", samples=3),
    "projected": dict(trials=150, input_dim=10, widths="12,16,6", samples=3),
    "law": dict(trials=3000, input_dim=10, widths="12,16,6"),
}


@pytest.mark.parametrize("kernel", sorted(_PROPERTY_CASES))
def test_one_property_records_what_a_run_of_both_records(kernel):
    """--properties forward and backward: a run records, reduces and tallies its property
    only, and those records and summaries are bit for bit the corresponding ones of a run
    of both with the same seed and kernel (the forward pass is the same computation; the
    backward property still computes everything).  The dead flag of a forward run counts
    forward deaths only: some rho_l(x) = 0.  Records in memory equal those in a file."""
    kw = dict(_PROPERTY_CASES[kernel], seed=4, init="he-in" if kernel == "dense" else "he")
    both = _run(kernel, 2, 50, **kw)
    fwd_dead = np.any(both.records["fwd_min"] == 0.0, axis=1)
    more = kw.get("samples", 1) > 1         # the statistics over the inputs too
    for props, q, fields in (("forward", 0, ("fwd_min", "fwd_max") + INPUT_FIELDS[:4] * more),
                             ("backward", 1, ("bwd_min", "bwd_max") + INPUT_FIELDS[4:] * more)):
        one = _run(kernel, 2, 50, properties=props, **kw)
        assert one.config.properties == props and one.config.kernel == kernel
        assert set(one.records) == set(fields) | {"dead", "index"}
        for f in fields:
            assert np.array_equal(one.records[f].view(np.int64), both.records[f].view(np.int64)), (props, f)
        dead = fwd_dead if props == "forward" else both.records["dead"]
        assert np.array_equal(one.records["dead"], dead), props
        assert set(one.failures) == {props}
        assert one.failures[props].tolist() == both.failures[props].tolist()
        assert one.summary.quantities == (("fwd",) if props == "forward" else ("bwd",))
        for k, v in one.summary.arrays().items():
            assert np.array_equal(v[q], both.summary.arrays()[k][q]), (props, k)
            assert not np.any(one.summary.count[1 - q]), props
        assert one.summary.dead == int(dead.sum())


def test_forward_deaths_of_a_kernel_that_computes_both():
    """kernels.common.forward_deaths: some rho_l(x) = 0, over the inputs and layers."""
    from mcinit.kernels.common import forward_deaths
    fwd = np.ones((4, 2, 3))
    fwd[1, 1, 2] = 0.0
    fwd[3, 0, 0] = 0.0
    dead = np.ones(4, dtype=bool)
    forward_deaths(fwd, dead)
    assert dead.tolist() == [False, True, False, True]


@pytest.mark.slow       # (the circle's run is in the default suite in test_sup.py)
@pytest.mark.parametrize("n0", [2, 4, 8])
def test_a_forward_run_with_the_supremum_search_records_the_search(n0):
    """The extremes over the sphere (exact at n_0 = 2 and 4, search and bounds at 8) are computed
    beside --properties forward: their columns equal those of a run of both."""
    kw = dict(trials=40, input_dim=n0, widths="6,5", samples=4, sup_search="2,4", seed=2)
    both = _run("dense", 1, 16, **kw)
    fwd = _run("dense", 1, 16, properties="forward", **kw)
    for f in ("fwd_min", "fwd_max", "sup_min", "sup_max", "sup_lower", "sup_upper", "sup_method"):
        assert np.array_equal(fwd.records[f], both.records[f]), f
    assert "bwd_min" not in fwd.records


_CUDA_FORWARD = """
import json, numpy as np
from mcinit import config, engine
out = {}
for k, n in (("law", 1), ("dense", 2)):
    kw = dict(trials=12, input_dim=5, widths="4,3", kernel=k, seed=1, head="gaussian:2", samples=n)
    cfg, data = config.build(**kw)
    cpu = engine.run(cfg, data)
    fwd, _ = config.build(properties="forward", **kw)
    gpu = engine.run(fwd, data, backend="cuda")
    out[k] = dict(fields=sorted(gpu.records), close=bool(np.allclose(gpu.records["fwd_min"], cpu.records["fwd_min"],
                  rtol=1e-9)), dead=gpu.records["dead"].tolist(),
                  want=np.any(cpu.records["fwd_min"] == 0, axis=1).tolist())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_forward_run_on_the_cuda_backend_counts_forward_deaths():
    """The CUDA backend's kernels compute both properties; the engine records the forward
    one and sets the dead flag from the forward ratios (the CUDA simulator, in a subprocess:
    it must be set before numba is imported)."""
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, "-c", _CUDA_FORWARD], env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for k, v in out.items():
        stats_over_inputs = ["fwd_mean", "fwd_norm_mean", "fwd_norm_sd", "fwd_sd"] if k == "dense" else []
        assert v["fields"] == sorted(["dead", "fwd_max", "fwd_min", "index"] + stats_over_inputs) and v["close"], k
        assert v["dead"] == v["want"], k


def test_the_startup_is_timed_apart_from_the_rate(monkeypatch):
    monkeypatch.setattr(engine, "_warm", set())     # as in a new process
    res = _run("law", None, 50, trials=400, input_dim=6, widths="5,7")
    assert 0 < res.startup < res.elapsed and res.computed == 400
    assert res.rate == pytest.approx(400 / (res.elapsed - res.startup))
    again = _run("law", None, 50, trials=400, input_dim=6, widths="5,7")     # compiled already
    assert again.startup == 0 and again.rate == pytest.approx(400 / again.elapsed)
    for k, v in res.summary.arrays().items():      # the trial computed apart changes nothing
        assert np.array_equal(v, again.summary.arrays()[k]), k


def test_a_slow_rate_prints_with_significant_digits():
    from mcinit.summary_text import rate_text, run_summary
    res = _run("law", None, None, trials=3, input_dim=6, widths="5,7")
    res.elapsed, res.startup = 12.0, 4.0            # 3 trials in 8 s after the startup
    head = run_summary(res)[0]
    assert "3 trials in 12.0 s (4.0 s of it compiling or loading the kernels, then 0.375 trials/s)" in head
    res.startup = 0.0
    assert "3 trials in 12.0 s (0.25 trials/s)" in run_summary(res)[0]
    assert [rate_text(r) for r in (22497.4, 45.61, 0.01234)] == ["22,497", "45.6", "0.0123"]


def test_more_threads_than_cores_is_explained():
    limit = numba.config.NUMBA_NUM_THREADS
    with pytest.raises(config.ConfigError) as e:
        engine.set_threads(limit + 1)
    msg = str(e.value)
    assert f"--threads {limit + 1} is more than" in msg and "take turns" in msg and "--ignore-limits" in msg
    assert "\n" not in msg


def test_ignore_limits_runs_more_threads_than_cores(tmp_path):
    import subprocess
    import sys
    n = numba.config.NUMBA_NUM_THREADS + 1
    p = subprocess.run([sys.executable, "-m", "mcinit", "run", "--trials", "50", "--input-dim", "4", "--widths", "5,7",
                        "--threads", str(n), "--ignore-limits", "-o", str(tmp_path / "r.h5")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"{n} threads" in p.stdout


@pytest.mark.parametrize("kernel,kw", [
    ("dense", dict(widths="9,12,7", samples=4)),
    ("blocked", dict(widths="9,12,7", samples=4)),
    ("blocked", dict(widths="9,12,7", samples=4, precision="float32")),
    ("projected", dict(widths="9,12,7", samples=5)),
    ("dense", dict(widths="6,6", samples=3, input_dim=4, init="glorot")),     # dead networks among them
])
def test_records_hold_the_mean_and_sd_over_the_inputs_of_the_kernels_ratios(kernel, kw):
    """fwd_mean .. bwd_norm_sd are np.mean and np.std (ddof 0) over the inputs of the ratios
    the kernel's fill gives and of their square roots; a dead network's gamma (+inf) gives a
    mean of +inf and an sd of NaN, as numpy's; min and max stay the extremes."""
    from mcinit.kernels import blocked, common, dense, projected
    kw = dict(dict(trials=120, input_dim=10, seed=3), **kw)
    cfg, data = config.build(kernel=kernel, **kw)
    rec = engine.run(cfg, data, threads=2, batch_size=50).records
    T, N, L = cfg.trials, cfg.samples, cfg.depth
    fwd, bwd = np.empty((T, N, L)), np.empty((T, N, L))
    dead = np.zeros(T, dtype=bool)
    {"dense": dense, "blocked": blocked, "projected": projected}[kernel].fill(
        common.make_plan(cfg, data), 0, T, fwd, bwd, dead)
    assert np.array_equal(rec["dead"], dead)
    with np.errstate(invalid="ignore"):
        for q, r in (("fwd", fwd), ("bwd", bwd)):
            assert np.array_equal(rec[q + "_min"], r.min(axis=1)) and np.array_equal(rec[q + "_max"], r.max(axis=1))
            for name, v in (("", r), ("norm_", np.sqrt(r))):
                np.testing.assert_allclose(rec[f"{q}_{name}mean"], v.mean(axis=1), rtol=1e-13, atol=0)
                np.testing.assert_allclose(rec[f"{q}_{name}sd"], v.std(axis=1), rtol=1e-9, atol=1e-15)
    if kw.get("init") == "glorot":
        assert dead.any() and np.all(np.isinf(rec["bwd_mean"][dead])) and np.all(np.isnan(rec["bwd_sd"][dead]))


def test_the_statistics_over_the_inputs_equal_those_of_the_independent_numpy_network():
    """The dense kernel's fwd_norm_mean, fwd_norm_sd, bwd_norm_mean, bwd_norm_sd of a few
    trials against the same of tests/reference.py's NumPy network (its own weights,
    inputs and backward pass)."""
    import reference
    cfg, data = config.build(kernel="dense", trials=6, input_dim=10, widths="9,12,7", samples=4, seed=5)
    rec = engine.run(cfg, data, threads=1).records
    for t in range(cfg.trials):
        rho, gamma = reference.trial_ratios(cfg, t, data)
        for q, r, tol in (("fwd", rho, 1e-11), ("bwd", gamma, 1e-9)):
            np.testing.assert_allclose(rec[q + "_mean"][t], r.mean(axis=0), rtol=tol)
            np.testing.assert_allclose(rec[q + "_norm_mean"][t], np.sqrt(r).mean(axis=0), rtol=tol)
            np.testing.assert_allclose(rec[q + "_norm_sd"][t], np.sqrt(r).std(axis=0), rtol=1e3 * tol)


def test_one_input_per_trial_computes_and_keeps_no_statistics_over_the_inputs():
    cfg, data = config.build(kernel="law", trials=500, input_dim=10, widths="8,8")
    rec = engine.run(cfg, data).records
    assert set(rec) == set(FIELDS) | {"index"} and rec["fwd_max"] is not None
