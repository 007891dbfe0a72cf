"""The projected kernel on the GPU: one thread block per trial, the CPU's thin QR with block reductions."""

import math

from numba import cuda, float64

from ... import rng
from .. import projected as cpu_projected
from .device import (RED, as_array, block_ratios, block_sum, block_sum2, block_words,
                     fill_normal_row, head_error, input_factor, kernel_jit, lane, row_norms2)

# ----------------------------------------------------------------- projected

@cuda.jit(device=True)
def mgs(A, N, n, Q, R, v, rmax, red):
    """projected.mgs with block reductions: thin QR of the rows A[x, :n]; returns the rank.

    Thread tid owns entries j = tid + k T of v and of every Q row; R is written by
    thread 0 and visible to the block on return."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    r = 0
    for x in range(N):
        p = 0.0
        for j in range(tid, n, T):
            a = A[x, j]
            v[j] = a
            p += a * a
        if tid == 0:
            for k in range(r):
                R[k, x] = 0.0
        a2 = block_sum(p, red)
        if a2 == 0.0:
            continue
        for _ in range(2):
            for k in range(r):
                p = 0.0
                for j in range(tid, n, T):
                    p += Q[k, j] * v[j]
                c = block_sum(p, red)
                if tid == 0:
                    R[k, x] += c
                for j in range(tid, n, T):
                    v[j] -= c * Q[k, j]
        p = 0.0
        for j in range(tid, n, T):
            p += v[j] * v[j]
        nv = math.sqrt(block_sum(p, red))
        if r < rmax and nv > cpu_projected.RANK_TOL * math.sqrt(a2):
            inv = 1.0 / nv
            for j in range(tid, n, T):
                Q[r, j] = v[j] * inv
            if tid == 0:
                for xp in range(x):
                    R[r, xp] = 0.0
                R[r, x] = nv
            r += 1
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def back_step(Q, r, G, n_out, Dm, Nv, rd, Rd, Y, n, Hm, Dout, v, red, red2):
    """projected.back_step: Dout[x] = 1[h > 0] (Q G^T D[x] + (I - QQ^T) sum_m Rd[m, x] Y[m])."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for x in range(Nv):
        for j in range(tid, n, T):
            a = 0.0
            for m in range(rd):
                a += Rd[m, x] * Y[m, j]
            v[j] = a
        for k in range(r):
            pc = 0.0
            for j in range(tid, n, T):
                pc += Q[k, j] * v[j]
            pp = 0.0
            for i in range(tid, n_out, T):
                pp += G[k, i] * Dm[x, i]
            c, p = block_sum2(pc, pp, red, red2)
            for j in range(tid, n, T):
                v[j] += (p - c) * Q[k, j]
        for j in range(tid, n, T):
            Dout[x, j] = v[j] if Hm[x, j] > 0.0 else 0.0
    cuda.syncthreads()


