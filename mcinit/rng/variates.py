"""Variates from Philox words: uniforms, the normal quantile and gamma variates.

- uniform on (0, 1):  u = (w + 0.5) / 2**32
- standard normal:    z = Phi^-1(u) by Wichura's algorithm AS 241 (PPND16)
- u53: a uniform with 53 random bits from two words
- Gamma(a) by Marsaglia and Tsang's exact rejection method (``sample_gamma``)
"""

import math

import numpy as np
from numba import njit

from .libm import exp, log_pos, log_reduced
from .philox import philox_block

_TWO_M32 = 2.0 ** -32
_TWO_M53 = 2.0 ** -53
_SQRT2 = 1.4142135623730951


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


#: the tail of AS 241 in words: |(w + 1/2) 2^-32 - 1/2| > 0.425 exactly when
#: min(w, 2^32 - 1 - w) < TAIL_WORDS
TAIL_WORDS = 322122547
_TAIL_WORDS = np.uint32(TAIL_WORDS)
#: the smallest word whose normal is positive (u32_to_normal(w) > 0 exactly when w >= it)
HALF_WORD32 = np.uint32(1 << 31)
#: the same as a uint64, for words held in uint64 lanes (philox_block's)
HALF_WORD = np.uint64(1 << 31)


@njit(cache=True, inline="always", error_model="numpy")
def log_odd(m):
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
    return log_reduced(f - 1.0, np.float64(np.int32(k - 33)), True)


@njit(cache=True, inline="always", error_model="numpy")
def _tail_of_distance(d):
    """|Phi^-1(u)| for u = (d + 1/2) 2^-32 (or 1 - u), d = min(w, 2^32 - 1 - w) < TAIL_WORDS.

    AS 241's first tail approximation in r = sqrt(-log u) (r <= 4.8 for every
    32-bit word: the second one, r > 5, is never needed)."""
    r = math.sqrt(-log_odd(2 * np.int64(d) + 1)) - 1.6
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

    AS 241 (PPND16); in the tails its logarithm is log_odd's, not libm's, so the
    numbers are the same on every machine and backend."""
    w32 = np.uint32(w)
    d = min(w32, ~w32)
    if d >= _TAIL_WORDS:
        return _ndtri_central(u32_to_uniform(w32) - 0.5)
    z = _tail_of_distance(d)
    return -z if w32 < HALF_WORD32 else z


@njit(cache=True, inline="always", error_model="numpy")
def normals_of_words(words, m, scale, out, ws):
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
        out[i] = scale * (-z if words[i] < HALF_WORD32 else z)


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
