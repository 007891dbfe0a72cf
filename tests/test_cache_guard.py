"""The numba cache guard: a change to any source renews every source's time stamp."""

import os

from mcinit import _cache_guard


def _tree(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "rng.py").write_text("A = 1\n")
    (pkg / "kernels" / "dense.py").write_text("B = 2\n")
    old = 1_000_000_000
    for p in (pkg / "rng.py", pkg / "kernels" / "dense.py"):
        os.utime(p, (old, old))
    return pkg


def test_a_changed_source_renews_every_stamp_once(tmp_path, monkeypatch):
    pkg = _tree(tmp_path)
    monkeypatch.setattr(_cache_guard, "_PACKAGE", str(pkg))
    monkeypatch.setattr(_cache_guard, "_STAMP", str(pkg / "__pycache__" / "mcinit-source.sha256"))
    dense = pkg / "kernels" / "dense.py"
    assert _cache_guard.check() is True                  # no record yet
    assert os.stat(dense).st_mtime > 1_000_000_000       # every stamp renewed
    os.utime(dense, (1_000_000_000, 1_000_000_000))
    assert _cache_guard.check() is False                 # unchanged sources: nothing touched
    assert os.stat(dense).st_mtime == 1_000_000_000
    (pkg / "rng.py").write_text("A = 3\n")               # only rng.py changes ...
    assert _cache_guard.check() is True
    assert os.stat(dense).st_mtime > 1_000_000_000       # ... and dense.py's caches are invalidated too


def test_the_hash_covers_names_and_contents(tmp_path, monkeypatch):
    pkg = _tree(tmp_path)
    monkeypatch.setattr(_cache_guard, "_PACKAGE", str(pkg))
    h = _cache_guard.source_hash()
    (pkg / "kernels" / "dense.py").rename(pkg / "kernels" / "other.py")
    assert _cache_guard.source_hash() != h
