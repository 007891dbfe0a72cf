"""The one progress bar: trials/s and ETA on a terminal, silent otherwise or with quiet.

A sweep labels each run's bar (``with labelled("2/8 w512-d10-n1-he"): ...``), so that the
bar says which run it counts."""

import contextlib
import contextvars
import sys

__all__ = ["progress_bar", "labelled"]

_LABEL = contextvars.ContextVar("mcinit_progress_label", default=None)


class _Null:
    def update(self, n):
        pass

    def close(self):
        pass


@contextlib.contextmanager
def labelled(label):
    """Within it, progress bars are labelled ``label`` instead of 'trials'."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def progress_bar(total, quiet=False, desc=None):
    """A bar over ``total`` trials on stderr, or a no-op when quiet or stderr is not a terminal.

    desc: the bar's label (None: the one of the enclosing ``labelled``, else 'trials')."""
    if quiet or not sys.stderr.isatty():
        return _Null()
    from tqdm import tqdm
    return tqdm(total=total, unit=" trials", unit_scale=True, desc=desc or _LABEL.get() or "trials",
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
