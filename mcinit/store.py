"""Where results go: an in-memory sink, and the HDF5 results file (format version 1).

The engine calls ``sink.open(meta)``, then ``sink.write(first, records, summary)``
once per batch in trial order, then ``sink.close()``.  The store knows nothing
of networks: it writes arrays and attributes.

HDF5 layout (DESIGN section 7):
A sweep file has root attributes format, format_version, kind="sweep", runs
(JSON list of run names) and one such run group per run under /runs/<name>/.

  /            attrs format="mcinit", format_version=1, mcinit_version, config,
               config_hash, rng="philox4x32-10", seed, created, trials (planned),
               kernel, completed (trials durably written; trust nothing past it)
  /trials/     index (T,) int64; fwd_min, fwd_max, bwd_min, bwd_max (T, L) float64;
               dead (T,) bool
  /summary/    attrs trials, dead; one group per quantity (fwd, bwd) holding
               count, mean, m2, min, max (L,) of the ratio over all (trial, input)
               pairs with a finite ratio, the same with a log_ prefix for ln(ratio)
               over positive ratios, hist / log_hist (L, bins + 2) counts with an
               underflow and an overflow bin, and hist_edges / log_hist_edges.
The file is opened for each batch and closed after it, so between batches it is
complete and any reader (h5py, h5dump) can open it.

All datasets are chunked.  ``index``, ``dead`` and the summary use HDF5's
standard shuffle + deflate filters.  The float64 per-trial ratios are stored
without a filter by default: their mantissas are random, so deflate saves only
about 17% of the space at about 64 MB/s per core, three times the cost of
computing them with the law kernel (``compress=LEVEL`` turns it on).  Filtered
chunks are compressed by mcinit on a pool of threads (zlib releases the GIL)
and stored with direct chunk writes; h5py and h5dump read them as usual.
"""

import datetime
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from .stats import QUANTITIES, Summary

__all__ = ["MemorySink", "HDF5Sink", "StoreError", "FORMAT_VERSION", "RECORD_FIELDS",
           "read_summary", "check_output", "create_file"]

FORMAT_VERSION = 1
RECORD_FIELDS = ("fwd_min", "fwd_max", "bwd_min", "bwd_max")
_CHUNK_ROWS = 16384


class StoreError(RuntimeError):
    """A results file cannot be written or read as asked; one line for the user."""


class MemorySink:
    """Keeps everything in memory: for tests and the Python API."""

    def __init__(self):
        self.meta = None
        self._parts = []
        self.summary = None
        self.completed = 0

    def open(self, meta):
        self.meta = dict(meta)

    def write(self, first, records, summary):
        if first != self.completed:
            raise StoreError(f"batch starts at trial {first}, expected {self.completed}")
        self._parts.append({k: np.array(v) for k, v in records.items()})
        self.completed = first + len(records["dead"])
        self.summary = summary

    def close(self):
        pass

    @property
    def records(self):
        """Per-trial records: index, fwd_min, fwd_max, bwd_min, bwd_max, dead."""
        if not self._parts:
            return {}
        out = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        out["index"] = np.arange(self.completed, dtype=np.int64)
        return out


def _summary_arrays(summary):
    """name -> (quantity group, dataset name, array (L, ...)) of a Summary."""
    for q, qname in enumerate(QUANTITIES):
        for s, prefix in ((0, ""), (1, "log_")):
            for key in ("count", "mean", "m2", "min", "max"):
                yield qname, prefix + key, getattr(summary, key)[q, s]
            yield qname, prefix + "hist", summary.hist[q, s]


def _shuffle_deflate(block, level):
    """HDF5's shuffle filter (byte planes) then deflate, as the file's filter pipeline expects;
    level 0: the raw bytes of an unfiltered dataset."""
    b = np.ascontiguousarray(block)
    if level == 0:
        return b.tobytes()
    size = b.dtype.itemsize
    raw = b.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else b.tobytes()
    return zlib.compress(raw, level)


