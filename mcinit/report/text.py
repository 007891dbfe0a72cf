"""The report's text: per-layer and failure tables of a results file, and the widths the bounds require."""

import functools
import math
import textwrap

import numpy as np
from scipy import stats

from .. import theory
from ..options import PROPERTIES
from ..results import chernoff_values, exact_values
from ..stats import FORM_FORMULAS, deviation
from .common import (PAPER_PROVENANCE, default_eps, fmt_g, form_words,
                     init_label, paper_eps, widths_label)

#: tolerance of comparisons with the exact value (it is a sum of terms and can exceed 1 by rounding)
_REL_TOL = 1e-9
#: up to this many runs get full per-layer tables; more get one compact line each
_FULL_LAYER_RUNS = 3
_PROP_WORDS = {
    "forward": "forward property (rho_l = ||h^l||^2/||x||^2)",
    "backward": "backward property (gamma_l = ||dloss/dW_l||_F^2/(||x||^2 ||delta^L||^2))",
    "both": "both properties (a trial fails when either fails)",
}


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


def fmt_p(x, digits=3):
    """A probability: like fmt_g, but values just below 1 keep enough digits to show their distance from 1."""
    if x is not None and np.isfinite(x) and 0.99 < x < 1:
        if 1.0 - x < 1e-5:
            return f"1-{1.0 - x:.2g}"
        return f"{x:.{digits + int(math.floor(-math.log10(1.0 - x)))}g}"
    return fmt_g(x, digits)


def _f(x, width=9, decimals=4):
    if x is None or not np.isfinite(x):
        return f"{'-':>{width}}"
    return f"{x:{width}.{decimals}f}"


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
    return ", ".join(fmt_g(v, 4) for v in values)

# ---------------------------------------------------------------------------
# the report text

