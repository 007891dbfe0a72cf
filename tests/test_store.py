"""The HDF5 results file (format versions 1 to 4, docs/design.md section 7): layout, readers during a
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
from mcinit.layout import format_version_of
from mcinit.stats import input_fields, record_fields
from mcinit.store import HDF5Sink, MemorySink, Sink, StoreError, read_summary

#: the records of _cfg's runs (two inputs per trial: with the statistics over the inputs)
FIELDS = ("index", "fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead") + input_fields()


def _cfg(**kw):
    base = dict(trials=1000, input_dim=12, widths="10,14,6", samples=2)
    base.update(kw)
    return config.build(**base)


def _same_records(path, records, group="/"):
    with h5py.File(path, "r") as f:
        g = f[group]
        c = int(g.attrs["completed"])
        for k in FIELDS:
            if k not in records:        # one input per trial: no statistics over the inputs
                assert k not in g["trials"], k
                continue
            assert np.array_equal(g["trials"][k][:c], records[k][:c], equal_nan=True), k
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
        assert a["format"] == "mcinit" and a["format_version"] == format_version_of("both", True) == 3
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
            kinds = {k: type(f["trials"].get(k, getlink=True)).__name__ for k in FIELDS if k in f["trials"]}
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


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
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
        assert os.path.exists(f"{path}.lock")   # the killed run's lock file: the next run takes it
    assert kills == 8, f"a run ended before it was killed ({progress})"
    assert progress == sorted(progress) and progress[-1] > 0
    subprocess.run(_cli(*KILL_RUN, "-o", path, "--resume"), check=True)
    assert _same_records(path, ref_rec) == 4000
    _same_summary(path, ref_sum)


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
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


# ------------------------------------------------------------ both sinks behind one interface

@pytest.fixture(params=["memory", "hdf5"])
def make_sink(request, tmp_path):
    """A factory of one sink kind (store.Sink), as emcee's backend tests do."""
    paths = iter(str(tmp_path / f"s{i}.h5") for i in range(100))
    if request.param == "memory":
        return MemorySink
    return lambda: HDF5Sink(next(paths))


def _held(sink, fields=FIELDS):
    """(records, summary) a sink holds, read back the way each keeps them."""
    if isinstance(sink, MemorySink):
        return sink.read_records(), sink.summary
    run = mcinit.load(sink.path).runs[0]
    return run.records(fields), run.summary()


@pytest.mark.parametrize("samples", [1, 2])
def test_every_sink_holds_the_records_and_summary_of_the_run(make_sink, samples):
    """Each sink gives back the run's records (also from read_records) and summary: those
    of one batch in memory, whatever the batches."""
    cfg, data = _cfg(trials=700, samples=samples)
    ref = engine.run(cfg, data, batch_size=700)
    sink = make_sink()
    assert isinstance(sink, Sink)
    engine.run(cfg, data, sink=sink, batch_size=128)
    fields = FIELDS if samples > 1 else FIELDS[:6]      # one input: no statistics over the inputs
    assert set(ref.records) == set(fields)
    records, summary = _held(sink, fields)
    for k in fields:
        assert np.array_equal(records[k], ref.records[k], equal_nan=True), k
    for k, v in ref.summary.arrays().items():
        assert np.array_equal(getattr(summary, k), v), k
    part = sink.read_records(100, 250)
    assert np.array_equal(part["index"], np.arange(100, 250))
    assert np.array_equal(part["fwd_min"], ref.records["fwd_min"][100:250])


def test_every_sink_refuses_a_gap(make_sink):
    cfg, data = _cfg(trials=10)
    sink = make_sink()
    meta = dict(config=cfg.config_json(), config_hash=cfg.config_hash(), seed=0, depth=3, trials=10,
                kernel="dense", mcinit_version="0", rows=10, samples=2)
    sink.open(meta)
    try:
        with pytest.raises(StoreError, match="expected 0"):
            sink.write_many([(5, {k: np.zeros((3, 3)) for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max")}
                              | {"dead": np.zeros(3, bool)}, None)])
    finally:
        sink.close()


def test_the_engine_takes_only_sinks():
    cfg, data = _cfg(trials=10)
    with pytest.raises(TypeError, match="Sink"):
        engine.run(cfg, data, sink=object())


# ------------------------------------------------------------ one writer per output

def _held_lock(path, pid="12345"):
    """Hold the output lock of ``path`` as another process would (its own open file)."""
    import fcntl
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, pid.encode())
    return fd


