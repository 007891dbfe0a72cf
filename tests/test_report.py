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
    assert 600 <= img.shape[0] <= 12000 and 800 <= img.shape[1] <= 4000
    assert img[..., :3].std() > 0.05                     # not a blank canvas


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
def test_plot_report_sweep_and_single(sweep_file, single_file, tmp_path):
    backend = matplotlib.get_backend()
    out = report.plot_report(mcinit.load(sweep_file), tmp_path / "sweep.png", eps=[0.25, 0.5, 1.0])
    assert out == [str(tmp_path / "sweep.png")]
    _check_png(tmp_path / "sweep.png")
    report.plot_report(mcinit.load(single_file), tmp_path / "single.png", form="squared")
    _check_png(tmp_path / "single.png")
    assert matplotlib.get_backend() == backend           # no global backend switch


# --- the figures' layout: nothing overlaps, every axis labelled, panels lettered in order ------

def _walk(fig):
    yield fig
    for sf in getattr(fig, "subfigs", []):
        yield from _walk(sf)


def layout_problems(fig):
    """What overlaps, is cut off or lacks a label in a figure, drawn by matplotlib's renderer:
    titles, axis labels, tick labels, legends and notes may not overlap one another; legends and
    notes may not cover any axes (the data), nor a panel's texts another panel's axes."""
    import itertools
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems, boxes, areas, seen = [], [], [], set()
    for f in _walk(fig):
        sup = getattr(f, "_suptitle", None)
        if sup is not None and sup.get_text():
            boxes.append(("suptitle", sup.get_window_extent(renderer), None))
        for t in f.texts:
            if t is not sup:
                boxes.append((f"figure text {t.get_text()!r}", t.get_window_extent(renderer), None))
        for leg in f.legends:
            boxes.append(("figure legend", leg.get_window_extent(renderer), None))
        for ax in f.axes:
            if id(ax) in seen:
                continue
            seen.add(id(ax))
            name = ax.get_title(loc="left") or ax.get_title() or repr(ax)
            areas.append((ax, name, ax.get_window_extent(renderer)))
            if not ax.get_xlabel() or not ax.get_ylabel():
                problems.append(f"{name}: an axis without a label")
            for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
                      ax.xaxis.offsetText, ax.yaxis.offsetText):
                if t.get_visible() and t.get_text():
                    boxes.append((f"{name}: {t.get_text()!r}", t.get_window_extent(renderer), ax))
            for axis in (ax.xaxis, ax.yaxis):
                for tick in axis._update_ticks():
                    if tick.label1.get_visible() and tick.label1.get_text():
                        boxes.append((f"{name}: tick {tick.label1.get_text()!r}",
                                      tick.label1.get_window_extent(renderer), ax))
            for t in ax.texts:
                boxes.append((f"{name}: note {t.get_text()!r}", t.get_window_extent(renderer), None))
            legs = [a for a in ax.artists if isinstance(a, matplotlib.legend.Legend)]
            legs += [ax.get_legend()] if ax.get_legend() is not None else []
            for leg in legs:
                boxes.append((f"{name}: legend", leg.get_window_extent(renderer), None))

    def overlap(a, b):
        return min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5
    for (n1, b1, _), (n2, b2, _) in itertools.combinations(boxes, 2):
        if overlap(b1, b2):
            problems.append(f"{n1} overlaps {n2}")
    for n, b, owner in boxes:
        for ax, an, area in areas:
            if ax is not owner and overlap(b, area):      # its own title, labels, ticks lie outside it
                problems.append(f"{n} covers the axes of {an}")
        fb = fig.bbox
        if b.x0 < fb.x0 - 0.5 or b.y0 < fb.y0 - 0.5 or b.x1 > fb.x1 + 0.5 or b.y1 > fb.y1 + 0.5:
            problems.append(f"{n} is cut off by the figure's edge")
    return problems


def _all_axes(fig):
    out = []
    for f in _walk(fig):
        out += [ax for ax in f.axes if ax not in out]
    return out


def _panel_titles(fig):
    return [ax.get_title(loc="left") for ax in _all_axes(fig)]


