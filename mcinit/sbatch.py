"""How sbatch reads its options, on its command line and in ``#SBATCH`` lines.

``mcinit submit --sbatch-arg ARG`` passes further sbatch options on to both jobs.  sbatch
reads its options with getopt_long: a long option may be abbreviated to any unambiguous
prefix of its name (``--arr=0-9`` is ``--array=0-9``), and short options take their value
attached (``-a0-9``) or bundle (``-Hq high``).  ``parse_sbatch_arg`` reads an argument the
same way, against sbatch's own option table (``LONG_OPTIONS``, ``SHORT_OPTIONS``), and
returns the options it names under their full names; only those in ``ALLOWED`` (what the
jobs' placement, resources and notifications are made of) are passed on.  The options
mcinit sets itself (``SET_BY_MCINIT``) and those that would change how the jobs run or how
sbatch answers are refused.

``sbatch_word`` writes one argument for an ``#SBATCH`` line: sbatch splits those lines at
white space, takes ``"..."`` and ``'...'`` as quotes, a backslash as an escape, and an
unquoted ``#`` as the start of a comment.
"""

import re

from .config import ConfigError

__all__ = ["LONG_OPTIONS", "SHORT_OPTIONS", "ALLOWED", "SET_BY_MCINIT", "OWN_OPTIONS", "parse_sbatch_arg",
           "resolve_long", "sbatch_word", "sbatch_line", "NO_ARGUMENT", "REQUIRED", "OPTIONAL"]

NO_ARGUMENT, REQUIRED, OPTIONAL = 0, 1, 2

#: sbatch's long options (SLURM 22.05's src/common/slurm_opt.c, those sbatch takes): name -> argument.
#: Other SLURM versions and SPANK plugins add options; mcinit writes the full name of every option it
#: passes on, which sbatch matches exactly whatever its table holds.
LONG_OPTIONS = {
    "account": REQUIRED, "acctg-freq": REQUIRED, "array": REQUIRED, "batch": REQUIRED, "begin": REQUIRED,
    "bb": REQUIRED, "bbf": REQUIRED, "cluster-constraint": REQUIRED, "chdir": REQUIRED, "cluster": REQUIRED,
    "clusters": REQUIRED, "comment": REQUIRED, "container": REQUIRED, "context": REQUIRED,
    "contiguous": NO_ARGUMENT, "constraint": REQUIRED, "core-spec": REQUIRED, "cores-per-socket": REQUIRED,
    "cpu-freq": REQUIRED, "cpus-per-gpu": REQUIRED, "cpus-per-task": REQUIRED, "deadline": REQUIRED,
    "delay-boot": REQUIRED, "dependency": REQUIRED, "distribution": REQUIRED, "error": REQUIRED,
    "exclude": REQUIRED, "exclusive": OPTIONAL, "export": REQUIRED, "export-file": REQUIRED,
    "extra-node-info": REQUIRED, "get-user-env": OPTIONAL, "gid": REQUIRED, "gpu-bind": REQUIRED,
    "gpu-freq": REQUIRED, "gpus": REQUIRED, "gpus-per-node": REQUIRED, "gpus-per-socket": REQUIRED,
    "gpus-per-task": REQUIRED, "gres": REQUIRED, "gres-flags": REQUIRED, "help": NO_ARGUMENT,
    "hint": REQUIRED, "hold": NO_ARGUMENT, "ignore-pbs": NO_ARGUMENT, "input": REQUIRED,
    "job-name": REQUIRED, "kill-on-invalid-dep": REQUIRED, "licenses": REQUIRED, "mail-type": REQUIRED,
    "mail-user": REQUIRED, "mcs-label": REQUIRED, "mem": REQUIRED, "mem-bind": REQUIRED,
    "mem-per-cpu": REQUIRED, "mem-per-gpu": REQUIRED, "mincpus": REQUIRED, "network": REQUIRED,
    "nice": OPTIONAL, "no-kill": OPTIONAL, "no-requeue": NO_ARGUMENT, "nodefile": REQUIRED,
    "nodelist": REQUIRED, "nodes": REQUIRED, "ntasks": REQUIRED, "ntasks-per-core": REQUIRED,
    "ntasks-per-gpu": REQUIRED, "ntasks-per-node": REQUIRED, "ntasks-per-socket": REQUIRED,
    "ntasks-per-tres": REQUIRED, "open-mode": REQUIRED, "output": REQUIRED, "overcommit": NO_ARGUMENT,
    "oversubscribe": NO_ARGUMENT, "parsable": NO_ARGUMENT, "partition": REQUIRED, "power": REQUIRED,
    "prefer": REQUIRED, "priority": REQUIRED, "profile": REQUIRED, "propagate": OPTIONAL, "qos": REQUIRED,
    "quiet": NO_ARGUMENT, "reboot": NO_ARGUMENT, "requeue": NO_ARGUMENT, "reservation": REQUIRED,
    "signal": REQUIRED, "sockets-per-node": REQUIRED, "spread-job": NO_ARGUMENT, "switches": REQUIRED,
    "tasks-per-node": REQUIRED, "test-only": NO_ARGUMENT, "thread-spec": REQUIRED,
    "threads-per-core": REQUIRED, "time": REQUIRED, "time-min": REQUIRED, "tmp": REQUIRED, "uid": REQUIRED,
    "use-min-nodes": NO_ARGUMENT, "usage": NO_ARGUMENT, "verbose": NO_ARGUMENT, "version": NO_ARGUMENT,
    "wait": NO_ARGUMENT, "wait-all-nodes": REQUIRED, "wckey": REQUIRED, "wrap": REQUIRED,
}

