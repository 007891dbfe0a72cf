"""``mcinit status PATH``: the state of any results file, or of a SLURM submission.

    file_status("mcinit-run.h5")     # {kind, state, runs: [{completed, rows, state, ...}], ...}
    status_of("out.h5")              # a submission's (mcinit.hpc.read_status) when OUT.h5.parts/
                                     # holds one, else the results file's

A results file is a run file, a sweep file, a shard (``mcinit run --shard I/K``) or a
merged file (``mcinit merge``); each of its runs is complete, resumable (fewer trials
than it holds rows: the same command with --resume continues it), or partial (a merge
with missing trials).  Everything is read through mcinit.reader, which refuses a
damaged or foreign file with one line; nothing is written.
"""

import json
import os

from .layout import COMPLETED, RUNS, StoreError, column_shapes, run_path, sup_of
from .reader import open_file, read_file, sweep_names
from .rows import config_columns

__all__ = ["file_status", "format_file_status", "status_of", "STATES"]

#: a run's (and a file's) states, from the best: every trial done, a resume continues
#: it, a merge that lacks trials (its shards' files complete it)
STATES = ("complete", "resumable", "partial")


def _attr(g, key, default=None):
    v = g.attrs.get(key, default)
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    return v.item() if hasattr(v, "item") else v


def _run_entry(info, g):
    """The status of one validated run (info: mcinit.reader.RunInfo; g: its open group)."""
    merged_from = _attr(g, "merged_from")
    missing = _attr(g, "missing")
    missing = [list(map(int, m)) for m in json.loads(missing)] if isinstance(missing, str) and info.partial else []
    if info.partial:
        state = "partial"
    elif info.completed >= info.rows:
        state = "complete"
    else:
        state = "resumable"
    return dict(
        name=info.name, group=info.group, state=state, completed=info.completed, rows=info.rows,
        trials_planned=info.trials, first_index=info.first_index, shard=info.shard or None,
        merged_from=json.loads(merged_from) if isinstance(merged_from, str) else None,
        missing_trials=sum(b - a for a, b in missing), missing=missing,
        format_version=int(_attr(g, "format_version")), mcinit_version=_attr(g, "mcinit_version"),
        created=_attr(g, "created"), kernel=info.kernel, config=config_columns(info.config),
        config_hash=info.config_hash, record_columns=record_columns(info))


def record_columns(info):
    """The per-trial columns of a validated run (mcinit.reader.RunInfo), in the file's
    order (mcinit.layout.column_shapes): index, the record fields (with the statistics over
    the inputs where it holds them), dead and the supremum search's."""
    c = info.config
    return list(column_shapes(c.depth, c.samples, sup_of(c), c.properties, info.input_stats))


def file_status(path):
    """The state of the results file ``path``, read through mcinit.reader (a damaged or
    foreign file is a StoreError of one line), as a dict:

    path (absolute), kind (run or sweep), size_bytes, format_version and mcinit_version (of
    the file's root), created, state (the worst of its runs' STATES; resumable too for a
    sweep whose listed runs have not all begun), completed and rows (summed over its runs:
    trials done of those the file holds), runs (one dict per run: name, group, state,
    completed, rows, trials_planned (the configuration's trials), first_index, shard ("I/K"
    or None), merged_from (the parts' names, or None), missing_trials, missing ([first,
    stop) ranges of a partial merge), format_version, mcinit_version, created, kernel,
    config (mcinit.rows.config_columns), config_hash, record_columns (its per-trial
    columns, record_columns)), and for a sweep runs_listed and runs_not_begun (names)."""
    path = str(path)
    info = read_file(path)
    with open_file(path) as f:
        try:
            runs = [_run_entry(r, f if r.group == "/" else f[r.group]) for r in info.runs]
            listed = sweep_names(f, path, every_run=False) if info.kind == "sweep" else None
            root = dict(format_version=_attr(f, "format_version"), mcinit_version=_attr(f, "mcinit_version"),
                        created=_attr(f, "created"))
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"{path} is damaged ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None
    states = [r["state"] for r in runs]
    not_begun = [n for n in listed if n not in {r["name"] for r in runs}] if listed is not None else []
    state = next((s for s in reversed(STATES) if s in states), "complete")
    if not_begun and state == "complete":
        state = "resumable"
    out = dict(path=os.path.abspath(path), kind=info.kind, size_bytes=os.path.getsize(path),
               format_version=int(root["format_version"]) if root["format_version"] is not None else None,
               mcinit_version=root["mcinit_version"], created=root["created"], state=state,
               completed=sum(r["completed"] for r in runs), rows=sum(r["rows"] for r in runs), runs=runs)
    if listed is not None:
        out.update(runs_listed=listed, runs_not_begun=not_begun)
    return out


