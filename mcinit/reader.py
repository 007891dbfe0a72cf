"""The one reader of results files: it validates a file before anything in it is trusted.

    info = read_file("mcinit-run.h5")       # FileInfo: kind, runs (RunInfo, validated)

The file is opened read-only (no HDF5 lock, so that a run writing it is not stopped)
and checked against its own configuration: the format and its version, the
configuration against its hash, ``completed`` within the rows, every dataset's shape
and type, a checkpoint slot holding the state at ``completed``, a part's trial range
within the run, a sweep's list of runs.  Loading, reporting, merging, resuming and
``mcinit status`` all read through it.  A damaged or foreign file is a StoreError of one
line naming what is wrong.
"""

import dataclasses
import json
import os
import time

import h5py
import numpy as np

from .config import RunConfig
from .layout import (CHECKPOINT, COMPLETED, DATA_PATH, FORMAT, FORMAT_VERSIONS, RUNS, SUMMARY, TRIALS, StoreError, sup_of,
                     checkpoint_slot, column_shapes, format_version_of, input_stats_of, member, read_summary, run_path,
                     slot_group)
from .stats import Summary

__all__ = ["RunInfo", "FileInfo", "open_file", "read_run", "read_file", "sweep_names", "reason"]


def reason(e):
    """The short reason of an OSError or RuntimeError raised by the OS or by HDF5; of any
    other error, its message's first line."""
    import re
    if not isinstance(e, (OSError, RuntimeError)):
        return (str(e) or type(e).__name__).splitlines()[0]
    whole = getattr(e, "strerror", None) or str(e) or type(e).__name__
    m = re.search(r"error message = '([^']*)'", whole)
    if m:
        return m.group(1)
    text = whole.splitlines()[0]
    m = re.search(r"\(([^()]*)\)\s*$", text)
    return m.group(1) if m else text


