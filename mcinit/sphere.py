"""The forward property over every input at once: per trial and layer, the extremes of
rho_l(x) = ||h^l(x)||^2 / ||x||^2 over the unit sphere of R^(n_0), by the best method the
input dimension allows (docs/design.md sections 15-17).

- n_0 = 2: exact, always (kernels/sup_circle.py: the circle cut into the arcs on which the
  network is linear, the quadratic form maximised and minimised on each arc in closed form).
- 3 <= n_0 <= sup_regions.MAX_DIM: exact where the activation regions that meet the sphere
  are at most sup_regions.MAX_REGIONS at every layer up to l (kernels/sup_regions.py);
  past that, for the layers it did not reach, as for larger n_0.
- otherwise: the local search (kernels/sup.py) finds extremes at actual inputs, and a
  branch-and-bound over the sphere (kernels/sup_bound.py) certifies bounds on the other
  side, within the configuration's box budget and gap (--sup-bound).

Per trial and layer the run records (mcinit.layout.SUP_FIELDS, SUP_CERTIFIED_FIELDS):

    sup_min <= inf rho_l      found at actual inputs (the random ones among them): an
    sup_max >= ...            upper estimate of the infimum, a lower one of the supremum
    sup_lower <= inf rho_l    certified bounds (to the rounding margin of
    sup_upper >= sup rho_l    sup_bound.widen)
    sup_method                SUP_METHODS index: 1 exact (sup_min, sup_max are the extremes,
                              to rounding), 0 the search with certified bounds

so the true extremes lie in [sup_lower, sup_min] and [sup_max, sup_upper].  Every method is
deterministic per trial: the columns do not depend on threads, batches, shards or resumes.
"""

import numpy as np

from .layout import SUP_METHODS

__all__ = ["extremes", "tally", "method_of", "METHOD_SEARCH", "METHOD_EXACT", "exact_dims"]

METHOD_SEARCH, METHOD_EXACT = SUP_METHODS.index("search"), SUP_METHODS.index("exact")


def exact_dims():
    """The input dimensions with an exact method (2 always, then up to sup_regions.MAX_DIM
    where the regions are few enough)."""
    from .kernels import sup_regions
    return tuple(range(2, sup_regions.MAX_DIM + 1))


def method_of(input_dim):
    """What a run of input dimension n_0 tries first, in words (the run summary says it)."""
    from .kernels import sup_regions
    if input_dim == 2:
        return "exact (the circle's arcs)"
    if 3 <= input_dim <= sup_regions.MAX_DIM:
        return (f"exact where the activation regions are at most {sup_regions.MAX_REGIONS}, "
                "else local search with certified bounds")
    return "local search with certified bounds (branch-and-bound)"


def _random_extremes(fwd):
    """rho_l's min and max over each trial's random inputs: fwd (count, N, L)."""
    return fwd.min(axis=1), fwd.max(axis=1)


def extremes(plan, config, first, fwd, bwd, dead):
    """The columns sup_min, sup_max, sup_lower, sup_upper, sup_method ((count, L) each) of
    trials first..first+count-1, given the dense kernel's ratios on the trials' random
    sphere inputs fwd, bwd (count, N, L) and dead flags (count,) (the search starts from
    them).  A configuration without sup_boxes (a file of an earlier mcinit) gets the
    search's two columns only."""
    from .kernels import sup, sup_bound
    count, L, n0 = fwd.shape[0], config.depth, config.input_dim
    smin, smax = (np.empty((count, L)) for _ in range(2))

    def search():
        bmin, bmax, dev = (np.empty((count, L)) for _ in range(3))
        sup.fill(plan, first, count, smin, smax, bmin, bmax, dev, np.zeros(count, dtype=np.bool_),
                 config.samples, config.sup_starts, config.sup_steps, ratios=(fwd, bwd, dead))

    if not config.sup_certified:
        search()
        return {"sup_min": smin, "sup_max": smax}
    exact = np.zeros((count, L), dtype=np.bool_)
    emin, emax = (np.full((count, L), np.nan) for _ in range(2))
    if n0 == 2:
        from .kernels import sup_circle
        sup_circle.extremes(plan, first, count, emin, emax)
        exact[:] = True
    elif n0 in exact_dims():
        from .kernels import sup_regions
        sup_regions.extremes(plan, first, count, emin, emax, exact)
    if exact.all():
        # the random inputs are actual inputs too: the exact extremes are never less extreme
        # than theirs (to rounding; taking them keeps sup_min <= fwd_min, sup_max >= fwd_max)
        rmin, rmax = _random_extremes(fwd)
        smin[:] = np.minimum(emin, rmin)
        smax[:] = np.maximum(emax, rmax)
    else:
        search()
        smin[exact] = np.minimum(emin[exact], smin[exact])
        smax[exact] = np.maximum(emax[exact], smax[exact])
    lower, upper = (np.empty((count, L)) for _ in range(2))
    lower[exact], upper[exact] = sup_bound.widen(smin[exact], smax[exact], plan.widths)
    if not exact.all():
        sup_bound.bounds(plan, first, count, smin, smax, lower, upper, config.sup_boxes, config.sup_gap,
                         skip=exact)
    method = np.where(exact, METHOD_EXACT, METHOD_SEARCH).astype(np.uint8)
    return {"sup_min": smin, "sup_max": smax, "sup_lower": lower, "sup_upper": upper, "sup_method": method}


def tally(records, eps, form="norm"):
    """{"sup": trials failing at eps at the extremes found (certain failures), "sup_possible":
    trials whose certified bounds do not exclude a failure, "sup_exact": (trial, layer) pairs
    computed exactly (one count, not per eps), "sup_pairs": (trial, layer) pairs} of records
    holding a run's supremum columns (version 4's)."""
    from .stats import failure_counts
    found = failure_counts(dict(fwd_min=records["sup_min"], fwd_max=records["sup_max"]), eps, form)["forward"]
    bounded = failure_counts(dict(fwd_min=records["sup_lower"], fwd_max=records["sup_upper"]), eps, form)["forward"]
    method = np.asarray(records["sup_method"])
    return {"sup": found, "sup_possible": bounded, "sup_exact": int(np.count_nonzero(method == METHOD_EXACT)),
            "sup_pairs": int(method.size)}
