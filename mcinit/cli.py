"""Command line: parses, validates and calls the Python API; nothing else."""

import dataclasses
import math
import os
import signal
import sys

import click

from ._version import __version__
from .cli_options import (DEFAULT_OUTPUT, DEFAULT_SWEEP_OUTPUT, FILE, NUMBER, POSITIVES, WHOLE, WHOLES, ChoiceList, OptionType,
                          echo_json, json_option, option_values, run_options, user_errors)
from .config import MAX_DEPTH, MAX_SAMPLES, MAX_WIDTH
from .options import BY_NAME, EXACT_INITS, FORMS, PANEL_MODES, PNG_DPI, PROPERTIES, ConfigError

class _Main(click.Group):
    """The command group; a malformed command line is one line on stderr and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:
                click.echo(e.ctx.get_help())
                sys.exit(0)
            hint = f" (see mcinit {e.ctx.info_name} --help)" if e.ctx is not None and e.ctx.parent else ""
            click.echo(f"mcinit: error: {e.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo(f"mcinit: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("mcinit: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Main, context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(__version__, prog_name="mcinit")
def main():
    """mcinit: Monte Carlo of norm preservation in randomly initialised deep ReLU networks."""


class _StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop at the next batch boundary; a second one stops at once."""

    def __enter__(self):
        self.signum = None
        self.old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        click.echo(f"\nmcinit: {signal.Signals(signum).name} received: stopping after this batch", err=True)

    def requested(self):
        return self.signum is not None

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False


def _data_files(configs):
    """The files the runs of ``configs`` read their data from (FILE.npy, FILE.h5:DATASET):
    inputs, never to be an output, even with --overwrite."""
    paths = [c.data_path for c in configs if c.data_path]
    return sorted({p for d in paths for p in (d, d.rsplit(":", 1)[0]) if os.path.isfile(p)})


@main.command()
@run_options(command="run")
@json_option
@user_errors
def run(config_file, as_json, **given):
    """Run trials and stream per-trial records and summaries into an HDF5 file."""
    from .config import build
    from .engine import Stopped, resolve, resolve_backend, run as run_engine
    from .store import HDF5Sink
    from .summary_text import run_summary

    values, ex = option_values(config_file, given)
    _json_or_dry_run(as_json, ex)
    shard = ex["shard"]
    output = str(ex["output"] or DEFAULT_OUTPUT)
    cfg, data = build(**values)
    requested, picked = cfg.kernel, resolve(cfg).kernel
    found = None if ex["overwrite"] else _run_in(output)     # the run already in the output, read once
    cfg = _with_kernel_of_file(found, cfg)
    cfg = resolve(cfg)
    resolve_backend(ex["backend"])   # a bad or unavailable backend fails before any file is touched
    if ex["dry_run"]:
        from .dryrun import run_plan
        state, todo, resume = _output_state(output, found, cfg, shard, ex)
        click.echo("\n".join(run_plan(cfg, data, output, ex, state=state, todo=todo, resume=resume,
                                       rows=_rows(cfg, shard), requested=requested,
                                       kept_from=output if cfg.kernel != picked else None,
                                       given=_given_names(config_file, given), note=_note(ex))))
        return
    if not (ex["overwrite"] or ex["resume"]):
        done = _complete_run(found, cfg, shard)
        if done is not None:    # the same command again: nothing to run, nothing written
            follows = "" if as_json or ex["quiet"] else "; its summary follows"
            click.echo(f"mcinit: {output} already holds this run, complete{follows} "
                       "(--overwrite runs it again)", err=True)
            if as_json:
                from .documents import run_document
                echo_json(run_document(done, output, requested_kernel=requested, shard=shard))
            elif not ex["quiet"]:
                click.echo("\n".join(run_summary(done, output=output)))
            else:
                click.echo(output)
            return
    held = None if shard is not None else _extended_run(found, cfg, ex["resume"])
    if held is not None:
        click.echo(f"mcinit: {output} holds {held.completed:,} trials of this run{_of_planned(held)}; "
                   f"extending it to {cfg.trials:,} trials (trials {held.completed:,} to {cfg.trials - 1:,})",
                   err=True)
    sink = HDF5Sink(output, overwrite=ex["overwrite"], resume=ex["resume"] or held is not None,
                    extend=held is not None, inputs=_data_files([cfg]))
    sink.check_writable(cfg)
    with _StopOnSignal() as stop:
        try:
            result = run_engine(cfg, data, sink=sink, threads=ex["threads"], batch_size=ex["batch_size"],
                                quiet=ex["quiet"], shard=shard, stop_requested=stop.requested,
                                backend=ex["backend"], ignore_limits=ex["ignore_limits"])
        except Stopped as e:
            click.echo(f"mcinit: stopped after trial {e.completed}; {output} is complete up to it: "
                       "run the same command with --resume to continue", err=True)
            sys.exit(128 + stop.signum)
    from numba import get_num_threads
    if as_json:
        from .documents import run_document
        echo_json(run_document(result, output, threads=get_num_threads(), requested_kernel=requested,
                               shard=shard))
    elif not ex["quiet"]:
        click.echo("\n".join(run_summary(result, output=output, threads=get_num_threads())))
    else:
        click.echo(output)     # -q: the results file's path, for scripts


