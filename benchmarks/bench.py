#!/usr/bin/env python
"""mcinit benchmark suite: kernel throughput against a plain NumPy reference and the hardware floor.

    python benchmarks/bench.py                 # full run (a few minutes on 2 cores)
    python benchmarks/bench.py --quick         # short measurements (under a minute)
    python benchmarks/bench.py --cases C1,L1 --threads 1
    python benchmarks/bench.py --write         # also (re)write benchmarks/RESULTS.md

Everything is measured in one process, in one run: the NumPy reference
(numpy_reference.py), each mcinit kernel through the engine with an in-memory
sink (after a warm-up call that compiles or loads the numba cache), the
Gaussian generation rates of NumPy and of mcinit's Philox generator, and a
dgemm FLOP rate; the floors are derived from those rates.  See README.md for
what each column means.  Timings are reported, never asserted.
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# ------------------------------------------------------------------ cases


class Case:
    """A benchmark network: input_dim / width / depth, inputs per trial, kernels to time."""

    def __init__(self, name, input_dim, width, depth, samples, kernels, note):
        self.name = name
        self.input_dim = input_dim
        self.width = width
        self.depth = depth
        self.samples = samples
        self.kernels = kernels
        self.note = note
        self.classes = 20  # the default softmax head

    @property
    def widths(self):
        return (self.input_dim,) + (self.width,) * self.depth

    @property
    def shape_key(self):
        return (self.input_dim, self.width, self.depth, self.samples)

    def label(self):
        s = f"{self.input_dim}/{self.width}/{self.depth}"
        return s + (f", N={self.samples}" if self.samples > 1 else "")

    def weights_per_trial(self):
        """sum_l n_l n_(l-1): the hidden weights of one network."""
        w = self.widths
        return sum(w[l] * w[l - 1] for l in range(1, len(w)))

    def normals_per_trial(self):
        """Normal variates of one network: every hidden weight and the head."""
        return self.weights_per_trial() + self.classes * self.width

    def drawn_per_trial(self):
        """Normal variates the dense kernel transforms per trial, on average: every weight of
        W_1, and of W_2..W_L and the head only the columns of units some input activates
        (each unit is off for all N inputs with probability 2^-N)."""
        w = self.widths
        on = 1.0 - 0.5 ** self.samples
        return w[1] * w[0] + on * (sum(w[l] * w[l - 1] for l in range(2, len(w))) + self.classes * w[-1])

    def flops_per_trial(self):
        """Matrix-product FLOPs: 2 sum n_l n_(l-1) N, forward and backward."""
        return 2 * self.weights_per_trial() * self.samples * 2


CASES = {c.name: c for c in (
    Case("C1", 500, 100, 10, 1, ("dense", "projected", "law"),
         "the authors' setting (input 500, depth 10) at width 100"),
    Case("C2", 1024, 1024, 10, 1, ("dense", "projected", "law"),
         "wide: dense draws ~10.5M normals per trial"),
    Case("C3", 64, 256, 10, 64, ("dense", "projected"),
         "64 gaussian inputs per trial: matrix products dominate"),
    Case("L1", 1024, 1024, 10, 1, ("law",),
         "the law kernel, O(L) per trial (same network as C2)"),
)}

KERNEL_ORDER = ("dense", "projected", "law")

#: trials per engine.run call: the in-memory sink keeps ~330 bytes per trial (~350 MB);
#: a call's first batch is computed before any reduction overlaps it, and its last batch
#: is reduced after all computing: long calls are what a long run sees
ENGINE_CHUNK = 1 << 20
#: repetitions of the thread-scaling measurements taken with the thread counts in turn
SCALING_TURNS = 5
#: kernels also timed into an HDF5 file: the one whose trials are cheap enough for the
#: file's bytes to matter
FILE_KERNELS = ("law",)
#: bytes of the disk-rate measurement (about a 1M-trial results file of the law kernel)
DISK_BYTES = 192 << 20


# ------------------------------------------------------------------ arguments (before numpy is imported)

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="mcinit throughput vs a NumPy per-trial reference and the hardware floor.")
    p.add_argument("--quick", action="store_true",
                   help="short measurements (one ~0.3 s repetition each); numbers are rough")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated cases to run (default: all of {','.join(CASES)})")
    p.add_argument("--threads", type=int, default=None,
                   help="numba threads and BLAS threads (default: numba's default, all cores)")
    p.add_argument("--write", action="store_true",
                   help="(re)write benchmarks/RESULTS.md with this run's tables")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                   help="where --write writes (default: benchmarks/RESULTS.md)")
    p.add_argument("--cold", action="store_true",
                   help="compile the kernels from scratch (empty temporary numba cache), so the "
                        "compile column shows true compile times")
    p.add_argument("--no-scaling", action="store_true", help="skip the 1- vs 2-thread table")
    p.add_argument("--no-cli", action="store_true",
                   help="skip timing the whole `mcinit run --trials 1e6` command (cold and warm cache)")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the PyTorch column even when torch is installed (as if it were not)")
    args = p.parse_args(argv)
    names = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in CASES]
    if bad or not names:
        p.error(f"unknown case(s) {', '.join(bad) or '(none)'}; choose from {', '.join(CASES)}")
    args.cases = names
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def configure_environment(args):
    """Thread counts for BLAS and numba, and the numba cache, before they are imported."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or int(os.environ.get("NUMBA_NUM_THREADS", cores))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if args.threads is not None and int(os.environ.get("NUMBA_NUM_THREADS", cores)) < args.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # more threads than cores: the user asked
    cold_dir = None
    if args.cold:
        cold_dir = tempfile.mkdtemp(prefix="mcinit-bench-numba-")
        os.environ["NUMBA_CACHE_DIR"] = cold_dir
    return threads, cores, cold_dir


# ------------------------------------------------------------------ measurement helpers

