"""The JSON documents of ``--json`` (mcinit run, sweep, report, bound, status): one function
per kind, each returning a plain dict that ``dumps`` prints as the command's only output.

    run_document(result, output=None)          # engine.RunResult: what mcinit run prints
    sweep_document([(name, result), ...], output)
    report_document(mcinit.load(path), eps=None, form="norm", level=0.95)
    bound_document([0.1, 0.15], delta=0.05, depth=[5, 10], props=("forward", "both"))
    status_document(path)                      # a results file's or a submission's state

Each takes its numbers from where the command's text takes them (mcinit.summary_text.run_numbers
and sweep_numbers, mcinit.report.report_numbers, mcinit.report.bound_numbers, mcinit.status, mcinit.hpc), so the
text and the JSON never disagree.  Every document starts with ``document`` (its kind),
``document_version`` (DOCUMENT_VERSION; raised when a key changes meaning or goes away) and
``mcinit_version``.  Keys name what they hold (the columns of mcinit.results' tables where
they are the same numbers); NaN and infinities are null (JSON has neither).
docs/results.md lists every key.
"""

import json
import math
import os

import numpy as np

from ._version import __version__
from .rows import config_columns

__all__ = ["DOCUMENT_VERSION", "run_document", "sweep_document", "report_document", "bound_document",
           "status_document", "plain", "dumps"]

#: the version of the documents' keys
DOCUMENT_VERSION = 1


