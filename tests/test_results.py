"""Loading results, failure tables against hand computation, and sweeps."""

import json

import h5py
import numpy as np
import pytest
from scipy import stats

import mcinit
from mcinit import config, engine, sweep, theory
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
            assert np.array_equal(v, rb.records()[k]), (ra.name, k)
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
        assert set(rec) == {f"{q}_min", f"{q}_max", "dead", "index"}
        assert np.array_equal(rec[f"{q}_min"], both.runs[0].records()[f"{q}_min"])
        with pytest.raises(ValueError, match="--properties"):
            run.records((("bwd_min",) if props == "forward" else ("fwd_min",)))


def test_a_sweep_lists_properties_and_precisions(property_files):
    """--properties and --precision take lists in a sweep: one run each, named by them, the
    runs of one property in format version 2; failure tables hold the runs that computed
    the property asked for."""
    res = mcinit.load(property_files / "sweep.h5")
    names = [r.name for r in res.runs]
    assert names == ["w10_12-d2-n2-he-forward", "w10_12-d2-n2-he", "w10_12-d2-n2-he-float32-forward",
                     "w10_12-d2-n2-he-float32"]
    assert [(r.config.precision, r.config.properties) for r in res.runs] == [
        ("float64", "forward"), ("float64", "both"), ("float32", "forward"), ("float32", "both")]
    with h5py.File(property_files / "sweep.h5", "r") as f:
        assert [f["runs"][n].attrs["format_version"] for n in names] == [2, 1, 2, 1]
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
