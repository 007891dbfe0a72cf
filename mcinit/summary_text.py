"""The short summary printed at the end of a run, the table that compares a sweep's runs, and
their numbers (run_numbers, sweep_numbers: the JSON documents of mcinit.documents hold them)."""

import os

import numpy as np

from .rows import failure_cells, layer_rows

__all__ = ["run_summary", "run_numbers", "rate_text", "seconds", "sweep_table", "sweep_numbers", "LEVEL",
           "COMPARE_EPS"]

#: confidence level of the run summary's exact intervals
LEVEL = 0.95
#: the tolerance (norm form) of a sweep's comparison table: one of a run's summary
#: (mcinit.stats.EPS_LADDER)
COMPARE_EPS = 0.25


def run_numbers(result):
    """What the run summary shows, as named values (the JSON document of mcinit run holds them).

    layers   mcinit.rows.layer_rows of the run: per-layer mean, sd, min, max of rho_l and
             gamma_l beside the exact law of rho_l
    eps      the tolerances (norm form) of the failure counts
    failure  {prop: mcinit.rows.failure_cells at LEVEL} for the properties the run computed
             (forward, backward, both)
    p_exact  the exact forward failure probabilities at eps (norm form; one input, Gaussian
             weights), or None where they are not defined or the forward property was not computed
    paper_delta  {forward, backward, both: mcinit.results.paper_bound at eps (norm form), or None
             outside the paper's setting}: the summary's ``paper`` column is the forward one (the
             same bound as the backward's; both: min(1, 2 delta))
    sup      with the supremum search, the forward property for every input of the sphere:
             {lower, upper: failure_cells at LEVEL of the trials failing at the extremes found and
             of those whose certified bounds do not exclude a failure, exact, pairs: the (trial,
             layer) pairs computed exactly and in all}; else None"""
    cfg, s = result.config, result.summary
    return dict(layers=layer_rows(cfg, s), eps=[float(e) for e in result.eps],
                failure={p: failure_cells(k, s.trials, LEVEL) for p, k in result.failures.items()},
                p_exact=_exact_forward(cfg, result.eps) if "fwd" in s.quantities else None,
                paper_delta={p: _paper(cfg, result.eps, p) for p in ("forward", "backward", "both")},
                sup=_sup_numbers(result))


def _ci(cells, i):
    return f"{cells['p_hat'][i]:.4g} [{float(cells['ci_low'][i]):.4g}, {float(cells['ci_high'][i]):.4g}]"


