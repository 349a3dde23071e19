"""What each numpy operation on a traced array records: the protocols that route it, and the reductions.

``__array_ufunc__`` and ``__array_function__`` of a traced array (:mod:`~.trace`) reach
:func:`ufunc_call` and :func:`function_call`, which look the operation up in the tables below: the
elementwise ufuncs the rules follow, the reductions written here, the functions that move and join
arrays (:mod:`~.arrays`), products (:mod:`~.products`, :mod:`~.subscripts`) and indexing
(:mod:`~.indexing`); anything else ends the trace with its reason. Every handler computes the value
with the numpy call the user wrote (so the traced values are the user's own, bit for bit) and
records one node whose op the incremental rules know (:mod:`~.evaluate`). A few operations are
recorded as compositions of others: ``var``/``std`` as means of squares, ``clip`` as
``maximum``/``minimum``, ``dot``, ``matmul``, ``tensordot``, ``outer`` and ``einsum`` as one einsum
node (or a chain of two-operand ones) with explicit letters. On values of a finished trace (a cache
the cost kept) every handler is plain numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as _swv

from .arrays import (
    astype,
    atleast_1d,
    atleast_2d,
    broadcast_arrays,
    broadcast_to,
    clip,
    concatenate,
    copy,
    expand_dims,
    full_like,
    hstack,
    moveaxis,
    pad,
    ravel,
    repeat,
    reshape,
    shape_only,
    sliding_window_view,
    squeeze,
    stack,
    swapaxes,
    take,
    transpose,
    vstack,
    where,
)
from .elementwise import ELEMENTWISE
from .indexing import getitem, setitem
from .products import dot, inner, matmul, outer, tensordot
from .sites import at, site
from .subscripts import einsum, trace_
from .trace import HANDLERS, Traced
from .trace import tracer_of as _tracer
from .trace import value_of as _val

__all__ = ["ufunc_call", "function_call", "UFUNCS"]

#: The ufuncs the incremental rules follow: the elementwise rules named as numpy names a ufunc (``ufunc.__name__``).
UFUNCS = frozenset(name for name in ELEMENTWISE if isinstance(getattr(np, name, None), np.ufunc))


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
    t.refuse_extra("sum", out=out, **extra)
    axes = _axes(axis, np.ndim(_val(a)))
    return t.record("sum", (a,), np.sum(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t = _tracer(a)
    t.refuse_extra("mean", out=out, **extra)
    axes = _axes(axis, np.ndim(_val(a)))
    count = int(np.prod([np.shape(_val(a))[i] for i in axes]))
    return t.record("mean", (a,), np.mean(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims,
                    count=count)


def _extreme(op):
    def handler(a, axis=None, out=None, keepdims=False, **extra):
        t = _tracer(a)
        t.refuse_extra(f"np.{op}", out=out, **extra)
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
    _tracer(a).refuse_extra("any", out=out, **extra)
    return np.not_equal(_mask_count(a, axis, keepdims)[0], 0)


def all_(a, axis=None, out=None, keepdims=False, **extra):
    _tracer(a).refuse_extra("all", out=out, **extra)
    count, size = _mask_count(a, axis, keepdims)
    return np.equal(count, size)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **extra):
    t = _tracer(a)
    t.refuse_extra("var", out=out, **extra)
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


_HANDLERS = {
    np.sum: sum_, np.mean: mean, np.max: amax, np.amax: amax, np.min: amin, np.amin: amin, np.var: var,
    np.std: std, np.any: any_, np.all: all_, np.linalg.norm: norm, np.reshape: reshape, np.ravel: ravel,
    np.transpose: transpose, np.swapaxes: swapaxes, np.moveaxis: moveaxis, np.expand_dims: expand_dims,
    np.squeeze: squeeze, np.atleast_1d: atleast_1d, np.atleast_2d: atleast_2d, np.broadcast_to: broadcast_to,
    np.broadcast_arrays: broadcast_arrays, np.copy: copy, np.clip: clip, np.repeat: repeat,
    np.concatenate: concatenate, np.stack: stack, np.hstack: hstack, np.vstack: vstack, np.pad: pad,
    _swv: sliding_window_view, np.where: where, np.take: take, np.dot: dot, np.tensordot: tensordot,
    np.einsum: einsum, np.trace: trace_, np.outer: outer, np.inner: inner, np.zeros_like: shape_only(np.zeros_like),
    np.ones_like: shape_only(np.ones_like), np.empty_like: shape_only(np.zeros_like), np.full_like: full_like,
    np.shape: shape_only(np.shape), np.ndim: shape_only(np.ndim), np.size: shape_only(np.size),
}

_REASONS = {name: "of a traced value is not supported (its result depends on the parameters discretely)"
            for name in ("argmax", "argmin", "argsort", "sort", "nonzero", "argwhere", "flatnonzero", "unique")}

HANDLERS.update(ufunc_call=ufunc_call, function_call=function_call, getitem=getitem, setitem=setitem,
                reshape=reshape, transpose=transpose, sum_=sum_, any_=any_, all_=all_, mean=mean, amax=amax,
                amin=amin, var=var, std=std, ravel=ravel, swapaxes=swapaxes, squeeze=squeeze, astype=astype,
                copy=copy, clip=clip, dot=dot, repeat=repeat)
