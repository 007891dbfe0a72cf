"""Files shipped inside the package: the digits dataset and the example configurations.

They are package data (``mcinit/bundled/``), found through importlib.resources wherever
mcinit is installed (a clone, an editable install, a wheel in site-packages), so that
``--data digits`` and ``--config NAME`` work from any directory.

- ``digits.csv.gz``: the 8x8 handwritten digits (provenance and licence in README.md
  beside it); its sha256 enters the config hash of every run on it, so its bytes never
  change.
- ``configs/NAME.toml``: example configurations, each reproducing one reference
  experiment (configs/README.md); ``--config NAME`` (or ``NAME.toml``) reads one when no
  file of that name exists.
"""

import os
from importlib import resources

__all__ = ["DIGITS_FILE", "CONFIG_SUFFIX", "digits_path", "example_configs", "example_config_path"]

#: the digits dataset's file name inside the package
DIGITS_FILE = "digits.csv.gz"
#: example configurations are TOML files
CONFIG_SUFFIX = ".toml"


def _resource(*parts):
    """File system path of a file of this package (a str), or None where it is missing."""
    ref = resources.files(__name__)
    for part in parts:
        ref = ref / part
    path = os.fspath(ref) if isinstance(ref, os.PathLike) else None
    return path if path is not None and os.path.isfile(path) else None


def digits_path():
    """Path of the bundled digits file, or None where the installation lacks it."""
    return _resource(DIGITS_FILE)


def example_configs():
    """Names of the bundled example configurations (file names without .toml), sorted."""
    ref = resources.files(__name__) / "configs"
    if not ref.is_dir():
        return []
    return sorted(e.name[:-len(CONFIG_SUFFIX)] for e in ref.iterdir()
                  if e.name.endswith(CONFIG_SUFFIX) and e.is_file())


def example_config_path(name):
    """Path of the bundled example configuration called ``name`` (``he_vs_glorot_norms`` or
    ``he_vs_glorot_norms.toml``), or None where ``name`` is not one (a name with a directory
    in it never is)."""
    if not isinstance(name, str) or os.sep in name or (os.altsep and os.altsep in name):
        return None
    stem = name[:-len(CONFIG_SUFFIX)] if name.endswith(CONFIG_SUFFIX) else name
    if stem not in example_configs():
        return None
    return _resource("configs", stem + CONFIG_SUFFIX)