@pytest.fixture(scope="module")
def many_inputs_file(tmp_path_factory):
    """N = 200 inputs, the forward property alone, uniform weights beside Gaussian ones, two widths."""
    path = str(tmp_path_factory.mktemp("rep") / "many.h5")
    runs = sweep.expand(dict(trials=200, width="16,32", depth="3", input_dim=12, samples=200, init="he,lecun",
                             dist="normal,uniform", properties="forward", seed=3))
    sweep.run_sweep(runs, path)
    return path


@pytest.fixture(scope="module")
def deep_glorot_file(tmp_path_factory):
    """Glorot at depth 10, one input: rho_L ~ 1e-3, below the stored histogram's range (ln rho >= -4)."""
    return _run_file(tmp_path_factory.mktemp("rep") / "glorot.h5", trials=500, width=16, depth=10, input_dim=16,
                     init="glorot", seed=4)


@pytest.fixture(scope="module")
def sup_file(tmp_path_factory):
    """Two input dimensions with the search over the sphere: exact on the circle, certified beyond."""
    path = str(tmp_path_factory.mktemp("rep") / "sup.h5")
    runs = sweep.expand(dict(trials=60, width="8", depth="3", input_dim="2,6", samples=6, sup_search="2,10",
                             sup_bound="32", properties="forward", seed=5))
    sweep.run_sweep(runs, path)
    return path


@pytest.mark.slow       # draws five files' figures, together and one file per panel (about 40 s)
@pytest.mark.parametrize("which", ["sweep_file", "single_file", "many_inputs_file", "deep_glorot_file", "sup_file"])
def test_figure_layout(which, request):
    """N = 1 and N > 1, one and both properties, Gaussian and uniform weights, sweeps and single
    runs: no two texts or legends overlap, none covers an axes, every axis has a label, and the
    panels are lettered a, b, c, ... left to right and top to bottom (backward panels as well)."""
    res = mcinit.load(request.getfixturevalue(which))
    together = report.draw_figures(res, eps=[0.25, 0.5, 0.75])
    assert len(together) == 1
    assert layout_problems(together[0]) == []
    titles = _panel_titles(together[0])
    letters = [t[1] for t in titles]
    assert letters == list("abcdefghijklmnopqrstuvwxyz"[:len(titles)]), titles
    # the grid is filled row by row: the panels' positions follow their letters
    boxes = [ax.get_window_extent() for ax in _all_axes(together[0])]
    for b1, b2 in zip(boxes, boxes[1:]):        # the next panel: to the right in this row, or below
        assert (b2.x0 > b1.x1 and abs(b2.y1 - b1.y1) < 0.3 * b1.height) or b2.y1 < b1.y0
    has_backward = any("backward" in r.props for r in res.runs)
    assert any("Backward failure" in t for t in titles) == has_backward
    assert any("Forward failure" in t for t in titles)
    assert any("every input of the sphere" in t for t in titles) == any(r.config.sup for r in res.runs)
    separate = report.draw_figures(res, eps=[0.25, 0.5, 0.75], panels="separate")
    assert [_panel_titles(f)[0] for f in separate] == titles
    for fig in separate:
        assert layout_problems(fig) == []


