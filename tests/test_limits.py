"""mcinit.limits: the memory and disk a run needs, estimated and checked before any file exists."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from mcinit import engine, limits
from mcinit.cli import main
from mcinit.config import ConfigError, build
from mcinit.store import HDF5Sink

GiB = 1 << 30


def resolved(**kw):
    cfg, data = build(**kw)
    return engine.resolve(cfg), data


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(r):
    """The command failed with exit 2 and one line 'mcinit: error: ...', no traceback."""
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcinit: error: "), r.output
    return lines[0]


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 8 GiB of memory available and 80 GB of free disk, whatever this one has."""
    monkeypatch.setattr(limits, "available_memory", lambda: 8 * GiB)
    monkeypatch.setattr(limits, "free_disk", lambda path: 80 * 10 ** 9)


# --- refusals: one line, exit 2, no file ---------------------------------------------------

# the cases of docs/bad-input.md ("Memory, disk and numeric limits"), with their messages
W20 = 1 << 20
REFUSED = [
    (["run", "--head", "gaussian:1e12"],
     "the head has 1000000000000 classes; at most 1048576 are supported"),
    (["run", "--samples", 1000, "--depth", 100, "--kernel", "dense", "--batch-size", 100000, "--threads", 1],
     "a batch of 100000 trials needs 151 GiB of memory (the ratio arrays: 149 GiB); this machine has 8 GiB "
     "available: lower --batch-size (at most 4765 fits) or --samples (or pass --ignore-limits)"),
    (["run", "--width", W20, "--depth", 2, "--samples", 1 << 16, "--kernel", "dense", "--batch-size", 1,
      "--threads", 1],
     "a batch of 1 trial needs 3 TiB of memory (the kernel's scratch: 3 TiB); this machine has 8 GiB available: "
     "lower --samples, the widths, the head's classes or --threads (or pass --ignore-limits)"),
    (["run", "--trials", 1000, "--width", W20, "--depth", 4000, "--samples", W20, "--kernel", "dense",
      "--batch-size", 1000, "--threads", 1, "--ignore-limits"],
     "a batch of 1000 trials needs 31.3 PiB of memory, more than any machine can address (the kernel's "
     "scratch: 31.3 PiB): lower --batch-size, --samples, the widths or the head's classes"),
    (["run", "--trials", "1e10", "--depth", 4],
     "the results file will take 680 GiB; DIR has 74.5 GiB free: lower --trials or write elsewhere "
     "(or pass --ignore-limits)"),
    (["sweep", "--trials", "1e10", "--width", "16,32", "--depth", 2],
     "the sweep's results file will take 765 GiB; DIR has 74.5 GiB free: lower --trials or write elsewhere "
     "(or pass --ignore-limits)"),
    (["sweep", "--trials", "1e5", "--width", "16,32", "--depth", 100, "--samples", 1000, "--kernel", "dense",
      "--batch-size", 100000, "--threads", 1],
     "a batch of 100000 trials needs 150 GiB of memory (the ratio arrays: 149 GiB); this machine has 8 GiB "
     "available: lower --batch-size (at most 5128 fits) or --samples (or pass --ignore-limits)"),
    (["run", "--data", "DIR/big.npy", "--width", 8, "--depth", 2],
     "data DIR/big.npy: input row 0 has entries of magnitude 2**996, whose squared norm float64 cannot hold, "
     "and a softmax head depends on the inputs' scale: scale the data, or use --normalize unit or a gaussian head"),
    (["run", "--data", "DIR/big.npy", "--normalize", "center", "--width", 8, "--depth", 2],
     "data DIR/big.npy: the dataset has entries of magnitude 2**996, whose squared norm float64 cannot hold, "
     "and a softmax head depends on the inputs' scale: scale the data, or use --normalize unit or a gaussian head"),
    (["run", "--data", "DIR/span.npy", "--head", "gaussian:3", "--width", 8, "--depth", 2],
     "data DIR/span.npy: input row 0 spans more magnitudes than float64 holds (no power of two scales it "
     "exactly, and its squared norm is out of range)"),
    (["bound", "--eps", 0.1, "--delta", 0.1, "--depth", 3, "--width", "1e12"],
     "widths must be at most 2097152 (2**21) to evaluate the bounds at"),
]


