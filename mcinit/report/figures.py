"""The report's figures: per-layer ratios, the last layer's distribution, failure probabilities.

Panels, lettered (a), (b), ... left to right and top to bottom in the order they are made:
the norm ratio per layer, the distribution of the last layer's norm ratio, then the forward
failure probability against the width (one panel per group of runs that differ only in the
width) or against eps (one width), then the same for the backward property where runs
computed it, then the per-layer rho_l of the networks (median, 5-95%) beside its mean-field prediction
(mcinit.meanfield), and the forward failure probability of a network of the first l layers against l.
Every legend and note sits to the right of its axes, outside the data.
"""

import math
import os

import numpy as np

from .. import theory
from ..options import FIGURE_FORMATS, PANEL_MODES, PNG_DPI
from ..stats import HIST_BINS, Summary, clopper_pearson
from .common import PAPER_INITS, deviation_words, fmt_g, form_words, init_label, widths_label
from .curves import (eps_curves, exact_log_density, exact_ratio_density, paper_eps_curve, paper_width_curve,
                     plain_gaussian, width_curves)

_PANEL_SIZE = (7.0, 4.2)       # inches, the axes and the legend to their right
_LEGEND_ROWS = 20              # lines per legend column
_LEGEND_WIDTH = 42             # characters per legend line
_FONT = dict(title=10, label=9, tick=8, legend=7.5)

_INIT_CMAPS = {"he": "Blues", "glorot": "Oranges", "lecun": "Greens", "he-in": "Purples",
               "wn": "Reds", "wn-unit": "Greys", "paper-glorot": "YlOrBr"}
_STYLE = {"paper": dict(ls="-.", lw=1.3), "chernoff": dict(ls=":", lw=1.6), "exact": dict(ls="--", lw=1.3)}
_PROP_RATIO = {"forward": "rho", "backward": "gamma"}


# ---------------------------------------------------------------------------
# file names


def _law_label(c):
    """A run's initialisation, and its activation where not ReLU, as the notes on laws name it
    (report.common.init_label names both)."""
    return init_label(c)


def figure_format(path):
    """The format of a figure file from its extension (pdf, svg or png); ValueError for any other."""
    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    if ext not in FIGURE_FORMATS:
        names = [f".{f}" for f in FIGURE_FORMATS]
        raise ValueError(f"--plot takes a file name ending in {', '.join(names[:-1])} or {names[-1]}, "
                         f"not {os.path.basename(str(path))!r}")
    return ext


def panel_paths(path, count):
    """The files of ``count`` separate panels: NAME-a.EXT, NAME-b.EXT, ... beside ``path`` = NAME.EXT."""
    root, ext = os.path.splitext(str(path))
    return [f"{root}-{_letter(i)}{ext}" for i in range(count)]


def _letter(i):
    return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"z{i - 25}"


# ---------------------------------------------------------------------------
# shared pieces

def _run_colors(runs):
    """A colour per run: a colour family per init, darker for wider networks."""
    from matplotlib import colormaps
    if len(runs) == 1:
        return {runs[0].name: "C0"}
    out = {}
    by_init = {}
    for r in runs:
        by_init.setdefault(r.config.init, []).append(r)
    for init, rs in by_init.items():
        cmap = colormaps[_INIT_CMAPS.get(init, "Greys")]
        order = sorted(rs, key=lambda r: (min(r.config.widths), r.config.depth, r.config.samples))
        for i, r in enumerate(order):
            out[r.name] = cmap(0.5 + 0.45 * (i / max(1, len(order) - 1)) if len(order) > 1 else 0.8)
    return out


def _varying(runs):
    keys = ("depth", "samples", "input_dim", "init", "dist", "arch", "branch_scale")
    return {k for k in keys if len({getattr(r.config, k) for r in runs}) > 1}


def _run_label(run, vary):
    c = run.config
    parts = [init_label(c), f"m={widths_label(c.widths)}"]
    if "depth" in vary:
        parts.append(f"L={c.depth}")
    if "samples" in vary:
        parts.append(f"N={c.samples}")
    if "input_dim" in vary:
        parts.append(f"n0={c.input_dim}")
    if c.residual:
        parts.append(f"{c.arch} s={fmt_g(c.branch_scale)}")
    return " ".join(parts)


def _group_key(c):
    return (c.init, c.dist, c.depth, c.samples, c.input_dim, c.arch, c.branch_scale)


def _group_title(key, vary):
    init, dist, depth, samples, n0, arch, scale = key
    t = f"{init}" + ("" if dist == "normal" or init.startswith("wn") else f"/{dist}") + f", L={depth}, N={samples}"
    if "input_dim" in vary:
        t += f", n0={n0}"
    if arch != "plain":
        t += f", {arch} s={fmt_g(scale)}"
    return t


def _header(text):
    """A legend entry without a line: a heading or a note."""
    from matplotlib.lines import Line2D
    return Line2D([], [], color="none", label=text)


def _legend(ax, handles):
    """The legend of a panel, to the right of its axes (never over the data); long entries wrapped."""
    import textwrap
    for h in handles:
        h.set_label(textwrap.fill(h.get_label(), _LEGEND_WIDTH, subsequent_indent="  "))
    rows = sum(h.get_label().count("\n") + 1 for h in handles)
    ncol = max(1, math.ceil(rows / _LEGEND_ROWS))
    return ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0,
                     fontsize=_FONT["legend"], frameon=False, ncol=ncol, handlelength=2.4)


