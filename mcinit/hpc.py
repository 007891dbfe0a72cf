"""Runs and sweeps on a SLURM cluster: one job array of shards, then one merge job.

``mcinit submit ... --shards K -o OUT.h5`` expands the run options like a sweep
(R runs; R = 1 when nothing is listed), and puts everything beside OUT.h5, in
the directory ``OUT.h5.parts/``::

    plan.json                 what was submitted: runs, shards, config hashes, paths
    jobs.json                 the SLURM job ids (written once sbatch has answered)
    <run>.json                one run's configuration (the keys of ``mcinit run --config``)
    <run>.shard-I-of-K.h5     shard I of that run, written by ``mcinit run --shard I/K``
    array.sbatch              the job array: task t = r*K + I runs shard I of run r
    merge.sbatch              ``mcinit merge`` of all shards into OUT.h5 (afterok on the array)
    logs/slurm-%A_%a.out      one log per array task; logs/merge-%j.out for the merge

<run> is the run's name in a sweep file (``mcinit.sweep.run_name``).  Array
tasks run ``mcinit run --resume``, so a requeued task continues its shard where
it stopped.  The directory must be on a file system the compute nodes share,
and the Python interpreter that submitted (its absolute path) is the one the
jobs run; a fixed dataset (``--data PATH.npy``) must be readable there too.

``mcinit status OUT.h5`` reads the progress back from these files (and from
squeue/scontrol where SLURM is at hand).

No click here: the command line is ``mcinit.cli_hpc``.
"""

import contextlib
import datetime
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import time

from ._version import __version__
from .config import ConfigError
from .options import RUN_OPTIONS
from .sbatch import parse_sbatch_arg, sbatch_line
from .store import StoreError, check_output

__all__ = ["SlurmError", "Resources", "Plan", "parts_dir", "make_plan", "check_paths", "check_destination",
           "write_plan", "keep_plan", "discard_plan", "array_script", "merge_script", "job_options", "log_pattern",
           "sbatch_command", "find_sbatch", "submit", "wait_for_job",
           "job_states", "job_names", "read_status", "format_status", "shard_groups", "ranges", "SHARD_GROUPS",
           "load_plan", "load_jobs", "run_config_dict", "shard_range", "disk_text", "PLAN_FORMAT", "CONFIG_KEYS",
           "CLI_MODULE"]

PLAN_FORMAT = "mcinit-slurm-plan-1"
PARTS_SUFFIX = ".parts"
#: the keys a run's configuration file may hold: every run option that rebuilds a RunConfig
CONFIG_KEYS = tuple(o.name for o in RUN_OPTIONS if o.value_of is not None)
#: the module the jobs run: ``python -m mcinit`` is mcinit's command line (mcinit/__main__.py)
CLI_MODULE = "mcinit"

_TIME_RE = re.compile(r"^(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|infinite|unlimited)$", re.I)
_MEM_RE = re.compile(r"^\d+[KMGT]?$", re.I)
_WORD_RE = re.compile(r"^[A-Za-z0-9_.,:+@=/-]+$")
_FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                 "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}


class SlurmError(StoreError):
    """sbatch, squeue or a submission directory cannot do what was asked; one line for the user."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def parts_dir(output):
    """The directory beside ``output`` that holds a submission's shards, scripts and logs."""
    return os.path.abspath(output) + PARTS_SUFFIX


def shard_range(trials, shard, shards):
    """Trial indices [first, stop) of shard ``shard`` of ``shards`` (as ``mcinit run --shard``)."""
    return trials * shard // shards, trials * (shard + 1) // shards


# -- the plan ------------------------------------------------------------------------


class Resources:
    """What the jobs ask SLURM for.

    cpus_per_task  CPUs of each array task (and its ``--threads``); the merge takes 1
    partition, time, mem, account: as sbatch's options of those names (both jobs)
    extra          further sbatch options (``--sbatch-arg``), each one word as sbatch reads it:
                   ``--qos=high``, ``-qhigh``; only those of mcinit.sbatch.ALLOWED (both jobs)
    """

    def __init__(self, cpus_per_task=1, partition=None, time=None, mem=None, account=None, extra=()):
        self.cpus_per_task = _count(cpus_per_task, "cpus-per-task")
        self.partition = _word(partition, "partition")
        self.account = _word(account, "account")
        self.time = None if time is None else str(time).strip()
        if self.time is not None and not _TIME_RE.fullmatch(self.time):
            raise ConfigError(f"--time must be a SLURM time such as 30, 2:00:00 or 1-12:00:00, got {time!r}")
        self.mem = None if mem is None else str(mem).strip()
        if self.mem is not None and not _MEM_RE.fullmatch(self.mem):
            raise ConfigError(f"--mem must be a SLURM memory size such as 4000, 4G or 500M, got {mem!r}")
        if isinstance(extra, str):
            extra = [extra]
        #: [(sbatch's full option name, value or None)] of the --sbatch-arg options, in order
        self.extra = [option for arg in extra or () for option in parse_sbatch_arg(arg)]

    def to_dict(self):
        return dict(cpus_per_task=self.cpus_per_task, partition=self.partition, time=self.time,
                    mem=self.mem, account=self.account,
                    extra=[f"--{name}" + ("" if value is None else f"={value}") for name, value in self.extra])

    def sbatch_lines(self, cpus):
        """The ``#SBATCH`` lines of a job with ``cpus`` CPUs."""
        options = [("cpus-per-task", cpus)]
        options += [(opt, getattr(self, opt)) for opt in ("partition", "time", "mem", "account")
                    if getattr(self, opt) is not None]
        return [sbatch_line(name, value) for name, value in options + self.extra]


