"""Residual networks (--arch residual, single-skip): the dense kernel against an independent
NumPy network and finite differences, the law kernel and both kernels against the exact block
law (mcinit.theory), the run command end to end and its refusals.  docs/design.md section 9."""

import numpy as np
import pytest
from scipy import stats

from mcinit import config, theory
from mcinit.kernels import common, dense, law

import reference

P_MIN = 1e-6     # KS tests: a false failure in about one run of a million


def fill(mod, cfg, data, first, count, **kw):
    plan = common.make_plan(cfg, data)
    N, L = cfg.samples, cfg.depth
    fwd = np.full((count, N, L), -1.0)
    bwd = np.full((count, N, L), -1.0)
    dead = np.zeros(count, dtype=bool)
    mod.fill(plan, first, count, fwd, bwd, dead, **kw)
    return fwd, bwd, dead


CASES = [
    dict(arch="residual", input_dim=7, widths="6,5,6,4,6", samples=3, head="softmax:4", init="he"),
    dict(arch="residual", input_dim=5, width=8, blocks=1, samples=2, head="gaussian:3", init="glorot",
         branch_scale="0.3", data="sphere"),
    dict(arch="residual", input_dim=6, width=5, blocks=2, samples=1, init="wn", dist="normal"),
    dict(arch="single-skip", input_dim=7, widths="6,5,7,4,6", samples=3, head="softmax:4", init="he",
         branch_scale="1/B"),
    dict(arch="single-skip", input_dim=4, width=6, blocks=1, samples=2, init="he", dist="uniform",
         head="gaussian:5"),
    dict(arch="single-skip", input_dim=6, width=5, blocks=3, samples=2, init="wn-unit", seed=2 ** 63 + 3),
]


@pytest.mark.parametrize("store", [None, False])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_dense_residual_kernel_matches_numpy_reference(case, store):
    """The dense kernel draws the plain network's weights; with the skips it computes the NumPy
    network's rho and gamma to 1e-10 (kept or redrawn weights alike)."""
    cfg, data = config.build(trials=10, kernel="dense", **CASES[case])
    for first in (0, 2 ** 33 + 5):
        fwd, bwd, dead = fill(dense, cfg, data, first, 5, store=store)
        for j in range(5):
            rho, gamma = reference.residual_trial_ratios(cfg, first + j, data)
            np.testing.assert_allclose(fwd[j], rho, rtol=1e-10, atol=0)
            np.testing.assert_allclose(bwd[j], gamma, rtol=1e-10, atol=0)
            assert dead[j] == bool(np.any(rho == 0) or np.any(np.isinf(gamma)))


@pytest.mark.parametrize("case", [0, 3])
def test_dense_residual_forward_only_equals_the_forward_of_both(case):
    cfg, data = config.build(trials=10, kernel="dense", **CASES[case])
    fcfg, _ = config.build(trials=10, kernel="dense", properties="forward", **CASES[case])
    fwd, _, _ = fill(dense, cfg, data, 3, 4)
    ffwd, fbwd, fdead = fill(dense, fcfg, data, 3, 4)
    np.testing.assert_array_equal(ffwd, fwd)
    assert np.all(fbwd == -1.0)                           # no backward pass: bwd left as it was
    assert np.array_equal(fdead, np.any(ffwd == 0, axis=(1, 2)))