def run_summary(result, output=None, threads=None):
    """Lines: what ran, per-layer ratio mean and spread beside the exact law, failure rates."""
    cfg, s = result.config, result.summary
    T = s.trials
    numbers = run_numbers(result)
    where = f" -> {output}" if output else ""
    thr = f", {threads} threads" if threads else ""
    kernel = cfg.kernel if cfg.precision == "float64" else f"{cfg.kernel} ({cfg.precision})"
    if result.computed == 0 and result.elapsed == 0:     # read from a complete file
        head = f"mcinit: {T:,} trials, kernel {kernel}{where}"
    else:
        head = (f"mcinit: {T:,} trials{_resumed(result)} in {seconds(result.elapsed)} ({_pace(result)}), "
                f"kernel {kernel}{thr}{where}")
    lines = [
        head,
        f"network: input {cfg.input_dim}, widths {_widths(cfg.widths)}, {_activation(cfg)}init {cfg.init}/{cfg.dist}"
        f"{'' if cfg.gain is None else f' (gain {cfg.gain:g})'}, "
        f"head {cfg.head[0]}:{cfg.head[1]}, {cfg.samples} input(s) per trial ({_data(cfg)}){_arch(cfg)}",
        "",
        "per layer, over all (trial, input) pairs (docs/design.md section 2):",
        "  rho = ||h^l||^2/||x||^2, the forward ratio; " + _exact_meaning(cfg),
        f"  gamma = ||dloss/dW_l||_F^2/(||x||^2 ||{_last(cfg)}||^2), the backward ratio of the weight gradient",
        f"{'layer':>5} {'width':>6} {'rho mean':>10} {'rho sd':>9} {'exact mean':>10} {'exact sd':>9}"
        f" {'gamma mean':>10} {'gamma sd':>9}",
    ]
    has = {q: q in s.quantities for q in ("fwd", "bwd")}

    def pair(row, name, q):
        """mean and sd of rho or gamma in a layer's row, or '-' when not computed."""
        if not has[q]:
            return f"{'-':>10} {'-':>9}"
        return f"{row[name + '_mean']:10.5f} {row[name + '_sd']:9.4f}"
    for row in numbers["layers"]:
        ex_sd = f"{row['exact_rho_sd']:9.4f}" if np.isfinite(row["exact_rho_sd"]) else f"{'-':>9}"
        ex_mean = f"{row['exact_rho_mean']:10.5f}" if np.isfinite(row["exact_rho_mean"]) else f"{'-':>10}"
        lines.append(f"{row['layer']:>5} {row['width']:>6} {pair(row, 'rho', 'fwd')} {ex_mean} "
                     f"{ex_sd} {pair(row, 'gamma', 'bwd')}")
    if cfg.properties != "both":
        lines.append(f"('-': the {_MISSING[cfg.properties]} property was not computed: --properties {cfg.properties})")
    exact = numbers["p_exact"]
    paper = numbers["paper_delta"]["forward"]
    lines += ["", "failure probability, norm form (|sqrt(ratio) - 1| > eps at some layer and input),"
                  " with exact 95% intervals:",
              f"{'eps':>6}  {'forward':<30} {'exact':<11}{'paper':<11}{'backward':<30} {'both':<30}".rstrip()]
    f = numbers["failure"]
    for i, e in enumerate(result.eps):
        ex = f"{exact[i]:<11.4g}" if exact is not None else f"{'-':<11}"
        pp = f"{paper[i]:<11.3g}" if paper is not None else f"{'-':<11}"
        cells = {p: (_ci(f[p], i) if p in f else "not computed") for p in ("forward", "backward", "both")}
        lines.append(f"{e:>6g}  {cells['forward']:<30} {ex}{pp}{cells['backward']:<30} {cells['both']:<30}".rstrip())
    lines.append("exact: " + ("the forward property's exact probability (one input, Gaussian weights)"
                              if exact is not None else "- (no exact failure probability for residual networks)" if cfg.residual
                              else f"- ({_why_no_exact(cfg)})"))
    lines.append("paper: " + ("Arpit & Bengio's bound (the authors' code) of each property, twice it for both; "
                              "not an upper bound at small eps and large widths"
                              if paper is not None else f"- (the bound is of plain networks, not --arch {cfg.arch})"
                              if cfg.residual else "- (the bound is for ReLU networks of Gaussian weights with "
                              "E rho_l = 1: init he, or he-in at equal widths)"))
    lines.append("both: a trial fails when its forward or its backward property fails")
    if any(e >= 1 for e in result.eps):
        lines.append("eps >= 1: the norm form sees growing norms only (|sqrt(ratio) - 1| <= 1 for every ratio "
                     "<= 1): collapse shows in mcinit report --form symmetric")
    deaths = "some h^l = 0" if cfg.properties == "forward" else f"some h^l = 0 or {_last(cfg)} = 0"
    lines.append(f"dead networks ({deaths}): {s.dead:,}")
    if numbers["sup"] is not None:
        lines += [""] + _sup_lines(cfg, numbers["sup"], result.eps)
    return lines


def _sup_numbers(result):
    """The forward property for every input of the sphere at once (--sup-search): {lower,
    upper: failure_cells of the certain failures (extremes found) and of the possible ones
    (certified bounds), exact, pairs: (trial, layer) pairs computed exactly, and in all}, or
    None without the search."""
    t = getattr(result, "sup", None)
    if t is None:
        return None
    T = result.summary.trials
    return dict(lower=failure_cells(t["sup"], T, LEVEL), upper=failure_cells(t["sup_possible"], T, LEVEL),
                exact=int(t["sup_exact"]), pairs=int(t["sup_pairs"]))


def _sup_lines(cfg, sup, eps):
    from .sphere import method_of
    share = f"{sup['exact']:,} of {sup['pairs']:,}" if sup["pairs"] else "none"
    lines = ["for every input of the unit sphere at once (--sup-search; the paper's infinite-data case):",
             f"  method: {method_of(cfg.input_dim)}; exact in {share} (trial, layer) pairs",
             "  lower: the trials failing at the extremes found at actual inputs; upper: those whose certified",
             "  bounds do not exclude a failure; the probability lies between (norm form, exact 95% intervals)",
             f"{'eps':>6}  {'lower':<30} upper"]
    for i, e in enumerate(eps):
        lines.append(f"{e:>6g}  {_ci(sup['lower'], i):<30} {_ci(sup['upper'], i):<30}".rstrip())
    return lines


#: the property a run of one property leaves out
_MISSING = {"forward": "backward", "backward": "forward"}


