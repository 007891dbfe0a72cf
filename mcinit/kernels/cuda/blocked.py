"""The blocked kernel on a GPU: the CPU's blocked trial on device arrays, products by cuBLAS.

The trial is not written a second time: ``fill`` runs kernels.blocked.blocked_trial, the
CPU's own, with :class:`DeviceOps` in place of the CPU's Ops and a
kernels.blocked.Workspace of device arrays.  What runs where:

    weights       on the device (weights_kernel): element (i, j) of W_l from the Philox
                  words of row i of (layer l, STREAM_WEIGHTS) and the CPU's transforms,
                  written straight into the layer's matrix (float32: the float64 number,
                  rounded).  Weight-normalised rows: row_scales_kernel first sums each
                  row's squares in column order, as the CPU does, one thread a row.
    products      cuBLAS (cupy.matmul into the workspace: dgemm, sgemm).
    ReLU, masks   on the device (part_norms_kernel, sum_parts_kernel), fused with the
    and norms     float64 column norms: a column's squares are summed in row order over
                  fixed parts of PART_ROWS rows, then the parts in order; the order is a
                  constant of this module, never of the launch geometry.
    inputs        N(0, I) or uniform on the sphere: drawn on the device (inputs_kernel,
                  one thread an input, a sphere's norm summed in the CPU's order); a fixed
                  dataset is copied to the device once per fill.
    head errors   on the host: the logits (K x N) come back, the CPU's head_errors gives
                  the errors, which go back (the softmax is the CPU's, bit for bit).
    ratios        on the host, from the squared norms ((L + 1) x N, two copies a trial; three
                  with --wn-grad direction, whose sums c_l part_norms_kernel makes too).

Trials run one after another; cuBLAS is parallel inside each product.  A trial draws the
CPU's random numbers (the device's fused multiply-adds in the normal quantile change the
last bits of a weight, as in the other device kernels); its sums are taken in other
orders (cuBLAS's, the parts above), so the ratios agree with the CPU's to rounding.

Without CuPy, or under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1), the arrays are NumPy
arrays (``array_module``): numpy.matmul does the products and the same numba-cuda
kernels do the rest (under the simulator, in Python).  CuPy is imported only here, when a
DeviceOps is made for a real GPU.
"""

import math

import numpy as np
from numba import cuda

from ... import rng
from ...initializers import DIST_NORMAL, DIST_UNIFORM, DIST_WN
from .. import blocked as cpu_blocked
from ..common import DATA_FIXED, DATA_SPHERE
from .device import SIM, block_words, lane, weight_value

__all__ = ["DeviceOps", "fill", "array_module", "kernel_signatures", "PART_ROWS"]

#: rows of a column whose squares one thread sums in order (one part of a column norm)
PART_ROWS = 64
#: threads per block (the simulator runs a Python thread per CUDA thread: small blocks)
TPB = 32 if SIM else 128
#: what part_norms_kernel does to the matrix before its squares are summed (PRODUCT: sums the
#: squares of A[j, x] H[j, x], A unchanged)
NORMS, RELU, MASK, PRODUCT = 0, 1, 2, 3


# ----------------------------------------------------------------- device kernels

@cuda.jit
def weights_kernel(k0, k1, c2, c3, dist, sd, ua, wn, rsc, out):
    """out[i, j] = row i, column j of the weight matrix of counters (c2, c3), i < n_out, j < n_in
    (out is n_out x n_in): sd N(0, 1) or U(-ua, ua) (dist), times rsc[i] when ``wn``.
    Thread q makes column block q % nb (columns 4b..4b+3) of row q // nb."""
    n_out, n_in = out.shape
    nb = (n_in + 3) // 4
    for q in range(cuda.grid(1), n_out * nb, cuda.gridsize(1)):
        i = q // nb
        b = q - i * nb
        w0, w1, w2, w3 = block_words(k0, k1, c2, c3, i, b)
        j = 4 * b
        for c in range(min(4, n_in - j)):
            v = weight_value(lane(w0, w1, w2, w3, c), dist, sd, ua)
            if wn:
                v = v * rsc[i]
            out[i, j + c] = v


