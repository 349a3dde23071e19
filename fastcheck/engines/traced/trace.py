"""Tracing a user's numpy cost: one call on arrays that carry their values and record every operation.

:func:`trace` calls ``cost(params)`` with a :class:`Traced` array in place of each parameter
array. A traced array holds the concrete float64 value the user's code would see and the id
of the graph node that produced it; numpy's dispatch protocols (``__array_ufunc__``,
``__array_function__``) and the operators route every operation on it to
:mod:`fastcheck.engines.traced.functions`, which computes the value with the very numpy call
the user wrote and records a node. Data the cost closes over stays plain numpy: constants of
the graph (the graph itself, its nodes and :class:`~.graph.NotTraceable`: :mod:`~.graph`).

What plain code reads of a mask or a count (``np.asarray(z > 0)``, ``dx[margins > 0] = 1``,
``if margin > 0:``) is a *guard* (:meth:`Tracer.guard`): those values are constant between
the points where they jump, so where a perturbation leaves every guard as it is, the plain
code computes what it computed here, and the perturbations that change one go to the real
cost. Anything else the engine cannot vouch for ends the trace with :class:`NotTraceable`,
whose reason is one sentence for the report naming the user's line: a traced float turned
into a Python number or a plain array before the cost returns (``float(x)``, ``np.asarray``,
``math.exp``), an unsupported numpy function or method, an index that depends on the
parameters. The failure is remembered by the tracer, so a cost that catches exceptions
cannot hide it.
"""

from __future__ import annotations

import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import plaindot
from .graph import Node, NotTraceable, Ref
from .sites import at, mid_graph_reason, plain_array_reason, site

__all__ = ["Traced", "Tracer", "HANDLERS", "value_of", "tracer_of"]

#: What traced arrays call for each operation, filled in by :mod:`~.functions` (which builds on this
#: module, so it cannot be imported from here): ``ufunc_call``, ``function_call``, ``getitem``, ...
HANDLERS: dict = {}


_DTYPES = ("f", "b", "i", "u")
#: Kinds of values that stay constant between the points where they jump: masks and counts.
_PIECEWISE_CONSTANT = "biu"


