"""What the numpy functions that make arrays of arrays record, besides arithmetic, products and reductions.

Shapes and views (``reshape``, ``transpose``, ``broadcast_to``, ``sliding_window_view``: a view of a traced
array is marked as one, so that an in-place update of either is refused where numpy would write through),
joins (``concatenate``, ``stack``, ``pad``, ``repeat``), copies and casts, selections (``where``, ``take``,
``clip`` as ``maximum``/``minimum``) and the functions of a shape only (``zeros_like``, ``np.shape``). Each
handler computes the value with the numpy call the user wrote and records one node (or a composition of
others); :mod:`~.functions` routes the calls here.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as _swv

from .indexing import getitem
from .trace import Traced
from .trace import tracer_of as _tracer
from .trace import value_of as _val

__all__ = ["reshape", "ravel", "expand_dims", "squeeze", "atleast_1d", "atleast_2d", "transpose", "swapaxes",
           "moveaxis", "broadcast_to", "broadcast_arrays", "astype", "copy", "clip", "repeat", "concatenate", "stack",
           "hstack", "vstack", "pad", "sliding_window_view", "where", "take", "shape_only", "full_like"]


def _view(result, a):
    return result._as_view_of(a) if isinstance(a, Traced) else result


def reshape(a, shape, order="C", **extra):
    t = _tracer(a)
    if order != "C":
        t.fail(f"reshape with order={order!r} is not supported")
    value = np.reshape(_val(a), shape)
    result = t.record("reshape", (a,), value, shape=value.shape)
    # numpy copies when the strides cannot be kept (a transpose's reshape): then no memory is shared
    return _view(result, a) if np.may_share_memory(value, _val(a)) else result


def ravel(a, order="C"):
    return reshape(a, (-1,), order=order)


def expand_dims(a, axis):
    return reshape(a, np.expand_dims(_val(a), axis).shape)


def squeeze(a, axis=None):
    return reshape(a, np.squeeze(_val(a), axis).shape)


def atleast_1d(*arrays):
    out = [reshape(a, np.atleast_1d(_val(a)).shape) if isinstance(a, Traced) else np.atleast_1d(a) for a in arrays]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arrays):
    out = [reshape(a, np.atleast_2d(_val(a)).shape) if isinstance(a, Traced) else np.atleast_2d(a) for a in arrays]
    return out[0] if len(out) == 1 else out


def transpose(a, axes=None):
    t = _tracer(a)
    ndim = np.ndim(_val(a))
    axes = tuple(range(ndim)[::-1]) if axes is None else tuple(int(x) % ndim for x in axes)
    return _view(t.record("transpose", (a,), np.transpose(_val(a), axes), axes=axes), a)


def swapaxes(a, axis1, axis2):
    perm = list(range(np.ndim(_val(a))))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(a, perm)


def moveaxis(a, source, destination):
    ndim = np.ndim(_val(a))
    src = [s % ndim for s in np.atleast_1d(source)]
    dst = [d % ndim for d in np.atleast_1d(destination)]
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


def broadcast_to(array, shape, subok=False):
    t = _tracer(array)
    value = np.broadcast_to(_val(array), shape)
    return _view(t.record("broadcast_to", (array,), value, shape=value.shape), array)


def broadcast_arrays(*args, subok=False):
    shape = np.broadcast_shapes(*(np.shape(_val(a)) for a in args))
    out = [broadcast_to(a, shape) if isinstance(a, Traced) else np.broadcast_to(a, shape) for a in args]
    return type(np.broadcast_arrays(np.zeros(1)))(out)


def astype(a, dtype, copy=True, **extra):
    t = _tracer(a)
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        if a.dtype == np.float64:
            return _copy(a)
        return t.record("cast", (a,), _val(a).astype(np.float64))
    if dtype == np.bool_:
        return np.not_equal(a, 0)
    t.fail(f"astype({dtype}) of a traced value is not supported (the engine follows float64 only)")


def _copy(a, order="K", subok=False):
    return Traced(a._tracer, a._node, a._value) if isinstance(a, Traced) else np.copy(a)


def copy(a, order="K"):
    return _copy(a)


def clip(a, a_min=None, a_max=None, out=None, **extra):
    _tracer(a).refuse_extra("clip", out=out)
    a_min, a_max = extra.pop("min", a_min), extra.pop("max", a_max)
    if a_min is not None:
        a = np.maximum(a, a_min)
    if a_max is not None:
        a = np.minimum(a, a_max)
    return a


def repeat(a, repeats, axis=None):
    t = _tracer(a, repeats)
    if isinstance(repeats, Traced) or np.ndim(repeats) != 0:
        t.fail("np.repeat with per-entry repeats is not supported")
    if axis is None:
        a, axis = ravel(a), 0
    axis = int(axis) % np.ndim(_val(a))
    return t.record("repeat", (a,), np.repeat(_val(a), int(repeats), axis=axis), repeats=int(repeats), axis=axis)


def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = list(arrays)
    t = _tracer(*arrays)
    t.refuse_extra("np.concatenate", out=out, dtype=dtype)
    if axis is None:
        arrays, axis = [np.ravel(a) for a in arrays], 0
    axis = int(axis) % np.ndim(_val(arrays[0]))
    value = np.concatenate([_val(a) for a in arrays], axis=axis)
    return t.record("concatenate", tuple(arrays), value, axis=axis)


def stack(arrays, axis=0, out=None, **extra):
    arrays = list(arrays)
    axis = int(axis) % (np.ndim(_val(arrays[0])) + 1)
    return concatenate([np.expand_dims(a, axis) for a in arrays], axis=axis, out=out)


def hstack(tup, **extra):
    arrays = [np.atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if np.ndim(_val(arrays[0])) == 1 else 1)


def vstack(tup, **extra):
    return concatenate([np.atleast_2d(a) for a in tup], axis=0)


def pad(array, pad_width, mode="constant", **kwargs):
    t = _tracer(array)
    if mode != "constant" or isinstance(kwargs.get("constant_values"), Traced) or set(kwargs) - {"constant_values"}:
        t.fail(f"np.pad with mode={mode!r} is not supported (only constant padding)")
    ndim = np.ndim(_val(array))
    widths = tuple(tuple(int(w) for w in row) for row in np.broadcast_to(np.asarray(pad_width), (ndim, 2)))
    value = np.pad(_val(array), widths, mode="constant", **kwargs)
    return t.record("pad", (array,), value, widths=widths)


def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    t = _tracer(x)
    if writeable:
        t.fail("sliding_window_view with writeable=True is not supported")
    ndim = np.ndim(_val(x))
    window_shape = tuple(np.atleast_1d(window_shape).tolist())
    axis = tuple(range(ndim)) if axis is None else tuple(int(a) % ndim for a in np.atleast_1d(axis))
    value = _swv(_val(x), window_shape, axis=axis)
    return _view(t.record("swv", (x,), value, window_shape=window_shape, axis=axis), x)


def where(condition, x=None, y=None):
    t = _tracer(condition, x, y)
    if x is None or y is None:
        t.fail("np.where with one argument (positions that depend on the parameters) is not supported")
    return t.record("where", (condition, x, y), np.where(_val(condition), _val(x), _val(y)))


def take(a, indices, axis=None, out=None, mode="raise"):
    if isinstance(indices, Traced):
        _tracer(a, indices).fail("np.take with indices that depend on the parameters is not supported")
    if axis is None:
        return getitem(ravel(a), np.asarray(indices))
    axis = int(axis) % np.ndim(_val(a))
    return getitem(a, (slice(None),) * axis + (np.asarray(indices),))


def shape_only(func):
    def handler(a, *args, **kwargs):
        return func(_val(a), *(_val(x) for x in args), **kwargs)

    return handler


def full_like(a, fill_value, *args, **kwargs):
    if isinstance(fill_value, Traced):
        _tracer(a, fill_value).fail("np.full_like with a traced fill value is not supported")
    return np.full_like(_val(a), fill_value, *args, **kwargs)