def test_layout_check_finds_overlaps():
    """The check itself: a legend over the data and two overlapping texts are found."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="data")
    ax.legend(loc="center")
    ax.set_xlabel("x")
    ax.text(0.5, 0.5, "a note", transform=ax.transAxes)
    problems = layout_problems(fig)
    assert any("legend covers the axes" in p for p in problems)
    assert any("note 'a note' overlaps" in p for p in problems)
    assert any("an axis without a label" in p for p in problems)


# --- formats and files -------------------------------------------------------------------------

def test_figure_format_and_panel_paths():
    assert [report.figure_format(f"x/fig.{e}") for e in ("pdf", "svg", "png", "PDF")] == ["pdf", "svg", "png", "pdf"]
    for bad in ("fig.jpg", "fig", "fig.pdf.gz"):
        with pytest.raises(ValueError, match=r"ending in \.pdf, \.svg or \.png"):
            report.figure_format(bad)
    assert report.panel_paths("out/fig.pdf", 3) == ["out/fig-a.pdf", "out/fig-b.pdf", "out/fig-c.pdf"]


@pytest.mark.slow       # three formats and the separate panels of a run (about 10 s)
def test_plot_formats_and_separate_panels(single_file, tmp_path):
    from PIL import Image
    res = mcinit.load(single_file)
    n = report.report_numbers(res, [0.25, 0.5])
    assert report.plot_report(res, tmp_path / "f.pdf", numbers=n) == [str(tmp_path / "f.pdf")]
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    report.plot_report(res, tmp_path / "f.svg", numbers=n)
    svg = (tmp_path / "f.svg").read_text()
    assert "<svg" in svg and "<image" not in svg              # vector: no embedded bitmap
    report.plot_report(res, tmp_path / "f.png", numbers=n)
    dpi = Image.open(tmp_path / "f.png").info["dpi"]
    assert dpi == pytest.approx((report.PNG_DPI, report.PNG_DPI), abs=0.1)
    out = report.plot_report(res, tmp_path / "p.png", numbers=n, panels="separate")
    # layers, histogram, forward, backward, the mean-field view, failure against depth
    assert out == [str(tmp_path / f"p-{c}.png") for c in "abcdef"]
    for p in out:
        assert Image.open(p).info["dpi"] == pytest.approx((report.PNG_DPI, report.PNG_DPI), abs=0.1)


# --- the last layer's histogram covers the data -----------------------------------------------

def test_histogram_range_covers_the_data(deep_glorot_file, many_inputs_file):
    from mcinit.report import figures
    run = mcinit.load(deep_glorot_file).runs[0]
    d = figures.last_layer_values(run)
    assert d["hist"][1][0] > 0.5 * d["total"]       # most values lie below the stored log histogram
    counts, edges, missed = figures._binned(d, True, d["lo"], d["hi"])
    assert missed == 0 and counts.sum() == d["total"] - d["dead"]        # every value drawn
    assert edges[0] <= d["lo"] and edges[-1] >= d["hi"]
    # N > 1 inputs: the summary's histogram alone; what it misses is counted, never dropped silently
    for run in mcinit.load(many_inputs_file).runs:
        d = figures.last_layer_values(run)
        for log_space in (True, False):
            counts, edges, missed = figures._binned(d, log_space, d["lo"], d["hi"])
            dead_drawn = 0 if log_space else d["dead"]
            assert counts.sum() + missed + (d["dead"] - dead_drawn) >= d["total"] - d["dead"]
            assert counts.sum() + missed <= d["total"]


# --- theory curves: exact values, computed once ------------------------------------------------

def test_width_and_eps_curves_are_theorys_values(sweep_file):
    """The curves' every point is theory's value there (to 1e-9 relative), with the measured widths
    among the points; values the table holds are taken from it unchanged."""
    from mcinit.report import curves
    res = mcinit.load(sweep_file)
    c = next(r.config for r in res.runs if r.config.init == "he")
    eps = [0.25, 0.5, 1.0]
    wc = curves.width_curves(c, eps, "norm", [32, 64], floor=1e-8)
    assert {32, 64} <= set(wc["width"].tolist()) and len(wc["width"]) >= 3
    for j, m in enumerate(wc["width"]):
        ws = [int(m)] * c.depth
        ch = theory.chernoff_bound(np.array(eps), ws, c.samples, "norm", c.input_dim, c.init)
        ex = theory.exact_forward_failure(np.array(eps), ws, "norm", c.input_dim, c.init)
        np.testing.assert_allclose(wc["chernoff"][:, j], ch, rtol=1e-9, atol=0)
        np.testing.assert_allclose(wc["exact"][:, j], ex, rtol=1e-9, atol=0)
    # the table's numbers at the measured widths are those of the curves
    df = report.report_numbers(res, eps)["failure"]["forward"]
    row = df[(df.run == "w64-d3-n1-he")].sort_values("eps")
    np.testing.assert_allclose(row.p_exact, wc["exact"][:, list(wc["width"]).index(64)], rtol=1e-9)
    np.testing.assert_allclose(row.chernoff, wc["chernoff"][:, list(wc["width"]).index(64)], rtol=1e-9)
    ec = curves.eps_curves(c, 0.2, 1.5, "norm", floor=1e-8)
    assert ec["eps"][0] == 0.2 and ec["eps"][-1] == 1.5 and np.all(np.diff(ec["eps"]) > 0)
    for e, ch, ex in zip(ec["eps"], ec["chernoff"], ec["exact"]):
        assert ex == pytest.approx(float(theory.exact_forward_failure(e, list(c.widths), "norm", c.input_dim, c.init)),
                                   rel=1e-9)
        assert ch == pytest.approx(float(theory.chernoff_bound(np.array([e]), list(c.widths), c.samples, "norm",
                                                               c.input_dim, c.init)[0]), rel=1e-9)


def test_refine_adds_points_where_the_curve_bends():
    from mcinit.report.curves import _refine
    calls = []

    def f(x):
        calls.append(x)
        return np.array([math.exp(-x * x)])
    x, v = _refine([0.0, 1.0, 2.0, 3.0, 4.0], f, lambda a, b: 0.5 * (a + b) if b - a > 1e-3 else None, float,
                   1e-6)
    assert len(calls) == len(set(calls)) == len(x)                  # each point computed once
    np.testing.assert_allclose(v[:, 0], np.exp(-x * x), rtol=0)      # exact at every point
    # between the points, straight lines in log10 miss the curve by little where it is above the floor
    xs = np.linspace(0, 4, 2001)
    lin = np.interp(xs, x, np.log10(np.maximum(v[:, 0], 1e-6)))
    true = np.log10(np.maximum(np.exp(-xs * xs), 1e-6))
    assert np.max(np.abs(lin - true)) < 0.1
    assert len(x) < 40                                               # and few points


# --- residual networks: no plain law, no paper bound --------------------------------------------

def test_no_plain_law_for_residual_networks(sweep_file):
    import dataclasses
    from mcinit.report import curves
    res = mcinit.load(sweep_file)
    c = dataclasses.replace(next(r.config for r in res.runs if r.config.init == "he"), arch="residual")
    assert c.residual
    assert curves.width_curves(c, [0.5], "norm", [32, 64]) == {}
    assert curves.eps_curves(c, 0.2, 1.0, "norm") == {}
    assert curves.paper_width_curve(c, [0.5], "norm", 32, 64) is None
    assert curves.paper_eps_curve(c, [0.5], "norm") is None
    # the tables: the runs made residual lose their bound columns and flags
    for run in res.runs:
        object.__setattr__(run, "config", dataclasses.replace(run.config, arch="residual"))
    n = report.report_numbers(res, [0.5])
    for prop in ("forward", "backward", "both"):
        df = n["failure"][prop]
        assert df.paper_delta.isna().all() and df.chernoff.isna().all() and df.p_exact.isna().all()
        assert not df.bound_violated.any() and not df.paper_vacuous.any()
    text = report.report_text(res, [0.5], numbers=n)
    assert "they describe plain ReLU networks" in _flat(text)
    # the figures: no exact, Chernoff or paper curve, no exact mean or density; a note says why
    fig = report.draw_figures(res, eps=[0.5], numbers=n)[0]
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert not any(t.startswith(("exact", "Chernoff", "paper's bound")) for t in legends), legends
    assert "residual: no exact law, no paper bound" in legends and "residual: no exact mean" in legends
    styles = [(line.get_linestyle(), line.get_linewidth()) for ax in fig.axes for line in ax.get_lines()]
    assert not [st for st in styles if st[0] in ("--", "-.") or st == (":", 1.6)], styles   # exact, paper, Chernoff


# --- words --------------------------------------------------------------------------------------

def test_both_property_words_match_its_numbers(sweep_file):
    """The 'both' table's paper_delta is min(1, 2 delta); the text says so, not a per-property delta."""
    res = mcinit.load(sweep_file)
    text = _flat(report.report_text(res, eps=[0.25, 0.5]))
    assert "For 'both' paper_delta is min(1, 2 delta)" in text
    assert "per-property value" not in text and "2 x paper_delta" not in text
    df = res.failure([0.5], prop="both")
    one = res.failure([0.5], prop="forward")
    he = df.run == "w64-d3-n1-he"
    assert float(df[he].paper_delta.iloc[0]) == pytest.approx(min(1.0, 2 * float(one[one.run == "w64-d3-n1-he"]
                                                                            .paper_delta.iloc[0])))


