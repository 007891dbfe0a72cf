"""The CUDA backend (mcinit/kernels/cuda/) against the CPU kernels, trial by trial.

Without a GPU, two things are checked:
- the CUDA simulator (NUMBA_ENABLE_CUDASIM=1, which must be set before numba is
  imported, so it runs in subprocesses of this module) runs every kernel and
  gives the CPU kernels' fwd, bwd and dead to 1e-9 relative (sums are taken in
  another order): dense with one and several inputs, normal, uniform and
  weight-normalised weights, gaussian, sphere and fixed (rank-deficient) data,
  both heads; projected likewise; law; blocked (float64 and float32, forward
  only, columns longer than one part of its reductions, --wn-grad direction); trial
  indices above 2**32;
- the blocked kernel's device operations (mcinit/kernels/cuda/blocked.py) in the
  simulator against the CPU's: weights bit for bit (normal, uniform,
  weight-normalised; float64 and float32), ReLU/mask/column/product norms, and trials
  whose weights are drawn again for the backward pass;
- the real compiler: every kernel the backend launches is compiled by NVVM to
  PTX for sm_90 (a subprocess without the simulator, which accepts code the
  real compiler rejects) and assembled by ``ptxas -arch=sm_90 -v``; registers
  and spills are printed and held to a budget.
With a GPU (cuda.available()), the same comparisons also run on it, on larger
networks.

The simulator's and the real compiler's runs are slow (pytest -m slow; .ci/run
runs them): subprocesses that take minutes of CPU on two cores (even the two
cheapest simulator cases took 18 to 51 s on a shared 2-vCPU host).  The default
run keeps the checks that the GPU's versions of the shared helpers give the
CPU's numbers.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

RTOL = 1e-9
#: float32 trials on a GPU against the CPU's: float32 sums taken in another order (cuBLAS's)
F32_RTOL = 1e-4
#: ptxas budget: the kernels are compiled for (128 threads, 4 blocks per SM), so at most
#: 128 registers; spills (the outer loops' state) must stay small
MAX_REGISTERS = 128
MAX_SPILL_STORES = 1024

# name -> (kernel, first trial, trials, config keywords, dense chunks or None[, threads per block])
# 'DATA' in a config is replaced by the path of a fixed, correlated dataset with an
# exactly collinear pair of inputs (a rank-deficient Gram matrix).
SIM_CASES = {
    "dense-1in": ("dense", 0, 2, dict(input_dim=5, widths="6,7", samples=1), None),
    "dense-5in-gaussianhead-2**33": ("dense", 2 ** 33 + 5, 2,
                                     dict(input_dim=5, widths="6,9", samples=5, head="gaussian:3"), (4, 1)),
    "dense-uniform-fixed": ("dense", 7, 2, dict(input_dim=7, widths="6,5,8", samples=4, data="DATA",
                                                init="glorot", dist="uniform"), (4, 2)),
    "dense-wn-sphere": ("dense", 11, 2, dict(input_dim=7, widths="9,5", samples=2, data="sphere",
                                             init="wn"), (8, 3)),
    "dense-wnunit-dead": ("dense", 2 ** 32 - 1, 3, dict(input_dim=3, widths="2,2,2", samples=1,
                                                         init="wn-unit", head="softmax:3"), None),
    "dense-hein-dead": ("dense", 0, 6, dict(input_dim=4, widths="3,2,3", samples=2, init="he-in",
                                            head="gaussian:2"), (4, 1)),
    "dense-64threads": ("dense", 3, 2, dict(input_dim=70, widths="66,5", samples=2), None, 64),
    "projected-1in-2**33": ("projected", 2 ** 33, 2, dict(input_dim=5, widths="6,7", samples=1), None),
    "projected-3in-gaussianhead": ("projected", 3, 2, dict(input_dim=5, widths="6,9,4", samples=3,
                                                            head="gaussian:3"), None),
    "projected-fixed-rankdef": ("projected", 0, 2, dict(input_dim=7, widths="6,5,8", samples=4,
                                                         data="DATA"), None),
    "projected-sphere-N>n0": ("projected", 5, 2, dict(input_dim=3, widths="2,6", samples=5,
                                                      data="sphere"), None),
    "law-2**34": ("law", 2 ** 34 + 3, 40, dict(input_dim=5, widths="6,7,3"), None),
    "law-sphere-gaussianhead": ("law", 0, 40, dict(input_dim=5, widths="6,7,3", data="sphere",
                                                   head="gaussian:4"), None),
    "law-fixed": ("law", 9, 20, dict(input_dim=7, widths="4,9", data="DATA1"), None),
    "blocked-3in-2parts-2**33": ("blocked", 2 ** 33 + 5, 2, dict(input_dim=9, widths="70,6", samples=3), None),
    "blocked-float32-gaussianhead": ("blocked", 3, 2, dict(input_dim=5, widths="6,9", samples=5,
                                                           head="gaussian:3", precision="float32"), None),
    "blocked-uniform-fixed": ("blocked", 7, 2, dict(input_dim=7, widths="6,5,8", samples=4, data="DATA",
                                                    init="glorot", dist="uniform"), None),
    "blocked-wn-sphere-forward": ("blocked", 11, 2, dict(input_dim=7, widths="9,5", samples=2, data="sphere",
                                                         init="wn", properties="forward"), None),
    "blocked-wnunit-dead": ("blocked", 2 ** 32 - 1, 3, dict(input_dim=3, widths="2,2,2", samples=1,
                                                            init="wn-unit", head="softmax:3"), None),
    "blocked-wn-direction-2parts": ("blocked", 5, 2, dict(input_dim=7, widths="9,70", samples=3, init="wn",
                                                          wn_grad="direction"), None),
}

# larger cases, for a real GPU
GPU_CASES = {
    "gpu-dense-1in": ("dense", 2 ** 33, 16, dict(input_dim=100, widths="200,150,300", samples=1), None),
    "gpu-dense-8in-uniform": ("dense", 5, 16, dict(input_dim=30, widths="100,64,77", samples=8,
                                                   init="glorot", dist="uniform"), None),
    "gpu-dense-wn-fixed": ("dense", 5, 16, dict(input_dim=7, widths="50,40", samples=4, data="DATA",
                                                init="wn"), None),
    "gpu-projected-8in": ("projected", 1, 16, dict(input_dim=20, widths="128,64,100", samples=8), None),
    "gpu-projected-fixed": ("projected", 1, 16, dict(input_dim=7, widths="64,64", samples=4,
                                                     data="DATA"), None),
    "gpu-law": ("law", 2 ** 35, 5000, dict(input_dim=1024, width=1024, depth=10), None),
    "gpu-blocked-64in": ("blocked", 2 ** 33, 8, dict(input_dim=100, widths="200,150,300", samples=64), None),
    "gpu-blocked-64in-float32": ("blocked", 2 ** 33, 8, dict(input_dim=100, widths="200,150,300", samples=64,
                                                             precision="float32"), None),
    "gpu-blocked-uniform-forward": ("blocked", 5, 8, dict(input_dim=30, widths="100,64,77", samples=40,
                                                          init="glorot", dist="uniform", properties="forward"), None),
    "gpu-blocked-wn-fixed": ("blocked", 5, 8, dict(input_dim=7, widths="50,40", samples=4, data="DATA",
                                                   init="wn"), None),
    "gpu-blocked-wn-direction": ("blocked", 5, 8, dict(input_dim=30, widths="100,64,77", samples=16, init="wn",
                                                       wn_grad="direction"), None),
    "gpu-blocked-wn-direction-float32": ("blocked", 5, 8, dict(input_dim=30, widths="100,64,77", samples=16,
                                                               init="wn", wn_grad="direction",
                                                               precision="float32"), None),
}


def _dataset(path):
    g = np.random.default_rng(12345)
    base = g.standard_normal(7)
    X = base + 0.3 * g.standard_normal((4, 7))
    X[3] = 2.5 * X[0]          # exactly collinear
    np.save(path, X)
    np.save(path.replace(".npy", "1.npy"), X[:1])


def compare(name, case, datadir):
    """Run one case on the CPU kernel and on the CUDA backend; a dict of the differences."""
    from mcinit import config
    from mcinit.kernels import blocked, common, cuda, dense, law, projected
    cpu = {"dense": dense, "projected": projected, "law": law, "blocked": blocked}
    kernel, first, count, kw, chunks = case[:5]
    kw = dict(kw)
    if kw.get("data", "").startswith("DATA"):
        kw["data"] = os.path.join(datadir, ("data1" if kw["data"] == "DATA1" else "data") + ".npy")
    cfg, data = config.build(trials=max(count, 1), **kw)
    plan = common.make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    res = []
    for backend in ("cpu", "cuda"):
        fwd = np.full((count, N, L), np.nan)
        bwd = np.full((count, N, L), np.nan)
        dead = np.zeros(count, dtype=bool)
        t = time.time()
        if backend == "cpu":
            cpu[kernel].fill(plan, first, count, fwd, bwd, dead)
        else:
            tpb, cuda.TPB = cuda.TPB, (case[5] if len(case) > 5 else cuda.TPB)
            try:
                cuda.fill(plan, first, count, fwd, bwd, dead, kernel, chunks=chunks)
            finally:
                cuda.TPB = tpb
        res.append((fwd, bwd, dead, time.time() - t))
    (f1, b1, d1, _), (f2, b2, d2, t2) = res

    def relerr(a, b):
        fin = np.isfinite(a)
        # nan: left unwritten (bwd of a forward-only plan) on both
        if not np.array_equal(fin, np.isfinite(b)) or not np.array_equal(a[~fin], b[~fin], equal_nan=True):
            return float("inf")
        den = np.where(a[fin] == 0, 1.0, np.abs(a[fin]))
        diff = np.abs(a[fin] - b[fin])
        if np.any((a[fin] == 0) != (b[fin] == 0)):
            return float("inf")
        return float(np.max(diff / den, initial=0.0))

    return dict(name=name, fwd=relerr(f1, f2), bwd=relerr(b1, b2),
                dead_equal=bool(np.array_equal(d1, d2)), dead=int(d1.sum()),
                inf=int(np.isinf(b1).sum()), seconds=round(t2, 2), simulator=cuda.simulator(),
                precision=cfg.precision)


def _check(r):
    # float32 on a GPU: cuBLAS sums float32 products in another order than the CPU's BLAS
    # (under the simulator both are NumPy's)
    rtol = F32_RTOL if r.get("precision") == "float32" and not r["simulator"] else RTOL
    assert r["dead_equal"], f"{r['name']}: dead flags differ"
    assert r["fwd"] <= rtol, f"{r['name']}: fwd differs by {r['fwd']:.3g} relative"
    assert r["bwd"] <= rtol, f"{r['name']}: bwd differs by {r['bwd']:.3g} relative (or inf/0 placement)"


# ------------------------------------------------------------------ the simulator

def _run_sim(names, datadir):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--simulate", datadir] + names,
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def ptx_build(tmp_path_factory):
    """The real compiler's run (_PTX_SCRIPT in a subprocess, without the simulator), started
    before the simulator's subprocesses so that the three share the cores; (ptxas, why not,
    process, directory of the PTX files)."""
    ptxas, why = _toolkit()
    if ptxas is None:
        yield None, why, None, None
        return
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    out = str(tmp_path_factory.mktemp("ptx"))
    proc = subprocess.Popen([sys.executable, "-c", _PTX_SCRIPT, out], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield ptxas, None, proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def sim_results(tmp_path_factory, ptx_build):
    """Every simulator case, in two subprocesses running side by side (and beside ptx_build's)."""
    datadir = str(tmp_path_factory.mktemp("cudadata"))
    _dataset(os.path.join(datadir, "data.npy"))
    # simulated seconds per case (one 2-vCPU AMD EPYC host): projected-fixed-rankdef 48,
    # projected-sphere-N>n0 39, projected-3in-gaussianhead 14, projected-1in 3, the dense
    # and law cases 27 together; the slowest projected case goes with them (75 s against 56),
    # the blocked cases with the other projected ones
    names = list(SIM_CASES)
    first = [n for n in names if n.startswith(("dense", "law")) or n == "projected-fixed-rankdef"]
    second = [n for n in names if n not in first]
    procs = [_run_sim(first, datadir), _run_sim(second, datadir)]
    out = {}
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        for line in stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                out[r["name"]] = r
        if p.returncode != 0:
            out.setdefault("_errors", []).append(stderr[-4000:])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SIM_CASES))
