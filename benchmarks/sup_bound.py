"""The certified bounds' branch-and-bound (mcinit.kernels.sup_bound): time per trial and the
gap reached against the box budget.

    python benchmarks/sup_bound.py            # 2 trials per case, one thread
    python benchmarks/sup_bound.py 8          # 8 trials per case

For input dimensions 2, 4, 8, 16, widths 16x3 and 64x5 (He, Gaussian weights, seed 1), the
found extremes start from the local search (64 random inputs, 8 starts, 200 steps, as
--sup-search 8,200 with --samples 64) and the branch-and-bound runs with gap 0 (every box
of the budget is used).  Per case: seconds per trial (one thread; the budget counts boxes
per layer and direction), the relative gap upper / found_max - 1 and found_min / lower - 1
(median and max over trials and layers; inf where lower is 0 and found_min is not), the
share of layers with lower > 0, and the share whose upper bound is below the spectral one
(prod_k ||W_k||_2^2: the boxes did better than the fallback).
"""

import sys
import time

import numba
import numpy as np

from mcinit import config
from mcinit.kernels import common, sup, sup_bound


def main(trials=2):
    numba.set_num_threads(1)
    print("| n_0 | widths | boxes | s / trial | upper gap median | max | lower gap median | max "
          "| lower > 0 | upper < spectral |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for widths in ("16,16,16", "64,64,64,64,64"):
        for n0 in (2, 4, 8, 16):
            cfg, _ = config.build(trials=10, input_dim=n0, widths=widths, data="sphere", samples=64, seed=1)
            plan = common.make_plan(cfg)
            L = cfg.depth
            out = [np.empty((trials, L)) for _ in range(5)]
            sup.fill(plan, 0, trials, *out, np.zeros(trials, dtype=bool), 64, 8, 200)
            spec = np.empty((trials, L))
            sup_bound.bounds(plan, 0, trials, out[0].copy(), out[1].copy(), np.empty((trials, L)), spec, 0, 0.0)
            for boxes in (64, 256, 1024, 4096):
                if boxes < 2 * n0:
                    continue
                fmin, fmax = out[0].copy(), out[1].copy()
                lo, up = np.empty((trials, L)), np.empty((trials, L))
                sup_bound.bounds(plan, 0, 1, fmin[:1].copy(), fmax[:1].copy(), lo[:1], up[:1], boxes, 0.0)
                t = time.perf_counter()
                sup_bound.bounds(plan, 0, trials, fmin, fmax, lo, up, boxes, 0.0)
                dt = (time.perf_counter() - t) / trials
                gu = up / fmax - 1
                gl = np.full((trials, L), np.inf)
                np.divide(fmin, lo, out=gl, where=lo > 0)
                gl[lo > 0] -= 1
                print(f"| {n0} | {widths} | {boxes} | {dt:.3g} | {np.median(gu):.3g} | {gu.max():.3g} "
                      f"| {np.median(gl):.3g} | {gl.max():.3g} | {np.mean(lo > 0):.2f} "
                      f"| {np.mean(up < spec):.2f} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
