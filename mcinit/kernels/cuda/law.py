"""The law kernel on the GPU: one thread per trial running law.law_trial; the benchmark's generation-floor kernel."""

from numba import cuda

from ... import rng
from .device import as_array, block_words, kernel_jit, lane, law_trial

# ----------------------------------------------------------------- law

@kernel_jit("law")
def law_kernel(first, count, k0, k1, widths, var, head, K, data, xnorm2, cdf, offs, guide,
                C, Dd, RHO, DN2, GO, ZZ, EE, fwd, bwd, dead):
    i = cuda.grid(1)
    nt = cuda.gridsize(1)
    for t in range(i, count, nt):
        d = law_trial(first + t, k0, k1, as_array(widths), as_array(var), head, K, data, xnorm2,
                      as_array(cdf), as_array(offs), as_array(guide), as_array(C[:, i]), as_array(Dd[:, i]),
                      as_array(RHO[:, i]), as_array(DN2[:, i]), as_array(GO[:, i]), as_array(ZZ[:, i]),
                      as_array(EE[:, i]), as_array(fwd[t, 0]), as_array(bwd[t, 0]))
        dead[t] = 1 if d else 0


@kernel_jit("normals")
def normals_kernel(k0, k1, trial, rows, cols, out):
    """The generation floor: rows x cols normals of (trial, layer 1, STREAM_WEIGHTS), thread per
    column block, summed per thread (out[thread]) so that nothing is stored."""
    i = cuda.grid(1)
    nt = cuda.gridsize(1)
    nb = (cols + 3) // 4
    c2, c3 = rng.counter_words(trial, 1, rng.STREAM_WEIGHTS)
    acc = 0.0
    for q in range(i, rows * nb, nt):
        w0, w1, w2, w3 = block_words(k0, k1, c2, c3, q // nb, q % nb)
        for c in range(4):
            acc += rng.u32_to_normal(lane(w0, w1, w2, w3, c))
    if i < out.shape[0]:
        out[i] = acc