def _layer_section(results, layers):
    T = {r.name: r.completed for r in results.runs}
    layers = layers.copy()
    empty = layers["count"] == 0                   # no value yet: no mean either
    for col in ("rho_mean", "rho_sd", "gamma_mean", "gamma_sd"):
        layers.loc[empty, col] = np.nan
    lines = ["Per-layer ratios over all (trial, input) pairs: mean and sd of rho_l and gamma_l (the squared",
             "ratios themselves, not deviations); 'exact' = the one-input law of rho_l (docs/design.md sections 4, 10",
             "and 11; the sd where such a law describes the run). z = (mean - exact mean)/(sd/sqrt(trials)): inputs of one trial are",
             "dependent, so sqrt(trials) (not pairs) is used, which makes |z| conservative.", ""]
    many = len(results.runs) > _FULL_LAYER_RUNS
    if many:
        rows = []
        for run in results.runs:
            c = run.config
            d = layers[layers.run == run.name]
            last = d.iloc[-1]
            zmax, zl = _zmax(d, T[run.name])
            rows.append([run.name, widths_label(c.widths), c.depth, c.samples, init_label(c),
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
            lines.append(f"run {run.name}: widths {widths_label(c.widths)} x L={c.depth}, input {c.input_dim}, "
                         f"N={c.samples}, init {init_label(c)}, kernel {run.kernel}, "
                         f"{run.completed:,} trials ({run.planned:,} planned), dead {int(d['dead'].iloc[0]):,}")
            rows = []
            for _, r in d.iterrows():
                z = _z(r, T[run.name])
                rows.append([int(r.layer), int(r.width), _f(r.rho_mean), _f(r.rho_sd), _f(r.exact_rho_mean),
                             _f(r.exact_rho_sd), _f(r.gamma_mean), _f(r.gamma_sd),
                             fmt_g(z, 2) if z is not None else "-"])
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
    lines += [_wrap(f"Run {r.name} computed the {r.props[0]} property only (--properties {r.config.properties}): "
                    f"its {'gamma' if r.props[0] == 'forward' else 'rho'} columns are '-' (not computed).")
              for r in results.runs if r.config.properties != "both"]
    return lines


def _z(row, trials):
    sd = row.exact_rho_sd if np.isfinite(row.exact_rho_sd) else row.rho_sd
    if not (trials > 0 and np.isfinite(sd) and sd > 0 and np.isfinite(row.exact_rho_mean)
            and np.isfinite(row.rho_mean)):
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


def _failure_section(results, prop, eps, form, level, df):
    """The failure table of ``prop`` (df: report_numbers' table of it) with its statements."""
    pct = f"{level * 100:.4g}%"
    dev = FORM_FORMULAS[form]
    head = (f"FAILURE PROBABILITY, {_PROP_WORDS[prop]}. A trial fails when the deviation ({form} form {dev}) "
            f"exceeds eps at some layer and input; dead networks count as failures. p_hat with its exact "
            f"(Clopper-Pearson) {pct} interval.")
    if prop == "forward":
        head += (" chernoff: rigorous Chernoff + union bound (N inputs); p_exact: exact probability for one "
                 "input; both where an exact law describes the run (Gaussian or orthogonal weights, relu, "
                 "leaky-relu, abs or linear; no Chernoff bound for leaky-relu).")
    else:
        head += " chernoff and p_exact exist for the forward property only ('-')."
    note_form = "" if form == "norm" else (f" (applied at the norm tolerance {theory.NORM_TOLERANCE_WORDS[form]}, "
                                           f"which implies a {form} deviation <= eps)")
    head += f" paper_delta: {PAPER_PROVENANCE}, norm form{note_form}; He initialisation only."
    if prop == "both":
        head += (" For 'both' paper_delta is min(1, 2 delta), delta the paper's bound of one property: the union "
                 "of its forward and backward claims.")
    lines = [head]
    dup = df.duplicated(["width", "widths", "depth", "samples", "init", "dist", "eps"]).any()
    rows = []
    for _, r in df.iterrows():
        flags = ""
        if r.bound_violated:
            flags += "V"
        if r.paper_vacuous:
            flags += "v"
        if r.chernoff_below:
            flags += "C"
        if r.exact_outside:
            flags += "X"
        row = ([r.run] if dup else []) + [
            widths_label(r.widths.split(",")), int(r.depth), int(r.samples),
            r.init if r.dist == "normal" or r.init.startswith("wn") else f"{r.init}/{r.dist}",
            fmt_g(r.eps, 4), f"{int(r.trials):,}", fmt_p(r.p_hat, 4), f"[{fmt_p(r.ci_low)}, {fmt_p(r.ci_high)}]",
            fmt_p(r.paper_delta), fmt_p(r.chernoff), fmt_p(r.p_exact, 4), flags]
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
        return (f"it uses he-in (fan_in) with n_0 = {c.input_dim} and hidden widths {widths_label(c.widths)}, "
                f"so E rho_l = n_l/n_0 = {means}, not 1")
    return None


def _statements(df, prop, form, pct, level, configs=None):
    out = []
    tag = f"[{prop}, {form} form]"
    viol = df[df.bound_violated]
    for run, d in viol.groupby("run", sort=False):
        parts, proven = [], True
        for _, r in d.iterrows():
            part = (f"eps={fmt_g(r.eps, 4)}: interval [{fmt_p(r.ci_low)}, {fmt_p(r.ci_high)}] > paper_delta "
                    f"{fmt_p(r.paper_delta)}")
            if np.isfinite(r.p_exact):
                part += f", exact {fmt_p(r.p_exact)}"
            proven &= bool(np.isfinite(r.p_exact) and r.p_exact > r.paper_delta)
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
            s += (" (For 'both', paper_delta is min(1, 2 delta): the union of the paper's forward and backward "
                  "claims, each delta.)")
        out.append(s)
    vac = df[df.paper_vacuous]
    for run, d in vac.groupby("run", sort=False):
        out.append(f"VACUOUS {tag}: run {run}: the paper bound is >= 1 (it says nothing) at eps = "
                   f"{_eps_list(d.eps)}.")
    residual = {n for n, c in (configs or {}).items() if c.residual}
    na = df[df.paper_delta.isna() & ~df.run.isin(residual)]
    if len(na):
        inits = sorted(set(na.init))
        acts = sorted({c.activation for n, c in (configs or {}).items() if n in set(na.run)} - {"relu"})
        out.append(f"Paper bound not shown for init {', '.join(inits)}"
                   + (f" (activation {', '.join(acts)})" if acts else "")
                   + ": it is derived for ReLU networks with He initialisation.")
    if residual & set(df.run):
        out.append(f"No paper bound, Chernoff bound or exact value for the residual network"
                   f"{'s' if len(residual & set(df.run)) > 1 else ''} "
                   f"{', '.join(sorted(residual & set(df.run)))}: they describe plain ReLU networks.")
    for _, r in df.iterrows():
        if np.isfinite(r.chernoff) and r.chernoff < r.ci_low:
            out.append(f"CHERNOFF BELOW THE MEASUREMENT {tag}: run {r.run}, eps={fmt_g(r.eps, 4)}: chernoff "
                       f"{fmt_p(r.chernoff)} < interval [{fmt_p(r.ci_low)}, {fmt_p(r.ci_high)}]. "
                       "The Chernoff bound is "
                       f"rigorous, so this happens by chance with probability at most {(1 - level) / 2:.3g}; "
                       "repeated cases point to an error in the bound or in the sampler.")
    have = df[np.isfinite(df.p_exact) & (df.trials > 0)]
    outside = have[_outside(have.p_exact, have.ci_low, have.ci_high)]
    for _, r in outside.iterrows():
        pv = stats.binomtest(int(r.failures), int(r.trials), float(min(max(r.p_exact, 0.0), 1.0))).pvalue
        side = "above" if r.p_exact > r.ci_high else "below"
        out.append(f"Exact value outside the {pct} interval {tag}: run {r.run}, eps={fmt_g(r.eps, 4)}: p_exact "
                   f"{fmt_p(r.p_exact, 4)} lies {side} [{fmt_p(r.ci_low)}, {fmt_p(r.ci_high)}] "
                   f"(p_hat {fmt_p(r.p_hat, 4)}, "
                   f"two-sided binomial p-value {fmt_g(pv, 2)}).")
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
        if c.samples == 1 or theory.exact_law_shown(c)[0] is None or run.completed == 0:
            continue
        for _, r in df[df.run == run.name].iterrows():
            p, union = r.p_one_input, r.p_union
            if r.ci_high < p * (1 - _REL_TOL):
                where = "BELOW the one-input value (impossible: an error)"
            elif r.ci_low > union * (1 + _REL_TOL):
                where = "ABOVE the union bound (impossible: an error)"
            else:
                where = "between"
            rows.append([run.name, int(c.samples), fmt_g(r.eps, 4), fmt_g(r.p_hat, 4),
                         f"[{fmt_p(r.ci_low)}, {fmt_p(r.ci_high)}]", fmt_p(p, 4), fmt_p(union, 4), where])
            if where != "between":
                notes.append(f"CHECK: run {run.name}, eps={fmt_g(r.eps, 4)}: the measurement is {where}.")
    if not rows:
        return []
    return (["", _wrap("N > 1 inputs: the exact N-input probability has no closed form; it lies between the "
                   "one-input value P1 and the union N*P1 (docs/design.md section 5). Where does the measurement lie?")]
            + _table(["run", "N", f"eps ({form})", "p_hat", "interval", "P1 (one input)", "N*P1 (union)",
                      "measurement"], rows, "lrrrlrrl") + notes)


def _with_one_input_bounds(df, results, form):
    """The forward table df with p_one_input (the exact one-input probability P1) and p_union
    (min(1, N P1)) for the runs of N > 1 inputs and Gaussian weights, between which the N-input
    probability lies (docs/design.md section 5); NaN for the other runs."""
    df = df.assign(p_one_input=np.nan, p_union=np.nan)
    for run in results.runs:
        c = run.config
        if c.samples == 1 or theory.exact_law_shown(c)[0] is None or run.completed == 0:
            continue
        rows = df.run == run.name
        p1 = exact_values(df.loc[rows, "eps"].to_numpy(), c.widths, form, c.input_dim, c.init, c.activation, c.gain)
        df.loc[rows, "p_one_input"] = p1
        df.loc[rows, "p_union"] = np.minimum(1.0, c.samples * p1)
    return df


def _without_plain_bounds(df, results):
    """The table df with the paper's bound, the Chernoff bound and the exact values blanked (NaN,
    flags False) for residual networks: they are laws of plain ReLU networks."""
    residual = [r.name for r in results.runs if r.config.residual]
    if not residual:
        return df
    rows = df.run.isin(residual)
    for col in ("paper_delta", "chernoff", "p_exact", "p_one_input", "p_union"):
        if col in df:
            df.loc[rows, col] = np.nan
    for col in ("bound_violated", "paper_vacuous", "chernoff_below", "exact_outside"):
        df.loc[rows, col] = False
    return df


#: chi_1 within this of 1 is called critical
_CRITICAL_TOL = 1e-9


def _regime(chi):
    if abs(chi - 1.0) <= _CRITICAL_TOL:
        return "critical"
    return "ordered" if chi < 1.0 else "chaotic"


def meanfield_numbers(results):
    """The mean-field view of each run (mcinit.meanfield; docs/design.md section 13), one row per run it
    describes (residual runs and tanh or gelu on unnormalised fixed data are left out): a DataFrame with
    columns run, activation, depth, beta (sum_l 1/n_l), sigma_w2 (v_L n_(L-1), the last layer's),
    critical_sigma_w2, q_star (the fixed point the last layer's map reaches from its q^a_L; NaN where
    every q is one, inf where the norms grow without bound), q_star_kind (zero, positive, every,
    unbounded), chi_1, regime (ordered, critical or chaotic: chi_1 below, at or above 1), rho_L_meanfield,
    and, for one input of a plain ReLU network with Gaussian weights (meanfield.ks_defined; NaN
    otherwise): p_dead, log_rho_L_mean and log_rho_L_var (exact, given alive), limit_mean and limit_var
    (the Gaussian limit N(-5 beta/2 + sum ln(v_l n_l/2), 5 beta)) and ks_distance between the two laws."""
    from .. import activations, meanfield
    rows = []
    for run in results.runs:
        c = run.config
        p = meanfield.predict_run(c)
        if p is None:
            continue
        every = activations.homogeneous(c.activation) and abs(p.chi_1 - 1.0) <= _CRITICAL_TOL
        kind = ("every" if every else "zero" if p.q_star == 0 else "unbounded" if math.isinf(p.q_star)
                else "positive")
        row = dict(run=run.name, activation=c.activation, depth=c.depth, beta=p.beta, sigma_w2=float(p.sigma_w2[-1]),
                   critical_sigma_w2=p.critical, q_star=math.nan if every else p.q_star, q_star_kind=kind,
                   chi_1=p.chi_1, regime=_regime(p.chi_1), rho_L_meanfield=float(p.rho[-1]))
        law = dict(p_dead=math.nan, log_rho_L_mean=math.nan, log_rho_L_var=math.nan, limit_mean=math.nan,
                   limit_var=math.nan, ks_distance=math.nan)
        if meanfield.ks_defined(c):
            from ..initializers import scheme_of
            var = scheme_of(c)[1]
            lr = meanfield.log_ratio_law(c.widths, var)
            law = dict(p_dead=lr.p_dead, log_rho_L_mean=lr.mean, log_rho_L_var=lr.var, limit_mean=lr.limit_mean,
                       limit_var=lr.limit_var, ks_distance=meanfield.ks_distance(c.widths, var))
        rows.append(dict(row, **law))
    import pandas as pd
    cols = ["run", "activation", "depth", "beta", "sigma_w2", "critical_sigma_w2", "q_star", "q_star_kind", "chi_1",
            "regime", "rho_L_meanfield", "p_dead", "log_rho_L_mean", "log_rho_L_var", "limit_mean", "limit_var",
            "ks_distance"]
    return pd.DataFrame(rows, columns=cols)


_Q_STAR_WORDS = {"every": "every q (the map is q -> q)", "zero": "0 (the pre-activations' variance vanishes "
                 "with depth)", "unbounded": "inf (the pre-activations' variance grows without bound with depth)"}


def _meanfield_section(results, df):
    """The text of meanfield_numbers' rows."""
    lines = ["MEAN-FIELD VIEW AND DEPTH-TO-WIDTH REGIME (docs/design.md section 13)",
             _wrap("Infinite width: the q-map q -> sigma_w^2 E[phi(sqrt(q) z)^2] of the last layer "
                   "(sigma_w^2 = v_L n_(L-1)), its fixed point q* from the layer's q, chi_1 = sigma_w^2 "
                   "E[phi'(sqrt(q*) z)^2] (below 1 ordered, above 1 chaotic) and the mean-field rho_L. "
                   "beta = sum_l 1/n_l sets how far one input's ln rho_L (ReLU, Gaussian weights, given alive) "
                   "is from its Gaussian limit N(sum_l ln(v_l n_l/2) - 5 beta/2, 5 beta) (derived here from "
                   "each layer's exact cumulants); KS = the largest gap between their CDFs."), ""]
    for _, r in df.iterrows():
        q = _Q_STAR_WORDS.get(r.q_star_kind, fmt_g(r.q_star, 4))
        lines.append(_wrap(f"run {r.run}: {r.activation}, beta = {fmt_g(r.beta, 4)}, sigma_w^2 = "
                           f"{fmt_g(r.sigma_w2, 4)} (critical {fmt_g(r.critical_sigma_w2, 4)}), q* = {q}, "
                           f"chi_1 = {fmt_g(r.chi_1, 4)} ({r.regime}), mean-field rho_L = "
                           f"{fmt_g(r.rho_L_meanfield, 4)}."))
        n = results[r.run].config.all_widths
        if n[-2] != n[-1]:
            lines.append(_wrap(f"  (q* and chi_1 are of the last layer's map repeated at its sigma_w^2; its widths differ, "
                               f"n_(L-1) = {n[-2]} to n_L = {n[-1]}, so they describe the per-unit variance, not "
                               "the norm: rho_L is the line above.)"))
        if np.isfinite(r.ks_distance):
            lines.append(_wrap(f"  ln rho_L given alive (P(dead) = {fmt_g(r.p_dead, 3)}): exact mean "
                               f"{fmt_g(r.log_rho_L_mean, 4)}, variance {fmt_g(r.log_rho_L_var, 4)}; Gaussian limit "
                               f"mean {fmt_g(r.limit_mean, 4)}, variance {fmt_g(r.limit_var, 4)}; KS distance "
                               f"{fmt_g(r.ks_distance, 3)}."))
        else:
            lines.append("  no exact law of ln rho_L here (ReLU with Gaussian weights only).")
    left = [run.name for run in results.runs if run.name not in set(df.run)]
    if left:
        lines.append(_wrap(f"No mean-field view of run{'s' if len(left) != 1 else ''} {', '.join(left)} (residual "
                           "networks, or tanh or gelu on a fixed dataset whose inputs' norms differ)."))
    return lines


def report_numbers(results, eps=None, form="norm", level=0.95):
    """The numbers report_text shows, as tables (the JSON document of mcinit report holds them).

    Arguments as report_text.  Returns {eps, layers, failure, sup}:
    eps      the tolerances: as given, or default_eps(results, form)
    layers   results.layers() with z = (rho_mean - exact_rho_mean)/(sd/sqrt(trials)), sd the
             exact sd (the measured one without it), NaN where not defined
    failure  {forward, backward, both: results.failure(...) of the runs that computed the
             property, in the order of the report's tables, with the flags' columns
             chernoff_below (the Chernoff bound below the interval) and exact_outside (p_exact
             outside the interval), and for forward p_one_input and p_union (N > 1 inputs, Gaussian
             weights: the exact one-input probability P1 and min(1, N P1), NaN otherwise); None
             where no run computed it}
    sup      results.failure(eps, prop="sup") of the runs with the supremum search, or None
    meanfield  meanfield_numbers(results): the mean-field view and the depth-to-width regime per run"""
    form_words(form)
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    eps = default_eps(results, form) if eps is None else [float(e) for e in np.atleast_1d(eps)]
    layers = results.layers()
    T = {r.name: r.completed for r in results.runs}
    layers["z"] = [np.nan if z is None else z for z in (_z(r, T[r.run]) for _, r in layers.iterrows())]
    failure = {}
    for prop in ("forward", "backward", "both"):
        some = results.with_property(prop)
        if not some.runs:
            failure[prop] = None
            continue
        df = _row_key(some.failure(eps, prop=prop, form=form, level=level))
        df["chernoff_below"] = np.isfinite(df.chernoff) & (df.chernoff < df.ci_low)
        df["exact_outside"] = np.isfinite(df.p_exact) & _outside(df.p_exact, df.ci_low, df.ci_high)
        if prop == "forward":
            df = _with_one_input_bounds(df, some, form)
        failure[prop] = _without_plain_bounds(df, some)
    sup = (results.failure(eps, prop="sup", form=form, level=level)
           if any(r.config.sup for r in results.runs) else None)
    return dict(eps=eps, layers=layers, failure=failure, sup=sup, meanfield=meanfield_numbers(results))


def report_text(results, eps=None, form="norm", level=0.95, numbers=None):
    """The report of a results file as terminal text.

    results  mcinit.results.Results (mcinit.load(path))
    eps      tolerances (in the given form); None: default_eps(results, form)
    form     'norm' (|sqrt(ratio) - 1|) or 'squared' (|ratio - 1|)
    level    confidence level of the Clopper-Pearson intervals
    Per-layer tables (one compact line per run when there are many runs), then one
    failure table per property (forward, backward, both) over all runs and eps, each
    followed by plain statements: where the paper bound is VIOLATED or VACUOUS, where
    the Chernoff bound or the exact value disagree with the measurement.  A property a
    run did not compute (--properties) is left out of its table, and a property no run
    computed is named as not computed.  numbers: report_numbers' result for these
    arguments, when the caller has it already (the figures share it).
    """
    numbers = report_numbers(results, eps, form, level) if numbers is None else numbers
    eps = numbers["eps"]
    n = len(results.runs)
    lines = [f"mcinit report: {results.path} ({results.kind}, {n} run{'s' if n != 1 else ''})",
             f"Tolerances eps = {_eps_list(eps)}, {form_words(form)} (rho and gamma are squared ratios; "
             f"the norm form compares sqrt(ratio), the form the paper bound is stated in).",
             f"Paper bound: {PAPER_PROVENANCE}: delta = min(1, 4NL exp(-m((1+eps)^(1/L) - 1)/4)), m the "
             "narrowest hidden width, for the forward and the backward property each; for both properties "
             "the union, min(1, 2 delta)."]
    lines = [_wrap(x) for x in lines] + paper_caveat() + [""]
    empty = [r.name for r in results.runs if r.completed == 0]
    if empty:
        lines += [f"Runs with no completed trial (left out of the tables' statements): {', '.join(empty)}", ""]
    lines += _layer_section(results, numbers["layers"])
    for prop in ("forward", "backward", "both"):
        some = results.with_property(prop)
        if not some.runs:
            made = ", ".join(sorted({r.config.properties for r in results.runs}))
            lines += ["", "", _wrap(f"FAILURE PROBABILITY, {_PROP_WORDS[prop]}: not computed (the "
                                    f"run{'s were' if n != 1 else ' was'} made with --properties {made}).")]
            continue
        lines += ["", ""] + _failure_section(some, prop, eps, form, level, numbers["failure"][prop])
        left = [r.name for r in results.runs if r not in some.runs]
        if left:
            lines += [_wrap(f"Not computed by run{'s' if len(left) != 1 else ''} {', '.join(left)} "
                            f"(--properties), which {'are' if len(left) != 1 else 'is'} left out of this table.")]
    if any(r.config.sup for r in results.runs):
        lines += ["", ""] + _sup_section(results, eps, form, level, numbers)
    lines += ["", ""] + _meanfield_section(results, numbers["meanfield"])
    for run in results.runs:
        c = run.config
        off = _off_paper(c)
        if off:
            lines += ["", _wrap(f"Note: run {run.name}: {off}; that is not the paper's setting (He, E rho_l = 1), "
                                "so its paper_delta is shown for comparison only.")]
    return "\n".join(lines) + "\n"


def _sup_section(results, eps, form, level, numbers):
    """The forward property for every input of the sphere at once, two-sided, beside the random inputs."""
    lines = [_wrap("FORWARD PROPERTY FOR ALL INPUTS (the paper's third result): a trial fails when some input of "
                   f"the unit sphere deviates by more than eps ({form_words(form)}) at some layer. 'lower' counts "
                   "the trials that fail at the extremes found at actual inputs (exact extremes, or the local "
                   "search's), a LOWER ESTIMATE of the probability; 'upper' the trials whose certified bounds do "
                   "not exclude a failure, an UPPER ESTIMATE (equal to the lower one where every extreme is "
                   "exact); the probability for all of R^n lies between. Beside them the same property over the N "
                   f"random sphere inputs alone. {int(level * 100)}% exact intervals; 'exact' is the share of "
                   "(trial, layer) pairs whose extremes were computed exactly."),
             ""]
    fin = numbers["failure"]["forward"].set_index(["run", "eps"])
    sup = numbers["sup"]
    rows = []
    for _, r in sup.iterrows():
        f = fin.loc[(r["run"], r["eps"])]
        exact = "-" if not np.isfinite(r["exact_share"]) else f"{100 * r['exact_share']:.0f}%"
        rows.append([str(r["input_dim"]), widths_label(r["widths"].split(",")), str(r["depth"]),
                     str(r["samples"]), exact, fmt_g(r["eps"]),
                     f"{fmt_p(f['p_hat'])} [{fmt_p(f['ci_low'])}, {fmt_p(f['ci_high'])}]",
                     f"{fmt_p(r['p_hat'])} [{fmt_p(r['ci_low'])}, {fmt_p(r['ci_high'])}]",
                     f"{fmt_p(r['p_upper'])} [.., {fmt_p(r['ci_high_upper'])}]", fmt_p(r["gap"])])
    lines += _table(["n_0", "widths", "L", "N random", "exact", "eps", "random inputs only", "all inputs: lower",
                     "all inputs: upper", "gap"], rows, "rrrrrrllll")
    if any(r.config.sup and not r.config.sup_certified for r in results.runs):
        lines += ["", _wrap("Runs written before format version 4 hold the search's values only: their upper "
                            "estimate is 1 (no certified bound).")]
    # how far the extremes reach beyond the random inputs, per run: mean worst deviation of the last layer
    rows = []
    for run in results.runs:
        c = run.config
        if not c.sup or run.completed == 0:
            continue
        fields = ("fwd_min", "fwd_max") + run.sup_fields[:4]
        rec = run.records(fields, 0, min(run.completed, 1 << 20))
        # a deviation grows away from ratio 1 on either side: the worst is at the smallest or the largest ratio
        dev_r = np.maximum(deviation(rec["fwd_max"], form), deviation(rec["fwd_min"], form))
        dev_s = np.maximum(deviation(rec["sup_max"], form), deviation(rec["sup_min"], form))
        if c.sup_certified:
            dev_u = np.maximum(deviation(rec["sup_upper"], form), deviation(rec["sup_lower"], form))
            last_u = fmt_g(dev_u[:, -1].mean())
        else:
            last_u = "-"
        rows.append([run.name, str(c.input_dim), str(c.depth), f"{c.sup_starts},{c.sup_steps}",
                     fmt_g(dev_r[:, 0].mean()), fmt_g(dev_s[:, 0].mean()), fmt_g(dev_r[:, -1].mean()),
                     fmt_g(dev_s[:, -1].mean()), last_u])
    lines += ["", _wrap("Mean worst deviation per trial (first and last layer): over the random inputs, at the "
                        "extremes found, and (last layer) at the certified bounds. Compare the runs across the input "
                        "dimension n_0 and the depth L: the paper's width bound for all inputs depends on both."), ""]
    lines += _table(["run", "n_0", "L", "starts,steps", "layer 1 random", "layer 1 found", "layer L random",
                     "layer L found", "layer L certified"], rows, "lrrrrrrrr")
    return lines


# ---------------------------------------------------------------------------
# widths the bounds need

def bound_numbers(eps, delta, depth, samples=1, widths=None, form="norm", init="he", input_dim=None,
                  props=("forward",), activation="relu", gain=None):
    """The numbers bound_text shows, as named values (the JSON document of mcinit bound holds them).

    Arguments as bound_text.  Returns {eps, eps_norm (the norm tolerance the paper bound is
    applied at), delta, depth, samples, form, init, input_dim, properties, required, at_widths}:
    required    one dict per row of the table of widths, in its order: bound, property, width,
                meaning, why_none.  bound: paper (the authors' code, closed form; width None
                with why_none where it has none, with why_none None where it is not derived
                for the init), chernoff, exact (one input; N > 1: union, N x exact, and
                exact_one_input, a lower bound on the width N inputs need); the smallest equal
                hidden width m (n_0 = m) whose bound is <= delta.  forward has every bound;
                backward the paper's alone (at delta); both the paper's at delta/2 for each
                property (the union)
    at_widths   None, or one dict per given width and property (in the order of props): width,
                property, input_dim (n_0), paper_delta (the paper's bound of the property, both:
                min(1, 2 delta); NaN outside the paper's setting: init he, or he-in with n_0 = m),
                chernoff, p_exact (one input), p_union (min(1, N p_exact); N > 1 only) -- these
                three NaN for backward and both --, paper_vacuous (paper_delta >= 1),
                paper_below_exact (paper_delta < p_exact: not an upper bound there),
                paper_outside_setting (he-in with n_0 != m: no paper bound)
    ValueError for arguments out of range."""
    form_words(form)
    e = float(eps)
    d = float(delta)
    L = int(depth)
    N = int(samples)
    props = tuple(props)
    if not (e > 0 and math.isfinite(e)):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if not 0 < d < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    if L < 1 or N < 1:
        raise ValueError("depth and samples must be >= 1")
    if init not in theory.EXACT_INITS:
        raise ValueError(f"init must be one of {', '.join(theory.EXACT_INITS)} (the bounds need Gaussian or "
                         "orthogonal weights)")
    theory.check_exact_law(init, activation)      # tanh, gelu, orthogonal leaky-relu: refused in one line
    paper_applies = theory.paper_applies(init, activation, gain)
    if not props or any(p not in PROPERTIES for p in props):
        raise ValueError(f"properties must be among {', '.join(PROPERTIES)}, got {', '.join(props) or 'none'}")
    for p in props:
        if p != "forward" and not paper_applies:
            raise ValueError(f"the {p} property has the paper bound alone, derived for ReLU networks with He "
                             f"initialisation (init he or he-in, the default gain), not {init}"
                             + ("" if activation == "relu" else f" with {activation}"))
    e_norm = float(paper_eps(e, form))
    required = []

    def paper_row(prop, dd, meaning):
        try:
            required.append(dict(bound="paper", property=prop, width=theory.paper_width(e_norm, dd, N, L),
                                 meaning=meaning, why_none=None))
        except ValueError as err:
            required.append(dict(bound="paper", property=prop, width=None, meaning=meaning, why_none=str(err)))
    setting = (f"init {init}" + ("" if activation == "relu" else f" with {activation}")
               + ("" if gain is None else f" at gain {gain:g}"))
    if "forward" in props:
        if paper_applies:
            paper_row("forward", d, "closed form")
        else:
            required.append(dict(bound="paper", property="forward", width=None,
                                 meaning=f"does not apply: derived for ReLU and He, not {setting}", why_none=None))
        kinds = [("chernoff", "chernoff", N, f"Chernoff + union bound, N={N}")]
        if N == 1:
            kinds.append(("exact", "exact", 1, "exact, one input"))
        else:
            kinds += [("union", "exact", N, f"N x exact (union bound over {N} inputs)"),
                      ("exact_one_input", "exact", 1, f"a lower bound on the width {N} inputs need")]
        for name, kind, n, meaning in kinds:
            if kind == "chernoff" and not theory.ExactLaw((), None, init, activation, gain).chernoff:
                required.append(dict(bound=name, property="forward", width=None, why_none=None,
                                     meaning=f"not computed for {activation} (an infinite mixture's moments)"))
                continue
            try:
                required.append(dict(bound=name, property="forward",
                                     width=theory.required_width(e, d, L, n, kind, form, init,
                                                                 activation=activation, gain=gain), meaning=meaning,
                                     why_none=None))
            except ValueError as err:
                required.append(dict(bound=name, property="forward", width=None, meaning=meaning,
                                     why_none=str(err)))
    if "backward" in props:
        paper_row("backward", d, "closed form, the same as the forward property's")
    if "both" in props:
        paper_row("both", d / 2, "union: each property at delta/2")
    at = None
    if widths is not None:
        ws = [int(w) for w in np.atleast_1d(widths)]
        if any(w < 1 for w in ws):
            raise ValueError("widths must be positive integers")
        if any(w > theory.MAX_BOUND_WIDTH for w in ws):
            raise ValueError(f"widths must be at most {theory.MAX_BOUND_WIDTH} (2**21) to evaluate the bounds at")
        at = []
        for m in ws:
            n0 = int(input_dim) if input_dim else m
            # the paper's setting: E rho_l = 1 in every layer (mcinit.results._paper_setting)
            pdl = (float(theory.paper_delta(m, e_norm, N, L))
                   if paper_applies and (init == "he" or (init == "he-in" and n0 == m)) else float("nan"))
            for p in props:
                row = dict(width=m, property=p, input_dim=n0,
                           paper_delta=min(1.0, 2.0 * pdl) if p == "both" and np.isfinite(pdl) else pdl,
                           chernoff=float("nan"), p_exact=float("nan"))
                if p == "forward":
                    row["chernoff"] = float(chernoff_values(e, (m,) * L, N, form, n0, init, activation, gain)[0])
                    row["p_exact"] = float(exact_values(e, (m,) * L, form, n0, init, activation, gain)[0])
                if N > 1:
                    row["p_union"] = min(1.0, N * row["p_exact"]) if p == "forward" else float("nan")
                row["paper_vacuous"] = bool(np.isfinite(pdl) and (2.0 * pdl if p == "both" else pdl) >= 1)
                row["paper_below_exact"] = bool(p == "forward" and np.isfinite(pdl) and pdl < row["p_exact"])
                row["paper_outside_setting"] = bool(not np.isfinite(pdl) and paper_applies)
                at.append(row)
    return dict(eps=e, eps_norm=e_norm, delta=d, depth=L, samples=N, form=form, init=init, activation=activation,
                gain=gain,
                input_dim=int(input_dim) if input_dim else None, properties=list(props), required=required,
                at_widths=at)


#: the rows of bound_text's table of widths: bound_numbers' bound -> label
_BOUND_LABELS = {"paper": "paper (authors' code)", "chernoff": "chernoff", "exact": "exact",
                 "union": "N x exact", "exact_one_input": "exact, one input"}
#: the names of the bounds in bound_text's rows and reasons for no width
_BOUND_ERRORS = {"paper": "paper", "chernoff": "chernoff", "exact": "exact", "union": "exact",
                 "exact_one_input": "exact, one input"}


def bound_text(eps, delta, depth, samples=1, widths=None, form="norm", init="he", input_dim=None,
               props=("forward",), activation="relu", gain=None):
    """The widths each bound needs for P(failure) <= delta, and the bounds at given widths.

    eps       tolerance in the given form ('norm': |sqrt(rho) - 1|, 'squared': |rho - 1|)
    delta     target failure probability in (0, 1)
    depth     L;  samples: N inputs
    widths    optional list of candidate equal hidden widths m (each an L-layer network of width m)
    init      Gaussian initialisation preset or orthogonal (theory.EXACT_INITS);  input_dim: n_0 for
              the values at the given widths (default n_0 = m; the required widths always take n_0 = m)
    activation, gain
              the activation (relu, leaky-relu:ALPHA, abs, linear: theory.EXACT_ACTIVATIONS) and
              --gain (None: the default); the paper's bound is for ReLU He weights alone, the
              Chernoff bound is not computed for leaky-relu (rows 'n/a')
    props     the properties, each row naming its own: forward (the paper's, Chernoff and exact
              bounds), backward (the paper's bound alone, which the paper states for both
              properties: mcinit.theory has no Chernoff bound or exact law of gamma), both (a
              trial fails when either fails: the paper's bound at delta/2 for each, the union)
    Paper (theory.paper_width, at the norm tolerance), Chernoff and exact (theory.required_widths);
    for N > 1 the 'exact' width is that of the union bound N * P_exact, and the one-input width
    (a lower bound on what N inputs need) is shown beside it.  A ValueError (one line) when a
    property asked for has no bound at these settings.  The numbers are bound_numbers'.
    """
    b = bound_numbers(eps, delta, depth, samples, widths, form, init, input_dim, props, activation, gain)
    e, d, L, N, e_norm, props = b["eps"], b["delta"], b["depth"], b["samples"], b["eps_norm"], b["properties"]
    lines = [f"mcinit bound: {', '.join(props)} propert{'y' if len(props) == 1 else 'ies'}, eps = {fmt_g(e, 4)} "
             f"({form_words(form)}), delta = {fmt_g(d, 4)}, "
             f"depth L = {L}, N = {N} input{'s' if N > 1 else ''}, init {init} "
             f"({'orthogonal' if init == 'orthogonal' else 'Gaussian'} weights)"
             + ("" if activation == "relu" else f", activation {activation}") + ("" if gain is None else f", gain {gain:g}"),
             f"Paper bound: {PAPER_PROVENANCE}; derived for He initialisation, stated in the norm form"
             + ("" if form == "norm" else f" (applied at the norm tolerance {theory.NORM_TOLERANCE_WORDS[form]} = "
                                          f"{e_norm:.4g})") + "."]
    lines = [_wrap(x) for x in lines] + paper_caveat(tables=False)
    lines += ["", "Smallest equal hidden width m (n_0 = m) with bound <= delta:"]
    rows = []
    errors = []
    for r in b["required"]:
        name, m = r["bound"], r["width"]
        if m is not None:
            shown = f"{m:,}" if name != "paper" or m < 10 ** 15 else f"{float(m):.4g}"
            rows.append([_BOUND_LABELS[name], shown, r["property"], r["meaning"]])
        elif r["why_none"] is None:          # the paper bound, not derived for this init
            rows.append([_BOUND_LABELS[name], "n/a", r["property"], r["meaning"]])
        else:
            rows.append([_BOUND_LABELS[name] if name in ("paper", "exact_one_input") else _BOUND_ERRORS[name],
                         "none", r["property"], "see below"])
            errors.append(f"{_BOUND_ERRORS[name]}: {r['why_none']}")
    lines += _table(["bound", "width m", "property", "meaning"], rows, "lrll")
    lines += [_wrap("No width: " + e_) for e_ in dict.fromkeys(errors)]
    if any(p != "forward" for p in props):
        lines.append(_wrap("backward, both: the paper bound alone; mcinit.theory has no Chernoff bound or exact "
                           "law of the backward ratio gamma (docs/design.md section 5)."))
    need = {r["bound"]: r["width"] for r in b["required"] if r["property"] == "forward" and r["width"] is not None}
    paper_m = need.get("paper")
    ex = need.get("exact_one_input") if N > 1 else need.get("exact")
    if paper_m is not None and ex is not None and paper_m < ex:
        lines.append(_wrap(f"NOTE: the paper width {paper_m:,} is below the width the exact probability needs "
                           f"({ex:,}{', one input' if N > 1 else ''}): at this eps the encoded bound promises "
                           "delta at a width where the true failure probability is larger."))
    elif paper_m is not None and N > 1 and ex is not None and "union" in need and paper_m < need["union"]:
        lines.append(_wrap(f"NOTE: the paper width {paper_m:,} lies between the one-input exact width {ex:,} "
                           f"and the union width {need['union']:,}: these bounds do not decide whether it "
                           f"suffices for {N} inputs (a Monte Carlo run does)."))
    if b["at_widths"] is not None:
        lines += ["", "Bounds at the given equal widths (n_0 = " + (str(input_dim) if input_dim else "m") + "):"]
        rows = []
        for r in b["at_widths"]:
            fl = []
            if r["property"] == "forward":
                row = [f"{r['width']:,}", r["property"], fmt_g(r["paper_delta"]), fmt_g(r["chernoff"]),
                       fmt_g(r["p_exact"], 4)]
                if N > 1:
                    row.append(fmt_g(r["p_union"], 4))
            else:
                row = [f"{r['width']:,}", r["property"], fmt_g(r["paper_delta"]), "-", "-"] + (["-"] if N > 1 else [])
            if r["paper_vacuous"]:
                fl.append("paper vacuous")
            if r["paper_below_exact"]:
                fl.append("paper < exact: not an upper bound here")
            if r["paper_outside_setting"]:
                fl.append(f"paper: he-in with n_0 = {r['input_dim']} != m")
            row.append("; ".join(fl))
            rows.append(row)
        header = ["width m", "property", "paper_delta", "chernoff", "exact P (one input)"]
        if N > 1:
            header.append(f"N x exact (union, N={N})")
        header.append("note")
        lines += _table(header, rows, "rl" + "r" * (len(header) - 3) + "l")
        if N > 1 and "forward" in props:
            lines.append(f"The exact {N}-input probability lies between 'exact P (one input)' and 'N x exact'.")
        if "both" in props:
            lines.append("both: paper_delta is min(1, 2 delta), delta the bound of one property (the union of the two).")
    return "\n".join(lines) + "\n"