class CpuMeter:
    """CPU time used by other processes (and stolen by the hypervisor) while we measure.

    From /proc/stat (all CPUs) minus this process's own CPU time, in cores
    (1.0 = one core fully busy on average).  Linux only; zeros elsewhere."""

    def __init__(self):
        self.t0, self.s0 = time.perf_counter(), self._sample()

    @staticmethod
    def _sample():
        own = sum(os.times()[:2])
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        v += [0] * (8 - len(v))
        clk = os.sysconf("SC_CLK_TCK")
        busy = (sum(v) - v[3] - v[4] - v[7]) / clk   # user nice system irq softirq
        return busy, v[7] / clk, own

    def stop(self):
        """(other processes' CPU, steal), in cores, since construction."""
        s1 = self._sample()
        wall = time.perf_counter() - self.t0
        if s1 is None or self.s0 is None or wall <= 0:
            return 0.0, 0.0
        busy, steal, own = (a - b for a, b in zip(s1, self.s0))
        return max(0.0, (busy - own) / wall), max(0.0, steal / wall)


class Measurement:
    """Best rate over repetitions (trials/s or items/s), the trial count of one repetition,
    and the CPU that other processes used meanwhile (cores); per repetition also the cores
    this process kept busy (its CPU time / wall time)."""

    def __init__(self, rates, n, other=0.0, steal=0.0, fn=None, busy=None):
        self.rates = rates
        self.n = n
        self.other = other
        self.steal = steal
        self.fn = fn
        self.busy = busy if busy is not None else []

    def repeat(self):
        """One more repetition of the timed function on the same n."""
        rate, busy = _timed_rate(self.fn, self.n)
        self.rates.append(rate)
        self.busy.append(busy)

    @property
    def rate(self):
        return max(self.rates)

    @property
    def spread(self):
        """(best - worst) / best over the repetitions."""
        return (max(self.rates) - min(self.rates)) / max(self.rates)


def _timed_rate(fn, n):
    """(n / fn(n), the cores this process kept busy meanwhile)."""
    c0 = sum(os.times()[:2])
    t = fn(n)
    c1 = sum(os.times()[:2])
    return n / t, (c1 - c0) / t


