"""A run's numbers as rows of named values: the one place every output takes them from.

    config_columns(config)              what identifies a run: the options that rebuild it
    layer_rows(config, summary)         per-layer statistics of rho_l and gamma_l beside the exact law
    failure_cells(failures, trials)     failures, p_hat and the exact interval at each eps

The DataFrames of mcinit.results are built from them, the run summary (mcinit.summary_text)
prints them, and the JSON documents (mcinit.documents) hold them, so that a table, a line of
text and a JSON value never compute a number apart.  No pandas here: the command line
prints a run's summary without importing it.  docs/results.md lists every column.
"""

import numpy as np

from .initializers import expected_forward
from .options import run_values
from .stats import QUANTITIES, clopper_pearson

__all__ = ["RATIOS", "config_columns", "layer_rows", "failure_cells"]

#: the names of the summary's quantities (mcinit.stats.QUANTITIES: fwd, bwd) in the columns:
#: rho_l (forward ratio), gamma_l (backward ratio)
RATIOS = ("rho", "gamma")


def config_columns(config):
    """{column: value} of what identifies a run: every run option that rebuilds ``config``
    (mcinit.options.run_values, in the option table's order), with trials renamed
    trials_planned (the configuration's trials; a table's ``trials`` are the completed ones),
    widths as text ("64,128,96"), head as "softmax:20", sup_search as "STARTS,STEPS" or None,
    sup_bound as "BOXES,GAP" or None,
    wn_gain a number or None, and depth (L) after widths."""
    cols = {}
    for key, value in run_values(config).items():
        if key == "trials":
            cols["trials_planned"] = int(value)
        elif key == "widths":
            cols["widths"] = ",".join(str(int(w)) for w in value)
            cols["depth"] = config.depth
        else:
            cols[key] = value
    return cols


def layer_rows(config, summary):
    """One dict per hidden layer l = 1..L: the statistics over all (trial, input) pairs.

    layer, width (n_l), count (finite values of rho_l over the pairs; of gamma_l for a
    run of the backward property alone), for r in rho, gamma: r_mean, r_sd (unbiased),
    r_min, r_max, log_r_mean, log_r_sd (of ln r); exact_rho_mean, exact_rho_sd (the
    one-input law of rho_l; the sd for Gaussian and orthogonal weights only, else NaN), dead (dead trials
    of the run).  A statistic with no value measured, or of a property the run did not
    compute (--properties), is NaN.  The ratios are squared ratios (docs/design.md section 2)."""
    sd = np.sqrt(summary.variance())
    em, ev = expected_forward(config)
    q0 = QUANTITIES.index(summary.quantities[0])       # a quantity the run computed
    rows = []
    for l in range(config.depth):
        row = dict(layer=l + 1, width=int(config.widths[l]), count=int(summary.count[q0, 0, l]))
        for q, name in enumerate(RATIOS):
            seen = summary.count[q, 0, l] > 0, summary.count[q, 1, l] > 0   # NaN where nothing was measured
            row[f"{name}_mean"] = float(summary.mean[q, 0, l]) if seen[0] else np.nan
            row[f"{name}_sd"] = float(sd[q, 0, l])
            row[f"{name}_min"] = float(summary.min[q, 0, l]) if seen[0] else np.nan
            row[f"{name}_max"] = float(summary.max[q, 0, l]) if seen[0] else np.nan
            row[f"log_{name}_mean"] = float(summary.mean[q, 1, l]) if seen[1] else np.nan
            row[f"log_{name}_sd"] = float(sd[q, 1, l])
        row["exact_rho_mean"] = float(em[l])
        row["exact_rho_sd"] = float(np.sqrt(ev[l]))
        row["dead"] = int(summary.dead)
        rows.append(row)
    return rows


def failure_cells(failures, trials, level=0.95):
    """{failures, p_hat, ci_low, ci_high}: arrays over eps of the failures counted among
    ``trials`` trials, their fraction, and its exact two-sided (Clopper-Pearson) interval at
    confidence ``level``; p_hat and the interval are NaN without trials."""
    k = np.atleast_1d(np.asarray(failures, dtype=np.int64))
    if trials > 0:
        lo, hi = clopper_pearson(k, trials, level)
        p_hat = k / trials
    else:
        lo = hi = p_hat = np.full(len(k), np.nan)
    return dict(failures=k, p_hat=np.asarray(p_hat, float), ci_low=np.atleast_1d(np.asarray(lo, float)),
                ci_high=np.atleast_1d(np.asarray(hi, float)))
