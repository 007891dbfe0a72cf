"""Row fillers: rows of normal and uniform numbers of the generator, as the kernels draw them.

Each row of a matrix starts a fresh Philox block, so a kernel regenerates any row
of any weight matrix on its own; column j of a row is word j (lane j % 4 of block
j // 4).  The ``_ws`` variants take caller-provided scratch and transform words in
vectorised passes (normals_of_words); the others run one pass with no scratch.
"""

import numpy as np
from numba import njit

from .philox import counter_words, philox_block, philox_words, seed_key
from .variates import HALF_WORD, HALF_WORD32, normals_of_words, u32_to_normal, u32_to_uniform

@njit(cache=True)
def row_workspace(n):
    """Scratch for the row generators below on rows of up to n columns (float64, 5 n + 16)."""
    return np.empty(5 * n + 16)

@njit(cache=True, error_model="numpy")
def fill_normal_row_ws(k0, k1, c2, c3, row, scale, out, n, ws):
    """fill_normal_row with caller-provided scratch ws = row_workspace(n') for n' >= n."""
    nb = (n + 3) // 4
    wsu = ws.view(np.uint32)
    words = wsu[wsu.shape[0] - 4 * nb:]
    philox_words(k0, k1, c2, c3, row, nb, words)
    normals_of_words(words, n, scale, out, ws[:ws.shape[0] - 2 * nb])


