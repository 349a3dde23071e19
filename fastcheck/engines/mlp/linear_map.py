"""The logits' change as an exact linear map of a change of layer ``L - 2`` (piecewise-linear hidden layers).

While no relu-like unit changes state, a change ``O`` of the pre-activations of hidden
layer ``l = L - 2`` reaches the logits through ``W_L diag(s_{L-1}) W_{L-1} diag(s_l)``,
with ``s`` the units' slopes in their base state: one (n_L, n_l) matrix per example,
computed once per base pass, instead of a product with ``W_{L-1}`` per perturbation.

Whether a unit changes state is decided as the stacked propagation decides it: exactly,
on ``O`` itself, for layer ``l``; for layer ``L - 1``, by a margin certificate per
example, ``|dZ_{L-1}[r, i]| <= ||W_{L-1}[r] * s_l[:, i]||_2 ||O[:, i]||_2`` (Cauchy-Schwarz;
an evaluation of the product in float64 stays within 1e-12 of that bound) against the
unit's distance to its kink, with room to spare (:data:`CERTIFIED_FRACTION`). An
example whose certificate fails has that product computed and tested exactly. The
result equals the stacked propagation's to float64 rounding of the changes.
"""

from __future__ import annotations

import numpy as np

from ...mlp.functions import PIECEWISE_LINEAR
from .rankone import RankOne

__all__ = ["linear_map_applies", "linear_map_changes"]

#: An example is certified when its bound reaches at most this fraction of the margin (the
#: rounding of the product is below 1e-12 of the bound: the rest is room to spare).
CERTIFIED_FRACTION = 0.5


def linear_map_applies(base, names, k: int) -> bool:
    """Whether k perturbations of the groups ``names`` (all of layer ``L - 2``) take the linear map.

    Building the maps costs about as much as ``n_L`` products with ``W_{L-1}``: fewer
    perturbations take the products, unless the maps are built already.
    """
    net = base.net
    layers = {int(name[1:]) for name in names}
    worth = k >= net.layers[-1] or ("linear map", net.n_layers - 2) in base.derived
    return net.hidden in PIECEWISE_LINEAR and layers == {net.n_layers - 2} and worth


class _LinearMap:
    """The per-example maps and certificate bounds of one base pass (see the module docstring)."""

    def __init__(self, base, layer: int):
        net, params = base.net, base.params
        s_first, s_next = base.slopes(layer), base.slopes(layer + 1)  # (n_l, m), (n_{L-1}, m)
        W_next, W_out = params[f"W{layer + 1}"], params[f"W{layer + 2}"]
        m, (n_out, n_next) = s_first.shape[1], W_out.shape
        # the m examples' rows stacked, one product with W_next (many small ones cost twice as much)
        rows = (W_out[None, :, :] * s_next.T[:, None, :]).reshape(m * n_out, n_next)
        per_example = (rows @ W_next).reshape(m, n_out, -1)  # (m, n_L, n_l)
        self.maps = np.ascontiguousarray((per_example * s_first.T[:, None, :]).transpose(0, 2, 1))  # (m, n_l, n_L)
        self.kinked = net.hidden != "identity"
        if self.kinked:
            norms = np.sqrt((W_next * W_next) @ (s_first * s_first))  # (n_{L-1}, m): ||W_next[r] * s_l[:, i]||
            with np.errstate(over="ignore", divide="ignore"):  # a unit at its kink: an infinite ratio, never certified
                self.bound = (norms / base.thresholds(layer + 1)).max(axis=0)  # (m,)


def _linear_map(base, layer: int) -> _LinearMap:
    """The base pass's :class:`_LinearMap` for changes at ``layer``, built once."""
    cache = base.derived
    if ("linear map", layer) not in cache:
        cache["linear map", layer] = _LinearMap(base, layer)
    return cache["linear map", layer]


def linear_map_changes(base, steps: dict[str, np.ndarray], crossed: np.ndarray) -> np.ndarray:
    """The logits' changes ``O_L`` (k, n_L, m) of the steps ``+S_j`` (``-S_j`` gives ``-O_L``).

    ``steps`` perturb layer ``L - 2`` only (:func:`linear_map_applies`); ``crossed`` marks
    the pairs in which a unit changes state (their result is then to be discarded).
    """
    layer = base.net.n_layers - 2
    lin = _linear_map(base, layer)
    D, Db = steps.get(f"W{layer}"), steps.get(f"b{layer}")
    k = (D if D is not None else Db).shape[0]
    m = base.X.shape[1]
    # the first change, laid out per example: (m, k, n_l), from A^T D^T (the same products as D A)
    if D is not None:
        A = base.acts[layer - 1]
        odd = (D.inputs_times(A) if isinstance(D, RankOne)
               else np.matmul(A.T, D.reshape(-1, D.shape[-1]).T).reshape(m, k, -1))
        if Db is not None:
            odd += Db[:, :, 0]
    else:
        odd = np.ascontiguousarray(np.broadcast_to(Db[:, :, 0], (m, k, Db.shape[1])))
    if lin.kinked:
        crossed |= (np.abs(odd) >= base.thresholds(layer).T[:, None, :]).any(axis=(0, 2))
        doubt = np.sqrt(np.einsum("ikr,ikr->ik", odd, odd)) * lin.bound[:, None] > CERTIFIED_FRACTION
        if doubt.any():  # those examples' next products, computed and tested exactly
            i, j = np.nonzero(doubt)
            change = (base.slopes(layer).T[i] * odd[i, j]) @ base.params[f"W{layer + 1}"].T
            np.logical_or.at(crossed, j, (np.abs(change) >= base.thresholds(layer + 1).T[i]).any(axis=1))
    return np.matmul(odd, lin.maps).transpose(1, 2, 0)
