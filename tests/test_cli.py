"""The mcinit command line: runs, config files, and one-line errors for bad input."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mcinit.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_run_writes_a_file_and_a_summary(tmp_path):
    out = tmp_path / "r.h5"
    r = invoke("run", "--trials", "2e3", "--input-dim", 20, "--widths", "16,24,8", "-o", out)
    assert r.exit_code == 0, r.output
    assert "kernel law" in r.output and "exact mean" in r.output and "forward" in r.output
    with h5py.File(out, "r") as f:
        assert f.attrs["completed"] == 2000
        assert f["trials/fwd_max"].shape == (2000, 3)


def test_config_file_and_option_precedence(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('trials = 300\ninput_dim = 8\nwidth = 12\ndepth = 3\nsamples = 2\nhead = "gaussian:4"\nseed = 7\n')
    out = tmp_path / "c.h5"
    r = invoke("run", "--config", cfg, "--seed", 9, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        c = json.loads(f.attrs["config"])
    assert c["trials"] == 300 and c["widths"] == [12, 12, 12] and c["seed"] == 9
    assert c["head"] == "gaussian:4" and c["samples"] == 2
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"trials": "1e2", "input-dim": 5, "widths": "4,6", "kernel": "dense"}))
    r = invoke("run", "--config", js, "-o", tmp_path / "j.h5", "-q")
    assert r.exit_code == 0, r.output


def test_fixed_dataset_from_npy(tmp_path, correlated_npy):
    out = tmp_path / "f.h5"
    r = invoke("run", "--trials", 50, "--data", correlated_npy[0], "--width", 16, "--depth", 3, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        c = json.loads(f.attrs["config"])
    assert c["samples"] == 6 and c["input_dim"] == 40 and len(c["data_sha256"]) == 64


BAD = [
    (["--trials", "abc"], "trials"),
    (["--trials", "0"], "at least 1"),
    (["--trials", "1.5"], "whole number"),
    (["--width", "-3"], "width"),
    (["--widths", "4,x"], "width"),
    (["--width", 8, "--widths", "4,4"], "either"),
    (["--init", "xavier"], "init"),
    (["--dist", "cauchy"], "dist"),
    (["--head", "hinge:3"], "head"),
    (["--head", "softmax:1"], "2 classes"),
    (["--kernel", "magic"], "kernel"),
    (["--kernel", "projected", "--dist", "uniform"], "Gaussian"),
    (["--kernel", "law", "--samples", 3], "one input"),
    (["--init", "wn", "--dist", "uniform"], "does not apply"),
    (["--seed", "-1"], "seed"),
    (["--data", "nosuchfile.npy"], "not found"),
    (["--data", "banana"], ".npy"),
    (["--threads", 0], "threads"),
    (["--config", "missing.toml"], "not found"),
    (["--shard", "3/2"], "shard"),
    (["--shard", "x"], "shard"),
    (["--shard", "0/20", "--trials", 10], "20 shards"),
    (["--frobnicate"], "No such option"),
    (["--threads", "many"], "threads"),
    (["--batch-size", 0], "batch size"),
]


@pytest.mark.parametrize("args,word", BAD)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, word):
    out = tmp_path / "bad.h5"
    r = invoke("run", "--trials", 10, *args, "-o", out, "-q") if "--trials" not in args else \
        invoke("run", *args, "-o", out, "-q")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcinit: error:") and word in lines[0], r.output
    assert "Traceback" not in r.output
    assert not out.exists()


def test_bad_datasets(tmp_path):
    cases = {"nan.npy": np.array([[1.0, np.nan]]), "zero.npy": np.zeros((2, 3)),
             "empty.npy": np.zeros((0, 3)), "cube.npy": np.ones((2, 2, 2)), "text.npy": np.array([["a"]])}
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
        r = invoke("run", "--trials", 5, "--data", tmp_path / name, "-o", tmp_path / "o.h5", "-q")
        assert r.exit_code == 2 and r.output.startswith("mcinit: error:"), (name, r.output)
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    r = invoke("run", "--trials", 5, "--data", tmp_path / "junk.npy", "-o", tmp_path / "o.h5", "-q")
    assert r.exit_code == 2 and "cannot read" in r.output
    r = invoke("run", "--trials", 5, "--data", tmp_path / "nan.npy", "--input-dim", 7, "-o", tmp_path / "o.h5")
    assert r.exit_code == 2


def test_existing_output_is_kept(tmp_path):
    out = tmp_path / "keep.h5"
    assert invoke("run", "--trials", 20, "--input-dim", 5, "--widths", "4,4", "-o", out, "-q").exit_code == 0
    before = out.read_bytes()
    r = invoke("run", "--trials", 30, "--input-dim", 5, "--widths", "4,4", "--seed", 1, "-o", out, "-q")
    assert r.exit_code == 2 and "--overwrite" in r.output     # another configuration (more trials extend it)
    assert out.read_bytes() == before
    r = invoke("run", "--trials", 30, "--input-dim", 5, "--widths", "4,4", "--seed", 1, "-o", out, "-q",
               "--overwrite")
    assert r.exit_code == 0


def test_sweep_command(tmp_path):
    out = tmp_path / "s.h5"
    r = invoke("sweep", "--trials", 200, "--width", "8,16", "--depth", "2,3", "--input-dim", 6, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        assert sorted(f["runs"]) == ["w16-d2-n1-he", "w16-d3-n1-he", "w8-d2-n1-he", "w8-d3-n1-he"]
    r = invoke("sweep", "--trials", 200, "--width", "8,zero", "-o", tmp_path / "bad.h5", "-q")
    assert r.exit_code == 2 and r.output.startswith("mcinit: error:") and len(r.output.splitlines()) == 1
    assert not (tmp_path / "bad.h5").exists()


def test_report_and_plot(tmp_path):
    out = tmp_path / "s.h5"
    assert invoke("sweep", "--trials", 2000, "--width", "16,32", "--depth", 3, "--input-dim", 8,
                  "--init", "he,glorot", "-o", out, "-q").exit_code == 0
    png = tmp_path / "fig.png"
    r = invoke("report", out, "--eps", "0.25,0.5", "--plot", png)
    assert r.exit_code == 0, r.output
    assert "bound_comparison.py" in r.output and "norm form" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(str(png)).shape[0] > 400
    r = invoke("report", tmp_path / "missing.h5")
    assert r.exit_code == 2 and r.output.startswith("mcinit: error:")
    r = invoke("report", out, "--eps", "-1")
    assert r.exit_code == 2



@pytest.mark.slow       # draws the figures twice (about 15 s)
def test_report_plot_formats_and_separate_panels(tmp_path):
    """--plot takes .pdf, .svg or .png (anything else: one line naming them, no file); --panels
    separate writes NAME-a.EXT, NAME-b.EXT, ..., refused when one exists, replaced with --overwrite."""
    out = tmp_path / "r.h5"
    assert invoke("run", "--trials", 500, "--width", 16, "--depth", 3, "--input-dim", 8, "-o", out, "-q").exit_code == 0
    r = invoke("report", out, "--plot", tmp_path / "fig.jpg")
    assert r.exit_code == 2 and r.output.splitlines() == [
        "mcinit: error: --plot takes a file name ending in .pdf, .svg or .png, not 'fig.jpg'"], r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    r = invoke("report", out, "--eps", "0.5", "--plot", tmp_path / "fig.pdf", "--panels", "separate", "--json")
    assert r.exit_code == 0, r.output
    # layers, last layer, forward, backward failure, the mean-field view, failure against depth
    names = [f"fig-{c}.pdf" for c in "abcdef"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["r.h5"])
    doc = json.loads(r.output)
    assert doc["figure_files"] == [str(tmp_path / n) for n in names]
    assert all((tmp_path / n).read_bytes()[:5] == b"%PDF-" for n in names)
    (tmp_path / "fig-c.pdf").write_bytes(b"mine")
    r = invoke("report", out, "--eps", "0.5", "--plot", tmp_path / "fig.pdf", "--panels", "separate")
    assert r.exit_code == 2 and "fig-a.pdf exists; pass --overwrite" in r.output
    assert (tmp_path / "fig-c.pdf").read_bytes() == b"mine"
    r = invoke("report", out, "--eps", "0.5", "--plot", tmp_path / "fig.pdf", "--panels", "separate", "--overwrite")
    assert r.exit_code == 0 and (tmp_path / "fig-c.pdf").read_bytes()[:5] == b"%PDF-"
    assert r.output.rstrip().endswith("figures -> " + ", ".join(str(tmp_path / n) for n in names))


def test_bound_prints_the_paper_width():
    from mcinit import theory
    r = invoke("bound", "--eps", 0.2, "--delta", 0.01, "--depth", 5, "--samples", 3)
    assert r.exit_code == 0, r.output
    assert f"{theory.paper_width(0.2, 0.01, 3, 5):,}" in r.output
    r = invoke("bound", "--eps", 0.2, "--delta", 2, "--depth", 5)
    assert r.exit_code == 2 and r.output.startswith("mcinit: error:")


@pytest.mark.parametrize("args, words", [
    (["--depth", 5000], "at most depth 4000"),
    (["--depth", 10, "--samples", "1e99"], "1048576 samples"),
    (["--depth", 0], "must be at least 1"),
    (["--depth", 10, "--delta", "1"], "delta must be between 0 and 1"),
    (["--depth", 10, "--delta", "nan"], "delta"),
    (["--depth", 10, "--eps", "-1"], "eps"),
])
def test_bound_refuses_what_it_cannot_compute_in_one_line(args, words):
    """bound takes the sizes a run takes: beyond them (where its width searches would run for
    minutes) and for meaningless tolerances it is one line and exit 2."""
    _bound_refuses({"--eps": "0.1", "--delta": "0.05"}, args, words)


def _bound_refuses(base, args, words):
    """mcinit bound with the options of ``base``, those of ``args`` replacing or adding to
    them, is one `mcinit: error:` line naming ``words``, and exit 2."""
    base = dict(base)
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = invoke("bound", *[x for kv in base.items() for x in kv])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("mcinit: error: "), r.output
    assert words in lines[0], lines[0]


def test_the_same_command_twice_reads_the_complete_run_and_changes_nothing(tmp_path):
    """Running a finished command again (the README's first command, say) prints the complete
    run's summary from its file, computes nothing and changes no byte; another configuration,
    or an unfinished file, is still refused without --overwrite (or continued with --resume)."""
    import hashlib
    out = tmp_path / "r.h5"
    args = ["run", "--trials", 400, "--input-dim", 6, "--widths", "5,7", "-o", out]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "already holds this run, complete" in again.output
    table = lambda text: [ln for ln in text.splitlines() if ln.strip().startswith(("1 ", "2 ", "0.1 ", "0.25 ", "0.5 "))]
    # layers 1 and 2, and the rows of eps 0.1, 0.25, 0.5, 1 and 2 (of mcinit.stats.EPS_LADDER)
    assert table(again.output) == table(first.output) and len(table(first.output)) == 7
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    other = invoke(*args[:-2], "--seed", 1, "-o", out)
    assert other.exit_code == 2 and "exists" in other.output
    with h5py.File(out, "a") as f:      # an unfinished run of the same configuration
        f.attrs.modify("completed", 0)
        for i in (0, 1):
            f[f"checkpoint/slot{i}/trials"][()] = -1 if i else 0
    assert invoke(*args).exit_code == 2
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0 and table(resumed.output) == table(first.output)


def test_a_run_begun_under_another_auto_choice_keeps_its_kernel(tmp_path):
    """A file whose run auto resolved to another kernel (an earlier cost model; here made with
    --kernel projected where auto now picks blocked) is found complete, and resumed, by the same
    command with auto, on its own kernel."""
    out = tmp_path / "r.h5"
    net = ["--trials", 300, "--input-dim", 16, "--width", 64, "--depth", 3, "--samples", 64, "-o", out]
    from mcinit import config, engine
    assert engine.resolve(config.build(trials=300, input_dim=16, width=64, depth=3, samples=64)[0]).kernel == "blocked"
    first = invoke("run", *net, "--kernel", "projected")
    assert first.exit_code == 0, first.output
    again = invoke("run", *net)
    assert again.exit_code == 0 and "already holds this run" in again.output and "kernel projected" in again.output
    with h5py.File(out, "a") as f:      # unfinished
        f.attrs.modify("completed", 0)
        for i in (0, 1):
            f[f"checkpoint/slot{i}/trials"][()] = -1 if i else 0
    resumed = invoke("run", *net, "--resume")
    assert resumed.exit_code == 0 and "kernel projected" in resumed.output
    assert json.loads(h5py.File(out, "r").attrs["config"])["kernel"] == "projected"


def test_runs_of_one_property_end_to_end(tmp_path):
    """--properties forward and backward through run, report (text and figure), the closing
    summary and a mixed sweep: the property not computed is named as such, never shown as
    a number (no 'nan'), and a figure of the forward property of a backward run is one
    error line."""
    small = ["--trials", 300, "--input-dim", 6, "--widths", "5,7", "--samples", 2]
    for props, missing in (("forward", "backward"), ("backward", "forward")):
        out = tmp_path / f"{props}.h5"
        r = invoke("run", *small, "--properties", props, "-o", out)
        assert r.exit_code == 0, r.output
        assert "not computed" in r.output and "nan" not in r.output.lower(), r.output
        assert f"the {missing} property was not computed" in r.output
        r = invoke("report", out)
        assert r.exit_code == 0, r.output
        assert "nan" not in r.output.lower()
        text = " ".join(r.output.split())
        assert f"computed the {props} property only" in text
        assert f"not computed (the run was made with --properties {props})" in text
        with h5py.File(out, "r") as f:
            assert f.attrs["format_version"] == 3      # its property, and two inputs
        # the same command again reads the complete run (its summary of one property)
        r = invoke("run", *small, "--properties", props, "-o", out)
        assert r.exit_code == 0 and "not computed" in r.output and "nan" not in r.output.lower(), r.output
    png = tmp_path / "b.png"
    r = invoke("report", tmp_path / "backward.h5", "--plot", png)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0] == (f"mcinit: error: --plot draws the forward property, which no run of "
                        f"{tmp_path / 'backward.h5'} computed (made with --properties backward)")
    assert not png.exists()
    png = tmp_path / "f.png"
    r = invoke("report", tmp_path / "forward.h5", "--plot", png)
    assert r.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG", r.output
    sw = tmp_path / "s.h5"
    r = invoke("sweep", *small, "--properties", "backward,both", "--precision", "float64,float32",
               "--kernel", "auto", "-o", sw, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(sw, "r") as f:
        assert sorted(f["runs"]) == sorted(["w5_7-d2-n2-he", "w5_7-d2-n2-he-backward", "w5_7-d2-n2-he-float32",
                                            "w5_7-d2-n2-he-float32-backward"])
        assert f["runs/w5_7-d2-n2-he-float32"].attrs["kernel"] == "blocked"
    r = invoke("report", sw)
    assert r.exit_code == 0 and "nan" not in r.output.lower(), r.output
    assert "Not computed by runs w5_7-d2-n2-he-backward, w5_7-d2-n2-he-float32-backward" in " ".join(r.output.split())


# -- conventions of a demanding user: -q, sweeps, resume refusals, the summary, bound -------------

TINY = ["--trials", 200, "--width", 8, "--depth", 2, "--input-dim", 4]


def test_quiet_prints_the_output_path_only(tmp_path):
    out = tmp_path / "q.h5"
    r = invoke("run", *TINY, "-o", out, "-q")
    assert r.exit_code == 0 and r.stdout == f"{out}\n", r.output
    again = invoke("run", *TINY, "-o", out, "-q")     # complete already: the path again
    assert again.exit_code == 0 and again.stdout == f"{out}\n", again.output
    sw = tmp_path / "s.h5"
    r = invoke("sweep", *TINY, "--seed", "0,1", "-o", sw, "-q")
    assert r.exit_code == 0 and r.stdout == f"{sw}\n", r.output


def test_a_sweep_over_activations_inits_and_gains_names_each_run_by_them():
    """Lists of activations, inits and gains expand to one run each, named by what they vary
    (sweep.expand validates and names them before anything runs)."""
    from mcinit import sweep
    runs = sweep.expand(dict(trials=10, input_dim=4, width=6, depth=2, activation="relu,leaky-relu:0.1,tanh",
                             init="he,orthogonal", gain="1.5,2"))
    names = [n for n, _, _ in runs]
    assert len(runs) == 12 and len(set(names)) == 12
    assert "w6-d2-n1-he-g1.5" in names and "w6-d2-n1-orthogonal-leaky-relu0.1-g2.0" in names
    assert "w6-d2-n1-orthogonal-tanh-g1.5" in names
    assert {c.activation for _, c, _ in runs} == {"relu", "leaky-relu:0.1", "tanh"}
    assert {c.gain for _, c, _ in runs} == {1.5, 2.0}


def test_sweep_varies_dist_head_seed_and_data_and_compares_the_runs_in_one_table(tmp_path):
    import mcinit
    out = tmp_path / "s.h5"
    r = invoke("sweep", *TINY, "--dist", "normal,uniform", "--seed", "0,1", "-o", out)
    assert r.exit_code == 0, r.output
    names = ["w8-d2-n1-he-normal-s0", "w8-d2-n1-he-normal-s1", "w8-d2-n1-he-uniform-s0", "w8-d2-n1-he-uniform-s1"]
    with h5py.File(out, "r") as f:
        assert sorted(f["runs"]) == names
    assert "rho mean" not in r.output              # no full per-run summaries ...
    lines = r.output.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("dist") and "P(fail) at eps 0.25" in ln)
    header, rows = lines[at].split(), lines[at + 2:at + 6]
    keys = header[:header.index("trials")]          # the options that differ (the kernel may too)
    assert keys[0] == "dist" and keys[-1] == "seed" and "rho_L" in header and "paper" in header
    assert lines[at + 6].startswith("P(fail):")
    layers = mcinit.load(out).layers()
    for row in rows:                                # ... but one row per run, in the sweep's order
        cells = dict(zip(keys + ["trials", "rho"], row.split()))
        dist, seed, trials, rho = cells["dist"], cells["seed"], cells["trials"], cells["rho"]
        name = f"w8-d2-n1-he-{dist}-s{seed}"
        assert trials == "200"
        assert rho == f"{layers[(layers.run == name) & (layers.layer == 2)].rho_mean.iloc[0]:.5f}"
    verbose = invoke("sweep", *TINY, "--head", "softmax:3,gaussian:2", "--data", "gaussian,sphere",
                     "-o", tmp_path / "v.h5", "-v")
    assert verbose.exit_code == 0, verbose.output
    assert verbose.output.count("rho mean") == 4 and "P(fail) at eps 0.25" in verbose.output
    with h5py.File(tmp_path / "v.h5", "r") as f:
        assert sorted(f["runs"]) == ["w8-d2-n1-he-gaussian2-gaussian", "w8-d2-n1-he-gaussian2-sphere",
                                     "w8-d2-n1-he-softmax3-gaussian", "w8-d2-n1-he-softmax3-sphere"]


def test_sweep_shards_merge_into_the_whole_sweep(tmp_path):
    args = ["sweep", "--trials", 200, "--width", "8,6", "--depth", 2, "--input-dim", 4]
    assert invoke(*args, "-o", tmp_path / "whole.h5", "-q").exit_code == 0
    for i in range(2):
        r = invoke(*args, "--shard", f"{i}/2", "-o", tmp_path / f"part{i}.h5", "-q")
        assert r.exit_code == 0, r.output
    r = invoke("merge", "--sweep", tmp_path / "part0.h5", tmp_path / "part1.h5", "-o", tmp_path / "m.h5")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "whole.h5", "r") as a, h5py.File(tmp_path / "m.h5", "r") as b:
        assert sorted(a["runs"]) == sorted(b["runs"]) == ["w6-d2-n1-he", "w8-d2-n1-he"]
        for name in a["runs"]:
            assert np.array_equal(a[f"runs/{name}/trials/fwd_min"][()], b[f"runs/{name}/trials/fwd_min"][()])
    r = invoke(*args, "--shard", "0/300", "-o", tmp_path / "bad.h5")
    assert r.exit_code == 2 and r.output.startswith("mcinit: error: 300 shards need at least 300 trials"), r.output
    assert not (tmp_path / "bad.h5").exists()


def test_each_run_of_a_sweep_labels_its_progress_bar(tmp_path, monkeypatch):
    import io
    import sys

    from mcinit import sweep

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    runs = sweep.expand(dict(trials=50, width="4,6", depth=1, input_dim=3))
    sweep.run_sweep(runs, str(tmp_path / "s.h5"), quiet=False)
    assert "1/2 w4-d1-n1-he" in term.getvalue() and "2/2 w6-d1-n1-he" in term.getvalue()


def test_a_refused_resume_names_what_differs(tmp_path):
    out = tmp_path / "r.h5"
    assert invoke("run", *TINY, "-o", out, "-q").exit_code == 0
    before = out.read_bytes()
    r = invoke("run", "--trials", 200, "--widths", "8,6", "--input-dim", 4, "--seed", 3, "-o", out, "--resume")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0] == (f"mcinit: error: cannot resume {out}: it holds a run of another configuration: "
                        "--widths 8,8 in the file, 8,6 requested; --seed 0 in the file, 3 requested")
    assert out.read_bytes() == before
    sw = tmp_path / "s.h5"
    assert invoke("sweep", *TINY, "--seed", "0,1", "-o", sw, "-q").exit_code == 0
    r = invoke("sweep", *TINY, "--seed", "1,2", "-o", sw, "--resume")
    assert r.exit_code == 2 and r.output.strip().endswith(
        "not a sweep of the same runs (in the file only: w8-d2-n1-he-s0; requested only: w8-d2-n1-he-s2)"), r.output


def test_the_run_summary_shows_the_paper_bound_and_defines_its_columns(tmp_path):
    from mcinit import theory
    r = invoke("run", *TINY, "-o", tmp_path / "he.h5")
    assert r.exit_code == 0, r.output
    row = next(ln for ln in r.output.splitlines() if ln.strip().startswith("0.25 "))
    assert f"{float(theory.paper_delta(8, 0.25, 1, 2)):.3g}" in row.split()
    assert f"{float(theory.exact_forward_failure(0.25, [8, 8], 'norm', 4, 'he')):.4g}" in row.split()
    for legend in ("  gamma = ||dloss/dW_l||_F^2", "both: a trial fails when its forward or its backward",
                   "paper: Arpit & Bengio's bound"):
        assert legend in r.output, legend
    r = invoke("run", *TINY, "--init", "glorot", "-o", tmp_path / "glorot.h5")
    assert r.exit_code == 0 and "paper: - (the bound is for ReLU networks of Gaussian weights with E rho_l = 1" in r.output


def test_bound_takes_lists_the_input_dimension_and_the_backward_property():
    from mcinit import theory
    r = invoke("bound", "--eps", "0.3,0.5", "--delta", 0.05, "--depth", "2,3")
    assert r.exit_code == 0, r.output
    assert r.output.count("mcinit bound:") == 4
    # the backward property: the paper's bound alone, each row naming its property
    r = invoke("bound", "--eps", 0.5, "--delta", 0.05, "--depth", 3, "--properties", "forward,backward,both")
    assert r.exit_code == 0, r.output
    rows = {tuple(ln.split()[3:5]) for ln in r.output.splitlines() if ln.startswith("paper (authors' code)")}
    assert rows == {(f"{theory.paper_width(0.5, 0.05, 1, 3):,}", "forward"),
                    (f"{theory.paper_width(0.5, 0.05, 1, 3):,}", "backward"),
                    (f"{theory.paper_width(0.5, 0.025, 1, 3):,}", "both")}
    assert "mcinit.theory has no Chernoff bound or exact law of the backward ratio" in " ".join(r.output.split())
    # --input-dim where a bound depends on it (he-in: the first layer's variance is 2/n_0)
    at = lambda *extra: invoke("bound", "--eps", 0.5, "--delta", 0.05, "--depth", 2, "--init", "he-in",
                               "--width", 16, *extra)
    wide, narrow = at("--input-dim", 64), at("--input-dim", 4)
    assert wide.exit_code == 0 and narrow.exit_code == 0, wide.output + narrow.output
    row = lambda text: next(ln for ln in text.splitlines() if ln.lstrip().startswith("16 ")).split()
    wide, narrow = wide.output, narrow.output
    assert row(wide)[4] == f"{float(theory.exact_forward_failure(0.5, [16, 16], 'norm', 64, 'he-in')):.4g}"
    assert row(narrow)[4] == f"{float(theory.exact_forward_failure(0.5, [16, 16], 'norm', 4, 'he-in')):.4g}"
    assert row(wide)[4] != row(narrow)[4] and row(wide)[2] == "-"      # the paper's: he-in at n_0 = m only


@pytest.mark.parametrize("args, words", [
    (["--properties", "backward", "--init", "glorot"], "the backward property has the paper bound alone"),
    (["--input-dim", 8], "--input-dim applies to the bounds at --width"),
    (["--properties", "sideways"], "properties must be one of both, forward, backward"),
    (["--depth", "3,0"], "depth must be at least 1"),
])
def test_bound_refuses_in_one_line(args, words):
    _bound_refuses({"--eps": "0.5", "--delta": "0.05", "--depth": "3"}, args, words)


def test_run_wn_direction_gradient(tmp_path):
    """--init wn --wn-grad direction runs (the dense kernel) and records the direction
    gradient's backward ratios, below the weight gradient's of the same networks; with he
    weights --wn-grad direction is refused in one line."""
    runs = {}
    for grad in ("weight", "direction"):
        out = tmp_path / f"{grad}.h5"
        r = invoke("run", "--trials", 30, "--input-dim", 6, "--widths", "8,5", "--samples", 2, "--init", "wn",
                   "--wn-grad", grad, "--kernel", "dense", "-o", out, "-q")
        assert r.exit_code == 0, r.output
        with h5py.File(out, "r") as f:
            assert json.loads(f.attrs["config"]).get("wn_grad", "weight") == grad
            runs[grad] = (f["trials/fwd_max"][...], f["trials/bwd_max"][...])
    assert np.array_equal(runs["weight"][0], runs["direction"][0])
    d, w = runs["direction"][1], runs["weight"][1]
    assert np.array_equal(np.isinf(d), np.isinf(w)) and np.all(d[np.isfinite(w)] < w[np.isfinite(w)])
    r = invoke("run", "--trials", 30, "--input-dim", 6, "--widths", "8,5", "--wn-grad", "direction",
               "-o", tmp_path / "he.h5", "-q")
    assert r.exit_code != 0 and r.output.startswith("mcinit: error:") and "--wn-grad" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "he.h5").exists()
