#!/usr/bin/env python
"""mcinit benchmark suite: kernel throughput against a plain NumPy reference and the hardware floor.

    python benchmarks/bench.py                 # full run (a few minutes on 2 cores)
    python benchmarks/bench.py --quick         # short measurements (under a minute)
    python benchmarks/bench.py --cases C1,L1 --threads 1
    python benchmarks/bench.py --write         # also (re)write benchmarks/RESULTS.md

Everything is measured in one process, in one run: the NumPy reference
(numpy_reference.py), each mcinit kernel through the engine with an in-memory
sink (after a warm-up call that compiles or loads the numba cache), the
Gaussian generation rates of NumPy and of mcinit's Philox generator, and the
dgemm and sgemm FLOP rates; the floors are derived from those rates.  The P
cases (many fixed inputs per network) run `--kernel auto` and the blocked kernel
in float64, float32 and forward-only against the DGEMM and SGEMM floors.  See
README.md for what each column means.  Timings are reported, never asserted.
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

from bench_common import (CASES, FILE_KERNELS, HERE, KERNEL_ORDER, SCALING_TURNS, BlasThreads, CpuMeter,
                          SETTINGS, loadavg, write_fixed_inputs)
from bench_engine import EngineMeasurements
from bench_hardware import HardwareFloors
from bench_references import References
from bench_report import ReportWriter

# ------------------------------------------------------------------ arguments (before numpy is imported)

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="mcinit throughput vs a NumPy per-trial reference and the hardware floor.")
    p.add_argument("--quick", action="store_true",
                   help="short measurements (one ~0.3 s repetition each); numbers are rough")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated cases to run (default: all of {','.join(CASES)}; "
                        f"--quick leaves out {','.join(c for c in CASES if CASES[c].full_only)} "
                        "unless named here)")
    p.add_argument("--threads", type=int, default=None,
                   help="numba threads and BLAS threads (default: numba's default, all cores)")
    p.add_argument("--write", action="store_true",
                   help="(re)write benchmarks/RESULTS.md with this run's tables")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                   help="where --write writes (default: benchmarks/RESULTS.md)")
    p.add_argument("--cold", action="store_true",
                   help="compile the kernels from scratch (empty temporary numba cache), so the "
                        "compile column shows true compile times")
    p.add_argument("--no-scaling", action="store_true", help="skip the 1- vs 2-thread table")
    p.add_argument("--no-cli", action="store_true",
                   help="skip timing the whole `mcinit run --trials 1e6` command (cold and warm cache)")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the PyTorch column even when torch is installed (as if it were not)")
    args = p.parse_args(argv)
    if args.cases is None:
        names = [c for c in CASES if not (args.quick and CASES[c].full_only)]
    else:
        names = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in CASES]
    if bad or not names:
        p.error(f"unknown case(s) {', '.join(bad) or '(none)'}; choose from {', '.join(CASES)}")
    args.cases = names
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def configure_environment(args):
    """Thread counts for BLAS and numba, and the numba cache, before they are imported."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or int(os.environ.get("NUMBA_NUM_THREADS", cores))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if args.threads is not None and int(os.environ.get("NUMBA_NUM_THREADS", cores)) < args.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # more threads than cores: the user asked
    cold_dir = None
    if args.cold:
        cold_dir = tempfile.mkdtemp(prefix="mcinit-bench-numba-")
        os.environ["NUMBA_CACHE_DIR"] = cold_dir
    return threads, cores, cold_dir


# ------------------------------------------------------------------ the suite

