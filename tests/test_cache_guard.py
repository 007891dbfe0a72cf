"""Where numba keeps mcinit's compiled kernels (never inside the package), and that a change
to any source never lets a stale kernel be found."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from mcinit import _cache_guard

OLD = 1_000_000_000        # a time stamp long past


def _tree(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "rng.py").write_text("A = 1\n")
    (pkg / "kernels" / "dense.py").write_text("B = 2\n")
    for p in (pkg / "rng.py", pkg / "kernels" / "dense.py"):
        os.utime(p, (OLD, OLD))
    return pkg


@pytest.fixture
def guard(tmp_path, monkeypatch):
    """The guard on a two-file package in tmp_path, with its cache root in tmp_path and the
    cache variables unset; the environment (and numba's configuration) restored after."""
    saved = {v: os.environ.get(v) for v in (_cache_guard.NUMBA_VARIABLE, _cache_guard.CHOSEN_VARIABLE,
                                            _cache_guard.USER_VARIABLE)}
    for v in saved:
        os.environ.pop(v, None)
    pkg = _tree(tmp_path)
    root = tmp_path / "cache"
    monkeypatch.setattr(_cache_guard, "_PACKAGE", str(pkg))
    monkeypatch.setattr(_cache_guard, "cache_root", lambda: str(root))
    monkeypatch.setattr(_cache_guard, "private_temporary_root", lambda: str(tmp_path / "private"))
    yield pkg, root
    for v, value in saved.items():
        if value is None:
            os.environ.pop(v, None)
        else:
            os.environ[v] = value
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()


def _files(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def test_the_cache_is_a_directory_per_source_hash_outside_the_package(guard):
    pkg, root = guard
    before = _files(pkg)
    first = _cache_guard.check()
    assert first == _cache_guard.numba_dir(str(root), _cache_guard.source_hash())
    assert os.environ["NUMBA_CACHE_DIR"] == first and os.path.isdir(first)
    assert _cache_guard.check() == first                 # unchanged sources: the same cache
    (pkg / "rng.py").write_text("A = 3\n")               # only rng.py changes ...
    second = _cache_guard.check()
    assert second != first and os.environ["NUMBA_CACHE_DIR"] == second   # ... a fresh cache for all
    assert _files(pkg) == before                         # nothing written into the package
    assert os.stat(pkg / "kernels" / "dense.py").st_mtime == OLD        # and no stamp renewed


def test_a_directory_the_user_chose_wins_and_is_kept_in_step(guard, tmp_path):
    """In a NUMBA_CACHE_DIR the user set, mcinit's kernels go into a directory per source hash
    inside it: numba compares a cached function with its own file only (its contents, in
    recent numba, so renewing time stamps would not do), and a change to any source must
    leave no stale kernel to find."""
    pkg, root = guard
    mine = tmp_path / "mine"
    os.environ["NUMBA_CACHE_DIR"] = str(mine)
    first = _cache_guard.check()
    assert os.path.dirname(first) == str(mine) and os.environ["NUMBA_CACHE_DIR"] == first
    assert first == _cache_guard.user_numba_dir(str(mine), _cache_guard.source_hash())
    assert _cache_guard.check() == first                 # unchanged sources (the child's view too)
    (pkg / "rng.py").write_text("A = 3\n")              # only rng.py changes ...
    second = _cache_guard.check()
    assert second != first and os.path.dirname(second) == str(mine)    # ... a fresh cache for all
    assert os.environ["NUMBA_CACHE_DIR"] == second
    assert os.stat(pkg / "kernels" / "dense.py").st_mtime == OLD        # no stamp renewed
    assert not (pkg / "__pycache__").exists()
    other = mine / "someone-elses-0001"                  # the user's own directories are kept
    other.mkdir()
    stale = time.time() - (_cache_guard.PRUNE_DAYS + 1) * 86400
    os.utime(other, (stale, stale))
    os.utime(first, (stale, stale))
    _cache_guard.check()
    assert other.exists() and not os.path.exists(first)   # only mcinit's unused ones are pruned


def test_a_child_process_chooses_its_own_directory(guard, tmp_path):
    """A NUMBA_CACHE_DIR that mcinit chose (in a parent process, for other sources) is not the
    user's: it is chosen again for these sources."""
    parents = str(tmp_path / "cache" / "numba" / "0.0.0-0123456789abcdef")
    os.environ["NUMBA_CACHE_DIR"] = os.environ["MCINIT_NUMBA_CACHE_DIR"] = parents
    path = _cache_guard.check()
    assert path != parents and path == _cache_guard.numba_dir(str(guard[1]), _cache_guard.source_hash())


def test_unused_caches_of_other_sources_are_removed(guard):
    _, root = guard
    current = _cache_guard.check()
    old = root / "numba" / "0.2.0-00000000000000aa"
    recent = root / "numba" / "0.2.0-00000000000000bb"
    for d in (old, recent):
        (d / "kernels").mkdir(parents=True)
    stale = time.time() - (_cache_guard.PRUNE_DAYS + 1) * 86400
    os.utime(old, (stale, stale))
    os.utime(current, (stale, stale))
    assert _cache_guard.check() == current               # in use: renewed, never removed
    assert not old.exists() and recent.exists() and os.path.isdir(current)


def test_an_unwritable_cache_falls_back_to_a_private_temporary_directory(guard, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(_cache_guard, "cache_root", lambda: str(blocker / "cache"))
    path = _cache_guard.check()
    assert path.startswith(str(tmp_path / "private") + os.sep)
    assert os.stat(tmp_path / "private").st_mode & 0o777 == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership of the temporary directory")
def test_a_temporary_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert not _cache_guard.writable_dir(str(shared), private=True)
    os.chmod(shared, 0o700)
    assert _cache_guard.writable_dir(str(shared), private=True)


def test_the_hash_covers_names_and_contents(guard):
    pkg, _ = guard
    h = _cache_guard.source_hash()
    (pkg / "kernels" / "dense.py").rename(pkg / "kernels" / "other.py")
    assert _cache_guard.source_hash() != h


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME names the user cache on Linux")
def test_numba_caches_land_in_the_user_cache_not_beside_the_source(tmp_path):
    """In a fresh interpreter: importing mcinit points numba at the user's cache directory, so
    a cached function's files are written there and not into a __pycache__ beside it."""
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "tiny.py").write_text(textwrap.dedent("""
        import numba

        @numba.njit(cache=True)
        def twice(x):
            return 2 * x
    """))
    script = textwrap.dedent("""
        import os, sys
        import mcinit
        sys.path.insert(0, sys.argv[1])
        import tiny
        assert tiny.twice(21) == 42
        print(os.environ["NUMBA_CACHE_DIR"])
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "MCINIT_NUMBA_CACHE_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    r = subprocess.run([sys.executable, "-c", script, str(mod)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    cache = r.stdout.strip()
    assert cache.startswith(str(tmp_path / "xdg" / "mcinit" / "numba") + os.sep)
    assert any(f.endswith(".nbi") for f in _files(cache))
    assert not any(f.endswith((".nbi", ".nbc")) for f in _files(mod))


def test_a_child_of_a_process_in_a_user_directory_stays_in_it(guard, tmp_path):
    """A child process (another copy of mcinit, say) inherits the directory mcinit chose inside
    the user's: it chooses its own sources' directory inside the user's directory again."""
    pkg, _ = guard
    mine = tmp_path / "mine"
    os.environ["NUMBA_CACHE_DIR"] = str(mine)
    parents = _cache_guard.check()
    (pkg / "rng.py").write_text("A = 4\n")               # the child runs other sources
    child = _cache_guard.check()
    assert child != parents and child == _cache_guard.user_numba_dir(str(mine), _cache_guard.source_hash())
