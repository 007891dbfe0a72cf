"""Reports: terminal tables of a results file, a figure, and the widths the bounds require.

    import mcinit
    from mcinit import report
    res = mcinit.load("sweep.h5")
    print(report.report_text(res))                 # per-layer and failure tables, in words too
    report.plot_report(res, "sweep.png")           # (a) layers, (b) failure vs width/eps, (c) histogram
    print(report.bound_text(0.15, 0.05, depth=10, widths=[1000, 4000]))

Every number says which form it is in: the *norm* form |sqrt(ratio) - 1| or the
*squared* form |ratio - 1| (DESIGN section 2).  The ratios themselves (rho_l,
gamma_l) are always the squared ratios of the design notes.

The paper bound shown beside the measurements is PAPER_PROVENANCE; at small
eps and large widths it is not an upper bound (see :func:`paper_caveat`).

:func:`exact_log_density` computes the exact density of ln rho_L for one input
and Gaussian weights (FFT convolution of the layers' log-factor densities), which
the figure draws over the measured histogram.
"""

import functools
import math
import textwrap

import numpy as np
from scipy import signal, special, stats

from . import theory
from .stats import HIST_BINS, Summary, clopper_pearson

__all__ = ["report_text", "plot_report", "bound_text", "default_eps", "exact_log_density",
           "exact_ratio_density", "paper_caveat", "PAPER_PROVENANCE"]

PAPER_PROVENANCE = ("the bound as encoded in the authors' public reference code "
                    "(devansharpit/overparametrization_benefits, bound_comparison.py)")

_PAPER_INITS = ("he", "he-in")          # as mcinit.results: the bound is derived for He
_GAUSSIAN_INITS = theory.GAUSSIAN_INITS
#: candidate tolerances for the default eps, and the ones preferred when many are informative
_EPS_LADDER = (0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0)
_EPS_CORE = (0.1, 0.25, 0.5, 1.0)
_MAX_DEFAULT_EPS = 4
#: tolerance of comparisons with the exact value (it is a sum of terms and can exceed 1 by rounding)
_REL_TOL = 1e-9
#: up to this many runs get full per-layer tables; more get one compact line each
_FULL_LAYER_RUNS = 3
_PROP_WORDS = {
    "forward": "forward property (rho_l = ||h^l||^2/||x||^2)",
    "backward": "backward property (gamma_l = ||dloss/dW_l||_F^2/(||x||^2 ||delta^L||^2))",
    "both": "both properties (a trial fails when either fails)",
}


def _form_words(form):
    if form == "norm":
        return "norm form: deviation |sqrt(ratio) - 1|"
    if form == "squared":
        return "squared form: deviation |ratio - 1|"
    raise ValueError(f"form must be 'norm' or 'squared', got {form!r}")


def _paper_eps(eps, form):
    """The norm-form tolerance at which the paper bound is applied (as mcinit.results does)."""
    return theory.norm_tolerance(eps, form)


@functools.lru_cache(maxsize=1)
def _caveat_example():
    m, L, e = 4000, 10, 0.15
    return m, L, e, float(theory.paper_delta(m, e, 1, L)), float(theory.exact_forward_failure(e, [m] * L))


def paper_caveat(tables=True):
    """Lines: the small-eps caveat of the encoded paper bound, with a worked example.

    tables: end with the sentence about violations in the measured tables (report_text);
    False ends with the one about the bound table of bound_text."""
    m, L, e, pd_, px = _caveat_example()
    last = (["  Where a table below shows the bound VIOLATED, that is a property of the encoded bound,",
             "  not a Monte Carlo error."] if tables else
            ["  Where the output below says 'paper < exact' or shows a paper width below the exact one,",
             "  the encoded bound promises a smaller failure probability than the true one there."])
    return [
        "Caution: this encoded paper bound is NOT an upper bound at small eps and large widths.",
        "  In the width m it decays like exp(-m eps/(4L)), while the true failure probability decays",
        "  like exp(-c m eps^2/L): at small eps the encoded bound falls below the truth. Example:",
        f"  m={m}, L={L}, N=1, eps={e} (norm form): paper_delta {pd_:.2g}, exact probability {px:.2g}.",
    ] + last


# ---------------------------------------------------------------------------
# small formatting helpers

def _g(x, digits=3):
    """A number in %g style, '-' for NaN/None."""
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return "-" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _p(x, digits=3):
    """A probability: like _g, but values just below 1 keep enough digits to show their distance from 1."""
    if x is not None and np.isfinite(x) and 0.99 < x < 1:
        if 1.0 - x < 1e-5:
            return f"1-{1.0 - x:.2g}"
        return f"{x:.{digits + int(math.floor(-math.log10(1.0 - x)))}g}"
    return _g(x, digits)


def _f(x, width=9, decimals=4):
    if x is None or not np.isfinite(x):
        return f"{'-':>{width}}"
    return f"{x:{width}.{decimals}f}"


def _widths_label(widths):
    ws = list(widths)
    if len(set(ws)) == 1:
        return f"{ws[0]}"
    if len(ws) <= 4:
        return ",".join(map(str, ws))
    return ",".join(map(str, ws[:3])) + f",..({len(ws)})"


