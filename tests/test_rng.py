"""The generator: Random123 known answers, the normal and uniform transforms, the counter layout.

Statistical tests use fixed seeds; each would fail for a correct generator with
probability below 1e-6 (threshold p < 1e-6)."""

import numpy as np
import pytest
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
