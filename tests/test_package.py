"""The package as installed: bundled data (the digits, the example configurations, --config by
name), the project files, and a plain install, an editable one over it and the reverse (slow)."""

import fnmatch
import hashlib
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest
from click.testing import CliRunner

import mcinit
from mcinit import bundled, options
from mcinit.cli import main
from mcinit.config import ConfigError
from mcinit.data import load_fixed

try:
    import tomllib
except ImportError:       # Python 3.10
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(os.path.abspath(mcinit.__file__))
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
EXAMPLES = ["bound_comparison", "digits_wn", "he_vs_glorot_norms"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_digits_are_package_data_with_unchanged_bytes():
    path = bundled.digits_path()
    assert os.path.dirname(path) == os.path.join(PACKAGE, "bundled")
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == DIGITS_SHA256   # it enters config hashes
    src, X, sha = load_fixed("digits", samples=5)
    assert (src, X.shape, sha) == ("digits", (5, 64), DIGITS_SHA256)


def test_missing_digits_are_one_line(monkeypatch):
    from mcinit import data
    monkeypatch.setattr(data, "digits_path", lambda: None)
    with pytest.raises(ConfigError, match=r"^the bundled digits dataset \(mcinit/bundled/digits.csv.gz\) "
                                          r"is missing from this installation$"):
        load_fixed("digits")


def test_the_examples_are_package_data():
    assert bundled.example_configs() == EXAMPLES
    for name in EXAMPLES:
        path = bundled.example_config_path(name)
        assert path == os.path.join(PACKAGE, "bundled", "configs", name + ".toml")
        assert bundled.example_config_path(name + ".toml") == path
        assert bundled.example_config_path(os.path.join("configs", name)) is None   # a path is a path
    assert bundled.example_config_path("nope") is None


def test_every_bundled_file_is_declared_package_data():
    """pyproject.toml's package-data patterns cover every file of mcinit/bundled (a file they
    miss is absent from a plain install)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["mcinit.bundled"]
    d = os.path.join(PACKAGE, "bundled")
    for top, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for name in files:
            rel = os.path.relpath(os.path.join(top, name), d).replace(os.sep, "/")
            if not rel.endswith(".py"):
                assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_config_by_bundled_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = options.read_config_file("he_vs_glorot_norms", several=True)
    assert by_name == options.read_config_file(bundled.example_config_path("he_vs_glorot_norms"), several=True)
    assert options.read_config_file("he_vs_glorot_norms.toml", several=True) == by_name
    r = invoke("sweep", "--config", "he_vs_glorot_norms", "--trials", 3, "--samples", 2, "--input-dim", 6,
               "--width", 5, "--depth", 2, "-o", tmp_path / "s.h5", "-q")
    assert r.exit_code == 0, r.output
    assert len(mcinit.load(tmp_path / "s.h5").runs) == 2          # init = "he,glorot" from the example


def test_a_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "he_vs_glorot_norms").write_text('{"trials": 7}')
    assert options.read_config_file("he_vs_glorot_norms") == {"trials": 7}
    (tmp_path / "digits_wn.toml").write_text("trials = 9\n")
    assert options.read_config_file("digits_wn.toml") == {"trials": 9}


@pytest.mark.parametrize("name, message", [
    ("nope", "config file not found: nope (nor a bundled example: bound_comparison, digits_wn, "
             "he_vs_glorot_norms)"),
    ("sub/he_vs_glorot_norms", "config file not found: sub/he_vs_glorot_norms"),
    ("sub/a\nb.toml", "config file not found: 'sub/a\\nb.toml'"),
])
def test_a_missing_config_is_one_line(tmp_path, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    r = invoke("run", "--config", name, "-o", tmp_path / "x.h5")
    assert r.exit_code == 2 and r.output == f"mcinit: error: {message}\n"
    assert not (tmp_path / "x.h5").exists()


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output == f"mcinit, version {mcinit.__version__}\n"


def test_project_files():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["name"] == "mcinit" and project["dynamic"] == ["version"]
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert "install_requires" not in f.read()                # one list of dependencies
    with open(os.path.join(ROOT, "LICENSE")) as f:
        assert f.readline().strip() == "MIT License"
    with open(os.path.join(ROOT, "CITATION.cff")) as f:
        cff = f.read()
    assert re.search(rf'^version: "?{re.escape(mcinit.__version__)}"?$', cff, re.M)
    assert "1901.03611" in cff
    with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
        assert f"## {mcinit.__version__}" in f.read()


# --- a plain install, an editable one over it, and the reverse -------------------------------

def _environment(tmp_path, name):
    """A virtual environment without pip whose only other packages are this interpreter's
    (numpy, numba, pip, setuptools, ...), mcinit's own installation left out: nothing is
    downloaded."""
    env = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    links = tmp_path / f"{name}-parent"
    links.mkdir()
    for sp in site.getsitepackages() + [sysconfig.get_paths()["purelib"]]:
        if not os.path.isdir(sp):
            continue
        for entry in os.listdir(sp):
            if (entry.lower().startswith(("mcinit", "__editable__")) or entry.endswith(".pth")
                    or (links / entry).exists()):
                continue
            os.symlink(os.path.join(sp, entry), links / entry)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "parent.pth"), "w") as f:
        f.write(str(links) + "\n")
    return env, purelib


def _source_copy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(PACKAGE), src / "mcinit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _use(env, purelib, src, work, where, xdg):
    """One tiny run on the bundled digits and one example config read by name, from a
    directory outside the source; mcinit is imported from ``where``."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR", "MCINIT_NUMBA_CACHE_DIR", "VIRTUAL_ENV")}
    clean["XDG_CACHE_HOME"] = str(xdg)
    clean["PATH"] = f"{env / 'bin'}{os.pathsep}{clean.get('PATH', '')}"

    def call(*args):
        r = subprocess.run([str(a) for a in args], cwd=work, env=clean, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    found = call(env / "bin" / "python", "-c", "import mcinit; print(mcinit.__file__)").strip()
    assert os.path.dirname(found) == os.path.join(where, "mcinit"), found
    out = work / f"digits-{len(os.listdir(work))}.h5"
    call(env / "bin" / "mcinit", "run", "--data", "digits", "--samples", 4, "--trials", 50, "--width", 8,
         "--depth", 2, "--kernel", "dense", "-o", out, "-q")
    assert out.is_file()
    call(env / "bin" / "python", "-c", "from mcinit import options; "
                                       "assert options.read_config_file('digits_wn', several=True)['data'] == ['digits']")
    # numba's caches went to the user cache, none into the installed package
    installed = os.path.join(purelib, "mcinit")
    if os.path.isdir(installed):
        cached = [f for d, _, fs in os.walk(installed) for f in fs if f.endswith((".nbi", ".nbc", ".sha256"))]
        assert not cached, cached


def _pip(env, *args):
    r = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-index", "-q", *map(str, args)], capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert r.returncode == 0, (args, r.stdout, r.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("order", [("plain", "editable"), ("editable", "plain")])
def test_reinstalling_keeps_the_package_working(tmp_path, order):
    """pip install . then pip install -e . over it (and the reverse), each followed by a run
    from another directory: pip removes what it installed and nothing else, so nothing the
    first installation's runs wrote may be left in site-packages."""
    pytest.importorskip("setuptools", minversion="77")
    env, purelib = _environment(tmp_path, "venv")
    src = _source_copy(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    for kind in order + order[:1]:
        if kind == "plain":
            _pip(env, src)
            _use(env, purelib, src, work, purelib, tmp_path / "xdg")
        else:
            _pip(env, "-e", src)
            _use(env, purelib, src, work, str(src), tmp_path / "xdg")
            assert not os.path.exists(os.path.join(purelib, "mcinit"))   # nothing left of the plain install
