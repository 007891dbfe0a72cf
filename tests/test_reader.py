"""The validating reader (mcinit.reader): damaged and foreign results files are refused
with one line naming what is wrong, by load, report, merge and resume alike, and no byte
of any file changes; good files (also one being written, or held open) load."""

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import mcinit
from mcinit.cli import main
from mcinit.reader import read_file
from mcinit.stats import input_fields, record_fields
from mcinit.store import StoreError

RUN = ["run", "--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2, "-q"]
SWEEP = ["sweep", "--trials", 40, "--input-dim", 6, "--width", "5,7", "--depth", 2, "-q"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    assert invoke(*RUN, "-o", d / "good.h5").exit_code == 0
    assert invoke(*SWEEP, "-o", d / "sweep.h5").exit_code == 0
    assert invoke(*RUN, "--properties", "forward", "-o", d / "forward.h5").exit_code == 0
    one = [a if a != 2 else 1 for a in RUN]       # one input per trial
    assert one != RUN and invoke(*one, "-o", d / "one.h5").exit_code == 0
    assert invoke(*one, "--properties", "forward", "-o", d / "forward1.h5").exit_code == 0
    assert invoke("run", "--trials", 40, "--input-dim", 2, "--widths", "4,3", "--samples", 3, "--sup-search", "1,4",
                  "-q", "-o", d / "sup.h5").exit_code == 0
    return d


def _attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


def _del(name):
    def edit(f):
        if name in f.attrs:
            del f.attrs[name]
        else:
            del f[name]
    return edit


def _replace(name, shape=None, dtype=None):
    def edit(f):
        old = f[name]
        shape_ = old.shape if shape is None else shape(old.shape)
        del f[name]
        f.create_dataset(name, shape=shape_, dtype=dtype or old.dtype)
    return edit


def _config_edited(f):
    c = json.loads(f.attrs["config"])
    c["seed"] = 7
    f.attrs["config"] = json.dumps(c, sort_keys=True, separators=(",", ":"))


def _no_checkpoint_at_completed(f):
    for i in (0, 1):
        f[f"checkpoint/slot{i}/trials"][()] = 17


def _external(name, target):
    def edit(f):
        del f[name]
        f[name] = h5py.ExternalLink(target, "/")
    return edit


def _dangling_link(f):
    del f["trials/fwd_max"]
    f["trials/fwd_max"] = h5py.SoftLink("/nowhere")


#: name -> (file it starts from, edit, words the message must hold)
DAMAGED = {
    "completed larger than the rows": ("good", _attr("completed", np.int64(301)), "claims 301 completed"),
    "completed negative": ("good", _attr("completed", np.int64(-5)), "claims -5 completed"),
    "completed 2**62": ("good", _attr("completed", np.int64(2 ** 62)), "completed trials of 300 rows"),
    "completed not an integer": ("good", _attr("completed", 150.5), "completed is not an integer"),
    "completed text": ("good", _attr("completed", "300"), "completed is not an integer"),
    "completed missing": ("good", _del("completed"), "has no completed attribute"),
    "format version 2": ("good", _attr("format_version", np.int64(2)), "format version 2"),
    "format version 5": ("good", _attr("format_version", np.int64(5)), "reads versions 1, 2, 3 and 4"),
    "sup run claiming version 3": ("sup", _attr("format_version", np.int64(3)),
                                   "format version 3, but a run with the supremum search is written as version 4"),
    "sup run without trials/sup_upper": ("sup", _del("trials/sup_upper"), "has no trials/sup_upper"),
    "forward run claiming version 1": ("forward", _attr("format_version", np.int64(1)),
                                       "format version 1, but a run of properties forward is written as version 2 or 3"),
    "one input claiming version 3": ("one", _attr("format_version", np.int64(3)),
                                     "format version 3, but a run of properties both is written as version 1"),
    "forward run without its summary": ("forward", _del("summary/fwd"), "has no fwd"),
    "forward run without trials/fwd_min": ("forward", _del("trials/fwd_min"), "has no trials/fwd_min"),
    "format not mcinit": ("good", _attr("format", "other"), "is not an mcinit results file"),
    "config edited without its hash": ("good", _config_edited, "does not match its config_hash"),
    "config not JSON": ("good", _attr("config", "{widths: 5"), "has no valid configuration"),
    "config of unknown keys": ("good", _attr("config", '{"widths": 5}'), "has no valid configuration"),
    "trials/fwd_min missing": ("good", _del("trials/fwd_min"), "has no trials/fwd_min"),
    "trials/fwd_max dangling link": ("good", _dangling_link, "trials/fwd_max"),
    "trials/dead of the wrong shape": ("good", _replace("trials/dead", lambda s: (s[0] + 1,)), "trials/dead has shape"),
    "trials/bwd_min of the wrong type": ("good", _replace("trials/bwd_min", dtype=np.float32), "trials/bwd_min has shape"),
    "trials/fwd_norm_sd of the wrong shape": ("good", _replace("trials/fwd_norm_sd", lambda s: (s[0], s[1] + 1)),
                                              "trials/fwd_norm_sd has shape (300, 3)"),
    "trials/bwd_mean missing": ("good", _del("trials/bwd_mean"), "has no trials/bwd_mean dataset"),
    "summary histogram of the wrong shape": ("good", _replace("summary/fwd/hist", lambda s: (s[0], 3)), "summary fwd/hist"),
    "checkpoint missing": ("good", _del("checkpoint"), "has no checkpoint group"),
    "summary a link to a FIFO": ("good", _external("summary", "/tmp/mcinit-test-fifo"),
                                 "summary is a link, not part of the file"),
    "checkpoint slot a link elsewhere": ("good", _external("checkpoint/slot1", "/dev/zero"),
                                         "slot1 is a link, not part of the file"),
    "no checkpoint at completed": ("good", _no_checkpoint_at_completed, "no checkpoint holding"),
    "rows beyond the run": ("good", _attr("first_index", np.int64(100)), "outside the run"),
    "planned trials edited": ("good", _attr("trials", np.int64(500)), "plans 500 trials"),
    "shard range edited": ("good", _attr("shard", "1/2"), "not shard 1/2 of 300 trials"),
    "sweep runs naming a missing group": ("sweep", _attr("runs", json.dumps(["w9-d2-n1-he", "w5-d2-n1-he", "w7-d2-n1-he"])),
                                          "runs names w9-d2-n1-he"),
    "sweep runs not a list": ("sweep", _attr("runs", "w5"), "damaged"),
    "sweep run completed negative": ("sweep", lambda f: f["runs/w7-d2-n1-he"].attrs.modify("completed", -1),
                                     "runs/w7-d2-n1-he claims -1"),
}


@pytest.fixture(scope="module")
def damaged(good, tmp_path_factory):
    d = tmp_path_factory.mktemp("damaged")
    for case, (src, edit, _) in DAMAGED.items():
        path = d / (case.replace(" ", "_").replace("/", "-") + ".h5")
        shutil.copy(good / f"{src}.h5", path)
        with h5py.File(path, "a") as f:
            edit(f)
    (d / "truncated.h5").write_bytes((good / "good.h5").read_bytes()[:3000])
    (d / "text.h5").write_text("not hdf5\n")
    with h5py.File(d / "foreign.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    return d


def _path(damaged, case):
    return damaged / (case.replace(" ", "_").replace("/", "-") + ".h5")


ALL = sorted(DAMAGED) + ["truncated", "text", "foreign"]
WORDS = {"truncated": "truncated file", "text": "file signature not found",
         "foreign": "is not an mcinit results file"}


def _file(damaged, case):
    return damaged / f"{case}.h5" if case in WORDS else _path(damaged, case)


@pytest.mark.parametrize("case", ALL)
def test_load_refuses_a_damaged_file_naming_what_is_wrong(damaged, case):
    path = _file(damaged, case)
    before = digest(path)
    with pytest.raises(StoreError) as e:
        mcinit.load(path)
    words = WORDS.get(case) or DAMAGED[case][2]
    assert words in str(e.value) and str(path) in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    assert digest(path) == before


def _one_error_line(r):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2, (r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("mcinit: error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]


@pytest.mark.parametrize("command", ["report", "merge", "resume"])
def test_commands_refuse_every_damaged_file_and_change_no_byte(damaged, good, tmp_path, command):
    """Each damaged file through report, merge and resume: exit 2, one line, no byte of any
    file changed, nothing created."""
    for case in ALL:
        path = _file(damaged, case)
        before = {p.name: digest(p) for p in damaged.iterdir()}
        if command == "report":
            r = invoke("report", path, "--plot", tmp_path / "fig.png")
        elif command == "merge":
            r = invoke("merge", good / "good.h5", path, "-o", tmp_path / "m.h5", "--sweep")
        elif DAMAGED.get(case, ("",))[0] == "sweep":
            r = invoke(*SWEEP, "-o", path, "--resume")
        else:
            r = invoke(*RUN, "-o", path, "--resume")
        line = _one_error_line(r)
        if command != "resume" or case not in ("config edited without its hash", "planned trials edited"):
            assert (WORDS.get(case) or DAMAGED[case][2]) in line or "sweep of the same runs" in line, (case, line)
        assert {p.name: digest(p) for p in damaged.iterdir()} == before, case
        assert not list(tmp_path.iterdir()), (case, list(tmp_path.iterdir()))


def test_a_good_file_validates_and_loads_while_held_open(good):
    """The reader accepts what the writer writes (a run, a sweep), and mcinit.load works while
    the same process holds the file open with plain h5py (HDF5's default lock)."""
    info = read_file(good / "good.h5")
    assert info.kind == "run" and info.runs[0].completed == 300 and info.runs[0].rows == 300
    sw = read_file(good / "sweep.h5")
    assert sw.kind == "sweep" and [r.name for r in sw.runs] == ["w5-d2-n1-he", "w7-d2-n1-he"]
    with h5py.File(good / "good.h5") as f:
        res = mcinit.load(good / "good.h5")
        assert res.runs[0].completed == int(f.attrs["completed"]) == 300
        assert len(res.runs[0].records()["index"]) == 300


def test_a_sweep_being_written_loads_the_runs_it_began(good, tmp_path):
    """A sweep lists all its runs from the start and adds their groups in order: while it is
    written (or after a stop) the runs it began load, and the one not begun is not shown."""
    path = tmp_path / "sweep.h5"
    shutil.copy(good / "sweep.h5", path)
    with h5py.File(path, "a") as f:
        f.attrs.modify("runs", json.dumps(["w5-d2-n1-he", "w7-d2-n1-he", "w9-d2-n1-he"]))
    assert [r.name for r in mcinit.load(path).runs] == ["w5-d2-n1-he", "w7-d2-n1-he"]


def test_a_stopped_run_loads_its_completed_trials(good, tmp_path):
    """completed below the rows (a stopped run) is a valid file: only those trials are read."""
    path = tmp_path / "stopped.h5"
    shutil.copy(good / "good.h5", path)
    whole = mcinit.load(good / "good.h5").runs[0]
    with h5py.File(path, "a") as f:
        f.attrs.modify("completed", 0)
        for i in (0, 1):
            f[f"checkpoint/slot{i}/trials"][()] = -1 if i else 0
    run = mcinit.load(path).runs[0]
    assert run.completed == 0 and len(run.records()["index"]) == 0 and run.summary().trials == 0
    assert whole.completed == 300


def test_status_shows_damaged_parts_and_output_as_unreadable(damaged, tmp_path, monkeypatch):
    """`mcinit status` reads parts and the merged output through the reader: a damaged part
    is "unreadable" with the reason, never counted as done; a damaged output "cannot be
    read"; no byte changes."""
    monkeypatch.setenv("PATH", str(tmp_path))       # no SLURM
    out = tmp_path / "p.h5"
    small = ["--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2]
    assert invoke("submit", *small, "--shards", 2, "-o", out, "--dry-run").exit_code == 0
    from mcinit import hpc
    plan = hpc.load_plan(str(out))
    parts = [tmp_path / plan["dir"] / p for p in plan["runs"][0]["parts"]]
    cfg = tmp_path / plan["dir"] / plan["runs"][0]["config"]
    assert invoke("run", "--config", cfg, "--shard", "0/2", "-o", parts[0], "-q").exit_code == 0
    with h5py.File(parts[0], "a") as f:
        f.attrs.modify("completed", np.int64(10 ** 6))
    shutil.copy(_path(damaged, "format version 2"), out)
    before = {p: digest(p) for p in (parts[0], out)}
    r = invoke("status", out)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "unreadable (file claims 1000000 completed trials of 150 rows)" in r.output, r.output
    assert "shards: 0/2 complete; trials: 0/300" in r.output, r.output
    assert "cannot be read" in r.output and "format version 2" in r.output, r.output
    assert {p: digest(p) for p in (parts[0], out)} == before


def test_a_run_on_a_data_file_keeps_its_path_through_load_and_merge(tmp_path):
    """A fixed dataset is in the configuration by its content and beside it by its path:
    the reader gives the configuration back with the path, and a merge keeps it."""
    data = tmp_path / "x.npy"
    np.save(data, np.arange(12.0).reshape(4, 3) + 1)
    args = ["run", "--trials", 60, "--data", data, "--widths", "5,4", "-q"]
    parts = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, p in enumerate(parts):
        assert invoke(*args, "--shard", f"{i}/2", "-o", p).exit_code == 0
    assert invoke("merge", *parts, "-o", tmp_path / "m.h5", "-q").exit_code == 0
    for p in parts + [tmp_path / "m.h5"]:
        run = mcinit.load(p).runs[0]
        assert run.config.data_path == str(data) and run.config.data_sha256
    r = invoke(*args, "-o", tmp_path / "m.h5", "--resume")
    assert r.exit_code == 0, r.output


def test_both_properties_are_version_1_and_one_property_version_2(good):
    """With one input per trial a run of both properties is written in format version 1, as
    every earlier mcinit wrote and reads it (its layout is unchanged), and a run of one
    property is version 2, holding that property's quantity only; with more inputs both are
    version 3, their layout and the statistics over the inputs.  All load."""
    with h5py.File(good / "one.h5", "r") as f:
        assert f.attrs["format_version"] == 1 and "properties" not in json.loads(f.attrs["config"])
        assert set(f["trials"]) == {"index", "fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"}
    with h5py.File(good / "good.h5", "r") as f:
        assert f.attrs["format_version"] == 3 and "properties" not in json.loads(f.attrs["config"])
        assert set(f["trials"]) == {"index", "dead", *record_fields(input_stats=True)}
    with h5py.File(good / "sweep.h5", "r") as f:
        assert f.attrs["format_version"] == 1
    with h5py.File(good / "forward1.h5", "r") as f:
        assert f.attrs["format_version"] == 2 and json.loads(f.attrs["config"])["properties"] == "forward"
        assert set(f["trials"]) == {"index", "dead", "fwd_min", "fwd_max"} and "bwd" not in f["summary"]
    with h5py.File(good / "forward.h5", "r") as f:
        assert f.attrs["format_version"] == 3 and json.loads(f.attrs["config"])["properties"] == "forward"
        assert set(f["trials"]) == {"index", "dead", *record_fields(("fwd",), input_stats=True)}
        assert "bwd" not in f["summary"]
    run = read_file(good / "forward.h5").runs[0]
    assert run.config.properties == "forward" and run.summary.quantities == ("fwd",)
    assert read_file(good / "good.h5").runs[0].summary.quantities == ("fwd", "bwd")


def _before_version_3(src, dst, version=1):
    """A copy of the run file src as an mcinit before format version 3 wrote it: without the
    statistics over the inputs, in format version 1 (both properties) or 2 (one)."""
    if str(src) != str(dst):
        shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        for k in input_fields():
            if k in f["trials"]:
                del f["trials"][k]
        f.attrs["format_version"] = np.int64(version)


def test_a_file_written_before_version_3_reads_and_says_it_lacks_the_statistics(good, tmp_path):
    """An N > 1 file of version 1 (or 2) reads: its min and max records, failures, report and
    status; asked for the statistics over the inputs (records, over_inputs) the results API
    says in one line that the file has none; it stays without them when resumed to more
    trials (an extension) or merged with shards of version 3."""
    old = tmp_path / "old.h5"
    _before_version_3(good / "good.h5", old)
    run = mcinit.load(old).runs[0]
    new = mcinit.load(good / "good.h5").runs[0]
    assert not run.input_stats and run.format_version == 1 and new.input_stats
    assert run.fields == record_fields() and set(new.fields) == set(record_fields(input_stats=True))
    for k in record_fields() + ("dead", "index"):
        assert np.array_equal(run.records()[k], new.records()[k]), k
    assert run.failure_counts([0.25])["both"].tolist() == new.failure_counts([0.25])["both"].tolist()
    for field, ask in (("fwd_norm_mean", lambda: run.records(["fwd_min", "fwd_norm_mean"])),
                       ("fwd_mean", lambda: run.over_inputs(0))):
        with pytest.raises(StoreError) as e:
            ask()
        assert str(e.value) == (f"run old holds no {field}: {old} was written in format version 1, before mcinit "
                                "recorded the statistics over each trial's inputs (format version 3); run it again "
                                "to record them")
    fwd_old = tmp_path / "forward-old.h5"
    _before_version_3(good / "forward.h5", fwd_old, 2)
    assert mcinit.load(fwd_old).runs[0].fields == ("fwd_min", "fwd_max")
    r = invoke("status", old, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["runs"][0]["record_columns"] == ["index", *record_fields(), "dead"]
    assert invoke("report", old).exit_code == 0
    # extended to more trials: still version 1, its old rows and the new ones' min and max
    bigger = [a if a != 300 else 500 for a in RUN]
    r = invoke(*bigger, "-o", old, "--resume")
    assert r.exit_code == 0, r.output
    fresh = tmp_path / "fresh.h5"
    assert invoke(*bigger, "-o", fresh).exit_code == 0
    with h5py.File(old, "r") as f, h5py.File(fresh, "r") as g:
        assert f.attrs["format_version"] == 1 and g.attrs["format_version"] == 3
        assert set(f["trials"]) == {"index", "dead", *record_fields()}
        for k in f["trials"]:
            assert np.array_equal(f["trials"][k][:], g["trials"][k][:]), k
    # an old shard merged with a new one: the output lacks the statistics (version 1)
    parts = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, p in enumerate(parts):
        assert invoke(*RUN, "--shard", f"{i}/2", "-o", p).exit_code == 0
    _before_version_3(parts[0], parts[0])
    assert invoke("merge", *parts, "-o", tmp_path / "m.h5", "-q").exit_code == 0
    merged = mcinit.load(tmp_path / "m.h5").runs[0]
    assert merged.format_version == 1 and not merged.input_stats
    for k in record_fields() + ("dead", "index"):
        assert np.array_equal(merged.records()[k], new.records()[k]), k
