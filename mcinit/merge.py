"""Merging shard files into the file of the single run (or into a sweep file).

A part is any run in a results file: the root run of a run file, or each run
group of a sweep file.  Parts are grouped by configuration hash.  Within a
configuration, the parts' planned trial ranges [first_index, first_index + rows)
must not overlap and must cover 0..trials-1, and each part must be complete;
then the merged per-trial records equal the single run's bit for bit (they are
copied in index order) and the summary is the Chan merge of the parts'
summaries in index order (equal to the single run's to rounding).  Parts of one
configuration record the same properties (``properties`` enters the configuration
hash), so the merged run records them too, in the format version they imply; it holds
the statistics over the inputs (format version 3) when every part does (parts written
before version 3 lack them, and so then does the merged run).  With
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
from .stats import QUANTITIES_OF, Summary
from .layout import (DATA_PATH, RUNS, TRIAL_COLUMNS, TRIALS, StoreError, build_run, creation_bytes, record_bytes, sup_of,
                     stored_columns, sweep_attrs, write_final)
from .reader import open_file, read_file
from .store import OutputLock, check_output, create_file

__all__ = ["merge_files", "read_parts", "part_name"]

_BLOCK = 1 << 20


def part_name(info):
    """A part's name in messages and in the merged file's ``merged_from``: its file's base
    name, and the run's group in it for a sweep's run."""
    return os.path.basename(info.path) + ("" if info.group == "/" else f":{info.group}")


def read_parts(paths):
    """Every run of every input file (mcinit.reader.RunInfo, each file validated); a partial
    merge is no part (merge the original shards)."""
    parts = [info for p in paths for info in read_file(p).runs]
    for info in parts:
        if info.partial:
            raise StoreError(f"{info.path} is itself a partial merge; merge the original shards")
    return parts


def _coverage(parts, trials):
    """(ordered parts, missing ranges) after checking that planned ranges do not overlap."""
    parts = sorted(parts, key=lambda q: q.first_index)
    missing = []
    pos = 0
    for q in parts:
        first = q.first_index
        if first < pos:
            raise StoreError(f"{part_name(q)} overlaps another part at trial {first}: trials would be counted twice")
        if first > pos:
            missing.append((pos, first))
        if q.completed < q.rows:
            missing.append((first + q.completed, first + q.rows))
        pos = first + q.rows
    if pos > trials:
        raise StoreError(f"parts reach trial {pos} but the run has {trials} trials")
    if pos < trials:
        missing.append((pos, trials))
    return parts, missing


def _input_stats(parts):
    """Whether the merged run of ``parts`` holds the statistics over the inputs: when every
    part does."""
    return all(q.input_stats for q in parts)


def _write_run(out, group, parts, missing, meta_extra):
    """Copy the parts' completed rows in index order and their merged summary into out[group]."""
    first = parts[0]
    cfg = first.config
    rows = sum(q.completed for q in parts)
    summary = Summary(cfg.depth, QUANTITIES_OF[cfg.properties])
    for q in parts:
        summary.merge(q.summary)
    meta = dict(config=first.config_json, config_hash=first.config_hash, seed=cfg.seed,
                depth=cfg.depth, trials=cfg.trials, kernel=first.kernel, mcinit_version=__version__,
                first_index=0, rows=rows, sup=sup_of(cfg), samples=cfg.samples, properties=cfg.properties,
                input_stats=_input_stats(parts),
                extra_attrs=dict(merged_from=json.dumps([part_name(q) for q in parts]),
                                 partial=np.int8(bool(missing)), missing=json.dumps(missing), **meta_extra))
    if cfg.data_path:
        meta["extra_attrs"][DATA_PATH] = cfg.data_path
    g = out.create_group(group) if group != "/" else out
    build_run(g, meta)
    pos = 0
    t = g[TRIALS]
    names = stored_columns(t, TRIAL_COLUMNS)
    for q in parts:
        with open_file(q.path) as f:
            src = f[q.group][TRIALS]
            for a in range(0, q.completed, _BLOCK):
                b = min(q.completed, a + _BLOCK)
                for k in names:
                    t[k][pos + a:pos + b] = src[k][a:b]
        pos += q.completed
    write_final(g, summary, rows)


