"""The entry point of tracing: :func:`trace` runs the cost once on traced parameters and returns its graph."""

from __future__ import annotations

import numpy as np

from . import functions  # noqa: F401  (fills trace.HANDLERS: what traced arrays call)
from .trace import Graph, NotTraceable, Traced, Tracer

__all__ = ["trace"]


def _parameters(layout, theta, tracer):
    params = {}
    for position, g in enumerate(layout.groups):
        value = np.array(theta[g.start:g.stop]).reshape(g.shape)
        params[g.name] = tracer.record("param", (), value, group=position)
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
        result = cost(arg)
    except NotTraceable:
        pass
    except Exception as exc:  # the cost failed on traced arrays: the real cost decides what that means
        if tracer.failure is None:
            tracer.failure = f"the cost raised {type(exc).__name__} on traced arrays ({exc})"
    finally:
        tracer.active = False
    if tracer.failure is not None:
        raise NotTraceable(tracer.failure)
    output = _output(tracer, result)
    value = tracer.nodes[output].value
    return Graph(tracer.nodes, leaves, output, float(value.reshape(())))


def _output(tracer: Tracer, result) -> int:
    """The node the cost returned: a traced scalar, or the Python float of its final conversion."""
    if isinstance(result, Traced):
        if result._tracer is not tracer:
            raise NotTraceable("the cost returned a traced value kept from outside this call")
        if tracer.conversions:
            raise NotTraceable("the cost converts a traced value to a Python number (float(), .item(), "
                               "math.*) before its end")
        if result.size != 1:
            raise NotTraceable(f"the cost returned an array of shape {result.shape}")
        if result.dtype != np.float64:
            raise NotTraceable(f"the cost returned a traced value of dtype {result.dtype}")
        return result._node
    if tracer.conversions and tracer.conversions[-1][1] is result and len(tracer.conversions) == 1:
        return tracer.conversions[-1][0]
    if tracer.conversions:
        raise NotTraceable("the cost converts a traced value to a Python number (float(), .item(), math.*) "
                           "before its end")
    raise NotTraceable("the cost's value does not depend on the traced parameters")
