"""Per-trial records and mergeable per-layer summary statistics (docs/design.md sections 2 and 7).

The reducer turns a batch of per-(trial, input, layer) ratios into per-trial
records (min and max over the trial's inputs; with more than one input also the
mean and population sd over them of the ratio and of its square root, INPUT_STATS)
and updates, in global trial order and input order, one Welford accumulator per
(quantity, space, layer):

    quantity  0 = forward ratio rho_l, 1 = backward ratio gamma_l
    space     0 = the ratio itself (finite values), 1 = its natural log (values > 0;
              fdlibm's log, log_values: within an ulp, the same on every machine)

plus fixed-edge histograms.  Because the update order is the trial order, the
summary is bit-identical for any thread count and batch size; summaries of
disjoint runs merge exactly in count and to rounding in mean and M2 (Chan et al.).
"""

import math

import numpy as np
from numba import njit
from scipy import stats as sps

from .options import FORMS
from .rng import log_values
from .threads import on_threads

__all__ = ["Summary", "SummaryView", "SUMMARY_AXES", "SPACES", "reduce_batch", "reduce_and_tally", "record_buffers", "failure_counts", "clopper_pearson", "log_values",
           "HIST_RANGE", "HIST_BINS", "QUANTITIES", "QUANTITIES_OF", "PROPS_OF", "record_fields", "properties_of",
           "FORMS", "FORM_FORMULAS", "deviation", "form_code", "EPS_LADDER", "EPS_CORE", "warn_norm_eps",
           "INPUT_STATS", "input_fields"]

#: histogram edges: (lo, hi) per space, HIST_BINS equal bins plus an underflow and an overflow bin
HIST_RANGE = ((0.0, 4.0), (-4.0, 4.0))
HIST_BINS = 400
# _reduce_job bins (v - lo) (nbins / (hi - lo)), the bin of (v - lo) / (hi - lo) nbins when
# hi - lo is a power of two
assert all(math.frexp(hi - lo)[0] == 0.5 for lo, hi in HIST_RANGE), "HIST_RANGE spans must be powers of two"
QUANTITIES = ("fwd", "bwd")
SPACES = ("ratio", "log")
#: the axes of a Summary's arrays, in order (Summary)
SUMMARY_AXES = ("quantity", "space", "layer")
#: the quantities a run computes and records, by its ``properties`` (mcinit.options.PROPERTIES)
QUANTITIES_OF = {"both": QUANTITIES, "forward": ("fwd",), "backward": ("bwd",)}
#: the failure properties counted from a run's records, by its ``properties``: "both" (a
#: trial fails when either property fails) needs both quantities
PROPS_OF = {"both": ("forward", "backward", "both"), "forward": ("forward",), "backward": ("backward",)}

#: the default tolerances, in every form: the run summary shows all of them, the report picks
#: the informative ones among them (mcinit.report.common.default_eps), results and JSON
#: documents use them when no eps is given.  From 0.05 (a 5% change of the norm, the scale of
#: the paper's figures at width 500 to 4000) to 2 (a norm three times too large, or, in the
#: symmetric form, three times too small); in the norm form eps >= 1 sees growing norms only
#: (|sqrt(r) - 1| <= 1 for every r <= 1), so a collapse shows there in the symmetric form alone
EPS_LADDER = (0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0)
#: the part of EPS_LADDER the report prefers when many tolerances are informative
EPS_CORE = (0.1, 0.25, 0.5, 1.0)

#: each form's deviation of a ratio, in words (deviation computes them)
FORM_FORMULAS = {"norm": "|sqrt(ratio) - 1|", "squared": "|ratio - 1|",
                 "symmetric": "max(sqrt(ratio), 1/sqrt(ratio)) - 1"}
#: the numba code of each form (_dev)
_FORM_CODES = {"squared": 0, "norm": 1, "symmetric": 2}


