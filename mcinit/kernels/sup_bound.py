"""Certified bounds on the extremes of rho_l over the whole unit sphere, by branch-and-bound.

For one trial (the network sup.draw_weights draws: plain ReLU, no biases, weights normal,
uniform or weight-normalised) and every layer l,

    upper[t, l-1] >= sup over unit x of rho_l(x),   lower[t, l-1] <= inf over unit x of rho_l(x),
    rho_l(x) = ||h^l(x)||^2 / ||x||^2,

(``bounds(plan, first, count, found_min, found_max, lower, upper, boxes, gap, skip, used)``;
docs/design.md section 17 derives it).

The face cover.  h^l is positively homogeneous, so rho_l(x) = ||h^l(y)||^2 / ||y||^2 for any
y != 0 on the ray of x: the 2 n_0 faces of the cube [-1, 1]^(n_0) (y_j = +-1 fixed, the other
coordinates in [-1, 1]) cover every ray.  A box Y of a face is bounded by linear bound
propagation (symbolic intervals, as DeepPoly / CROWN-style verifiers do): every unit of
layers 1..l gets a lower and an upper linear function of y, L(y) <= a(y) <= U(y) on Y, and
concrete bounds alo <= a <= ahi (the lines concretised over Y, intersected with plain
interval arithmetic).  Through the ReLU:

    ahi <= 0:        h = 0                  (both lines 0)
    alo >= 0:        h = a                  (lines L, U)
    alo < 0 < ahi:   h <= s (U(y) - alo),   s = ahi / (ahi - alo)   (the triangle's chord)
                     h >= lam L(y),         lam = 1 if ahi > -alo else 0

Every unit of h^l then has 0 <= lo_i <= h_i <= hi_i on Y, so

    sup_Y rho_l <= sum hi_i^2 / min_Y ||y||^2,    inf_Y rho_l >= sum lo_i^2 / max_Y ||y||^2.

Best-first search, per layer and direction: a heap of boxes by their bound; the worst box is
split in two along its widest coordinate, both halves are bounded and their centres (projected
to the sphere: real inputs) evaluated and folded into found_min / found_max.  It stops when the
gap is met (upper <= (1 + gap) found_max, lower >= found_min / (1 + gap), or found_min = 0:
then inf = 0 exactly) or when ``boxes`` boxes have been bounded for that layer and direction;
the certified value is the worst bound over the boxes still open.  A box budget, not a time
budget: the results do not depend on the machine.  The spectral bound
sup rho_l <= prod_(k<=l) ||W_k||_2^2 is taken as well (the min with the boxes' bound);
with fewer than 2 n_0 boxes it is the only upper bound, and lower is 0 (or found_min when
that is 0).

Rounding.  The bounds are computed in float64 without directed rounding; the final upper bound
is multiplied by 1 + margin(widths, l) and the lower by 1 - margin(widths, l) (``margin``):
the certificate holds up to that relative margin (1e-9 plus 64 unit roundoffs per layer and
term of the longest sum).
"""

import math

import numpy as np
from numba import njit, prange

from ..activations import ACT_RELU
from .common import ARCH_PLAIN, n_chunks
from .sup import _forward, draw_weights, weight_offsets

__all__ = ["bounds", "margin", "widen", "memory"]

_U = 2.0 ** -53       # the unit roundoff of float64


@njit(cache=True)
def margin(widths, l):
    """The relative margin of layer l's certified bounds: 1e-9 + 64 u l (n_0 + 2 + max n_k),
    u = 2^-53 (the float64 sums of the propagation have at most n_0 + 1 + max n_k terms)."""
    nmax = 0
    for k in range(widths.shape[0]):
        nmax = max(nmax, widths[k])
    return 1e-9 + 64.0 * _U * l * (widths[0] + 2 + nmax)


@njit(cache=True)
def _slots(n0, boxes):
    """Open boxes at most: the 2 n_0 faces, and one more per split (a split bounds two)."""
    return 2 * n0 + max(boxes, 0) // 2 + 1


def memory(widths, boxes):
    """Bytes a work unit of ``bounds`` holds for the open boxes (per layer and direction it
    reuses them): (2 n_0 + boxes / 2 + 1) boxes of 2 n_0 + 2 float64 words."""
    n0 = int(widths[0])
    return int(_slots(n0, int(boxes))) * (2 * n0 + 2) * 8


def widen(found_min, found_max, widths):
    """(lower, upper) certified bounds from extremes known exactly up to float64 rounding (an
    exact method's): found_min (1 - m) and found_max (1 + m), m = margin(widths, L) (the
    largest layer's margin, so the arrays need not say their layer)."""
    m = margin(np.asarray(widths, dtype=np.int64), len(widths) - 1)
    return np.asarray(found_min) * (1.0 - m), np.asarray(found_max) * (1.0 + m)