def _note(ex):
    """A progress line on stderr (none with --quiet)."""
    return None if ex["quiet"] else (lambda text: click.echo(text, err=True))


def _rows(cfg, shard):
    """The trials a run of ``cfg`` (shard: its share) writes."""
    from .engine import shard_range
    first, stop = shard_range(cfg.trials, shard) if shard is not None else (0, cfg.trials)
    return stop - first


def _output_state(output, found, cfg, shard, ex):
    """(what a run would do with its output, in words; the trials it would compute; whether it
    continues a file), found read-only: what the run would refuse is refused here the same way."""
    from .engine import shard_range
    from .store import HDF5Sink
    first, stop = shard_range(cfg.trials, shard) if shard is not None else (0, cfg.trials)
    if not (ex["overwrite"] or ex["resume"]) and _complete_run(found, cfg, shard) is not None:
        return f"{output} holds this run, complete: nothing to compute (the run prints its summary)", 0, True
    held = None if shard is not None else _extended_run(found, cfg, ex["resume"])
    exists = os.path.lexists(output)
    sink = HDF5Sink(output, overwrite=ex["overwrite"], resume=ex["resume"] or held is not None,
                    extend=held is not None, inputs=_data_files([cfg]))
    sink.check_writable(cfg)
    meta = dict(config=cfg.config_json(), config_hash=cfg.config_hash(), trials=cfg.trials, first_index=first,
                rows=stop - first, shard=f"{shard[0]}/{shard[1]}" if shard is not None else "")
    start = sink.plan(meta)
    if start is None:
        return f"{output} will be {'replaced' if exists else 'created'}", stop - first, False
    if held is not None:
        return (f"{output} holds {held.completed:,} trials of this run{_of_planned(held)}: it will be extended "
                f"to {cfg.trials:,} trials", stop - start, True)
    return f"{output} will be resumed from trial {start:,}", stop - start, True


def _given_names(config_file, given, several=False):
    """The options given on the command line or in the config file (the rest take defaults)."""
    from .options import read_config_file
    names = {k for k, v in given.items() if v is not None}
    return names | set(read_config_file(config_file, several=several) if config_file else ())


def _json_or_dry_run(as_json, ex):
    """--json with --dry-run is refused: a dry run's plan is text for a reader."""
    if as_json and ex["dry_run"]:
        raise ConfigError("--json and --dry-run together: a dry run prints its plan as text only; "
                          "leave out one of them")


def _run_in(output):
    """The RunInfo of the run in ``output`` (a run file the reader accepts), or None: no such
    file, a sweep, or a file the reader refuses (the usual checks then say why)."""
    from .reader import read_file
    from .store import StoreError
    if not os.path.isfile(output):
        return None
    try:
        info = read_file(output)
    except StoreError:
        return None
    return info.runs[0] if info.kind == "run" else None


def _with_kernel_of_file(found, cfg):
    """``cfg`` (kernel auto) with the kernel of ``found`` (the run in the output, _run_in)
    when that run's configuration is ``cfg`` but for its kernel: a run begun when auto
    resolved another kernel (an earlier version's cost model) is resumed, or found complete,
    with its own kernel.  ``cfg`` as it is otherwise."""
    if cfg.kernel != "auto" or found is None:
        return cfg
    same = dataclasses.replace(cfg, kernel=found.config.kernel)     # with more trials too (an extension)
    return same if dataclasses.replace(same, trials=found.trials).config_hash() == found.config_hash else cfg