def test_every_form_flows_through_the_report(single_file):
    """No pair of forms is written into the report: every form of options.FORMS has its words, its
    text and its figure (the eps axis names the form's deviation)."""
    from mcinit.options import FORMS
    from mcinit.report import common
    from mcinit.stats import FORM_FORMULAS
    assert common.deviation_words("norm", "rho") == "|sqrt(rho) - 1|"
    res = mcinit.load(single_file)
    for form in FORMS:
        assert common.form_words(form) == f"{form} form: deviation {FORM_FORMULAS[form]}"
        assert f"eps ({form})" in report.report_text(res, eps=[0.5], form=form)
    with pytest.raises(ValueError, match="form must be one of"):
        common.form_words("cubic")


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


def test_report_computes_each_theory_value_once(sweep_file, tmp_path, monkeypatch):
    """The text tables, the JSON's numbers and the figure share the Chernoff and exact values: each
    (law, eps, form) is computed by theory once, and the shared values are theory's exactly."""
    from mcinit import results
    results._cached.cache_clear()
    calls = []

    def counted(f):
        def g(eps, widths, *args):
            calls.append((f.__name__, tuple(np.atleast_1d(eps).tolist()), tuple(widths), args))
            return f(eps, widths, *args)
        g.__name__ = f.__name__
        return g
    monkeypatch.setattr(theory, "chernoff_bound", counted(theory.chernoff_bound))
    monkeypatch.setattr(theory, "exact_forward_failure", counted(theory.exact_forward_failure))
    res = mcinit.load(sweep_file)
    eps = [0.25, 0.5, 1.0]
    text = report.report_text(res, eps=eps)
    assert calls and len(set(calls)) == len(calls)
    n = len(calls)
    assert report.report_text(mcinit.load(sweep_file), eps=eps) == text      # again: from the cache
    report.report_numbers(mcinit.load(sweep_file), eps)                       # the JSON's numbers
    assert len(calls) == n
    report.plot_report(res, tmp_path / "f.png", eps=eps)                     # the curves between the widths
    assert len(set(calls)) == len(calls)
    for run in res.runs:
        c = run.config
        if c.dist == "normal" and not c.residual:
            ex = results.exact_values(eps, c.widths, "norm", c.input_dim, c.init)
            assert not ex.flags.writeable
            np.testing.assert_array_equal(ex, theory.exact_forward_failure(np.array(eps), list(c.widths), "norm",
                                                                          c.input_dim, c.init))
            np.testing.assert_array_equal(results.chernoff_values(eps, c.widths, c.samples, "norm", c.input_dim,
                                                                  c.init),
                                          theory.chernoff_bound(np.array(eps), list(c.widths), c.samples, "norm",
                                                                c.input_dim, c.init))


