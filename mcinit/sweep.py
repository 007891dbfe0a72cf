"""Sweeps: the Cartesian product of lists of widths, depths, sample counts, inits,
distributions, heads, data, seeds, precisions, properties (the options with ``several`` in
mcinit.options), run one after the other into one file, one run group per run under
/runs/<name>/ (mcinit.layout).

Unless seeds are listed, every run of a sweep uses the same seed, so neighbouring runs
share their random numbers where their shapes agree (common random numbers):
differences between runs are then less noisy than independent runs would make them.
A sweep with a shard (I, K) runs share I of K of every run's trials; ``mcinit merge
--sweep`` joins the K sweep files.
"""

import itertools
import os
import re

from . import engine
from ._version import __version__
from .config import ConfigError, build
from .layout import RUNS, StoreError, run_path, sweep_attrs
from .options import BY_NAME, SEVERAL
from .progress import labelled
from .reader import open_file, sweep_names
from .store import HDF5Sink, OutputLock, check_output, create_file

__all__ = ["SWEEP_KEYS", "expand", "run_name", "name_runs", "run_sweep", "check_shard", "check_resumable"]

#: the options a sweep may list, comma-separated (those with ``several`` in mcinit.options)
SWEEP_KEYS = SEVERAL


def run_name(cfg):
    """A run's name in a sweep file, e.g. w512-d10-n1-he (uneven widths joined by '_'), with
    the activation, the precision and the properties where they are not the defaults
    (w512-d10-n1-he-tanh-float32-forward)."""
    ws = cfg.widths
    w = str(ws[0]) if len(set(ws)) == 1 else "_".join(map(str, ws))
    name = f"w{w}-d{cfg.depth}-n{cfg.samples}-{cfg.init}"
    if cfg.activation != BY_NAME["activation"].default:
        name += "-" + cfg.activation.replace(":", "")           # -tanh, -leaky-relu0.1
    for key in ("precision", "properties"):
        value = getattr(cfg, key)
        if value != BY_NAME[key].default:
            name += f"-{value}"
    return name


#: what a run's name adds for the options that take different values in the runs of one file
_VARIED = (("dist", lambda c: c.dist),
           ("gain", lambda c: "gdefault" if c.gain is None else f"g{c.gain!r}"),
           ("head", lambda c: f"{c.head[0]}{c.head[1]}"),
           ("data", lambda c: _data_label(c.data)),
           ("seed", lambda c: f"s{c.seed}"))


def _data_label(source):
    """A data source in a run's name: gaussian, sphere, digits, or the file's stem (and the
    dataset of an HDF5 file), in letters, digits, '_' and '.' only."""
    path, sep, dset = source.rpartition(":")
    if sep and path.lower().endswith((".h5", ".hdf5")):
        source = os.path.splitext(os.path.basename(path))[0] + "." + dset
    elif os.sep in source or source.lower().endswith(".npy"):
        source = os.path.splitext(os.path.basename(source))[0]
    return re.sub(r"[^A-Za-z0-9_.]+", "_", source, flags=re.ASCII).strip("._") or "data"


def name_runs(cfgs):
    """Names of the runs of one file: run_name, with the distribution, gain, head, data and seed
    where the runs differ in them (-uniform, -g1.5, -gaussian4, -digits, -s1), -i<input_dim> where
    that alone would repeat a name, and the configuration hash's first 8 digits where even
    that would."""
    names = [run_name(c) for c in cfgs]
    for key, label in _VARIED:
        if len({getattr(c, key) for c in cfgs}) > 1:
            names = [f"{n}-{label(c)}" for n, c in zip(names, cfgs)]
    for extra in (lambda c: f"-i{c.input_dim}", lambda c: f"-{c.config_hash()[:8]}"):
        repeated = {n for n in names if names.count(n) > 1}
        names = [n + extra(c) if n in repeated else n for n, c in zip(names, cfgs)]
    return names