def _init_label(c):
    return c.init if c.dist == "normal" or c.init.startswith("wn") else f"{c.init}/{c.dist}"


def _table(header, rows, align=None):
    """Fixed-width text table; align is a string of 'l'/'r' per column."""
    cols = len(header)
    align = align or "r" * cols
    width = [max(len(str(header[i])), *(len(str(r[i])) for r in rows)) if rows else len(str(header[i]))
             for i in range(cols)]

    def fmt(r):
        return "  ".join(str(r[i]).ljust(width[i]) if align[i] == "l" else str(r[i]).rjust(width[i])
                         for i in range(cols)).rstrip()
    return [fmt(header), "  ".join("-" * w for w in width)] + [fmt(r) for r in rows]


_KEEP = "\x01" * len(PAPER_PROVENANCE)          # one unbreakable word of the same length


def _wrap(text, width=110):
    """Wrap a paragraph with a hanging indent, never breaking the provenance sentence of the paper bound."""
    text = text.replace(PAPER_PROVENANCE, _KEEP)
    out = textwrap.fill(text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
    return out.replace(_KEEP, PAPER_PROVENANCE)


def _eps_list(values):
    return ", ".join(_g(v, 4) for v in values)


# ---------------------------------------------------------------------------
# default tolerances

def default_eps(results, form="norm"):
    """A few tolerances at which the runs' failure probabilities say something.

    From the ladder 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2 (in the given form) keep the eps
    at which some run has 0 < p_hat < 1 (forward or backward property); when more
    than four are informative, keep first those where the encoded paper bound is
    violated, then 0.1, 0.25, 0.5, 1.  Falls back to 0.1, 0.25, 0.5, 1.
    """
    _form_words(form)
    ladder = np.asarray(_EPS_LADDER)
    informative = np.zeros(len(ladder), bool)
    violated = np.zeros(len(ladder), bool)
    for run in results.runs:
        T = run.completed
        if T == 0:
            continue
        counts = run.failure_counts(ladder, form)
        for p in ("forward", "backward"):
            k = counts[p]
            informative |= (k > 0) & (k < T)
            c = run.config
            if c.init in _PAPER_INITS:
                lo, _ = clopper_pearson(k, T)
                pdel = np.asarray(theory.paper_delta(min(c.widths), _paper_eps(ladder, form),
                                                     c.samples, c.depth), float)
                violated |= lo > pdel
    chosen = [float(e) for e, ok in zip(ladder, informative) if ok]
    if not chosen:
        return list(_EPS_CORE)
    if len(chosen) > _MAX_DEFAULT_EPS:
        prio = [float(e) for e, v, ok in zip(ladder, violated, informative) if v and ok]
        prio += [e for e in _EPS_CORE if e in chosen and e not in prio]
        prio += [e for e in chosen if e not in prio]
        chosen = sorted(prio[:_MAX_DEFAULT_EPS])
    return chosen


# ---------------------------------------------------------------------------
# 1. text report

def _layer_section(results, layers):
    T = {r.name: r.completed for r in results.runs}
    layers = layers.copy()
    empty = layers["count"] == 0                   # no value yet: no mean either
    for col in ("rho_mean", "rho_sd", "gamma_mean", "gamma_sd"):
        layers.loc[empty, col] = np.nan
    lines = ["Per-layer ratios over all (trial, input) pairs: mean and sd of rho_l and gamma_l (the squared",
             "ratios themselves, not deviations); 'exact' = the one-input law of rho_l (DESIGN 4; the sd for",
             "Gaussian weights only). z = (mean - exact mean)/(sd/sqrt(trials)): inputs of one trial are",
             "dependent, so sqrt(trials) (not pairs) is used, which makes |z| conservative.", ""]
    many = len(results.runs) > _FULL_LAYER_RUNS
    if many:
        rows = []
        for run in results.runs:
            c = run.config
            d = layers[layers.run == run.name]
            last = d.iloc[-1]
            zmax, zl = _zmax(d, T[run.name])
            rows.append([run.name, _widths_label(c.widths), c.depth, c.samples, _init_label(c),
                         f"{run.completed:,}", f"{int(last['dead']):,}", _f(last.rho_mean, 8), _f(last.rho_sd, 7),
                         _f(last.exact_rho_mean, 8), _f(last.exact_rho_sd, 7), _f(last.gamma_mean, 8),
                         _f(last.gamma_sd, 7), "-" if zl is None else f"{zmax:.1f} (l={zl})"])
        lines.append(f"{len(results.runs)} runs: the last layer l = L of each (compact; results.layers() has "
                     "every layer)")
        lines += _table(["run", "width", "L", "N", "init", "trials", "dead", "rho mean", "rho sd",
                         "exact mean", "exact sd", "gamma mean", "gamma sd", "max|z|"], rows, "llrrlrrrrrrrrr")
    else:
        for run in results.runs:
            c = run.config
            d = layers[layers.run == run.name]
            lines.append(f"run {run.name}: widths {_widths_label(c.widths)} x L={c.depth}, input {c.input_dim}, "
                         f"N={c.samples}, init {_init_label(c)}, kernel {run.kernel}, "
                         f"{run.completed:,} trials ({run.planned:,} planned), dead {int(d['dead'].iloc[0]):,}")
            rows = []
            for _, r in d.iterrows():
                z = _z(r, T[run.name])
                rows.append([int(r.layer), int(r.width), _f(r.rho_mean), _f(r.rho_sd), _f(r.exact_rho_mean),
                             _f(r.exact_rho_sd), _f(r.gamma_mean), _f(r.gamma_sd), _g(z, 2) if z is not None else "-"])
            lines += _table(["layer", "width", "rho mean", "rho sd", "exact mean", "exact sd",
                             "gamma mean", "gamma sd", "z"], rows)
            lines.append("")
    flagged = []
    for run in results.runs:
        zmax, zl = _zmax(layers[layers.run == run.name], T[run.name])
        if zl is not None and zmax > 5:
            flagged.append(f"  {run.name}: the mean of rho_{zl} is {zmax:.1f} standard errors from the exact mean")
    if flagged:
        lines += ["", "CHECK: measured means far from the exact law (|z| > 5 is very unlikely by chance):"] + flagged
    return lines


def _z(row, trials):
    sd = row.exact_rho_sd if np.isfinite(row.exact_rho_sd) else row.rho_sd
    if not (trials > 0 and np.isfinite(sd) and sd > 0 and np.isfinite(row.exact_rho_mean)):
        return None
    return float((row.rho_mean - row.exact_rho_mean) / (sd / math.sqrt(trials)))


def _zmax(d, trials):
    zs = [(_z(r, trials), int(r.layer)) for _, r in d.iterrows()]
    zs = [(abs(z), l) for z, l in zs if z is not None]
    if not zs:
        return None, None
    return max(zs)


def _row_key(df):
    """Rows grouped by init (in the order of the runs), then depth, N, width and eps."""
    order = {k: i for i, k in enumerate(dict.fromkeys(df.init))}
    return df.assign(_o=df.init.map(order)).sort_values(
        ["_o", "dist", "depth", "samples", "width", "widths", "eps"], kind="stable").drop(columns="_o")


def _outside(p, lo, hi):
    """p outside [lo, hi], with a relative tolerance for rounding (arrays or scalars)."""
    return (p < lo * (1 - _REL_TOL)) | (p > hi * (1 + _REL_TOL))


def _failure_section(results, prop, eps, form, level):
    df = _row_key(results.failure(eps, prop=prop, form=form, level=level))
    pct = f"{level * 100:.4g}%"
    dev = "|sqrt(ratio) - 1|" if form == "norm" else "|ratio - 1|"
    head = (f"FAILURE PROBABILITY, {_PROP_WORDS[prop]}. A trial fails when the deviation ({form} form {dev}) "
            f"exceeds eps at some layer and input; dead networks count as failures. p_hat with its exact "
            f"(Clopper-Pearson) {pct} interval.")
    if prop == "forward":
        head += (" chernoff: rigorous Chernoff + union bound (N inputs, Gaussian weights); p_exact: exact "
                 "probability for one input (Gaussian weights).")
    else:
        head += " chernoff and p_exact exist for the forward property only ('-')."
    note_form = "" if form == "norm" else (" (applied at the norm tolerance sqrt(1+eps)-1, which implies a "
                                           "squared deviation <= eps)")
    head += f" paper_delta: {PAPER_PROVENANCE}, norm form{note_form}; He initialisation only."
    if prop == "both":
        head += (" For 'both' paper_delta is the per-property value; the union of the paper's two claims "
                 "would allow up to twice it.")
    lines = [head]
    dup = df.duplicated(["width", "widths", "depth", "samples", "init", "dist", "eps"]).any()
    rows = []
    for _, r in df.iterrows():
        flags = ""
        if r.bound_violated:
            flags += "V"
        if r.paper_vacuous:
            flags += "v"
        if np.isfinite(r.chernoff) and r.chernoff < r.ci_low:
            flags += "C"
        if np.isfinite(r.p_exact) and _outside(r.p_exact, r.ci_low, r.ci_high):
            flags += "X"
        row = ([r.run] if dup else []) + [
            _widths_label(r.widths.split(",")), int(r.depth), int(r.samples),
            r.init if r.dist == "normal" or r.init.startswith("wn") else f"{r.init}/{r.dist}",
            _g(r.eps, 4), f"{int(r.trials):,}", _p(r.p_hat, 4), f"[{_p(r.ci_low)}, {_p(r.ci_high)}]",
            _p(r.paper_delta), _p(r.chernoff), _p(r.p_exact, 4), flags]
        rows.append(row)
    header = (["run"] if dup else []) + ["width", "L", "N", "init", f"eps ({form})", "trials", "p_hat",
                                         f"{pct} interval", "paper_delta", "chernoff", "p_exact", "flags"]
    align = ("l" if dup else "") + "lrrlrrrlrrrl"
    lines = [_wrap(x) for x in lines] + [""] + _table(header, rows, align)
    lines.append("flags: V paper bound violated (the whole interval lies above it), v paper bound vacuous (>= 1),\n"
                 "C Chernoff bound below the interval, X exact value outside the interval")
    configs = {r.name: r.config for r in results.runs}
    lines += [""] + [_wrap(s) for s in _statements(df, prop, form, pct, level, configs)]
    if prop == "forward":
        lines += _multi_input_lines(results, df, form)
    return lines


def _off_paper(c):
    """Why a run's initialisation is not the paper's setting (E rho_l = 1 in every layer), or None."""
    if c.init == "he-in" and any(w != c.input_dim for w in c.widths):
        means = ", ".join(f"{w / c.input_dim:.3g}" for w in c.widths[:4]) + (", ..." if c.depth > 4 else "")
        return (f"it uses he-in (fan_in) with n_0 = {c.input_dim} and hidden widths {_widths_label(c.widths)}, "
                f"so E rho_l = n_l/n_0 = {means}, not 1")
    return None


def _statements(df, prop, form, pct, level, configs=None):
    out = []
    tag = f"[{prop}, {form} form]"
    viol = df[df.bound_violated]
    for run, d in viol.groupby("run", sort=False):
        parts, proven = [], True
        for _, r in d.iterrows():
            part = (f"eps={_g(r.eps, 4)}: interval [{_p(r.ci_low)}, {_p(r.ci_high)}] > paper_delta "
                    f"{_p(r.paper_delta)}")
            if np.isfinite(r.p_exact):
                part += f", exact {_p(r.p_exact)}"
            proven &= bool(np.isfinite(r.p_exact) and r.p_exact > r.paper_delta)
            if prop == "both":
                twice = min(1.0, 2.0 * r.paper_delta)
                part += f" ({'also' if r.ci_low > twice else 'but not'} above 2 x paper_delta = {_p(twice)})"
            parts.append(part)
        s = (f"VIOLATED {tag}: run {run}: the whole {pct} interval of the measured failure probability lies "
             f"above the paper bound at {'; '.join(parts)}.")
        off = _off_paper(configs[run]) if configs and run in configs else None
        if off:
            s += (f" Here {off}: this is not the paper's setting, and the violation reflects that initialisation "
                  "(not a Monte Carlo error, nor the small-eps caveat).")
        elif proven:
            s += (" The exact probability is above the bound as well, so this is a property of the encoded "
                  "bound, not a Monte Carlo error.")
        else:
            s += (f" The intervals are exact, so each is a false alarm with probability at most "
                  f"{(1 - level) / 2:.3g}: this is a property of the encoded bound (see the caution above), "
                  "not a Monte Carlo error.")
        if prop == "both":
            s += " (For 'both', 2 x paper_delta is the union of the paper's forward and backward claims.)"
        out.append(s)
    vac = df[df.paper_vacuous]
    for run, d in vac.groupby("run", sort=False):
        out.append(f"VACUOUS {tag}: run {run}: the paper bound is >= 1 (it says nothing) at eps = "
                   f"{_eps_list(d.eps)}.")
    na = df[df.paper_delta.isna()]
    if len(na):
        inits = sorted(set(na.init))
        out.append(f"Paper bound not shown for init {', '.join(inits)}: it is derived for He initialisation.")
    for _, r in df.iterrows():
        if np.isfinite(r.chernoff) and r.chernoff < r.ci_low:
            out.append(f"CHERNOFF BELOW THE MEASUREMENT {tag}: run {r.run}, eps={_g(r.eps, 4)}: chernoff "
                       f"{_p(r.chernoff)} < interval [{_p(r.ci_low)}, {_p(r.ci_high)}]. The Chernoff bound is "
                       f"rigorous, so this happens by chance with probability at most {(1 - level) / 2:.3g}; "
                       "repeated cases point to an error in the bound or in the sampler.")
    have = df[np.isfinite(df.p_exact) & (df.trials > 0)]
    outside = have[_outside(have.p_exact, have.ci_low, have.ci_high)]
    for _, r in outside.iterrows():
        pv = stats.binomtest(int(r.failures), int(r.trials), float(min(max(r.p_exact, 0.0), 1.0))).pvalue
        side = "above" if r.p_exact > r.ci_high else "below"
        out.append(f"Exact value outside the {pct} interval {tag}: run {r.run}, eps={_g(r.eps, 4)}: p_exact "
                   f"{_p(r.p_exact, 4)} lies {side} [{_p(r.ci_low)}, {_p(r.ci_high)}] (p_hat {_p(r.p_hat, 4)}, "
                   f"two-sided binomial p-value {_g(pv, 2)}).")
    if len(have):
        out.append(f"{len(outside)} of {len(have)} exact values lie outside the {pct} intervals; for a correct "
                   f"program this happens by chance {1 - level:.0%} of the time (at most; the intervals are "
                   f"conservative), about {(1 - level) * len(have):.1f} expected here. Small p-values, or many "
                   "more cases than expected, point to an error.")
    if not out:
        out.append(f"No violations, vacuous bounds or disagreements {tag}.")
    return out


def _multi_input_lines(results, df, form):
    """For N > 1 inputs: where the measurement lies between the one-input exact value and the union bound."""
    rows, notes = [], []
    for run in results.runs:
        c = run.config
        if c.samples == 1 or c.dist != "normal" or c.init not in _GAUSSIAN_INITS or run.completed == 0:
            continue
        d = df[df.run == run.name]
        p1 = np.atleast_1d(theory.exact_forward_failure(d.eps.to_numpy(), list(c.widths), form,
                                                        c.input_dim, c.init))
        for (_, r), p in zip(d.iterrows(), p1):
            union = min(1.0, c.samples * p)
            if r.ci_high < p * (1 - _REL_TOL):
                where = "BELOW the one-input value (impossible: an error)"
            elif r.ci_low > union * (1 + _REL_TOL):
                where = "ABOVE the union bound (impossible: an error)"
            else:
                where = "between"
            rows.append([run.name, int(c.samples), _g(r.eps, 4), _g(r.p_hat, 4),
                         f"[{_p(r.ci_low)}, {_p(r.ci_high)}]", _p(p, 4), _p(union, 4), where])
            if where != "between":
                notes.append(f"CHECK: run {run.name}, eps={_g(r.eps, 4)}: the measurement is {where}.")
    if not rows:
        return []
    return (["", _wrap("N > 1 inputs: the exact N-input probability has no closed form; it lies between the "
                   "one-input value P1 and the union N*P1 (DESIGN 5). Where does the measurement lie?")]
            + _table(["run", "N", f"eps ({form})", "p_hat", "interval", "P1 (one input)", "N*P1 (union)",
                      "measurement"], rows, "lrrrlrrl") + notes)


def report_text(results, eps=None, form="norm", level=0.95):
    """The report of a results file as terminal text.

    results  mcinit.results.Results (mcinit.load(path))
    eps      tolerances (in the given form); None: default_eps(results, form)
    form     'norm' (|sqrt(ratio) - 1|) or 'squared' (|ratio - 1|)
    level    confidence level of the Clopper-Pearson intervals
    Per-layer tables (one compact line per run when there are many runs), then one
    failure table per property (forward, backward, both) over all runs and eps, each
    followed by plain statements: where the paper bound is VIOLATED or VACUOUS, where
    the Chernoff bound or the exact value disagree with the measurement.
    """
    _form_words(form)
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    eps = default_eps(results, form) if eps is None else [float(e) for e in np.atleast_1d(eps)]
    n = len(results.runs)
    lines = [f"mcinit report: {results.path} ({results.kind}, {n} run{'s' if n != 1 else ''})",
             f"Tolerances eps = {_eps_list(eps)}, {_form_words(form)} (rho and gamma are squared ratios; "
             f"the norm form compares sqrt(ratio), the form the paper bound is stated in).",
             f"Paper bound: {PAPER_PROVENANCE}: delta = min(1, 4NL exp(-m((1+eps)^(1/L) - 1)/4)), m the "
             "narrowest hidden width."]
    lines = [_wrap(x) for x in lines] + paper_caveat() + [""]
    empty = [r.name for r in results.runs if r.completed == 0]
    if empty:
        lines += [f"Runs with no completed trial (left out of the tables' statements): {', '.join(empty)}", ""]
    lines += _layer_section(results, results.layers())
    for prop in ("forward", "backward", "both"):
        lines += ["", ""] + _failure_section(results, prop, eps, form, level)
    if any(r.config.sup for r in results.runs):
        lines += ["", ""] + _sup_section(results, eps, form, level)
    for run in results.runs:
        c = run.config
        off = _off_paper(c)
        if off:
            lines += ["", _wrap(f"Note: run {run.name}: {off}; that is not the paper's setting (He, E rho_l = 1), "
                                "so its paper_delta is shown for comparison only.")]
    return "\n".join(lines) + "\n"


def _sup_section(results, eps, form, level):
    """The forward property for all inputs: the supremum search beside the random inputs."""
    lines = [_wrap("FORWARD PROPERTY FOR ALL INPUTS (the paper's third result), from the supremum search: "
                   f"a trial fails when some evaluated input of the unit sphere deviates by more than eps "
                   f"({_form_words(form)}) at some layer. The search only ever finds inputs that exist, so "
                   "its failure probability is a LOWER ESTIMATE of the probability for all of R^n; beside it "
                   f"the same property over the N random sphere inputs alone. {int(level * 100)}% exact intervals."),
             ""]
    fin = results.failure(eps, prop="forward", form=form, level=level).set_index(["run", "eps"])
    sup = results.failure(eps, prop="sup", form=form, level=level)
    rows = []
    for _, r in sup.iterrows():
        f = fin.loc[(r["run"], r["eps"])]
        rows.append([str(r["input_dim"]), _widths_label(r["widths"].split(",")), str(r["depth"]),
                     str(r["samples"]), _g(r["eps"]), f"{_p(f['p_hat'])} [{_p(f['ci_low'])}, {_p(f['ci_high'])}]",
                     f"{_p(r['p_hat'])} [{_p(r['ci_low'])}, {_p(r['ci_high'])}]"])
    lines += _table(["n_0", "widths", "L", "N random", "eps", "random inputs only", "with the search (lower est.)"],
                    rows, "rrrrrll")
    # how far the search reaches beyond the random inputs, per run: mean worst deviation of the last layer
    rows = []
    for run in results.runs:
        c = run.config
        if not c.sup or run.completed == 0:
            continue
        rec = run.records(("fwd_min", "fwd_max", "sup_min", "sup_max"), 0, min(run.completed, 1 << 20))
        f = np.sqrt if form == "norm" else (lambda v: v)
        dev_r = np.maximum(np.abs(f(rec["fwd_max"]) - 1), np.abs(f(rec["fwd_min"]) - 1))
        dev_s = np.maximum(np.abs(f(rec["sup_max"]) - 1), np.abs(f(rec["sup_min"]) - 1))
        rows.append([run.name, str(c.input_dim), str(c.depth), f"{c.sup_starts},{c.sup_steps}",
                     _g(dev_r[:, 0].mean()), _g(dev_s[:, 0].mean()), _g(dev_r[:, -1].mean()), _g(dev_s[:, -1].mean())])
    lines += ["", _wrap("Mean worst deviation per trial (first and last layer): over the random inputs, and with the "
                        "search. Compare the runs across the input dimension n_0 and the depth L: the paper's width "
                        "bound for all inputs depends on both."), ""]
    lines += _table(["run", "n_0", "L", "starts,steps", "layer 1 random", "layer 1 search", "layer L random",
                     "layer L search"], rows, "lrrrrrrr")
    return lines


# ---------------------------------------------------------------------------
# exact density of ln rho_L

def _log_gamma_const(a):
    """a ln a - a - lnGamma(a), without cancellation for large a (Stirling series)."""
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    big = a >= 20.0
    ab = a[big]
    out[big] = (0.5 * np.log(ab / (2.0 * math.pi))
                - (1.0 / (12.0 * ab) - 1.0 / (360.0 * ab ** 3) + 1.0 / (1260.0 * ab ** 5)
                   - 1.0 / (1680.0 * ab ** 7)))
    sm = a[~big]
    out[~big] = sm * np.log(sm) - sm - special.gammaln(sm)
    return out


def _layer_log_density(n, v, h, tol):
    """(j0, f): density of ln(v chi2(K)), K ~ Binomial(n, 1/2) restricted to K >= 1, at y = (j0 + i) h."""
    k = np.arange(1, n + 1)
    pmf = stats.binom.pmf(k, n, 0.5)
    left = np.cumsum(pmf)
    right = np.cumsum(pmf[::-1])[::-1]
    keep = (left > tol) & (right > tol)            # drops at most tol on either side
    k, pmf = k[keep], pmf[keep]
    a = 0.5 * k
    log2v = math.log(2.0 * v)
    lo = log2v + math.log(special.gammaincinv(a[0], tol))
    hi = log2v + math.log(special.gammainccinv(a[-1], tol))
    j0, j1 = math.floor(lo / h), math.ceil(hi / h)
    y = h * np.arange(j0, j1 + 1)
    f = np.zeros(len(y))
    c = _log_gamma_const(a) + np.log(pmf)
    la = np.log(a)
    step = max(1, (1 << 22) // len(y))
    for i in range(0, len(k), step):
        u = (y - log2v)[None, :] - la[i:i + step, None]          # ln(G/a), G ~ Gamma(a, 1)
        with np.errstate(over="ignore"):
            f += np.exp(c[i:i + step, None] - a[i:i + step, None] * (np.expm1(u) - u)).sum(axis=0)
    return j0, f


def _trim(j0, f, h, tol):
    """Drop tail points whose total mass is below tol on each side."""
    m = np.cumsum(f) * h
    total = m[-1]
    i0 = int(np.searchsorted(m, tol, side="right"))
    i1 = int(np.searchsorted(m, total - tol, side="left")) + 1
    i0 = max(0, min(i0, len(f) - 1))
    i1 = max(i0 + 1, min(i1 + 1, len(f)))
    return j0 + i0, f[i0:i1]


def exact_log_density(widths, input_dim=None, init="he", *, tol=1e-15, points_per_sd=8):
    """Exact density of y = ln rho_L for one input and Gaussian weights, on a uniform grid.

    rho_L = prod_l v_l chi2(K_l), K_l ~ Binomial(n_l, 1/2) independent (DESIGN 4), so
    ln rho_L is a sum of independent log-factors, each a binomial mixture of densities
    of ln(v_l chi2(k)).  Each is sampled on the lattice y = j h (h = 1/points_per_sd of
    the narrowest log-chi-square sd) and the sum's density is their FFT convolution
    (a trapezoidal rule on R for smooth, fast-decaying densities: spectrally accurate).

    The atom at rho_L = 0 (some K_l = 0: a dead network, probability p_dead) has no
    density and is left out: the returned sub-density integrates to 1 - p_dead, up to
    the truncations (binomial and chi-square tails, each below ``tol``).

    widths, input_dim, init   as in mcinit.theory.layer_variances
    Returns (y, f, p_dead): the grid (spacing h = y[1] - y[0]), the density of ln rho_L
    there, and P(rho_L = 0) = 1 - prod_l (1 - 2^-n_l).
    """
    w = [int(n) for n in widths]
    v = theory.layer_variances(w, input_dim, init)
    kmax = []
    for n in w:                                   # the largest kept k of each layer sets the finest scale
        pmf = stats.binom.pmf(np.arange(1, n + 1), n, 0.5)
        right = np.cumsum(pmf[::-1])[::-1]
        kmax.append(int(np.nonzero(right > tol)[0][-1]) + 1)
    h = min(math.sqrt(special.polygamma(1, 0.5 * k)) for k in kmax) / points_per_sd
    j0, f = None, None
    for n, vv in zip(w, v):
        jl, fl = _layer_log_density(n, float(vv), h, tol)
        if f is None:
            j0, f = jl, fl
        else:
            f = np.maximum(signal.fftconvolve(f, fl) * h, 0.0)
            j0 = j0 + jl
        j0, f = _trim(j0, f, h, tol)
    p_dead = max(0.0, -math.expm1(sum(math.log1p(-2.0 ** -n) for n in w)))
    return h * np.arange(j0, j0 + len(f)), f, p_dead


def exact_ratio_density(r, y, f):
    """Density of rho_L at r > 0 from exact_log_density's (y, f): f(ln r)/r (0 outside the grid)."""
    r = np.asarray(r, dtype=float)
    out = np.zeros(r.shape)
    pos = r > 0
    out[pos] = np.interp(np.log(r[pos]), y, f, left=0.0, right=0.0) / r[pos]
    return out


# ---------------------------------------------------------------------------
# 2. figure

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
    parts = [_init_label(c), f"m={_widths_label(c.widths)}"]
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


def _theory_curves(c, eps, form, widths=None):
    """Bound curves for a run's configuration: vary the equal width (widths given) or eps (widths None).

    Returns dict of arrays over the varied axis: paper, chernoff, exact (one input), union (N*exact)."""
    gaussian = c.dist == "normal" and c.init in _GAUSSIAN_INITS
    out = {}
    if widths is not None:         # arrays (len(eps), len(widths)); the paper's on a finer real grid
        e = np.atleast_1d(np.asarray(eps, dtype=float))
        if c.init in _PAPER_INITS:
            wf = np.geomspace(widths[0], widths[-1], 200)
            out["paper_x"] = wf
            out["paper"] = np.asarray(theory.paper_delta(wf[None, :], _paper_eps(e, form)[:, None],
                                                         c.samples, c.depth))
        if gaussian:
            ch = np.empty((len(e), len(widths)))
            ex = np.empty((len(e), len(widths)))
            for j, m in enumerate(widths):
                ws = [int(m)] * c.depth
                ch[:, j] = theory.chernoff_bound(e, ws, c.samples, form, c.input_dim, c.init)
                ex[:, j] = theory.exact_forward_failure(e, ws, form, c.input_dim, c.init)
            out["chernoff"], out["exact"] = ch, ex
    else:
        e = np.asarray(eps, dtype=float)
        if c.init in _PAPER_INITS:
            out["paper"] = np.asarray(theory.paper_delta(min(c.widths), _paper_eps(e, form), c.samples, c.depth))
        if gaussian:
            out["chernoff"] = np.asarray(theory.chernoff_bound(e, list(c.widths), c.samples, form, c.input_dim,
                                                               c.init))
            out["exact"] = np.asarray(theory.exact_forward_failure(e, list(c.widths), form, c.input_dim, c.init))
    if "exact" in out:
        out["union"] = np.minimum(1.0, c.samples * out["exact"])
    return out


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
    gaussian = any(r.config.dist == "normal" and r.config.init in _GAUSSIAN_INITS for r in runs)
    paper = any(r.config.init in _PAPER_INITS for r in runs)
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
        curves = _theory_curves(c0, eps, form, widths=wgrid) if equal and len(ws) > 0 else None
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
        if c0.init not in _PAPER_INITS:
            ax.text(0.98, 0.02, f"no paper bound for {c0.init}\n(derived for He)", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7.5, color="0.35")
        eh = [Line2D([], [], color=ecols[i], lw=2.5, label=f"eps = {_g(e, 4)}") for i, e in enumerate(eps)]
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
        tc = _theory_curves(c, tgrid, form)
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
    ax.set_xlabel(f"eps ({form} form: " + ("|sqrt(rho) - 1|" if form == "norm" else "|rho - 1|")
                  + "); grey verticals: the report's eps")
    ax.set_ylabel(f"P(forward failure), {form} form")
    widths = {_widths_label(r.config.widths) for r in results.runs}
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
        if c.dist == "normal" and c.init in _GAUSSIAN_INITS:
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
            exact_missing.append(_init_label(c))
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
    eps, form as in report_text.  Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _form_words(form)
    eps = default_eps(results, form) if eps is None else [float(e) for e in np.atleast_1d(eps)]
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


# ---------------------------------------------------------------------------
# 3. widths the bounds need

def bound_text(eps, delta, depth, samples=1, widths=None, form="norm", init="he", input_dim=None):
    """The widths each bound needs for P(forward failure) <= delta, and the bounds at given widths.

    eps       tolerance in the given form ('norm': |sqrt(rho) - 1|, 'squared': |rho - 1|)
    delta     target failure probability in (0, 1)
    depth     L;  samples: N inputs
    widths    optional list of candidate equal hidden widths m (each an L-layer network of width m)
    init      Gaussian initialisation preset;  input_dim: n_0 for the values at the given widths
              (default n_0 = m; the required widths always take n_0 = m)
    Paper (theory.paper_width, at the norm tolerance), Chernoff and exact (theory.required_widths);
    for N > 1 the 'exact' width is that of the union bound N * P_exact, and the one-input width
    (a lower bound on what N inputs need) is shown beside it.
    """
    _form_words(form)
    e = float(eps)
    d = float(delta)
    L = int(depth)
    N = int(samples)
    if not (e > 0 and math.isfinite(e)):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if not 0 < d < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    if L < 1 or N < 1:
        raise ValueError("depth and samples must be >= 1")
    if init not in _GAUSSIAN_INITS:
        raise ValueError(f"init must be one of {_GAUSSIAN_INITS} (the bounds need Gaussian weights)")
    e_norm = float(_paper_eps(e, form))
    lines = [f"mcinit bound: forward property, eps = {_g(e, 4)} ({_form_words(form)}), delta = {_g(d, 4)}, "
             f"depth L = {L}, N = {N} input{'s' if N > 1 else ''}, init {init} (Gaussian weights)",
             f"Paper bound: {PAPER_PROVENANCE}; derived for He initialisation, stated in the norm form"
             + ("" if form == "norm" else f" (applied at the norm tolerance sqrt(1+eps)-1 = {e_norm:.4g})") + "."]
    lines = [_wrap(x) for x in lines] + paper_caveat(tables=False)
    lines += ["", "Smallest equal hidden width m (n_0 = m) with bound <= delta:"]
    rows = []
    errors = []
    paper_m = None
    if init in _PAPER_INITS:
        try:
            paper_m = theory.paper_width(e_norm, d, N, L)
            rows.append(["paper (authors' code)", f"{paper_m:,}" if paper_m < 10 ** 15 else f"{float(paper_m):.4g}",
                         "closed form"])
        except ValueError as err:
            rows.append(["paper (authors' code)", "none", "see below"])
            errors.append(f"paper: {err}")
    else:
        rows.append(["paper (authors' code)", "n/a", f"derived for He, not {init}"])
    need = {}
    for kind, what in (("chernoff", f"Chernoff + union bound, N={N}"),
                       ("exact", "exact, one input" if N == 1 else f"N x exact (union bound over {N} inputs)")):
        try:
            m = theory.required_width(e, d, L, N, kind, form, init)
            need[kind] = m
            rows.append([kind if kind != "exact" or N == 1 else "N x exact", f"{m:,}", what])
        except ValueError as err:
            rows.append([kind, "none", "see below"])
            errors.append(f"{kind}: {err}")
    if N > 1:
        try:
            m1 = theory.required_width(e, d, L, 1, "exact", form, init)
            need["exact1"] = m1
            rows.append(["exact, one input", f"{m1:,}", f"a lower bound on the width {N} inputs need"])
        except ValueError as err:
            rows.append(["exact, one input", "none", "see below"])
            errors.append(f"exact, one input: {err}")
    lines += _table(["bound", "width m", "meaning"], rows, "lrl")
    lines += [_wrap("No width: " + e_) for e_ in dict.fromkeys(errors)]
    ex = need.get("exact1") if N > 1 else need.get("exact")
    if paper_m is not None and ex is not None and paper_m < ex:
        lines.append(_wrap(f"NOTE: the paper width {paper_m:,} is below the width the exact probability needs "
                           f"({ex:,}{', one input' if N > 1 else ''}): at this eps the encoded bound promises "
                           "delta at a width where the true failure probability is larger."))
    elif paper_m is not None and N > 1 and ex is not None and "exact" in need and paper_m < need["exact"]:
        lines.append(_wrap(f"NOTE: the paper width {paper_m:,} lies between the one-input exact width {ex:,} "
                           f"and the union width {need['exact']:,}: these bounds do not decide whether it "
                           f"suffices for {N} inputs (a Monte Carlo run does)."))
    if widths is not None:
        ws = [int(w) for w in np.atleast_1d(widths)]
        if any(w < 1 for w in ws):
            raise ValueError("widths must be positive integers")
        if any(w > theory.MAX_BOUND_WIDTH for w in ws):
            raise ValueError(f"widths must be at most {theory.MAX_BOUND_WIDTH} (2**21) to evaluate the bounds at")
        lines += ["", "Bounds at the given equal widths (n_0 = " + (str(input_dim) if input_dim else "m") + "):"]
        rows = []
        flags = []
        for m in ws:
            n0 = int(input_dim) if input_dim else m
            pdl = float(theory.paper_delta(m, e_norm, N, L)) if init in _PAPER_INITS else float("nan")
            ch = float(theory.chernoff_bound(e, [m] * L, N, form, n0, init))
            p1 = float(theory.exact_forward_failure(e, [m] * L, form, n0, init))
            row = [f"{m:,}", _g(pdl), _g(ch), _g(p1, 4)]
            if N > 1:
                row.append(_g(min(1.0, N * p1), 4))
            fl = []
            if np.isfinite(pdl) and pdl >= 1:
                fl.append("paper vacuous")
            if np.isfinite(pdl) and pdl < p1:
                fl.append("paper < exact: not an upper bound here")
            row.append("; ".join(fl))
            rows.append(row)
            flags += fl
        header = ["width m", "paper_delta", "chernoff", "exact P (one input)"]
        if N > 1:
            header.append(f"N x exact (union, N={N})")
        header.append("note")
        lines += _table(header, rows, "r" * (len(header) - 1) + "l")
        if N > 1:
            lines.append(f"The exact {N}-input probability lies between 'exact P (one input)' and 'N x exact'.")
    return "\n".join(lines) + "\n"
