"""The CUDA backend: the dense, projected, law and blocked kernels on an NVIDIA GPU.

    fill(plan, first, count, fwd, bwd, dead, kernel)      kernel: "dense" | "projected" | "law" | "blocked"
    fill_async(plan, first, count, kernel) -> Pending     .ready(), .wait(fwd, bwd, dead)
                                                          (dense, projected, law)

compute trials first..first+count-1 exactly as the CPU kernels of the same name
do (common.py's docstring: rho, gamma, +inf gamma and the dead flag of a dead
trial), and draw the same random numbers: a trial agrees with the CPU trial by
trial, to the rounding of sums taken in another order (and of fused
multiply-adds, and libdevice's log/exp against the C library's, a few ulps).

Package: NVIDIA's numba-cuda (``pip install mcinit[cuda]``), which takes over
``numba.cuda`` when installed.  numba 0.68's own, deprecated ``numba.cuda`` runs
the simulator, but cannot compile these kernels without a GPU (it fails on
``min()``).  Without a GPU, the CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before
numba is imported) runs this module in Python, and ``compile_ptx_all`` compiles
every kernel to PTX for a given compute capability.

The generator is not written twice (cuda_rng.py): the kernels call mcinit.rng's
functions (Philox4x32-10, the counter layout, the inversions, the gamma
sampler), the CPU kernels' own ``head_error``, ``write_ratios``,
``projected.input_factor`` and ``law.law_trial``, all compiled for the GPU from
the same Python source.

Launch geometry
- dense: one thread block per trial (32 to 128 threads, by width), a
  grid-stride loop over the batch, one workspace in global memory per resident
  block (the kernels are compiled for 128 threads x 4 blocks per SM, so at most
  128 registers a thread).
  Weights are never stored: forward, thread i computes row i of W_l from its
  Philox counters a chunk of columns at a time into shared memory and applies it
  to every input (the Philox call is skipped for the columns no input activates,
  a test that is uniform across the block); backward, thread b regenerates the
  column block 4b..4b+3 of W_l for the rows whose delta is non-zero and
  accumulates W_l^T delta.  Weight-normalised rows keep their scale g/||v||
  from the forward pass.  Every norm is a block reduction (fixed order: the
  same result on every run).
- projected: one thread block per trial; the small matrices (R, Q, G, Y) of a
  trial live in its workspace, the thin QR is the CPU's modified Gram-Schmidt
  with re-orthogonalisation, each dot product a block reduction.
- law: one thread per trial running ``law.law_trial``; scratch per thread in
  global memory, laid out so that a warp's accesses coalesce.
- blocked: the CPU's blocked trial (kernels.blocked.blocked_trial) on device
  arrays, trials one after another: weights and reductions by small kernels,
  products by cuBLAS through CuPy (blocked.py says what runs where).
Only the ratios come back: fwd, bwd (count, N, L) and dead.

Modules: device (launch settings, the shared helpers on the GPU, block
reductions), dense, projected and law (one kernel each), blocked (its device
operations and fill); this one is the host side: geometry, workspaces, launches
and compile_ptx_all.
"""

import contextlib
import os
import threading
import weakref

import numpy as np
from numba import cuda

from ...activations import ACT_RELU
from ...initializers import DIST_NORMAL, DIST_ORTHOGONAL
from .. import common
from .. import law as cpu_law
from .. import projected as cpu_projected
from ..common import DATA_FIXED
from . import blocked
from .dense import dense_kernel
from .device import LAUNCH_BOUNDS, PACKAGE, RBMAX, SIM, SW
from .law import law_kernel, normals_kernel
from .projected import projected_kernel

__all__ = ["available", "simulator", "fill", "fill_async", "Pending", "compile_ptx_all",
           "KERNELS", "describe_device", "refuse_unbuilt"]

KERNELS = ("dense", "projected", "law", "blocked")

#: threads per block of the block-per-trial kernels: None = by width (see _block_size);
#: the simulator runs one Python thread per CUDA thread, so it gets small blocks
TPB = 32 if SIM else None
LAW_TPB = 32 if SIM else 128
#: resident blocks of 128 threads per SM (as LAUNCH_BOUNDS: 128 registers a thread)
BLOCKS_PER_SM = 4


