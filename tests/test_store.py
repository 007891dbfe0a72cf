"""The HDF5 results file (format version 1, DESIGN section 7): layout, readers during a
run, crash safety (real SIGKILLs), clean stops, resume, shards and merge."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import mcinit
from mcinit import config, engine
from mcinit.merge import merge_files
from mcinit.store import FORMAT_VERSION, HDF5Sink, MemorySink, StoreError, read_summary

FIELDS = ("index", "fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead")


def _cfg(**kw):
    base = dict(trials=1000, input_dim=12, widths="10,14,6", samples=2)
    base.update(kw)
    return config.build(**base)


def _same_records(path, records, group="/"):
    with h5py.File(path, "r") as f:
        g = f[group]
        c = int(g.attrs["completed"])
        for k in FIELDS:
            assert np.array_equal(g["trials"][k][:c], records[k][:c]), k
        return c


def _same_summary(path, summary, group="/", exact=True):
    with h5py.File(path, "r") as f:
        s = read_summary(f[group]["summary"], summary.depth)
    for k, v in summary.arrays().items():
        if exact or k in ("count", "hist", "min", "max"):
            assert np.array_equal(getattr(s, k), v), k
        else:
            np.testing.assert_allclose(getattr(s, k), v, rtol=1e-12, atol=1e-12)


def test_file_layout_and_equality_with_memory(tmp_path):
    cfg, data = _cfg()
    path = str(tmp_path / "r.h5")
    res = engine.run(cfg, data, sink=HDF5Sink(path), batch_size=300)
    mem = engine.run(cfg, data, batch_size=1000)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "mcinit" and a["format_version"] == FORMAT_VERSION
        assert a["rng"] == "philox4x32-10" and int(a["seed"]) == 0
        assert a["completed"] == 1000 and a["trials"] == 1000 and a["rows"] == 1000
        stored = config.RunConfig.from_json(a["config"])
        assert stored == res.config and a["config_hash"] == res.config.config_hash()
        assert json.loads(a["config"])["kernel"] == "projected"
        for name in FIELDS:
            assert f["trials"][name].chunks is not None
        assert f["summary/fwd/hist"].shape == (3, 402)
        assert f["summary/fwd/log_hist_edges"].shape == (401,)
        assert f["summary/trials"][()] == 1000
    _same_records(path, mem.records)
    _same_summary(path, mem.summary)


def test_one_input_per_trial_stores_the_max_columns_as_links(tmp_path):
    """With N = 1 a trial's min and max are the same numbers: fwd_max and bwd_max are soft
    links to fwd_min and bwd_min (in a run's own group), read like the datasets they were;
    with N = 2 all four are datasets.  Shards of an N = 1 run merge to the single run."""
    for samples in (1, 2):
        cfg, data = _cfg(samples=samples, trials=700)
        path = str(tmp_path / f"n{samples}.h5")
        engine.run(cfg, data, sink=HDF5Sink(path), batch_size=128)
        mem = engine.run(cfg, data)
        assert _same_records(path, mem.records) == 700
        with h5py.File(path, "r") as f:
            kinds = {k: type(f["trials"].get(k, getlink=True)).__name__ for k in FIELDS}
        linked = {"fwd_max", "bwd_max"} if samples == 1 else set()
        assert {k for k, v in kinds.items() if v == "SoftLink"} == linked, kinds
        assert all(v == "HardLink" for k, v in kinds.items() if k not in linked), kinds
        if samples == 1:
            assert np.array_equal(mem.records["fwd_min"], mem.records["fwd_max"])
    cfg, data = _cfg(samples=1, trials=500)
    parts = []
    for i in range(2):
        parts.append(str(tmp_path / f"p{i}.h5"))
        engine.run(cfg, data, sink=HDF5Sink(parts[-1]), shard=(i, 2), batch_size=90)
    out = str(tmp_path / "merged.h5")
    merge_files(parts, out)
    assert _same_records(out, engine.run(cfg, data).records) == 500
    with h5py.File(out, "r") as f:
        assert isinstance(f["trials"].get("bwd_max", getlink=True), h5py.SoftLink)


class _SlowCommits(HDF5Sink):
    """An HDF5 sink whose first commits are slow (a busy disk): batches are staged meanwhile."""

    def __init__(self, path):
        super().__init__(path)
        self.staged_firsts = []
        self.commits = []

    def stage(self, batches):
        super().stage(batches)
        self.staged_firsts += [first for first, _, _ in batches]

    def commit(self, rows, summary):
        if len(self.commits) < 3:
            time.sleep(0.3)
        super().commit(rows, summary)
        self.commits.append(rows)


class _SlowWrites(HDF5Sink):
    """An HDF5 sink without staging (as a sink of a layout pwrite cannot address), whose
    first writes are slow: batches queue up meanwhile."""

    pipelined = False

    def __init__(self, path):
        super().__init__(path)
        self.groups = []

    def write_many(self, batches):
        if len(self.groups) < 3:
            time.sleep(0.3)
        super().write_many(batches)
        self.groups.append([first for first, _, _ in batches])


def _same_as_reference(path, res, cfg, data, trials):
    ref = engine.run(cfg, data, batch_size=trials)
    assert _same_records(path, ref.records) == trials
    _same_summary(path, ref.summary)
    with h5py.File(path, "r") as f:   # the checkpoint holds the state at completed
        _same_summary(path, res.summary)
        slot = [i for i in (0, 1) if f["checkpoint"][f"slot{i}"]["trials"][()] == trials]
        assert slot and np.array_equal(read_summary(f["checkpoint"][f"slot{slot[0]}"], 3).m2, ref.summary.m2)


def test_batches_staged_during_a_slow_commit_are_committed_together(tmp_path):
    """Batches are staged (written in place, raw) as they come while a commit waits for the
    disk; the next commit takes every batch staged meanwhile (one set of fsyncs, the last
    batch's summary): the file is the same as with one commit per batch."""
    cfg, data = _cfg(trials=3000)
    path = str(tmp_path / "r.h5")
    sink = _SlowCommits(path)
    res = engine.run(cfg, data, sink=sink, batch_size=100, threads=1)
    assert sink.staged_firsts == list(range(0, 3000, 100))
    assert sink.commits == sorted(set(sink.commits)) and sink.commits[-1] == 3000
    assert all(c % 100 == 0 for c in sink.commits)
    assert len(sink.commits) < 30, sink.commits      # some commits took several batches
    _same_as_reference(path, res, cfg, data, 3000)


def test_batches_that_queue_up_are_written_together_without_staging(tmp_path):
    """A sink that cannot stage gets the batches that queued up while it was busy in one
    write_many (one commit)."""
    cfg, data = _cfg(trials=3000)
    path = str(tmp_path / "r.h5")
    sink = _SlowWrites(path)
    res = engine.run(cfg, data, sink=sink, batch_size=100, threads=1)
    firsts = [b for g in sink.groups for b in g]
    assert firsts == list(range(0, 3000, 100))
    assert max(len(g) for g in sink.groups) > 1, sink.groups
    _same_as_reference(path, res, cfg, data, 3000)


class _ThroughHDF5(HDF5Sink):
    """An HDF5 sink that writes records through h5py (as for a layout pwrite cannot address)."""

    def _raw_layout(self):
        return None


@pytest.mark.parametrize("samples", [1, 2])
def test_records_written_in_place_equal_those_written_through_hdf5(tmp_path, samples):
    """Staged records (raw bytes at their chunks' places, a run resumed past a chunk
    boundary) read back the same as records written through h5py, and as in memory."""
    cfg, data = _cfg(trials=40000, samples=samples, input_dim=6, widths="5,4")
    raw, via = str(tmp_path / "raw.h5"), str(tmp_path / "via.h5")
    sink = HDF5Sink(raw)
    with pytest.raises(engine.Stopped):
        engine.run(cfg, data, sink=sink, batch_size=7000, stop_requested=lambda: True)
    assert sink.pipelined and sink.completed == 7000
    sink = HDF5Sink(raw, resume=True)
    engine.run(cfg, data, sink=sink, batch_size=9000)
    assert sink.pipelined and sink.completed == 40000
    sink = _ThroughHDF5(via)
    engine.run(cfg, data, sink=sink, batch_size=9000)
    assert not sink.pipelined and sink.completed == 40000
    mem = engine.run(cfg, data, batch_size=40000)
    for path in (raw, via):
        assert _same_records(path, mem.records) == 40000
        _same_summary(path, mem.summary)


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
                with h5py.File(path, "r", locking=False) as f:
                    c = int(f.attrs["completed"])
                    assert np.array_equal(f["trials/index"][:c], np.arange(c))
                    assert np.all(f["trials/fwd_max"][:c] > 0)
                    seen.append(c)
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


# ------------------------------------------------------------ stop and resume

def test_stop_and_resume_is_bit_identical(tmp_path):
    cfg, data = _cfg(trials=2000)
    ref = engine.run(cfg, data)
    path = str(tmp_path / "r.h5")
    calls = []
    with pytest.raises(engine.Stopped) as e:
        engine.run(cfg, data, sink=HDF5Sink(path), batch_size=300,
                   stop_requested=lambda: calls.append(1) or len(calls) >= 2)
    assert e.value.completed == 600
    assert _same_records(path, ref.records) == 600
    res = engine.run(cfg, data, sink=HDF5Sink(path, resume=True), batch_size=170)
    assert _same_records(path, ref.records) == 2000
    _same_summary(path, ref.summary)   # Welford continued from the checkpoint: bit-identical
    assert res.summary.trials == 2000 and res.computed == 1400
    for k in res.failures:
        assert np.array_equal(res.failures[k], ref.failures[k])


def test_resume_refuses_another_configuration(tmp_path):
    cfg, data = _cfg(trials=500)
    path = str(tmp_path / "r.h5")
    engine.run(cfg, data, sink=HDF5Sink(path))
    before = open(path, "rb").read()
    other, data2 = _cfg(trials=500, seed=1)
    with pytest.raises(StoreError, match="another configuration"):
        engine.run(other, data2, sink=HDF5Sink(path, resume=True))
    assert open(path, "rb").read() == before


def _cli(*args):
    return [sys.executable, "-m", "mcinit.cli", *[str(a) for a in args]]


def _completed(path):
    """The file's completed trials (0 before it exists, -1 while a write makes it unreadable)."""
    if not path.exists():
        return 0
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs["completed"])
    except (OSError, KeyError):
        return -1


KILL_RUN = ("run", "--trials", 4000, "--kernel", "dense", "--input-dim", 120, "--widths", "150,90,130",
            "--samples", 2, "--batch-size", 37, "-q")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [20261126])
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, seed):
    """Eight real SIGKILLs at random moments: after each the file opens, its completed
    trials equal the uninterrupted run's, and the resumed run ends bit-identical."""
    ref_path = tmp_path / "ref.h5"
    subprocess.run(_cli(*KILL_RUN, "-o", ref_path), check=True)
    ref = mcinit.load(ref_path).runs[0]
    ref_rec = ref.records()
    ref_sum = ref.summary()
    path = tmp_path / "killed.h5"
    rng = np.random.default_rng(seed)
    kills = 0
    progress = []
    while kills < 8:
        before = max(_completed(path), 0)
        target = before + int(rng.integers(40, 400))   # kill after a random amount of progress,
        proc = subprocess.Popen(_cli(*KILL_RUN, "-o", path, "--resume"))
        deadline = time.time() + 120
        while _completed(path) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))            # at a random moment within a batch
        if proc.poll() is not None:
            break                                     # it finished (or failed) before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        c = _same_records(path, ref_rec)   # the file opens; its completed trials are intact
        progress.append(c)
    assert kills == 8, f"a run ended before it was killed ({progress})"
    assert progress == sorted(progress) and progress[-1] > 0
    subprocess.run(_cli(*KILL_RUN, "-o", path, "--resume"), check=True)
    assert _same_records(path, ref_rec) == 4000
    _same_summary(path, ref_sum)