#: long options that are one option under two names (getopt takes a prefix of both as that option)
_SAME = {"tasks-per-node": "ntasks-per-node"}

#: sbatch's short options: letter -> the long option it stands for
SHORT_OPTIONS = {
    "A": "account", "B": "extra-node-info", "C": "constraint", "D": "chdir", "F": "nodefile", "G": "gpus",
    "H": "hold", "J": "job-name", "L": "licenses", "M": "clusters", "N": "nodes", "O": "overcommit",
    "Q": "quiet", "S": "core-spec", "V": "version", "W": "wait", "a": "array", "b": "begin",
    "c": "cpus-per-task", "d": "dependency", "e": "error", "h": "help", "i": "input", "k": "no-kill",
    "m": "distribution", "n": "ntasks", "o": "output", "p": "partition", "q": "qos", "s": "oversubscribe",
    "t": "time", "v": "verbose", "w": "nodelist", "x": "exclude",
}

#: what mcinit submit writes itself, on sbatch's command line and in the scripts
SET_BY_MCINIT = ("array", "dependency", "kill-on-invalid-dep", "output", "error", "input", "chdir", "wait",
                 "job-name", "open-mode", "parsable", "cpus-per-task")

#: sbatch options mcinit submit has options of its own for
OWN_OPTIONS = ("partition", "time", "mem", "account")

#: the sbatch options --sbatch-arg passes on: where the jobs run, what they are given, who hears of them
ALLOWED = (
    "qos", "constraint", "prefer", "gres", "gres-flags", "gpus", "gpus-per-node", "gpus-per-socket",
    "gpus-per-task", "cpus-per-gpu", "gpu-bind", "gpu-freq", "mem-per-cpu", "mem-per-gpu", "mem-bind",
    "tmp", "exclusive", "oversubscribe", "reservation", "nodelist", "exclude", "nodes", "contiguous",
    "switches", "sockets-per-node", "cores-per-socket", "threads-per-core", "extra-node-info", "hint",
    "core-spec", "thread-spec", "mincpus", "licenses", "network", "cpu-freq", "mail-type", "mail-user",
    "comment", "wckey", "nice", "priority", "begin", "deadline", "time-min", "hold", "requeue",
    "no-requeue", "no-kill", "signal", "delay-boot", "reboot", "mcs-label", "power", "profile",
    "acctg-freq", "propagate", "use-min-nodes", "spread-job", "overcommit", "wait-all-nodes",
)

_PLAIN = re.compile(r"^[A-Za-z0-9_.,:+@=/%^*\[\]-]+$")


def resolve_long(name):
    """The full name of the long option ``--name`` as getopt_long finds it in sbatch's table.

    An exact name wins; else a prefix of one option (or of several names of one option).
    Raises ConfigError for an unknown or ambiguous name."""
    if name in LONG_OPTIONS:
        return name
    if not name:
        raise ConfigError("--sbatch-arg: -- without a name is not an sbatch option")
    matches = sorted(n for n in LONG_OPTIONS if n.startswith(name))
    options = sorted({_SAME.get(n, n) for n in matches})
    if not matches:
        raise ConfigError(f"--sbatch-arg: --{name} is not an sbatch option")
    if len(options) > 1:
        raise ConfigError(f"--sbatch-arg: --{name} is ambiguous for sbatch (--{', --'.join(matches)})")
    return options[0]


