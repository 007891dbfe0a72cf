"""The short summary printed at the end of a run, and its numbers (run_numbers)."""

import numpy as np

from .rows import failure_cells, layer_rows

__all__ = ["run_summary", "run_numbers", "LEVEL"]

#: confidence level of the run summary's exact intervals
LEVEL = 0.95


def run_numbers(result):
    """What the run summary shows, as named values (the JSON document of mcinit run holds them).

    layers   mcinit.rows.layer_rows of the run: per-layer mean, sd, min, max of rho_l and
             gamma_l beside the exact law of rho_l
    eps      the tolerances (norm form) of the failure counts
    failure  {prop: mcinit.rows.failure_cells at LEVEL} for the properties the run computed
             (forward, backward, both)
    p_exact  the exact forward failure probabilities at eps (norm form; one input, Gaussian
             weights), or None where they are not defined or the forward property was not computed"""
    cfg, s = result.config, result.summary
    return dict(layers=layer_rows(cfg, s), eps=[float(e) for e in result.eps],
                failure={p: failure_cells(k, s.trials, LEVEL) for p, k in result.failures.items()},
                p_exact=_exact_forward(cfg, result.eps) if "fwd" in s.quantities else None)


def _ci(cells, i):
    return f"{cells['p_hat'][i]:.4g} [{float(cells['ci_low'][i]):.4g}, {float(cells['ci_high'][i]):.4g}]"


def run_summary(result, output=None, threads=None):
    """Lines: what ran, per-layer ratio mean and spread beside the exact law, failure rates."""
    cfg, s = result.config, result.summary
    T = s.trials
    numbers = run_numbers(result)
    rate = result.computed / result.elapsed if result.elapsed > 0 else float("inf")
    where = f" -> {output}" if output else ""
    thr = f", {threads} threads" if threads else ""
    kernel = cfg.kernel if cfg.precision == "float64" else f"{cfg.kernel} ({cfg.precision})"
    if result.computed == 0 and result.elapsed == 0:     # read from a complete file
        head = f"mcinit: {T:,} trials, kernel {kernel}{where}"
    else:
        head = (f"mcinit: {T:,} trials{_resumed(result)} in {result.elapsed:.1f} s ({rate:,.0f} trials/s), "
                f"kernel {kernel}{thr}{where}")
    lines = [
        head,
        f"network: input {cfg.input_dim}, widths {_widths(cfg.widths)}, init {cfg.init}/{cfg.dist}, "
        f"head {cfg.head[0]}:{cfg.head[1]}, {cfg.samples} input(s) per trial ({_data(cfg)})",
        "",
        "per layer, over all (trial, input) pairs; rho = ||h^l||^2/||x||^2, gamma = backward ratio (docs/design.md section 2);",
        "exact = one-input law of Gaussian weights (docs/design.md section 4)",
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
        lines.append(f"{row['layer']:>5} {row['width']:>6} {pair(row, 'rho', 'fwd')} {row['exact_rho_mean']:10.5f} "
                     f"{ex_sd} {pair(row, 'gamma', 'bwd')}")
    if cfg.properties != "both":
        lines.append(f"('-': the {_MISSING[cfg.properties]} property was not computed: --properties {cfg.properties})")
    exact = numbers["p_exact"]
    lines += ["", "failure probability, norm form (|sqrt(ratio) - 1| > eps at some layer and input),"
                  " with exact 95% intervals" + ("; exact = forward, one input, Gaussian weights:" if exact is not None
                                                 else ":"),
              f"{'eps':>6}  {'forward':<30} {'exact':<11}{'backward':<30} {'both':<30}"]
    f = numbers["failure"]
    for i, e in enumerate(result.eps):
        ex = f"{exact[i]:<11.4g}" if exact is not None else f"{'-':<11}"
        cells = {p: (_ci(f[p], i) if p in f else "not computed") for p in ("forward", "backward", "both")}
        lines.append(f"{e:>6g}  {cells['forward']:<30} {ex}{cells['backward']:<30} {cells['both']:<30}")
    deaths = "some h^l = 0" if cfg.properties == "forward" else "some h^l = 0 or delta^L = 0"
    lines.append(f"dead networks ({deaths}): {s.dead:,}")
    return lines


#: the property a run of one property leaves out
_MISSING = {"forward": "backward", "backward": "forward"}


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
