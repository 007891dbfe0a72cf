"""--dry-run of run and sweep (mcinit.dryrun), the kernel choice in words (kernels.choose) and
the time estimate's calibration (mcinit.estimate): nothing is written but the calibrations' cache."""

import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from mcinit import config, engine, estimate, limits
from mcinit.cli import main
from mcinit.options import options_of

SMALL = ["--trials", 200, "--input-dim", 4, "--width", 8, "--depth", 2]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A calibrations' cache of the test's own (platformdirs reads XDG_CACHE_HOME)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    monkeypatch.setattr(estimate, "CALIBRATION_SECONDS", 0.05)     # quick tests
    return d


def listing(d):
    return sorted(p.name for p in d.iterdir() if p.name != "cache")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_dry_run_says_everything_and_writes_nothing(tmp_path, cache):
    out = tmp_path / "r.h5"
    r = invoke("run", *SMALL, "-o", out, "--dry-run")
    assert r.exit_code == 0, r.output
    assert listing(tmp_path) == []                      # no results file, lock or temporary
    text = r.output
    for o in options_of("run"):                         # every option of run, defaults included
        assert f"  {o.name} " in text, o.name
    assert "  trials" in text and "= 200" in text and "  *" in text
    assert "kernel: law: auto: Gaussian weights and one input per trial" in text
    for k in ("law", "dense", "blocked", "projected"):  # every kernel that can run it, with its cost
        assert any(line.split()[:1] == [k] for line in text.splitlines()), k
    assert ("time: about" in text or "time: under 0.01 s" in text) and "fresh calibration" in text
    assert "about under" not in text
    cfg = engine.resolve(config.build(trials=200, input_dim=4, width=8, depth=2)[0])
    size = limits.human_bytes(limits.file_bytes(cfg))
    assert f"{out} will be created; {size} for 200 trials ({limits.trial_bytes(cfg)} bytes per trial)" in text
    cached = json.loads((cache / "mcinit" / estimate.CACHE_NAME).read_text())
    assert len(cached) == 1 and next(iter(cached.values()))["ratio"] > 0
    again = invoke("run", *SMALL, "--seed", 3, "-o", out, "--dry-run")     # the same shape class
    assert again.exit_code == 0 and "cached calibration" in again.output
    assert listing(tmp_path) == []


def test_dry_run_on_an_existing_output_changes_no_byte(tmp_path):
    out = tmp_path / "r.h5"
    assert invoke("run", *SMALL, "-o", out, "-q").exit_code == 0
    before, names = digest(out), listing(tmp_path)
    r = invoke("run", *SMALL, "-o", out, "--dry-run")
    assert r.exit_code == 0 and "holds this run, complete: nothing to compute" in r.output
    assert "time: nothing to compute" in r.output
    r = invoke("run", *SMALL[2:], "--trials", 500, "-o", out, "--dry-run")
    assert r.exit_code == 0 and "holds 200 trials of this run, complete: it will be extended to 500" in r.output
    assert "for 300 trials" in r.output
    r = invoke("run", *SMALL, "--seed", 1, "-o", out, "--dry-run")     # the run refuses it: so does the plan
    assert r.exit_code == 2 and "exists" in r.output and r.output.count("\n") == 1
    r = invoke("run", *SMALL, "--seed", 1, "-o", out, "--dry-run", "--resume")
    assert r.exit_code == 2 and "another configuration" in r.output
    r = invoke("run", *SMALL, "--seed", 1, "-o", out, "--dry-run", "--overwrite")
    assert r.exit_code == 0 and f"{out} will be replaced" in r.output
    assert digest(out) == before and listing(tmp_path) == names


