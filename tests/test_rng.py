"""The generator: Random123 known answers, the normal and uniform transforms, the counter layout.

Statistical tests use fixed seeds; each would fail for a correct generator with
probability below 1e-6 (threshold p < 1e-6)."""

import numpy as np
import pytest
from numba import njit
from scipy import special, stats

from mcinit import rng

# Random123 kat_vectors: philox4x32 10 (counter, key -> output)
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(ctr, key, want):
    out = rng.philox4x32_10(np.array(ctr, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert out.dtype == np.uint32
    assert out.tolist() == want


def test_philox_broadcasts():
    ctr = np.array([k[0] for k in KAT], dtype=np.uint32)
    key = np.array([k[1] for k in KAT], dtype=np.uint32)
    assert rng.philox4x32_10(ctr, key).tolist() == [k[2] for k in KAT]


def test_ndtri_matches_scipy_to_rounding():
    p = np.concatenate([np.logspace(-300, -1, 3000), np.linspace(0.001, 0.999, 2001)])
    p = np.concatenate([p, 1 - p[(p < 0.5) & (p > 1e-15)]])
    ours = np.array([rng.ndtri(x) for x in p])
    ref = special.ndtri(p)
    ok = ref != 0
    assert np.max(np.abs(ours[ok] - ref[ok]) / np.abs(ref[ok])) < 5e-15


def test_normals_are_standard_normal():
    z = rng.normal_matrix(7, 123, 3, rng.STREAM_WEIGHTS, 500, 1003).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-6
    # mean and variance: 6-sigma bounds for n = 501500
    n = z.size
    assert abs(z.mean()) < 6 / np.sqrt(n)
    assert abs(z.var() - 1) < 6 * np.sqrt(2 / n)
    assert np.abs(z).max() < 6.37  # 32-bit inversion: |z| <= Phi^-1(1 - 2^-33)


def test_uniforms_are_uniform():
    u = rng.uniform_matrix(7, 5, 1, rng.STREAM_TARGET, 300, 1001).ravel()
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-6


def test_rows_columns_and_keys_are_independent_streams():
    a = rng.normal_matrix(1, 0, 1, 0, 64, 64)
    variants = [rng.normal_matrix(2, 0, 1, 0, 64, 64), rng.normal_matrix(1, 1, 1, 0, 64, 64),
                rng.normal_matrix(1, 0, 2, 0, 64, 64), rng.normal_matrix(1, 0, 1, 1, 64, 64),
                rng.normal_matrix(1, 1 << 32, 1, 0, 64, 64), rng.normal_matrix(1 << 32, 0, 1, 0, 64, 64)]
    for b in variants:
        assert not np.any(a == b)
        # sample correlation of 4096 independent pairs: |r| < 6/sqrt(n)
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 6 / 64


def test_a_row_does_not_depend_on_the_matrix_shape():
    big = rng.normal_matrix(3, 9, 2, 0, 10, 37)
    small = rng.normal_matrix(3, 9, 2, 0, 4, 13)
    assert np.array_equal(big[:4, :13], small)


def test_bad_seed_is_refused():
    with pytest.raises(ValueError):
        rng.seed_key(-1)
    with pytest.raises(ValueError):
        rng.seed_key(1 << 64)


@njit(cache=True)
def _normals_of(words, out):
    for i in range(words.shape[0]):
        out[i] = rng.u32_to_normal(words[i])


@njit(cache=True)
def _logs_of(m, out):
    for i in range(m.shape[0]):
        out[i] = rng.log_odd(m[i])


def _tail_edges():
    t = rng.TAIL_WORDS
    low = np.concatenate([np.arange(0, 4096), np.arange(t - 2048, t + 2048)]).astype(np.uint64)
    return np.concatenate([low, np.uint64(2 ** 32 - 1) - low])


def test_word_to_normal_is_the_normal_quantile_of_its_uniform():
    # Phi^-1((w + 1/2) 2^-32): every tail boundary word and both ends, and 2e6 random words
    w = np.concatenate([_tail_edges(), np.random.default_rng(1).integers(0, 2 ** 32, 2_000_000,
                                                                         dtype=np.uint64)])
    z = np.empty(w.size)
    _normals_of(w, z)
    ref = special.ndtri((w.astype(np.float64) + 0.5) * 2.0 ** -32)
    assert np.max(np.abs(z - ref) / np.abs(ref)) < 5e-15
    # the tail test in words is the quantile's own test |u - 1/2| > 0.425
    u = (w.astype(np.float64) + 0.5) * 2.0 ** -32
    assert np.array_equal(np.minimum(w, 2 ** 32 - 1 - w) < rng.TAIL_WORDS, np.abs(u - 0.5) > 0.425)


def test_tail_logarithm_is_within_one_ulp():
    # log(m 2^-33) for the odd m of the tail, against 80-bit long double
    d = np.concatenate([np.arange(0, 70000), np.random.default_rng(2).integers(0, rng.TAIL_WORDS, 1_000_000),
                        np.arange(rng.TAIL_WORDS - 70000, rng.TAIL_WORDS)]).astype(np.int64)
    m = 2 * d + 1
    ours = np.empty(m.size)
    _logs_of(m, ours)
    exact = np.log(m.astype(np.longdouble)) - 33 * np.log(np.longdouble(2))
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision long double on this platform")
    ulps = np.abs((ours - exact) / np.spacing(np.abs(exact.astype(np.float64))).astype(np.longdouble))
    assert float(ulps.max()) < 1.0


@njit(cache=True)
def _scalar_of(f, x, out):
    for i in range(x.shape[0]):
        out[i] = f(x[i])


def _ulps(ours, exact):
    """|ours - exact| in units of the last place of the double nearest exact."""
    return np.abs((ours - exact) / np.spacing(np.abs(exact.astype(np.float64))).astype(np.longdouble))


def test_exp_is_within_one_ulp_and_the_vector_pass_equals_the_scalar():
    rs = np.random.default_rng(7)
    x = np.concatenate([rs.uniform(-745.13, 709.78, 600_000), rs.uniform(-1.0, 1.0, 200_000),
                        rs.uniform(-40.0, 0.0, 200_000), rs.standard_normal(50_000) * 1e-10,
                        np.array([0.0, -0.0, 1e-300, -1e-300, 0.5 * np.log(2.0), -0.5 * np.log(2.0),
                                  1.5 * np.log(2.0), -708.39, -708.4, -720.5, -745.0,
                                  709.782712893384, -745.1332191019411])])
    ours = np.empty(x.size)
    rng.exp_values(x, ours, x.size, np.empty(2 * x.size, np.int64))
    scalar = np.empty(x.size)
    _scalar_of(rng.exp, x, scalar)
    assert np.array_equal(ours.view(np.int64), scalar.view(np.int64))
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision long double on this platform")
    exact = np.exp(x.astype(np.longdouble))
    assert float(_ulps(ours, exact).max()) < 1.0     # subnormal results included
    assert np.isfinite(ours[-2]) and ours[-1] == 5e-324     # fdlibm's two thresholds


def test_exp_edges():
    x = np.array([np.nan, np.inf, -np.inf, 709.79, -745.14, -1e308, 1e308, 0.0])
    ours = np.empty(x.size)
    rng.exp_values(x, ours, x.size, np.empty(2 * x.size, np.int64))
    scalar = np.empty(x.size)
    _scalar_of(rng.exp, x, scalar)
    for got in (ours, scalar):
        assert np.isnan(got[0])
        assert np.array_equal(got[1:], [np.inf, 0.0, np.inf, 0.0, 0.0, np.inf, 1.0])


def test_log_pos_is_within_one_ulp_and_equals_the_summaries_log():
    from mcinit.stats import log_values
    rs = np.random.default_rng(8)
    x = np.concatenate([rs.uniform(0.0, 4.0, 300_000), np.exp(rs.uniform(-744.0, 709.0, 300_000)),
                        np.array([5e-324, 1e-310, 2.2250738585072014e-308, 0.5, 1.0, 2.0,
                                  np.sqrt(0.5), np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0.0),
                                  np.finfo(np.float64).max])])
    x = x[x > 0]
    ours = np.empty(x.size)
    _scalar_of(rng.log_pos, x, ours)
    vec = np.empty(x.size)
    log_values(x, vec, x.size, np.empty(2 * x.size, np.int64))
    assert np.array_equal(ours.view(np.int64), vec.view(np.int64))
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision long double on this platform")
    exact = np.log(x.astype(np.longdouble))
    nz = exact != 0
    assert float(_ulps(ours[nz], exact[nz]).max()) < 1.0
    assert ours[~nz].tolist() == [0.0]


@pytest.mark.parametrize("n", [1, 3, 4, 31, 32, 33, 100, 257, 1024, 1027])
def test_vectorised_rows_give_the_words_numbers(n):
    k0, k1 = rng.seed_key(12345)
    c2, c3 = (np.uint64(w) for w in rng.counter_words((1 << 33) + 7, 3, 0))   # as the kernels hold them
    words = rng.philox4x32_10(np.array([[b, 5, int(c2), int(c3)] for b in range((n + 3) // 4)], np.uint32),
                              np.array([int(k0), int(k1)], np.uint32)).ravel()[:n].astype(np.uint64)
    want = np.empty(n)
    _normals_of(words, want)
    want *= 0.7
    ws = rng.row_workspace(n + 5)
    got = np.empty(n)
    rng.fill_normal_row(k0, k1, c2, c3, 5, 0.7, got, n)
    assert np.array_equal(got, want)
    got[:] = np.nan
    rng.fill_normal_row_ws(k0, k1, c2, c3, 5, 0.7, got, n, ws)
    assert np.array_equal(got, want)
    pick = np.random.default_rng(n).random(n) < 0.5
    cols = np.flatnonzero(pick).astype(np.int64)
    part = np.empty(cols.size)
    rng.fill_normal_cols_ws(k0, k1, c2, c3, 5, 0.7, cols, cols.size, part, ws)
    assert np.array_equal(part, want[cols])
    for f in (rng.fill_normal_row_where, rng.fill_normal_row_where_ws):
        got[:] = np.nan
        args = (k0, k1, c2, c3, 5, 0.7, got, n, pick.astype(np.uint8))
        f(*(args + (ws,) if f is rng.fill_normal_row_where_ws else args))
        assert np.array_equal(got, np.where(pick, want, 0.0))
    for f in (rng.fill_relu_normal_row, rng.fill_relu_normal_row_ws):
        got[:] = np.nan
        args = (k0, k1, c2, c3, 5, 0.7, got, n)
        f(*(args + (ws,) if f is rng.fill_relu_normal_row_ws else args))
        assert np.array_equal(got, np.maximum(want, 0.0))


@pytest.mark.parametrize("n", [1, 5, 100, 1030])
def test_blocks_of_rows_give_the_rows_numbers(n):
    k0, k1 = rng.seed_key(5)
    c2, c3 = (np.uint64(w) for w in rng.counter_words(77, 2, 0))   # as the kernels hold them
    ws = rng.block_workspace(n)
    for density in (1.0, 0.5, 0.1):
        cols = np.flatnonzero(np.random.default_rng(n).random(n) < density).astype(np.int64)
        cols = cols if cols.size else np.array([n - 1], dtype=np.int64)
        for nrows in sorted({1, rng.block_rows(n)}):
            out = np.full(nrows * cols.size, np.nan)
            rng.fill_normal_block_cols(k0, k1, c2, c3, 3, nrows, 0.5, cols, cols.size, out, ws)
            for r in range(nrows):
                full = np.empty(n)
                rng.fill_normal_row(k0, k1, c2, c3, 3 + r, 0.5, full, n)
                assert np.array_equal(out[r * cols.size:(r + 1) * cols.size], full[cols])
