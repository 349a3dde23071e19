"""The entry point of tracing: :func:`trace` runs the cost once on traced parameters and returns its graph."""

from __future__ import annotations

import numpy as np

from ...errors import user_failure
from . import (
    functions,  # noqa: F401  (fills trace.HANDLERS: what traced arrays call)
    nanprod,  # noqa: F401  (adds np.prod, np.nansum, np.nanmean to them)
)
from .graph import Graph, NotTraceable, Ref
from .plaindot import unwrap
from .sites import mid_graph_reason
from .trace import Traced, Tracer

__all__ = ["trace"]


def _parameters(layout, theta, tracer):
    params = {}
    for position, g in enumerate(layout.groups):
        value = np.array(theta[g.start:g.stop]).reshape(g.shape)
        params[g.name] = tracer.record("param", (), value, group=position)
        params[g.name]._param = True
    return params


def trace(cost, layout, theta: np.ndarray, *, loss_only: bool = False) -> Graph:
    """Run ``cost`` once on traced parameters and return its graph.

    Parameters
    ----------
    cost : callable ``cost(params) -> float``, or ``-> (loss, grads)`` with ``loss_only``
        The user's cost, unmodified.
    layout : Layout
    theta : ndarray of shape (n_params,), float64
    loss_only : bool
        The cost returns ``(loss, grads)``: only the loss is traced, and traced floats may
        leave the trace for plain arrays (the gradient code's ``dx[...] += ...``) as long as
        the loss does not depend on them (:func:`_require_independent`).

    Returns
    -------
    Graph

    Raises
    ------
    NotTraceable
        With the reason the cost cannot be traced.
    """
    tracer, graph = _run(cost, layout, theta, loss_only)
    if tracer.escapes:
        _require_independent(graph, tracer, cost, layout, theta)
    return graph


def _run(cost, layout, theta: np.ndarray, loss_only: bool):
    tracer = Tracer()
    tracer.loss_only = loss_only
    params = _parameters(layout, theta, tracer)
    leaves = [params[g.name]._node for g in layout.groups]
    if layout.flat:
        arg = params[layout.groups[0].name]
    else:  # the caller's structure: a dict, or a list or tuple of arrays
        sequence = getattr(layout, "sequence", None)
        arg = params if sequence is None else sequence(params.values())
    try:
        result = cost(arg)
        if loss_only and isinstance(result, tuple) and len(result) == 2:
            result = result[0]
        result = unwrap(result)
        tracer.settle()
    except NotTraceable:
        pass
    except BaseException as exc:  # the cost failed on traced arrays: the real cost decides what that means
        if not user_failure(exc):  # Ctrl-C, a time limit
            raise
        if tracer.failure is None:
            tracer.failure = f"the cost raised {type(exc).__name__} on traced arrays ({exc})"
    finally:
        tracer.active = False
    if tracer.failure is not None:
        raise NotTraceable(tracer.failure)
    output = _loss_output(tracer, result) if loss_only else _output(tracer, result)
    value = tracer.nodes[output].value
    return tracer, Graph(tracer.nodes, leaves, output, float(value.reshape(())), guards=tuple(tracer.guards))


def _loss_output(tracer: Tracer, result) -> int:
    """The loss's node when the cost returns ``(loss, grads)``; other conversions left the trace."""
    conversions, final = tracer.conversions, None
    if not isinstance(result, Traced):
        final = next((c for c in conversions if c[1] is result), None)  # float(loss): that very number
        if final is None and len(conversions) == 1 and _is_final(tracer, conversions[0], result):
            final = conversions[0]
    tracer.escapes += [(c[2], mid_graph_reason(c[3])) for c in conversions if c is not final]
    tracer.escapes.sort(key=lambda e: e[0])
    tracer.conversions = []
    try:
        return final[0] if final is not None else _output(tracer, result)
    except NotTraceable as exc:
        if tracer.escapes:
            raise NotTraceable(tracer.escapes[0][1] + LOSS_DEPENDS) from exc
        raise


def _output(tracer: Tracer, result) -> int:
    """The node the cost returned: a traced scalar, or the number of its final conversion.

    ``float(loss)``, ``loss.item()`` or ``np.float64(loss)`` as the last step hands back the
    cost itself; a conversion before the end freezes a traced value into plain Python.
    """
    conversions = tracer.conversions
    if isinstance(result, Traced):
        if result._tracer is not tracer:
            raise NotTraceable("the cost returned a traced value kept from outside this call")
        if conversions:
            raise NotTraceable(mid_graph_reason(conversions[0][3]))
        if result.size != 1:
            raise NotTraceable(f"the cost returned an array of shape {result.shape}")
        if result.dtype != np.float64:
            raise NotTraceable(f"the cost returned a traced value of dtype {result.dtype}")
        return result._node
    if len(conversions) == 1 and _is_final(tracer, conversions[0], result):
        return conversions[0][0]
    if conversions:
        raise NotTraceable(mid_graph_reason(conversions[0][3]))
    error = NotTraceable("the cost's value does not depend on the traced parameters")
    # no path from any parameter to J, not even through a mask or a count: the cost ignores its argument
    error.constant = not tracer.guards
    raise error


