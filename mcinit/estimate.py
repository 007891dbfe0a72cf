"""What a run will take, said before it runs: the kernel and why, the time on this machine,
the size of its file (``mcinit run --dry-run``, ``mcinit sweep --dry-run``).

    cal = estimate.calibrate(config, data)          # measured here, or read from the cache
    seconds = estimate.trial_seconds(config, cal) * config.trials

Time.  ``kernels.cost`` estimates one trial's seconds on one thread from the network's
shape, with constants fitted on one machine.  A calibration measures this machine: a short
run, in memory, of the configuration itself with a few trials (about CALIBRATION_SECONDS of
them by the model, stopped after three times that; a first run of one trial compiles the
kernels or loads them from numba's cache), at the run's thread count.  Its ratio of measured to modelled
seconds per trial then scales the model for every configuration of the same shape class
(``shape_class``: the kernel, precision, properties, backend, threads, and the inputs,
widest layer, depth and classes rounded up to powers of two).  Calibrations are cached in
``calibration.json`` in mcinit's user cache directory (platformdirs, as numba's cache:
mcinit._cache_guard), keyed by machine, mcinit version and shape class; a configuration
whose single trial the model puts above MAX_CALIBRATION_TRIAL seconds is not calibrated
(the model alone is said to be used).
"""

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import time

from . import kernels
from ._version import __version__

__all__ = ["Calibration", "calibrate", "kernel_lines", "time_line", "shape_class", "machine", "cpu_model", "cache_path", "trial_seconds",
           "model_seconds", "human_seconds", "approx_seconds", "CALIBRATION_SECONDS", "MAX_CALIBRATION_TRIAL"]

#: seconds of trials a calibration times (after the startup)
CALIBRATION_SECONDS = 1.0
#: a configuration whose trial the model puts above this many seconds is not calibrated
MAX_CALIBRATION_TRIAL = 2.0
#: the cache's file in mcinit's cache directory
CACHE_NAME = "calibration.json"


@dataclasses.dataclass
class Calibration:
    """A measured ratio of seconds per trial to the cost model's, for a shape class.

    ratio      measured / modelled seconds per trial (None: not calibrated; the model alone)
    trials     trials the calibration timed
    seconds    seconds they took
    startup    seconds it spent compiling or loading the kernels (RunResult.startup)
    threads    the thread count it ran at
    fresh      measured now (False: read from the cache)
    key        the cache's key (machine, version, shape class)
    when       when it was measured (ISO time)
    why        why there is no ratio (ratio None)
    """

    ratio: float
    trials: int = 0
    seconds: float = 0.0
    startup: float = 0.0
    threads: int = 1
    fresh: bool = True
    key: str = ""
    when: str = ""
    why: str = ""

    def describe(self):
        """One clause: where the estimate comes from."""
        if self.ratio is None:
            return f"from the cost model alone, not calibrated ({self.why})"
        what = (f"{self.trials:,} trials in {human_seconds(self.seconds)} at {self.threads} thread"
                f"{'s' if self.threads != 1 else ''}")
        if self.fresh:
            start = f", after {human_seconds(self.startup)} compiling or loading the kernels" if self.startup else ""
            return f"from a fresh calibration on this machine ({what}{start})"
        return f"from a cached calibration on this machine ({what}, measured {self.when})"


def _power(n):
    """n rounded up to a power of two."""
    return 1 << max(0, int(n) - 1).bit_length()


def shape_class(config, threads=1, backend="cpu"):
    """The shape class of a resolved configuration: the configurations one calibration serves."""
    return (f"{config.kernel}-{config.precision}-{config.properties}-{backend}-t{int(threads)}"
            f"-n{_power(config.samples)}-w{_power(max(config.all_widths))}-d{_power(config.depth)}"
            f"-k{_power(config.head[1])}" + ("-sup" if config.sup else ""))


def cpu_model():
    """The processor's name (/proc/cpuinfo's model name where there is one)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine():
    """This machine, for the cache's key: its name, processor and the cores this process may use."""
    from .engine import usable_cores
    text = f"{platform.node()}|{cpu_model()}|{usable_cores()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path():
    """The calibrations' file in mcinit's user cache directory (None where there is none)."""
    from ._cache_guard import mcinit_cache
    root = mcinit_cache()
    return None if root is None else os.path.join(root, CACHE_NAME)


def _read_cache(path):
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _write_cache(path, key, entry):
    """Add one entry to the cache, whole or not at all (a cache that cannot be written is none)."""
    if path is None:
        return
    d = _read_cache(path)
    d[key] = entry
    tmp = f"{path}.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass


def model_seconds(config):
    """The cost model's seconds of one trial of a resolved configuration on one thread."""
    return kernels.cost(config.kernel, config.all_widths, config.samples, config.head[1], config.precision,
                        config.properties != "forward", config.activation, config.init == "orthogonal")


def trial_seconds(config, calibration):
    """Estimated wall seconds per trial of ``config`` at the calibration's thread count."""
    model = model_seconds(config)
    if calibration.ratio is None:
        return model / max(1, calibration.threads)
    return model * calibration.ratio


