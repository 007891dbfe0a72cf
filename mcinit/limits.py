"""What a run needs of the machine, checked before anything is allocated or created.

    need = limits.run_memory(config, batch_size=20000, threads=8)   # bytes at once
    size = limits.file_bytes(config, rows=config.trials)            # bytes of its file
    batch_size = limits.check_run(config, None, threads=8, output="run.h5")

Memory (``run_memory``) counts what a run holds at once, from the arrays the engine
and the kernels allocate:

- the engine's ratio arrays: fwd and bwd (B, N, L) float64 and dead (B,), four sets
  with more than one CPU thread (two batches being filled, one waiting, one being
  reduced), one set otherwise;
- the record arrays a batch is reduced into (fwd/bwd min and max (B, L), dead (B,);
  with N = 1 the max columns are the min columns; with N > 1 also the four statistics
  over the inputs per quantity (B, L)), one set per batch the writer may
  hold (RECORD_SETS); an in-memory run keeps every trial's records instead;
- with the supremum search, its per-batch arrays and per-thread scratch;
- each thread's scratch in the kernel's work unit: the dense kernel's activations
  (n_l x N per layer), kept weight rows (when they fit its workspace budget), delta
  buffers (4 nmax x N) and head (2 K x N plus N x 2K); the projected kernel's factors
  (about n_l min(N, n_l) per layer) and head (about 4 N x K); the law kernel's lanes (about
  116 max(2L + 1, K) x 64 bytes);
- the fixed tables of the run (the law kernel's binomial tables).

These are the dominant terms, counted as the pages the run touches (scratch arrays
whose tail a kernel never writes are counted in the part it writes); the estimates
are within a factor 1.5 of the peak resident memory a run adds (tests/test_limits.py
measures it for each kernel).  The results file (``file_bytes``)
holds per trial its index (8 bytes), dead flag (1), fwd and bwd min and max (L
float64 each; the max columns are links to the min columns with one input per
trial), with more than one input per trial the statistics over them (four times L
float64 per quantity) and with the supremum search sup_min and sup_max (L float64 each), in chunks
of up to 16384 rows allocated whole, and the summaries (the summary and two
checkpoint slots) of fixed size: mcinit.layout's record_bytes and creation_bytes.

A run is refused, before any file is created, when it needs more memory than the
machine has available (MemAvailable, and the cgroup's limit where there is one) or
its file more than its directory's disk has free.  An automatic batch size is
shrunk instead to one whose batch memory fits in AUTO_SHARE of what is available.
``insist`` (the command line's --ignore-limits) skips both refusals; sizes no
machine can address (more than ADDRESSABLE bytes, or a head of more than MAX_CLASSES
classes) are refused even then.
"""

import dataclasses
import os

from .config import MAX_WIDTH, ConfigError

__all__ = ["Memory", "run_memory", "trial_bytes", "file_bytes", "submission_bytes", "available_memory", "free_disk", "check_sizes",
           "check_run", "check_sweep", "check_submission", "largest_batch", "human_bytes", "MAX_CLASSES", "ADDRESSABLE", "AUTO_SHARE",
           "RECORD_SETS", "LimitError"]

#: the most classes a head may have (as many as the widest layer)
MAX_CLASSES = MAX_WIDTH
#: the most bytes a run may ask for even with insist: a 64-bit machine's user address space
ADDRESSABLE = 1 << 47
#: an automatic batch size keeps the run's memory within this share of what is available
AUTO_SHARE = 0.5
#: record sets the writer may hold at once: its queue, as many being written, one being filled
RECORD_SETS = 7
_F = 8      # bytes of a float64


class LimitError(ConfigError):
    """A run needs more memory or disk than the machine has; one line for the user."""


@dataclasses.dataclass
class Memory:
    """The bytes a run holds at once, by part (run_memory)."""

    ratios: int         # the engine's (B, N, L) ratio arrays, every set
    records: int        # record arrays of the batches in flight (or every trial's, in memory)
    scratch: int        # the kernel's per-thread scratch, all threads
    fixed: int          # the run's tables

    @property
    def total(self):
        return self.ratios + self.records + self.scratch + self.fixed

    @property
    def per_batch(self):
        """What grows with the batch size."""
        return self.ratios + self.records