def _extended_run(found, cfg, resume):
    """``found`` (the run in the output, _run_in) when a run of ``cfg`` extends it (the same
    configuration with fewer trials, store.extends): complete, or (resume) unfinished; None
    otherwise (the usual checks then say what happens)."""
    from .store import extends
    if found is None or not extends(found, cfg):
        return None
    return found if resume or found.completed == found.rows else None


def _of_planned(run):
    """', complete' or ' (of N planned)' for a run found in a file."""
    return ", complete" if run.completed == run.rows else f" (of {run.rows:,} planned)"


def _complete_run(found, cfg, shard):
    """The RunResult (read from the file, nothing computed) of ``found`` (the run in the
    output, _run_in) when it is the run of ``cfg`` (and ``shard``), complete; None otherwise
    (no run, another run or an unfinished one: the usual checks then say why)."""
    if found is None:
        return None
    import numpy as np

    from .engine import REPORT_EPS, RunResult, shard_range
    from .results import Run
    first, stop = shard_range(cfg.trials, shard) if shard is not None else (0, cfg.trials)
    if (found.config_hash != cfg.config_hash() or found.first_index != first or found.rows != stop - first
            or found.completed != found.rows or found.partial):
        return None
    eps = np.array(REPORT_EPS)
    run = Run(found)
    counts = run.failure_counts(eps, "norm")
    failures = {k: v for k, v in counts.items() if k in ("forward", "backward", "both")}
    sup = None
    if cfg.sup:
        methods = run.sup_methods()
        sup = {"sup": counts["sup"], "sup_possible": counts["sup_possible"], "sup_exact": methods["exact"],
               "sup_pairs": sum(methods.values())}
    return RunResult(config=cfg, summary=found.summary, elapsed=0.0, sink=None, eps=eps, failures=failures,
                     computed=0, sup=sup)


@main.command()
@run_options(command="sweep")
@json_option
@user_errors
def sweep(config_file, as_json, **given):
    """Run the Cartesian product of the listed values (widths, depths, samples, inits, ...) into one file.

    At the end one table compares the runs: the options that differ between them, the
    means of rho_L and gamma_L, and the failure probability at one tolerance with its
    exact interval (-v prints every run's full summary as well).

    Example: mcinit sweep --width 128,256,512,1024 --init he,glorot --trials 1e5
    """
    from . import sweep as sweep_mod
    from .engine import Stopped
    from .store import check_output
    from .summary_text import run_summary, sweep_table

    values, ex = option_values(config_file, given, several=True)
    _json_or_dry_run(as_json, ex)
    output = str(ex["output"] or DEFAULT_SWEEP_OUTPUT)
    runs = sweep_mod.expand(values)
    sweep_mod.check_shard(runs, ex["shard"])
    from .engine import resolve_backend
    backend = resolve_backend(ex["backend"])
    inputs = _data_files([cfg for _, cfg, _ in runs])
    if not (ex["resume"] and os.path.exists(output)):
        check_output(output, ex["overwrite"], inputs)
    if ex["threads"] is not None:
        from .engine import set_threads
        set_threads(ex["threads"], insist=ex["ignore_limits"])
    from numba import get_num_threads

    from .limits import check_sweep
    check_sweep([cfg for _, cfg, _ in runs], output, threads=get_num_threads(), batch_size=ex["batch_size"],
                backend=backend, resume=ex["resume"], insist=ex["ignore_limits"])
    if ex["dry_run"]:
        from .dryrun import sweep_plan
        click.echo("\n".join(sweep_plan(runs, output, ex, backend, requested=values.get("kernel") or "auto",
                                         given=_given_names(config_file, given, True), note=_note(ex))))
        return
    if not ex["quiet"]:
        click.echo(f"mcinit sweep: {len(runs)} runs -> {output}", err=as_json)
    finished = []

    def done(name, result):
        finished.append((name, result))
        if ex["verbose"] and not (ex["quiet"] or as_json):
            click.echo(f"\n[{name}]")
            click.echo("\n".join(run_summary(result)))

    with _StopOnSignal() as stop:
        try:
            sweep_mod.run_sweep(runs, output, overwrite=ex["overwrite"], resume=ex["resume"], inputs=inputs,
                                threads=ex["threads"], batch_size=ex["batch_size"], quiet=ex["quiet"],
                                on_run=done, stop_requested=stop.requested, backend=ex["backend"],
                                ignore_limits=ex["ignore_limits"], shard=ex["shard"])
        except Stopped as e:
            click.echo(f"mcinit: stopped after trial {e.completed}; run the same command with --resume "
                       "to continue", err=True)
            sys.exit(128 + stop.signum)
    if as_json:     # the document alone on stdout, -q or not
        from .documents import sweep_document
        echo_json(sweep_document(finished, output, threads=get_num_threads(),
                                 requested_kernel=values.get("kernel") or BY_NAME["kernel"].default,
                                 shard=ex["shard"]))
    elif ex["quiet"]:
        click.echo(output)     # -q: the results file's path, for scripts
    else:
        click.echo("\n" + "\n".join(sweep_table(finished, output=output)))


