"""Reading results: ``mcinit.load(path)`` for a run file or a sweep file.

    res = mcinit.load("mcinit-run.h5")
    res.failure([0.1, 0.25], prop="forward", form="norm")   # pandas DataFrame
    res.failure_by_layer([0.1, 0.25], cumulative=True)      # the same, per hidden layer
    res.layers()                                             # per-layer statistics
    res.runs[0].summary().of("rho").mean                    # the streamed summary, by name
    res.runs[0].records()                                    # per-trial arrays
    res.runs[0].over_inputs(trial=0)                         # one network: mean, sd over its inputs

Only the first ``completed`` trials of each run are read, so a file that is
still being written can be loaded at any time.  Every table carries the columns
that identify its run (mcinit.rows.config_columns), so that the tables of several
files concatenate; docs/results.md lists every column.
"""

import functools

import numpy as np

from . import theory
from .rows import config_columns, failure_cells, layer_rows
from .options import FORMS
from .stats import (EPS_LADDER, INPUT_STATS, PROPS_OF, QUANTITIES, QUANTITIES_OF, deviation, failure_counts,
                    input_fields, record_fields, warn_norm_eps)
from .layout import SUP_CERTIFIED_FIELDS, SUP_FIELDS, SUP_METHODS, TRIALS
from .layout import StoreError
from .reader import open_file, read_file, reason

__all__ = ["load", "Results", "Run", "PROPS", "FORMS", "SUP"]

PROPS = ("forward", "backward", "both")
#: the forward property over all of R^n (--sup-search): counted from the extremes found at
#: actual inputs (a lower estimate of the failure probability) and, from format version 4,
#: from the certified bounds (an upper estimate: the key SUP_POSSIBLE of failure_counts)
SUP = "sup"
SUP_POSSIBLE = "sup_possible"
_BLOCK = 1 << 20
#: trials per block of failure_by_layer (its arrays are (block, L) per eps)
_LAYER_BLOCK = 1 << 16