class Suite(References, HardwareFloors, EngineMeasurements, ReportWriter):
    """One benchmark run: the references, the hardware floors, the engine measurements and the report
    (each a part of its own module), run in order by ``run``."""

    def __init__(self, args, threads, cores):
        import numba
        import numpy as np

        self.np = np
        self.numba = numba
        self.args = args
        self.threads = threads
        self.cores = cores
        self.quick = args.quick
        self.per_rep = 0.3 if args.quick else 1.0
        self.reps = 1 if args.quick else 5
        self.hw_time = 0.3 if args.quick else 1.0
        self.cache = {}
        self.compile = {}
        self.fixed = {}
        # results files and the disk-rate file (removed by close)
        self.scratch = tempfile.mkdtemp(prefix="mcinit-bench-files-")
        self.blas = BlasThreads()
        self.blas.set(threads)
        # thread counts the NumPy reference and dgemm are measured with
        self.blas_counts = [threads] + ([1] if threads > 1 and self.blas.available else [])
        if threads > numba.config.NUMBA_NUM_THREADS:
            sys.exit(f"--threads {threads} exceeds numba's maximum of {numba.config.NUMBA_NUM_THREADS} "
                     "(set NUMBA_NUM_THREADS)")
        numba.set_num_threads(threads)

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def close(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -------------------------------------------------------------- configuration

    def config(self, case, kernel, trials, seed=0, precision="float64", properties="both"):
        """The run configuration of a case (its fixed inputs' file for a fixed case)."""
        from mcinit import config
        cfg, _ = config.build(trials=trials, input_dim=case.input_dim, width=case.width,
                              depth=case.depth, samples=case.samples,
                              data=self.fixed_inputs(case)[0] if case.fixed else "gaussian",
                              init="he", dist="normal", head=f"softmax:{case.classes}",
                              kernel=kernel, seed=seed, precision=precision, properties=properties)
        return cfg

    def fixed_inputs(self, case):
        """(the .npy file, its rows (N, n_0) as mcinit reads them) of a fixed case; the file
        is written once, into the run's scratch directory."""
        key = (case.samples, case.input_dim)
        if key not in self.fixed:
            from mcinit import data
            path = write_fixed_inputs(self.scratch, case.samples, case.input_dim)
            self.fixed[key] = (path, data.load_fixed(path)[1])
        return self.fixed[key]

    def case_data(self, case):
        """The fixed dataset engine.run takes for a case (None: inputs drawn per trial)."""
        return self.fixed_inputs(case)[1] if case.fixed else None

    # -------------------------------------------------------------- run everything

    def run(self):
        self.start = datetime.datetime.now(datetime.timezone.utc)
        self.load_start = loadavg()
        meter = CpuMeter()
        t0 = time.perf_counter()
        needed = {k for name in self.args.cases for k in CASES[name].kernels}
        many = [name for name in self.args.cases if CASES[name].fixed]
        for k in KERNEL_ORDER:
            if k in needed or k in ("dense", "blocked"):
                self.warm(k)
        if many:
            for precision in dict.fromkeys(p for p, _ in SETTINGS):
                self.warm("blocked", precision)
        self.check()
        self.check_torch()
        self.hardware()
        self.rows = []
        self.many_rows = []
        for name in self.args.cases:
            case = CASES[name]
            self.log(f"{name}: {case.label()}")
            if case.fixed:
                self.many_rows.append(self.many_inputs_row(case))
                continue
            numpy_all = {b: self.numpy_rate(case, b) for b in self.blas_counts}
            best = max(numpy_all, key=lambda b: numpy_all[b].rate)
            row = dict(case=case, numpy=numpy_all[best], numpy_blas=best, numpy_all=numpy_all,
                       kernels={}, kernel_only={}, batch={}, batch_fix={}, file={})
            for k in case.kernels:
                row["kernels"][k] = self.engine_rate(case, k)
                row["kernel_only"][k] = self.kernel_only_rate(case, k)
                if k in FILE_KERNELS:
                    row["file"][k] = self.engine_rate(case, k, to_file=True)
                B = self.default_batch(case, k)
                row["batch"][k] = B
                if B < self.threads:
                    fixed = 4 * self.threads
                    row["batch_fix"][k] = (fixed, self.engine_rate(case, k, batch_size=fixed))
            self.rows.append(row)
        self.scaling = []
        if not self.args.no_scaling:
            case = CASES["C1"]
            counts = sorted({t for t in (1, 2, self.threads) if t <= self.numba.config.NUMBA_NUM_THREADS})
            if len(counts) > 1:
                self.log(f"thread scaling on C1: {counts}")
                self.scaling_turns = 2 if self.quick else SCALING_TURNS
                # where each measurement's turns begin in its rates: the 2-thread ones are the
                # throughput table's, which the second pass repeats once more after the turns
                self.turns_from = {}
                for k in case.kernels:
                    self.scaling.append((k, {t: self.engine_rate(case, k, threads=t) for t in counts},
                                         {t: self.kernel_only_rate(case, k, threads=t) for t in counts}))
                    # more repetitions, the thread counts in turn, so that each ratio compares
                    # rates from the same seconds of a machine whose speed drifts
                    _, d, dk = self.scaling[-1]
                    for m in list(d.values()) + list(dk.values()):
                        self.turns_from[id(m)] = len(m.rates)
                    for _ in range(self.scaling_turns):
                        for t in counts:
                            d[t].repeat()
                            dk[t].repeat()
                self.scaling_counts = counts
            self.numba.set_num_threads(self.threads)
        self.cli = [] if self.args.no_cli else self.cli_runs()
        if not self.quick:
            self.second_pass()
        # PyTorch last, so that its OpenMP threads cannot disturb the other measurements
        for row in self.rows:
            if self.torch_module() is not None:
                self.log(f"{row['case'].name}: torch")
            row["torch"] = self.torch_rate(row["case"])
        self.elapsed = time.perf_counter() - t0
        self.load_end = loadavg()
        self.other, self.steal = meter.stop()

    def second_pass(self):
        """One more repetition of every number of the throughput table (NumPy references,
        engines, fills) and of the hardware rates, minutes after the first ones: a shared
        host's speed drifts over tens of seconds, and a slow phase that covers a whole
        measurement should not decide it.  Every column gets the same, and the best is kept."""
        self.log("second pass: one more repetition of every measurement")
        # (measurement, BLAS threads it is taken with), each once (rows share measurements);
        # the thread-scaling table's other thread counts too, so that its best rates have had
        # as many chances at every thread count
        todo = {}
        for row in self.rows:
            for b, m in row["numpy_all"].items():
                todo.setdefault(id(m), (m, b))
            for m in list(row["kernels"].values()) + list(row["kernel_only"].values()) + list(row["file"].values()):
                todo.setdefault(id(m), (m, self.threads))
        for _, d, dk in self.scaling:
            for m in list(d.values()) + list(dk.values()):
                todo.setdefault(id(m), (m, self.threads))
        for row in self.many_rows:
            if row["case"].networks:
                continue    # a fixed count of slow networks: measured once
            for m, b in self.many_measurements(row):
                todo.setdefault(id(m), (m, b))
        for m, b in todo.values():
            self.blas.set(b)
            try:
                m.repeat()
            finally:
                self.blas.set(self.threads)
        first = self.hw
        self.hardware()
        for k, v in first.items():
            if isinstance(v, float) and isinstance(self.hw.get(k), float):
                self.hw[k] = max(v, self.hw[k])
        hw = self.hw
        hw["gen_best_name"] = "numpy" if hw["numpy_gen"] >= hw["mcinit_gen"] else "mcinit"

# ------------------------------------------------------------------ main

def main(argv=None):
    args = parse_args(argv)
    threads, cores, cold_dir = configure_environment(args)
    sys.path.insert(0, HERE)
    suite = None
    try:
        suite = Suite(args, threads, cores)
        suite.run()
        text = suite.report()
    finally:
        if suite is not None:
            suite.close()
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)
    print(text)
    if args.write:
        with open(args.output, "w") as f:
            f.write(text + "\n")
        print(f"\nwrote {os.path.relpath(args.output)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