@main.command()
@click.argument("parts", nargs=-1, required=True, type=FILE)
@click.option("-o", "--output", required=True, type=FILE, help="The merged results file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--allow-partial", is_flag=True,
              help="Merge even when trials are missing (the output is marked partial).")
@click.option("--sweep", "as_sweep", is_flag=True,
              help="Parts of several configurations become the runs of one sweep file.")
@click.option("--remove-parts", "remove_parts", is_flag=True,
              help="Remove the part files once the merged file is complete and verified (not with --allow-partial).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing (what was merged is printed otherwise).")
@user_errors
def merge(parts, output, overwrite, allow_partial, as_sweep, remove_parts, quiet):
    """Merge shard files (and sweep files of shards) into one results file equal to the single run."""
    from .merge import merge_files
    info = merge_files(list(parts), output, overwrite=overwrite, allow_partial=allow_partial,
                       sweep=as_sweep, remove_parts=remove_parts)
    if not quiet:
        for line in info:
            click.echo(line)


def _warn_norm_eps(eps, form):
    """One line on stderr when norm-form eps >= 1 are asked for (mcinit.stats.warn_norm_eps):
    they cannot flag a collapsing norm."""
    import numpy as np

    from .stats import norm_eps_message
    if eps and form == "norm" and np.any(np.asarray(eps, dtype=float) >= 1.0):
        click.echo(f"mcinit: warning: {norm_eps_message(eps)}", err=True)


@main.command()
@click.argument("path", type=FILE)
@click.option("--eps", type=POSITIVES,
              help="Tolerances, comma-separated, e.g. 0.1,0.25,0.5.  [default: chosen for the runs]")
@click.option("--form", type=click.Choice(FORMS), default="norm", show_default=True,
              help="Deviation |sqrt(ratio) - 1| (norm), |ratio - 1| (squared) or max(sqrt(ratio), "
                   "1/sqrt(ratio)) - 1 (symmetric: sees collapsing norms at every eps).")
@click.option("--level", type=NUMBER, default=0.95, show_default=True, help="Confidence level of the exact intervals.")
@click.option("--plot", "plot_path", type=FILE,
              help=f"Also draw the figures into this file; its extension sets the format: .pdf or .svg "
                   f"(vector) or .png ({PNG_DPI} dpi).")
@click.option("--panels", type=click.Choice(PANEL_MODES), default="together", show_default=True,
              help="With --plot: every panel in one file (together), or one file per panel (separate): "
                   "NAME-a.EXT, NAME-b.EXT, ... for --plot NAME.EXT.")
