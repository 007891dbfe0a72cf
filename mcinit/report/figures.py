"""The report's figure: per-layer ratios, failure probabilities against width or eps, the last layer's histogram."""

import math

import numpy as np

from ..stats import FORM_FORMULAS, HIST_BINS, Summary, clopper_pearson
from .common import (GAUSSIAN_INITS, PAPER_INITS, PAPER_PROVENANCE, default_eps, fmt_g, form_words, init_label,
                     widths_label)
from .curves import exact_log_density, exact_ratio_density, theory_curves

# ---------------------------------------------------------------------------
# the figure and its panels

_INIT_CMAPS = {"he": "Blues", "glorot": "Oranges", "lecun": "Greens", "he-in": "Purples",
               "wn": "Reds", "wn-unit": "Greys"}


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


def _run_label(run, vary):
    c = run.config
    parts = [init_label(c), f"m={widths_label(c.widths)}"]
    if "depth" in vary:
        parts.append(f"L={c.depth}")
    if "samples" in vary:
        parts.append(f"N={c.samples}")
    if "input_dim" in vary:
        parts.append(f"n0={c.input_dim}")
    return " ".join(parts)


def _varying(runs):
    keys = ("depth", "samples", "input_dim", "init", "dist")
    return {k for k in keys if len({getattr(r.config, k) for r in runs}) > 1}


def _panel_layers(ax, results, colors, vary):
    """(a) per-layer mean of rho with a +/- sd band, the exact mean dashed; log y."""
    lt = results.layers()
    lows, highs = [], []
    inits = list(dict.fromkeys(r.config.init for r in results.runs))
    for run in sorted(results.runs, key=lambda r: (inits.index(r.config.init), min(r.config.widths),
                                                   r.config.depth, r.config.samples)):
        if run.completed == 0:
            continue
        d = lt[lt.run == run.name]
        x = np.concatenate(([0], d.layer.to_numpy()))
        m = np.concatenate(([1.0], d.rho_mean.to_numpy()))
        sd = np.concatenate(([0.0], d.rho_sd.to_numpy()))
        ex = np.concatenate(([1.0], d.exact_rho_mean.to_numpy()))
        col = colors[run.name]
        ax.plot(x, m, "-o", color=col, ms=3, lw=1.6, label=_run_label(run, vary))
        lo = np.where(m - sd > 0, m - sd, np.nan)
        ax.fill_between(x, np.where(np.isfinite(lo), lo, m * 1e-3), m + sd, color=col, alpha=0.13, lw=0)
        ax.plot(x, ex, "--", color="k", lw=0.9, alpha=0.7)
        lows.append(np.nanmin(np.concatenate((m[m > 0], ex[ex > 0]))))
        highs.append(np.nanmax(m + sd))
    ax.set_yscale("log")
    if lows:
        lo, hi = min(lows), max(highs)
        ax.set_ylim(lo / 3.0, max(hi * 1.5, 2.0))
    ax.axhline(1.0, color="grey", lw=0.6, zorder=0)
    _plain_log_ticks(ax)
    ax.set_xlabel("layer l (0 = input)")
    ax.set_ylabel(r"forward ratio $\rho_l=\|h^l\|^2/\|x\|^2$ (squared)")
    ax.set_title(r"(a) mean of $\rho_l$ per layer, band = mean $\pm$ sd" "\n"
                 "dashed black: exact mean (one-input law)", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7.5, ncol=2 if len(results.runs) > 6 else 1, loc="lower left", framealpha=0.85)
    ax.grid(True, which="major", alpha=0.3)


def _plain_log_ticks(ax):
    """Tick labels 0.5, 1, 2 instead of 5x10^-1 on a log y axis; minor labels only within about a decade."""
    from matplotlib import ticker
    lo, hi = ax.get_ylim()
    fmt = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    if hi / lo < 12:
        ax.yaxis.set_minor_formatter(fmt)
    else:
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _group_key(c):
    return (c.init, c.dist, c.depth, c.samples, c.input_dim)


