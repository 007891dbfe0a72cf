"""The results file's layout (format versions 1 to 4): the one place that names its
groups, datasets and attributes and knows their shapes and types.  The writer (store),
the reader (reader) and merge build and read files through it.

One run (the file's root, or a sweep's group /runs/<name>)::

  attrs      format="mcinit", format_version (1, 2 or 3: format_version_of), mcinit_version,
             config (canonical JSON), config_hash, rng="philox4x32-10", seed, created,
             kernel, trials (planned for the run), first_index, rows (trials this file
             holds: trials, or a shard's share), shard ("I/K", shards only), completed (rows durably written; nothing
             past it is trusted); a merge adds merged_from, partial, missing
  trials/    index (rows,) int64; fwd_min, fwd_max, bwd_min, bwd_max (rows, L) float64;
             dead (rows,) bool (some h^l = 0 or delta^L = 0; with properties forward,
             some h^l = 0: no delta is computed); with the supremum search also
             sup_min, sup_max (rows, L), and from version 4 sup_lower, sup_upper
             (rows, L) float64 and sup_method (rows, L) uint8 (SUP_CERTIFIED_FIELDS).
             With one input per trial fwd_max and bwd_max are soft links to fwd_min and
             bwd_min (LINKED).  Version 3 (more than one input per trial) also has, per
             quantity recorded, the statistics over the trial's inputs (INPUT_FIELDS):
             fwd_mean, fwd_sd, fwd_norm_mean, fwd_norm_sd (rows, L) float64, and the same
             for bwd
  summary/   trials, dead (scalars); per quantity (fwd, bwd) count, mean, m2, min, max (L,)
             and the same with a log_ prefix, hist / log_hist (L, HIST_BINS + 2),
             hist_edges / log_hist_edges
  checkpoint/slot0, slot1: two copies of the summary layout; the one whose trials equals
             completed is the state at completed (checkpoint_slot)

Version 2 is the layout of a run that computes one property (its configuration's
``properties`` forward or backward): it holds that property's quantity only, the
per-trial columns fwd_min, fwd_max (forward) or bwd_min, bwd_max (backward) and the
summary's group fwd or bwd; every other dataset and attribute is version 1's.  A run of
both properties is written as version 1, as before, so every earlier mcinit reads it.

Version 3 is the layout of a run of more than one input per trial (samples N > 1): the
layout of version 1 (both properties) or 2 (one), and per quantity it records the four
columns of stats.INPUT_STATS: mean and population sd (ddof 0) over the trial's N inputs
of the ratio (rho_l, gamma_l) and of its square root.  A dead network's gamma is +inf
for every input: its bwd mean columns hold +inf and its sd columns NaN.  A run of one
input per trial records nothing new and is written as version 1 or 2, as before (its
statistics are the value itself and 0: the reader derives them).  An N > 1 file of
version 1 or 2 (written before version 3) still reads, without these columns; it stays
in its version when it is resumed, extended or merged (merged with version 3 parts, the
output lacks them too).

Version 4 is the layout of a run with the supremum search made by this mcinit (its
configuration has sup_boxes, sup_gap): the layout of versions 1 to 3 as the run's
properties and inputs make it, and SUP_CERTIFIED_FIELDS: per trial and layer a certified
lower bound on the infimum of rho_l over the unit sphere (sup_lower), a certified upper
bound on its supremum (sup_upper) and the method of the extremes (sup_method, an index of
SUP_METHODS: 0 the local search with branch-and-bound bounds, 1 exact).  sup_min and
sup_max stay the extremes found at actual inputs.  A file with the search written before
version 4 reads (its values are the search's, a one-sided estimate); it is not resumed,
extended or merged with version 4 runs (its configuration differs: no sup_boxes).

A sweep file: root attributes format, format_version (1: the sweep's own layout; each
run group carries its own), kind="sweep", runs (JSON list of the run names) and one run
group per name under /runs/.
"""

import datetime
import json

import h5py
import numpy as np

from .stats import HIST_BINS, QUANTITIES, QUANTITIES_OF, Summary, input_fields, record_fields

__all__ = ["FORMAT", "FORMAT_VERSION", "FORMAT_VERSIONS", "format_version_of", "sup_of", "RNG", "TRIALS", "SUMMARY",
           "CHECKPOINT", "RUNS", "COMPLETED", "DATA_PATH", "RECORD_FIELDS",
           "COLUMNS", "INPUT_FIELDS", "TRIAL_COLUMNS", "input_stats_of", "LINKED", "SUP_FIELDS", "SUP_CERTIFIED_FIELDS", "SUP_METHODS", "CHUNK_ROWS",
           "StoreError", "now", "mark_format", "run_path",
           "slot_group", "member", "column_shapes", "creation_bytes", "record_bytes", "stored_columns", "fixed_dataset", "write_summary", "read_summary",
           "checkpoint_slot", "build_run", "sweep_attrs", "set_completed", "write_final"]