@click.option("--overwrite", is_flag=True, help="Replace existing --plot files.")
@json_option
@user_errors
def report(path, eps, form, level, plot_path, panels, overwrite, as_json):
    """Tables (and figures) of a run or sweep file: per-layer ratios, failure probabilities, bounds."""
    from . import load
    from .report import report_numbers, report_text
    eps_values = eps or None
    if not 0 < level < 1:
        raise ConfigError("level must be between 0 and 1")
    _warn_norm_eps(eps_values, form)
    if not plot_path:
        if as_json:
            from .documents import report_document
            echo_json(report_document(load(path), eps=eps_values, form=form, level=level))
        else:
            click.echo(report_text(load(path), eps=eps_values, form=form, level=level))
        return
    from .report import figure_format
    from .store import OutputLock, check_output
    if panels == "together":             # before any lock file
        check_output(plot_path, overwrite=overwrite, inputs=[path], option="--plot")
    res = load(path)
    if not res.with_property("forward").runs:
        raise ConfigError(f"--plot draws the forward property, which no run of {path} computed "
                          "(made with --properties backward)")
    outputs = _plot_outputs(res, plot_path, panels)
    for out in outputs:                  # before any lock file
        check_output(out, overwrite=overwrite, inputs=[path], option="--plot")
    locks = [OutputLock(out) for out in outputs]
    try:
        for lock in locks:               # the figures' only writer, from their check to their rename
            lock.acquire()
        for out in outputs:
            check_output(out, overwrite=overwrite, inputs=[path], option="--plot")
        try:                             # the format, from the extension (after the refusals above)
            figure_format(plot_path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        numbers = report_numbers(res, eps_values, form, level)
        if not as_json:
            click.echo(report_text(res, eps=eps_values, form=form, level=level, numbers=numbers))
        _write_plot(res, plot_path, outputs, panels, eps_values, form, level, numbers)
    finally:
        for lock in locks:
            if lock.held:
                lock.release()
    if as_json:
        from .documents import report_document
        echo_json(report_document(res, eps=eps_values, form=form, level=level, figures=plot_path,
                                  figure_files=outputs, numbers=numbers))
    else:
        click.echo(f"figures -> {', '.join(outputs)}")


def _plot_outputs(res, plot_path, panels):
    """The files --plot writes: the file itself, or one per panel (mcinit.report.panel_paths)."""
    if panels == "together":
        return [plot_path]
    from .report import panel_paths
    from .report.figures import panel_count
    try:
        count = panel_count(res)
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    return panel_paths(plot_path, count)


def _write_plot(res, plot_path, outputs, panels, eps_values, form, level, numbers):
    """The figures of ``res`` into ``outputs``, all or none (each written beside its file under a
    temporary name, then all renamed); the caller holds the outputs' locks."""
    from .report import draw_figures, figure_format
    from .report.figures import save_figure
    from .store import remove_stale_temporaries, temporary_name
    figs = draw_figures(res, eps=eps_values, form=form, level=level, panels=panels, numbers=numbers)
    if len(figs) != len(outputs):        # the panels are those _plot_outputs counted
        raise ConfigError(f"internal: {len(figs)} figures for {len(outputs)} files")
    fmt = figure_format(plot_path)
    tmps = []
    try:
        for fig, out in zip(figs, outputs):
            remove_stale_temporaries(out)
            tmps.append(temporary_name(out))
            save_figure(fig, tmps[-1], fmt)
        for tmp, out in zip(tmps, outputs):
            os.replace(tmp, out)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)


@main.command()
@click.option("--eps", required=True, type=POSITIVES, help="Tolerance(s), comma-separated, e.g. 0.1,0.25.")
@click.option("--delta", required=True, type=NUMBER, help="Failure probability allowed, in (0, 1).")
@click.option("--depth", required=True, type=WHOLES, help="Number(s) of hidden layers L, comma-separated, e.g. 5,10.")
@click.option("--samples", default="1", show_default=True, type=WHOLE, help="Number of inputs N.")
@click.option("--width", type=WHOLES,
              help="Equal hidden widths m at which to evaluate each bound, comma-separated, e.g. 256,1024.")
@click.option("--input-dim", type=WHOLE,
              help="Input dimension n_0 of the networks at --width  [default: m].  The Chernoff and exact "
                   "values depend on it for he-in, glorot and lecun; the paper's applies to he-in at n_0 = m only.")
@click.option("--properties", "props", type=ChoiceList(PROPERTIES), default="forward", show_default=True,
              metavar="[forward|backward|both],...",
              help="Properties, comma-separated: forward (every bound), backward (the paper's bound alone), "
                   "both (a trial fails when either fails: the paper's bound, union of the two).")
@click.option("--form", type=click.Choice(FORMS), default="norm", show_default=True,
              help="Form of eps: deviation |sqrt(ratio) - 1| (norm), |ratio - 1| (squared) or "
                   "max(sqrt(ratio), 1/sqrt(ratio)) - 1 (symmetric: sees collapsing norms at every eps).")
@click.option("--init", default="he", show_default=True, type=click.Choice(EXACT_INITS),
              help="Gaussian initialisation preset, or orthogonal weights (the bounds need an exact law).")
@click.option("--activation", default="relu", show_default=True, type=OptionType(BY_NAME["activation"]),
              help="relu | leaky-relu:ALPHA | abs | linear (tanh and gelu have no exact law). The paper's bound "
                   "is for relu alone; the Chernoff bound is not computed for leaky-relu.")