@cuda.jit
def row_scales_kernel(k0, k1, c2, c3, n_out, n_in, gain, rsc):
    """rsc[i] = gain / ||v_i|| for the standard normal rows v_i of counters (c2, c3), i < n_out:
    the squares summed in column order (as kernels.blocked.layer_weights), thread i."""
    nb = (n_in + 3) // 4
    for i in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        s = 0.0
        for b in range(nb):
            w0, w1, w2, w3 = block_words(k0, k1, c2, c3, i, b)
            for c in range(min(4, n_in - 4 * b)):
                z = rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                s += z * z
        rsc[i] = gain / math.sqrt(s)


@cuda.jit
def inputs_kernel(k0, k1, c2, c3, sphere, H0):
    """H0[j, x] = column j of row x of counters (c2, c3): N(0, 1), divided by the norm of row x
    when ``sphere`` (H0 is n0 x N), as common.draw_inputs: the squares summed in
    common.dot's order (four partial sums by column mod 4, the last n0 mod 4 columns into
    the first, then (s0 + s1) + (s2 + s3)).  Thread x."""
    n0, N = H0.shape
    nb = (n0 + 3) // 4
    m = n0 - n0 % 4
    for x in range(cuda.grid(1), N, cuda.gridsize(1)):
        scale = 1.0
        if sphere:
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for b in range(nb):
                w0, w1, w2, w3 = block_words(k0, k1, c2, c3, x, b)
                for c in range(min(4, n0 - 4 * b)):
                    z = rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                    if c == 0 or 4 * b >= m:
                        s0 += z * z
                    elif c == 1:
                        s1 += z * z
                    elif c == 2:
                        s2 += z * z
                    else:
                        s3 += z * z
            scale = 1.0 / math.sqrt((s0 + s1) + (s2 + s3))
        for b in range(nb):
            w0, w1, w2, w3 = block_words(k0, k1, c2, c3, x, b)
            for c in range(min(4, n0 - 4 * b)):
                z = rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                H0[4 * b + c, x] = z * scale if sphere else z


@cuda.jit
def part_norms_kernel(A, H, mode, parts):
    """parts[p, x] = sum of A[j, x]^2 (float64) over the rows j of part p (PART_ROWS rows,
    in order), after A[j, x] = max(A[j, x], 0) (mode RELU) or A[j, x] = 1[H[j, x] > 0] A[j, x]
    (mode MASK) in place; of (A[j, x] H[j, x])^2 (mode PRODUCT, float64 factors).  Thread x
    of grid row p."""
    n, N = A.shape
    p = cuda.blockIdx.y
    for x in range(cuda.grid(1), N, cuda.gridsize(1)):
        s = 0.0
        for j in range(p * PART_ROWS, min(n, (p + 1) * PART_ROWS)):
            v = A[j, x]
            f = 0.0
            if mode == RELU and v < 0:
                A[j, x] = 0.0
            elif mode == MASK and not H[j, x] > 0:
                A[j, x] = 0.0
            elif mode == PRODUCT:
                f = np.float64(v) * np.float64(H[j, x])
            else:
                f = np.float64(v)
            s += f * f
        parts[p, x] = s


@cuda.jit
def sum_parts_kernel(parts, nparts, n2):
    """n2[x] = sum of parts[p, x] over p < nparts, in order.  Thread x."""
    for x in range(cuda.grid(1), n2.shape[0], cuda.gridsize(1)):
        s = 0.0
        for p in range(nparts):
            s += parts[p, x]
        n2[x] = s


# ----------------------------------------------------------------- host side

def array_module():
    """The array module of DeviceOps: CuPy on a real GPU, NumPy without CuPy or under the
    simulator (imported here, never when mcinit is)."""
    if SIM:
        return np
    try:
        import cupy
    except ImportError:
        return np
    return cupy


