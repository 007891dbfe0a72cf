"""Philox4x32-10 and the counter layout: every random word of a run.

    key     = (seed mod 2**32, seed div 2**32)                      64-bit seed
    counter = (column // 4,  row,  trial mod 2**32,
               (trial div 2**32) << 24 | layer << 12 | stream)

and lane ``column % 4`` of the 4x32-bit output is the word for that column
(the package docstring of mcinit.rng states the whole contract).
"""

import numpy as np
from numba import njit

#: dense weight rows W_l[i, :] (layer l = 1..L, head = L + 1)
STREAM_WEIGHTS = 0
#: projected kernel: G_l = W_l Q rows
STREAM_PROJ_G = 1
#: projected kernel: backward complement Y_l rows
STREAM_PROJ_Y = 2
#: head: softmax targets t (uniforms) or gaussian errors e, row = input index
STREAM_TARGET = 3
#: layer 0: random inputs, row = input index
STREAM_DATA = 4
#: law kernel: binomial, chi-square and head variates
STREAM_LAW = 5
#: sup kernel: perturbations of the local search, layer l, row (iteration << 12) | (start << 1) | direction
#: (n_0 + 1 normals per row: a tangent direction and the angle)
STREAM_SUP = 6

MAX_TRIALS = 1 << 40
MAX_LAYER = 1 << 12
MAX_STREAM = 1 << 12

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S24 = np.uint64(24)
_S12 = np.uint64(12)


@njit(cache=True, inline="always")
def _rounds_masked(x0, x1, x2, x3, k0, k1):
    """philox_block's ten rounds on words held in uint64 lanes masked to 32 bits (inputs
    already masked), so that loops over blocks vectorise (32 x 32 -> 64-bit products)."""
    for _ in range(10):
        p0 = _M0 * x0
        p1 = _M1 * x2
        n0 = (p1 >> _S32) ^ x1 ^ k0
        n2 = (p0 >> _S32) ^ x3 ^ k1
        x1 = p1 & _MASK
        x3 = p0 & _MASK
        x0 = n0 & _MASK
        x2 = n2 & _MASK
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return x0, x1, x2, x3


@njit(cache=True, inline="always")
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) under key (k0, k1); uint64 holding 32-bit words."""
    return _rounds_masked(np.uint64(c0) & _MASK, np.uint64(c1) & _MASK, np.uint64(c2) & _MASK,
                          np.uint64(c3) & _MASK, np.uint64(k0) & _MASK, np.uint64(k1) & _MASK)


@njit(cache=True, inline="always")
def counter_words(trial, layer, stream):
    """The two high counter words (c2, c3) of (trial, layer, stream), as uint64."""
    t = np.uint64(trial)
    c2 = t & _MASK
    c3 = ((t >> _S32) << _S24) | (np.uint64(layer) << _S12) | np.uint64(stream)
    return c2, c3


@njit(cache=True, inline="always", error_model="numpy")
def philox_words(k0, k1, c2, c3, row, nb, words):
    """words[4 b + i] = word i of Philox block (b, row, c2, c3), b = 0..nb-1.

    The same function as philox_block, written on masked uint64 lanes so that the
    loop over blocks vectorises (32 x 32 -> 64-bit products)."""
    r = np.uint64(row) & _MASK
    c2 = np.uint64(c2) & _MASK
    c3 = np.uint64(c3) & _MASK
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    for b in range(nb):
        x0, x1, x2, x3 = _rounds_masked(np.uint64(np.uint32(b)), r, c2, c3, k0, k1)
        words[4 * b] = np.uint32(x0)
        words[4 * b + 1] = np.uint32(x1)
        words[4 * b + 2] = np.uint32(x2)
        words[4 * b + 3] = np.uint32(x3)


@njit(cache=True, inline="always", error_model="numpy")
def philox_lanes(k0, k1, b, row, t0, n, layer, stream, out, base, stride):
    """out[base + c stride + i] = word c of Philox block (b, row) of
    counter_words(t0 + i, layer, stream), c = 0..3, i < n: one block for each of n
    consecutive trials, on masked uint64 lanes so that the loop over trials vectorises."""
    x0b = np.uint64(b) & _MASK
    r = np.uint64(row) & _MASK
    lo = ((np.uint64(layer) << _S12) | np.uint64(stream)) & _MASK
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    for i in range(n):
        t = np.uint64(t0 + i)
        x0, x1, x2, x3 = _rounds_masked(x0b, r, t & _MASK, (((t >> _S32) << _S24) | lo) & _MASK, k0, k1)
        out[base + i] = np.uint32(x0)
        out[base + stride + i] = np.uint32(x1)
        out[base + 2 * stride + i] = np.uint32(x2)
        out[base + 3 * stride + i] = np.uint32(x3)


# ---------------------------------------------------------------- Python API

def seed_key(seed):
    """The Philox key (k0, k1) of a seed 0 <= seed < 2**64, as uint64 words."""
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)


@njit(cache=True)
def _philox_many(ctr, key, out):
    for i in range(ctr.shape[0]):
        a, b, c, d = philox_block(np.uint64(ctr[i, 0]), np.uint64(ctr[i, 1]),
                                  np.uint64(ctr[i, 2]), np.uint64(ctr[i, 3]),
                                  np.uint64(key[i, 0]), np.uint64(key[i, 1]))
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c
        out[i, 3] = d


def philox4x32_10(counter, key):
    """Philox4x32-10 (Random123): uint32 counter[..., 4] and key[..., 2] -> uint32[..., 4]."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    if counter.shape[-1] != 4 or key.shape[-1] != 2:
        raise ValueError("counter must have last dimension 4 and key last dimension 2")
    shape = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    ctr = np.ascontiguousarray(np.broadcast_to(counter, shape + (4,)).reshape(-1, 4))
    k = np.ascontiguousarray(np.broadcast_to(key, shape + (2,)).reshape(-1, 2))
    out = np.empty(ctr.shape, dtype=np.uint32)
    _philox_many(ctr, k, out)
    return out.reshape(shape + (4,))

