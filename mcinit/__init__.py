"""mcinit: Monte Carlo of norm preservation in randomly initialised deep ReLU networks."""

from . import _cache_guard
from ._version import __version__

_cache_guard.check()   # before any kernel module is imported: see _cache_guard

__all__ = ["__version__", "load"]


def load(path):
    """The results of a run or sweep file (mcinit.results.Results; only completed trials)."""
    from .results import load as _load
    return _load(path)
