"""The built-in network's activations, losses and their derivatives, written once.

Every engine and the model use these: the reference passes call them directly, the
stacked and batched engines (and their kernels) take the constant ``LEAKY_SLOPE``, the
output layer's quantities (:func:`output_aux`) and the cost of a forward pass
(:func:`cost_from_logits`) from here.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["HIDDEN", "OUTPUTS", "LEAKY_SLOPE", "NEGATIVE_SLOPE", "PIECEWISE_LINEAR", "sigmoid", "activate",
           "activation_derivative", "example_losses", "cost_from_logits",
           "objective_from_logits", "output_aux", "output_delta"]

#: Slope of leaky ReLU for negative inputs.
LEAKY_SLOPE = 0.01
#: Hidden activations, and whether each has kinks (points where it is not differentiable).
HIDDEN = {"relu": True, "leaky_relu": True, "tanh": False, "sigmoid": False, "identity": False}
#: Activations that are linear between their kinks (a perturbation's change is exactly linear there).
PIECEWISE_LINEAR = ("relu", "leaky_relu", "identity")
#: The relu-like activations (the kinked ones) and their slope below the kink.
NEGATIVE_SLOPE = {"relu": 0.0, "leaky_relu": LEAKY_SLOPE}
#: Output activations and the loss each is paired with.
OUTPUTS = {"softmax": "cross-entropy", "sigmoid": "binary cross-entropy", "identity": "mean squared error"}


def sigmoid(z):
    """Logistic function, without overflow for large |z|."""
    return np.exp(-np.logaddexp(0.0, -z))


def activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "identity":
        return z.copy()
    raise InputError(f"unknown activation {name!r}")


def activation_derivative(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    return np.ones_like(z)


def example_losses(output: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Loss of each example (column) from the output logits ``z``, shape (m,)."""
    if output == "softmax":
        top = z.max(axis=0)
        lse = top + np.log(np.exp(z - top).sum(axis=0))
        return (y * (lse - z)).sum(axis=0)
    if output == "sigmoid":
        softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
        return (softplus - y * z).sum(axis=0)
    return 0.5 * ((z - y) ** 2).sum(axis=0)


def cost_from_logits(output: str, z: np.ndarray, y: np.ndarray, penalty: float) -> float:
    """J from the output logits ``z`` (n_L, m): the mean loss over the m examples plus ``penalty``.

    ``penalty`` is the L2 term of the same parameters (:meth:`fastcheck.MLP.regularization`).
    """
    return float(objective_from_logits(output, z, y, penalty))


def objective_from_logits(output: str, z, y: np.ndarray, penalty):
    """:func:`cost_from_logits` as numpy computes it, not made a Python float: a traced ``z``
    (:mod:`fastcheck.engines.traced`) gives a traced J, the same float64 operations in the same order."""
    return example_losses(output, z, y).sum() / z.shape[1] + penalty


def output_aux(output: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the output's loss derivative and loss changes are made of, shape of ``z``.

    The softmax probabilities (softmax), ``sigmoid(z)`` (sigmoid) or the residual
    ``z - y`` (identity).
    """
    if output == "softmax":
        e = np.exp(z - z.max(axis=0))
        return e / e.sum(axis=0)
    if output == "sigmoid":
        return sigmoid(z)
    return z - y


def output_delta(output: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivative of each example's loss with respect to the logits, shape of ``z``."""
    aux = output_aux(output, z, y)
    if output == "softmax":
        return aux * y.sum(axis=0) - y
    if output == "sigmoid":
        return aux - y
    return aux