def rate_text(rate):
    """'22,497' trials per second; three significant digits below 100 ('0.0123', '4.56')."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def seconds(x):
    """'44.5 s'; three significant digits below a tenth of a second."""
    return f"{x:.1f} s" if x >= 0.1 else f"{x:.3g} s"


def _pace(result):
    """The trials' rate, without the startup (compiling or loading the kernels: RunResult.startup)."""
    rate = "" if result.rate is None else f"{rate_text(result.rate)} trials/s"
    if result.startup <= 0:
        return rate
    start = f"{seconds(result.startup)} of it compiling or loading the kernels"
    return f"{start}, then {rate}" if rate else start


def _resumed(result):
    done = result.summary.trials - result.computed
    return f" ({done:,} of them from before a resume)" if done else ""


def _activation(cfg):
    """'activation tanh, ' in the network line (nothing for ReLU, the default)."""
    return "" if cfg.activation == "relu" else f"activation {cfg.activation}, "


def _why_no_exact(cfg):
    """Why a plain network's run shows no exact failure probability, in words."""
    from .theory import exact_law_shown
    law, why = exact_law_shown(cfg)
    if law is None:
        if cfg.dist != "normal":
            return "the exact law is of Gaussian or orthogonal weights, not uniform ones"
        if cfg.init.startswith("wn"):
            return "the exact law is of Gaussian or orthogonal weights, not weight-normalised rows"
        return why
    if cfg.samples != 1:
        return "the exact law is of one input per trial"
    return "the exact law is of the forward property"


def _arch(cfg):
    """', arch residual, B blocks, branch scale s' for a residual network, else ''."""
    if not cfg.residual:
        return ""
    return f", arch {cfg.arch}, {cfg.blocks} blocks, branch scale {cfg.branch_scale:g}"


def _last(cfg):
    """The last layer's error whose norm the backward ratio divides by: delta^L, or for a
    residual network g_L = dloss/da^L (docs/design.md section 9)."""
    return "g_L" if cfg.residual else "delta^L"


def _exact_meaning(cfg):
    """What the summary's exact columns are for the configuration (mcinit.rows.layer_rows)."""
    if cfg.arch == "single-skip":
        return "exact: - (no exact law for this architecture)"
    if cfg.residual:
        return "exact = its one-input law of the residual network (section 9; the sd for Gaussian weights)"
    from .activations import homogeneous
    from .theory import exact_law_of
    law = exact_law_of(cfg)
    if law is not None and cfg.init == "orthogonal":
        return ("exact = its one-input law for orthogonal weights (section 10"
                + ("" if cfg.activation == "relu" else f"; {cfg.activation}: section 11") + ")")
    if law is not None and not law.relu_gaussian:
        return f"exact = its one-input law for {cfg.activation} (section 11)"
    if not homogeneous(cfg.activation):
        return f"exact: - (no exact law for {cfg.activation}: the factor depends on ||h||)"
    return "exact = its one-input law for Gaussian weights (section 4)"


def _exact_forward(cfg, eps):
    """Exact forward failure probabilities (norm form) where defined, else None (residual
    networks: no exact failure probability, docs/design.md section 9)."""
    from .results import exact_values
    from .theory import exact_law_shown
    law, _ = exact_law_shown(cfg)
    if cfg.samples != 1 or law is None:
        return None
    out = exact_values(eps, cfg.widths, "norm", cfg.input_dim, cfg.init, **law.keywords)
    return None if np.any(np.isnan(out)) else (float(out[0]) if np.ndim(eps) == 0 else out)


def _widths(ws):
    if len(set(ws)) == 1:
        return f"{ws[0]} x {len(ws)}"
    return ",".join(str(w) for w in ws)


def _data(cfg):
    return cfg.data if not cfg.fixed_data else f"fixed {cfg.data}"


def _paper(cfg, eps, prop="forward"):
    """The paper's bound of ``prop`` (mcinit.results.paper_bound) at each eps, or None."""
    from .results import paper_bound
    return paper_bound(cfg, eps, prop)


def _options_shown(cfg):
    """{option as the command line spells it: value as text} of a run's configuration, widths
    as width and depth where they are equal (mcinit.options.run_values)."""
    values = cfg.values()
    shown = {}
    for key, value in values.items():
        if key == "widths":
            ws = cfg.widths
            if len(set(ws)) == 1:
                shown["width"], shown["depth"] = str(ws[0]), str(len(ws))
            else:
                shown["widths"] = ",".join(map(str, ws))
        elif key == "data" and cfg.fixed_data:
            shown["data"] = os.path.basename(value)
        else:
            shown[key.replace("_", "-")] = "-" if value is None else str(value)
    return shown


