"""--json of mcinit run, sweep, report, bound and status: one JSON document on stdout and
nothing else, holding the numbers of the text output and of the Python API (mcinit.documents)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import mcinit
from mcinit.stats import EPS_LADDER
from mcinit import documents, theory
from mcinit.cli import main
from mcinit.report import report_numbers
from mcinit.report.text import fmt_p

SMALL = ["--trials", 200, "--width", 8, "--depth", 2, "--input-dim", 4]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _refuse(name):
    raise ValueError(f"{name} in a JSON document")


def document(r, kind):
    """The one JSON document on r's stdout (strict: no NaN or Infinity tokens)."""
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout, parse_constant=_refuse)
    assert doc["document"] == kind and doc["document_version"] == documents.DOCUMENT_VERSION
    assert doc["mcinit_version"] == mcinit.__version__
    return doc


def close(a, b):
    """JSON numbers (None for NaN) against the API's floats: equal, NaN where null."""
    return (a is None and not np.isfinite(b)) or (a is not None and float(a) == float(b))


def test_run_json_holds_the_summary_numbers_and_nothing_else(tmp_path):
    """A separate process: stdout is exactly one document (numba, the progress bar and the
    notices write nothing there); its numbers are the file's (mcinit.load) and the text's."""
    out = tmp_path / "r.h5"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "mcinit", "run", *map(str, SMALL), "-o", str(out), "--json"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout, parse_constant=_refuse)
    assert doc["document"] == "run" and doc["output"] == str(out)
    assert doc["kernel"] == {"used": "law", "requested": "auto"} and doc["shard"] is None
    assert doc["config"]["widths"] == "8,8" and doc["config"]["depth"] == 2 and doc["config"]["trials_planned"] == 200
    assert doc["trials"] == {"completed": 200, "computed": 200, "before_resume": 0} and not doc["read_from_file"]
    assert doc["time"]["elapsed_s"] > 0 and doc["time"]["trials_per_s"] > 0
    # the rate of the trials, the startup (compiling or loading the kernels) left out, as the text's
    assert 0 <= doc["time"]["startup_s"] <= doc["time"]["elapsed_s"]
    assert doc["time"]["trials_per_s"] == pytest.approx(200 / (doc["time"]["elapsed_s"] - doc["time"]["startup_s"]))
    res = mcinit.load(out)
    layers = res.layers()
    assert [r["layer"] for r in doc["layers"]] == [1, 2]
    for row, (_, api) in zip(doc["layers"], layers.iterrows()):
        for key in ("width", "count", "rho_mean", "rho_sd", "gamma_mean", "gamma_sd", "exact_rho_mean",
                    "exact_rho_sd", "log_rho_mean", "rho_max"):
            assert close(row[key], api[key]), key
    fail = res.failure(prop="forward")         # the default eps: the run summary's (stats.EPS_LADDER)
    rows = [r for r in doc["failure"] if r["prop"] == "forward"]
    assert [r["eps"] for r in rows] == list(EPS_LADDER)
    for row, (_, api) in zip(rows, fail.iterrows()):
        for key in ("failures", "p_hat", "ci_low", "ci_high", "p_exact", "paper_delta"):
            assert close(row[key], api[key]), key
    assert {r["prop"] for r in doc["failure"]} == {"forward", "backward", "both"}
    # the text of the same run (read back from the complete file) shows these numbers
    r = invoke("run", *SMALL, "-o", out)
    assert r.exit_code == 0, r.output
    for row in doc["layers"]:
        assert f"{row['rho_mean']:10.5f} {row['rho_sd']:9.4f}" in r.stdout
    for row in rows:
        assert f"{row['p_hat']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]" in r.stdout
        assert f"{row['paper_delta']:<11.3g}" in r.stdout           # the summary's paper column
    both = [r for r in doc["failure"] if r["prop"] == "both"]
    assert all(b["paper_delta"] == min(1.0, 2 * f["paper_delta"]) for b, f in zip(both, rows))
    # read again with --json: the same numbers, nothing computed
    again = document(invoke("run", *SMALL, "-o", out, "--json"), "run")
    assert again["read_from_file"] and again["trials"]["computed"] == 0
    assert again["layers"] == doc["layers"] and again["failure"] == doc["failure"]
    # -q prints the path alone (its note says no summary follows), -q with --json the document alone
    r = invoke("run", *SMALL, "-o", out, "-q")
    assert r.stdout == f"{out}\n" and "summary follows" not in r.stderr
    quiet = document(invoke("run", *SMALL, "-o", out, "-q", "--json"), "run")
    assert quiet["layers"] == doc["layers"] and quiet["failure"] == doc["failure"]


