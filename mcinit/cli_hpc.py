"""Command line of SLURM submissions and states: ``mcinit submit`` and ``mcinit status`` (logic in
mcinit.hpc and mcinit.status).

Both are plain click commands; mcinit.cli adds them to its ``main`` group."""

import os
import shlex
import sys

import click



from .cli_options import (DEFAULT_OUTPUT, DEFAULT_SWEEP_OUTPUT, FILE, WHOLE, echo_json, json_option, option_values,
                          run_options, user_errors)


@click.command()
@run_options(command="submit")
@click.option("--shards", required=True, type=WHOLE, help="Split every run's trials into this many array tasks.")
@click.option("--cpus-per-task", "cpus_per_task", default="1", show_default=True, type=WHOLE,
              help="CPUs per array task; the task runs with --threads of this many.")
@click.option("--partition", help="SLURM partition (both jobs).")
@click.option("--time", "time_limit", help="Time limit per job, e.g. 2:00:00 or 1-00:00:00 (both jobs).")
@click.option("--mem", help="Memory per node, e.g. 4G (both jobs).")
@click.option("--account", help="SLURM account to charge (both jobs).")
@click.option("--sbatch-arg", "sbatch_args", multiple=True, metavar="ARG",
              help="A further sbatch option for both jobs, e.g. --sbatch-arg=--qos=high (repeatable).")
@click.option("--wait", "wait", is_flag=True, help="Wait for the merge job and exit with its exit status.")
@click.option("--remove-parts", "remove_parts", is_flag=True,
              help="The merge job removes the part files once the merged file is complete and verified.")
@user_errors
def submit(config_file, shards, cpus_per_task, partition, time_limit, mem, account, sbatch_args, wait,
           remove_parts, **given):
    """Run a run or a sweep on a SLURM cluster: a job array of shards, then a merge.

    Takes the options of run (those a sweep lists may list several values, as for
    sweep).  Everything goes into OUTPUT.parts/ beside the output: the run
    configurations, array.sbatch (one task per run and shard, each
    `mcinit run --shard I/K --resume`), merge.sbatch (`mcinit merge`, submitted with
    afterok on the array), the shard files and the logs.  `mcinit status OUTPUT`
    shows the progress.  --overwrite replaces an earlier submission (and the output);
    --resume submits again into an earlier submission of the same runs and shards: its
    finished shards are kept and the others continue where they stopped.

    Example: mcinit submit --width 256,512 --trials 1e7 --shards 50 --time 1:00:00 -o w.h5
    """
    from . import hpc

    values, ex = option_values(config_file, given, several=True)
    dry_run = ex["dry_run"]
    resources = hpc.Resources(cpus_per_task=cpus_per_task, partition=partition, time=time_limit, mem=mem,
                              account=account, extra=sbatch_args)
    plan = hpc.make_plan(values, ex["output"], shards, resources, threads=ex["threads"],
                         batch_size=ex["batch_size"], overwrite=ex["overwrite"], resume=bool(ex.get("resume")),
                         default_outputs=(DEFAULT_OUTPUT, DEFAULT_SWEEP_OUTPUT), ignore_limits=ex["ignore_limits"],
                         remove_parts=remove_parts)
    from .limits import check_submission
    check_submission([cfg for _, cfg, _ in plan.runs], plan.output, resume=bool(ex.get("resume")),
                     insist=ex["ignore_limits"], shards=plan.shards)
    hpc.check_destination(plan, dry_run=dry_run)
    sbatch = None if dry_run else hpc.find_sbatch()
    hpc.write_plan(plan)
    quiet = ex["quiet"]
    nruns = len(plan.runs)
    intro = (f"mcinit submit: {nruns} run{'s' if nruns != 1 else ''} x {plan.shards} shard"
             f"{'s' if plan.shards != 1 else ''} = {plan.tasks} array task{'s' if plan.tasks != 1 else ''}"
             f" -> {plan.output}\nfiles in {plan.dir}\n{hpc.disk_text(plan)}")
    if dry_run:
        click.echo(intro)
        for path in (plan.array_path, plan.merge_path):
            click.echo(f"\n==> {path} <==")
            with open(path) as f:
                click.echo(f.read(), nl=False)
        click.echo(f"\ndry run: nothing submitted.  To submit by hand:\n"
                   f"  {shlex.join(hpc.sbatch_command(plan, 'array'))}\n"
                   f"  {shlex.join(hpc.sbatch_command(plan, 'merge', dependency='ARRAY_JOB_ID'))}")
        return
    try:
        jobs = hpc.submit(plan, sbatch=sbatch)
    except BaseException:
        if not os.path.exists(os.path.join(plan.dir, "jobs.json")):
            hpc.discard_plan(plan)  # nothing was submitted: leave things as they were
        raise
    if not quiet:
        click.echo(intro)
    click.echo(f"array job {jobs['array']} ({plan.tasks} tasks), merge job {jobs['merge']} "
               f"(after the array succeeds)")
    if not quiet:
        click.echo(f"progress: mcinit status {plan.output}")
    if not wait:
        return
    try:
        code, state = hpc.wait_for_job(jobs["merge"], output=plan.output)
    except KeyboardInterrupt:
        click.echo(f"\nmcinit: stopped waiting; the jobs go on (mcinit status {plan.output}; "
                   f"scancel {jobs['array']} {jobs['merge']} stops them)", err=True)
        sys.exit(130)
    st = hpc.read_status(plan.output)
    if not quiet or code != 0:
        click.echo("\n".join(hpc.format_status(st)), err=code != 0)
    if code != 0:
        failed = [s for r in st["runs"] for s in r["shards"] if s["state"] != "done"]
        hint = f"; logs in {plan.logs}" + (f" (first unfinished shard: task {failed[0]['job']})" if failed else "")
        click.echo(f"mcinit: merge job {jobs['merge']} ended {state} (exit status {code}){hint}", err=True)
    sys.exit(code)


@click.command()
@click.argument("path", type=FILE)
@click.option("--shards", "every_shard", is_flag=True,
              help="List every shard of a submission, one line each (default: grouped into ranges).")
@json_option
@user_errors
def status(path, every_shard, as_json):
    """The state of a results file (run, sweep, shard, merged), or of a submission's shards and jobs.

    PATH is a results file, or the output of `mcinit submit` (its PATH.parts/ holds the
    submission): then the shards done, running, missing and failed, the merged output
    and the SLURM jobs where at hand.
    """
    from . import hpc
    from .status import format_file_status, status_of

    if as_json:
        from .documents import status_document
        echo_json(status_document(path))
        return
    kind, st = status_of(path)
    lines = format_file_status(st) if kind == "file" else hpc.format_status(st, shards=every_shard)
    click.echo("\n".join(lines))
