"""Merging shard files into the file of the single run (or into a sweep file).

A part is any run in a results file: the root run of a run file, or each run
group of a sweep file.  Parts are grouped by configuration hash.  Within a
configuration, the parts' planned trial ranges [first_index, first_index + rows)
must not overlap and must cover 0..trials-1, and each part must be complete;
then the merged per-trial records equal the single run's bit for bit (they are
copied in index order) and the summary is the Chan merge of the parts'
summaries in index order (equal to the single run's to rounding).  With
allow_partial, missing or incomplete parts are tolerated: the output holds the
trials that exist, sorted by index, and is marked partial=1 with the missing
ranges in the attribute ``missing`` (JSON); ``completed`` is then the number of
rows, and ``/trials/index`` says which trials they are.
"""

import json
import os

import numpy as np

from . import sweep as sweep_mod
from ._version import __version__
from .config import RunConfig
from .stats import Summary
from .store import (COLUMNS, SUP_FIELDS, StoreError, build_run, check_output, checkpoint_slot, create_file,
                    open_results, read_summary, stored_columns, write_summary)

__all__ = ["merge_files", "read_parts"]

_BLOCK = 1 << 20


class Part:
    """One run found in an input file."""

    def __init__(self, path, group, g):
        self.path, self.group = path, group
        if g.attrs.get("format") != "mcinit" or "config" not in g.attrs:
            raise StoreError(f"{path}{'' if group == '/' else ':' + group} is not an mcinit run")
        self.config_json = str(g.attrs["config"])
        self.config_hash = str(g.attrs["config_hash"])
        self.config = RunConfig.from_json(self.config_json)
        self.trials = int(g.attrs["trials"])
        self.first = int(g.attrs.get("first_index", 0))
        self.rows = int(g.attrs.get("rows", self.trials))
        self.completed = int(g.attrs["completed"])
        self.kernel = str(g.attrs["kernel"])
        self.partial = bool(g.attrs.get("partial", False))
        if self.partial:
            raise StoreError(f"{path} is itself a partial merge; merge the original shards")
        slot = checkpoint_slot(g)
        if slot is None:
            raise StoreError(f"{path}: no summary matches its completed trials (resume it first)")
        self.summary = read_summary(g["checkpoint"][f"slot{slot}"], self.config.depth)

    @property
    def name(self):
        return os.path.basename(self.path) + ("" if self.group == "/" else f":{self.group}")


def read_parts(paths):
    """Every run of every input file, as Part objects."""
    parts = []
    for p in paths:
        with open_results(p) as f:
            if f.attrs.get("kind") == "sweep":
                for name in json.loads(f.attrs["runs"]):
                    if f"runs/{name}" in f:
                        parts.append(Part(p, f"runs/{name}", f["runs"][name]))
            else:
                parts.append(Part(p, "/", f))
    return parts


def _coverage(parts, trials):
    """(ordered parts, missing ranges) after checking that planned ranges do not overlap."""
    parts = sorted(parts, key=lambda q: q.first)
    missing = []
    pos = 0
    for q in parts:
        if q.first < pos:
            raise StoreError(f"{q.name} overlaps another part at trial {q.first}: trials would be counted twice")
        if q.first > pos:
            missing.append((pos, q.first))
        if q.completed < q.rows:
            missing.append((q.first + q.completed, q.first + q.rows))
        pos = q.first + q.rows
    if pos > trials:
        raise StoreError(f"parts reach trial {pos} but the run has {trials} trials")
    if pos < trials:
        missing.append((pos, trials))
    return parts, missing


def _write_run(out, group, parts, missing, meta_extra):
    """Copy the parts' completed rows in index order and their merged summary into out[group]."""
    first = parts[0]
    cfg = first.config
    rows = sum(q.completed for q in parts)
    summary = Summary(cfg.depth)
    for q in parts:
        summary.merge(q.summary)
    meta = dict(config=first.config_json, config_hash=first.config_hash, seed=cfg.seed,
                depth=cfg.depth, trials=cfg.trials, kernel=first.kernel, mcinit_version=__version__,
                first_index=0, rows=rows, sup=cfg.sup, samples=cfg.samples,
                extra_attrs=dict(merged_from=json.dumps([q.name for q in parts]),
                                 partial=np.int8(bool(missing)), missing=json.dumps(missing), **meta_extra))
    g = out.create_group(group) if group != "/" else out
    build_run(g, meta)
    pos = 0
    names = stored_columns(g["trials"], COLUMNS + SUP_FIELDS)
    for q in parts:
        with open_results(q.path) as f:
            src = f[q.group]["trials"]
            for a in range(0, q.completed, _BLOCK):
                b = min(q.completed, a + _BLOCK)
                for k in names:
                    if k in src:
                        g["trials"][k][pos + a:pos + b] = src[k][a:b]
        pos += q.completed
    write_summary(g["summary"], summary)
    write_summary(g["checkpoint"]["slot0"], summary)
    g["checkpoint"]["slot1"]["trials"][()] = -1
    g.attrs["completed"] = np.int64(rows)


def merge_files(paths, output, overwrite=False, allow_partial=False, sweep=False):
    """Merge the runs in ``paths`` into ``output``; returns lines describing what was merged."""
    out_abs = os.path.abspath(output)
    if any(os.path.abspath(p) == out_abs for p in paths):
        raise StoreError("the output must not be one of the inputs")
    check_output(output, overwrite)
    parts = read_parts(paths)
    if not parts:
        raise StoreError("no runs found in the inputs")
    groups = {}
    for q in parts:
        groups.setdefault(q.config_hash, []).append(q)
    if len(groups) > 1 and not sweep:
        raise StoreError(f"the parts hold {len(groups)} different configurations; "
                         "merge shards of one run, or pass --sweep")
    plan = []
    names = sweep_mod.name_runs([qs[0].config for qs in groups.values()])
    for name, qs in zip(names, groups.values()):
        qs, missing = _coverage(qs, qs[0].trials)
        if missing and not allow_partial:
            n = sum(b - a for a, b in missing)
            raise StoreError(f"{n} of {qs[0].trials} trials are missing (first range {missing[0][0]}-"
                             f"{missing[0][1]}); pass --allow-partial to merge what exists")
        plan.append((name, qs, missing))
    lines = []

    def build(f):
        if sweep:
            f.create_group("runs")
        for name, qs, missing in plan:
            _write_run(f, f"runs/{name}" if sweep else "/", qs, missing, {})
            rows = sum(q.completed for q in qs)
            lines.append(f"{name}: {len(qs)} part(s), {rows:,} of {qs[0].trials:,} trials"
                         + (f", PARTIAL: {len(missing)} missing range(s)" if missing else ""))

    attrs = {"kind": "sweep", "runs": json.dumps([p[0] for p in plan]),
             "mcinit_version": __version__} if sweep else {}
    create_file(output, attrs, build)
    lines.append(f"merged -> {output}")
    return lines