def _aligned(header, rows):
    """A fixed-width table: the first columns (text) to the left, numbers to the right."""
    width = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    left = [all(not _numeric(r[i]) for r in rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if lf else c.rjust(w) for c, w, lf in zip(cells, width, left)).rstrip()
    return [line(header), "  ".join("-" * w for w in width)] + [line(r) for r in rows]


def _numeric(text):
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def sweep_numbers(named):
    """What sweep_table shows, as named values (the JSON document of mcinit sweep holds them).

    named: [(name, RunResult)] in the sweep's order.  Returns {eps (COMPARE_EPS, norm form),
    level (LEVEL), options (the options whose values differ between the runs, as the command
    line spells them), rows}; rows: one dict per run: name, options {option: value as text,
    '-' where the run has none}, trials, rho_L_mean and gamma_L_mean (the means of the last
    layer's ratios; None where the run did not compute the property), prop (both, or the one
    property the run computed), failures, p_hat, ci_low, ci_high (at eps, exact interval at
    level; None where the run has no count at eps or no trial), paper_delta (the paper's bound of
    prop, mcinit.results.paper_bound; None outside its setting)."""
    shown = [_options_shown(r.config) for _, r in named]
    keys = [k for k in dict.fromkeys(k for s in shown for k in s) if len({s.get(k) for s in shown}) > 1]
    rows = []
    for (name, result), opts in zip(named, shown):
        cfg, s = result.config, result.summary
        L = cfg.depth
        means = [float(s.mean[q, 0, L - 1]) if qn in s.quantities else None for q, qn in enumerate(("fwd", "bwd"))]
        prop = "both" if "both" in result.failures else next(iter(result.failures))
        at = np.flatnonzero(np.isclose(result.eps, COMPARE_EPS))
        cells = dict.fromkeys(("failures", "p_hat", "ci_low", "ci_high"))
        if len(at) and s.trials:
            c = failure_cells(result.failures[prop][at[:1]], s.trials, LEVEL)
            cells = {k: (int(v[0]) if k == "failures" else float(v[0])) for k, v in c.items()}
        paper = _paper(cfg, [COMPARE_EPS], prop)
        rows.append(dict(name=name, options={k: opts.get(k, "-") for k in keys}, trials=int(s.trials),
                         rho_L_mean=means[0], gamma_L_mean=means[1], prop=prop, **cells,
                         paper_delta=float(paper[0]) if paper is not None else None))
    return dict(eps=COMPARE_EPS, level=LEVEL, options=keys, rows=rows)


def sweep_table(named, output=None):
    """Lines comparing the runs of a sweep, one row each (named: [(name, RunResult)] in order).

    A row holds the options whose values differ between the runs (the run's name when none
    does), the trials, the means of rho_L and gamma_L (the last layer), and the failure
    probability at COMPARE_EPS (norm form) with its exact 95% interval: of both properties,
    or of the one the run computed; beside it the paper's bound of that property.  The
    numbers are sweep_numbers'."""
    if not named:
        return ["mcinit sweep: no run"]
    n = sweep_numbers(named)
    keys = n["options"]
    header = (keys or ["run"]) + ["trials", "rho_L mean", "gamma_L mean", f"P(fail) at eps {COMPARE_EPS:g}",
                                  "property", "paper"]
    rows = []
    for r in n["rows"]:
        means = [f"{m:.5f}" if m is not None else "-" for m in (r["rho_L_mean"], r["gamma_L_mean"])]
        fail = _ci({k: [r[k]] for k in ("p_hat", "ci_low", "ci_high")}, 0) if r["failures"] is not None else "-"
        rows.append([r["options"][k] for k in keys] if keys else [r["name"]])
        rows[-1] += [f"{r['trials']:,}", *means, fail, r["prop"],
                     f"{r['paper_delta']:.3g}" if r["paper_delta"] is not None else "-"]
    where = f" in {output}" if output else ""
    lines = [f"mcinit sweep: {len(named)} run{'s' if len(named) != 1 else ''}{where}, compared:"]
    lines += _aligned(header, rows)
    lines += [f"P(fail): fraction of trials whose property (both: forward or backward) fails at eps {COMPARE_EPS:g}, "
              "norm form, with its exact 95% interval",
              "paper: Arpit & Bengio's bound of that property as the authors' code encodes it (-: outside its setting)",
              "every run in full: mcinit report FILE, or mcinit sweep -v"]
    return lines