def test_simulator_matches_cpu(name, sim_results):
    if name not in sim_results:
        pytest.fail(f"{name} did not run:\n" + "\n".join(sim_results.get("_errors", [])))
    r = sim_results[name]
    print(json.dumps(r))
    assert r["simulator"]
    _check(r)


@pytest.mark.slow
def test_simulator_cases_cover_dead_trials(sim_results):
    """The comparisons include dead trials (inf gamma) for every kernel."""
    for kernel in ("dense", "law", "blocked"):
        assert sum(r["dead"] for n, r in sim_results.items() if n.startswith(kernel)) > 0, kernel


# ------------------------------------------------------------------ the blocked kernel's operations

def blocked_ops_checks():
    """The blocked kernel's device operations (DeviceOps) against the CPU's (blocked.Ops), in
    this process (the simulator, or a real GPU): weights and random inputs (check
    "weights"), reductions ("norms") and whole trials; a list of dicts, one per check, with
    ``diff`` the largest difference relative to the largest CPU value (0: bit for bit),
    ``equal`` (bit for bit) and ``same_matrix`` (the matrix a reduction rewrites in place)."""
    from mcinit import config
    from mcinit.kernels import blocked, common
    from mcinit.kernels.cuda import blocked as gblocked

    def build(**kw):
        cfg, data = config.build(trials=3, **kw)
        return common.make_plan(cfg, data)

    def diff(a, b):
        fin = np.isfinite(a)
        if not (np.array_equal(fin, np.isfinite(b)) and np.array_equal(a[~fin], b[~fin], equal_nan=True)):
            return float("inf")
        a, b = a[fin], b[fin]
        top = float(np.max(np.abs(a), initial=0.0))
        return float(np.max(np.abs(a - b), initial=0.0)) / (top if top > 0 else 1.0)

    out = []
    for init, dist in (("he", "normal"), ("glorot", "uniform"), ("wn", "normal")):
        for precision in ("float64", "float32"):
            plan = build(input_dim=9, widths="70,6", samples=3, init=init, dist=dist, precision=precision)
            cpu, dev = blocked.Ops(plan), gblocked.DeviceOps(plan)
            for layer, shape in ((1, (70, 9)), (2, (6, 70)), (3, (plan.classes, 6))):
                a = np.empty(shape, dtype=plan.dtype)
                b = dev.empty(shape)
                cpu.weights(2 ** 33 + 3, layer, a)
                dev.weights(2 ** 33 + 3, layer, b)
                b = dev.norms(b)
                out.append(dict(check="weights", name=f"{init}-{dist}-{precision}-layer{layer}",
                                dtype=b.dtype.name, diff=diff(a, b), equal=bool(np.array_equal(a, b))))
    for data in ("gaussian", "sphere"):
        for precision in ("float64", "float32"):
            for n0 in (9, 12):
                plan = build(input_dim=n0, widths="4", samples=5, data=data, precision=precision)
                cpu, dev = blocked.Ops(plan), gblocked.DeviceOps(plan)
                a = np.empty((n0, 5), dtype=plan.dtype)
                b = dev.empty((n0, 5))
                cpu.inputs(2 ** 33 + 3, a)
                dev.inputs(2 ** 33 + 3, b)
                b = dev.norms(b)
                out.append(dict(check="weights", name=f"inputs-{data}-{n0}-{precision}", dtype=b.dtype.name,
                                diff=diff(a, b), equal=bool(np.array_equal(a, b))))
    g = np.random.default_rng(7)
    for n in (5, gblocked.PART_ROWS, 2 * gblocked.PART_ROWS + 3):
        for precision in ("float64", "float32"):
            plan = build(input_dim=4, widths=str(n), samples=7, precision=precision)
            dev = gblocked.DeviceOps(plan)
            cpu = blocked.Ops(plan)
            A = g.standard_normal((n, 7)).astype(plan.dtype)
            H = g.standard_normal((n, 7)).astype(plan.dtype)
            for op in ("relu_norms", "mask_norms", "column_norms", "product_norms"):
                A1, n1 = A.copy(), np.empty(7)
                A2, n2 = dev.xp.asarray(A), dev.xp.zeros(7)
                if op in ("mask_norms", "product_norms"):
                    getattr(cpu, op)(A1, H, n1)
                    getattr(dev, op)(A2, dev.xp.asarray(H), n2)
                else:
                    getattr(cpu, op)(A1, n1)
                    getattr(dev, op)(A2, n2)
                n2 = dev.norms(n2)
                out.append(dict(check="norms", name=f"{op}-{n}rows-{precision}",
                                one_part=n <= gblocked.PART_ROWS,
                                diff=diff(n1, n2), equal=bool(np.array_equal(n1, n2)),
                                same_matrix=bool(np.array_equal(A1, dev.norms(A2)))))
    # weights drawn again for the backward pass (budget 0) and kept (a large budget)
    plan = build(input_dim=6, widths="7,5,8", samples=3, head="softmax:4")
    ref = (np.empty((3, 3, 3)), np.empty((3, 3, 3)), np.zeros(3, dtype=bool))
    blocked.fill(plan, 2 ** 33, 3, *ref)
    for budget in (0, 2 ** 30):
        got = (np.empty((3, 3, 3)), np.empty((3, 3, 3)), np.zeros(3, dtype=bool))
        gblocked.fill(plan, 2 ** 33, 3, *got, budget)
        out.append(dict(check="trials", name=f"budget-{budget}", diff=max(diff(ref[0], got[0]), diff(ref[1], got[1])),
                        equal=bool(np.array_equal(ref[2], got[2]))))
    return out