def _size(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def _config_line(c):
    """A run's configuration in one line, every column of mcinit.rows.config_columns."""
    return ", ".join(f"{k} {v}" for k, v in c.items() if v is not None)


def _progress(r):
    pct = 100.0 * r["completed"] / r["rows"] if r["rows"] else 100.0
    text = f"{r['completed']:,}/{r['rows']:,} trials ({pct:.1f}%)"
    if r["shard"]:
        text += (f" of shard {r['shard']} (trials {r['first_index']}-{r['first_index'] + r['rows'] - 1} "
                 f"of {r['trials_planned']:,})")
    return text


def _state_words(r, kind):
    if r["state"] == "complete":
        return "complete"
    if r["state"] == "partial":
        first = r["missing"][0] if r["missing"] else None
        return (f"partial: a merge that lacks {r['missing_trials']:,} of {r['trials_planned']:,} trials"
                + (f" (first missing range {first[0]}-{first[1] - 1})" if first else "")
                + "; merge the original shards, the missing ones among them, to complete it")
    command = "mcinit sweep" if kind == "sweep" else "mcinit run"
    return f"resumable: the same {command} command with --resume continues it"


def format_file_status(st):
    """The lines ``mcinit status`` prints for a results file."""
    runs = st["runs"]
    what = "run" if st["kind"] == "run" else f"sweep of {len(st['runs_listed'])} runs"
    if st["kind"] == "run" and runs[0]["shard"]:
        what = f"shard {runs[0]['shard']} of a run"
    elif st["kind"] == "run" and runs[0]["merged_from"] is not None:
        what = f"run merged from {len(runs[0]['merged_from'])} part{'s' if len(runs[0]['merged_from']) != 1 else ''}"
    lines = [f"{st['path']}: results file, {what}: {st['state']}",
             f"  format version {st['format_version']}, written by mcinit {st['mcinit_version']}, "
             f"created {st['created']}, {_size(st['size_bytes'])}"]
    if st["kind"] == "run":
        r = runs[0]
        lines += [f"  configuration: {_config_line(r['config'])}",
                  f"  config_hash {r['config_hash']}",
                  f"  records per trial: {', '.join(r['record_columns'])}",
                  f"  {_progress(r)}: {_state_words(r, 'run')}"]
        return lines
    pct = 100.0 * st["completed"] / st["rows"] if st["rows"] else 100.0
    lines.append(f"  trials: {st['completed']:,}/{st['rows']:,} in the runs begun ({pct:.1f}%)")
    width = max(len(r["name"]) for r in runs) if runs else 3
    for r in runs:
        lines.append(f"  {r['name']:<{width}}  {_progress(r)}, kernel {r['kernel']}: {_state_words(r, 'sweep')}")
    if st["runs_not_begun"]:
        lines.append(f"  not begun: {', '.join(st['runs_not_begun'])}: {_state_words(dict(state='resumable'), 'sweep')}")
    return lines


def status_of(path):
    """("submission", mcinit.hpc.read_status) when a submission for ``path`` exists (its
    directory PATH.parts/ holds a plan), else ("file", file_status) of the results file
    ``path``; a path that is neither is one line (StoreError)."""
    from . import hpc
    path = str(path)
    if not path or not path.isprintable():         # hpc says why no submission has such a name
        return "submission", hpc.read_status(path)
    plan = os.path.join(hpc.parts_dir(path), "plan.json")
    if os.path.lexists(plan):
        return "submission", hpc.read_status(path)
    if os.path.isfile(path):
        return "file", file_status(path)
    if not os.path.lexists(path):
        raise StoreError(f"no results file {path}, and no submission for it ({plan} does not exist)")
    return "submission", hpc.read_status(path)
