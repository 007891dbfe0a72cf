"""Where numba keeps the compiled kernels of mcinit, and keeping them in step with the source.

Where.  numba writes a function's cache beside its source file (``__pycache__``) unless
``NUMBA_CACHE_DIR`` names a directory.  Inside an installed package such files outlive
the installation: pip removes only the files it installed, and the ``mcinit/`` directory
they keep alive in site-packages shadows the next installation (an editable one, say), so
that every command fails to import.  So on import, before any kernel is compiled, mcinit
sets ``NUMBA_CACHE_DIR`` to a directory of the user's cache,

    user_cache_dir("mcinit")/numba/<version>-<source hash>    (platformdirs)

(``~/.cache/mcinit/numba/...`` on Linux; a private ``mcinit-<uid>`` directory in the
temporary directory where that cannot be written), unless the user set
``NUMBA_CACHE_DIR``, which wins.  The variable is set for the whole process and its
children; ``MCINIT_NUMBA_CACHE_DIR`` records the value mcinit chose, so that a child
(a SLURM job, a subprocess) running another copy of mcinit chooses its own directory
rather than taking the parent's for the user's.  Directories of other sources not used
for ``PRUNE_DAYS`` days are removed.

In step.  numba checks a cached function against the file that defines it (its contents,
or its time stamp and size in older numba), not against the files it calls into: after a
change to the ``rng`` package only, a cached kernel of ``dense.py`` would keep the generator
it was compiled with.  A cache directory per source hash (sha256 over every .py file of the
package, names and contents: a few milliseconds) makes any change of any source a fresh,
empty cache, so nothing stale can be found.  In a directory D the user chose, mcinit's
kernels go likewise into ``D/mcinit-<version>-<source hash>`` (numba's other caches of the
process with them; ``MCINIT_USER_NUMBA_CACHE_DIR`` keeps D for child processes), and
unused ``mcinit-*`` directories there are pruned as above.  Where no cache directory can be
made at all (numba then writes into ``__pycache__``), the sources' time stamps are renewed
whenever the hash differs from the one recorded at the last renewal (enough for numba
versions that compare time stamps).
"""

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time

from ._version import __version__

_PACKAGE = os.path.dirname(os.path.abspath(__file__))

#: the environment variable numba reads
NUMBA_VARIABLE = "NUMBA_CACHE_DIR"
#: the environment variable in which mcinit records the NUMBA_CACHE_DIR it chose
CHOSEN_VARIABLE = "MCINIT_NUMBA_CACHE_DIR"
#: the environment variable in which mcinit records the directory the user chose
USER_VARIABLE = "MCINIT_USER_NUMBA_CACHE_DIR"
#: the prefix of mcinit's directories inside a cache directory the user chose
USER_PREFIX = "mcinit-"
#: cache directories of other sources unused for this many days are removed
PRUNE_DAYS = 30
#: characters of the source hash in a cache directory's name
HASH_CHARS = 16


def _sources():
    out = []
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))
    return out


def source_hash(paths=None):
    """sha256 (hex) over the package's .py files (relative names and contents).

    paths: the files to hash (default: every .py file of the package)."""
    h = hashlib.sha256()
    for p in paths if paths is not None else _sources():
        h.update(os.path.relpath(p, _PACKAGE).encode())
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def cache_root():
    """mcinit's directory in the user's cache (platformdirs' user_cache_dir), or None where
    no home directory is known."""
    try:
        from platformdirs import user_cache_dir
        return user_cache_dir("mcinit", appauthor=False)
    except Exception:       # no platformdirs, no home: the private temporary directory serves
        return None