@pytest.fixture(scope="module")
def blocked_ops_sim():
    """blocked_ops_checks under the simulator (a subprocess): check name -> dict."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--simulate-blocked-ops"], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    return {f"{r['check']}:{r['name']}": r for r in map(json.loads, p.stdout.strip().splitlines())}


def _check_blocked_ops(results, simulator):
    for key, r in results.items():
        if r["check"] == "weights":
            # under the simulator the device code runs the CPU's arithmetic: bit for bit;
            # on a GPU, fused multiply-adds change the last bits of the float64 numbers
            # (which may round to a neighbouring float32)
            tol = 1e-13 if r["dtype"] == "float64" else 2.0 ** -23
            assert (r["equal"] if simulator else r["diff"] <= tol), r
        elif r["check"] == "norms":
            assert r["same_matrix"], r
            # one part (rows <= PART_ROWS): the CPU's order of summation; else to rounding
            assert (r["equal"] if simulator and r["one_part"] else r["diff"] <= 1e-13), r
        else:
            assert r["equal"] and r["diff"] <= RTOL, r


@pytest.mark.slow
def test_simulator_blocked_weights_norms_and_trials_match_cpu(blocked_ops_sim):
    checks = {r["check"] for r in blocked_ops_sim.values()}
    assert checks == {"weights", "norms", "trials"}
    assert {r["dtype"] for r in blocked_ops_sim.values() if r["check"] == "weights"} == {"float64", "float32"}
    _check_blocked_ops(blocked_ops_sim, simulator=True)


def test_gpu_blocked_weights_norms_and_trials_match_cpu():
    if not _gpu_available():
        pytest.skip("no CUDA GPU on this machine")
    from mcinit.kernels.cuda import blocked as gblocked
    assert gblocked.array_module().__name__ == "cupy", "the GPU's blocked kernel needs CuPy (pip install mcinit[cuda])"
    _check_blocked_ops({f"{r['check']}:{r['name']}": r for r in blocked_ops_checks()}, simulator=False)


def test_blocked_device_module_leaves_cupy_unimported():
    """mcinit's CUDA backend imports CuPy only when the blocked kernel runs on a real GPU
    (a fresh process: a GPU test of this module may have imported it)."""
    code = "import sys, mcinit.kernels.cuda.blocked; assert 'cupy' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


def test_cuda_dense_refuses_wn_direction():
    """--wn-grad direction is computed by the blocked kernel on the CUDA backend, not by its
    dense kernel: refused with one line before anything runs (the CPU computes it)."""
    from mcinit import config
    from mcinit.kernels import common, cuda
    cfg, data = config.build(input_dim=4, widths="5", samples=2, trials=1, init="wn", wn_grad="direction")
    plan = common.make_plan(cfg, data)
    with pytest.raises(config.ConfigError, match="--wn-grad direction: use --kernel blocked"):
        cuda.refuse_unbuilt(plan, "dense")
    with pytest.raises(config.ConfigError, match="--wn-grad direction"):
        cuda.fill(plan, 0, 1, np.empty((1, 2, 1)), np.empty((1, 2, 1)), np.zeros(1, dtype=bool), "dense")
    cuda.refuse_unbuilt(plan, "blocked")


def test_blocked_is_no_asynchronous_launch():
    """The blocked kernel runs through fill (trials one after another), not fill_async."""
    from mcinit import config
    from mcinit.kernels import common, cuda
    cfg, data = config.build(input_dim=4, widths="5", samples=2, trials=1)
    with pytest.raises(ValueError, match="one after another"):
        cuda.fill_async(common.make_plan(cfg, data), 0, 1, "blocked")


def test_device_row_of_normals_equals_rng():
    """The allocation-free row the GPU uses gives rng.fill_normal_row's numbers, bit for bit."""
    from mcinit import rng
    from mcinit.kernels import cuda_rng
    k0, k1 = rng.seed_key(2 ** 63 + 12345)
    for trial, n in ((0, 1), (5, 3), (2 ** 33 + 1, 31), (7, 32), (8, 33), (9, 70), (10, 1027)):
        c2, c3 = (np.uint64(w) for w in rng.counter_words(trial, 3, rng.STREAM_WEIGHTS))
        a = np.empty(n)
        b = np.empty(n)
        rng.fill_normal_row(k0, k1, c2, c3, 17, 0.75, a, n)
        cuda_rng.fill_normal_row_1pass(k0, k1, c2, c3, 17, 0.75, b, n)
        assert np.array_equal(a, b), n