@pytest.mark.parametrize("args,message", REFUSED, ids=[" ".join(map(str, a[:3])) for a, _ in REFUSED])
def test_refused_before_any_file_exists(tmp_path, small_machine, args, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.save(inputs / "big.npy", np.array([[1e300, 1.0], [1.0, 2.0]]))
    np.save(inputs / "span.npy", np.array([[1e300, 1e-300], [1.0, 1.0]]))
    out = tmp_path / "out"
    out.mkdir()
    args = [str(a).replace("DIR", str(inputs)) for a in args]
    if args[0] != "bound":
        args += ["-q", "-o", out / "r.h5"]
    line = one_error_line(invoke(*args))
    assert line == "mcinit: error: " + message.replace("DIR", str(out if "free" in message else inputs))
    assert os.listdir(out) == []      # no output, no temporary


def test_memory_refusal_gives_the_numbers_and_a_batch_that_fits(small_machine):
    cfg, _ = resolved(trials=1e5, samples=1000, depth=100, kernel="dense")
    with pytest.raises(limits.LimitError) as e:
        limits.check_run(cfg, 100000, threads=2)
    text = str(e.value)
    assert "8 GiB available" in text and "--ignore-limits" in text
    fit = int(text.split("at most ")[1].split()[0])
    assert limits.run_memory(cfg, fit, 2).total <= 8 * GiB < limits.run_memory(cfg, fit + 1, 2).total


def test_ignore_limits_insists(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "free_disk", lambda path: 1000)
    out = tmp_path / "r.h5"
    args = ("run", "--trials", 100, "--width", 8, "--depth", 2, "-q", "-o", out)
    assert "lower --trials or write elsewhere" in one_error_line(invoke(*args))
    assert not out.exists()
    r = invoke(*args, "--ignore-limits")
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_sizes_no_machine_holds_are_refused_even_when_insisting():
    cfg, _ = resolved(head="gaussian:1e12")
    with pytest.raises(ConfigError, match="classes"):
        limits.check_run(cfg, insist=True)
    cfg, _ = resolved(trials=1000, width=1 << 20, depth=4000, samples=1 << 20, kernel="dense")
    with pytest.raises(ConfigError, match="more than any machine can address"):
        limits.check_run(cfg, 1000, insist=True)


def test_the_python_api_is_protected(tmp_path, small_machine):
    cfg, _ = resolved(trials=1e10, width=8, depth=2)
    with pytest.raises(limits.LimitError, match="records of 10000000000 trials in memory"):
        engine.run(cfg)                                   # an in-memory run keeps every record
    out = tmp_path / "r.h5"
    with pytest.raises(limits.LimitError, match="the results file will take"):
        engine.run(cfg, sink=HDF5Sink(str(out)))
    assert os.listdir(tmp_path) == []


# --- the automatic batch size shrinks to fit -------------------------------------------------

def test_auto_batch_size_shrinks_to_fit(monkeypatch):
    cfg, _ = resolved(trials=3000, input_dim=8, width=16, depth=3, samples=64, kernel="dense")
    default = engine.default_batch_size(cfg, 2)
    full = limits.run_memory(cfg, default, 2).total
    small = full // 3
    b = limits.check_run(cfg, None, threads=2, available=small)
    assert 1 <= b < default
    assert limits.run_memory(cfg, b, 2).total <= limits.AUTO_SHARE * small
    assert limits.check_run(cfg, None, threads=2, available=100 * full) == default
    # the run itself: the same numbers at the shrunk batch size as at the default one
    want = engine.run(cfg, threads=2).records
    monkeypatch.setattr(limits, "available_memory", lambda: small)
    got = engine.run(cfg, threads=2).records
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
        np.testing.assert_array_equal(got[k], want[k])


def test_auto_batch_size_refused_when_not_one_trial_fits():
    cfg, _ = resolved(trials=100, width=4096, depth=2, samples=4096, kernel="dense")
    with pytest.raises(limits.LimitError, match="lower --samples, the widths"):
        limits.check_run(cfg, None, threads=2, available=64 << 20)


# --- the estimates against what is allocated ---------------------------------------------------

def test_file_estimate_matches_the_file(tmp_path):
    for kw in (dict(trials=40000, width=16, depth=3),                     # law: linked max columns
               dict(trials=3000, input_dim=6, width=8, depth=5, samples=3, kernel="dense"),
               dict(trials=200, input_dim=2, width=8, depth=2, samples=4, data="sphere",
                    kernel="dense", sup_search="2,3")):
        cfg, data = resolved(**kw)
        out = tmp_path / f"{cfg.config_hash()}.h5"
        engine.run(cfg, data, sink=HDF5Sink(str(out)))
        est = limits.file_bytes(cfg)
        size = os.path.getsize(out)
        assert size <= est <= 1.1 * size + (256 << 10), (kw, est, size)


MEASURE = textwrap.dedent("""
    import json, sys
    from mcinit import engine, limits
    from mcinit.config import build
    kw, small, batch, threads = json.loads(sys.argv[1])
    def resolved(**k):
        cfg, data = build(**k)
        return engine.resolve(cfg), data
    cfg, data = resolved(**small)                      # compiled and loaded, at small sizes
    engine.run(cfg, data, threads=threads, batch_size=2)
    cfg, data = resolved(**kw)
    def rss(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))
    before = rss("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:       # the peak is counted from here
        f.write("5")
    engine.run(cfg, data, threads=threads, batch_size=batch)
    est = limits.run_memory(cfg, batch, threads, in_memory_rows=cfg.trials)
    print(json.dumps([rss("VmHWM:") - before, est.total]))
""")

# configurations where one term dominates: the law kernel's ratio and record arrays, the
# dense and the projected kernels' scratch (a wide head on several inputs), the dense kernel's
# buffer of a whole orthogonal matrix
MEASURED = {
    "law": (dict(trials=400000, width=32, depth=10), dict(trials=8, width=8, depth=2), 200000, 2),
    "dense": (dict(trials=3, input_dim=8, width=64, depth=3, samples=32, head="gaussian:100000",
                   kernel="dense"),
              dict(trials=4, input_dim=8, width=8, depth=3, samples=32, head="gaussian:3",
                   kernel="dense"), 3, 1),
    "blocked": (dict(trials=3, input_dim=64, width=512, depth=4, samples=2000, kernel="blocked"),
                dict(trials=4, input_dim=8, width=8, depth=4, samples=20, kernel="blocked"), 3, 1),
    "dense-orthogonal": (dict(trials=2, input_dim=256, width=16384, depth=1, init="orthogonal", kernel="dense"),
                         dict(trials=4, input_dim=8, width=8, depth=1, init="orthogonal", kernel="dense"), 2, 1),
    "projected": (dict(trials=3, input_dim=8, width=128, depth=3, samples=16, head="gaussian:200000",
                       kernel="projected"),
                  dict(trials=4, input_dim=8, width=8, depth=3, samples=16, head="gaussian:3",
                       kernel="projected"), 3, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("kernel", sorted(MEASURED))
def test_memory_estimate_within_a_factor_1_5_of_the_peak(kernel):
    """The peak resident memory a run adds (VmHWM, reset before it; large allocations mmapped
    so that freed memory leaves the count) against run_memory: within a factor 1.5."""
    import json
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(MEASURED[kernel])], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    measured, est = json.loads(out.stdout.splitlines()[-1])
    assert measured > 50 << 20, measured          # large enough to dominate the noise
    assert measured / 1.5 <= est <= 1.5 * measured, (measured, est)


SUBMIT_REFUSED = [
    (["--head", "gaussian:1e12"], "the head has 1000000000000 classes; at most 1048576 are supported"),
    (["--trials", "1e10", "--depth", 4],
     "the part files and the merged results file will take 1.33 TiB; DIR has 74.5 GiB free: lower --trials "
     "or write elsewhere (or pass --ignore-limits)"),
]


@pytest.mark.parametrize("args,message", SUBMIT_REFUSED, ids=["head", "disk"])
def test_submit_refused_before_any_file_exists(tmp_path, small_machine, args, message):
    line = one_error_line(invoke("submit", *args, "--shards", 2, "--dry-run", "-q", "-o", tmp_path / "r.h5"))
    assert line == "mcinit: error: " + message.replace("DIR", str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_what_this_machine_has(tmp_path):
    mem = limits.available_memory()
    assert mem is None or mem > 0
    free = limits.free_disk(str(tmp_path / "r.h5"))
    assert free is None or free > 0
    assert limits.free_disk(str(tmp_path / "no" / "such" / "r.h5")) is None
    assert limits.human_bytes(512) == "512 bytes" and limits.human_bytes(80 * 10 ** 9) == "74.5 GiB"


def test_submit_insisting_makes_the_shards_insist(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "free_disk", lambda path: 1000)
    args = ("submit", "--trials", 100, "--width", 8, "--depth", 2, "--shards", 2, "--dry-run", "-q",
            "-o", tmp_path / "r.h5")
    assert "free: lower --trials" in one_error_line(invoke(*args))
    r = invoke(*args, "--ignore-limits")
    assert r.exit_code == 0, r.output
    script = (tmp_path / "r.h5.parts" / "array.sbatch").read_text()
    assert "--ignore-limits" in script
