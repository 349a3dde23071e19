"""What each numpy operation on a traced array records.

Every handler computes the value with the numpy call the user wrote (so the traced values
are the user's own, bit for bit) and records one node whose op the incremental rules know
(:mod:`fastcheck.engines.traced.rules`). A few operations are recorded as compositions of
others: ``var``/``std`` as means of squares, ``clip`` as ``maximum``/``minimum``, ``dot``,
``matmul``, ``tensordot``, ``outer`` and ``einsum`` as one einsum node (or a chain of
two-operand ones) with explicit letters. On values of a finished trace (a cache the cost
kept) every handler is plain numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as _swv

from .elementwise import ELEMENTWISE
from .indexing import getitem, setitem
from .products import dot, inner, matmul, outer, tensordot
from .sites import at, site
from .subscripts import einsum, trace_
from .trace import HANDLERS, Traced

__all__ = ["ufunc_call", "function_call", "UFUNCS"]

#: The ufuncs the incremental rules follow: the elementwise rules named as numpy names a ufunc (``ufunc.__name__``).
UFUNCS = frozenset(name for name in ELEMENTWISE if isinstance(getattr(np, name, None), np.ufunc))


def _val(x):
    return x._value if isinstance(x, Traced) else x


def _tracer(*args):
    return Traced._live(args)


def _name(func) -> str:
    module = getattr(func, "__module__", "") or ""
    module = module.replace("numpy.lib._stride_tricks_impl", "numpy.lib.stride_tricks").replace("numpy", "np", 1)
    module = "np" if module.startswith("np._") or module.startswith("np.lib._") else module
    return f"{module}.{getattr(func, '__name__', repr(func))}"


def _plain(func, args, kwargs):
    """The call on values of finished traces: plain numpy."""
    unwrap = lambda a: [unwrap(x) for x in a] if isinstance(a, list) else (  # noqa: E731
        tuple(unwrap(x) for x in a) if isinstance(a, tuple) else _val(a))
    return func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})


# ---------------------------------------------------------------------- protocols
def ufunc_call(tracer, ufunc, method, inputs, kwargs):
    """``__array_ufunc__``: one elementwise node, a reduction, or ``matmul``; ``out=`` rebinds in place."""
    if tracer is None:
        return _plain(getattr(ufunc, method), inputs, kwargs)
    out = kwargs.pop("out", None)
    target = out[0] if isinstance(out, tuple) else out
    if target is not None and not isinstance(target, Traced):  # a plain result: from masks and counts only
        return getattr(ufunc, method)(*(_plain_input(tracer, x, target) for x in inputs), out=out, **kwargs)
    reduction = {"axis": kwargs.pop("axis", 0), "keepdims": kwargs.pop("keepdims", False)} if method == "reduce" else {}
    if kwargs.pop("dtype", None) not in (None, float, np.float64) or kwargs:
        tracer.fail(f"np.{ufunc.__name__} with {', '.join(map(repr, kwargs)) or 'dtype'}= is not supported{at(site())}")
    name = ufunc.__name__
    if method == "reduce" and name in ("add", "maximum", "minimum"):
        handler = {"add": sum_, "maximum": amax, "minimum": amin}[name]
        result = handler(inputs[0], **reduction)
    elif method != "__call__":
        tracer.fail(f"np.{name}.{method} is not supported{at(site())}")
    elif name == "matmul":
        result = matmul(*inputs)
    elif name == "invert" and all(np.asarray(_val(x)).dtype == np.bool_ for x in inputs):
        result = tracer.record("logical_not", inputs, ufunc(*(_val(x) for x in inputs)))
    elif name not in UFUNCS:
        tracer.fail(f"np.{name} is not supported{at(site())}")
    else:
        result = tracer.record(name, inputs, ufunc(*(_val(x) for x in inputs)))
    if out is None:
        return result
    if target.shape != result.shape:
        tracer.fail(f"np.{name} writes into an array of another shape (out=)")
    target._rebind(result)
    return target


def _plain_input(tracer, x, target):
    """An input of a plain computation: a mask or a count is guarded, a traced float leaves the trace."""
    if not isinstance(x, Traced):
        return x
    if x.dtype.kind == "f":
        tracer.escape(f"the cost writes a traced result into a plain numpy array (out=){at(site())}", target)
        return x._value
    return tracer.guard(x)


def function_call(tracer, func, args, kwargs):
    """``__array_function__``: the handler of ``func``, or the end of the trace if there is none."""
    if tracer is None:
        return _plain(func, args, kwargs)
    handler = _HANDLERS.get(func)
    if handler is None:
        reason = _REASONS.get(getattr(func, "__name__", ""), "is not supported")
        tracer.fail(f"{_name(func)} {reason}{at(site())}")
    return handler(*args, **kwargs)


def _check_extra(tracer, what, **extra):
    bad = [k for k, v in extra.items() if v is not None and v is not False]
    if bad:
        tracer.fail(f"{what} with {', '.join(bad)}= is not supported")


def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim for a in axis)) if ndim else ()


# ---------------------------------------------------------------------- reductions
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t = _tracer(a)
    if dtype not in (None, float, np.float64):
        t.fail("sum with dtype= is not supported")
    _check_extra(t, "sum", out=out, **extra)
    axes = _axes(axis, np.ndim(_val(a)))
    return t.record("sum", (a,), np.sum(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t = _tracer(a)
    _check_extra(t, "mean", out=out, **extra)
    axes = _axes(axis, np.ndim(_val(a)))
    count = int(np.prod([np.shape(_val(a))[i] for i in axes]))
    return t.record("mean", (a,), np.mean(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims,
                    count=count)


def _extreme(op):
    def handler(a, axis=None, out=None, keepdims=False, **extra):
        t = _tracer(a)
        _check_extra(t, f"np.{op}", out=out, **extra)
        if np.size(_val(a)) == 0:
            t.fail(f"np.{op} of an empty traced array")
        axes = _axes(axis, np.ndim(_val(a)))
        value = getattr(np, op)(_val(a), axis=axes, keepdims=keepdims)
        return t.record(op, (a,), value, axis=axes, keepdims=keepdims)

    return handler


amax, amin = _extreme("max"), _extreme("min")


def _mask_count(a, axis, keepdims):
    mask = a if np.asarray(_val(a)).dtype == np.bool_ else np.not_equal(a, 0)
    axes = _axes(axis, np.ndim(_val(a)))
    return sum_(mask, axis=axes, keepdims=keepdims), int(np.prod([np.shape(_val(a))[i] for i in axes]))


def any_(a, axis=None, out=None, keepdims=False, **extra):
    """``any``: a count of true entries, not zero (a mask of masks, piecewise constant like them)."""
    _check_extra(_tracer(a), "any", out=out, **extra)
    return np.not_equal(_mask_count(a, axis, keepdims)[0], 0)


def all_(a, axis=None, out=None, keepdims=False, **extra):
    _check_extra(_tracer(a), "all", out=out, **extra)
    count, size = _mask_count(a, axis, keepdims)
    return np.equal(count, size)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **extra):
    t = _tracer(a)
    _check_extra(t, "var", out=out, **extra)
    axes = _axes(axis, np.ndim(_val(a)))
    count = int(np.prod([np.shape(_val(a))[i] for i in axes]))
    centred = a - mean(a, axis=axes, keepdims=True)
    out = mean(np.square(centred), axis=axes, keepdims=keepdims)
    return out * (count / (count - ddof)) if ddof else out


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **extra):
    return np.sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **extra))


def norm(x, ord=None, axis=None, keepdims=False):
    if ord not in (None, "fro", 2) or (ord == 2 and (axis is None and np.ndim(_val(x)) != 1)):
        _tracer(x).fail(f"np.linalg.norm with ord={ord!r} is not supported")
    return np.sqrt(sum_(np.square(x), axis=axis, keepdims=keepdims))


# ---------------------------------------------------------------------- shapes
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
    _check_extra(_tracer(a), "clip", out=out)
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
    _check_extra(t, "np.concatenate", out=out, dtype=dtype)
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


def _shape_only(func):
    def handler(a, *args, **kwargs):
        return func(_val(a), *(_val(x) for x in args), **kwargs)

    return handler


def full_like(a, fill_value, *args, **kwargs):
    if isinstance(fill_value, Traced):
        _tracer(a, fill_value).fail("np.full_like with a traced fill value is not supported")
    return np.full_like(_val(a), fill_value, *args, **kwargs)



_HANDLERS = {
    np.sum: sum_, np.mean: mean, np.max: amax, np.amax: amax, np.min: amin, np.amin: amin, np.var: var,
    np.std: std, np.any: any_, np.all: all_, np.linalg.norm: norm, np.reshape: reshape, np.ravel: ravel,
    np.transpose: transpose, np.swapaxes: swapaxes, np.moveaxis: moveaxis, np.expand_dims: expand_dims,
    np.squeeze: squeeze, np.atleast_1d: atleast_1d, np.atleast_2d: atleast_2d, np.broadcast_to: broadcast_to,
    np.broadcast_arrays: broadcast_arrays, np.copy: copy, np.clip: clip, np.repeat: repeat,
    np.concatenate: concatenate, np.stack: stack, np.hstack: hstack, np.vstack: vstack, np.pad: pad,
    _swv: sliding_window_view, np.where: where, np.take: take, np.dot: dot, np.tensordot: tensordot,
    np.einsum: einsum, np.trace: trace_, np.outer: outer, np.inner: inner, np.zeros_like: _shape_only(np.zeros_like),
    np.ones_like: _shape_only(np.ones_like), np.empty_like: _shape_only(np.zeros_like), np.full_like: full_like,
    np.shape: _shape_only(np.shape), np.ndim: _shape_only(np.ndim), np.size: _shape_only(np.size),
}

_REASONS = {name: "of a traced value is not supported (its result depends on the parameters discretely)"
            for name in ("argmax", "argmin", "argsort", "sort", "nonzero", "argwhere", "flatnonzero", "unique")}

HANDLERS.update(ufunc_call=ufunc_call, function_call=function_call, getitem=getitem, setitem=setitem,
                reshape=reshape, transpose=transpose, sum_=sum_, any_=any_, all_=all_, mean=mean, amax=amax,
                amin=amin, var=var, std=std, ravel=ravel, swapaxes=swapaxes, squeeze=squeeze, astype=astype,
                copy=copy, clip=clip, dot=dot, repeat=repeat)