@pytest.mark.slow     # a few seconds; the default run keeps under 5 minutes from a cold cache
def test_device_versions_of_cpu_helpers_give_the_same_numbers():
    """The GPU compiles head_error, input_factor and law_trial from the CPU source against the
    device rng namespace; compiled for the CPU the same way, they give the CPU's numbers."""
    from numba import njit
    from mcinit import config, rng
    from mcinit.kernels import common, cuda_rng, law, projected
    k0, k1 = rng.seed_key(99)
    head_dev = njit(cuda_rng.device_version(common.head_error))
    for head in (0, 1):
        K = 40                                     # >= 32: the CPU's vectorised row
        z = np.linspace(-2, 3, K)
        e1, e2 = np.empty(K), np.empty(K)
        common.head_error(k0, k1, 2 ** 33 + 3, 4, head, z, 5, e1, K)
        head_dev(k0, k1, 2 ** 33 + 3, 4, head, z, 5, e2, K)
        assert np.array_equal(e1, e2)
    inf_dev = njit(cuda_rng.device_version(projected.input_factor))
    for data in (0, 1):
        N, n0 = 40, 50
        R1, R2 = np.zeros((N, N)), np.zeros((N, N))
        x1, x2 = np.empty(N), np.empty(N)
        r1 = projected.input_factor(k0, k1, 7, data, np.zeros((1, 1)), 0, n0, N, R1, x1)
        r2 = inf_dev(k0, k1, 7, data, np.zeros((1, 1)), 0, n0, N, R2, x2)
        assert r1 == r2 and np.array_equal(R1, R2) and np.array_equal(x1, x2)
    cfg, data = config.build(input_dim=10, widths="30,20", head="gaussian:33", trials=5)
    plan = common.make_plan(cfg, data)
    fwd1, bwd1, dead1 = np.empty((5, 1, 2)), np.empty((5, 1, 2)), np.zeros(5, dtype=bool)
    law.fill(plan, 0, 5, fwd1, bwd1, dead1)
    cdf, offs, guide = law.plan_tables(plan)
    trial_dev = njit(cuda_rng.device_version(law.law_trial, head_error=head_dev))
    L, K = 2, 33
    for t in range(5):
        f, b = np.empty(L), np.empty(L)
        d = trial_dev(t, plan.k0, plan.k1, plan.widths, plan.var, plan.head, K, plan.data, 1.0,
                      cdf, offs, guide, np.zeros(L + 1), np.zeros(L + 1), np.zeros(L + 1),
                      np.zeros(L + 1), np.empty(K), np.empty(K), np.empty(K), f, b)
        assert d == dead1[t] and np.array_equal(f, fwd1[t, 0]) and np.array_equal(b, bwd1[t, 0])


