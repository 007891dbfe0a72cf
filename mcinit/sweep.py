"""Sweeps: the Cartesian product of lists of widths, depths, sample counts, inits,
precisions, properties and the other options that take lists, run one after the other
into one file, one run group per run under /runs/<name>/ (mcinit.layout).

Every run of a sweep uses the same seed, so neighbouring runs share their random
numbers where their shapes agree (common random numbers): differences between
runs are then less noisy than independent runs would make them.
"""

import itertools
import os

from . import engine
from ._version import __version__
from .config import ConfigError, build
from .layout import RUNS, StoreError, run_path, sweep_attrs
from .options import BY_NAME, SEVERAL
from .reader import open_file, sweep_names
from .store import HDF5Sink, OutputLock, check_output, create_file

__all__ = ["SWEEP_KEYS", "expand", "run_name", "name_runs", "run_sweep"]

#: the options a sweep may list, comma-separated (those with ``several`` in mcinit.options)
SWEEP_KEYS = SEVERAL


def run_name(cfg):
    """A run's name in a sweep file, e.g. w512-d10-n1-he (uneven widths joined by '_'), with
    the precision and the properties where they are not the defaults (w512-d10-n1-he-float32-forward)."""
    ws = cfg.widths
    w = str(ws[0]) if len(set(ws)) == 1 else "_".join(map(str, ws))
    name = f"w{w}-d{cfg.depth}-n{cfg.samples}-{cfg.init}"
    for key in ("precision", "properties"):
        value = getattr(cfg, key)
        if value != BY_NAME[key].default:
            name += f"-{value}"
    return name


def name_runs(cfgs):
    """Names of the runs of one file: run_name, with -i<input_dim> where that alone would
    repeat a name, and the configuration hash's first 8 digits where even that would."""
    names = [run_name(c) for c in cfgs]
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


def run_sweep(runs, path, overwrite=False, resume=False, threads=None, batch_size=None, quiet=True,
              on_run=None, stop_requested=None, backend="cpu", inputs=(), ignore_limits=False):
    """Run every (name, config, data) of ``runs`` into the sweep file ``path``; returns the results.

    resume          continue an interrupted sweep file with the same runs
    inputs          files the runs read (their data): never the output, even with overwrite
    on_run(name, result) is called after each run; stop_requested and ignore_limits as in
    engine.run."""
    names = [name for name, _, _ in runs]
    if not (resume and os.path.lexists(path)):
        check_output(path, overwrite, inputs)       # before any lock file
    with OutputLock(path):
        if resume and os.path.lexists(path):
            with open_file(path) as f:
                same = f.attrs.get("kind") == "sweep" and sweep_names(f, path, every_run=False) == names
            if not same:
                raise StoreError(f"cannot resume {path}: it is not a sweep of the same runs")
        else:
            check_output(path, overwrite, inputs)
            create_file(path, sweep_attrs(names, __version__), lambda f: f.create_group(RUNS))
        results = []
        for name, cfg, data in runs:
            sink = HDF5Sink(path, group=run_path(name), resume=resume)
            res = engine.run(cfg, data, sink=sink, threads=threads, batch_size=batch_size, quiet=quiet,
                             stop_requested=stop_requested, backend=backend,
                             ignore_limits=ignore_limits)
            results.append(res)
            if on_run is not None:
                on_run(name, res)
    return results