def _invoke(*args):
    from click.testing import CliRunner
    from mcinit.cli import main
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(r, words):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("mcinit: error: "), r.output
    assert words in lines[0], lines[0]


SMALL = ("run", "--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2, "-q")


def test_an_output_being_written_is_refused_to_every_writer(tmp_path):
    """While another process holds an output's lock, run, --overwrite, --resume, sweep,
    merge and report --plot on it are refused with one line naming its pid; nothing changes."""
    good = tmp_path / "good.h5"
    assert _invoke(*SMALL, "-o", good).exit_code == 0
    before = good.read_bytes()
    fd = _held_lock(good)
    busy = "is being written by another mcinit process (pid 12345)"
    try:
        _refused(_invoke(*SMALL, "-o", good, "--overwrite"), busy)
        _refused(_invoke(*SMALL, "-o", good, "--resume"), busy)
        fresh = tmp_path / "fresh.h5"
        fd2 = _held_lock(fresh, "777")
        _refused(_invoke(*SMALL, "-o", fresh), "another mcinit process (pid 777)")
        _refused(_invoke("sweep", "--trials", 5, "--width", "4,5", "-q", "-o", fresh), "pid 777")
        _refused(_invoke("merge", good, "-o", fresh), "pid 777")
        _refused(_invoke("report", good, "--plot", fresh), "pid 777")
        os.close(fd2)
        assert not fresh.exists()
    finally:
        os.close(fd)
    assert good.read_bytes() == before
    # a lock file left by a killed process (no flock held) blocks nothing, and goes
    (tmp_path / "good.h5.lock").write_text("999999\n")
    assert _invoke(*SMALL, "-o", good, "--overwrite").exit_code == 0
    assert not (tmp_path / "good.h5.lock").exists()


def test_a_file_of_the_user_under_the_lock_name_is_neither_rewritten_nor_removed(tmp_path):
    """The lock of OUT is OUT.lock; a file of that name that is not an mcinit lock (more than a
    pid in it, or not a regular file) refuses the output with one line and stays as it was."""
    out = tmp_path / "r.h5"
    notes = tmp_path / "r.h5.lock"
    notes.write_text("my notes about this run\n")
    _refused(_invoke(*SMALL, "-o", out), "r.h5.lock exists and is not an mcinit lock file")
    assert notes.read_text() == "my notes about this run\n" and not out.exists()
    notes.unlink()
    notes.mkdir()
    r = _invoke(*SMALL, "-o", out)
    assert r.exit_code == 2 and not out.exists() and notes.is_dir(), r.output


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "r.h5"
    dead = tmp_path / "r.h5.creating-999999"     # above pid_max on Linux: never alive
    dead.write_bytes(b"left by a killed run")
    alive = tmp_path / f"r.h5.creating-{os.getppid()}"
    alive.write_bytes(b"a live process's")
    assert _invoke(*SMALL, "-o", out).exit_code == 0
    assert not dead.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, alive.name])


def test_commits_refuse_a_file_replaced_under_the_run(tmp_path):
    """A run whose output is replaced by another file stops with one line and writes nothing
    into the file put in its place."""
    cfg, data = _cfg(trials=3000)
    path = tmp_path / "r.h5"
    intruder = tmp_path / "intruder.h5"
    intruder.write_bytes(b"x" * 4096)

    def replace(next_trial):
        if intruder.exists():
            os.replace(intruder, path)

    for sink in (HDF5Sink(str(path)), _ThroughHDF5(str(path), overwrite=True)):
        with pytest.raises(StoreError, match="replaced while this run was writing it"):
            engine.run(cfg, data, sink=sink, batch_size=100, threads=1, on_batch=replace)
        assert path.read_bytes() == b"x" * 4096
        intruder.write_bytes(b"x" * 4096)


