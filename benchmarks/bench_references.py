"""The references the kernels are compared with: the NumPy per-trial reference and PyTorch."""

from bench_common import CASES, Case, measure, timed

#: what float32 against float64 may differ by (relative) in the check: each of the L layers
#: rounds its products and activations to float32 (2^-24 relative), which grows with depth
#: and width; expected about 1e-6
FLOAT32_AGREEMENT = 1e-4


def rel_diff(np, a, b):
    """max |a / b - 1| over the finite entries of b (a and b must be finite in the same places)."""
    fin = np.isfinite(b)
    if not np.array_equal(fin, np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a[fin] / b[fin] - 1), initial=0.0))


class References:
    """Correctness checks and rates of the NumPy and PyTorch references (part of bench.Suite)."""

    # -------------------------------------------------------------- correctness check

    def check(self):
        """The dense kernel and the NumPy reference on identical numbers must agree to rounding."""
        np = self.np
        import numpy_reference as ref
        from mcinit.kernels import common, dense

        c1 = CASES["C1"]
        worst = 0.0
        for samples in (1, 3):
            case = Case("check", c1.input_dim, c1.width, c1.depth, samples, ("dense",), "")
            cfg = self.config(case, "dense", 2, seed=12345)
            plan = common.make_plan(cfg)
            L = case.depth
            fwd = np.empty((2, samples, L))
            bwd = np.empty((2, samples, L))
            dead = np.zeros(2, dtype=bool)
            dense.fill(plan, 0, 2, fwd, bwd, dead)
            for t in range(2):
                rho, gamma = ref.ratios(*ref.mcinit_draws(12345, t, case.widths, samples, case.classes))
                worst = max(worst, float(np.max(np.abs(rho / fwd[t] - 1))),
                            float(np.max(np.abs(gamma / bwd[t] - 1))))
        ok = worst < 1e-9
        self.check_result = (worst, ok)
        self.log(f"check: dense kernel vs NumPy reference on identical weights (C1 shape, 1 and 3 "
                 f"inputs): max relative difference {worst:.1e} {'ok' if ok else 'MISMATCH'}")
        self.check_blocked()

    def check_blocked(self):
        """The blocked kernel against the NumPy reference on identical numbers (several
        inputs, drawn per trial and a fixed dataset): agreement to rounding; and the blocked
        kernel in float32 against float64 on the same trials, and the NumPy reference in
        float32 against float64 on the same weights (rounding to float32: about 1e-6)."""
        np = self.np
        import numpy_reference as ref
        from mcinit.kernels import blocked, common

        shape = Case("check", 100, 128, 6, 8, ("blocked",), "")
        fixed = Case("check", shape.input_dim, shape.width, shape.depth, shape.samples, ("blocked",), "",
                     fixed=True)
        trials, seed, L, N = 3, 12345, shape.depth, shape.samples
        worst = worst32 = worst_ref32 = 0.0
        for case in (shape, fixed):
            out = {}
            for precision in ("float64", "float32"):
                plan = common.make_plan(self.config(case, "blocked", trials, seed=seed, precision=precision),
                                        self.case_data(case))
                fwd, bwd = np.empty((trials, N, L)), np.empty((trials, N, L))
                blocked.fill(plan, 0, trials, fwd, bwd, np.zeros(trials, dtype=bool))
                out[precision] = (fwd, bwd)
            for t in range(trials):
                draws = ref.mcinit_draws(seed, t, case.widths, N, case.classes, X=self.case_data(case))
                rho, gamma = ref.ratios(*draws)
                fwd, bwd = (a[t] for a in out["float64"])
                worst = max(worst, rel_diff(np, rho, fwd), rel_diff(np, gamma, bwd))
                fwd32, bwd32 = (a[t] for a in out["float32"])
                worst32 = max(worst32, rel_diff(np, fwd32, fwd), rel_diff(np, bwd32, bwd))
                Ws, Wo, X, T = draws
                rho32, gamma32 = ref.ratios([W.astype(np.float32) for W in Ws], Wo.astype(np.float32), X, T)
                worst_ref32 = max(worst_ref32, rel_diff(np, rho32, rho), rel_diff(np, gamma32, gamma))
        ok = worst < 1e-9
        ok32 = max(worst32, worst_ref32) < FLOAT32_AGREEMENT
        self.blocked_check_result = (worst, ok, worst32, worst_ref32, ok32)
        self.log(f"check: blocked kernel vs NumPy reference on identical weights "
                 f"({shape.label()}, drawn and fixed inputs): max relative difference {worst:.1e} "
                 f"{'ok' if ok else 'MISMATCH'}")
        self.log(f"check: float32 vs float64 on the same trials: blocked kernel {worst32:.1e}, NumPy "
                 f"reference {worst_ref32:.1e} {'ok' if ok32 else 'LARGE'}")

    # -------------------------------------------------------------- PyTorch (optional)

    def torch_module(self):
        """torch with its intra-op threads set to T, or None (``self.torch_status`` says why)."""
        if not hasattr(self, "torch_status"):
            self.torch = None
            if self.args.no_torch:
                self.torch_status = "skipped (--no-torch)"
            else:
                try:
                    import torch
                except ImportError:
                    self.torch_status = "not installed (`pip install torch`)"
                else:
                    torch.set_num_threads(self.threads)
                    self.torch = torch
                    self.torch_status = f"{torch.__version__}, {torch.get_num_threads()} intra-op threads"
        return self.torch

    def check_torch(self):
        """The batched PyTorch reference and the NumPy reference on identical numbers must agree
        to rounding (the same weights, inputs and targets as the dense kernel's check)."""
        self.torch_check_result = None
        if self.torch_module() is None:
            self.log(f"check: PyTorch reference {self.torch_status}")
            return
        np = self.np
        import numpy_reference as ref
        import torch_reference as tref

        c1 = CASES["C1"]
        widths = (c1.input_dim,) + (c1.width,) * c1.depth
        worst = 0.0
        for samples in (1, 3):
            trials = [ref.mcinit_draws(12345, t, widths, samples, c1.classes) for t in range(2)]
            rho, gamma = tref.ratios(*tref.from_numpy_trials(trials))
            for t, draws in enumerate(trials):
                r, g = ref.ratios(*draws)
                worst = max(worst, float(np.max(np.abs(rho[t].numpy() / r - 1))),
                            float(np.max(np.abs(gamma[t].numpy() / g - 1))))
        ok = worst < 1e-12
        self.torch_check_result = (worst, ok)
        self.log(f"check: PyTorch reference (batched, autograd, float64) vs NumPy reference on "
                 f"identical weights (C1 shape, 1 and 3 inputs): max relative difference {worst:.1e} "
                 f"{'ok' if ok else 'MISMATCH'}")

    def torch_rate(self, case):
        """Trials/s of the batched PyTorch reference (float64, autograd) on T intra-op threads,
        in batches of ``torch_reference.batch_size`` trials; None without torch."""
        if self.torch_module() is None:
            return None
        import torch_reference as tref
        B = tref.batch_size(case.widths, case.samples, case.classes)
        key = ("torch", case.shape_key, self.threads, B)
        if key not in self.cache:
            tref.run_trials((8, 8, 8), 1, 2, 2, 2)   # first call (autograd set-up) outside the timing

            def fn(n):
                return timed(lambda: tref.run_trials(case.widths, case.samples, case.classes, n, B))

            self.cache[key] = measure(fn, self.per_rep, self.reps, n=B, multiple=B)
            self.log(f"  {case.name} torch (batch {B}, {self.threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]

    # -------------------------------------------------------------- the NumPy reference

    def numpy_rate(self, case, blas_threads, dtype="float64"):
        """Trials/s of the NumPy per-trial loop with BLAS on ``blas_threads`` threads, in
        float64 or (dtype "float32") float32; a fixed case's inputs are its dataset."""
        key = ("numpy", case.shape_key, blas_threads) + (() if dtype == "float64" else (dtype,))
        if key not in self.cache:
            import numpy_reference as ref
            X = self.case_data(case)
            dt = self.np.dtype(dtype).type

            def fn(n):
                return timed(lambda: ref.run_trials(case.widths, case.samples, case.classes, n, X=X, dtype=dt))

            self.blas.set(blas_threads)
            try:
                self.cache[key] = self.measure_case(case, fn)
            finally:
                self.blas.set(self.threads)
            self.log(f"  {case.name} numpy{'' if dtype == 'float64' else ' ' + dtype} "
                     f"(BLAS {blas_threads} thr): {self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]
