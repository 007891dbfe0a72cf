"""Counter-based random numbers: Philox4x32-10 and the variates mcinit derives from it.

Every random number of a run is a pure function of

    (seed, trial, layer, stream, row, column)

so a trial draws the same numbers whatever the thread count, batch size, shard,
backend or resume point (DESIGN section 6).  The layout of one Philox call:

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
contract: changing one changes every result).
"""

import math

import numpy as np
from numba import njit

__all__ = [
    "philox4x32_10", "seed_key", "counter_words", "normal_matrix", "uniform_matrix",
    "STREAM_WEIGHTS", "STREAM_PROJ_G", "STREAM_PROJ_Y", "STREAM_TARGET", "STREAM_DATA",
    "STREAM_LAW", "STREAM_SUP", "MAX_TRIALS", "MAX_LAYER", "MAX_STREAM",
]

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
_TWO_M32 = 2.0 ** -32
_TWO_M53 = 2.0 ** -53


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


@njit(cache=True, inline="always")
def u32_to_uniform(w):
    """Uniform on (0, 1) from one 32-bit word: (w + 1/2) 2^-32."""
    return (np.float64(w) + 0.5) * _TWO_M32


@njit(cache=True, inline="always")
def words_to_u53(w0, w1):
    """Uniform on [0, 1) with 53 random bits from two 32-bit words."""
    a = np.int32(np.uint64(w0) >> np.uint64(5))     # < 2^27 (int32: converts in vector lanes)
    b = np.int32(np.uint64(w1) >> np.uint64(6))     # < 2^26
    return (np.float64(a) * 67108864.0 + np.float64(b)) * _TWO_M53


@njit(cache=True, inline="always", error_model="numpy")
def _ndtri_central(q):
    """Phi^-1(1/2 + q) for |q| <= 0.425 (AS 241's central rational approximation)."""
    r = 0.180625 - q * q
    num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r
                + 67265.770927008700853) * r + 45921.953931549871457) * r
              + 13731.693765509461125) * r + 1971.5909503065514427) * r
            + 133.14166789178437745) * r + 3.3871328727963666080)
    den = (((((((5226.4952788528545610 * r + 28729.085735721942674) * r
                + 39307.895800092710610) * r + 21213.794301586595867) * r
              + 5394.1960214247511077) * r + 687.18700749205790830) * r
            + 42.313330701600911252) * r + 1.0)
    return q * num / den


@njit(cache=True, error_model="numpy")
def _ndtri_tail(p, q):
    """Phi^-1(p) for |q| = |p - 1/2| > 0.425 (AS 241's tail approximations)."""
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                    + 2.41780725177450611770e-1) * r + 1.27045825245236838258) * r
                  + 3.64784832476320460504) * r + 5.76949722146069140550) * r
                + 4.63033784615654529590) * r + 1.42343711074968357734)
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                    + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
                  + 6.89767334985100004550e-1) * r + 1.67638483018380384940) * r
                + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                    + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
                  + 2.96560571828504891230e-1) * r + 1.78482653991729133580) * r
                + 5.46378491116411436990) * r + 6.65790464350110377720)
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                    + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
                  + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
                + 5.99832206555887937690e-1) * r + 1.0)
    z = num / den
    return -z if q < 0.0 else z


@njit(cache=True, error_model="numpy")
def ndtri(p):
    """Standard normal quantile Phi^-1(p), 0 < p < 1 (Wichura, AS 241, PPND16)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        return _ndtri_central(q)
    return _ndtri_tail(p, q)


# fdlibm's e_log.c (Sun Microsystems, 1993): log((1 + f) 2^k) = k ln2 + f - hfsq + s (hfsq + R),
# |error| < 1 ulp, in plain IEEE arithmetic: the same numbers on every machine,
# vectorisable, and compilable for the GPU (no libm call)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951


@njit(cache=True, inline="always", error_model="numpy")
def _log_reduced(f, dk, big):
    """fdlibm's log of (1 + f) 2^dk, f in [sqrt(2)/2 - 1, sqrt(2) - 1); big: its choice of form."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    R = t2 + t1
    hfsq = 0.5 * f * f
    a = dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + dk * _LN2_LO)) - f)
    b = dk * _LN2_HI - ((s * (f - R) - dk * _LN2_LO) - f)
    return a if big else b


_TWO54 = 18014398509481984.0
_MIN_NORMAL = 2.2250738585072014e-308


