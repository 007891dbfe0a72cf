"""The paper's experiments, one command each (``mcinit paper FIGURE``; docs/paper.md).

Arpit & Bengio (arXiv:1901.03611) show, per layer, statistics over the N inputs of ONE
randomly drawn network: the mean and the standard deviation of the norm ratios
sqrt(rho_l) = ||h^l|| / ||x|| and sqrt(gamma_l) = ||dloss/dW_l|| / (||x|| ||delta^L||).
Every figure here draws that quantity for one network (trial 0 of the run) and, beside it,
what many networks say (the 5-95% band of the per-network means over the run's T trials)
and, where mcinit.theory has it, the exact one-input law (its 5-95% quantiles): from
mcinit.theory for plain networks of Gaussian weights, and for residual networks of Gaussian
weights (a skip per block) a Monte Carlo of the exact law by the law kernel.

FIGURES names the experiments; SIZES is the one table of their sizes (the paper's and
``--quick``).  ``make(figure, outdir, quick=..., fmt=...)`` runs one experiment into a
sweep file ``<outdir>/<figure>.h5`` and draws ``<outdir>/<figure>.<fmt>``; it returns a
``Figure`` whose ``lines()`` are the printed table and ``document()`` the JSON document.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .config import ConfigError

__all__ = ["FIGURES", "FORMATS", "SIZES", "settings", "outputs", "make", "check_outputs", "check_computable",
           "one_network", "network_stats", "exact_norm_quantiles", "residual_law_draws", "residual_law_quantiles",
           "true_eps", "k_n", "Figure"]

FIGURES = ("fig1-2", "fig3-4", "fig6", "fig7", "kn")
FORMATS = ("png", "pdf", "svg")
#: the quantiles of the many-network bands and the exact law
BAND = (0.05, 0.5, 0.95)
#: fig6's failure probability delta (the paper's)
DELTA = 0.05
#: draws of the exact one-input law of a residual network's output ratio (fig7's exact band):
#: the law kernel's trials per configuration at the paper's sizes and ``--quick``, and how many
#: it draws at a time (memory: L floats each)
LAW_DRAWS = {"paper": 200_000, "quick": 50_000}
LAW_CHUNK = 20_000

#: Every experiment's sizes, as the paper's code runs it ("paper") and small enough for a
#: laptop in under a minute ("quick"): samples N = inputs of each network, networks T =
#: trials (networks) whose per-network statistics make the bands; widths/blocks as named.
SIZES = {
    "fig1-2": {"paper": dict(input_dim=500, width=100, depth=10, samples=2000, networks=200),
               "quick": dict(input_dim=500, width=100, depth=10, samples=200, networks=60)},
    "fig3-4": {"paper": dict(input_dim=500, width=2000, depth=10, samples=2000, networks=20),
               "quick": dict(input_dim=500, width=200, depth=10, samples=200, networks=30)},
    "fig6": {"paper": dict(input_dim=500, widths=(500, 1000, 2000, 4000), depth=10, samples=2000, networks=40),
             "quick": dict(input_dim=500, widths=(100, 400, 1600, 3200), depth=10, samples=100, networks=40)},
    "fig7": {"paper": dict(input_dim=300, blocks=(3, 5, 10, 20, 100), width=100, widths=(100, 300, 500, 1000),
                           at_blocks=10, samples=2000, networks=20),
             "quick": dict(input_dim=300, blocks=(2, 5, 10), width=50, widths=(25, 50, 100), at_blocks=5,
                           samples=100, networks=20)},
    "kn": {"paper": dict(n=199), "quick": dict(n=199)},
}

#: fig7's rows: (init, branch scale, words).  The paper's weight-normalised script pairs the
#: gain with the 1/B scale ("scaled") and gain 1 with scale 1 ("traditional").
FIG7_ROWS = (("he", "1", "He, s = 1"), ("he", "1/B", "He, s = 1/B"),
             ("wn-unit", "1", "WN gain 1, s = 1"), ("wn", "1/B", "WN gain, s = 1/B"))
FIG7_ARCHS = (("single-skip", "one skip around the chain (the paper's)"),
              ("residual", "a skip in every block (ResNet)"))


@dataclass(frozen=True)
class Setting:
    """One configuration of an experiment: its run name in the results file, the words of
    its label, and the keywords of mcinit.config.build."""
    name: str
    label: str
    options: dict = field(hash=False)


def settings(figure, quick=False, seed=0):
    """The Settings of an experiment at its paper (or quick) sizes; [] for kn (no run)."""
    _check_figure(figure)
    s = SIZES[figure]["quick" if quick else "paper"]
    common = dict(samples=s.get("samples"), trials=s.get("networks"), seed=seed)
    if figure == "fig1-2":
        net = dict(input_dim=s["input_dim"], width=s["width"], depth=s["depth"], **common)
        return [Setting("he", "He: N(0, 2/m)", dict(net, init="he")),
                Setting("paper-glorot", "the paper's glorot: N(0, 1/m)", dict(net, init="paper-glorot"))]
    if figure == "fig3-4":
        net = dict(input_dim=s["input_dim"], width=s["width"], depth=s["depth"], wn_grad="direction", **common)
        return [Setting("wn", "WN rows, gain sqrt(2 n_in/n_out) (scaled)", dict(net, init="wn")),
                Setting("wn-unit", "WN rows, gain 1", dict(net, init="wn-unit"))]
    if figure == "fig6":
        return [Setting(f"m{m}", f"m = {m}", dict(input_dim=s["input_dim"], width=m, depth=s["depth"], init="he",
                                                  properties="forward", **common))
                for m in s["widths"]]
    if figure == "fig7":
        grid = [(B, s["width"]) for B in s["blocks"]]
        grid += [(s["at_blocks"], m) for m in s["widths"] if (s["at_blocks"], m) not in grid]
        out = []
        for arch, _ in FIG7_ARCHS:
            for init, scale, words in FIG7_ROWS:
                for B, m in grid:
                    out.append(Setting(f"{arch}-{init}-s{scale.replace('/', '')}-B{B}-m{m}", words,
                                       dict(input_dim=s["input_dim"], width=m, blocks=B, arch=arch, init=init,
                                            branch_scale=scale, properties="forward", **common)))
        return out
    return []


def _check_figure(figure):
    if figure not in FIGURES:
        raise ConfigError(f"unknown figure {figure!r}: one of {', '.join(FIGURES)}, or all")


def outputs(figure, outdir, fmt="png"):
    """The files an experiment writes: its results file (none for kn) and its figure."""
    _check_figure(figure)
    if fmt not in FORMATS:
        raise ConfigError(f"figure format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    files = [] if figure == "kn" else [os.path.join(outdir, f"{figure}.h5")]
    return files + [os.path.join(outdir, f"{figure}.{fmt}")]


# ---------------------------------------------------------------------------
# the numbers


def one_network(cfg, data=None, trial=0):
    """The per-input ratios of one network (trial ``trial`` of ``cfg``, kernel resolved),
    computed by the run's kernel: (rho, gamma), each (N, L), squared ratios as everywhere in
    mcinit (gamma None for a forward-only configuration).  The same numbers as the run's
    records of that trial."""
    from . import kernels
    from .kernels.common import make_plan
    plan = make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    fwd, bwd = np.zeros((1, N, L)), np.zeros((1, N, L))
    dead = np.zeros(1, dtype=np.bool_)
    try:
        kernels.get(cfg.kernel).fill(plan, trial, 1, fwd, bwd, dead)
    finally:
        kernels.release(cfg.kernel)
    return fwd[0], (bwd[0] if plan.backward else None)


#: the per-trial columns of the per-network statistics (mean and population sd over the
#: trial's inputs of sqrt(rho_l), sqrt(gamma_l))
STAT_COLUMNS = {"forward": ("fwd_norm_mean", "fwd_norm_sd"), "backward": ("bwd_norm_mean", "bwd_norm_sd")}


def network_stats(run):
    """Per network (trial) and layer, the mean and population sd over its inputs of the norm
    ratios: {"forward": (mean (T, L), sd (T, L)), "backward": ...} for the properties the
    run computed, read from the results file's per-trial columns (STAT_COLUMNS)."""
    out = {}
    for prop, cols in STAT_COLUMNS.items():
        if prop in run.props:
            rec = run.records(cols)
            out[prop] = (np.asarray(rec[cols[0]]), np.asarray(rec[cols[1]]))
    return out


