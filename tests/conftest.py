import os

import numpy as np
import pytest

from mcinit import config, engine


def run_memory(threads=None, batch_size=None, fixed=None, **kw):
    """Build a config and run it in memory; returns (RunResult, config, fixed data)."""
    cfg, data = config.build(**kw)
    res = engine.run(cfg, data, threads=threads, batch_size=batch_size)
    return res, res.config, data


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
