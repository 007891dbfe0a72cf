"""The engine: runs trials in batches through a kernel, reduces them, streams them to a sink.

    cfg, data = mcinit.config.build(trials=1e5, width=256, depth=10)
    result = mcinit.engine.run(cfg, data)          # in memory
    result.summary, result.records["fwd_max"]

Batches are a unit of work only: a trial's numbers depend on (seed, trial index)
alone, so results are bit-identical for every batch size and thread count.
With more than one thread, a batch is reduced, tallied and handed to the sink on a
background thread while the next batches are computed (the kernels and the reduction
release the GIL and share one pool of threads); the sink writes on another.
"""

import collections
import dataclasses
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import kernels, limits
from ._version import __version__
from .config import ConfigError
from .options import BACKENDS
from .kernels.common import forward_deaths, make_plan
from .progress import progress_bar
from .stats import EPS_LADDER, PROPS_OF, QUANTITIES_OF, Summary, failure_counts, record_buffers, reduce_and_tally
from .layout import DATA_PATH, sup_of
from .store import MemorySink, Sink

__all__ = ["run", "resolve", "kernel_choice", "resolve_backend", "RunResult", "Stopped", "default_batch_size",
           "set_threads", "usable_cores", "shard_range", "check_shard", "BACKENDS"]

#: tolerances at which a run counts failures as it goes (norm form), for its closing summary:
#: the one default ladder (mcinit.stats.EPS_LADDER)
REPORT_EPS = EPS_LADDER
#: budget for one batch's (trial, input, layer) ratio arrays, in float64 values
_BATCH_VALUES = 1 << 23


@dataclasses.dataclass
class RunResult:
    """What a run produced: its configuration, summary, timing, and (in memory) its records."""

    config: object
    summary: Summary
    elapsed: float
    sink: object
    eps: np.ndarray
    failures: dict  # prop -> counts at each eps, norm form (the properties the run computes)
    computed: int = 0  # trials computed by this call (less than summary.trials after a resume)
    startup: float = 0.0  # seconds (part of elapsed) spent compiling the kernels or loading them
    #                       from numba's cache: a first trial computed apart and discarded (_warm_up)
    sup: dict = None  # with the supremum search, mcinit.sphere.tally of every trial (norm form, at eps)

    @property
    def rate(self):
        """Trials per second, the startup left out (None when none was computed)."""
        seconds = self.elapsed - self.startup
        if self.computed < 1 or seconds <= 0:
            return None
        return self.computed / seconds

    @property
    def records(self):
        return self.sink.records if isinstance(self.sink, MemorySink) else None


def kernel_choice(config):
    """(kernel, why, costs) of a configuration's kernel request (kernels.choose): the concrete
    kernel, the rule that picked it, the estimated seconds per trial of every able kernel."""
    from .initializers import scheme_of
    dist, _, _ = scheme_of(config)
    return kernels.choose(config.kernel, dist, config.all_widths, config.samples, config.head[1], config.init,
                          config.precision, config.arch, config.properties, config.activation)


def resolve(config):
    """The configuration with its kernel resolved ('auto' -> a concrete kernel)."""
    return dataclasses.replace(config, kernel=kernel_choice(config)[0])


