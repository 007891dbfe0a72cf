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
