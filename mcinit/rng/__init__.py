"""Counter-based random numbers: Philox4x32-10 and the variates mcinit derives from it.

Every random number of a run is a pure function of

    (seed, trial, layer, stream, row, column)

so a trial draws the same numbers whatever the thread count, batch size, shard,
backend or resume point (docs/design.md section 6).  The layout of one Philox call:

    key     = (seed mod 2**32, seed div 2**32)                      64-bit seed
    counter = (column // 4,  row,  trial mod 2**32,
               (trial div 2**32) << 24 | layer << 12 | stream)

and lane ``column % 4`` of the 4x32-bit output is the word for that column.
So ``trial`` < 2**40, ``layer`` < 4096, ``stream`` < 4096, ``row`` < 2**32.
Each row of a matrix starts a fresh Philox block, which lets a kernel
regenerate any row of any weight matrix on its own.

Variates from one 32-bit word ``w``:
- uniform on (0, 1):  u = (w + 0.5) / 2**32
- standard normal:    z = Phi^-1(u) by Wichura's algorithm AS 241 (PPND16,
  relative accuracy about 1e-16).  |z| <= 6.36; the normal mass beyond is
  2e-10, far below any Monte Carlo resolution mcinit reaches.
Variates from two words (lanes 0 and 1): u53, a uniform with 53 random bits.
Gamma(a) variates (chi2(k) = 2 Gamma(k/2)) by Marsaglia and Tsang's exact
rejection method, attempt j using block j of a row (``sample_gamma``).

Streams used by the kernels (the numbers are part of the random-number
contract: changing one changes every result): philox.py.

Modules: philox (the generator and the counter layout), libm (fdlibm's log and
exp, the same numbers on every machine and the GPU), variates (uniforms, the
normal quantile, gamma), rows (rows of numbers as the kernels draw them).  The
kernels use them as ``rng.<name>``; every name is re-exported here.
"""

# the kernels call these as rng.<name>
from .libm import exp, exp_values, log_pos, log_reduced, log_values
from .philox import (MAX_LAYER, MAX_STREAM, MAX_TRIALS, STREAM_DATA, STREAM_LAW, STREAM_PROJ_G,
                     STREAM_PROJ_Y, STREAM_SUP, STREAM_TARGET, STREAM_WEIGHTS, counter_words,
                     philox4x32_10, philox_block, philox_lanes, philox_words, seed_key)
from .rows import (BLOCK_VALUES, block_rows, block_workspace, fill_normal_block_cols,
                   fill_normal_cols_ws, fill_normal_row, fill_normal_row_where,
                   fill_normal_row_where_ws, fill_normal_row_ws, fill_relu_normal_row,
                   fill_relu_normal_row_ws, fill_uniform_row, normal_matrix, row_workspace,
                   uniform_matrix)
from .variates import (HALF_WORD, HALF_WORD32, TAIL_WORDS, log_odd, ndtri, normals_of_words,
                       sample_gamma, u32_to_normal, u32_to_uniform, words_to_u53)

__all__ = [
    "philox4x32_10", "seed_key", "counter_words", "normal_matrix", "uniform_matrix",
    "STREAM_WEIGHTS", "STREAM_PROJ_G", "STREAM_PROJ_Y", "STREAM_TARGET", "STREAM_DATA",
    "STREAM_LAW", "STREAM_SUP", "MAX_TRIALS", "MAX_LAYER", "MAX_STREAM",
]

