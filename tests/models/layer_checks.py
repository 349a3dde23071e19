"""Every CS231n layer as a layer check: seeded inputs, a seeded upstream gradient, planted bugs.

As CS231n's ``eval_numerical_gradient_array`` checks them: ``out, cache = forward(**inputs)``,
the gradients ``backward(dout, cache)`` with respect to every input (``x`` as well as ``w``,
``b``), for a random ``dout``. Includes a max-pool at ties: ReLU outputs with windows of
equal zeros, where ``max_pool_backward`` sends ``dout`` to all four entries while the central
difference sees half of it: a kink, not a bug.
"""

from __future__ import annotations

import numpy as np

from .base import LayerCase
from .cs231n import (
    affine_backward,
    affine_backward_db_mean,
    affine_forward,
    affine_relu_backward,
    affine_relu_forward,
    batchnorm_backward,
    batchnorm_backward_without_mean,
    batchnorm_forward,
    conv_backward,
    conv_backward_flipped_dw,
    conv_forward,
    max_pool_backward,
    max_pool_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
    svm_loss,
)


class LossLayer:
    """A loss as a layer of x alone: ``(loss, dx)`` at fixed labels ``y`` (picklable)."""

    def __init__(self, loss, y):
        self.loss, self.y = loss, y

    def __call__(self, x):
        return self.loss(x, self.y)


def loss_layer_backward(dout, cache):
    """The loss layer's cache is its dx: the gradient for an upstream ``dout`` is ``dout * dx``."""
    return dout * cache


def relu_windows_with_ties(rng, shape, tied_windows):
    """ReLU outputs x (N, C, H, W) in which the 2x2 windows ``tied_windows`` are all zeros
    (their pre-activations negative) and no other window has a tie."""
    x = np.abs(rng.standard_normal(shape)) + 0.1
    for n, c, i, j in tied_windows:
        x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = 0.0
    return x


def _case(name, forward, inputs, backward, rng, bugs=(), **meta) -> LayerCase:
    out, _ = forward(**inputs)
    dout = rng.standard_normal(np.shape(out))
    case = LayerCase(name, forward, inputs, backward, dout, meta=meta)
    case.bugs.update({b.name: b for b in (case.bug(*spec) for spec in bugs)})
    return case


def layer_cases(seed=0) -> dict:
    """Every CS231n layer with seeded inputs, a seeded ``dout`` and its planted bugs: name -> LayerCase."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape)

    y = rng.integers(0, 5, 8)
    tied = [(0, 0, 0, 0), (0, 1, 1, 0), (1, 1, 1, 1)]
    cases = [
        _case("affine", affine_forward, {"x": normal(4, 2, 3), "w": normal(6, 5), "b": normal(5)}, affine_backward,
              rng, [(affine_backward_db_mean, ("b",), ("x", "w"))]),
        _case("relu", relu_forward, {"x": normal(4, 5)}, relu_backward, rng),
        _case("affine_relu", affine_relu_forward, {"x": normal(4, 2, 3), "w": normal(6, 5), "b": normal(5)},
              affine_relu_backward, rng),
        _case("conv", conv_forward, {"x": normal(2, 3, 5, 5), "w": normal(4, 3, 3, 3), "b": normal(4)},
              conv_backward, rng, [(conv_backward_flipped_dw, ("w",), ("x", "b"))]),
        _case("max_pool", max_pool_forward, {"x": normal(2, 3, 4, 4)}, max_pool_backward, rng),
        _case("batchnorm", batchnorm_forward,
              {"x": 2 * normal(8, 5) + 1, "gamma": 1 + 0.1 * normal(5), "beta": 0.1 * normal(5)},
              batchnorm_backward, rng, [(batchnorm_backward_without_mean, ("x",), ("gamma", "beta"))]),
        _case("softmax_loss", LossLayer(softmax_loss, y), {"x": normal(8, 5)}, loss_layer_backward, rng),
        _case("svm_loss", LossLayer(svm_loss, y), {"x": normal(8, 5)}, loss_layer_backward, rng),
        _case("max_pool_ties", max_pool_forward, {"x": relu_windows_with_ties(rng, (2, 2, 4, 4), tied)},
              max_pool_backward, rng, [(max_pool_backward, (), ("x",), None, True, "ties_after_relu")],
              tie_entries=[(n, c, 2 * i + a, 2 * j + b) for n, c, i, j in tied for a in (0, 1) for b in (0, 1)]),
    ]
    return {case.name: case for case in cases}