def open_file(path):
    """The file ``path`` opened read-only, without an HDF5 lock (with the lock when this
    process already holds it open with one: HDF5 refuses mixed flags); a missing file or
    one that is not HDF5 is a StoreError."""
    path = str(path)
    if not os.path.isfile(path):
        raise StoreError(f"results file not found: {path}" if not os.path.exists(path)
                         else f"{path} is not a regular file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        if "locking flag" in str(e):
            try:
                return h5py.File(path, "r")
            except OSError as e2:
                e = e2
        raise StoreError(f"cannot open {path} as an HDF5 file: {reason(e)}") from None


@dataclasses.dataclass
class RunInfo:
    """One validated run of a results file.

    path, group    the file and the run's group in it ("/" or "runs/<name>")
    name           the run's name (a sweep's run name, or the file's base name)
    config         the RunConfig; config_json its stored text; config_hash its sha256
    trials         trials planned for the whole run; first_index, rows: the trial indices
                   [first_index, first_index + rows) this file holds
    completed      rows durably written (0 <= completed <= rows)
    kernel, shard  the kernel and "I/K" of a shard ("" otherwise); partial: a partial merge
    summary        the Summary of the first ``completed`` rows (the checkpoint at completed)
    slot           the checkpoint slot holding it
    format_version its format version (mcinit.layout)
    input_stats    whether it records the statistics over each trial's inputs (version 3,
                   more than one input per trial; an earlier file of such a run does not)
    """

    path: str
    group: str
    name: str
    config: RunConfig
    config_json: str
    config_hash: str
    trials: int
    first_index: int
    rows: int
    completed: int
    kernel: str
    shard: str
    partial: bool
    summary: Summary
    slot: int
    format_version: int = 1
    input_stats: bool = False

    @property
    def where(self):
        """The file, and the run's group in it for a sweep's run: for messages."""
        return self.path if self.group == "/" else f"{self.path}:{self.group}"


@dataclasses.dataclass
class FileInfo:
    """A validated results file: kind ("run" or "sweep") and its runs in order."""

    path: str
    kind: str
    runs: list


def _about(where, e):
    """``where`` followed by what is wrong with it: "x.h5 has no ...", "x.h5: trials/... "."""
    text = str(e)
    verb = text.split(" ", 1)[0]
    return f"{where} {text}" if verb in ("is", "has", "holds", "claims", "plans") else f"{where}: {text}"


def _int_attr(g, key, what=None):
    """Attribute ``key`` of g as a Python int; a missing or non-integer one is a StoreError."""
    if key not in g.attrs:
        raise StoreError(f"has no {what or key} attribute")
    v = g.attrs[key]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise StoreError(f"{what or key} is not an integer ({type(v).__name__} {v})")
    return int(v)


def _str_attr(g, key):
    if key not in g.attrs:
        raise StoreError(f"has no {key} attribute")
    v = g.attrs[key]
    if isinstance(v, bytes):
        v = v.decode()
    if not isinstance(v, str):
        raise StoreError(f"{key} is not text")
    return v


def _check_format(g):
    """The format version of group g (a file's root or a run's group), one this mcinit reads."""
    fmt = g.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode(errors="replace")
    if fmt != FORMAT:
        raise StoreError("is not an mcinit results file")
    version = _int_attr(g, "format_version")
    if version not in FORMAT_VERSIONS:
        raise StoreError(f"has format version {version}; this mcinit reads versions "
                         f"{', '.join(map(str, FORMAT_VERSIONS[:-1]))} and {FORMAT_VERSIONS[-1]}")
    return version


def _state_at_completed(g, rows, depth, properties, tries=5):
    """(completed, its checkpoint slot, the Summary there) of the run in group g.  A file
    being written moves on while it is read: a commit writes the other slot, then
    ``completed``, so the slot found holds the state unless two commits overtook the
    read (its ``trials``, read last, then differs): read again."""
    for attempt in range(tries):
        completed = _int_attr(g, COMPLETED)
        if not 0 <= completed <= rows:
            raise StoreError(f"claims {completed} completed trials of {rows} rows")
        slot = checkpoint_slot(g, completed)
        if slot is not None:
            summary = read_summary(slot_group(g, slot), depth, properties)
            if summary.trials == completed:
                return completed, slot, summary
        time.sleep(0.01 * (attempt + 1))
    raise StoreError(f"has no checkpoint holding the state at its {completed} completed trials")


def _check_shard(shard, trials, first, rows):
    """A shard "I/K" holds the contiguous share I of K of the trial indices, as
    engine.shard_range makes it: [trials I // K, trials (I + 1) // K)."""
    try:
        i, k = (int(p) for p in shard.split("/"))
    except ValueError:
        raise StoreError(f"shard {shard!r} is not I/K") from None
    if not 0 <= i < k or (first, first + rows) != ((trials * i) // k, (trials * (i + 1)) // k):
        raise StoreError(f"holds trials {first}..{first + rows - 1}, not shard {shard} of {trials} trials")


def _check_columns(t, rows, config, input_stats):
    """Every per-trial column present with the shape and type the configuration implies
    (and the statistics over the inputs with input_stats)."""
    for name, (tail, dtype, twin) in column_shapes(config.depth, config.samples, sup_of(config),
                                                   config.properties, input_stats).items():
        link = t.get(name, getlink=True)
        if link is None:
            raise StoreError(f"has no {TRIALS}/{name} dataset")
        if isinstance(link, h5py.SoftLink) and link.path != twin:
            raise StoreError(f"{TRIALS}/{name} is a link to {link.path}, not "
                             + (f"to {twin}" if twin else "a dataset"))
        if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            raise StoreError(f"{TRIALS}/{name} is a link to another file")
        ds = t.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise StoreError(f"{TRIALS}/{name} is not a dataset")
        if ds.shape != (rows,) + tail or ds.dtype != dtype:
            raise StoreError(f"{TRIALS}/{name} has shape {ds.shape} and type {ds.dtype}, "
                             f"expected {(rows,) + tail} and {dtype}")


def read_run(g, path, group="/", name=None):
    """The RunInfo of the run in group g of the open file ``path``, validated (StoreError:
    one line naming the file and what is wrong)."""
    where = path if group == "/" else f"{path}:{group}"
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    try:
        version = _check_format(g)
        text = _str_attr(g, "config")
        stored_hash = _str_attr(g, "config_hash")
        try:
            config = RunConfig.from_json(text, data_path=_str_attr(g, DATA_PATH) if DATA_PATH in g.attrs else None)
            recomputed = config.config_hash()
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise StoreError(f"has no valid configuration ({reason(e)})") from None
        if recomputed != stored_hash:
            raise StoreError("its configuration does not match its config_hash (edited?)")
        # a run of N > 1 inputs is version 3; before version 3 it was version 1 or 2
        # (without the statistics over the inputs), which still reads
        # (a run with the two-sided extremes over the sphere is version 4, with the statistics
        # over the inputs when N > 1)
        if config.sup_certified:
            versions = [format_version_of(config.properties, sup_certified=True)]
        else:
            versions = sorted({format_version_of(config.properties, input_stats_of(config.samples)),
                               format_version_of(config.properties)})
        if version not in versions:
            what = "with the supremum search" if config.sup_certified else f"of properties {config.properties}"
            raise StoreError(f"has format version {version}, but a run {what} "
                             f"is written as version {' or '.join(map(str, versions))}")
        input_stats = (input_stats_of(config.samples) if config.sup_certified
                       else version == format_version_of(config.properties, True))
        trials = _int_attr(g, "trials")
        first = _int_attr(g, "first_index")
        rows = _int_attr(g, "rows")
        if trials != config.trials:
            raise StoreError(f"plans {trials} trials but its configuration has {config.trials}")
        if not (0 <= first and 0 <= rows and first + rows <= trials):
            raise StoreError(f"holds trials {first}..{first + rows - 1}, outside the run's 0..{trials - 1}")
        kernel = _str_attr(g, "kernel")
        shard = _str_attr(g, "shard") if "shard" in g.attrs else ""
        if shard:
            _check_shard(shard, trials, first, rows)
        partial = bool(g.attrs.get("partial", False))
        for key in (TRIALS, SUMMARY, CHECKPOINT):
            if key not in g:
                raise StoreError(f"has no {key} group")
            if not isinstance(member(g, key), h5py.Group):
                raise StoreError(f"{key} is not a group")
        _check_columns(g[TRIALS], rows, config, input_stats)
        read_summary(g[SUMMARY], config.depth, config.properties)
        completed, slot, summary = _state_at_completed(g, rows, config.depth, config.properties)
        read_summary(slot_group(g, 1 - slot), config.depth, config.properties)
    except StoreError as e:
        raise StoreError(_about(where, e)) from None
    except (KeyError, ValueError, TypeError, AttributeError, OSError, RuntimeError) as e:
        raise StoreError(f"{where} is damaged ({reason(e)})") from None
    return RunInfo(path=path, group=group, name=name, config=config, config_json=text,
                   config_hash=stored_hash, trials=trials, first_index=first, rows=rows,
                   completed=completed, kernel=kernel, shard=shard, partial=partial, summary=summary,
                   slot=slot, format_version=version, input_stats=input_stats)


def sweep_names(f, path, every_run=True):
    """The run names of an open sweep file, validated: a JSON list of distinct names,
    each with its group (every_run=False: runs not started yet may lack theirs, as in a
    sweep being resumed)."""
    try:
        _check_format(f)
        names = json.loads(_str_attr(f, RUNS))
        if not isinstance(names, list) or not all(isinstance(n, str) and n and "/" not in n for n in names):
            raise StoreError("runs is not a list of run names")
        if len(set(names)) != len(names):
            raise StoreError("runs names a run twice")
        runs = member(f, RUNS) if RUNS in f else {}
        for n in names:
            g = member(runs, n) if n in runs else None
            if g is None and not every_run:
                continue
            if not isinstance(g, h5py.Group):
                raise StoreError(f"runs names {n}, which the file does not hold (a sweep not finished "
                                 "holds only the runs it began: resume it)")
        return names
    except StoreError as e:
        raise StoreError(_about(path, e)) from None
    except (KeyError, ValueError, TypeError, AttributeError, OSError, RuntimeError) as e:
        raise StoreError(f"{path} is damaged ({reason(e)})") from None


def read_file(path):
    """The FileInfo of the run or sweep file ``path``, every run validated."""
    path = str(path)
    with open_file(path) as f:
        if f.attrs.get("kind") == "sweep":
            # a sweep being written (or stopped) holds the runs it began, the first of its
            # list: those are read; a run missing before one that exists is damage
            listed = sweep_names(f, path, every_run=False)
            names = [n for n in listed if run_path(n) in f]
            if names != listed[:len(names)]:
                gap = next(n for n in listed if run_path(n) not in f)
                raise StoreError(f"{path}: runs names {gap}, which the file does not hold")
            runs = [read_run(f[run_path(n)], path, run_path(n), n) for n in names]
            return FileInfo(path=path, kind="sweep", runs=runs)
        if RUNS in f and "config" not in f.attrs:
            raise StoreError(f"{path} is not an mcinit results file")
        return FileInfo(path=path, kind="run", runs=[read_run(f, path)])
