"""The entry point of tracing: :func:`trace` runs the cost once on traced parameters and returns its graph."""

from __future__ import annotations

import numpy as np

from ...errors import user_failure
from . import functions  # noqa: F401  (fills trace.HANDLERS: what traced arrays call)
from .plaindot import unwrap
from .sites import mid_graph_reason
from .trace import Graph, NotTraceable, Traced, Tracer

__all__ = ["trace"]


def _parameters(layout, theta, tracer):
    params = {}
    for position, g in enumerate(layout.groups):
        value = np.array(theta[g.start:g.stop]).reshape(g.shape)
        params[g.name] = tracer.record("param", (), value, group=position)
        params[g.name]._param = True
    return params


def trace(cost, layout, theta: np.ndarray) -> Graph:
    """Run ``cost`` once on traced parameters and return its graph.

    Parameters
    ----------
    cost : callable ``cost(params) -> float``
        The user's cost, unmodified.
    layout : Layout
    theta : ndarray of shape (n_params,), float64

    Returns
    -------
    Graph

    Raises
    ------
    NotTraceable
        With the reason the cost cannot be traced.
    """
    tracer = Tracer()
    params = _parameters(layout, theta, tracer)
    leaves = [params[g.name]._node for g in layout.groups]
    if layout.flat:
        arg = params[layout.groups[0].name]
    else:  # the caller's structure: a dict, or a list or tuple of arrays
        sequence = getattr(layout, "sequence", None)
        arg = params if sequence is None else sequence(params.values())
    try:
        result = unwrap(cost(arg))
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
    output = _output(tracer, result)
    value = tracer.nodes[output].value
    return Graph(tracer.nodes, leaves, output, float(value.reshape(())), guards=tuple(tracer.guards))


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