def per_input(ratios):
    """(mean, population sd) over the inputs (axis 0) of the norm ratios sqrt(ratio), per layer."""
    s = np.sqrt(ratios)
    return s.mean(axis=0), s.std(axis=0)


def exact_norm_quantiles(cfg, q=BAND):
    """Quantiles q of sqrt(rho_l) for one input, l = 1..L, from the exact law (plain ReLU
    networks of Gaussian weights: mcinit.theory's domain), shape (L, len(q)); None for any
    other configuration (weight-normalised rows, uniform weights, residual networks)."""
    from .theory import exact_law_of
    law = exact_law_of(cfg)
    if law is None or not law.relu_gaussian:
        return None
    from .report.curves import exact_log_density
    out = np.empty((cfg.depth, len(q)))
    for l in range(cfg.depth):
        y, f, p_dead = exact_log_density(cfg.widths[:l + 1], cfg.input_dim, cfg.init)
        h = y[1] - y[0]
        cdf = p_dead + np.cumsum(f) * h
        cdf = cdf / cdf[-1]          # the truncations' lost mass (below 1e-15) back in
        for j, qq in enumerate(q):
            out[l, j] = 0.0 if qq <= p_dead else math.exp(0.5 * float(np.interp(qq, cdf, y)))
    return out


def residual_law_draws(cfg, draws=LAW_DRAWS["paper"], seed=None):
    """``draws`` independent draws of the output norm ratio sqrt(rho_L) = ||h^L|| / ||x|| of a
    residual network (``cfg``: ``--arch residual``, Gaussian weights) for one input, exactly
    in law: the law kernel's trials (a product of independent block ratios, each drawn from
    its exact law; docs/design.md section 9).  ``seed``: the law's seed (default cfg's)."""
    import dataclasses

    from . import kernels
    from .kernels.common import make_plan
    law = dataclasses.replace(cfg, samples=1, data="gaussian", data_sha256="", normalize="none", trials=draws,
                              kernel="law", properties="forward", seed=cfg.seed if seed is None else seed)
    plan = make_plan(law, None)
    L = law.depth
    out = np.empty(draws)
    k = kernels.get("law")
    try:
        for first in range(0, draws, LAW_CHUNK):
            n = min(LAW_CHUNK, draws - first)
            fwd, bwd = np.zeros((n, 1, L)), np.zeros((n, 1, L))
            dead = np.zeros(n, dtype=np.bool_)
            k.fill(plan, first, n, fwd, bwd, dead)
            out[first:first + n] = np.sqrt(fwd[:, 0, -1])
    finally:
        kernels.release("law")
    return out