def calibrate(config, data=None, threads=None, backend="cpu", refresh=False):
    """The Calibration of ``config``'s shape class on this machine: from the cache, or
    measured now by a short in-memory run of ``config`` (and then cached).

    config   a resolved RunConfig; data its fixed dataset (None: none, or read)
    threads  the thread count (numba's current one when None); backend cpu | cuda
    refresh  measure even when the cache holds the class"""
    from numba import get_num_threads

    from . import engine
    if threads is not None:
        engine.set_threads(threads)
    threads = get_num_threads()
    key = f"{machine()}|mcinit {__version__}|{shape_class(config, threads, backend)}"
    path = cache_path()
    entry = None if refresh else _read_cache(path).get(key)
    if isinstance(entry, dict):
        try:
            return Calibration(ratio=float(entry["ratio"]), trials=int(entry["trials"]),
                               seconds=float(entry["seconds"]), startup=float(entry["startup"]),
                               threads=int(entry["threads"]), fresh=False, key=key, when=str(entry["when"]))
        except (KeyError, TypeError, ValueError):
            pass        # an entry of another form: measured again
    model = model_seconds(config)
    if model > MAX_CALIBRATION_TRIAL:
        return Calibration(ratio=None, threads=threads, key=key,
                           why=f"the model puts one trial at {human_seconds(model)} on one thread")
    from .limits import trial_bytes
    most = max(3, min(1 << 18, (64 << 20) // trial_bytes(config)))     # records held in memory: 64 MiB at most
    n = int(min(max(3, 2 * threads + 1, 1 + CALIBRATION_SECONDS * threads / max(model, 1e-9)), most))
    # one trial first: compiling the kernels or loading them is timed apart (RunResult.startup)
    startup = engine.run(dataclasses.replace(config, trials=1), data, backend=backend).elapsed
    deadline = time.perf_counter() + 3 * CALIBRATION_SECONDS      # where the model is far off
    try:
        result = engine.run(dataclasses.replace(config, trials=n), data, backend=backend, batch_size=max(1, n // 16),
                            stop_requested=lambda: time.perf_counter() > deadline)
    except engine.Stopped as e:
        result = e.result
    n, measured = result.computed, result.elapsed - result.startup
    ratio = (measured / n) / max(model, 1e-12)
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write_cache(path, key, dict(ratio=ratio, trials=n, seconds=measured, startup=startup,
                                 threads=threads, when=when))
    return Calibration(ratio=ratio, trials=n, seconds=measured, startup=startup, threads=threads,
                       fresh=True, key=key, when=when)


def human_seconds(x):
    """'0.35 s', '12 s', '4.2 min', '3.1 h', '2.5 days' ('under 0.01 s' below that)."""
    x = float(x)
    if x < 0.01:
        return "under 0.01 s"
    if x < 1:
        return f"{x:.2g} s"
    if x < 100:
        return f"{x:.3g} s"
    if x < 100 * 60:
        return f"{x / 60:.2g} min" if x < 600 else f"{x / 60:.0f} min"
    if x < 48 * 3600:
        return f"{x / 3600:.2g} h" if x < 36000 else f"{x / 3600:.0f} h"
    return f"{x / 86400:.3g} days"


def approx_seconds(x):
    """An estimate in words: 'about 12 s', or 'under 0.01 s' (never 'about under ...')."""
    text = human_seconds(x)
    return text if text.startswith("under") else f"about {text}"


def kernel_lines(config, requested="auto", kept_from=None):
    """Lines: the kernel of a resolved configuration and the rule that picked it, and the
    estimated seconds per trial (one thread, the cost model) of every kernel that can run it.

    requested  the kernel asked for (auto or a name); kept_from: the results file whose run's
               kernel the run keeps (begun when auto picked another), or None"""
    from .engine import kernel_choice
    _, why, costs = kernel_choice(dataclasses.replace(config, kernel=requested))
    if config.sup:
        why = "the supremum search needs every weight, which the dense kernel draws"
    if kept_from is not None:
        why = f"the kernel of the run in {kept_from} (auto picked it when that run began)"
    lines = [f"kernel: {config.kernel}: {why}",
             "  estimated seconds per trial on one thread (mcinit.kernels.cost), of the kernels that can run it:"]
    for name, c in sorted(costs.items(), key=lambda kv: kv[1]):
        lines.append(f"    {name:<10} {c:.3g}" + ("   <- runs it" if name == config.kernel else ""))
    return lines


def time_line(config, rows, calibration):
    """'time: about ...' for ``rows`` trials of a resolved configuration to compute."""
    if rows <= 0:
        return "time: nothing to compute"
    each = trial_seconds(config, calibration)
    return (f"time: {approx_seconds(rows * each)} for {rows:,} trials ({each:.3g} s each at "
            f"{calibration.threads} thread{'s' if calibration.threads != 1 else ''}), plus the startup; "
            f"{calibration.describe()}")
