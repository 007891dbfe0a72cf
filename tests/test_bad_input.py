"""The catalogue of bad input (README, "Bad input"): every case ends in one line
`mcinit: error: ...` on stderr, exit status 2, no traceback, and no existing
results file is modified."""

import hashlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mcinit.cli import main

from doc_tables import doc_rows


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.h5"
    assert invoke("run", "--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2,
                  "-o", good, "-q").exit_code == 0
    for i in range(2):
        assert invoke("run", "--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2,
                      "--shard", f"{i}/2", "-o", d / f"part{i}.h5", "-q").exit_code == 0
    assert invoke("run", "--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2, "--seed", 1,
                  "--shard", "0/2", "-o", d / "other.h5", "-q").exit_code == 0
    truncated = d / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    (d / "text.h5").write_text("not hdf5\n")
    with h5py.File(d / "foreign.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    np.save(d / "nan.npy", np.array([[1.0, np.nan, 2.0]]))
    np.save(d / "zero_rows.npy", np.zeros((0, 3)))
    np.save(d / "ok.npy", np.ones((4, 3)))
    (d / "bad.toml").write_text("trials = [1, 2\n")
    (d / "unknown.json").write_text('{"trials": 10, "colour": "red"}')
    return d


CASES = {
    "trials not a number": ["run", "--trials", "many"],
    "trials zero": ["run", "--trials", 0],
    "trials fractional": ["run", "--trials", 2.5],
    "trials too many": ["run", "--trials", 2 ** 41],
    "negative width": ["run", "--width", -4],
    "malformed widths": ["run", "--widths", "8,,x"],
    "width and widths": ["run", "--width", 8, "--widths", "8,8"],
    "unknown init": ["run", "--init", "xavier"],
    "unknown dist": ["run", "--dist", "laplace"],
    "unknown head": ["run", "--head", "mse:3"],
    "one-class softmax": ["run", "--head", "softmax:1"],
    "unknown kernel": ["run", "--kernel", "fast"],
    "projected with uniform weights": ["run", "--kernel", "projected", "--dist", "uniform"],
    "projected with weight normalisation": ["run", "--kernel", "projected", "--init", "wn"],
    "law with several inputs": ["run", "--kernel", "law", "--samples", 2],
    "wn with uniform": ["run", "--init", "wn", "--dist", "uniform"],
    "seed negative": ["run", "--seed", -3],
    "seed too large": ["run", "--seed", 2 ** 64],
    "threads zero": ["run", "--threads", 0],
    "batch size zero": ["run", "--batch-size", 0],
    "shard malformed": ["run", "--shard", "1-4"],
    "shard out of range": ["run", "--shard", "4/4"],
    "unknown option": ["run", "--colour", "red"],
    "unknown backend": ["run", "--backend", "tpu"],
    "data file missing": ["run", "--data", "{d}/absent.npy"],
    "data not .npy": ["run", "--data", "{d}/text.h5"],
    "data with NaN": ["run", "--data", "{d}/nan.npy"],
    "data with zero rows": ["run", "--data", "{d}/zero_rows.npy"],
    "data of the wrong dimension": ["run", "--data", "{d}/ok.npy", "--input-dim", 5],
    "more samples than rows": ["run", "--data", "{d}/ok.npy", "--samples", 9],
    "config file missing": ["run", "--config", "{d}/absent.toml"],
    "config file malformed": ["run", "--config", "{d}/bad.toml"],
    "config file unknown key": ["run", "--config", "{d}/unknown.json"],
    "output exists": ["run", "--trials", 5, "-o", "{d}/good.h5"],
    "output directory missing": ["run", "--trials", 5, "-o", "{d}/no/such/dir/r.h5"],
    "output is a directory": ["run", "--trials", 5, "-o", "{d}"],
    "output not creatable": ["run", "--trials", 5, "-o", "/proc/mcinit-cannot.h5"],
    "resume another configuration": ["run", "--trials", 300, "--input-dim", 6, "--widths", "5,8",
                                      "--samples", 2, "-o", "{d}/good.h5", "--resume"],
    "resume a non-HDF5 file": ["run", "--trials", 5, "-o", "{d}/text.h5", "--resume"],
    "resume a foreign HDF5 file": ["run", "--trials", 5, "-o", "{d}/foreign.h5", "--resume"],
    "resume a truncated file": ["run", "--trials", 5, "-o", "{d}/truncated.h5", "--resume"],
    "merge a missing file": ["merge", "{d}/absent.h5", "-o", "{d}/m.h5"],
    "merge a non-HDF5 file": ["merge", "{d}/text.h5", "-o", "{d}/m.h5"],
    "merge a truncated file": ["merge", "{d}/truncated.h5", "-o", "{d}/m.h5"],
    "merge a foreign HDF5 file": ["merge", "{d}/foreign.h5", "-o", "{d}/m.h5"],
    "merge an incomplete set": ["merge", "{d}/part0.h5", "-o", "{d}/m.h5"],
    "merge overlapping parts": ["merge", "{d}/part0.h5", "{d}/part1.h5", "{d}/part0.h5", "-o", "{d}/m.h5"],
    "merge mismatched configurations": ["merge", "{d}/part0.h5", "{d}/part1.h5", "{d}/other.h5", "-o", "{d}/m.h5"],
    "merge onto an input": ["merge", "{d}/part0.h5", "{d}/part1.h5", "-o", "{d}/part0.h5", "--overwrite"],
    "merge onto an existing file": ["merge", "{d}/part0.h5", "{d}/part1.h5", "-o", "{d}/good.h5"],
    "sweep with a bad list item": ["sweep", "--width", "8,0"],
    "sweep listing a run twice": ["sweep", "--width", "8,8"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(files, case):
    before = {p.name: digest(p) for p in files.iterdir() if p.is_file()}
    args = [str(a).format(d=files) for a in CASES[case]]
    if args[0] in ("run", "sweep") and "--trials" not in args:
        args[1:1] = ["--trials", "5"]
    if "-o" not in args:
        args += ["-o", str(files / "fresh.h5")]
    r = invoke(*args, *(["-q"] if args[0] != "merge" else []))
    assert r.exit_code == 2, (case, r.output, r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcinit: error: "), (case, r.output)
    assert "Traceback" not in r.output
    after = {p.name: digest(p) for p in files.iterdir() if p.is_file()}
    assert after == before, case          # nothing created, nothing modified
    assert not any(p.is_dir() and p.name != "__pycache__" for p in files.iterdir())


# -- docs/bad-input.md, "Precision and properties": each row run as the table gives it -----------

PROPERTY_ROWS = doc_rows("Precision and properties")


@pytest.fixture(scope="module")
def property_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("props")
    small = ["--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2, "-q"]
    for props in ("forward", "backward"):
        assert invoke("run", *small, "--properties", props, "-o", d / f"{props}.h5").exit_code == 0
    for i in range(2):
        assert invoke("run", *small, "--properties", "forward", "--shard", f"{i}/2",
                      "-o", d / f"fpart{i}.h5").exit_code == 0
    assert invoke("run", *small, "--shard", "0/2", "-o", d / "part0.h5").exit_code == 0
    import shutil
    shutil.copy(d / "forward.h5", d / "forward-v1.h5")
    with h5py.File(d / "forward-v1.h5", "a") as f:
        f.attrs["format_version"] = np.int64(1)
    shutil.copy(d / "part0.h5", d / "v5.h5")
    with h5py.File(d / "v5.h5", "a") as f:
        f.attrs["format_version"] = np.int64(5)
    return d


def test_the_precision_and_properties_section_lists_its_cases():
    assert len(PROPERTY_ROWS) == 18 and len({c for c, _, _ in PROPERTY_ROWS}) == 18


@pytest.mark.parametrize("case,command,message", PROPERTY_ROWS, ids=[r[0] for r in PROPERTY_ROWS])
def test_precision_and_properties_refusals(property_files, case, command, message):
    import shlex
    d = property_files
    before = {p.name: digest(p) for p in d.iterdir() if p.is_file()}
    args = [a.replace("DIR", str(d)) for a in shlex.split(command)[1:]]
    if args[0] in ("run", "sweep"):
        if "--trials" not in args:
            args[1:1] = ["--trials", "5"]
        if "-o" not in args:
            args += ["-o", str(d / "fresh.h5")]
        args.append("-q")
    r = invoke(*args)
    assert r.exit_code == 2, (case, r.output, r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines == ["mcinit: error: " + message.replace("DIR", str(d))], (case, r.output)
    after = {p.name: digest(p) for p in d.iterdir() if p.is_file()}
    assert after == before, case


def test_the_python_api_names_the_property_not_computed(property_files):
    import mcinit
    with pytest.raises(ValueError) as e:
        mcinit.load(property_files / "forward.h5").failure(0.1, prop="backward")
    assert str(e.value) == "no run of this file computed the backward property (made with --properties forward)"