def merge_files(paths, output, overwrite=False, allow_partial=False, sweep=False, remove_parts=False):
    """Merge the runs in ``paths`` into ``output``; returns lines describing what was merged.

    remove_parts: once the merged file is complete and verified (``verify``), remove the input
    files (each under its own output lock: none that a run is writing); not with allow_partial."""
    out_abs = os.path.abspath(output)
    if any(os.path.abspath(p) == out_abs for p in paths):
        raise StoreError("the output must not be one of the inputs")
    if remove_parts and allow_partial:
        raise StoreError("--remove-parts removes the parts after a complete merge only, not with --allow-partial")
    check_output(output, overwrite, inputs=paths)       # before any lock file
    with OutputLock(output):
        check_output(output, overwrite, inputs=paths)
        lines = _merge(paths, output, allow_partial, sweep)
        if remove_parts:
            verify(output, read_parts(paths))
            lines += remove_files(paths)
        return lines


def verify(output, parts):
    """Check that the merged file ``output`` is complete: it reads back (mcinit.reader), no
    run of it is partial, and it holds every trial of every configuration of ``parts``, and
    the records of each part (compared column by column); a StoreError otherwise."""
    info = read_file(output)
    runs = {r.config_hash: r for r in info.runs}
    for q in parts:
        r = runs.get(q.config_hash)
        if r is None or r.partial or r.first_index != 0 or r.completed != r.trials or r.rows != r.trials:
            raise StoreError(f"{output} does not hold {part_name(q)}'s run complete; the parts are kept")
        with open_file(output) as f, open_file(q.path) as g:
            t, src = f[r.group][TRIALS], g[q.group][TRIALS]
            names = stored_columns(t, [n for n in TRIAL_COLUMNS if n in src])
            for a in range(0, q.completed, _BLOCK):
                b = min(q.completed, a + _BLOCK)
                at = q.first_index - r.first_index + a
                for k in names:
                    if not np.array_equal(t[k][at:at + b - a], src[k][a:b], equal_nan=t[k].dtype.kind == "f"):
                        raise StoreError(f"{output}'s {k} differs from {part_name(q)}'s; the parts are kept")


def remove_files(paths):
    """Remove the part files ``paths`` (a merge's inputs, merged and verified), each while
    holding its output lock; lines saying what was removed and what was not (and why)."""
    removed, freed, lines = 0, 0, []
    for p in dict.fromkeys(paths):
        try:
            with OutputLock(p):
                size = os.stat(p).st_blocks * 512
                os.remove(p)
        except (StoreError, OSError) as e:
            lines.append(f"kept {p}: {getattr(e, 'strerror', None) or e}")
            continue
        removed += 1
        freed += size
    from .limits import human_bytes
    lines.append(f"removed {removed} part file{'s' if removed != 1 else ''} ({human_bytes(freed)})")
    return lines


def _merge(paths, output, allow_partial, sweep):
    """merge_files under the output's lock."""
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
            f.create_group(RUNS)
        for name, qs, missing in plan:
            _write_run(f, f"runs/{name}" if sweep else "/", qs, missing, {})
            rows = sum(q.completed for q in qs)
            lines.append(f"{name}: {len(qs)} part(s), {rows:,} of {qs[0].trials:,} trials"
                         + (f", PARTIAL: {len(missing)} missing range(s)" if missing else ""))

    need = 0
    for name, qs, missing in plan:
        c = qs[0].config
        rows = sum(q.completed for q in qs)
        need += (creation_bytes(c.depth, rows, c.samples, sup_of(c), c.properties, _input_stats(qs))
                 + rows * record_bytes(c.depth, c.samples, sup_of(c), c.properties, _input_stats(qs)))
    attrs = sweep_attrs([p[0] for p in plan], __version__) if sweep else {}
    create_file(output, attrs, build, need)
    lines.append(f"merged -> {output}")
    return lines
