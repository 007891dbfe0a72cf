"""SLURM submissions: the scripts `mcinit submit` writes, the sbatch calls it makes (with a
fake sbatch), `mcinit status`, one-line errors, and a real one-node cluster (tests/slurm_cluster.py)."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mcinit import config, engine, hpc
from mcinit.cli import main
from mcinit.cli_hpc import status as status_cmd, submit as submit_cmd

from slurm_cluster import slurm_cluster  # noqa: F401  (the session fixture)
from test_sbatch import sbatch_arguments

assert main.commands["submit"] is submit_cmd and main.commands["status"] is status_cmd

BASH = shutil.which("bash") or "/bin/bash"
SMALL = ["--trials", 200, "--input-dim", 6, "--widths", "5,7", "--kernel", "dense"]


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(r, word):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("mcinit: error:") and word in lines[0], r.output


def write_exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A directory first on PATH with an sbatch that records its arguments and answers
    'Submitted batch job 123' (then 124, ...), and an scontrol that says COMPLETED."""
    d = tmp_path / "fakebin"
    d.mkdir()
    log = tmp_path / "sbatch.log"
    write_exe(d / "sbatch", f"""#!/bin/bash
if [ -n "$FAKE_SBATCH_FAIL" ]; then echo "sbatch: error: $FAKE_SBATCH_FAIL" >&2; exit 1; fi
n=$(( $(wc -l < {log} 2>/dev/null || echo 0) + 123 ))
echo "$*" >> {log}
echo "Submitted batch job $n"
""")
    state = tmp_path / "scontrol.state"
    state.write_text("COMPLETED 0:0")
    write_exe(d / "scontrol", f"""#!/bin/bash
read st code < {state}
echo "JobId=$4 JobName=x UserId=root(0) JobState=$st Reason=None Dependency=(null) ExitCode=$code"
""")
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return dict(log=log, state=state, bin=d)


