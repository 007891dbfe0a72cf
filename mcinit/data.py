"""Data sources: random inputs drawn per trial, or a fixed dataset read once.

Random sources are drawn inside the kernels from the generator (layer 0,
stream ``STREAM_DATA``, row = input index): ``gaussian`` draws x ~ N(0, I_n),
``sphere`` the same vector divided by its norm (uniform on the unit sphere).
A fixed dataset (``.npy``, one input per row) is used unchanged in every trial.
"""

import os

import numpy as np

from .config import ConfigError

__all__ = ["load_fixed"]


def load_fixed(path, samples=None, input_dim=None):
    """Read a fixed dataset: float64 array (N, n0), validated.

    samples    take the first ``samples`` rows (all rows when None)
    input_dim  when given, must equal the number of columns
    """
    if not path.endswith(".npy"):
        raise ConfigError(f"data must be gaussian, sphere or a .npy file; got {path!r}")
    if not os.path.isfile(path):
        raise ConfigError(f"data file not found: {path}")
    try:
        X = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ConfigError(f"cannot read {path} as a .npy array: {str(e).splitlines()[0]}") from None
    if X.dtype.kind not in "iuf":
        raise ConfigError(f"data file {path} must hold real numbers, not {X.dtype}")
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise ConfigError(f"data file {path} must be 2-D (one input per row), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"data file {path} is empty (shape {X.shape})")
    X = np.asarray(X, dtype=np.float64)
    if samples is not None:
        if samples > X.shape[0]:
            raise ConfigError(f"samples={samples} but {path} has only {X.shape[0]} rows")
        X = X[:samples]
    if input_dim is not None and input_dim != X.shape[1]:
        raise ConfigError(f"input_dim={input_dim} but the rows of {path} have dimension {X.shape[1]}")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"data file {path} contains NaN or infinite values")
    norms = np.einsum("ij,ij->i", X, X)
    if np.any(norms == 0):
        raise ConfigError(f"data file {path}: input row {int(np.argmin(norms))} is all zeros (ratios need ||x|| > 0)")
    return np.ascontiguousarray(X)
