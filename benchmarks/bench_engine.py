"""The engine measurements of the benchmark: each kernel through the engine, alone, and the CLI."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench_common import BLAS_CHOICE_CASE, ENGINE_CHUNK, FIXED_REP_FACTOR, SETTINGS, Case, measure, timed

#: a numba function of each kernel module whose cache misses tell a compile from a cache load
CACHE_PROBE = {"blocked": "masked_norms"}


class EngineMeasurements:
    """mcinit's kernels through the engine, the kernels alone, and whole CLI runs (part of bench.Suite)."""

    # -------------------------------------------------------------- mcinit kernels

    def warm(self, kernel, precision="float64"):
        """First call of a kernel (compile or numba-cache load) on a tiny network of the same types
        (float32 arrays are other types: a precision other than float64 is warmed on its own)."""
        name = kernel if precision == "float64" else f"{kernel} {precision}"
        if name in self.compile:
            return
        from mcinit import engine, kernels
        if "engine" not in self.compile:
            from mcinit import stats
            np = self.np
            before = _cache_misses(stats, "_reduce")
            t = timed(lambda: stats.reduce_batch(np.ones((2, 1, 2)), np.ones((2, 1, 2)),
                                                 np.zeros(2, dtype=bool), stats.Summary(2)))
            self.compile["engine"] = (t, self._how(before, _cache_misses(stats, "_reduce")))
        mod = kernels.get(kernel)
        probe = CACHE_PROBE.get(kernel, "_batch")
        before = _cache_misses(mod, probe)
        tiny = Case("tiny", 8, 8, 2, 1, (kernel,), "")
        cfg = self.config(tiny, kernel, 2 * self.threads, precision=precision)
        t = timed(lambda: engine.run(cfg, threads=self.threads))
        self.compile[name] = (t, self._how(before, _cache_misses(mod, probe)))
        self.log(f"  first call of {name}: {t:.2f} s ({self.compile[name][1]})")

    def _how(self, before, after):
        if self.args.cold:
            return "compiled"
        if before is None or after is None:
            return "compile or cache load"
        return "compiled" if after > before else "cache load"

    def engine_rate(self, case, kernel, threads=None, batch_size=None, to_file=False,
                    precision="float64", properties="both"):
        """Trials/s through mcinit.engine.run with an in-memory sink, or (to_file) into an HDF5
        file as `mcinit run` writes it (then also the file's bytes per trial; the file is
        removed after each call, outside the timing).  precision, properties: the run
        options of that name."""
        threads = threads or self.threads
        key = ("file", case.shape_key, kernel) if to_file else \
            ("engine", case.shape_key, kernel, threads, batch_size, precision, properties)
        if key not in self.cache:
            from mcinit import engine
            from mcinit.store import HDF5Sink
            self.warm(kernel, precision)
            path = os.path.join(self.scratch, "run.h5")
            size = {}
            data = self.case_data(case)

            def fn(n):
                t = 0.0
                done = 0
                while done < n:
                    m = min(ENGINE_CHUNK, n - done)
                    sink = HDF5Sink(path) if to_file else None
                    cfg = self.config(case, kernel, m, precision=precision, properties=properties)
                    t0 = time.perf_counter()
                    engine.run(cfg, data=data, sink=sink, threads=threads, batch_size=batch_size)
                    t += time.perf_counter() - t0
                    if to_file:
                        size[m] = os.path.getsize(path)
                        os.remove(path)
                    done += m
                return t

            if not case.fixed:
                # the first run of a network's shape costs some 0.1-0.5 s more (seen with every
                # kernel): outside the timing, so that it cannot decide the trial count
                fn(threads)
            self.cache[key] = self.measure_case(case, fn, n=threads, multiple=threads)
            if to_file:
                self.cache[key].bytes_per_trial = size[max(size)] / max(size)
            extra = f", batch {batch_size}" if batch_size else ""
            extra += "" if (precision, properties) == ("float64", "both") else f", {precision}, {properties}"
            where = " into an HDF5 file" if to_file else ""
            self.log(f"  {case.name} {kernel} ({threads} thr{extra}){where}: "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    def measure_case(self, case, fn, n=1, multiple=1):
        """measure(fn) as every measurement of the run, but for a case with a fixed count of
        networks (case.networks) one repetition: of case.networks networks (at least n, in
        multiples) where they run in parallel (multiple > 1), of n where fn runs one network
        at a time (the per-trial loops).  A fixed case's repetitions last FIXED_REP_FACTOR
        times longer: a network takes a good part of a second, and a repetition of two
        would time mostly a run's start (its workspace's first touch) and its last trial."""
        if case.networks:
            return measure(fn, 0.0, 1, n=max(n, case.networks) if multiple > 1 else n, multiple=multiple)
        per_rep = self.per_rep * (FIXED_REP_FACTOR if case.fixed else 1)
        return measure(fn, per_rep, self.reps, n=n, multiple=multiple)

    def kernel_only_rate(self, case, kernel, threads=None):
        """Trials/s of kernel.fill alone, in the engine's default batches (no reduction, no sink)."""
        threads = threads or self.threads
        key = ("kernel", case.shape_key, kernel, threads)
        if key not in self.cache:
            np = self.np
            from mcinit import engine, kernels
            from mcinit.kernels.common import make_plan
            self.warm(kernel)
            self.numba.set_num_threads(threads)
            cfg = engine.resolve(self.config(case, kernel, 1 << 30))
            B = engine.default_batch_size(cfg, threads)
            plan = make_plan(cfg, self.case_data(case))
            mod = kernels.get(kernel)
            L, N = case.depth, case.samples
            fwd, bwd = np.empty((B, N, L)), np.empty((B, N, L))
            dead = np.zeros(B, dtype=bool)

            def fn(n):
                self.numba.set_num_threads(threads)
                t0 = time.perf_counter()
                first = 0
                while first < n:
                    b = min(B, n - first)
                    mod.fill(plan, first, b, fwd[:b], bwd[:b], dead[:b])
                    first += b
                t = time.perf_counter() - t0
                self.numba.set_num_threads(self.threads)
                return t

            self.cache[key] = self.measure_case(case, fn, n=threads, multiple=threads)
            self.log(f"  {case.name} {kernel} kernel only ({threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    # -------------------------------------------------------------- many inputs per network

    def many_inputs_row(self, case):
        """A fixed-input case (P500..P4000): the NumPy per-trial loop in float64 (BLAS on T
        and on 1 thread) and float32, and for each (precision, properties) of SETTINGS the
        kernel `--kernel auto` resolves to and the blocked kernel, through the engine; on
        BLAS_CHOICE_CASE also the blocked kernel's BLAS thread choice (blas_choice_rates)."""
        from mcinit import engine
        counts = [self.threads] if case.networks else self.blas_counts
        numpy_all = {(dt, b): self.numpy_rate(case, b, dtype=dt)
                     for dt in ("float64", "float32") for b in counts}
        best = {dt: max((numpy_all[dt, b] for b in counts), key=lambda m: m.rate)
                for dt in ("float64", "float32")}
        settings = {}
        for precision, properties in SETTINGS:
            picked = engine.resolve(self.config(case, "auto", 1, precision=precision,
                                                properties=properties)).kernel
            auto = self.engine_rate(case, picked, precision=precision, properties=properties)
            blocked = auto if picked == "blocked" else \
                self.engine_rate(case, "blocked", precision=precision, properties=properties)
            settings[precision, properties] = dict(picked=picked, auto=auto, blocked=blocked)
        row = dict(case=case, numpy=best, numpy_all=numpy_all, numpy_counts=counts,
                   settings=settings, blas_choice=None)
        if case.name == BLAS_CHOICE_CASE and self.threads > 1:
            row["blas_choice"] = self.blas_choice_rates(case)
        return row

    def many_measurements(self, row):
        """(measurement, BLAS threads it is taken with) of a many-input row, each once."""
        out = [(m, b) for (_, b), m in row["numpy_all"].items()]
        for s in row["settings"].values():
            out += [(s["auto"], self.threads), (s["blocked"], self.threads)]
        if row["blas_choice"]:
            out += [(m, self.threads) for m in row["blas_choice"].values()]
        return out

    def blas_choice_rates(self, case):
        """Networks/s of the blocked kernel (float64, both properties) two ways: T trials at
        once, each on one BLAS thread (its fill on T numba threads: what the kernel does),
        and one trial at a time with every product on T BLAS threads (the kernel's own
        trial, blocked_trial, in a loop under threadpoolctl's limit of T)."""
        key = ("threaded", case.shape_key, self.threads)
        if key not in self.cache:
            np = self.np
            from threadpoolctl import threadpool_limits

            from mcinit import engine
            from mcinit.kernels import blocked
            from mcinit.kernels.common import make_plan
            T = self.threads
            plan = make_plan(engine.resolve(self.config(case, "blocked", 1 << 30)), self.case_data(case))
            ops = blocked.Ops(plan)
            ws = blocked.Workspace(ops, plan, blocked.weights_fit(plan))
            # the fixed inputs, once (as the kernel's work units do)
            ops.inputs(0, ws.H[0])
            ops.column_norms(ws.H[0], ws.hn2[0])
            L = case.depth
            fwd, bwd = np.empty((case.samples, L)), np.empty((case.samples, L))

            def one_at_a_time(n):
                with threadpool_limits(limits=T, user_api="blas"):
                    t0 = time.perf_counter()
                    for t in range(n):
                        blocked.blocked_trial(ops, plan, t, ws, fixed_inputs=True)
                        blocked.ratios(ops.norms(ws.hn2), ops.norms(ws.dn2), L, plan.backward, fwd, bwd)
                    return time.perf_counter() - t0

            one_at_a_time(1)
            self.cache[key] = self.measure_case(case, one_at_a_time)
            self.log(f"  {case.name} blocked, one trial at a time on {T} BLAS threads: "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return dict(parallel=self.kernel_only_rate(case, "blocked"), threaded=self.cache[key])

    def default_batch(self, case, kernel):
        from mcinit import engine
        return engine.default_batch_size(engine.resolve(self.config(case, kernel, 1 << 30)))

    def cli_runs(self):
        """The whole command a newcomer types, `mcinit run --trials 1e6` on the defaults (an
        HDF5 file, the summary printed), timed from the outside: first with an empty numba
        cache (everything compiles), then again on the cache it filled."""
        import re
        cache = tempfile.mkdtemp(prefix="mcinit-bench-cli-")
        out = []
        try:
            for how in ("cold (empty numba cache)", "warm (the cache just filled)"):
                path = os.path.join(cache, "run.h5")
                if os.path.exists(path):
                    os.remove(path)
                env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
                self.log(f"mcinit run --trials 1e6, {how}")
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "mcinit.cli", "run", "--trials", "1e6", "-o", path],
                                   env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t
                m = re.search(r"trials in ([0-9.]+) s \(([0-9,]+) trials/s\)", p.stdout)
                if p.returncode != 0 or m is None:
                    raise RuntimeError(f"mcinit run failed: {(p.stderr or p.stdout).strip()[-300:]}")
                out.append((how, wall, float(m.group(1)), float(m.group(2).replace(",", "")),
                            os.path.getsize(path)))
                self.log(f"  {wall:.1f} s in all; the run itself {m.group(1)} s")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        return out

def _cache_misses(module, name):
    """numba cache misses of a module's dispatcher (None if it is not a cached dispatcher)."""
    try:
        return sum(getattr(module, name).stats.cache_misses.values())
    except Exception:
        return None
