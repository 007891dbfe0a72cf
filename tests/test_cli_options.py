"""Command-line conventions (mcinit/cli_options.py): every option has help and a type shell
completion can use, and completion works in bash, zsh and fish (docs/shell.md)."""

import os

import click
import pytest
from click.testing import CliRunner

from mcinit import options
from mcinit.cli import main

#: options whose values are free text (SLURM's own spellings): no type to complete
FREE_TEXT = {("submit", "partition"), ("submit", "time_limit"), ("submit", "mem"), ("submit", "account"),
             ("submit", "sbatch_args")}


def _commands():
    return sorted(main.commands.items())


def _completions(ctx, param, incomplete):
    return [item.value for item in param.type.shell_complete(ctx, param, incomplete)]


def test_every_option_of_every_command_has_help_and_a_type():
    seen = 0
    for name, cmd in _commands():
        ctx = click.Context(cmd, info_name=name)
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue        # arguments are named in the command's usage line
            seen += 1
            assert p.help and p.help.strip(), (name, p.name)
            if p.is_flag:
                continue
            assert p.type is not click.STRING or (name, p.name) in FREE_TEXT, \
                f"mcinit {name} {p.opts[0]} has no type (numbers are typed, closed sets are choices)"
        # the table's options: closed sets complete to their choices (item by item in a list)
        for o in options.options_of(name) if name in options.COMMANDS else ():
            p = next(q for q in cmd.params if q.name == o.name)
            if o.kind == options.CHOICE:
                assert sorted(_completions(ctx, p, "")) == sorted(o.choices), (name, o.name)
                if o.several and name != "run":
                    first = o.choices[0]
                    assert f"{first},{o.choices[1]}" in _completions(ctx, p, f"{first},"), (name, o.name)
                else:
                    assert isinstance(p.type, click.Choice), (name, o.name)
            elif o.kind in (options.COUNT, options.INTEGER, options.FLOAT):
                assert p.type.name.rstrip("s") == o.kind, (name, o.name, p.type.name)
    assert seen > 60


def test_the_table_says_which_commands_take_an_option():
    names = {c: [o.name for o in options.options_of(c)] for c in options.COMMANDS}
    assert "shard" in names["run"] and "shard" in names["sweep"] and "shard" not in names["submit"]
    assert "verbose" in names["sweep"] and "verbose" not in names["run"]
    assert {p.name for p in main.commands["sweep"].params} >= set(names["sweep"])
    assert "shard" not in {p.name for p in main.commands["submit"].params}
    assert "(`run` and `sweep` only.)" in options.markdown_table()


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef mcinit"),
                                           ("fish", "complete --no-files --command mcinit")])
def test_the_completion_script_is_produced_for_each_shell(shell, marker):
    r = CliRunner().invoke(main, [], prog_name="mcinit", env={"_MCINIT_COMPLETE": f"{shell}_source"})
    assert r.exit_code == 0, r.output
    assert marker in r.stdout and f"_MCINIT_COMPLETE={shell}_complete" in r.stdout, r.stdout


def _bash_complete(line):
    words = line.split(" ")
    r = CliRunner().invoke(main, [], prog_name="mcinit",
                           env={"_MCINIT_COMPLETE": "bash_complete", "COMP_WORDS": line,
                                "COMP_CWORD": str(len(words) - 1)})
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def test_values_complete():
    assert _bash_complete("mcinit ru") == ["plain,run"]
    assert _bash_complete("mcinit run --init g") == ["plain,glorot"]
    assert _bash_complete("mcinit sweep --init he,gl") == ["plain,he,glorot"]
    assert _bash_complete("mcinit sweep --properties forward,") == \
        ["plain,forward,both", "plain,forward,backward"]
    assert _bash_complete("mcinit bound --properties forward,b") == ["plain,forward,both", "plain,forward,backward"]
    assert _bash_complete("mcinit run --data d") == ["plain,digits", "file,d"]
    assert _bash_complete("mcinit run -o ") == ["file,"]
    assert _bash_complete("mcinit report ") == ["file,"]
    assert "plain,he_vs_glorot_norms" in _bash_complete("mcinit run --config he_")


def test_docs_shell_md_is_linked_and_names_each_shell():
    root = os.path.dirname(os.path.dirname(__file__))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        assert "docs/shell.md" in f.read()
    with open(os.path.join(root, "docs", "shell.md"), encoding="utf-8") as f:
        text = f.read()
    for shell in ("bash", "zsh", "fish"):
        assert f"_MCINIT_COMPLETE={shell}_source mcinit" in text