class Tracer:
    """Records nodes while the cost runs; remembers the first reason the trace is not usable."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.failure: str | None = None
        self.active = True
        self.conversions: list = []  # (node id, the Python float handed out, nodes recorded by then, site)
        self.guards: list = []  # nodes of masks and counts the cost read as plain values
        self.pending: list = []  # products of plain .dot() calls not yet recorded (see plaindot)
        self.operands: list = []  # the identity operands handed to them
        self.loss_only = False  # the cost returns (loss, grads): values that leave the trace may be the grads'
        self.escapes: list = []  # (nodes recorded by then, reason) of traced floats that left (loss_only)
        self.targets: list = []  # plain arrays a traced result was written into (out=), in loss_only

    def settle(self) -> None:
        """Record the products of plain ``.dot()`` calls made since the last operation."""
        if self.pending or self.operands:
            plaindot.settle(self, HANDLERS["dot"])

    def guard(self, x: Traced) -> np.ndarray:
        """The value of a mask or a count, handed to plain code: a guard, re-evaluated per perturbation.

        Plain code can compute only from what it is handed; where a perturbation leaves every
        guard unchanged it computes exactly what it computed here, so its results are constants
        of the graph for that perturbation. The perturbations that change a guard are not the
        engine's to evaluate (:func:`~.evaluate.run` hands them to the real cost).
        """
        if x._node not in self.guards:
            self.guards.append(x._node)
        return x._value

    def escape(self, reason: str, target=None) -> None:
        """A traced float leaves for plain code (``dx[...] += mask * dout`` into ``np.zeros``): the end of the
        trace, unless only the loss of ``(loss, grads)`` is traced; :func:`~.tracing.trace` then makes sure
        the loss does not depend on what left."""
        if not self.loss_only:
            self.fail(reason)
        self.escapes.append((len(self.nodes), reason))
        if target is not None:
            self.targets.append(target)

    def fail(self, reason: str):
        if self.failure is None:
            self.failure = reason
        raise NotTraceable(self.failure)

    def refuse_extra(self, what: str, **extra) -> None:
        """End the trace where a handler of ``what`` was given settings it does not follow (``out=``, ...)."""
        bad = [k for k, v in extra.items() if v is not None and v is not False]
        if bad:
            self.fail(f"{what} with {', '.join(bad)}= is not supported")

    def ref(self, x):
        """A Ref for a Traced of this trace, the constant itself otherwise."""
        if isinstance(x, Traced):
            if x._tracer is not self:
                self.fail("the cost uses a traced value kept from outside this call (a cache or a global)")
            return Ref(x._node)
        return x

    def record(self, op: str, args, value, **kw) -> Traced:
        """A new node ``op(args)`` whose value (computed by the caller with numpy) is ``value``."""
        self.settle()
        refs = tuple(self.ref(a) for a in args)
        value = np.asarray(value)
        if value.dtype.kind not in _DTYPES or (value.dtype.kind == "f" and value.dtype != np.float64):
            self.fail(f"a traced value of dtype {value.dtype} appeared (the engine follows float64 only)")
        if value.dtype.kind in "iu":
            value = value.astype(np.int64, copy=False)
        try:
            value.flags.writeable = False  # base values are shared by every perturbation: never written
        except ValueError:  # a view of an array this trace does not own
            value = value.copy()
            value.flags.writeable = False
        node = Node(op, refs, kw, value, len(self.nodes))
        self.nodes.append(node)
        return Traced(self, node.id, value)


class Traced(NDArrayOperatorsMixin):
    """An array of the cost being traced: its concrete value and the node that made it.

    In-place operations (``a[mask] = 0``, ``a += b``) record a new node and rebind this
    object to it; on an array that shares memory with another traced array (a view, or
    one viewed since) they end the trace, since the other would silently keep the old
    value.
    """

    __array_priority__ = 1000

    def __init__(self, tracer: Tracer, node: int, value: np.ndarray):
        self._tracer, self._node, self._value = tracer, node, value
        self._view_of = None  # the Traced this one is a view of (numpy semantics), if any
        self._views = []  # weak references to views of this one
        self._view_index = None  # the basic index that made this view of _view_of, if one did
        self._written = None  # (base, its node, index) after an in-place update wrote through to the base
        self._param = False  # the parameter array the cost was handed (never updated in place)

    # ------------------------------------------------------------------ numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if plaindot.has_proxy(inputs + tuple(kwargs.get("out", ()))):
            return NotImplemented  # the product of a plain .dot() unwraps itself first
        return HANDLERS["ufunc_call"](self._live(inputs), ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if plaindot.has_proxy(args) or plaindot.has_proxy(tuple(kwargs.values())):
            return NotImplemented
        return HANDLERS["function_call"](self._live(args), func, args, kwargs)

    @staticmethod
    def _live(args) -> Tracer | None:
        """The tracer recording this call; values of finished traces behave as plain arrays."""
        for x in _flatten(args):
            if isinstance(x, Traced) and x._tracer.active:
                return x._tracer
        return None

    def __array__(self, dtype=None, copy=None):
        if not self._tracer.active:
            return np.array(self._value, dtype=dtype)
        if self._value.dtype.kind in _PIECEWISE_CONSTANT:  # a mask or a count: guarded
            return np.array(self._tracer.guard(self), dtype=dtype)
        identity = plaindot.operand(self, self._tracer, dtype)  # a plain array's .dot(): followed
        if identity is not None:
            return identity
        self._tracer.escape(plain_array_reason())
        return np.array(self._value, dtype=dtype)

    # ------------------------------------------------------------------ conversions and branches
    def _scalar(self, what: str) -> np.ndarray:
        if self._value.size != 1:
            self._tracer.fail(f"the cost converts a traced array to {what}{at(site())}")
        return self._value.reshape(())

    def __float__(self):
        tracer = self._tracer
        value = self._scalar("a Python number")
        if not tracer.active:
            return float(value)
        if value.dtype.kind in _PIECEWISE_CONSTANT:
            tracer.guard(self)
            return float(value)
        if tracer.conversions and not tracer.loss_only:  # a second number: the first was not the last step
            tracer.fail(mid_graph_reason(tracer.conversions[0][3]))
        out = float(value)
        tracer.conversions.append((self._node, out, len(tracer.nodes), site()))
        return out

    def item(self, *args):
        if args:
            self._tracer.fail("the cost reads single entries of a traced array as Python numbers (.item(i))"
                              f"{at(site())}")
        if self._value.dtype.kind not in _PIECEWISE_CONSTANT:
            return self.__float__()
        value = self._scalar("a Python number")
        if self._tracer.active:
            self._tracer.guard(self)
        return value.item()

    def __bool__(self):
        """A branch (``if margin > 0:``) on a traced scalar: a guard, and the branch taken here is the graph's."""
        if not self._tracer.active:
            return bool(self._value)
        if self._value.size != 1:
            self._tracer.fail(f"the cost branches on a traced array of {self._value.size} entries{at(site())} (its "
                              "truth value is ambiguous)")
        condition = self if self._value.dtype.kind in _PIECEWISE_CONSTANT else self != 0.0
        return bool(self._tracer.guard(condition).reshape(()))

    def __index__(self):
        if self._value.ndim:  # numpy then reads the array as an index array (through __array__)
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return self.__int__()

    def __int__(self):
        if not self._tracer.active:
            return int(self._value)
        if self._value.dtype.kind in _PIECEWISE_CONSTANT:
            self._scalar("a Python int")
            return int(self._tracer.guard(self).reshape(()))
        self._tracer.fail(f"the cost converts a traced value to a Python int{at(site())}")

    def __complex__(self):
        self._tracer.fail(f"the cost converts a traced value to a Python complex{at(site())}")

    def tolist(self):
        self._tracer.fail("the cost converts a traced array to a Python list (.tolist())")

    def __format__(self, spec):
        return format(self._value, spec) if self._value.ndim else format(self._value[()], spec)

    def __repr__(self) -> str:
        return f"Traced({self._value!r})"

    # ------------------------------------------------------------------ array attributes
    @property
    def shape(self):
        return self._value.shape

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    @property
    def dtype(self):
        return self._value.dtype

    def __len__(self):
        return len(self._value)

    def __iter__(self):
        for i in range(len(self._value)):
            yield self[i]

    @property
    def T(self):
        return self.transpose()

    def __getattr__(self, name):
        if name.startswith("__"):  # numpy probes protocols (__array_interface__, ...) with getattr
            raise AttributeError(name)
        self._tracer.fail(f"the array method .{name}() is not supported{at(site())}")

    # ------------------------------------------------------------------ methods
    def _method(name, plain):  # noqa: N805 -- builds the methods below from the function handlers
        def method(self, *args, **kwargs):
            if not self._tracer.active:  # a value kept from a finished trace is a plain array
                return getattr(self._value, plain)(*args, **kwargs)
            unwrap = plaindot.unwrap
            return HANDLERS[name](self, *map(unwrap, args), **{k: unwrap(v) for k, v in kwargs.items()})

        method.__name__ = name
        return method

    sum = _method("sum_", "sum")
    mean = _method("mean", "mean")
    max = _method("amax", "max")
    min = _method("amin", "min")
    var = _method("var", "var")
    std = _method("std", "std")
    any = _method("any_", "any")
    all = _method("all_", "all")
    ravel = _method("ravel", "ravel")
    flatten = _method("ravel", "flatten")
    swapaxes = _method("swapaxes", "swapaxes")
    squeeze = _method("squeeze", "squeeze")
    astype = _method("astype", "astype")
    copy = _method("copy", "copy")
    clip = _method("clip", "clip")
    dot = _method("dot", "dot")
    repeat = _method("repeat", "repeat")
    prod = _method("prod", "prod")

    def reshape(self, *shape, order="C"):
        if not self._tracer.active:
            return self._value.reshape(*shape, order=order)
        return HANDLERS["reshape"](self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        if not self._tracer.active:
            return self._value.transpose(*axes)
        return HANDLERS["transpose"](self, axes[0] if len(axes) == 1 else (axes or None))

    def __getitem__(self, index):
        if not self._tracer.active:
            return self._value[index]
        return HANDLERS["getitem"](self, index)

    def __setitem__(self, index, value):
        if not self._tracer.active:
            raise ValueError("assignment destination is read-only")
        value = plaindot.unwrap(value)
        if isinstance(value, Traced) and value._written is not None:
            base, node, written = value._written
            if base is self and node == self._node and _same_index(written, index):
                return  # ``a[i] += v`` storing back the view that already wrote through to ``a``
        self._rebind(HANDLERS["setitem"](self, index, value))

    def _rebind(self, result: Traced) -> None:
        """Make this array the result of an in-place update (refused where memory is shared).

        An update of a view made by basic indexing (``W[:, 1] *= 2``) writes through to its
        base, as numpy's does, when nothing else views the base; other views are refused.
        """
        tracer = self._tracer
        base = self._view_of
        if self._param or (base is not None and base._param):  # the arrays the cost was handed, never its copies
            tracer.fail(f"the cost modifies its parameters in place{at(site())}; work on a .copy()")
        shared = any(ref() is not None for ref in self._views)
        if base is not None:
            shared |= self._view_index is None or base._view_of is not None or any(
                (view := ref()) is not None and view is not self for ref in base._views)
        if shared:
            tracer.fail(f"the cost updates in place an array that shares memory with another traced array "
                        f"(a view){at(site())}; work on a .copy()")
        if base is not None:
            through = HANDLERS["setitem"](base, self._view_index, result)
            base._node, base._value = through._node, through._value
            self._written = (base, base._node, self._view_index)
        self._node, self._value = result._node, result._value

    def _as_view_of(self, base: Traced, index=None) -> Traced:
        """Mark this array a view of ``base`` (``index``: the basic index that made it, if one did)."""
        self._view_of, self._view_index = base, index
        base._views.append(weakref.ref(self))
        return self


def value_of(x):
    """The value of a traced array (what the user's code would see), or ``x`` itself."""
    return x._value if isinstance(x, Traced) else x


def tracer_of(*args) -> Tracer | None:
    """The tracer recording a call on ``args``; None for values of finished traces and plain arrays."""
    return Traced._live(args)


def _same_index(a, b) -> bool:
    """Equal basic indices (ints, slices, None, Ellipsis), compared without touching arrays."""
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    a, b = (tuple(int(x) if isinstance(x, np.integer) else x for x in y) for y in (a, b))  # dy[Y[t]], numpy ints
    plain = (int, slice, type(None), type(Ellipsis))
    return len(a) == len(b) and all(isinstance(x, plain) and isinstance(y, plain) and type(x) is type(y) and x == y
                                    for x, y in zip(a, b))


def _flatten(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flatten(a)
        else:
            yield a
