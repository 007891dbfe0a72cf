"""Where results go: an in-memory sink, and the HDF5 results file (format version 1).

The engine calls ``sink.open(meta)``, then ``sink.write(first, records, summary)``
once per batch in trial order, then ``sink.close()``.  The store knows nothing
of networks: it writes arrays and attributes.

HDF5 layout (DESIGN section 7):
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
"""

import datetime
import os

import h5py
import numpy as np

from .stats import QUANTITIES, Summary

__all__ = ["MemorySink", "HDF5Sink", "StoreError", "FORMAT_VERSION", "RECORD_FIELDS",
           "read_summary"]

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


class HDF5Sink:
    """Writes a run into an HDF5 file, batch by batch (format version 1)."""

    def __init__(self, path, overwrite=False, compression=("gzip", 1)):
        self.path = path
        self.overwrite = overwrite
        self.compression = compression
        self.completed = 0

    def check_writable(self):
        """Refuse an existing file without overwrite, or an unwritable place, before any work."""
        path = self.path
        if os.path.isdir(path):
            raise StoreError(f"output {path} is a directory")
        if os.path.exists(path) and not self.overwrite:
            raise StoreError(f"output {path} exists; pass --overwrite to replace it or choose another -o")
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise StoreError(f"output directory {d} does not exist")
        if not os.access(d, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise StoreError(f"output {path} is not writable")

    def open(self, meta):
        self.check_writable()
        L = int(meta["depth"])
        comp, level = self.compression
        kw = dict(compression=comp, compression_opts=level, shuffle=True)
        tmp = self.path + f".creating-{os.getpid()}"
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = "mcinit"
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["mcinit_version"] = meta["mcinit_version"]
                f.attrs["config"] = meta["config"]
                f.attrs["config_hash"] = meta["config_hash"]
                f.attrs["rng"] = "philox4x32-10"
                f.attrs["seed"] = np.uint64(meta["seed"])
                f.attrs["kernel"] = meta["kernel"]
                f.attrs["trials"] = np.int64(meta["trials"])
                f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                f.attrs["completed"] = np.int64(0)
                g = f.create_group("trials")
                rows = min(_CHUNK_ROWS, max(1, int(meta["trials"])))
                g.create_dataset("index", shape=(0,), maxshape=(None,), dtype=np.int64,
                                 chunks=(rows,), **kw)
                for name in RECORD_FIELDS:
                    g.create_dataset(name, shape=(0, L), maxshape=(None, L), dtype=np.float64,
                                     chunks=(rows, L), **kw)
                g.create_dataset("dead", shape=(0,), maxshape=(None,), dtype=bool, chunks=(rows,), **kw)
                self._write_summary(f, Summary(L), create=True)
            os.replace(tmp, self.path)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise StoreError(f"cannot create {self.path}: {e.strerror or e}") from None
        self.completed = 0

    def _write_summary(self, f, summary, create=False):
        s = f.require_group("summary")
        s.attrs["trials"] = np.int64(summary.trials)
        s.attrs["dead"] = np.int64(summary.dead)
        for qname, name, arr in _summary_arrays(summary):
            g = s.require_group(qname)
            if create:
                g.create_dataset(name, data=arr)
            else:
                g[name][...] = arr
        if create:
            for qname in QUANTITIES:
                g = s[qname]
                g.create_dataset("hist_edges", data=Summary.edges(0))
                g.create_dataset("log_hist_edges", data=Summary.edges(1))

    def write(self, first, records, summary):
        if first != self.completed:
            raise StoreError(f"batch starts at trial {first}, expected {self.completed}")
        n = len(records["dead"])
        with h5py.File(self.path, "a") as f:
            g = f["trials"]
            end = first + n
            g["index"].resize((end,))
            g["index"][first:end] = np.arange(first, end, dtype=np.int64)
            for name in RECORD_FIELDS:
                g[name].resize((end, g[name].shape[1]))
                g[name][first:end] = records[name]
            g["dead"].resize((end,))
            g["dead"][first:end] = records["dead"]
            self._write_summary(f, summary)
            f.flush()
            f.attrs["completed"] = np.int64(end)
        self.completed = end

    def close(self):
        pass


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
