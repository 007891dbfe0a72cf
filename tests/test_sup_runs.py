"""Runs with the supremum search (--sup-search): records, files, merges, failure tables, errors.
The search itself is tested in tests/test_sup.py."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import mcinit
from mcinit import config, engine
from mcinit.cli import main
from mcinit.kernels import common, sup
from mcinit.merge import merge_files
from mcinit.store import HDF5Sink

KW = dict(trials=120, input_dim=4, widths="12,10,12", samples=12, sup_search="3,25")


def test_search_extends_the_random_inputs_extremes(tmp_path):
    cfg, data = config.build(**KW)
    assert cfg.kernel == "dense" and cfg.data == "sphere" and cfg.sup
    path = str(tmp_path / "s.h5")
    res = engine.run(cfg, data, sink=HDF5Sink(path), batch_size=50)
    mem = engine.run(cfg, data, batch_size=120).records
    assert np.all(mem["sup_max"] >= mem["fwd_max"]) and np.all(mem["sup_min"] <= mem["fwd_min"])
    # the search does find more: with 12 random inputs in 4 dimensions the last layer's maximum over
    # the sphere exceeds theirs in nearly every trial (a fixed seed; over 0.5 by a wide margin)
    assert np.mean(mem["sup_max"][:, -1] > mem["fwd_max"][:, -1]) > 0.5
    # the random-input records and the summary are those of a plain dense run on the sphere dataset
    plain_cfg, _ = config.build(**{k: v for k, v in KW.items() if k != "sup_search"}, data="sphere", kernel="dense")
    plain = engine.run(plain_cfg).records
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
        assert np.array_equal(plain[k], mem[k])
    with h5py.File(path, "r") as f:
        for k in ("sup_min", "sup_max"):
            assert np.array_equal(f["trials"][k][...], mem[k])
    assert res.summary.trials == 120


def test_the_engine_hands_its_ratios_to_the_search():
    """A run's sup_min / sup_max (the search started from the engine's own ratios) equal those of
    the search run on its own (which computes the random inputs' ratios itself), bit for bit."""
    cfg, data = config.build(**KW)
    mem = engine.run(cfg, data, batch_size=50).records
    plan = common.make_plan(cfg, data)
    L = cfg.depth
    out = [np.empty((cfg.trials, L)) for _ in range(5)]
    sup.fill(plan, 0, cfg.trials, *out, np.zeros(cfg.trials, dtype=bool), cfg.samples, cfg.sup_starts,
             cfg.sup_steps)
    assert np.array_equal(mem["sup_min"], out[0]) and np.array_equal(mem["sup_max"], out[1])


def test_failure_table_for_all_inputs(tmp_path):
    path = tmp_path / "s.h5"
    r = CliRunner().invoke(main, ["run", *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in KW.items()), []),
                                  "-o", str(path), "-q"])
    assert r.exit_code == 0, r.output
    res = mcinit.load(path)
    fin = res.failure([0.3, 0.6, 1.0], prop="forward")
    sup = res.failure([0.3, 0.6, 1.0], prop="sup")
    assert np.all(sup.failures.values >= fin.failures.values)
    rec = res.runs[0].records(("sup_min", "sup_max"))
    dev = np.maximum(np.abs(np.sqrt(rec["sup_max"]) - 1), np.abs(np.sqrt(rec["sup_min"]) - 1)).max(1)
    dead = (rec["sup_min"] == 0).any(1)   # an input found with no active unit: a failure at any eps
    assert sup.failures.tolist() == [int(np.sum((dev > e) | dead)) for e in (0.3, 0.6, 1.0)]
    assert sup.paper_delta.isna().all()
    text = CliRunner().invoke(main, ["report", str(path), "--eps", "0.5,1"]).output
    assert "LOWER ESTIMATE" in text and "with the search" in text


def test_shards_with_the_search_merge_to_the_single_run(tmp_path):
    cfg, data = config.build(**KW)
    single = engine.run(cfg, data).records
    parts = []
    for i in range(3):
        parts.append(str(tmp_path / f"p{i}.h5"))
        engine.run(cfg, data, sink=HDF5Sink(parts[-1]), shard=(i, 3))
    out = str(tmp_path / "m.h5")
    merge_files(parts, out)
    with h5py.File(out, "r") as f:
        for k in ("sup_min", "sup_max", "fwd_max", "index"):
            assert np.array_equal(f["trials"][k][...], single[k]), k


@pytest.mark.parametrize("extra,word", [(dict(data="gaussian"), "sphere"), (dict(kernel="projected"), "dense"),
                                        (dict(sup_search="20,5"), "cannot exceed"),
                                        (dict(sup_search="3"), "STARTS,STEPS")])
def test_bad_search_options(extra, word):
    with pytest.raises(config.ConfigError, match=word):
        config.build(**dict(KW, **extra))