def test_sweep_dry_run(tmp_path):
    out = tmp_path / "s.h5"
    r = invoke("sweep", *SMALL[:4], "--width", "8,16", "--depth", 2, "--dist", "uniform", "-o", out, "--dry-run")
    assert r.exit_code == 0, r.output
    assert listing(tmp_path) == []
    assert "2 runs" in r.output and "[w8-d2-n1-he]" in r.output and "[w16-d2-n1-he]" in r.output
    assert "  width" in r.output and "= 8 | 16" in r.output
    assert "auto: the least estimated seconds per trial among dense, blocked (projected and law are exact for " \
           "Gaussian or orthogonal weights only)" in r.output
    assert r.output.count("time: ") == 3 and "about under" not in r.output and f"{out} will be created" in r.output
    assert invoke("sweep", *SMALL[:4], "--width", "8,16", "--depth", 2, "-o", out, "-q").exit_code == 0
    before = digest(out)
    r = invoke("sweep", *SMALL[:4], "--width", "8,16", "--depth", 2, "-o", out, "--dry-run", "--resume")
    assert r.exit_code == 0 and "200 done already" in r.output and r.output.rstrip().endswith("in all")
    assert "time: nothing to compute" in r.output and f"{out} will be resumed" in r.output
    r = invoke("sweep", *SMALL[:4], "--width", "8,32", "--depth", 2, "-o", out, "--dry-run", "--resume")
    assert r.exit_code == 2 and "not a sweep of the same runs" in r.output
    assert digest(out) == before and listing(tmp_path) == ["s.h5"]


def test_the_kernel_choice_says_its_rule():
    def choice(**kw):
        return engine.kernel_choice(config.build(trials=5, input_dim=4, width=8, depth=2, **kw)[0])
    name, why, costs = choice(precision="float32")
    assert name == "blocked" and "float32" in why and set(costs) == {"blocked"}
    name, why, costs = choice(samples=8)
    assert name == min(("dense", "blocked", "projected"), key=costs.get) and set(costs) == {"dense", "blocked", "projected"}
    name, why, costs = choice(kernel="dense")
    assert name == "dense" and "asked for" in why and "law" in costs


def test_a_calibration_is_cached_per_shape_class(cache):
    cfg = engine.resolve(config.build(trials=10, input_dim=4, width=8, depth=2)[0])
    first = estimate.calibrate(cfg)
    assert first.fresh and first.ratio > 0 and first.trials >= 2
    second = estimate.calibrate(cfg)
    assert not second.fresh and second.ratio == first.ratio and second.key == first.key
    wider = engine.resolve(config.build(trials=10, input_dim=4, width=32, depth=2)[0])
    assert estimate.shape_class(wider) != estimate.shape_class(cfg)
    assert estimate.trial_seconds(cfg, first) == pytest.approx(estimate.model_seconds(cfg) * first.ratio)
    assert estimate.calibrate(cfg, refresh=True).fresh


def test_human_seconds():
    assert [estimate.human_seconds(x) for x in (0.0012, 0.0123, 5.5, 150, 7200, 3 * 86400)] == \
        ["under 0.01 s", "0.012 s", "5.5 s", "2.5 min", "2 h", "3 days"]
    assert [estimate.approx_seconds(x) for x in (0.0012, 5.5)] == ["under 0.01 s", "about 5.5 s"]


def test_option_table_marks_command_line_only_options():
    from mcinit import options
    assert "| `--dry-run` | (command line only) |" in options.markdown_table()
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "cli.md")
    assert options.markdown_table() in open(path).read()


def test_dry_runs_with_the_options_of_their_command_shards_and_quiet(tmp_path):
    """A dry run lists the options its command takes (sweep's -v for sweep only), --shard as
    I/K, plans a sweep's share of every run, and prints its plan even with -q."""
    out = tmp_path / "s.h5"
    r = invoke("sweep", *SMALL[:4], "--width", "8,16", "--depth", 2, "--shard", "1/3", "-o", out, "--dry-run", "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""                               # -q: no calibration notes
    assert "  shard" in r.stdout and "= 1/3  *" in r.stdout and "  verbose" in r.stdout
    assert r.stdout.count("for 67 trials (shard 1/3: trials 66 to 132)") == 2
    assert listing(tmp_path) == []
    r = invoke("run", *SMALL, "--shard", "0/2", "-o", tmp_path / "r.h5", "--dry-run", "-q")
    assert r.exit_code == 0 and "for 100 trials" in r.stdout and "= 0/2  *" in r.stdout
    assert "  verbose" not in r.stdout and "mcinit run --dry-run" in r.stdout
    assert listing(tmp_path) == []
