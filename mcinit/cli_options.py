"""Options and error handling shared by the commands of mcinit.cli and mcinit.cli_hpc."""

import functools
import sys

import click

from .config import ConfigError

DEFAULT_OUTPUT = "mcinit-run.h5"
DEFAULT_SWEEP_OUTPUT = "mcinit-sweep.h5"


def _fail(message):
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
            _fail(str(e))
        except OSError as e:
            _fail(f"{e.strerror or e}{': ' + e.filename if getattr(e, 'filename', None) else ''}")
        except MemoryError:
            _fail("out of memory: lower --batch-size, --samples or --threads")
        except KeyboardInterrupt:
            click.echo("mcinit: interrupted", err=True)
            sys.exit(130)
    return wrapper


RUN_KEYS = ("trials", "input_dim", "width", "depth", "widths", "samples", "data", "normalize", "init",
            "wn_gain", "dist", "head", "kernel", "seed", "sup_search")
EXEC_KEYS = ("threads", "batch_size", "backend", "output", "overwrite", "resume", "quiet", "ignore_limits")

_LIST = "  A sweep takes a comma-separated list."
_RUN_OPTIONS = [
    click.option("--trials", help="Number of trials (networks), e.g. 250000 or 1e6.  [default: 1e5]"),
    click.option("--input-dim", help="Input dimension n_0 (taken from the data for a .npy file).  [default: 500]" + _LIST),
    click.option("--width", help="Width of every hidden layer.  [default: 512]" + _LIST),
    click.option("--depth", help="Number of hidden layers L.  [default: 10]" + _LIST),
    click.option("--widths", help="One width per hidden layer, e.g. 64,128,96 (instead of --width/--depth)."),
    click.option("--samples", help="Inputs per trial N (first N rows of a .npy dataset).  [default: 1]" + _LIST),
    click.option("--data", help="gaussian | sphere (random inputs) | digits | PATH.npy | PATH.h5:DATASET "
                 "(fixed datasets, one input per row).  [default: gaussian]"),
    click.option("--normalize", help="none | center | unit: centre a fixed dataset (and scale its inputs "
                 "to unit norm).  [default: none]"),
    click.option("--init", help="he | he-in | glorot | lecun | wn | wn-unit.  [default: he]" + _LIST),
    click.option("--wn-gain", help="Constant gain g of weight-normalised rows g v/||v|| (with --init wn).  "
                 "[default: sqrt(2 n_(l-1)/n_l) for wn, 1 for wn-unit]"),
    click.option("--dist", help="normal | uniform weight entries.  [default: normal]"),
    click.option("--head", help="softmax:K (cross-entropy, random soft targets) | gaussian:K.  [default: softmax:20]"),
    click.option("--kernel", help="auto | dense | projected | law.  [default: auto]"),
    click.option("--sup-search", help="STARTS,STEPS: per trial, also search the unit sphere for the extreme "
                 "forward ratios of every layer (the property for all inputs), from STARTS of the --samples "
                 "random sphere inputs per layer and direction, STEPS points each (e.g. 4,50)."),
    click.option("--seed", help="Seed, 0 <= seed < 2**64.  [default: 0]"),
    click.option("--backend", help="cpu | cuda | auto (CUDA when an NVIDIA GPU is present).  [default: cpu]"),
    click.option("--threads", type=int, help="CPU threads (results do not depend on it).  [default: all]"),
    click.option("--batch-size", type=int, help="Trials per batch (results do not depend on it).  [default: auto]"),
    click.option("-o", "--output", help="Results file (HDF5).  [default: mcinit-run.h5, sweeps mcinit-sweep.h5]"),
    click.option("--overwrite", is_flag=True, default=None, help="Replace an existing results file."),
    click.option("--resume", is_flag=True, default=None,
                 help="Continue the run in the output file where it stopped (start it if there is none)."),
    click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar and no summary."),
    click.option("--ignore-limits", is_flag=True, default=None,
                 help="Run even when the memory or disk the run needs exceeds what the machine has."),
    click.option("--config", "config_file", type=click.Path(dir_okay=False),
                 help="JSON or TOML file with the same keys (options given here win)."),
]


def run_options(fn):
    for opt in reversed(_RUN_OPTIONS):
        fn = opt(fn)
    return fn


def _values(config_file, given):
    """Configuration-file keys overlaid with the options given on the command line."""
    from .config import load_config_file
    values = {}
    if config_file:
        values = load_config_file(config_file)
        unknown = set(values) - set(RUN_KEYS) - set(EXEC_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) in {config_file}: {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in given.items() if v is not None})
    execution = dict(threads=_opt_int(values.pop("threads", None), "threads"),
                     batch_size=_opt_int(values.pop("batch_size", None), "batch-size"),
                     backend=str(values.pop("backend", None) or "cpu"),
                     output=values.pop("output", None),
                     overwrite=bool(values.pop("overwrite", False)),
                     resume=bool(values.pop("resume", False)),
                     quiet=bool(values.pop("quiet", False)),
                     ignore_limits=bool(values.pop("ignore_limits", False)))
    return values, execution


def _opt_int(value, name):
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