def human_bytes(n):
    """'74.5 GiB': a byte count in binary units, three significant digits."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"   # pragma: no cover


def _record_row_bytes(config):
    """Bytes of one trial's records in memory: the file's columns (layout.record_bytes: fwd/bwd
    min and max, the statistics over the inputs, dead, sup columns) but its index."""
    from .layout import record_bytes, sup_of
    return record_bytes(config.depth, config.samples, sup_of(config), config.properties) - 8


def _dense_scratch(widths, N, K, store_budget, orthogonal=False):
    """Bytes of one work unit of the dense kernel (kernels/dense.py, _chunk); orthogonal weights
    add the buffer of a layer's whole matrix (kernels/orthogonal.py, workspace_size)."""
    L = len(widths) - 1
    nmax = max(widths)
    nw = sum(widths[l] * widths[l - 1] for l in range(2, L + 1)) + K * widths[L]
    kept = nw * _F if nw * _F <= store_budget else 0
    H = sum(widths) * N * _F
    deltas = 4 * nmax * N * _F                 # D0, D1, Dc, Hc
    index = 2 * (L + 1) * nmax * _F            # cols, rows
    rows = (2 * nmax + 5 * nmax + max(5 * 8192, 3 * nmax) + max(8192, nmax)) * _F
    head = 2 * K * N * _F + N * max(widths[0], 2 * K) * _F
    whole = (2 * max(widths[l] * widths[l - 1] for l in range(1, L + 1)) + 3 * nmax) * _F if orthogonal else 0
    return kept + H + deltas + index + rows + head + 2 * N * (L + 1) * _F + whole


def _blocked_scratch(widths, N, K, item, store_budget, backward):
    """Bytes of one work unit of the blocked kernel (kernels/blocked.py, Workspace and Ops):
    item bytes per value (8 float64, 4 float32)."""
    L = len(widths) - 1
    nmax = max(widths[1:])
    layers = [widths[l] * widths[l - 1] for l in range(1, L + 1)]
    nw = sum(layers) + K * widths[L]
    if backward and nw * item <= store_budget:
        weights = nw * item
    else:
        weights = max(layers) * item + (K * widths[L] * item if backward else 0)
    H = sum(widths) * N * item
    back = (2 * nmax * N + 2 * K * N) * item + K * N * _F if backward else 0
    norms = 2 * (L + 1) * N * _F
    rows = (N * widths[0] + max(8192, nmax) + max(5 * 8192, 3 * nmax) + 16) * _F
    return weights + H + back + norms + rows


def _projected_scratch(widths, N, K, orthogonal=False):
    """Bytes of one work unit of the projected kernel (kernels/projected.py, _chunk); orthogonal
    weights widen G to max(n_l, n_(l-1)) columns and add U (N, nmax) and Rz (rs, rs)."""
    L = len(widths) - 1
    nmax = max(max(widths), K)
    rs = min(N, nmax)
    total = 0
    for l in range(L + 1):
        n = widths[l]
        if l > 0:
            total += N * n + min(N, n) * n           # H, Q
        total += min(N, n) * N                        # R
        total += min(N, widths[max(l - 1, 0)]) * (max(n, widths[max(l - 1, 0)]) if orthogonal else n)   # G
    total += min(N, widths[L]) * K + 2 * N * K       # Go, E, Z
    # Dl, Dn (N, nmax) and Y (rs, nmax) are touched only in their first max(widths) columns
    # (the pages of the rest are never mapped); Qs (rs, nmax) whole, by the head
    wmax = max(widths)
    total += 2 * N * wmax + rs * (nmax + wmax) + rs * N + 7 * nmax
    if orthogonal:
        total += N * nmax + rs * rs                  # U, Rz
    return total * _F