def test_dry_run_writes_the_scripts(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM needed
    out = tmp_path / "r.h5"
    r = invoke("submit", *SMALL, "--samples", 2, "--shards", 4, "--cpus-per-task", 2, "--partition", "short",
               "--time", "0:30:00", "--mem", "2G", "--account", "proj", "--sbatch-arg=--qos=low",
               "-o", out, "--dry-run")
    assert r.exit_code == 0, r.output
    d = tmp_path / "r.h5.parts"
    array, merge = (d / "array.sbatch").read_text(), (d / "merge.sbatch").read_text()
    assert array in r.output and merge in r.output and "nothing submitted" in r.output
    py = os.path.abspath(sys.executable)
    for line in ("#SBATCH --array=0-3", "#SBATCH --cpus-per-task=2", "#SBATCH --partition=short",
                 "#SBATCH --time=0:30:00", "#SBATCH --mem=2G", "#SBATCH --account=proj", "#SBATCH --qos=low",
                 f"#SBATCH --chdir={d}", f"#SBATCH --output={d}/logs/slurm-%A_%a.out", "#SBATCH --job-name=mcinit-r.h5"):
        assert line + "\n" in array, line
    assert f"exec {py} -m mcinit run --config \"$CONFIG\" --shard \"$SHARD/4\" -o \"$PART\" --resume -q " \
           "--threads 2" in array
    assert f"exec {py} -m mcinit merge" in merge and f"\nOUTPUT={out}\n" in merge and '-o "$OUTPUT"' in merge \
        and "--sweep" not in merge
    assert "#SBATCH --cpus-per-task=1\n" in merge and "#SBATCH --partition=short\n" in merge
    assert "--array" not in merge and f"#SBATCH --output={d}/logs/merge-%j.out\n" in merge
    for k in range(4):
        assert f"{d}/w5_7-d2-n2-he.shard-{k}-of-4.h5" in merge
    for script in (d / "array.sbatch", d / "merge.sbatch"):
        assert subprocess.run([BASH, "-n", str(script)]).returncode == 0
    assert os.path.isdir(d / "logs") and not (d / "jobs.json").exists() and not out.exists()
    plan = json.loads((d / "plan.json").read_text())
    assert plan["shards"] == 4 and plan["tasks"] == 4 and not plan["sweep"] and plan["python"] == py
    # the status of a plan nothing ran for
    r = invoke("status", out)
    assert r.exit_code == 0, r.output
    assert "shards: 0/4 complete" in r.output and "not written yet" in r.output and "not submitted" in r.output


def test_run_configs_round_trip_to_the_same_hash(tmp_path, correlated_npy):
    cases = [
        (dict(trials=300, input_dim=9, widths="5,7,3", samples=2, kernel="projected", seed=5), 1),
        (dict(trials=300, input_dim=9, width="8,12", depth="2,3", init="he,glorot", head="gaussian:3"), 8),
        (dict(trials=50, data=correlated_npy[0], samples=4, width=6, depth=2, dist="uniform"), 1),
    ]
    for i, (values, nruns) in enumerate(cases):
        plan = hpc.make_plan(values, str(tmp_path / f"o{i}.h5"), 3)
        hpc.check_destination(plan)
        hpc.write_plan(plan)
        assert len(plan.runs) == nruns and plan.sweep == (nruns > 1)
        for name, cfg, _ in plan.runs:
            keys = json.loads(open(plan.config_path(name)).read())
            assert set(keys) == set(hpc.CONFIG_KEYS)
            rebuilt = engine.resolve(config.build(**keys)[0])
            assert rebuilt.config_hash() == cfg.config_hash(), name
        if nruns == 1:  # and a direct build of the same options
            direct = engine.resolve(config.build(**values)[0])
            assert direct.config_hash() == plan.runs[0][1].config_hash()
    # the config file is what `mcinit run --config` reads
    plan = hpc.make_plan(cases[0][0], str(tmp_path / "x.h5"), 2)
    hpc.write_plan(plan)
    cfg_file = plan.config_path(plan.runs[0][0])
    r = invoke("run", "--config", cfg_file, "--shard", "1/2", "-o", tmp_path / "part.h5", "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "part.h5", "r") as f:
        assert f.attrs["config_hash"] == plan.runs[0][1].config_hash()


def test_sweep_tasks_map_to_run_and_shard(tmp_path):
    """2 widths x 2 shards: task t runs shard t % 2 of run t // 2; the script itself is run
    with a stand-in interpreter that prints its arguments."""
    fake_py = write_exe(tmp_path / "python", "#!/bin/bash\nprintf '%s\\n' \"$@\"\n")
    plan = hpc.make_plan(dict(trials=100, input_dim=4, width="16,8", depth=2), str(tmp_path / "s.h5"), 2,
                         python=str(fake_py))
    hpc.check_destination(plan)
    hpc.write_plan(plan)
    assert [name for name, _, _ in plan.runs] == ["w16-d2-n1-he", "w8-d2-n1-he"]
    assert plan.sweep and plan.tasks == 4
    assert "#SBATCH --array=0-3\n" in open(plan.array_path).read()
    assert "--sweep" in open(plan.merge_path).read()
    expected = {0: ("w16-d2-n1-he", 0), 1: ("w16-d2-n1-he", 1), 2: ("w8-d2-n1-he", 0), 3: ("w8-d2-n1-he", 1)}
    for task, (name, shard) in expected.items():
        assert plan.task(task) == (name, shard)
        p = subprocess.run([BASH, plan.array_path], env=dict(os.environ, SLURM_ARRAY_TASK_ID=str(task)),
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        said, *args = p.stdout.splitlines()
        assert said.startswith(f"mcinit task {task}: shard {shard}/2 of {name}")
        assert args[:3] == ["-m", "mcinit", "run"]
        assert args[args.index("--config") + 1] == plan.config_path(name)
        assert args[args.index("--shard") + 1] == f"{shard}/2"
        assert args[args.index("-o") + 1] == plan.part_path(name, shard)
        assert "--resume" in args and args[args.index("--threads") + 1] == "1"
    p = subprocess.run([BASH, plan.array_path], env=dict(os.environ, SLURM_ARRAY_TASK_ID="4"),
                       capture_output=True, text=True)
    assert p.returncode == 2 and "outside" in p.stderr
    # the merge lists the parts in task order
    p = subprocess.run([BASH, plan.merge_path], capture_output=True, text=True)
    said, *args = p.stdout.splitlines()
    assert said.startswith(f"mcinit merge into {plan.output}")
    assert args[:3] == ["-m", "mcinit", "merge"]
    assert args[3:7] == plan.parts() and args[7:] == ["-o", plan.output, "--sweep"]
    # the shares are those of `mcinit run --shard`
    for k in (1, 2, 3, 7):
        assert [hpc.shard_range(100, i, k) for i in range(k)] == [engine.shard_range(100, (i, k)) for i in range(k)]


def test_submit_calls_sbatch_with_the_dependency(tmp_path, fake_slurm):
    out = tmp_path / "s.h5"
    r = invoke("submit", "--trials", 200, "--input-dim", 6, "--width", "4,6", "--depth", 2, "--shards", 2, "-o", out)
    assert r.exit_code == 0, r.output
    d = tmp_path / "s.h5.parts"
    calls = fake_slurm["log"].read_text().splitlines()
    assert calls == [f"--job-name=mcinit-s.h5 --array=0-3 --chdir={d} --output={d}/logs/slurm-%A_%a.out "
                     f"--open-mode=append {d}/array.sbatch",
                     f"--job-name=mcinit-merge-s.h5 --chdir={d} --output={d}/logs/merge-%j.out --open-mode=append "
                     f"--dependency=afterok:123 --kill-on-invalid-dep=yes {d}/merge.sbatch"]
    assert "array job 123 (4 tasks), merge job 124" in r.output
    assert json.loads((d / "jobs.json").read_text())["array"] == "123"
    assert json.loads((d / "jobs.json").read_text())["merge"] == "124"
    # a second submit without --overwrite or --resume is refused, nothing changes
    before = (d / "plan.json").read_text()
    r = invoke("submit", "--trials", 200, "--input-dim", 6, "--width", "4,6", "--depth", 2, "--shards", 2, "-o", out)
    one_line_error(r, "--resume")
    assert (d / "plan.json").read_text() == before and len(fake_slurm["log"].read_text().splitlines()) == 2
    # --resume of another plan is refused; of the same plan it submits again and keeps the files
    r = invoke("submit", "--trials", 200, "--input-dim", 6, "--width", "4,6", "--depth", 2, "--shards", 3,
               "-o", out, "--resume")
    one_line_error(r, "other runs or shards")
    (d / "w4-d2-n1-he.shard-0-of-2.h5").write_bytes(b"kept")
    r = invoke("submit", "--trials", 200, "--input-dim", 6, "--width", "4,6", "--depth", 2, "--shards", 2,
               "-o", out, "--resume", "-q")
    assert r.exit_code == 0, r.output
    assert (d / "w4-d2-n1-he.shard-0-of-2.h5").read_bytes() == b"kept"
    assert json.loads((d / "jobs.json").read_text()) | {"submitted": 0} == {"array": "125", "merge": "126",
                                                                           "submitted": 0}


def test_sbatch_failure_is_one_line_and_leaves_nothing(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SBATCH_FAIL", "Batch job submission failed: Invalid partition name specified")
    r = invoke("submit", *SMALL, "--shards", 2, "--partition", "nope", "-o", tmp_path / "f.h5")
    one_line_error(r, "Invalid partition name specified")
    assert not (tmp_path / "f.h5.parts").exists()


def test_submit_wait_exits_with_the_merge_status(tmp_path, fake_slurm):
    args = [*SMALL, "--shards", 2, "-o", tmp_path / "w.h5", "--wait", "-q"]
    fake_slurm["state"].write_text("FAILED 3:0")
    r = invoke("submit", *args)
    assert r.exit_code == 3, r.output
    assert "merge job 124 ended FAILED (exit status 3)" in r.output
    fake_slurm["state"].write_text("COMPLETED 0:0")
    (tmp_path / "w.h5").write_bytes(b"an earlier merge")
    r = invoke("submit", *args, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "w.h5").exists()  # removed once the new array is queued


BAD = [
    ([], "--shards"),
    (["--shards", 2, "--wiat"], "No such option"),
    (["--shards", 0], "shards must be at least 1"),
    (["--shards", "x"], "shards"),
    (["--shards", 300], "300 shards need at least 300 trials"),
    (["--shards", 2, "--cpus-per-task", 0], "cpus-per-task"),
    (["--shards", 2, "--time", "soon"], "--time"),
    (["--shards", 2, "--mem", "lots"], "--mem"),
    (["--shards", 2, "--partition", "a b"], "--partition"),
    (["--shards", 2, "--sbatch-arg", "qos=low"], "--sbatch-arg"),
    (["--shards", 2, "--sbatch-arg=--array=0-9"], "--sbatch-arg"),
    (["--shards", 2, "--sbatch-arg=--arr=0-99"], "is sbatch's --array, which mcinit submit sets itself"),
    (["--shards", 2, "--sbatch-arg=--chd=/tmp"], "is sbatch's --chdir, which mcinit submit sets itself"),
    (["--shards", 2, "--sbatch-arg=-a0-99"], "is sbatch's --array, which mcinit submit sets itself"),
    (["--shards", 2, "--sbatch-arg=-o/x"], "is sbatch's --output, which mcinit submit sets itself"),
    (["--shards", 2, "--sbatch-arg=--job-name=x"], "is sbatch's --job-name, which mcinit submit sets itself"),
    (["--shards", 2, "--sbatch-arg=--wrap=ls"], "does not pass on"),
    (["--shards", 2, "--sbatch-arg=--qos=a\nb"], "newline"),
    (["--shards", 2, "--width", "4,4"], "twice"),
    (["--shards", 2, "--init", "he,xavier"], "init"),
    (["--shards", 2, "--resume", "--overwrite"], "not both"),
]


@pytest.mark.parametrize("args,word", BAD)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, fake_slurm, args, word):
    out = tmp_path / "bad.h5"
    widths = [] if "--width" in args else ["--widths", "5,7"]
    r = invoke("submit", "--trials", 200, "--input-dim", 6, *widths, *args, "-o", out, "--dry-run")
    one_line_error(r, word)
    assert "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "bad.h5.parts").exists()
    assert not fake_slurm["log"].exists()


def test_existing_output_and_missing_sbatch(tmp_path, monkeypatch):
    out = tmp_path / "o.h5"
    out.write_bytes(b"earlier results")
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out)
    one_line_error(r, "--overwrite")
    assert out.read_bytes() == b"earlier results" and not (tmp_path / "o.h5.parts").exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--overwrite")
    one_line_error(r, "sbatch not found")
    assert out.read_bytes() == b"earlier results" and not (tmp_path / "o.h5.parts").exists()
    r = invoke("status", tmp_path / "none.h5")
    one_line_error(r, "no submission")


def test_status_reads_the_shards(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # status works without SLURM
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 3, "-o", out, "--dry-run").exit_code == 0
    plan = hpc.load_plan(str(out))
    d = plan["dir"]
    cfg = os.path.join(d, plan["runs"][0]["config"])
    part = os.path.join(d, plan["runs"][0]["parts"][1])
    r = invoke("run", "--config", cfg, "--shard", "1/3", "-o", part, "-q")
    assert r.exit_code == 0, r.output
    st = hpc.read_status(str(out))
    shards = st["runs"][0]["shards"]
    assert [s["state"] for s in shards] == ["missing", "done", "missing"]
    assert shards[1]["completed"] == shards[1]["planned"] == 67 and st["completed"] == 67
    assert st["shards_done"] == 1 and st["planned"] == 200 and not st["merged"]["exists"]
    r = invoke("status", out)
    assert r.exit_code == 0 and "shards: 1/3 complete; trials: 67/200" in r.output, r.output


# -- hostile paths, dry runs, damaged plans --------------------------------------------

#: a directory name with everything a shell or sbatch could read as syntax, and SLURM's %-patterns
HOSTILE_DIR = "we ird $(touch PWNED) \"q\" 's' #h %j %%A `touch PWNED` ;&|<>*?~!{}[]"


def snapshot(root):
    """{relative path: bytes, or None for a directory} of everything under ``root``."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def no_injection(root):
    return [str(p) for p in root.rglob("PWNED*")]


def test_hostile_paths_are_taken_literally(tmp_path, monkeypatch):
    """Paths with spaces, quotes, $(...), backticks, #, % and shell operators, in the output's
    directory and in the interpreter's: the scripts, run by bash with SLURM's variables set by
    hand, pass them on as they are and run nothing of them; their #SBATCH lines, read back as
    sbatch reads them, give the directory itself and log patterns that SLURM expands into the
    logs directory; sbatch's command line gives the same options."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / HOSTILE_DIR
    d.mkdir()
    pydir = tmp_path / "py $(touch PWNED) 'dir'"
    pydir.mkdir()
    fake_py = write_exe(pydir / "python", "#!/bin/bash\nprintf '%s\\n' \"$@\"\n")
    out = d / 'r "x" $(touch PWNED) %x.h5'
    plan = hpc.make_plan(dict(trials=100, input_dim=4, width="16,8", depth=2), str(out), 2, python=str(fake_py))
    hpc.check_destination(plan)
    hpc.write_plan(plan)
    for task in range(plan.tasks):
        name, shard = plan.task(task)
        p = subprocess.run([BASH, plan.array_path], env=dict(os.environ, SLURM_ARRAY_TASK_ID=str(task)),
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        said, *args = p.stdout.splitlines()
        assert said.startswith(f"mcinit task {task}: shard {shard}/2 of {name}")
        assert args[args.index("--config") + 1] == plan.config_path(name)
        assert args[args.index("-o") + 1] == plan.part_path(name, shard)
    p = subprocess.run([BASH, plan.merge_path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    said, *args = p.stdout.splitlines()
    assert said.startswith(f"mcinit merge into {plan.output} on ")
    assert args == ["-m", "mcinit", "merge", *plan.parts(), "-o", plan.output, "--sweep"]
    assert no_injection(tmp_path) == []
    for job, script in (("array", plan.array_path), ("merge", plan.merge_path)):
        header = [ln.rstrip("\n") for ln in open(script) if ln.startswith("#SBATCH")]
        args = [a for ln in header for a in sbatch_arguments(ln)]
        options = dict(a[2:].split("=", 1) for a in args if "=" in a)
        assert options["chdir"] == plan.dir
        # SLURM reads %% as % in the whole path; the file name's own patterns stay
        logs, pattern = os.path.split(options["output"])
        assert logs.replace("%%", "%") == plan.logs and pattern in ("slurm-%A_%a.out", "merge-%j.out")
        assert re.fullmatch(r"mcinit-(merge-)?[A-Za-z0-9._+-]+", options["job-name"])
        assert hpc.sbatch_command(plan, job)[1:-1] == args[:len(hpc.job_options(plan, job))]
        assert hpc.sbatch_command(plan, job)[-1] == script


def test_hostile_output_on_the_command_line(tmp_path, monkeypatch):
    """`mcinit submit --dry-run -o 'x$(touch PWNED) "q".h5'`, then bash merge.sbatch: the merge
    runs (and fails: there are no parts) without running the substitution."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'x$(touch PWNED) "q" `touch PWNED`.h5'
    r = invoke("submit", *SMALL, "--shards", 2, "--dry-run", "-q", "-o", out)
    assert r.exit_code == 0, r.output
    merge = tmp_path / (out.name + ".parts") / "merge.sbatch"
    p = subprocess.run([BASH, str(merge)], capture_output=True, text=True, cwd=tmp_path)
    assert p.stdout.startswith(f"mcinit merge into {out} on ")
    assert p.returncode == 2 and "results file not found" in p.stderr, p.stderr
    assert no_injection(tmp_path) == []


@pytest.mark.parametrize("char", ["\n", "\r", "\0"])
def test_line_breaks_in_paths_are_refused_before_anything_is_written(tmp_path, char):
    out = tmp_path / f"a{char}b.h5"
    r = invoke("submit", *SMALL, "--shards", 2, "--dry-run", "-o", out)
    one_line_error(r, "NUL")  # a NUL is refused already as option text
    assert list(tmp_path.iterdir()) == []
    plan = hpc.make_plan(dict(trials=100, input_dim=4, width=8, depth=2), str(tmp_path / "ok.h5"), 2,
                         python=f"/usr/bin/py{char}thon")
    with pytest.raises(hpc.SlurmError, match="python interpreter"):
        hpc.check_destination(plan)
    with pytest.raises(hpc.SlurmError, match="python interpreter"):
        hpc.write_plan(plan)
    assert list(tmp_path.iterdir()) == []


def test_a_backslash_in_the_path_is_refused(tmp_path):
    d = tmp_path / "a\\b"
    d.mkdir()
    r = invoke("submit", *SMALL, "--shards", 2, "--dry-run", "-o", d / "r.h5")
    one_line_error(r, "backslash")
    assert list(d.iterdir()) == []


def test_sbatch_args_are_written_in_full(tmp_path):
    out = tmp_path / "x.h5"
    r = invoke("submit", *SMALL, "--shards", 2, "--dry-run", "-q", "-o", out, "--sbatch-arg=-Hqhigh",
               "--sbatch-arg=--exclusi=user", '--sbatch-arg=--comment=a "b" #c')
    assert r.exit_code == 0, r.output
    d = tmp_path / "x.h5.parts"
    for script in ("array.sbatch", "merge.sbatch"):
        header = [ln.rstrip("\n") for ln in open(d / script) if ln.startswith("#SBATCH")]
        args = [a for ln in header for a in sbatch_arguments(ln)]
        assert args[-4:] == ["--hold", "--qos=high", "--exclusive=user", '--comment=a "b" #c']
    plan = json.loads((d / "plan.json").read_text())
    assert plan["resources"]["extra"] == ["--hold", "--qos=high", "--exclusive=user", '--comment=a "b" #c']
    assert hpc.Resources(extra="--qos=low").extra == [("qos", "low")]  # one argument, not its letters


def test_dry_run_changes_no_existing_file(tmp_path, fake_slurm):
    """A dry run over an earlier submission (with or without --overwrite or --resume) refuses,
    and no byte under the directory changes (the earlier shards above all)."""
    out = tmp_path / "d.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "-q").exit_code == 0
    d = tmp_path / "d.h5.parts"
    (d / "w5_7-d2-n1-he.shard-0-of-2.h5").write_bytes(b"an earlier shard")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"], ["--resume"]):
        r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--dry-run", *extra)
        one_line_error(r, "a dry run writes only into a new directory")
        assert snapshot(tmp_path) == before, extra


def test_overwrite_keeps_the_earlier_submission_until_the_array_is_queued(tmp_path, fake_slurm, monkeypatch):
    out = tmp_path / "o.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "-q").exit_code == 0
    d = tmp_path / "o.h5.parts"
    shard = d / "w5_7-d2-n1-he.shard-0-of-2.h5"
    shard.write_bytes(b"an earlier shard")
    before = snapshot(tmp_path)
    monkeypatch.setenv("FAKE_SBATCH_FAIL", "Batch job submission failed: Invalid qos specification")
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--overwrite", "--sbatch-arg=--qos=nope")
    one_line_error(r, "Invalid qos specification")
    assert snapshot(tmp_path) == before
    monkeypatch.delenv("FAKE_SBATCH_FAIL")
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--overwrite", "-q")
    assert r.exit_code == 0, r.output
    assert not shard.exists() and json.loads((d / "jobs.json").read_text())["array"] == "125"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fakebin", "o.h5.parts", "sbatch.log", "scontrol.state"]


def _plan_edit(**changes):
    def edit(plan):
        for key, value in changes.items():
            if value is KeyError:
                del plan[key]
            else:
                plan[key] = value
        return plan
    return edit


def _run_edit(**changes):
    def edit(plan):
        plan["runs"][0].update(changes)
        return plan
    return edit


DAMAGED_PLANS = [
    ("not JSON", "{", "cannot read"),
    ("a list", "[]", "not a plan written by mcinit submit"),
    ("another format", _plan_edit(format="other"), "not a plan written by mcinit submit"),
    ("shards text", _plan_edit(shards="2"), "shards is '2'"),
    ("shards zero", _plan_edit(shards=0), "shards is 0"),
    ("shards true", _plan_edit(shards=True), "shards is True"),
    ("shards float", _plan_edit(shards=2.0), "shards is 2.0"),
    ("no runs", _plan_edit(runs=KeyError), "runs is not a list"),
    ("runs an object", _plan_edit(runs={}), "runs is not a list"),
    ("empty runs", _plan_edit(runs=[]), "runs is not a list"),
    ("run a number", _plan_edit(runs=[1]), "run 0 is not an object"),
    ("run name a path", _run_edit(name="../x"), "run 0 has the name '../x'"),
    ("run name missing", _run_edit(name=None), "run 0 has the name None"),
    ("trials text", _run_edit(trials="200"), "run w5_7-d2-n1-he has '200' trials"),
    ("trials below shards", _run_edit(trials=1), "has 1 trials"),
    ("no config hash", _run_edit(config_hash=7), "no config_hash"),
    ("config elsewhere", _run_edit(config="/etc/passwd"), "names the config '/etc/passwd'"),
    ("parts elsewhere", _run_edit(parts=["/dev/zero", "x.h5"]), "does not list its 2 part files"),
    ("parts short", _run_edit(parts=["w5_7-d2-n1-he.shard-0-of-2.h5"]), "does not list its 2 part files"),
    ("sweep wrong", _plan_edit(sweep=True), "sweep is True for 1 run(s)"),
    ("tasks wrong", _plan_edit(tasks=5), "tasks is 5"),
    ("output a number", _plan_edit(output=5), "output is not a path"),
]


@pytest.mark.parametrize("case,damage,word", DAMAGED_PLANS, ids=[c[0] for c in DAMAGED_PLANS])
def test_status_of_a_damaged_plan_is_one_line(tmp_path, monkeypatch, case, damage, word):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "--dry-run").exit_code == 0
    path = tmp_path / "p.h5.parts" / "plan.json"
    text = damage if isinstance(damage, str) else json.dumps(damage(json.loads(path.read_text())))
    path.write_text(text)
    r = invoke("status", out)
    one_line_error(r, word)
    assert path.read_text() == text


DAMAGED_JOBS = [
    ("not JSON", "{", "cannot read"),
    ("a list", "[1]", "not a JSON object"),
    ("array a list", '{"array": [1]}', "its array job id is [1]"),
    ("array a command", '{"array": "1; rm -rf /"}', "its array job id is '1; rm -rf /'"),
    ("merge true", '{"array": "1", "merge": true}', "its merge job id is True"),
    ("array negative", '{"array": -1}', "its array job id is -1"),
]


@pytest.mark.parametrize("case,text,word", DAMAGED_JOBS, ids=[c[0] for c in DAMAGED_JOBS])
def test_status_with_damaged_jobs_is_one_line(tmp_path, monkeypatch, case, text, word):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "--dry-run").exit_code == 0
    path = tmp_path / "p.h5.parts" / "jobs.json"
    path.write_text(text)
    one_line_error(invoke("status", out), word)
    # and --overwrite, which must know whether the earlier jobs still run, refuses too
    one_line_error(invoke("submit", *SMALL, "--shards", 2, "-o", out, "--overwrite"), word)
    assert path.read_text() == text


def _trials(path, group="/"):
    with h5py.File(path, "r") as f:
        g = f[group]["trials"]
        return {k: g[k][...] for k in ("index", "fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead")}


@pytest.mark.slow
def test_real_cluster_submit_wait_and_status(tmp_path, slurm_cluster):  # noqa: F811
    """A run of 4 shards through a real one-node SLURM cluster equals the local run bit for bit."""
    opts = ["--trials", 2000, "--input-dim", 20, "--widths", "16,24,8", "--samples", 2, "--kernel", "projected"]
    out = tmp_path / "cluster.h5"
    env = {k: slurm_cluster.env[k] for k in ("SLURM_CONF", "MUNGE_SOCKET", "PATH")}
    t0 = time.monotonic()
    r = invoke("submit", *opts, "--shards", 4, "--cpus-per-task", 1, "-o", out, "--wait", env=env)
    elapsed = time.monotonic() - t0
    logs = tmp_path / "cluster.h5.parts" / "logs"
    diag = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(logs.glob("*.out"))) if logs.exists() else ""
    assert r.exit_code == 0, r.output + diag + slurm_cluster.diagnostics()
    print(f"submit --wait on the cluster: {elapsed:.1f} s")
    assert out.exists()
    local = tmp_path / "local.h5"
    r2 = invoke("run", *opts, "-o", local, "-q")
    assert r2.exit_code == 0, r2.output
    a, b = _trials(out), _trials(local)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k
    assert (a["index"] == np.arange(2000)).all()
    r3 = invoke("status", out, env=env)
    assert r3.exit_code == 0, r3.output
    assert "shards: 4/4 complete; trials: 2000/2000 (100.0%)" in r3.output, r3.output
    assert f"merged: {out} complete" in r3.output, r3.output
    logs = sorted(p.name for p in logs.iterdir())
    assert len([n for n in logs if n.startswith("slurm-")]) == 4 and any(n.startswith("merge-") for n in logs)


@pytest.mark.slow
def test_real_cluster_failed_shard_ends_the_wait(tmp_path, slurm_cluster, monkeypatch):  # noqa: F811
    """A shard that fails (its file holds another configuration) cancels the merge: --wait
    returns non-zero instead of waiting for ever, and status shows which shard."""
    out = tmp_path / "bad.h5"
    opts = [*SMALL, "--shards", 2, "-o", out]
    env = {k: slurm_cluster.env[k] for k in ("SLURM_CONF", "MUNGE_SOCKET", "PATH")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert invoke("submit", *opts, "--dry-run").exit_code == 0
    part = hpc.read_status(str(out))["runs"][0]["shards"][1]["part"]
    r = invoke("run", *SMALL[2:], "--trials", 150, "--shard", "1/2", "-o", part, "-q")
    assert r.exit_code == 0, r.output
    t0 = time.monotonic()
    r = invoke("submit", *opts, "--resume", "--wait", "-q", env=env)
    print(f"failing submit --wait: {time.monotonic() - t0:.1f} s")
    assert r.exit_code != 0, r.output
    assert "ended CANCELLED" in r.output and "first unfinished shard" in r.output, r.output
    assert not out.exists()
    st = hpc.read_status(str(out))
    assert [s["state"] for s in st["runs"][0]["shards"]] == ["done", "other configuration"]
    assert st["slurm"][st["runs"][0]["shards"][1]["job"]]["state"] == "FAILED"
    r = invoke("status", out)
    assert "FAILED" in r.output and "CANCELLED" in r.output, r.output
    print(r.output)


@pytest.mark.slow
def test_real_cluster_sweep_equals_the_local_sweep(tmp_path, slurm_cluster, monkeypatch):  # noqa: F811
    """2 widths x 2 shards: the merged sweep file holds each run as the local `mcinit sweep` does."""
    for k in ("SLURM_CONF", "MUNGE_SOCKET", "PATH"):
        monkeypatch.setenv(k, slurm_cluster.env[k])
    opts = ["--trials", 600, "--input-dim", 8, "--width", "12,6", "--depth", 2, "--samples", 2]
    out = tmp_path / "sweep.h5"
    r = invoke("submit", *opts, "--shards", 2, "-o", out, "--wait", "-q")
    assert r.exit_code == 0, r.output + slurm_cluster.diagnostics()
    local = tmp_path / "local-sweep.h5"
    assert invoke("sweep", *opts, "-o", local, "-q").exit_code == 0
    for name in ("w12-d2-n2-he", "w6-d2-n2-he"):
        a, b = _trials(out, f"runs/{name}"), _trials(local, f"runs/{name}")
        for k in a:
            assert a[k].tobytes() == b[k].tobytes() and a[k].shape == b[k].shape, (name, k)
    st = hpc.read_status(str(out))
    assert st["shards_done"] == 4 and st["merged"]["complete"]


@pytest.mark.slow
def test_real_cluster_hostile_paths(tmp_path, slurm_cluster, monkeypatch):  # noqa: F811
    """Submitted for real into a directory whose name holds shell syntax, quotes, # and SLURM's
    %-patterns: the jobs run there, their logs land in logs/ under it, the merge writes the output,
    and nothing of the names is run."""
    for k in ("SLURM_CONF", "MUNGE_SOCKET", "PATH"):
        monkeypatch.setenv(k, slurm_cluster.env[k])
    monkeypatch.chdir(tmp_path)
    d = tmp_path / HOSTILE_DIR
    d.mkdir()
    out = d / 'r "x" $(touch PWNED) %x %a.h5'
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--wait", "-q", '--sbatch-arg=--comment=a "b" #c %j')
    assert r.exit_code == 0, r.output + slurm_cluster.diagnostics()
    assert out.exists() and no_injection(tmp_path) == []
    logs = sorted(p.name for p in (d / (out.name + ".parts") / "logs").iterdir())
    assert len(logs) == 3 and sum(n.startswith("slurm-") for n in logs) == 2 and logs[0].startswith("merge-")
    array = hpc.load_jobs(str(d / (out.name + ".parts")))["array"]
    info = slurm_cluster.run("scontrol", "show", "job", "-o", array, check=False).stdout
    assert 'Comment=a "b" #c %j ' in info and f"WorkDir={d / (out.name + '.parts')} " in info, info


@pytest.mark.slow
def test_real_cluster_beside_another(slurm_cluster, tmp_path):  # noqa: F811
    """A second cluster started while the session's runs: its own ports, munge socket and
    directories; a job submitted to each is seen by that one only; stopping the second leaves
    nothing of it running and the first idle."""
    from slurm_cluster import alive, read_pid, start_cluster
    other = start_cluster(log=lambda m: None)
    try:
        assert not set(other.ports) & set(slurm_cluster.ports)
        assert other.munge_socket != slurm_cluster.munge_socket and other.root != slurm_cluster.root
        script = tmp_path / "hello.sh"
        script.write_text(f"#!/bin/bash\n#SBATCH --output={tmp_path}/hello-%j.out\nsleep 1; echo hello\n")
        ids = []
        for cluster in (slurm_cluster, other):
            p = cluster.run("sbatch", "--parsable", "--hold", str(script))
            ids.append(p.stdout.strip())
            queued = cluster.run("squeue", "-h", "-o", "%i %j").stdout.split("\n")
            assert [q.split()[1] for q in queued if q.strip()] == ["hello.sh"], queued
        for cluster, job in zip((slurm_cluster, other), ids):
            cluster.run("scontrol", "release", job)
    finally:
        daemons = [read_pid(path) for path in other.pidfiles.values()]
        killed = other.stop()
        other.cleanup()
    assert killed == [] and None not in daemons and not [pid for pid in daemons if alive(pid)]
    assert other._leftovers() == []
    assert slurm_cluster.run("sinfo", "-h", "-o", "%T").stdout.split() in (["idle"], ["mixed"], ["allocated"])



@pytest.mark.parametrize("name", ["plan.json", "jobs.json"])
@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "deep"])
def test_status_reads_only_regular_json_files(tmp_path, monkeypatch, name, kind):
    """A FIFO, a directory, a link to a device or a deeply nested JSON value in place of
    plan.json or jobs.json: one line, no hang."""
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "--dry-run").exit_code == 0
    path = tmp_path / "p.h5.parts" / name
    if path.exists():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.write_text("[" * 100000 + "]" * 100000)
    one_line_error(invoke("status", out), "cannot read")


@pytest.mark.slow
def test_test_cluster_takes_new_ports_when_one_is_taken(monkeypatch):
    """The free ports found for a cluster are taken by someone else before its daemons bind
    them: it starts again with new ones instead of failing."""
    import socket

    import slurm_cluster as sc
    taken = socket.socket()
    taken.bind(("", 0))
    taken.listen()
    found = sc.free_ports
    calls = []

    def first_taken(n):
        calls.append(n)
        ports = found(n)
        return [taken.getsockname()[1]] + ports[1:] if len(calls) == 1 else ports

    monkeypatch.setattr(sc, "free_ports", first_taken)
    try:
        cluster = sc.start_cluster(log=lambda m: None)
    except sc.ClusterUnavailable as e:
        taken.close()
        if "port" in str(e) or sc.on_ci():
            raise
        pytest.skip(f"no SLURM cluster: {e}")
    try:
        assert len(calls) == 2 and taken.getsockname()[1] not in cluster.ports
        assert cluster.run("sinfo", "-h", "-o", "%T").stdout.split() == ["idle"]
    finally:
        taken.close()
        assert cluster.stop() == []
        cluster.cleanup()


def test_resume_replaces_links_instead_of_writing_through_them(tmp_path, fake_slurm):
    """Files of the submission directory are written anew and renamed into place: a link
    left there (to a file elsewhere) is replaced, and the file it pointed to keeps its bytes."""
    out = tmp_path / "l.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "-o", out, "-q").exit_code == 0
    d = tmp_path / "l.h5.parts"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"not mcinit's")
    (d / "array.sbatch").unlink()
    (d / "array.sbatch").symlink_to(elsewhere)
    r = invoke("submit", *SMALL, "--shards", 2, "-o", out, "--resume", "-q")
    assert r.exit_code == 0, r.output
    assert elsewhere.read_bytes() == b"not mcinit's"
    assert not (d / "array.sbatch").is_symlink() and "#SBATCH --array=0-1" in (d / "array.sbatch").read_text()
    assert not [p.name for p in d.iterdir() if ".tmp" in p.name]


def test_status_of_a_path_with_a_newline_is_one_line(tmp_path):
    one_line_error(invoke("status", tmp_path / "a\nb.h5"), "no submission for")


@pytest.mark.parametrize("output", ["a\0b.h5", "/", ""])
def test_status_of_odd_paths_is_one_line(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("status", output), "no submission for")


def test_a_submission_directory_that_appears_meanwhile_is_left_alone(tmp_path, monkeypatch):
    """Another submit makes the directory between the checks and the writing: this one
    refuses with one line and writes nothing into it."""
    plan = hpc.make_plan(dict(trials=100, input_dim=4, width=8, depth=2), str(tmp_path / "c.h5"), 2)
    hpc.check_destination(plan)
    os.mkdir(plan.dir)
    (tmp_path / "c.h5.parts" / "theirs").write_bytes(b"another submit's")
    with pytest.raises(hpc.SlurmError, match="appeared while mcinit submit was writing it"):
        hpc.write_plan(plan)
    assert os.listdir(plan.dir) == ["theirs"]


def test_submissions_carry_precision_and_properties_and_status_reads_their_parts(tmp_path, monkeypatch):
    """A submission lists --precision and --properties like a sweep: each run's config file
    holds them (rebuilding its configuration's hash), and `mcinit status` reads the shard
    files of a run of one property (format version 2)."""
    monkeypatch.setenv("PATH", str(tmp_path))  # status works without SLURM
    out = tmp_path / "p.h5"
    r = invoke("submit", "--trials", 200, "--input-dim", 6, "--widths", "5,7", "--properties", "forward,both",
               "--precision", "float64,float32", "--shards", 2, "-o", out, "--dry-run")
    assert r.exit_code == 0, r.output
    plan = hpc.load_plan(str(out))
    assert len(plan["runs"]) == 4
    seen = set()
    for run in plan["runs"]:
        keys = json.loads(open(os.path.join(plan["dir"], run["config"])).read())
        seen.add((keys["precision"], keys["properties"]))
        assert engine.resolve(config.build(**keys)[0]).config_hash() == run["config_hash"]
    assert seen == {(p, q) for p in ("float64", "float32") for q in ("forward", "both")}
    run = next(r for r in plan["runs"] if "float32-forward" in r["name"])
    cfg = os.path.join(plan["dir"], run["config"])
    part = os.path.join(plan["dir"], run["parts"][1])
    r = invoke("run", "--config", cfg, "--shard", "1/2", "-o", part, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(part, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["kernel"] == "blocked"
    st = hpc.read_status(str(out))
    shards = next(x for x in st["runs"] if x["name"] == run["name"])["shards"]
    assert [s["state"] for s in shards] == ["missing", "done"]
    r = invoke("status", out)
    assert r.exit_code == 0 and "shards: 1/8 complete; trials: 100/800" in r.output, r.output


def test_submit_says_its_disk_and_removes_parts_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM needed
    out = tmp_path / "w.h5"
    r = invoke("submit", "--trials", "1e8", "--width", "256,512,1024", "--shards", 50, "--ignore-limits",
               "--remove-parts", "-o", out, "--dry-run")
    assert r.exit_code == 0, r.output
    from mcinit import config, engine
    from mcinit.limits import human_bytes, submission_bytes
    cfgs = [engine.resolve(config.build(trials=int(1e8), width=w)[0]) for w in (256, 512, 1024)]
    parts, merged = submission_bytes(cfgs, 50)
    assert 50e9 < merged < 53e9 and merged <= parts < merged * 1.01     # 169 bytes per trial, 3e8 trials
    assert f"disk: {human_bytes(parts)} of part files plus {human_bytes(merged)} merged" in r.output
    assert "the merge then removes the part files (--remove-parts)" in r.output
    merge = (tmp_path / "w.h5.parts" / "merge.sbatch").read_text()
    assert merge.rstrip().endswith("--remove-parts") and "--sweep" in merge
    assert json.loads((tmp_path / "w.h5.parts" / "plan.json").read_text())["remove_parts"] is True
    r = invoke("submit", *SMALL, "--shards", 2, "-o", tmp_path / "s.h5", "--dry-run")
    assert r.exit_code == 0 and "--remove-parts has the merge remove" in r.output
    assert "--remove-parts" not in (tmp_path / "s.h5.parts" / "merge.sbatch").read_text()


def test_the_merge_script_removes_the_parts_and_status_counts_them_merged(tmp_path, monkeypatch):
    """The merge job's command (merge.sbatch run by bash) with --remove-parts: the parts go once
    the merged file is verified, and status counts every shard done, the merged file complete."""
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 2, "--remove-parts", "-o", out, "--dry-run").exit_code == 0
    plan = hpc.load_plan(str(out))
    d = plan["dir"]
    cfg = os.path.join(d, plan["runs"][0]["config"])
    for i, part in enumerate(plan["runs"][0]["parts"]):
        assert invoke("run", "--config", cfg, "--shard", f"{i}/2", "-o", os.path.join(d, part), "-q").exit_code == 0
    p = subprocess.run([BASH, os.path.join(d, "merge.sbatch")], capture_output=True, text=True, cwd=d,
                       env=dict(os.environ, PATH=os.environ["PATH"] + os.pathsep + "/usr/bin:/bin"), timeout=280)
    assert p.returncode == 0, p.stderr
    assert "removed 2 part files" in p.stdout and out.exists()
    assert not any(os.path.exists(os.path.join(d, part)) for part in plan["runs"][0]["parts"])
    st = hpc.read_status(str(out))
    assert [s["state"] for s in st["runs"][0]["shards"]] == ["done", "done"] and st["merged"]["complete"]


def test_status_is_compact_and_lists_every_shard_on_request(tmp_path, monkeypatch):
    """`mcinit status` groups the shards (done, running, missing, failed) with their numbers as
    ranges; --shards lists every shard; --json holds every shard and the groups."""
    monkeypatch.setenv("PATH", str(tmp_path))  # status works without SLURM
    out = tmp_path / "p.h5"
    assert invoke("submit", *SMALL, "--shards", 6, "-o", out, "--dry-run").exit_code == 0
    plan = hpc.load_plan(str(out))
    run = plan["runs"][0]
    cfg = os.path.join(plan["dir"], run["config"])
    for i in (1, 2, 4):
        part = os.path.join(plan["dir"], run["parts"][i])
        assert invoke("run", "--config", cfg, "--shard", f"{i}/6", "-o", part, "-q").exit_code == 0
    with open(os.path.join(plan["dir"], run["parts"][5]), "w") as f:
        f.write("not a results file")
    r = invoke("status", out)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "shards: 3/6 complete; trials: 100/200 (50.0%)" in lines
    assert f"  done         3  {run['name']}: 1-2,4" in lines
    assert "  running      0" in lines and f"  missing      2  {run['name']}: 0,3" in lines
    failed = next(ln for ln in lines if ln.startswith("  failed"))
    assert failed.startswith(f"  failed       1  {run['name']}: 5 unreadable (") and len(lines) == 8, r.output
    r = invoke("status", out, "--shards")
    assert r.exit_code == 0 and sum(f"{i}/6" in r.output for i in range(6)) == 6, r.output
    assert "  done " not in r.output
    doc = json.loads(invoke("status", out, "--json").stdout)
    assert doc["subject"] == "submission" and len(doc["runs"][0]["shards"]) == 6
    assert doc["groups"]["done"] == [dict(run=run["name"], shards=[1, 2, 4], ranges="1-2,4", detail=None)]
    assert [g["shards"] for g in doc["groups"]["missing"]] == [[0, 3]] and doc["groups"]["running"] == []


def test_ranges_compress_shard_numbers():
    assert hpc.ranges([]) == "" and hpc.ranges([3]) == "3"
    assert hpc.ranges([9, 0, 1, 2, 3, 7, 10]) == "0-3,7,9-10"
