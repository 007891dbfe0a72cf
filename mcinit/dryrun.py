"""``--dry-run`` of ``mcinit run`` and ``mcinit sweep``: what the command would do, in lines.

Every option's value (defaults included, those given marked), the kernel and the rule that
picked it with every able kernel's estimated seconds per trial, the time on this machine
(mcinit.estimate: a short calibration, cached) and the results file's size (mcinit.limits).
Nothing here creates or changes a file but the calibrations' cache; the checks the command
makes before it writes (its output, its memory and disk) are made, and refuse, the same way.
"""

import os

from . import engine, estimate, limits
from .options import EXEC, OPTIONS, options_of

__all__ = ["run_plan", "sweep_plan", "configuration_lines"]

NOTHING = "nothing is computed, and no file is created or changed"


def _text(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _run_values(cfg):
    """{option: value} of a resolved configuration's run options, width and depth included."""
    values = cfg.values()
    values["width"] = cfg.widths[0] if len(set(cfg.widths)) == 1 else None
    values["depth"] = cfg.depth
    return values


def configuration_lines(configs, execution, given, notes=None, command="run"):
    """'  option = value' for every option ``command`` takes: the distinct values of the run
    options over ``configs`` (resolved RunConfigs; a sweep's lists), the execution values, '*'
    for those ``given`` (names), and notes {option: words} after a value."""
    notes = notes or {}
    runs = [_run_values(c) for c in configs]
    width = max(len(o.name) for o in OPTIONS)
    lines = []
    for o in options_of(command):
        if o.role == EXEC:
            shown = _text(execution.get(o.name))
        else:
            seen = list(dict.fromkeys(_text(r.get(o.name)) for r in runs))
            shown = seen[0] if len(seen) == 1 else " | ".join(seen)
        note = f" ({notes[o.name]})" if o.name in notes else ""
        lines.append(f"  {o.name:<{width}} = {shown}{note}{'  *' if o.name in given else ''}")
    return lines


def _execution(ex, output, threads, batch, backend):
    """The execution values as the command would run them, and notes on those it chose."""
    values = dict(ex, output=output, threads=threads, batch_size=batch)
    if ex.get("shard") is not None:
        values["shard"] = "{}/{}".format(*ex["shard"])
    notes = {}
    if ex["threads"] is None:
        notes["threads"] = f"all the cores this process may use: {engine.usable_cores()}"
    if ex["batch_size"] is None:
        notes["batch_size"] = "auto: about a second of work, within the memory"
    if backend != ex["backend"]:
        notes["backend"] = f"{backend} here"
    return values, notes


def _threads(ex):
    from numba import get_num_threads
    if ex["threads"] is not None:
        engine.set_threads(ex["threads"], insist=ex["ignore_limits"])
    return get_num_threads()


def _calibrate(cfg, data, backend, note):
    if note is not None:
        note(f"mcinit: timing the {cfg.kernel} kernel on this machine (a short run in memory; compiling the "
             "kernels the first time), unless a calibration is cached")
    return estimate.calibrate(cfg, data, backend=backend)


def run_plan(cfg, data, output, ex, state, todo, resume, rows, requested="auto", kept_from=None, given=(),
             note=None):
    """The lines of ``mcinit run --dry-run``.

    cfg, data  the resolved configuration and its fixed dataset; output its results file
    ex         the execution values (mcinit.options.collect)
    state      what the run would do with its output, in words; todo: the trials it would
               compute; resume: whether it continues a file; rows: the trials its file holds
    requested  the kernel asked for; kept_from: the file whose run's kernel it keeps
    given      the options given (the rest are defaults); note(text): progress, on stderr"""
    backend = engine.resolve_backend(ex["backend"])
    threads = _threads(ex)
    batch = limits.check_run(cfg, ex["batch_size"], threads, backend, output=output, rows=rows, resume=resume,
                             insist=ex["ignore_limits"])
    values, notes = _execution(ex, output, threads, batch, backend)
    if requested == "auto" and cfg.kernel != "auto":
        notes["kernel"] = "auto"
    lines = [f"mcinit run --dry-run: {NOTHING}",
             "configuration (* given; the rest are the defaults):"]
    lines += configuration_lines([cfg], values, given, notes, command="run")
    lines += estimate.kernel_lines(cfg, requested, kept_from)
    cal = _calibrate(cfg, data, backend, note) if todo > 0 else None
    lines.append(estimate.time_line(cfg, todo, cal))
    lines.append(f"file: {state}; {limits.human_bytes(limits.file_bytes(cfg, rows))} for {rows:,} trials "
                 f"({limits.trial_bytes(cfg)} bytes per trial)")
    return lines


def _held(output, runs, resume):
    """{run name: trials done} of the runs a resumed sweep finds in its file; a file the
    sweep would not resume is refused as the sweep refuses it (mcinit.sweep.check_resumable)."""
    if not (resume and os.path.lexists(output)):
        return {}
    from .reader import read_file
    from .sweep import check_resumable
    check_resumable(output, [n for n, _, _ in runs])
    hashes = {name: cfg.config_hash() for name, cfg, _ in runs}
    return {r.name: r.completed for r in read_file(output).runs if hashes.get(r.name) == r.config_hash}


def sweep_plan(runs, output, ex, backend, requested="auto", given=(), note=None):
    """The lines of ``mcinit sweep --dry-run`` for its runs [(name, resolved RunConfig, data)]
    (the sweep's checks made already: mcinit.limits.check_sweep)."""
    threads = _threads(ex)
    values, notes = _execution(ex, output, threads, ex["batch_size"], backend)
    if ex["batch_size"] is None:
        notes["batch_size"] = "auto, per run: about a second of work, within the memory"
    held = _held(output, runs, ex["resume"])
    lines = [f"mcinit sweep --dry-run: {NOTHING}",
             f"{len(runs)} run{'s' if len(runs) != 1 else ''} -> {output}",
             "configuration (* given; a | b: the sweep's values; the rest are the defaults):"]
    lines += configuration_lines([cfg for _, cfg, _ in runs], values, given, notes, command="sweep")
    shard = ex.get("shard")
    total_seconds = total_bytes = 0
    for name, cfg, data in runs:
        first, stop = engine.shard_range(cfg.trials, shard) if shard is not None else (0, cfg.trials)
        rows = stop - first
        todo = rows - held.get(name, 0)
        lines.append(f"[{name}]")
        lines += ["  " + ln for ln in estimate.kernel_lines(cfg, requested)]
        cal = _calibrate(cfg, data, backend, note) if todo > 0 else None
        lines.append("  " + estimate.time_line(cfg, todo, cal))
        size = limits.file_bytes(cfg, rows)
        share = f" (shard {shard[0]}/{shard[1]}: trials {first:,} to {stop - 1:,})" if shard is not None else ""
        lines.append(f"  file: {limits.human_bytes(size)} for {rows:,} trials{share} ({limits.trial_bytes(cfg)} "
                     f"bytes per trial)" + (f"; {held[name]:,} done already" if name in held else ""))
        total_seconds += todo * estimate.trial_seconds(cfg, cal) if todo > 0 else 0
        total_bytes += size
    if ex["resume"] and os.path.isfile(output):
        state = f"{output} will be resumed: its runs continue where they stopped"
    else:
        state = f"{output} will be {'replaced' if os.path.lexists(output) else 'created'}"
    lines.append(f"time: {estimate.approx_seconds(total_seconds)} for every run, plus each run's startup"
                 if total_seconds > 0 else "time: nothing to compute")
    lines.append(f"file: {state}; {limits.human_bytes(total_bytes)} in all")
    return lines