def _finish(ax, letter, title, xlabel, ylabel):
    ax.set_title(f"({letter}) {title}", fontsize=_FONT["title"], loc="left")
    ax.set_xlabel(xlabel, fontsize=_FONT["label"])
    ax.set_ylabel(ylabel, fontsize=_FONT["label"])
    ax.tick_params(labelsize=_FONT["tick"])


def _floor(values, default=1e-6):
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if not v.size:
        return default
    return max(1e-14, 10.0 ** (math.floor(math.log10(v.min())) - 1))


def _log_ticks(axis, lo, hi):
    """Plain tick labels (0.5, 1, 2 rather than 5x10^-1) on a log axis: 1-2-5 within two decades."""
    from matplotlib import ticker

    def label(v, _):
        if 0.01 <= v < 1000:
            return f"{v:g}"
        k = math.log10(v)
        return f"$10^{{{k:.0f}}}$" if abs(k - round(k)) < 1e-9 else ""
    fmt = ticker.FuncFormatter(label)
    if hi / lo < 100:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(ticker.NullFormatter())


def _band_where(pos):
    """Where to fill the interval band: segments touching a point with p_hat > 0 (zeros get markers)."""
    pos = np.asarray(pos, bool)
    return pos | np.concatenate(([False], pos[:-1]))


def _style_handles(runs, prop, samples_gt1, paper_drawn, level):
    """Legend entries of the line styles of a failure panel, only of the curves it draws."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    h = [_header("drawn"),
         Line2D([], [], color="k", marker="o", ms=4, lw=1.2, label="measured failure probability"),
         Patch(color="k", alpha=0.15, label=f"{level * 100:.4g}% exact interval"),
         Line2D([], [], color="k", marker="v", ms=6, lw=0, mfc="none", label="none failed: upper limit")]
    if prop == "forward" and any(plain_gaussian(r.config) for r in runs):
        h.append(Line2D([], [], color="k", **_STYLE["exact"], label="exact, one input" if samples_gt1 else "exact"))
        if samples_gt1:
            h.append(Patch(facecolor="none", edgecolor="k", hatch="///", label="exact N inputs lie here"))
        h.append(Line2D([], [], color="k", **_STYLE["chernoff"], label="Chernoff bound"))
    if paper_drawn:
        h.append(Line2D([], [], color="k", **_STYLE["paper"], label="paper's bound"))
    return h


def _notes(runs, prop):
    """Legend notes: which runs have no paper bound, no exact law."""
    out = []
    if any(r.config.residual for r in runs):
        out.append("residual: no exact law, no paper bound")
    off = sorted({_law_label(r.config) for r in runs if not r.config.residual
                  and not (r.config.dist == "normal" and r.config.init in PAPER_INITS
                           and theory.paper_applies(r.config.init, r.config.activation, r.config.gain))})
    if off:
        out.append(f"no paper bound for {', '.join(off)} (derived for He, Gaussian weights, ReLU)")
    if prop == "forward":
        other = sorted({_law_label(r.config) for r in runs if not r.config.residual and not plain_gaussian(r.config)})
        if other:
            out.append(f"no exact law for {', '.join(other)}")
    return [_header(n) for n in out]


# ---------------------------------------------------------------------------
# (a) the norm ratio per layer

def _draw_layers(fig, letter, ctx):
    """Per-layer mean of rho_l per run with a +/- sd band, the exact mean dashed; log y."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    results, colors, vary = ctx["results"], ctx["colors"], ctx["vary"]
    ax = fig.add_subplot()
    lt = results.layers()
    lows, highs = [], []
    inits = list(dict.fromkeys(r.config.init for r in results.runs))
    handles, exact_drawn = [], False
    for run in sorted(results.runs, key=lambda r: (inits.index(r.config.init), min(r.config.widths),
                                                   r.config.depth, r.config.samples)):
        if run.completed == 0:
            continue
        d = lt[lt.run == run.name]
        x = np.concatenate(([0], d.layer.to_numpy()))
        m = np.concatenate(([1.0], d.rho_mean.to_numpy()))
        sd = np.concatenate(([0.0], d.rho_sd.to_numpy()))
        col = colors[run.name]
        ax.plot(x, m, "-o", color=col, ms=3, lw=1.6)
        lo = np.where(m - sd > 0, m - sd, np.nan)
        ax.fill_between(x, np.where(np.isfinite(lo), lo, m * 1e-3), m + sd, color=col, alpha=0.13, lw=0)
        handles.append(Line2D([], [], color=col, marker="o", ms=3, lw=1.6, label=_run_label(run, vary)))
        vals = list(m[m > 0])
        if not run.config.residual:       # the plain network's law; none is drawn for a residual one
            ex = np.concatenate(([1.0], d.exact_rho_mean.to_numpy()))
            if np.isfinite(ex).all():
                ax.plot(x, ex, "--", color="k", lw=0.9, alpha=0.7)
                exact_drawn = True
                vals += list(ex[ex > 0])
        lows.append(min(vals))
        highs.append(np.nanmax(m + sd))
    ax.set_yscale("log")
    lo, hi = (min(lows) / 3.0, max(max(highs) * 1.5, 2.0)) if lows else (0.1, 10.0)
    ax.set_ylim(lo, hi)
    _log_ticks(ax.yaxis, lo, hi)
    ax.axhline(1.0, color="grey", lw=0.6, zorder=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, which="major", alpha=0.3)
    _finish(ax, letter, "Norm ratio per layer", "layer l (0 = input)",
            r"$\rho_l = \|h^l\|^2 / \|x\|^2$, mean $\pm$ sd")
    extra = [_header("drawn"), Patch(color="k", alpha=0.13, label="mean ± sd over networks and inputs")]
    if exact_drawn:
        extra.append(Line2D([], [], color="k", ls="--", lw=0.9, label="exact mean"))
    if any(r.config.residual for r in results.runs):
        extra.append(_header("residual: no exact mean"))
    _legend(ax, [_header("runs")] + handles + extra)