def _count(value, name):
    from .config import parse_count
    return parse_count(value, name)


def _word(value, name):
    if value is None:
        return None
    text = str(value).strip()
    if not _WORD_RE.fullmatch(text):
        raise ConfigError(f"--{name} must be one word such as 'compute', got {value!r}")
    return text


class Plan:
    """Everything a submission writes and runs; built and validated before anything is written."""

    def __init__(self, output, runs, shards, resources, python=None, threads=None, batch_size=None,
                 overwrite=False, resume=False, ignore_limits=False, remove_parts=False):
        self.output = os.path.abspath(output)
        self.dir = parts_dir(self.output)
        self.runs = runs  # [(name, resolved RunConfig, data)]
        self.shards = shards
        self.resources = resources
        self.python = os.path.abspath(python or sys.executable)
        self.threads = threads or resources.cpus_per_task
        self.batch_size = batch_size
        self.overwrite = overwrite
        self.resume = resume  # keep the shards of an earlier submission of the same plan
        self.ignore_limits = ignore_limits  # the shards run beyond their node's memory or disk
        self.remove_parts = remove_parts    # the merge removes the parts once its file is complete and verified

    @property
    def sweep(self):
        """More than one run: the merged file is a sweep file (one group per run)."""
        return len(self.runs) > 1

    @property
    def tasks(self):
        return len(self.runs) * self.shards

    @property
    def array_path(self):
        return os.path.join(self.dir, "array.sbatch")

    @property
    def merge_path(self):
        return os.path.join(self.dir, "merge.sbatch")

    @property
    def logs(self):
        return os.path.join(self.dir, "logs")

    def config_path(self, name):
        return os.path.join(self.dir, f"{name}.json")

    def part_path(self, name, shard):
        return os.path.join(self.dir, f"{name}.shard-{shard}-of-{self.shards}.h5")

    def task(self, task_id):
        """(run name, shard) of array task ``task_id``: run task // K, shard task % K."""
        if not 0 <= task_id < self.tasks:
            raise ValueError(f"task {task_id} outside 0..{self.tasks - 1}")
        return self.runs[task_id // self.shards][0], task_id % self.shards

    def parts(self):
        """Every part file in task order."""
        return [self.part_path(name, i) for name, _, _ in self.runs for i in range(self.shards)]

    def task_command(self, config, shard, part):
        """The command line of one array task (a list)."""
        cmd = [self.python, "-m", CLI_MODULE, "run", "--config", config, "--shard", f"{shard}/{self.shards}",
               "-o", part, "--resume", "-q", "--threads", str(self.threads)]
        if self.batch_size is not None:
            cmd += ["--batch-size", str(self.batch_size)]
        if self.ignore_limits:
            cmd.append("--ignore-limits")
        return cmd

    def merge_command(self):
        cmd = [self.python, "-m", CLI_MODULE, "merge", *self.parts(), "-o", self.output]
        if self.sweep:
            cmd.append("--sweep")
        if self.overwrite:
            cmd.append("--overwrite")
        if self.remove_parts:
            cmd.append("--remove-parts")
        return cmd

    def to_dict(self):
        return {
            "format": PLAN_FORMAT,
            "mcinit_version": __version__,
            "created": _now(),
            "output": self.output,
            "shards": self.shards,
            "sweep": self.sweep,
            "tasks": self.tasks,
            "python": self.python,
            "threads": self.threads,
            "remove_parts": self.remove_parts,
            "resources": self.resources.to_dict(),
            "runs": [{"name": name, "config": os.path.basename(self.config_path(name)),
                      "config_hash": cfg.config_hash(), "trials": cfg.trials,
                      "parts": [os.path.basename(self.part_path(name, i)) for i in range(self.shards)]}
                     for name, cfg, _ in self.runs],
            "array_script": os.path.basename(self.array_path),
            "merge_script": os.path.basename(self.merge_path),
        }


def run_config_dict(cfg):
    """The keys of ``mcinit run --config`` that rebuild ``cfg`` (same config hash): every
    run option of CONFIG_KEYS, null where not set (a fixed dataset by its path, which the
    jobs read)."""
    return cfg.values()


def make_plan(values, output, shards, resources=None, python=None, threads=None, batch_size=None,
              overwrite=False, resume=False, default_outputs=("mcinit-run.h5", "mcinit-sweep.h5"),
              ignore_limits=False, remove_parts=False):
    """Expand and validate everything (no file is touched); returns a Plan.

    values: the run options (``mcinit.options.collect``); those of ``sweep.SWEEP_KEYS`` may
    list several values, comma-separated, as for a sweep.  output None: default_outputs[0] for
    one run, default_outputs[1] for several.  ignore_limits: the shards run with --ignore-limits;
    remove_parts: the merge removes the parts once its file is complete and verified."""
    from . import sweep as sweep_mod

    shards = _count(shards, "shards")
    resources = resources or Resources()
    if threads is not None:
        threads = _count(threads, "threads")
    if batch_size is not None:
        batch_size = _count(batch_size, "batch-size")
    if resume and overwrite:
        raise ConfigError("give --resume (continue an earlier submission) or --overwrite (start again), not both")
    runs = sweep_mod.expand(values)
    for name, cfg, _ in runs:
        if shards > cfg.trials:
            raise ConfigError(f"{shards} shards need at least {shards} trials; run {name} has {cfg.trials}")
        if os.sep in name or name.startswith("."):
            raise ConfigError(f"run name {name!r} cannot be a file name")
    if output is None:
        output = default_outputs[len(runs) > 1]
    return Plan(output, runs, shards, resources, python=python, threads=threads, batch_size=batch_size,
                overwrite=overwrite, resume=resume, ignore_limits=ignore_limits, remove_parts=remove_parts)


def disk_text(plan):
    """The disk a submission needs, in words: its part files, its merged file, and what the
    output's directory has free (mcinit.limits: submission_bytes, free_disk)."""
    from .limits import free_disk, human_bytes, submission_bytes
    parts, merged = submission_bytes([cfg for _, cfg, _ in plan.runs], plan.shards)
    free = free_disk(plan.output)
    text = (f"disk: {human_bytes(parts)} of part files plus {human_bytes(merged)} merged, "
            f"{human_bytes(parts + merged)} in all while the merge runs")
    if free is not None:
        text += f" ({os.path.dirname(plan.output)} has {human_bytes(free)} free)"
    if plan.remove_parts:
        return text + f"; the merge then removes the part files (--remove-parts), leaving {human_bytes(merged)}"
    return text + "; --remove-parts has the merge remove the part files once its file is complete and verified"


def load_jobs(directory):
    """The SLURM job ids of a submission (its jobs.json): {} when none was submitted.

    {array: id, merge: id, submitted: time}; a jobs.json that is not such a record is a
    SlurmError (one line), never a traceback."""
    path = os.path.join(directory, "jobs.json")
    if not os.path.lexists(path):
        return {}
    jobs = _read_json(path)
    if not isinstance(jobs, dict):
        raise SlurmError(f"{path} is not a record of mcinit submit's jobs (not a JSON object)")
    for key in ("array", "merge"):
        job = jobs.get(key)
        if job is None:
            continue
        if isinstance(job, bool) or not isinstance(job, (str, int)) or not re.fullmatch(r"[0-9]{1,20}", str(job)):
            raise SlurmError(f"{path} is not a record of mcinit submit's jobs: its {key} job id is {job!r}")
        jobs[key] = str(job)
    return jobs


def check_paths(plan):
    """Refuse paths a batch script cannot hold (a newline, carriage return or NUL ends a line
    for sbatch and bash), names that are not text, and a submission directory that SLURM
    cannot put log files in by pattern (a backslash), before any file is written."""
    names = [("output", plan.output), ("python interpreter", plan.python)]
    names += [("run name", name) for name, _, _ in plan.runs]
    for what, path in names:
        if not isinstance(path, str):
            raise SlurmError(f"{what} {path!r} is not a path")
        if any(c in path for c in "\n\r\0"):
            raise SlurmError(f"{what} {path!r} contains a newline, carriage return or NUL; "
                             f"mcinit submit cannot write it into a batch script")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise SlurmError(f"{what} {path!r} is not valid UTF-8; mcinit submit cannot write it "
                             f"into a batch script") from None
    if "\\" in plan.dir:
        raise SlurmError(f"output {plan.output!r} has a backslash in its path; SLURM cannot name the "
                         f"jobs' log files under it (a backslash turns off its %-patterns)")


def check_destination(plan, dry_run=False):
    """Refuse what cannot be written, before any work: a path a script cannot hold, an existing
    output without overwrite, and an existing submission directory without overwrite or (for
    the same runs and shards) resume.  A dry run changes no existing file: it refuses an
    existing submission directory whatever the options."""
    check_paths(plan)
    check_output(plan.output, plan.overwrite)
    d = plan.dir
    if os.path.lexists(d):
        if not os.path.isdir(d) or os.path.islink(d):
            raise SlurmError(f"{d} exists and is not a directory made by mcinit submit")
        if dry_run:
            raise SlurmError(f"{d} exists (an earlier submit); a dry run writes only into a new directory "
                             f"and changes no existing file: choose another -o")
        if not (plan.overwrite or plan.resume):
            raise SlurmError(f"{d} exists (an earlier submit); pass --resume to continue it "
                             f"or --overwrite to start again")
        if os.listdir(d) and not os.path.exists(os.path.join(d, "plan.json")):
            raise SlurmError(f"{d} exists and was not made by mcinit submit; remove it yourself")
        if plan.resume:
            try:
                old = load_plan(plan.output)
            except SlurmError:
                old = None
            now = plan.to_dict()
            key = lambda p: (p["shards"], [(r["name"], r["config_hash"]) for r in p["runs"]])
            if old is None or key(old) != key(now):
                raise SlurmError(f"the earlier submission in {d} has other runs or shards; "
                                 f"pass --overwrite to start again")
        jobs = load_jobs(d)
        ids = [jobs[k] for k in ("array", "merge") if jobs.get(k)]
        if ids:
            names = set(job_names(plan.output))  # job ids are reused after a controller restart
            live = [job for job, state in job_states(ids).items()
                    if state.get("state") and state["state"] not in _FINAL_STATES
                    and state.get("name") in names]
            if live:
                raise SlurmError(f"jobs {', '.join(sorted(set(j.split('_')[0] for j in live)))} of the earlier "
                                 f"submit to {plan.output} are still queued or running; scancel them first")


def _bash_array(name, items):
    return [f"{name}=("] + [f"  {shlex.quote(x)}" for x in items] + [")"]


def job_names(output):
    """The SLURM job names of the array and the merge of a submission for ``output``: from
    the output's file name, with every character but letters, digits and ``._+-`` as ``_``."""
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", os.path.basename(output))
    return f"mcinit-{base}", f"mcinit-merge-{base}"


def log_pattern(directory, name):
    """sbatch's --output for log file ``name`` (a SLURM filename pattern such as
    ``slurm-%A_%a.out``) in ``directory``: SLURM expands %-patterns in the whole path, so each
    ``%`` of the directory is written ``%%``.  (A backslash anywhere in the path turns the
    patterns off altogether; check_paths refuses such paths.)"""
    return os.path.join(directory.replace("%", "%%"), name)


def job_options(plan, job):
    """[(sbatch option, value)] that mcinit sets itself for ``job`` ("array" or "merge").

    They are written into the script and given again on sbatch's command line at submission
    (where they win over SBATCH_* variables of the environment)."""
    array_name, merge_name = job_names(plan.output)
    if job == "array":
        return [("job-name", array_name), ("array", f"0-{plan.tasks - 1}"), ("chdir", plan.dir),
                ("output", log_pattern(plan.logs, "slurm-%A_%a.out")), ("open-mode", "append")]
    if job == "merge":
        return [("job-name", merge_name), ("chdir", plan.dir), ("output", log_pattern(plan.logs, "merge-%j.out")),
                ("open-mode", "append")]
    raise ValueError(f"job must be 'array' or 'merge', got {job!r}")


def sbatch_command(plan, job, sbatch="sbatch", dependency=None):
    """The sbatch command line (a list) that submits ``job`` ("array" or "merge"); the merge
    with afterok on array job ``dependency``."""
    cmd = [sbatch] + [f"--{name}={value}" for name, value in job_options(plan, job)]
    if dependency is not None:
        cmd += [f"--dependency=afterok:{dependency}", "--kill-on-invalid-dep=yes"]
    return cmd + [plan.array_path if job == "array" else plan.merge_path]


def _header(plan, job, cpus):
    return (["#!/bin/bash"] + [sbatch_line(name, value) for name, value in job_options(plan, job)]
            + plan.resources.sbatch_lines(cpus))


def array_script(plan):
    """The job array: task t = r*K + I runs shard I/K of run r with ``mcinit run --resume``.

    Every path is one shell word in single quotes (shlex.quote); the task's config, shard and
    part are shell variables the script sets from SLURM_ARRAY_TASK_ID."""
    K = plan.shards
    cmd = plan.task_command("$CONFIG", "$SHARD", "$PART")
    variables = {"$CONFIG": '"$CONFIG"', f"$SHARD/{K}": f'"$SHARD/{K}"', "$PART": '"$PART"'}
    cmd_text = " ".join([shlex.quote(cmd[0])] + [variables.get(c, shlex.quote(c)) for c in cmd[1:]])
    lines = _header(plan, "array", plan.resources.cpus_per_task)
    lines += [
        f"# Written by mcinit {__version__} (mcinit submit) for {plan.output}:",
        f"# {len(plan.runs)} run(s) x {K} shard(s); array task t runs shard t % {K} of run t / {K},",
        "# into <run>.shard-<shard>-of-<K>.h5 beside this script.  --resume: a requeued task",
        "# continues its shard where it stopped.",
        "set -euo pipefail",
        f"K={K}",
    ]
    lines += _bash_array("CONFIGS", [plan.config_path(name) for name, _, _ in plan.runs])
    lines += [
        'TASK="${SLURM_ARRAY_TASK_ID:?run this script with sbatch (a job array task)}"',
        f'if (( TASK < 0 || TASK >= {plan.tasks} )); then echo "mcinit: task $TASK outside 0-{plan.tasks - 1}" >&2; exit 2; fi',
        "RUN=$(( TASK / K ))",
        "SHARD=$(( TASK % K ))",
        'CONFIG="${CONFIGS[$RUN]}"',
        'PART="${CONFIG%.json}.shard-$SHARD-of-$K.h5"',
        f"export OMP_NUM_THREADS={plan.threads} OPENBLAS_NUM_THREADS={plan.threads} MKL_NUM_THREADS={plan.threads}",
        'echo "mcinit task $TASK: shard $SHARD/$K of $(basename "$CONFIG" .json) on $(hostname) at $(date)"',
        f"exec {cmd_text}",
    ]
    return "\n".join(lines) + "\n"


def merge_script(plan):
    """The merge job: ``mcinit merge`` of every part into the output (submitted afterok the array)."""
    lines = _header(plan, "merge", 1)
    lines += [
        f"# Written by mcinit {__version__} (mcinit submit): merges the {plan.tasks} part(s) of",
        f"# array.sbatch into {plan.output}; submitted with --dependency=afterok:<array job>.",
        "set -euo pipefail",
        f"OUTPUT={shlex.quote(plan.output)}",
        'echo "mcinit merge into $OUTPUT on $(hostname) at $(date)"',
    ]
    cmd = plan.merge_command()
    i = cmd.index("merge") + 1
    head = " ".join(shlex.quote(c) for c in cmd[:i])
    tail = " ".join('"$OUTPUT"' if c == plan.output else shlex.quote(c) for c in cmd[i + len(plan.parts()):])
    lines.append(f"exec {head} \\")
    lines += [f"  {shlex.quote(p)} \\" for p in plan.parts()]
    lines.append(f"  {tail}")
    return "\n".join(lines) + "\n"


def write_plan(plan):
    """Create the submission directory: configs, scripts, plan.json, logs/.

    A plan that overwrites an earlier submission (check_destination has been called) is
    written into a new directory beside it, which then takes the earlier one's place; the
    earlier one is kept aside (``plan.replaced``) until ``keep_plan`` (the array is queued)
    or ``discard_plan`` (nothing was submitted: the earlier one comes back)."""
    check_paths(plan)
    d = plan.dir
    plan.replaced = None
    if plan.overwrite and os.path.isdir(d):
        parent, base = os.path.split(d)
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        stage, aside = os.path.join(parent, f".{base}.new-{tag}"), os.path.join(parent, f".{base}.old-{tag}")
        os.mkdir(stage)
        try:
            _write_files(plan, stage)
            os.rename(d, aside)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        try:
            os.rename(stage, d)
        except BaseException:
            os.rename(aside, d)
            shutil.rmtree(stage, ignore_errors=True)
            raise
        plan.replaced = aside
        return d
    fresh = not (plan.resume and os.path.isdir(d))
    if fresh:
        try:
            os.mkdir(d)
        except FileExistsError:
            raise SlurmError(f"{d} appeared while mcinit submit was writing it (another submit to "
                             f"{plan.output}?); nothing was written") from None
    try:
        _write_files(plan, d)
    except BaseException:
        if fresh:
            shutil.rmtree(d, ignore_errors=True)
        raise
    return d


def _write_files(plan, d):
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    for name, cfg, _ in plan.runs:
        _write_text(os.path.join(d, os.path.basename(plan.config_path(name))),
                    json.dumps(run_config_dict(cfg), indent=1) + "\n")
    _write_text(os.path.join(d, os.path.basename(plan.array_path)), array_script(plan), mode=0o755)
    _write_text(os.path.join(d, os.path.basename(plan.merge_path)), merge_script(plan), mode=0o755)
    _write_text(os.path.join(d, "plan.json"), json.dumps(plan.to_dict(), indent=1) + "\n")


def keep_plan(plan):
    """The array is queued: remove the earlier submission that write_plan put aside."""
    aside = getattr(plan, "replaced", None)
    if aside:
        shutil.rmtree(aside, ignore_errors=True)
        plan.replaced = None


def discard_plan(plan):
    """Nothing was submitted: remove what write_plan wrote and bring back the earlier
    submission it replaced (with --resume, the directory was the earlier one: it stays)."""
    if plan.resume:
        return
    aside = getattr(plan, "replaced", None)
    shutil.rmtree(plan.dir, ignore_errors=True)
    if aside:
        os.rename(aside, plan.dir)
        plan.replaced = None


def _write_text(path, text, mode=0o644):
    """Write ``path`` whole: into a new temporary file beside it (never through a link or
    into a file that is there), then renamed over it."""
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: plan.json and jobs.json are a few kB; anything far larger was not written by mcinit submit
_JSON_LIMIT = 64 << 20


def _read_json(path):
    """The JSON value in the regular file ``path``; SlurmError (one line) for anything else
    (a FIFO or device would block or never end, a huge file fill the memory)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise SlurmError(f"cannot read {path}: not a regular file")
        if st.st_size > _JSON_LIMIT:
            raise SlurmError(f"cannot read {path}: {st.st_size} bytes is not a file mcinit submit wrote")
        with open(path, "rb") as f:
            return json.loads(f.read(_JSON_LIMIT + 1).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise SlurmError(f"cannot read {path}: {_first_line(str(e)) or type(e).__name__}") from None


def _is_count(value, least=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_plan(plan, path):
    """Raise SlurmError naming the first field of a plan.json that mcinit submit did not write so."""
    def bad(why):
        return SlurmError(f"{path} is not a plan written by mcinit submit: {why}")

    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise SlurmError(f"{path} is not a plan written by mcinit submit")
    K = plan.get("shards")
    if not _is_count(K, 1):
        raise bad(f"shards is {K!r}")
    runs = plan.get("runs")
    if not isinstance(runs, list) or not runs:
        raise bad("runs is not a list of runs")
    names = set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise bad(f"run {i} is not an object")
        name = run.get("name")
        if (not isinstance(name, str) or not name or name.startswith(".") or os.sep in name
                or any(c in name for c in "\n\r\0") or name in names):
            raise bad(f"run {i} has the name {name!r}")
        names.add(name)
        if not _is_count(run.get("trials"), K):
            raise bad(f"run {name} has {run.get('trials')!r} trials (at least {K}, one per shard)")
        if not isinstance(run.get("config_hash"), str):
            raise bad(f"run {name} has no config_hash")
        if run.get("config") != f"{name}.json":
            raise bad(f"run {name} names the config {run.get('config')!r}")
        if run.get("parts") != [f"{name}.shard-{s}-of-{K}.h5" for s in range(K)]:
            raise bad(f"run {name} does not list its {K} part files")
    if "sweep" in plan and plan["sweep"] is not (len(runs) > 1):
        raise bad(f"sweep is {plan['sweep']!r} for {len(runs)} run(s)")
    if "tasks" in plan and plan["tasks"] != len(runs) * K:
        raise bad(f"tasks is {plan['tasks']!r}, not {len(runs)} x {K}")
    if not isinstance(plan.get("output"), str):
        raise bad("output is not a path")


def load_plan(output):
    """The plan.json of the submission for ``output`` (a dict), its fields checked: a file
    that is not such a plan is a SlurmError naming what is wrong."""
    d = parts_dir(output)
    path = os.path.join(d, "plan.json")
    if any(c in path for c in "\n\r\0"):
        raise SlurmError(f"no submission for {output!r}: mcinit submit writes no path with a newline, "
                         f"carriage return or NUL")
    if not os.path.lexists(path):
        raise SlurmError(f"no submission for {output}: {path} does not exist")
    plan = _read_json(path)
    _check_plan(plan, path)
    plan["dir"] = d
    return plan


# -- SLURM ---------------------------------------------------------------------------


def _tool(name):
    return shutil.which(name)


def find_sbatch():
    path = _tool("sbatch")
    if path is None:
        raise SlurmError("sbatch not found on PATH: is this a SLURM login node? "
                         "(--dry-run writes the scripts without submitting)")
    return path


def _slurm(cmd, timeout=60):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{os.path.basename(cmd[0])} did not answer within {timeout} s") from None
    return p


def _first_line(text):
    lines = [s.strip() for s in (text or "").splitlines() if s.strip()]
    return lines[0] if lines else ""


def _sbatch(cmd):
    """Run the sbatch command line ``cmd`` (a list; its last word the script); the job id."""
    args = cmd[1:]
    p = _slurm(cmd)
    if p.returncode != 0:
        msg = _first_line(p.stderr) or _first_line(p.stdout) or f"exit status {p.returncode}"
        msg = re.sub(r"^sbatch: error: ", "", msg)
        raise SlurmError(f"sbatch {os.path.basename(args[-1])} failed: {msg}")
    m = re.search(r"Submitted batch job (\d+)", p.stdout) or re.match(r"\s*(\d+)", p.stdout)
    if not m:
        raise SlurmError(f"cannot read a job id from sbatch's answer: {_first_line(p.stdout)!r}")
    return m.group(1)


def submit(plan, sbatch=None):
    """sbatch the array, then the merge with afterok on it; records and returns the job ids.

    With overwrite, the earlier submission (put aside by write_plan) and an existing output
    are removed once the array is queued (the merge writes it anew, and status must not take the old one for it).  If the merge cannot
    be submitted, the array is cancelled (where scancel exists)."""
    sbatch = sbatch or find_sbatch()
    array_id = _sbatch(sbatch_command(plan, "array", sbatch))
    keep_plan(plan)
    if plan.overwrite and os.path.isfile(plan.output):
        os.remove(plan.output)
    jobs = {"array": array_id, "submitted": _now()}
    _write_text(os.path.join(plan.dir, "jobs.json"), json.dumps(jobs, indent=1) + "\n")
    try:
        merge_id = _sbatch(sbatch_command(plan, "merge", sbatch, dependency=array_id))
    except SlurmError as e:
        scancel = _tool("scancel")
        if scancel:
            _slurm([scancel, array_id])
            raise SlurmError(f"{e} (array job {array_id} cancelled)") from None
        raise SlurmError(f"{e} (array job {array_id} is queued without its merge)") from None
    jobs["merge"] = merge_id
    _write_text(os.path.join(plan.dir, "jobs.json"), json.dumps(jobs, indent=1) + "\n")
    return jobs


def _scontrol_fields(line):
    return dict(re.findall(r"(\w+)=(\S*)", line))


def _task_ids(spec):
    """[0, 1, 2, 5] from '0-2,5' (a '%N' limit and brackets dropped)."""
    ids = []
    for part in spec.split("%")[0].strip("[]").split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            ids.extend(range(int(lo), int(hi or lo) + 1))
    return ids


def job_states(job_ids):
    """{job id (``123`` or ``123_4`` for an array task): {state, exit_code, reason}} of the jobs
    SLURM still knows (scontrol, else squeue); {} without SLURM."""
    out = {}
    ids = [str(j) for j in job_ids if j]
    if not ids:
        return out
    scontrol = _tool("scontrol")
    if scontrol:
        for job in ids:
            p = _slurm([scontrol, "show", "job", "-o", job], timeout=30)
            if p.returncode != 0:
                continue
            for line in p.stdout.splitlines():
                f = _scontrol_fields(line)
                if "JobState" not in f:
                    continue
                keys = [f.get("JobId", job)]
                if f.get("ArrayJobId") and f.get("ArrayTaskId") not in (None, "", "(null)"):
                    # a pending rest of an array is one record: ArrayTaskId=2-7 (or 1,3-5%2)
                    keys = [f"{f['ArrayJobId']}_{t}" for t in _task_ids(f["ArrayTaskId"])]
                code, _, sig = f.get("ExitCode", "0:0").partition(":")
                for key in keys:
                    out[key] = dict(state=f["JobState"], exit_code=int(code or 0), signal=int(sig or 0),
                                    reason=f.get("Reason", ""), name=f.get("JobName", ""))
        if out:
            return out
    squeue = _tool("squeue")
    if squeue:
        p = _slurm([squeue, "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%r|%j"], timeout=30)
        if p.returncode == 0:
            for line in p.stdout.splitlines():
                parts = line.strip().split("|", 3)
                if len(parts) == 4:
                    out[parts[0]] = dict(state=parts[1], exit_code=None, signal=None, reason=parts[2],
                                         name=parts[3])
    return out


def _exit_status(info):
    if info["state"] == "COMPLETED":
        return 0
    if info.get("exit_code"):
        return info["exit_code"]
    if info.get("signal"):
        return 128 + info["signal"]
    return 1


def wait_for_job(job_id, output=None, poll=0.5, max_poll=5.0, timeout=None):
    """Wait until the job leaves the queue; returns (exit status, final state).

    The state comes from scontrol (state and exit code); without it, from squeue (the
    job is done when squeue no longer lists it) and the exit status is then 0 when
    ``output`` exists."""
    start = time.monotonic()
    seen = False
    last = None
    while True:
        states = job_states([job_id])
        info = states.get(str(job_id))
        if info is not None:
            seen = True
            last = info
            if info["state"] in _FINAL_STATES and info.get("exit_code") is not None:
                return _exit_status(info), info["state"]
        elif seen or time.monotonic() - start > (120 if _tool("scontrol") else 10):
            # gone from the queue (purged, or squeue only), or never shown at all
            if last is not None and last["state"] in _FINAL_STATES and last.get("exit_code") is not None:
                return _exit_status(last), last["state"]
            ok = output is not None and os.path.exists(output)
            return (0 if ok else 1), ("COMPLETED" if ok else "UNKNOWN")
        if timeout is not None and time.monotonic() - start > timeout:
            raise SlurmError(f"job {job_id} still not finished after {timeout} s")
        time.sleep(poll)
        poll = min(poll * 1.5, max_poll)


# -- status --------------------------------------------------------------------------


def _read_part(path):
    """(completed, config_hash, None) of a part file, or (None, None, why): it is missing,
    or the reader refuses it (damaged, foreign; a part is created whole, so a file that
    exists is never half made)."""
    from .reader import read_file
    if not os.path.lexists(path):
        return None, None, "missing"
    try:
        info = read_file(path)
    except StoreError as e:
        return None, None, f"unreadable ({_first_line(str(e)).replace(path, 'file')[:80]})"
    if info.kind != "run":
        return None, None, "unreadable (a sweep file)"
    return info.runs[0].completed, info.runs[0].config_hash, None


def _read_merged(path, plan):
    """Whether the merged output exists, can be read, and holds the plan's runs complete."""
    from .reader import read_file
    if not os.path.lexists(path):
        return {"exists": False}
    try:
        info = read_file(path)
    except StoreError as e:
        return {"exists": True, "readable": False, "why": _first_line(str(e))[:120]}
    if info.kind == "sweep":
        runs = {r.name: r for r in info.runs}
    else:
        runs = {(plan["runs"][0]["name"] if plan["runs"] else ""): info.runs[0]}
    completed = {n: r.completed for n, r in runs.items()}
    want = {r["name"]: (r["config_hash"], r["trials"]) for r in plan["runs"]}
    matches = set(runs) == set(want) and all(
        runs[n].config_hash == want[n][0] and completed[n] == want[n][1] for n in want)
    return {"exists": True, "readable": True, "complete": matches, "completed": completed}


def read_status(output):
    """The progress of the submission for ``output`` from its files (and SLURM when at hand).

    {output, dir, shards, sweep, runs: [{name, trials, shards: [{shard, first, stop, planned,
    completed, state, part, job}]}], completed, planned, shards_done, shards_total,
    merged: {exists, complete, ...}, jobs: {array, merge}, slurm: {job id: {state, ...}} }"""
    output = os.path.abspath(output)
    plan = load_plan(output)
    d = plan["dir"]
    K = int(plan["shards"])
    jobs = load_jobs(d)
    slurm = job_states([jobs.get("array"), jobs.get("merge")]) if jobs else {}
    runs = []
    done = total = completed_all = planned_all = 0
    merged = _read_merged(output, plan)
    removed = bool(plan.get("remove_parts")) and merged.get("complete")   # parts the merge removed
    for r, run in enumerate(plan["runs"]):
        shards = []
        for i in range(K):
            first, stop = shard_range(int(run["trials"]), i, K)
            planned = stop - first
            part = os.path.join(d, run["parts"][i])
            completed, chash, why = _read_part(part)
            if why == "missing" and removed:
                state, completed = "done", planned
            elif why:
                state = why
            elif chash is not None and run.get("config_hash") and str(chash) != run["config_hash"]:
                state, completed = "other configuration", 0
            elif completed >= planned:
                state = "done"
            else:
                state = "running" if completed > 0 else "started"
            job = f"{jobs['array']}_{r * K + i}" if jobs.get("array") else None
            shards.append(dict(shard=i, first=first, stop=stop, planned=planned,
                               completed=completed or 0, state=state, part=part, job=job,
                               slurm=slurm.get(job, {}).get("state") if job else None))
            done += state == "done"
            total += 1
            completed_all += min(completed or 0, planned)
            planned_all += planned
        runs.append(dict(name=run["name"], trials=int(run["trials"]), shards=shards))
    return dict(output=output, dir=d, shards=K, sweep=bool(plan.get("sweep")), runs=runs,
                completed=completed_all, planned=planned_all, shards_done=done, shards_total=total,
                merged=merged, jobs=jobs, slurm=slurm,
                slurm_available=_tool("squeue") is not None or _tool("scontrol") is not None)


#: SLURM states of an array task that ended without finishing its shard
_FAILED_SLURM = _FINAL_STATES - {"COMPLETED"}
#: the groups of shards of the compact status, in order
SHARD_GROUPS = ("done", "running", "missing", "failed")
#: runs named per group in the compact status (the others are counted)
_RUNS_SHOWN = 6


def ranges(numbers):
    """Sorted whole numbers as compact text: [0, 1, 2, 3, 7, 9, 10] -> '0-3,7,9-10'."""
    out = []
    for n in sorted(numbers):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def shard_groups(st):
    """The shards of a read_status in the groups of SHARD_GROUPS: {group: [{run, shards,
    ranges, detail}]}, one entry per run (and, for failed shards, per reason: detail);
    running: started or running and not failed by SLURM; failed: unreadable, another
    configuration, or an array task SLURM ended otherwise than COMPLETED before its shard was done."""
    groups = {g: {} for g in SHARD_GROUPS}
    for r in st["runs"]:
        for s in r["shards"]:
            state, detail = s["state"], None
            if state == "done":
                group = "done"
            elif s.get("slurm") in _FAILED_SLURM:
                group, detail = "failed", f"{state}, slurm {s['slurm']}"
            elif state in ("running", "started"):
                group = "running"
            elif state == "missing":
                group = "missing"
            else:
                group, detail = "failed", state
            groups[group].setdefault((r["name"], detail), []).append(s["shard"])
    return {g: [dict(run=run, shards=shards, ranges=ranges(shards), detail=detail)
                for (run, detail), shards in entries.items()] for g, entries in groups.items()}


def _group_line(name, entries):
    count = sum(len(e["shards"]) for e in entries)
    shown = [f"{e['run']}: {e['ranges']}" + (f" {e['detail']}" if e["detail"] else "") for e in entries[:_RUNS_SHOWN]]
    if len(entries) > _RUNS_SHOWN:
        shown.append(f"... and {len(entries) - _RUNS_SHOWN} more (--shards lists every shard)")
    return f"  {name:<8} {count:>5}" + (f"  {'; '.join(shown)}" if shown else "")


def format_status(st, shards=False):
    """The lines ``mcinit status`` prints: a few summary lines, the shards grouped as done,
    running, missing and failed with their numbers as ranges; shards=True: one line per shard."""
    nruns = len(st["runs"])
    lines = [f"{st['output']}: {nruns} run{'s' if nruns != 1 else ''} x {st['shards']} shard"
             f"{'s' if st['shards'] != 1 else ''} ({st['dir']})"]
    if shards:
        lines += _shard_lines(st)
    pct = 100.0 * st["completed"] / st["planned"] if st["planned"] else 100.0
    lines.append(f"shards: {st['shards_done']}/{st['shards_total']} complete; "
                 f"trials: {st['completed']}/{st['planned']} ({pct:.1f}%)")
    if not shards:
        lines += [_group_line(g, entries) for g, entries in shard_groups(st).items()]
    m = st["merged"]
    if not m["exists"]:
        lines.append(f"merged: {st['output']} not written yet")
    elif not m.get("readable", True):
        lines.append(f"merged: {st['output']} exists but cannot be read ({m.get('why', '')})")
    elif m.get("complete"):
        lines.append(f"merged: {st['output']} complete")
    else:
        lines.append(f"merged: {st['output']} exists but does not hold this submission's complete runs")
    jobs = st["jobs"]
    if jobs:
        parts = []
        for kind in ("array", "merge"):
            job = jobs.get(kind)
            if not job:
                continue
            if kind == "array":
                tasks = {k: v for k, v in st["slurm"].items() if k == job or k.startswith(job + "_")}
                counts = {}
                for v in tasks.values():
                    counts[v["state"]] = counts.get(v["state"], 0) + 1
                desc = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if counts else None
            else:
                v = st["slurm"].get(job)
                desc = None if v is None else v["state"] + (f" ({v['reason']})" if v.get("reason") not in
                                                             (None, "", "None") else "")
            if desc is None:
                desc = "not known to SLURM (finished and purged)" if st["slurm_available"] else "SLURM not at hand"
            parts.append(f"{kind} job {job}: {desc}")
        lines.append("slurm: " + "; ".join(parts))
    else:
        lines.append("slurm: not submitted (dry run?)")
    return lines


def _shard_lines(st):
    """One line per shard (mcinit status --shards): run, shard, trial range, completed, state, SLURM state."""
    width = max([len(r["name"]) for r in st["runs"]] + [3])
    show_slurm = bool(st["slurm"])
    head = f"  {'run':<{width}}  {'shard':>7}  {'trials':>21}  {'completed':>21}  state"
    if show_slurm:
        head += "               slurm"
    lines = [head]
    for r in st["runs"]:
        for s in r["shards"]:
            trials = f"{s['first']}-{s['stop'] - 1}" if s["planned"] else "-"
            row = (f"  {r['name']:<{width}}  {str(s['shard']) + '/' + str(st['shards']):>7}  {trials:>21}  "
                   f"{str(s['completed']) + '/' + str(s['planned']):>21}  {s['state']:<19}")
            if show_slurm:
                row += f" {s['slurm'] or '-'}"
            lines.append(row.rstrip())
    return lines
