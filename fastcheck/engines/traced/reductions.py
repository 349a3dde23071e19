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


def _moved(array, order, flat_shape):
    return np.transpose(array, order).reshape(flat_shape)


def _extreme(ev, node, changes):
    larger = node.op == "max"
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    window = changes[0].windows.get(axes[0]) if len(axes) == 1 else None
    if window is not None and window[1] == 1:
        return _one_entry(ev, node, changes[0], axes[0], keepdims, larger)
    change = widen(changes[0], axes)
    k, ndim = change.k, len(change.shape)
    kept_axes = [a for a in range(ndim) if a not in axes]
    order = [0] + [a + 1 for a in kept_axes] + [a + 1 for a in axes]
    x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
    pick, arg = (np.max, np.argmax) if larger else (np.min, np.argmin)

    def winners():  # per kept entry: the winner's position along the reduced axes, and whether it is tied
        flat = _moved(x_full[None], order, (1,) + tuple(x_full.shape[a] for a in kept_axes) + (-1,))[0]
        best = arg(flat, axis=-1)
        tied = (flat == np.take_along_axis(flat, best[..., None], axis=-1)).sum(axis=-1) > 1
        return np.expand_dims(best, axes), np.expand_dims(tied, axes)  # in place of the reduced axes

    best, tied = ev.graph.derive(("winners", node.id), winners)
    windows = {a: w for a, w in change.windows.items()}
    best_w = gather(best, windows, k, ndim)
    tied_w = gather(tied, windows, k, ndim)
    d = np.broadcast_to(change.floats(), (k,) + change.wshape)
    if len(axes) == 1:  # one reduced axis (a softmax's shift): no moving of axes
        a = axes[0] + 1
        x = gather(x_full, windows, k, ndim)
        new = x + d
        new_y = pick(new, axis=a, keepdims=True)
        index = np.broadcast_to(best_w, new_y.shape)
        d_win = np.take_along_axis(d, index, axis=a)
        new_win = np.take_along_axis(np.broadcast_to(x, d.shape), index, axis=a) + d_win
        flips = ((new_y > new_win) if larger else (new_y < new_win)) | (tied_w & (d != 0).any(axis=a, keepdims=True))
        values = d_win
        if flips.any():
            ev.kink(flips)
            values = np.where(flips, new_y - pick(x, axis=a, keepdims=True), d_win)
        if not keepdims:
            values = np.squeeze(values, axis=a)
        return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)
    flat_shape = (k,) + tuple(d.shape[a + 1] for a in kept_axes) + (-1,)
    x = _moved(np.broadcast_to(gather(x_full, windows, k, ndim), d.shape), order, flat_shape)
    d = _moved(d, order, flat_shape)
    best_w = np.broadcast_to(_moved(best_w, order, best_w.shape[:1] + flat_shape[1:-1] + (1,)), flat_shape[:-1] + (1,))
    tied_w = _moved(tied_w, order, tied_w.shape[:1] + flat_shape[1:-1] + (1,))[..., 0]
    new = x + d
    new_y = pick(new, axis=-1)
    d_win = np.take_along_axis(d, best_w, axis=-1)[..., 0]
    new_win = np.take_along_axis(x, best_w, axis=-1)[..., 0] + d_win
    flips = ((new_y > new_win) if larger else (new_y < new_win)) | (tied_w & (d != 0).any(axis=-1))
    values = d_win
    if flips.any():  # a new winner, or a tie broken: recomputed, and a kink
        ev.kink(flips)
        values = np.where(flips, new_y - pick(x, axis=-1), d_win)
    if keepdims:
        values = np.expand_dims(values, tuple(a + 1 for a in axes))
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


def _one_entry(ev, node, change: Change, axis: int, keepdims: bool, larger: bool) -> Change:
    """``max``/``min`` over one axis where each perturbation changes one entry along it (a softmax's shift).

    Per kept entry the winner's value ``y`` and the runner-up's ``r`` (the best of the others) are
    known from the base pass. A change ``d`` of entry ``j`` moves the extreme only if ``j`` is
    the winner (to ``x_j + d``, unless ``r`` now wins) or ``x_j + d`` beats ``y``: the same
    comparisons and the same ``max(new) - y`` as opening the whole axis, on one entry per slice.
    """
    x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
    pick, arg = (np.maximum, np.argmax) if larger else (np.minimum, np.argmin)

    def winners():  # the winner's position, its value, the runner-up's value, whether it is tied
        moved = np.moveaxis(x_full, axis, -1)
        best = arg(moved, axis=-1)[..., None]
        y = np.take_along_axis(moved, best, axis=-1)
        others = moved.copy()
        np.put_along_axis(others, best, -np.inf if larger else np.inf, axis=-1)
        r = others.max(axis=-1, keepdims=True) if larger else others.min(axis=-1, keepdims=True)
        tied = (moved == y).sum(axis=-1, keepdims=True) > 1
        return tuple(np.moveaxis(a, -1, axis) for a in (best, y, r, tied))

    k, ndim = change.k, len(change.shape)
    others = {a: w for a, w in change.windows.items() if a != axis}
    best, y, r, tied = (gather(a, others, k, ndim) for a in ev.graph.derive(("one entry", node.id), winners))
    starts = change.windows[axis][0].reshape((k,) + (1,) * ndim)
    d = change.floats()
    new = gather(x_full, change.windows, k, ndim) + d
    own = best == starts  # the winner itself changed
    beaten = (r > new) if larger else (r < new)
    beats = (new > y) if larger else (new < y)
    flips = np.where(own, beaten, beats) | (tied & (d != 0))
    values = np.where(own, d, 0.0)
    if flips.any():  # a new winner, or a tie broken: recomputed, and a kink
        ev.kink(flips)
        values = np.where(flips, np.where(own, pick(new, r), pick(new, y)) - y, values)
    if not keepdims:
        values = np.squeeze(values, axis=axis + 1)
    return Change(values, _kept_windows(change, (axis,), keepdims), node.value.shape)


REDUCTIONS = {"sum": _sum, "mean": _sum, "max": _extreme, "min": _extreme}
