"""Where results go: an in-memory sink, and the HDF5 results file (format version 1).

The engine calls ``state = sink.open(meta)`` (None, or where to resume), then
``sink.write(first, records, summary)`` once per batch in trial order (``first``
is a global trial index), then ``sink.close()``.  The store knows nothing of
networks: it writes arrays and attributes.

HDF5 layout (DESIGN section 7)::

  /            attrs format="mcinit", format_version=1, mcinit_version, config,
               config_hash, rng="philox4x32-10", seed, created, kernel,
               trials (planned for the run), first_index, rows (trials this file
               holds: trials, or a shard's share), shard ("I/K", shards only),
               completed (rows durably written; trust nothing past it)
  /trials/     index (rows,) int64; fwd_min, fwd_max, bwd_min, bwd_max (rows, L)
               float64; dead (rows,) bool; with the supremum search also sup_min,
               sup_max (rows, L): rho_l's extremes over every input evaluated.
               With one input per trial the min and the max are the same numbers:
               fwd_max and bwd_max are then soft links to fwd_min and bwd_min
               (read like datasets; half the bytes to write and to keep)
  /summary/    trials, dead (scalars); one group per quantity (fwd, bwd) holding
               count, mean, m2, min, max (L,) of the ratio over all (trial, input)
               pairs with a finite ratio, the same with a log_ prefix for ln(ratio)
               over positive ratios, hist / log_hist (L, bins + 2) counts with an
               underflow and an overflow bin, and hist_edges / log_hist_edges
  /checkpoint/ slot0, slot1: two copies of the summary layout, the resume state

A sweep file has root attributes format, format_version, kind="sweep", runs
(JSON list of run names) and one such run group per run under /runs/<name>/.

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
The file is opened for each batch and closed after it, without an HDF5 file
lock (a reader holding the file must not stop a run).
"""

import datetime
import os
import re
import time

import h5py
import numpy as np

from .stats import QUANTITIES, Summary, record_buffers

__all__ = ["MemorySink", "HDF5Sink", "StoreError", "FORMAT_VERSION", "RECORD_FIELDS", "LINKED", "stored_columns",
           "read_summary", "write_summary", "check_output", "create_file", "open_results", "build_run",
           "checkpoint_slot"]

FORMAT_VERSION = 1
RECORD_FIELDS = ("fwd_min", "fwd_max", "bwd_min", "bwd_max")
COLUMNS = ("index",) + RECORD_FIELDS + ("dead",)
#: with one input per trial (meta samples = 1), these columns are soft links to their twins
LINKED = {"fwd_max": "fwd_min", "bwd_max": "bwd_min"}
#: per-trial columns of runs with the supremum search: min and max of rho_l over every
#: input evaluated (random and searched)
SUP_FIELDS = ("sup_min", "sup_max")
_CHUNK_ROWS = 16384


class StoreError(RuntimeError):
    """A results file cannot be written or read as asked; one line for the user."""