@njit(cache=True, inline="always", error_model="numpy")
def log_pos(x):
    """fdlibm's log(x) for a finite x > 0 (normal or subnormal), within 1 ulp: the
    same numbers on every machine and on the GPU (libm's log does not promise that).
    The frexp form of log_values's bit manipulation, which it equals (and which calls
    it for subnormals)."""
    k = 0
    if x < _MIN_NORMAL:
        x *= _TWO54
        k = -54
    m, e = math.frexp(x)            # x = m 2^e, m in [1/2, 1)
    m *= 2.0
    e -= 1                          # m in [1, 2)
    hm = int(m * 1048576.0) - 1048576   # the top 20 bits of the fraction
    if (hm + 0x95f64) & 0x100000:   # 1 + f in [sqrt(2)/2, sqrt(2))
        m *= 0.5
        e += 1
    big = ((hm - 0x6147a) | (0x6b851 - hm)) > 0
    return _log_reduced(m - 1.0, float(e + k), big)


@njit(cache=True, error_model="numpy")
def log_values(x, out, m, ws):
    """out[i] = log(x[i]) for finite x[i] > 0, NaN for every other x[i], i < m.

    fdlibm's algorithm (|error| < 1 ulp) in plain IEEE arithmetic on the bits: the same
    numbers on every machine, and it vectorises (libm's log is a call per value).
    x: contiguous float64; ws: int64 scratch of length 2 m."""
    xb = x[:m].view(np.int64)
    kb = ws[:m]
    fb = ws[m:2 * m]
    for i in range(m):
        ib = xb[i]
        hx = ib >> 32
        hm = hx & 0x000fffff
        j = (hm + 0x95f64) & 0x100000           # 0 when the fraction < sqrt(2), else 2^20
        # x = (1 + f) 2^k with 1 + f in [sqrt(2)/2, sqrt(2)): the fraction's bits, the
        # exponent set to 0 or -1; the form fdlibm picks, from the top 20 bits
        fb[i] = ((hm | (j ^ 0x3ff00000)) << 32) | (ib & 0xffffffff)
        kb[i] = ((hm - 0x6147a) | (0x6b851 - hm)) > 0
        out[i] = np.float64(np.int32(((hx >> 20) - 1023) + (j >> 20)))     # k (int32: vectorises)
    ff = fb.view(np.float64)
    tiny = False
    for i in range(m):
        out[i] = _log_reduced(ff[i] - 1.0, out[i], kb[i] != 0)
    for i in range(m):
        xi = x[i]
        ok = (xi > 0.0) & (xi < np.inf)
        tiny |= ok & (xi < _MIN_NORMAL)
        out[i] = out[i] if ok else np.nan
    if tiny:
        for i in range(m):
            if 0.0 < x[i] < _MIN_NORMAL:
                out[i] = log_pos(x[i])


_EXP_HI = 709.782712893383973096       # above: exp overflows (fdlibm's o_threshold)
_EXP_LO = -745.133219101941108420      # below: exp rounds to 0 (u_threshold)
_INV_LN2 = 1.44269504088896338700
_EP1 = 1.66666666666666019037e-01
_EP2 = -2.77777777770155933842e-03
_EP3 = 6.61375632143793436117e-05
_EP4 = -1.65339022054652515390e-06
_EP5 = 4.13813679705723846039e-08


@njit(cache=True, inline="always", error_model="numpy")
def _exp_reduced(x):
    """(y, k) with exp(x) = y 2^k, for -746 < x < 710: fdlibm's reduction
    x = k ln2 + r, |r| <= ln2 / 2 (k by rounding half away from zero), and its
    rational approximation of exp(r)."""
    k = np.int32(_INV_LN2 * x + (0.5 if x > 0.0 else -0.5))
    t = np.float64(k)
    hi = x - t * _LN2_HI          # exact: ln2_hi has 32 trailing zero bits
    lo = t * _LN2_LO
    r = hi - lo
    r2 = r * r
    c = r - r2 * (_EP1 + r2 * (_EP2 + r2 * (_EP3 + r2 * (_EP4 + r2 * _EP5))))
    return 1.0 - ((lo - (r * c) / (2.0 - c)) - hi), k


@njit(cache=True, inline="always", error_model="numpy")
def exp(x):
    """fdlibm's exp(x), within 1 ulp: the same numbers on every machine and on the GPU.

    y 2^k is scaled in two exact halves, (y 2^(k >> 1)) 2^(k - (k >> 1)), so the one
    rounding is the last product's: the correctly rounded y 2^k, subnormals included."""
    if not (x >= _EXP_LO and x <= _EXP_HI):
        if x != x:
            return x
        return np.inf if x > 0.0 else 0.0
    y, k = _exp_reduced(x)
    k1 = k >> 1
    return (y * math.ldexp(1.0, k1)) * math.ldexp(1.0, k - k1)