def test_what_a_run_did_not_compute_is_null(tmp_path):
    """--properties forward: the gamma columns are null (NaN in the tables), no backward rows;
    uniform weights: no exact sd, no exact probability."""
    out = tmp_path / "f.h5"
    doc = document(invoke("run", *SMALL, "--properties", "forward", "--dist", "uniform", "-o", out, "--json"), "run")
    assert all(r["gamma_mean"] is None and r["gamma_sd"] is None for r in doc["layers"])
    assert all(r["exact_rho_sd"] is None and r["rho_mean"] is not None for r in doc["layers"])
    assert {r["prop"] for r in doc["failure"]} == {"forward"}
    assert all(r["p_exact"] is None for r in doc["failure"])
    assert doc["kernel"]["used"] in ("dense", "blocked") and doc["config"]["dist"] == "uniform"


def test_run_json_errors_stay_one_line_on_stderr(tmp_path):
    r = invoke("run", *SMALL, "--width", 0, "-o", tmp_path / "x.h5", "--json")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("mcinit: error:")
    assert len(r.stderr.splitlines()) == 1 and not (tmp_path / "x.h5").exists()
    r = invoke("report", tmp_path / "missing.h5", "--json")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("mcinit: error:")
    r = invoke("bound", "--eps", 0.1, "--delta", 2, "--depth", 3, "--json")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("mcinit: error:")


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("json") / "s.h5"
    r = invoke("sweep", "--trials", 400, "--width", "8,16", "--depth", 2, "--input-dim", 6, "--samples", "1,2",
               "-o", out, "--json")
    return out, r


def test_sweep_json_holds_every_run(sweep_file):
    out, r = sweep_file
    doc = document(r, "sweep")
    assert "mcinit sweep: 4 runs" in r.stderr           # the notice, not on stdout
    assert doc["output"] == str(out)
    res = mcinit.load(out)
    assert [x["name"] for x in doc["runs"]] == [run.name for run in res.runs]
    assert doc["time"]["elapsed_s"] == pytest.approx(sum(x["time"]["elapsed_s"] for x in doc["runs"]))
    layers = res.layers()
    for x in doc["runs"]:
        api = layers[layers.run == x["name"]]
        for key in ("widths", "depth", "samples", "init", "seed", "trials_planned", "head", "kernel"):
            assert x["config"][key] == api[key].iloc[0], key
        assert [row["rho_mean"] for row in x["layers"]] == list(api.rho_mean)
        assert x["kernel"]["requested"] == "auto" and x["kernel"]["used"] == api.kernel.iloc[0]
    # the comparison table the text ends with: the same numbers as every run's own rows
    compared = doc["compared"]
    assert compared["eps"] == 0.25 and compared["options"][:2] == ["width", "samples"]   # then kernel, auto's picks
    assert [row["name"] for row in compared["rows"]] == [x["name"] for x in doc["runs"]]
    for row, x in zip(compared["rows"], doc["runs"]):
        own = next(f for f in x["failure"] if f["prop"] == row["prop"] and f["eps"] == 0.25)
        for key in ("failures", "p_hat", "ci_low", "ci_high", "paper_delta"):
            assert row[key] == own[key], key
        assert row["prop"] == "both" and row["trials"] == 400
        assert row["rho_L_mean"] == x["layers"][-1]["rho_mean"]
        assert row["options"]["width"] == x["config"]["widths"].split(",")[0]
        assert row["options"]["samples"] == str(x["config"]["samples"])
        assert set(row["options"]) == set(compared["options"])


def test_report_json_is_report_numbers(sweep_file):
    out, _ = sweep_file
    r = invoke("report", out, "--eps", "0.25,0.5", "--json")
    doc = document(r, "report")
    res = mcinit.load(out)
    n = report_numbers(res, [0.25, 0.5])
    assert doc["eps"] == [0.25, 0.5] and doc["form"] == "norm" and doc["level"] == 0.95 and doc["kind"] == "sweep"
    assert [x["name"] for x in doc["runs"]] == [run.name for run in res.runs]
    assert len(doc["layers"]) == len(n["layers"]) and "z" in doc["layers"][0]
    for prop in ("forward", "backward", "both"):
        rows, df = doc["failure"][prop], n["failure"][prop]
        assert len(rows) == len(df) == 8
        for row, (_, api) in zip(rows, df.iterrows()):
            keys = ("run", "eps", "failures", "p_hat", "ci_low", "ci_high", "paper_delta", "chernoff", "p_exact",
                    "bound_violated", "chernoff_below", "exact_outside", "seed", "head", "trials_planned")
            for key in keys + (("p_one_input", "p_union") if prop == "forward" else ()):
                assert close(row[key], api[key]) if isinstance(row[key], float) or row[key] is None \
                    else row[key] == api[key], key
    assert doc["sup"] is None and doc["figures"] is None
    text = invoke("report", out, "--eps", "0.25,0.5").stdout
    for row in doc["failure"]["forward"]:
        assert f"[{fmt_p(row['ci_low'])}, {fmt_p(row['ci_high'])}]" in text
    two = [row for row in doc["failure"]["forward"] if row["samples"] == 2]
    assert len(two) == 4 and all(row["p_one_input"] <= row["p_union"] for row in two)
    assert all(fmt_p(row["p_union"], 4) in text for row in two)
    assert all(row["p_one_input"] is None for row in doc["failure"]["forward"] if row["samples"] == 1)


