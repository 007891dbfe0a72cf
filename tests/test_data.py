"""Data sources (bundled digits, .npy, HDF5 datasets, normalisation) and weight normalisation."""

import h5py
import numpy as np
import pytest

from mcinit import config, engine
from mcinit.config import ConfigError
from mcinit.data import load_digits, load_fixed, scale_rows
from mcinit.engine import run

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def test_bundled_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert set(np.unique(y)) == set(range(10))
    src, X64, sha = load_fixed("digits", samples=64)
    assert src == "digits" and sha == DIGITS_SHA256
    assert np.array_equal(X64, X[:64])


def test_digits_run_as_a_fixed_dataset():
    cfg, data = config.build(trials=200, data="digits", samples=64, width=32, depth=3)
    assert cfg.fixed_data and cfg.samples == 64 and cfg.input_dim == 64
    assert cfg.data == "digits" and cfg.data_sha256 == DIGITS_SHA256
    res = engine.run(cfg, data)
    assert res.config.kernel in ("projected", "dense", "blocked") and res.summary.count[0, 0, 0] == 200 * 64
    with pytest.raises(ConfigError, match="dimension 64"):
        config.build(trials=5, data="digits", input_dim=100)


def test_normalize():
    _, Xc, _ = load_fixed("digits", samples=100, normalize="center")
    np.testing.assert_allclose(Xc.mean(axis=0), 0, atol=1e-12)
    _, Xu, _ = load_fixed("digits", samples=100, normalize="unit")
    np.testing.assert_allclose(np.linalg.norm(Xu, axis=1), 1, rtol=1e-14)
    np.testing.assert_allclose(Xu * np.linalg.norm(Xc, axis=1)[:, None], Xc, rtol=1e-12)
    a, _ = config.build(trials=5, data="digits", samples=10, normalize="center", width=8, depth=2)
    b, _ = config.build(trials=5, data="digits", samples=10, width=8, depth=2)
    assert a.config_hash() != b.config_hash()          # normalisation is part of a run's identity
    with pytest.raises(ConfigError, match="fixed datasets"):
        config.build(trials=5, normalize="center")
    with pytest.raises(ConfigError, match="normalize"):
        config.build(trials=5, data="digits", normalize="whiten")


def test_hdf5_dataset_source(tmp_path):
    X = np.random.default_rng(1).standard_normal((7, 5))
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("inputs/train", data=X)
    cfg, data = config.build(trials=5, data=f"{p}:inputs/train", width=8, depth=2)
    assert cfg.samples == 7 and cfg.input_dim == 5 and np.array_equal(data, X)
    with pytest.raises(ConfigError, match="no dataset"):
        config.build(trials=5, data=f"{p}:missing")
    with pytest.raises(ConfigError, match="name the dataset"):
        config.build(trials=5, data=str(p))


def _mean_rho(init, widths, input_dim, trials, wn_gain=None):
    cfg, data = config.build(trials=trials, input_dim=input_dim, widths=widths, init=init, kernel="dense",
                             wn_gain=wn_gain)
    rho = engine.run(cfg, data).records["fwd_max"]   # one input per trial: independent values
    return rho.mean(axis=0), rho.std(axis=0, ddof=1) / np.sqrt(trials)


@pytest.mark.parametrize("init,gain", [("wn", None), ("wn-unit", None), ("wn", 1.3)])
def test_weight_normalisation_means(init, gain):
    """E rho_l = prod_k n_k g_k^2 / (2 n_(k-1)) (docs/design.md section 3): wn keeps 1, gain 1 gives
    (n_1 / (2 n_0)) (1/2)^(l-1) at equal hidden widths; each layer within 6 standard errors."""
    n0, m, L = 24, 48, 5
    mean, se = _mean_rho(init, ",".join([str(m)] * L), n0, 20000, gain)
    n = np.array([n0] + [m] * L, dtype=float)
    g2 = {"wn": 2 * n[:-1] / n[1:], "wn-unit": np.ones(L)}[init] if gain is None else np.full(L, gain ** 2)
    expected = np.cumprod(n[1:] * g2 / (2 * n[:-1]))
    if init == "wn-unit":
        np.testing.assert_allclose(expected, (m / (2 * n0)) * 0.5 ** np.arange(L))
    assert np.all(np.abs(mean - expected) < 6 * se), (mean, expected, se)


def test_wn_gain_needs_weight_normalisation():
    with pytest.raises(ConfigError, match="weight-normalised"):
        config.build(trials=5, wn_gain=1.5)
    with pytest.raises(ConfigError, match="positive"):
        config.build(trials=5, init="wn", wn_gain=-1)


# --- inputs far from float64's range: scaled by exact powers of two --------------------------

