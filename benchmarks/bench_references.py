"""The references the kernels are compared with: the NumPy per-trial reference and PyTorch."""

from bench_common import CASES, Case, measure, timed


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

    def numpy_rate(self, case, blas_threads):
        """Trials/s of the NumPy per-trial loop with BLAS on ``blas_threads`` threads."""
        key = ("numpy", case.shape_key, blas_threads)
        if key not in self.cache:
            import numpy_reference as ref

            def fn(n):
                return timed(lambda: ref.run_trials(case.widths, case.samples, case.classes, n))

            self.blas.set(blas_threads)
            try:
                self.cache[key] = measure(fn, self.per_rep, self.reps)
            finally:
                self.blas.set(self.threads)
            self.log(f"  {case.name} numpy (BLAS {blas_threads} thr): "
                     f"{self.cache[key].rate:,.4g} trials/s")
        return self.cache[key]
