#!/usr/bin/env python
"""mcinit on a GPU: trials/s of the CUDA kernels against the CPU kernels and the GPU's own floor.

    python benchmarks/bench_gpu.py                # all cases; writes benchmarks/RESULTS_GPU.md
    python benchmarks/bench_gpu.py --quick        # short measurements
    python benchmarks/bench_gpu.py --cases C2,L1 --no-cpu --output /tmp/r.md

Cases (as benchmarks/bench.py: He init, Gaussian weights and inputs, softmax head
with 20 classes): C1 500/100/10, one input; C2 1024/1024/10, one input; C3 64
inputs of dimension 64, width 256, depth 10; L1 the law kernel at width 1024,
depth 10.  For every case and kernel: the CUDA backend's trials/s
(mcinit.kernels.cuda.fill, results copied back to the host included), the CPU
kernel's trials/s on this machine's cores, and a check that the first trials
agree (max relative difference).  The GPU's floors: the rate of normal variates
from the same Philox4x32-10 + inversion in a pure-generation kernel (the dense
kernel must draw every weight: gen floor = that rate / weights per trial), and the
float64 and float32 matrix-product rates (CuPy's cuBLAS dgemm / sgemm if CuPy is
installed, else a tiled numba kernel; FLOP floor = that rate / 2 sum n_l n_(l-1) N x 2).

Many inputs per network (as bench.py): P500, P1000, P4000, n_0 = 500, N = 2000
Gaussian inputs fixed in a .npy file (written into a temporary directory from a
fixed seed), depth 10, widths 500 / 1000 / 4000, in float64 and float32 with both
properties and in float64 forward only, by the GPU's blocked kernel (the dense one
where the CUDA backend has no blocked kernel; float32 needs the blocked one).  Their
CPU column is the CPU blocked kernel, one network per thread, one repetition, and
their check compares the first two networks with it.  Timings are reported, never
asserted.  Needs an NVIDIA GPU: it stops with a message without one.
"""

import argparse
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from bench_common import CASES as BENCH_CASES  # noqa: E402  (standard library only at import)
from bench_common import SETTINGS, write_fixed_inputs  # noqa: E402

CASES = {
    "C1": dict(input_dim=500, width=100, depth=10, samples=1, kernels=("dense", "projected", "law")),
    "C2": dict(input_dim=1024, width=1024, depth=10, samples=1, kernels=("dense", "projected", "law")),
    "C3": dict(input_dim=64, width=256, depth=10, samples=64, kernels=("dense", "projected")),
    "L1": dict(input_dim=1024, width=1024, depth=10, samples=1, kernels=("law",)),
}
# the many-input cases of bench.py (fixed inputs), in the settings of bench_common.SETTINGS
CASES.update({name: dict(input_dim=c.input_dim, width=c.width, depth=c.depth, samples=c.samples,
                         kernels=(), fixed=True)
              for name, c in BENCH_CASES.items() if c.fixed})
CLASSES = 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short measurements (about 0.3 s each)")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated cases (default: all)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU kernels")
    p.add_argument("--cpu-seconds", type=float, default=None, help="time per CPU measurement")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS_GPU.md"),
                   help="Markdown report (default: benchmarks/RESULTS_GPU.md); '' to skip")
    a = p.parse_args(argv)
    a.cases = [c.strip().upper() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in a.cases if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(CASES)}")
    return a


def weights(c):
    w = [c["input_dim"]] + [c["width"]] * c["depth"]
    return sum(w[i] * w[i - 1] for i in range(1, len(w)))


def normals_per_trial(c):
    return weights(c) + CLASSES * c["width"]


def flops_per_trial(c, properties="both"):
    """2 sum n_l n_(l-1) N for the forward products, as many again for the backward ones."""
    forward = 2 * weights(c) * c["samples"]
    return forward if properties == "forward" else 2 * forward


def measure(fn, seconds, n=1, cap=1 << 26):
    """Best rate of fn(n) -> seconds over 2 repetitions, n grown until a call takes ~seconds."""
    while True:
        t = fn(n)
        if t >= 0.6 * seconds or n >= cap:
            break
        n = min(cap, max(n + 1, int(n * min(50.0, 1.1 * seconds / max(t, 1e-6)))))
    return max(n / t, n / fn(n)), n