def residual_law_quantiles(cfg, q=BAND, draws=LAW_DRAWS["paper"]):
    """Quantiles q of the output ratio ||h^L|| / ||x|| for one input from the exact law of a
    residual network with a skip per block and Gaussian weights, by ``draws`` exact-in-law
    draws (:func:`residual_law_draws`): (quantiles (len(q),), their 95% intervals (len(q), 2)
    from the order statistics, distribution-free), or None for any other configuration
    (single-skip has no closed law, docs/design.md section 9; weight-normalised rows and
    uniform weights are not Gaussian)."""
    from .options import GAUSSIAN_INITS
    if cfg.arch != "residual" or cfg.dist != "normal" or cfg.init not in GAUSSIAN_INITS:
        return None
    x = np.sort(residual_law_draws(cfg, draws))
    qs = np.array([np.quantile(x, qq) for qq in q])
    ci = np.empty((len(q), 2))
    for j, qq in enumerate(q):
        half = 1.96 * math.sqrt(draws * qq * (1 - qq))
        ci[j] = x[max(int(math.floor(draws * qq - half)), 0)], x[min(int(math.ceil(draws * qq + half)), draws - 1)]
    return qs, ci


def true_eps(widths, samples, delta=DELTA, input_dim=None, init="he"):
    """The bracket (lo, hi) of the norm-form eps at which the forward failure probability of
    one network over ``samples`` inputs is delta (plain ReLU network, Gaussian weights): lo
    where the exact one-input probability is delta (N inputs fail at least as often as one),
    hi where N times it is delta (the union over the inputs)."""
    from scipy import optimize

    from . import theory

    def solve(target):
        def g(le):
            return math.log(max(theory.exact_forward_failure(math.exp(le), list(widths), "norm", input_dim,
                                                             init), 1e-300)) - math.log(target)
        return math.exp(optimize.brentq(g, math.log(1e-3), math.log(20.0), xtol=2e-3))
    return solve(delta), solve(delta / samples)


def k_n(n_max=199):
    """The constant K_n of the paper's infinite-data bound as the paper's code computes it,
    n = 1..n_max: K_n = 2 W_(n-1) |S^(n-1)| / |S^n| with W_k the integral of sin^k over
    [0, pi/2] (by its recursion W_k = W_(k-2) (k-1)/k) and |S^k| the surface of the unit
    sphere in R^(k+1), 2 pi^((k+1)/2) / Gamma((k+1)/2) (in logarithms).  Equal to 1 for
    every n: |S^(n-1)| / |S^n| = Gamma((n+1)/2) / (sqrt(pi) Gamma(n/2)) = 1 / (2 W_(n-1)).
    Returns (n, K_n)."""
    n = np.arange(1, n_max + 1)
    w = np.empty(n_max + 1)          # w[k] = W_k
    w[0], w[1] = math.pi / 2, 1.0
    for k in range(2, n_max + 1):
        w[k] = w[k - 2] * (k - 1) / k

    def log_sphere(k):
        return math.log(2.0) + 0.5 * (k + 1) * math.log(math.pi) - math.lgamma(0.5 * (k + 1))
    K = np.array([2.0 * w[i - 1] * math.exp(log_sphere(i - 1) - log_sphere(i)) for i in n])
    return n, K


# ---------------------------------------------------------------------------
# an experiment: run, reduce, draw, print