# ---------------------------------------------------------------------------
# (b) the last layer's distribution

def _hist_runs(results, limit=4):
    """Runs whose last-layer distribution is drawn: per group the narrowest and the widest, at most `limit`."""
    groups = {}
    for r in results.runs:
        if r.completed > 0:
            groups.setdefault(_group_key(r.config), []).append(r)
    picked = []
    for rs in groups.values():
        rs = sorted(rs, key=lambda r: min(r.config.widths))
        for r in (rs[0], rs[-1]):
            if r not in picked:
                picked.append(r)
    if len(picked) > limit:                 # keep the widest of each group first
        widest = [sorted(rs, key=lambda r: min(r.config.widths))[-1] for rs in groups.values()]
        rest = [r for r in picked if r not in widest]
        picked = (widest + rest)[:limit]
    return picked


#: a run of one input per trial whose summary histogram misses values is drawn from its
#: records (every value of rho_L) when it has at most this many trials
_RECORD_TRIALS = 1 << 21


def last_layer_values(run):
    """What the distribution panel draws of a run: the summary's counts of rho_L (every value
    over all (trial, input) pairs) and its extremes.

    Returns dict(run, total (values, dead ones included), dead (values rho_L = 0), lo (the
    smallest positive value), hi (the largest), hist (the summary's histograms of rho_L and
    ln rho_L (its values > 0), each with an underflow bin first and an overflow bin last))."""
    s = run.summary()
    L = run.config.depth - 1
    total = int(s.count[0, 0, L])
    positive = int(s.count[0, 1, L])
    return dict(run=run, total=total, dead=total - positive, lo=math.exp(s.min[0, 1, L]) if positive else math.nan,
                hi=float(s.max[0, 0, L]) if total else math.nan, hist=s.hist[0, :, L])


def _draw_hist(fig, letter, ctx):
    """The distribution of rho_L (density) per run over its exact density; the range covers the data."""
    from matplotlib.lines import Line2D
    results, colors, vary = ctx["results"], ctx["colors"], ctx["vary"]
    ax = fig.add_subplot()
    runs = _hist_runs(results)
    data = {r.name: last_layer_values(r) for r in runs}
    los = [d["lo"] for d in data.values() if np.isfinite(d["lo"])]
    his = [d["hi"] for d in data.values() if np.isfinite(d["hi"])]
    lo, hi = (min(los), max(his)) if los else (0.5, 2.0)
    log_space = hi / lo > 30 or hi > Summary.edges(0)[-1]
    handles, dead_total, exact_drawn, notes = [], 0.0, False, []
    ymax = 0.0
    for r in runs:
        c, d = r.config, data[r.name]
        col = colors[r.name]
        counts, edges, missed = _binned(d, log_space, lo, hi)
        width = np.diff(np.log(edges) if log_space else edges)
        dens = counts / (d["total"] * width) if d["total"] else counts
        ax.stairs(dens, edges, color=col, lw=1.1, alpha=0.9)
        ymax = max(ymax, float(dens.max()) if dens.size else 0.0)
        label = _run_label(r, vary)
        if missed:
            label += f": {100 * missed / d['total']:.3g}% outside the stored histogram, not drawn"
        handles.append(Line2D([], [], color=col, lw=1.4, label=label))
        if d["dead"]:
            notes.append(f"{r.name}: {d['dead'] / d['total']:.2%} dead (rho_L = 0), not drawn")
        law = theory.exact_law_of(c)
        if law is not None and law.relu_gaussian:       # exact_log_density is the ReLU Gaussian law's
            y, f, p_dead = exact_log_density(c.widths, c.input_dim, c.init)
            dead_total = max(dead_total, p_dead)
            if log_space:
                xs = np.geomspace(lo, hi, 600)
                ax.plot(xs, np.interp(np.log(xs), y, f, left=0.0, right=0.0), "--", color="k", lw=1.2)
            else:
                xs = np.linspace(max(lo, 1e-12), hi, 600)
                ax.plot(xs, exact_ratio_density(xs, y, f), "--", color="k", lw=1.2)
            exact_drawn = True
    if log_space:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.2, hi * 1.2)
        _log_ticks(ax.xaxis, lo / 1.2, hi * 1.2)
        xlabel, ylabel = r"$\rho_L = \|h^L\|^2 / \|x\|^2$ (last layer, log scale)", r"density of $\ln \rho_L$"
    else:
        pad = 0.04 * (hi - lo)
        ax.set_xlim(max(0.0, lo - pad), hi + pad)
        xlabel, ylabel = r"$\rho_L = \|h^L\|^2 / \|x\|^2$ (last layer)", r"density of $\rho_L$"
    ax.set_ylim(0, ymax * 1.08 if ymax > 0 else 1)
    ax.grid(True, alpha=0.3)
    _finish(ax, letter, "Distribution of the last layer's norm ratio", xlabel, ylabel)
    extra = [_header("drawn"), Line2D([], [], color="k", lw=1.1, label="histogram over all networks and inputs")]
    if exact_drawn:
        extra.append(Line2D([], [], color="k", ls="--", lw=1.2, label="exact density, one input"))
        if any(r.config.samples > 1 for r in runs if plain_gaussian(r.config)):
            extra.append(_header("(for N inputs: each input's law)"))
    unexplained = sorted({_law_label(r.config) + (f" {r.config.arch}" if r.config.residual else "")
                          for r in runs if not (plain_gaussian(r.config) and theory.exact_law_of(r.config).relu_gaussian)})
    if unexplained:
        extra.append(_header(f"no exact density for {', '.join(unexplained)}"))
    extra += [_header(n) for n in notes]
    _legend(ax, [_header("runs")] + handles + extra)


