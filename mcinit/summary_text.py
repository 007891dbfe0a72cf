"""The short summary printed at the end of a run, and the table that compares a sweep's runs."""

import os

import numpy as np

from .initializers import expected_forward
from .stats import clopper_pearson

__all__ = ["run_summary", "rate_text", "seconds", "sweep_table", "COMPARE_EPS"]

#: the tolerance (norm form) of a sweep's comparison table: the middle one of a run's summary
#: (mcinit.engine.REPORT_EPS)
COMPARE_EPS = 0.25


def _ci(k, n):
    lo, hi = clopper_pearson(k, n)
    return f"{k / n:.4g} [{float(lo):.4g}, {float(hi):.4g}]"


def run_summary(result, output=None, threads=None):
    """Lines: what ran, per-layer ratio mean and spread beside the exact law, failure rates."""
    cfg, s = result.config, result.summary
    T = s.trials
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
        f"network: input {cfg.input_dim}, widths {_widths(cfg.widths)}, init {cfg.init}/{cfg.dist}, "
        f"head {cfg.head[0]}:{cfg.head[1]}, {cfg.samples} input(s) per trial ({_data(cfg)})",
        "",
        "per layer, over all (trial, input) pairs (docs/design.md section 2):",
        "  rho = ||h^l||^2/||x||^2, the forward ratio; exact = its one-input law for Gaussian weights (section 4)",
        "  gamma = ||dloss/dW_l||_F^2/(||x||^2 ||delta^L||^2), the backward ratio of the weight gradient",
        f"{'layer':>5} {'width':>6} {'rho mean':>10} {'rho sd':>9} {'exact mean':>10} {'exact sd':>9}"
        f" {'gamma mean':>10} {'gamma sd':>9}",
    ]
    mean_x, var_x = expected_forward(cfg)
    sd = np.sqrt(s.variance())
    has = {q: q in s.quantities for q in ("fwd", "bwd")}

    def pair(q, l):
        """mean and sd of quantity q (0 rho, 1 gamma) at layer l, or '-' when not computed."""
        if not has[("fwd", "bwd")[q]]:
            return f"{'-':>10} {'-':>9}"
        return f"{s.mean[q, 0, l]:10.5f} {sd[q, 0, l]:9.4f}"
    for l in range(cfg.depth):
        ex_sd = f"{np.sqrt(var_x[l]):9.4f}" if np.isfinite(var_x[l]) else f"{'-':>9}"
        lines.append(f"{l + 1:>5} {cfg.widths[l]:>6} {pair(0, l)} {mean_x[l]:10.5f} {ex_sd} {pair(1, l)}")
    if cfg.properties != "both":
        lines.append(f"('-': the {_MISSING[cfg.properties]} property was not computed: --properties {cfg.properties})")
    exact = _exact_forward(cfg, result.eps) if has["fwd"] else None
    paper = _paper(cfg, result.eps)
    lines += ["", "failure probability, norm form (|sqrt(ratio) - 1| > eps at some layer and input),"
                  " with exact 95% intervals:",
              f"{'eps':>6}  {'forward':<30} {'exact':<11}{'paper':<11}{'backward':<30} {'both':<30}".rstrip()]
    f = result.failures
    for i, e in enumerate(result.eps):
        ex = f"{exact[i]:<11.4g}" if exact is not None else f"{'-':<11}"
        pp = f"{paper[i]:<11.3g}" if paper is not None else f"{'-':<11}"
        cells = {p: (_ci(f[p][i], T) if p in f else "not computed") for p in ("forward", "backward", "both")}
        lines.append(f"{e:>6g}  {cells['forward']:<30} {ex}{pp}{cells['backward']:<30} {cells['both']:<30}".rstrip())
    lines.append("exact: " + ("the forward property's exact probability (one input, Gaussian weights)"
                              if exact is not None else "- (the exact law is of the forward property, "
                              "one input, Gaussian weights)"))
    lines.append("paper: " + ("Arpit & Bengio's bound (the authors' code) of each property, twice it for both; "
                              "not an upper bound at small eps and large widths"
                              if paper is not None else "- (the bound is for Gaussian weights with "
                              "E rho_l = 1: init he, or he-in at equal widths)"))
    lines.append("both: a trial fails when its forward or its backward property fails")
    deaths = "some h^l = 0" if cfg.properties == "forward" else "some h^l = 0 or delta^L = 0"
    lines.append(f"dead networks ({deaths}): {s.dead:,}")
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


def _exact_forward(cfg, eps):
    """Exact forward failure probabilities (norm form) where defined, else None."""
    from .theory import GAUSSIAN_INITS, exact_forward_failure
    if cfg.samples != 1 or cfg.dist != "normal" or cfg.init not in GAUSSIAN_INITS:
        return None
    return exact_forward_failure(eps, list(cfg.widths), "norm", cfg.input_dim, cfg.init)


def _widths(ws):
    if len(set(ws)) == 1:
        return f"{ws[0]} x {len(ws)}"
    return ",".join(str(w) for w in ws)


def _data(cfg):
    return cfg.data if not cfg.fixed_data else f"fixed {cfg.data}"


def _paper(cfg, eps):
    """The paper's bound of one property (mcinit.results.paper_bound) at each eps, or None."""
    from .results import paper_bound
    return paper_bound(cfg, eps, "forward")


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


def sweep_table(named, output=None):
    """Lines comparing the runs of a sweep, one row each (named: [(name, RunResult)] in order).

    A row holds the options whose values differ between the runs (the run's name when none
    does), the trials, the means of rho_L and gamma_L (the last layer), and the failure
    probability at COMPARE_EPS (norm form) with its exact 95% interval: of both properties,
    or of the one the run computed; beside it the paper's bound of that property."""
    if not named:
        return ["mcinit sweep: no run"]
    shown = [_options_shown(r.config) for _, r in named]
    keys = [k for k in dict.fromkeys(k for s in shown for k in s) if len({s.get(k) for s in shown}) > 1]
    header = (keys or ["run"]) + ["trials", "rho_L mean", "gamma_L mean", f"P(fail) at eps {COMPARE_EPS:g}",
                                  "property", "paper"]
    rows = []
    for (name, result), opts in zip(named, shown):
        cfg, s = result.config, result.summary
        L = cfg.depth
        means = [f"{s.mean[q, 0, L - 1]:.5f}" if qn in s.quantities else "-" for q, qn in enumerate(("fwd", "bwd"))]
        prop = "both" if "both" in result.failures else next(iter(result.failures))
        at = np.flatnonzero(np.isclose(result.eps, COMPARE_EPS))
        fail = _ci(result.failures[prop][at[0]], s.trials) if len(at) and s.trials else "-"
        paper = _paper(cfg, [COMPARE_EPS])
        if paper is not None and prop == "both":
            paper = np.minimum(1.0, 2.0 * paper)
        rows.append([opts.get(k, "-") for k in keys] if keys else [name])
        rows[-1] += [f"{s.trials:,}", *means, fail, prop, f"{paper[0]:.3g}" if paper is not None else "-"]
    where = f" in {output}" if output else ""
    lines = [f"mcinit sweep: {len(named)} run{'s' if len(named) != 1 else ''}{where}, compared:"]
    lines += _aligned(header, rows)
    lines += [f"P(fail): fraction of trials whose property (both: forward or backward) fails at eps {COMPARE_EPS:g}, "
              "norm form, with its exact 95% interval",
              "paper: Arpit & Bengio's bound of that property as the authors' code encodes it (-: outside its setting)",
              "every run in full: mcinit report FILE, or mcinit sweep -v"]
    return lines
