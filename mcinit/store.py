"""Where results go: an in-memory sink, and the HDF5 results file (mcinit.layout).

The engine writes to a Sink (open, buffers, write_many or stage/commit,
read_records, close); the store knows nothing of networks: it writes arrays
and attributes.  The file's layout (groups, datasets, attributes) is in
mcinit.layout, and files are read back through mcinit.reader, which
validates them.

One writer per output.  Whoever writes an output (a run, a resumed run, a
sweep, a merge, a report's figure) first holds an exclusive lock on
``<output>.lock`` beside it (flock: it dies with its process, so a killed
writer never blocks the next one), and holds it until the output is closed;
every check of the output and its creation happen under it.  Another writer
is refused with one line.  Commits write through the file descriptor opened
when the run began, and check that the path is still that file.

Crash safety.  A file is created whole under a temporary name and renamed.
Every dataset is allocated at its final size when the file is created (early
allocation, no fill, so unwritten space stays sparse) and is never filtered,
so writing a batch changes no HDF5 structure: it overwrites raw data in
place, and then one attribute, ``completed``.  A batch's records are first
staged: written into their rows past ``completed`` (invisible to readers), as
raw bytes at their chunks' fixed places in the file (pwrite, no HDF5 call).
Per commit (the batches staged since the last one), in this order, each step
fsync'ed before the next:
  1. the staged records;
  2. the summary after the last of them into the checkpoint slot not holding
     the state at ``completed``, and into /summary;
  3. ``completed``.
The engine stages and commits on two threads, so that the next batches are
staged while a commit waits for the disk.
A process killed at any instant leaves ``completed`` at the old or the new
value, the records up to it intact, and one checkpoint slot whose ``trials``
equals it: the exact state to resume from (/summary may be one batch ahead
until the run resumes; its ``trials`` says which).  Per-trial records are not
deflated: compressed chunks change size when rewritten, which is a structure
change, and random float64 mantissas compress by only about 17% anyway.
HDF5 is opened for each commit and closed after it, without an HDF5 file
lock (a reader holding the file must not stop a run).

Extension.  A run of the configuration of a file's run but for more trials
(``extends``) continues it: under the output's lock, the file is written anew
under a temporary name with the larger trial count (and so the configuration
hash a fresh run of those trials has), its durable rows and checkpoint copied
in, and renamed into place; the run then resumes from it.  A crash leaves the
old file or the new one, never a mixture; a refused extension changes no byte.
"""

import abc
import dataclasses
import fcntl
import json
import os
import re
import stat
import threading
import time

import h5py
import numpy as np

from .layout import (COLUMNS, SUP_CERTIFIED_FIELDS, SUP_FIELDS, DATA_PATH, FORMAT_VERSION, LINKED, RECORD_FIELDS, SUMMARY, TRIAL_COLUMNS, TRIALS, sup_of,
                     StoreError, build_run, checkpoint_slot, creation_bytes, input_stats_of, mark_format, read_summary,
                     record_bytes, set_completed, slot_group, stored_columns, write_final, write_summary)
from .options import RUN_OPTIONS
from .reader import open_file, read_file, reason
from .stats import QUANTITIES_OF, record_buffers, record_fields

__all__ = ["Sink", "MemorySink", "HDF5Sink", "StoreError", "FORMAT_VERSION", "RECORD_FIELDS", "LINKED",
           "stored_columns", "read_summary", "write_summary", "check_output", "create_file", "open_results",
           "build_run", "checkpoint_slot", "OutputLock", "check_free_space", "temporary_name",
           "remove_stale_temporaries", "config_differences", "extends", "EXTENDED_FROM"]

#: a run's attribute after an extension: the trial counts it held before (JSON list)
EXTENDED_FROM = "extended_from"


def extends(info, config):
    """Whether a run of ``config`` (a resolved RunConfig) extends the run ``info`` holds (a
    reader.RunInfo): the same configuration but for more trials, and ``info`` a whole run
    (no shard, no partial merge)."""
    return (not info.shard and not info.partial and info.first_index == 0 and info.rows == info.trials
            and config.trials > info.trials
            and dataclasses.replace(config, trials=info.trials).config_hash() == info.config_hash)