@njit(cache=True, error_model="numpy")
def fill_normal_row(k0, k1, c2, c3, row, scale, out, n):
    """out[j] = scale * N(0, 1) for columns j = 0..n-1 of ``row``: u32_to_normal of
    word j (lane j % 4 of block j // 4).  Long rows go through fill_normal_row_ws."""
    r = np.uint64(row)
    if n < 32:   # short rows: one pass, no scratch allocation
        for b in range((n + 3) // 4):
            w0, w1, w2, w3 = philox_block(np.uint64(b), r, c2, c3, k0, k1)
            j = 4 * b
            out[j] = scale * u32_to_normal(w0)
            if j + 1 < n:
                out[j + 1] = scale * u32_to_normal(w1)
            if j + 2 < n:
                out[j + 2] = scale * u32_to_normal(w2)
            if j + 3 < n:
                out[j + 3] = scale * u32_to_normal(w3)
        return
    fill_normal_row_ws(k0, k1, c2, c3, row, scale, out, n, row_workspace(n))


@njit(cache=True, error_model="numpy")
def fill_normal_cols_ws(k0, k1, c2, c3, row, scale, cols, m, out, ws):
    """out[i] = scale * (the normal of column cols[i] of ``row``), i < m: only the
    columns asked for are transformed.  cols ascending; ws = row_workspace(n) with
    n > cols[m - 1]."""
    if m == 0:
        return
    nb = cols[m - 1] // 4 + 1
    wsu = ws.view(np.uint32)
    words = wsu[wsu.shape[0] - 4 * nb:]
    philox_words(k0, k1, c2, c3, row, nb, words)
    picked = wsu[wsu.shape[0] - 4 * nb - m:wsu.shape[0] - 4 * nb]
    for i in range(m):
        picked[i] = words[cols[i]]
    normals_of_words(picked, m, scale, out, ws[:(wsu.shape[0] - 4 * nb - m) // 2])


@njit(cache=True)
def fill_normal_row_where(k0, k1, c2, c3, row, scale, out, n, need):
    """As fill_normal_row, but only the columns j with need[j] != 0 are computed
    (the others are set to 0): the same numbers where computed."""
    r = np.uint64(row)
    nb = (n + 3) // 4
    for b in range(nb):
        j = 4 * b
        m = min(4, n - j)
        any_needed = False
        for i in range(m):
            if need[j + i] != 0:
                any_needed = True
        if not any_needed:
            for i in range(m):
                out[j + i] = 0.0
            continue
        w0, w1, w2, w3 = philox_block(np.uint64(b), r, c2, c3, k0, k1)
        out[j] = scale * u32_to_normal(w0) if need[j] != 0 else 0.0
        if m > 1:
            out[j + 1] = scale * u32_to_normal(w1) if need[j + 1] != 0 else 0.0
        if m > 2:
            out[j + 2] = scale * u32_to_normal(w2) if need[j + 2] != 0 else 0.0
        if m > 3:
            out[j + 3] = scale * u32_to_normal(w3) if need[j + 3] != 0 else 0.0


@njit(cache=True)
def fill_relu_normal_row(k0, k1, c2, c3, row, scale, out, n):
    """out[j] = max(0, scale z_j) with z_j the normals of fill_normal_row and scale > 0.

    z_j > 0 exactly when its word is >= 2^31, so the inversion runs only there."""
    r = np.uint64(row)
    nb = (n + 3) // 4
    for b in range(nb):
        w0, w1, w2, w3 = philox_block(np.uint64(b), r, c2, c3, k0, k1)
        j = 4 * b
        out[j] = scale * u32_to_normal(w0) if w0 >= HALF_WORD else 0.0
        if j + 1 < n:
            out[j + 1] = scale * u32_to_normal(w1) if w1 >= HALF_WORD else 0.0
        if j + 2 < n:
            out[j + 2] = scale * u32_to_normal(w2) if w2 >= HALF_WORD else 0.0
        if j + 3 < n:
            out[j + 3] = scale * u32_to_normal(w3) if w3 >= HALF_WORD else 0.0


#: values per block of rows in fill_normal_block_cols: the block's scratch stays in cache
BLOCK_VALUES = 8192


@njit(cache=True)
def block_rows(n):
    """Rows of n columns per block of fill_normal_block_cols."""
    return max(1, BLOCK_VALUES // max(n, 1))


@njit(cache=True)
def block_workspace(n):
    """Scratch for fill_normal_block_cols on rows of up to n columns, block_rows of them at a
    time (block_rows(n') for any n' <= n)."""
    return np.empty(max(5 * BLOCK_VALUES, 3 * n + 8) + 16)


@njit(cache=True, error_model="numpy")
def fill_normal_block_cols(k0, k1, c2, c3, row0, nrows, scale, cols, m, out, ws):
    """out[r m + i] = scale * (the normal of column cols[i] of row row0 + r), r < nrows, i < m:
    a block of rows at once, so the vectorised passes run over nrows m values.
    cols ascending; nrows <= block_rows(n) for n > cols[m - 1], and ws = block_workspace(n') for n' >= n."""
    if m == 0:
        return
    nb = cols[m - 1] // 4 + 1
    wsu = ws.view(np.uint32)
    stride = 4 * nb
    top = wsu.shape[0] - nrows * stride
    words = wsu[top:]
    for r in range(nrows):
        philox_words(k0, k1, c2, c3, row0 + r, nb, words[r * stride:(r + 1) * stride])
    total = nrows * m
    picked = wsu[top - total:top]
    for r in range(nrows):
        wr = words[r * stride:(r + 1) * stride]
        pr = picked[r * m:(r + 1) * m]
        for i in range(m):
            pr[i] = wr[cols[i]]
    normals_of_words(picked, total, scale, out, ws[:(top - total) // 2])


@njit(cache=True, inline="always", error_model="numpy")
def _scatter(vals, pos, m, n, out):
    """out[pos[k]] = vals[k] (k < m), zeros elsewhere: no data-dependent branch."""
    for j in range(n):
        out[j] = 0.0
    for k in range(m):
        out[pos[k]] = vals[k]


@njit(cache=True, inline="always", error_model="numpy")
def _sparse_row(k0, k1, c2, c3, row, scale, out, n, need, relu, ws):
    """out[j] = scale * (the normal of column j) where wanted, 0 elsewhere; wanted: need[j] != 0,
    or (relu) a positive normal, whose word is >= 2^31.  Only those columns are transformed."""
    nb = (n + 3) // 4
    wsu = ws.view(np.uint32)
    top = wsu.shape[0] - 4 * nb
    words = wsu[top:]
    philox_words(k0, k1, c2, c3, row, nb, words)
    pos = wsu[top - n:top]
    picked = wsu[top - 2 * n:top - n]
    m = 0
    for j in range(n):       # branch-free compaction of the wanted columns
        w = words[j]
        pos[m] = j
        picked[m] = w
        m += (w >= HALF_WORD32) if relu else (need[j] != 0)
    vals = ws[:n]
    normals_of_words(picked, m, scale, vals, ws[n:(top - 2 * n) // 2])
    _scatter(vals, pos, m, n, out)


@njit(cache=True, error_model="numpy")
def fill_normal_row_where_ws(k0, k1, c2, c3, row, scale, out, n, need, ws):
    """fill_normal_row_where (the same numbers) with scratch ws = row_workspace(n') for n' >= n:
    only the needed columns are transformed, in vectorised passes."""
    _sparse_row(k0, k1, c2, c3, row, scale, out, n, need, False, ws)


@njit(cache=True, error_model="numpy")
def fill_relu_normal_row_ws(k0, k1, c2, c3, row, scale, out, n, ws):
    """fill_relu_normal_row (the same numbers) with scratch ws = row_workspace(n') for n' >= n."""
    _sparse_row(k0, k1, c2, c3, row, scale, out, n, out, True, ws)


@njit(cache=True)
def fill_uniform_row(k0, k1, c2, c3, row, lo, hi, out, n):
    """out[j] = lo + (hi - lo) U(0, 1) for columns j = 0..n-1 of ``row``."""
    r = np.uint64(row)
    width = hi - lo
    nb = (n + 3) // 4
    for b in range(nb):
        w0, w1, w2, w3 = philox_block(np.uint64(b), r, c2, c3, k0, k1)
        j = 4 * b
        out[j] = lo + width * u32_to_uniform(w0)
        if j + 1 < n:
            out[j + 1] = lo + width * u32_to_uniform(w1)
        if j + 2 < n:
            out[j + 2] = lo + width * u32_to_uniform(w2)
        if j + 3 < n:
            out[j + 3] = lo + width * u32_to_uniform(w3)


@njit(cache=True)
def _normal_matrix(k0, k1, c2, c3, rows, cols, scale, out):
    """out (rows x cols, C order) by blocks of rows (the fastest path of the generator)."""
    idx = np.arange(cols)
    ws = block_workspace(cols)
    flat = out.ravel()
    step = block_rows(cols)
    for r0 in range(0, rows, step):
        nr = min(step, rows - r0)
        fill_normal_block_cols(k0, k1, c2, c3, r0, nr, scale, idx, cols, flat[r0 * cols:(r0 + nr) * cols], ws)


@njit(cache=True)
def _uniform_matrix(k0, k1, c2, c3, rows, cols, lo, hi, out):
    for i in range(rows):
        fill_uniform_row(k0, k1, c2, c3, i, lo, hi, out[i], cols)


def normal_matrix(seed, trial, layer, stream, rows, cols, scale=1.0):
    """The (rows x cols) matrix of scale * N(0, 1) numbers that the kernels draw
    for (seed, trial, layer, stream); row i is the generator's row i."""
    k0, k1 = seed_key(seed)
    c2, c3 = (np.uint64(w) for w in counter_words(trial, layer, stream))
    out = np.empty((rows, cols))
    _normal_matrix(k0, k1, c2, c3, rows, cols, float(scale), out)
    return out


def uniform_matrix(seed, trial, layer, stream, rows, cols, lo=0.0, hi=1.0):
    """The (rows x cols) matrix of uniforms on (lo, hi) for (seed, trial, layer, stream)."""
    k0, k1 = seed_key(seed)
    c2, c3 = (np.uint64(w) for w in counter_words(trial, layer, stream))
    out = np.empty((rows, cols))
    _uniform_matrix(k0, k1, c2, c3, rows, cols, float(lo), float(hi), out)
    return out
