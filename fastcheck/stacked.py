"""Stacked forward passes of the MLP that carry *changes*, not values.

Given k perturbations of whole parameter groups (``D`` = perturbed minus base, for any
subset of the groups), this computes each perturbation's exact change of the cost,
``J(theta + D) - J(theta)``, reusing the base forward pass for every layer before the
first perturbed one. Changes are propagated layer by layer with identities that do not
cancel:

- ``dZ_l = W_l dA_{l-1} + D_Wl (A_{l-1} + dA_{l-1}) + D_bl``  (matmul is linear);
- ``dA = g(z + dz) - g(z)``: ``dz`` where a relu-like unit keeps its state (scaled by
  the slope), ``tanh(dz)(1 - t^2) / (1 + t tanh(dz))`` for tanh,
  ``s(1 - s) expm1(dz) / (1 + s expm1(dz))`` for sigmoid;
- the loss change: ``log1p(sum_c p_c expm1(dz_c)) * sum(y) - y . dz`` for softmax,
  ``log1p(sigmoid(z) expm1(dz)) - y dz`` for sigmoid, ``dz ((z - y) + dz / 2)`` for MSE;
- the L2 change: ``(l2 / 2m) sum D (2W + D)``.

Each J(theta + D) = J + change equals a full forward pass on the perturbed parameters
to within float64 rounding, and the difference of two such changes keeps the accuracy
of the changes themselves rather than that of J. Units whose relu-like state flips are
reported, because central differences across a kink are not derivatives.
"""

from __future__ import annotations

import numpy as np

from .mlp import LEAKY_SLOPE, sigmoid

__all__ = ["BaseState", "cost_changes"]


class BaseState:
    """The base forward pass of ``net`` at ``params`` on ``(X, Y)``, kept for reuse."""

    def __init__(self, net, params, X, Y):
        self.net, self.params, self.X, self.Y = net, params, X, Y
        self.zs, self.acts = net.forward(params, X)
        self.acts_out = self.acts + [None]
        z = self.zs[-1]
        if net.output == "softmax":
            e = np.exp(z - z.max(axis=0))
            self.out = e / e.sum(axis=0)
            self.y_sum = Y.sum(axis=0)
        elif net.output == "sigmoid":
            self.out = sigmoid(z)
        else:
            self.out = z - Y
        self.cost = net.cost(params, X, Y)


def _activation_change(name: str, z: np.ndarray, a: np.ndarray, dz: np.ndarray):
    """``g(z + dz) - g(z)`` for stacked ``dz`` of shape (k, n, m); also the state flips."""
    if name in ("relu", "leaky_relu"):
        slope = 0.0 if name == "relu" else LEAKY_SLOPE
        before = z > 0
        z_new = z + dz
        after = z_new > 0
        flips = before != after
        da = np.where(after, dz, slope * dz)
        if flips.any():
            new = np.where(after, z_new, slope * z_new)
            da = np.where(flips, new - a, da)
        return da, flips.any(axis=(1, 2))
    no_flips = np.zeros(dz.shape[0], dtype=bool)
    if name == "tanh":
        td = np.tanh(dz)
        return td * (1.0 - a * a) / (1.0 + a * td), no_flips
    if name == "sigmoid":
        e = np.expm1(dz)
        return a * (1.0 - a) * e / (1.0 + a * e), no_flips
    return dz, no_flips


def _loss_change(base: BaseState, dz: np.ndarray) -> np.ndarray:
    """Change of each example's loss for stacked logit changes ``dz`` (k, n_L, m) -> (k, m)."""
    output, Y = base.net.output, base.Y
    if output == "softmax":
        dlse = np.log1p(np.einsum("cm,kcm->km", base.out, np.expm1(dz)))
        return dlse * base.y_sum - np.einsum("cm,kcm->km", Y, dz)
    if output == "sigmoid":
        return (np.log1p(base.out * np.expm1(dz)) - Y * dz).sum(axis=1)
    return (dz * (base.out + 0.5 * dz)).sum(axis=1)


def cost_changes(base: BaseState, deltas: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Exact cost changes of k stacked perturbations.

    Parameters
    ----------
    base : BaseState
    deltas : dict of str -> ndarray of shape (k, *group shape)
        Perturbed minus base value, for the perturbed groups only (``"W2"``, ``"b2"``).

    Returns
    -------
    change : ndarray of shape (k,)
        ``J(theta + D_j) - J(theta)`` for each perturbation j.
    crossed : ndarray of bool, shape (k,)
        Whether the perturbation flipped the state of a relu-like hidden unit.
    """
    net, params = base.net, base.params
    k = next(iter(deltas.values())).shape[0]
    m = base.X.shape[1]
    layers = [int(name[1:]) for name in deltas]
    crossed = np.zeros(k, dtype=bool)
    da = None
    for layer in range(min(layers), net.n_layers + 1):
        W, a_prev = params[f"W{layer}"], base.acts[layer - 1]
        dz = np.zeros((k, W.shape[0], m))
        if da is not None:
            dz += np.matmul(W, da)
        if f"W{layer}" in deltas:
            dz += np.matmul(deltas[f"W{layer}"], a_prev if da is None else a_prev + da)
        if f"b{layer}" in deltas:
            dz += deltas[f"b{layer}"]
        if layer < net.n_layers:
            da, flips = _activation_change(net.hidden, base.zs[layer - 1], base.acts[layer], dz)
            crossed |= flips
    change = _loss_change(base, dz).sum(axis=1) / m
    if net.l2:
        for name, d in deltas.items():
            if name.startswith("W"):
                change += net.l2 / (2.0 * m) * (d * (2.0 * params[name] + d)).reshape(k, -1).sum(axis=1)
    return change, crossed
