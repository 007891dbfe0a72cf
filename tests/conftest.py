import numpy as np
import pytest


@pytest.fixture
def correlated_npy(tmp_path):
    """A fixed, strongly correlated dataset (6 inputs of dimension 40) saved as .npy."""
    g = np.random.default_rng(12345)
    base = g.standard_normal(40)
    X = base + 0.3 * g.standard_normal((6, 40))
    X[3] = 2.5 * X[0]          # an exactly collinear pair: rank-deficient Gram matrix
    path = tmp_path / "corr.npy"
    np.save(path, X)
    return str(path), X
