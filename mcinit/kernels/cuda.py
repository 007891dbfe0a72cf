"""The CUDA backend: the dense, projected and law kernels on an NVIDIA GPU.

    fill(plan, first, count, fwd, bwd, dead, kernel)      kernel: "dense" | "projected" | "law"
    fill_async(plan, first, count, kernel) -> Pending     .ready(), .wait(fwd, bwd, dead)

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
Only the ratios come back: fwd, bwd (count, N, L) and dead.
"""

import contextlib
import math
import os
import threading
import weakref

import numpy as np
from numba import cuda, float64, int64
from numba.core import config as _nbconfig

from .. import rng
from ..initializers import DIST_NORMAL, DIST_UNIFORM, DIST_WN
from . import common, cuda_rng
from . import law as _law
from . import projected as _proj
from .common import DATA_FIXED, DATA_SPHERE

__all__ = ["available", "simulator", "fill", "fill_async", "Pending", "compile_ptx_all",
           "KERNELS", "describe_device"]

KERNELS = ("dense", "projected", "law")

_SIM = bool(_nbconfig.ENABLE_CUDASIM)

#: threads per block of the block-per-trial kernels: None = by width (see _block_size);
#: the simulator runs one Python thread per CUDA thread, so it gets small blocks
TPB = 32 if _SIM else None
LAW_TPB = 32 if _SIM else 128
#: resident blocks of 128 threads per SM (as LAUNCH_BOUNDS: 128 registers a thread)
BLOCKS_PER_SM = 4
#: shared-memory sizes (float64 words): block reduction buffer, dense weight staging
RED = 256
SW = 2048
#: the most rows the dense backward stages at once
RBMAX = 16
_HALF = rng.HALF_WORD
#: (threads per block, blocks per SM) each kernel is compiled for: ptxas keeps to
#: 65536 / (128 * 4) = 128 registers a thread, spilling what it must (the state of
#: the outer loops, rarely touched) instead of dropping to two blocks per SM
LAUNCH_BOUNDS = {"dense": (128, 4), "projected": (128, 4), "law": (128, 4), "normals": (128, 4)}
#: numba-cuda (NVIDIA's package) or numba's built-in, deprecated CUDA target
PACKAGE = "numba-cuda" if getattr(cuda, "implementation", "") == "NVIDIA" else "numba.cuda (built-in)"


