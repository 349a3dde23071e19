"""A catalogue of realistic backprop bugs, planted in the built-in MLP's gradient.

Each bug is what a person writing backprop by hand gets wrong; the demo and the tests
use them to show that the check fails and names the right groups. Bugs are placed in
layer 2 where a layer is needed, so they want a network with at least two hidden
layers (three weight layers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..mlp.functions import LEAKY_SLOPE
from ..mlp.model import MLP

__all__ = ["Bug", "BUGS", "buggy_gradient"]


@dataclass(frozen=True)
class Bug:
    """One planted bug.

    Attributes
    ----------
    name : str
    description : str
        What the person did wrong, in their words.
    origin : Callable[[MLP], list[str]]
        The groups the bug is planted in: these must fail.
    touches : Callable[[MLP], list[str]]
        Every group the bug can change: no other group may fail.
    plant : Callable[[MLP, dict, ndarray, ndarray], dict]
        Returns the wrong gradient (``dW1, db1, ...``).
    """

    name: str
    description: str
    origin: Callable
    touches: Callable
    plant: Callable


def _data_part(net, params, grads, X):
    """The gradient without its L2 term: ``dWl - (l2/m) Wl``."""
    m = X.shape[1]
    return {k: v - (net.l2 / m) * params[k[1:]] if k.startswith("dW") else v for k, v in grads.items()}


def _scaled(net, params, X, Y):
    g = net.gradient(params, X, Y)
    g["dW2"] = 2.0 * g["dW2"]
    return g


def _missing_l2(net, params, X, Y):
    if net.l2 == 0:
        raise InputError("the 'missing_l2' bug needs a network with l2 > 0")
    return _data_part(net, params, net.gradient(params, X, Y), X)


def _missing_mean(net, params, X, Y):
    g = net.gradient(params, X, Y)
    data = _data_part(net, params, g, X)
    m = X.shape[1]
    g["dW2"] = data["dW2"] * m + (net.l2 / m) * params["W2"]
    g["db2"] = g["db2"] * m
    return g


def _wrong_derivative(net, params, X, Y):
    def derivative(layer, z, a):
        true = {"relu": lambda: (z > 0) * 1.0, "leaky_relu": lambda: np.where(z > 0, 1.0, LEAKY_SLOPE),
                "tanh": lambda: 1.0 - a * a, "sigmoid": lambda: a * (1.0 - a), "identity": lambda: np.ones_like(z)}
        if layer != 2:
            return true[net.hidden]()
        wrong = {"relu": np.ones_like(z), "leaky_relu": np.ones_like(z), "tanh": 1.0 - z * z,
                 "sigmoid": z * (1.0 - z), "identity": a * (1.0 - a)}
        return wrong[net.hidden]

    return net.backprop(params, X, Y, derivative=derivative)


def _transposed(net, params, X, Y):
    g = net.gradient(params, X, Y)
    g["dW2"] = np.ascontiguousarray(g["dW2"].T).reshape(g["dW2"].shape)
    return g


def _sign_flip(net, params, X, Y):
    g = net.gradient(params, X, Y)
    data = _data_part(net, params, g, X)
    m = X.shape[1]
    return {k: -v + ((net.l2 / m) * params[k[1:]] if k.startswith("dW") else 0.0) for k, v in data.items()}


def _bias_axis(net, params, X, Y):
    g = net.gradient(params, X, Y)
    g["db2"] = np.full_like(g["db2"], g["db2"].sum())
    return g


def _names(prefixes, layers):
    return [f"{p}{layer}" for layer in layers for p in prefixes]


BUGS = {
    bug.name: bug
    for bug in [
        Bug("scaled", "dW2 is twice what it should be (a stray factor of 2)",
            lambda net: ["W2"], lambda net: ["W2"], _scaled),
        Bug("missing_l2", "the L2 term (l2/m) * Wl is missing from every dWl",
            lambda net: _names("W", range(1, net.n_layers + 1)),
            lambda net: _names("W", range(1, net.n_layers + 1)), _missing_l2),
        Bug("missing_mean", "dW2 and db2 are summed over the examples instead of averaged (no 1/m)",
            lambda net: ["W2", "b2"], lambda net: ["W2", "b2"], _missing_mean),
        Bug("activation_derivative", "the derivative of the layer-2 activation is wrong "
            "(relu: mask forgotten; tanh: 1 - z^2; sigmoid: z(1 - z))",
            lambda net: ["W2", "b2"], lambda net: _names("Wb", [1, 2]), _wrong_derivative),
        Bug("transposed", "dW2 was transposed and reshaped back to W2's shape",
            lambda net: ["W2"], lambda net: ["W2"], _transposed),
        Bug("sign_flip", "the output error is Y - A instead of A - Y, flipping every data gradient",
            lambda net: _names("Wb", range(1, net.n_layers + 1)),
            lambda net: _names("Wb", range(1, net.n_layers + 1)), _sign_flip),
        Bug("bias_axis", "db2 is summed over both axes (np.sum without axis=1)",
            lambda net: ["b2"], lambda net: ["b2"], _bias_axis),
    ]
}


def buggy_gradient(net: MLP, bug: str, params, X, Y) -> dict[str, np.ndarray]:
    """The gradient of ``net`` with the catalogue's ``bug`` planted in it."""
    if bug not in BUGS:
        raise InputError(f"unknown bug {bug!r}; the catalogue has {', '.join(BUGS)}")
    if net.n_layers < 3:
        raise InputError(f"bugs are planted in layer 2 of a network with >= 2 hidden layers; {net!r} has "
                         f"{net.n_layers - 1}")
    return BUGS[bug].plant(net, params, X, Y)
