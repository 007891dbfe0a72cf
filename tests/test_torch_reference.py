"""The benchmark's batched PyTorch reference (benchmarks/torch_reference.py) computes
the same ratios as the NumPy reference on the same weights, inputs and targets.

Skips without torch (it is only the optional `bench` extra)."""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import numpy_reference as npref  # noqa: E402
import torch_reference as tref  # noqa: E402

WIDTHS = (12, 16, 9, 16)
CLASSES = 5


def numpy_batch(samples, trials=3, seed=7):
    gen = np.random.default_rng(seed)
    return [npref.draw_trial(gen, WIDTHS, samples, CLASSES) for _ in range(trials)]


@pytest.mark.parametrize("samples", [1, 4])
def test_same_ratios_as_numpy_reference(samples):
    trials = numpy_batch(samples)
    rho, gamma = tref.ratios(*tref.from_numpy_trials(trials))
    assert rho.dtype == torch.float64 and rho.shape == (3, samples, len(WIDTHS) - 1)
    for b, tr in enumerate(trials):
        r, g = npref.ratios(*tr)
        np.testing.assert_allclose(rho[b].numpy(), r, rtol=1e-12)
        np.testing.assert_allclose(gamma[b].numpy(), g, rtol=1e-12)


def test_weight_gradients_give_the_same_gamma():
    batch = tref.from_numpy_trials(numpy_batch(1))
    rho_a, gamma_a = tref.ratios(*batch)
    rho_w, gamma_w = tref.ratios(*batch, grad="weights")
    torch.testing.assert_close(rho_w, rho_a, rtol=1e-12, atol=0)
    torch.testing.assert_close(gamma_w, gamma_a, rtol=1e-12, atol=0)
    with pytest.raises(ValueError):
        tref.ratios(*tref.from_numpy_trials(numpy_batch(2)), grad="weights")


def test_run_trials_batches_and_moments():
    widths = (20, 64, 64, 64)
    rho, gamma = tref.run_trials(widths, 1, CLASSES, trials=200, B=64, seed=3)
    assert rho.shape == gamma.shape == (200, 1, 3)
    assert torch.isfinite(rho).all()
    # E rho_l = 1 under He init (docs/design.md section 4): 200 trials, Var rho_3 < 0.3
    assert abs(rho[:, 0, -1].mean().item() - 1) < 0.25
    # C2's network: 84 MB per trial, 12 trials in 1 GiB
    assert tref.batch_size(widths, 1, CLASSES) >= 1
    assert tref.batch_size((1024,) * 11, 1, 20, budget=1 << 30) == 12