def expand(values):
    """[(name, resolved RunConfig, fixed data)] for every combination of the listed values.

    values: the keywords of ``config.build``; the options of SWEEP_KEYS may be lists or
    comma-separated strings.  Every configuration is validated before any run."""
    values = dict(values)
    if values.get("widths") is not None and any(values.get(k) is not None for k in ("width", "depth")):
        raise ConfigError("give either --widths or --width/--depth, not both")
    lists = {}
    for key in SWEEP_KEYS:
        if values.get(key) is not None:
            lists[key] = BY_NAME[key].parse_several(values[key])
    keys = list(lists)
    built = []
    seen = set()
    for combo in itertools.product(*(lists[k] for k in keys)):
        v = dict(values)
        v.update(zip(keys, combo))
        cfg, data = build(**v)
        cfg = engine.resolve(cfg)
        if cfg.config_hash() in seen:
            raise ConfigError(f"the sweep lists run {run_name(cfg)} twice")
        seen.add(cfg.config_hash())
        built.append((cfg, data))
    names = name_runs([c for c, _ in built])
    return [(name, cfg, data) for name, (cfg, data) in zip(names, built)]


def _other_runs(held, names):
    """How the runs of a sweep file (held; None: not a sweep file) differ from those requested."""
    if held is None:
        return " (it is not a sweep file)"
    only_file = [n for n in held if n not in names]
    only_asked = [n for n in names if n not in held]
    if not (only_file or only_asked):
        return " (the same runs in another order)"
    parts = ([f"in the file only: {', '.join(only_file)}"] if only_file else []) + \
            ([f"requested only: {', '.join(only_asked)}"] if only_asked else [])
    return f" ({'; '.join(parts)})"


def check_resumable(path, names):
    """A StoreError, naming the runs that differ, unless the sweep file ``path`` holds the
    runs ``names`` (in this order): what a resumed sweep continues."""
    with open_file(path) as f:
        held = sweep_names(f, path, every_run=False) if f.attrs.get("kind") == "sweep" else None
    if held != names:
        raise StoreError(f"cannot resume {path}: it is not a sweep of the same runs" + _other_runs(held, names))


def check_shard(runs, shard):
    """A ConfigError unless ``shard`` (I, K) is a share of every run's trials (None: no shard)."""
    if shard is not None:
        for _, cfg, _ in runs:
            engine.check_shard(cfg.trials, shard)


def run_sweep(runs, path, overwrite=False, resume=False, threads=None, batch_size=None, quiet=True,
              on_run=None, stop_requested=None, backend="cpu", inputs=(), ignore_limits=False, shard=None):
    """Run every (name, config, data) of ``runs`` into the sweep file ``path``; returns the results.

    resume          continue an interrupted sweep file with the same runs
    inputs          files the runs read (their data): never the output, even with overwrite
    shard           (I, K): every run computes only its share I of K of the trial indices
    on_run(name, result) is called after each run; stop_requested and ignore_limits as in
    engine.run.  Each run's progress bar is labelled with its number and name."""
    names = [name for name, _, _ in runs]
    check_shard(runs, shard)        # before the file is created
    if not (resume and os.path.lexists(path)):
        check_output(path, overwrite, inputs)       # before any lock file
    with OutputLock(path):
        if resume and os.path.lexists(path):
            check_resumable(path, names)
        else:
            check_output(path, overwrite, inputs)
            create_file(path, sweep_attrs(names, __version__), lambda f: f.create_group(RUNS))
        results = []
        for i, (name, cfg, data) in enumerate(runs):
            sink = HDF5Sink(path, group=run_path(name), resume=resume)
            with labelled(f"{i + 1}/{len(runs)} {name}"):
                res = engine.run(cfg, data, sink=sink, threads=threads, batch_size=batch_size, quiet=quiet,
                                 stop_requested=stop_requested, backend=backend,
                                 ignore_limits=ignore_limits, shard=shard)
            results.append(res)
            if on_run is not None:
                on_run(name, res)
    return results
