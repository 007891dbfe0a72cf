"""The HDF5 results file (format version 1, DESIGN section 7)."""

import json
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from mcinit import config, engine
from mcinit.store import FORMAT_VERSION, HDF5Sink, MemorySink, StoreError, read_summary


def _cfg(**kw):
    base = dict(trials=1000, input_dim=12, widths="10,14,6", samples=2)
    base.update(kw)
    return config.build(**base)


def test_file_layout_and_equality_with_memory(tmp_path):
    cfg, data = _cfg()
    path = str(tmp_path / "r.h5")
    res = engine.run(cfg, data, sink=HDF5Sink(path), batch_size=300)
    mem = engine.run(cfg, data, batch_size=1000)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "mcinit" and a["format_version"] == FORMAT_VERSION
        assert a["rng"] == "philox4x32-10" and int(a["seed"]) == 0
        assert a["completed"] == 1000 and a["trials"] == 1000
        stored = config.RunConfig.from_json(a["config"])
        assert stored == res.config and a["config_hash"] == res.config.config_hash()
        assert json.loads(a["config"])["kernel"] == "projected"
        g = f["trials"]
        assert np.array_equal(g["index"][...], np.arange(1000))
        for name in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
            assert g[name].chunks is not None
            assert np.array_equal(g[name][...], mem.records[name])
        assert g["dead"].compression == "gzip" and g["index"].compression == "gzip"
        s = read_summary(f["summary"], 3)
        for k, v in mem.summary.arrays().items():
            assert np.array_equal(getattr(s, k), v), k
        assert f["summary/fwd/hist"].shape == (3, 402)
        assert f["summary/fwd/log_hist_edges"].shape == (401,)


@pytest.mark.parametrize("level", [0, 1, 6])
def test_compressed_records_read_back_exactly(tmp_path, level):
    cfg, data = _cfg(trials=40000, kernel="law", samples=1)
    path = str(tmp_path / f"c{level}.h5")
    mem = engine.run(cfg, data)
    engine.run(cfg, data, sink=HDF5Sink(path, compress=level), batch_size=12345)
    with h5py.File(path, "r") as f:
        for name in ("fwd_min", "bwd_max", "dead", "index"):
            assert np.array_equal(f["trials"][name][...], mem.records[name]), name
        assert (f["trials/fwd_min"].compression == "gzip") == (level > 0)
        assert f["trials/fwd_min"].shuffle == (level > 0)


def test_readable_by_another_process_while_being_written(tmp_path):
    """A reader polling the file of a running `mcinit run` always sees a consistent prefix."""
    path = tmp_path / "live.h5"
    cmd = [sys.executable, "-m", "mcinit.cli", "run", "--trials", 3000, "--kernel", "dense",
           "--input-dim", 200, "--width", 200, "--depth", 4, "--batch-size", 100, "-o", path, "-q"]
    proc = subprocess.Popen([str(c) for c in cmd])
    seen = []
    try:
        while proc.poll() is None or not seen or seen[-1] < 3000:
            if path.exists():
                try:
                    with h5py.File(path, "r") as f:
                        c = int(f.attrs["completed"])
                        assert np.array_equal(f["trials/index"][:c], np.arange(c))
                        assert np.all(f["trials/fwd_max"][:c] > 0)
                        seen.append(c)
                except (OSError, KeyError):
                    pass   # the writer holds the file during a batch: try again
            if proc.poll() is not None and proc.returncode != 0:
                break
            time.sleep(0.05)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert seen == sorted(seen) and seen[-1] == 3000
    assert any(0 < c < 3000 for c in seen), seen


def test_existing_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "keep.h5"
    path.write_bytes(b"precious")
    cfg, data = _cfg(trials=10)
    with pytest.raises(StoreError, match="exists"):
        engine.run(cfg, data, sink=HDF5Sink(str(path)))
    assert path.read_bytes() == b"precious"
    engine.run(cfg, data, sink=HDF5Sink(str(path), overwrite=True))
    with h5py.File(path, "r") as f:
        assert f.attrs["completed"] == 10


def test_unwritable_places_are_refused(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        HDF5Sink(str(tmp_path / "no" / "such" / "dir.h5")).check_writable()
    with pytest.raises(StoreError, match="directory"):
        HDF5Sink(str(tmp_path)).check_writable()


def test_memory_sink_refuses_gaps():
    s = MemorySink()
    s.open({})
    with pytest.raises(StoreError):
        s.write(5, {"dead": np.zeros(3, bool)}, None)