def _group_title(key, vary):
    init, dist, depth, samples, n0 = key
    t = f"{init}" + ("" if dist == "normal" or init.startswith("wn") else f"/{dist}") + f", L={depth}, N={samples}"
    if "input_dim" in vary:
        t += f", n0={n0}"
    return t


_STYLE = {"paper": dict(ls="-.", lw=1.3), "chernoff": dict(ls=":", lw=1.6), "exact": dict(ls="--", lw=1.3)}


def _floor(values, default=1e-6):
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if not v.size:
        return default
    return max(1e-14, 10.0 ** (math.floor(math.log10(v.min())) - 1))


def _style_legend(ax, runs, fontsize=7.5, loc="best"):
    """The legend of the line styles of (b), listing only the curves some run has."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    samples_gt1 = any(r.config.samples > 1 for r in runs)
    gaussian = any(r.config.dist == "normal" and r.config.init in GAUSSIAN_INITS for r in runs)
    paper = any(r.config.init in PAPER_INITS for r in runs)
    h = [Line2D([], [], color="k", marker="o", ms=4, lw=1.2, label="measured p_hat"),
         Patch(color="k", alpha=0.15, label="95% Clopper-Pearson band"),
         Line2D([], [], color="k", marker="v", ms=6, lw=0, mfc="none", label="p_hat = 0: upper limit")]
    if gaussian:
        h.append(Line2D([], [], color="k", **_STYLE["exact"], label="exact, one input" if samples_gt1 else "exact"))
        if samples_gt1:
            h.append(Patch(facecolor="none", edgecolor="k", hatch="///", label="exact range [P1, N*P1]"))
        h.append(Line2D([], [], color="k", **_STYLE["chernoff"], label="Chernoff bound (rigorous)"))
    if paper:
        h.append(Line2D([], [], color="k", **_STYLE["paper"], label="paper bound (authors' code)"))
    return ax.legend(handles=h, fontsize=fontsize, loc=loc, framealpha=0.85)


def _panel_failure_width(axes, results, groups, eps, form, vary):
    """(b) forward failure probability against width, one axes per group, one colour per eps."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    ecols = colormaps["viridis"](np.linspace(0.0, 0.85, len(eps)))
    full = results.failure(eps, prop="forward", form=form)
    for ax, (key, runs) in zip(axes, groups.items()):
        df = full[full.run.isin([r.name for r in runs])]
        c0 = runs[0].config
        equal = all(len(set(r.config.widths)) == 1 for r in runs)
        ws = np.array(sorted({min(r.config.widths) for r in runs}))
        wgrid = np.unique(np.round(np.geomspace(ws.min() / 1.3, ws.max() * 1.3, 24)).astype(int))
        wgrid = wgrid[wgrid >= 1]
        p_all = df.p_hat.to_numpy(float)
        bottom = _floor(list(p_all[p_all > 0]) + list(df.ci_high[p_all == 0]))
        curves = theory_curves(c0, eps, form, widths=wgrid) if equal and len(ws) > 0 else None
        for i, e in enumerate(eps):
            d = df[np.isclose(df.eps, e)].sort_values("width")
            x, p, lo, hi = (d[k].to_numpy(float) for k in ("width", "p_hat", "ci_low", "ci_high"))
            col = ecols[i]
            pos = p > 0
            if pos.any():
                ax.plot(x[pos], p[pos], "-o", color=col, ms=4, lw=1.4)
            ax.plot(x[~pos], hi[~pos], "v", color=col, ms=7, mfc="none", mew=1.4)
            ax.fill_between(x, np.maximum(lo, bottom), hi, where=_band_where(pos), color=col, alpha=0.15, lw=0)
            if curves is not None:
                tc = {k: (v if k == "paper_x" else v[i]) for k, v in curves.items()}
                if "paper" in tc:
                    ax.plot(tc["paper_x"], tc["paper"], color=col, **_STYLE["paper"])
                if "chernoff" in tc:
                    ax.plot(wgrid, tc["chernoff"], color=col, **_STYLE["chernoff"])
                if "exact" in tc:
                    ax.plot(wgrid, tc["exact"], color=col, **_STYLE["exact"])
                    if c0.samples > 1:
                        ax.fill_between(wgrid, tc["exact"], tc["union"], facecolor="none", edgecolor=col,
                                        hatch="///", lw=0, alpha=0.5)
            else:           # uneven widths: the bounds of each run at its narrowest width
                ax.plot(x, d.paper_delta, "_", color=col, ms=12, mew=1.5)
                ax.plot(x, d.p_exact, "x", color=col, ms=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom, 2.0)
        ax.set_xlim(wgrid.min(), wgrid.max())
        ax.minorticks_off()
        ax.set_xticks(ws)
        ax.set_xticklabels([str(w) for w in ws])
        xl = ("hidden width m (equal widths)" if equal else
              "narrowest hidden width (uneven widths: bounds as markers, _ paper, x exact)")
        ax.set_xlabel(xl)
        ax.set_ylabel(f"P(forward failure), {form} form")
        ax.set_title(f"(b) forward failure vs width: {_group_title(key, vary)}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        if c0.init not in PAPER_INITS:
            ax.text(0.98, 0.02, f"no paper bound for {c0.init}\n(derived for He)", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7.5, color="0.35")
        eh = [Line2D([], [], color=ecols[i], lw=2.5, label=f"eps = {fmt_g(e, 4)}") for i, e in enumerate(eps)]
        leg = ax.legend(handles=eh, fontsize=7.5, loc="upper right", framealpha=0.85, title=f"{form} form",
                        title_fontsize=7.5)
        ax.add_artist(leg)
    _style_legend(axes[-1], [r for rs in groups.values() for r in rs])


def _band_where(pos):
    """Where to fill the interval band: segments touching a point with p_hat > 0 (zeros get markers)."""
    pos = np.asarray(pos, bool)
    return pos | np.concatenate(([False], pos[:-1]))


def _eps_grid_range(results, form):
    """An eps range over which the measured forward failure goes from ~1 to 0 for the runs."""
    grid = np.geomspace(0.01, 4.0, 120)
    lo, hi = [], []
    for run in results.runs:
        if run.completed == 0:
            continue
        k = run.failure_counts(grid, form)["forward"]
        T = run.completed
        full = np.nonzero(k >= 0.999 * T)[0]
        zero = np.nonzero(k == 0)[0]
        lo.append(grid[full[-1]] if full.size else grid[0])
        hi.append(grid[zero[0]] * 1.25 if zero.size else grid[-1])
    if not lo:
        return 0.02, 2.0
    a, b = min(lo), max(hi)
    return max(0.01, a * 0.8), min(4.0, max(b, a * 2))


def _panel_failure_eps(ax, results, eps, form, colors, vary):
    """(b) single width: forward failure probability against eps, one colour per run."""
    from matplotlib.lines import Line2D
    a, b = _eps_grid_range(results, form)
    grid = np.linspace(a, b, 100)
    tgrid = np.linspace(a, b, 40)
    measured = []
    for run in results.runs:
        T = run.completed
        if T == 0:
            continue
        k = run.failure_counts(grid, form)["forward"]
        lo, hi = clopper_pearson(k, T)
        measured.append((run, k / T, lo, hi))
    floor_vals = []
    for _, p, lo, hi in measured:
        floor_vals += list(p[p > 0]) + list(hi[p == 0][:1])
    bottom = _floor(floor_vals)
    handles = []
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
        tc = theory_curves(c, tgrid, form)
        for name in ("paper", "chernoff", "exact"):
            if name in tc:
                ax.plot(tgrid, tc[name], color=col, **_STYLE[name])
        if c.samples > 1 and "exact" in tc:
            ax.fill_between(tgrid, tc["exact"], tc["union"], facecolor="none", edgecolor=col, hatch="///",
                            lw=0, alpha=0.5)
        handles.append(Line2D([], [], color=col, lw=2.5, label=_run_label(run, vary | {"depth", "samples"})))
    for e in eps:
        if a <= e <= b:
            ax.axvline(e, color="0.75", lw=0.7, zorder=0)
    ax.set_yscale("log")
    ax.set_ylim(bottom, 2.0)
    ax.set_xlim(a, b)
    ax.set_xlabel(f"eps ({form} form: " + FORM_FORMULAS[form].replace("ratio", "rho")
                  + "); grey verticals: the report's eps")
    ax.set_ylabel(f"P(forward failure), {form} form")
    widths = {widths_label(r.config.widths) for r in results.runs}
    what = "width m" if all(len(set(r.config.widths)) == 1 for r in results.runs) else "hidden widths"
    ax.set_title(f"(b) forward failure vs eps (one {what} for all runs: {', '.join(sorted(widths))})",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    leg = ax.legend(handles=handles, fontsize=7.5, loc="upper right", framealpha=0.85)
    ax.add_artist(leg)
    _style_legend(ax, [r for r in results.runs if r.completed > 0], loc="lower left")


def _hist_runs(results, limit=4):
    """Runs whose last-layer histogram is drawn: per group the narrowest and the widest, at most `limit`."""
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


def _panel_hist(ax, results, colors, vary):
    """(c) last-layer forward-ratio histogram (density) over the exact density of rho_L."""
    runs = _hist_runs(results)
    if not runs:
        ax.text(0.5, 0.5, "no completed trials", ha="center", transform=ax.transAxes)
        return
    summaries = {r.name: r.summary() for r in runs}
    # ratio space when the drawn runs fit in [0, 4] and are resolved by its bins, else log space
    space = 0
    for r in runs:
        s = summaries[r.name]
        L = r.config.depth - 1
        n = s.count[0, 0, L]
        h = s.hist[0, 0, L]
        sd = math.sqrt(s.variance()[0, 0, L]) if n > 1 else 0.0
        if n == 0 or (h[0] + h[-1]) > 0.002 * n or sd < 10 * (4.0 / HIST_BINS) or s.mean[0, 0, L] < 0.2:
            space = 1
    edges = Summary.edges(space)
    bw = edges[1] - edges[0]
    notes, lo_x, hi_x = [], [], []
    exact_missing = []
    dead_masses = []
    ymax = 0.0
    for r in runs:
        c = r.config
        s = summaries[r.name]
        L = c.depth - 1
        total = s.count[0, 0, L]                # all (trial, input) pairs, dead ones included
        h = s.hist[0, space, L].astype(float)
        dens = h[1:-1] / (total * bw)
        col = colors[r.name]
        outside = (h[0] + h[-1]) / total
        label = _run_label(r, vary) + (f" ({outside:.1%} outside the histogram range)" if outside >= 0.001 else "")
        ax.stairs(dens, edges, color=col, lw=1.1, alpha=0.9, label=label)
        ymax = max(ymax, dens.max())
        cum = np.cumsum(h[1:-1]) / max(1.0, h[1:-1].sum())
        nz = np.nonzero(h[1:-1])[0]
        if nz.size:
            lo_x.append(edges[max(0, int(np.searchsorted(cum, 1e-4)))])
            hi_x.append(edges[min(HIST_BINS, int(np.searchsorted(cum, 1 - 1e-4)) + 1)])
        if c.dist == "normal" and c.init in GAUSSIAN_INITS:
            y, f, p_dead = exact_log_density(c.widths, c.input_dim, c.init)
            dead_masses.append(p_dead)
            if space == 0:
                xs = np.linspace(edges[0] + bw / 2, edges[-1], 2000)
                ax.plot(xs, exact_ratio_density(xs, y, f), "--", color="k", lw=1.3)
            else:
                xs = np.linspace(edges[0], edges[-1], 2000)
                ax.plot(xs, np.interp(xs, y, f, left=0.0, right=0.0), "--", color="k", lw=1.3)
            if c.samples > 1:
                notes.append(f"{r.name}: N={c.samples}, exact = per-input marginal law")
        else:
            exact_missing.append(init_label(c))
    if lo_x:
        a, b = min(lo_x), max(hi_x)
        pad = 0.08 * (b - a)
        ax.set_xlim(max(edges[0], a - pad), min(edges[-1], b + pad))
    ax.set_ylim(0, ymax * 1.15 if ymax > 0 else 1)
    if space == 0:
        ax.set_xlabel(r"last-layer forward ratio $\rho_L$ (squared), histogram edges [0, 4], bin 0.01")
        ax.set_ylabel(r"density of $\rho_L$")
    else:
        ax.set_xlabel(r"$\ln \rho_L$ (last layer), histogram edges [-4, 4], bin 0.02")
        ax.set_ylabel(r"density of $\ln \rho_L$")
    if dead_masses:
        title = "(c) last layer: histogram (Summary, density) vs exact density (dashed)"
    else:
        title = "(c) last layer: histogram (Summary, density)"
    sub = []
    if dead_masses:
        pd_ = max(dead_masses)
        pd_text = f"P <= {pd_:.1g}" if pd_ > 0 else "P < 1e-300"
        sub.append(f"exact: one input, Gaussian weights; atom at rho=0 (dead, {pd_text}) not drawn")
    if exact_missing:
        sub.append("no exact density for " + ", ".join(sorted(set(exact_missing)))
                   + " (Gaussian weights only): histogram alone")
    ax.set_title(title + "\n" + "\n".join(sub), fontsize=9)
    ax.legend(fontsize=7.5, loc="upper right", framealpha=0.85)
    if notes:
        ax.text(0.02, 0.98, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=7, color="0.3")
    ax.grid(True, alpha=0.3)


def plot_report(results, path, eps=None, form="norm"):
    """Write the report figure (PNG, matplotlib's Agg canvas; pyplot and its global state are not used).

    (a) per-layer mean of the forward ratio rho_l per run, +/- sd band, exact mean dashed, log y;
    (b) forward failure probability with Clopper-Pearson bands and the bound curves (paper,
        Chernoff, exact) against width (one axes per init/depth/N group; equal-width runs get
        curves on a fine width grid), or against eps when the file has a single width;
    (c) the last layer's forward-ratio histogram from the Summary (density) over the exact
        density of rho_L (one input, Gaussian weights; the dead atom at 0 is not drawn).
    eps, form as in report_text.  Only the runs that computed the forward property are drawn
    (none: a ValueError).  Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    form_words(form)
    eps = default_eps(results, form) if eps is None else [float(e) for e in np.atleast_1d(eps)]
    results = results.with_property("forward")      # the figures are of the forward property
    if not results.runs:
        raise ValueError(f"{results.path}: the figures show the forward property, which no run computed "
                         "(--properties backward)")
    runs = [r for r in results.runs if r.completed > 0]
    if not runs:
        raise ValueError(f"{results.path}: no run has a completed trial; nothing to plot")
    colors = _run_colors(results.runs)
    vary = _varying(results.runs)
    by_width = len({(min(r.config.widths), max(r.config.widths)) for r in runs}) > 1
    groups = {}
    for r in runs:
        groups.setdefault(_group_key(r.config), []).append(r)
    nb = len(groups) if by_width else 1
    ncols = max(2, min(nb, 3))
    nrows_b = math.ceil(nb / ncols)
    fig = Figure(figsize=(6.2 * ncols, 5.4 * (1 + nrows_b)), dpi=110)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1 + nrows_b, 2 * ncols)
    half = ncols                                   # top row: (a) and (c) share the width
    ax_a = fig.add_subplot(gs[0, :half])
    ax_c = fig.add_subplot(gs[0, half:])
    _panel_layers(ax_a, results, colors, vary)
    _panel_hist(ax_c, results, colors, vary)
    if by_width:
        if nb == 1:
            axes = [fig.add_subplot(gs[1, :])]
        else:
            axes = [fig.add_subplot(gs[1 + i // ncols, 2 * (i % ncols):2 * (i % ncols) + 2]) for i in range(nb)]
        _panel_failure_width(axes, results, groups, eps, form, vary)
    else:
        ax_b = fig.add_subplot(gs[1, :])
        _panel_failure_eps(ax_b, results, eps, form, colors, vary)
    fig.suptitle(f"mcinit report: {results.path}  ({len(runs)} run{'s' if len(runs) != 1 else ''}; "
                 f"deviations in the {form} form)\npaper bound = {PAPER_PROVENANCE}", fontsize=9.5)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    fig.savefig(path, format="png")
    return path