def measure(fn, per_rep, reps, n=1, multiple=1):
    """Time ``fn(n) -> seconds`` on n items, growing n until one call takes about
    ``per_rep`` seconds, then repeat; the best rate is kept (least disturbed)."""
    def up(k):
        return max(multiple, -(-int(k) // multiple) * multiple)

    n = up(n)
    rates = []
    busy = []
    meter = CpuMeter()
    while True:
        rate, b = _timed_rate(fn, n)
        t = n / rate
        if t >= 0.6 * per_rep:
            rates.append(rate)
            busy.append(b)
            break
        n = max(up(n * min(50.0, 1.1 * per_rep / max(t, 1e-6))), n + multiple)
    while len(rates) < reps:
        rate, b = _timed_rate(fn, n)
        rates.append(rate)
        busy.append(b)
    return Measurement(rates, n, *meter.stop(), fn=fn, busy=busy)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class BlasThreads:
    """Change OpenBLAS's thread count at run time (what threadpoolctl does), where possible.

    Looks for the OpenBLAS library NumPy loaded (from /proc/self/maps) and its
    ``*_set_num_threads`` entry point.  ``available`` is False elsewhere (MKL,
    Accelerate, no /proc): then only the start-up thread count is measured."""

    def __init__(self):
        import ctypes

        self._set = self._get = None
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
        except OSError:
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        getter.restype = ctypes.c_int
                        self._set, self._get = setter, getter
                        return

    @property
    def available(self):
        return self._set is not None

    def get(self):
        return int(self._get()) if self.available else None

    def set(self, n):
        if self.available:
            self._set(int(n))


# ------------------------------------------------------------------ the suite

class Suite:
    def __init__(self, args, threads, cores):
        import numba
        import numpy as np

        self.np = np
        self.numba = numba
        self.args = args
        self.threads = threads
        self.cores = cores
        self.quick = args.quick
        self.per_rep = 0.3 if args.quick else 1.0
        self.reps = 1 if args.quick else 5
        self.hw_time = 0.3 if args.quick else 1.0
        self.cache = {}
        self.compile = {}
        # results files and the disk-rate file (removed by close)
        self.scratch = tempfile.mkdtemp(prefix="mcinit-bench-files-")
        self.blas = BlasThreads()
        self.blas.set(threads)
        # thread counts the NumPy reference and dgemm are measured with
        self.blas_counts = [threads] + ([1] if threads > 1 and self.blas.available else [])
        if threads > numba.config.NUMBA_NUM_THREADS:
            sys.exit(f"--threads {threads} exceeds numba's maximum of {numba.config.NUMBA_NUM_THREADS} "
                     "(set NUMBA_NUM_THREADS)")
        numba.set_num_threads(threads)

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def close(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -------------------------------------------------------------- configuration

    def config(self, case, kernel, trials, seed=0):
        from mcinit import config
        cfg, _ = config.build(trials=trials, input_dim=case.input_dim, width=case.width,
                              depth=case.depth, samples=case.samples, data="gaussian",
                              init="he", dist="normal", head=f"softmax:{case.classes}",
                              kernel=kernel, seed=seed)
        return cfg

    # -------------------------------------------------------------- correctness check

    def check(self):
        """The dense kernel and the NumPy reference on identical numbers must agree to rounding."""
        np = self.np
        import numpy_reference as ref
        from mcinit.kernels import common, dense

        c1 = CASES["C1"]
        worst = 0.0
        for samples in (1, 3):
            case = Case("check", c1.input_dim, c1.width, c1.depth, samples, ("dense",), "")
            cfg = self.config(case, "dense", 2, seed=12345)
            plan = common.make_plan(cfg)
            L = case.depth
            fwd = np.empty((2, samples, L))
            bwd = np.empty((2, samples, L))
            dead = np.zeros(2, dtype=bool)
            dense.fill(plan, 0, 2, fwd, bwd, dead)
            for t in range(2):
                rho, gamma = ref.ratios(*ref.mcinit_draws(12345, t, case.widths, samples, case.classes))
                worst = max(worst, float(np.max(np.abs(rho / fwd[t] - 1))),
                            float(np.max(np.abs(gamma / bwd[t] - 1))))
        ok = worst < 1e-9
        self.check_result = (worst, ok)
        self.log(f"check: dense kernel vs NumPy reference on identical weights (C1 shape, 1 and 3 "
                 f"inputs): max relative difference {worst:.1e} {'ok' if ok else 'MISMATCH'}")

    # -------------------------------------------------------------- PyTorch (optional)

    def torch_module(self):
        """torch with its intra-op threads set to T, or None (``self.torch_status`` says why)."""
        if not hasattr(self, "torch_status"):
            self.torch = None
            if self.args.no_torch:
                self.torch_status = "skipped (--no-torch)"
            else:
                try:
                    import torch
                except ImportError:
                    self.torch_status = "not installed (`pip install torch`)"
                else:
                    torch.set_num_threads(self.threads)
                    self.torch = torch
                    self.torch_status = f"{torch.__version__}, {torch.get_num_threads()} intra-op threads"
        return self.torch

    def check_torch(self):
        """The batched PyTorch reference and the NumPy reference on identical numbers must agree
        to rounding (the same weights, inputs and targets as the dense kernel's check)."""
        self.torch_check_result = None
        if self.torch_module() is None:
            self.log(f"check: PyTorch reference {self.torch_status}")
            return
        np = self.np
        import numpy_reference as ref
        import torch_reference as tref

        c1 = CASES["C1"]
        widths = (c1.input_dim,) + (c1.width,) * c1.depth
        worst = 0.0
        for samples in (1, 3):
            trials = [ref.mcinit_draws(12345, t, widths, samples, c1.classes) for t in range(2)]
            rho, gamma = tref.ratios(*tref.from_numpy_trials(trials))
            for t, draws in enumerate(trials):
                r, g = ref.ratios(*draws)
                worst = max(worst, float(np.max(np.abs(rho[t].numpy() / r - 1))),
                            float(np.max(np.abs(gamma[t].numpy() / g - 1))))
        ok = worst < 1e-12
        self.torch_check_result = (worst, ok)
        self.log(f"check: PyTorch reference (batched, autograd, float64) vs NumPy reference on "
                 f"identical weights (C1 shape, 1 and 3 inputs): max relative difference {worst:.1e} "
                 f"{'ok' if ok else 'MISMATCH'}")

    def torch_rate(self, case):
        """Trials/s of the batched PyTorch reference (float64, autograd) on T intra-op threads,
        in batches of ``torch_reference.batch_size`` trials; None without torch."""
        if self.torch_module() is None:
            return None
        import torch_reference as tref
        B = tref.batch_size(case.widths, case.samples, case.classes)
        key = ("torch", case.shape_key, self.threads, B)
        if key not in self.cache:
            tref.run_trials((8, 8, 8), 1, 2, 2, 2)   # first call (autograd set-up) outside the timing

            def fn(n):
                return timed(lambda: tref.run_trials(case.widths, case.samples, case.classes, n, B))

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=B, multiple=B)
            self.log(f"  {case.name} torch (batch {B}, {self.threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    # -------------------------------------------------------------- hardware rates

    def hardware(self):
        np = self.np
        from concurrent.futures import ThreadPoolExecutor

        from mcinit import rng

        T = self.threads
        hw = {}
        size = 1 << 20
        # NumPy Generator.standard_normal into a preallocated array (ziggurat, PCG64)
        gen = np.random.default_rng(0)
        buf = np.empty(size)
        gen.standard_normal(out=buf)

        def np_fill(k):
            for _ in range(k):
                gen.standard_normal(out=buf)
            return 0

        m = measure(lambda k: timed(lambda: np_fill(k)), self.hw_time, self.reps)
        hw["numpy_gen_1"] = m.rate * size
        # mcinit's generator (Philox4x32-10 + inversion) through its public API
        rows = cols = 1024
        rng.normal_matrix(0, 0, 1, rng.STREAM_WEIGHTS, rows, cols)

        def mc_fill(k):
            for i in range(k):
                rng.normal_matrix(0, i, 1, rng.STREAM_WEIGHTS, rows, cols)

        m = measure(lambda k: timed(lambda: mc_fill(k)), self.hw_time, self.reps)
        hw["mcinit_gen_1"] = m.rate * rows * cols
        # the same generators on T threads at once
        if T > 1:
            gens = [np.random.default_rng(s) for s in range(T)]
            bufs = [np.empty(size) for _ in range(T)]

            def par_np(k):
                with ThreadPoolExecutor(T) as ex:
                    list(ex.map(lambda j: [gens[j].standard_normal(out=bufs[j]) for _ in range(k)],
                                range(T)))

            m = measure(lambda k: timed(lambda: par_np(k)), self.hw_time, self.reps)
            hw["numpy_gen_T"] = m.rate * size * T
            kern = _parallel_normals()
            out = np.empty((rows * T, cols))
            k0, k1 = rng.seed_key(0)
            kern(k0, k1, np.uint64(0), np.uint64(1), out)

            def par_mc(k):
                for i in range(k):
                    kern(k0, k1, np.uint64(i), np.uint64(1), out)

            m = measure(lambda k: timed(lambda: par_mc(k)), self.hw_time, self.reps)
            hw["mcinit_gen_T"] = m.rate * out.size
        else:
            hw["numpy_gen_T"] = hw["numpy_gen_1"]
            hw["mcinit_gen_T"] = hw["mcinit_gen_1"]
        # dgemm: numpy matmul of two 1024 x 1024 matrices (BLAS with T threads)
        n = 1024
        A = gen.standard_normal((n, n))
        B = gen.standard_normal((n, n))
        C = np.empty((n, n))
        np.matmul(A, B, out=C)

        def mm(k):
            for _ in range(k):
                np.matmul(A, B, out=C)

        for b in self.blas_counts:
            self.blas.set(b)
            m = measure(lambda k: timed(lambda: mm(k)), self.hw_time, self.reps)
            hw["dgemm_1" if b == 1 else "dgemm_T"] = m.rate * 2.0 * n ** 3
        self.blas.set(T)
        hw.setdefault("dgemm_T", hw.get("dgemm_1"))
        # the disk: a file of DISK_BYTES written in 1 MiB pieces, then fsync'ed (what a run's
        # records cost the machine at least, beyond the kernel)
        m = measure(lambda k: self._disk_write(k), self.hw_time, self.reps, n=DISK_BYTES, multiple=DISK_BYTES)
        hw["disk"] = m.rate
        # the floors use the best rate measured (a floor must not be lowered by contention)
        hw["dgemm"] = max(hw.get("dgemm_1", 0.0), hw["dgemm_T"])
        hw["numpy_gen"] = max(hw["numpy_gen_1"], hw["numpy_gen_T"])
        hw["mcinit_gen"] = max(hw["mcinit_gen_1"], hw["mcinit_gen_T"])
        hw["gen_best"] = max(hw["numpy_gen"], hw["mcinit_gen"])
        hw["gen_best_name"] = "numpy" if hw["numpy_gen"] >= hw["mcinit_gen"] else "mcinit"
        self.hw = hw
        self.log(f"hardware: numpy normals {hw['numpy_gen_1'] / 1e6:.0f} M/s/thread, "
                 f"mcinit normals {hw['mcinit_gen_1'] / 1e6:.0f} M/s/thread, "
                 f"dgemm {hw['dgemm'] / 1e9:.1f} GFLOP/s")

    def _disk_write(self, nbytes):
        """Seconds to write nbytes to a new file in the scratch directory and fsync it."""
        piece = self.np.frombuffer(os.urandom(1 << 20), dtype=self.np.uint8)
        path = os.path.join(self.scratch, "disk.bin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            t0 = time.perf_counter()
            for at in range(0, nbytes, len(piece)):
                os.pwrite(fd, piece[:min(len(piece), nbytes - at)], at)
            os.fsync(fd)
            return time.perf_counter() - t0
        finally:
            os.close(fd)
            os.remove(path)

    # -------------------------------------------------------------- the NumPy reference

    def numpy_rate(self, case, blas_threads):
        """Trials/s of the NumPy per-trial loop with BLAS on ``blas_threads`` threads."""
        key = ("numpy", case.shape_key, blas_threads)
        if key not in self.cache:
            import numpy_reference as ref

            def fn(n):
                return timed(lambda: ref.run_trials(case.widths, case.samples, case.classes, n))

            self.blas.set(blas_threads)
            try:
                self.cache[key] = measure(fn, self.per_rep, self.reps)
            finally:
                self.blas.set(self.threads)
            self.log(f"  {case.name} numpy (BLAS {blas_threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    # -------------------------------------------------------------- mcinit kernels

    def warm(self, kernel):
        """First call of a kernel (compile or numba-cache load) on a tiny network of the same types."""
        if kernel in self.compile:
            return
        from mcinit import engine, kernels
        if "engine" not in self.compile:
            from mcinit import stats
            np = self.np
            before = _cache_misses(stats, "_reduce")
            t = timed(lambda: stats.reduce_batch(np.ones((2, 1, 2)), np.ones((2, 1, 2)),
                                                 np.zeros(2, dtype=bool), stats.Summary(2)))
            self.compile["engine"] = (t, self._how(before, _cache_misses(stats, "_reduce")))
        mod = kernels.get(kernel)
        before = _cache_misses(mod, "_batch")
        tiny = Case("tiny", 8, 8, 2, 1, (kernel,), "")
        cfg = self.config(tiny, kernel, 2 * self.threads)
        t = timed(lambda: engine.run(cfg, threads=self.threads))
        self.compile[kernel] = (t, self._how(before, _cache_misses(mod, "_batch")))
        self.log(f"  first call of {kernel}: {t:.2f} s ({self.compile[kernel][1]})")

    def _how(self, before, after):
        if self.args.cold:
            return "compiled"
        if before is None or after is None:
            return "compile or cache load"
        return "compiled" if after > before else "cache load"

    def engine_rate(self, case, kernel, threads=None, batch_size=None, to_file=False):
        """Trials/s through mcinit.engine.run with an in-memory sink, or (to_file) into an HDF5
        file as `mcinit run` writes it (then also the file's bytes per trial; the file is
        removed after each call, outside the timing)."""
        threads = threads or self.threads
        key = ("file", case.shape_key, kernel) if to_file else \
            ("engine", case.shape_key, kernel, threads, batch_size)
        if key not in self.cache:
            from mcinit import engine
            from mcinit.store import HDF5Sink
            self.warm(kernel)
            path = os.path.join(self.scratch, "run.h5")
            size = {}

            def fn(n):
                t = 0.0
                done = 0
                while done < n:
                    m = min(ENGINE_CHUNK, n - done)
                    sink = HDF5Sink(path) if to_file else None
                    t0 = time.perf_counter()
                    engine.run(self.config(case, kernel, m), sink=sink, threads=threads,
                               batch_size=batch_size)
                    t += time.perf_counter() - t0
                    if to_file:
                        size[m] = os.path.getsize(path)
                        os.remove(path)
                    done += m
                return t

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=threads, multiple=threads)
            if to_file:
                self.cache[key].bytes_per_trial = size[max(size)] / max(size)
            extra = f", batch {batch_size}" if batch_size else ""
            where = " into an HDF5 file" if to_file else ""
            self.log(f"  {case.name} {kernel} ({threads} thr{extra}){where}: "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    def kernel_only_rate(self, case, kernel, threads=None):
        """Trials/s of kernel.fill alone, in the engine's default batches (no reduction, no sink)."""
        threads = threads or self.threads
        key = ("kernel", case.shape_key, kernel, threads)
        if key not in self.cache:
            np = self.np
            from mcinit import engine, kernels
            from mcinit.kernels.common import make_plan
            self.warm(kernel)
            self.numba.set_num_threads(threads)
            cfg = engine.resolve(self.config(case, kernel, 1 << 30))
            B = engine.default_batch_size(cfg, threads)
            plan = make_plan(cfg)
            mod = kernels.get(kernel)
            L, N = case.depth, case.samples
            fwd, bwd = np.empty((B, N, L)), np.empty((B, N, L))
            dead = np.zeros(B, dtype=bool)

            def fn(n):
                self.numba.set_num_threads(threads)
                t0 = time.perf_counter()
                first = 0
                while first < n:
                    b = min(B, n - first)
                    mod.fill(plan, first, b, fwd[:b], bwd[:b], dead[:b])
                    first += b
                t = time.perf_counter() - t0
                self.numba.set_num_threads(self.threads)
                return t

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=threads, multiple=threads)
            self.log(f"  {case.name} {kernel} kernel only ({threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    def default_batch(self, case, kernel):
        from mcinit import engine
        return engine.default_batch_size(engine.resolve(self.config(case, kernel, 1 << 30)))

    # -------------------------------------------------------------- run everything

    def run(self):
        self.start = datetime.datetime.now(datetime.timezone.utc)
        self.load_start = _loadavg()
        meter = CpuMeter()
        t0 = time.perf_counter()
        needed = {k for name in self.args.cases for k in CASES[name].kernels}
        for k in KERNEL_ORDER:
            if k in needed or k == "dense":
                self.warm(k)
        self.check()
        self.check_torch()
        self.hardware()
        self.rows = []
        for name in self.args.cases:
            case = CASES[name]
            self.log(f"{name}: {case.label()}")
            numpy_all = {b: self.numpy_rate(case, b) for b in self.blas_counts}
            best = max(numpy_all, key=lambda b: numpy_all[b].rate)
            row = dict(case=case, numpy=numpy_all[best], numpy_blas=best, numpy_all=numpy_all,
                       kernels={}, kernel_only={}, batch={}, batch_fix={}, file={})
            for k in case.kernels:
                row["kernels"][k] = self.engine_rate(case, k)
                row["kernel_only"][k] = self.kernel_only_rate(case, k)
                if k in FILE_KERNELS:
                    row["file"][k] = self.engine_rate(case, k, to_file=True)
                B = self.default_batch(case, k)
                row["batch"][k] = B
                if B < self.threads:
                    fixed = 4 * self.threads
                    row["batch_fix"][k] = (fixed, self.engine_rate(case, k, batch_size=fixed))
            self.rows.append(row)
        self.scaling = []
        if not self.args.no_scaling:
            case = CASES["C1"]
            counts = sorted({t for t in (1, 2, self.threads) if t <= self.numba.config.NUMBA_NUM_THREADS})
            if len(counts) > 1:
                self.log(f"thread scaling on C1: {counts}")
                self.scaling_turns = 2 if self.quick else SCALING_TURNS
                # where each measurement's turns begin in its rates: the 2-thread ones are the
                # throughput table's, which the second pass repeats once more after the turns
                self.turns_from = {}
                for k in case.kernels:
                    self.scaling.append((k, {t: self.engine_rate(case, k, threads=t) for t in counts},
                                         {t: self.kernel_only_rate(case, k, threads=t) for t in counts}))
                    # more repetitions, the thread counts in turn, so that each ratio compares
                    # rates from the same seconds of a machine whose speed drifts
                    _, d, dk = self.scaling[-1]
                    for m in list(d.values()) + list(dk.values()):
                        self.turns_from[id(m)] = len(m.rates)
                    for _ in range(self.scaling_turns):
                        for t in counts:
                            d[t].repeat()
                            dk[t].repeat()
                self.scaling_counts = counts
            self.numba.set_num_threads(self.threads)
        self.cli = [] if self.args.no_cli else self.cli_runs()
        if not self.quick:
            self.second_pass()
        # PyTorch last, so that its OpenMP threads cannot disturb the other measurements
        for row in self.rows:
            if self.torch_module() is not None:
                self.log(f"{row['case'].name}: torch")
            row["torch"] = self.torch_rate(row["case"])
        self.elapsed = time.perf_counter() - t0
        self.load_end = _loadavg()
        self.other, self.steal = meter.stop()

    def second_pass(self):
        """One more repetition of every number of the throughput table (NumPy references,
        engines, fills) and of the hardware rates, minutes after the first ones: a shared
        host's speed drifts over tens of seconds, and a slow phase that covers a whole
        measurement should not decide it.  Every column gets the same, and the best is kept."""
        self.log("second pass: one more repetition of every measurement")
        # (measurement, BLAS threads it is taken with), each once (rows share measurements);
        # the thread-scaling table's other thread counts too, so that its best rates have had
        # as many chances at every thread count
        todo = {}
        for row in self.rows:
            for b, m in row["numpy_all"].items():
                todo.setdefault(id(m), (m, b))
            for m in list(row["kernels"].values()) + list(row["kernel_only"].values()) + list(row["file"].values()):
                todo.setdefault(id(m), (m, self.threads))
        for _, d, dk in self.scaling:
            for m in list(d.values()) + list(dk.values()):
                todo.setdefault(id(m), (m, self.threads))
        for m, b in todo.values():
            self.blas.set(b)
            try:
                m.repeat()
            finally:
                self.blas.set(self.threads)
        first = self.hw
        self.hardware()
        for k, v in first.items():
            if isinstance(v, float) and isinstance(self.hw.get(k), float):
                self.hw[k] = max(v, self.hw[k])
        hw = self.hw
        hw["gen_best_name"] = "numpy" if hw["numpy_gen"] >= hw["mcinit_gen"] else "mcinit"

    def cli_runs(self):
        """The whole command a newcomer types, `mcinit run --trials 1e6` on the defaults (an
        HDF5 file, the summary printed), timed from the outside: first with an empty numba
        cache (everything compiles), then again on the cache it filled."""
        import re
        cache = tempfile.mkdtemp(prefix="mcinit-bench-cli-")
        out = []
        try:
            for how in ("cold (empty numba cache)", "warm (the cache just filled)"):
                path = os.path.join(cache, "run.h5")
                if os.path.exists(path):
                    os.remove(path)
                env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
                self.log(f"mcinit run --trials 1e6, {how}")
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "mcinit.cli", "run", "--trials", "1e6", "-o", path],
                                   env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t
                m = re.search(r"trials in ([0-9.]+) s \(([0-9,]+) trials/s\)", p.stdout)
                if p.returncode != 0 or m is None:
                    raise RuntimeError(f"mcinit run failed: {(p.stderr or p.stdout).strip()[-300:]}")
                out.append((how, wall, float(m.group(1)), float(m.group(2).replace(",", "")),
                            os.path.getsize(path)))
                self.log(f"  {wall:.1f} s in all; the run itself {m.group(1)} s")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        return out

    # -------------------------------------------------------------- report

    def report(self):
        np = self.np
        hw = self.hw
        T = self.threads
        out = []
        w = out.append
        mode = "QUICK (--quick: one short repetition per number; rough)" if self.quick else \
            f"full (best of {self.reps} repetitions of ~{self.per_rep:g} s, and one more minutes later)"
        w("# mcinit benchmark results\n")
        if self.quick:
            w("> **This is a `--quick` run**: every number is one ~0.3 s measurement on a possibly "
              "busy machine, good to a few tens of percent. Rerun `python benchmarks/bench.py "
              "--write` on a quiet machine for numbers to quote.\n")
        w("## Machine and run\n")
        info = machine_info(self.numba, np)
        info["threads (numba and BLAS)"] = str(T)
        info["numba threading layer"] = _threading_layer(self.numba)
        info["PyTorch (torch column)"] = getattr(self, "torch_status", "not measured")
        info["date (UTC)"] = self.start.strftime("%Y-%m-%d %H:%M")
        info["mode"] = mode
        info["command"] = "python benchmarks/bench.py " + " ".join(sys.argv[1:])
        info["load average (start / end)"] = f"{self.load_start} / {self.load_end}"
        info["wall time of the run"] = f"{self.elapsed:.0f} s"
        info["CPU used by other processes during the run"] = (
            f"{self.other:.2f} cores on average (hypervisor steal {self.steal:.2f})")
        for k, v in info.items():
            w(f"- {k}: {v}")
        if self.other > 0.25 or self.steal > 0.25:
            w(f"- **WARNING: the machine was busy** (other processes used {self.other:.2f} of "
              f"{self.cores} cores on average): multi-thread numbers and the NumPy reference with "
              "threaded BLAS are the most affected; see the last column of the measurement details.")
        worst, ok = self.check_result
        w(f"- correctness check: dense kernel vs NumPy reference on identical weights, "
          f"max relative difference {worst:.1e} ({'ok' if ok else '**MISMATCH**'})")
        if getattr(self, "torch_check_result", None):
            tworst, tok = self.torch_check_result
            w(f"- correctness check: PyTorch reference (batched, autograd, float64) vs NumPy reference "
              f"on identical weights, max relative difference {tworst:.1e} "
              f"({'ok' if tok else '**MISMATCH**'})")
        else:
            w(f"- correctness check: PyTorch reference {getattr(self, 'torch_status', 'not measured')}")
        w("")

        w(f"## Throughput (trials/s, {T} thread{'s' if T > 1 else ''}; ×: speed-up over the NumPy reference)\n")
        hdr = ["case", "network (in/width/depth)", "numpy ref", "torch (batched, autograd)",
               "mcinit dense", "mcinit projected", "mcinit law", "gen floor", "dense / gen floor",
               "drawn floor", "dense / drawn floor", "FLOP floor", "dense / FLOP floor"]
        rows = []
        for r in self.rows:
            c = r["case"]
            base = r["numpy"].rate
            cells = [c.name, c.label(), fmt_rate(base)]
            tm = r.get("torch")
            cells.append(f"{fmt_rate(tm.rate)} (×{fmt_ratio(tm.rate / base)})" if tm else
                         ("–" if getattr(self, "torch", None) is not None else
                          "not installed" if "not installed" in getattr(self, "torch_status", "")
                          else "skipped"))
            for k in KERNEL_ORDER:
                if k in r["kernels"]:
                    x = r["kernels"][k].rate
                    cells.append(f"{fmt_rate(x)} (×{fmt_ratio(x / base)})")
                else:
                    cells.append("–")
            gen_floor = hw["gen_best"] / c.normals_per_trial()
            flop_floor = hw["dgemm"] / c.flops_per_trial()
            cells.append(fmt_rate(gen_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / gen_floor) if "dense" in r["kernels"] else "–")
            drawn_floor = hw["gen_best"] / c.drawn_per_trial()
            cells.append(fmt_rate(drawn_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / drawn_floor) if "dense" in r["kernels"] else "–")
            cells.append(fmt_rate(flop_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / flop_floor) if "dense" in r["kernels"] else "–")
            rows.append(cells)
        w(md_table(hdr, rows))
        w("")
        if getattr(self, "torch", None) is not None:
            w(f"torch = `torch_reference.py`: PyTorch {self.torch.__version__} on the CPU, float64, "
              f"{self.threads} intra-op thread{'s' if self.threads > 1 else ''}, a batch of B "
              "networks at once (`torch.randn` weights, `torch.bmm` and `relu`, the backward pass by "
              "autograd; B under the measurement details), measured after everything else.\n")
        else:
            w(f"torch: not measured: PyTorch {getattr(self, 'torch_status', 'not checked')}.\n")
        numpy_note = ""
        if len(self.blas_counts) > 1:
            numpy_note = (f"numpy ref = the faster of the NumPy loop with BLAS on {T} threads and on "
                          "1 thread (both are listed below). ")
        w(numpy_note +
          f"gen floor = the fastest normal-variate rate measured ({hw['gen_best_name']}, "
          f"{hw['gen_best'] / 1e6:,.0f} M/s, best of 1 and {T} threads) / the normals of one network "
          "(every hidden weight and the head): no implementation that draws the whole network, as the "
          "NumPy and PyTorch references do, can beat it. drawn floor = the same rate / the normals the "
          "dense kernel actually transforms (W_1 whole; of W_2..W_L and the head only the columns of "
          "units some input activates, about half for one input): the strict floor of the dense "
          "kernel, which exceeds the gen floor by skipping weights that meet only zeros. FLOP floor = best measured dgemm "
          f"rate ({hw['dgemm'] / 1e9:.1f} GFLOP/s) / (2 sum n_l n_(l-1) N × 2, forward and "
          "backward); it binds where matrix products dominate (C3). The projected and law kernels "
          "do not draw every weight, so neither floor applies to them.\n")

        from mcinit import engine
        autos = []
        for r in self.rows:
            c = r["case"]
            if c.name == "L1":
                continue
            picked = engine.resolve(self.config(c, "auto", 1)).kernel
            ks = r["kernels"]
            txt = f"{c.name} → {picked}"
            if picked in ks:
                best = max(ks, key=lambda k: ks[k].rate)
                if best != picked:
                    txt += (f" (**{best} measured ×{fmt_ratio(ks[best].rate / ks[picked].rate)} "
                            f"faster here**)")
            autos.append(txt)
        if autos:
            w("`--kernel auto` resolves to: " + "; ".join(autos) + ".\n")

        if len(self.blas_counts) > 1:
            w("## NumPy reference and BLAS threads (trials/s)\n")
            nrows = []
            for r in self.rows:
                c = r["case"]
                a = r["numpy_all"]
                nrows.append([c.name] + [fmt_rate(a[b].rate) for b in self.blas_counts]
                             + [f"{r['numpy_blas']} thread{'s' if r['numpy_blas'] > 1 else ''}"])
            w(md_table(["case"] + [f"BLAS {b} thread{'s' if b > 1 else ''}" for b in self.blas_counts]
                       + ["used as numpy ref"], nrows))
            w("\nA per-trial loop of small matrix products often runs slower on threaded BLAS, "
              "and much slower when another process holds a core (BLAS threads wait for each "
              "other).\n")

        w("## Hardware rates measured in this run\n")
        hrows = [
            ["numpy Generator.standard_normal(out=) (PCG64, ziggurat)", f"{hw['numpy_gen_1'] / 1e6:,.0f} M normals/s",
             f"{hw['numpy_gen_T'] / 1e6:,.0f} M normals/s"],
            ["mcinit.rng (Philox4x32-10 + inversion), normal_matrix 1024×1024",
             f"{hw['mcinit_gen_1'] / 1e6:,.0f} M normals/s", f"{hw['mcinit_gen_T'] / 1e6:,.0f} M normals/s"],
            ["numpy matmul 1024×1024 (dgemm)",
             f"{hw['dgemm_1'] / 1e9:.1f} GFLOP/s" if "dgemm_1" in hw else "–",
             f"{hw['dgemm_T'] / 1e9:.1f} GFLOP/s"],
        ]
        if T == 1:
            hrows = [[r[0], r[2]] for r in hrows]
        w(md_table(["rate", "1 thread"] + ([f"{T} threads"] if T > 1 else []), hrows))
        w(f"\nmcinit generator / numpy generator: ×{fmt_ratio(hw['mcinit_gen_1'] / hw['numpy_gen_1'])} "
          "per thread. The mcinit rates are `rng.normal_matrix`'s path (blocks of rows through `fill_normal_block_cols`); the T-thread rate runs it in a numba prange.\n")

        w("## Floors in detail\n")
        frows = []
        for r in self.rows:
            c = r["case"]
            gf_np = hw["numpy_gen"] / c.normals_per_trial()
            gf_mc = hw["mcinit_gen"] / c.normals_per_trial()
            ff = hw["dgemm"] / c.flops_per_trial()
            d = r["kernels"].get("dense")
            df_mc = hw["mcinit_gen"] / c.drawn_per_trial()
            frows.append([c.name, f"{c.normals_per_trial():,}", f"{c.drawn_per_trial():,.0f}",
                          fmt_rate(gf_np), fmt_rate(gf_mc), fmt_pct(d.rate / gf_mc) if d else "–",
                          fmt_pct(d.rate / df_mc) if d else "–",
                          f"{c.flops_per_trial() / 1e6:,.1f} M", fmt_rate(ff),
                          fmt_pct(r["numpy"].rate / ff)])
        w(md_table(["case", "normals / network", "normals drawn by dense", "floor (numpy gen)",
                    "floor (mcinit gen)", "dense / floor (mcinit gen)", "dense / drawn floor (mcinit gen)",
                    "FLOPs / trial", "FLOP floor", "numpy / FLOP floor"],
                   frows))
        w("\n`dense / drawn floor (mcinit gen)` near 100% means the dense kernel's time is its own "
          "generator on the normals it draws; well below means time goes elsewhere (finding the "
          "active units, the products, the backward pass) or threads idle.\n")

        w("## Where the time goes: engine overhead and batch size\n")
        erows = []
        for r in self.rows:
            c = r["case"]
            for k in KERNEL_ORDER:
                if k not in r["kernels"]:
                    continue
                e = r["kernels"][k].rate
                ko = r["kernel_only"][k].rate
                fix = r["batch_fix"].get(k)
                fm = r["file"].get(k)
                file_floor = hw["disk"] / fm.bytes_per_trial if fm else None
                erows.append([c.name, k, fmt_rate(e), fmt_rate(ko), fmt_pct(max(0.0, 1 - e / ko)),
                              str(r["batch"][k]),
                              f"{fmt_rate(fix[1].rate)} (batch {fix[0]}, ×{fmt_ratio(fix[1].rate / e)})"
                              if fix else "–",
                              f"{fmt_rate(fm.rate)} ({fmt_pct(fm.rate / e)})" if fm else "–",
                              f"{fmt_rate(file_floor)} ({fm.bytes_per_trial:.0f} B/trial)" if fm else "–"])
        w(md_table(["case", "kernel", "engine", "kernel.fill only", "engine share of time",
                    "default batch", "engine, batch ≥ threads", "engine into an HDF5 file (of engine)",
                    "disk floor"], erows))
        w("\nengine = `mcinit.engine.run` (reduction, failure counts, in-memory sink, background "
          "writer; with more than one thread a batch is reduced while the next ones are computed; calls "
          f"of up to {ENGINE_CHUNK:,} trials); kernel.fill only = the kernel's `fill` on preallocated arrays in the engine's "
          "default batches. Where the default batch is smaller than the thread count, a batch "
          "runs on fewer threads than available; `engine, batch ≥ threads` reruns with `batch_size` = 4 × "
          "threads. engine into an HDF5 file = the same into a results file, as `mcinit run` "
          "writes it (records staged in place, commits fsync'ed on their own thread); disk floor = "
          f"the disk's rate ({hw['disk'] / 1e6:,.0f} MB/s: {DISK_BYTES >> 20} MiB written and "
          "fsync'ed, best of the repetitions) / the file's bytes per trial: no run that keeps "
          "every trial's records on this disk can beat it.\n")

        if self.scaling:
            counts = self.scaling_counts
            w("## Thread scaling on C1 (trials/s)\n")
            srows = []
            for k, d, dk in self.scaling:
                cells = [k]
                for m in (d, dk):
                    lo, hi = m[counts[0]], m[counts[-1]]
                    cells += [fmt_rate(m[t].rate) for t in counts]
                    cells.append(f"×{fmt_ratio(hi.rate / lo.rate)}")
                    turns = [x.rates[self.turns_from[id(x)]:][:self.scaling_turns] for x in (lo, hi)]
                    cells.append(f"×{fmt_ratio(median([b / a for a, b in zip(*turns)]))}")
                    f = self.turns_from[id(hi)]
                    cells.append(f"{median(hi.busy[f:f + self.scaling_turns]):.2f}")
                srows.append(cells)
            names = [f"{t} thread{'s' if t > 1 else ''}" for t in counts]
            top = f"{counts[-1]} vs {counts[0]}"
            head = ["kernel"]
            for what in ("engine", "fill only"):
                head += [f"{what}, {n}" for n in names] + [f"{what} {top}, best", f"{what} {top}, pairs",
                                                            f"{what}: cores busy, {names[-1]}"]
            w(md_table(head, srows))
            w("\nengine as above (with one thread the background writer still has the other core); "
              "fill only = the kernel's `fill` alone, in the engine's default batches for that "
              f"thread count. The repetitions of the throughput table, then {self.scaling_turns} more of each, "
              "the thread counts taken in turn. best = the ratio of the best rates; pairs = the "
              "median ratio of the rates measured one after the other (a host whose speed drifts "
              "within seconds, as shared virtual machines do, disturbs the best two-thread rate "
              "more than the best one-thread rate: it needs both cores quiet at once); cores busy "
              f"= this process's CPU time / wall time with {names[-1]} (median): how fully the code "
              "keeps the threads at work, which the host's speed does not change.\n")

        if self.cli:
            w("## `mcinit run --trials 1e6` (the defaults: law kernel, HDF5 file, summary printed)\n")
            w(md_table(["numba cache", "whole command", "the run itself", "trials/s of the run", "file"],
                       [[how, f"{wall:.1f} s", f"{run:.1f} s", fmt_rate(rate), f"{size / 1e6:.0f} MB"]
                        for how, wall, run, rate, size in self.cli]))
            w("\nwhole command = wall time of the process, from the outside (Python start, imports, "
              "compilation or cache load, the run, the exact laws for the summary); the run itself = "
              "what the command reports (trials computed, reduced and committed to the file).\n")

        w("## First call (compile or numba cache load)\n")
        crows = []
        for k, (t, how) in self.compile.items():
            crows.append(["engine reduction (stats)" if k == "engine" else k, f"{t:.2f} s", how])
        w(md_table(["what", "first call", "how"], crows))
        w("\nKernels are warmed up on a tiny network of the same argument types before timing, so "
          "no throughput above includes compilation. `--cold` compiles into an empty temporary "
          "cache to show true compile times.\n")

        w("## Measurement details\n")
        drows = []
        for key, m in self.cache.items():
            if key[0] == "numpy":
                what = f"numpy {key[1]} BLAS {key[2]} thr"
            elif key[0] == "torch":
                what = f"torch float64 autograd {key[1]} {key[2]} thr batch {key[3]}"
            elif key[0] == "kernel":
                what = f"{key[2]} fill-only {key[1]} {key[3]} thr"
            elif key[0] == "file":
                what = f"{key[2]} engine into an HDF5 file {key[1]} {self.threads} thr"
            else:
                what = f"{key[2]} engine {key[1]} {key[3]} thr" + (f" batch {key[4]}" if key[4] else "")
            drows.append([what, f"{m.n:,}", str(len(m.rates)), fmt_rate(m.rate),
                          fmt_pct(m.spread) if len(m.rates) > 1 else "–", f"{m.other:.2f}"])
        w(md_table(["measurement (in, width, depth, N)", "trials / repetition", "repetitions",
                    "best trials/s", "spread (best-worst)/best", "others' CPU (cores)"], drows))
        w("")
        return "\n".join(out)


def _cache_misses(module, name):
    """numba cache misses of a module's dispatcher (None if it is not a cached dispatcher)."""
    try:
        return sum(getattr(module, name).stats.cache_misses.values())
    except Exception:
        return None


def _parallel_normals():
    """A numba prange loop over blocks of rows of mcinit's own normal generator (for the T-thread rate)."""
    import numpy as np
    from numba import njit, prange

    from mcinit import rng

    @njit(parallel=True, nogil=True, cache=True)
    def fill(k0, k1, c2, c3, out):
        rows, cols = out.shape
        step = rng.block_rows(cols)
        idx = np.arange(cols)
        flat = out.ravel()
        for b in prange((rows + step - 1) // step):
            r0 = b * step
            nr = min(step, rows - r0)
            rng.fill_normal_block_cols(k0, k1, c2, c3, r0, nr, 1.0, idx, cols,
                                       flat[r0 * cols:(r0 + nr) * cols], rng.block_workspace(cols))

    return fill


# ------------------------------------------------------------------ formatting and machine

def fmt_rate(x):
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e4:
        return f"{x / 1e3:.3g}k"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_ratio(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_pct(x):
    return f"{100 * x:.0f}%" if x >= 0.1 else f"{100 * x:.1f}%"


def md_table(header, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _threading_layer(numba):
    try:
        return numba.threading_layer()
    except Exception:
        return "n/a"


def machine_info(numba, np):
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name')} {deps.get('version')}"
    except Exception:
        pass
    try:
        import mcinit
        mc = mcinit.__version__
    except Exception:
        mc = "?"
    commit = "n/a"
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip() or "n/a"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if dirty:
            commit += " (uncommitted changes)"
    except Exception:
        pass
    return {
        "CPU": model,
        "cores available": f"{cores} (os.cpu_count() = {os.cpu_count()})",
        "Python": platform.python_version(),
        "numpy": f"{np.__version__} (BLAS: {blas})",
        "numba": numba.__version__,
        "mcinit": f"{mc}, commit {commit}",
    }


# ------------------------------------------------------------------ main

def main(argv=None):
    args = parse_args(argv)
    threads, cores, cold_dir = configure_environment(args)
    sys.path.insert(0, HERE)
    suite = None
    try:
        suite = Suite(args, threads, cores)
        suite.run()
        text = suite.report()
    finally:
        if suite is not None:
            suite.close()
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)
    print(text)
    if args.write:
        with open(args.output, "w") as f:
            f.write(text + "\n")
        print(f"\nwrote {os.path.relpath(args.output)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