def private_temporary_root():
    """``mcinit-<uid>`` in the temporary directory, made private (mode 0700) to this user."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    return os.path.join(tempfile.gettempdir(), f"mcinit-{uid if uid is not None else 'user'}")


def writable_dir(path, private=False):
    """Whether path is (or could be made into) a directory this process can write; a private
    one must also be owned by this user and writable by no one else (a shared temporary
    directory could hold another user's directory of that name)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    if not stat.S_ISDIR(st.st_mode) or not os.access(path, os.W_OK | os.X_OK):
        return False
    if private and hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        return False
    return True


def mcinit_cache(root=None):
    """A usable directory for mcinit's caches: ``root`` (default: ``cache_root()``), else the
    private temporary one; None where neither can be written."""
    root = cache_root() if root is None else root
    if root is not None and writable_dir(root):
        return root
    tmp = private_temporary_root()
    if writable_dir(tmp, private=True):
        return tmp
    return None


def numba_dir(root, digest):
    """The cache directory of sources with hash ``digest`` under mcinit's cache ``root``."""
    return os.path.join(root, "numba", f"{__version__}-{digest[:HASH_CHARS]}")


def user_numba_dir(given, digest):
    """The cache directory of sources with hash ``digest`` inside a directory the user chose."""
    return os.path.join(given, f"{USER_PREFIX}{__version__}-{digest[:HASH_CHARS]}")


def prune(current, days=PRUNE_DAYS, now=None, prefix=""):
    """Remove the sibling cache directories of ``current`` (other sources' caches; only those
    whose names start with ``prefix``) that were not used for ``days`` days (their time stamp
    is renewed by every import that uses them).  Returns the names removed; never raises."""
    removed = []
    parent = os.path.dirname(current)
    limit = (time.time() if now is None else now) - days * 86400
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if path == current or "-" not in name or not name.startswith(prefix):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mtime < limit:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def renew_stamps(paths, digest, stamp):
    """Renew the time stamps of ``paths`` (the package's sources) unless ``stamp`` (a file)
    records ``digest`` already, then record it.  Returns whether they were renewed."""
    try:
        with open(stamp) as f:
            if f.read().strip() == digest:
                return False
    except OSError:
        pass
    if not os.access(_PACKAGE, os.W_OK):
        return False        # files nobody here can change are rewritten whole by their upgrade
    for p in paths:
        os.utime(p)
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    tmp = f"{stamp}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(digest + "\n")
    os.replace(tmp, stamp)
    return True


def _stamp_name():
    """The stamp file's name: one per copy of the package (a clone and an installation)."""
    return "source-" + hashlib.sha256(_PACKAGE.encode()).hexdigest()[:HASH_CHARS] + ".sha256"


def _tell_numba(path, user=None):
    """Set NUMBA_CACHE_DIR (and numba's configuration, where numba is loaded already); user:
    the directory the user chose, recorded for child processes."""
    os.environ[NUMBA_VARIABLE] = path
    os.environ[CHOSEN_VARIABLE] = path
    if user:
        os.environ[USER_VARIABLE] = user
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()


def check():
    """Choose numba's cache directory for this process (module docstring) and keep the cache
    in step with the sources.  Returns the directory numba will use (None: numba's own
    choice, ``__pycache__``); never raises."""
    try:
        paths = _sources()
        digest = source_hash(paths)
        given = os.environ.get(NUMBA_VARIABLE, "")
        chosen_before = os.environ.get(CHOSEN_VARIABLE, "")
        user = os.environ.get(USER_VARIABLE, "") if given and given == chosen_before else given
        if user:                                        # the user's directory wins
            path = user_numba_dir(user, digest)
            if writable_dir(path):
                os.utime(path)                          # in use: not pruned
                _tell_numba(path, user)
                prune(path, prefix=USER_PREFIX)
                return path
            if given:
                root = mcinit_cache()
                stamps = os.path.join(root, "stamps") if root is not None else given
                renew_stamps(paths, digest, os.path.join(stamps, _stamp_name()))
                return given
        root = mcinit_cache()
        if root is None:                                # nowhere to write: numba's __pycache__
            renew_stamps(paths, digest, os.path.join(_PACKAGE, "__pycache__", "mcinit-source.sha256"))
            return None
        path = numba_dir(root, digest)
        os.makedirs(path, exist_ok=True)
        os.utime(path)                                  # in use: not pruned
        _tell_numba(path)
        prune(path)
        return path
    except Exception:   # caching is an optimisation: never stop mcinit from importing
        return None
