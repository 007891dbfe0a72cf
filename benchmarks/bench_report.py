"""The benchmark's report: the Markdown tables of RESULTS.md and the machine they were measured on."""

import os
import platform
import subprocess
import sys
from statistics import median

from bench_common import DISK_BYTES, ENGINE_CHUNK, FIXED_REP_FACTOR, KERNEL_ORDER, REPO, SETTINGS
from bench_hardware import GEMM_SIZE


class ReportWriter:
    """The report of a run (part of bench.Suite)."""

    # -------------------------------------------------------------- report

    def report(self):
        np = self.np
        T = self.threads
        out = []
        w = out.append
        mode = "QUICK (--quick: one short repetition per number; rough)" if self.quick else \
            (f"full (best of {self.reps} repetitions of ~{self.per_rep:g} s, ~{self.per_rep * FIXED_REP_FACTOR:g} s "
             f"for the many-input cases, and one more minutes later)")
        w("# mcinit benchmark results\n")
        w("The property for every input of the sphere (`--sup-search`: exact, search and certified "
          "bounds) is timed by `bench_sup.py`; its latest table is in [RESULTS-sup.md](RESULTS-sup.md).\n")
        if self.quick:
            w("> **This is a `--quick` run**: every number is one ~0.3 s measurement on a possibly "
              "busy machine, good to a few tens of percent. Rerun `python benchmarks/bench.py "
              "--write` on a quiet machine for numbers to quote.\n")
        w("## Machine and run\n")
        info = machine_info(self.numba, np)
        info["threads (numba and BLAS)"] = str(T)
        info["numba threading layer"] = _threading_layer(self.numba)
        info["PyTorch (torch column)"] = getattr(self, "torch_status", "not measured")
        info["date (UTC)"] = self.start.strftime("%Y-%m-%d %H:%M")
        info["mode"] = mode
        info["command"] = "python benchmarks/bench.py " + " ".join(sys.argv[1:])
        info["load average (start / end)"] = f"{self.load_start} / {self.load_end}"
        info["wall time of the run"] = f"{self.elapsed:.0f} s"
        info["CPU used by other processes during the run"] = (
            f"{self.other:.2f} cores on average (hypervisor steal {self.steal:.2f})")
        for k, v in info.items():
            w(f"- {k}: {v}")
        if self.other > 0.25 or self.steal > 0.25:
            w(f"- **WARNING: the machine was busy** (other processes used {self.other:.2f} of "
              f"{self.cores} cores on average): multi-thread numbers and the NumPy reference with "
              "threaded BLAS are the most affected; see the last column of the measurement details.")
        worst, ok = self.check_result
        w(f"- correctness check: dense kernel vs NumPy reference on identical weights, "
          f"max relative difference {worst:.1e} ({'ok' if ok else '**MISMATCH**'})")
        if getattr(self, "torch_check_result", None):
            tworst, tok = self.torch_check_result
            w(f"- correctness check: PyTorch reference (batched, autograd, float64) vs NumPy reference "
              f"on identical weights, max relative difference {tworst:.1e} "
              f"({'ok' if tok else '**MISMATCH**'})")
        else:
            w(f"- correctness check: PyTorch reference {getattr(self, 'torch_status', 'not measured')}")
        bworst, bok, worst32, worst_ref32, ok32 = self.blocked_check_result
        w(f"- correctness check: blocked kernel vs NumPy reference on identical weights (several "
          f"inputs, drawn per trial and a fixed dataset), max relative difference {bworst:.1e} "
          f"({'ok' if bok else '**MISMATCH**'})")
        w(f"- float32 against float64 on the same trials (max relative difference of the ratios): "
          f"blocked kernel {worst32:.1e}, NumPy reference {worst_ref32:.1e} "
          f"({'ok' if ok32 else '**LARGE**'}; rounding to float32 gives about 1e-6)")
        w("")
        if self.rows:
            self.report_throughput(w)
        if self.many_rows:
            self.report_many_inputs(w)
        self.report_hardware(w)
        if self.rows:
            self.report_floors(w)
            self.report_engine(w)
        self.report_tail(w)
        return "\n".join(out)

    def report_throughput(self, w):
        """The tables of the cases with inputs drawn per trial (C1, C2, C3, L1)."""
        hw = self.hw
        T = self.threads

        w(f"## Throughput (trials/s, {T} thread{'s' if T > 1 else ''}; ×: speed-up over the NumPy reference)\n")
        hdr = ["case", "network (in/width/depth)", "numpy ref", "torch (batched, autograd)"] + \
            [f"mcinit {k}" for k in KERNEL_ORDER] + \
            ["gen floor", "dense / gen floor", "drawn floor", "dense / drawn floor", "FLOP floor",
             "dense / FLOP floor", "blocked / FLOP floor"]
        rows = []
        for r in self.rows:
            c = r["case"]
            base = r["numpy"].rate
            cells = [c.name, c.label(), fmt_rate(base)]
            tm = r.get("torch")
            cells.append(f"{fmt_rate(tm.rate)} (×{fmt_ratio(tm.rate / base)})" if tm else
                         ("–" if getattr(self, "torch", None) is not None else
                          "not installed" if "not installed" in getattr(self, "torch_status", "")
                          else "skipped"))
            for k in KERNEL_ORDER:
                if k in r["kernels"]:
                    x = r["kernels"][k].rate
                    cells.append(f"{fmt_rate(x)} (×{fmt_ratio(x / base)})")
                else:
                    cells.append("–")
            gen_floor = hw["gen_best"] / c.normals_per_trial()
            flop_floor = hw["dgemm"] / c.flops_per_trial()
            cells.append(fmt_rate(gen_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / gen_floor) if "dense" in r["kernels"] else "–")
            drawn_floor = hw["gen_best"] / c.drawn_per_trial()
            cells.append(fmt_rate(drawn_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / drawn_floor) if "dense" in r["kernels"] else "–")
            cells.append(fmt_rate(flop_floor))
            cells.append(fmt_pct(r["kernels"]["dense"].rate / flop_floor) if "dense" in r["kernels"] else "–")
            cells.append(fmt_pct(r["kernels"]["blocked"].rate / flop_floor) if "blocked" in r["kernels"] else "–")
            rows.append(cells)
        w(md_table(hdr, rows))
        w("")
        if getattr(self, "torch", None) is not None:
            w(f"torch = `torch_reference.py`: PyTorch {self.torch.__version__} on the CPU, float64, "
              f"{self.threads} intra-op thread{'s' if self.threads > 1 else ''}, a batch of B "
              "networks at once (`torch.randn` weights, `torch.bmm` and `relu`, the backward pass by "
              "autograd; B under the measurement details), measured after everything else.\n")
        else:
            w(f"torch: not measured: PyTorch {getattr(self, 'torch_status', 'not checked')}.\n")
        numpy_note = ""
        if len(self.blas_counts) > 1:
            numpy_note = (f"numpy ref = the faster of the NumPy loop with BLAS on {T} threads and on "
                          "1 thread (both are listed below). ")
        w(numpy_note +
          f"gen floor = the fastest normal-variate rate measured ({hw['gen_best_name']}, "
          f"{hw['gen_best'] / 1e6:,.0f} M/s, best of 1 and {T} threads) / the normals of one network "
          "(every hidden weight and the head): no implementation that draws the whole network, as the "
          "NumPy and PyTorch references do, can beat it. drawn floor = the same rate / the normals the "
          "dense kernel actually transforms (W_1 whole; of W_2..W_L and the head only the columns of "
          "units some input activates, about half for one input): the strict floor of the dense "
          "kernel, which exceeds the gen floor by skipping weights that meet only zeros. FLOP floor = best measured dgemm "
          f"rate ({hw['dgemm'] / 1e9:.1f} GFLOP/s) / (2 sum n_l n_(l-1) N × 2, forward and "
          "backward); it binds where matrix products dominate (C3), and bounds the dense and "
          "blocked kernels. The projected and law kernels do not draw every weight, so neither "
          "floor applies to them.\n")

        from mcinit import engine
        autos = []
        for r in self.rows:
            c = r["case"]
            if c.name == "L1":
                continue
            picked = engine.resolve(self.config(c, "auto", 1)).kernel
            ks = r["kernels"]
            txt = f"{c.name} → {picked}"
            if picked in ks:
                best = max(ks, key=lambda k: ks[k].rate)
                if best != picked:
                    txt += (f" (**{best} measured ×{fmt_ratio(ks[best].rate / ks[picked].rate)} "
                            f"faster here**)")
            autos.append(txt)
        if autos:
            w("`--kernel auto` resolves to: " + "; ".join(autos) + ".\n")

        if len(self.blas_counts) > 1:
            w("## NumPy reference and BLAS threads (trials/s)\n")
            nrows = []
            for r in self.rows:
                c = r["case"]
                a = r["numpy_all"]
                nrows.append([c.name] + [fmt_rate(a[b].rate) for b in self.blas_counts]
                             + [f"{r['numpy_blas']} thread{'s' if r['numpy_blas'] > 1 else ''}"])
            w(md_table(["case"] + [f"BLAS {b} thread{'s' if b > 1 else ''}" for b in self.blas_counts]
                       + ["used as numpy ref"], nrows))
            w("\nA per-trial loop of small matrix products often runs slower on threaded BLAS, "
              "and much slower when another process holds a core (BLAS threads wait for each "
              "other).\n")

    def report_hardware(self, w):
        """The generator, dgemm and sgemm rates."""
        hw = self.hw
        T = self.threads
        w("## Hardware rates measured in this run\n")
        hrows = [
            ["numpy Generator.standard_normal(out=) (PCG64, ziggurat)", f"{hw['numpy_gen_1'] / 1e6:,.0f} M normals/s",
             f"{hw['numpy_gen_T'] / 1e6:,.0f} M normals/s"],
            ["mcinit.rng (Philox4x32-10 + inversion), normal_matrix 1024×1024",
             f"{hw['mcinit_gen_1'] / 1e6:,.0f} M normals/s", f"{hw['mcinit_gen_T'] / 1e6:,.0f} M normals/s"],
        ]
        n = GEMM_SIZE
        for name, what in (("dgemm", "float64"), ("sgemm", "float32")):
            hrows.append([f"numpy matmul {n}×{n} {what} ({name})",
                          f"{hw[name + '_1'] / 1e9:.1f} GFLOP/s" if name + "_1" in hw else "–",
                          f"{hw[name + '_T'] / 1e9:.1f} GFLOP/s"])
            if name + "_P" in hw:
                hrows.append([f"{T} {name} products at once, 1 BLAS thread each", "–",
                              f"{hw[name + '_P'] / 1e9:.1f} GFLOP/s"])
        if T == 1:
            hrows = [[r[0], r[2]] for r in hrows]
        w(md_table(["rate", "1 thread"] + ([f"{T} threads"] if T > 1 else []), hrows))
        w(f"\nmcinit generator / numpy generator: ×{fmt_ratio(hw['mcinit_gen_1'] / hw['numpy_gen_1'])} "
          "per thread. The mcinit rates are `rng.normal_matrix`'s path (blocks of rows through `fill_normal_block_cols`); the T-thread rate runs it in a numba prange. "
          f"The floors use the best dgemm ({hw['dgemm'] / 1e9:.1f} GFLOP/s) and sgemm "
          f"({hw['sgemm'] / 1e9:.1f} GFLOP/s) rate of the rows above.\n")

    def report_floors(self, w):
        """The floors of the cases with inputs drawn per trial, in detail."""
        hw = self.hw

        w("## Floors in detail\n")
        frows = []
        for r in self.rows:
            c = r["case"]
            gf_np = hw["numpy_gen"] / c.normals_per_trial()
            gf_mc = hw["mcinit_gen"] / c.normals_per_trial()
            ff = hw["dgemm"] / c.flops_per_trial()
            d = r["kernels"].get("dense")
            df_mc = hw["mcinit_gen"] / c.drawn_per_trial()
            frows.append([c.name, f"{c.normals_per_trial():,}", f"{c.drawn_per_trial():,.0f}",
                          fmt_rate(gf_np), fmt_rate(gf_mc), fmt_pct(d.rate / gf_mc) if d else "–",
                          fmt_pct(d.rate / df_mc) if d else "–",
                          f"{c.flops_per_trial() / 1e6:,.1f} M", fmt_rate(ff),
                          fmt_pct(r["numpy"].rate / ff)])
        w(md_table(["case", "normals / network", "normals drawn by dense", "floor (numpy gen)",
                    "floor (mcinit gen)", "dense / floor (mcinit gen)", "dense / drawn floor (mcinit gen)",
                    "FLOPs / trial", "FLOP floor", "numpy / FLOP floor"],
                   frows))
        w("\n`dense / drawn floor (mcinit gen)` near 100% means the dense kernel's time is its own "
          "generator on the normals it draws; well below means time goes elsewhere (finding the "
          "active units, the products, the backward pass) or threads idle.\n")

    def report_engine(self, w):
        """Engine overhead and batch size of the cases with inputs drawn per trial."""
        hw = self.hw
        w("## Where the time goes: engine overhead and batch size\n")
        erows = []
        for r in self.rows:
            c = r["case"]
            for k in KERNEL_ORDER:
                if k not in r["kernels"]:
                    continue
                e = r["kernels"][k].rate
                ko = r["kernel_only"][k].rate
                fix = r["batch_fix"].get(k)
                fm = r["file"].get(k)
                file_floor = hw["disk"] / fm.bytes_per_trial if fm else None
                erows.append([c.name, k, fmt_rate(e), fmt_rate(ko), fmt_pct(max(0.0, 1 - e / ko)),
                              str(r["batch"][k]),
                              f"{fmt_rate(fix[1].rate)} (batch {fix[0]}, ×{fmt_ratio(fix[1].rate / e)})"
                              if fix else "–",
                              f"{fmt_rate(fm.rate)} ({fmt_pct(fm.rate / e)})" if fm else "–",
                              f"{fmt_rate(file_floor)} ({fm.bytes_per_trial:.0f} B/trial)" if fm else "–"])
        w(md_table(["case", "kernel", "engine", "kernel.fill only", "engine share of time",
                    "default batch", "engine, batch ≥ threads", "engine into an HDF5 file (of engine)",
                    "disk floor"], erows))
        w("\nengine = `mcinit.engine.run` (reduction, failure counts, in-memory sink, background "
          "writer; with more than one thread a batch is reduced while the next ones are computed; calls "
          f"of up to {ENGINE_CHUNK:,} trials); kernel.fill only = the kernel's `fill` on preallocated arrays in the engine's "
          "default batches. Where the default batch is smaller than the thread count, a batch "
          "runs on fewer threads than available; `engine, batch ≥ threads` reruns with `batch_size` = 4 × "
          "threads. engine into an HDF5 file = the same into a results file, as `mcinit run` "
          "writes it (records staged in place, commits fsync'ed on their own thread); disk floor = "
          f"the disk's rate ({hw['disk'] / 1e6:,.0f} MB/s: {DISK_BYTES >> 20} MiB written and "
          "fsync'ed, best of the repetitions) / the file's bytes per trial: no run that keeps "
          "every trial's records on this disk can beat it.\n")


    def report_tail(self, w):
        """Thread scaling, the CLI, first calls and the measurement details."""
        if self.scaling:
            counts = self.scaling_counts
            w("## Thread scaling on C1 (trials/s)\n")
            srows = []
            for k, d, dk in self.scaling:
                cells = [k]
                for m in (d, dk):
                    lo, hi = m[counts[0]], m[counts[-1]]
                    cells += [fmt_rate(m[t].rate) for t in counts]
                    cells.append(f"×{fmt_ratio(hi.rate / lo.rate)}")
                    turns = [x.rates[self.turns_from[id(x)]:][:self.scaling_turns] for x in (lo, hi)]
                    cells.append(f"×{fmt_ratio(median([b / a for a, b in zip(*turns)]))}")
                    f = self.turns_from[id(hi)]
                    cells.append(f"{median(hi.busy[f:f + self.scaling_turns]):.2f}")
                srows.append(cells)
            names = [f"{t} thread{'s' if t > 1 else ''}" for t in counts]
            top = f"{counts[-1]} vs {counts[0]}"
            head = ["kernel"]
            for what in ("engine", "fill only"):
                head += [f"{what}, {n}" for n in names] + [f"{what} {top}, best", f"{what} {top}, pairs",
                                                            f"{what}: cores busy, {names[-1]}"]
            w(md_table(head, srows))
            w("\nengine as above (with one thread the background writer still has the other core); "
              "fill only = the kernel's `fill` alone, in the engine's default batches for that "
              f"thread count. The repetitions of the throughput table, then {self.scaling_turns} more of each, "
              "the thread counts taken in turn. best = the ratio of the best rates; pairs = the "
              "median ratio of the rates measured one after the other (a host whose speed drifts "
              "within seconds, as shared virtual machines do, disturbs the best two-thread rate "
              "more than the best one-thread rate: it needs both cores quiet at once); cores busy "
              f"= this process's CPU time / wall time with {names[-1]} (median): how fully the code "
              "keeps the threads at work, which the host's speed does not change.\n")

        if self.cli:
            w("## `mcinit run --trials 1e6` (the defaults: law kernel, HDF5 file, summary printed)\n")
            w(md_table(["numba cache", "whole command", "the run itself", "trials/s of the run", "file"],
                       [[how, f"{wall:.1f} s", f"{run:.1f} s", fmt_rate(rate), f"{size / 1e6:.0f} MB"]
                        for how, wall, run, rate, size in self.cli]))
            w("\nwhole command = wall time of the process, from the outside (Python start, imports, "
              "compilation or cache load, the run, the exact laws for the summary); the run itself = "
              "what the command reports (trials computed, reduced and committed to the file).\n")

        w("## First call (compile or numba cache load)\n")
        crows = []
        for k, (t, how) in self.compile.items():
            crows.append(["engine reduction (stats)" if k == "engine" else k, f"{t:.2f} s", how])
        w(md_table(["what", "first call", "how"], crows))
        w("\nKernels are warmed up on a tiny network of the same argument types before timing, so "
          "no throughput above includes compilation. `--cold` compiles into an empty temporary "
          "cache to show true compile times.\n")

        w("## Measurement details\n")
        drows = []
        for key, m in self.cache.items():
            if key[0] == "numpy":
                what = f"numpy {key[1]} BLAS {key[2]} thr" + (f" {key[3]}" if len(key) > 3 else "")
            elif key[0] == "threaded":
                what = f"blocked one trial at a time {key[1]} BLAS {key[2]} thr"
            elif key[0] == "torch":
                what = f"torch float64 autograd {key[1]} {key[2]} thr batch {key[3]}"
            elif key[0] == "kernel":
                what = f"{key[2]} fill-only {key[1]} {key[3]} thr"
            elif key[0] == "file":
                what = f"{key[2]} engine into an HDF5 file {key[1]} {self.threads} thr"
            else:
                what = f"{key[2]} engine {key[1]} {key[3]} thr" + (f" batch {key[4]}" if key[4] else "")
                if key[5:] != ("float64", "both"):
                    what += f" {key[5]} {key[6]}"
            drows.append([what, f"{m.n:,}", str(len(m.rates)), fmt_rate(m.rate),
                          fmt_pct(m.spread) if len(m.rates) > 1 else "–", f"{m.other:.2f}"])
        w(md_table(["measurement (in, width, depth, N)", "trials / repetition", "repetitions",
                    "best trials/s", "spread (best-worst)/best", "others' CPU (cores)"], drows))
        w("")

    def report_many_inputs(self, w):
        """The many-input cases (fixed inputs): the NumPy loop against the DGEMM and SGEMM
        floors, mcinit auto and blocked in each setting, and the BLAS thread choice."""
        hw = self.hw
        T = self.threads
        thr = f"{T} thread{'s' if T > 1 else ''}"
        w(f"## Many inputs per network (networks/s, {thr})\n")
        nrows = []
        for r in self.many_rows:
            c = r["case"]
            dfloor = hw["dgemm"] / c.flops_per_trial()
            sfloor = hw["sgemm"] / c.flops_per_trial()
            cells = [c.name, c.label()]
            for dt in ("float64", "float32"):
                cells.append(" / ".join(fmt_rate(r["numpy_all"][dt, b].rate) for b in r["numpy_counts"]))
            cells += [fmt_rate(dfloor), fmt_rate(sfloor), fmt_pct(r["numpy"]["float64"].rate / dfloor),
                      fmt_pct(r["numpy"]["float32"].rate / sfloor)]
            nrows.append(cells)
        counts = " / ".join(f"BLAS {b} thr" for b in self.many_rows[0]["numpy_counts"])
        w(md_table(["case", "network (in/width/depth)", f"numpy float64 ({counts})",
                    f"numpy float32 ({counts})", "DGEMM floor", "SGEMM floor",
                    "numpy float64 / DGEMM floor", "numpy float32 / SGEMM floor"], nrows))
        w(f"\nThe inputs are N = {self.many_rows[0]['case'].samples} Gaussian rows fixed in a .npy file "
          "(written once per run from a fixed seed), the same in every network. numpy = "
          "`numpy_reference.py`'s per-trial loop with the fixed inputs (every product one BLAS "
          "gemm over all N inputs), in float64 and in float32 (weights drawn in float32, sgemm; "
          "norms summed in float64), with BLAS on the thread counts listed; the faster is the "
          f"case's NumPy rate. DGEMM floor = the best dgemm rate ({hw['dgemm'] / 1e9:.1f} GFLOP/s) / "
          "the FLOPs of one network's products, 2 × 2 N sum n_l n_(l-1) (forward W h and "
          f"backward W^T delta); SGEMM floor the same at the best sgemm rate ({hw['sgemm'] / 1e9:.1f} "
          "GFLOP/s).\n")
        mrows = []
        for r in self.many_rows:
            c = r["case"]
            base = r["numpy"]["float64"].rate
            both = r["settings"][SETTINGS[0]]
            for (precision, properties), st in r["settings"].items():
                rate = hw["sgemm"] if precision == "float32" else hw["dgemm"]
                floor = rate / c.flops_per_trial(properties)
                cells = [c.name, f"{precision}, {properties}", st["picked"]]
                for k in ("auto", "blocked"):
                    m = st[k]
                    if k == "blocked" and st["picked"] == "blocked":
                        cells += ["= auto", "", "", ""]
                        continue
                    ratio = "–"
                    if properties == "forward":
                        ratio = f"×{fmt_ratio(m.rate / both[k].rate)}"
                    cells += [fmt_rate(m.rate), f"×{fmt_ratio(m.rate / base)}", fmt_pct(m.rate / floor), ratio]
                mrows.append(cells)
        w(md_table(["case", "precision, properties", "auto →", "mcinit auto", "× numpy", "of floor",
                    "forward / both", "mcinit blocked", "× numpy", "of floor", "forward / both"], mrows))
        fixed = [r["case"] for r in self.many_rows if r["case"].networks]
        w("\nmcinit = `mcinit.engine.run` with `--kernel auto` (auto → the kernel it resolves to) "
          "and with `--kernel blocked` (`= auto` where auto resolves to it), in-memory sink; "
          "precision and properties are the run options of that name (config.build). × numpy = "
          "over the float64 NumPy loop (float32 rows too). of floor = of the DGEMM floor, of the "
          "SGEMM floor for float32, and for forward only of the forward products' floor "
          "(2 N sum n_l n_(l-1) FLOP at the dgemm rate). forward / both = the rate with "
          "`properties forward` over the rate with both, the same kernel."
          + (f" {', '.join(c.name for c in fixed)}: one repetition of "
             f"{max(fixed[0].networks, T)} networks (NumPy: one), {thr} busy"
             + (" (full runs only)." if any(c.full_only for c in fixed) else ".") if fixed else "") + "\n")
        choice = next((r for r in self.many_rows if r["blas_choice"]), None)
        if choice is not None:
            c = choice["case"]
            b = choice["blas_choice"]
            floor = hw["dgemm"] / c.flops_per_trial()
            na = choice["numpy_all"]
            crows = [[f"blocked: {T} trials at once, 1 BLAS thread each (the kernel's choice)",
                      fmt_rate(b["parallel"].rate), fmt_pct(b["parallel"].rate / floor)],
                     [f"blocked: one trial at a time, BLAS on {T} threads",
                      fmt_rate(b["threaded"].rate), fmt_pct(b["threaded"].rate / floor)]]
            e = choice["settings"][SETTINGS[0]]["blocked"]
            crows.append([f"blocked through the engine (the table above: {T} trials at once)",
                          fmt_rate(e.rate), fmt_pct(e.rate / floor)])
            for bl in choice["numpy_counts"]:
                crows.append([f"numpy: one trial at a time, BLAS on {bl} thread{'s' if bl > 1 else ''}",
                              fmt_rate(na["float64", bl].rate), fmt_pct(na["float64", bl].rate / floor)])
            w(f"### BLAS threads on {c.name} (float64, both properties; networks/s)\n")
            w(md_table(["how the cores are used", "networks/s", "of DGEMM floor"], crows))
            w(f"\nThe first two rows: the kernel's `fill` alone (no engine), on {T} numba threads, "
              "each trial's products on one BLAS thread, against the kernel's own trial "
              f"(`blocked_trial`) in a loop, one network at a time, with BLAS on {T} threads "
              "(threadpoolctl). The third: the same fill through `mcinit.engine.run`, where a gap "
              "to the first is the engine's. "
              f"×{fmt_ratio(b['parallel'].rate / b['threaded'].rate)} for trials in parallel.\n")


# ------------------------------------------------------------------ formatting and machine

def fmt_rate(x):
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e4:
        return f"{x / 1e3:.3g}k"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_ratio(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_pct(x):
    return f"{100 * x:.0f}%" if x >= 0.1 else f"{100 * x:.1f}%"


def md_table(header, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def _threading_layer(numba):
    try:
        return numba.threading_layer()
    except Exception:
        return "n/a"


def machine_info(numba, np):
    from mcinit.estimate import cpu_model
    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name')} {deps.get('version')}"
    except Exception:
        pass
    try:
        import mcinit
        mc = mcinit.__version__
    except Exception:
        mc = "?"
    commit = "n/a"
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip() or "n/a"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if dirty:
            commit += " (uncommitted changes)"
    except Exception:
        pass
    return {
        "CPU": model,
        "cores available": f"{cores} (os.cpu_count() = {os.cpu_count()})",
        "Python": platform.python_version(),
        "numpy": f"{np.__version__} (BLAS: {blas})",
        "numba": numba.__version__,
        "mcinit": f"{mc}, commit {commit}",
    }
