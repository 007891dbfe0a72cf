"""The CUDA kernels' shared device code: launch settings, the CPU helpers compiled for the
GPU (or run as they are under the simulator), block reductions and weight words.

Every kernel module (dense, projected, law) builds on these; the host side is the
package's __init__.
"""

import numpy as np
from numba import cuda
from numba.core import config as nb_config

from ... import rng
from ...initializers import DIST_UNIFORM
from .. import common, cuda_rng
from .. import law as cpu_law
from .. import projected as cpu_projected

#: whether numba runs CUDA kernels in its simulator (NUMBA_ENABLE_CUDASIM=1)
SIM = bool(nb_config.ENABLE_CUDASIM)
#: shared-memory sizes (float64 words): block reduction buffer, dense weight staging
RED = 256
SW = 2048
#: the most rows the dense backward stages at once
RBMAX = 16
#: (threads per block, blocks per SM) each kernel is compiled for: ptxas keeps to
#: 65536 / (128 * 4) = 128 registers a thread, spilling what it must (the state of
#: the outer loops, rarely touched) instead of dropping to two blocks per SM
LAUNCH_BOUNDS = {"dense": (128, 4), "projected": (128, 4), "law": (128, 4), "normals": (128, 4)}
#: numba-cuda (NVIDIA's package) or numba's built-in, deprecated CUDA target
PACKAGE = "numba-cuda" if getattr(cuda, "implementation", "") == "NVIDIA" else "numba.cuda (built-in)"


def kernel_jit(name):
    """cuda.jit for a kernel, with its launch bounds where the package has them."""
    if SIM:
        return cuda.jit
    if PACKAGE == "numba-cuda":
        return cuda.jit(launch_bounds=LAUNCH_BOUNDS[name])
    tpb, blocks = LAUNCH_BOUNDS[name]
    return cuda.jit(max_registers=65536 // (tpb * blocks))


# ----------------------------------------------------------------- the shared helpers

if SIM:
    # The simulator runs kernels as Python: the shared @njit helpers run compiled for
    # the CPU, on the NumPy arrays behind the simulator's device arrays.
    def as_array(a):
        item = a.__dict__.get("_item") if hasattr(a, "__dict__") else None
        if item is not None:
            return item._ary
        return getattr(a, "_ary", a)

    head_error = common.head_error
    write_ratios = common.write_ratios
    input_factor = cpu_projected.input_factor
    law_trial = cpu_law.law_trial
    fill_normal_row = rng.fill_normal_row
else:
    @cuda.jit(device=True)
    def as_array(a):
        return a

    head_error = cuda.jit(device=True)(cuda_rng.device_version(common.head_error))
    write_ratios = common.write_ratios
    input_factor = cuda.jit(device=True)(cuda_rng.device_version(cpu_projected.input_factor))
    law_trial = cuda.jit(device=True)(cuda_rng.device_version(cpu_law.law_trial,
                                                                head_error=head_error))
    fill_normal_row = cuda_rng.fill_normal_row_1pass


# ----------------------------------------------------------------- device building blocks

@cuda.jit(device=True)
def block_sum(v, red):
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
def block_sum2(a, b, red, red2):
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
def block_words(k0, k1, c2, c3, row, b):
    """The four words of column block b (columns 4b..4b+3) of ``row``: rng's counter layout."""
    return rng.philox_block(np.uint64(b), np.uint64(row), c2, c3, k0, k1)


@cuda.jit(device=True)
def lane(w0, w1, w2, w3, c):
    """Word c of a block (one inversion call site in a loop over lanes keeps registers low)."""
    if c == 0:
        return w0
    if c == 1:
        return w1
    if c == 2:
        return w2
    return w3


@cuda.jit(device=True)
def weight_value(w, dist, sd, ua):
    """A dense weight from its word: N(0, sd^2), U(-ua, ua) (as rng.fill_uniform_row), or N(0, 1)."""
    if dist == DIST_UNIFORM:
        lo = -ua
        width = ua - lo
        return lo + width * rng.u32_to_uniform(w)
    return sd * rng.u32_to_normal(w)


@cuda.jit(device=True)
def row_norms2(A, N, n, out, col, red):
    """out[x, col] = ||A[x, :n]||^2 for x < N (block reductions)."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for x in range(N):
        p = 0.0
        for j in range(tid, n, T):
            a = A[x, j]
            p += a * a
        tot = block_sum(p, red)
        if tid == 0:
            out[x, col] = tot
    cuda.syncthreads()


@cuda.jit(device=True)
def block_ratios(hn2, dn2, L, N, fwd, bwd):
    """common.write_ratios for every input (thread x); returns the block's dead flag."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    flag = 0
    for x in range(tid, N, T):
        if write_ratios(as_array(hn2[x]), as_array(dn2[x]), L, as_array(fwd[x]), as_array(bwd[x])):
            flag = 1
    return cuda.syncthreads_or(flag)


