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
The ratios do not depend on an input's norm, but centring changes the angles
between inputs, and the norm sets the softmax head's scale.

Inputs far from float64's comfortable range.  A ReLU network without biases is
positively homogeneous: h^l(c x) = c h^l(x) for c > 0, so with a gaussian head
(whose errors do not depend on the logits) every ratio of an input is the same at
every scale of it.  A row whose squared norm would overflow (rows of 1e300: finite,
but ||x||^2 is not) or underflow (rows of 1e-200), that is one whose largest entry
lies outside [2**-SAFE_EXPONENT, 2**SAFE_EXPONENT], is therefore multiplied by the
power of two that brings its largest entry into [1/2, 1) (np.ldexp: every entry
exactly, so that its ratios are bit-identical to those of any exactly scaled copy
of it).  For ``center`` and ``unit`` the whole dataset is first scaled so by its
largest entry, so that its mean cannot overflow.  Such rows are refused, with one
line, where the scale matters (a softmax head, unless ``unit`` makes every row a
unit vector) or where no power of two scales them exactly (entries spanning more
than float64's range, whose small ones would round).  Random inputs cannot
overflow: a gaussian entry is the inverse normal CDF of one 32-bit word, at most
6.34 in magnitude, so ||x||^2 < 41 n_0 <= 41 * 2**20, and sphere inputs have norm 1.
"""

import gzip
import os

import numpy as np

from .config import ConfigError, sha256_file
from .options import NORMALIZE

__all__ = ["load_fixed", "scale_rows", "NORMALIZE", "DIGITS_PATH", "SAFE_EXPONENT"]

#: rows whose largest entry lies outside [2**-SAFE_EXPONENT, 2**SAFE_EXPONENT] are scaled by
#: a power of two (module docstring): their squared norms, and the networks' activations,
#: then stay far from float64's limits (2**+-1022)
SAFE_EXPONENT = 400
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


def _exponents(X):
    """e[i] with the largest |entry| of row i in [2**(e-1), 2**e) (0 for an all-zero row)."""
    return np.frexp(np.max(np.abs(X), axis=1))[1]


def scale_rows(X, source, scale_free=True, what="input row"):
    """X with every row whose largest entry lies outside [2**-SAFE_EXPONENT, 2**SAFE_EXPONENT]
    multiplied by the power of two that brings that entry into [1/2, 1), every entry exactly.

    X           finite float64 array (N, n0)
    source      the data's name, for messages
    scale_free  whether the ratios are free of an input's scale (a gaussian head, or unit
                rows); when not, a row that would need scaling is refused (ConfigError)
    what        how a row is named in messages
    """
    e = _exponents(X)
    far = (np.max(np.abs(X), axis=1) > 0) & (np.abs(e) > SAFE_EXPONENT)
    if not np.any(far):
        return X
    i = int(np.argmax(far))
    name = f"{what} {i}" if len(X) > 1 or what == "input row" else what
    if not scale_free:
        raise ConfigError(f"data {source}: {name} has entries of magnitude 2**{int(e[i]) - 1}, "
                          "whose squared norm float64 cannot hold, and a softmax head depends on the "
                          "inputs' scale: scale the data, or use --normalize unit or a gaussian head")
    rows = np.flatnonzero(far)
    Y = np.array(X, dtype=np.float64, copy=True)
    Y[rows] = np.ldexp(X[rows], -e[rows][:, None])
    exact = np.ldexp(Y[rows], e[rows][:, None]) == X[rows]
    if not np.all(exact):
        i = int(rows[np.argmin(np.all(exact, axis=1))])
        name = f"{what} {i}" if len(X) > 1 or what == "input row" else what
        raise ConfigError(f"data {source}: {name} spans more magnitudes than float64 holds "
                          "(no power of two scales it exactly, and its squared norm is out of range)")
    return Y


def load_fixed(source, samples=None, input_dim=None, normalize="none", scale_free=True):
    """Read and validate a fixed dataset: (canonical source, float64 array (N, n0), file sha256).

    samples     take the first ``samples`` rows (all rows when None)
    input_dim   when given, must equal the number of columns
    normalize   none | center | unit (module docstring)
    scale_free  whether a run's ratios are free of an input's scale (a gaussian head): rows
                out of float64's comfortable range are then scaled by powers of two (module
                docstring); with False (a softmax head) such rows are refused, unless
                ``unit`` normalises them
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
    free = scale_free or normalize == "unit"
    if normalize in ("center", "unit"):
        X = scale_rows(X.reshape(1, -1), source, free, "the dataset").reshape(X.shape)
        X = X - X.mean(axis=0)
    X = scale_rows(X, source, free)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if np.any(norms == 0):
        what = " after centring" if normalize != "none" else ""
        raise ConfigError(f"data {source}: input row {int(np.argmin(norms))} is all zeros{what} "
                          "(ratios need ||x|| > 0)")
    if normalize == "unit":
        X = X / norms[:, None]
    return src, np.ascontiguousarray(X), sha