class Sink(abc.ABC):
    """Where a run's results go: the engine calls only these.

    ``state = open(meta)``   before the first batch; meta: config, config_hash, seed, depth,
                             trials, kernel, mcinit_version, first_index, rows (the trials
                             this sink receives), sup, samples, shard, properties (what the
                             run records: both, forward or backward).  Returns None (start at
                             first_index) or (next trial index, Summary of the trials before it)
                             for a run that continues where a file ends
    ``buffers(first, count, depth)``
                             arrays (the record fields of the run's properties and, with
                             more than one input per trial, its statistics over the inputs:
                             stats.record_fields; and dead) for the engine to reduce the batch
                             of trials first..first+count-1 into, so that the sink need not
                             copy them; None: the engine uses its own
    ``write_many(batches)``  consecutive batches [(first, records, summary after the batch)],
                             in trial order; the record arrays may be reused once it returns
    ``pipelined``            True: the engine calls ``stage(batches)`` on one thread (the
                             records handed over, not yet durable) and ``commit(rows, summary)``
                             on another (everything staged up to ``rows`` made durable)
                             instead of write_many
    ``read_records(start, stop)``
                             rows [start, stop) already held (a resumed run's tallies)
    ``close()``              after the last batch, also after an error
    ``path``, ``resume``     the results file the sink writes (None: none) and whether it
                             continues a run there; ``keeps_records``: every record is held in
                             memory (what a run needs of the machine: mcinit.limits)
    """

    pipelined = False
    path = None
    resume = False
    keeps_records = False

    @abc.abstractmethod
    def open(self, meta):
        """Prepare for the run described by meta; None or (next trial, Summary)."""

    def buffers(self, first, count, depth):
        """Arrays to reduce a batch into in place, or None (the default)."""
        return None

    @abc.abstractmethod
    def write(self, first, records, summary):
        """One batch: records of trials first.., and the summary after them."""

    def write_many(self, batches):
        """Consecutive batches [(first, records, summary)], in order."""
        for first, records, summary in batches:
            self.write(first, records, summary)

    def stage(self, batches):
        """Hand over the records of consecutive batches (pipelined sinks only)."""
        raise NotImplementedError(f"{type(self).__name__} does not stage")

    def commit(self, rows, summary):
        """Make the staged records up to ``rows`` durable (pipelined sinks only)."""
        raise NotImplementedError(f"{type(self).__name__} does not stage")

    @abc.abstractmethod
    def read_records(self, start=0, stop=None):
        """Rows [start, stop) of the records already held."""

    def close(self):
        """Release what open took; called once after the last batch or an error."""


class MemorySink(Sink):
    """Keeps everything in memory: for tests and the Python API.

    Each record column is one array, allocated for the rows the run announces
    (meta["rows"]) and grown by doubling past them; a batch is copied into its rows,
    unless the engine reduced it there in place (buffers)."""

    keeps_records = True

    def __init__(self):
        self.meta = None
        self._columns = {}
        self._capacity = 0
        self.summary = None
        self.first = 0
        self.completed = 0

    def open(self, meta):
        self.meta = dict(meta)
        self.first = int(meta.get("first_index", 0))
        self._capacity = int(meta.get("rows", 0))
        return None

    def buffers(self, first, count, depth):
        """Rows first..first+count-1 of the record columns (those of the run's properties,
        meta properties: fwd_min, fwd_max, bwd_min, bwd_max for both, and with more than one
        input per trial its statistics over the inputs, fwd_mean .. bwd_norm_sd; and dead) for the
        engine to write a batch's records into, so that write need not copy them; None past
        the rows the run announced (columns are never regrown under a batch in flight).
        With one input per trial (meta samples = 1) fwd_max is fwd_min and bwd_max is
        bwd_min, as in the file (LINKED): half the memory."""
        a = first - self.first
        b = a + count
        if b > self._capacity:
            return None
        quantities = QUANTITIES_OF[self.meta.get("properties", "both")]
        samples = int(self.meta.get("samples", 0))
        if "dead" not in self._columns:      # the record columns come and go together
            self._columns.update(record_buffers(self._capacity, depth, single=samples == 1, quantities=quantities,
                                                input_stats=input_stats_of(samples)))
        return {k: self._columns[k][a:b] for k in record_fields(quantities, input_stats_of(samples)) + ("dead",)}

    def write(self, first, records, summary):
        if first != self.first + self.completed:
            raise StoreError(f"batch starts at trial {first}, expected {self.first + self.completed}")
        a = self.completed
        b = a + len(records["dead"])
        for k, v in records.items():
            v = np.asarray(v)
            col = self._columns.get(k)
            if col is not None and len(col) >= b and v.shape == col[a:b].shape and \
                    v.ctypes.data == col[a:b].ctypes.data:
                continue    # written in place (buffers)
            if col is None or len(col) < b:
                grown = np.empty((max(b, self._capacity, 2 * a),) + v.shape[1:], dtype=v.dtype)
                if col is not None:
                    grown[:a] = col[:a]
                col = self._columns[k] = grown
            col[a:b] = v
        self.completed = b
        self.summary = summary

    def close(self):
        pass

    def read_records(self, start=0, stop=None):
        """Rows [start, stop) of the records held (index, the run's record fields, dead)."""
        stop = self.completed if stop is None else min(stop, self.completed)
        return {k: v[start:stop] for k, v in self.records.items()}

    @property
    def records(self):
        """Per-trial records: index, the record fields of the run's properties (fwd_min,
        fwd_max, bwd_min, bwd_max for both; with more than one input per trial also
        fwd_mean .. bwd_norm_sd, stats.input_fields), dead, and sup_min, sup_max with the
        search."""
        if not self._columns:
            return {}
        out = {k: v[:self.completed] for k, v in self._columns.items()}
        out["index"] = np.arange(self.first, self.first + self.completed, dtype=np.int64)
        return out


