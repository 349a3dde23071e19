"""Change rules of reductions: ``sum``, ``mean`` (linear), ``max``, ``min`` (a winner per slice), and
``prod``, ``nansum``, ``nanmean`` (their rules last: see each).

A sum of changes is the change of the sum; a window on a reduced axis is summed over,
one on a kept axis stays. ``max`` and ``min`` open the reduced axes, add the changes to
the base values and compare the set of winners (all entries equal to the extreme)
before and after: where it is the same the change is the winner's own, exactly; where it
differs (a new winner, a tie made or broken: the kink of a max-pool) the change is
recomputed from the perturbed values and the perturbation is a kink. Where every change of
a slice is below a quarter of the winner's lead over the runner-up (:func:`winners`), no
winner can change and the comparison is skipped: the change is the winner's own. Over one
axis on which each perturbation changes one entry (a softmax's shift), the axis is not
opened at all: the winner's and the runner-up's values decide (:func:`_one_entry`).
"""

from __future__ import annotations

import numpy as np

from .changes import Change, gather, widen

__all__ = ["REDUCTIONS", "CERTIFIED", "winners", "others_product"]


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
    full = change.stacked()
    values = full.sum(axis=tuple(a + 1 for a in axes), keepdims=keepdims)
    if node.op == "mean":
        values = values / node.kw["count"]
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


def _moved(array, order, flat_shape):
    return np.transpose(array, order).reshape(flat_shape)


#: A winner is certified to stay the only winner while every change in its slice is below this
#: fraction of its lead over the runner-up (a fraction, not all of it: the lead is rounded).
CERTIFIED = 0.25


def _ranked(x_full: np.ndarray, axes: tuple, larger: bool):
    """Per slice along ``axes``: the winner's position (flat over ``axes``), whether it is tied, its value
    and the runner-up's (the best of the others; -inf for max, inf for min in a slice of one entry).

    Each has the reduced axes kept with size 1.
    """
    ndim = x_full.ndim
    kept_axes = [a for a in range(ndim) if a not in axes]
    order = kept_axes + list(axes)
    flat = np.transpose(x_full, order).reshape(tuple(x_full.shape[a] for a in kept_axes) + (-1,))
    best = (np.argmax if larger else np.argmin)(flat, axis=-1)
    top = np.take_along_axis(flat, best[..., None], axis=-1)
    tied = (flat == top).sum(axis=-1) > 1
    others = flat.copy()
    np.put_along_axis(others, best[..., None], -np.inf if larger else np.inf, axis=-1)
    runner = others.max(axis=-1) if larger else others.min(axis=-1)
    return tuple(np.expand_dims(v, axes) for v in (best, tied, top[..., 0], runner))


def winners(x_full: np.ndarray, axes: tuple, larger: bool):
    """Per slice along ``axes``: the winner's position (flat over ``axes``), whether it is tied, its lead.

    Each has the reduced axes kept with size 1. The lead is ``|top - runner-up|`` (0 for a
    tie, inf for a slice of one entry).
    """
    best, tied, top, runner = _ranked(x_full, axes, larger)
    one = all(x_full.shape[a] == 1 for a in axes)
    lead = np.full(best.shape, np.inf) if one else np.abs(top - runner)
    return best, tied, np.where(tied, 0.0, lead)


def _certified(d, lead, axes):
    """Whether no perturbation can change any winner: all changes of a slice below CERTIFIED of its lead."""
    if d.size and max(d.max(), -d.min()) < CERTIFIED * lead.min():  # (NaN compares false) the largest change
        return True  # below the smallest lead, so is each slice's: two quick passes, no abs, no inner-axis reduce
    reach = np.abs(d).max(axis=tuple(a + 1 for a in axes), keepdims=True)
    return bool(((reach < CERTIFIED * lead) | (reach == 0)).all())


