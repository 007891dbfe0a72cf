"""Loading results, failure tables against hand computation, and sweeps."""

import json

import h5py
import numpy as np
import pytest
from scipy import stats

import mcinit
from mcinit import config, engine, sweep, theory
from mcinit.stats import INPUT_STATS
from mcinit.store import HDF5Sink, StoreError


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sw") / "sweep.h5")
    runs = sweep.expand(dict(trials=6000, width="24,48", depth="3", input_dim=20, init="he,glorot",
                             seed=3))
    sweep.run_sweep(runs, path)
    return path


def test_sweep_layout(sweep_file):
    with h5py.File(sweep_file, "r") as f:
        assert f.attrs["kind"] == "sweep" and f.attrs["format_version"] == 1
        names = json.loads(f.attrs["runs"])
        assert names == ["w24-d3-n1-he", "w24-d3-n1-glorot", "w48-d3-n1-he", "w48-d3-n1-glorot"]
        for n in names:
            g = f["runs"][n]
            assert g.attrs["format"] == "mcinit" and g.attrs["completed"] == 6000
            assert g["trials/fwd_max"].shape == (6000, 3)
            c = json.loads(g.attrs["config"])
            assert c["widths"] == [int(n[1:3])] * 3 and c["init"] == n.split("-")[-1]


def test_failure_table_equals_hand_computation(sweep_file):
    res = mcinit.load(sweep_file)
    eps = [0.1, 0.3, 0.7]
    for form in ("norm", "squared"):
        for prop in ("forward", "backward", "both"):
            df = res.failure(eps, prop=prop, form=form, level=0.9)
            assert len(df) == 4 * len(eps)
            with h5py.File(sweep_file, "r") as f:
                for _, row in df.iterrows():
                    t = f["runs"][row["run"]]["trials"]
                    f_ = (lambda r: np.sqrt(r)) if form == "norm" else (lambda r: r)
                    fdev = np.maximum(np.abs(f_(t["fwd_min"][...]) - 1), np.abs(f_(t["fwd_max"][...]) - 1)).max(1)
                    fdead = (t["fwd_min"][...] == 0).any(1)
                    bdev = np.maximum(np.abs(f_(t["bwd_min"][...]) - 1), np.abs(f_(t["bwd_max"][...]) - 1)).max(1)
                    ff = (fdev > row["eps"]) | fdead
                    bf = bdev > row["eps"]
                    k = int({"forward": ff, "backward": bf, "both": ff | bf}[prop].sum())
                    assert row["failures"] == k and row["trials"] == 6000
                    assert row["p_hat"] == k / 6000
                    ci = stats.binomtest(k, 6000).proportion_ci(0.9, method="exact")
                    assert np.isclose(row["ci_low"], ci.low, rtol=1e-9, atol=1e-15)
                    assert np.isclose(row["ci_high"], ci.high, rtol=1e-9)


def test_failure_table_bounds(sweep_file):
    df = mcinit.load(sweep_file).failure([0.5], prop="forward")
    he = df[df.init == "he"].iloc[0]
    assert he["paper_delta"] == theory.paper_delta(24, 0.5, 1, 3)
    assert he["p_exact"] == pytest.approx(theory.exact_forward_failure(0.5, [24, 24, 24]), rel=1e-12)
    assert he["chernoff"] >= he["p_exact"]
    # the measurement agrees with the exact value: two-sided binomial test, p > 1e-6
    for _, row in df.iterrows():
        assert stats.binomtest(int(row["failures"]), 6000, row["p_exact"]).pvalue > 1e-6
    assert np.isnan(df[df.init == "glorot"].iloc[0]["paper_delta"])   # the paper bound is for He
    back = mcinit.load(sweep_file).failure([0.5], prop="backward")
    assert back["p_exact"].isna().all() and back["chernoff"].isna().all()


def test_layers_table(sweep_file):
    res = mcinit.load(sweep_file)
    lt = res.layers()
    assert len(lt) == 4 * 3
    rec = res["w48-d3-n1-he"].records()
    row = lt[(lt.run == "w48-d3-n1-he") & (lt.layer == 3)].iloc[0]
    assert row["rho_mean"] == pytest.approx(rec["fwd_max"][:, 2].mean(), rel=1e-12)
    assert row["rho_sd"] == pytest.approx(rec["fwd_max"][:, 2].std(ddof=1), rel=1e-9)
    assert row["exact_rho_mean"] == 1.0