class Run:
    """One run of a results file: its configuration, progress, records and summary.

    info: its mcinit.reader.RunInfo (validated; the summary is the one at ``completed``).
    ``props``: the failure properties its records decide (forward, backward, both for a run
    of both properties; forward or backward alone for a run of one: its configuration's
    ``properties``); ``fields``: its per-trial record fields (with more than one input per
    trial also the statistics over the inputs, fwd_mean .. bwd_norm_sd, where the file
    holds them: format version 3); ``input_stats``: whether it holds them."""

    def __init__(self, info):
        self.path = info.path
        self.group = info.group          # "/" or "runs/<name>"
        self.name = info.name
        self.config = info.config
        self.completed = info.completed
        self.planned = info.trials
        self.kernel = info.kernel
        self.config_hash = info.config_hash
        self._summary = info.summary
        self.first_index = info.first_index
        self.format_version = info.format_version
        self.input_stats = info.input_stats
        self.props = PROPS_OF[self.config.properties]
        quantities = QUANTITIES_OF[self.config.properties]
        self.fields = record_fields(quantities, input_stats=info.input_stats)
        # the fields failures are counted from: min and max
        self._extremes = record_fields(quantities)
        # the supremum search's columns: found extremes, and from version 4 the certified bounds
        # and the method of each (trial, layer)
        self.sup_fields = ((SUP_FIELDS + (SUP_CERTIFIED_FIELDS if self.config.sup_certified else ()))
                           if self.config.sup else ())
        # (form, eps) -> {prop: failures}: failure(), the report's default eps and its figures
        # ask for the same counts; each eps is counted once per form (the counts of one eps do not
        # depend on the others asked with it)
        self._counts = {}

    def __repr__(self):
        return f"Run({self.name!r}, {self.completed}/{self.planned} trials, kernel {self.kernel})"

    def records(self, fields=None, start=0, stop=None):
        """Per-trial arrays of the completed trials [start, stop): ``fields`` (None: the run's
        record fields, dead and index).  A field of a property the run did not compute is a
        ValueError.

        The statistics over the inputs (fwd_mean, fwd_sd, fwd_norm_mean, fwd_norm_sd, the
        same for bwd: stats.INPUT_STATS) are read where the file holds them; with one input
        per trial they are derived from the one value r (r, 0, sqrt(r), 0; the sd NaN where
        r is infinite, as np.std); a run of more than one input written before format
        version 3 has none: asking for them is a StoreError of one line."""
        if fields is None:
            fields = self.fields + self.sup_fields + ("dead", "index")
        fields = tuple(fields)
        quantities = QUANTITIES_OF[self.config.properties]
        missing = [k for k in fields if k.split("_")[0] in QUANTITIES
                   and k not in record_fields(quantities, input_stats=True)]
        if missing:
            raise ValueError(f"run {self.name} holds no {missing[0]}: it was made with --properties "
                             f"{self.config.properties}")
        derived = [k for k in fields if k in input_fields(quantities) and k not in self.fields]
        if derived and self.config.samples > 1:
            raise StoreError(f"run {self.name} holds no {derived[0]}: {self._where()} was written in format version "
                             f"{self.format_version}, before mcinit recorded the statistics over each trial's "
                             f"inputs (format version 3); run it again to record them")
        read = tuple(dict.fromkeys([k for k in fields if k not in derived]
                                   + [k.split("_")[0] + "_min" for k in derived]))
        stop = self.completed if stop is None else min(stop, self.completed)
        start = max(0, min(start, stop))
        try:
            with open_file(self.path) as f:
                t = f[self.group][TRIALS]
                got = {k: t[k][start:stop] for k in read}
        except (OSError, KeyError, RuntimeError) as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot read {self.path}: {reason(e)}") from None
        for k in derived:
            q, stat = k.split("_", 1)
            got[k] = _one_input_statistic(got[q + "_min"], stat)
        return {k: got[k] for k in fields}

    def _where(self):
        return self.path if self.group == "/" else f"{self.path}:{self.group}"

    def over_inputs(self, trial=0):
        """One network (the trial of index ``trial``, a global trial index as the records'
        ``index``): per hidden layer, the mean and the population sd over its N inputs of
        the norm ratios sqrt(rho_l) = ||h^l||/||x|| and sqrt(gamma_l), and of the ratios
        themselves, as a pandas DataFrame of one row per layer.

        Columns: run, trial, layer, width (n_l), samples (N), fwd_norm_mean, fwd_norm_sd,
        bwd_norm_mean, bwd_norm_sd, fwd_mean, fwd_sd, bwd_mean, bwd_sd (records(): NaN for
        a property the run did not compute), dead (the trial's network is dead: its
        bwd_mean is +inf and bwd_sd NaN), then the run's identifying columns.  A trial the
        run does not hold is a ValueError; a run of N > 1 written before format version 3
        a StoreError (records())."""
        row = self._row_of(trial)
        quantities = QUANTITIES_OF[self.config.properties]
        names = [f"{q}_{st}" for pair in (("norm_mean", "norm_sd"), ("mean", "sd")) for q in QUANTITIES for st in pair]
        rec = self.records(input_fields(quantities) + ("dead",), row, row + 1)
        rows = []
        for l in range(self.config.depth):
            r = dict(run=self.name, trial=int(trial), layer=l + 1, width=int(self.config.widths[l]),
                     samples=int(self.config.samples))
            for k in names:
                r[k] = float(rec[k][0, l]) if k in rec else np.nan
            r["dead"] = bool(rec["dead"][0])
            rows.append(_identified(r, self))
        import pandas as pd
        return pd.DataFrame(rows)

    def _row_of(self, trial):
        """The row of the trial of global index ``trial`` among the completed ones."""
        if isinstance(trial, (bool, np.bool_)) or not isinstance(trial, (int, np.integer)):
            raise ValueError(f"trial must be a trial index (an integer), not {trial!r}")
        trial = int(trial)
        row = trial - self.first_index
        try:
            with open_file(self.path) as f:
                index = f[self.group][TRIALS]["index"]
                if 0 <= row < self.completed and int(index[row]) == trial:
                    return row
                # a partial merge: its rows are the trials that exist, in index order
                held = index[:self.completed]
        except (OSError, KeyError, RuntimeError) as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot read {self.path}: {reason(e)}") from None
        row = int(np.searchsorted(held, trial))
        if row < len(held) and held[row] == trial:
            return row
        span = f"{held[0]}..{held[-1]}" if len(held) else "none"
        raise ValueError(f"run {self.name} holds no completed trial {trial} (its completed trials: {span})")

    def summary(self):
        """The streamed per-layer Summary (mcinit.stats.Summary) of the completed trials."""
        return self._summary.copy()

    def failure_counts(self, eps, form="norm"):
        """Failures per property at each eps over the completed trials, read in blocks;
        with the supremum search also "sup": the forward property over the inputs where the
        extremes were found (certain failures), and with its certified bounds (format
        version 4) "sup_possible": the trials whose certified bounds do not exclude a failure
        (SUP_POSSIBLE; without them every trial counts)."""
        eps = np.atleast_1d(np.asarray(eps, dtype=float))
        sups = ((SUP, SUP_POSSIBLE) if self.config.sup else ())
        props = self.props + sups
        new = np.asarray(sorted({float(e) for e in eps} - {e for f, e in self._counts if f == form}))
        if len(new):
            total = {p: np.zeros(len(new), dtype=np.int64) for p in props}
            fields = self._extremes + self.sup_fields
            for start in range(0, self.completed, _BLOCK):
                rec = self.records(fields, start, start + _BLOCK)
                for p, v in failure_counts(rec, new, form).items():
                    total[p] += v
                if self.config.sup:
                    found = dict(fwd_min=rec["sup_min"], fwd_max=rec["sup_max"])
                    total[SUP] += failure_counts(found, new, form)["forward"]
                    if self.config.sup_certified:
                        bounded = dict(fwd_min=rec["sup_lower"], fwd_max=rec["sup_upper"])
                        total[SUP_POSSIBLE] += failure_counts(bounded, new, form)["forward"]
                    else:
                        total[SUP_POSSIBLE] += len(rec["sup_min"])
            for i, e in enumerate(new):
                self._counts[form, float(e)] = {p: int(total[p][i]) for p in props}
        return {p: np.array([self._counts[form, float(e)][p] for e in eps], dtype=np.int64) for p in props}

    def sup_methods(self):
        """{method (mcinit.layout.SUP_METHODS): (trial, layer) pairs of the completed trials
        whose extremes over the sphere it computed}; a file of the search before format
        version 4: all by the search.  Empty without the supremum search."""
        if not self.config.sup:
            return {}
        if not self.config.sup_certified:
            return {m: (self.completed * self.config.depth if m == "search" else 0) for m in SUP_METHODS}
        counts = np.zeros(len(SUP_METHODS), dtype=np.int64)
        for start in range(0, self.completed, _BLOCK):
            m = self.records(("sup_method",), start, start + _BLOCK)["sup_method"]
            counts += np.bincount(m.ravel(), minlength=len(SUP_METHODS))[:len(SUP_METHODS)]
        return {m: int(counts[i]) for i, m in enumerate(SUP_METHODS)}

    def layer_failure_counts(self, eps, prop="forward", form="norm", cumulative=False):
        """Failures of ``prop`` at each hidden layer and eps over the completed trials: an
        int array (L, len(eps)), read in blocks.  A trial fails at layer l when its ratio
        there deviates by more than eps for some input (NaN, +inf: always) or, for the
        forward property, layer l is dead (rho_l = 0); both: either; sup: the forward
        property at the extremes found over the sphere; sup_possible: the certified bounds do
        not exclude a failure (SUP_POSSIBLE).  cumulative: at some layer 1..l (the row of
        layer L is then failure_counts' count)."""
        eps = np.atleast_1d(np.asarray(eps, dtype=float))
        if prop not in (self.props + ((SUP, SUP_POSSIBLE) if self.config.sup else ())):
            raise ValueError(f"run {self.name} did not compute the {prop} property")
        total = np.zeros((self.config.depth, len(eps)), dtype=np.int64)
        if prop == SUP_POSSIBLE and not self.config.sup_certified:
            total[:] = self.completed            # no certified bound: every trial may fail
            return total
        # (min column, max column, whether a ratio of 0 fails: a dead forward layer) per quantity
        pairs = {"forward": (("fwd_min", "fwd_max", True),), "backward": (("bwd_min", "bwd_max", False),),
                 SUP: (("sup_min", "sup_max", True),), SUP_POSSIBLE: (("sup_lower", "sup_upper", True),)}
        pairs["both"] = pairs["forward"] + pairs["backward"]
        cols = pairs[prop]
        for start in range(0, self.completed, _LAYER_BLOCK):
            rec = self.records(tuple(c for pair in cols for c in pair[:2]), start, start + _LAYER_BLOCK)
            dev = np.maximum.reduce([deviation(rec[c], form) for pair in cols for c in pair[:2]])
            lo, _, zero_fails = cols[0]
            dead = (rec[lo] == 0) if zero_fails else np.zeros(dev.shape, bool)
            if cumulative:
                dev = np.maximum.accumulate(dev, axis=1)
                dead = np.logical_or.accumulate(dead, axis=1)
            for i, e in enumerate(eps):
                total[:, i] += ((dev > e) | dead).sum(axis=0)
        return total