@njit(cache=True)
def _box_bounds(wbuf, offs, widths, l, blo, bhi, CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi):
    """(sum hi_i^2, sum lo_i^2) over the units of h^l on the box [blo, bhi] of R^(n_0), and
    olo[i] = lo_i, ohi[i] = hi_i: 0 <= lo_i <= h^l_i(y) <= hi_i for every y in the box (linear
    bound propagation).  CL, CU, NL, NU (nmax, n_0 + 1) and hl, hh, gl, gh (nmax,) are scratch."""
    n0 = widths[0]
    # layer 0: h^0 = y, its lines the coordinates (column n0: the constant)
    for j in range(n0):
        for c in range(n0 + 1):
            CL[j, c] = 0.0
            CU[j, c] = 0.0
        CL[j, j] = 1.0
        CU[j, j] = 1.0
        hl[j] = blo[j]
        hh[j] = bhi[j]
    shi = 0.0
    slo = 0.0
    for k in range(1, l + 1):
        n_in = widths[k - 1]
        off = offs[k]
        for i in range(widths[k]):
            # a = W h: the upper line takes U where w > 0 and L where w < 0, the lower the reverse
            for c in range(n0 + 1):
                NL[i, c] = 0.0
                NU[i, c] = 0.0
            ilo = 0.0
            ihi = 0.0
            base = off + i * n_in
            for j in range(n_in):
                w = wbuf[base + j]
                if w > 0.0:
                    for c in range(n0 + 1):
                        NU[i, c] += w * CU[j, c]
                        NL[i, c] += w * CL[j, c]
                    ihi += w * hh[j]
                    ilo += w * hl[j]
                elif w < 0.0:
                    for c in range(n0 + 1):
                        NU[i, c] += w * CL[j, c]
                        NL[i, c] += w * CU[j, c]
                    ihi += w * hl[j]
                    ilo += w * hh[j]
            # the lines concretised over the box, intersected with the interval bounds
            uhi = NU[i, n0]
            llo = NL[i, n0]
            for c in range(n0):
                cu = NU[i, c]
                uhi += cu * (bhi[c] if cu > 0.0 else blo[c])
                cl = NL[i, c]
                llo += cl * (blo[c] if cl > 0.0 else bhi[c])
            ahi = min(uhi, ihi)
            alo = max(llo, ilo)
            gh[i] = ahi if ahi > 0.0 else 0.0
            gl[i] = alo if alo > 0.0 else 0.0
            if k == l:
                olo[i] = gl[i]
                ohi[i] = gh[i]
                shi += gh[i] * gh[i]
                slo += gl[i] * gl[i]
            elif ahi <= 0.0:
                for c in range(n0 + 1):
                    NL[i, c] = 0.0
                    NU[i, c] = 0.0
            elif alo < 0.0:
                # the triangle relaxation: the chord above, 0 or the identity below
                s = ahi / (ahi - alo)
                for c in range(n0 + 1):
                    NU[i, c] *= s
                NU[i, n0] -= s * alo
                if ahi <= -alo:
                    for c in range(n0 + 1):
                        NL[i, c] = 0.0
        CL, NL = NL, CL
        CU, NU = NU, CU
        hl, gl = gl, hl
        hh, gh = gh, hh
    return shi, slo


@njit(cache=True)
def _ratio_bounds(wbuf, offs, widths, l, blo, bhi, CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi):
    """(upper bound of sup, lower bound of inf) of rho_l over the rays through the box."""
    n0 = widths[0]
    ymin = 0.0
    ymax = 0.0
    for c in range(n0):
        a = blo[c] * blo[c]
        b = bhi[c] * bhi[c]
        ymax += max(a, b)
        if blo[c] > 0.0 or bhi[c] < 0.0:
            ymin += min(a, b)
    shi, slo = _box_bounds(wbuf, offs, widths, l, blo, bhi, CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi)
    return shi / ymin, slo / ymax