# ------------------------------------------------------------------ the real compiler

def _toolkit():
    """(ptxas path, why not) for the CUDA toolkit of this machine."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    cands = []
    if home:
        cands.append(os.path.join(home, "bin", "ptxas"))
    cands.append("/usr/local/cuda/bin/ptxas")
    w = shutil.which("ptxas")
    if w:
        cands.append(w)
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c, None
    return None, "no CUDA toolkit found (CUDA_HOME unset and no ptxas / nvcc on PATH)"


_PTX_SCRIPT = r"""
import json, sys
from mcinit.kernels import cuda
if cuda.PACKAGE != "numba-cuda":
    print(json.dumps({"skip": "numba-cuda is not installed (pip install mcinit[cuda]); numba's "
                      "deprecated built-in numba.cuda cannot compile these kernels without a GPU"}))
    sys.exit(0)
out = {}
for name, ptx in cuda.compile_ptx_all((9, 0)).items():
    path = sys.argv[1] + "/" + name + ".ptx"
    open(path, "w").write(ptx)
    out[name] = path
print(json.dumps({"package": cuda.PACKAGE, "ptx": out}))
"""


def _parse_ptxas(text):
    regs = [int(m) for m in re.findall(r"Used (\d+) registers", text)]
    stores = [int(m) for m in re.findall(r"(\d+) bytes spill stores", text)]
    loads = [int(m) for m in re.findall(r"(\d+) bytes spill loads", text)]
    stack = [int(m) for m in re.findall(r"(\d+) bytes stack frame", text)]
    return dict(registers=max(regs, default=-1), spill_stores=sum(stores), spill_loads=sum(loads),
                stack=max(stack, default=0))


@pytest.mark.slow
def test_kernels_compile_for_sm90_and_assemble(ptx_build):
    ptxas, why, proc, _ = ptx_build
    if ptxas is None:
        pytest.skip(why)
    stdout, stderr = proc.communicate(timeout=900)
    hint = ("\n(numba-cuda found no NVVM/NVRTC: `pip install mcinit[cuda]` brings the CUDA 13.0 "
            "compiler wheels)" if "nvrtc" in stderr.lower() or "nvvm" in stderr.lower() else "")
    assert proc.returncode == 0, "compiling the kernels to PTX failed:\n" + stderr[-6000:] + hint
    info = json.loads(stdout.strip().splitlines()[-1])
    if "skip" in info:
        pytest.skip(info["skip"])
    rows = []
    for name, path in info["ptx"].items():
        with open(path) as f:
            version = re.search(r"^\.version\s+(\S+)", f.read(), re.M).group(1)
        a = subprocess.run([ptxas, "-arch=sm_90", "-v", path, "-o", path + ".cubin"],
                           capture_output=True, text=True, timeout=600)
        assert a.returncode == 0, (
            f"ptxas -arch=sm_90 rejected the {name} kernel (PTX ISA {version}; a ptxas older than "
            f"the NVVM that wrote it cannot read it):\n{a.stderr[-3000:]}")
        r = _parse_ptxas(a.stderr)
        r.update(name=name, ptx_isa=version)
        rows.append(r)
    print(f"\nptxas -arch=sm_90 -v ({ptxas}), package {info['package']}:")
    w = max(len(r["name"]) for r in rows)
    print(f"{'kernel':<{w}} {'registers':>9} {'spill stores':>13} {'spill loads':>12} {'stack':>6}")
    for r in rows:
        print(f"{r['name']:<{w}} {r['registers']:>9} {r['spill_stores']:>12}B {r['spill_loads']:>11}B "
              f"{r['stack']:>5}B")
    for r in rows:
        assert 0 < r["registers"] <= MAX_REGISTERS, r
        assert r["spill_stores"] <= MAX_SPILL_STORES, r


# ------------------------------------------------------------------ a real GPU

def test_api_answers_without_a_gpu():
    from mcinit.kernels import cuda
    assert isinstance(cuda.available(), bool)
    assert cuda.simulator() is False
    assert isinstance(cuda.describe_device(), str)


def _gpu_available():
    from mcinit.kernels import cuda
    return cuda.available()


@pytest.mark.parametrize("name", list(SIM_CASES) + list(GPU_CASES))
def test_gpu_matches_cpu(name, tmp_path):
    if not _gpu_available():
        pytest.skip("no CUDA GPU on this machine")
    _dataset(str(tmp_path / "data.npy"))
    case = SIM_CASES.get(name) or GPU_CASES[name]
    r = compare(name, case, str(tmp_path))
    print(json.dumps(r))
    _check(r)


def test_gpu_async_batches_overlap_and_agree(tmp_path):
    if not _gpu_available():
        pytest.skip("no CUDA GPU on this machine")
    from mcinit import config
    from mcinit.kernels import common, cuda, dense
    cfg, data = config.build(input_dim=50, widths="64,64", samples=2, trials=64)
    plan = common.make_plan(cfg, data)
    pend = [cuda.fill_async(plan, 32 * i, 32, "dense") for i in range(2)]   # two in flight
    got = [p.wait() for p in pend]
    fwd, bwd, dead = np.empty((64, 2, 2)), np.empty((64, 2, 2)), np.zeros(64, dtype=bool)
    dense.fill(plan, 0, 64, fwd, bwd, dead)
    np.testing.assert_allclose(np.concatenate([g[0] for g in got]), fwd, rtol=RTOL, atol=0)
    np.testing.assert_allclose(np.concatenate([g[1] for g in got]), bwd, rtol=RTOL, atol=0)
    assert np.array_equal(np.concatenate([g[2] for g in got]), dead)


# ------------------------------------------------------------------ subprocess entry

if __name__ == "__main__" and sys.argv[1:] == ["--simulate-blocked-ops"]:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    for r in blocked_ops_checks():
        print(json.dumps(r), flush=True)

if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--simulate":
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    datadir = sys.argv[2]
    for n in sys.argv[3:]:
        print(json.dumps(compare(n, SIM_CASES[n], datadir)), flush=True)