FORMAT = "mcinit"
#: the newest version written (a run of more than one input per trial); FORMAT_VERSIONS:
#: those read
FORMAT_VERSION = 4
FORMAT_VERSIONS = (1, 2, 3, 4)
RNG = "philox4x32-10"
#: a run's groups: per-trial records, the summary, the two checkpoint slots
TRIALS, SUMMARY, CHECKPOINT = "trials", "summary", "checkpoint"
SLOTS = ("slot0", "slot1")
#: a sweep file's group of runs, and its root attribute listing them (JSON)
RUNS = "runs"
#: a run's attribute: the rows durably written; nothing past it is trusted
COMPLETED = "completed"
#: a run's attribute: the path of its fixed dataset's file (provenance; the configuration
#: knows the file by its content)
DATA_PATH = "data_path"
#: the per-trial record columns of a run of both properties (a run of one records its own:
#: stats.record_fields)
RECORD_FIELDS = record_fields()
COLUMNS = ("index",) + RECORD_FIELDS + ("dead",)
#: with one input per trial (samples = 1), these columns are soft links to their twins
LINKED = {"fwd_max": "fwd_min", "bwd_max": "bwd_min"}
#: per-trial columns of runs with the supremum search: min and max of rho_l over every
#: input evaluated (random and searched)
SUP_FIELDS = ("sup_min", "sup_max")
#: per-trial columns of runs with the supremum search from format version 4: certified
#: bounds on rho_l's infimum and supremum over the sphere, and the method (SUP_METHODS)
SUP_CERTIFIED_FIELDS = ("sup_lower", "sup_upper", "sup_method")
#: sup_method's values: the local search with branch-and-bound bounds, or exact extremes
SUP_METHODS = ("search", "exact")
#: per-trial columns of version 3 (more than one input per trial): the statistics over
#: the trial's inputs of both quantities (a run of one property has its own)
INPUT_FIELDS = input_fields()
#: every column a run's /trials group may hold
TRIAL_COLUMNS = COLUMNS + INPUT_FIELDS + SUP_FIELDS + SUP_CERTIFIED_FIELDS
#: rows per chunk of the per-trial columns (fewer for a smaller run)
CHUNK_ROWS = 16384
_SUMMARY_KEYS = ("count", "mean", "m2", "min", "max", "hist")


def input_stats_of(samples):
    """Whether a new run of ``samples`` inputs per trial records the statistics over its
    inputs (INPUT_FIELDS, format version 3): with more than one."""
    return int(samples) > 1


def sup_of(config):
    """column_shapes' ``sup`` of a run's configuration: False without the supremum search,
    "certified" for a run that records the two-sided extremes (version 4), True for a run
    with the search of an earlier mcinit (sup_min, sup_max only)."""
    if not config.sup:
        return False
    return "certified" if config.sup_certified else True


def format_version_of(properties, input_stats=False, sup_certified=False):
    """The format version of a run of ``properties`` (mcinit.options.PROPERTIES) that
    records the statistics over the inputs (input_stats) or not, and the two-sided extremes
    over the sphere (sup_certified) or not: 4 with the extremes, else 3 with the
    statistics, else 1 for both properties (version 1's layout, unchanged) and 2 for one
    property."""
    if sup_certified:
        return 4
    if input_stats:
        return 3
    return 1 if properties == "both" else 2


class StoreError(RuntimeError):
    """A results file cannot be written or read as asked; one line for the user."""