@njit(cache=True)
def _push(hk, hs, n, key, slot):
    """Push (key, slot) on the max-heap hk / hs of n entries; returns n + 1."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] >= key:
            break
        hk[i] = hk[p]
        hs[i] = hs[p]
        i = p
    hk[i] = key
    hs[i] = slot
    return n + 1


@njit(cache=True)
def _pop(hk, hs, n):
    """Remove the top of the max-heap of n entries; returns its slot (the heap has n - 1)."""
    top = hs[0]
    n -= 1
    key = hk[n]
    slot = hs[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] > hk[c]:
            c += 1
        if hk[c] <= key:
            break
        hk[i] = hk[c]
        hs[i] = hs[c]
        i = c
    if n > 0:
        hk[i] = key
        hs[i] = slot
    return top


@njit(cache=True)
def _centre(wbuf, offs, widths, l, blo, bhi, A, H, r, skip, fmin, fmax):
    """Evaluate rho_1..rho_l at the box's centre projected to the unit sphere; fold them into
    fmin / fmax (layers not skipped)."""
    n0 = widths[0]
    s = 0.0
    for c in range(n0):
        y = 0.5 * (blo[c] + bhi[c])
        H[0, c] = y
        s += y * y
    s = 1.0 / math.sqrt(s)
    for c in range(n0):
        H[0, c] *= s
    _forward(wbuf, offs, widths, l, A, H, r)
    for k in range(1, l + 1):
        if skip[k - 1]:
            continue
        v = r[k]
        if v < fmin[k - 1]:
            fmin[k - 1] = v
        if v > fmax[k - 1]:
            fmax[k - 1] = v


@njit(cache=True)
def _branch(wbuf, offs, widths, l, up, boxes, gap, skip, fmin, fmax, BL, BH, hk, hs,
            CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi, A, H, r):
    """Best-first branch-and-bound of rho_l upward (a bound on the sup) or downward (on the
    inf), at most ``boxes`` boxes bounded.  Returns (the certified bound before the margin,
    boxes bounded).  BL, BH (slots, n_0) hold the open boxes; hk, hs the heap (key: the upper
    bound upward, minus the lower bound downward)."""
    n0 = widths[0]
    sign = 1.0 if up else -1.0
    n = 0
    nslots = 0
    for j in range(n0):
        for side in range(2):
            for c in range(n0):
                BL[nslots, c] = -1.0
                BH[nslots, c] = 1.0
            v = -1.0 if side == 0 else 1.0
            BL[nslots, j] = v
            BH[nslots, j] = v
            ub, lb = _ratio_bounds(wbuf, offs, widths, l, BL[nslots], BH[nslots],
                                   CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi)
            n = _push(hk, hs, n, ub if up else -lb, nslots)
            _centre(wbuf, offs, widths, l, BL[nslots], BH[nslots], A, H, r, skip, fmin, fmax)
            nslots += 1
    used = 2 * n0
    while True:
        top = sign * hk[0]
        if up:
            if top <= (1.0 + gap) * fmax[l - 1]:
                break
        else:
            if fmin[l - 1] == 0.0:
                return 0.0, used                # inf = 0 is attained: exact
            if top * (1.0 + gap) >= fmin[l - 1]:
                break
        if used + 2 > boxes:
            break
        s = hs[0]
        # its widest coordinate (the first of equal ones)
        cw = 0
        wid = -1.0
        for c in range(n0):
            d = BH[s, c] - BL[s, c]
            if d > wid:
                wid = d
                cw = c
        if wid <= 0.0:
            break                               # a point (n_0 = 1): nothing to split
        _pop(hk, hs, n)
        n -= 1
        t = nslots
        nslots += 1
        for c in range(n0):
            BL[t, c] = BL[s, c]
            BH[t, c] = BH[s, c]
        mid = 0.5 * (BL[s, cw] + BH[s, cw])
        BH[s, cw] = mid
        BL[t, cw] = mid
        for q in (s, t):
            ub, lb = _ratio_bounds(wbuf, offs, widths, l, BL[q], BH[q],
                                   CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi)
            n = _push(hk, hs, n, ub if up else -lb, q)
            _centre(wbuf, offs, widths, l, BL[q], BH[q], A, H, r, skip, fmin, fmax)
        used += 2
    return sign * hk[0], used


@njit(cache=True)
def _spectral(wbuf, offs, widths, prod):
    """prod[l-1] = prod_(k<=l) ||W_k||_2^2 (largest singular values, LAPACK)."""
    L = widths.shape[0] - 1
    p = 1.0
    for k in range(1, L + 1):
        W = wbuf[offs[k]:offs[k + 1]].reshape((widths[k], widths[k - 1]))
        s = np.linalg.norm(W, 2)
        p *= s * s
        prod[k - 1] = p


@njit(cache=True, parallel=True, nogil=True)
def _batch(first, count, nchunks, k0, k1, widths, var, gain, dist, boxes, gap,
           fmin, fmax, lower, upper, skip, used):
    L = widths.shape[0] - 1
    n0 = widths[0]
    nmax = 0
    for k in range(L + 1):
        nmax = max(nmax, widths[k])
    offs = weight_offsets(widths)
    nw = offs[L + 1]
    cap = _slots(n0, boxes)
    for ch in prange(nchunks):
        lo = (count * ch) // nchunks
        hi = (count * (ch + 1)) // nchunks
        wbuf = np.empty(nw)
        prod = np.empty(L)
        BL = np.empty((cap, n0))
        BH = np.empty((cap, n0))
        hk = np.empty(cap)
        hs = np.empty(cap, dtype=np.int64)
        CL = np.empty((nmax, n0 + 1))
        CU = np.empty((nmax, n0 + 1))
        NL = np.empty((nmax, n0 + 1))
        NU = np.empty((nmax, n0 + 1))
        hl = np.empty(nmax)
        hh = np.empty(nmax)
        gl = np.empty(nmax)
        gh = np.empty(nmax)
        olo = np.empty(nmax)
        ohi = np.empty(nmax)
        A = np.zeros((L + 1, nmax))
        H = np.zeros((L + 1, nmax))
        r = np.zeros(L + 1)
        for t in range(lo, hi):
            draw_weights(k0, k1, first + t, widths, var, gain, dist, offs, wbuf)
            _spectral(wbuf, offs, widths, prod)
            for l in range(1, L + 1):
                if skip[t, l - 1]:
                    continue
                m = margin(widths, l)
                ub = prod[l - 1]
                lb = 0.0
                nb = 0
                if boxes >= 2 * n0:
                    b, u = _branch(wbuf, offs, widths, l, True, boxes, gap, skip[t], fmin[t],
                                   fmax[t], BL, BH, hk, hs, CL, CU, NL, NU, hl, hh, gl, gh, olo, ohi, A, H, r)
                    ub = min(ub, b)
                    nb += u
                    if fmin[t, l - 1] > 0.0:        # (else inf = 0 is attained already)
                        b, u = _branch(wbuf, offs, widths, l, False, boxes, gap, skip[t], fmin[t],
                                       fmax[t], BL, BH, hk, hs, CL, CU, NL, NU, hl, hh, gl, gh, olo,
                                       ohi, A, H, r)
                        lb = max(b, 0.0)
                        nb += u
                if fmin[t, l - 1] == 0.0:
                    lb = 0.0
                upper[t, l - 1] = ub * (1.0 + m)
                lower[t, l - 1] = lb * (1.0 - m)
                used[t, l - 1] = nb


def bounds(plan, first, count, found_min, found_max, lower, upper, boxes, gap, skip=None, used=None):
    """Certified bounds on the extremes of rho_l over the unit sphere, trials
    first..first+count-1 (module docstring).

    plan                  common.Plan of a plain ReLU network without biases, weights normal,
                          uniform or weight-normalised (dist 0, 1, 2)
    found_min, found_max  (count, L) float64, in/out: the least and largest rho_l found at real
                          inputs so far (+inf / -inf for none); the box centres evaluated here are
                          folded in, so they only become more extreme
    lower, upper          (count, L) float64 outputs: lower[t, l-1] <= inf rho_l and
                          upper[t, l-1] >= sup rho_l over the unit sphere, up to the relative
                          rounding margin(widths, l)
    boxes                 boxes bounded at most per layer and direction (fewer than 2 n_0: only
                          the spectral bound above and 0 below)
    gap                   relative gap at which a layer's search stops: upper <= (1 + gap) found_max,
                          lower >= found_min / (1 + gap)
    skip                  (count, L) bool or None: layers left untouched (bounds, found, used)
    used                  (count, L) int64 or None, output: boxes bounded per layer, both
                          directions together
    """
    first, count, boxes, gap = int(first), int(count), int(boxes), float(gap)
    widths = plan.widths
    L = len(widths) - 1
    if plan.arch != ARCH_PLAIN or plan.act != ACT_RELU or int(plan.dist) not in (0, 1, 2):
        raise ValueError("certified bounds need a plain ReLU network with normal, uniform or "
                         "weight-normalised weights")
    if boxes < 0 or not gap >= 0.0:
        raise ValueError("boxes and gap must be non-negative")
    if first < 0 or count < 0:
        raise ValueError("trial indices must be non-negative")
    for name, a in (("found_min", found_min), ("found_max", found_max), ("lower", lower),
                    ("upper", upper)):
        if a.shape != (count, L) or a.dtype != np.float64:
            raise ValueError(f"{name} must be a float64 array of shape ({count}, {L})")
    if skip is None:
        skip = np.zeros((count, L), dtype=np.bool_)
    elif skip.shape != (count, L) or skip.dtype != np.bool_:
        raise ValueError(f"skip must be a bool array of shape ({count}, {L})")
    out_used = np.zeros((count, L), dtype=np.int64)
    if used is not None:
        if used.shape != (count, L) or used.dtype != np.int64:
            raise ValueError(f"used must be an int64 array of shape ({count}, {L})")
        out_used[...] = used
    if count == 0:
        return
    _batch(first, count, n_chunks(count), plan.k0, plan.k1, widths, plan.var, plan.gain,
           np.int64(plan.dist), boxes, gap, found_min, found_max, lower, upper,
           np.ascontiguousarray(skip), out_used)
    if used is not None:
        used[...] = out_used