def _extreme(ev, node, changes):
    larger = node.op == "max"
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    if _one_entry_axis(changes[0], axes):
        return _one_entry(ev, node, changes[0], axes[0], keepdims, larger)
    change = widen(changes[0], axes)
    k, ndim = change.k, len(change.shape)
    kept_axes = [a for a in range(ndim) if a not in axes]
    order = [0] + [a + 1 for a in kept_axes] + [a + 1 for a in axes]
    x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
    pick = np.max if larger else np.min
    best, tied, lead = ev.graph.derive(("winners", node.id), lambda: winners(x_full, axes, larger))
    windows = {a: w for a, w in change.windows.items()}
    best_w = gather(best, windows, k, ndim)
    d = change.stacked()
    certified = _certified(d, gather(lead, windows, k, ndim), axes)
    if len(axes) == 1:  # one reduced axis (a softmax's shift): no moving of axes
        a = axes[0] + 1
        index = np.broadcast_to(best_w, d.shape[:a] + (1,) + d.shape[a + 1:])
        values = d_win = np.take_along_axis(d, index, axis=a)
        if not certified:
            tied_w = gather(tied, windows, k, ndim)
            x = gather(x_full, windows, k, ndim)
            new = x + d
            new_y = pick(new, axis=a, keepdims=True)
            new_win = np.take_along_axis(np.broadcast_to(x, d.shape), index, axis=a) + d_win
            moved = (d != 0).any(axis=a, keepdims=True)
            flips = ((new_y > new_win) if larger else (new_y < new_win)) | (tied_w & moved)
            if flips.any():
                ev.kink(flips)
                values = np.where(flips, new_y - pick(x, axis=a, keepdims=True), d_win)
        if not keepdims:
            values = np.squeeze(values, axis=a)
        return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)
    flat_shape = (k,) + tuple(d.shape[a + 1] for a in kept_axes) + (-1,)
    d = _moved(d, order, flat_shape)
    best_w = np.broadcast_to(_moved(best_w, order, best_w.shape[:1] + flat_shape[1:-1] + (1,)), flat_shape[:-1] + (1,))
    values = d_win = np.take_along_axis(d, best_w, axis=-1)[..., 0]
    if not certified:
        tied_w = gather(tied, windows, k, ndim)
        tied_w = _moved(tied_w, order, tied_w.shape[:1] + flat_shape[1:-1] + (1,))[..., 0]
        x = _moved(np.broadcast_to(gather(x_full, windows, k, ndim), change.full().shape), order, flat_shape)
        new = x + d
        new_y = pick(new, axis=-1)
        new_win = np.take_along_axis(x, best_w, axis=-1)[..., 0] + d_win
        flips = ((new_y > new_win) if larger else (new_y < new_win)) | (tied_w & (d != 0).any(axis=-1))
        if flips.any():  # a new winner, or a tie broken: recomputed, and a kink
            ev.kink(flips)
            values = np.where(flips, new_y - pick(x, axis=-1), d_win)
    if keepdims:
        values = np.expand_dims(values, tuple(a + 1 for a in axes))
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


def _one_entry_axis(change: Change, axes) -> bool:
    """Whether the extreme is over one axis on which every perturbation changes one entry."""
    window = change.windows.get(axes[0]) if len(axes) == 1 else None
    return window is not None and window[1] == 1


def _one_entry(ev, node, change: Change, axis: int, keepdims: bool, larger: bool) -> Change:
    """``max``/``min`` over one axis where each perturbation changes one entry along it (a softmax's shift).

    Per kept entry the winner's value ``y`` and the runner-up's ``r`` (the best of the others) are
    known from the base pass. A change ``d`` of entry ``j`` moves the extreme only if ``j`` is
    the winner (to ``x_j + d``, unless ``r`` now wins) or ``x_j + d`` beats ``y``: the same
    comparisons and the same ``max(new) - y`` as opening the whole axis, on one entry per slice.
    """
    x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
    pick = np.maximum if larger else np.minimum
    k, ndim = change.k, len(change.shape)
    others = {a: w for a, w in change.windows.items() if a != axis}
    ranked = ev.graph.derive(("ranked", node.id), lambda: _ranked(x_full, (axis,), larger))
    best, tied, y, r = (gather(a, others, k, ndim) for a in ranked)
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