def _binned(d, log_space, lo, hi, bins=80):
    """(counts, edges, values not drawn) of one run's rho_L over [lo, hi] (log-spaced bins in log space).

    From the summary's histogram in that space (its bins merged by a whole factor, over the
    data's range) when it holds every value; else, for a run of one input per trial and at most
    _RECORD_TRIALS trials, from its records (every value); else from the summary's histogram,
    the values outside its range counted, not drawn."""
    space = 1 if log_space else 0
    h = d["hist"][space].astype(float)
    run = d["run"]
    if h[0] + h[-1] > (0 if log_space else d["dead"]) and run.config.samples == 1 \
            and run.completed <= _RECORD_TRIALS:
        v = run.records(("fwd_min",), 0, run.completed)["fwd_min"][:, run.config.depth - 1].astype(float)
        v = v[v > 0]                     # the dead values are counted in the notes
        edges = np.geomspace(lo, hi, bins + 1) if log_space else np.linspace(lo, hi, bins + 1)
        counts, _ = np.histogram(np.log(v) if log_space else v, np.log(edges) if log_space else edges)
        return counts.astype(float), edges, 0
    stored = Summary.edges(space)
    inner, e = h[1:-1], stored
    # the stored bins over the data's range, merged so that about `bins` remain
    a, b = (math.log(lo), math.log(hi)) if log_space else (lo, hi)
    i0 = max(0, int(np.searchsorted(e, a, side="right")) - 1)
    i1 = min(HIST_BINS, int(np.searchsorted(e, b, side="left")))
    i1 = max(i1, i0 + 1)
    k = max(1, (i1 - i0) // bins)
    i1 = i0 + k * math.ceil((i1 - i0) / k)
    if i1 > HIST_BINS:
        i0 = max(0, i0 - (i1 - HIST_BINS))
        i1 = min(HIST_BINS, i1)
        k = max(1, min(k, i1 - i0))
        i1 = i0 + k * ((i1 - i0) // k)
    counts = inner[i0:i1].reshape(-1, k).sum(axis=1)
    edges = e[i0:i1 + 1:k]
    missed = int(h[0] + h[-1] + inner.sum() - counts.sum())
    if log_space:                        # ln rho_L: the dead values (rho_L = 0) are not in it
        edges = np.exp(edges)
    elif i0 > 0:                         # the dead values lie in the first stored bin, below the range
        missed -= d["dead"]
    return counts, edges, max(0, missed)


# ---------------------------------------------------------------------------
# failure probability against the width or eps

def _draw_failure_width(fig, letter, ctx, prop, key, runs):
    """Failure probability of ``prop`` against the width, one colour per eps, with the bound curves."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    eps, form, level, vary = ctx["eps"], ctx["form"], ctx["level"], ctx["vary"]
    ax = fig.add_subplot()
    ecols = colormaps["viridis"](np.linspace(0.0, 0.85, len(eps)))
    full = ctx["numbers"]["failure"][prop]
    df = full[full.run.isin([r.name for r in runs])]
    c0 = runs[0].config
    equal = all(len(set(r.config.widths)) == 1 for r in runs)
    ws = np.array(sorted({min(r.config.widths) for r in runs}))
    p_all = df.p_hat.to_numpy(float)
    bottom = _floor(list(p_all[p_all > 0]) + list(df.ci_high[p_all == 0]))
    curves, paper = {}, None
    if equal and prop == "forward":
        known = {}
        for r in runs:
            d = df[df.run == r.name]
            ex = d.p_exact.to_numpy(float) if r.config.samples == 1 else d.p_one_input.to_numpy(float)
            ch = d.chernoff.to_numpy(float)
            if len(d) == len(eps) and np.isfinite(ex).all() and np.isfinite(ch).all():
                known[int(min(r.config.widths))] = (ch, ex)
        curves = width_curves(c0, eps, form, ws, floor=bottom, known=known)
    if equal:
        paper = paper_width_curve(c0, eps, form, ws.min(), ws.max())
    marks = False
    for i, e in enumerate(eps):
        d = df[np.isclose(df.eps, e)].sort_values("width")
        x, p, lo, hi = (d[k].to_numpy(float) for k in ("width", "p_hat", "ci_low", "ci_high"))
        col = ecols[i]
        pos = p > 0
        if pos.any():
            ax.plot(x[pos], p[pos], "-o", color=col, ms=4, lw=1.4)
        ax.plot(x[~pos], hi[~pos], "v", color=col, ms=7, mfc="none", mew=1.4)
        ax.fill_between(x, np.maximum(lo, bottom), hi, where=_band_where(pos), color=col, alpha=0.15, lw=0)
        if paper is not None:
            ax.plot(paper[0], paper[1][i], color=col, **_STYLE["paper"])
        elif np.isfinite(d.paper_delta).any():      # the paper's bound where it holds (e.g. he-in at n_0 = m)
            ax.plot(x, d.paper_delta, "_", color=col, ms=12, mew=1.5)
            marks = True
        if curves:
            ax.plot(curves["width"], curves["chernoff"][i], color=col, **_STYLE["chernoff"])
            ax.plot(curves["width"], curves["exact"][i], color=col, **_STYLE["exact"])
            if c0.samples > 1:
                ax.fill_between(curves["width"], curves["exact"][i], curves["union"][i], facecolor="none",
                                edgecolor=col, hatch="///", lw=0, alpha=0.5)
        elif not equal and prop == "forward":       # uneven widths: the exact value of each run as a marker
            ax.plot(x, d.p_exact, "x", color=col, ms=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom, 2.0)
    ax.set_xlim(ws.min() / 1.15, ws.max() * 1.15)
    ax.minorticks_off()
    ax.set_xticks(ws)
    ax.set_xticklabels([str(w) for w in ws])
    ax.grid(True, which="major", alpha=0.3)
    ratio = _PROP_RATIO[prop]
    _finish(ax, letter, f"{prop.capitalize()} failure vs width: {_group_title(key, vary)}",
            "hidden width m" + ("" if equal else " (narrowest; uneven widths)"), f"P({prop} failure)")
    h = [_header(f"eps on {deviation_words(form, ratio)}")]
    h += [Line2D([], [], color=ecols[i], lw=2.5, label=f"eps = {fmt_g(e, 4)}") for i, e in enumerate(eps)]
    h += _style_handles(runs, prop, c0.samples > 1, paper is not None, level)
    if marks:
        h.append(Line2D([], [], color="k", marker="_", ms=10, lw=0, label="paper's bound (where it applies)"))
    if not equal and prop == "forward":
        h.append(Line2D([], [], color="k", marker="x", ms=6, lw=0, label="exact, one input"))
    _legend(ax, h + _notes(runs, prop))


def _eps_grid_range(runs, form, prop):
    """An eps range over which the measured failure goes from ~1 to 0 for the runs."""
    grid = np.geomspace(0.01, 4.0, 120)
    lo, hi = [], []
    for run in runs:
        k = run.failure_counts(grid, form)[prop]
        T = run.completed
        full = np.nonzero(k >= 0.999 * T)[0]
        zero = np.nonzero(k == 0)[0]
        lo.append(grid[full[-1]] if full.size else grid[0])
        hi.append(grid[zero[0]] * 1.25 if zero.size else grid[-1])
    if not lo:
        return 0.02, 2.0
    a, b = min(lo), max(hi)
    return max(0.01, a * 0.8), min(4.0, max(b, a * 2))


def _eps_axes(ax, eps, a, b, bottom):
    """The axes of a failure panel against eps: the report's eps as thin lines, log y from bottom."""
    for e in eps:
        if a <= e <= b:
            ax.axvline(e, color="0.75", lw=0.7, zorder=0)
    ax.set_yscale("log")
    ax.set_ylim(bottom, 2.0)
    ax.set_xlim(a, b)
    ax.grid(True, alpha=0.3)


def _draw_failure_eps(fig, letter, ctx, prop, runs):
    """One width: failure probability of ``prop`` against eps, one colour per run, with the bound curves."""
    from matplotlib.lines import Line2D
    eps, form, level, colors, vary = ctx["eps"], ctx["form"], ctx["level"], ctx["colors"], ctx["vary"]
    ax = fig.add_subplot()
    a, b = _eps_grid_range(runs, form, prop)
    grid = np.linspace(a, b, 100)
    measured = []
    for run in runs:
        k = run.failure_counts(grid, form)[prop]
        lo, hi = clopper_pearson(k, run.completed, level)
        measured.append((run, k / run.completed, lo, hi))
    floor_vals = []
    for _, p, lo, hi in measured:
        floor_vals += list(p[p > 0]) + list(hi[p == 0][:1])
    bottom = _floor(floor_vals)
    handles, paper_drawn = [], False
    for run, p, lo, hi in measured:
        c = run.config
        col = colors[run.name]
        pos = p > 0
        ax.plot(grid[pos], p[pos], "-", color=col, lw=1.8)
        ax.fill_between(grid, np.maximum(lo, bottom), hi, where=_band_where(pos), color=col, alpha=0.18, lw=0)
        z = np.nonzero(~pos)[0]
        if z.size:
            ax.plot(grid[z], hi[z], ":", color=col, lw=0.9, alpha=0.8)
            ax.plot(grid[z][::8], hi[z][::8], "v", color=col, ms=6, mfc="none", mew=1.3)
        pd_ = paper_eps_curve(c, grid, form)
        if pd_ is not None:
            ax.plot(grid, pd_, color=col, **_STYLE["paper"])
            paper_drawn = True
        if prop == "forward":
            tc = eps_curves(c, a, b, form, floor=bottom)
            if tc:
                ax.plot(tc["eps"], tc["chernoff"], color=col, **_STYLE["chernoff"])
                ax.plot(tc["eps"], tc["exact"], color=col, **_STYLE["exact"])
                if c.samples > 1:
                    ax.fill_between(tc["eps"], tc["exact"], tc["union"], facecolor="none", edgecolor=col,
                                    hatch="///", lw=0, alpha=0.5)
        handles.append(Line2D([], [], color=col, lw=2.5, label=_run_label(run, vary | {"depth", "samples"})))
    _eps_axes(ax, eps, a, b, bottom)
    widths = sorted({widths_label(r.config.widths) for r in runs})
    _finish(ax, letter, f"{prop.capitalize()} failure vs eps (width {', '.join(widths)})",
            f"tolerance eps on {deviation_words(form, _PROP_RATIO[prop])}", f"P({prop} failure)")
    h = [_header("runs")] + handles + _style_handles(runs, prop, any(r.config.samples > 1 for r in runs),
                                                     paper_drawn, level)
    h.append(Line2D([], [], color="0.75", lw=0.7, label="the report's eps"))
    _legend(ax, h + _notes(runs, prop))


def _draw_sup(fig, letter, ctx, runs):
    """The forward property for every input of the sphere against eps, one colour per run: the
    band between the lower estimate (extremes found) and the upper one (certified bounds), and
    the random inputs' failure probability beside it."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    eps, form, colors, vary = ctx["eps"], ctx["form"], ctx["colors"], ctx["vary"]
    ax = fig.add_subplot()
    a, b = _eps_grid_range(runs, form, "sup_possible")
    a = min(a, _eps_grid_range(runs, form, "forward")[0])
    grid = np.linspace(a, b, 100)
    curves = []
    for run in runs:
        k = run.failure_counts(grid, form)
        T = run.completed
        curves.append((run, k["forward"] / T, k["sup"] / T, k["sup_possible"] / T))
    bottom = _floor([v for _, *ps, in curves for p in ps for v in p], default=1.0 / max(r.completed for r in runs))
    handles = []
    for run, rnd, lo, up in curves:
        col = colors[run.name]
        shown = lambda p: np.where(p > 0, p, np.nan)     # a curve ends where no trial fails
        ax.fill_between(grid, np.maximum(lo, bottom), up, where=up > 0, color=col, alpha=0.2, lw=0)
        ax.plot(grid, shown(lo), "-", color=col, lw=1.8)
        ax.plot(grid, shown(up), "-.", color=col, lw=1.4)
        ax.plot(grid, shown(rnd), ":", color=col, lw=1.4)
        c = run.config
        handles.append(Line2D([], [], color=col, lw=2.5,
                              label=f"{_run_label(run, vary | {'depth'})}, n_0 = {c.input_dim}"))
    _eps_axes(ax, eps, a, b, bottom)
    _finish(ax, letter, "Forward failure for every input of the sphere",
            f"tolerance eps on {deviation_words(form, _PROP_RATIO['forward'])}", "P(some input fails)")
    h = [_header("runs")] + handles + [
        _header("drawn"),
        Line2D([], [], color="k", lw=1.8, label="lower estimate: extremes found at actual inputs"),
        Line2D([], [], color="k", lw=1.4, ls="-.", label="upper estimate: certified bounds"),
        Patch(color="k", alpha=0.2, label="the probability for all inputs lies here"),
        Line2D([], [], color="k", lw=1.4, ls=":", label="the N random inputs only"),
        Line2D([], [], color="0.75", lw=0.7, label="the report's eps")]
    if any(not r.config.sup_certified for r in runs):
        h.append(_header("a file before format version 4: no certified bound (upper 1)"))
    _legend(ax, h)


# ---------------------------------------------------------------------------
# the mean-field view: rho_l against its infinite-width prediction, failure against depth

#: the per-layer quantiles of rho_l are read from at most this many trials (the first ones)
_QUANTILE_TRIALS = 1 << 20
_EPS_STYLES = ("-", "--", ":", "-.")


def layer_quantiles(run, q=(0.05, 0.5, 0.95)):
    """Per hidden layer, the quantiles ``q`` of rho_l over a run's networks: an array (len(q), L) or None.

    With one input per trial, of each trial's rho_l (the records' fwd_min); with N > 1, of each
    trial's mean over its inputs (fwd_mean: a file of format version 3; None for an older one).
    From the run's first _QUANTILE_TRIALS completed trials (dead networks count, rho = 0)."""
    from ..layout import StoreError
    field = "fwd_min" if run.config.samples == 1 else "fwd_mean"
    if run.completed == 0 or "forward" not in run.props:
        return None
    try:
        v = run.records((field,), 0, min(run.completed, _QUANTILE_TRIALS))[field]
    except StoreError:
        return None
    return np.quantile(v, q, axis=0)


def _meanfield_runs(results):
    """Runs drawn in the mean-field panels: those _hist_runs picks that the mean-field view describes."""
    from ..meanfield import predict_run
    return [r for r in _hist_runs(results) if predict_run(r.config) is not None]


def _draw_meanfield(fig, letter, ctx, runs):
    """Per layer, each run's median rho_l over its networks with a 5-95% band, beside the mean-field
    prediction (dashed, the run's colour); log y."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from ..meanfield import predict_run
    colors, vary = ctx["colors"], ctx["vary"]
    ax = fig.add_subplot()
    handles, vals, notes = [], [], []
    for run in runs:
        col = colors[run.name]
        L = run.config.depth
        x = np.arange(L + 1)
        pred = np.concatenate(([1.0], predict_run(run.config).rho))
        ax.plot(x, pred, "--", color=col, lw=1.3)
        vals += list(pred[pred > 0])
        qs = layer_quantiles(run)
        if qs is None:
            notes.append(f"{run.name}: no per-network values of rho_l (written before format version 3)")
        else:
            lo, med, hi = (np.concatenate(([1.0], row)) for row in qs)
            floor = np.where(lo > 0, lo, np.nan)
            ax.fill_between(x, np.where(np.isfinite(floor), floor, med * 1e-3), hi, color=col, alpha=0.15, lw=0)
            ax.plot(x, np.where(med > 0, med, np.nan), "-o", color=col, ms=3, lw=1.4)
            vals += list(med[med > 0]) + list(hi[hi > 0]) + list(lo[lo > 0])
        handles.append(Line2D([], [], color=col, marker="o", ms=3, lw=1.4, label=_run_label(run, vary)))
    vals = [v for v in vals if np.isfinite(v)]
    lo, hi = (min(vals) / 1.5, max(vals) * 1.5) if vals else (0.1, 10.0)
    lo, hi = min(lo, 0.5), max(hi, 2.0)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    _log_ticks(ax.yaxis, lo, hi)
    ax.axhline(1.0, color="grey", lw=0.6, zorder=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, which="major", alpha=0.3)
    _finish(ax, letter, "Mean-field prediction and the networks' spread", "layer l (0 = input)",
            r"$\rho_l = \|h^l\|^2 / \|x\|^2$")
    many = any(r.config.samples > 1 for r in runs)
    extra = [_header("drawn"),
             Line2D([], [], color="k", marker="o", ms=3, lw=1.4, label="median over networks"
                    + (" (N > 1: of each network's mean over its inputs)" if many else "")),
             Patch(color="k", alpha=0.15, label="5% to 95% of networks"),
             Line2D([], [], color="k", ls="--", lw=1.3, label="mean-field prediction (infinite width)")]
    left = [r.name for r in ctx["results"].runs if r.completed > 0 and r not in runs]
    if left:
        extra.append(_header(f"not drawn: {', '.join(left[:4])}{', ...' if len(left) > 4 else ''}"))
    _legend(ax, [_header("runs")] + handles + extra + [_header(n) for n in notes])


def _draw_depth(fig, letter, ctx, runs):
    """Each run's forward failure probability of its first l layers (a network of depth l fails) against l,
    one line style per eps; log y, runs without a failure marked at their upper limit."""
    from matplotlib.lines import Line2D
    eps, form, level, colors, vary = ctx["eps"], ctx["form"], ctx["level"], ctx["colors"], ctx["vary"]
    eps = list(eps)[:len(_EPS_STYLES)]
    ax = fig.add_subplot()
    handles, vals = [], []
    for run in runs:
        col = colors[run.name]
        T = run.completed
        k = run.layer_failure_counts(eps, "forward", form, cumulative=True)       # (L, len(eps))
        x = np.arange(1, run.config.depth + 1)
        for i, e in enumerate(eps):
            p = k[:, i] / T
            _, up = clopper_pearson(k[:, i], T, level)
            ax.plot(x, np.where(p > 0, p, np.nan), ls=_EPS_STYLES[i], marker="o", ms=3, color=col, lw=1.3)
            zero = p == 0
            if zero.any():
                ax.plot(x[zero], up[zero], "v", ms=5, mfc="none", color=col, lw=0)
            vals += list(p[p > 0]) + list(up[zero])
        handles.append(Line2D([], [], color=col, lw=1.4, label=_run_label(run, vary)))
    lo = _floor(vals)
    ax.set_yscale("log")
    ax.set_ylim(lo, 1.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, which="major", alpha=0.3)
    _finish(ax, letter, "Forward failure vs depth", "depth l (the network's first l layers)",
            f"P(some layer <= l fails), {form} form")
    styles = [Line2D([], [], color="k", ls=_EPS_STYLES[i], marker="o", ms=3, lw=1.3, label=f"eps = {fmt_g(e, 3)}")
              for i, e in enumerate(eps)]
    extra = [_header("drawn"), Line2D([], [], color="k", marker="v", ms=5, lw=0, mfc="none",
                                      label=f"none failed: {level * 100:.4g}% upper limit")]
    _legend(ax, [_header("runs")] + handles + [_header("tolerance")] + styles + extra)


# ---------------------------------------------------------------------------
# the figure

def _panel_specs(results):
    """(the runs that computed the forward property, the panels in their order): each panel a
    tuple (kind, prop, group key, runs), kind one of layers, hist, width, eps, meanfield (the
    mean-field prediction beside the networks' spread, where mcinit.meanfield describes some run),
    sup (the runs with the supremum search: the two-sided failure for every input against eps),
    depth (the forward failure probability against depth, runs of depth > 1).  ValueError when
    there is nothing to draw."""
    results = results.with_property("forward")      # the ratio panels are of the forward property
    if not results.runs:
        raise ValueError(f"{results.path}: the figures show the forward property, which no run computed "
                         "(--properties backward)")
    runs = [r for r in results.runs if r.completed > 0]
    if not runs:
        raise ValueError(f"{results.path}: no run has a completed trial; nothing to plot")
    specs = [("layers", None, None, runs), ("hist", None, None, runs)]
    by_width = len({(min(r.config.widths), max(r.config.widths)) for r in runs}) > 1
    for prop in ("forward", "backward"):
        some = [r for r in runs if prop in r.props]
        if not some:
            continue
        if by_width:
            groups = {}
            for r in some:
                groups.setdefault(_group_key(r.config), []).append(r)
            specs += [("width", prop, key, rs) for key, rs in groups.items()]
        else:
            specs.append(("eps", prop, None, some))
    sup_runs = [r for r in runs if r.config.sup]
    if sup_runs:
        specs.append(("sup", "sup", None, sup_runs))
    mf_runs = _meanfield_runs(results)
    if mf_runs:
        specs.append(("meanfield", None, None, mf_runs))
    deep = [r for r in _hist_runs(results) if r.config.depth > 1]
    if deep:
        specs.append(("depth", "forward", None, deep))
    return results, specs


def panel_count(results):
    """How many panels the report's figure of ``results`` has (files with panels='separate')."""
    return len(_panel_specs(results)[1])


def draw_figures(results, eps=None, form="norm", level=0.95, panels="together", numbers=None):
    """The report's figures as matplotlib Figures (Agg canvases; pyplot and its global state are
    not used): one holding every panel (panels='together'), or one per panel ('separate')."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    if panels not in PANEL_MODES:
        raise ValueError(f"panels must be one of {', '.join(PANEL_MODES)}, got {panels!r}")
    from .text import report_numbers
    form_words(form)
    results, specs = _panel_specs(results)
    if numbers is None:
        numbers = report_numbers(results, eps, form, level)
    ctx = dict(results=results, colors=_run_colors(results.runs), vary=_varying(results.runs),
               eps=list(numbers["eps"]), form=form, level=level, numbers=numbers)
    draws = {"layers": lambda f, l, s: _draw_layers(f, l, ctx),
             "hist": lambda f, l, s: _draw_hist(f, l, ctx),
             "width": lambda f, l, s: _draw_failure_width(f, l, ctx, s[1], s[2], s[3]),
             "eps": lambda f, l, s: _draw_failure_eps(f, l, ctx, s[1], s[3]),
             "meanfield": lambda f, l, s: _draw_meanfield(f, l, ctx, s[3]),
             "depth": lambda f, l, s: _draw_depth(f, l, ctx, s[3]),
             "sup": lambda f, l, s: _draw_sup(f, l, ctx, s[3])}
    if panels == "separate":
        figs = []
        for i, spec in enumerate(specs):
            fig = Figure(figsize=_PANEL_SIZE, layout="constrained")
            FigureCanvasAgg(fig)
            draws[spec[0]](fig, _letter(i), spec)
            figs.append(fig)
        return figs
    ncols = 1 if len(specs) == 1 else 2
    nrows = math.ceil(len(specs) / ncols)
    fig = Figure(figsize=(_PANEL_SIZE[0] * ncols, _PANEL_SIZE[1] * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    subs = fig.subfigures(nrows, ncols, squeeze=False)
    for i, spec in enumerate(specs):          # left to right, top to bottom
        draws[spec[0]](subs[i // ncols, i % ncols], _letter(i), spec)
    n = len([r for r in results.runs if r.completed > 0])
    fig.suptitle(f"{os.path.basename(str(results.path))}: {n} run{'s' if n != 1 else ''}, "
                 f"deviations in the {form} form", fontsize=_FONT["title"])
    return [fig]


def save_figure(fig, path, fmt=None):
    """Write one figure in the format of ``path``'s extension (or ``fmt``): PDF and SVG stay
    vector, PNG at PNG_DPI."""
    fmt = fmt or figure_format(path)
    fig.savefig(path, format=fmt, dpi=PNG_DPI)


def plot_report(results, path, eps=None, form="norm", level=0.95, panels="together", numbers=None):
    """Write the report's figures; returns the list of files written.

    path     NAME.pdf, NAME.svg or NAME.png (the format follows the extension; PNG at PNG_DPI)
    panels   'together': every panel in ``path``; 'separate': one file per panel,
             NAME-a.EXT, NAME-b.EXT, ... (panel_paths), each panel with its letter
    eps, form, level  as in report_text; numbers: report_numbers' result for these arguments
             (computed when None)
    The panels: (a) the mean norm ratio rho_l per layer per run, +/- sd band, the
    exact mean dashed; (b) the distribution of rho_L over its exact density (one input,
    Gaussian weights), over the range of the data; then the forward failure probability with
    its exact intervals and the bound curves (paper, Chernoff, exact; never for residual
    networks) against the width (one panel per group of runs) or eps (one width), then the
    backward one where runs computed it.  Only runs that computed the forward property are
    drawn (none: a ValueError)."""
    fmt = figure_format(path)
    figs = draw_figures(results, eps, form, level, panels, numbers)
    paths = [str(path)] if panels == "together" else panel_paths(path, len(figs))
    for fig, p in zip(figs, paths):
        save_figure(fig, p, fmt)
    return paths