def _law_scratch(L, K, widths=None):
    """Bytes of one work unit of the law kernel (kernels/law.py, make_workspace), and with
    ``widths`` the larger of that and the chain's (_chain_chunk: a^l and h^l of every layer,
    four rows of the widest layer and a row workspace of five)."""
    lanes = 64
    m = max(2 * L + 1, K + (-K) % 4) * lanes
    lanes_bytes = 116 * m + (3 * K + 5 * (L + 1)) * lanes * _F
    if widths is None:
        return lanes_bytes
    chain = (2 * sum(widths[1:]) + 8 * max(widths) + 16 + 3 * K + 2 * (L + 1)) * _F
    return max(lanes_bytes, chain)


def _sup_scratch(widths, inputs, L):
    """Bytes of the supremum search per thread (kernels/sup.py): every weight, the input
    factorisation (n_0 x n_0, twice), the layer tables, and its dense call's ratio block."""
    n0 = widths[0]
    nmax = max(widths)
    nw = sum(widths[l] * widths[l - 1] for l in range(1, L + 1))
    return (nw + 2 * n0 * n0 + inputs * n0 + 6 * (L + 1) * nmax) * _F


def run_memory(config, batch_size, threads=1, backend="cpu", in_memory_rows=0, rows=None):
    """The bytes a run holds at once (a Memory; .total), from its resolved configuration.

    config          a RunConfig whose kernel is resolved (engine.resolve)
    batch_size      trials per batch B
    threads         CPU threads (work units in flight at once)
    backend         cpu | cuda: on cuda only the host's arrays are counted
    in_memory_rows  trials whose records the run keeps in memory (an in-memory sink), 0 for a file
    rows            trials the run computes (config.trials when None): a run of fewer batches
                    than the engine keeps sets of arrays for uses one set per batch
    """
    from .kernels.common import workspace_mb

    B = int(batch_size)
    N, L, K = int(config.samples), int(config.depth), int(config.head[1])
    widths = [int(n) for n in config.all_widths]
    threads = max(1, int(threads))
    cpu = backend != "cuda"
    batches = -(-int(config.trials if rows is None else rows) // max(1, B))
    sets = min(batches, 4 if (threads > 1 and cpu) else 1)
    ratios = sets * (2 * B * N * L * _F + B)
    row = _record_row_bytes(config)
    records = in_memory_rows * (row + _F) if in_memory_rows else min(batches, RECORD_SETS) * B * row
    fixed = 0
    scratch = 0
    if cpu:
        kernel = config.kernel
        if kernel == "law":
            scratch = _law_scratch(L, K, widths)
            fixed = (sum(widths[1:]) + L) * _F + L * 4096 * _F + (max(widths) + 1) * _F
        elif kernel == "projected":
            scratch = _projected_scratch(widths, N, K, config.init == "orthogonal")
            fixed = min(N, widths[0]) * (N + widths[0]) * _F
        elif kernel == "blocked":
            item = 4 if config.precision == "float32" else 8
            scratch = _blocked_scratch(widths, N, K, item, workspace_mb() * 2 ** 20,
                                       config.properties != "forward")
        else:
            # a forward-only run keeps no weights for a backward pass
            keep = workspace_mb() * 2 ** 20 if config.properties != "forward" else 0
            scratch = _dense_scratch(widths, N, K, keep, config.init == "orthogonal")
        scratch *= min(threads, max(1, B))
    if config.sup:
        ratios += 5 * B * L * _F
        inputs = N
        block = max(1, (1 << 26) // (16 * inputs * L))
        scratch += min(block, B) * 2 * inputs * L * _F
        if cpu:
            scratch += threads * (_sup_scratch(widths, inputs, L)
                                  + _dense_scratch(widths, inputs, 1, workspace_mb() * 2 ** 20))
            if config.sup_certified:
                # the branch-and-bound's open boxes (kernels/sup_bound.py), per thread
                from .kernels.sup_bound import memory
                scratch += threads * memory(widths, config.sup_boxes)
                from .kernels import sup_regions
                if 3 <= widths[0] <= sup_regions.MAX_DIM:
                    scratch += threads * sup_regions.memory()
    return Memory(ratios=int(ratios), records=int(records), scratch=int(scratch), fixed=int(fixed))


def trial_bytes(config):
    """Bytes of one trial's records in the results file (layout.record_bytes: its index and
    the columns of the run's properties)."""
    return _record_row_bytes(config) + _F


def file_bytes(config, rows=None):
    """Bytes of the results file of ``rows`` trials of config (its trials when None): its
    rows, whole chunks of them (trial_bytes each), and what its creation takes
    (layout.creation_bytes: metadata and summaries)."""
    from .layout import CHUNK_ROWS, creation_bytes, sup_of
    rows = int(config.trials if rows is None else rows)
    chunk = max(1, min(CHUNK_ROWS, rows))
    allocated = -(-rows // chunk) * chunk
    return (allocated * trial_bytes(config)
            + creation_bytes(config.depth, rows, config.samples, sup_of(config), config.properties))


def submission_bytes(configs, shards):
    """(bytes of the part files, bytes of the merged file) of a submission of these runs
    (resolved RunConfigs) in ``shards`` shards each: the parts hold every trial once, in
    ``shards`` files per run, and the merged file holds them all again."""
    parts = merged = 0
    for config in configs:
        T = int(config.trials)
        for i in range(shards):
            parts += file_bytes(config, (T * (i + 1)) // shards - (T * i) // shards)
        merged += file_bytes(config)
    return parts, merged


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory():
    """Bytes of memory available to this process now: MemAvailable (/proc/meminfo), within
    the cgroup's limit where there is one; None when the system does not say."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            avail = None
    limit = _read_int("/sys/fs/cgroup/memory.max")
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        room = max(0, limit - used)
        avail = room if avail is None else min(avail, room)
    return avail


def free_disk(path):
    """Bytes free to this user on the file system of the directory of ``path``; None when
    it cannot be told."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(d)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def check_sizes(config):
    """Refuse sizes that no machine can hold or index (a ConfigError), whatever is insisted."""
    K = int(config.head[1])
    if K > MAX_CLASSES:
        raise ConfigError(f"the head has {K} classes; at most {MAX_CLASSES} are supported")


def largest_batch(config, memory, threads=1, backend="cpu", rows=None):
    """The largest batch size (at most the rows) whose run_memory fits in ``memory`` bytes;
    0 when not even a batch of one trial does.  run_memory grows with the batch size (but
    for the fewer sets of arrays of a run of fewer batches, so that a larger size may fit
    where a few of its neighbours do not)."""
    rows = int(config.trials if rows is None else rows)

    def fits(b):
        return run_memory(config, b, threads, backend, rows=rows).total <= memory
    if not fits(1):
        return 0
    lo, hi = 1, max(1, rows)
    if fits(hi):
        return hi
    while hi - lo > 1:          # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _why(mem):
    """The largest part of a Memory, in words."""
    parts = {"the kernel's scratch": mem.scratch, "the ratio arrays": mem.ratios,
             "the records": mem.records, "the kernel's tables": mem.fixed}
    name = max(parts, key=parts.get)
    return f"{name}: {human_bytes(parts[name])}"


def check_run(config, batch_size=None, threads=1, backend="cpu", output=None, rows=None,
              in_memory=False, resume=False, insist=False, available=None, free=None):
    """The batch size to run with, or a LimitError naming what does not fit.

    config      a resolved RunConfig (engine.resolve)
    batch_size  trials per batch asked for, or None: choose one (it is shrunk to fit)
    threads     CPU threads
    backend     cpu | cuda
    output      the results file's path (its directory's free disk is checked), or None
    rows        trials the run writes (config.trials when None)
    in_memory   the run keeps every trial's records in memory (an in-memory sink)
    resume      the output may exist already: only the part not yet allocated is counted
    insist      skip the memory and disk refusals (--ignore-limits)
    available   bytes of memory available (available_memory() when None)
    free        bytes of free disk at output (free_disk(output) when None)
    """
    check_sizes(config)
    rows = int(config.trials if rows is None else rows)
    auto = batch_size is None
    if auto:
        from .engine import default_batch_size
        batch_size = default_batch_size(config, threads)
    batch_size = max(1, min(int(batch_size), max(1, rows)))
    held = rows if in_memory else 0
    mem = run_memory(config, batch_size, threads, backend, held, rows)
    flag = " (or pass --ignore-limits)"
    if mem.total > ADDRESSABLE:
        raise ConfigError(f"a batch of {batch_size} trial{'s' if batch_size != 1 else ''} needs "
                          f"{human_bytes(mem.total)} of memory, "
                          f"more than any machine can address ({_why(mem)}): lower --batch-size, "
                          "--samples, the widths or the head's classes")
    if output is not None:
        need = file_bytes(config, rows)
        if resume and os.path.isfile(output):
            try:
                need = max(0, need - os.stat(output).st_blocks * 512)
            except (OSError, AttributeError):
                pass
        if need > ADDRESSABLE * 64:
            raise ConfigError(f"the results file would take {human_bytes(need)}: lower --trials")
        free = free_disk(output) if free is None else free
        if not insist and free is not None and need > free:
            d = os.path.dirname(os.path.abspath(output))
            raise LimitError(f"the results file will take {human_bytes(need)}; {d} has "
                             f"{human_bytes(free)} free: lower --trials or write elsewhere{flag}")
    if insist:
        return batch_size
    available = available_memory() if available is None else available
    if available is None:
        return batch_size
    kept = mem.records if held else 0       # the in-memory records, whatever the batch size
    if auto:
        if mem.total <= AUTO_SHARE * available:
            return batch_size
        for budget in (AUTO_SHARE * available, available):   # within half, else within all
            fit = largest_batch(config, budget - kept, threads, backend, rows)
            if fit >= 1:
                return min(fit, batch_size)
    if mem.total <= available:
        return batch_size
    what = f"a batch of {batch_size} trial{'s' if batch_size != 1 else ''}"
    if held:
        what += f" with the records of {rows} trials in memory"
    head = (f"{what} needs {human_bytes(mem.total)} of memory ({_why(mem)}); this machine has "
            f"{human_bytes(available)} available")
    fit = largest_batch(config, available - kept, threads, backend, rows)
    if held and mem.records > available / 2:
        raise LimitError(f"{head}: write the records to a file or lower the trials{flag}")
    if fit >= 1 and not auto:
        raise LimitError(f"{head}: lower --batch-size (at most {fit} fits) or --samples{flag}")
    raise LimitError(f"{head}: lower --samples, the widths, the head's classes or --threads{flag}")


def check_sweep(configs, output, threads=1, batch_size=None, backend="cpu", resume=False, insist=False,
                available=None, free=None):
    """check_run for every run of a sweep (resolved RunConfigs), and the sweep file's disk
    for all of them together, before the file is created; a LimitError or a ConfigError."""
    need = 0
    for config in configs:
        check_run(config, batch_size, threads, backend, insist=insist, available=available)
        need += file_bytes(config)
    if resume and os.path.isfile(output):
        try:
            need = max(0, need - os.stat(output).st_blocks * 512)
        except (OSError, AttributeError):
            pass
    free = free_disk(output) if free is None else free
    if not insist and free is not None and need > free:
        d = os.path.dirname(os.path.abspath(output))
        raise LimitError(f"the sweep's results file will take {human_bytes(need)}; {d} has "
                         f"{human_bytes(free)} free: lower --trials or write elsewhere (or pass --ignore-limits)")


def check_submission(configs, output, resume=False, insist=False, free=None, shards=1):
    """What a SLURM submission of these runs (resolved RunConfigs) into ``output`` needs before
    anything is written: sizes that no machine holds are refused (check_sizes), and the disk of
    the output's directory must hold the part files and the merged file (submission_bytes of
    ``shards`` shards; a LimitError unless insist).  Memory is not checked here: the jobs run on
    other machines, whose memory their own runs check."""
    for config in configs:
        check_sizes(config)
    need = sum(submission_bytes(configs, shards))
    if resume:
        return      # part of it is written already; each shard checks what it adds
    free = free_disk(output) if free is None else free
    if not insist and free is not None and need > free:
        d = os.path.dirname(os.path.abspath(output))
        raise LimitError(f"the part files and the merged results file will take {human_bytes(need)}; {d} has "
                         f"{human_bytes(free)} free: lower --trials or write elsewhere (or pass --ignore-limits)")
