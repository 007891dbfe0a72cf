"""The one progress bar: trials/s and ETA on a terminal, silent otherwise or with quiet."""

import sys

__all__ = ["progress_bar"]


class _Null:
    def update(self, n):
        pass

    def close(self):
        pass


def progress_bar(total, quiet=False, desc="trials"):
    """A bar over ``total`` trials on stderr, or a no-op when quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return _Null()
    from tqdm import tqdm
    return tqdm(total=total, unit=" trials", unit_scale=True, desc=desc, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
