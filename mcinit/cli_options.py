"""Options and error handling shared by the commands of mcinit.cli and mcinit.cli_hpc."""

import functools
import math
import sys

import click

from .bundled import example_configs
from .options import CHOICE, FLAG, OPTIONS, ConfigError, collect, parse_count, parse_float

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


class OptionType(click.ParamType):
    """A click type that reads an option of the table (mcinit.options) strictly: one value,
    or with ``several`` a comma-separated list of values."""

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


class _Number(click.ParamType):
    """A click type for the numbers of other commands, read as strictly as the options
    (ASCII digits only): whole numbers >= 1 (whole=True) or any finite number."""

    def __init__(self, whole):
        self.whole = whole
        self.name = "count" if whole else "number"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        name = param.name if param is not None else self.name
        try:
            x = parse_count(value, name) if self.whole else parse_float(value, name)
        except ConfigError as e:
            raise click.UsageError(str(e), ctx) from None
        if not math.isfinite(x):
            raise click.UsageError(f"{name} must be a finite number, got {value!r}", ctx)
        return x


#: click types of whole numbers >= 1 and of finite numbers, for commands outside the table
WHOLE = _Number(True)
NUMBER = _Number(False)


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


def run_options(several=False):
    """Decorator adding every option of the table, and --config, to a command.

    several: the command takes lists of the options that allow them (sweep, submit)."""
    opts = [click_option(o, several) for o in OPTIONS]
    opts.append(click.option("--config", "config_file", type=click.Path(dir_okay=False),
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
