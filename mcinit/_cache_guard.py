"""Keep numba's on-disk cache of mcinit's kernels in step with mcinit's source.

numba checks a cached function against the time stamp and size of the file that
defines it, not of the files it calls into: after an update that changes only
the ``rng`` package, a cached kernel of ``dense.py`` would keep the generator it was
compiled with.  So on import the package's sources are hashed (a few
milliseconds); when the hash differs from the one recorded at the last import,
every source file's time stamp is renewed, which invalidates every cached mcinit
function wherever numba keeps it (``__pycache__`` or ``NUMBA_CACHE_DIR``).  An
installation whose files cannot be written (a wheel in site-packages) is
rewritten whole by each upgrade, which renews the stamps anyway.
"""

import hashlib
import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_STAMP = os.path.join(_PACKAGE, "__pycache__", "mcinit-source.sha256")


def _sources():
    out = []
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))
    return out


def source_hash(paths=None):
    """sha256 over the package's .py files (relative names and contents)."""
    h = hashlib.sha256()
    for p in paths if paths is not None else _sources():
        h.update(os.path.relpath(p, _PACKAGE).encode())
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def check():
    """Renew the sources' time stamps when they changed since the last import; never raises."""
    try:
        paths = _sources()
        digest = source_hash(paths)
        try:
            with open(_STAMP) as f:
                if f.read().strip() == digest:
                    return False
        except OSError:
            pass
        if not os.access(_PACKAGE, os.W_OK):
            return False
        for p in paths:
            os.utime(p)
        os.makedirs(os.path.dirname(_STAMP), exist_ok=True)
        tmp = f"{_STAMP}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(digest + "\n")
        os.replace(tmp, _STAMP)
        return True
    except OSError:
        return False
