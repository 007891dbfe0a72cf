"""What the report's text and figures share: the paper bound, the deviation forms, number formatting, default eps."""

import numpy as np

from .. import theory
from ..stats import EPS_CORE, EPS_LADDER, FORM_FORMULAS, clopper_pearson

PAPER_PROVENANCE = ("the bound as encoded in the authors' public reference code "
                    "(devansharpit/overparametrization_benefits, bound_comparison.py)")

PAPER_INITS = ("he", "he-in")          # as mcinit.results: the bound is derived for He
GAUSSIAN_INITS = theory.GAUSSIAN_INITS
#: candidate tolerances for the default eps (EPS_LADDER), and the ones preferred when many are
#: informative (EPS_CORE): mcinit.stats's
MAX_DEFAULT_EPS = 4


def deviation_words(form, ratio="ratio"):
    """The deviation of a form as a formula in ``ratio`` (e.g. '|sqrt(rho) - 1|'): mcinit.stats.FORM_FORMULAS."""
    form_words(form)
    return FORM_FORMULAS[form].replace("ratio", ratio)


def form_words(form):
    """The words naming a form (any of mcinit.stats.FORM_FORMULAS) of the deviation; ValueError for any other."""
    if form not in FORM_FORMULAS:
        raise ValueError(f"form must be one of {', '.join(FORM_FORMULAS)}, got {form!r}")
    return f"{form} form: deviation {FORM_FORMULAS[form]}"


def paper_eps(eps, form):
    """The norm-form tolerance at which the paper bound is applied (as mcinit.results does)."""
    return theory.norm_tolerance(eps, form)


def fmt_g(x, digits=3):
    """A number in %g style, '-' for NaN/None."""
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return "-" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def widths_label(widths):
    """A short label of a run's hidden widths: one number when they are equal, else the first few."""
    ws = list(widths)
    if len(set(ws)) == 1:
        return f"{ws[0]}"
    if len(ws) <= 4:
        return ",".join(map(str, ws))
    return ",".join(map(str, ws[:3])) + f",..({len(ws)})"


def init_label(c):
    """A run's initialisation as shown: the preset, with its weight distribution when not the usual one,
    its gain when set, and the activation when not ReLU (c: Config)."""
    label = c.init if c.dist == "normal" or c.init.startswith("wn") else f"{c.init}/{c.dist}"
    if getattr(c, "gain", None) is not None:
        label += f" g={c.gain:g}"
    return label if getattr(c, "activation", "relu") == "relu" else f"{label} {c.activation}"


# ---------------------------------------------------------------------------
# default tolerances

def default_eps(results, form="norm"):
    """A few tolerances at which the runs' failure probabilities say something.

    From the ladder 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2 (in the given form) keep the eps
    at which some run has 0 < p_hat < 1 (forward or backward property); when more
    than four are informative, keep first those where the encoded paper bound is
    violated, then 0.1, 0.25, 0.5, 1.  Falls back to 0.1, 0.25, 0.5, 1.
    """
    form_words(form)
    ladder = np.asarray(EPS_LADDER)
    informative = np.zeros(len(ladder), bool)
    violated = np.zeros(len(ladder), bool)
    for run in results.runs:
        T = run.completed
        if T == 0:
            continue
        counts = run.failure_counts(ladder, form)
        for p in ("forward", "backward"):
            if p not in counts:         # not computed (--properties)
                continue
            k = counts[p]
            informative |= (k > 0) & (k < T)
            c = run.config
            if not c.residual and theory.paper_applies(c.init, c.activation, c.gain):   # plain ReLU He networks
                lo, _ = clopper_pearson(k, T)
                pdel = np.asarray(theory.paper_delta(min(c.widths), paper_eps(ladder, form),
                                                     c.samples, c.depth), float)
                violated |= lo > pdel
    chosen = [float(e) for e, ok in zip(ladder, informative) if ok]
    if not chosen:
        return list(EPS_CORE)
    if len(chosen) > MAX_DEFAULT_EPS:
        prio = [float(e) for e, v, ok in zip(ladder, violated, informative) if v and ok]
        prio += [e for e in EPS_CORE if e in chosen and e not in prio]
        prio += [e for e in chosen if e not in prio]
        chosen = sorted(prio[:MAX_DEFAULT_EPS])
    return chosen