@cuda.jit(device=True)
def support(Hm, N, n, need):
    """projected.support: need[j] = some input has Hm[x, j] > 0."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    for j in range(tid, n, T):
        f = 0
        for x in range(N):
            if Hm[x, j] > 0.0:
                f = 1
        need[j] = f
    cuda.syncthreads()


@cuda.jit(device=True)
def normal_rows_where(k0, k1, c2, c3, nrows, scale, Y, n, need):
    """Rows m < nrows of rng.fill_normal_row_where (thread per column block)."""
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    nb = (n + 3) // 4
    for m in range(nrows):
        for b in range(tid, nb, T):
            j = 4 * b
            mm = min(4, n - j)
            anyn = False
            for c in range(mm):
                if need[j + c] != 0:
                    anyn = True
            if anyn:
                w0, w1, w2, w3 = block_words(k0, k1, c2, c3, m, b)
                for c in range(mm):
                    val = 0.0
                    if need[j + c] != 0:
                        val = scale * rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                    Y[m, j + c] = val
            else:
                for c in range(mm):
                    Y[m, j + c] = 0.0
    cuda.syncthreads()


@kernel_jit("projected")
def projected_kernel(first, count, k0, k1, widths, hoff, var, head, K, data, R0f, r0f, N,
                      H, Q, R, G, Go, D, E, Z, Qs, Rs, Y, V, need, rank, hn2, dn2,
                      fwd, bwd, dead):
    red = cuda.shared.array(RED, float64)
    red2 = cuda.shared.array(RED, float64)
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    s = cuda.blockIdx.x
    L = widths.shape[0] - 1
    rs = Qs.shape[1]
    Hs = H[s]
    v = V[s]
    rk = rank[s]
    nd = need[s]
    for t in range(s, count, cuda.gridDim.x):
        trial = first + t
        if tid == 0:
            rk[0] = input_factor(k0, k1, trial, data, as_array(R0f), r0f, widths[0], N, as_array(R[s, 0]),
                                  as_array(hn2[s, :, 0]))
        cuda.syncthreads()
        r = rk[0]
        # forward: a^l(x) = sum_k R[k, x] G[k, :], G = (W_l Q)^T rows ~ N(0, v_l)
        for l in range(1, L + 1):
            n = widths[l]
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_G)
            sd = math.sqrt(var[l - 1])
            Gl = G[s, l]
            Rp = R[s, l - 1]
            Hl = Hs[:, hoff[l]:hoff[l + 1]]
            nb = (n + 3) // 4
            if N == 1 and r == 1:
                s00 = Rp[0, 0]
                for b in range(tid, nb, T):
                    w0, w1, w2, w3 = block_words(k0, k1, c2, c3, 0, b)
                    for c in range(min(4, n - 4 * b)):
                        w = lane(w0, w1, w2, w3, c)
                        g = sd * rng.u32_to_normal(w) if w >= rng.HALF_WORD else 0.0
                        Gl[0, 4 * b + c] = g
                        Hl[0, 4 * b + c] = s00 * g
            else:
                for b in range(tid, nb, T):
                    mm = min(4, n - 4 * b)
                    for k in range(r):
                        w0, w1, w2, w3 = block_words(k0, k1, c2, c3, k, b)
                        for c in range(mm):
                            Gl[k, 4 * b + c] = sd * rng.u32_to_normal(lane(w0, w1, w2, w3, c))
                    for j in range(4 * b, 4 * b + mm):
                        for x in range(N):
                            a = 0.0
                            for k in range(r):
                                a += Rp[k, x] * Gl[k, j]
                            if a < 0.0:
                                a = 0.0
                            Hl[x, j] = a
            cuda.syncthreads()
            r = mgs(Hl, N, n, Q[s, l], R[s, l], v, min(N, n), red)
            if tid == 0:
                rk[l] = r
        # head: z = G_o R_L, G_o = W_o Q_L ~ N(0, 1)
        rL = r
        nL = widths[L]
        HL = Hs[:, hoff[L]:hoff[L + 1]]
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_G)
        Gos = Go[s]
        for k in range(tid, rL, T):
            fill_normal_row(k0, k1, c2, c3, k, 1.0, as_array(Gos[k]), K)
        cuda.syncthreads()
        Zs = Z[s]
        Es = E[s]
        RL = R[s, L]
        for x in range(tid, N, T):
            for c in range(K):
                a = 0.0
                for k in range(rL):
                    a += RL[k, x] * Gos[k, c]
                Zs[x, c] = a
            head_error(k0, k1, trial, L + 1, head, as_array(Zs[x]), x, as_array(Es[x]), K)
        cuda.syncthreads()
        # delta^L = 1[a^L > 0] (Q_L G_o^T e + (I - Q_L Q_L^T) Y_o R_E)
        Qss = Qs[s]
        Rss = Rs[s]
        Ys = Y[s]
        re = mgs(Es, N, K, Qss, Rss, v, rs, red)
        c2, c3 = rng.counter_words(trial, L + 1, rng.STREAM_PROJ_Y)
        support(HL, N, nL, nd)
        normal_rows_where(k0, k1, c2, c3, re, 1.0, Ys, nL, nd)
        back_step(Q[s, L], rL, Gos, K, Es, N, re, Rss, Ys, nL, HL, D[s, 0], v, red, red2)
        row_norms2(D[s, 0], N, nL, dn2[s], L, red)
        # delta^(l-1) = 1[a^(l-1) > 0] (Q G_l^T delta^l + (I - QQ^T) Y_l R_D)
        cur = 0
        for l in range(L, 1, -1):
            n_out = widths[l]
            n = widths[l - 1]
            Dl = D[s, cur]
            rd = mgs(Dl, N, n_out, Qss, Rss, v, rs, red)
            c2, c3 = rng.counter_words(trial, l, rng.STREAM_PROJ_Y)
            Hm = Hs[:, hoff[l - 1]:hoff[l]]
            support(Hm, N, n, nd)
            normal_rows_where(k0, k1, c2, c3, rd, math.sqrt(var[l - 1]), Ys, n, nd)
            back_step(Q[s, l - 1], rk[l - 1], G[s, l], n_out, Dl, N, rd, Rss, Ys, n, Hm,
                       D[s, 1 - cur], v, red, red2)
            row_norms2(D[s, 1 - cur], N, n, dn2[s], l - 1, red)
            cur = 1 - cur
        for l in range(1, L + 1):
            row_norms2(Hs[:, hoff[l]:hoff[l + 1]], N, widths[l], hn2[s], l, red)
        d = block_ratios(hn2[s], dn2[s], L, N, fwd[t], bwd[t])
        if tid == 0:
            dead[t] = 1 if d else 0
        cuda.syncthreads()