class MemorySink:
    """Keeps everything in memory: for tests and the Python API.

    Each record column is one array, allocated for the rows the run announces
    (meta["rows"]) and grown by doubling past them; a batch is copied into its rows,
    unless the engine reduced it there in place (buffers)."""

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
        """Rows first..first+count-1 of the record columns (fwd_min, fwd_max, bwd_min, bwd_max,
        dead) for the engine to write a batch's records into, so that write need not copy
        them; None past the rows the run announced (columns are never regrown under a
        batch in flight).  With one input per trial (meta samples = 1) fwd_max is fwd_min
        and bwd_max is bwd_min, as in the file (LINKED): half the memory."""
        a = first - self.first
        b = a + count
        if b > self._capacity:
            return None
        if "dead" not in self._columns:      # the record columns come and go together
            single = int(self.meta.get("samples", 0)) == 1
            self._columns.update(record_buffers(self._capacity, depth, single=single))
        return {k: self._columns[k][a:b] for k in RECORD_FIELDS + ("dead",)}

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

    @property
    def records(self):
        """Per-trial records: index, fwd_min, fwd_max, bwd_min, bwd_max, dead."""
        if not self._columns:
            return {}
        out = {k: v[:self.completed] for k, v in self._columns.items()}
        out["index"] = np.arange(self.first, self.first + self.completed, dtype=np.int64)
        return out


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_output(path, overwrite=False):
    """Refuse an existing file without overwrite, or an unwritable place, before any work."""
    if os.path.isdir(path):
        raise StoreError(f"output {path} is a directory")
    if os.path.exists(path) and not overwrite:
        raise StoreError(f"output {path} exists; pass --overwrite to replace it or choose another -o")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise StoreError(f"output directory {d} does not exist")
    if not os.access(d, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise StoreError(f"output {path} is not writable")


def create_file(path, attrs, build=None):
    """Create ``path`` whole or not at all: written under a temporary name, then renamed.

    attrs: root attributes; build(f): adds groups and datasets before the rename."""
    tmp = path + f".creating-{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "mcinit"
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["created"] = _now()
            for k, v in attrs.items():
                f.attrs[k] = v
            if build is not None:
                build(f)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise StoreError(f"cannot create {path}: {_reason(e)}") from None


def _reason(e):
    """The short reason of an OSError raised by the OS or by HDF5."""
    text = (e.strerror or str(e) or type(e).__name__).splitlines()[0]
    m = re.search(r"error message = '([^']*)'", text)
    if m:
        return m.group(1)
    m = re.search(r"\(([^()]*)\)\s*$", text)
    return m.group(1) if m else text


def open_results(path, mode="r"):
    """h5py.File without an HDF5 lock; a missing or non-HDF5 file is a StoreError."""
    if mode == "r" and not os.path.isfile(path):
        raise StoreError(f"results file not found: {path}")
    try:
        return h5py.File(path, mode, locking=False)
    except OSError as e:
        raise StoreError(f"cannot open {path} as an HDF5 file: {_reason(e)}") from None


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
                raise StoreError(f"cannot write {path}: {str(e).splitlines()[0]}") from None
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


def stored_columns(t, names):
    """The names among ``names`` that are datasets of group ``t`` in their own right (not
    soft links to a twin, LINKED): the columns a writer writes."""
    return [n for n in names if isinstance(t.get(n, getlink=True), h5py.HardLink)]


def _fixed_dataset(g, name, shape, dtype, chunks):
    """A chunked dataset allocated at its full size now, never filled (sparse until written)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, dcpl=dcpl)


def _summary_arrays(summary):
    """(quantity group, dataset name, array (L, ...)) of a Summary."""
    for q, qname in enumerate(QUANTITIES):
        for s, prefix in ((0, ""), (1, "log_")):
            for key in ("count", "mean", "m2", "min", "max"):
                yield qname, prefix + key, getattr(summary, key)[q, s]
            yield qname, prefix + "hist", summary.hist[q, s]


def write_summary(g, summary, create=False):
    """Write (or create) the summary layout in group g."""
    if not create:
        # a commit's step, twice per commit: each dataset opened by its path and written
        # through HDF5's own calls (h5py's objects and slicing cost more than the few
        # kilobytes themselves: 6-7 ms per summary against 3)
        every = h5py.h5s.ALL
        gid = g.id
        h5py.h5d.open(gid, b"trials").write(every, every, np.array(summary.trials, dtype=np.int64))
        h5py.h5d.open(gid, b"dead").write(every, every, np.array(summary.dead, dtype=np.int64))
        for qname, name, arr in _summary_arrays(summary):
            ds = h5py.h5d.open(gid, f"{qname}/{name}".encode())
            ds.write(every, every, np.ascontiguousarray(arr, dtype=ds.dtype))
        return
    g.create_dataset("trials", data=np.int64(summary.trials))
    g.create_dataset("dead", data=np.int64(summary.dead))
    for qname, name, arr in _summary_arrays(summary):
        g.require_group(qname).create_dataset(name, data=arr)
    for qname in QUANTITIES:
        g[qname].create_dataset("hist_edges", data=Summary.edges(0))
        g[qname].create_dataset("log_hist_edges", data=Summary.edges(1))


def read_summary(g, depth):
    """A Summary from a group written by write_summary."""
    s = Summary(depth)
    for q, qname in enumerate(QUANTITIES):
        qg = g[qname]
        for sp, prefix in ((0, ""), (1, "log_")):
            for key in ("count", "mean", "m2", "min", "max", "hist"):
                getattr(s, key)[q, sp] = qg[prefix + key][...]
    s.trials = int(g["trials"][()])
    s.dead = int(g["dead"][()])
    return s


def checkpoint_slot(g):
    """The index of the checkpoint slot holding the state at ``completed``, or None."""
    done = int(g.attrs["completed"])
    for i in (0, 1):
        if int(g["checkpoint"][f"slot{i}"]["trials"][()]) == done:
            return i
    return None


def build_run(g, meta):
    """Create the layout of one run in group g (the file's root or a sweep's run group).

    meta: config, config_hash, seed, depth, trials, kernel, mcinit_version, and optionally
    first_index, rows, shard, samples (inputs per trial: with 1, the max columns are soft
    links to the min columns) and extra_attrs (more root attributes)."""
    L = int(meta["depth"])
    rows = int(meta.get("rows", meta["trials"]))
    g.attrs["format"] = "mcinit"
    g.attrs["format_version"] = FORMAT_VERSION
    g.attrs["mcinit_version"] = meta["mcinit_version"]
    g.attrs["config"] = meta["config"]
    g.attrs["config_hash"] = meta["config_hash"]
    g.attrs["rng"] = "philox4x32-10"
    g.attrs["seed"] = np.uint64(meta["seed"])
    g.attrs["kernel"] = meta["kernel"]
    g.attrs["trials"] = np.int64(meta["trials"])
    g.attrs["first_index"] = np.int64(meta.get("first_index", 0))
    g.attrs["rows"] = np.int64(rows)
    if meta.get("shard"):
        g.attrs["shard"] = meta["shard"]
    for k, v in meta.get("extra_attrs", {}).items():
        g.attrs[k] = v
    g.attrs["created"] = _now()
    g.attrs["completed"] = np.int64(0)
    t = g.create_group("trials")
    R = max(1, min(_CHUNK_ROWS, rows))
    _fixed_dataset(t, "index", (rows,), np.int64, (R,))
    single = int(meta.get("samples", 0)) == 1
    for name in RECORD_FIELDS:
        if single and name in LINKED:
            t[name] = h5py.SoftLink(LINKED[name])     # relative: this group's twin
        else:
            _fixed_dataset(t, name, (rows, L), np.float64, (R, L))
    _fixed_dataset(t, "dead", (rows,), np.bool_, (R,))
    if meta.get("sup"):
        for name in SUP_FIELDS:
            _fixed_dataset(t, name, (rows, L), np.float64, (R, L))
    empty = Summary(L)
    write_summary(g.create_group("summary"), empty, create=True)
    c = g.create_group("checkpoint")
    for i in (0, 1):
        write_summary(c.create_group(f"slot{i}"), empty, create=True)
    c["slot1"]["trials"][()] = -1   # slot0 holds the state at completed = 0


class HDF5Sink:
    """Writes a run into an HDF5 file, batch by batch, crash-safely (format version 1).

    path       the results file
    overwrite  replace an existing file (a new file only)
    resume     continue the run in an existing file (or start it when there is none)
    group      the run's group inside an existing sweep file (None: the run at the root)
    """

    def __init__(self, path, overwrite=False, resume=False, group=None):
        self.path = str(path)
        self.overwrite = overwrite
        self.resume = resume
        self.group = group
        self.first = 0
        self.completed = 0
        self.staged = 0         # rows whose records have been handed to the OS (stage)
        self._slot = 0
        self._raw = None        # where each record column's rows lie in the file (_raw_layout)
        self._rows = 0
        self._fd = None

    def check_writable(self):
        if self.group is None and not (self.resume and os.path.exists(self.path)):
            check_output(self.path, self.overwrite)

    def _check_resumable(self, g, meta):
        if g.attrs.get("format") != "mcinit":
            raise StoreError(f"{self.path} is not an mcinit results file")
        if g.attrs.get("config_hash") != meta["config_hash"]:
            raise StoreError(f"cannot resume {self.path}: it holds a run of another configuration")
        for key in ("first_index", "rows"):
            want = int(meta.get(key, 0 if key == "first_index" else meta["trials"]))
            if int(g.attrs.get(key, -1)) != want:
                raise StoreError(f"cannot resume {self.path}: it holds another share of the trials")
        slot = checkpoint_slot(g)
        if slot is None:
            raise StoreError(f"cannot resume {self.path}: no checkpoint matches its completed trials")
        return slot

    def open(self, meta):
        """Create the run (or find where to resume it); returns None or (next trial, Summary)."""
        state = self._open(meta)
        self._rows = int(meta.get("rows", meta["trials"]))     # as build_run made the file
        self.staged = self.completed
        self._raw = self._raw_layout()
        if self._raw is not None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY)
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {_reason(e)}") from None
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
            with open_results(self.path) as f:
                t = (f[self.group] if self.group else f)["trials"]
                names = stored_columns(t, [n for n in COLUMNS + SUP_FIELDS if n in t])
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
        self.first = int(meta.get("first_index", 0))
        if self.resume and self.group is None and os.path.exists(self.path):
            with open_results(self.path, "a") as f:
                slot = self._check_resumable(f, meta)
                self.completed = int(f.attrs["completed"])
                summary = read_summary(f["checkpoint"][f"slot{slot}"], int(meta["depth"]))
            self._slot = slot
            return self.first + self.completed, summary
        if self.group is None:
            self.check_writable()
            create_file(self.path, {}, lambda f: build_run(f, meta))
        else:
            try:
                with h5py.File(self.path, "a", locking=False) as f:
                    if self.group in f:
                        g = f[self.group]
                        if not self.resume:
                            raise StoreError(f"{self.path} already holds a run {self.group}")
                        slot = self._check_resumable(g, meta)
                        self.completed = int(g.attrs["completed"])
                        self._slot = slot
                        return (self.first + self.completed,
                                read_summary(g["checkpoint"][f"slot{slot}"], int(meta["depth"])))
                    build_run(f.create_group(self.group), meta)
                    _durable_flush(f)
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.completed = 0
        self._slot = 0
        return None

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
            with _open_for_write(self.path) as f:
                t = (f[self.group] if self.group else f)["trials"]
                t["index"][a:b] = np.arange(self.first + a, self.first + b, dtype=np.int64)
                names = stored_columns(t, [n for n in RECORD_FIELDS + SUP_FIELDS + ("dead",)
                                           if n in batches[0][1]])
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
                raise StoreError(f"cannot write {self.path}: {_reason(e)}") from None
            i += k

    def commit(self, rows, summary):
        """Make the staged records up to ``rows`` durable, then the summary after them, then
        ``completed`` = rows (the protocol above; each step fsync'ed before the next)."""
        if not self.completed <= rows <= self.staged:
            raise StoreError(f"cannot commit {rows} rows: {self.staged} are staged, {self.completed} committed")
        try:
            if self._fd is not None:
                os.fsync(self._fd)      # step 1 (fsync is per file: HDF5's writes too)
            else:
                _fsync_path(self.path)
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {_reason(e)}") from None
        slot = 1 - self._slot
        with _open_for_write(self.path) as f:
            g = f[self.group] if self.group else f
            write_summary(g["checkpoint"][f"slot{slot}"], summary)
            write_summary(g["summary"], summary)
            _durable_flush(f)
            g.attrs.modify("completed", np.int64(rows))
            _durable_flush(f)
        self.completed = rows
        self._slot = slot

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read_records(self, start=0, stop=None):
        """Rows [start, stop) of the records already in the file, for a resumed run's tallies."""
        with open_results(self.path) as f:
            g = f[self.group] if self.group else f
            stop = self.completed if stop is None else stop
            return {k: g["trials"][k][start:stop] for k in COLUMNS}
