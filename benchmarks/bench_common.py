"""The benchmark's cases and measurement helpers, shared by bench.py and its parts.

Imports only the standard library at module level: bench.py sets the thread
counts and the numba cache before numpy or numba is imported.
"""

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# ------------------------------------------------------------------ cases


class Case:
    """A benchmark network: input_dim / width / depth, inputs per trial, kernels to time.

    fixed      the inputs are a fixed dataset (N Gaussian rows in a .npy file, the same in
               every network; bench.Suite writes it) instead of N(0, I) inputs drawn per
               trial.  Such a case (P500..P4000: many inputs per network) is measured in the
               precisions and properties of SETTINGS, through `--kernel auto` and the blocked
               kernel, instead of through ``kernels``
    networks   networks of one repetition, fixed (one repetition; the per-trial NumPy loop
               runs one network): for a network of tens of seconds; None: the count grows
               to about a second per repetition, as for every other case
    full_only  left out of a --quick run unless named in --cases
    """

    def __init__(self, name, input_dim, width, depth, samples, kernels, note, fixed=False,
                 networks=None, full_only=False):
        self.name = name
        self.input_dim = input_dim
        self.width = width
        self.depth = depth
        self.samples = samples
        self.kernels = kernels
        self.note = note
        self.fixed = fixed
        self.networks = networks
        self.full_only = full_only
        self.classes = 20  # the default softmax head

    @property
    def widths(self):
        return (self.input_dim,) + (self.width,) * self.depth

    @property
    def shape_key(self):
        key = (self.input_dim, self.width, self.depth, self.samples)
        return key + ("fixed",) if self.fixed else key

    def label(self):
        s = f"{self.input_dim}/{self.width}/{self.depth}"
        return s + (f", N={self.samples}" + (" fixed" if self.fixed else "") if self.samples > 1 else "")

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

    def flops_per_trial(self, properties="both"):
        """Matrix-product FLOPs of the hidden layers: 2 sum n_l n_(l-1) N for the forward
        products W h, as many again for the backward products W^T delta (properties
        "both"; "forward": the forward ones only)."""
        forward = 2 * self.weights_per_trial() * self.samples
        return forward if properties == "forward" else 2 * forward


CASES = {c.name: c for c in (
    Case("C1", 500, 100, 10, 1, ("dense", "projected", "law"),
         "the authors' setting (input 500, depth 10) at width 100"),
    Case("C2", 1024, 1024, 10, 1, ("dense", "projected", "law"),
         "wide: dense draws ~10.5M normals per trial"),
    Case("C3", 64, 256, 10, 64, ("dense", "blocked", "projected"),
         "64 gaussian inputs per trial: matrix products dominate"),
    Case("L1", 1024, 1024, 10, 1, ("law",),
         "the law kernel, O(L) per trial (same network as C2)"),
    Case("P500", 500, 500, 10, 2000, (), "the paper's regime: 2000 fixed inputs, width 500",
         fixed=True),
    Case("P1000", 500, 1000, 10, 2000, (), "the paper's regime: 2000 fixed inputs, width 1000",
         fixed=True),
    Case("P4000", 500, 4000, 10, 2000, (), "the paper's regime at width 4000: ~1.2e12 FLOP a network",
         fixed=True, networks=2, full_only=True),
)}

KERNEL_ORDER = ("dense", "blocked", "projected", "law")

#: the (precision, properties) settings the many-input (fixed) cases are measured in,
#: through `--kernel auto` and the blocked kernel; the first is the baseline of the
#: forward / both ratio
SETTINGS = (("float64", "both"), ("float32", "both"), ("float64", "forward"))
#: the many-input case whose BLAS thread choice is measured (trials in parallel on one
#: BLAS thread each, against one trial at a time on threaded BLAS)
BLAS_CHOICE_CASE = "P500"
#: a fixed (many-input) case's repetitions last this many times the run's usual length
FIXED_REP_FACTOR = 4
#: the fixed inputs of the many-input cases: N(0, I) rows from this seed, in a .npy file
FIXED_INPUTS_SEED = 20260500

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


def write_fixed_inputs(directory, samples, input_dim):
    """Write N = samples Gaussian inputs of dimension input_dim (one per row, N(0, I),
    from FIXED_INPUTS_SEED) to a .npy file in directory; returns its path."""
    import numpy as np

    path = os.path.join(directory, f"inputs-{samples}x{input_dim}.npy")
    if not os.path.exists(path):
        X = np.random.default_rng(FIXED_INPUTS_SEED).standard_normal((samples, input_dim))
        np.save(path, X)
    return path


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


def loadavg():
    """The 1, 5 and 15 minute load averages ('n/a' where the system does not say)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"