def _is_final(tracer: Tracer, conversion, result) -> bool:
    """The conversion is the cost's last step: nothing traced after it, and its number is what came back."""
    node, number, n_nodes, _ = conversion
    if n_nodes != len(tracer.nodes) or tracer.nodes[node].value.dtype != np.float64:
        return False
    if not isinstance(result, (float, np.floating, np.ndarray)) or np.size(result) != 1:
        return False
    value = float(np.reshape(result, ()))
    return value == number or (np.isnan(value) and np.isnan(number))


#: The end of a reason when a loss traced alone depends on a value that left the trace.
LOSS_DEPENDS = (", and the loss depends on it (the cost returns (loss, grads): if this line is in your gradient "
                "computation, pass `grads` and a forward-only cost to use the traced engine)")
#: Relative size of the nearby point of :func:`_require_independent`: far above rounding, far below kinks.
NEARBY = 2.0**-26


def _require_independent(graph: Graph, tracer: Tracer, cost, layout, theta: np.ndarray) -> None:
    """Raise NotTraceable unless the loss's graph takes nothing from the traced values that left.

    A value that left the trace (into a plain array, or a Python float) can only come back as a
    constant of a node; what depends on the parameters changes with them. So the cost is traced
    again at a nearby point (every coordinate moved by about ``NEARBY`` of itself): the nodes the
    loss and the guards depend on must be the same operations on the same constants, bit for bit,
    and no constant may share memory with an array a traced result was written into.
    """
    reason = tracer.escapes[0][1] + LOSS_DEPENDS
    live = _live(graph)
    copies = {}  # one copy of each array, however many nodes take it (the data, say)
    frozen = {i: _freeze((graph.nodes[i].args, graph.nodes[i].kw), copies) for i in live}
    targets = list({id(t): t for t in map(_root, tracer.targets)}.values())
    if any(np.may_share_memory(a, t) for i in live for a in _arrays((graph.nodes[i].args, graph.nodes[i].kw))
           for t in targets):
        raise NotTraceable(reason)
    rng = np.random.default_rng(0)
    nearby = theta + NEARBY * (np.abs(theta) + 2.0**-14) * rng.choice([-1.0, 1.0], theta.size)
    try:
        _, other = _run(cost, layout, nearby, True)
    except NotTraceable as exc:
        raise NotTraceable(reason) from exc
    same = (len(other.nodes) == len(graph.nodes) and other.output == graph.output and other.guards == graph.guards
            and all(a.op == b.op for a, b in zip(graph.nodes, other.nodes)))
    if not same or not all(_same(frozen[i], (other.nodes[i].args, other.nodes[i].kw))
                           and _same(frozen[i], (graph.nodes[i].args, graph.nodes[i].kw)) for i in live):
        raise NotTraceable(reason)


def _live(graph: Graph) -> list:
    """The nodes the output and the guards depend on."""
    live = {graph.output, *graph.guards}
    for node in reversed(graph.nodes):
        if node.id in live:
            live.update(a.id for a in node.args if isinstance(a, Ref))
    return sorted(live)


def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory of ``array`` (through its chain of views)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _arrays(x):
    if isinstance(x, np.ndarray):
        yield x
    elif isinstance(x, (tuple, list)):
        for item in x:
            yield from _arrays(item)
    elif isinstance(x, dict):
        for item in x.values():
            yield from _arrays(item)


def _freeze(x, copies: dict):
    """A copy of a node's constants (arrays copied once each, in ``copies``: the cost may write into them later)."""
    if isinstance(x, np.ndarray):
        if id(x) not in copies:
            copies[id(x)] = (x, x.copy())  # the array itself is kept so that its id stays its own
        return copies[id(x)][1]
    if isinstance(x, (tuple, list)):
        return type(x)(_freeze(item, copies) for item in x)
    if isinstance(x, dict):
        return {k: _freeze(v, copies) for k, v in x.items()}
    return x


def _same(a, b) -> bool:
    """Equal constants, bit for bit (NaN equal to NaN); Refs by the node they name."""
    if isinstance(a, Ref) or isinstance(b, Ref):
        return isinstance(a, Ref) and isinstance(b, Ref) and a.id == b.id
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        return (a.shape == b.shape and a.dtype == b.dtype
                and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")))
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 -- a constant without equality: the same object or different
        return a is b
