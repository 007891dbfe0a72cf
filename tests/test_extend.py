"""A larger --trials extends a run (mcinit.store: extends, HDF5Sink(extend=True)): the file
becomes the fresh run's of the larger trial count, record for record."""

import hashlib
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mcinit import config, engine
from mcinit.cli import main
from mcinit.store import HDF5Sink, StoreError

NET = ["--input-dim", 4, "--width", 8, "--depth", 2, "--samples", 2]
COLUMNS = ("index", "fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead", "fwd_mean", "fwd_sd", "fwd_norm_mean",
           "fwd_norm_sd", "bwd_mean", "bwd_sd", "bwd_norm_mean", "bwd_norm_sd")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def columns(path):
    with h5py.File(path, "r") as f:
        return {k: f["trials"][k][:] for k in COLUMNS}, dict(f.attrs)


def test_a_larger_trials_extends_a_complete_run_to_the_fresh_runs_records(tmp_path):
    out, fresh = tmp_path / "r.h5", tmp_path / "fresh.h5"
    assert invoke("run", *NET, "--trials", 300, "-o", out, "-q").exit_code == 0
    r = invoke("run", *NET, "--trials", 700, "-o", out, "--batch-size", 64)
    assert r.exit_code == 0, r.output
    assert "holds 300 trials of this run, complete; extending it to 700 trials (trials 300 to 699)" in r.output
    assert "700 trials (300 of them from before a resume)" in r.output
    assert invoke("run", *NET, "--trials", 700, "-o", fresh, "-q").exit_code == 0
    (a, attrs), (b, fresh_attrs) = columns(out), columns(fresh)
    for k in COLUMNS:
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    for k in ("config", "config_hash", "trials", "rows", "completed", "kernel"):
        assert attrs[k] == fresh_attrs[k], k
    assert json.loads(attrs["extended_from"]) == [300]
    with h5py.File(out, "r") as f, h5py.File(fresh, "r") as g:
        for q in ("fwd/mean", "bwd/m2", "fwd/min"):
            assert np.allclose(f["summary"][q][:], g["summary"][q][:], rtol=1e-12), q
        assert f["summary/trials"][()] == 700
    again = invoke("run", *NET, "--trials", 700, "-o", out)        # now complete at 700
    assert again.exit_code == 0 and "already holds this run, complete" in again.output
    assert invoke("run", *NET, "--trials", 900, "-o", out, "-q").exit_code == 0
    assert json.loads(columns(out)[1]["extended_from"]) == [300, 700]


def test_what_is_not_an_extension_is_refused_without_a_changed_byte(tmp_path):
    out = tmp_path / "r.h5"
    assert invoke("run", *NET, "--trials", 300, "-o", out, "-q").exit_code == 0
    before = digest(out)
    for args in (["--trials", 700, "--seed", 1], ["--trials", 200], ["--trials", 700, "--shard", "0/2"]):
        r = invoke("run", *NET, *args, "-o", out, "-q")
        assert r.exit_code == 2 and r.output.startswith("mcinit: error:") and "exists" in r.output, args
        assert digest(out) == before
    r = invoke("run", *NET, "--trials", 700, "--seed", 1, "-o", out, "-q", "--resume")
    assert r.exit_code == 2 and "another configuration" in r.output and digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_an_unfinished_run_is_extended_with_resume(tmp_path):
    out, fresh = tmp_path / "r.h5", tmp_path / "fresh.h5"
    assert invoke("run", *NET, "--trials", 300, "-o", out, "-q").exit_code == 0
    with h5py.File(out, "a") as f:      # unfinished: 0 trials durable
        f.attrs.modify("completed", 0)
        for i in (0, 1):
            f[f"checkpoint/slot{i}/trials"][()] = -1 if i else 0
    before = digest(out)
    assert invoke("run", *NET, "--trials", 500, "-o", out, "-q").exit_code == 2 and digest(out) == before
    r = invoke("run", *NET, "--trials", 500, "-o", out, "--resume")
    assert r.exit_code == 0 and "holds 0 trials of this run (of 300 planned); extending it to 500" in r.output
    assert invoke("run", *NET, "--trials", 500, "-o", fresh, "-q").exit_code == 0
    for k in COLUMNS:
        assert np.array_equal(columns(out)[0][k], columns(fresh)[0][k], equal_nan=True), k


def test_the_sink_extends_only_the_same_configuration(tmp_path):
    path = str(tmp_path / "r.h5")
    cfg, data = config.build(trials=100, input_dim=4, width=8, depth=2)
    engine.run(cfg, data, sink=HDF5Sink(path))
    bigger, _ = config.build(trials=250, input_dim=4, width=8, depth=2)
    other, _ = config.build(trials=250, input_dim=4, width=8, depth=2, seed=2)
    with open(path, "rb") as f:
        before = f.read()
    with pytest.raises(StoreError, match="another configuration"):
        engine.run(other, data, sink=HDF5Sink(path, resume=True, extend=True))
    with pytest.raises(StoreError, match="another configuration"):     # without extend: no extension
        engine.run(bigger, data, sink=HDF5Sink(path, resume=True))
    with open(path, "rb") as f:
        assert f.read() == before
    res = engine.run(bigger, data, sink=HDF5Sink(path, resume=True, extend=True))
    assert res.summary.trials == 250 and res.computed == 150


def test_a_refusal_names_what_differs_and_only_more_trials_extend(tmp_path):
    """The extension and the refused resume agree: a configuration that differs only by more
    trials extends the file's run; anything else is refused, with or without --resume, naming
    each option that differs (mcinit.store.other_configuration)."""
    out = tmp_path / "r.h5"
    assert invoke("run", *NET, "--trials", 300, "-o", out, "-q").exit_code == 0
    before = digest(out)
    r = invoke("run", *NET, "--trials", 700, "--seed", 1, "-o", out, "-q")
    assert r.exit_code == 2 and r.output == (
        f"mcinit: error: output {out} exists and holds a run of another configuration: --trials 300 in the file, "
        f"700 requested; --seed 0 in the file, 1 requested; pass --overwrite to replace it or choose another -o\n")
    for resume in ([], ["--resume"]):
        r = invoke("run", *NET, "--trials", 200, "-o", out, "-q", *resume)
        assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
        assert "--trials 300 in the file, 200 requested (a run is extended to more trials, never cut to fewer)" \
            in r.output
    r = invoke("run", *NET, "--trials", 300, "--width", 9, "-o", out, "-q", "--resume")
    assert r.exit_code == 2 and r.output == (f"mcinit: error: cannot resume {out}: it holds a run of another "
                                             "configuration: --widths 8,8 in the file, 9,9 requested\n")
    assert digest(out) == before
    r = invoke("run", *NET, "--trials", 500, "-o", out, "-q")
    assert r.exit_code == 0 and r.stdout == f"{out}\n"       # -q: only the path, the extension noted on stderr
    assert "extending it to 500 trials" in r.stderr