def _records(X, tmp_path, name, **kw):
    path = tmp_path / f"{name}.npy"
    np.save(path, X)
    cfg, data = config.build(trials=40, data=str(path), width=16, depth=3, head="gaussian:5", **kw)
    return run(cfg, data).records


@pytest.mark.parametrize("kernel", ["dense", "projected"])
def test_huge_and_tiny_rows_give_the_ratios_of_the_rows_scaled(tmp_path, kernel):
    """Rows of 1e300 (||x||^2 overflows) and of 1e-200 (||x||^2 underflows to 0): their records
    are bit-identical, trial by trial, to those of the same rows scaled exactly into range by
    powers of two, and equal to rounding (rtol 1e-12) to those of the original moderate rows."""
    X = np.random.default_rng(3).standard_normal((4, 12))
    big, tiny = X * 1e300, X * 1e-200
    want = _records(np.ldexp(big, -1000), tmp_path, "big-scaled", kernel=kernel)
    got = _records(big, tmp_path, "big", kernel=kernel)
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max", "dead"):
        np.testing.assert_array_equal(got[k], want[k])
    assert np.all(np.isfinite(got["fwd_max"])) and not np.any(got["dead"])
    got_tiny = _records(tiny, tmp_path, "tiny", kernel=kernel)
    np.testing.assert_array_equal(got_tiny["fwd_min"], _records(np.ldexp(tiny, 700), tmp_path, "tiny-scaled",
                                                                kernel=kernel)["fwd_min"])
    plain = _records(X, tmp_path, "plain", kernel=kernel)
    for k in ("fwd_min", "fwd_max", "bwd_min", "bwd_max"):
        np.testing.assert_allclose(got[k], plain[k], rtol=1e-12)
        np.testing.assert_allclose(got_tiny[k], plain[k], rtol=1e-12)


def test_one_huge_row_runs_with_the_law_kernel(tmp_path):
    x = np.random.default_rng(4).standard_normal((1, 10))
    got = _records(x * 1e300, tmp_path, "one", kernel="law")
    want = _records(np.ldexp(x * 1e300, -990), tmp_path, "one-scaled", kernel="law")
    np.testing.assert_array_equal(got["fwd_min"], want["fwd_min"])
    np.testing.assert_array_equal(got["bwd_min"], want["bwd_min"])


def test_scaling_is_exact_and_only_where_needed():
    X = np.array([[1e300, -3e299, 0.0], [1.0, 2.0, 3.0], [1e-200, 0.0, 5e-201]])
    Y = scale_rows(X, "x")
    assert Y[1].tolist() == X[1].tolist()
    for i in (0, 2):
        e = np.frexp(np.max(np.abs(X[i])))[1]
        assert np.array_equal(np.ldexp(Y[i], e), X[i]) and 0.5 <= np.max(np.abs(Y[i])) < 1


def test_center_and_unit_of_huge_rows(tmp_path):
    X = np.random.default_rng(5).standard_normal((5, 8))
    path = tmp_path / "big.npy"
    np.save(path, X * 1e307)
    _, Xu, _ = load_fixed(str(path), normalize="unit")
    _, Yu, _ = load_fixed(str(path), normalize="unit", scale_free=False)     # unit rows: any head
    assert np.all(np.isfinite(Xu)) and np.allclose(np.linalg.norm(Xu, axis=1), 1.0)
    np.testing.assert_array_equal(Xu, Yu)
    _, Xc, _ = load_fixed(str(path), normalize="center")
    assert np.all(np.isfinite(Xc)) and np.allclose(Xc.mean(axis=0), 0.0, atol=1e-15)


BAD_SCALE = [
    (np.array([[1e300, 1.0]]), {}, "softmax head depends on the inputs' scale"),
    (np.array([[1e300, 1e-300], [1.0, 1.0]]), dict(head="gaussian:3"), "spans more magnitudes"),
    (np.full((3, 2), 1e307), dict(normalize="center"), "softmax head depends"),
]


@pytest.mark.parametrize("X,kw,message", BAD_SCALE)
def test_rows_that_cannot_be_scaled_exactly_are_refused(tmp_path, X, kw, message):
    path = tmp_path / "bad.npy"
    np.save(path, X)
    with pytest.raises(ConfigError, match=message):
        config.build(trials=5, data=str(path), width=8, depth=2, **kw)


def test_random_inputs_cannot_overflow():
    """A N(0, 1) variate is the inverse CDF of one 32-bit word, at most 6.34 in magnitude (at
    the extreme words): the squared norm of a gaussian input is below 41 n_0 <= 41 * 2**20,
    far from float64's limit."""
    from mcinit import rng
    u = np.array([0, 1, 2 ** 32 - 1, 2 ** 31], dtype=np.uint32)
    z = np.array([rng.u32_to_normal(np.uint32(w)) for w in u])
    assert np.abs(z).max() == pytest.approx(6.338, abs=1e-3)