def _check_value(arg, value):
    if value == "":
        raise ConfigError(f"--sbatch-arg {arg}: the value is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"--sbatch-arg {arg!r}: the value contains a control character (newline, tab, ...)")


def _allowed(arg, name):
    if name in SET_BY_MCINIT:
        raise ConfigError(f"--sbatch-arg {arg} is sbatch's --{name}, which mcinit submit sets itself")
    if name in OWN_OPTIONS:
        raise ConfigError(f"--sbatch-arg {arg} is sbatch's --{name}; give it as mcinit submit --{name}")
    if name not in ALLOWED:
        raise ConfigError(f"--sbatch-arg {arg} is sbatch's --{name}, which mcinit submit does not pass on "
                          f"(it would change how the jobs run or how sbatch answers)")


def parse_sbatch_arg(arg):
    """The options one ``--sbatch-arg`` names, read as sbatch reads them: [(full name, value or None)].

    arg: one command-line word, ``--name[=value]`` (any unambiguous prefix of the name) or
    ``-X[value]`` (short options, bundled as getopt allows).  A value is attached (``=`` or
    after the letter), never the next word.  Raises ConfigError for anything sbatch would
    not take as options, or options that are not passed on (see ``ALLOWED``)."""
    if not isinstance(arg, str):
        raise ConfigError(f"--sbatch-arg must be text, got {arg!r}")
    if any(c in arg for c in "\n\r\0"):
        raise ConfigError(f"--sbatch-arg {arg!r} contains a newline, carriage return or NUL")
    if arg.startswith("--") and len(arg) > 2:
        name, eq, value = arg[2:].partition("=")
        full = resolve_long(name)
        kind = LONG_OPTIONS[full]
        if kind == NO_ARGUMENT and eq:
            raise ConfigError(f"--sbatch-arg {arg}: sbatch's --{full} takes no value")
        if kind == REQUIRED and not eq:
            raise ConfigError(f"--sbatch-arg {arg}: give sbatch's --{full} its value with =, "
                              f"as in --{full}=VALUE")
        if eq:
            _check_value(arg, value)
        _allowed(arg, full)
        return [(full, value if eq else None)]
    if arg.startswith("-") and len(arg) > 1 and not arg.startswith("--"):
        options = []
        i = 1
        while i < len(arg):
            letter = arg[i]
            if letter not in SHORT_OPTIONS:
                raise ConfigError(f"--sbatch-arg {arg}: -{letter} is not an sbatch option")
            full = SHORT_OPTIONS[letter]
            kind = LONG_OPTIONS[full]
            rest = arg[i + 1:]
            if kind == NO_ARGUMENT:
                options.append((full, None))
                i += 1
                continue
            if kind == REQUIRED and not rest:
                raise ConfigError(f"--sbatch-arg {arg}: give sbatch's -{letter} its value attached, "
                                  f"as in -{letter}VALUE or --{full}=VALUE")
            if rest:
                _check_value(arg, rest)
            options.append((full, rest or None))
            break
        for full, _ in options:
            _allowed(arg, full)
        return options
    raise ConfigError(f"--sbatch-arg must be one sbatch option such as --qos=high, got {arg!r}")


def sbatch_word(text):
    """``text`` as one argument of an ``#SBATCH`` line: as it is when plain, else in double
    quotes with backslashes before ``"`` and ``\\``.  Newlines, carriage returns and NUL
    cannot be written (sbatch ends a line at them)."""
    text = str(text)
    if any(c in text for c in "\n\r\0"):
        raise ConfigError(f"{text!r} contains a newline, carriage return or NUL")
    if _PLAIN.match(text):
        return text
    return '"' + re.sub(r'(["\\])', r"\\\1", text) + '"'


def sbatch_line(name, value=None):
    """The ``#SBATCH`` line of option ``--name`` (with ``value``)."""
    return f"#SBATCH --{name}" + ("" if value is None else "=" + sbatch_word(value))