def test_overwrite_refuses_what_is_not_a_results_file(tmp_path):
    """--overwrite replaces regular files only, and never the run's own inputs or report's."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.h5"
    link.symlink_to(fifo)
    for target in ("/dev/null", fifo, link):
        _refused(_invoke(*SMALL, "-o", target, "--overwrite"), "is not a regular file")
        _refused(_invoke(*SMALL, "-o", target, "--resume"), "is not a regular file")
    assert not os.path.exists("/dev/null.lock")
    data = tmp_path / "x.npy"
    np.save(data, np.ones((2, 3)))
    before = data.read_bytes()
    _refused(_invoke("run", "--trials", 5, "--data", data, "--width", 4, "--depth", 2, "-q", "-o", data,
                     "--overwrite"), "is one of the inputs")
    _refused(_invoke("sweep", "--trials", 5, "--data", data, "--width", "4,5", "--depth", 2, "-q", "-o", data,
                     "--overwrite"), "is one of the inputs")
    assert data.read_bytes() == before
    good = tmp_path / "good.h5"
    assert _invoke(*SMALL, "-o", good).exit_code == 0
    kept = good.read_bytes()
    _refused(_invoke("report", good, "--plot", good), "exists; pass --overwrite")
    _refused(_invoke("report", good, "--plot", good, "--overwrite"), "is one of the inputs")
    _refused(_invoke("report", good, "--plot", fifo, "--overwrite"), "is not a regular file")
    png = tmp_path / "fig.png"
    png.write_bytes(b"old")
    _refused(_invoke("report", good, "--plot", png), "exists; pass --overwrite")
    assert png.read_bytes() == b"old"
    r = _invoke("report", good, "--plot", png, "--overwrite")
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and good.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "fig.png", "good.h5", "link.h5", "x.npy"]


@pytest.mark.slow
def test_two_runs_started_together_on_one_output_one_wins(tmp_path):
    """Two `mcinit run` processes on one new output, then both with --overwrite on it: each
    time exactly one exits 0, the other exits 2 with one line (the second time: the output is
    being written); the file passes the reader and equals a single run of the winner's seed."""
    out = tmp_path / "same.h5"
    args = ("run", "--trials", 30000, "--width", 64, "--depth", 4, "--kernel", "dense", "--batch-size", 1000,
            "-q", "-o", out)
    refs = {}
    for extra in ((), ("--overwrite",)):     # a new output; then both replacing it
        procs = [subprocess.Popen(_cli(*args, "--seed", s, *extra), stderr=subprocess.PIPE, text=True)
                 for s in (0, 1)]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        codes = [p.returncode for p in procs]
        assert sorted(codes) == [0, 2], (codes, errs)
        loser = errs[codes.index(2)].strip().splitlines()
        assert len(loser) == 1 and loser[0].startswith("mcinit: error: "), loser
        if extra:
            assert "is being written by another mcinit process (pid " in loser[0], loser
        run = mcinit.load(out).runs[0]
        seed = (0, 1)[codes.index(0)]
        assert run.config.seed == seed and run.completed == 30000
        if seed not in refs:
            cfg, data = config.build(trials=30000, width=64, depth=4, kernel="dense", seed=seed)
            refs[seed] = engine.run(cfg, data).records
        _same_records(str(out), refs[seed])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["same.h5"]