def timed_fill(np, fill, plan, N, L, *extra):
    """fn(n) -> seconds of ``fill(plan, first, n, fwd, bwd, dead, *extra)`` on the next n
    trials (first advances from call to call, so no trial is timed twice)."""
    first = [0]

    def fn(n):
        fwd, bwd, dead = np.empty((n, N, L)), np.empty((n, N, L)), np.zeros(n, dtype=bool)
        t = time.perf_counter()
        fill(plan, first[0], n, fwd, bwd, dead, *extra)
        first[0] += n
        return time.perf_counter() - t
    return fn


def fmt(x):
    if x is None or not math.isfinite(x):
        return "–"
    for unit, s in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= s:
            return f"{x / s:.3g}{unit}"
    return f"{x:.3g}"


def main(argv=None):
    args = parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("bench_gpu.py: NUMBA_ENABLE_CUDASIM=1 selects the CUDA simulator, not a GPU; unset it.")
    import numpy as np
    import numba
    from mcinit import config
    from mcinit.kernels import blocked, common, dense, law, projected
    try:
        from mcinit.kernels import cuda as kc
    except Exception as e:      # numba's CUDA support itself missing or broken
        sys.exit(f"bench_gpu.py: the CUDA backend cannot be loaded ({type(e).__name__}: {e}). "
                 "Run it on a machine with an NVIDIA GPU and `pip install mcinit[cuda]`.")

    if not kc.available():
        sys.exit("bench_gpu.py: no CUDA GPU found (numba sees no device, or no CUDA driver). "
                 "Run it on a machine with an NVIDIA GPU and `pip install mcinit[cuda]`.")
    from numba import cuda

    cpu_kernels = {"dense": dense, "blocked": blocked, "projected": projected, "law": law}
    gpu_s = 0.3 if args.quick else 1.5
    cpu_s = args.cpu_seconds or (0.3 if args.quick else 1.0)
    device = kc.describe_device()
    print(f"device: {device}; package {kc.PACKAGE}; numba {numba.__version__}", file=sys.stderr)

    # ---- floors
    k0, k1 = np.uint64(12345), np.uint64(678)
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    grid, tpb = 16 * sms, kc.LAUNCH_BOUNDS["normals"][0]
    acc = cuda.device_array(grid * tpb)

    def gen(n):                         # n rows of 4096 normals
        kc.normals_kernel[grid, tpb](k0, k1, 0, n, 4096, acc)
        cuda.synchronize()
        t = time.perf_counter()
        kc.normals_kernel[grid, tpb](k0, k1, 0, n, 4096, acc)
        cuda.synchronize()
        return time.perf_counter() - t
    gen_rows, _ = measure(gen, gpu_s, n=1024)
    normal_rate = gen_rows * 4096
    print(f"normals: {normal_rate / 1e9:.2f} G/s", file=sys.stderr)
    flop_rate, flop_src = _matmul_rate(np, cuda, gpu_s, np.float64)
    print(f"float64 matmul: {flop_rate / 1e12:.2f} TFLOP/s ({flop_src})", file=sys.stderr)
    sflop_rate, sflop_src = _matmul_rate(np, cuda, gpu_s, np.float32)
    print(f"float32 matmul: {sflop_rate / 1e12:.2f} TFLOP/s ({sflop_src})", file=sys.stderr)
    gemm = {"float64": flop_rate, "float32": sflop_rate}

    # ---- kernels
    rows = []
    many = []
    scratch = tempfile.mkdtemp(prefix="mcinit-bench-gpu-")
    try:
        for name in args.cases:
            if CASES[name].get("fixed"):
                many += many_inputs(args, name, CASES[name], np, config, common, kc, blocked, gemm,
                                    scratch, gpu_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name in args.cases:
        c = CASES[name]
        for kernel in c["kernels"]:
            cfg, data = config.build(input_dim=c["input_dim"], width=c["width"], depth=c["depth"],
                                     samples=c["samples"], trials=1 << 30, kernel=kernel)
            plan = common.make_plan(cfg, data)
            N, L = c["samples"], c["depth"]
            run_gpu = timed_fill(np, kc.fill, plan, N, L, kernel)
            run_cpu = timed_fill(np, cpu_kernels[kernel].fill, plan, N, L)

            t0 = time.perf_counter()
            run_gpu(4)                                         # compile
            compile_s = time.perf_counter() - t0
            check = _check(np, plan, kernel, cpu_kernels[kernel], kc, N, L,
                           8 if kernel != "dense" or c["width"] < 512 else 2)
            gpu_rate, n_gpu = measure(run_gpu, gpu_s, n=64)
            cpu_rate = None
            if not args.no_cpu:
                run_cpu(1)                                     # compile / load the cache
                cpu_rate, _ = measure(run_cpu, cpu_s, n=1)
            gen_floor = normal_rate / normals_per_trial(c) if kernel == "dense" else None
            flop_floor = flop_rate / flops_per_trial(c) if kernel == "dense" else None
            rows.append(dict(case=name, kernel=kernel, net=f"{c['input_dim']}/{c['width']}/{c['depth']}"
                             + (f", N={N}" if N > 1 else ""), gpu=gpu_rate, n=n_gpu, cpu=cpu_rate,
                             gen_floor=gen_floor, flop_floor=flop_floor, check=check,
                             compile=compile_s))
            print(f"{name} {kernel}: {gpu_rate:.4g} trials/s on the GPU"
                  + (f", {cpu_rate:.4g} on the CPU" if cpu_rate else "") + f", check {check:.1e}",
                  file=sys.stderr)

    header = ["case", "network", "kernel", "GPU trials/s", "CPU trials/s", "GPU / CPU",
              "gen floor", "GPU / gen floor", "FLOP floor", "GPU / FLOP floor", "max rel diff"]
    table = [header]
    for r in rows:
        table.append([r["case"], r["net"], r["kernel"], fmt(r["gpu"]), fmt(r["cpu"]),
                      f"×{r['gpu'] / r['cpu']:.3g}" if r["cpu"] else "–", fmt(r["gen_floor"]),
                      f"{100 * r['gpu'] / r['gen_floor']:.0f}%" if r["gen_floor"] else "–",
                      fmt(r["flop_floor"]),
                      f"{100 * r['gpu'] / r['flop_floor']:.1f}%" if r["flop_floor"] else "–",
                      f"{r['check']:.1e}"])
    md = _md(table) if rows else ""
    many_md = _md(many_table(many)) if many else ""
    print("\n\n".join(t for t in (md, many_md) if t))
    if args.output:
        _write(args, md, many_md, device, kc, numba, np, normal_rate, (flop_rate, flop_src),
               (sflop_rate, sflop_src), cpu_s, gpu_s)
        print(f"wrote {args.output}", file=sys.stderr)


def gpu_kernel(kc):
    """The CUDA kernel the many-input cases run: blocked (cuBLAS products) where the CUDA
    backend has it, else dense."""
    return "blocked" if "blocked" in getattr(kc, "KERNELS", ()) else "dense"


def many_inputs(args, name, c, np, config, common, kc, blocked, gemm, scratch, gpu_s):
    """Rows of a many-input case (fixed inputs) on the GPU, one per (precision, properties)
    of SETTINGS: networks/s (results copied back included), the CPU blocked kernel's
    networks/s (one network per thread, one repetition; None with --no-cpu), the GPU's
    FLOP floor at its own dgemm / sgemm rate, and the GPU against the CPU blocked kernel
    on the first two networks (max relative difference)."""
    import numba

    kernel = gpu_kernel(kc)
    path = write_fixed_inputs(scratch, c["samples"], c["input_dim"])
    N, L = c["samples"], c["depth"]
    net = f"{c['input_dim']}/{c['width']}/{c['depth']}, N={N} fixed"
    out = []
    for precision, properties in SETTINGS:
        row = dict(case=name, net=net, kernel=kernel, precision=precision, properties=properties,
                   gpu=None, cpu=None, floor=gemm[precision] / flops_per_trial(c, properties), check=None,
                   note="")
        out.append(row)
        if precision != "float64" and kernel != "blocked":
            row["note"] = f"{precision} needs the blocked kernel (the CUDA backend has {', '.join(kc.KERNELS)})"
            print(f"{name} {precision} {properties}: skipped ({row['note']})", file=sys.stderr)
            continue
        cfg, data = config.build(data=path, width=c["width"], depth=c["depth"], trials=1 << 30,
                                 kernel=kernel, precision=precision, properties=properties)
        plan = common.make_plan(cfg, data)
        cpu_plan = common.make_plan(config.build(data=path, width=c["width"], depth=c["depth"],
                                                 trials=1 << 30, kernel="blocked", precision=precision,
                                                 properties=properties)[0], data)
        run_gpu = timed_fill(np, kc.fill, plan, N, L, kernel)

        run_gpu(1)                                         # compile, workspaces
        row["check"] = _check(np, plan, kernel, blocked, kc, N, L, 2, cpu_plan=cpu_plan,
                              backward=properties != "forward")
        row["gpu"], row["n"] = measure(run_gpu, gpu_s, n=1)
        if not args.no_cpu:
            T = numba.get_num_threads()
            fwd, bwd, dead = np.empty((T, N, L)), np.empty((T, N, L)), np.zeros(T, dtype=bool)
            t = time.perf_counter()
            blocked.fill(cpu_plan, 0, T, fwd, bwd, dead)
            row["cpu"] = T / (time.perf_counter() - t)
        print(f"{name} {kernel} {precision} {properties}: {row['gpu']:.4g} networks/s on the GPU "
              f"({100 * row['gpu'] / row['floor']:.0f}% of its FLOP floor)"
              + (f", {row['cpu']:.4g} on the CPU" if row["cpu"] else "") + f", check {row['check']:.1e}",
              file=sys.stderr)
    return out


def many_table(many):
    """The Markdown rows of the many-input cases."""
    table = [["case", "network", "kernel", "precision, properties", "GPU networks/s", "CPU blocked networks/s",
              "GPU / CPU", "FLOP floor (GPU gemm)", "GPU / FLOP floor", "max rel diff (GPU vs CPU)"]]
    for r in many:
        if r["gpu"] is None:
            table.append([r["case"], r["net"], r["kernel"], f"{r['precision']}, {r['properties']}",
                          "–", "–", "–", fmt(r["floor"]), "–", r["note"]])
            continue
        table.append([r["case"], r["net"], r["kernel"], f"{r['precision']}, {r['properties']}", fmt(r["gpu"]),
                      fmt(r["cpu"]), f"×{r['gpu'] / r['cpu']:.3g}" if r["cpu"] else "–", fmt(r["floor"]),
                      f"{100 * r['gpu'] / r['floor']:.1f}%", f"{r['check']:.1e}"])
    return table


def _check(np, plan, kernel, cpu_mod, kc, N, L, n, cpu_plan=None, backward=True):
    """Max relative difference GPU vs CPU over the first n trials (dead flags must agree).
    cpu_plan: the CPU kernel's plan when it is not ``plan``; backward: whether the
    backward ratios are computed (else only the forward ones are compared)."""
    out = []
    for backend in ("cpu", "gpu"):
        fwd, bwd = np.empty((n, N, L)), np.full((n, N, L), np.nan)
        dead = np.zeros(n, dtype=bool)
        if backend == "cpu":
            cpu_mod.fill(cpu_plan or plan, 0, n, fwd, bwd, dead)
        else:
            kc.fill(plan, 0, n, fwd, bwd, dead, kernel)
        out.append((fwd, bwd, dead))
    (f1, b1, d1), (f2, b2, d2) = out
    if not np.array_equal(d1, d2):
        return float("inf")
    worst = 0.0
    for a, b in ((f1, f2), (b1, b2)) if backward else ((f1, f2),):
        fin = np.isfinite(a)
        if not np.array_equal(fin, np.isfinite(b)):
            return float("inf")
        den = np.where(a[fin] == 0, 1.0, np.abs(a[fin]))
        worst = max(worst, float(np.max(np.abs(a[fin] - b[fin]) / den, initial=0.0)))
    return worst


def _matmul_rate(np, cuda, seconds, dtype):
    """matmul FLOP/s in dtype (float64: dgemm, float32: sgemm): CuPy's (cuBLAS) if CuPy is
    installed, else a tiled numba kernel; and where the number comes from."""
    n = 4096
    name = "dgemm" if dtype == np.float64 else "sgemm"
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        a = cupy.random.standard_normal((n, n), dtype=dtype)
        b = cupy.random.standard_normal((n, n), dtype=dtype)

        def f(k):
            cupy.cuda.Device().synchronize()
            t = time.perf_counter()
            for _ in range(k):
                a @ b
            cupy.cuda.Device().synchronize()
            return time.perf_counter() - t
        f(1)
        reps, _ = measure(f, seconds, n=1, cap=1000)
        return reps * 2.0 * n ** 3, f"CuPy {cupy.__version__} (cuBLAS {name})"
    kern = _numba_matmul(cuda, dtype)
    a = cuda.to_device(np.random.default_rng(0).standard_normal((n, n)).astype(dtype))
    b = cuda.to_device(np.random.default_rng(1).standard_normal((n, n)).astype(dtype))
    c = cuda.device_array((n, n), dtype=dtype)
    grid = (n // 16, n // 16)

    def f(k):
        cuda.synchronize()
        t = time.perf_counter()
        for _ in range(k):
            kern[grid, (16, 16)](a, b, c)
        cuda.synchronize()
        return time.perf_counter() - t
    f(1)
    reps, _ = measure(f, seconds, n=1, cap=1000)
    return reps * 2.0 * n ** 3, "CuPy not installed: numba 16x16 shared-memory tiled kernel, not cuBLAS"


def _numba_matmul(cuda, dtype):
    from numba import float32, float64

    elem = float64 if dtype().itemsize == 8 else float32

    @cuda.jit
    def mm(A, B, C):
        sA = cuda.shared.array((16, 16), elem)
        sB = cuda.shared.array((16, 16), elem)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * 16 + ty
        col = cuda.blockIdx.x * 16 + tx
        acc = 0.0
        for k0 in range(0, A.shape[1], 16):
            sA[ty, tx] = A[row, k0 + tx]
            sB[ty, tx] = B[k0 + ty, col]
            cuda.syncthreads()
            for k in range(16):
                acc += sA[ty, k] * sB[k, tx]
            cuda.syncthreads()
        C[row, col] = acc
    return mm


def _md(table):
    w = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |" for r in table]
    lines.insert(1, "|" + "|".join("-" * (x + 2) for x in w) + "|")
    return "\n".join(lines)


def _write(args, md, many_md, device, kc, numba, np, normal_rate, dgemm, sgemm, cpu_s, gpu_s):
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip() or "n/a"
    except Exception:
        commit = "n/a"
    from mcinit.estimate import cpu_model
    cpu = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"""# mcinit GPU benchmark results

Written by `python benchmarks/bench_gpu.py{' --quick' if args.quick else ''}`
({datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC, commit {commit}).

- GPU: {device}
- CUDA package: {kc.PACKAGE}; numba {numba.__version__}; numpy {np.__version__}
- CPU for the CPU columns: {cpu}, {cores} cores (numba threads: {numba.get_num_threads()})
- measurement: best of 2 repetitions of about {gpu_s} s (GPU) / {cpu_s} s (CPU); GPU times
  include copying the ratios back to the host
- GPU normal variates (Philox4x32-10 + inversion, as the kernels draw them): {normal_rate / 1e9:.3g} G/s
- GPU float64 matrix product (dgemm): {dgemm[0] / 1e12:.3g} TFLOP/s ({dgemm[1]})
- GPU float32 matrix product (sgemm): {sgemm[0] / 1e12:.3g} TFLOP/s ({sgemm[1]})
"""
    if md:
        text += f"""
## Throughput (trials/s)

{md}

gen floor = GPU normal rate / normals the dense kernel must draw per trial (every hidden
weight and the head, once; the kernel draws the weights of active units a second time in
the backward pass and skips the inactive ones).  FLOP floor = matmul rate / (2 sum n_l
n_(l-1) N, forward and backward).  Neither floor applies to the projected and law kernels,
which do not draw every weight.  max rel diff: the GPU against the CPU kernel on the same
trials (sums in another order; dead flags must agree).
"""
    if many_md:
        text += f"""
## Many inputs per network (networks/s)

{many_md}

N = 2000 Gaussian inputs fixed in a .npy file, the same in every network (as bench.py's P
cases).  FLOP floor = the GPU's own dgemm rate (sgemm for float32) / the FLOPs of one
network's products, 2 x 2 N sum n_l n_(l-1) (forward only: 2 N sum n_l n_(l-1)).  CPU
blocked = the CPU blocked kernel on this machine's cores, one network per thread, one
repetition.  max rel diff: the GPU against the CPU blocked kernel on the first two
networks (the same weights; sums in another order; forward only: the forward ratios).
"""
    with open(args.output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