def plain(value):
    """``value`` as JSON-ready Python values: dicts with text keys, lists, str, int, float,
    bool, None; numpy scalars and arrays, tuples and DataFrames converted (a DataFrame to a
    list of row dicts); NaN, +inf and -inf become None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict") and hasattr(value, "columns"):          # a pandas DataFrame
        return [plain(row) for row in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return plain(value.item())
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}")


def dumps(doc):
    """The text of a document: JSON, indented, NaN and infinities as null."""
    return json.dumps(plain(doc), indent=2, allow_nan=False)


def _header(kind):
    return dict(document=kind, document_version=DOCUMENT_VERSION, mcinit_version=__version__)


def _run_body(result, output=None, threads=None, requested_kernel=None, shard=None):
    """The keys of one run in the run and sweep documents (result: an engine.RunResult)."""
    from .summary_text import LEVEL, run_numbers
    cfg, s = result.config, result.summary
    numbers = run_numbers(result)
    read = result.computed == 0 and result.elapsed == 0
    failure = []
    for prop, cells in numbers["failure"].items():
        for i, e in enumerate(numbers["eps"]):
            exact = numbers["p_exact"] if prop == "forward" else None
            paper = numbers["paper_delta"][prop]
            failure.append(dict(prop=prop, form="norm", eps=e, level=LEVEL, trials=s.trials,
                                failures=cells["failures"][i], p_hat=cells["p_hat"][i], ci_low=cells["ci_low"][i],
                                ci_high=cells["ci_high"][i],
                                p_exact=None if exact is None else float(np.atleast_1d(exact)[i]),
                                paper_delta=None if paper is None else float(np.atleast_1d(paper)[i])))
    return dict(
        output=os.path.abspath(output) if output else None,
        config=config_columns(cfg), config_hash=cfg.config_hash(),
        kernel=dict(used=cfg.kernel, requested=requested_kernel),
        shard=None if shard is None else f"{shard[0]}/{shard[1]}",
        trials=dict(completed=s.trials, computed=result.computed, before_resume=s.trials - result.computed),
        read_from_file=read,
        time=dict(elapsed_s=result.elapsed, startup_s=result.startup, trials_per_s=result.rate,
                  threads=threads),
        dead=s.dead,
        layers=numbers["layers"],
        failure=failure,
        sup=_sup_body(cfg, numbers["sup"], numbers["eps"], s.trials))


def _sup_body(cfg, sup, eps, trials):
    """The run document's ``sup``: null without the supremum search, else {method (in words),
    exact_pairs, pairs, failure: one row per eps (norm form) of the lower estimate (failures,
    p_hat, ci_low, ci_high: trials failing at the extremes found) and the upper one
    (failures_upper, p_upper, ci_low_upper, ci_high_upper: trials whose certified bounds do
    not exclude a failure)}."""
    if sup is None:
        return None
    from .sphere import method_of
    from .summary_text import LEVEL
    lo, up = sup["lower"], sup["upper"]
    rows = [dict(form="norm", eps=e, level=LEVEL, trials=trials, failures=lo["failures"][i], p_hat=lo["p_hat"][i],
                 ci_low=lo["ci_low"][i], ci_high=lo["ci_high"][i], failures_upper=up["failures"][i],
                 p_upper=up["p_hat"][i], ci_low_upper=up["ci_low"][i], ci_high_upper=up["ci_high"][i])
            for i, e in enumerate(eps)]
    return dict(method=method_of(cfg.input_dim), exact_pairs=sup["exact"], pairs=sup["pairs"], failure=rows)


def run_document(result, output=None, threads=None, requested_kernel=None, shard=None):
    """The document of ``mcinit run --json``: the numbers of the run summary.

    result            the engine.RunResult (computed, or read from a complete file)
    output            the results file; threads: the CPU threads the run used
    requested_kernel  the kernel asked for (auto, or a name): ``kernel.used`` is the one
                      that ran (auto's pick)
    shard             (I, K) of a shard run, or None
    Keys: document, document_version, mcinit_version, output, config (mcinit.rows.config_columns),
    config_hash, kernel {used, requested}, shard, trials {completed, computed (by this
    command), before_resume}, read_from_file (nothing computed: the file held the run,
    complete), time {elapsed_s, startup_s, trials_per_s, threads}, dead, layers (mcinit.rows.layer_rows),
    failure (one row per property computed and eps: prop, form, eps, level, trials,
    failures, p_hat, ci_low, ci_high, p_exact, paper_delta: the summary's paper column,
    the paper's bound of the row's property, twice it for both), sup (with the supremum
    search: _sup_body, the two-sided failure probability for every input; else null)."""
    return dict(_header("run"), **_run_body(result, output, threads, requested_kernel, shard))


def sweep_document(results, output, threads=None, requested_kernel=None, shard=None):
    """The document of ``mcinit sweep --json``: output, runs (one per run in the sweep's
    order: name, then the keys of run_document after output), compared (the comparison
    table the text ends with: mcinit.summary_text.sweep_numbers), time {elapsed_s, the sum
    of the runs'}.  results: [(name, engine.RunResult)]; shard: (I, K) of --shard, or None."""
    from .summary_text import sweep_numbers
    runs = []
    for name, result in results:
        body = _run_body(result, None, threads, requested_kernel, shard)
        del body["output"]
        runs.append(dict(name=name, **body))
    return dict(_header("sweep"), output=os.path.abspath(output), runs=runs,
                compared=sweep_numbers(results),
                time=dict(elapsed_s=sum(r.elapsed for _, r in results), threads=threads))


def report_document(results, eps=None, form="norm", level=0.95, figures=None, figure_files=None, numbers=None):
    """The document of ``mcinit report --json``: the numbers of its tables
    (mcinit.report.report_numbers).

    Keys: document, document_version, mcinit_version, path, kind (run or sweep), form,
    level, eps, paper_bound (where the encoded bound comes from), runs (name, completed,
    trials_planned, kernel, config, config_hash), layers (the rows of results.layers(),
    with z), failure {forward, backward, both: rows of results.failure() with
    chernoff_below and exact_outside, or null where no run computed the property}, sup
    (rows of results.failure(prop="sup"), or null), meanfield (the rows of
    mcinit.report.text.meanfield_numbers: per run the mean-field view and ln rho_L's
    depth-to-width law), figures (the file --plot named, or null),
    figure_files (the files --plot wrote: that file, or with --panels separate one file per
    panel; null without --plot).  numbers: report_numbers' result for these arguments, when
    the caller has it already."""
    from .report import PAPER_PROVENANCE, report_numbers
    n = report_numbers(results, eps, form, level) if numbers is None else numbers
    runs = [dict(name=r.name, completed=r.completed, trials_planned=r.planned, kernel=r.kernel,
                 config=config_columns(r.config), config_hash=r.config_hash) for r in results.runs]
    return dict(_header("report"), path=os.path.abspath(results.path), kind=results.kind, form=form,
                level=level, eps=n["eps"], paper_bound=PAPER_PROVENANCE, runs=runs, layers=n["layers"],
                failure=n["failure"], sup=n["sup"], meanfield=n["meanfield"],
                figures=os.path.abspath(figures) if figures else None,
                figure_files=[os.path.abspath(f) for f in figure_files] if figure_files else None)


def bound_document(eps, delta, depth, samples=1, widths=None, form="norm", init="he", input_dim=None,
                   props=("forward",), activation="relu", gain=None):
    """The document of ``mcinit bound --json``: bounds, one entry per depth and eps in the
    order the text prints its blocks (every eps of the first depth, then of the next;
    mcinit.report.bound_numbers: eps, eps_norm, delta, depth, samples, form, init, activation, gain, input_dim,
    properties, required (rows: bound, property, width, meaning, why_none), at_widths (rows:
    width, property, input_dim, paper_delta, chernoff, p_exact, p_union, paper_vacuous,
    paper_below_exact, paper_outside_setting)).  eps and depth: a number or a list.
    ValueError for arguments out of range."""
    from .report import bound_numbers
    return dict(_header("bound"), bounds=[bound_numbers(e, delta, L, samples, widths, form, init, input_dim, props,
                                                        activation, gain)
                                          for L in np.atleast_1d(depth) for e in np.atleast_1d(eps)])


def paper_document(figures):
    """The document of ``mcinit paper --json``: ``figures`` (mcinit.paper.Figure), one object
    each with ``figure``, ``quick``, ``files``, ``seconds``, ``rows`` (one object per row of
    the printed table, keyed as its columns) and ``notes`` (the lines under the table).

    Keys: document, document_version, mcinit_version, figures."""
    return dict(_header("paper"), figures=[plain(dict(figure=f.figure, quick=f.quick, files=list(f.files),
                                                      seconds=round(f.seconds, 3), rows=f.rows, notes=f.notes))
                                           for f in figures])


def status_document(path):
    """The document of ``mcinit status --json``: of a submission (a plan in PATH.parts/):
    subject "submission" and mcinit.hpc.read_status's keys, every shard included, with
    groups (mcinit.hpc.shard_groups: done, running, missing, failed); of a results file:
    subject "file" and mcinit.status.file_status's keys."""
    from .hpc import shard_groups
    from .status import status_of
    kind, st = status_of(path)
    doc = dict(_header("status"), subject=kind, **st)
    if kind == "submission":
        doc["groups"] = shard_groups(st)
    return doc