class Results:
    """The runs of a results file (one for a run file, several for a sweep)."""

    def __init__(self, path):
        self.path = path
        info = read_file(path)
        self.kind = info.kind
        self.runs = [Run(r) for r in info.runs]

    def __repr__(self):
        return f"Results({self.path!r}, {self.kind}, {len(self.runs)} run(s))"

    def __getitem__(self, name):
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)

    def with_property(self, prop):
        """These results restricted to the runs that computed ``prop`` (forward, backward,
        both; sup: the runs with the supremum search), in order (possibly none)."""
        if prop not in PROPS + (SUP,):
            raise ValueError(f"prop must be one of {PROPS + (SUP,)}")
        out = object.__new__(Results)
        out.path, out.kind = self.path, self.kind
        out.runs = [r for r in self.runs if (r.config.sup if prop == SUP else prop in r.props)]
        return out

    def failure(self, eps=None, prop="forward", form="norm", level=0.95):
        """Empirical failure probability beside the bounds: one row per run and eps.

        eps     tolerance(s) (None: mcinit.stats.EPS_LADDER); a trial fails when the
                deviation of some layer and input exceeds eps, |sqrt(ratio) - 1| in the norm
                form, |ratio - 1| in the squared form, max(sqrt(ratio), 1/sqrt(ratio)) - 1 in
                the symmetric form (mcinit.stats.deviation).  Norm-form eps >= 1 asked for
                gives a UserWarning: no collapsing norm exceeds it (the symmetric form sees them)
        prop    forward (rho), backward (gamma) or both; or sup: the forward property for
                every input of R^n at once (only runs made with --sup-search), two-sided:
                failures / p_hat count the trials that fail at the extremes found at actual
                inputs (a lower estimate of the probability), failures_upper / p_upper the
                trials whose certified bounds do not exclude a failure (an upper estimate;
                with ci_high_upper, [ci_low, ci_high_upper] holds the probability at the
                level), gap = p_upper - p_hat (0 where every extreme is exact), exact_share
                the share of (trial, layer) pairs computed exactly.  A file of the search
                written before format version 4 has no certified bounds: p_upper 1.  Only the runs
                that computed prop have rows (a run made with --properties forward has no
                backward and no both rows); none is a ValueError
        level   confidence level of the exact Clopper-Pearson interval
        Columns: run, width (the narrowest hidden layer), widths, depth, samples, init,
        dist, kernel, prop, form, eps, trials, failures, p_hat, ci_low, ci_high,
        paper_delta (the bound encoded in the authors' reference code bound_comparison.py,
        norm form; for the squared form at the norm tolerance sqrt(1 + eps) - 1, for the
        symmetric form at eps / (1 + eps) (theory.norm_tolerance); for
        prop="both" min(1, 2 delta), the union of the two properties; only for Gaussian
        weights with E rho_l = 1 in every layer: he, or he-in with equal widths),
        chernoff (the rigorous Chernoff + union bound of the forward property, Gaussian
        weights), p_exact (exact forward failure probability, one input, Gaussian weights),
        then the rest of the run's identifying columns as in layers() (trials_planned,
        data, normalize, wn_gain, head, precision, properties, sup_search, seed,
        config_hash), bound_violated (interval entirely above paper_delta), paper_vacuous
        (paper_delta >= 1).  docs/results.md.
        """
        prop, form, eps = _checked(prop, form, eps)
        rows = []
        for run in self.with_property(prop).runs:
            c = run.config
            T = run.completed
            counts = run.failure_counts(eps, form)
            cells = failure_cells(counts[prop], T, level)
            upper = _sup_upper(run, counts, T, level) if prop == SUP else None
            bounds = _bounds(c, eps, prop, form)
            for i, e in enumerate(eps):
                row = dict(
                    run=run.name, width=min(c.widths), widths=",".join(map(str, c.widths)), input_dim=c.input_dim,
                    depth=c.depth, samples=c.samples, init=c.init, dist=c.dist, kernel=run.kernel, prop=prop,
                    form=form, eps=float(e), trials=T, failures=int(cells["failures"][i]),
                    p_hat=float(cells["p_hat"][i]), ci_low=float(cells["ci_low"][i]),
                    ci_high=float(cells["ci_high"][i]), paper_delta=bounds["paper_delta"][i],
                    chernoff=bounds["chernoff"][i], p_exact=bounds["p_exact"][i])
                if upper is not None:
                    row.update({k: v[i] if isinstance(v, np.ndarray) else v for k, v in upper.items()})
                rows.append(_identified(row, run))
        if not rows:
            _no_run_computed(self, prop)
        import pandas as pd     # here: a run's closing summary imports this module, not pandas
        df = pd.DataFrame(rows)
        df["bound_violated"] = df["ci_low"] > df["paper_delta"]
        df["paper_vacuous"] = df["paper_delta"] >= 1.0
        return df

    def layers(self):
        """Per-layer statistics over all (trial, input) pairs of each run: one row per run
        and hidden layer (mcinit.rows.layer_rows), with the run's identifying columns.

        Columns: run, layer, width (n_l), count, rho_mean, rho_sd, rho_min, rho_max,
        log_rho_mean, log_rho_sd, gamma_mean, gamma_sd, gamma_min, gamma_max,
        log_gamma_mean, log_gamma_sd, exact_rho_mean, exact_rho_sd (one-input law;
        the sd for Gaussian and orthogonal weights only), dead (dead trials of the run), properties
        (what the run computed); then trials (completed), the configuration's columns
        (mcinit.rows.config_columns: trials_planned, input_dim, widths, depth, samples,
        data, normalize, init, wn_gain, dist, head, kernel, precision, sup_search, seed)
        and config_hash, so that the tables of several files concatenate.  count: the
        finite values of rho_l over the (trial, input) pairs (of gamma_l for a run of the
        backward property alone); the columns of a property the run did not compute (rho
        with --properties backward, gamma with forward) are NaN.  docs/results.md."""
        rows = []
        for run in self.runs:
            c = run.config
            for lr in layer_rows(c, run.summary()):
                rows.append(_identified(dict(run=run.name, **lr, properties=c.properties), run))
        import pandas as pd
        return pd.DataFrame(rows)

    def failure_by_layer(self, eps=None, prop="forward", form="norm", level=0.95, cumulative=False):
        """Empirical failure probability of each hidden layer: one row per run, eps and layer.

        eps, prop, form, level as in failure() (prop sup: the forward property over the
        inputs the supremum search evaluated).  A trial fails at layer l when the
        deviation of its ratio at l (rho_l forward, gamma_l backward; either for both)
        exceeds eps for some input, or, forward, when layer l is dead (rho_l = 0);
        cumulative=True: at some layer 1..l, so that the row of l = L is failure()'s.
        prop sup adds failures_upper and p_upper (the certified bounds', as in failure()).
        Columns: run, prop, form, eps, layer, width (n_l), cumulative, trials,
        failures, p_hat, ci_low, ci_high (exact interval at level), p_exact (cumulative
        forward only: the exact probability that one input fails by layer l, Gaussian
        weights, one input per trial; NaN otherwise), then the run's identifying columns
        as in layers().  docs/results.md."""
        prop, form, eps = _checked(prop, form, eps)
        rows = []
        for run in self.with_property(prop).runs:
            c = run.config
            T = run.completed
            k = run.layer_failure_counts(eps, prop, form, cumulative)       # (L, len(eps))
            k_up = run.layer_failure_counts(eps, SUP_POSSIBLE, form, cumulative) if prop == SUP else None
            exact = np.full((c.depth, len(eps)), np.nan)
            if cumulative and prop == "forward" and _exact_defined(c):
                law = theory.exact_law_shown(c)[0]
                try:
                    first = theory.exact_forward_failure_layers(eps, list(c.widths), form, c.input_dim, c.init,
                                                                **law.keywords)
                    exact = np.cumsum(np.atleast_2d(first), axis=-1).T
                except ValueError:          # orthogonal weights of narrow layers: refused, left NaN
                    if c.init != "orthogonal":
                        raise
            for l in range(c.depth):
                cells = failure_cells(k[l], T, level)
                for i, e in enumerate(eps):
                    rows.append(_identified(dict(
                        run=run.name, prop=prop, form=form, eps=float(e), layer=l + 1, width=int(c.widths[l]),
                        cumulative=bool(cumulative), trials=T, failures=int(cells["failures"][i]),
                        p_hat=float(cells["p_hat"][i]), ci_low=float(cells["ci_low"][i]),
                        ci_high=float(cells["ci_high"][i]), p_exact=float(exact[l, i]),
                        **({} if k_up is None else dict(failures_upper=int(k_up[l, i]),
                                                        p_upper=float(k_up[l, i] / T) if T else float("nan")))), run))
        if not rows:
            _no_run_computed(self, prop)
        import pandas as pd
        return pd.DataFrame(rows)