def now():
    """The current UTC time as an ISO string (the ``created`` attribute)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def mark_format(g):
    """Stamp group g (a file's root) with the format, its version (1; a run made at the root
    sets its own, build_run) and the creation time."""
    g.attrs["format"] = FORMAT
    g.attrs["format_version"] = FORMAT_VERSIONS[0]
    g.attrs["created"] = now()


def run_path(name):
    """The group of the run ``name`` inside a sweep file."""
    return f"{RUNS}/{name}"


def slot_group(g, i):
    """Checkpoint slot i (0 or 1) of the run in group g."""
    return member(member(g, CHECKPOINT), SLOTS[i])


def column_shapes(depth, samples, sup, properties="both", input_stats=None):
    """{column: (shape after the row axis, dtype, twin or None)} of a run's /trials group.

    depth    L, the hidden layers; samples: inputs per trial (1: the max columns are soft
    links to their twins); sup: whether the run has the supremum search's columns (False,
    True: those of versions 1-3, sup_of(config): "certified" for version 4's);
    properties: what the run records (its quantities' columns only); input_stats: whether
    it records the statistics over the inputs (version 3; None: input_stats_of(samples),
    as a new run does)."""
    if input_stats is None:
        input_stats = input_stats_of(samples)
    cols = {"index": ((), np.dtype(np.int64), None)}
    for name in record_fields(QUANTITIES_OF[properties], input_stats=bool(input_stats)):
        twin = LINKED.get(name) if int(samples) == 1 else None
        cols[name] = ((int(depth),), np.dtype(np.float64), twin)
    cols["dead"] = ((), np.dtype(np.bool_), None)
    if sup:
        for name in SUP_FIELDS:
            cols[name] = ((int(depth),), np.dtype(np.float64), None)
        if sup == "certified":
            for name in SUP_CERTIFIED_FIELDS:
                dtype = np.uint8 if name == "sup_method" else np.float64
                cols[name] = ((int(depth),), np.dtype(dtype), None)
    return cols


def creation_bytes(depth, rows, samples=0, sup=False, properties="both", input_stats=None):
    """Bytes of disk a new run's layout takes when it is created (build_run): its metadata,
    chunk indexes and the three summaries; the records' chunks are allocated sparse and
    take space only as they are written.  An upper estimate (measured: 245 KiB for L = 3
    and 1e5 rows, 4.0 MiB for L = 100, 655 KiB for L = 3 and 1e7 rows)."""
    summary = len(QUANTITIES_OF[properties]) * 2 * int(depth) * 8 * (len(_SUMMARY_KEYS) - 1 + HIST_BINS + 2)
    chunks = -(-max(1, int(rows)) // CHUNK_ROWS) * len(column_shapes(depth, samples, sup, properties, input_stats))
    return 3 * summary + 256 * 1024 + 128 * chunks


def record_bytes(depth, samples=0, sup=False, properties="both", input_stats=None):
    """Bytes of disk one row of a run's per-trial records takes (its stored columns)."""
    return sum(dtype.itemsize * int(np.prod(tail, dtype=np.int64))
               for tail, dtype, twin in column_shapes(depth, samples, sup, properties, input_stats).values()
               if twin is None)


def stored_columns(t, names):
    """The names among ``names`` that are datasets of group ``t`` in their own right (not
    soft links to a twin, LINKED): the columns a writer writes."""
    return [n for n in names if isinstance(t.get(n, getlink=True), h5py.HardLink)]


def fixed_dataset(g, name, shape, dtype, chunks):
    """A chunked dataset allocated at its full size now, never filled (sparse until written)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, dcpl=dcpl)


def _summary_arrays(summary):
    """(quantity group, dataset name, array (L, ...)) of a Summary's quantities."""
    for q, qname in enumerate(QUANTITIES):
        if qname not in summary.quantities:
            continue
        for s, prefix in ((0, ""), (1, "log_")):
            for key in _SUMMARY_KEYS:
                yield qname, prefix + key, getattr(summary, key)[q, s]


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
    for qname in summary.quantities:
        g[qname].create_dataset("hist_edges", data=Summary.edges(0))
        g[qname].create_dataset("log_hist_edges", data=Summary.edges(1))


def member(g, name):
    """The group or dataset ``name`` of group g, which must be g's own (a hard link): a link
    elsewhere, above all to another file, is never followed (StoreError)."""
    link = g.get(name, getlink=True)
    if link is None:
        raise StoreError(f"has no {name}")
    if not isinstance(link, h5py.HardLink):
        raise StoreError(f"{name} is a link, not part of the file")
    return g[name]


def _scalar_int(ds, what):
    """The integer held by scalar dataset ds, or a StoreError naming ``what``."""
    if not isinstance(ds, h5py.Dataset) or ds.shape != () or ds.dtype.kind not in "iu":
        raise StoreError(f"{what} is not an integer")
    return int(ds[()])


def read_summary(g, depth, properties="both"):
    """A Summary of depth L and the quantities of ``properties`` from a group written by
    write_summary; every array must have the shape and kind of number a Summary of that
    depth holds (else a StoreError)."""
    s = Summary(depth, QUANTITIES_OF[properties])
    for q, qname in enumerate(QUANTITIES):
        if qname not in s.quantities:
            continue
        qg = member(g, qname)
        for sp, prefix in ((0, ""), (1, "log_")):
            for key in _SUMMARY_KEYS:
                target = getattr(s, key)[q, sp]
                ds = member(qg, prefix + key)
                if (not isinstance(ds, h5py.Dataset) or ds.shape != target.shape
                        or ds.dtype.kind not in ("iu" if target.dtype.kind == "i" else "f")):
                    raise StoreError(f"summary {qname}/{prefix}{key} has shape {getattr(ds, 'shape', None)}, "
                                     f"expected {target.shape}")
                target[...] = ds[...]
    s.trials = _scalar_int(member(g, "trials"), "summary trials")
    s.dead = _scalar_int(member(g, "dead"), "summary dead")
    return s


def sweep_attrs(names, mcinit_version):
    """The root attributes of a sweep file of the runs ``names`` (its groups: RUNS/<name>)."""
    return {"kind": "sweep", "mcinit_version": mcinit_version, RUNS: json.dumps(list(names))}


def set_completed(g, rows):
    """The run in group g holds ``rows`` durable rows (a commit's last step)."""
    g.attrs.modify(COMPLETED, np.int64(rows))


def write_final(g, summary, rows):
    """A run written whole at once (a merge): its summary at ``rows`` completed rows, in
    /summary and checkpoint slot 0 (slot 1 marked unused)."""
    write_summary(g[SUMMARY], summary)
    write_summary(slot_group(g, 0), summary)
    slot_group(g, 1)["trials"][()] = -1
    g.attrs[COMPLETED] = np.int64(rows)


def checkpoint_slot(g, completed=None):
    """The index of the checkpoint slot holding the state at ``completed`` (the run's
    attribute when None), or None."""
    done = int(g.attrs[COMPLETED]) if completed is None else int(completed)
    for i in (0, 1):
        if _scalar_int(member(slot_group(g, i), "trials"), "checkpoint trials") == done:
            return i
    return None


def build_run(g, meta):
    """Create the layout of one run in group g (the file's root or a sweep's run group).

    meta: config, config_hash, seed, depth, trials, kernel, mcinit_version, and optionally
    first_index, rows, shard, samples (inputs per trial: with 1, the max columns are soft
    links to the min columns), sup (the supremum search's columns), properties (what the
    run records: both, the default, forward or backward), input_stats (whether it records
    the statistics over the inputs; by default with samples > 1: input_stats_of; with
    properties it sets the format version) and extra_attrs (more attributes)."""
    L = int(meta["depth"])
    rows = int(meta.get("rows", meta["trials"]))
    properties = meta.get("properties", "both")
    samples = meta.get("samples", 0)
    input_stats = meta.get("input_stats")
    if input_stats is None:
        input_stats = input_stats_of(samples)
    g.attrs["format"] = FORMAT
    g.attrs["format_version"] = format_version_of(properties, input_stats, meta.get("sup") == "certified")
    g.attrs["mcinit_version"] = meta["mcinit_version"]
    g.attrs["config"] = meta["config"]
    g.attrs["config_hash"] = meta["config_hash"]
    g.attrs["rng"] = RNG
    g.attrs["seed"] = np.uint64(meta["seed"])
    g.attrs["kernel"] = meta["kernel"]
    g.attrs["trials"] = np.int64(meta["trials"])
    g.attrs["first_index"] = np.int64(meta.get("first_index", 0))
    g.attrs["rows"] = np.int64(rows)
    if meta.get("shard"):
        g.attrs["shard"] = meta["shard"]
    for k, v in meta.get("extra_attrs", {}).items():
        g.attrs[k] = v
    g.attrs["created"] = now()
    g.attrs[COMPLETED] = np.int64(0)
    t = g.create_group(TRIALS)
    R = max(1, min(CHUNK_ROWS, rows))
    for name, (tail, dtype, twin) in column_shapes(L, samples, meta.get("sup"), properties, input_stats).items():
        if twin is not None:
            t[name] = h5py.SoftLink(twin)     # relative: this group's twin
        else:
            fixed_dataset(t, name, (rows,) + tail, dtype, (R,) + tail)
    empty = Summary(L, QUANTITIES_OF[properties])
    write_summary(g.create_group(SUMMARY), empty, create=True)
    c = g.create_group(CHECKPOINT)
    for name in SLOTS:
        write_summary(c.create_group(name), empty, create=True)
    slot_group(g, 1)["trials"][()] = -1   # slot0 holds the state at completed = 0