def test_bound_json_is_the_bound_text(tmp_path):
    args = ["bound", "--eps", "0.3,0.5", "--delta", 0.01, "--depth", 3, "--samples", 2, "--width", "100,2000"]
    doc = document(invoke(*args, "--json"), "bound")
    text = invoke(*args).stdout
    assert [b["eps"] for b in doc["bounds"]] == [0.3, 0.5]
    for b in doc["bounds"]:
        assert b["properties"] == ["forward"]
        required = {r["bound"]: r for r in b["required"]}
        assert required["paper"]["width"] == theory.paper_width(b["eps"], 0.01, 2, 3)
        assert [r["bound"] for r in b["required"]] == ["paper", "chernoff", "union", "exact_one_input"]
        assert all(r["property"] == "forward" for r in b["required"])
        for entry in b["required"]:
            assert f"{entry['width']:,}" in text
        for at in b["at_widths"]:
            assert at["property"] == "forward"
            assert at["chernoff"] == float(theory.chernoff_bound(b["eps"], [at["width"]] * 3, 2, "norm", at["width"]))
            assert at["p_union"] == min(1.0, 2 * at["p_exact"])
    assert doc["bounds"][0]["at_widths"][0]["paper_vacuous"]


def test_bound_json_covers_depth_lists_input_dim_and_properties():
    """Lists of depths (one entry per depth and eps, in the text's order), --input-dim and
    --properties: every row names its property, as the text's rows do."""
    args = ["bound", "--eps", "0.25,0.4", "--delta", 0.05, "--depth", "2,4", "--width", "64,512",
            "--input-dim", 64, "--init", "he-in", "--properties", "forward,both"]
    doc = document(invoke(*args, "--json"), "bound")
    text = invoke(*args).stdout
    assert [(b["depth"], b["eps"]) for b in doc["bounds"]] == [(2, 0.25), (2, 0.4), (4, 0.25), (4, 0.4)]
    for b in doc["bounds"]:
        assert b["properties"] == ["forward", "both"] and b["input_dim"] == 64 and b["init"] == "he-in"
        assert [(r["bound"], r["property"]) for r in b["required"]] == [
            ("paper", "forward"), ("chernoff", "forward"), ("exact", "forward"), ("paper", "both")]
        paper = {r["property"]: r["width"] for r in b["required"] if r["bound"] == "paper"}
        assert paper["both"] == theory.paper_width(b["eps"], 0.025, 1, b["depth"])
        assert [(a["width"], a["property"]) for a in b["at_widths"]] == [
            (64, "forward"), (64, "both"), (512, "forward"), (512, "both")]
        for a in b["at_widths"]:
            assert a["input_dim"] == 64
            if a["width"] == 64:            # he-in at n_0 = m: the paper's setting
                one = float(theory.paper_delta(64, b["eps"], 1, b["depth"]))
                assert a["paper_delta"] == (one if a["property"] == "forward" else min(1.0, 2 * one))
                assert not a["paper_outside_setting"]
            else:                           # n_0 = 64 != m: no paper bound, as the text says
                assert a["paper_delta"] is None and a["paper_outside_setting"]
            if a["property"] == "both":
                assert a["chernoff"] is None and a["p_exact"] is None
    assert text.count("mcinit bound:") == 4 and "paper: he-in with n_0 = 64 != m" in text
    for b in doc["bounds"]:
        for r in b["required"]:
            assert f"{r['width']:,}" in text


def test_status_json_of_a_results_file(sweep_file):
    out, _ = sweep_file
    doc = document(invoke("status", out, "--json"), "status")
    assert doc["subject"] == "file" and doc["kind"] == "sweep" and doc["state"] == "complete"
    assert doc["size_bytes"] == os.path.getsize(out) and doc["completed"] == doc["rows"] == 1600
    assert [r["name"] for r in doc["runs"]] == doc["runs_listed"] and doc["runs_not_begun"] == []


def test_plain_turns_nan_and_inf_into_null():
    import pandas as pd
    doc = dict(a=np.float64("nan"), b=[np.inf, -np.inf, 1.5], c=np.int64(3), d=np.bool_(True),
               e=pd.DataFrame(dict(x=[1.0, np.nan])), f=(np.arange(2),))
    assert documents.plain(doc) == dict(a=None, b=[None, None, 1.5], c=3, d=True, e=[{"x": 1.0}, {"x": None}],
                                        f=[[0, 1]])
    assert "NaN" not in documents.dumps(doc) and "Infinity" not in documents.dumps(doc)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_json_with_a_dry_run_is_one_line_and_writes_nothing(tmp_path, command):
    out = tmp_path / "x.h5"
    r = invoke(command, *SMALL, "-o", out, "--json", "--dry-run")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("mcinit: error: --json and --dry-run together") and r.stderr.count("\n") == 1
    assert not out.exists() and os.listdir(tmp_path) == []