def _sup_upper(run, counts, T, level):
    """The columns of prop="sup" beyond the lower estimate: failures_upper (trials whose
    certified bounds do not exclude a failure), p_upper and ci_high_upper (the upper estimate
    and the upper end of its interval), gap (p_upper - p_hat) and exact_share (the share of
    (trial, layer) pairs whose extremes are exact)."""
    possible = failure_cells(counts[SUP_POSSIBLE], T, level)
    methods = run.sup_methods()
    pairs = sum(methods.values())
    return dict(failures_upper=possible["failures"].astype(np.int64), p_upper=possible["p_hat"].astype(float),
                ci_high_upper=possible["ci_high"].astype(float),
                gap=(possible["p_hat"] - failure_cells(counts[SUP], T, level)["p_hat"]).astype(float),
                exact_share=float(methods.get("exact", 0) / pairs) if pairs else float("nan"))


def _one_input_statistic(r, stat):
    """A statistic over one input (stats.INPUT_STATS) of the ratios r: the one value's mean
    r and sd 0 (NaN where r is infinite or NaN, as np.std), and the same of sqrt(r); what
    the reducer's two passes give for N = 1."""
    r = np.asarray(r, dtype=float)
    if stat not in INPUT_STATS:
        raise ValueError(f"no statistic {stat!r} over the inputs")
    if stat == "mean":
        return r.copy()
    if stat == "norm_mean":
        return np.sqrt(r)
    with np.errstate(invalid="ignore"):
        return r - r


