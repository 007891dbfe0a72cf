"""The generator and the kernels' shared helpers as the CUDA kernels see them.

The CUDA backend draws exactly the CPU's numbers because it runs the CPU's own
Python functions: numba compiles an ``@njit`` function for the GPU when a CUDA
kernel calls it (the target is chosen at the call).  So ``rng.philox_block``,
``rng.counter_words``, ``rng.u32_to_normal`` (with ``ndtri``),
``rng.u32_to_uniform``, ``rng.words_to_u53`` and ``rng.sample_gamma`` are called
from the CUDA kernels as they are, and nothing of the generator is written a
second time.

One CPU helper cannot run on a GPU as it is: ``rng.fill_normal_row`` vectorises
through a scratch row (``np.empty``), and device code cannot allocate.  Its
numbers are column by column ``scale * rng.u32_to_normal(word)``, so the device
namespace below replaces it by the one-pass loop over the same words (the loop
its own short-row path runs).  ``device_version(fn)`` compiles the Python
source of a shared helper (``common.head_error``, ``projected.input_factor``,
``law.law_trial``) against that namespace: the same source, the same numbers,
no allocation.  ``tests/test_cuda.py`` checks the loop against
``rng.fill_normal_row`` on the CPU.
"""

import types

import numpy as np
from numba import njit

from .. import rng

__all__ = ["fill_normal_row_1pass", "device_rng", "device_version"]


@njit(cache=True)
def fill_normal_row_1pass(k0, k1, c2, c3, row, scale, out, n):
    """rng.fill_normal_row without scratch: out[j] = scale * u32_to_normal(word j of ``row``)."""
    r = np.uint64(row)
    for b in range((n + 3) // 4):
        w0, w1, w2, w3 = rng.philox_block(np.uint64(b), r, c2, c3, k0, k1)
        for c in range(min(4, n - 4 * b)):   # one inversion call site: fewer GPU registers
            w = w0 if c == 0 else (w1 if c == 1 else (w2 if c == 2 else w3))
            out[4 * b + c] = scale * rng.u32_to_normal(w)


def _make_device_rng():
    mod = types.ModuleType("mcinit.rng[device]")
    for k, v in vars(rng).items():
        if not k.startswith("__"):
            setattr(mod, k, v)
    mod.fill_normal_row = fill_normal_row_1pass
    return mod


#: mcinit.rng with fill_normal_row replaced by its allocation-free equivalent
device_rng = _make_device_rng()


def device_version(fn, **names):
    """The Python function of ``fn`` (an @njit dispatcher) with ``rng`` bound to
    device_rng and any other global rebound by ``names``; compile it with
    cuda.jit(device=True) (or call it from a kernel)."""
    py = getattr(fn, "py_func", fn)
    g = dict(py.__globals__)
    g["rng"] = device_rng
    g.update(names)
    return types.FunctionType(py.__code__, g, py.__name__, py.__defaults__, py.__closure__)
