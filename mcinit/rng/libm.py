"""libm-free logarithm and exponential: fdlibm's algorithms in plain IEEE arithmetic.

The same numbers on every machine and on the GPU (the C library's log and exp do
not promise that), within 1 ulp, and in passes that vectorise.
"""

import math

import numpy as np
from numba import njit

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


@njit(cache=True, inline="always", error_model="numpy")
def log_reduced(f, dk, big):
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
    return log_reduced(m - 1.0, float(e + k), big)


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
        out[i] = log_reduced(ff[i] - 1.0, out[i], kb[i] != 0)
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

