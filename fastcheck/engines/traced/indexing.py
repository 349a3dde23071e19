"""Indexing traced arrays: reading (``x[i]``, ``x[:, 1:3]``, ``logp[np.arange(N), y]``) and writing.

Indices must be constants (ints, slices, ``None``, ``...``, integer or boolean arrays the
cost computed from its data). An index that depends on the parameters gives a shape or
positions that depend on them: the trace ends. ``a[mask] = v`` with a traced ``mask`` and a
scalar ``v`` keeps every shape and is recorded as ``np.where(mask, v, a)``.
"""

from __future__ import annotations

import numpy as np

from .trace import Traced
from .trace import tracer_of as _tracer

__all__ = ["getitem", "setitem", "normalize_index", "index_layout"]


# numpy's index forms (ints, slices, None, Ellipsis, arrays, masks) one at a time
def normalize_index(tracer, index, shape) -> tuple:  # noqa: C901
    """``index`` as a tuple with one entry per axis (plus ``None``s); boolean arrays become integer ones."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for e in items:
        if isinstance(e, Traced):
            if e.dtype == np.bool_:
                tracer.fail("indexing with a boolean mask that depends on the parameters (a data-dependent "
                            "shape) is not supported; use np.where")
            tracer.fail("indexing with an index that depends on the parameters is not supported")
        if isinstance(e, list):
            e = np.asarray(e)
        if isinstance(e, (bool, np.bool_)):
            tracer.fail("indexing with a Python bool is not supported")
        if isinstance(e, np.integer):
            e = int(e)
        if isinstance(e, np.ndarray) and e.dtype.kind not in "biu":
            tracer.fail(f"indexing with an array of dtype {e.dtype} is not supported")
        out.append(e)
    used = sum(e.ndim if isinstance(e, np.ndarray) and e.dtype == np.bool_ else int(e is not None and e is not Ellipsis)
               for e in out)
    fill = [slice(None)] * (len(shape) - used)
    ellipses = [i for i, e in enumerate(out) if e is Ellipsis]
    if len(ellipses) > 1:
        tracer.fail("an index with two ellipses")
    out = out[:ellipses[0]] + fill + out[ellipses[0] + 1:] if ellipses else out + fill
    result, axis = [], 0
    for e in out:
        if isinstance(e, np.ndarray) and e.dtype == np.bool_:
            result.extend(np.nonzero(e))
            axis += e.ndim
        elif isinstance(e, np.ndarray):
            result.append(np.where(e < 0, e + shape[axis], e).astype(np.int64))
            axis += 1
        elif isinstance(e, int):
            result.append(e % shape[axis] if -shape[axis] <= e < shape[axis] else e)
            axis += 1
        else:
            result.append(e)
            axis += e is not None
    return tuple(result)


def index_layout(index) -> tuple[dict, int, bool]:
    """Where an index sends the input axes it keeps: ``({input axis: output axis}, n_broadcast, first)``.

    Slices keep an axis; ints drop it; ``None`` adds one; integer arrays (and ints among
    them) are advanced indices whose broadcast dimensions numpy puts in place when they
    are adjacent and first otherwise (``first`` is then True).
    """
    has_array = any(isinstance(e, np.ndarray) for e in index)
    advanced = [i for i, e in enumerate(index) if isinstance(e, np.ndarray) or (has_array and isinstance(e, int))]
    n_broadcast = len(np.broadcast_shapes(*(np.shape(index[i]) for i in advanced))) if advanced else 0
    first = bool(advanced) and advanced != list(range(advanced[0], advanced[-1] + 1))
    kept, in_axis, out_axis = {}, 0, (n_broadcast if first else 0)
    for i, e in enumerate(index):
        if e is None:
            out_axis += 1
        elif isinstance(e, slice):
            kept[in_axis] = out_axis
            in_axis, out_axis = in_axis + 1, out_axis + 1
        else:
            if advanced and i == advanced[0] and not first:
                out_axis += n_broadcast
            in_axis += 1
    return kept, n_broadcast, first


def getitem(a, index):
    t = _tracer(a, index)
    raw, index = index, normalize_index(t, index, a.shape)
    value = a._value[index]
    result = t.record("getitem", (a,), value, index=index)
    if not any(isinstance(e, np.ndarray) for e in index):
        result._as_view_of(a, raw)  # basic indexing returns a view in numpy
    return result


def setitem(a, index, v):
    """The array ``a`` after ``a[index] = v`` (a new node; the caller rebinds ``a`` to it)."""
    t = _tracer(a, index, v)
    if isinstance(index, Traced) and index.dtype == np.bool_:
        if np.ndim(v._value if isinstance(v, Traced) else v) != 0:
            t.fail("assigning an array through a boolean mask that depends on the parameters is not supported")
        return np.where(index, v, a)
    index = normalize_index(t, index, a.shape)
    if index_layout(index)[2]:
        t.fail("assigning through separated advanced indices is not supported")
    value = a._value.copy()
    value[index] = v._value if isinstance(v, Traced) else v
    return t.record("setitem", (a, v), value, index=index, region=a._value[index].shape)