@njit(cache=True, error_model="numpy")
def exp_values(x, out, m, ws):
    """out[i] = exp(x[i]), i < m: the same numbers as exp, in passes that vectorise
    (the powers of two built from their bits).  ws: int64 scratch of length 2 m."""
    p1 = ws[:m]
    p2 = ws[m:2 * m]
    for i in range(m):
        xi = x[i]
        ok = (xi >= _EXP_LO) & (xi <= _EXP_HI)
        y, k = _exp_reduced(xi if ok else 0.0)
        k1 = k >> 1
        out[i] = y
        p1[i] = np.int64(k1 + 1023) << 52
        p2[i] = np.int64(k - k1 + 1023) << 52
    f1 = p1.view(np.float64)
    f2 = p2.view(np.float64)
    for i in range(m):
        xi = x[i]
        v = (out[i] * f1[i]) * f2[i]
        v = v if xi <= _EXP_HI else np.inf
        v = v if xi >= _EXP_LO else 0.0
        out[i] = v if xi == xi else xi


#: the tail of AS 241 in words: |(w + 1/2) 2^-32 - 1/2| > 0.425 exactly when
#: min(w, 2^32 - 1 - w) < TAIL_WORDS
TAIL_WORDS = 322122547
_TAIL_WORDS = np.uint32(TAIL_WORDS)
_HALF32 = np.uint32(1 << 31)


@njit(cache=True, inline="always", error_model="numpy")
def _log_odd(m):
    """log(m 2^-33) for an integer 1 <= m < 2^31 (any integer type)."""
    x = np.int64(m)
    k = 0
    sc = 1.0
    # m = f 2^k with f in [1, 2): five branch-free halvings of the exponent range
    t = x >> 16
    c = t != 0
    x = t if c else x
    k += 16 if c else 0
    sc *= 1.52587890625e-05 if c else 1.0
    t = x >> 8
    c = t != 0
    x = t if c else x
    k += 8 if c else 0
    sc *= 0.00390625 if c else 1.0
    t = x >> 4
    c = t != 0
    x = t if c else x
    k += 4 if c else 0
    sc *= 0.0625 if c else 1.0
    t = x >> 2
    c = t != 0
    x = t if c else x
    k += 2 if c else 0
    sc *= 0.25 if c else 1.0
    c = (x >> 1) != 0
    k += 1 if c else 0
    sc *= 0.5 if c else 1.0
    f = np.float64(np.int32(m)) * sc
    big = f >= _SQRT2            # f in [sqrt(2)/2, sqrt(2))
    f = f * 0.5 if big else f
    k += 1 if big else 0
    return _log_reduced(f - 1.0, np.float64(np.int32(k - 33)), True)


@njit(cache=True, inline="always", error_model="numpy")
def _tail_of_distance(d):
    """|Phi^-1(u)| for u = (d + 1/2) 2^-32 (or 1 - u), d = min(w, 2^32 - 1 - w) < TAIL_WORDS.

    AS 241's first tail approximation in r = sqrt(-log u) (r <= 4.8 for every
    32-bit word: the second one, r > 5, is never needed)."""
    r = math.sqrt(-_log_odd(2 * np.int64(d) + 1)) - 1.6
    num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                + 2.41780725177450611770e-1) * r + 1.27045825245236838258) * r
              + 3.64784832476320460504) * r + 5.76949722146069140550) * r
            + 4.63033784615654529590) * r + 1.42343711074968357734)
    den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
              + 6.89767334985100004550e-1) * r + 1.67638483018380384940) * r
            + 2.05319162663775882187) * r + 1.0)
    return num / den


@njit(cache=True, inline="always", error_model="numpy")
def u32_to_normal(w):
    """Standard normal from one 32-bit word by inversion: Phi^-1((w + 1/2) 2^-32).

    AS 241 (PPND16); in the tails its logarithm is _log_odd's, not libm's, so the
    numbers are the same on every machine and backend."""
    w32 = np.uint32(w)
    d = min(w32, ~w32)
    if d >= _TAIL_WORDS:
        return _ndtri_central(u32_to_uniform(w32) - 0.5)
    z = _tail_of_distance(d)
    return -z if w32 < _HALF32 else z


@njit(cache=True, inline="always", error_model="numpy")
def _philox_words(k0, k1, c2, c3, row, nb, words):
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


@njit(cache=True)
def row_workspace(n):
    """Scratch for the row generators below on rows of up to n columns (float64, 5 n + 16)."""
    return np.empty(5 * n + 16)


