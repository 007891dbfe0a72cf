"""The report: text tables and statements, the figure, the exact density of ln rho_L, bound_text."""

import math
import re

import matplotlib
import numpy as np
import pytest
from scipy import stats

import mcinit
from mcinit import config, engine, report, sweep, theory
from mcinit.store import HDF5Sink

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _flat(text):
    """The text with line breaks and runs of spaces made single spaces (statements are wrapped)."""
    return " ".join(text.split())


def _run_file(path, **kw):
    cfg, data = config.build(**kw)
    engine.run(engine.resolve(cfg), data, sink=HDF5Sink(str(path)))
    return str(path)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rep") / "sweep.h5")
    runs = sweep.expand(dict(trials=4000, width="32,64", depth="3", input_dim=20, init="he,glorot", seed=5))
    sweep.run_sweep(runs, path)
    return path


@pytest.fixture(scope="module")
def wide_file(tmp_path_factory):
    """m = 4000, L = 10, one input, law kernel: at eps = 0.15 the encoded paper bound (3.1e-5) lies
    far below the true failure probability (9.6e-3)."""
    return _run_file(tmp_path_factory.mktemp("rep") / "wide.h5", trials=2000, width=4000, depth=10,
                     input_dim=50, kernel="law", seed=11)


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    return _run_file(tmp_path_factory.mktemp("rep") / "single.h5", trials=3000, width=128, depth=4,
                     input_dim=30, seed=2)


def test_report_text_tables_and_provenance(sweep_file):
    res = mcinit.load(sweep_file)
    text = report.report_text(res, eps=[0.25, 0.5, 1.0])
    assert report.PAPER_PROVENANCE in text
    assert "the bound as encoded in the authors' public reference code " \
           "(devansharpit/overparametrization_benefits, bound_comparison.py)" in text
    assert "Per-layer ratios" in text
    for prop in ("forward property", "backward property", "both properties"):
        assert f"FAILURE PROBABILITY, {prop}" in text
    for col in ("p_hat", "95% interval", "paper_delta", "chernoff", "p_exact", "eps (norm)"):
        assert col in text
    assert "norm form" in text and "|sqrt(ratio) - 1|" in text
    for run in res.runs:                       # four runs: one compact line each
        assert run.name in text
    # the table's numbers are those of results.failure
    df = res.failure([0.5], prop="forward")
    row = df[df.run == "w64-d3-n1-he"].iloc[0]
    assert f"[{report.text.fmt_p(row.ci_low)}, {report.text.fmt_p(row.ci_high)}]" in text
    assert report.text.fmt_p(row.p_exact, 4) in text
    # w32, L = 3: the paper bound is >= 1 at eps = 0.25, and the text says so in words
    assert theory.paper_delta(32, 0.25, 1, 3) >= 1
    assert re.search(r"VACUOUS \[forward, norm form\]: run w32-d3-n1-he: .*eps = 0\.25", text)
    assert "not shown for init glorot" in text
    assert "happens by chance 5% of the time" in _flat(text)


def test_report_text_squared_form(sweep_file):
    text = report.report_text(mcinit.load(sweep_file), eps=[0.5], form="squared")
    assert "squared form" in text and "|ratio - 1|" in text and "eps (squared)" in text
    assert "sqrt(1+eps)-1" in text               # how the norm-form paper bound is applied


def test_report_text_violated(wide_file):
    res = mcinit.load(wide_file)
    df = res.failure([0.15], prop="forward")
    assert bool(df.bound_violated.iloc[0])               # the whole interval lies above paper_delta
    assert df.p_exact.iloc[0] > 100 * df.paper_delta.iloc[0]
    text = report.report_text(res, eps=[0.15])
    m = re.search(r"VIOLATED \[forward, norm form\]: run wide: (.*?)\n(?!  )", text + "\n", re.S)
    assert m, text
    stmt = _flat(m.group(1))
    assert "eps=0.15" in stmt and "property of the encoded bound" in stmt and "not a Monte Carlo error" in stmt
    assert "NOT an upper bound at small eps and large widths" in _flat(text)
    assert "CHERNOFF BELOW" not in text                  # the rigorous bound holds
    # the per-layer table (one run: full) is there, with the exact law beside it
    assert "exact mean" in text and "\n   10   4000" in text


def test_default_eps(sweep_file, wide_file):
    for path in (sweep_file, wide_file):
        eps = report.default_eps(mcinit.load(path))
        assert 1 <= len(eps) <= 4 and all(e in report.common.EPS_LADDER for e in eps)
    assert 0.15 in report.default_eps(mcinit.load(wide_file))   # where the paper bound is violated


