"""A plain array's ``.dot()`` of a traced value: ``x.reshape(N, -1).dot(w)``, CS231n's ``affine_forward``.

``ndarray.dot`` is a method, which numpy's dispatch protocols do not cover (NEP 18): it
converts its argument with ``__array__`` and multiplies with BLAS, and the plain receiver
``x`` is seen by no protocol. What does survive is the type: the product takes the type of
the operand with the higher ``__array_priority__``, and numpy calls that type's
``__array_finalize__`` with the operand. So, where the user's expression is ``a.dot(w)``
(read from the calling frame, :mod:`~.sites`), ``w.__array__`` hands numpy an identity
matrix of ``w``'s leading size typed :class:`DotProxy`. BLAS computes ``a @ I``, which is
``a`` itself exactly (products by 0 and 1, sums of exact zeros), and the product is a
DotProxy holding the receiver.

At the next operation of the trace the proxy is *settled* (:func:`settle`): the receiver's
values are copied out, ``np.dot(a, w)`` (the computation the user's ``.dot`` makes) is
recorded as a node, and the proxy's own memory is filled with NaN, so that a use which
escapes the trace (``np.asarray``) poisons the cost and the verification against the real
cost refuses the trace. From then on the proxy stands for its node: every ufunc, numpy
function, method, attribute, index and conversion goes to the traced value. An identity
operand that numpy does not turn into a product (the argument was a list, or numpy cast it),
or a C-level use of a proxy's memory (another plain ``.dot()`` of it), ends the trace.
"""

from __future__ import annotations

import sys

import numpy as np

from .sites import MAX_DOT_ROWS, dot_receiver, user_frame

__all__ = ["DotProxy", "operand", "settle", "unwrap", "has_proxy"]

_STATE = "_fastcheck_dot"

ESCAPED = ("the product of a plain array's .dot() with a traced value is used by code numpy does not dispatch "
           "(another plain .dot(), or a copy made in C); write np.dot(a, w) or a @ w")
UNFOLLOWED = ("a plain array's .dot() of a traced value could not be followed (its argument was not the traced "
              "array itself, or numpy cast it); write np.dot(a, w) or a @ w")


def _state(x):
    try:
        return object.__getattribute__(x, _STATE)
    except AttributeError:
        return None


class DotProxy(np.ndarray):
    """The identity operand of a plain ``.dot()``, and the product it becomes (see the module docstring)."""

    __array_priority__ = 2000.0  # above any plain array (and np.matrix), so the product takes this type

    def __array_finalize__(self, obj):
        source = _state(obj)
        if source is None:  # a view this module made of a plain identity
            return
        if source["role"] == "operand":
            source["consumed"] = True
            state = {"role": "product", "operand": source, "traced": None, "tracer": source["tracer"]}
            object.__setattr__(self, _STATE, state)
            source["tracer"].pending.append(self)
            return
        object.__setattr__(self, _STATE, {"role": "escaped"})
        source["tracer"].fail(ESCAPED)

    # everything a user can do with the product goes to the traced value it stands for
    def __getattribute__(self, name):
        if name.startswith("__") and name.endswith("__"):
            return object.__getattribute__(self, name)
        return getattr(_target(self), name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = tuple(unwrap(x) for x in kwargs["out"])
        return getattr(ufunc, method)(*(unwrap(x) for x in inputs), **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return func(*_unwrap_all(args), **{k: _unwrap_all(v) for k, v in kwargs.items()})

    def __getitem__(self, index):
        return _target(self)[unwrap(index)]

    def __setitem__(self, index, value):
        _target(self)[unwrap(index)] = unwrap(value)

    def __len__(self):
        return len(_target(self))

    def __iter__(self):
        return iter(_target(self))

    def __float__(self):
        return float(_target(self))

    def __int__(self):
        return int(_target(self))

    def __index__(self):
        return _target(self).__index__()

    def __bool__(self):
        return bool(_target(self))

    def __repr__(self):
        return repr(_target(self))

    def __str__(self):
        return str(_target(self))

    def __format__(self, spec):
        return format(_target(self), spec)


def _target(proxy):
    state = _state(proxy)
    if state is None or state["role"] != "product":
        raise TypeError("an internal array of fastcheck's tracing was used outside a .dot()")
    if state["traced"] is None:
        state["tracer"].settle()
    return state["traced"]


def unwrap(x):
    """The traced value a product stands for; anything else as it is."""
    return _target(x) if type(x) is DotProxy else x


def _unwrap_all(x):
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap_all(e) for e in x)
    return unwrap(x)


def has_proxy(args) -> bool:
    """Whether a product is among ``args`` (nested lists and tuples): it must be unwrapped first."""
    for x in args:
        if type(x) is DotProxy or (isinstance(x, (list, tuple)) and has_proxy(x)):
            return True
    return False


def operand(traced, tracer, dtype=None):
    """The identity operand for ``traced`` when the user's code is calling ``a.dot(traced)``, else None."""
    frame = sys._getframe(2)  # the caller of Traced.__array__: numpy's C code runs in the user's frame
    if (dtype not in (None, np.float64) or traced.dtype != np.float64 or traced.ndim not in (1, 2)
            or traced.shape[0] > MAX_DOT_ROWS or user_frame(frame) is not frame or not dot_receiver(frame)):
        return None
    key = (id(frame), frame.f_lasti)
    cached = traced.__dict__.get("_dot_operand")
    if cached is not None and cached[0] == key and not cached[1]["consumed"]:
        return cached[2]
    identity = np.eye(traced.shape[0]).view(DotProxy)
    state = {"role": "operand", "traced": traced, "tracer": tracer, "consumed": False}
    object.__setattr__(identity, _STATE, state)
    traced.__dict__["_dot_operand"] = (key, state, identity)  # numpy asks twice: for the dtype, then the array
    tracer.operands.append(state)
    return identity


def settle(tracer, dot) -> None:
    """Record the products made since the last operation (``dot(receiver, traced)``); poison their memory."""
    pending, tracer.pending = tracer.pending, []
    operands, tracer.operands = tracer.operands, []
    if any(not state["consumed"] for state in operands):
        tracer.fail(UNFOLLOWED)
    for proxy in pending:
        state = _state(proxy)
        memory = np.ndarray.view(proxy, np.ndarray)
        receiver = np.array(memory)
        memory[...] = np.nan
        if not np.isfinite(receiver).all():
            tracer.fail("a plain array's .dot() of a traced value has a receiver with NaN or infinite entries")
        state["traced"] = dot(receiver, state["operand"]["traced"])
