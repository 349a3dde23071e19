"""Change rules of operations that move entries: reshape, transpose, indexing, pad, concatenate, repeat, windows.

All are linear, so the change of the output is the operation applied to the change of
the input; what needs care is the footprint. A reshape keeps a window when it only
splits or merges full axes around it, and turns a window on the first axis of a merged
group into a contiguous window of the merged axis (a channel of ``(N, F, H, W)`` becomes a
range of ``(N, F*H*W)``). Indexing keeps windows on the axes a full slice keeps and shifts
them through slices that contain them; pad shifts them; concatenation keeps the window of
a single changed input. Everything else opens the window (:func:`~.changes.widen`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .changes import Change, lift, unify, widen
from .indexing import index_layout

__all__ = ["SHAPES", "reshape_groups"]


def reshape_groups(old: tuple, new: tuple) -> list:
    """Consecutive groups ``(old axes, new axes)`` of equal size that a C-order reshape maps onto each other."""
    groups, i, j = [], 0, 0
    while i < len(old) or j < len(new):
        if i < len(old) and old[i] == 1 and (j >= len(new) or new[j] != 1):
            groups.append(([i], []))
            i += 1
            continue
        if j < len(new) and new[j] == 1 and (i >= len(old) or old[i] != 1):
            groups.append(([], [j]))
            j += 1
            continue
        ins, outs, p, q = [i], [j], old[i], new[j]
        i, j = i + 1, j + 1
        while p != q:
            if p < q:
                ins.append(i)
                p *= old[i]
                i += 1
            else:
                outs.append(j)
                q *= new[j]
                j += 1
        groups.append((ins, outs))
    return groups


# numpy's reshape rules (-1, order, 0-d) one case at a time
def _reshape(ev, node, changes):  # noqa: C901
    change, new = changes[0], node.value.shape
    old = change.shape
    if change.windows:
        groups = reshape_groups(old, new)
        opened = []
        for ins, outs in groups:
            windowed = [a for a in ins if a in change.windows]
            if not windowed or (len(ins) == 1 and len(outs) == 1):
                continue
            if len(ins) == 1:
                starts, length = change.windows[ins[0]]
                stride = math.prod(new[o] for o in outs[1:])
                if not (length % stride == 0 and not (starts % stride).any()) and length != 1:
                    opened.append(ins[0])
            elif len(outs) == 1 and ins[0] in change.windows:
                opened += windowed[1:]
            else:
                opened += windowed
        change = widen(change, opened)
        windows = {}
        for ins, outs in groups:
            windowed = [a for a in ins if a in change.windows]
            if not windowed:
                continue
            starts, length = change.windows[ins[0]]
            if len(ins) == 1 and len(outs) == 1:
                windows[outs[0]] = (starts, length)
            elif len(ins) == 1:
                stride = math.prod(new[o] for o in outs[1:])
                if length % stride == 0 and not (starts % stride).any():
                    windows[outs[0]] = (starts // stride, length // stride)
                else:  # one entry: a window of one on each new axis
                    for o, coordinate in zip(outs, np.unravel_index(starts, [new[o] for o in outs])):
                        windows[o] = (coordinate.astype(np.int64), 1)
            else:
                stride = math.prod(old[a] for a in ins[1:])
                windows[outs[0]] = (starts * stride, length * stride)
        out = Change(None, windows, new)
        values = np.ascontiguousarray(change.full()).reshape((change.k,) + out.wshape)
        out.values = values
        return out
    return Change(np.ascontiguousarray(change.full()).reshape((change.k,) + new), {}, new)


def _transpose(ev, node, changes):
    change, axes = changes[0], node.kw["axes"]
    values = change.values
    windows = {i: change.windows[a] for i, a in enumerate(axes) if a in change.windows}
    return Change(np.transpose(values, (0,) + tuple(a + 1 for a in axes)), windows, node.value.shape)


def _broadcast_to(ev, node, changes):
    return lift(changes[0], node.value.shape)


def _getitem(ev, node, changes):
    change, index = changes[0], node.kw["index"]
    kept, n_broadcast, first = index_layout(index)
    opened, shifts, axis = [], {}, 0
    for e in index:
        if e is None:
            continue
        width = 1
        if axis in change.windows:
            if isinstance(e, slice):
                start, stop, step = e.indices(change.shape[axis])
                starts, length = change.windows[axis]
                if step == 1 and (starts >= start).all() and (starts + length <= stop).all():
                    shifts[axis] = start
                else:
                    opened.append(axis)
            else:
                opened.append(axis)
        axis += width
    change = widen(change, opened)
    values = change.full()
    local = tuple(slice(None) if (a is not None and a in change.windows) else e
                  for e, a in zip(index, _input_axes(index)))
    values = values[(slice(None),) + local]
    if first:  # numpy puts separated advanced indices' dimensions first, before the stack axis
        values = np.moveaxis(values, n_broadcast, 0)
    windows = {kept[a]: (starts - shifts.get(a, 0), length) for a, (starts, length) in change.windows.items()}
    return Change(values, windows, node.value.shape)


def _input_axes(index):
    out, axis = [], 0
    for e in index:
        out.append(None if e is None else axis)
        axis += e is not None
    return out


def _setitem(ev, node, changes):
    ca, cv = changes
    index, region = node.kw["index"], node.kw["region"]
    shape = node.value.shape
    k = (ca or cv).k
    if ca is None:
        values = np.zeros((k,) + shape)
    else:
        values = np.array(widen(ca, list(ca.windows)).full(), dtype=np.float64)
    values[(slice(None),) + index] = 0.0 if cv is None else widen(lift(cv, region), list(range(len(region)))).full()
    return Change(values, {}, shape)


def _pad(ev, node, changes):
    change, widths = changes[0], node.kw["widths"]
    values = change.full()
    local = [(0, 0)] + [(0, 0) if a in change.windows else w for a, w in enumerate(widths)]
    values = np.pad(values, local)
    windows = {a: (starts + widths[a][0], length) for a, (starts, length) in change.windows.items()}
    return Change(values, windows, node.value.shape)


def _concatenate(ev, node, changes):
    axis, shape = node.kw["axis"], node.value.shape
    sizes = [np.shape(ev.base(a))[axis] for a in node.args]
    offsets = np.cumsum([0] + sizes)
    changed = [i for i, c in enumerate(changes) if c is not None]
    if len(changed) == 1 and axis in changes[changed[0]].windows:
        c = changes[changed[0]]
        starts, length = c.windows[axis]
        windows = dict(c.windows)
        windows[axis] = (starts + offsets[changed[0]], length)
        return Change(c.values, windows, shape)
    opened = unify([widen(c, [axis]) if c is not None else None for c in changes])
    ref = opened[changed[0]]
    parts = []
    for i, c in enumerate(opened):
        part_shape = list((ref.k,) + ref.wshape)
        part_shape[axis + 1] = sizes[i]
        parts.append(np.zeros(part_shape) if c is None else np.broadcast_to(c.floats(), part_shape))
    return Change(np.concatenate(parts, axis=axis + 1), ref.windows, shape)


def _repeat(ev, node, changes):
    change, repeats, axis = changes[0], node.kw["repeats"], node.kw["axis"]
    values = np.repeat(change.full(), repeats, axis=axis + 1)
    windows = dict(change.windows)
    if axis in windows:
        starts, length = windows[axis]
        windows[axis] = (starts * repeats, length * repeats)
    return Change(values, windows, node.value.shape)


def _sliding_window(ev, node, changes):
    axes, window_shape = node.kw["axis"], node.kw["window_shape"]
    change = widen(changes[0], axes)
    values = sliding_window_view(change.full(), window_shape, axis=tuple(a + 1 for a in axes))
    return Change(values, dict(change.windows), node.value.shape)


SHAPES = {
    "reshape": _reshape,
    "transpose": _transpose,
    "broadcast_to": _broadcast_to,
    "getitem": _getitem,
    "setitem": _setitem,
    "pad": _pad,
    "concatenate": _concatenate,
    "repeat": _repeat,
    "swv": _sliding_window,
}