# ------------------------------------------------------------ a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs (grown with remount); skipped where mounting is not permitted
    (not root, or in a container without the capability)."""
    d = tmp_path / "disk"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def _resize(disk, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def test_a_full_disk_is_one_line_and_the_file_stays_resumable(small_disk):
    """On a disk too small to create the file: one line, nothing left behind (also when the
    space check is passed and HDF5 itself fails).  A disk that fills during the run: one
    line, and the file holds its completed trials and resumes, once there is room, to the
    uninterrupted run."""
    out = small_disk / "r.h5"
    args = ("run", "--trials", 100000, "--width", 16, "--depth", 3, "--batch-size", 5000, "-q", "-o", out)
    _refused(_invoke(*args), "free: lower --trials")          # mcinit.limits, before any file
    assert list(small_disk.iterdir()) == []
    _refused(_invoke(*args, "--ignore-limits"), "bytes free")  # the store's own check
    assert list(small_disk.iterdir()) == []
    from mcinit.layout import build_run
    from mcinit.store import create_file
    meta = dict(config="{}", config_hash="x", seed=0, depth=3, trials=100000, kernel="dense",
                mcinit_version="0", samples=2)
    with pytest.raises(StoreError, match="No space left on device"):
        create_file(str(small_disk / "x.h5"), {}, lambda f: build_run(f, meta))
    assert list(small_disk.iterdir()) == []
    _resize(small_disk, "2m")
    _refused(_invoke(*args, "--ignore-limits"), "No space left on device")
    run = mcinit.load(out).runs[0]
    assert 0 <= run.completed < 100000
    _resize(small_disk, "20m")
    assert _invoke(*args, "--resume").exit_code == 0
    cfg, data = config.build(trials=100000, width=16, depth=3)
    ref = engine.run(cfg, data)
    assert _same_records(str(out), ref.records) == 100000
    _same_summary(str(out), ref.summary)


def test_a_creation_that_fails_leaves_no_temporary(tmp_path):
    """Whatever stops a file's creation (a refusal raised by the build, an interrupt), the
    temporary goes and the output is not created."""
    from mcinit.store import create_file
    out = tmp_path / "o.h5"

    def refuse(f):
        f.create_dataset("x", data=np.arange(10))
        raise StoreError("refused midway")

    def interrupt(f):
        raise KeyboardInterrupt

    with pytest.raises(StoreError, match="refused midway"):
        create_file(str(out), {}, refuse)
    with pytest.raises(KeyboardInterrupt):
        create_file(str(out), {}, interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("props,samples", [("forward", 2), ("backward", 2), ("forward", 1)])
def test_a_run_of_one_property_is_format_version_2(tmp_path, props, samples):
    """A run of one property is written as format version 2 (3 with more than one input:
    the statistics over the inputs too): its quantity's columns and summary only.  Its file
    equals the run in memory; a stopped run resumes bit for bit; shards of it merge to the
    single run (again of its version); and its records are those of the same run of both
    properties, written as version 1 (3) with both quantities' columns."""
    q = "fwd" if props == "forward" else "bwd"
    mine = record_fields((q,), input_stats=samples > 1)
    other = record_fields(("bwd" if q == "fwd" else "fwd",), input_stats=samples > 1)
    version, both_version = (3, 3) if samples > 1 else (2, 1)
    cfg, data = _cfg(trials=900, kernel="dense", properties=props, samples=samples)
    both_cfg, _ = _cfg(trials=900, kernel="dense", samples=samples)
    assert cfg.config_hash() != both_cfg.config_hash()
    ref = engine.run(cfg, data, batch_size=1000)
    path = str(tmp_path / "r.h5")
    calls = []
    with pytest.raises(engine.Stopped) as e:
        engine.run(cfg, data, sink=HDF5Sink(path), batch_size=200,
                   stop_requested=lambda: calls.append(1) or len(calls) >= 2)
    assert e.value.completed == 400
    res = engine.run(cfg, data, sink=HDF5Sink(path, resume=True), batch_size=130)
    assert res.computed == 500 and set(res.failures) == {props}
    assert res.failures[props].tolist() == ref.failures[props].tolist()
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == format_version_of(props, samples > 1) == version
        assert set(f["trials"]) == {"index", "dead", *mine}
        for g in ("summary", "checkpoint/slot0", "checkpoint/slot1"):
            assert set(f[g]) == {"trials", "dead", q}, g
        for k in ("index", "dead", *mine):
            assert np.array_equal(f["trials"][k][:], ref.records[k], equal_nan=True), k
        s = read_summary(f["summary"], 3, props)
    for k, v in ref.summary.arrays().items():
        assert np.array_equal(getattr(s, k), v), k
    both_path = str(tmp_path / "both.h5")
    engine.run(both_cfg, data, sink=HDF5Sink(both_path))
    with h5py.File(both_path, "r") as f:
        assert f.attrs["format_version"] == both_version and {"fwd", "bwd"} <= set(f["summary"])
        for k in mine:
            assert np.array_equal(f["trials"][k][:], ref.records[k], equal_nan=True), k
        assert all(k in f["trials"] for k in other)
    parts = []
    for i in range(3):
        parts.append(str(tmp_path / f"p{i}.h5"))
        engine.run(cfg, data, sink=HDF5Sink(parts[-1]), shard=(i, 3), batch_size=64)
    out = str(tmp_path / "merged.h5")
    merge_files(parts, out)
    with h5py.File(out, "r") as f:
        assert f.attrs["format_version"] == version and set(f["trials"]) == {"index", "dead", *mine}
        for k in ("index", "dead", *mine):
            assert np.array_equal(f["trials"][k][:], ref.records[k], equal_nan=True), k
    merged = mcinit.load(out).runs[0]
    at = list(ref.eps).index(0.25)          # the run's tally at eps 0.25
    assert merged.failure_counts([0.25])[props].tolist() == ref.failures[props][at:at + 1].tolist()
    # parts of another property are another configuration: refused, or a sweep of two runs
    both_part = str(tmp_path / "both_part.h5")
    engine.run(both_cfg, data, sink=HDF5Sink(both_part), shard=(0, 3))
    with pytest.raises(StoreError, match="different configurations"):
        merge_files(parts + [both_part], str(tmp_path / "m2.h5"))
    assert not os.path.exists(tmp_path / "m2.h5")
    sweep = str(tmp_path / "sweep.h5")
    merge_files(parts + [both_part], sweep, sweep=True, allow_partial=True)
    runs = mcinit.load(sweep).runs
    assert sorted(r.config.properties for r in runs) == sorted(["both", props])
    assert len({r.name for r in runs}) == 2


