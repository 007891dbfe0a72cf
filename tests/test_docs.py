"""The documents: their runnable examples run as written, their links lead to files of the
repository, docs/README.md lists every document, and no tracked file refers to anything
outside the repository.

An example is runnable when its fence says so: a block opened by three backticks and
``python runnable`` is run, with the document's other runnable blocks, top to bottom in
one namespace, in a fresh directory (a notebook of the page); a block of ``sh runnable``
has one ``mcinit ...`` command per line, each run by the command line there.  Where a
``text`` block follows a runnable block, each of its lines (but ``...``) must be a line of
what that block printed: the numbers a document shows come from the example beside them.
The README's examples read the files ``mcinit run`` and ``mcinit sweep`` write by default;
they are made first, tiny.
"""

import os
import re
import shlex
import subprocess

import pytest
from click.testing import CliRunner

from mcinit.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: files a document's examples read, made before they run: (file name, mcinit arguments)
TINY = ["--trials", "200", "--input-dim", "4", "--depth", "2", "-q"]
SETUP = {
    "README.md": [["run", *TINY, "--width", "8", "-o", "mcinit-run.h5"],
                  ["sweep", *TINY, "--width", "8,16", "-o", "mcinit-sweep.h5"]],
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def documents():
    """README.md and every docs/*.md, as paths relative to the repository."""
    docs = sorted(f"docs/{n}" for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md"))
    return ["README.md"] + docs


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def blocks(rel):
    """[(info string, code, line number of the code's first line)] of the fenced blocks of ``rel``."""
    text = read(rel)
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start(2)) + 1) for m in _FENCE.finditer(text)]


def runnable(rel):
    return [b for b in blocks(rel) if b[0].split()[1:2] == ["runnable"]]


def with_examples():
    return [rel for rel in documents() if runnable(rel)]


def invoke(args):
    return CliRunner().invoke(main, args)


def test_the_examples_are_found():
    found = with_examples()
    assert {"README.md", "docs/api.md", "docs/hpc.md"} <= set(found), found
    for rel in found:
        for info, _, line in runnable(rel):
            assert info.split()[0] in ("python", "sh"), f"{rel}:{line}: a runnable block of {info!r}"


@pytest.mark.parametrize("rel", with_examples())
def test_the_examples_run(rel, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in SETUP.get(rel, []):
        r = invoke(args)
        assert r.exit_code == 0, r.output
    namespace = {"__name__": "__docs__"}
    every = blocks(rel)
    for i, (info, code, line) in enumerate(every):
        lang, _, mark = info.partition(" ")
        if mark.strip() != "runnable":
            continue
        capsys.readouterr()
        if lang == "python":
            # blank lines before the code: a traceback names the line of the document
            exec(compile("\n" * (line - 1) + code, os.path.join(ROOT, rel), "exec"), namespace)
            printed = capsys.readouterr().out
        else:
            printed = ""
            for command in code.splitlines():
                if not command.strip():
                    continue
                words = shlex.split(command)
                assert words[0] == "mcinit", f"{rel}:{line}: only mcinit commands run: {command!r}"
                r = invoke(words[1:])
                assert r.exit_code == 0, f"{rel}:{line}: {command}\n{r.output}"
                printed += r.output
        follows = every[i + 1] if i + 1 < len(every) else None
        if follows and follows[0] == "text":
            lines = {ln.rstrip() for ln in printed.splitlines()}
            for shown in follows[1].splitlines():
                if shown.strip() and shown.strip() != "...":
                    assert shown.rstrip() in lines, (f"{rel}:{follows[2]}: {shown!r} is not what the example "
                                                     f"above it prints:\n{printed}")


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_links_lead_to_files_of_the_repository():
    bad = []
    for rel in documents():
        for target in _LINK.findall(read(rel)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue          # a web address, or a section of the same page
            path = os.path.normpath(os.path.join(os.path.dirname(rel), target.split("#")[0]))
            inside = not path.startswith("..") and not os.path.isabs(path)
            if not inside or not (os.path.exists(os.path.join(ROOT, path))):
                bad.append(f"{rel}: {target}")
    assert not bad, bad


def test_the_index_lists_every_document():
    index = read("docs/README.md")
    linked = {os.path.normpath(os.path.join("docs", t.split("#")[0])) for t in _LINK.findall(index)}
    for rel in documents():
        if rel != "docs/README.md":
            assert rel in linked, f"docs/README.md does not list {rel}"
    assert "docs/README.md" in {os.path.normpath(t) for t in _LINK.findall(read("README.md"))}


#: what no file of the repository may name: the places and the document of another project
#: (spelled in pieces here, so that this file does not name them either)
OUTSIDE = [re.compile(re.escape(".." + "/shared")), re.compile(re.escape("/wo" + "rk/")),
           re.compile(r"\b" + "DES" + "IGN" + r"\b")]


def tracked_files():
    try:
        p = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("git is not at hand")
    if p.returncode != 0:
        pytest.skip("not a git checkout (an installed copy)")
    return [n for n in p.stdout.decode("utf-8").split("\0") if n]


def test_no_file_refers_outside_the_repository():
    files = tracked_files()
    bad = []
    for rel in files:
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue          # removed in the work tree, not yet in the index
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data:
            continue          # binary
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue          # not text (a compressed dataset)
        for n, line in enumerate(text.splitlines(), 1):
            if any(pattern.search(line) for pattern in OUTSIDE):
                bad.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert not bad, "\n".join(bad)
