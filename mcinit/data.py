"""Data sources: random inputs drawn per trial, or a fixed dataset read once.

Random sources are drawn inside the kernels from the generator (layer 0,
stream ``STREAM_DATA``, row = input index): ``gaussian`` draws x ~ N(0, I_n),
``sphere`` the same vector divided by its norm (uniform on the unit sphere).

A fixed dataset, one input per row, is used unchanged in every trial:
- ``digits``: the 8x8 handwritten digits bundled in data/digits.csv.gz (1797
  inputs of dimension 64, pixel values 0..16; provenance and licence in
  data/README.md);
- ``PATH.npy``: a NumPy array;
- ``PATH.h5:DATASET`` (or .hdf5): a dataset of an HDF5 file.
``samples`` takes the first rows (a deterministic subset; the digits' rows
cycle through the ten classes, so the first 10k rows hold k of each class
nearly evenly).  ``normalize`` then acts on the chosen rows:
- ``none``: as stored;
- ``center``: subtract the mean input (per feature);
- ``unit``: center, then scale every input to unit norm.
The ratios of DESIGN section 2 do not depend on an input's norm, but centring
changes the angles between inputs, and the norm sets the softmax head's scale.
"""

import gzip
import os

import numpy as np

from .config import ConfigError, sha256_file
from .options import NORMALIZE

__all__ = ["load_fixed", "NORMALIZE", "DIGITS_PATH"]

DIGITS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "digits.csv.gz")


def _digits_file():
    if os.path.isfile(DIGITS_PATH):
        return DIGITS_PATH
    raise ConfigError("the bundled digits dataset (data/digits.csv.gz) is missing from this installation")


def load_digits():
    """(images (1797, 64) float64 pixel values 0..16, labels (1797,) int)."""
    with gzip.open(_digits_file(), "rt") as f:
        a = np.loadtxt(f, delimiter=",")
    return a[:, :-1].astype(np.float64), a[:, -1].astype(np.int64)


def _read(source):
    """(canonical source string, raw array, sha256 of the file)."""
    if source.lower() == "digits":
        path = _digits_file()
        return "digits", load_digits()[0], sha256_file(path)
    path, sep, dset = source.rpartition(":")
    if sep and path.lower().endswith((".h5", ".hdf5")):
        if not os.path.isfile(path):
            raise ConfigError(f"data file not found: {path}")
        import h5py
        try:
            with h5py.File(path, "r", locking=False) as f:
                if dset not in f or not isinstance(f[dset], h5py.Dataset):
                    raise ConfigError(f"{path} has no dataset {dset!r}")
                X = f[dset][()]
        except OSError as e:
            raise ConfigError(f"cannot read {path} as HDF5: {str(e).splitlines()[0]}") from None
        return f"{os.path.abspath(path)}:{dset}", X, sha256_file(path)
    if source.lower().endswith((".h5", ".hdf5")):
        raise ConfigError(f"name the dataset inside the HDF5 file: --data {source}:DATASET")
    if not source.endswith(".npy"):
        raise ConfigError(f"data must be gaussian, sphere, digits, a .npy file or FILE.h5:DATASET; got {source!r}")
    if not os.path.isfile(source):
        raise ConfigError(f"data file not found: {source}")
    try:
        X = np.load(source, allow_pickle=False)
    except Exception as e:
        raise ConfigError(f"cannot read {source} as a .npy array: {str(e).splitlines()[0]}") from None
    return os.path.abspath(source), X, sha256_file(source)


def load_fixed(source, samples=None, input_dim=None, normalize="none"):
    """Read and validate a fixed dataset: (canonical source, float64 array (N, n0), file sha256).

    samples    take the first ``samples`` rows (all rows when None)
    input_dim  when given, must equal the number of columns
    normalize  none | center | unit (module docstring)
    """
    src, X, sha = _read(source)
    X = np.asarray(X)
    if X.dtype.kind not in "iuf":
        raise ConfigError(f"data {source} must hold real numbers, not {X.dtype}")
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise ConfigError(f"data {source} must be 2-D (one input per row), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"data file {source} is empty (shape {X.shape})")
    X = np.asarray(X, dtype=np.float64)
    if samples is not None:
        if samples > X.shape[0]:
            raise ConfigError(f"samples={samples} but {source} has only {X.shape[0]} rows")
        X = X[:samples]
    if input_dim is not None and input_dim != X.shape[1]:
        raise ConfigError(f"input_dim={input_dim} but the rows of {source} have dimension {X.shape[1]}")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"data file {source} contains NaN or infinite values")
    if normalize in ("center", "unit"):
        X = X - X.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if np.any(norms == 0):
        what = " after centring" if normalize != "none" else ""
        raise ConfigError(f"data {source}: input row {int(np.argmin(norms))} is all zeros{what} "
                          "(ratios need ||x|| > 0)")
    if normalize == "unit":
        X = X / norms[:, None]
    return src, np.ascontiguousarray(X), sha
