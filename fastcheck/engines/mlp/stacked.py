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

from ...mlp.functions import NEGATIVE_SLOPE, PIECEWISE_LINEAR, cost_from_logits, output_aux

__all__ = ["BaseState", "cost_changes", "symmetric_cost_changes"]


class BaseState:
    """The base forward pass of ``net`` at ``params`` on ``(X, Y)``, kept for reuse."""

    def __init__(self, net, params, X, Y):
        self.net, self.params, self.X, self.Y = net, params, X, Y
        self.zs, self.acts = net.forward(params, X)
        self.acts_out = self.acts + [None]
        self.out = output_aux(net.output, self.zs[-1], Y)
        self.y_sum = Y.sum(axis=0)
        self.cost = cost_from_logits(net.output, self.zs[-1], Y, net.regularization(params, X.shape[1]))


def _activation_change(name: str, z: np.ndarray, a: np.ndarray, dz: np.ndarray):
    """``g(z + dz) - g(z)`` for stacked ``dz`` of shape (k, n, m); also the state flips."""
    if name in NEGATIVE_SLOPE:
        slope = NEGATIVE_SLOPE[name]
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


def _l2_changes(base: BaseState, deltas: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The L2 change ``(l2 / 2m) sum D (2W + D)`` split into its odd part (in D) and even part."""
    k = next(iter(deltas.values())).shape[0]
    odd, even = np.zeros(k), np.zeros(k)
    net, m = base.net, base.X.shape[1]
    if net.l2:
        scale = net.l2 / (2.0 * m)
        for name, d in deltas.items():
            if name.startswith("W"):
                flat = d.reshape(k, -1)
                odd += scale * (flat @ (2.0 * base.params[name]).ravel())
                even += scale * np.einsum("ij,ij->i", flat, flat)
    return odd, even


def _propagate(base: BaseState, deltas: dict[str, np.ndarray], layer: int, dz: np.ndarray,
               crossed: np.ndarray) -> np.ndarray:
    """Carry the stacked pre-activation changes ``dz`` of ``layer`` to the logits' (updates ``crossed``)."""
    net, params = base.net, base.params
    while layer < net.n_layers:
        da, flips = _activation_change(net.hidden, base.zs[layer - 1], base.acts[layer], dz)
        crossed |= flips
        layer += 1
        dz = np.matmul(params[f"W{layer}"], da)
        if f"W{layer}" in deltas:
            dz += np.matmul(deltas[f"W{layer}"], base.acts[layer - 1] + da)
        if f"b{layer}" in deltas:
            dz += deltas[f"b{layer}"]
    return dz


def _first_change(base: BaseState, deltas: dict[str, np.ndarray]) -> tuple[int, np.ndarray]:
    """The first perturbed layer and its pre-activation changes (linear in the deltas)."""
    first = min(int(name[1:]) for name in deltas)
    k = next(iter(deltas.values())).shape[0]
    if f"W{first}" in deltas:
        dz = np.matmul(deltas[f"W{first}"], base.acts[first - 1])
    else:
        dz = np.zeros((k, base.params[f"W{first}"].shape[0], base.X.shape[1]))
    if f"b{first}" in deltas:
        dz += deltas[f"b{first}"]
    return first, dz


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
    first, dz = _first_change(base, deltas)
    crossed = np.zeros(dz.shape[0], dtype=bool)
    dz = _propagate(base, deltas, first, dz, crossed)
    odd, even = _l2_changes(base, deltas)
    return _loss_change(base, dz).sum(axis=1) / base.X.shape[1] + (odd + even), crossed


def symmetric_cost_changes(base: BaseState, steps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Exact cost changes of k stacked perturbation pairs ``+S_j`` and ``-S_j``.

    The pre-activation change of the first perturbed layer is linear in the step, so the
    one for ``-S`` is the negative of the one for ``+S``, exactly: it is computed once.
    Through relu-like (and identity) hidden layers that no unit changes state in, and
    that are not perturbed themselves, activation changes stay odd in the step, so the
    pair is carried as one stack down to the logits. A perturbed later layer, a smooth
    activation or a unit changing state ends that: from there both signs are carried
    (:func:`cost_changes`), and a pair in which a unit changed state is recomputed on
    its own by the general path.

    Parameters
    ----------
    base : BaseState
    steps : dict of str -> ndarray of shape (k, *group shape)
        The steps ``S_j`` of the perturbed groups.

    Returns
    -------
    change_plus, change_minus : ndarray of shape (k,)
        ``J(theta + S_j) - J(theta)`` and ``J(theta - S_j) - J(theta)``.
    crossed : ndarray of bool, shape (k,)
        Whether either perturbation flipped the state of a relu-like hidden unit.
    """
    net, params = base.net, base.params
    first, dz = _first_change(base, steps)
    k = dz.shape[0]
    crossed = np.zeros(k, dtype=bool)  # a unit changed state while the pair was carried as one
    layer = first
    piecewise = net.hidden in PIECEWISE_LINEAR
    while layer < net.n_layers and piecewise and not any(f"{p}{layer + 1}" in steps for p in "Wb"):
        if net.hidden != "identity":
            on = base.zs[layer - 1] > 0
            crossed |= (((base.zs[layer - 1] + dz) > 0) != on).any(axis=(1, 2))
            crossed |= (((base.zs[layer - 1] - dz) > 0) != on).any(axis=(1, 2))
            dz = np.where(on, dz, NEGATIVE_SLOPE[net.hidden] * dz)
        layer += 1
        dz = np.matmul(params[f"W{layer}"], dz)
    if layer < net.n_layers:  # from here on, the two signs part ways
        flips = np.zeros(2 * k, dtype=bool)
        later = {name: np.concatenate([s, -s]) for name, s in steps.items() if int(name[1:]) > layer}
        dz = _propagate(base, later, layer, np.concatenate([dz, -dz]), flips)
        flips = flips[:k] | flips[k:]
    else:
        dz, flips = np.concatenate([dz, -dz]), np.zeros(k, dtype=bool)
    loss = _loss_change(base, dz).sum(axis=1) / base.X.shape[1]
    odd, even = _l2_changes(base, steps)
    plus, minus = loss[:k] + (odd + even), loss[k:] + (even - odd)
    if crossed.any():  # carried as one past a change of state, which breaks the symmetry: redo those
        redo = np.flatnonzero(crossed)
        change, again = cost_changes(base, {name: np.concatenate([s[redo], -s[redo]]) for name, s in steps.items()})
        plus[redo], minus[redo] = change[:redo.size], change[redo.size:]
        flips[redo] = again[:redo.size] | again[redo.size:]
    return plus, minus, flips
