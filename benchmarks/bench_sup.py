#!/usr/bin/env python
"""The forward property for every input of the sphere: time per trial of each method, in one run.

    python benchmarks/bench_sup.py              # every case (a few minutes on 2 cores)
    python benchmarks/bench_sup.py --quick      # fewer trials per case; rough numbers
    python benchmarks/bench_sup.py --write      # also (re)write benchmarks/RESULTS-sup.md

Per case (a network of n_0 inputs) it times, on the same trials, after a warm-up call that
compiles or loads numba's cache:

- exact: on the circle (n_0 = 2) the arc enumeration (kernels/sup_circle.py), in small
  dimensions the region enumeration (kernels/sup_regions.py), with the share of (trial, layer)
  pairs it finished within its region budget and the mean count of arcs or regions;
- search: the local search (kernels/sup.py, STARTS,STEPS 4,50 from 64 random inputs);
- bound: the branch-and-bound (kernels/sup_bound.py) at several box budgets, with the relative
  gap it reached: upper / found max - 1 and found min / lower - 1 (median over (trial, layer));
- the NumPy reference: a brute-force scan of the sphere with plain NumPy matrix products (2^14
  angles of the circle, or 2^14 random points of the sphere), the way one would check a network
  by hand; it is approximate (a scan misses the extremes by its resolution), and its time per
  trial is the baseline the exact and certified methods are compared with.

Timings are reported, never asserted.  Before timing, the exact extremes are checked against
the scan: exact max >= scan max and exact min <= scan min to rounding (asserted: a wrong number
is not a benchmark).
"""

import argparse
import datetime
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="time per trial of the methods for the property over all inputs")
    p.add_argument("--quick", action="store_true", help="fewer trials per case (rough numbers)")
    p.add_argument("--threads", type=int, default=None, help="numba and BLAS threads (default: all cores)")
    p.add_argument("--write", action="store_true", help="(re)write benchmarks/RESULTS-sup.md")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS-sup.md"))
    return p.parse_args(argv)


ARGS = parse_args()
if ARGS.threads:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numba                    # noqa: E402  (after the thread settings)
import numpy as np              # noqa: E402

sys.path.insert(0, HERE)
from bench_report import machine_info            # noqa: E402

from mcinit import config                         # noqa: E402
from mcinit.kernels import common, sup, sup_bound, sup_circle, sup_regions   # noqa: E402

if ARGS.threads:
    numba.set_num_threads(ARGS.threads)

#: (name, n_0, widths): the cases
CASES = [("C2a", 2, (8,) * 4), ("C2b", 2, (64,) * 10), ("C2c", 2, (256,) * 10),
         ("R3", 3, (8,) * 3), ("R4", 4, (6,) * 3), ("R5", 5, (4,) * 3),
         ("B8", 8, (16,) * 3), ("B16", 16, (16,) * 3), ("B16w", 16, (64,) * 5)]
BOXES = (64, 256, 1024, 4096)
INPUTS, STARTS, STEPS = 64, 4, 50
SCAN = 1 << 14


def plan_of(n0, widths, trials, seed=11):
    cfg, _ = config.build(trials=trials, input_dim=n0, widths=",".join(map(str, widths)), samples=INPUTS,
                          sup_search=f"{STARTS},{STEPS}", seed=seed, properties="forward")
    return common.make_plan(cfg)


def scan_points(n0):
    """The NumPy reference's points: 2^14 angles of the circle, or 2^14 random points of the sphere."""
    if n0 == 2:
        t = np.linspace(0.0, 2 * np.pi, SCAN, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)])
    g = np.random.default_rng(5).normal(size=(n0, SCAN))
    return g / np.linalg.norm(g, axis=0)


def numpy_scan(plan, first, count):
    """(min, max) (count, L) of rho_l over the scan's points, weights as the kernels draw them."""
    widths = plan.widths
    L = len(widths) - 1
    offs = sup.weight_offsets(widths)
    w = np.empty(offs[-1])
    X = scan_points(int(widths[0]))
    lo, hi = np.empty((count, L)), np.empty((count, L))
    for j in range(count):
        sup.draw_weights(plan.k0, plan.k1, first + j, widths, plan.var, plan.gain, plan.dist, offs, w)
        H = X
        for l in range(1, L + 1):
            H = np.maximum(w[offs[l]:offs[l + 1]].reshape(widths[l], widths[l - 1]) @ H, 0.0)
            r = np.einsum("ij,ij->j", H, H)
            lo[j, l - 1], hi[j, l - 1] = r.min(), r.max()
    return lo, hi


def timed(fn, budget):
    """Seconds per call of fn() (best of repetitions within about ``budget`` seconds)."""
    fn()
    best = float("inf")
    t_end = time.perf_counter() + budget
    while True:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            return best


def random_ratios(plan, count):
    """The dense kernel's ratios on the trials' random sphere inputs (what the search starts from)."""
    import copy
    from mcinit.kernels import dense
    sph = copy.copy(plan)
    sph.data, sph.samples, sph.X0 = common.DATA_SPHERE, INPUTS, np.zeros((0, int(plan.widths[0])))
    L = len(plan.widths) - 1
    fwd, bwd = np.empty((count, INPUTS, L)), np.empty((count, INPUTS, L))
    dead = np.zeros(count, dtype=bool)
    dense.fill(sph, 0, count, fwd, bwd, dead)
    return fwd, bwd, dead