def test_resume_of_one_property_refuses_a_run_of_another(tmp_path):
    cfg, data = _cfg(trials=300, properties="forward")
    path = str(tmp_path / "r.h5")
    engine.run(cfg, data, sink=HDF5Sink(path))
    before = open(path, "rb").read()
    both, _ = _cfg(trials=300)
    with pytest.raises(StoreError, match="another configuration"):
        engine.run(both, data, sink=HDF5Sink(path, resume=True))
    assert open(path, "rb").read() == before


def test_merge_removes_the_parts_only_once_its_file_is_complete_and_verified(tmp_path):
    cfg, data = _cfg(trials=300, kernel="dense")
    single = str(tmp_path / "single.h5")
    engine.run(cfg, data, sink=HDF5Sink(single))
    parts = [str(tmp_path / f"p{i}.h5") for i in range(3)]
    for i, p in enumerate(parts):
        engine.run(cfg, data, sink=HDF5Sink(p), shard=(i, 3))
    with pytest.raises(StoreError, match="not with --allow-partial"):
        merge_files(parts, str(tmp_path / "m.h5"), allow_partial=True, remove_parts=True)
    with pytest.raises(StoreError, match="missing"):        # an incomplete set: nothing merged, nothing removed
        merge_files(parts[:2], str(tmp_path / "m.h5"), remove_parts=True)
    assert all(os.path.exists(p) for p in parts) and not os.path.exists(tmp_path / "m.h5")
    out = str(tmp_path / "merged.h5")
    lines = merge_files(parts, out, remove_parts=True)
    assert lines[-1].startswith("removed 3 part files")
    assert not any(os.path.exists(p) for p in parts)
    assert _same_records(out, mcinit.load(single).runs[0].records()) == 300
    assert sorted(os.listdir(tmp_path)) == ["merged.h5", "single.h5"]


def test_merge_verification_finds_a_difference(tmp_path):
    from mcinit.merge import read_parts, verify
    cfg, data = _cfg(trials=100)
    parts = [str(tmp_path / f"p{i}.h5") for i in range(2)]
    for i, p in enumerate(parts):
        engine.run(cfg, data, sink=HDF5Sink(p), shard=(i, 2))
    out = str(tmp_path / "m.h5")
    merge_files(parts, out)
    verify(out, read_parts(parts))
    with h5py.File(out, "a") as f:
        f["trials/fwd_min"][70, 0] += 1.0
    with pytest.raises(StoreError, match="fwd_min differs"):
        verify(out, read_parts(parts))