def _check_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert 600 <= img.shape[0] <= 4000 and 800 <= img.shape[1] <= 4000
    assert img[..., :3].std() > 0.05                     # not a blank canvas


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
def test_plot_report_sweep_and_single(sweep_file, single_file, tmp_path):
    backend = matplotlib.get_backend()
    out = report.plot_report(mcinit.load(sweep_file), tmp_path / "sweep.png", eps=[0.25, 0.5, 1.0])
    assert str(out) == str(tmp_path / "sweep.png")
    _check_png(tmp_path / "sweep.png")
    report.plot_report(mcinit.load(single_file), tmp_path / "single.png", form="squared")
    _check_png(tmp_path / "single.png")
    assert matplotlib.get_backend() == backend           # no global backend switch


EXACT_CASES = [([3, 8, 5], None, "he"),
               ([40, 200, 90, 300], 30, "glorot"),
               ([1, 7, 2, 16], 5, "he-in"),
               ([64, 1000, 100], 50, "lecun")]


@pytest.mark.parametrize("widths,n0,init", EXACT_CASES)
def test_exact_density_mass_and_moments(widths, n0, init):
    y, f, p_dead = report.exact_log_density(widths, n0, init)
    h = y[1] - y[0]
    assert np.allclose(np.diff(y), h)
    assert p_dead == pytest.approx(-math.expm1(sum(math.log1p(-2.0 ** -n) for n in widths)), rel=1e-12)
    assert abs(h * f.sum() - (1 - p_dead)) < 1e-6
    mean = h * np.sum(f * np.exp(y))
    second = h * np.sum(f * np.exp(2 * y))
    mo = theory.moments(widths, n0, init)
    assert mean == pytest.approx(mo.mean[-1], rel=1e-6)
    assert second - mean ** 2 == pytest.approx(mo.var[-1], rel=1e-6)


def test_exact_density_one_layer_against_scipy():
    """One layer: rho_1 = v chi2(K), K ~ Binomial(n, 1/2); its density is a chi-square mixture."""
    n, v = 6, 2.0 / 6
    y, f, p_dead = report.exact_log_density([n])
    r = np.array([0.05, 0.3, 0.8, 1.0, 1.7, 3.0])
    k = np.arange(1, n + 1)
    direct = (stats.binom.pmf(k, n, 0.5)[None, :] * stats.chi2.pdf(r[:, None] / v, k[None, :]) / v).sum(1)
    assert np.allclose(report.exact_ratio_density(r, y, f), direct, rtol=2e-3)
    assert p_dead == pytest.approx(2.0 ** -n)


def _table_width(text, label):
    line = next(l for l in text.splitlines() if l.startswith(label))
    return int(line[len(label):].split()[0].replace(",", ""))


@pytest.mark.slow       # about 8 s; tests/test_json.py holds bound's text to its numbers by default
def test_bound_text():
    text = report.bound_text(0.15, 0.05, 10, widths=[1000, 4000])
    assert _table_width(text, "paper (authors' code)") == theory.paper_width(0.15, 0.05, 1, 10)
    widths = theory.required_widths(0.15, 0.05, 10)
    assert _table_width(text, "chernoff") == widths["chernoff"]
    assert _table_width(text, "exact") == widths["exact"]
    assert report.PAPER_PROVENANCE in text and "NOT an upper bound" in text
    # at m = 4000 the encoded bound lies below the exact probability, and the text says so
    line = next(l for l in text.splitlines() if l.lstrip().startswith("4,000"))
    assert "paper < exact" in line
    assert f"{theory.paper_delta(4000, 0.15, 1, 10):.3g}" in line
    assert "is below the width the exact probability needs" in _flat(text)
    # squared form, N inputs: the paper bound at the norm tolerance, the union labelled as such
    text = report.bound_text(0.5, 0.01, 5, samples=10, widths=[512], form="squared")
    assert _table_width(text, "paper (authors' code)") == theory.paper_width(math.sqrt(1.5) - 1, 0.01, 10, 5)
    assert "N x exact (union" in text and "exact P (one input)" in text and "squared form" in text
    assert _table_width(text, "exact, one input") == theory.required_width(0.5, 0.01, 5, 1, "exact", "squared")
    # a preset without the paper bound, and without any width that suffices
    text = report.bound_text(0.5, 0.01, 5, init="glorot")
    assert "derived for He" in text and "no width suffices" in _flat(text)