def _regular(path):
    """Whether ``path`` (followed if a symlink) is a regular file."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_output(path, overwrite=False, inputs=(), option="-o", config=None):
    """Refuse, before any work, an output that exists (without overwrite), that is not a
    regular file (a directory, a device, a FIFO, a socket, a link to one), that is one of
    the command's ``inputs`` (paths it reads), or an unwritable place.  option: the
    command-line option naming the output, for the message; config: the RunConfig of the
    run to be written, whose differences from a run the output holds the message names."""
    path = str(path)
    if os.path.isdir(path):
        raise StoreError(f"output {path} is a directory")
    exists = os.path.lexists(path)
    if exists and not overwrite:
        raise StoreError(f"output {path} exists{_held_run(path, config) if _regular(path) else ''}; "
                         f"pass --overwrite to replace it or choose another {option}")
    if exists and not _regular(path):
        raise StoreError(f"output {path} is not a regular file; --overwrite replaces only files")
    for p in inputs:
        try:
            same = exists and os.path.exists(p) and os.path.samefile(path, p)
        except OSError:
            same = False
        if same or os.path.abspath(path) == os.path.abspath(str(p)):
            raise StoreError(f"output {path} is one of the inputs ({p})")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise StoreError(f"output directory {d} does not exist")
    if not os.access(d, os.W_OK) or (exists and not os.access(path, os.W_OK)):
        raise StoreError(f"output {path} is not writable")


def _holder_pid(fd, wait=1.0):
    """The pid a lock's holder writes into its lock file, or "" when none appears within
    ``wait`` seconds (the holder writes it just after taking the lock, so a writer refused
    in that instant waits for it rather than naming nobody)."""
    deadline = time.monotonic() + wait
    while True:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if pid.isdigit() or time.monotonic() >= deadline:
            return pid
        time.sleep(0.01)


_held = {}      # lock file -> [fd, holders] of this process (a sweep's runs share the sweep's lock)
_held_guard = threading.Lock()


class OutputLock:
    """One writer per output: while held, no other process can hold it for ``path``.

    An exclusive flock on ``<path>.lock`` (created beside the output, removed on release;
    it holds the writer's pid for the message); a second holder in the same process shares
    it (a sweep and its runs).  Raises StoreError when another process holds it.  Use as a
    context manager, or acquire() / release()."""

    def __init__(self, path):
        self.path = str(path)
        self.lock = os.path.abspath(self.path) + ".lock"
        self.held = False

    def acquire(self):
        with _held_guard:
            if self.lock in _held:
                _held[self.lock][1] += 1
                self.held = True
                return self
            while True:
                try:
                    fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                except FileNotFoundError:
                    raise StoreError(f"output directory {os.path.dirname(self.lock)} does not exist") from None
                except OSError as e:
                    raise StoreError(f"cannot lock output {self.path}: {reason(e)}") from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    pid = _holder_pid(fd)
                    os.close(fd)
                    who = f" (pid {pid})" if pid.isdigit() else ""
                    raise StoreError(f"output {self.path} is being written by another mcinit process{who}") from None
                # a releasing holder removes the lock file: what we locked must still be there
                try:
                    here = os.stat(self.lock, follow_symlinks=False)
                    mine = os.fstat(fd)
                    if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            # a lock file holds nothing but a writer's pid: anything else beside the output
            # under that name is the user's, and is neither rewritten nor removed
            st = os.fstat(fd)
            text = os.pread(fd, 33, 0) if stat.S_ISREG(st.st_mode) and st.st_size <= 32 else None
            if text is None or not re.fullmatch(rb"[0-9]*\n?", text):
                os.close(fd)
                raise StoreError(f"{self.lock} exists and is not an mcinit lock file; "
                                 "move it away to write this output")
            try:       # the pid is for the message of a refused writer only (a full disk: none)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
            _held[self.lock] = [fd, 1]
            self.held = True
        return self

    def release(self):
        if not self.held:
            return
        self.held = False
        with _held_guard:
            entry = _held[self.lock]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self.lock]
                try:
                    os.unlink(self.lock)
                except OSError:
                    pass
                os.close(entry[0])

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def temporary_name(path, suffix=""):
    """Where ``path`` is written before it is renamed into place (this process's name)."""
    return f"{path}.creating-{os.getpid()}{suffix}"


def remove_stale_temporaries(path):
    """Remove the temporaries of ``path`` left by processes that are no longer alive
    (killed while creating it); called under the output's lock."""
    d = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".creating-"
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        m = re.match(r"(\d+)", name[len(prefix):]) if name.startswith(prefix) else None
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.remove(os.path.join(d, name))
            except OSError:
                pass


def check_free_space(path, need):
    """Refuse to start writing ``need`` bytes beside ``path`` on a device with less free."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise StoreError(f"cannot create {path}: its device has {free:,} bytes free, about {need:,} needed")


def create_file(path, attrs, build=None, need=0):
    """Create ``path`` whole or not at all: written under a temporary name, then renamed
    (the temporary is removed on every error).  Call it holding the output's lock.

    attrs: root attributes; build(f): adds groups and datasets before the rename; need:
    bytes of disk the creation takes (layout.creation_bytes), checked first."""
    remove_stale_temporaries(path)
    check_free_space(path, need)
    tmp = temporary_name(path)
    try:
        with h5py.File(tmp, "w") as f:
            mark_format(f)
            for k, v in attrs.items():
                f.attrs[k] = v
            if build is not None:
                build(f)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except StoreError:
        _remove(tmp)
        raise
    except (OSError, RuntimeError, MemoryError) as e:   # HDF5's failures (a full disk) are RuntimeErrors
        _remove(tmp)
        raise StoreError(f"cannot create {path}: {reason(e)}") from None
    except BaseException:
        _remove(tmp)
        raise


def _attr_text(path, name):
    """The text attribute ``name`` of the file's root, or None."""
    with open_file(path) as f:
        value = f.attrs.get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def open_results(path):
    """The results file opened read-only, without an HDF5 lock (mcinit.reader.open_file)."""
    return open_file(path)


def _open_for_write(path, patience=30.0):
    """The file for writing, without an HDF5 lock.  Within one process HDF5 refuses this while
    the same file is open for reading (mcinit.load during a run): wait for the reader."""
    deadline = time.monotonic() + patience
    delay = 0.01
    while True:
        try:
            return h5py.File(path, "a", locking=False)
        except OSError as e:
            if "already open" not in str(e) or time.monotonic() > deadline:
                raise StoreError(f"cannot write {path}: {reason(e)}") from None
            time.sleep(delay)
            delay = min(0.2, 2 * delay)


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable_flush(f):
    """Flush HDF5's buffers to the OS, then the OS's to the disk."""
    f.flush()
    os.fsync(f.id.get_vfd_handle())


def _requested_config(meta):
    """The RunConfig a run's meta describes (its config JSON and data path), or None."""
    from .config import RunConfig
    try:
        return RunConfig.from_json(meta["config"], data_path=meta.get("extra_attrs", {}).get(DATA_PATH))
    except (KeyError, TypeError, ValueError):
        return None


def _shown(value):
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def config_differences(stored, requested):
    """What differs between the configuration in a file and the one requested: one
    '--option X in the file, Y requested' per option (as the command line spells it),
    in the order of the option table; a dataset of other content is named by its sha256.
    [] when ``requested`` is None."""
    if requested is None:
        return []
    a, b = stored.to_dict(), requested.to_dict()
    out = []
    for o in RUN_OPTIONS:
        if o.value_of is None or all(a.get(f) == b.get(f) for f in o.fields):
            continue
        va, vb = _shown(o.value_of(stored)), _shown(o.value_of(requested))
        if o.name == "data" and stored.data_sha256 != requested.data_sha256:
            va += f" (sha256 {stored.data_sha256[:12] or '-'})"
            vb += f" (sha256 {requested.data_sha256[:12] or '-'})"
        out.append(f"{o.flag} {va} in the file, {vb} requested")
    return out


def other_configuration(info, requested):
    """What a run of ``requested`` (a RunConfig, or None) differs in from the run ``info`` (a
    reader.RunInfo) holds, for a refusal's message: ': --option X in the file, Y requested; ...'
    (config_differences), and why a run that differs in its trials alone is not an extension
    of it (``extends``); '' when nothing can be named."""
    differ = config_differences(info.config, requested)
    if not differ:
        return ""
    text = f": {'; '.join(differ)}"
    if all(d.startswith("--trials ") for d in differ):
        if requested.trials < info.trials:
            text += " (a run is extended to more trials, never cut to fewer)"
        elif info.shard or info.partial or info.first_index != 0 or info.rows != info.trials:
            text += " (only a whole run is extended, not a shard or a partial merge)"
    return text


def _held_run(path, config):
    """' and holds a run of another configuration: ...' for the run file ``path`` when a run
    of ``config`` neither is nor extends the run it holds (other_configuration); '' otherwise
    (no run file, the same configuration, or an extension)."""
    if config is None:
        return ""
    try:
        info = read_file(path)
    except (StoreError, OSError):
        return ""
    if info.kind != "run" or info.runs[0].config_hash == config.config_hash() or extends(info.runs[0], config):
        return ""
    differ = other_configuration(info.runs[0], config)
    return f" and holds a run of another configuration{differ}" if differ else ""


class HDF5Sink(Sink):
    """Writes a run into an HDF5 file, batch by batch, crash-safely (mcinit.layout).

    path       the results file
    overwrite  replace an existing file (a new file only)
    resume     continue the run in an existing file (or start it when there is none)
    group      the run's group inside an existing sweep file (None: the run at the root)
    inputs     paths the run reads (its data file): never the output, even with overwrite
    extend     (with resume) a run in the file of the same configuration but fewer trials
               is extended to this run's trials (``extends``; the module's docstring)
    """

    def __init__(self, path, overwrite=False, resume=False, group=None, inputs=(), extend=False):
        self.path = str(path)
        self.overwrite = overwrite
        self.resume = resume
        self.extend = extend
        self.group = group
        self.inputs = tuple(str(p) for p in inputs if p)
        self.first = 0
        self.completed = 0
        self.staged = 0         # rows whose records have been handed to the OS (stage)
        self._slot = 0
        self._raw = None        # where each record column's rows lie in the file (_raw_layout)
        self._rows = 0
        self._fd = None
        self._identity = None   # (st_dev, st_ino) of the file this run writes
        self._lock = None

    def check_writable(self, config=None):
        """Refuse an output this run must not write, before any work (repeated under the
        output's lock when the run opens it); config: the run's RunConfig, whose differences
        from a run the output holds the refusal names (check_output)."""
        if self.group is None and not (self.resume and os.path.exists(self.path)):
            check_output(self.path, self.overwrite, self.inputs, config=config)

    def _check_place(self, config=None):
        """Refuse an output that is not a regular file to resume, or not one to create."""
        if self.group is None and self.resume and os.path.lexists(self.path):
            if not _regular(self.path):
                raise StoreError(f"cannot resume {self.path}: it is not a regular file")
        else:
            self.check_writable(config)

    def _resume_point(self, info, meta):
        """Where a validated run (reader.RunInfo) continues, or why it cannot."""
        if info.config_hash != meta["config_hash"]:
            raise StoreError(f"cannot resume {info.where}: it holds a run of another configuration"
                             + other_configuration(info, _requested_config(meta)))
        if (info.first_index, info.rows) != (int(meta.get("first_index", 0)), int(meta.get("rows", meta["trials"]))):
            raise StoreError(f"cannot resume {info.where}: it holds another share of the trials")
        if info.partial:
            raise StoreError(f"cannot resume {info.where}: it is a partial merge")
        self.completed = info.completed
        self._slot = info.slot
        return self.first + self.completed, info.summary

    def open(self, meta):
        """Create the run (or find where to resume it); returns None or (next trial, Summary).
        Holds the output's lock from here until close()."""
        self._check_place(_requested_config(meta))        # before any lock file is made beside it (again under the lock)
        self._lock = OutputLock(self.path).acquire()
        try:
            state = self._open(meta)
            self._rows = int(meta.get("rows", meta["trials"]))     # as build_run made the file
            self.staged = self.completed
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {reason(e)}") from None
            st = os.fstat(self._fd)
            if not stat.S_ISREG(st.st_mode):
                raise StoreError(f"output {self.path} is not a regular file")
            self._identity = (st.st_dev, st.st_ino)
            self._raw = self._raw_layout()
        except BaseException:
            self.close()
            raise
        return state

    @property
    def pipelined(self):
        """Whether records can be staged while an earlier commit is on its way to the disk
        (the engine then stages and commits on two threads)."""
        return self._raw is not None

    def _raw_layout(self):
        """{column: (row bytes, chunk rows, dtype, first chunk c0, file offsets of chunks c0, ...)}
        for the stored record columns of the rows from ``completed`` on, so that ``stage``
        writes their bytes in place with pwrite, without HDF5; None (h5py writes them) unless
        every column is chunked by whole rows, unfiltered, allocated and of this machine's
        byte order, as build_run makes them.

        A record column's chunks are allocated when the file is created and never move: a
        batch's rows are raw bytes at fixed places, and writing them changes nothing HDF5
        knows (the module's crash-safety argument)."""
        if not hasattr(os, "pwrite"):
            return None
        try:
            with open_file(self.path) as f:
                t = (f[self.group] if self.group else f)[TRIALS]
                names = stored_columns(t, [n for n in TRIAL_COLUMNS if n in t])
                rows = self._rows
                layout = {}
                for name in names:
                    ds = t[name]
                    plist = ds.id.get_create_plist()
                    if (plist.get_layout() != h5py.h5d.CHUNKED or plist.get_nfilters() != 0
                            or not ds.dtype.isnative or ds.chunks[1:] != ds.shape[1:]
                            or ds.shape[0] != rows):
                        return None
                    R = ds.chunks[0]
                    c0 = self.completed // R
                    tail = (0,) * (ds.ndim - 1)
                    offs = []
                    for c in range(c0, -(-rows // R)):
                        at = ds.id.get_chunk_info_by_coord((c * R,) + tail).byte_offset
                        if at is None:
                            return None
                        offs.append(at)
                    row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
                    layout[name] = (row_bytes, R, ds.dtype, c0, np.array(offs, dtype=np.int64))
                return layout
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):   # an older h5py or HDF5
            return None

    def _open(self, meta):
        """Under the output's lock: validate and find the resume point, or create the run."""
        from .reader import read_run
        self.first = int(meta.get("first_index", 0))
        self.completed = 0
        self._slot = 0
        if self.group is None:
            if self.resume and os.path.lexists(self.path):
                self._check_place(_requested_config(meta))
                info = read_file(self.path)     # read-only: a refused resume changes no byte
                if info.kind != "run":
                    raise StoreError(f"cannot resume {self.path}: it is a sweep file")
                if self.extend and self._extends(info.runs[0], meta):
                    self._extend_file(info.runs[0], meta)
                    info = read_file(self.path)
                return self._resume_point(info.runs[0], meta)
            check_output(self.path, self.overwrite, self.inputs)
            need = creation_bytes(meta["depth"], meta.get("rows", meta["trials"]), meta.get("samples", 0),
                                  meta.get("sup"), meta.get("properties", "both"))
            create_file(self.path, {}, lambda f: build_run(f, meta), need)
            return None
        with open_file(self.path) as f:
            held = self.group in f
            if held:
                if not self.resume:
                    raise StoreError(f"{self.path} already holds a run {self.group}")
                info = read_run(f[self.group], self.path, self.group, self.group.rsplit("/", 1)[-1])
        if held:
            return self._resume_point(info, meta)
        check_free_space(self.path, creation_bytes(meta["depth"], meta.get("rows", meta["trials"]),
                                                   meta.get("samples", 0), meta.get("sup"),
                                                   meta.get("properties", "both")))
        try:
            with _open_for_write(self.path) as f:
                build_run(f.create_group(self.group), meta)
                _durable_flush(f)
        except StoreError:
            raise
        except (OSError, RuntimeError) as e:
            raise StoreError(f"cannot write {self.path}: {reason(e)}") from None
        return None

    def plan(self, meta):
        """Read-only, without the lock: where ``open(meta)`` would start the run (at the
        file's root): None (a new file), or the next trial index of the run it resumes or
        extends; the StoreError ``open`` would raise otherwise.  Nothing is written."""
        self._check_place(_requested_config(meta))
        if not (self.resume and os.path.lexists(self.path)):
            return None
        info = read_file(self.path)
        if info.kind != "run":
            raise StoreError(f"cannot resume {self.path}: it is a sweep file")
        run = info.runs[0]
        self.first = int(meta.get("first_index", 0))
        if self.extend and self._extends(run, meta):
            return run.completed
        return self._resume_point(run, meta)[0]

    @staticmethod
    def _extends(info, meta):
        """Whether the run of ``meta`` (the whole run, no shard) extends ``info`` (``extends``)."""
        from .config import RunConfig
        if meta.get("shard") or int(meta.get("first_index", 0)) != 0 or \
                int(meta.get("rows", meta["trials"])) != int(meta["trials"]):
            return False
        return extends(info, RunConfig.from_json(meta["config"]))

    def _extend_file(self, info, meta):
        """Under the output's lock: the file anew with the trials of ``meta``, holding the
        durable rows and the checkpoint of ``info``'s run, renamed into place."""
        config = info.config
        rows = int(meta["trials"])
        try:
            earlier = json.loads(_attr_text(self.path, EXTENDED_FROM) or "[]")
        except ValueError:
            earlier = []
        earlier = (earlier if isinstance(earlier, list) else []) + [info.trials]
        # the file's layout kept: a file written before format version 3 stays without the
        # statistics over the inputs (its rows have none to copy)
        meta = dict(meta, input_stats=info.input_stats,
                    extra_attrs=dict(meta.get("extra_attrs", {}), **{EXTENDED_FROM: json.dumps(earlier)}))

        def build(f):
            build_run(f, meta)
            t = f[TRIALS]
            names = stored_columns(t, list(TRIAL_COLUMNS))
            with open_file(self.path) as old:
                src = old[TRIALS]
                for a in range(0, info.completed, 1 << 20):
                    b = min(info.completed, a + (1 << 20))
                    for name in names:
                        t[name][a:b] = src[name][a:b]
            write_final(f, info.summary, info.completed)

        need = (creation_bytes(config.depth, rows, config.samples, sup_of(config), config.properties, info.input_stats)
                + info.completed * record_bytes(config.depth, config.samples, sup_of(config), config.properties,
                                                info.input_stats))
        create_file(self.path, {}, build, need)

    def _run_group(self):
        """The run's group of the file opened for writing (a context manager), after checking
        that the path is still the file this run opened (not one put in its place)."""
        import contextlib

        def check(st):
            if (st.st_dev, st.st_ino) != self._identity:
                raise StoreError(f"{self.path} was replaced while this run was writing it")

        def check_path():
            try:
                check(os.stat(self.path))
            except FileNotFoundError:
                raise StoreError(f"{self.path} was removed while this run was writing it") from None

        @contextlib.contextmanager
        def opened():
            check_path()
            try:
                f = _open_for_write(self.path)
            except StoreError:
                check_path()        # replaced meanwhile: say so
                raise
            with f:
                check(os.fstat(f.id.get_vfd_handle()))      # the file opened, not only the path
                yield f[self.group] if self.group else f
        return opened()

    def write(self, first, records, summary):
        self.write_many([(first, records, summary)])

    def write_many(self, batches):
        """Write consecutive batches [(first, records, summary after the batch), ...] and
        commit them together: stage, then commit (one set of fsyncs for them all)."""
        self.stage(batches)
        self.commit(self.staged, batches[-1][2])

    def stage(self, batches):
        """Hand the records of consecutive batches [(first, records, ...), ...] to the OS,
        in their rows past ``staged`` (invisible to readers until a commit); nothing is
        durable yet.  The record arrays may be reused once this returns."""
        a = b = self.staged
        for first, records, *_ in batches:
            if first != self.first + b:
                raise StoreError(f"batch starts at trial {first}, expected {self.first + b}")
            b += len(records["dead"])
        if b > self._rows:
            raise StoreError(f"{self.path} holds {self._rows} trials; batch ends at {b}")
        if self._raw is None:
            with self._run_group() as g:
                t = g[TRIALS]
                t["index"][a:b] = np.arange(self.first + a, self.first + b, dtype=np.int64)
                names = stored_columns(t, [n for n in TRIAL_COLUMNS if n != "index" and n in batches[0][1]])
                for first, records, *_ in batches:
                    r0 = first - self.first
                    for name in names:
                        t[name][r0:r0 + len(records["dead"])] = records[name]
        else:
            self._put("index", a, np.arange(self.first + a, self.first + b, dtype=np.int64))
            for first, records, *_ in batches:
                for name in self._raw:
                    if name != "index" and name in records:
                        self._put(name, first - self.first, records[name])
        self.staged = b

    def _put(self, name, r0, values):
        """Rows r0, r0 + 1, ... of column ``name`` := values, written into the file in place."""
        row_bytes, R, dtype, c0, offs = self._raw[name]
        data = np.ascontiguousarray(values, dtype=dtype).reshape(-1).view(np.uint8)
        n = len(data) // row_bytes
        i = 0
        while i < n:
            r = r0 + i
            c = r // R
            k = min(n - i, (c + 1) * R - r)
            buf = data[i * row_bytes:(i + k) * row_bytes]
            at = int(offs[c - c0]) + (r - c * R) * row_bytes
            try:
                while len(buf):
                    done = os.pwrite(self._fd, buf, at)
                    buf = buf[done:]
                    at += done
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {reason(e)}") from None
            i += k

    def commit(self, rows, summary):
        """Make the staged records up to ``rows`` durable, then the summary after them, then
        ``completed`` = rows (the protocol above; each step fsync'ed before the next)."""
        if not self.completed <= rows <= self.staged:
            raise StoreError(f"cannot commit {rows} rows: {self.staged} are staged, {self.completed} committed")
        slot = 1 - self._slot
        try:
            os.fsync(self._fd)      # step 1 (fsync is per file: HDF5's writes too)
            with self._run_group() as g:
                write_summary(slot_group(g, slot), summary)
                write_summary(g[SUMMARY], summary)
                _durable_flush(g.file)
                set_completed(g, rows)
                _durable_flush(g.file)
        except StoreError:
            raise
        except (OSError, RuntimeError) as e:    # a full disk: ``completed`` still says what is durable
            raise StoreError(f"cannot write {self.path}: {reason(e)}") from None
        self.completed = rows
        self._slot = slot

    def close(self):
        """Close the file and release the output's lock (after the last commit)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def read_records(self, start=0, stop=None):
        """Rows [start, stop) of the records already in the file, for a resumed run's tallies."""
        stop = self.completed if stop is None else stop
        try:
            with open_file(self.path) as f:
                t = (f[self.group] if self.group else f)[TRIALS]
                return {k: t[k][start:stop] for k in COLUMNS + SUP_FIELDS + SUP_CERTIFIED_FIELDS if k in t}
        except (OSError, KeyError, RuntimeError) as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot read {self.path}: {reason(e)}") from None
