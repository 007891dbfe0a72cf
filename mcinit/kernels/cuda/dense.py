"""The dense kernel on the GPU: one thread block per trial, weights regenerated row by row from Philox."""

import math

from numba import cuda, float64, int64

from ... import rng
from ...initializers import DIST_NORMAL, DIST_WN
from ..common import DATA_FIXED, DATA_SPHERE
from .device import (RBMAX, RED, SW, as_array, block_ratios, block_sum, block_words, head_error, kernel_jit,
                     lane, row_norms2, weight_value)

# ----------------------------------------------------------------- dense

@cuda.jit(device=True)
def dense_inputs(k0, k1, trial, data, X0, N, n0, H0, act0, red):
    """H0[x] = input x (fixed row, N(0, I) or uniform on the sphere, as common.draw_inputs);
    act0[j] = some input has H0[x, j] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    if data == DATA_FIXED:
        for x in range(N):
            for j in range(tid, n0, T):
                H0[x, j] = X0[x, j]
    else:
        c2, c3 = rng.counter_words(trial, 0, rng.STREAM_DATA)
        nb = (n0 + 3) // 4
        for x in range(N):
            p = 0.0
            for b in range(tid, nb, T):
                w0, w1, w2, w3 = block_words(k0, k1, c2, c3, x, b)
                for c in range(min(4, n0 - 4 * b)):
                    z = rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                    H0[x, 4 * b + c] = z
                    p += z * z
            if data == DATA_SPHERE:
                s = 1.0 / math.sqrt(block_sum(p, red))
                for b in range(tid, nb, T):
                    for j in range(4 * b, min(4 * b + 4, n0)):
                        H0[x, j] *= s
    cuda.syncthreads()
    for j in range(tid, n0, T):
        a = 0
        for x in range(N):
            if H0[x, j] != 0.0:
                a = 1
        act0[j] = a
    cuda.syncthreads()


@cuda.jit(device=True)
def dense_forward(k0, k1, c2, c3, dist, sd, ua, gain, Hin, actin, n_in,
                   Hout, actout, rsc, n_out, N, relu, cw, ws):
    """Hout[x, i] = (ReLU) W[i, :] . Hin[x, :] for rows i of (c2, c3), thread i.

    Row i is generated cw columns at a time into the thread's column of ws
    (ws[c * T + tid]) and applied to every input.  Columns that no
    input activates (actin == 0) contribute nothing: their Philox block is
    skipped, except for weight-normalised rows, whose norm needs every column;
    rsc[i] keeps a weight-normalised row's scale g/||v|| for the backward pass.
    actout[i] = some input has Hout[x, i] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    wn = dist == DIST_WN
    for i in range(tid, n_out, T):
        ss = 0.0
        for cb in range(0, n_in, cw):
            nc = min(cw, n_in - cb)
            for q in range(0, nc, 4):
                j = cb + q
                m = min(4, nc - q)
                need = wn
                for c in range(m):
                    if actin[j + c] != 0:
                        need = True
                if need:
                    w0, w1, w2, w3 = block_words(k0, k1, c2, c3, i, j // 4)
                    for c in range(m):
                        val = 0.0
                        if wn or actin[j + c] != 0:
                            val = weight_value(lane(w0, w1, w2, w3, c), dist, sd, ua)
                        ss += val * val
                        ws[(q + c) * T + tid] = val
                else:
                    for c in range(m):
                        ws[(q + c) * T + tid] = 0.0
            for x in range(N):
                a = Hout[x, i] if cb > 0 else 0.0
                for c in range(nc):
                    a += ws[c * T + tid] * Hin[x, cb + c]
                Hout[x, i] = a
        sc = 1.0
        if wn:
            sc = gain / math.sqrt(ss)
            rsc[i] = sc
        anyp = 0
        for x in range(N):
            a = Hout[x, i]
            if wn:
                a = sc * a
            if relu and not a > 0.0:
                a = 0.0
            Hout[x, i] = a
            if a != 0.0:
                anyp = 1
        actout[i] = anyp
    cuda.syncthreads()


@cuda.jit(device=True)
def dense_backward(k0, k1, c2, c3, dist, sd, ua, rsc, Din, ractin, n_out,
                    Hm, n_in, Dout, ractout, N, rb, ws, rows):
    """Dout[x, j] = 1[Hm[x, j] > 0] sum_i W[i, j] Din[x, i]; thread b owns columns 4b..4b+3.

    The rows i with some Din[x, i] != 0 (ractin) are regenerated, rb at a time,
    into the thread's part of ws; rsc[i] scales a weight-normalised row.
    ractout[j] = some Dout[x, j] != 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    wn = dist == DIST_WN
    nb = (n_in + 3) // 4
    for b in range(tid, nb, T):
        j = 4 * b
        m = min(4, n_in - j)
        e0 = False
        e1 = False
        e2 = False
        e3 = False
        for x in range(N):
            if Hm[x, j] > 0.0:
                e0 = True
            if m > 1 and Hm[x, j + 1] > 0.0:
                e1 = True
            if m > 2 and Hm[x, j + 2] > 0.0:
                e2 = True
            if m > 3 and Hm[x, j + 3] > 0.0:
                e3 = True
        for x in range(N):
            for c in range(m):
                Dout[x, j + c] = 0.0
        if e0 or e1 or e2 or e3:
            i = 0
            while i < n_out:
                nr = 0
                while i < n_out and nr < rb:
                    if ractin[i] != 0:
                        w0, w1, w2, w3 = block_words(k0, k1, c2, c3, i, b)
                        sc = rsc[i] if wn else 1.0
                        for c in range(4):
                            e = e0 if c == 0 else (e1 if c == 1 else (e2 if c == 2 else e3))
                            val = 0.0
                            if e:
                                val = sc * weight_value(lane(w0, w1, w2, w3, c), dist, sd, ua)
                            ws[(4 * nr + c) * T + tid] = val
                        rows[nr] = i
                        nr += 1
                    i += 1
                for x in range(N):
                    s0 = Dout[x, j]
                    s1 = Dout[x, j + 1] if m > 1 else 0.0
                    s2 = Dout[x, j + 2] if m > 2 else 0.0
                    s3 = Dout[x, j + 3] if m > 3 else 0.0
                    for r in range(nr):
                        d = Din[x, rows[r]]
                        base = 4 * r * T + tid
                        s0 += ws[base] * d
                        s1 += ws[base + T] * d
                        s2 += ws[base + 2 * T] * d
                        s3 += ws[base + 3 * T] * d
                    Dout[x, j] = s0
                    if m > 1:
                        Dout[x, j + 1] = s1
                    if m > 2:
                        Dout[x, j + 2] = s2
                    if m > 3:
                        Dout[x, j + 3] = s3
        for c in range(m):
            a = 0
            for x in range(N):
                val = Dout[x, j + c]
                if not Hm[x, j + c] > 0.0:
                    val = 0.0
                Dout[x, j + c] = val
                if val != 0.0:
                    a = 1
            ractout[j + c] = a
    cuda.syncthreads()


@kernel_jit("dense")
def dense_kernel(first, count, cw, rb, k0, k1, widths, hoff, var, gain, dist, head, K, data,
                  X0, N, H, D, Z, E, act, ract, rsc, hn2, dn2, fwd, bwd, dead):
    red = cuda.shared.array(RED, float64)
    ws = cuda.shared.array(SW, float64)
    rows = cuda.local.array(RBMAX, int64)
    tid = cuda.threadIdx.x
    s = cuda.blockIdx.x
    L = widths.shape[0] - 1
    Hs = H[s]
    acts = act[s]
    rscs = rsc[s]
    for t in range(s, count, cuda.gridDim.x):
        trial = first + t
        n0 = widths[0]
        dense_inputs(k0, k1, trial, data, X0, N, n0, Hs[:, 0:n0], acts[0:n0], red)
        for l in range(1, L + 1):
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
            v = var[l - 1]
            a, b, e = hoff[l - 1], hoff[l], hoff[l + 1]
            dense_forward(k0, k1, c2, c3, dist, math.sqrt(v), math.sqrt(3.0 * v), gain[l - 1],
                           Hs[:, a:b], acts[a:b], b - a, Hs[:, b:e], acts[b:e], rscs[b:e], e - b,
                           N, True, cw, ws)
        # head: z = W_o h^L, W_o ~ N(0, 1) rows of layer L + 1
        a, b = hoff[L], hoff[L + 1]
        nL = b - a
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_WEIGHTS)
        Zs = Z[s]
        Es = E[s]
        dense_forward(k0, k1, c2, c3, DIST_NORMAL, 1.0, 0.0, 0.0, Hs[:, a:b], acts[a:b], nL,
                       Zs, ract[s, 1], rscs, K, N, False, cw, ws)
        for x in range(tid, N, cuda.blockDim.x):
            head_error(k0, k1, trial, L + 1, head, as_array(Zs[x]), x, as_array(Es[x]), K)
        cuda.syncthreads()
        for c in range(tid, K, cuda.blockDim.x):
            f = 0
            for x in range(N):
                if Es[x, c] != 0.0:
                    f = 1
            ract[s, 1, c] = f
        cuda.syncthreads()
        # delta^L = 1[a^L > 0] (W_o^T e)
        dense_backward(k0, k1, c2, c3, DIST_NORMAL, 1.0, 0.0, rscs, Es, ract[s, 1], K,
                        Hs[:, a:b], nL, D[s, 0], ract[s, 0], N, rb, ws, rows)
        row_norms2(D[s, 0], N, nL, dn2[s], L, red)
        # delta^(l-1) = 1[a^(l-1) > 0] (W_l^T delta^l)
        cur = 0
        for l in range(L, 1, -1):
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_WEIGHTS)
            v = var[l - 1]
            a, b, e = hoff[l - 1], hoff[l], hoff[l + 1]
            dense_backward(k0, k1, c2, c3, dist, math.sqrt(v), math.sqrt(3.0 * v), rscs[b:e],
                            D[s, cur], ract[s, cur], e - b, Hs[:, a:b], b - a,
                            D[s, 1 - cur], ract[s, 1 - cur], N, rb, ws, rows)
            row_norms2(D[s, 1 - cur], N, b - a, dn2[s], l - 1, red)
            cur = 1 - cur
        for l in range(L + 1):
            row_norms2(Hs[:, hoff[l]:hoff[l + 1]], N, hoff[l + 1] - hoff[l], hn2[s], l, red)
        d = block_ratios(hn2[s], dn2[s], L, N, fwd[t], bwd[t])
        if tid == 0:
            dead[t] = 1 if d else 0
        cuda.syncthreads()