def _identified(row, run):
    """``row`` followed by what identifies its run: trials (completed), the configuration's
    columns (mcinit.rows.config_columns) and config_hash; a key the row has already stays."""
    for key, value in dict(trials=run.completed, **config_columns(run.config),
                           config_hash=run.config_hash).items():
        row.setdefault(key, value)
    return row


def _checked(prop, form, eps):
    """(prop, form, eps as a float array), checked as failure() and failure_by_layer() take them
    (eps None: EPS_LADDER); a UserWarning for norm-form eps >= 1 asked for (warn_norm_eps)."""
    if prop not in PROPS + (SUP,):
        raise ValueError(f"prop must be one of {PROPS + (SUP,)}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}")
    asked = eps is not None
    eps = np.atleast_1d(np.asarray(EPS_LADDER if eps is None else eps, dtype=float))
    if np.any(~np.isfinite(eps)) or np.any(eps <= 0):
        raise ValueError("eps must be positive")
    if asked:
        warn_norm_eps(eps, form, stacklevel=4)
    return prop, form, eps


def _no_run_computed(results, prop):
    """The ValueError of a table with no row: no run of ``results`` computed ``prop``."""
    if prop == SUP:
        raise ValueError("no run of this file was made with the supremum search (--sup-search)")
    made = sorted({r.config.properties for r in results.runs})
    raise ValueError(f"no run of this file computed the {prop} property "
                     f"(made with --properties {', '.join(made)})")


