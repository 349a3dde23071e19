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
from .linear_map import linear_map_applies, linear_map_changes
from .rankone import both_signs, l2_parts

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
        self.derived: dict = {}  # what the paths derive from the base pass, built once: see slopes()

    def slopes(self, layer: int) -> np.ndarray:
        """Slope of each unit of piecewise-linear hidden ``layer`` in its base state (1, or that below the kink)."""
        if ("slopes", layer) not in self.derived:
            below = NEGATIVE_SLOPE.get(self.net.hidden, 1.0)
            self.derived["slopes", layer] = np.where(self.zs[layer - 1] > 0, 1.0, below)
        return self.derived["slopes", layer]

    def thresholds(self, layer: int) -> np.ndarray:
        """The least ``|d|`` for which ``z + d`` or ``z - d`` changes the state of a unit of hidden ``layer``.

        ``z`` for a unit that is on (``z + d <= 0`` when ``d <= -z``), the float above
        ``-z`` for one that is off (``z + d > 0`` when ``d > -z``).
        """
        if ("thresholds", layer) not in self.derived:
            z = self.zs[layer - 1]
            self.derived["thresholds", layer] = np.where(z > 0, z, np.nextafter(-z, np.inf))
        return self.derived["thresholds", layer]


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
                cross, square = l2_parts(d, 2.0 * base.params[name])
                odd += scale * cross
                even += scale * square
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
            dz += deltas[f"W{layer}"] @ (base.acts[layer - 1] + da)
        if f"b{layer}" in deltas:
            dz += deltas[f"b{layer}"]
    return dz


def _first_change(base: BaseState, deltas: dict[str, np.ndarray]) -> tuple[int, np.ndarray]:
    """The first perturbed layer and its pre-activation changes (linear in the deltas)."""
    first = min(int(name[1:]) for name in deltas)
    k = next(iter(deltas.values())).shape[0]
    if f"W{first}" in deltas:
        dz = deltas[f"W{first}"] @ base.acts[first - 1]
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
    Through relu-like (and identity) hidden layers that no unit changes state in, the
    pair's changes are ``E + O`` and ``E - O``, with ``O`` odd and ``E`` even in the step,
    and each maps linearly: a layer carries ``O`` and ``E`` (``E`` is zero until a second
    perturbed layer adds ``D_W O``), one product each, down to the logits
    (:func:`_carry_pair`); perturbations of layer ``L - 2`` alone reach the logits through
    per-example linear maps under a margin certificate (:mod:`fastcheck.engines.mlp.linear_map`).
    A smooth activation ends that: from there both signs are
    carried (:func:`cost_changes`), and a pair in which a unit changed state is
    recomputed on its own by the general path.

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
    k = next(iter(steps.values())).shape[0]
    crossed = np.zeros(k, dtype=bool)  # a unit changed state while the pair was carried as one
    dz, flips = _pair_logit_changes(base, steps, crossed)
    loss = _loss_change(base, dz).sum(axis=1) / base.X.shape[1]
    odd, even = _l2_changes(base, steps)
    plus, minus = loss[:k] + (odd + even), loss[k:] + (even - odd)
    if crossed.any():  # carried as one past a change of state, which breaks the symmetry: redo those
        redo = np.flatnonzero(crossed)
        change, again = cost_changes(base, {name: both_signs(s[redo]) for name, s in steps.items()})
        plus[redo], minus[redo] = change[:redo.size], change[redo.size:]
        flips[redo] = again[:redo.size] | again[redo.size:]
    return plus, minus, flips


def _pair_logit_changes(base: BaseState, steps: dict[str, np.ndarray],
                        crossed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logits' changes (2k, n_L, m) of the pairs ``+S_j``, ``-S_j``, and the flips seen once they part ways.

    ``crossed`` marks the pairs carried as one past a change of state (to be redone).
    """
    net = base.net
    k = next(iter(steps.values())).shape[0]
    if linear_map_applies(base, steps, k):
        dz = linear_map_changes(base, steps, crossed)
        return np.concatenate([dz, -dz]), np.zeros(k, dtype=bool)
    first, dz = _first_change(base, steps)
    if net.hidden in PIECEWISE_LINEAR:
        return _carry_pair(base, steps, first, dz, crossed), np.zeros(k, dtype=bool)
    if first == net.n_layers:
        return np.concatenate([dz, -dz]), np.zeros(k, dtype=bool)
    flips = np.zeros(2 * k, dtype=bool)  # a smooth layer: the two signs part ways at once
    later = {name: both_signs(s) for name, s in steps.items() if int(name[1:]) > first}
    dz = _propagate(base, later, first, np.concatenate([dz, -dz]), flips)
    return dz, flips[:k] | flips[k:]


def _carry_pair(base: BaseState, steps: dict[str, np.ndarray], layer: int, odd: np.ndarray,
                crossed: np.ndarray) -> np.ndarray:
    """The logits' changes ``[E + O, E - O]`` (2k, n_L, m) of pairs whose first change ``O`` is at ``layer``.

    Relu-like hidden units are assumed to keep their state, and ``crossed`` marks the
    pairs where one does not (their result is then to be discarded). Through a layer
    perturbed by ``+-(D_W, D_b)``, the change ``W dA +- D_W (A + dA) +- D_b`` with ``dA = E +- O``
    splits into the odd part ``W O + D_W (A + E) + D_b`` and the even part ``W E + D_W O``.
    """
    net, params = base.net, base.params
    even = None  # zero until a second perturbed layer
    while layer < net.n_layers:
        if net.hidden != "identity":
            crossed |= _pair_flips(base, layer, odd, even)
            factor = base.slopes(layer)
            odd = odd * factor
            even = None if even is None else even * factor
        layer += 1
        W, D, Db = params[f"W{layer}"], steps.get(f"W{layer}"), steps.get(f"b{layer}")
        new_odd = np.matmul(W, odd)
        new_even = None if even is None else np.matmul(W, even)
        if D is not None:
            new_odd += D @ (base.acts[layer - 1] if even is None else base.acts[layer - 1] + even)
            new_even = D @ odd if new_even is None else new_even + D @ odd
        if Db is not None:
            new_odd += Db
        odd, even = new_odd, new_even
    if even is None:
        return np.concatenate([odd, -odd])
    return np.concatenate([even + odd, even - odd])


def _pair_flips(base: BaseState, layer: int, odd: np.ndarray, even: np.ndarray | None) -> np.ndarray:
    """Whether a relu-like unit of ``layer`` changes state under ``E + O`` or ``E - O``, per pair.

    ``z + d > 0`` exactly when ``d > -z`` (rounding keeps the sign of a sum of two floats),
    so with ``E`` zero the test is ``|O| >= z`` for a unit that is on, ``|O| > -z`` for one
    that is off (:meth:`BaseState.thresholds`).
    """
    if even is None:
        return (np.abs(odd) >= base.thresholds(layer)).any(axis=(1, 2))
    z, on = base.zs[layer - 1], base.zs[layer - 1] > 0
    return ((((z + (even + odd)) > 0) != on) | (((z + (even - odd)) > 0) != on)).any(axis=(1, 2))
