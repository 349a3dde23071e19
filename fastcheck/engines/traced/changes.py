"""Stacked changes of one node's value, each confined to a window: the footprint of a perturbation.

A :class:`Change` holds, for K perturbations at once, ``value(theta + D_k) - value(theta)``
of one node. Its ``windows`` say where each perturbation can have changed the array: on a
windowed axis, perturbation k touches only ``starts[k] : starts[k] + length`` (the same
length for all k); the other axes are full. ``values`` has shape ``(K, *window shape)``
(dimensions of size 1 broadcast). A single entry of ``W1`` is a window of length 1 on both
axes; a row of ``W1 @ X`` a window on axis 0; a conv channel a window on the channel axis;
a flattened channel a contiguous window of the flat axis. No window at all is the dense
change, always right and only slower: any rule may widen a window to the full axis.

Changes of boolean nodes (masks) are deltas too, as int8: ``new - old`` in {-1, 0, 1}.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Change", "broadcast", "move_axis", "gather", "widen", "restrict", "lift", "unify", "same_window"]


class Change:
    """K stacked changes of an array of shape ``shape``; see the module docstring."""

    __slots__ = ("values", "windows", "shape")

    def __init__(self, values: np.ndarray, windows: dict, shape: tuple):
        shape = tuple(shape)
        self.windows = {a: w for a, w in windows.items() if w[1] != shape[a]}  # a full-length window is no window
        self.values, self.shape = values, shape

    @property
    def k(self) -> int:
        return self.values.shape[0]

    @property
    def wshape(self) -> tuple:
        return tuple(self.windows[a][1] if a in self.windows else n for a, n in enumerate(self.shape))

    def full(self) -> np.ndarray:
        """The values with broadcast dimensions made real (a read-only view)."""
        return broadcast(self.values, (self.k,) + self.wshape)

    def floats(self) -> np.ndarray:
        v = self.values
        return v if v.dtype == np.float64 else v.astype(np.float64)

    def stacked(self) -> np.ndarray:
        """The values as float64 with broadcast dimensions made real (a read-only view)."""
        return broadcast(self.floats(), (self.k,) + self.wshape)

    def __repr__(self) -> str:
        return f"Change(K={self.k}, shape={self.shape}, windows={ {a: w[1] for a, w in self.windows.items()} })"


def broadcast(values: np.ndarray, shape: tuple) -> np.ndarray:
    """``np.broadcast_to``, without its cost where ``values`` has the shape already."""
    return values if values.shape == shape else np.broadcast_to(values, shape)


def move_axis(values: np.ndarray, source: int, destination: int) -> np.ndarray:
    """``np.moveaxis`` for one axis, without its argument checks (a few microseconds a call, many calls a run)."""
    order = list(range(values.ndim))
    order.insert(destination, order.pop(source))
    return values.transpose(order)


def same_window(a, b) -> bool:
    return a[1] == b[1] and (a[0] is b[0] or np.array_equal(a[0], b[0]))


def _window_index(starts: np.ndarray, length: int) -> np.ndarray:
    return starts[:, None] + np.arange(length)


def gather(x, windows: dict, k: int, ndim: int) -> np.ndarray:
    """Base values of ``x`` (broadcastable to an array of ``ndim`` axes) in each perturbation's windows.

    Returns an array broadcastable to ``(k, *window shape)``; axes where ``x`` has size 1
    stay size 1, and without windows on ``x``'s real axes the result is ``x[None]``.
    """
    x = np.asarray(x)
    if x.ndim < ndim:
        x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    active = [(a, w) for a, w in windows.items() if x.shape[a] != 1]
    if not active:
        return x[None]
    if len(active) == 1:
        a, (starts, length) = active[0]
        if length == 1:
            return np.expand_dims(move_axis(np.take(x, starts, axis=a), a, 0), a + 1)
        return move_axis(np.take(x, _window_index(starts, length), axis=a), a, 0)
    windowed = dict(active)
    index = []
    for a in range(ndim):
        shape = [1] * (ndim + 1)
        if a in windowed:
            starts, length = windowed[a]
            shape[0], shape[a + 1] = k, length
            index.append(_window_index(starts, length).reshape(shape))
        else:
            shape[a + 1] = x.shape[a]
            index.append(np.arange(x.shape[a]).reshape(shape))
    return x[tuple(index)]


def widen(change: Change, axes) -> Change:
    """The same change with the windows on ``axes`` opened to the full axis (zeros outside them)."""
    axes = [a for a in axes if a in change.windows]
    if not axes:
        return change
    values, windows = change.full(), dict(change.windows)
    k = change.k
    rows = np.arange(k)[:, None]
    for a in axes:
        starts, length = windows.pop(a)
        shape = list(values.shape)
        shape[a + 1] = change.shape[a]
        out = np.zeros(shape, dtype=values.dtype)
        move_axis(out, a + 1, 1)[rows, _window_index(starts, length)] = move_axis(values, a + 1, 1)
        values = out
    return Change(values, windows, change.shape)


def restrict(values: np.ndarray, axis: int, window) -> np.ndarray:
    """Per-perturbation slices ``values[k, ..., starts[k] : starts[k] + length, ...]`` along ``axis``."""
    if values.shape[axis + 1] == 1:
        return values
    starts, length = window
    if values.shape[0] == 1:
        values = np.broadcast_to(values, (len(starts),) + values.shape[1:])
    moved = move_axis(values, axis + 1, 1)
    return move_axis(moved[np.arange(len(starts))[:, None], _window_index(starts, length)], 1, axis + 1)


def lift(change: Change, shape: tuple) -> Change:
    """The change as seen after broadcasting its array to ``shape``."""
    shape = tuple(shape)
    if change.shape == shape:
        return change
    offset = len(shape) - len(change.shape)
    values = change.values.reshape((change.k,) + (1,) * offset + change.values.shape[1:])
    windows = {a + offset: w for a, w in change.windows.items() if change.shape[a] == shape[a + offset]}
    return Change(values, windows, shape)


def unify(changes: list) -> list:
    """Changes (of arrays of one shape) brought to common windows: where they disagree, widened."""
    present = [c for c in changes if c is not None]
    if len(present) < 2:
        return changes
    first = present[0]
    keep = {a: w for a, w in first.windows.items() if all(a in c.windows and same_window(c.windows[a], w)
                                                          for c in present[1:])}
    return [None if c is None else widen(c, [a for a in c.windows if a not in keep]) for c in changes]
