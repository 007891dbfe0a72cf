"""mcinit: Monte Carlo of norm preservation in randomly initialised deep ReLU networks."""

from ._version import __version__

__all__ = ["__version__"]
