"""The engine measurements of the benchmark: each kernel through the engine, alone, and the CLI."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench_common import ENGINE_CHUNK, Case, measure, timed


class EngineMeasurements:
    """mcinit's kernels through the engine, the kernels alone, and whole CLI runs (part of bench.Suite)."""

    # -------------------------------------------------------------- mcinit kernels

    def warm(self, kernel):
        """First call of a kernel (compile or numba-cache load) on a tiny network of the same types."""
        if kernel in self.compile:
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
        before = _cache_misses(mod, "_batch")
        tiny = Case("tiny", 8, 8, 2, 1, (kernel,), "")
        cfg = self.config(tiny, kernel, 2 * self.threads)
        t = timed(lambda: engine.run(cfg, threads=self.threads))
        self.compile[kernel] = (t, self._how(before, _cache_misses(mod, "_batch")))
        self.log(f"  first call of {kernel}: {t:.2f} s ({self.compile[kernel][1]})")

    def _how(self, before, after):
        if self.args.cold:
            return "compiled"
        if before is None or after is None:
            return "compile or cache load"
        return "compiled" if after > before else "cache load"

    def engine_rate(self, case, kernel, threads=None, batch_size=None, to_file=False):
        """Trials/s through mcinit.engine.run with an in-memory sink, or (to_file) into an HDF5
        file as `mcinit run` writes it (then also the file's bytes per trial; the file is
        removed after each call, outside the timing)."""
        threads = threads or self.threads
        key = ("file", case.shape_key, kernel) if to_file else \
            ("engine", case.shape_key, kernel, threads, batch_size)
        if key not in self.cache:
            from mcinit import engine
            from mcinit.store import HDF5Sink
            self.warm(kernel)
            path = os.path.join(self.scratch, "run.h5")
            size = {}

            def fn(n):
                t = 0.0
                done = 0
                while done < n:
                    m = min(ENGINE_CHUNK, n - done)
                    sink = HDF5Sink(path) if to_file else None
                    t0 = time.perf_counter()
                    engine.run(self.config(case, kernel, m), sink=sink, threads=threads,
                               batch_size=batch_size)
                    t += time.perf_counter() - t0
                    if to_file:
                        size[m] = os.path.getsize(path)
                        os.remove(path)
                    done += m
                return t

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=threads, multiple=threads)
            if to_file:
                self.cache[key].bytes_per_trial = size[max(size)] / max(size)
            extra = f", batch {batch_size}" if batch_size else ""
            where = " into an HDF5 file" if to_file else ""
            self.log(f"  {case.name} {kernel} ({threads} thr{extra}){where}: "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

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
            plan = make_plan(cfg)
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

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=threads, multiple=threads)
            self.log(f"  {case.name} {kernel} kernel only ({threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

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