def _kernel(name):
    """cuda.jit for a kernel, with its launch bounds where the package has them."""
    if _SIM:
        return cuda.jit
    if PACKAGE == "numba-cuda":
        return cuda.jit(launch_bounds=LAUNCH_BOUNDS[name])
    tpb, blocks = LAUNCH_BOUNDS[name]
    return cuda.jit(max_registers=65536 // (tpb * blocks))


def simulator():
    """Whether numba runs CUDA kernels in its simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return _SIM


def available():
    """Whether a real CUDA GPU can run the kernels (False under the simulator)."""
    if _SIM:
        return False
    try:
        return bool(cuda.is_available()) and len(cuda.gpus) > 0
    except Exception:
        return False


def describe_device():
    """One line naming the device the kernels run on."""
    if _SIM:
        return "numba CUDA simulator (no GPU)"
    if not available():
        return "no CUDA GPU"
    d = cuda.get_current_device()
    name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
    cc = d.compute_capability
    free, total = cuda.current_context().get_memory_info()
    return (f"{name}, compute capability {cc[0]}.{cc[1]}, {d.MULTIPROCESSOR_COUNT} SMs, "
            f"{total / 2 ** 30:.1f} GiB")


# ----------------------------------------------------------------- the shared helpers

if _SIM:
    # The simulator runs kernels as Python: the shared @njit helpers run compiled for
    # the CPU, on the NumPy arrays behind the simulator's device arrays.
    def _h(a):
        item = a.__dict__.get("_item") if hasattr(a, "__dict__") else None
        if item is not None:
            return item._ary
        return getattr(a, "_ary", a)

    _head_error = common.head_error
    _write_ratios = common.write_ratios
    _input_factor = _proj.input_factor
    _law_trial = _law.law_trial
    _fill_normal_row = rng.fill_normal_row
else:
    @cuda.jit(device=True)
    def _h(a):
        return a

    _head_error = cuda.jit(device=True)(cuda_rng.device_version(common.head_error))
    _write_ratios = common.write_ratios
    _input_factor = cuda.jit(device=True)(cuda_rng.device_version(_proj.input_factor))
    _law_trial = cuda.jit(device=True)(cuda_rng.device_version(_law.law_trial,
                                                                head_error=_head_error))
    _fill_normal_row = cuda_rng.fill_normal_row_1pass


# ----------------------------------------------------------------- device building blocks

@cuda.jit(device=True)
def _bsum(v, red):
    """Sum of v over the block (every thread calls; blockDim a power of two <= RED)."""
    tid = cuda.threadIdx.x
    red[tid] = v
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            red[tid] += red[tid + h]
        cuda.syncthreads()
        h >>= 1
    r = red[0]
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def _bsum2(a, b, red, red2):
    """(sum of a, sum of b) over the block, in one pass."""
    tid = cuda.threadIdx.x
    red[tid] = a
    red2[tid] = b
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            red[tid] += red[tid + h]
            red2[tid] += red2[tid + h]
        cuda.syncthreads()
        h >>= 1
    ra = red[0]
    rb = red2[0]
    cuda.syncthreads()
    return ra, rb


@cuda.jit(device=True)
def _words(k0, k1, c2, c3, row, b):
    """The four words of column block b (columns 4b..4b+3) of ``row``: rng's counter layout."""
    return rng.philox_block(np.uint64(b), np.uint64(row), c2, c3, k0, k1)


@cuda.jit(device=True)
def _lane(w0, w1, w2, w3, c):
    """Word c of a block (one inversion call site in a loop over lanes keeps registers low)."""
    if c == 0:
        return w0
    if c == 1:
        return w1
    if c == 2:
        return w2
    return w3


@cuda.jit(device=True)
def _wval(w, dist, sd, ua):
    """A dense weight from its word: N(0, sd^2), U(-ua, ua) (as rng.fill_uniform_row), or N(0, 1)."""
    if dist == DIST_UNIFORM:
        lo = -ua
        width = ua - lo
        return lo + width * rng.u32_to_uniform(w)
    return sd * rng.u32_to_normal(w)


@cuda.jit(device=True)
def _norms2(A, N, n, out, col, red):
    """out[x, col] = ||A[x, :n]||^2 for x < N (block reductions)."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for x in range(N):
        p = 0.0
        for j in range(tid, n, T):
            a = A[x, j]
            p += a * a
        tot = _bsum(p, red)
        if tid == 0:
            out[x, col] = tot
    cuda.syncthreads()


@cuda.jit(device=True)
def _ratios(hn2, dn2, L, N, fwd, bwd):
    """common.write_ratios for every input (thread x); returns the block's dead flag."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    flag = 0
    for x in range(tid, N, T):
        if _write_ratios(_h(hn2[x]), _h(dn2[x]), L, _h(fwd[x]), _h(bwd[x])):
            flag = 1
    return cuda.syncthreads_or(flag)


# ----------------------------------------------------------------- dense

@cuda.jit(device=True)
def _dense_inputs(k0, k1, trial, data, X0, N, n0, H0, act0, red):
    """H0[x] = input x (fixed row, N(0, I) or uniform on the sphere, as common.draw_inputs);
    act0[j] = some input has H0[x, j] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    if data == DATA_FIXED:
        for x in range(N):
            for j in range(tid, n0, T):
                H0[x, j] = X0[x, j]
    else:
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_DATA)
        nb = (n0 + 3) // 4
        for x in range(N):
            p = 0.0
            for b in range(tid, nb, T):
                w0, w1, w2, w3 = _words(k0, k1, c2, c3, x, b)
                for c in range(min(4, n0 - 4 * b)):
                    z = rng.u32_to_normal(_lane(w0, w1, w2, w3, c))
                    H0[x, 4 * b + c] = z
                    p += z * z
            if data == DATA_SPHERE:
                s = 1.0 / math.sqrt(_bsum(p, red))
                for b in range(tid, nb, T):
                    for j in range(4 * b, min(4 * b + 4, n0)):
                        H0[x, j] *= s
    cuda.syncthreads()
    for j in range(tid, n0, T):
        a = 0
        for x in range(N):
            if H0[x, j] != 0.0:
                a = 1
        act0[j] = a
    cuda.syncthreads()


@cuda.jit(device=True)
def _dense_forward(k0, k1, c2, c3, dist, sd, ua, gain, Hin, actin, n_in,
                   Hout, actout, rsc, n_out, N, relu, cw, ws):
    """Hout[x, i] = (ReLU) W[i, :] . Hin[x, :] for rows i of (c2, c3), thread i.

    Row i is generated cw columns at a time into the thread's column of ws
    (ws[c * T + tid]) and applied to every input.  Columns that no
    input activates (actin == 0) contribute nothing: their Philox block is
    skipped, except for weight-normalised rows, whose norm needs every column;
    rsc[i] keeps a weight-normalised row's scale g/||v|| for the backward pass.
    actout[i] = some input has Hout[x, i] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    wn = dist == DIST_WN
    for i in range(tid, n_out, T):
        ss = 0.0
        for cb in range(0, n_in, cw):
            nc = min(cw, n_in - cb)
            for q in range(0, nc, 4):
                j = cb + q
                m = min(4, nc - q)
                need = wn
                for c in range(m):
                    if actin[j + c] != 0:
                        need = True
                if need:
                    w0, w1, w2, w3 = _words(k0, k1, c2, c3, i, j // 4)
                    for c in range(m):
                        val = 0.0
                        if wn or actin[j + c] != 0:
                            val = _wval(_lane(w0, w1, w2, w3, c), dist, sd, ua)
                        ss += val * val
                        ws[(q + c) * T + tid] = val
                else:
                    for c in range(m):
                        ws[(q + c) * T + tid] = 0.0
            for x in range(N):
                a = Hout[x, i] if cb > 0 else 0.0
                for c in range(nc):
                    a += ws[c * T + tid] * Hin[x, cb + c]
                Hout[x, i] = a
        sc = 1.0
        if wn:
            sc = gain / math.sqrt(ss)
            rsc[i] = sc
        anyp = 0
        for x in range(N):
            a = Hout[x, i]
            if wn:
                a = sc * a
            if relu and not a > 0.0:
                a = 0.0
            Hout[x, i] = a
            if a != 0.0:
                anyp = 1
        actout[i] = anyp
    cuda.syncthreads()


@cuda.jit(device=True)
def _dense_backward(k0, k1, c2, c3, dist, sd, ua, rsc, Din, ractin, n_out,
                    Hm, n_in, Dout, ractout, N, rb, ws, rows):
    """Dout[x, j] = 1[Hm[x, j] > 0] sum_i W[i, j] Din[x, i]; thread b owns columns 4b..4b+3.

    The rows i with some Din[x, i] != 0 (ractin) are regenerated, rb at a time,
    into the thread's part of ws; rsc[i] scales a weight-normalised row.
    ractout[j] = some Dout[x, j] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    wn = dist == DIST_WN
    nb = (n_in + 3) // 4
    for b in range(tid, nb, T):
        j = 4 * b
        m = min(4, n_in - j)
        e0 = False
        e1 = False
        e2 = False
        e3 = False
        for x in range(N):
            if Hm[x, j] > 0.0:
                e0 = True
            if m > 1 and Hm[x, j + 1] > 0.0:
                e1 = True
            if m > 2 and Hm[x, j + 2] > 0.0:
                e2 = True
            if m > 3 and Hm[x, j + 3] > 0.0:
                e3 = True
        for x in range(N):
            for c in range(m):
                Dout[x, j + c] = 0.0
        if e0 or e1 or e2 or e3:
            i = 0
            while i < n_out:
                nr = 0
                while i < n_out and nr < rb:
                    if ractin[i] != 0:
                        w0, w1, w2, w3 = _words(k0, k1, c2, c3, i, b)
                        sc = rsc[i] if wn else 1.0
                        for c in range(4):
                            e = e0 if c == 0 else (e1 if c == 1 else (e2 if c == 2 else e3))
                            val = 0.0
                            if e:
                                val = sc * _wval(_lane(w0, w1, w2, w3, c), dist, sd, ua)
                            ws[(4 * nr + c) * T + tid] = val
                        rows[nr] = i
                        nr += 1
                    i += 1
                for x in range(N):
                    s0 = Dout[x, j]
                    s1 = Dout[x, j + 1] if m > 1 else 0.0
                    s2 = Dout[x, j + 2] if m > 2 else 0.0
                    s3 = Dout[x, j + 3] if m > 3 else 0.0
                    for r in range(nr):
                        d = Din[x, rows[r]]
                        base = 4 * r * T + tid
                        s0 += ws[base] * d
                        s1 += ws[base + T] * d
                        s2 += ws[base + 2 * T] * d
                        s3 += ws[base + 3 * T] * d
                    Dout[x, j] = s0
                    if m > 1:
                        Dout[x, j + 1] = s1
                    if m > 2:
                        Dout[x, j + 2] = s2
                    if m > 3:
                        Dout[x, j + 3] = s3
        for c in range(m):
            a = 0
            for x in range(N):
                val = Dout[x, j + c]
                if not Hm[x, j + c] > 0.0:
                    val = 0.0
                Dout[x, j + c] = val
                if val != 0.0:
                    a = 1
            ractout[j + c] = a
    cuda.syncthreads()


@_kernel("dense")
def _dense_kernel(first, count, cw, rb, k0, k1, widths, hoff, var, gain, dist, head, K, data,
                  X0, N, H, D, Z, E, act, ract, rsc, hn2, dn2, fwd, bwd, dead):
    red = cuda.shared.array(RED, float64)
    ws = cuda.shared.array(SW, float64)
    rows = cuda.local.array(RBMAX, int64)
    tid = cuda.threadIdx.x
    s = cuda.blockIdx.x
    L = widths.shape[0] - 1
    Hs = H[s]
    acts = act[s]
    rscs = rsc[s]
    for t in range(s, count, cuda.gridDim.x):
        trial = first + t
        n0 = widths[0]
        _dense_inputs(k0, k1, trial, data, X0, N, n0, Hs[:, 0:n0], acts[0:n0], red)
        for l in range(1, L + 1):
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
            v = var[l - 1]
            a, b, e = hoff[l - 1], hoff[l], hoff[l + 1]
            _dense_forward(k0, k1, c2, c3, dist, math.sqrt(v), math.sqrt(3.0 * v), gain[l - 1],
                           Hs[:, a:b], acts[a:b], b - a, Hs[:, b:e], acts[b:e], rscs[b:e], e - b,
                           N, True, cw, ws)
        # head: z = W_o h^L, W_o ~ N(0, 1) rows of layer L + 1
        a, b = hoff[L], hoff[L + 1]
        nL = b - a
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_WEIGHTS)
        Zs = Z[s]
        Es = E[s]
        _dense_forward(k0, k1, c2, c3, DIST_NORMAL, 1.0, 0.0, 0.0, Hs[:, a:b], acts[a:b], nL,
                       Zs, ract[s, 1], rscs, K, N, False, cw, ws)
        for x in range(tid, N, cuda.blockDim.x):
            _head_error(k0, k1, trial, L + 1, head, _h(Zs[x]), x, _h(Es[x]), K)
        cuda.syncthreads()
        for c in range(tid, K, cuda.blockDim.x):
            f = 0
            for x in range(N):
                if Es[x, c] != 0.0:
                    f = 1
            ract[s, 1, c] = f
        cuda.syncthreads()
        # delta^L = 1[a^L > 0] (W_o^T e)
        _dense_backward(k0, k1, c2, c3, DIST_NORMAL, 1.0, 0.0, rscs, Es, ract[s, 1], K,
                        Hs[:, a:b], nL, D[s, 0], ract[s, 0], N, rb, ws, rows)
        _norms2(D[s, 0], N, nL, dn2[s], L, red)
        # delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
        cur = 0
        for l in range(L, 1, -1):
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
            v = var[l - 1]
            a, b, e = hoff[l - 1], hoff[l], hoff[l + 1]
            _dense_backward(k0, k1, c2, c3, dist, math.sqrt(v), math.sqrt(3.0 * v), rscs[b:e],
                            D[s, cur], ract[s, cur], e - b, Hs[:, a:b], b - a,
                            D[s, 1 - cur], ract[s, 1 - cur], N, rb, ws, rows)
            _norms2(D[s, 1 - cur], N, b - a, dn2[s], l - 1, red)
            cur = 1 - cur
        for l in range(L + 1):
            _norms2(Hs[:, hoff[l]:hoff[l + 1]], N, hoff[l + 1] - hoff[l], hn2[s], l, red)
        d = _ratios(hn2[s], dn2[s], L, N, fwd[t], bwd[t])
        if tid == 0:
            dead[t] = 1 if d else 0
        cuda.syncthreads()


# ----------------------------------------------------------------- projected

@cuda.jit(device=True)
def _mgs(A, N, n, Q, R, v, rmax, red):
    """projected.mgs with block reductions: thin QR of the rows A[x, :n]; returns the rank.

    Thread tid owns entries j = tid + k T of v and of every Q row; R is written by
    thread 0 and visible to the block on return."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    r = 0
    for x in range(N):
        p = 0.0
        for j in range(tid, n, T):
            a = A[x, j]
            v[j] = a
            p += a * a
        if tid == 0:
            for k in range(r):
                R[k, x] = 0.0
        a2 = _bsum(p, red)
        if a2 == 0.0:
            continue
        for _ in range(2):
            for k in range(r):
                p = 0.0
                for j in range(tid, n, T):
                    p += Q[k, j] * v[j]
                c = _bsum(p, red)
                if tid == 0:
                    R[k, x] += c
                for j in range(tid, n, T):
                    v[j] -= c * Q[k, j]
        p = 0.0
        for j in range(tid, n, T):
            p += v[j] * v[j]
        nv = math.sqrt(_bsum(p, red))
        if r < rmax and nv > _proj.RANK_TOL * math.sqrt(a2):
            inv = 1.0 / nv
            for j in range(tid, n, T):
                Q[r, j] = v[j] * inv
            if tid == 0:
                for xp in range(x):
                    R[r, xp] = 0.0
                R[r, x] = nv
            r += 1
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def _back_step(Q, r, G, n_out, Dm, Nv, rd, Rd, Y, n, Hm, Dout, v, red, red2):
    """projected.back_step: Dout[x] = 1[h > 0] (Q G^T D[x] + (I - QQ^T) sum_m Rd[m, x] Y[m])."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for x in range(Nv):
        for j in range(tid, n, T):
            a = 0.0
            for m in range(rd):
                a += Rd[m, x] * Y[m, j]
            v[j] = a
        for k in range(r):
            pc = 0.0
            for j in range(tid, n, T):
                pc += Q[k, j] * v[j]
            pp = 0.0
            for i in range(tid, n_out, T):
                pp += G[k, i] * Dm[x, i]
            c, p = _bsum2(pc, pp, red, red2)
            for j in range(tid, n, T):
                v[j] += (p - c) * Q[k, j]
        for j in range(tid, n, T):
            Dout[x, j] = v[j] if Hm[x, j] > 0.0 else 0.0
    cuda.syncthreads()


@cuda.jit(device=True)
def _support(Hm, N, n, need):
    """projected.support: need[j] = some input has Hm[x, j] > 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for j in range(tid, n, T):
        f = 0
        for x in range(N):
            if Hm[x, j] > 0.0:
                f = 1
        need[j] = f
    cuda.syncthreads()


@cuda.jit(device=True)
def _normal_rows_where(k0, k1, c2, c3, nrows, scale, Y, n, need):
    """Rows m < nrows of rng.fill_normal_row_where (thread per column block)."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    nb = (n + 3) // 4
    for m in range(nrows):
        for b in range(tid, nb, T):
            j = 4 * b
            mm = min(4, n - j)
            anyn = False
            for c in range(mm):
                if need[j + c] != 0:
                    anyn = True
            if anyn:
                w0, w1, w2, w3 = _words(k0, k1, c2, c3, m, b)
                for c in range(mm):
                    val = 0.0
                    if need[j + c] != 0:
                        val = scale * rng.u32_to_normal(_lane(w0, w1, w2, w3, c))
                    Y[m, j + c] = val
            else:
                for c in range(mm):
                    Y[m, j + c] = 0.0
    cuda.syncthreads()


@_kernel("projected")
def _projected_kernel(first, count, k0, k1, widths, hoff, var, head, K, data, R0f, r0f, N,
                      H, Q, R, G, Go, D, E, Z, Qs, Rs, Y, V, need, rank, hn2, dn2,
                      fwd, bwd, dead):
    red = cuda.shared.array(RED, float64)
    red2 = cuda.shared.array(RED, float64)
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    s = cuda.blockIdx.x
    L = widths.shape[0] - 1
    rs = Qs.shape[1]
    Hs = H[s]
    v = V[s]
    rk = rank[s]
    nd = need[s]
    for t in range(s, count, cuda.gridDim.x):
        trial = first + t
        if tid == 0:
            rk[0] = _input_factor(k0, k1, trial, data, _h(R0f), r0f, widths[0], N, _h(R[s, 0]),
                                  _h(hn2[s, :, 0]))
        cuda.syncthreads()
        r = rk[0]
        # forward: a^l(x) = sum_k R[k, x] G[k, :], G = (W_l Q)^T rows ~ N(0, v_l)
        for l in range(1, L + 1):
            n = widths[l]
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_G)
            sd = math.sqrt(var[l - 1])
            Gl = G[s, l]
            Rp = R[s, l - 1]
            Hl = Hs[:, hoff[l]:hoff[l + 1]]
            nb = (n + 3) // 4
            if N == 1 and r == 1:
                s00 = Rp[0, 0]
                for b in range(tid, nb, T):
                    w0, w1, w2, w3 = _words(k0, k1, c2, c3, 0, b)
                    for c in range(min(4, n - 4 * b)):
                        w = _lane(w0, w1, w2, w3, c)
                        g = sd * rng.u32_to_normal(w) if w >= _HALF else 0.0
                        Gl[0, 4 * b + c] = g
                        Hl[0, 4 * b + c] = s00 * g
            else:
                for b in range(tid, nb, T):
                    mm = min(4, n - 4 * b)
                    for k in range(r):
                        w0, w1, w2, w3 = _words(k0, k1, c2, c3, k, b)
                        for c in range(mm):
                            Gl[k, 4 * b + c] = sd * rng.u32_to_normal(_lane(w0, w1, w2, w3, c))
                    for j in range(4 * b, 4 * b + mm):
                        for x in range(N):
                            a = 0.0
                            for k in range(r):
                                a += Rp[k, x] * Gl[k, j]
                            if a < 0.0:
                                a = 0.0
                            Hl[x, j] = a
            cuda.syncthreads()
            r = _mgs(Hl, N, n, Q[s, l], R[s, l], v, min(N, n), red)
            if tid == 0:
                rk[l] = r
        # head: z = G_o R_L, G_o = W_o Q_L ~ N(0, 1)
        rL = r
        nL = widths[L]
        HL = Hs[:, hoff[L]:hoff[L + 1]]
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_G)
        Gos = Go[s]
        for k in range(tid, rL, T):
            _fill_normal_row(k0, k1, c2, c3, k, 1.0, _h(Gos[k]), K)
        cuda.syncthreads()
        Zs = Z[s]
        Es = E[s]
        RL = R[s, L]
        for x in range(tid, N, T):
            for c in range(K):
                a = 0.0
                for k in range(rL):
                    a += RL[k, x] * Gos[k, c]
                Zs[x, c] = a
            _head_error(k0, k1, trial, L + 1, head, _h(Zs[x]), x, _h(Es[x]), K)
        cuda.syncthreads()
        # delta^L = 1[a^L > 0] (Q_L G_o^T e + (I - Q_L Q_L^T) Y_o R_E)
        Qss = Qs[s]
        Rss = Rs[s]
        Ys = Y[s]
        re = _mgs(Es, N, K, Qss, Rss, v, rs, red)
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_Y)
        _support(HL, N, nL, nd)
        _normal_rows_where(k0, k1, c2, c3, re, 1.0, Ys, nL, nd)
        _back_step(Q[s, L], rL, Gos, K, Es, N, re, Rss, Ys, nL, HL, D[s, 0], v, red, red2)
        _norms2(D[s, 0], N, nL, dn2[s], L, red)
        # delta^(l-1) = 1[a^(l-1) > 0] (Q G_l^T delta^l + (I - QQ^T) Y_l R_D)
        cur = 0
        for l in range(L, 1, -1):
            n_out = widths[l]
            n = widths[l - 1]
            Dl = D[s, cur]
            rd = _mgs(Dl, N, n_out, Qss, Rss, v, rs, red)
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_Y)
            Hm = Hs[:, hoff[l - 1]:hoff[l]]
            _support(Hm, N, n, nd)
            _normal_rows_where(k0, k1, c2, c3, rd, math.sqrt(var[l - 1]), Ys, n, nd)
            _back_step(Q[s, l - 1], rk[l - 1], G[s, l], n_out, Dl, N, rd, Rss, Ys, n, Hm,
                       D[s, 1 - cur], v, red, red2)
            _norms2(D[s, 1 - cur], N, n, dn2[s], l - 1, red)
            cur = 1 - cur
        for l in range(1, L + 1):
            _norms2(Hs[:, hoff[l]:hoff[l + 1]], N, widths[l], hn2[s], l, red)
        d = _ratios(hn2[s], dn2[s], L, N, fwd[t], bwd[t])
        if tid == 0:
            dead[t] = 1 if d else 0
        cuda.syncthreads()


# ----------------------------------------------------------------- law

@_kernel("law")
def _law_kernel(first, count, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
                C, Dd, RHO, DN2, GO, ZZ, EE, fwd, bwd, dead):
    i = cuda.grid(1)
    nt = cuda.gridsize(1)
    for t in range(i, count, nt):
        d = _law_trial(first + t, k0, k1, _h(widths), _h(var), head, K, data, xnorm2,
                       _h(cdf), _h(offs), _h(guide), _h(C[:, i]), _h(Dd[:, i]), _h(RHO[:, i]), _h(DN2[:, i]),
                       _h(GO[:, i]), _h(ZZ[:, i]), _h(EE[:, i]), _h(fwd[t, 0]), _h(bwd[t, 0]))
        dead[t] = 1 if d else 0


@_kernel("normals")
def _normals_kernel(k0, k1, trial, rows, cols, out):
    """The generation floor: rows x cols normals of (trial, layer 1, STREAM_WEIGHTS), thread per
    column block, summed per thread (out[thread]) so that nothing is stored."""
    i = cuda.grid(1)
    nt = cuda.gridsize(1)
    nb = (cols + 3) // 4
    c2, c3 = rng.counter_words(trial, 1, rng.STREAM_WEIGHTS)
    acc = 0.0
    for q in range(i, rows * nb, nt):
        w0, w1, w2, w3 = _words(k0, k1, c2, c3, q // nb, q % nb)
        for c in range(4):
            acc += rng.u32_to_normal(_lane(w0, w1, w2, w3, c))
    if i < out.shape[0]:
        out[i] = acc


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
    if _SIM:
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
    if _SIM:
        grid = min(grid, 2)
    return grid, tpb, grid


def _chunks(tpb):
    """Dense staging: columns per forward chunk (a multiple of 4) and rows per backward chunk."""
    cw = max(4, (SW // tpb) // 4 * 4)
    rb = max(1, min(RBMAX, SW // (4 * tpb)))
    return cw, rb


def _check(plan, kernel):
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
        # the input factor of a fixed dataset, computed on the CPU exactly as projected.fill does
        if not hasattr(plan, "_input_factor"):
            N, n0 = plan.samples, int(plan.widths[0])
            R0 = np.zeros((min(N, n0), N))
            r0 = 0
            if plan.data == DATA_FIXED:
                r0 = _proj.mgs(plan.X0, N, n0, np.empty((min(N, n0), n0)), R0, np.empty(n0))
            plan._input_factor = (R0, r0)
        R0, r0 = plan._input_factor
        c["R0"] = np.ascontiguousarray(R0, dtype=np.float64)
        c["r0"] = int(r0)
    else:
        if not hasattr(plan, "_law_tables"):       # as law.fill keeps them
            plan._law_tables = _law.tables(plan.widths[1:])
        cdf, offs, guide = plan._law_tables
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


_KERNEL_FUNCS = {"dense": _dense_kernel, "projected": _projected_kernel, "law": _law_kernel}


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
    from ..config import build
    kw = dict(input_dim=6, widths="5,7", samples=1 if kernel == "law" else 2, trials=1)
    cfg, data = build(**kw)
    return common.make_plan(cfg, data)


def kernel_signatures():
    """name -> (python function, argument types) of every kernel fill and the benchmark launch."""
    from numba import typeof
    sigs = {}
    for kernel in KERNELS:
        plan = _example_plan(kernel)
        d, c = _host_constants(plan, kernel)
        ws = {k: np.zeros(shape, dtype=dt) for k, (shape, dt) in _workspace_shapes(kernel, d, 1).items()}
        out = (np.zeros((1, d.N, d.L)), np.zeros((1, d.N, d.L)), np.zeros(1, dtype=np.uint8))
        args = _args(kernel, plan, d, c, ws, 0, 1, out, 4, 1)
        sigs[kernel] = (_KERNEL_FUNCS[kernel], tuple(typeof(a) for a in args))
    sigs["normals"] = (_normals_kernel, tuple(typeof(a) for a in (
        np.uint64(1), np.uint64(2), 0, 1, 4, np.zeros(1))))
    return sigs


def compile_ptx_all(cc=(9, 0)):
    """name -> PTX of every kernel this module launches, compiled by NVVM for compute
    capability cc (no GPU needed; not under the simulator)."""
    if _SIM:
        raise RuntimeError("compile_ptx_all needs the real CUDA target, not the simulator")
    from numba.core import types
    out = {}
    with _compute_capability(cc):
        for name, (fn, argtys) in kernel_signatures().items():
            kw = {"launch_bounds": LAUNCH_BOUNDS[name]} if PACKAGE == "numba-cuda" else {}
            ptx, _ = cuda.compile_ptx(fn.py_func, types.void(*argtys), cc=tuple(cc), **kw)
            out[name] = ptx
    return out
