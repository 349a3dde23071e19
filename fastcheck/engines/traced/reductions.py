"""Change rules of reductions: ``sum``, ``mean`` (linear) and ``max``, ``min`` (a winner per slice).

A sum of changes is the change of the sum; a window on a reduced axis is summed over,
one on a kept axis stays. ``max`` and ``min`` open the reduced axes, add the changes to
the base values and compare the set of winners (all entries equal to the extreme)
before and after: where it is the same the change is the winner's own, exactly; where it
differs (a new winner, a tie made or broken: the kink of a max-pool) the change is
recomputed from the perturbed values and the perturbation is a kink.
"""

from __future__ import annotations

import numpy as np

from .changes import Change, gather, widen

__all__ = ["REDUCTIONS"]


def _kept_windows(change: Change, axes, keepdims: bool) -> dict:
    out = {}
    for a, w in change.windows.items():
        if a in axes:
            continue
        out[a if keepdims else a - sum(1 for r in axes if r < a)] = w
    return out


def _sum(ev, node, changes):
    change = changes[0]
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    full = np.broadcast_to(change.floats(), (change.k,) + change.wshape)
    values = full.sum(axis=tuple(a + 1 for a in axes), keepdims=keepdims)
    if node.op == "mean":
        values = values / node.kw["count"]
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


def _extreme(ev, node, changes):
    larger = node.op == "max"
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    change = widen(changes[0], axes)
    k, ndim = change.k, len(change.shape)
    d = np.broadcast_to(change.floats(), (k,) + change.wshape)
    x = np.broadcast_to(gather(ev.base(node.args[0]), change.windows, k, ndim), d.shape)
    kept_axes = [a for a in range(ndim) if a not in axes]
    order = [0] + [a + 1 for a in kept_axes] + [a + 1 for a in axes]
    flat_shape = d.shape[:1] + tuple(d.shape[a + 1] for a in kept_axes) + (-1,)
    x = np.transpose(x, order).reshape(flat_shape)
    d = np.transpose(d, order).reshape(flat_shape)
    new = x + d
    pick = np.max if larger else np.min
    old_y, new_y = pick(x, axis=-1, keepdims=True), pick(new, axis=-1, keepdims=True)
    flips = ((x == old_y) != (new == new_y)).any(axis=-1)
    ev.kink(flips)
    winner = (np.argmax if larger else np.argmin)(x, axis=-1)[..., None]
    values = np.take_along_axis(d, winner, axis=-1)[..., 0]
    if flips.any():
        values = np.where(flips, (new_y - old_y)[..., 0], values)
    if keepdims:
        values = np.expand_dims(values, tuple(a + 1 for a in axes))
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


REDUCTIONS = {"sum": _sum, "mean": _sum, "max": _extreme, "min": _extreme}