def test_load_sees_only_completed_trials_while_running(tmp_path):
    path = str(tmp_path / "live.h5")
    cfg, data = config.build(trials=5000, input_dim=10, widths="8,8", kernel="law")
    seen = []

    def peek(done):
        seen.append(mcinit.load(path).runs[0].completed)

    engine.run(cfg, data, sink=HDF5Sink(path), batch_size=1000, on_batch=peek)
    res = mcinit.load(path)
    assert res.runs[0].completed == 5000 and len(res.runs[0].records()["index"]) == 5000
    assert seen and max(seen) <= 5000


def test_load_refuses_other_files(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "other"
    with pytest.raises(StoreError, match="not an mcinit"):
        mcinit.load(p)
    (tmp_path / "t.h5").write_text("hello")
    with pytest.raises(StoreError, match="cannot open"):
        mcinit.load(tmp_path / "t.h5")
    with pytest.raises(StoreError, match="not found"):
        mcinit.load(tmp_path / "none.h5")


def test_sweep_validates_every_run_before_writing(tmp_path):
    with pytest.raises(config.ConfigError):
        sweep.expand(dict(trials=10, width="8,-1", input_dim=4))
    with pytest.raises(config.ConfigError, match="twice"):
        sweep.expand(dict(trials=10, width="8,8", input_dim=4))


def test_a_stopped_sweep_resumes_to_the_uninterrupted_one(tmp_path):
    runs = sweep.expand(dict(trials=900, width="8,12", depth=2, input_dim=5, samples=2, seed=4))
    whole = str(tmp_path / "whole.h5")
    sweep.run_sweep(runs, whole, batch_size=200)
    part = str(tmp_path / "part.h5")
    calls = []
    with pytest.raises(engine.Stopped):
        sweep.run_sweep(runs, part, batch_size=200, stop_requested=lambda: calls.append(1) or len(calls) >= 6)
    sweep.run_sweep(runs, part, batch_size=300, resume=True)
    a, b = mcinit.load(whole), mcinit.load(part)
    for ra, rb in zip(a.runs, b.runs):
        assert ra.name == rb.name and rb.completed == 900
        for k, v in ra.records().items():
            assert np.array_equal(v, rb.records()[k], equal_nan=True), (ra.name, k)
        for k, v in ra.summary().arrays().items():
            assert np.array_equal(v, rb.summary().arrays()[k]), (ra.name, k)


@pytest.fixture(scope="module")
def property_files(tmp_path_factory):
    """The same run (seed, kernel) with each value of --properties, and a sweep of
    properties x precision."""
    d = tmp_path_factory.mktemp("props")
    kw = dict(trials=400, input_dim=8, widths="10,12", samples=2, kernel="blocked", seed=6)
    for props in ("both", "forward", "backward"):
        cfg, data = config.build(properties=props, **kw)
        engine.run(cfg, data, sink=HDF5Sink(str(d / f"{props}.h5")))
    runs = sweep.expand(dict(kw, properties="forward,both", precision="float64,float32"))
    sweep.run_sweep(runs, str(d / "sweep.h5"))
    return d


def test_results_of_one_property(property_files):
    """A file of one property loads: its failure rows are those of the run of both, the other
    property is a ValueError of one line, its layers show NaN for what was not computed,
    and its records are its own fields."""
    both = mcinit.load(property_files / "both.h5")
    eps = [0.1, 0.5, 1.0]
    for props, other, col in (("forward", "backward", "gamma"), ("backward", "forward", "rho")):
        res = mcinit.load(property_files / f"{props}.h5")
        run = res.runs[0]
        assert run.props == (props,) and run.config.properties == props
        mine = res.failure(eps, prop=props)
        ref = both.failure(eps, prop=props)
        for c in ("failures", "p_hat", "ci_low", "ci_high", "paper_delta", "trials"):
            assert mine[c].tolist() == ref[c].tolist(), (props, c)
        for p in (other, "both"):
            with pytest.raises(ValueError, match=f"no run of this file computed the {p} property") as e:
                res.failure(eps, prop=p)
            assert "\n" not in str(e.value)
        assert set(run.failure_counts(eps)) == {props}
        lay = res.layers()
        assert lay[f"{col}_mean"].isna().all() and lay[f"{col}_sd"].isna().all() and lay[f"log_{col}_mean"].isna().all()
        mcol = "gamma" if col == "rho" else "rho"
        assert lay[f"{mcol}_mean"].tolist() == both.layers()[f"{mcol}_mean"].tolist()
        qi = 0 if props == "forward" else 1
        assert lay["count"].tolist() == both.runs[0].summary().count[qi, 0].tolist()
        assert set(lay["properties"]) == {props}
        rec = run.records()
        q = "fwd" if props == "forward" else "bwd"
        assert set(rec) == {f"{q}_min", f"{q}_max", "dead", "index"} | {f"{q}_{s}" for s in INPUT_STATS}
        for k in rec:
            assert np.array_equal(rec[k], both.runs[0].records()[k], equal_nan=True), k
        assert np.isnan(run.over_inputs(5)[f"{'bwd' if q == 'fwd' else 'fwd'}_norm_mean"]).all()
        with pytest.raises(ValueError, match="--properties"):
            run.records((("bwd_min",) if props == "forward" else ("fwd_min",)))


def test_a_sweep_lists_properties_and_precisions(property_files):
    """--properties and --precision take lists in a sweep: one run each, named by them, the
    runs of one property in format version 2 (3 with their two inputs); failure tables hold the runs that computed
    the property asked for."""
    res = mcinit.load(property_files / "sweep.h5")
    names = [r.name for r in res.runs]
    assert names == ["w10_12-d2-n2-he-forward", "w10_12-d2-n2-he", "w10_12-d2-n2-he-float32-forward",
                     "w10_12-d2-n2-he-float32"]
    assert [(r.config.precision, r.config.properties) for r in res.runs] == [
        ("float64", "forward"), ("float64", "both"), ("float32", "forward"), ("float32", "both")]
    with h5py.File(property_files / "sweep.h5", "r") as f:
        assert [f["runs"][n].attrs["format_version"] for n in names] == [3, 3, 3, 3]
    assert sorted(res.failure([0.5], prop="backward").run) == sorted(names[1::2])
    assert sorted(res.failure([0.5], prop="forward").run) == sorted(names)
    assert [r.name for r in res.with_property("both").runs] == names[1::2]
    fwd = res.failure([0.5], prop="forward").set_index("run")
    # the forward run and the run of both: the same networks, the same failures
    assert fwd.loc[names[0], "failures"] == fwd.loc[names[1], "failures"]
    assert fwd.loc[names[2], "failures"] == fwd.loc[names[3], "failures"]


def test_tables_carry_what_identifies_their_runs(sweep_file, property_files):
    """layers() and failure() hold each run's configuration, so that tables of several files
    concatenate into one with every run told apart."""
    import pandas as pd
    res = mcinit.load(sweep_file)
    lt = res.layers()
    for key in ("trials", "trials_planned", "input_dim", "widths", "depth", "samples", "data", "init", "dist",
                "head", "kernel", "precision", "properties", "seed", "config_hash"):
        assert key in lt.columns, key
    for run in res.runs:
        rows = lt[lt.run == run.name]
        assert set(rows.init) == {run.config.init} and set(rows.config_hash) == {run.config_hash}
        assert set(rows.widths) == {",".join(map(str, run.config.widths))} and set(rows.seed) == {3}
        assert set(rows.trials) == {6000} and set(rows.trials_planned) == {6000} and set(rows["head"]) == {"softmax:20"}
    assert list(lt.columns[:4]) == ["run", "layer", "width", "count"]       # the earlier columns first
    other = mcinit.load(property_files / "sweep.h5")
    both = pd.concat([lt, other.layers()], ignore_index=True)
    assert len(both) == 12 + 4 * 2 and set(both.precision) == {"float64", "float32"}
    assert both.groupby(["config_hash", "layer"]).size().max() == 1
    ft = res.failure([0.5])
    assert set(ft.seed) == {3} and set(ft.trials_planned) == {6000} and "config_hash" in ft.columns
    assert list(ft.columns[-2:]) == ["bound_violated", "paper_vacuous"]


def test_failure_by_layer_equals_hand_computation(sweep_file):
    res = mcinit.load(sweep_file)
    eps = [0.1, 0.3]
    whole = res.failure(eps, prop="both").set_index(["run", "eps"])
    for prop in ("forward", "backward", "both"):
        for cumulative in (False, True):
            df = res.failure_by_layer(eps, prop=prop, cumulative=cumulative, level=0.9)
            assert len(df) == 4 * len(eps) * 3
            for _, row in df.iterrows():
                rec = res[row["run"]].records()
                sl = slice(0, row["layer"]) if cumulative else slice(row["layer"] - 1, row["layer"])
                f = (np.maximum(np.abs(np.sqrt(rec["fwd_min"][:, sl]) - 1), np.abs(np.sqrt(rec["fwd_max"][:, sl]) - 1))
                     .max(1) > row["eps"]) | (rec["fwd_min"][:, sl] == 0).any(1)
                b = np.maximum(np.abs(np.sqrt(rec["bwd_min"][:, sl]) - 1),
                               np.abs(np.sqrt(rec["bwd_max"][:, sl]) - 1)).max(1) > row["eps"]
                k = int({"forward": f, "backward": b, "both": f | b}[prop].sum())
                assert row["failures"] == k and row["p_hat"] == k / 6000 and row["trials"] == 6000
                ci = stats.binomtest(k, 6000).proportion_ci(0.9, method="exact")
                assert np.isclose(row["ci_low"], ci.low, rtol=1e-9, atol=1e-15)
                assert row["width"] == res[row["run"]].config.widths[row["layer"] - 1]
                if cumulative and row["layer"] == 3 and prop == "both":
                    assert row["failures"] == whole.loc[(row["run"], row["eps"]), "failures"]
    fwd = res.failure_by_layer(eps, cumulative=True)
    last = fwd[fwd.layer == 3].set_index(["run", "eps"])
    exact = res.failure(eps).set_index(["run", "eps"])
    assert np.allclose(last.p_exact, exact.loc[last.index, "p_exact"], rtol=1e-9)
    assert (fwd.groupby(["run", "eps"]).p_exact.apply(lambda s: s.is_monotonic_increasing)).all()
    assert res.failure_by_layer(eps, prop="backward", cumulative=True).p_exact.isna().all()
    assert res.failure_by_layer(eps).p_exact.isna().all()          # per layer: no exact law here
    assert "seed" in fwd.columns and "config_hash" in fwd.columns


def test_failure_by_layer_of_one_property(property_files):
    res = mcinit.load(property_files / "forward.h5")
    df = res.failure_by_layer([0.5], cumulative=True)
    assert df.failures.iloc[-1] == res.failure([0.5]).failures.iloc[0]
    with pytest.raises(ValueError, match="no run of this file computed the backward property"):
        res.failure_by_layer([0.5], prop="backward")
    with pytest.raises(ValueError, match="eps must be positive"):
        res.failure_by_layer([0.0])


def test_summary_arrays_by_name(sweep_file, property_files):
    s = mcinit.load(sweep_file).runs[0].summary()
    assert s.mean.shape == (2, 2, 3)
    rho, log_gamma = s.of("rho"), s.of("gamma", "log")
    assert np.array_equal(rho.mean, s.mean[0, 0]) and np.array_equal(rho.count, s.count[0, 0])
    assert np.array_equal(log_gamma.sd, np.sqrt(s.variance()[1, 1])) and log_gamma.space == "log"
    assert np.array_equal(s.of("forward").max, s.max[0, 0]) and s.of("bwd").quantity == "bwd"
    assert rho.hist.shape == (3, len(rho.edges) + 1)
    with pytest.raises(ValueError, match="quantity must be one of"):
        s.of("sigma")
    fwd_only = mcinit.load(property_files / "forward.h5").runs[0].summary()
    with pytest.raises(ValueError, match="computed forward"):
        fwd_only.of("gamma")


def test_over_inputs_is_one_networks_mean_and_sd_over_its_inputs(tmp_path):
    """Run.over_inputs(trial): per layer, the mean and population sd over the trial's
    inputs of sqrt(rho_l) and sqrt(gamma_l) (and of the ratios), those of the records,
    which equal the same of the kernel's ratios (tests/test_engine.py); a shard's and a
    partial merge's trials by their global index; a trial not held is a ValueError; a
    sweep's runs each have theirs."""
    cfg, data = config.build(kernel="dense", trials=40, input_dim=8, widths="6,9,5", samples=4, seed=2)
    path = str(tmp_path / "r.h5")
    engine.run(cfg, data, sink=HDF5Sink(path))
    mem = engine.run(cfg, data).records
    run = mcinit.load(path).runs[0]
    df = run.over_inputs(trial=7)
    assert list(df.columns[:13]) == ["run", "trial", "layer", "width", "samples", "fwd_norm_mean", "fwd_norm_sd",
                                     "bwd_norm_mean", "bwd_norm_sd", "fwd_mean", "fwd_sd", "bwd_mean", "bwd_sd"]
    assert df.layer.tolist() == [1, 2, 3] and df.width.tolist() == [6, 9, 5] and (df.trial == 7).all()
    assert "config_hash" in df.columns and (df.samples == 4).all()
    for k in ("fwd_norm_mean", "fwd_norm_sd", "bwd_norm_mean", "bwd_norm_sd", "fwd_mean", "bwd_sd"):
        assert df[k].tolist() == mem[k][7].tolist(), k
    assert df.dead.tolist() == [bool(mem["dead"][7])] * 3
    with pytest.raises(ValueError, match="holds no completed trial 40"):
        run.over_inputs(40)
    with pytest.raises(ValueError, match="an integer"):
        run.over_inputs(1.5)
    # a shard holds trials 20..39: trial 27 is its row 7
    shard = str(tmp_path / "s.h5")
    engine.run(cfg, data, sink=HDF5Sink(shard), shard=(1, 2))
    got = mcinit.load(shard).runs[0].over_inputs(27)
    assert got.fwd_norm_mean.tolist() == mem["fwd_norm_mean"][27].tolist()
    with pytest.raises(ValueError, match=r"holds no completed trial 3 \(its completed trials: 20..39\)"):
        mcinit.load(shard).runs[0].over_inputs(3)
    # a partial merge of that shard alone: its rows are trials 20..39
    from mcinit.merge import merge_files
    merge_files([shard], str(tmp_path / "m.h5"), allow_partial=True)
    got = mcinit.load(str(tmp_path / "m.h5")).runs[0].over_inputs(27)
    assert got.bwd_norm_sd.tolist() == mem["bwd_norm_sd"][27].tolist()


def test_one_input_per_trial_derives_the_statistics_over_its_input(tmp_path):
    """With N = 1 nothing new is stored; asked for, the statistics are the one value r, 0,
    sqrt(r), 0 (the sd NaN where r is +inf, as np.std of one value), what the reducer gives
    for N = 1."""
    from mcinit.stats import Summary, reduce_batch
    cfg, data = config.build(kernel="dense", trials=300, input_dim=6, widths="4,4", seed=1)
    path = str(tmp_path / "r.h5")
    engine.run(cfg, data, sink=HDF5Sink(path))
    run = mcinit.load(path).runs[0]
    assert run.fields == ("fwd_min", "fwd_max", "bwd_min", "bwd_max") and not run.input_stats
    rec = run.records(["bwd_min", "bwd_mean", "bwd_sd", "bwd_norm_mean", "bwd_norm_sd", "fwd_norm_sd", "dead"])
    assert rec["dead"].any()                 # width 4: some networks are dead (gamma +inf)
    r = rec["bwd_min"]
    with np.errstate(invalid="ignore"):
        assert np.array_equal(rec["bwd_mean"], r) and np.array_equal(rec["bwd_norm_mean"], np.sqrt(r))
        assert np.array_equal(rec["bwd_sd"], np.std(r[:, None, :], axis=1), equal_nan=True)
        assert np.array_equal(rec["bwd_norm_sd"], np.std(np.sqrt(r)[:, None, :], axis=1), equal_nan=True)
        # the reducer's two passes over one input give the same numbers
        two = reduce_batch(np.concatenate([r[:, None, :]] * 2, axis=1), np.ones((300, 2, 2)),
                           np.zeros(300, bool), Summary(2))
    assert np.isnan(rec["bwd_sd"][np.isinf(r)]).all() and (rec["fwd_norm_sd"] == 0).all()
    assert np.array_equal(two["fwd_mean"], r) and np.array_equal(two["fwd_sd"], rec["bwd_sd"], equal_nan=True)
    df = run.over_inputs(int(np.flatnonzero(rec["dead"])[0]))
    assert df.dead.all() and np.isinf(df.bwd_norm_mean).any() and (df.fwd_norm_sd == 0).all()


def test_symmetric_form_in_results_tables(sweep_file):
    """failure() and failure_by_layer() take the symmetric form: its counts are those of
    mcinit.stats.failure_counts, its exact probabilities theory's, and glorot's collapsing
    norms fail at eps >= 1 where the norm form sees only dead networks."""
    import warnings
    from mcinit.stats import failure_counts
    res = mcinit.load(sweep_file)
    eps = [0.25, 1.0, 2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # the symmetric form warns of nothing
        df = res.failure(eps, form="symmetric")
        by_layer = res.failure_by_layer(eps, form="symmetric", cumulative=True)
    assert set(df["form"]) == {"symmetric"}
    for run in res.runs:
        rows = df[df["run"] == run.name].sort_values("eps")
        k = failure_counts(run.records(), eps, "symmetric")["forward"]
        assert rows["failures"].tolist() == k.tolist()
        last = by_layer[(by_layer["run"] == run.name) & (by_layer["layer"] == run.config.depth)].sort_values("eps")
        assert last["failures"].tolist() == k.tolist()
        if run.config.init == "glorot":          # E rho_3 about 1/8: collapsing
            assert np.all(rows["p_hat"].to_numpy() > [0.9, 0.5, 0.3])
            with pytest.warns(UserWarning, match="symmetric"):
                norm = res.failure(eps, form="norm")
            assert np.all(norm[norm["run"] == run.name].sort_values("eps")["p_hat"].to_numpy()[1:] < 0.05)
        p = theory.exact_forward_failure(eps, list(run.config.widths), "symmetric", run.config.input_dim,
                                         run.config.init)
        np.testing.assert_allclose(rows["p_exact"], p, rtol=1e-12)


def test_norm_form_eps_of_one_or_more_warns_once(sweep_file):
    """A UserWarning, once per call, when norm-form eps >= 1 are asked for; none for eps < 1,
    the other forms, or the default eps (the ladder, mcinit.stats.EPS_LADDER)."""
    import warnings
    from mcinit.stats import EPS_LADDER
    res = mcinit.load(sweep_file)
    for call in (lambda: res.failure([0.5, 1.0, 2.0]), lambda: res.failure_by_layer([1.5], prop="backward")):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            call()
        msgs = [str(w.message) for w in got if issubclass(w.category, UserWarning)]
        assert len(msgs) == 1 and "cannot detect collapse" in msgs[0] and "--form symmetric" in msgs[0]
        assert got[0].filename == __file__                       # it names the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res.failure([0.1, 0.5, 0.99])
        res.failure([1.0, 2.0], form="squared")
        res.failure([1.0, 2.0], form="symmetric")
        df = res.failure()
    assert sorted(set(df["eps"])) == list(EPS_LADDER)


def test_one_eps_ladder():
    """The run summary, the report and results take their default tolerances from one object."""
    from mcinit import engine as eng, results, stats
    from mcinit.report import common
    assert eng.REPORT_EPS is stats.EPS_LADDER and common.EPS_LADDER is stats.EPS_LADDER
    assert common.EPS_CORE is stats.EPS_CORE and set(stats.EPS_CORE) <= set(stats.EPS_LADDER)
    assert results._checked("forward", "norm", None)[2].tolist() == list(stats.EPS_LADDER)
    assert list(stats.EPS_LADDER) == sorted(stats.EPS_LADDER)