def form_code(form):
    """The code of a deviation form for the numba counters, or a ValueError naming the forms."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}; got {form!r}")
    return _FORM_CODES[form]


def deviation(r, form):
    """The deviation of ratios r (any shape) in a form, elementwise (docs/design.md section 2):

    norm       |sqrt(r) - 1|
    squared    |r - 1|
    symmetric  max(sqrt(r), 1/sqrt(r)) - 1 (+inf at r = 0)

    NaN and +inf deviate infinitely (a dead network), as the failure counts count them."""
    code = form_code(form)
    r = np.asarray(r, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if code == 0:
            d = np.abs(r - 1.0)
        elif code == 1:
            d = np.abs(np.sqrt(r) - 1.0)
        else:
            s = np.sqrt(r)
            d = np.maximum(s, 1.0 / s) - 1.0
    return np.where(np.isnan(r) | np.isinf(r), np.inf, d)


def warn_norm_eps(eps, form, stacklevel=3):
    """A Python warning (UserWarning, once per call) when norm-form tolerances of 1 or more are
    asked for: |sqrt(r) - 1| <= 1 for every r <= 1, so they cannot flag a collapsing norm.
    stacklevel: as warnings.warn's, counted from here, naming the caller that asked; a caller
    inside mcinit (the report's tables, whose eps the command line has warned about once,
    or chose itself) is not warned."""
    if form != "norm":
        return
    e = np.atleast_1d(np.asarray(eps, dtype=float))
    if not np.any(e >= 1.0):
        return
    import sys
    import warnings
    caller = sys._getframe(stacklevel - 1).f_globals.get("__name__", "")
    if caller == "mcinit" or caller.startswith("mcinit."):
        return
    warnings.warn(norm_eps_message(e), UserWarning, stacklevel=stacklevel)


def norm_eps_message(eps):
    """The words of warn_norm_eps (the CLI prints them as ``mcinit: warning: ...``)."""
    big = ", ".join(f"{float(v):g}" for v in np.atleast_1d(eps) if v >= 1.0)
    return (f"norm-form eps {big} >= 1 cannot detect collapse (|sqrt(ratio) - 1| <= 1 for every ratio "
            "<= 1, even 0): use --form symmetric (form='symmetric') to see vanishing norms")


#: the statistics over a trial's N inputs recorded beside min and max when N > 1, per layer:
#: mean and sd (population, ddof 0) of the ratio r (rho_l or gamma_l) and of sqrt(r), the
#: norm ratio (||h^l||/||x|| forward).  With N = 1 they are r, 0, sqrt(r), 0 (NaN for
#: the sd of an infinite r, as np.std): never stored, derived by the reader
INPUT_STATS = ("mean", "sd", "norm_mean", "norm_sd")


def input_fields(quantities=QUANTITIES):
    """The per-trial statistics over the inputs of ``quantities``: <quantity>_mean,
    <quantity>_sd, <quantity>_norm_mean, <quantity>_norm_sd each (INPUT_STATS)."""
    return tuple(f"{q}_{st}" for q in QUANTITIES if q in quantities for st in INPUT_STATS)


def record_fields(quantities=QUANTITIES, input_stats=False):
    """The per-trial record fields of ``quantities``: <quantity>_min, <quantity>_max each,
    and with input_stats (a run of more than one input per trial) its input_fields."""
    ends = ("min", "max") + (INPUT_STATS if input_stats else ())
    return tuple(f"{q}_{end}" for q in QUANTITIES if q in quantities for end in ends)


def properties_of(quantities):
    """The ``properties`` value whose quantities are ``quantities`` (QUANTITIES_OF's inverse)."""
    for props, qs in QUANTITIES_OF.items():
        if set(qs) == set(quantities):
            return props
    raise ValueError(f"no properties value computes the quantities {tuple(quantities)}")


class SummaryView:
    """One quantity in one space of a Summary, by name: arrays over the hidden layers
    (index l - 1 for layer l).

    quantity, space  its quantity (fwd: rho_l, bwd: gamma_l) and space (ratio or log)
    count            finite values per layer (int, (L,))
    mean, sd         their mean and unbiased standard deviation ((L,); NaN where none / below two)
    min, max         their extremes ((L,); +inf / -inf where none)
    hist             counts per layer in HIST_BINS equal bins over HIST_RANGE[space], with an
                     underflow bin first and an overflow bin last ((L, HIST_BINS + 2))
    edges            the HIST_BINS + 1 bin edges"""

    def __init__(self, summary, q, s):
        self.quantity, self.space = QUANTITIES[q], SPACES[s]
        self.count = summary.count[q, s]
        self.mean = np.where(self.count > 0, summary.mean[q, s], np.nan)
        self.sd = np.sqrt(summary.variance()[q, s])
        self.min, self.max = summary.min[q, s], summary.max[q, s]
        self.hist = summary.hist[q, s]
        self.edges = Summary.edges(s)

    def __repr__(self):
        return f"SummaryView({self.quantity!r}, {self.space!r}, {len(self.count)} layers)"


#: the names Summary.of takes for each quantity: the records' (fwd, bwd), the ratios' (rho,
#: gamma) and the properties' (forward, backward)
_QUANTITY_NAMES = {"fwd": 0, "rho": 0, "forward": 0, "bwd": 1, "gamma": 1, "backward": 1}


class Summary:
    """Streaming statistics per (quantity, space, layer) over all (trial, input) pairs.

    depth       L, the hidden layers
    quantities  the quantities the run computes (QUANTITIES_OF[properties]); the arrays
                keep both quantities' rows, and those of a quantity not computed stay
                empty (count 0) and are never written to a file

    The arrays count, mean, m2 (sum of squared deviations from the mean), min and max
    have the shape (2, 2, L), hist (2, 2, L, HIST_BINS + 2); their axes (SUMMARY_AXES):
      0 quantity  QUANTITIES: 0 fwd (rho_l = ||h^l||^2/||x||^2), 1 bwd (gamma_l, backward)
      1 space     SPACES: 0 ratio (the ratio's finite values), 1 log (ln of its values > 0)
      2 layer     hidden layer l = 1..L at index l - 1
    so summary.mean[0, 0] is the mean of rho_l by layer.  ``of(quantity, space)`` selects
    the same by name (summary.of("rho").mean, summary.of("gamma", "log").sd); trials and
    dead count the trials and the dead networks (docs/results.md)."""

    def __init__(self, depth, quantities=QUANTITIES):
        self.depth = depth
        self.quantities = tuple(q for q in QUANTITIES if q in quantities)
        if not self.quantities or len(self.quantities) != len(tuple(quantities)):
            raise ValueError(f"quantities must be some of {QUANTITIES}, got {quantities!r}")
        shape = (2, 2, depth)
        self.count = np.zeros(shape, dtype=np.int64)
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)
        self.hist = np.zeros(shape + (HIST_BINS + 2,), dtype=np.int64)
        self.trials = 0
        self.dead = 0

    def arrays(self):
        return dict(count=self.count, mean=self.mean, m2=self.m2, min=self.min, max=self.max,
                    hist=self.hist)

    @staticmethod
    def edges(space):
        lo, hi = HIST_RANGE[space]
        return np.linspace(lo, hi, HIST_BINS + 1)

    def of(self, quantity, space="ratio"):
        """The statistics of one quantity in one space, by name (a SummaryView of arrays over
        the layers).  quantity: rho, fwd or forward (rho_l); gamma, bwd or backward (gamma_l);
        space: ratio or log.  A quantity the run did not compute is a ValueError."""
        if quantity not in _QUANTITY_NAMES or space not in SPACES:
            raise ValueError(f"quantity must be one of {', '.join(_QUANTITY_NAMES)} and space one of "
                             f"{', '.join(SPACES)}; got {quantity!r}, {space!r}")
        q = _QUANTITY_NAMES[quantity]
        if QUANTITIES[q] not in self.quantities:
            raise ValueError(f"this summary holds no {quantity}: the run computed "
                             f"{properties_of(self.quantities)} (--properties)")
        return SummaryView(self, q, SPACES.index(space))

    def variance(self):
        """Unbiased variance per (quantity, space, layer) (NaN below two values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), np.nan)

    def merge(self, other):
        """Add another summary (disjoint trials) into this one (Chan's parallel update);
        both must hold the same quantities."""
        if other.quantities != self.quantities:
            raise ValueError(f"cannot merge a summary of {other.quantities} into one of {self.quantities}")
        na, nb = self.count.astype(float), other.count.astype(float)
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = np.where(n > 0, self.mean + delta * nb / np.maximum(n, 1), 0.0)
            m2 = self.m2 + other.m2 + delta ** 2 * na * nb / np.maximum(n, 1)
        self.mean = np.where(nb == 0, self.mean, np.where(na == 0, other.mean, mean))
        self.m2 = np.where(nb == 0, self.m2, np.where(na == 0, other.m2, m2))
        self.count = self.count + other.count
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        self.hist = self.hist + other.hist
        self.trials += other.trials
        self.dead += other.dead

    def copy(self):
        s = Summary(self.depth, self.quantities)
        for k, v in self.arrays().items():
            setattr(s, k, v.copy())
        s.trials, s.dead = self.trials, self.dead
        return s


#: values per pass of _reduce_job (whole trials): its buffers stay in the core's caches
_CHUNK_VALUES = 1024
#: lanes from which LLVM vectorises _reduce_job's row loop (its cost model's minimum trip
#: count with the loop's run-time overlap checks: 24 on AVX2 machines, 20 with AVX-512);
#: rows of half as many lanes or more are padded up to it with empty lanes
_VECTOR_LANES = 24


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_job(src, q, rec_min, rec_max, same, ext, flag, count, mean, m2, vmin, vmax, hist, lo, hi, nbins):
    """The accumulators of quantity q (src, (T, N, L)) in both spaces, updated per (trial,
    input) row in order; its records rec_min, rec_max (T, L): min and max over the inputs
    (same: they are one array, N = 1, written once); and each trial's extremes ext (T, 2),
    flag (T,) for the failure tally (_extremes), from the records while they are in cache.

    A row's 2 L values (the ratios where finite, their logarithms where positive, NaN
    where there is none) are the lanes of one loop, one accumulator chain per lane.  Its
    body is branch-free (a NaN changes nothing) so that it vectorises across the lanes and
    the chains' dependent divisions overlap; each chain takes the same operations in the
    same order as the value-by-value recursion, so the numbers are the same.  The loop also
    writes each value's histogram bin; a scalar pass counts them.

    The loop touches three arrays only (the state S, the row's values, its bins) and
    indexes them directly, no row views: every further array adds run-time overlap checks
    to the vectorised loop, and LLVM then runs the scalar loop below a trip count (28 on
    AVX-512 machines with five accumulator arrays) above the lanes of a depth-10 network:
    2.4 times slower."""
    T, N, L = src.shape
    K = 2 * L
    KP = max(K, _VECTOR_LANES) if 2 * K >= _VECTOR_LANES else K
    W = nbins + 2
    fn = np.float64(nbins)
    # S rows, lane k = L space + layer: 0-4 the accumulators (count as a float: no
    # conversion in the loop; mean, m2, min, max), 5-7 the bin constants.  The bin of v is
    # 1 + int((v - lo) / (hi - lo) nbins), at most nbins; with hi - lo a power of two
    # (HIST_RANGE), (v - lo) c with c = nbins / (hi - lo) is the same number (or both are
    # below 1).  Empty lanes (KP > K) take neutral values.
    S = np.zeros((8, KP))
    S[5:] = 1.0
    for s in range(2):
        for l in range(L):
            k = s * L + l
            S[0, k] = count[q, s, l]
            S[1, k] = mean[q, s, l]
            S[2, k] = m2[q, s, l]
            S[3, k] = vmin[q, s, l]
            S[4, k] = vmax[q, s, l]
            S[5, k] = lo[s]
            S[6, k] = hi[s]
            S[7, k] = fn / (hi[s] - lo[s])
    n0 = S[0, :K].copy()
    h = np.zeros(KP * W, dtype=np.int64)
    R = N * L
    CH = max(1, _CHUNK_VALUES // R)
    flat = src.reshape(T * R)
    V = np.full((CH * N, KP), np.nan)
    B = np.empty((CH * N, KP), dtype=np.uint32)
    lg = np.empty(CH * R)
    ws = np.empty(2 * CH * R, dtype=np.int64)
    for t0 in range(0, T, CH):
        nt = min(CH, T - t0)
        log_values(flat[t0 * R:(t0 + nt) * R], lg, nt * R, ws)
        if N == 1:
            # one pass per trial: the records (min = max = the ratio; NaN, of no input, is
            # +inf in min and -inf in max), the row's lanes, and the extremes (_extremes's
            # numbers where they count: the records hold no NaN, so some value is +inf
            # exactly when the largest is)
            for t in range(nt):
                tt = t0 + t
                a = np.inf
                b = -np.inf
                zero = False
                for l in range(L):
                    r = src[tt, 0, l]
                    m = r if r < np.inf else np.inf
                    rec_min[tt, l] = m
                    V[t, l] = r if r - r == 0.0 else np.nan
                    V[t, L + l] = lg[t * L + l]
                    a = m if m < a else a
                    b = m if m > b else b
                    zero |= m == 0.0
                if not same:
                    for l in range(L):
                        r = src[tt, 0, l]
                        m = r if r > -np.inf else -np.inf
                        rec_max[tt, l] = m
                        b = m if m > b else b
                ext[tt, 0] = a
                ext[tt, 1] = b
                flag[tt] = np.uint8(b == np.inf) + 2 * np.uint8(zero)
        else:
            for t in range(nt):
                tt = t0 + t
                for l in range(L):
                    r = src[tt, 0, l]
                    rec_min[tt, l] = r if r < np.inf else np.inf
                if not same:
                    for l in range(L):
                        r = src[tt, 0, l]
                        rec_max[tt, l] = r if r > -np.inf else -np.inf
                for x in range(1, N):
                    for l in range(L):
                        r = src[tt, x, l]
                        a = rec_min[tt, l]
                        b = rec_max[tt, l]
                        rec_min[tt, l] = r if r < a else a
                        rec_max[tt, l] = r if r > b else b
                for x in range(N):
                    j = t * N + x
                    for l in range(L):
                        r = src[tt, x, l]
                        V[j, l] = r if r - r == 0.0 else np.nan
                        V[j, L + l] = lg[j * L + l]
            _extremes(rec_min, rec_max, ext, flag, t0, t0 + nt)
        for j in range(nt * N):
            for k in range(KP):
                v = V[j, k]
                n = S[0, k]
                mu = S[1, k]
                sq = S[2, k]
                mn = S[3, k]
                mx = S[4, k]
                ok = v == v
                d = v - mu
                m = mu + d / (n + 1.0)
                e = sq + d * (v - m)
                S[0, k] = n + (1.0 if ok else 0.0)
                S[1, k] = m if ok else mu
                S[2, k] = e if ok else sq
                S[3, k] = v if v < mn else mn
                S[4, k] = v if v > mx else mx
                # the bin, less one (NaN: the underflow bin, taken out below)
                c = (v - S[5, k]) * S[7, k]
                c = c if c < fn - 1.0 else fn - 1.0
                c = c if v >= S[5, k] else -1.0
                c = fn if v >= S[6, k] else c
                B[j, k] = np.uint32(np.int32(c) + np.int32(k * W + 1))
        for j in range(nt * N):
            for k in range(K):
                h[B[j, k]] += 1
    hq = hist[q]
    for s in range(2):
        for l in range(L):
            k = s * L + l
            count[q, s, l] = np.int64(S[0, k])
            mean[q, s, l] = S[1, k]
            m2[q, s, l] = S[2, k]
            vmin[q, s, l] = S[3, k]
            vmax[q, s, l] = S[4, k]
            for i in range(W):
                hq[s, l, i] += h[k * W + i]
            hq[s, l, 0] -= T * N - np.int64(S[0, k] - n0[k])


@njit(cache=True, nogil=True, error_model="numpy")
def _input_moments(src, mean, sd, norm_mean, norm_sd):
    """mean, sd (T, L): the mean and the population sd (ddof 0) over the inputs of the
    ratios src (T, N, L); norm_mean, norm_sd: the same of their square roots.

    Two passes per trial, each summing over the inputs in their order x = 0..N-1 (the mean,
    then the squared deviations from it): a trial's numbers depend on its own ratios only,
    never on the batch, the thread or the shard it was reduced in.  As np.mean and np.std:
    an infinite ratio (a dead network's gamma) makes the mean +inf and the sd NaN, a NaN
    both NaN."""
    T, N, L = src.shape
    for t in range(T):
        for l in range(L):
            mean[t, l] = 0.0
            norm_mean[t, l] = 0.0
            sd[t, l] = 0.0
            norm_sd[t, l] = 0.0
        for x in range(N):
            for l in range(L):
                r = src[t, x, l]
                mean[t, l] += r
                norm_mean[t, l] += math.sqrt(r)
        for l in range(L):
            mean[t, l] /= N
            norm_mean[t, l] /= N
        for x in range(N):
            for l in range(L):
                r = src[t, x, l]
                d = r - mean[t, l]
                e = math.sqrt(r) - norm_mean[t, l]
                sd[t, l] += d * d
                norm_sd[t, l] += e * e
        for l in range(L):
            sd[t, l] = math.sqrt(sd[t, l] / N)
            norm_sd[t, l] = math.sqrt(norm_sd[t, l] / N)


def _reduce(src, qs, rec_min, rec_max, ext, flag, count, mean, m2, vmin, vmax, hist, lo, hi, nbins, moments=None):
    """One job per quantity q of qs (src[q]: its ratios), on up to two threads (the order
    within each is the trial order, so the numbers do not depend on the threads);
    rec_min, rec_max, ext, flag: indexed by quantity as src; moments[q] (with more than one
    input per trial): the arrays (mean, sd, norm_mean, norm_sd) of _input_moments, or None.
    Python threads over the nogil job rather than a parallel numba function: that would
    re-optimise the job when it compiles, seconds of a newcomer's first run."""
    moments = moments or [None, None]

    def one(q):
        _reduce_job(src[q], q, rec_min[q], rec_max[q], rec_min[q] is rec_max[q], ext[q],
                    flag[q], count, mean, m2, vmin, vmax, hist, lo, hi, nbins)
        if moments[q] is not None:
            _input_moments(src[q], *moments[q])
    jobs = [(lambda q=q: one(q)) for q in qs]
    if len(jobs) == 1 or src[qs[0]].shape[0] < 64:
        for job in jobs:
            job()
        return
    on_threads(jobs)


def record_buffers(capacity, depth, single=False, quantities=QUANTITIES, input_stats=False):
    """Arrays for reduce_batch's ``out``: the records of up to ``capacity`` trials, of the
    quantities computed (record_fields(quantities, input_stats)) and the dead flags.  With
    single (one input per trial) a trial's min and max are the same numbers: fwd_max is
    fwd_min and bwd_max is bwd_min, one array each (a NaN ratio, which no kernel makes, then
    reads +inf in both, where separate arrays would hold +inf and -inf).  input_stats: also
    the statistics over the inputs (input_fields; for more than one input per trial)."""
    if single and input_stats:
        raise ValueError("statistics over the inputs are recorded with more than one input per trial only")
    out = {}
    for q in QUANTITIES:
        if q in quantities:
            out[q + "_min"] = np.empty((capacity, depth))
            out[q + "_max"] = out[q + "_min"] if single else np.empty((capacity, depth))
    for name in input_fields(quantities) if input_stats else ():
        out[name] = np.empty((capacity, depth))
    out["dead"] = np.empty(capacity, dtype=bool)
    return out


def reduce_batch(fwd, bwd, dead, summary, out=None):
    """Per-trial records of a batch, and the summary updated in trial order.

    fwd, bwd  (T, N, L) ratios, N >= 1;  dead (T,) bool.  Only the quantities of the
              summary (summary.quantities) are read: the other array may be None or hold
              anything (a kernel leaves it as it is when the run does not compute it)
    out       optional record_buffers(C >= T, L, single, summary.quantities), or any such
              dict of C-contiguous rows (a sink's own storage), to write the records into
              (fresh arrays otherwise): reusing them spares the page faults of fresh
              memory, which serialise threads.  Where the max array is the min array
              (N = 1 only), the records are written once.
    returns   dict of the records of the summary's quantities (fwd_min, fwd_max, bwd_min,
              bwd_max: (T, L); with N > 1 also their input_fields, fwd_mean .. bwd_norm_sd
              (T, L), in out's arrays where out has them) and dead (T,)
    """
    return reduce_and_tally(fwd, bwd, dead, summary, None, out=out)[0]


def reduce_and_tally(fwd, bwd, dead, summary, eps, form="norm", out=None):
    """reduce_batch, and failure_counts(records, eps, form) from the records as they are
    made (no second pass over them; None for eps None): (records, failures).  The failures
    are those of the properties the summary's quantities decide (PROPS_OF)."""
    qs = [QUANTITIES.index(q) for q in summary.quantities]
    src = [None, None]
    for q in qs:
        src[q] = np.ascontiguousarray((fwd, bwd)[q], dtype=np.float64)
    T, N, L = src[qs[0]].shape
    if N < 1:
        raise ValueError("reduce_batch needs at least one input per trial")
    if out is None:
        out = record_buffers(T, L, single=N == 1, quantities=summary.quantities)
    rec = {k: out[k][:T] for k in record_fields(summary.quantities)}
    moments = [None, None]
    if N > 1:       # the statistics over the inputs (in out's arrays where it has them)
        for q in qs:
            names = [f"{QUANTITIES[q]}_{st}" for st in INPUT_STATS]
            for k in names:
                rec[k] = out[k][:T] if k in out else np.empty((T, L))
            moments[q] = tuple(rec[k] for k in names)
    for k in summary.quantities:
        if out[k + "_max"] is out[k + "_min"]:
            if N != 1:
                raise ValueError("the records' min and max can be one array only with one input per trial")
            rec[k + "_max"] = rec[k + "_min"]
    rec_min = [rec.get(k + "_min") for k in QUANTITIES]
    rec_max = [rec.get(k + "_max") for k in QUANTITIES]
    ext = np.empty((2, T, 2))
    flag = np.empty((2, T), dtype=np.uint8)
    for q in range(2):
        if q not in qs:         # not computed: no deviation, no flag (its counts are not returned)
            ext[q] = 1.0
            flag[q] = 0
    dead_rec = out["dead"][:T]
    dead_rec[:] = dead
    lo = np.array([r[0] for r in HIST_RANGE])
    hi = np.array([r[1] for r in HIST_RANGE])
    _reduce(src, qs, rec_min, rec_max, ext, flag, summary.count, summary.mean, summary.m2,
            summary.min, summary.max, summary.hist, lo, hi, HIST_BINS, moments)
    summary.trials += T
    summary.dead += int(np.count_nonzero(dead_rec))
    rec["dead"] = dead_rec
    if eps is None:
        return rec, None
    counts = _count_failures(ext, flag, eps, form)
    return rec, {p: counts[p] for p in PROPS_OF[properties_of(summary.quantities)]}


@njit(cache=True, inline="always")
def _dev(r, code):
    """The deviation of one ratio in the form of ``code`` (_FORM_CODES; deviation)."""
    if r != r or r == np.inf:
        return np.inf
    if code == 0:
        return abs(r - 1.0)
    s = math.sqrt(r)
    if code == 1:
        return abs(s - 1.0)
    if s == 0.0:
        return np.inf
    return max(s, 1.0 / s) - 1.0


@njit(cache=True, inline="always")
def _extremes(rmin, rmax, ext, flag, t_lo, t_hi):
    """For trials t_lo..t_hi-1 of records rmin, rmax (T, L): ext[t] = (the smallest, the
    largest) of the trial's 2 L values, flag[t] = 1 if some value is NaN or +inf (the trial
    fails at every tolerance), + 2 if some rmin value is 0 (a dead layer, forward)."""
    L = rmin.shape[1]
    for t in range(t_lo, t_hi):
        lo = np.inf
        hi = -np.inf
        bad = False
        zero = False
        for l in range(L):
            a = rmin[t, l]
            b = rmax[t, l]
            bad |= (a != a) | (b != b) | (a == np.inf) | (b == np.inf)
            zero |= a == 0.0
            lo = min(lo, a, b)
            hi = max(hi, a, b)
        ext[t, 0] = lo
        ext[t, 1] = hi
        flag[t] = np.uint8(bad) + 2 * np.uint8(zero)


@njit(cache=True, nogil=True, error_model="numpy")
def _count_chunk(ext, flag, eps, code, counts, t_lo, t_hi):
    """counts[prop, e] += failures among trials t_lo..t_hi-1 (prop 0 forward, 1 backward,
    2 both), from the extremes of both quantities (ext (2, T, 2), flag (2, T)).

    A trial's largest deviation max_l _dev(r_l) is max(_dev(its smallest), _dev(its
    largest)): sqrt(r) - 1 and r - 1 are non-decreasing in r (correctly rounded), so |.|
    of them peaks at an end, and max(sqrt(r), 1/sqrt(r)) - 1 falls to 0 at r = 1 and
    rises after, so it peaks at an end too.  Two square roots per quantity and trial
    instead of 2 L.  code: the form's code (_FORM_CODES)."""
    for t in range(t_lo, t_hi):
        ff = flag[0, t]
        bf = flag[1, t]
        fd = np.inf if ff & 1 else max(_dev(ext[0, t, 0], code), _dev(ext[0, t, 1], code))
        bd = np.inf if bf & 1 else max(_dev(ext[1, t, 0], code), _dev(ext[1, t, 1], code))
        dead = (ff & 2) != 0
        for i in range(eps.shape[0]):
            f = dead or fd > eps[i]
            b = bd > eps[i]
            if f:
                counts[0, i] += 1
            if b:
                counts[1, i] += 1
            if f or b:
                counts[2, i] += 1


def _forms(eps, form):
    """(eps as a contiguous float array, the form's code for the numba counters)."""
    code = form_code(form)
    return np.ascontiguousarray(np.atleast_1d(np.asarray(eps, dtype=float))), np.int64(code)


def _count_failures(ext, flag, eps, form="norm"):
    """failure_counts from the extremes of reduce_and_tally, in two halves on two threads."""
    eps, code = _forms(eps, form)
    T = ext.shape[1]
    parts = 2 if T >= 8192 else 1
    counts = np.zeros((parts, 3, len(eps)), dtype=np.int64)
    on_threads([(lambda c=c: _count_chunk(ext, flag, eps, code, counts[c], (T * c) // parts,
                                          (T * (c + 1)) // parts)) for c in range(parts)])
    total = counts.sum(axis=0)
    return {"forward": total[0], "backward": total[1], "both": total[2]}


@njit(cache=True, nogil=True, error_model="numpy")
def _tally(fmin, fmax, bmin, bmax, has_f, has_b, eps, code, nchunks, counts, c_lo, c_hi):
    """counts[chunk]: the failure counts (_count_chunk) of the trials in a chunk of records,
    for the chunks c_lo .. c_hi - 1 of nchunks; a quantity the records do not hold (has_f,
    has_b False; its arrays are the other's, for their shape) counts no deviation."""
    T = fmin.shape[0]
    for c in range(c_lo, c_hi):
        a = (T * c) // nchunks
        b = (T * (c + 1)) // nchunks
        ext = np.ones((2, b - a, 2))
        flag = np.zeros((2, b - a), dtype=np.uint8)
        if has_f:
            _extremes(fmin[a:b], fmax[a:b], ext[0], flag[0], 0, b - a)
        if has_b:
            _extremes(bmin[a:b], bmax[a:b], ext[1], flag[1], 0, b - a)
        _count_chunk(ext, flag, eps, code, counts[c], np.int64(0), b - a)   # int64: no literal-0 copy


def failure_counts(records, eps, form="norm"):
    """Failures at each eps: dict prop -> int array (len(eps)), for the properties the
    records decide (PROPS_OF): forward, backward and both when they hold both quantities'
    fields (fwd_min, fwd_max, bwd_min, bwd_max), forward or backward alone otherwise.

    A trial fails the forward property when some rho_l deviates by more than eps
    or some layer is dead (rho_l = 0); the backward property when some gamma_l
    deviates by more than eps (gamma = inf when delta^L = 0, a dead network).  form:
    norm, squared or symmetric (deviation); in the symmetric form a ratio of 0 deviates
    infinitely, so a vanished gamma_l fails the backward property at every eps too."""
    eps, code = _forms(eps, form)
    quantities = tuple(q for q in QUANTITIES if q + "_min" in records)
    props = PROPS_OF[properties_of(quantities)]
    have = {q: (np.ascontiguousarray(records[q + "_min"], dtype=float),
                np.ascontiguousarray(records[q + "_max"], dtype=float)) for q in quantities}
    f = have.get("fwd", have.get("bwd"))
    b = have.get("bwd", f)
    nchunks = max(1, min(64, len(f[0]) // 4096))
    counts = np.zeros((nchunks, 3, len(eps)), dtype=np.int64)
    args = (f[0], f[1], b[0], b[1], "fwd" in have, "bwd" in have, eps, code, nchunks, counts)
    on_threads([(lambda c=c: _tally(*args, c, c + 1)) for c in range(nchunks)])
    total = counts.sum(axis=0)
    every = {"forward": total[0], "backward": total[1], "both": total[2]}
    return {p: every[p] for p in props}


def clopper_pearson(k, n, level=0.95):
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k/n."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = 1.0 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, sps.beta.ppf(a / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, sps.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    return low, high