@click.option("--gain", type=NUMBER, help="Gain g of he, he-in and orthogonal weights  [default: the activation's].")
@json_option
@user_errors
def bound(eps, delta, depth, samples, width, input_dim, props, form, init, activation, gain, as_json):
    """Widths each bound needs for eps and delta (paper, Chernoff, exact), and bounds at given widths.

    One block per depth and tolerance; every row names its property.  The backward property
    has the paper's bound alone (mcinit.theory has no exact law of the backward ratio).
    """
    from .report import bound_text
    if not 0 < delta < 1:
        raise ConfigError("delta must be between 0 and 1")
    if max(depth) > MAX_DEPTH or samples > MAX_SAMPLES:
        raise ConfigError(f"bound takes at most depth {MAX_DEPTH} and {MAX_SAMPLES} samples, as a run does")
    if input_dim is not None and width is None:
        raise ConfigError("--input-dim applies to the bounds at --width (the required widths take n_0 = m)")
    if input_dim is not None and input_dim > MAX_WIDTH:
        raise ConfigError(f"input-dim must be at most {MAX_WIDTH}, as for a run")
    _warn_norm_eps(eps, form)
    from .options import parse_activation
    activation = parse_activation(activation)
    if gain is not None and not (math.isfinite(gain) and gain > 0):
        raise ConfigError(f"gain must be a positive number, got {gain!r}")
    try:
        if as_json:
            from .documents import bound_document
            echo_json(bound_document(eps, delta, depth, samples=samples, widths=width, form=form, init=init,
                                     input_dim=input_dim, props=props, activation=activation, gain=gain))
            return
        for L in depth:
            for e in eps:
                click.echo(bound_text(e, delta, L, samples=samples, widths=width, form=form, init=init,
                                      input_dim=input_dim, props=props, activation=activation, gain=gain))
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None


@main.command()
@click.argument("figure", metavar="FIGURE", type=click.Choice(("fig1-2", "fig3-4", "fig6", "fig7", "kn", "all")))
@click.option("-o", "--output", "outdir", type=FILE, default="mcinit-paper", show_default=True,
              help="Directory of the results files and figures (created when missing).")
@click.option("--quick", is_flag=True, help="Small sizes (under a minute on a laptop) instead of the paper's.")
@click.option("--format", "fmt", type=click.Choice(("png", "pdf", "svg")), default="png", show_default=True,
              help="Format of the figures.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the networks (trial 0 is the one drawn).")
@click.option("--overwrite", is_flag=True, help="Replace existing results files and figures.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; print the files written only.")
@json_option
@user_errors
def paper(figure, outdir, quick, fmt, seed, overwrite, quiet, as_json):
    """The paper's experiments (Arpit & Bengio, arXiv:1901.03611), one figure each: docs/paper.md.

    Runs FIGURE (fig1-2, fig3-4, fig6, fig7, kn, or all) at the paper's sizes, or small
    ones with --quick; writes OUTPUT/FIGURE.h5 and OUTPUT/FIGURE.<format>, and prints the
    numbers: the paper's quantity for one network (trial 0: mean and sd over its inputs)
    beside the distribution over many networks and the exact law where one exists.

    Example: mcinit paper fig1-2 --quick -o paper-figures
    """
    from . import paper as paper_mod
    figures = paper_mod.FIGURES if figure == "all" else (figure,)
    paper_mod.check_outputs(figures, str(outdir), fmt, overwrite)     # every figure's files, before any work
    for f in figures:
        paper_mod.check_computable(f, quick, seed)           # and every configuration's kernel
    docs = []
    for f in figures:
        fig = paper_mod.make(f, str(outdir), quick=quick, fmt=fmt, overwrite=overwrite, seed=seed, quiet=quiet,
                             note=None if quiet or as_json else (lambda text: click.echo(text, err=True)))
        if as_json:
            docs.append(fig)
        elif quiet:
            click.echo("\n".join(fig.files))
        else:
            click.echo("\n".join(fig.lines() + [f"({fig.seconds:.1f} s)", ""]))
    if as_json:
        from .documents import paper_document
        echo_json(paper_document(docs))


from .cli_hpc import status, submit  # noqa: E402  (they reuse this module's options)

main.add_command(submit)
main.add_command(status)

if __name__ == "__main__":
    main()