def usable_cores():
    """The cores this process may run on (its CPU affinity; all of the machine's where the
    system does not say)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(threads, insist=False):
    """Use ``threads`` threads (numba's thread count, which the kernels' work units follow);
    never changes a result.

    At most numba's NUMBA_NUM_THREADS (by default the cores this process may use):
    more threads than cores only take turns on them.  insist (--ignore-limits) raises
    numba's limit to ``threads`` where numba has not started its threads yet (else a
    ConfigError says how to)."""
    import numba
    threads = int(threads)
    if threads < 1:
        raise ConfigError("threads must be at least 1")
    limit = numba.config.NUMBA_NUM_THREADS
    if threads > limit and insist:
        _raise_thread_limit(threads)
        limit = numba.config.NUMBA_NUM_THREADS
    if threads > limit:
        cores = usable_cores()
        what = (f"the {cores} core{'s' if cores != 1 else ''} this process may use (its CPU affinity)"
                if limit == cores else f"numba's limit of {limit} (NUMBA_NUM_THREADS; this process may "
                f"use {cores} core{'s' if cores != 1 else ''})")
        why = ("each thread computes whole trials on its own, so threads beyond the cores only take turns "
               "on them: the run is slower (switching, and more memory for the threads' scratch), its "
               "results the same")
        how = (f"pass --threads {limit} or fewer, or --ignore-limits to run {threads} threads anyway"
               if not insist else f"start mcinit with NUMBA_NUM_THREADS={threads} in the environment "
               "(numba's threads are started already)")
        raise ConfigError(f"--threads {threads} is more than {what}: {why}; {how}")
    numba.set_num_threads(threads)


def _raise_thread_limit(threads):
    """numba's NUMBA_NUM_THREADS := threads, where numba has not started its threads yet (its
    thread pool's size and set_num_threads' check are read when numba is imported: both are
    renewed; a numba without them keeps its limit, and set_threads says how to raise it)."""
    import numba
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", True) or not (hasattr(parallel, "NUM_THREADS")
                                                          and hasattr(parallel, "gen_snt_check")):
        return
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    numba.config.reload_config()
    parallel.NUM_THREADS = numba.config.NUMBA_NUM_THREADS
    parallel.snt_check = parallel.gen_snt_check()


def default_batch_size(config, threads=1):
    """Trials per batch: about a second of work, at least four work units per thread,
    within the memory budget."""
    c = kernels.cost(config.kernel, config.all_widths, config.samples, config.head[1], config.precision,
                     config.properties != "forward", config.activation, config.init == "orthogonal")
    by_work = max(int(1.0 / max(c, 1e-9)), 4 * threads)
    by_mem = max(1, _BATCH_VALUES // (2 * config.samples * config.depth))
    return int(max(1, min(by_work, by_mem, 1 << 16, config.trials)))


class _Writer:
    """Hands batches to the sink on background threads, in order; errors come back.

    Batches that queue up while the sink is busy go to it together: an HDF5 file then
    commits them at once, with one set of fsyncs and one summary for several batches, so
    that a fast kernel is not held to the pace of the disk's commits.  A sink that stages
    and commits separately (``Sink.pipelined``: HDF5Sink) gets two threads: one stages each
    batch's records as they come (hands them to the OS, after which their arrays can be
    reused), the other commits what is staged (fsync, summary, ``completed``), every batch
    staged meanwhile in one commit; so the next batches' records are copied out while a
    commit waits for the disk.  Other sinks get ``write_many`` on one thread."""

    #: batches waiting for the sink at most
    QUEUE = 3

    def __init__(self, sink):
        self.sink = sink
        self.q = queue.Queue(maxsize=self.QUEUE)
        self.error = None
        self.written = 0    # batches the sink has had (staged or written, or dropped after an error)
        self.pipelined = bool(sink.pipelined)
        self.commits = queue.Queue() if self.pipelined else None
        self.threads = [threading.Thread(target=self._loop, daemon=True)]
        if self.pipelined:
            self.threads.append(threading.Thread(target=self._commit_loop, daemon=True))
        for t in self.threads:
            t.start()

    @staticmethod
    def _take(q, most=None):
        """The next item of q and those queued behind it (up to ``most``); (items, ended)."""
        items = [q.get()]
        while (most is None or len(items) < most) and items[-1] is not None:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        if items[-1] is None:
            return items[:-1], True
        return items, False

    def _fail(self, e):
        if self.error is None:  # the first error wins; re-raised in the engine's thread
            self.error = e

    def _loop(self):
        done = False
        while not done:
            items, done = self._take(self.q, self.QUEUE)
            if items and self.error is None:
                try:
                    if self.pipelined:
                        self.sink.stage(items)
                        self.commits.put((self.sink.staged, items[-1][2]))
                    else:
                        self.sink.write_many(items)
                except BaseException as e:
                    self._fail(e)
            self.written += len(items)
        if self.pipelined:
            self.commits.put(None)

    def _commit_loop(self):
        done = False
        while not done:
            requests, done = self._take(self.commits)
            if requests and self.error is None:
                try:
                    self.sink.commit(*requests[-1])     # the last: everything staged so far
                except BaseException as e:
                    self._fail(e)

    def put(self, first, records, summary):
        if self.error is not None:
            raise self.error
        self.q.put((first, records, summary))

    def stop(self):
        """End the threads once the batches handed over are written (or dropped after an error)."""
        if self.threads[0].is_alive():
            self.q.put(None)
        for t in self.threads:
            t.join()

    def finish(self):
        self.stop()
        if self.error is not None:
            raise self.error


class Stopped(Exception):
    """A run stopped early on request (SIGINT/SIGTERM) at a batch boundary; its file can be resumed."""

    def __init__(self, completed, result):
        super().__init__(f"stopped after trial {completed}")
        self.completed = completed
        self.result = result


def _sup_extremes(plan, config, first, fwd, bwd, dead):
    """The supremum search's columns of a batch (mcinit.sphere.extremes), from the batch's
    ratios fwd, bwd (count, N, L) and dead flags (count,) on its random sphere inputs."""
    from . import sphere
    return sphere.extremes(plan, config, first, fwd, bwd, dead)


#: what this process has compiled or loaded already (_warm_up's keys)
_warm = set()


def _warm_up(config, backend, plan, fill, first, arrays, eps):
    """Compute trial ``first`` once apart, into ``arrays`` (a set of ratio arrays) and a
    summary thrown away, so that compiling the kernels, the reduction and the search (or
    loading them from numba's cache) is timed apart from the trials; once per process and
    kind of run.  Whether it ran."""
    key = (config.kernel, config.precision, config.properties, config.sup, config.samples == 1,
           config.head[0], resolve_backend(backend))
    if key in _warm:
        return False
    fwd, bwd, dead = (a[:1] for a in arrays)
    dead[:] = False
    fill(plan, first, 1, fwd, bwd, dead)
    reduce_and_tally(fwd, bwd, dead, Summary(config.depth, QUANTITIES_OF[config.properties]), eps, "norm")
    if config.sup:
        _sup_extremes(plan, config, first, fwd, bwd, dead)
    _warm.add(key)
    return True


def shard_range(trials, shard):
    """The contiguous share [first, stop) of trial indices 0..trials-1 of shard (I, K)."""
    i, k = shard
    return (trials * i) // k, (trials * (i + 1)) // k


def check_shard(trials, shard):
    """A ConfigError unless shard (I, K) is a share of ``trials`` trials: 0 <= I < K <= trials."""
    i, k = shard
    if not (k >= 1 and 0 <= i < k):
        raise ConfigError(f"shard must be I/K with 0 <= I < K, got {i}/{k}")
    if k > trials:
        raise ConfigError(f"{k} shards need at least {k} trials")


def resolve_backend(backend):
    """'cpu' or 'cuda' for a request ('auto': CUDA when an NVIDIA GPU is present)."""
    backend = (backend or "cpu").lower()
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be cpu, cuda or auto; got {backend!r}")
    if backend == "cpu":
        return "cpu"
    try:
        from .kernels import cuda
        ok = cuda.available() or cuda.simulator()
    except ImportError:
        ok = False
    if backend == "cuda" and not ok:
        raise ConfigError("--backend cuda needs an NVIDIA GPU and the CUDA extra (pip install mcinit[cuda])")
    return "cuda" if ok else "cpu"


def run(config, data=None, sink=None, threads=None, batch_size=None, quiet=True, on_batch=None,
        shard=None, stop_requested=None, backend="cpu", ignore_limits=False):
    """Run the trials of ``config`` into ``sink`` (a mcinit.store.Sink; a MemorySink when None).

    data            the fixed dataset (N, n_0) when config.data is a file (read when None)
    threads         numba threads (all cores when None); never changes a result
    batch_size      trials per batch (automatic when None); never changes a result
    quiet           no progress bar
    on_batch        optional callback(next trial index) after each batch is handed to the sink
    shard           (I, K): run only the contiguous share I of K of the trial indices
    stop_requested  optional callable; when it returns True after a batch, the run stops
                    there (everything written so far is complete) and raises Stopped
    backend         cpu | cuda | auto: where the kernel runs; a trial draws the same random
                    numbers on both (the GPU's fused multiply-adds change the last bits)
    ignore_limits   run even when the memory or the disk the run needs (mcinit.limits)
                    exceeds what the machine has; otherwise such a run is refused (a
                    LimitError) before the sink is opened, and an automatic batch size
                    is shrunk to fit
    A sink that resumes (HDF5Sink(resume=True)) continues where its file ends; the
    result is bit-identical to an uninterrupted run.  A sink's write must copy (or
    write out) the record arrays it is handed: the engine reuses them a few batches on.
    """
    from numba import get_num_threads

    config = resolve(config)
    if threads is not None:
        set_threads(threads, insist=ignore_limits)
    if batch_size is not None and batch_size < 1:
        raise ConfigError("batch size must be at least 1")
    T = config.trials
    if shard is not None:
        check_shard(T, shard)
    first_index, stop = shard_range(T, shard) if shard is not None else (0, T)
    sink = MemorySink() if sink is None else sink
    if not isinstance(sink, Sink):
        raise TypeError(f"sink must be a mcinit.store.Sink, not {type(sink).__name__}")
    if config.sup and not config.sup_certified:
        raise ConfigError("this run's supremum search is an earlier mcinit's (one-sided, no certified bounds): "
                          "its file reads, but it is not continued; start a new run with --sup-search")
    # what the run needs of the machine, before the sink creates anything
    if config.residual:
        from .kernels.residual import refuse
        refuse(config.arch, config.wn_grad, resolve_backend(backend))
    batch_size = limits.check_run(config, batch_size, get_num_threads(), resolve_backend(backend),
                                  output=sink.path, rows=stop - first_index, in_memory=sink.keeps_records,
                                  resume=sink.path is not None and sink.resume, insist=ignore_limits)
    if resolve_backend(backend) == "cuda":
        from .kernels import cuda

        def fill(plan, first, count, fwd, bwd, dead):
            cuda.fill(plan, first, count, fwd, bwd, dead, config.kernel)
            if not plan.backward:
                forward_deaths(fwd[:count], dead[:count])
    else:
        fill = kernels.get(config.kernel).fill
    plan = make_plan(config, data)
    if resolve_backend(backend) == "cuda":
        cuda.refuse_unbuilt(plan, config.kernel)      # before the sink creates anything
    L, N = config.depth, config.samples
    meta = dict(config=config.config_json(), config_hash=config.config_hash(), seed=config.seed,
                depth=L, trials=T, kernel=config.kernel, mcinit_version=__version__,
                first_index=first_index, rows=stop - first_index, sup=sup_of(config), samples=N,
                properties=config.properties,
                shard=f"{shard[0]}/{shard[1]}" if shard is not None else "",
                extra_attrs={DATA_PATH: config.data_path} if config.data_path else {})
    state = sink.open(meta)
    eps = np.array(REPORT_EPS)
    # only what the run computes is reduced, tallied and written (config.properties)
    quantities = QUANTITIES_OF[config.properties]
    failures = {k: np.zeros(len(eps), dtype=np.int64) for k in PROPS_OF[config.properties]}
    sup_tally = {"sup": np.zeros(len(eps), dtype=np.int64), "sup_possible": np.zeros(len(eps), dtype=np.int64),
                 "sup_exact": 0, "sup_pairs": 0} if config.sup else None

    def add_sup(records):
        from . import sphere
        for k, v in sphere.tally(records, eps).items():
            sup_tally[k] += v
    if state is None:
        first, summary = first_index, Summary(L, quantities)
    else:
        first, summary = state
        done = first - first_index
        try:
            for a in range(0, done, 1 << 20):   # the tallies of the part already written
                rec = sink.read_records(a, min(done, a + (1 << 20)))
                for k, v in failure_counts(rec, eps, "norm").items():
                    failures[k] += v
                if config.sup:
                    add_sup(rec)
        except BaseException:
            sink.close()
            raise
    writer = _Writer(sink)
    bar = progress_bar(stop - first_index, quiet=quiet)
    bar.update(first - first_index)
    t0 = time.perf_counter()
    start = first
    stopped = False
    # Sets of ratio arrays, reused from batch to batch (no page faults on fresh memory).
    # With more than one thread a batch goes through two background steps: its fill (the
    # kernel's work units on the shared pool), then its reduction, tally and hand-over to
    # the writer.  Fills run two at a time, so the next batch's work units queue up behind
    # this one's and no thread idles at a batch's tail; reductions run one at a time in
    # order (the summary's update order is the trial order).  Four sets: two being filled,
    # one waiting to be reduced, one being reduced, so that the pool's queue never runs dry.
    cap = min(batch_size, stop - first)
    ahead = get_num_threads() > 1 and resolve_backend(backend) == "cpu"
    # (the backward ratios of a run without them: a kernel that skips the backward pass never
    # touches that array, and its pages are never allocated)
    bufs = [(np.empty((cap, N, L)), np.empty((cap, N, L)), np.zeros(cap, dtype=np.bool_))
            for _ in range(4 if ahead else 1)]
    # the record arrays (unless the sink lends its own storage, MemorySink.buffers): a
    # batch's records are in the writer's queue (at most _Writer.QUEUE), being written (as
    # many again) or being filled (1) until the sink has them (every sink copies or writes
    # what it is handed); a batch takes the arrays of one the sink has had, new ones only
    # when there is none (as few as the sink's pace allows)
    ring = []   # [batch number, record arrays]
    nbatch = [0]

    def finish(first, B, fwd, bwd, dead):
        """Reduce, tally and hand over the batch of trials first..first+B-1."""
        out = sink.buffers(first, B, L)
        if out is None:
            slot = next((r for r in ring if r[0] < writer.written), None)
            if slot is None:
                slot = [0, record_buffers(cap, L, single=N == 1, quantities=quantities, input_stats=N > 1)]
                ring.append(slot)
            slot[0] = nbatch[0]
            out = slot[1]
        records, counts = reduce_and_tally(fwd, bwd, dead, summary, eps, "norm", out=out)
        nbatch[0] += 1
        if config.sup:
            records.update(_sup_extremes(plan, config, first, fwd, bwd, dead))
            add_sup(records)
        for k, v in counts.items():
            failures[k] += v
        writer.put(first, records, summary.copy())
        bar.update(B)
        if on_batch is not None:
            on_batch(first + B)

    fillers = ThreadPoolExecutor(2, thread_name_prefix="mcinit-fill") if ahead else None
    behind = ThreadPoolExecutor(1, thread_name_prefix="mcinit-reduce") if ahead else None
    inflight = collections.deque()     # the batches' reduction steps, in order

    failed = []     # a batch's step failed: no later batch is reduced or handed over

    def fill_then_finish(filled, first, B, fwd, bwd, dead):
        if failed:
            return
        try:
            filled.result()
            finish(first, B, fwd, bwd, dead)
        except BaseException:
            failed.append(first)
            raise

    k = 0
    startup = 0.0
    try:
        if first < stop and _warm_up(config, backend, plan, fill, first, bufs[0], eps):
            startup = time.perf_counter() - t0
        while first < stop and not failed:
            B = min(batch_size, stop - first)
            if len(inflight) == len(bufs):
                inflight.popleft().result()     # the batch that last used this set is reduced
            fwd, bwd, dead = (a[:B] for a in bufs[k % len(bufs)])
            k += 1
            dead[:] = False
            if fillers is None:
                fill(plan, first, B, fwd, bwd, dead)
                finish(first, B, fwd, bwd, dead)
            else:
                filled = fillers.submit(fill, plan, first, B, fwd, bwd, dead)
                inflight.append(behind.submit(fill_then_finish, filled, first, B, fwd, bwd, dead))
            first += B
            if stop_requested is not None and first < stop and stop_requested():
                stopped = True
                break
        while inflight:
            inflight.popleft().result()
        writer.finish()
    finally:
        for f in inflight:
            f.exception()     # let them finish; the error of the step that failed first wins
        for ex in (fillers, behind):
            if ex is not None:
                ex.shutdown()
        bar.close()
        writer.stop()
        sink.close()
        kernels.release(config.kernel)
    result = RunResult(config=config, summary=summary, elapsed=time.perf_counter() - t0, sink=sink,
                       eps=eps, failures=failures, computed=first - start, startup=startup, sup=sup_tally)
    if stopped:
        raise Stopped(first, result)
    return result