class _ChunkedColumns:
    """Appends rows to chunked, filtered datasets by direct chunk writes.

    The rows of the last, partial chunk are kept in memory (and written padded,
    the dataset's extent hiding the padding) until the chunk is complete."""

    def __init__(self, rows, levels, pool):
        self.rows = rows
        self.levels = levels  # name -> deflate level, 0 for an unfiltered dataset
        self.pool = pool
        self.tail = {}       # name -> rows of the partial chunk at the end
        self.tail_start = 0  # first trial of that chunk

    def append(self, group, first, columns):
        R = self.rows
        start = self.tail_start
        data = {k: (np.concatenate([self.tail[k], v]) if k in self.tail else v) for k, v in columns.items()}
        n = len(next(iter(data.values())))
        end = start + n
        jobs = []
        for name, arr in data.items():
            ds = group[name]
            for c0 in range(0, n, R):
                block = arr[c0:c0 + R]
                if len(block) < R:
                    pad = np.zeros((R,) + block.shape[1:], dtype=block.dtype)
                    pad[:len(block)] = block
                    block = pad
                offset = (start + c0,) + (0,) * (arr.ndim - 1)
                jobs.append((ds, offset, self.pool.submit(_shuffle_deflate, block, self.levels[name])))
        for name in data:
            ds = group[name]
            ds.resize((end,) + ds.shape[1:])
        for ds, offset, fut in jobs:
            ds.id.write_direct_chunk(offset, fut.result(), 0)
        full = (n // R) * R
        self.tail = {k: v[full:].copy() for k, v in data.items()}
        self.tail_start = start + full


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
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from None


class HDF5Sink:
    """Writes a run into an HDF5 file, batch by batch (format version 1).

    The run lives at the file's root, or in ``group`` (e.g. ``runs/w512-d10-n1-he``)
    of an existing sweep file."""

    def __init__(self, path, overwrite=False, compress=0, threads=None, group=None):
        """path: the results file; overwrite: replace an existing file; compress: deflate
        level 0-9 of the per-trial float datasets (0: unfiltered); threads: compressors;
        group: the run's group inside an existing file (None: a new file, the run at its root)."""
        if not 0 <= int(compress) <= 9:
            raise StoreError(f"compression level must be 0-9, got {compress}")
        self.path = path
        self.overwrite = overwrite
        self.compress = int(compress)
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.group = group
        self.completed = 0
        self._pool = None
        self._columns = None

    def check_writable(self):
        if self.group is None:
            check_output(self.path, self.overwrite)

    def _build(self, g, meta):
        L = int(meta["depth"])
        kw = dict(compression="gzip", compression_opts=1, shuffle=True)
        kw_rec = dict(compression="gzip", compression_opts=self.compress, shuffle=True) if self.compress else {}
        g.attrs["format"] = "mcinit"
        g.attrs["format_version"] = FORMAT_VERSION
        g.attrs["mcinit_version"] = meta["mcinit_version"]
        g.attrs["config"] = meta["config"]
        g.attrs["config_hash"] = meta["config_hash"]
        g.attrs["rng"] = "philox4x32-10"
        g.attrs["seed"] = np.uint64(meta["seed"])
        g.attrs["kernel"] = meta["kernel"]
        g.attrs["trials"] = np.int64(meta["trials"])
        g.attrs["created"] = _now()
        g.attrs["completed"] = np.int64(0)
        t = g.create_group("trials")
        rows = _CHUNK_ROWS
        t.create_dataset("index", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(rows,), **kw)
        for name in RECORD_FIELDS:
            t.create_dataset(name, shape=(0, L), maxshape=(None, L), dtype=np.float64,
                             chunks=(rows, L), **kw_rec)
        t.create_dataset("dead", shape=(0,), maxshape=(None,), dtype=bool, chunks=(rows,), **kw)
        self._write_summary(g, Summary(L), create=True)

    def open(self, meta):
        if self.group is None:
            self.check_writable()
            create_file(self.path, {}, lambda f: self._build(f, meta))
        else:
            try:
                with h5py.File(self.path, "a", locking=False) as f:
                    if self.group in f:
                        raise StoreError(f"{self.path} already holds a run {self.group}")
                    self._build(f.create_group(self.group), meta)
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.completed = 0
        self._pool = ThreadPoolExecutor(self.threads)
        levels = dict(index=1, dead=1, **{name: self.compress for name in RECORD_FIELDS})
        self._columns = _ChunkedColumns(_CHUNK_ROWS, levels, self._pool)

    def _write_summary(self, g, summary, create=False):
        s = g.require_group("summary")
        s.attrs["trials"] = np.int64(summary.trials)
        s.attrs["dead"] = np.int64(summary.dead)
        for qname, name, arr in _summary_arrays(summary):
            q = s.require_group(qname)
            if create:
                q.create_dataset(name, data=arr)
            else:
                q[name][...] = arr
        if create:
            for qname in QUANTITIES:
                q = s[qname]
                q.create_dataset("hist_edges", data=Summary.edges(0))
                q.create_dataset("log_hist_edges", data=Summary.edges(1))

    def write(self, first, records, summary):
        if first != self.completed:
            raise StoreError(f"batch starts at trial {first}, expected {self.completed}")
        n = len(records["dead"])
        end = first + n
        columns = {"index": np.arange(first, end, dtype=np.int64), "dead": np.asarray(records["dead"], bool)}
        columns.update({name: np.asarray(records[name], np.float64) for name in RECORD_FIELDS})
        # no HDF5 file lock: a reader holding the file open must not stop the run
        with h5py.File(self.path, "a", locking=False) as f:
            g = f[self.group] if self.group else f
            self._columns.append(g["trials"], first, columns)
            self._write_summary(g, summary)
            f.flush()
            g.attrs["completed"] = np.int64(end)
        self.completed = end

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def read_summary(group, depth):
    """A Summary from an HDF5 /summary group."""
    s = Summary(depth)
    for q, qname in enumerate(QUANTITIES):
        g = group[qname]
        for sp, prefix in ((0, ""), (1, "log_")):
            for key in ("count", "mean", "m2", "min", "max", "hist"):
                getattr(s, key)[q, sp] = g[prefix + key][...]
    s.trials = int(group.attrs["trials"])
    s.dead = int(group.attrs["dead"])
    return s