def _opened(ev, node, change: Change, axes):
    """The change with the windows on ``axes`` opened, its values and the base values in its windows,
    both of shape ``(K, *window shape)``."""
    change = widen(change, axes)
    k, ndim = change.k, len(change.shape)
    d = np.broadcast_to(change.floats(), (k,) + change.wshape)
    x = np.broadcast_to(gather(np.asarray(ev.base(node.args[0]), dtype=np.float64), change.windows, k, ndim), d.shape)
    return change, d, x


def others_product(x: np.ndarray, axes: tuple) -> np.ndarray:
    """Each entry's product of the other entries of its slice along ``axes``, by products before and after it.

    No division: exact where entries are zero (one zero makes every other entry's product 0
    and its own the product of the rest).
    """
    kept = [a for a in range(x.ndim) if a not in axes]
    order = kept + list(axes)
    moved = np.transpose(x, order)
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,))
    before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.transpose((before * after).reshape(moved.shape), np.argsort(order))


def _prod(ev, node, changes):
    """``prod``: where each perturbation changes one entry of every slice (its window has length 1 on every
    reduced axis) the change is ``d`` times the product of the others (:func:`others_product`); else the
    products of the perturbed slices are recomputed from the inputs, less the base's."""
    change = changes[0]
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    if not axes:
        return Change(change.values, change.windows, node.value.shape)
    reduced = tuple(a + 1 for a in axes)
    if all(a in change.windows and change.windows[a][1] == 1 for a in axes):
        x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
        others = ev.graph.derive(("others", node.id), lambda: others_product(x_full, axes))
        values = change.floats() * gather(others, change.windows, change.k, len(change.shape))
        if not keepdims:
            values = np.squeeze(values, axis=reduced)
    else:
        change, d, x = _opened(ev, node, change, axes)
        with np.errstate(over="ignore", invalid="ignore"):  # not finite: the real cost evaluates it
            values = np.prod(x + d, axis=reduced, keepdims=keepdims) - np.prod(x, axis=reduced, keepdims=keepdims)
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


def _nansum(ev, node, changes):
    """``nansum`` and ``nanmean``: a sum (a mean over the entries not NaN at theta) where no entry is NaN at
    theta. An entry NaN at theta that a perturbation reaches with a change other than 0 may have become a
    number: that perturbation's change is NaN, which hands it to the real cost."""
    axes, keepdims = node.kw["axis"], node.kw["keepdims"]
    reduced = tuple(a + 1 for a in axes)
    x_full = np.asarray(ev.base(node.args[0]), dtype=np.float64)
    if ev.graph.derive(("nan", node.id), lambda: bool(np.isnan(x_full).any())):
        change, d, x = _opened(ev, node, changes[0], axes)
        d = np.where(np.isnan(x), np.where(d == 0, 0.0, np.nan), d)
    else:
        change = changes[0]
        d = np.broadcast_to(change.floats(), (change.k,) + change.wshape)
    values = d.sum(axis=reduced, keepdims=True)
    if node.op == "nanmean":
        kept = {a: w for a, w in change.windows.items() if a not in axes}
        values = values / gather(node.kw["counts"], kept, change.k, len(change.shape))
    if not keepdims:
        values = np.squeeze(values, axis=reduced)
    return Change(values, _kept_windows(change, axes, keepdims), node.value.shape)


REDUCTIONS = {"sum": _sum, "mean": _sum, "max": _extreme, "min": _extreme, "prod": _prod, "nansum": _nansum,
              "nanmean": _nansum}
