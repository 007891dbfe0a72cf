"""Time per trial and arc counts of the exact extremes on the circle (mcinit.kernels.sup_circle).

    python benchmarks/bench_sup_circle.py [--threads 1] [--cases 8x4,64x10,256x10]

One case is WIDTHxDEPTH: input dimension 2, He normal weights, seed 0.  Each case is run
once to warm up (compile), then timed over a few trials; the arc counts are the mean over
those trials of the arcs of each layer's map on the circle (layer 1 .. L).
"""

import argparse
import time

import numba
import numpy as np

from mcinit import config
from mcinit.kernels import common, sup_circle


def measure(width, depth, trials):
    cfg, _ = config.build(trials=1000, input_dim=2, width=width, depth=depth, data="sphere",
                          kernel="dense", seed=0)
    plan = common.make_plan(cfg)
    L = cfg.depth
    smin, smax = np.empty((trials, L)), np.empty((trials, L))
    arcs = np.empty((trials, L), dtype=np.int64)
    sup_circle.extremes(plan, 0, 1, smin[:1], smax[:1], arcs[:1])         # warm
    t = time.perf_counter()
    sup_circle.extremes(plan, 0, trials, smin, smax, arcs)
    return (time.perf_counter() - t) / trials, arcs.mean(axis=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default="8x4,64x10,256x10")
    ap.add_argument("--trials", type=int, default=0, help="trials per case (default: by size)")
    a = ap.parse_args()
    numba.set_num_threads(a.threads)
    print(f"threads {a.threads}")
    for case in a.cases.split(","):
        width, depth = map(int, case.split("x"))
        trials = a.trials or max(2, min(1000, int(2e7 / (width * width * depth * depth))))
        sec, arcs = measure(width, depth, trials)
        print(f"{case:>9}: {sec * 1e3:10.3f} ms/trial ({trials} trials)   arcs per layer "
              + " ".join(f"{x:.0f}" for x in arcs))


if __name__ == "__main__":
    main()
