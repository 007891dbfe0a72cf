"""The activations phi of the hidden layers: one place for their codes, functions and gains.

The names and the option's parser live with the other enumerations (mcinit.options:
ACTIVATIONS, parse_activation); a run names its activation by the canonical text
('relu', 'leaky-relu:0.1', ...).  Here:

- ``code_of(text)``: (code, alpha), what the kernels receive (ACT_* and the leaky slope);
- ``phi`` and ``dphi``: phi(a) and phi'(a) for one float, compiled (the kernels call them;
  ``apply`` and ``derivative`` run them over NumPy arrays for the theory's quadratures);
- ``gain(text)``: the gain g of the variance-scaling presets he and he-in and of orthogonal
  weights, g^2 = 1 / E[phi(z)^2] for z ~ N(0, 1), the variance that keeps E q_l = E q_(l-1)
  one layer on (exact for every q for the homogeneous activations; torch's calculate_gain
  gives the same for relu, leaky-relu and linear).  tanh and gelu are not homogeneous: no
  gain preserves E q for every q, and theirs is the one of q = 1 (tanh: 1.5925, where
  torch's calculate_gain says 5/3; gelu: 1.5335).

At the kinks phi'(0) is 0 for relu (as a ReLU's mask 1[a > 0]) and abs, alpha for leaky-relu
(the left derivatives of relu and leaky-relu); a pre-activation is exactly 0 with probability 0
for Gaussian weights.

tanh and gelu call the C library's tanh and erfc: the same numbers on one machine, and
within a few ulps across machines (gelu(a) = a Phi(a) with Phi(a) = erfc(-a / sqrt 2) / 2,
accurate to a few ulps where Phi is small, where 1 + erf(a / sqrt 2) would cancel) (relu, leaky-relu, abs and linear are exact arithmetic).
"""

import math

import numpy as np
from numba import njit

from .options import ACTIVATIONS, HOMOGENEOUS_ACTIVATIONS, parse_activation

__all__ = ["ACT_RELU", "ACT_LEAKY", "ACT_ABS", "ACT_LINEAR", "ACT_TANH", "ACT_GELU", "code_of", "name_of",
           "slope_of", "homogeneous", "phi", "dphi", "apply", "derivative", "gain", "second_moment"]

ACT_RELU, ACT_LEAKY, ACT_ABS, ACT_LINEAR, ACT_TANH, ACT_GELU = range(6)
_CODES = dict(zip(ACTIVATIONS, range(6)))

#: E[phi(z)^2], z ~ N(0, 1), of the activations that are not homogeneous (Gauss-Hermite quadrature
#: of 200 nodes agrees with scipy's adaptive quadrature to 1e-15; tests/test_activations.py)
_SECOND_MOMENT_Q1 = {"tanh": 0.39429449039784087, "gelu": 0.4252214825702987}


def name_of(text):
    """The activation's name without its slope ('leaky-relu:0.1' -> 'leaky-relu')."""
    return parse_activation(text).partition(":")[0]


def slope_of(text):
    """The leaky-relu slope alpha (0.0 for the other activations)."""
    t = parse_activation(text)
    return float(t.partition(":")[2]) if t.startswith("leaky-relu") else 0.0


def code_of(text):
    """(code, alpha) of an activation's text: what the kernels receive."""
    return _CODES[name_of(text)], slope_of(text)


def homogeneous(text):
    """Whether phi(c a) = c phi(a) for c > 0 (relu, leaky-relu, abs, linear)."""
    return name_of(text) in HOMOGENEOUS_ACTIVATIONS


def second_moment(text):
    """E[phi(z)^2] for z ~ N(0, 1): 1/2 (relu), (1 + alpha^2)/2 (leaky-relu), 1 (abs, linear)."""
    name = name_of(text)
    if name == "relu":
        return 0.5
    if name == "leaky-relu":
        return 0.5 * (1.0 + slope_of(text) ** 2)
    if name in ("abs", "linear"):
        return 1.0
    return _SECOND_MOMENT_Q1[name]


def gain(text):
    """The activation's gain g, g^2 = 1 / E[phi(z)^2] (module docstring); leaky-relu with
    slope +-1 is linear or abs (gain 1)."""
    return 1.0 / math.sqrt(second_moment(text))


_SQRT1_2 = 0.7071067811865476


@njit(cache=True, inline="always")
def phi(code, alpha, a):
    """phi(a) of the activation with this code (ACT_*) and leaky slope alpha."""
    if code == 0:
        return a if a > 0.0 else 0.0
    if code == 1:
        return a if a > 0.0 else alpha * a
    if code == 2:
        return abs(a)
    if code == 3:
        return a
    if code == 4:
        return math.tanh(a)
    return 0.5 * a * math.erfc(-a * _SQRT1_2)


@njit(cache=True, inline="always")
def dphi(code, alpha, a):
    """phi'(a) (at the kinks: module docstring)."""
    if code == 0:
        return 1.0 if a > 0.0 else 0.0
    if code == 1:
        return 1.0 if a > 0.0 else alpha
    if code == 2:
        return 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)
    if code == 3:
        return 1.0
    if code == 4:
        t = math.tanh(a)
        return 1.0 - t * t
    return 0.5 * math.erfc(-a * _SQRT1_2) + a * math.exp(-0.5 * a * a) * 0.3989422804014327


@njit(cache=True)
def _apply(code, alpha, x, out, derivative):
    for i in range(x.size):
        out[i] = dphi(code, alpha, x[i]) if derivative else phi(code, alpha, x[i])


def apply(text, x):
    """phi over an array (float64), the kernels' function."""
    code, alpha = code_of(text)
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _apply(code, alpha, x.ravel(), out.ravel(), False)
    return out


def derivative(text, x):
    """phi' over an array (float64), the kernels' function."""
    code, alpha = code_of(text)
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _apply(code, alpha, x.ravel(), out.ravel(), True)
    return out