def _exact_defined(c):
    """Whether the exact forward law applies to a run (theory.exact_law_shown), one input per trial."""
    return c.samples == 1 and theory.exact_law_shown(c)[0] is not None


def _bounds(c, eps, prop, form):
    """paper_delta, chernoff and p_exact arrays (NaN where not defined) for a run's config."""
    n = len(eps)
    out = {k: np.full(n, np.nan) for k in ("paper_delta", "chernoff", "p_exact")}
    law = theory.exact_law_shown(c)[0]    # plain laws only, where computed in seconds
    if prop == SUP:   # the paper's bound for all inputs is another one, not encoded in its code
        return out
    paper = paper_bound(c, eps, prop, form)
    if paper is not None:
        out["paper_delta"] = paper
    if law is not None and prop == "forward":
        out["chernoff"] = chernoff_values(eps, c.widths, c.samples, form, c.input_dim, c.init, **law.keywords)
        if c.samples == 1:
            out["p_exact"] = exact_values(eps, c.widths, form, c.input_dim, c.init, **law.keywords)
    return out


def chernoff_values(eps, widths, samples, form, input_dim, init, activation="relu", gain=None):
    """theory.chernoff_bound over the tolerances eps (an array, read-only), computed once per law
    (widths, samples, input_dim, init, activation, gain), eps and form: the report's tables, its
    JSON and its figures share it, and so do the runs of a sweep that differ only in what the law
    ignores.  NaN where the bound is not computed (leaky-relu: theory.ExactLaw.chernoff)."""
    if not theory.ExactLaw((), input_dim, init, activation, gain).chernoff:
        return np.full(len(_key(eps)), np.nan)
    return _cached(theory.chernoff_bound, _key(eps), tuple(int(w) for w in widths), int(samples), form,
                   None if input_dim is None else int(input_dim), init, **_law_keywords(activation, gain))


