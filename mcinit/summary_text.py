"""The short summary printed at the end of a run."""

import numpy as np

from .initializers import expected_forward
from .stats import clopper_pearson

__all__ = ["run_summary", "rate_text", "seconds"]


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
        "per layer, over all (trial, input) pairs; rho = ||h^l||^2/||x||^2, gamma = backward ratio (docs/design.md section 2);",
        "exact = one-input law of Gaussian weights (docs/design.md section 4)",
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
    lines += ["", "failure probability, norm form (|sqrt(ratio) - 1| > eps at some layer and input),"
                  " with exact 95% intervals" + ("; exact = forward, one input, Gaussian weights:" if exact is not None
                                                 else ":"),
              f"{'eps':>6}  {'forward':<30} {'exact':<11}{'backward':<30} {'both':<30}"]
    f = result.failures
    for i, e in enumerate(result.eps):
        ex = f"{exact[i]:<11.4g}" if exact is not None else f"{'-':<11}"
        cells = {p: (_ci(f[p][i], T) if p in f else "not computed") for p in ("forward", "backward", "both")}
        lines.append(f"{e:>6g}  {cells['forward']:<30} {ex}{cells['backward']:<30} {cells['both']:<30}")
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