def _blocks(n):
    return max(1, -(-n // TPB))


class DeviceOps:
    """The array operations of kernels.blocked.blocked_trial on device arrays (the methods and
    meanings of kernels.blocked.Ops): weights, random inputs and reductions by the kernels
    above, products by ``xp.matmul`` (cuBLAS through CuPy), a fixed dataset and the head's
    errors by the CPU's Ops on the host.  ``xp``: CuPy, or NumPy (array_module())."""

    def __init__(self, plan):
        self.plan = plan
        self.xp = array_module()
        self.host = cpu_blocked.Ops(plan)
        self.on_host = self.xp is np
        # the kernels go to CuPy's current stream (by default both use the legacy default
        # stream), so that they and the products run in the order of the trial
        ptr = 0 if self.on_host else self.xp.cuda.get_current_stream().ptr
        self.stream = cuda.external_stream(ptr) if ptr else 0
        w = [int(v) for v in plan.widths]
        N = int(plan.samples)
        self.L = len(w) - 1
        self.parts = self.xp.empty((-(-max(w) // PART_ROWS), N))
        self.rsc = self.xp.empty(max(w[1:] + [1]))
        fixed = plan.data == DATA_FIXED
        self.H0 = np.empty((w[0], N), dtype=plan.dtype) if fixed and not self.on_host else None
        self.E = None
        # H of part_norms_kernel where it is not read: never A itself (the simulator copies
        # each argument in and out, and a second copy of A would undo the ReLU)
        self.unread = self.xp.zeros((1, 1), dtype=plan.dtype)

    def dev(self, a):
        """a as a kernel argument: a CuPy array as numba's view of it, without the stream
        synchronisation numba would do at every launch (the kernels run on CuPy's stream)."""
        return a if self.on_host else cuda.as_cuda_array(a, sync=False)

    def empty(self, shape):
        """An uninitialised device array of the plan's precision."""
        return self.xp.empty(shape, dtype=self.plan.dtype)

    def weights(self, trial, layer, out):
        """out = W_layer (n_out x n_in) of the trial; layer L + 1 is the head (N(0, 1))."""
        p = self.plan
        n_out, n_in = out.shape
        if layer == self.L + 1:
            dist, var, gain = DIST_NORMAL, 1.0, 0.0
        else:
            dist, var, gain = p.dist, float(p.var[layer - 1]), float(p.gain[layer - 1])
        c2, c3 = (np.uint64(v) for v in rng.counter_words(trial, layer, rng.STREAM_WEIGHTS))
        k0, k1 = np.uint64(p.k0), np.uint64(p.k1)
        wn = dist == DIST_WN
        if wn:
            row_scales_kernel[_blocks(n_out), TPB, self.stream](k0, k1, c2, c3, n_out, n_in, gain,
                                                                self.dev(self.rsc))
            dist, sd, ua = DIST_NORMAL, 1.0, 0.0
        elif dist == DIST_UNIFORM:
            sd, ua = 0.0, math.sqrt(3.0 * var)
        else:
            sd, ua = math.sqrt(var), 0.0
        nq = n_out * ((n_in + 3) // 4)
        weights_kernel[_blocks(nq), TPB, self.stream](k0, k1, c2, c3, dist, sd, ua, wn, self.dev(self.rsc),
                                                      self.dev(out))

    def inputs(self, trial, H0):
        """H0 (n0 x N) = the trial's inputs: drawn on the device, or a fixed dataset's (copied
        from the host by kernels.blocked.Ops.inputs)."""
        p = self.plan
        if p.data != DATA_FIXED:
            c2, c3 = (np.uint64(v) for v in rng.counter_words(trial, 0, rng.STREAM_DATA))
            inputs_kernel[_blocks(H0.shape[1]), TPB, self.stream](np.uint64(p.k0), np.uint64(p.k1), c2, c3,
                                                                  p.data == DATA_SPHERE, self.dev(H0))
        elif self.on_host:
            self.host.inputs(trial, H0)
        else:
            self.host.inputs(trial, self.H0)
            H0.set(self.H0)

    def matmul(self, A, B, out):
        """out = A B (cuBLAS's dgemm or sgemm; A may be a transposed view)."""
        self.xp.matmul(A, B, out=out)

    def _norms(self, A, H, mode, n2):
        n, N = A.shape
        nparts = max(1, -(-n // PART_ROWS))
        if nparts > self.parts.shape[0] or N > self.parts.shape[1]:
            self.parts = self.xp.empty((nparts, N))
        parts = n2.reshape(1, N) if nparts == 1 else self.parts[:nparts, :N]
        part_norms_kernel[(_blocks(N), nparts), TPB, self.stream](self.dev(A), self.dev(H), mode,
                                                                  self.dev(parts))
        if nparts > 1:
            sum_parts_kernel[_blocks(N), TPB, self.stream](self.dev(parts), nparts, self.dev(n2))

    def relu_norms(self, A, n2):
        """A = ReLU(A) in place and n2[x] = ||A[:, x]||^2 (float64)."""
        self._norms(A, self.unread, RELU, n2)

    def mask_norms(self, D, H, n2):
        """D = 1[H > 0] D in place and n2[x] = ||D[:, x]||^2 (float64)."""
        self._norms(D, H, MASK, n2)

    def column_norms(self, A, n2):
        """n2[x] = ||A[:, x]||^2 (float64)."""
        self._norms(A, self.unread, NORMS, n2)

    def product_norms(self, D, H, n2):
        """n2[x] = sum_j (D[j, x] H[j, x])^2 (float64; D and H distinct, unchanged)."""
        self._norms(D, H, PRODUCT, n2)

    def head_errors(self, trial, Z, E):
        """E = the head's errors for the logits Z (K x N), computed on the host by the CPU's
        code (kernels.blocked.Ops.head_errors)."""
        if self.on_host:
            self.host.head_errors(trial, Z, E)
            return
        if self.E is None:
            self.E = np.empty(E.shape, dtype=E.dtype)
        self.host.head_errors(trial, Z.get(), self.E)
        E.set(self.E)

    def norms(self, n2):
        """n2 as a NumPy array."""
        return n2 if self.on_host else n2.get()


def fill(plan, first, count, fwd, bwd, dead, budget):
    """Compute trials first..first+count-1 into fwd, bwd (count, N, L) and dead (count,), one
    trial after another; bwd is left as it is when the plan wants no backward ratios.
    budget: device bytes the kept weights may take (else each layer is drawn again for
    the backward pass)."""
    ops = DeviceOps(plan)
    ws = cpu_blocked.Workspace(ops, plan, cpu_blocked.weights_fit(plan, budget))
    L = ops.L
    fixed = plan.data == DATA_FIXED
    if fixed:
        ops.inputs(first, ws.H[0])
        ops.column_norms(ws.H[0], ws.hn2[0])
    for j in range(count):
        cpu_blocked.blocked_trial(ops, plan, first + j, ws, fixed_inputs=fixed)
        hn2 = ops.norms(ws.hn2)
        dn2 = ops.norms(ws.dn2) if plan.backward else hn2       # not read without the backward pass
        dead[j] = cpu_blocked.ratios(hn2, dn2, L, plan.backward, fwd[j], bwd[j])
        if ws.dc2 is not None:
            cpu_blocked.direction_bwd(hn2, dn2, ops.norms(ws.dc2), plan.gain, L, bwd[j])


def kernel_signatures():
    """name -> (python function, argument types) of every kernel above, in float64 and float32
    (for compile_ptx_all)."""
    from numba import typeof
    k, c, i, f = np.uint64(1), np.uint64(2), 3, 0.5
    sigs = {}
    for dt in (np.float64, np.float32):
        name = np.dtype(dt).name
        A, H, v = np.zeros((2, 2), dtype=dt), np.zeros((2, 2), dtype=dt), np.zeros(2)
        for fn, args in ((weights_kernel, (k, k, c, c, i, f, f, True, v, A)),
                         (inputs_kernel, (k, k, c, c, True, A)),
                         (part_norms_kernel, (A, H, i, np.zeros((2, 2))))):
            sigs[f"blocked-{fn.__name__}-{name}"] = (fn, tuple(typeof(a) for a in args))
    sigs["blocked-row_scales_kernel"] = (row_scales_kernel, tuple(typeof(a) for a in (k, k, c, c, i, i, f, v)))
    sigs["blocked-sum_parts_kernel"] = (sum_parts_kernel, tuple(typeof(a) for a in (np.zeros((2, 2)), i, v)))
    return sigs