def exact_values(eps, widths, form, input_dim, init, activation="relu", gain=None):
    """theory.exact_forward_failure over the tolerances eps (an array, read-only), computed once per
    law (widths, input_dim, init, activation, gain), eps and form, as chernoff_values.  NaN where
    theory refuses the value as not accurate enough (orthogonal weights of narrow layers)."""
    try:
        return _cached(theory.exact_forward_failure, _key(eps), tuple(int(w) for w in widths), form,
                       None if input_dim is None else int(input_dim), init, **_law_keywords(activation, gain))
    except ValueError:
        if init != "orthogonal":
            raise
        return np.full(len(_key(eps)), np.nan)


def _law_keywords(activation, gain):
    """theory's activation= and gain=, left out at their defaults (ReLU's law, called as before)."""
    return {} if activation == "relu" and gain is None else {"activation": activation, "gain": gain}


def _key(eps):
    return tuple(float(e) for e in np.atleast_1d(np.asarray(eps, dtype=float)))


@functools.lru_cache(maxsize=4096)
def _cached(f, eps, widths, *args, **keywords):
    out = np.atleast_1d(np.asarray(f(np.asarray(eps), list(widths), *args, **keywords), dtype=float))
    out.flags.writeable = False
    return out


def paper_bound(c, eps, prop, form="norm"):
    """The paper's bound (theory.paper_delta at the narrowest width, the norm tolerance of
    eps) on the failure probability of property ``prop`` (forward, backward: the same
    bound; both: min(1, 2 delta), the union) of a run of configuration ``c``: an array
    over eps, or None outside the paper's setting (_paper_setting)."""
    if not _paper_setting(c):
        return None
    e_norm = theory.norm_tolerance(np.atleast_1d(np.asarray(eps, dtype=float)), form)
    d = np.asarray(theory.paper_delta(min(c.widths), e_norm, c.samples, c.depth), float)
    # each property holds with probability 1 - delta; both together, by the union, 1 - 2 delta
    return np.minimum(1.0, 2.0 * d) if prop == "both" else d


def _paper_setting(c):
    """Whether a run is in the setting of the paper bound: Gaussian weights with E rho_l = 1
    in every layer (he, or he-in when every layer's fan-in equals its width), of a plain network."""
    if c.dist != "normal" or c.residual or not theory.paper_applies(c.init, c.activation, c.gain):
        return False
    return c.init == "he" or (c.init == "he-in" and len(set(c.all_widths)) == 1)


def load(path):
    """The results of a run or sweep file (only its completed trials)."""
    return Results(str(path))