def test_failure_counts_are_read_once_per_eps_and_stay_exact(sweep_file):
    """A run counts each (form, eps) once; later asks, in any order, subset or repeat, give what a
    fresh count gives."""
    run = mcinit.load(sweep_file).runs[0]
    ladder = list(mcinit.stats.EPS_LADDER)
    first = run.failure_counts(ladder, "norm")
    for eps, form in (([0.5, 0.1, 0.5], "norm"), ([1.0], "norm"), ([0.1, 0.3], "symmetric"), (ladder, "norm")):
        got = run.failure_counts(eps, form)
        fresh = mcinit.load(sweep_file).runs[0].failure_counts(eps, form)
        assert set(got) == set(fresh) == set(first)
        for p in got:
            assert got[p].dtype == np.int64 and got[p].tolist() == fresh[p].tolist()
    assert {e for f, e in run._counts if f == "norm"} == set(ladder) | {0.5, 0.1, 1.0}


# --- the mean-field view --------------------------------------------------------------------------

def test_meanfield_numbers_and_text(sweep_file):
    """Per run: He on equal widths is critical (every q fixed, chi_1 = 1), Glorot ordered (q* = 0, chi_1 =
    sigma_w^2/2); the mean-field rho_L is the exact mean for ReLU; the KS distance is meanfield's of the
    run's widths and variances; the text prints them."""
    from mcinit import meanfield
    from mcinit.initializers import scheme_of
    res = mcinit.load(sweep_file)
    n = report.report_numbers(res, [0.5])
    mf = n["meanfield"]
    assert list(mf.run) == [r.name for r in res.runs]
    layers = n["layers"]
    for run in res.runs:
        c = run.config
        row = mf[mf.run == run.name].iloc[0]
        var = scheme_of(c)[1]
        assert row.sigma_w2 == pytest.approx(var[-1] * c.all_widths[-2])
        assert row.chi_1 == pytest.approx(row.sigma_w2 / 2, rel=1e-15)
        if c.init == "he":
            assert (row.regime, row.q_star_kind) == ("critical", "every") and math.isnan(row.q_star)
        else:
            assert (row.regime, row.q_star_kind, row.q_star) == ("ordered", "zero", 0.0)
        exact = layers[(layers.run == run.name) & (layers.layer == c.depth)].exact_rho_mean.iloc[0]
        assert row.rho_L_meanfield == pytest.approx(exact, rel=1e-12)
        assert row.beta == pytest.approx(sum(1 / w for w in c.widths))
        assert row.ks_distance == meanfield.ks_distance(c.widths, var) > 0
        assert row.limit_var == pytest.approx(5 * row.beta)
    text = _flat(report.report_text(res, [0.5], numbers=n))
    assert "MEAN-FIELD VIEW AND DEPTH-TO-WIDTH REGIME" in text
    for _, row in mf.iterrows():
        assert f"run {row.run}: relu, beta = {report.common.fmt_g(row.beta, 4)}" in text
        assert f"KS distance {report.common.fmt_g(row.ks_distance, 3)}." in text