# --- tolerances at float64's edges: the limits, no traceback, no NaN ---------------------------

# the symmetric form at 1e308 takes 3 s (the exact law on ln rho in [-1418, 1418]): a slow test
@pytest.mark.parametrize("form,eps", [(f, e) for f in ("norm", "squared", "symmetric") for e in (1e308, 1e-20, 5e-324)
                                      if (f, e) != ("symmetric", 1e308)]
                         + [pytest.param("symmetric", 1e308, marks=pytest.mark.slow)])
def test_report_at_extreme_eps(single_file, form, eps):
    text = report.report_text(mcinit.load(single_file), eps=[eps], form=form)
    assert not re.search(r"\bnan\b", text, re.I)


def test_report_and_bound_commands_at_extreme_eps(single_file):
    from click.testing import CliRunner

    from mcinit.cli import main
    r = CliRunner().invoke(main, ["report", single_file, "--eps", "1e308"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(main, ["bound", "--eps", "1e308", "--delta", "0.1", "--depth", "3", "--width", "16"])
    assert r.exit_code == 0 and not re.search(r"\bnan\b", r.output, re.I), r.output
    r = CliRunner().invoke(main, ["bound", "--eps", "0.1", "--delta", "0.1", "--depth", "3", "--width", "1e12"])
    assert r.exit_code == 2 and r.output.strip() == \
        "mcinit: error: widths must be at most 2097152 (2**21) to evaluate the bounds at", r.output


@pytest.mark.slow
@pytest.mark.parametrize("form", ["norm", "squared"])
def test_bound_at_tiny_eps_says_no_width(form):
    text = _flat(report.bound_text(1e-300, 0.1, 3, widths=[16], form=form))
    assert "needs a width above 2097152" in text and not re.search(r"\bnan\b", text, re.I)
    text = _flat(report.bound_text(5e-324, 0.1, 3, form="norm"))
    assert "paper: the paper bound needs a width beyond any number" in text


# --- the symmetric form, and the warning of norm-form eps >= 1 ---------------------------------

def test_report_and_bound_take_the_symmetric_form_and_warn_of_norm_eps_of_one_or_more(single_file):
    """report and bound take --form symmetric (text and JSON); a norm-form --eps of 1 or more
    gives one warning line on stderr naming --form symmetric, and nothing else does."""
    import json

    from click.testing import CliRunner

    from mcinit.cli import main

    def run(*args):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        return r
    for args in (("report", single_file, "--eps", "0.5,1"), ("report", single_file, "--eps", "2", "--json"),
                 ("bound", "--eps", "0.25,1.5", "--delta", "0.1", "--depth", "3")):
        r = run(*args)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mcinit: warning: norm-form eps"), r.stderr
        assert "--form symmetric" in lines[0] and "cannot detect collapse" in lines[0]
    for args in (("report", single_file), ("report", single_file, "--eps", "0.5,0.99"),
                 ("report", single_file, "--eps", "1,2", "--form", "symmetric"),
                 ("report", single_file, "--eps", "1,2", "--form", "squared"),
                 ("bound", "--eps", "1.5", "--delta", "0.1", "--depth", "3", "--form", "symmetric")):
        assert run(*args).stderr == "", args
    text = _flat(run("report", single_file, "--eps", "0.25,1", "--form", "symmetric").stdout)
    assert "symmetric form: deviation max(sqrt(ratio), 1/sqrt(ratio)) - 1" in text
    assert "norm tolerance eps/(1+eps)" in text
    doc = json.loads(run("report", single_file, "--eps", "0.25,1", "--form", "symmetric", "--json").stdout)
    assert doc["form"] == "symmetric" and doc["eps"] == [0.25, 1.0]
    res = mcinit.load(single_file)
    c = res.runs[0].config
    rows = [r for r in doc["failure"]["forward"]] if isinstance(doc["failure"], dict) else \
        [r for r in doc["failure"] if r["prop"] == "forward"]
    p = theory.exact_forward_failure([0.25, 1.0], list(c.widths), "symmetric", c.input_dim, c.init)
    np.testing.assert_allclose([r["p_exact"] for r in rows], p, rtol=1e-9)
    text = _flat(run("bound", "--eps", "0.5", "--delta", "0.01", "--depth", "5", "--form", "symmetric").stdout)
    assert "norm tolerance eps/(1+eps) = 0.3333" in text
    assert f"paper (authors' code) {theory.paper_width(0.5 / 1.5, 0.01, 1, 5)} forward" in text