def simulator():
    """Whether numba runs CUDA kernels in its simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return SIM


def available():
    """Whether a real CUDA GPU can run the kernels (False under the simulator)."""
    if SIM:
        return False
    try:
        return bool(cuda.is_available()) and len(cuda.gpus) > 0
    except Exception:
        return False


def describe_device():
    """One line naming the device the kernels run on."""
    if SIM:
        return "numba CUDA simulator (no GPU)"
    if not available():
        return "no CUDA GPU"
    d = cuda.get_current_device()
    name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
    cc = d.compute_capability
    free, total = cuda.current_context().get_memory_info()
    return (f"{name}, compute capability {cc[0]}.{cc[1]}, {d.MULTIPROCESSOR_COUNT} SMs, "
            f"{total / 2 ** 30:.1f} GiB")


# ----------------------------------------------------------------- host side

class _Dims:
    """The shape of a plan's trials, as the kernels need it."""

    def __init__(self, plan):
        w = np.asarray(plan.widths, dtype=np.int64)
        self.widths = w
        self.L = len(w) - 1
        self.N = int(plan.samples)
        self.K = int(plan.classes)
        self.nmax = int(max(int(w.max()), self.K))
        self.hoff = np.concatenate([[0], np.cumsum(w)]).astype(np.int64)
        self.htot = int(self.hoff[-1])
        self.rq = min(self.N, self.nmax)


def _workspace_shapes(kernel, d, slots):
    """name -> (shape, dtype) of a kernel's per-slot scratch (slots = blocks, or threads for law)."""
    N, L, K, nmax, htot, rq = d.N, d.L, d.K, d.nmax, d.htot, d.rq
    f8, u1, i8 = np.float64, np.uint8, np.int64
    if kernel == "dense":
        return dict(H=((slots, N, htot), f8), D=((slots, 2, N, nmax), f8),
                    Z=((slots, N, K), f8), E=((slots, N, K), f8), act=((slots, htot), u1),
                    ract=((slots, 2, nmax), u1), rsc=((slots, htot), f8),
                    hn2=((slots, N, L + 1), f8), dn2=((slots, N, L + 1), f8))
    if kernel == "projected":
        return dict(H=((slots, N, htot), f8), Q=((slots, L + 1, rq, nmax), f8),
                    R=((slots, L + 1, rq, N), f8), G=((slots, L + 1, rq, nmax), f8),
                    Go=((slots, rq, K), f8), D=((slots, 2, N, nmax), f8),
                    E=((slots, N, K), f8), Z=((slots, N, K), f8), Qs=((slots, rq, nmax), f8),
                    Rs=((slots, rq, N), f8), Y=((slots, rq, nmax), f8), V=((slots, nmax), f8),
                    need=((slots, nmax), u1), rank=((slots, L + 1), i8),
                    hn2=((slots, N, L + 1), f8), dn2=((slots, N, L + 1), f8))
    return dict(C=((L + 1, slots), f8), Dd=((L + 1, slots), f8), RHO=((L + 1, slots), f8),
                DN2=((L + 1, slots), f8), GO=((K, slots), f8), ZZ=((K, slots), f8),
                EE=((K, slots), f8))


def _slot_bytes(kernel, d):
    return sum(int(np.prod(shape[1:] if kernel != "law" else shape[:1])) * np.dtype(dt).itemsize
               for shape, dt in _workspace_shapes(kernel, d, 1).values())


