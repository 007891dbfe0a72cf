"""Data sources (bundled digits, .npy, HDF5 datasets, normalisation) and weight normalisation."""

import h5py
import numpy as np
import pytest

from mcinit import config, engine
from mcinit.config import ConfigError
from mcinit.data import load_digits, load_fixed

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
    assert res.config.kernel in ("projected", "dense") and res.summary.count[0, 0, 0] == 200 * 64
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
    """E rho_l = prod_k n_k g_k^2 / (2 n_(k-1)) (DESIGN section 3): wn keeps 1, gain 1 gives
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