@njit(cache=True, inline="always", error_model="numpy")
def _normals_of_words(words, m, scale, out, ws):
    """out[i] = scale * u32_to_normal(words[i]), i < m, in three vectorised passes:
    the central approximation for every word, the tail words gathered, their
    values, and a scatter.  ws: at least 2 m float64 slots, not overlapping words."""
    for i in range(m):
        out[i] = scale * _ndtri_central(u32_to_uniform(words[i]) - 0.5)
    wsu = ws.view(np.uint32)
    idx = wsu[:m]              # float slots 0..m-1: tail positions and distances
    dist = wsu[m:2 * m]
    tv = ws[m:2 * m]           # float slots m..2m-1: tail values
    nt = 0
    for i in range(m):
        w = words[i]
        d = min(w, ~w)
        idx[nt] = i
        dist[nt] = d
        nt += d < _TAIL_WORDS
    for t in range(nt):
        tv[t] = _tail_of_distance(dist[t])
    for t in range(nt):
        i = idx[t]
        z = tv[t]
        out[i] = scale * (-z if words[i] < _HALF32 else z)


@njit(cache=True, error_model="numpy")
def fill_normal_row_ws(k0, k1, c2, c3, row, scale, out, n, ws):
    """fill_normal_row with caller-provided scratch ws = row_workspace(n') for n' >= n."""
    nb = (n + 3) // 4
    wsu = ws.view(np.uint32)
    words = wsu[wsu.shape[0] - 4 * nb:]
    _philox_words(k0, k1, c2, c3, row, nb, words)
    _normals_of_words(words, n, scale, out, ws[:ws.shape[0] - 2 * nb])


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
    _philox_words(k0, k1, c2, c3, row, nb, words)
    picked = wsu[wsu.shape[0] - 4 * nb - m:wsu.shape[0] - 4 * nb]
    for i in range(m):
        picked[i] = words[cols[i]]
    _normals_of_words(picked, m, scale, out, ws[:(wsu.shape[0] - 4 * nb - m) // 2])


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


_HALF = np.uint64(1 << 31)


@njit(cache=True)
def fill_relu_normal_row(k0, k1, c2, c3, row, scale, out, n):
    """out[j] = max(0, scale z_j) with z_j the normals of fill_normal_row and scale > 0.

    z_j > 0 exactly when its word is >= 2^31, so the inversion runs only there."""
    r = np.uint64(row)
    nb = (n + 3) // 4
    for b in range(nb):
        w0, w1, w2, w3 = philox_block(np.uint64(b), r, c2, c3, k0, k1)
        j = 4 * b
        out[j] = scale * u32_to_normal(w0) if w0 >= _HALF else 0.0
        if j + 1 < n:
            out[j + 1] = scale * u32_to_normal(w1) if w1 >= _HALF else 0.0
        if j + 2 < n:
            out[j + 2] = scale * u32_to_normal(w2) if w2 >= _HALF else 0.0
        if j + 3 < n:
            out[j + 3] = scale * u32_to_normal(w3) if w3 >= _HALF else 0.0


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
        _philox_words(k0, k1, c2, c3, row0 + r, nb, words[r * stride:(r + 1) * stride])
    total = nrows * m
    picked = wsu[top - total:top]
    for r in range(nrows):
        wr = words[r * stride:(r + 1) * stride]
        pr = picked[r * m:(r + 1) * m]
        for i in range(m):
            pr[i] = wr[cols[i]]
    _normals_of_words(picked, total, scale, out, ws[:(top - total) // 2])


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
    _philox_words(k0, k1, c2, c3, row, nb, words)
    pos = wsu[top - n:top]
    picked = wsu[top - 2 * n:top - n]
    m = 0
    for j in range(n):       # branch-free compaction of the wanted columns
        w = words[j]
        pos[m] = j
        picked[m] = w
        m += (w >= _HALF32) if relu else (need[j] != 0)
    vals = ws[:n]
    _normals_of_words(picked, m, scale, vals, ws[n:(top - 2 * n) // 2])
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


_BOOST_BLOCK = 0xFFFFFFFF


@njit(cache=True)
def sample_gamma(a, k0, k1, c2, c3, row):
    """Gamma(a, 1), a >= 0, from (row, block j) for attempt j (Marsaglia-Tsang 2000).

    For a < 1: Gamma(a + 1) U^(1/a), U from block 2**32 - 1 of the row."""
    if a <= 0.0:
        return 0.0
    boost = a < 1.0
    b = a + 1.0 if boost else a
    d = b - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    r = np.uint64(row)
    j = 0
    while True:
        w0, w1, w2, w3 = philox_block(np.uint64(j), r, c2, c3, k0, k1)
        j += 1
        x = u32_to_normal(w0)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = u32_to_uniform(w1)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or log_pos(u) < 0.5 * x2 + d * (1.0 - v + log_pos(v)):
            g = d * v
            break
    if boost:
        w0, w1, w2, w3 = philox_block(np.uint64(_BOOST_BLOCK), r, c2, c3, k0, k1)
        g *= exp(log_pos(u32_to_uniform(w0)) / a)
    return g


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