def _workspace_budget():
    """Bytes the scratch of one launch may take: MCINIT_CUDA_WORKSPACE_MB (default 2048),
    and at most a quarter of the free device memory."""
    try:
        mb = float(os.environ.get("MCINIT_CUDA_WORKSPACE_MB", "2048"))
    except ValueError:
        mb = 2048.0
    budget = int(mb * 2 ** 20)
    if available():
        free, _ = cuda.current_context().get_memory_info()
        budget = min(budget, free // 4)
    return budget


def _sm_count():
    if SIM:
        return 1
    try:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except Exception:
        return 1


def _block_size(d):
    """Threads per block of a dense or projected trial: about one per 4-8 units of the widest
    hidden layer (rows forward, column blocks backward, vector entries in the QR), 32 to 128.
    Narrow networks get small blocks, so that more trials share an SM and a block
    reduction (a few __syncthreads) is cheap."""
    if TPB is not None:
        return TPB
    wmax = int(max(int(d.widths[1:].max()), d.K))
    return 32 if wmax <= 128 else (64 if wmax <= 256 else 128)


def _geometry(kernel, d, count):
    """(grid, threads per block, slots) of a launch over count trials."""
    per = max(1, _slot_bytes(kernel, d))
    cap = max(1, _workspace_budget() // per)
    if kernel == "law":
        tpb = LAW_TPB
        grid = max(1, min(-(-count // tpb), 16 * _sm_count(), max(1, cap // tpb)))
        return grid, tpb, grid * tpb
    tpb = _block_size(d)
    per_sm = min(32, BLOCKS_PER_SM * 128 // tpb)       # register-limited residency
    grid = max(1, min(count, per_sm * _sm_count(), cap))
    if SIM:
        grid = min(grid, 2)
    return grid, tpb, grid


def _chunks(tpb):
    """Dense staging: columns per forward chunk (a multiple of 4) and rows per backward chunk."""
    cw = max(4, (SW // tpb) // 4 * 4)
    rb = max(1, min(RBMAX, SW // (4 * tpb)))
    return cw, rb


def refuse_unbuilt(plan, kernel):
    """A ConfigError when the plan asks the CUDA backend's ``kernel`` for what it does not
    compute: --wn-grad direction is computed by the blocked kernel only (its trial is the
    CPU's, kernels.blocked), not by the device dense kernel."""
    from ...config import ConfigError
    if plan.act != ACT_RELU or plan.dist == DIST_ORTHOGONAL:
        raise ConfigError("--activation and --init orthogonal are computed on the CPU: use --backend cpu")
    if plan.wn_direction and plan.backward and kernel != "blocked":
        raise ConfigError(f"the {kernel} kernel on --backend cuda does not compute --wn-grad direction: "
                          "use --kernel blocked, or --backend cpu")


def _check(plan, kernel):
    if plan.arch != common.ARCH_PLAIN:
        from ..residual import refuse
        refuse(plan.config.arch, plan.config.wn_grad, "cuda")
    refuse_unbuilt(plan, kernel)
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; the CUDA backend has {', '.join(KERNELS)}")
    if kernel in ("projected", "law") and plan.dist != DIST_NORMAL:
        raise ValueError(f"the {kernel} kernel is exact for Gaussian weights only")
    if kernel == "law" and plan.samples != 1:
        raise ValueError("the law kernel needs one input per trial")
    if TPB is not None and (TPB & (TPB - 1) or not 32 <= TPB <= LAUNCH_BOUNDS["dense"][0]):
        raise ValueError("TPB must be a power of two from 32 to the launch bound")


def _host_constants(plan, kernel):
    """The plan's read-only arrays and scalars for a kernel (host NumPy)."""
    d = _Dims(plan)
    c = dict(widths=d.widths, hoff=d.hoff, var=np.asarray(plan.var, dtype=np.float64),
             gain=np.asarray(plan.gain, dtype=np.float64))
    if kernel == "dense":
        X0 = plan.X0 if plan.data == DATA_FIXED else np.zeros((1, 1))
        c["X0"] = np.ascontiguousarray(X0, dtype=np.float64)
    elif kernel == "projected":
        # the input factor of a fixed dataset, computed on the CPU as projected.fill does
        R0, r0 = cpu_projected.fixed_input_factor(plan)
        c["R0"] = np.ascontiguousarray(R0, dtype=np.float64)
        c["r0"] = int(r0)
    else:
        cdf, offs, guide = cpu_law.plan_tables(plan)       # the arrays law.fill uses
        c["cdf"] = np.ascontiguousarray(cdf, dtype=np.float64)
        c["offs"] = np.ascontiguousarray(offs, dtype=np.int64)
        c["guide"] = np.ascontiguousarray(guide, dtype=np.int64)
        c["xnorm2"] = float(plan.X0[0] @ plan.X0[0]) if plan.data == DATA_FIXED else 1.0
    return d, c


def _args(kernel, plan, d, c, ws, first, count, out, cw=None, rb=None):
    """The argument tuple of a kernel launch (also what compile_ptx_all types)."""
    fwd, bwd, dead = out
    k0, k1 = np.uint64(plan.k0), np.uint64(plan.k1)
    first, count = int(first), int(count)
    if kernel == "dense":
        return (first, count, int(cw), int(rb), k0, k1, c["widths"], c["hoff"], c["var"], c["gain"],
                int(plan.dist), int(plan.head), d.K, int(plan.data), c["X0"], d.N,
                ws["H"], ws["D"], ws["Z"], ws["E"], ws["act"], ws["ract"], ws["rsc"],
                ws["hn2"], ws["dn2"], fwd, bwd, dead)
    if kernel == "projected":
        return (first, count, k0, k1, c["widths"], c["hoff"], c["var"], int(plan.head), d.K,
                int(plan.data), c["R0"], c["r0"], d.N, ws["H"], ws["Q"], ws["R"], ws["G"],
                ws["Go"], ws["D"], ws["E"], ws["Z"], ws["Qs"], ws["Rs"], ws["Y"], ws["V"],
                ws["need"], ws["rank"], ws["hn2"], ws["dn2"], fwd, bwd, dead)
    return (first, count, k0, k1, c["widths"], c["var"], int(plan.head), d.K, int(plan.data),
            c["xnorm2"], c["cdf"], c["offs"], c["guide"], ws["C"], ws["Dd"], ws["RHO"], ws["DN2"], ws["GO"],
            ws["ZZ"], ws["EE"], fwd, bwd, dead)


_KERNEL_FUNCS = {"dense": dense_kernel, "projected": projected_kernel, "law": law_kernel}


class _Workspace:
    """Device scratch, device outputs and pinned host outputs of one launch in flight."""

    def __init__(self, kernel, d, slots, capacity):
        self.kernel, self.slots, self.capacity = kernel, slots, capacity
        self.arrays = {k: cuda.device_array(shape, dtype=dt)
                       for k, (shape, dt) in _workspace_shapes(kernel, d, slots).items()}
        self.d_out = (cuda.device_array((capacity, d.N, d.L)), cuda.device_array((capacity, d.N, d.L)),
                      cuda.device_array(capacity, dtype=np.uint8))
        self.h_out = (cuda.pinned_array((capacity, d.N, d.L)), cuda.pinned_array((capacity, d.N, d.L)),
                      cuda.pinned_array(capacity, dtype=np.uint8))
        self.stream = cuda.stream()
        self.busy = False


class _Context:
    """A plan's device constants and its pool of workspaces (one per launch in flight)."""

    def __init__(self, plan, kernel):
        self.kernel = kernel
        self.d, host = _host_constants(plan, kernel)
        self.c = {k: (cuda.to_device(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}
        self.pool = []
        self.lock = threading.Lock()

    def acquire(self, slots, count):
        with self.lock:
            for ws in self.pool:
                if not ws.busy and ws.slots >= slots and ws.capacity >= count:
                    ws.busy = True
                    return ws
            idle = [ws for ws in self.pool if not ws.busy]
            if idle:                       # too small: replace the first idle one
                self.pool.remove(idle[0])
            ws = _Workspace(self.kernel, self.d, slots, count)
            ws.busy = True
            self.pool.append(ws)
            return ws

    def release(self, ws):
        with self.lock:
            ws.busy = False


_CONTEXTS = weakref.WeakKeyDictionary()    # plan -> {kernel: _Context}; not on the plan,
_CONTEXTS_LOCK = threading.Lock()          # which stays picklable


def _context(plan, kernel):
    with _CONTEXTS_LOCK:
        ctxs = _CONTEXTS.setdefault(plan, {})
        if kernel not in ctxs:
            ctxs[kernel] = _Context(plan, kernel)
        return ctxs[kernel]


class Pending:
    """A batch launched on its own stream; ``wait`` copies the results out."""

    def __init__(self, ctx, ws, count):
        self._ctx, self._ws, self.count = ctx, ws, count
        self._event = cuda.event()
        self._event.record(ws.stream)
        self._done = False

    def ready(self):
        """Whether the GPU has finished the batch (never blocks)."""
        return self._done or bool(self._event.query())

    def wait(self, fwd=None, bwd=None, dead=None):
        """Block until done; copy into fwd, bwd (count, N, L) and dead (count,) when given, and
        return (fwd, bwd, dead) (new arrays where not given)."""
        if self._done:
            raise RuntimeError("this batch was already collected")
        self._ws.stream.synchronize()
        n = self.count
        hf, hb, hd = self._ws.h_out
        fwd = np.array(hf[:n]) if fwd is None else _copy(fwd, hf[:n])
        bwd = np.array(hb[:n]) if bwd is None else _copy(bwd, hb[:n])
        dd = hd[:n] != 0
        dead = dd if dead is None else _copy(dead, dd)
        self._done = True
        self._ctx.release(self._ws)
        return fwd, bwd, dead


def _copy(dst, src):
    np.copyto(dst, src)
    return dst


def fill_async(plan, first, count, kernel, chunks=None):
    """Launch trials first..first+count-1 of ``kernel`` on the GPU and return a Pending at once.

    Each launch in flight has its own stream and workspace, so the host can
    prepare or store one batch while the GPU computes the next.  ``chunks``
    (tests): the dense kernel's (columns, rows) staged at once."""
    _check(plan, kernel)
    if kernel == "blocked":
        raise ValueError("the blocked kernel runs its trials one after another (fill), not as one launch")
    ctx = _context(plan, kernel)
    grid, tpb, slots = _geometry(kernel, ctx.d, count)
    ws = ctx.acquire(slots, count)
    out = tuple(a[:count] for a in ws.d_out)
    cw, rb = _chunks(tpb) if chunks is None else chunks
    if cw % 4 or cw * tpb > SW or not 1 <= rb <= min(RBMAX, SW // (4 * tpb)):
        raise ValueError(f"bad dense chunks {chunks}")
    args = _args(kernel, plan, ctx.d, ctx.c, ws.arrays, first, count, out, cw, rb)
    _KERNEL_FUNCS[kernel][grid, tpb, ws.stream](*args)
    for dev, host in zip(out, ws.h_out):
        dev.copy_to_host(host[:count], stream=ws.stream)
    return Pending(ctx, ws, count)


def fill(plan, first, count, fwd, bwd, dead, kernel, chunks=None):
    """Compute trials first..first+count-1 of ``kernel`` into fwd, bwd (count, N, L) and dead (count,)."""
    if count <= 0:
        return
    if kernel == "blocked":
        _check(plan, kernel)
        blocked.fill(plan, first, count, fwd, bwd, dead, _workspace_budget())
        return
    fill_async(plan, first, count, kernel, chunks).wait(fwd, bwd, dead)


# ----------------------------------------------------------------- compilation without a GPU

@contextlib.contextmanager
def _compute_capability(cc):
    """Compile device functions for cc without a device: numba asks the current device for its
    compute capability when it compiles a device function that a kernel calls."""
    from numba.cuda import dispatcher as disp
    orig = disp.get_current_device

    class _Dev:
        compute_capability = tuple(cc)

    disp.get_current_device = lambda: _Dev()
    try:
        yield
    finally:
        disp.get_current_device = orig


def _example_plan(kernel):
    """A small plan of each kind of argument the kernels take (types only matter)."""
    from ...config import build
    kw = dict(input_dim=6, widths="5,7", samples=1 if kernel == "law" else 2, trials=1)
    cfg, data = build(**kw)
    return common.make_plan(cfg, data)


def kernel_signatures():
    """name -> (python function, argument types) of every kernel fill and the benchmark launch."""
    from numba import typeof
    sigs = {}
    for kernel in _KERNEL_FUNCS:
        plan = _example_plan(kernel)
        d, c = _host_constants(plan, kernel)
        ws = {k: np.zeros(shape, dtype=dt) for k, (shape, dt) in _workspace_shapes(kernel, d, 1).items()}
        out = (np.zeros((1, d.N, d.L)), np.zeros((1, d.N, d.L)), np.zeros(1, dtype=np.uint8))
        args = _args(kernel, plan, d, c, ws, 0, 1, out, 4, 1)
        sigs[kernel] = (_KERNEL_FUNCS[kernel], tuple(typeof(a) for a in args))
    sigs["normals"] = (normals_kernel, tuple(typeof(a) for a in (
        np.uint64(1), np.uint64(2), 0, 1, 4, np.zeros(1))))
    sigs.update(blocked.kernel_signatures())
    return sigs


def compile_ptx_all(cc=(9, 0)):
    """name -> PTX of every kernel this module launches, compiled by NVVM for compute
    capability cc (no GPU needed; not under the simulator)."""
    if SIM:
        raise RuntimeError("compile_ptx_all needs the real CUDA target, not the simulator")
    from numba.core import types
    out = {}
    with _compute_capability(cc):
        for name, (fn, argtys) in kernel_signatures().items():
            kw = {"launch_bounds": LAUNCH_BOUNDS[name]} if PACKAGE == "numba-cuda" and name in LAUNCH_BOUNDS else {}
            ptx, _ = cuda.compile_ptx(fn.py_func, types.void(*argtys), cc=tuple(cc), **kw)
            out[name] = ptx
    return out
