"""The hardware floors of the benchmark: generation, dgemm, sgemm and disk rates."""

import os
import time

from bench_common import DISK_BYTES, measure, timed

#: the matrices of the dgemm and sgemm rates: GEMM_SIZE x GEMM_SIZE
GEMM_SIZE = 1024


class HardwareFloors:
    """The hardware rates the floors derive from (part of bench.Suite)."""

    # -------------------------------------------------------------- hardware rates

    def hardware(self):
        np = self.np
        from concurrent.futures import ThreadPoolExecutor

        from mcinit import rng

        T = self.threads
        hw = {}
        size = 1 << 20
        # NumPy Generator.standard_normal into a preallocated array (ziggurat, PCG64)
        gen = np.random.default_rng(0)
        buf = np.empty(size)
        gen.standard_normal(out=buf)

        def np_fill(k):
            for _ in range(k):
                gen.standard_normal(out=buf)
            return 0

        m = measure(lambda k: timed(lambda: np_fill(k)), self.hw_time, self.reps)
        hw["numpy_gen_1"] = m.rate * size
        # mcinit's generator (Philox4x32-10 + inversion) through its public API
        rows = cols = 1024
        rng.normal_matrix(0, 0, 1, rng.STREAM_WEIGHTS, rows, cols)

        def mc_fill(k):
            for i in range(k):
                rng.normal_matrix(0, i, 1, rng.STREAM_WEIGHTS, rows, cols)

        m = measure(lambda k: timed(lambda: mc_fill(k)), self.hw_time, self.reps)
        hw["mcinit_gen_1"] = m.rate * rows * cols
        # the same generators on T threads at once
        if T > 1:
            gens = [np.random.default_rng(s) for s in range(T)]
            bufs = [np.empty(size) for _ in range(T)]

            def par_np(k):
                with ThreadPoolExecutor(T) as ex:
                    list(ex.map(lambda j: [gens[j].standard_normal(out=bufs[j]) for _ in range(k)],
                                range(T)))

            m = measure(lambda k: timed(lambda: par_np(k)), self.hw_time, self.reps)
            hw["numpy_gen_T"] = m.rate * size * T
            kern = _parallel_normals()
            out = np.empty((rows * T, cols))
            k0, k1 = rng.seed_key(0)
            kern(k0, k1, np.uint64(0), np.uint64(1), out)

            def par_mc(k):
                for i in range(k):
                    kern(k0, k1, np.uint64(i), np.uint64(1), out)

            m = measure(lambda k: timed(lambda: par_mc(k)), self.hw_time, self.reps)
            hw["mcinit_gen_T"] = m.rate * out.size
        else:
            hw["numpy_gen_T"] = hw["numpy_gen_1"]
            hw["mcinit_gen_T"] = hw["mcinit_gen_1"]
        # dgemm and sgemm: numpy matmul of two 1024 x 1024 matrices, with BLAS on T threads
        # and on 1; and T products at once, each on one BLAS thread (as the blocked kernel
        # runs its trials)
        for name, dtype in (("dgemm", np.float64), ("sgemm", np.float32)):
            self.gemm_rates(hw, name, gen, dtype)
        # the disk: a file of DISK_BYTES written in 1 MiB pieces, then fsync'ed (what a run's
        # records cost the machine at least, beyond the kernel)
        m = measure(lambda k: self._disk_write(k), self.hw_time, self.reps, n=DISK_BYTES, multiple=DISK_BYTES)
        hw["disk"] = m.rate
        # the floors use the best rate measured (a floor must not be lowered by contention)
        hw["dgemm"] = max(hw.get("dgemm_1", 0.0), hw["dgemm_T"], hw.get("dgemm_P", 0.0))
        hw["sgemm"] = max(hw.get("sgemm_1", 0.0), hw["sgemm_T"], hw.get("sgemm_P", 0.0))
        hw["numpy_gen"] = max(hw["numpy_gen_1"], hw["numpy_gen_T"])
        hw["mcinit_gen"] = max(hw["mcinit_gen_1"], hw["mcinit_gen_T"])
        hw["gen_best"] = max(hw["numpy_gen"], hw["mcinit_gen"])
        hw["gen_best_name"] = "numpy" if hw["numpy_gen"] >= hw["mcinit_gen"] else "mcinit"
        self.hw = hw
        self.log(f"hardware: numpy normals {hw['numpy_gen_1'] / 1e6:.0f} M/s/thread, "
                 f"mcinit normals {hw['mcinit_gen_1'] / 1e6:.0f} M/s/thread, "
                 f"dgemm {hw['dgemm'] / 1e9:.1f} GFLOP/s, sgemm {hw['sgemm'] / 1e9:.1f} GFLOP/s")

    def gemm_rates(self, hw, name, gen, dtype, n=GEMM_SIZE):
        """FLOP/s of numpy.matmul of two n x n matrices of dtype (2 n^3 FLOP a product) into
        hw: name_T (BLAS on T threads), name_1 (on 1 thread; when BLAS threads can be
        changed) and name_P (T products at once from T Python threads, each on one BLAS
        thread, when T > 1 and BLAS threads can be changed)."""
        np = self.np
        from concurrent.futures import ThreadPoolExecutor

        T = self.threads
        mats = [(gen.standard_normal((n, n)).astype(dtype), gen.standard_normal((n, n)).astype(dtype),
                 np.empty((n, n), dtype=dtype)) for _ in range(T)]
        A, B, C = mats[0]
        np.matmul(A, B, out=C)

        def mm(k):
            for _ in range(k):
                np.matmul(A, B, out=C)

        for b in self.blas_counts:
            self.blas.set(b)
            m = measure(lambda k: timed(lambda: mm(k)), self.hw_time, self.reps)
            hw[f"{name}_1" if b == 1 else f"{name}_T"] = m.rate * 2.0 * n ** 3
        self.blas.set(T)
        hw.setdefault(f"{name}_T", hw.get(f"{name}_1"))
        if T > 1 and self.blas.available:
            def par(k):
                with ThreadPoolExecutor(T) as ex:
                    list(ex.map(lambda abc: [np.matmul(*abc[:2], out=abc[2]) for _ in range(k)], mats))

            self.blas.set(1)
            try:
                m = measure(lambda k: timed(lambda: par(k)), self.hw_time, self.reps)
            finally:
                self.blas.set(T)
            hw[f"{name}_P"] = m.rate * T * 2.0 * n ** 3

    def _disk_write(self, nbytes):
        """Seconds to write nbytes to a new file in the scratch directory and fsync it."""
        piece = self.np.frombuffer(os.urandom(1 << 20), dtype=self.np.uint8)
        path = os.path.join(self.scratch, "disk.bin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            t0 = time.perf_counter()
            for at in range(0, nbytes, len(piece)):
                os.pwrite(fd, piece[:min(len(piece), nbytes - at)], at)
            os.fsync(fd)
            return time.perf_counter() - t0
        finally:
            os.close(fd)
            os.remove(path)


def _parallel_normals():
    """A numba prange loop over blocks of rows of mcinit's own normal generator (for the T-thread rate)."""
    import numpy as np
    from numba import njit, prange

    from mcinit import rng

    @njit(parallel=True, nogil=True, cache=True)
    def fill(k0, k1, c2, c3, out):
        rows, cols = out.shape
        step = rng.block_rows(cols)
        idx = np.arange(cols)
        flat = out.ravel()
        for b in prange((rows + step - 1) // step):
            r0 = b * step
            nr = min(step, rows - r0)
            rng.fill_normal_block_cols(k0, k1, c2, c3, r0, nr, 1.0, idx, cols,
                                       flat[r0 * cols:(r0 + nr) * cols], rng.block_workspace(cols))

    return fill
