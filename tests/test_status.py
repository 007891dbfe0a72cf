"""`mcinit status` of any results file: run, sweep (complete or stopped), shard, merged
(complete or partial); damaged files and missing paths are one line (mcinit.status)."""

import hashlib
import os

import pytest
from click.testing import CliRunner

from mcinit import engine, status, sweep
from mcinit.cli import main

SMALL = ["--trials", 200, "--width", 8, "--depth", 2, "--input-dim", 4]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def one_line_error(r, word):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and r.stdout == "", r.output
    assert len(lines) == 1 and lines[0].startswith("mcinit: error:") and word in lines[0], r.output


def test_status_of_a_complete_run_file(tmp_path):
    out = tmp_path / "r.h5"
    assert invoke("run", *SMALL, "--seed", 5, "-o", out, "-q").exit_code == 0
    before = digest(out)
    r = invoke("status", out)
    assert r.exit_code == 0, r.output
    assert f"{out}: results file, run: complete" in r.stdout
    assert "format version 1, written by mcinit" in r.stdout
    assert "trials_planned 200, input_dim 4, widths 8,8, depth 2, samples 1" in r.stdout and "seed 5" in r.stdout
    assert "200/200 trials (100.0%): complete" in r.stdout
    st = status.file_status(out)
    assert st["state"] == "complete" and st["kind"] == "run" and st["format_version"] == 1
    assert st["size_bytes"] == os.path.getsize(out) and st["completed"] == st["rows"] == 200
    run = st["runs"][0]
    assert run["shard"] is None and run["merged_from"] is None and run["kernel"] == "law"
    assert run["config"]["seed"] == 5 and run["config"]["properties"] == "both"
    assert digest(out) == before                       # status writes nothing


def test_status_of_a_stopped_sweep_says_it_resumes(tmp_path):
    runs = sweep.expand(dict(trials=900, width="8,12", depth=2, input_dim=5, seed=4))
    part = str(tmp_path / "part.h5")
    calls = []
    with pytest.raises(engine.Stopped):
        sweep.run_sweep(runs, part, batch_size=200, stop_requested=lambda: calls.append(1) or len(calls) >= 2)
    st = status.file_status(part)
    assert st["kind"] == "sweep" and st["state"] == "resumable"
    assert st["runs_listed"] == ["w8-d2-n1-he", "w12-d2-n1-he"] and st["runs_not_begun"] == ["w12-d2-n1-he"]
    assert st["runs"][0]["state"] == "resumable" and st["runs"][0]["completed"] < 900
    r = invoke("status", part)
    assert r.exit_code == 0, r.output
    assert "sweep of 2 runs: resumable" in r.stdout and "not begun: w12-d2-n1-he" in r.stdout
    assert "the same mcinit sweep command with --resume continues it" in r.stdout
    sweep.run_sweep(runs, part, batch_size=300, resume=True)
    assert status.file_status(part)["state"] == "complete"


def test_status_of_shards_and_merges(tmp_path):
    parts = [tmp_path / f"p{i}.h5" for i in range(3)]
    for i in (0, 1):
        assert invoke("run", *SMALL, "--shard", f"{i}/3", "-o", parts[i], "-q").exit_code == 0
    r = invoke("status", parts[1])
    assert r.exit_code == 0, r.output
    assert "shard 1/3 of a run: complete" in r.stdout and "67/67 trials (100.0%) of shard 1/3 (trials 66-132 of 200)" \
        in r.stdout, r.stdout
    st = status.file_status(parts[1])
    assert st["runs"][0]["shard"] == "1/3" and st["runs"][0]["first_index"] == 66 and st["runs"][0]["rows"] == 67
    merged = tmp_path / "m.h5"
    assert invoke("merge", parts[0], parts[1], "-o", merged, "--allow-partial", "-q").exit_code == 0
    st = status.file_status(merged)
    run = st["runs"][0]
    assert st["state"] == run["state"] == "partial" and run["merged_from"] == ["p0.h5", "p1.h5"]
    assert run["missing"] == [[133, 200]] and run["missing_trials"] == 67 and run["completed"] == 133
    r = invoke("status", merged)
    assert "run merged from 2 parts: partial" in r.stdout and "lacks 67 of 200 trials" in r.stdout, r.stdout
    assert invoke("run", *SMALL, "--shard", "2/3", "-o", parts[2], "-q").exit_code == 0
    whole = tmp_path / "w.h5"
    assert invoke("merge", *parts, "-o", whole, "-q").exit_code == 0
    assert status.file_status(whole)["state"] == "complete"


def test_status_of_bad_paths_is_one_line(tmp_path):
    (tmp_path / "t.h5").write_text("hello")
    one_line_error(invoke("status", tmp_path / "t.h5"), "cannot open")
    one_line_error(invoke("status", tmp_path / "t.h5", "--json"), "cannot open")
    one_line_error(invoke("status", tmp_path / "none.h5"), "no results file")
    assert (tmp_path / "t.h5").read_text() == "hello"