@dataclass
class Figure:
    """The numbers of one experiment, its files, and its printed forms."""
    figure: str
    quick: bool
    files: list
    rows: list            # one dict per printed row
    columns: list         # (key, header, format) of the printed table
    notes: list           # lines printed under the table
    seconds: float = 0.0

    def lines(self):
        """The table, as printed."""
        head = [h for _, h, _ in self.columns]
        body = [[_fmt(r.get(k), f) for k, _, f in self.columns] for r in self.rows]
        wid = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        out = [f"mcinit paper {self.figure}{' --quick' if self.quick else ''}"]
        out.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, wid))))
        for b in body:
            out.append("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(b, wid))))
        out += self.notes
        out += [f"-> {p}" for p in self.files]
        return out


def _fmt(v, f):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if f == "s":
        return str(v)
    if f == "d":
        return f"{int(v):d}"
    if f == "e":
        return f"{v:.2e}"
    if isinstance(f, int):
        return f"{v:.{f}f}" if abs(v) < 1e5 else f"{v:.{f}g}"     # a residual network's 1e24 stays short
    return format(v, f)


def check_outputs(figures, outdir, fmt, overwrite):
    """Refuse, before any work, outputs that exist (without overwrite) or cannot be written;
    create ``outdir`` when it does not exist (its parent must)."""
    from .store import StoreError, check_output
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise StoreError(f"output directory {outdir} is not a directory")
    parent = os.path.dirname(os.path.abspath(outdir))
    if not os.path.isdir(parent):
        raise StoreError(f"output directory {parent} does not exist")
    if not os.path.isdir(outdir):
        return
    for f in figures:
        for p in outputs(f, outdir, fmt):
            check_output(p, overwrite, option="-o")


def _preflight(sets, runs):
    """Refuse, before anything runs, a configuration its kernel does not compute yet: a
    one-network run of a small copy of each kind of configuration (architecture,
    initialisation, gradient, kernel)."""
    from . import config, engine
    seen = set()
    for s, (_, cfg, _) in zip(sets, runs):
        o = dict(s.options, kernel=cfg.kernel)
        key = (o.get("arch"), o.get("init"), o.get("wn_grad"), o.get("properties"), cfg.kernel)
        if key in seen:
            continue
        seen.add(key)
        small = dict(o, samples=2, trials=1, input_dim=4, width=4)
        if "blocks" in small:
            small["blocks"] = 1
        else:
            small["depth"] = 2
        cfg, data = config.build(**small)
        engine.run(cfg, data)


def _runs(figure, quick, seed):
    """(settings, [(name, resolved RunConfig, data)]) of an experiment."""
    from . import config, engine
    sets = settings(figure, quick, seed)
    runs = []
    for s in sets:
        cfg, data = config.build(**s.options)
        runs.append((s.name, engine.resolve(cfg), data))
    return sets, runs


def check_computable(figure, quick=False, seed=0):
    """A ConfigError, before anything runs, when a kernel refuses one of the experiment's
    configurations (what this version does not compute)."""
    _preflight(*_runs(figure, quick, seed))


def make(figure, outdir, quick=False, fmt="png", overwrite=False, seed=0, quiet=True, note=None):
    """Run one experiment (FIGURES) into ``outdir``: its results file (a sweep file, one run
    per setting) and its figure.  Returns a Figure.  Existing files are refused without
    ``overwrite`` before anything is computed; note(text) receives progress lines."""
    import time

    from .sweep import run_sweep
    check_outputs([figure], outdir, fmt, overwrite)
    t0 = time.perf_counter()
    sets, runs = _runs(figure, quick, seed)
    _preflight(sets, runs)
    os.makedirs(outdir, exist_ok=True)
    files = outputs(figure, outdir, fmt)
    if runs:
        if note:
            note(f"mcinit paper {figure}: {len(runs)} configuration(s) -> {files[0]}")
        run_sweep(runs, files[0], overwrite=overwrite, quiet=quiet)
    build = {"fig1-2": _per_layer, "fig3-4": _per_layer, "fig6": _fig6, "fig7": _fig7, "kn": _kn}[figure]
    fig = build(figure, sets, runs, files, quick)
    _write_figure(fig.draw, files[-1], overwrite)
    fig.seconds = time.perf_counter() - t0
    return fig


def _write_figure(draw, path, overwrite):
    """draw(figure) onto a matplotlib Figure (Agg, no pyplot), saved whole or not at all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    from .store import OutputLock, check_output, remove_stale_temporaries, temporary_name
    with OutputLock(path):
        check_output(path, overwrite, option="-o")
        remove_stale_temporaries(path)
        ext = os.path.splitext(path)[1]
        tmp = temporary_name(path, ext)
        try:
            f = MplFigure()
            FigureCanvasAgg(f)
            draw(f)
            f.savefig(tmp, dpi=130, format=ext[1:])
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _load_runs(path):
    from .results import load
    res = load(path)
    return {r.name: r for r in res.runs}


# -- fig1-2 and fig3-4: per layer, forward and backward ----------------------

PROP_WORDS = {"forward": "||h^l|| / ||x||", "backward": "||dL/dW_l|| / (||x|| ||delta^L||)"}


def _per_layer(figure, sets, runs, files, quick):
    held = _load_runs(files[0])
    rows, panels = [], []
    for s, (_, cfg, data) in zip(sets, runs):
        stats = network_stats(held[s.name])
        exact = exact_norm_quantiles(cfg)
        for prop in ("forward", "backward"):
            means, sds = stats[prop]
            m, sd = means[0], sds[0]        # row 0: trial 0, one network's mean and sd over its inputs
            band = np.quantile(means, BAND, axis=0)
            ex = exact if prop == "forward" else None
            panels.append(dict(setting=s, prop=prop, mean=m, sd=sd, band=band, exact=ex, T=len(means)))
            for l in range(cfg.depth):
                rows.append(dict(init=s.name, prop=prop, layer=l + 1, mean=m[l], sd=sd[l], nets_p5=band[0, l],
                                 nets_p50=band[1, l], nets_p95=band[2, l],
                                 exact_p5=ex[l, 0] if ex is not None else None,
                                 exact_p95=ex[l, 2] if ex is not None else None))
    cfg = runs[0][1]
    columns = [("init", "init", "s"), ("prop", "property", "s"), ("layer", "l", "d"),
               ("mean", "one net: mean", 4), ("sd", "sd", 4), ("nets_p5", f"{cfg.trials} nets: 5%", 4),
               ("nets_p50", "50%", 4), ("nets_p95", "95%", 4), ("exact_p5", "exact 1 input: 5%", 4),
               ("exact_p95", "95%", 4)]
    notes = [f"one net: trial 0, mean and sd over its {cfg.samples} inputs of the norm ratio "
             f"(forward {PROP_WORDS['forward']}, backward {PROP_WORDS['backward']}); "
             f"{cfg.trials} nets: quantiles over networks of each network's mean; exact: quantiles of one "
             "input's forward ratio (plain Gaussian networks only)"]
    if figure == "fig3-4":
        notes.append("backward: the gradient with respect to the row direction (--wn-grad direction), as the "
                     "paper's code measures it")

    def draw(f):
        _draw_per_layer(f, figure, panels, cfg)
    fig = Figure(figure, quick, files, rows, columns, notes)
    fig.draw = draw
    return fig


def _legend_handles(exact):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    h = [Line2D([], [], color="k", marker="o", ms=4, lw=1.2, label="one network: mean +- sd over its inputs"),
         Patch(color="C0", alpha=0.3, label="many networks: 5-95% of the per-network means"),
         Line2D([], [], color="C0", lw=1.2, label="many networks: median")]
    if exact:
        h.append(Line2D([], [], color="C3", ls="--", lw=1.2, label="exact law, one input: 5% and 95%"))
    return h


def _draw_band(ax, x, mean, sd, band, exact):
    ax.fill_between(x, band[0], band[2], color="C0", alpha=0.3, lw=0)
    ax.plot(x, band[1], color="C0", lw=1.2)
    if exact is not None:
        ax.plot(x, exact[:, 0], color="C3", ls="--", lw=1.2)
        ax.plot(x, exact[:, 2], color="C3", ls="--", lw=1.2)
    ax.errorbar(x, mean, yerr=sd, color="k", marker="o", ms=4, lw=1.2, capsize=3)


def _draw_per_layer(f, figure, panels, cfg):
    f.set_size_inches(10, 7.6)
    axes = f.subplots(2, 2)
    for i, (ax, p) in enumerate(zip(axes.ravel(), panels)):
        x = np.arange(1, cfg.depth + 1)
        _draw_band(ax, x, p["mean"], p["sd"], p["band"], p["exact"])
        lo = np.nanmin([np.min(p["mean"] - p["sd"]), np.min(p["band"][0])])
        hi = np.nanmax([np.max(p["mean"] + p["sd"]), np.max(p["band"][2])])
        if lo > 0 and hi / lo > 8:
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis)
        ax.set_xlabel("layer l")
        ax.set_ylabel(PROP_WORDS[p["prop"]])
        ax.set_xticks(x)
        ax.set_title(f"({'abcd'[i]}) {p['setting'].label}: {p['prop']}", fontsize=10)
        ax.grid(alpha=0.3)
    o = panels[0]["setting"].options
    f.suptitle(f"{figure}: n_0 = {o['input_dim']}, width {o['width']}, depth {o['depth']}, "
               f"N = {o['samples']} inputs, {o['trials']} networks", fontsize=11)
    f.legend(handles=_legend_handles(any(p["exact"] is not None for p in panels)), loc="lower center", ncol=2,
             fontsize=8.5, frameon=False)
    f.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.14, hspace=0.38, wspace=0.25)


# -- fig6: the bound against width -------------------------------------------

def _fig6(figure, sets, runs, files, quick):
    from . import theory
    from .stats import clopper_pearson
    held = _load_runs(files[0])
    rows = []
    for s, (_, cfg, data) in zip(sets, runs):
        m = cfg.widths[0]
        rho, _ = one_network(cfg, data)
        dev = np.abs(1.0 - np.sqrt(rho))
        rec = held[s.name].records(["fwd_min", "fwd_max"])
        per_net = np.maximum(np.sqrt(rec["fwd_max"]) - 1.0, 1.0 - np.sqrt(rec["fwd_min"])).max(axis=1)
        eps_paper = float(theory.paper_eps(m, cfg.samples, cfg.depth, DELTA))
        lo, hi = true_eps(cfg.widths, cfg.samples, DELTA, cfg.input_dim, cfg.init)
        fails = int(np.sum(per_net > eps_paper))
        T = len(per_net)
        ci = [float(x) for x in clopper_pearson(fails, T, 0.95)]
        rows.append(dict(width=m, dev_mean=float(dev.mean()), dev_sd=float(dev.std()), eps_paper=eps_paper,
                         eps_lo=lo, eps_hi=hi, eps_nets=float(np.quantile(per_net, 1 - DELTA)),
                         max_one=float(dev.max()),
                         p_at_paper=fails / T, p_lo=float(ci[0]), p_hi=float(ci[1]),
                         p1_at_paper=float(theory.exact_forward_failure(eps_paper, list(cfg.widths), "norm",
                                                                         cfg.input_dim, cfg.init)), T=T))
    cfg = runs[0][1]
    columns = [("width", "m", "d"), ("dev_mean", "one net: mean |1-r|", 4), ("dev_sd", "sd", 4),
               ("max_one", "max", 3), ("eps_paper", "paper eps(m)", 3), ("eps_lo", "true eps: >=", 3),
               ("eps_hi", "<=", 3), ("eps_nets", f"{cfg.trials} nets", 3),
               ("p_at_paper", "P(fail at paper eps)", 3), ("p_lo", "95% CI", 3), ("p_hi", "", 3),
               ("p1_at_paper", "exact 1 input", "e")]
    notes = _fig6_notes(rows, cfg)

    def draw(f):
        _draw_fig6(f, rows, cfg)
    fig = Figure(figure, quick, files, rows, columns, notes)
    fig.draw = draw
    return fig


def _fig6_notes(rows, cfg):
    """The lines under fig6's table: what each column is, and at which widths the paper's eps is
    below the truth (exactly, or by the networks of the run)."""
    notes = [f"r = ||h^l|| / ||x||; one net: trial 0, |1 - r| pooled over its {cfg.samples} inputs and "
             f"{cfg.depth} layers; paper eps(m) = (1 + 4 ln(4 N L / delta) / m)^L - 1 at delta = {DELTA}",
             f"true eps: the eps at which one network fails (some input, some layer beyond eps) with probability "
             f"{DELTA}: between the exact one-input value and the union over N inputs; '{cfg.trials} nets': the "
             f"{1 - DELTA:.0%} quantile of each network's largest deviation",
             "P(fail at paper eps): networks of the run whose largest deviation exceeds the paper's eps; exact "
             "1 input: one input's exact failure probability there, a lower bound of it"]
    exact_below = [r["width"] for r in rows if r["eps_paper"] < r["eps_lo"]]
    seen_below = [r["width"] for r in rows if r["p_lo"] > DELTA and r["width"] not in exact_below]
    if exact_below:
        notes.append(f"the paper's eps is BELOW the true eps at m = {', '.join(map(str, exact_below))} (exact law: "
                     f"one input alone fails it with probability above {DELTA}): there the encoded bound is not a "
                     "bound")
    if seen_below:
        notes.append(f"at m = {', '.join(map(str, seen_below))} networks break the paper's eps more often than "
                     f"delta = {DELTA} (the whole 95% interval above it): there the encoded bound is below the truth")
    return notes


def _draw_fig6(f, rows, cfg):
    f.set_size_inches(10, 4.8)
    ax, bx = f.subplots(1, 2)
    m = np.array([r["width"] for r in rows], dtype=float)
    from . import theory
    mm = np.geomspace(m[0], m[-1], 100)
    ax.plot(mm, theory.paper_eps(mm, cfg.samples, cfg.depth, DELTA), color="C1", lw=1.5,
            label="paper's eps(m), delta = 0.05")
    ax.fill_between(m, [r["eps_lo"] for r in rows], [r["eps_hi"] for r in rows], color="C3", alpha=0.25, lw=0,
                    label="true eps at delta = 0.05 (exact law: between 1 input and the union over N)")
    ax.plot(m, [r["eps_nets"] for r in rows], color="C3", marker="s", ms=4, lw=1,
            label=f"true eps at delta = 0.05 from {cfg.trials} networks")
    ax.errorbar(m, [r["dev_mean"] for r in rows], yerr=[r["dev_sd"] for r in rows], color="k", marker="o", ms=4,
                capsize=3, lw=1.2, label="one network: mean +- sd of |1 - r| over inputs and layers")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(m)
    ax.set_xticklabels([str(int(x)) for x in m])
    ax.minorticks_off()
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("width m")
    ax.set_ylabel("eps, or |1 - ||h^l||/||x|| |")
    ax.set_title("(a) deviation of one network and the tolerances", fontsize=10)
    ax.grid(alpha=0.3)
    bx.errorbar(m, [r["p_at_paper"] for r in rows],
                yerr=[[r["p_at_paper"] - r["p_lo"] for r in rows], [r["p_hi"] - r["p_at_paper"] for r in rows]],
                color="C0", marker="o", ms=4, capsize=3, lw=1.2,
                label=f"{cfg.trials} networks: P(some input, some layer beyond eps(m)), 95% CI")
    bx.axhline(DELTA, color="C1", lw=1.5, ls="--", label="delta = 0.05 the paper's bound promises")
    bx.set_xscale("log")
    bx.set_xticks(m)
    bx.set_xticklabels([str(int(x)) for x in m])
    bx.minorticks_off()
    bx.set_ylim(-0.03, 1.03)
    bx.set_xlabel("width m")
    bx.set_ylabel("failure probability at the paper's eps(m)")
    bx.set_title("(b) how often one network breaks the paper's eps(m)", fontsize=10)
    bx.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = bx.get_legend_handles_labels()
    f.legend(h1 + h2, l1 + l2, loc="lower center", ncol=2, fontsize=8, frameon=False)
    f.suptitle(f"fig6: n_0 = {cfg.input_dim}, depth {cfg.depth}, N = {cfg.samples} inputs, He weights",
               fontsize=11)
    f.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.3, wspace=0.28)


# -- fig7: residual networks' output norm ------------------------------------

def _fig7(figure, sets, runs, files, quick):
    held = _load_runs(files[0])
    size = SIZES[figure]["quick" if quick else "paper"]
    draws = LAW_DRAWS["quick" if quick else "paper"]
    rows = []
    err = 0.0
    for s, (_, cfg, data) in zip(sets, runs):
        means, sds = (a[:, -1:] for a in network_stats(held[s.name])["forward"])
        m, sd = means[0], sds[0]            # row 0: trial 0, one network's mean and sd over its inputs
        means = means[:, 0]
        band = np.quantile(means, BAND)
        o = s.options
        row = dict(arch=o["arch"], row=s.label, blocks=o["blocks"], width=o["width"], mean=float(m[0]),
                   sd=float(sd[0]), nets_p5=band[0], nets_p50=band[1], nets_p95=band[2],
                   exact_p5=None, exact_p50=None, exact_p95=None)
        law = residual_law_quantiles(cfg, draws=draws)
        if law is not None:
            qs, ci = law
            row.update(exact_p5=float(qs[0]), exact_p50=float(qs[1]), exact_p95=float(qs[2]))
            err = max(err, float(np.max((ci[:, 1] - ci[:, 0]) / (2 * qs))))
        rows.append(row)
    cfg = runs[0][1]
    columns = [("arch", "arch", "s"), ("row", "weights, branch scale", "s"), ("blocks", "B", "d"),
               ("width", "m", "d"), ("mean", "one net: mean", 4), ("sd", "sd", 4),
               ("nets_p5", f"{cfg.trials} nets: 5%", 4), ("nets_p50", "50%", 4), ("nets_p95", "95%", 4),
               ("exact_p5", "exact 1 input: 5%", 4), ("exact_p50", "50%", 4), ("exact_p95", "95%", 4)]
    notes = [f"output norm ratio ||h_out|| / ||x|| (n_0 = {cfg.input_dim}); one net: trial 0, mean and sd over "
             f"its {cfg.samples} inputs; {cfg.trials} nets: quantiles over networks of each network's mean",
             "single-skip: a first layer h_1, 2B ReLU layers and one skip around them all, h_1 + s chain(h_1) "
             "(the paper's code); residual: a skip in every block, h + s W_2 ReLU(W_1 h)",
             "WN rows as in the paper's script: gain 1 with s = 1 ('traditional'), the gain sqrt(2 n_in/n_out) "
             "with s = 1/B ('scaled')",
             f"exact 1 input: quantiles of one input's ratio over networks, residual with He weights only, from "
             f"{draws:.0e} draws of the exact law (the law kernel: independent block ratios); sampling error: "
             f"95% intervals within {100 * err:.2g}% of each quantile; single-skip has no closed law (its "
             "skip adds a rectified branch, whose overlap with h_1 is not rotation invariant)"]

    def draw(f):
        _draw_fig7(f, rows, size, cfg)
    fig = Figure(figure, quick, files, rows, columns, notes)
    fig.draw = draw
    return fig


#: fig7's series: marker and line style, and a small offset along x so that series of equal
#: values stay visible side by side
FIG7_STYLE = (("o", "-", 0.96), ("s", "--", 0.987), ("^", "-", 1.013), ("D", "--", 1.04))


def _plain_log_axis(axis, span=None):
    """Log-scale ticks labelled as plain numbers (1, 2, 5, 10, ..., 0.2, 0.5; powers of ten
    alone where the axis spans more than four decades: span, its largest over smallest)."""
    from matplotlib import ticker
    wide = span is not None and span > 1e4
    axis.set_major_locator(ticker.LogLocator(numticks=8) if wide else ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _draw_fig7(f, rows, size, cfg):
    f.set_size_inches(11, 8.6)
    axes = f.subplots(2, 2)
    k = 0
    for i, (arch, words) in enumerate(FIG7_ARCHS):
        for j, (key, fixed, xs) in enumerate((("blocks", ("width", size["width"]), size["blocks"]),
                                             ("width", ("blocks", size["at_blocks"]), size["widths"]))):
            ax = axes[i, j]
            for c, (_, _, label) in enumerate(FIG7_ROWS):
                marker, ls, shift = FIG7_STYLE[c]
                sel = sorted((r for r in rows if r["arch"] == arch and r["row"] == label
                              and r[fixed[0]] == fixed[1]), key=lambda r: r[key])
                x = np.array([r[key] for r in sel], dtype=float) * shift
                lo, mid, hi = (np.array([r[q] for r in sel]) for q in ("nets_p5", "nets_p50", "nets_p95"))
                ax.fill_between(x, lo, hi, color=f"C{c}", alpha=0.15, lw=0)
                ax.plot(x, mid, color=f"C{c}", lw=1, ls=ls)
                if sel and sel[0]["exact_p5"] is not None:
                    for q in ("exact_p5", "exact_p95"):
                        ax.plot(x, [r[q] for r in sel], color=f"C{c}", lw=1.3, ls=":", marker="_", ms=8)
                ax.errorbar(x, [r["mean"] for r in sel], yerr=[r["sd"] for r in sel], color=f"C{c}",
                            marker=marker, ms=4.5, capsize=3, lw=0, elinewidth=1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in xs])
            ax.xaxis.set_minor_locator(__import__("matplotlib").ticker.NullLocator())
            lo, hi = ax.get_ylim()
            _plain_log_axis(ax.yaxis, hi / lo)
            ax.set_xlabel("residual blocks B" if key == "blocks" else "width m")
            ax.set_ylabel("||h_out|| / ||x||")
            other = f"width {fixed[1]}" if key == "blocks" else f"B = {fixed[1]}"
            ax.set_title(f"({'abcd'[k]}) {arch}: {words}, {other}", fontsize=9.5)
            ax.grid(alpha=0.3)
            k += 1
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color=f"C{c}", marker=FIG7_STYLE[c][0], ls=FIG7_STYLE[c][1], lw=1.2, label=label)
               for c, (_, _, label) in enumerate(FIG7_ROWS)]
    handles += [Line2D([], [], color="0.3", marker="o", lw=0, label="one network: mean +- sd over its inputs"),
                Patch(color="0.3", alpha=0.2, label=f"{cfg.trials} networks: 5-95% of the per-network means "
                                                    "(line: median)")]
    if any(r["exact_p5"] is not None for r in rows):
        handles.append(Line2D([], [], color="0.3", ls=":", marker="_", ms=8, lw=1.3,
                              label="exact law, one input: 5% and 95% (He weights, a skip per block)"))
    f.legend(handles=handles, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    f.suptitle(f"fig7: output norm of residual networks, n_0 = {cfg.input_dim}, N = {cfg.samples} inputs; "
               "s: the branch's scale", fontsize=11)
    f.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.15, hspace=0.35, wspace=0.25)


# -- K_n ----------------------------------------------------------------------

def _kn(figure, sets, runs, files, quick):
    n, K = k_n(SIZES["kn"]["quick" if quick else "paper"]["n"])
    shown = [1, 2, 3, 4, 5, 10, 50, 100, 150, 199]
    rows = [dict(n=int(i), K_n=float(K[i - 1]), off=float(K[i - 1] - 1.0)) for i in shown if i <= len(n)]
    columns = [("n", "n", "d"), ("K_n", "K_n", ".15f"), ("off", "K_n - 1", ".1e")]
    notes = [f"K_n = 2 W_(n-1) |S^(n-1)| / |S^n| as the paper's code computes it equals 1 for every n = 1..{n[-1]}: "
             f"largest |K_n - 1| = {np.max(np.abs(K - 1)):.1e} (rounding)"]

    def draw(f):
        f.set_size_inches(9, 3.8)
        ax, bx = f.subplots(1, 2)
        ax.plot(n, K, color="C0", lw=1.5)
        ax.set_ylim(0, 2)
        ax.set_xlabel("input dimension n")
        ax.set_ylabel("K_n")
        ax.set_title("(a) K_n of the infinite-data bound", fontsize=10)
        ax.grid(alpha=0.3)
        bx.plot(n, K - 1.0, color="C0", marker=".", lw=0)
        bx.set_xlabel("input dimension n")
        bx.set_ylabel("K_n - 1")
        bx.set_title("(b) K_n - 1: rounding only", fontsize=10)
        bx.grid(alpha=0.3)
        f.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.15, wspace=0.35)
    fig = Figure(figure, quick, files, rows, columns, notes)
    fig.draw = draw
    return fig