def fmt_t(s):
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def case_rows(name, n0, widths, quick):
    T = (8 if quick else 32) if max(widths) > 32 or n0 > 2 else (64 if quick else 256)
    budget = 0.3 if quick else 1.5
    plan = plan_of(n0, widths, T)
    L = len(widths)
    net = f"{n0}/{'x'.join(map(str, widths[:1]))}x{L}" if len(set(widths)) == 1 else f"{n0}/{widths}"
    rows = []
    t_scan = timed(lambda: numpy_scan(plan, 0, T), budget) / T
    slo, shi = numpy_scan(plan, 0, T)
    exact_note = "-"
    if n0 == 2 or n0 <= sup_regions.MAX_DIM:
        emin, emax = np.full((T, L), np.nan), np.full((T, L), np.nan)
        done = np.ones((T, L), dtype=bool)
        counts = np.zeros((T, L), dtype=np.int64)
        if n0 == 2:
            call = lambda: sup_circle.extremes(plan, 0, T, emin, emax, counts)   # noqa: E731
        else:
            call = lambda: sup_regions.extremes(plan, 0, T, emin, emax, done, regions=counts)  # noqa: E731
        t_exact = timed(call, budget) / T
        call()
        ok = done
        scale = np.maximum(shi, 1e-300)
        assert np.all(emax[ok] >= shi[ok] - 1e-9 * scale[ok]), "exact max below the scan"
        assert np.all(emin[ok] <= slo[ok] + 1e-9 * scale[ok]), "exact min above the scan"
        what = "arcs" if n0 == 2 else "regions"
        exact_note = (f"{fmt_t(t_exact)}; exact {100 * ok.mean():.0f}% of (trial, layer); "
                      f"{what} at layer L: mean {counts[ok[:, -1], -1].mean() if ok[:, -1].any() else float('nan'):.0f}")
        rows.append([name, net, "exact", exact_note, fmt_t(t_scan), f"{t_scan / t_exact:.3g}x"])
    if n0 > 2:
        fwd, bwd, dead = random_ratios(plan, T)
        out = [np.empty((T, L)) for _ in range(5)]
        t_search = timed(lambda: sup.fill(plan, 0, T, *out, np.zeros(T, dtype=bool), INPUTS, STARTS, STEPS,
                                          ratios=(fwd, bwd, dead)), budget) / T
        sup.fill(plan, 0, T, *out, np.zeros(T, dtype=bool), INPUTS, STARTS, STEPS, ratios=(fwd, bwd, dead))
        found_min, found_max = out[0], out[1]
        rows.append([name, net, f"search {STARTS},{STEPS}", fmt_t(t_search), fmt_t(t_scan),
                     f"{t_scan / t_search:.3g}x"])
        for boxes in BOXES:
            if boxes > 1024 and max(widths) > 32:
                continue        # seconds per trial: 1024 boxes show the trend
            lo, hi = np.empty((T, L)), np.empty((T, L))

            def call(boxes=boxes, lo=lo, hi=hi):
                fmn, fmx = found_min.copy(), found_max.copy()
                sup_bound.bounds(plan, 0, T, fmn, fmx, lo, hi, boxes, 0.0)
                return fmn, fmx
            t_bound = timed(call, budget) / T
            fmn, fmx = call()
            gap_up = np.median(hi / fmx - 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                gap_lo = np.median(np.where(lo > 0, fmn / lo - 1.0, np.inf))
            rows.append([name, net, f"bound {boxes} boxes", f"{fmt_t(t_bound)}; median gap max {gap_up:.3g}, "
                         f"min {gap_lo:.3g}", fmt_t(t_scan), f"{t_scan / t_bound:.3g}x"])
    return rows


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"   # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main():
    t0 = time.time()
    load0 = os.getloadavg()
    rows = []
    for name, n0, widths in CASES:
        print(f"{name} ...", file=sys.stderr)
        rows += case_rows(name, n0, widths, ARGS.quick)
    info = machine_info(numba, np)
    out = ["# mcinit: the property for every input of the sphere, time per trial", "",
           "## Machine and run", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [f"- threads (numba): {numba.get_num_threads()}",
            f"- date (UTC): {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}",
            f"- command: python benchmarks/bench_sup.py{' --quick' if ARGS.quick else ''}"
            f"{f' --threads {ARGS.threads}' if ARGS.threads else ''} --write",
            f"- load average (start / end): {' '.join(f'{x:.2f}' for x in load0)} / "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            f"- wall time of the run: {time.time() - t0:.0f} s", "",
            "## Time per trial", "",
            table(["case", "network (n_0/width x depth)", "method", "time per trial (and what it reached)",
                   "NumPy scan per trial", "scan / method"], rows), "",
            f"NumPy scan = a brute-force scan of the sphere with NumPy matrix products ({SCAN} angles of the "
            f"circle, or {SCAN} random points of the sphere), approximate: it misses the extremes by its "
            "resolution, and the exact extremes were checked never to be inside it. exact = the arc "
            "enumeration (n_0 = 2) or the region enumeration (small n_0; the share it finished within its "
            f"region budget). search = the local search from the best {STARTS} of {INPUTS} random inputs, "
            f"{STEPS} points each; bound = the branch-and-bound with that many boxes per layer and direction "
            "and no early stop; gap = certified / found - 1 (median over trials and layers: how far the "
            "truth can still be from what was found). Every method times all layers of a trial."]
    text = "\n".join(out) + "\n"
    print(text)
    if ARGS.write:
        with open(ARGS.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