def test_meanfield_panels_draw_the_runs_quantiles_prediction_and_failures(single_file):
    """The mean-field panel's median line is the quantile of the records' rho_l, its dashed line the
    prediction; the depth panel's points are the cumulative per-layer failure counts over the trials."""
    from mcinit import meanfield
    from mcinit.report.figures import layer_quantiles
    res = mcinit.load(single_file)
    run = res.runs[0]
    figs = report.draw_figures(res, eps=[0.25, 0.5], panels="separate")
    by_title = {_panel_titles(f)[0].split(") ", 1)[1]: f for f in figs}
    ax = by_title["Mean-field prediction and the networks' spread"].axes[0]
    lines = ax.get_lines()
    rho = run.records(("fwd_min",))["fwd_min"]
    median = np.concatenate(([1.0], np.quantile(rho, 0.5, axis=0)))
    np.testing.assert_allclose(layer_quantiles(run)[1], median[1:])
    pred = np.concatenate(([1.0], meanfield.predict_run(run.config).rho))
    assert any(np.allclose(line.get_ydata(), median) and line.get_linestyle() == "-" for line in lines)
    assert any(np.allclose(line.get_ydata(), pred) and line.get_linestyle() == "--" for line in lines)
    ax = by_title["Forward failure vs depth"].axes[0]
    k = run.layer_failure_counts([0.25, 0.5], "forward", "norm", cumulative=True)
    drawn = [np.asarray(line.get_ydata(), float) for line in ax.get_lines() if line.get_marker() == "o"]
    for i in range(2):
        p = k[:, i] / run.completed
        assert any(np.allclose(np.nan_to_num(d), p) for d in drawn), (p, drawn)
    assert (np.diff(k, axis=0) >= 0).all()        # a deeper network fails at least as often