def test_sigterm_stops_at_a_batch_boundary(tmp_path):
    path = tmp_path / "t.h5"
    proc = subprocess.Popen(_cli(*KILL_RUN, "-o", path), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:   # wait until some batches are written
        if path.exists():
            with h5py.File(path, "r", locking=False) as f:
                if f.attrs["completed"] > 100:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err and "Traceback" not in err
    with h5py.File(path, "r") as f:
        c = int(f.attrs["completed"])
        assert 0 < c < 4000 and f["summary/trials"][()] == c


# ------------------------------------------------------------ shards and merge

def test_three_shards_merge_to_the_single_run(tmp_path):
    cfg, data = _cfg(trials=1001, kernel="dense")
    single = str(tmp_path / "single.h5")
    ref = engine.run(cfg, data, sink=HDF5Sink(single), batch_size=128)
    parts = []
    for i in (2, 0, 1):
        p = str(tmp_path / f"part{i}.h5")
        engine.run(cfg, data, sink=HDF5Sink(p), shard=(i, 3), batch_size=100)
        parts.append(p)
    out = str(tmp_path / "merged.h5")
    merge_files(parts, out)
    assert _same_records(out, mcinit.load(single).runs[0].records()) == 1001
    _same_summary(out, ref.summary, exact=False)   # Chan merge: equal to rounding
    with h5py.File(out, "r") as f:
        assert f.attrs["config_hash"] == ref.config.config_hash() and f.attrs["partial"] == 0
    t = mcinit.load(out).failure([0.2, 0.5]).failures.tolist()
    assert t == mcinit.load(single).failure([0.2, 0.5]).failures.tolist()


def test_merge_refuses_bad_sets(tmp_path):
    cfg, data = _cfg(trials=300)
    p = []
    for i in range(3):
        p.append(str(tmp_path / f"p{i}.h5"))
        engine.run(cfg, data, sink=HDF5Sink(p[-1]), shard=(i, 3))
    other, d2 = _cfg(trials=300, seed=5)
    q = str(tmp_path / "other.h5")
    engine.run(other, d2, sink=HDF5Sink(q), shard=(0, 3))
    out = str(tmp_path / "m.h5")
    with pytest.raises(StoreError, match="missing"):
        merge_files(p[:2], out)
    with pytest.raises(StoreError, match="different configurations"):
        merge_files(p + [q], out)
    with pytest.raises(StoreError, match="counted twice"):
        merge_files(p + [p[0]], out)
    assert not os.path.exists(out)
    merge_files(p[:2], out, allow_partial=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["partial"] == 1 and json.loads(f.attrs["missing"]) == [[200, 300]]
        assert f.attrs["completed"] == 200
        assert np.array_equal(f["trials/index"][...], np.arange(200))
