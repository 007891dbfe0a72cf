"""Options and error handling shared by the commands of mcinit.cli and mcinit.cli_hpc."""

import functools
import math
import os
import sys

import click

from .bundled import example_configs
from .options import CHOICE, FLAG, ConfigError, collect, options_of, parse_count, parse_float, split_list

DEFAULT_OUTPUT = "mcinit-run.h5"
DEFAULT_SWEEP_OUTPUT = "mcinit-sweep.h5"


def fail(message):
    click.echo(f"mcinit: error: {message}", err=True)
    sys.exit(2)


def user_errors(fn):
    """Bad input ends in one line on stderr and exit status 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .store import StoreError
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # output piped into head and the like
            sys.stderr.close()
            sys.exit(0)
        except (ConfigError, StoreError) as e:
            fail(str(e))
        except OSError as e:
            fail(f"{e.strerror or e}{': ' + e.filename if getattr(e, 'filename', None) else ''}")
        except MemoryError:
            fail("out of memory: lower --batch-size, --samples or --threads")
        except KeyboardInterrupt:
            click.echo("mcinit: interrupted", err=True)
            sys.exit(130)
    return wrapper


def complete_words(words, incomplete, several=False, files=False):
    """Shell completions (click CompletionItems) of ``incomplete`` among ``words``.

    several: the value is a comma-separated list: its last item is completed (a value not
    listed yet), the earlier ones kept; files: file names are offered too (for the first item
    only).  fish's completion script splits a completion at every comma, so there only the
    first item is completed."""
    from click.shell_completion import CompletionItem
    head, item = "", incomplete
    if several and "," in incomplete:
        if any(k.endswith("_COMPLETE") and v.startswith("fish_") for k, v in os.environ.items()):
            return []
        head, _, item = incomplete.rpartition(",")
        listed = {w.strip(" ").lower() for w in head.split(",")}
        words = [w for w in words if w not in listed]
        head += ","
    out = [CompletionItem(head + w) for w in words if w.startswith(item.lower())]
    if files and not head:
        out.append(CompletionItem(incomplete, type="file"))
    return out


class OptionType(click.ParamType):
    """A click type that reads an option of the table (mcinit.options) strictly: one value,
    or with ``several`` a comma-separated list of values.  Shell completion offers the
    option's choices (item by item in a list), its ``completion`` words, and file names
    where it takes a file."""

    def __init__(self, option, several=False):
        self.option = option
        self.several = several and option.several
        self.name = option.kind + ("s" if self.several else "")

    def convert(self, value, param, ctx):
        if not isinstance(value, str):   # a default or a value already read
            return value
        try:
            return self.option.parse_several(value) if self.several else self.option.parse(value)
        except ConfigError as e:   # the message names the option already
            raise click.UsageError(str(e), ctx) from None

    def shell_complete(self, ctx, param, incomplete):
        words = self.option.choices if self.option.kind == CHOICE else self.option.completion
        return complete_words(words or (), incomplete, self.several, self.option.files)


class ChoiceList(click.ParamType):
    """A comma-separated list of values from ``choices`` (case-insensitive; each kept once,
    in the order given), completed item by item."""

    name = "choices"

    def __init__(self, choices):
        self.choices = tuple(choices)

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        name = _param_name(param, self.name)
        try:
            items = split_list(value, name)
        except ConfigError as e:
            raise click.UsageError(str(e), ctx) from None
        out = []
        for item in items:
            if item.lower() not in self.choices:
                raise click.UsageError(f"{name} must be one of {', '.join(self.choices)}; got {item!r}", ctx)
            if item.lower() not in out:
                out.append(item.lower())
        return out

    def shell_complete(self, ctx, param, incomplete):
        return complete_words(self.choices, incomplete, several=True)


class FilePath(click.ParamType):
    """A file's path, taken as given (the command checks it, with its own one-line messages);
    completion offers file names."""

    name = "path"

    def convert(self, value, param, ctx):
        return value

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem
        return [CompletionItem(incomplete, type="file")]


#: the click type of the file arguments and options of merge, report and status
FILE = FilePath()


class ConfigPath(click.Path):
    """--config: a file, or the name of a bundled example; completion offers both."""

    def __init__(self):
        super().__init__(dir_okay=False)

    def shell_complete(self, ctx, param, incomplete):
        return complete_words(example_configs(), incomplete) + super().shell_complete(ctx, param, incomplete)



def _param_name(param, default):
    """A parameter as messages name it: its long option without dashes (cpus-per-task)."""
    if param is None:
        return default
    longest = max(param.opts, key=len) if param.opts else param.name
    return longest.lstrip("-") or param.name


class _Number(click.ParamType):
    """A click type for the numbers of other commands, read as strictly as the options
    (ASCII digits only): whole numbers >= 1 (whole=True) or any finite number."""

    def __init__(self, whole):
        self.whole = whole
        self.name = "count" if whole else "number"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        name = _param_name(param, self.name)
        try:
            x = parse_count(value, name) if self.whole else parse_float(value, name)
        except ConfigError as e:
            raise click.UsageError(str(e), ctx) from None
        if not math.isfinite(x):
            raise click.UsageError(f"{name} must be a finite number, got {value!r}", ctx)
        return x


class _Numbers(click.ParamType):
    """A click type of comma-separated numbers, read as strictly as the options: whole
    numbers >= 1 (whole=True) or positive finite numbers; the value is a list."""

    def __init__(self, whole):
        self.whole = whole
        self.name = "counts" if whole else "numbers"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        name = _param_name(param, self.name)
        try:
            xs = [parse_count(p, name) if self.whole else parse_float(p, name) for p in split_list(value, name)]
        except ConfigError as e:
            raise click.UsageError(str(e), ctx) from None
        if not self.whole and not all(0 < x < math.inf for x in xs):
            raise click.UsageError(f"{name} must be positive numbers, got {value!r}", ctx)
        return xs


#: click types of whole numbers >= 1 and of finite numbers, for commands outside the table
WHOLE = _Number(True)
NUMBER = _Number(False)
#: click types of comma-separated whole numbers >= 1 and of positive numbers (lists)
WHOLES = _Numbers(True)
POSITIVES = _Numbers(False)


def click_option(option, several=False):
    """The click option of one row of the table; several: the command takes lists (sweep, submit)."""
    decls = [option.flag] + ([option.short] if option.short else [])
    if option.kind == FLAG:
        return click.option(*decls, option.name, is_flag=True, default=None, help=option.help_text())
    if option.kind == CHOICE and not (several and option.several):
        kind = click.Choice(option.choices, case_sensitive=False)
    else:
        kind = OptionType(option, several)
    metavar = option.metavar
    if option.kind == CHOICE and several and option.several:
        metavar = f"[{'|'.join(option.choices)}],..."
    return click.option(*decls, option.name, type=kind, metavar=metavar,
                        help=option.help_text(several))


def run_options(several=False, command=None):
    """Decorator adding the options of the table that ``command`` takes, and --config.

    command: run, sweep or submit (None: sweep with several, run without); sweep and submit
    take lists of the options that allow them."""
    command = command or ("sweep" if several else "run")
    several = command != "run"
    opts = [click_option(o, several) for o in options_of(command)]
    opts.append(click.option("--config", "config_file", type=ConfigPath(),
                             help="JSON or TOML file with the same keys, e.g. input_dim = 6 "
                                  "(options given here win), or the name of a bundled example: "
                                  + ", ".join(example_configs()) + "."))

    def decorate(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn
    return decorate


def option_values(config_file, given, several=False):
    """(run values, execution values): the config file's keys overlaid with the options given
    on the command line (``mcinit.options.collect``)."""
    return collect(config_file, given, several=several)


def json_option(fn):
    """Decorator adding --json (as ``as_json``): the command prints one JSON document on
    stdout and nothing else (mcinit.documents; its keys: docs/results.md)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout, and nothing else there "
                             "(its keys: docs/results.md).")(fn)


def echo_json(doc):
    """Print a document of mcinit.documents as the command's only output."""
    from .documents import dumps
    click.echo(dumps(doc))
