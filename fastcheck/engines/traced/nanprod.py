"""What ``np.prod``, ``np.nansum`` and ``np.nanmean`` of a traced array record (their change rules are in
:mod:`~.reductions`).

Imported for its side effect by :mod:`~.tracing`, beside :mod:`~.functions`: it adds these
handlers to the functions numpy dispatches to a traced array and to its methods (``.prod()``).
"""

from __future__ import annotations

import numpy as np

from .functions import _HANDLERS, _axes
from .trace import HANDLERS
from .trace import tracer_of as _tracer
from .trace import value_of as _val

__all__ = ["prod", "nansum", "nanmean"]


def _reduction(what, a, axis, dtype, out, extra):
    """The tracer and the reduced axes of ``what(a, axis=...)``; other arguments end the trace."""
    t = _tracer(a)
    if dtype not in (None, float, np.float64):
        t.fail(f"{what} with dtype= is not supported")
    t.refuse_extra(what, out=out, **extra)
    return t, _axes(axis, np.ndim(_val(a)))


def prod(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t, axes = _reduction("np.prod", a, axis, dtype, out, extra)
    return t.record("prod", (a,), np.prod(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims)


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t, axes = _reduction("np.nansum", a, axis, dtype, out, extra)
    return t.record("nansum", (a,), np.nansum(_val(a), axis=axes, keepdims=keepdims), axis=axes, keepdims=keepdims)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    t, axes = _reduction("np.nanmean", a, axis, dtype, out, extra)
    x = np.asarray(_val(a))
    counts = (~np.isnan(x)).sum(axis=axes, keepdims=True)  # the entries each mean divides by, at theta
    if not counts.all():
        t.fail("np.nanmean of a slice that is all NaN")
    value = np.nanmean(x, axis=axes, keepdims=keepdims)
    return t.record("nanmean", (a,), value, axis=axes, keepdims=keepdims, counts=counts)


_HANDLERS.update({np.prod: prod, np.nansum: nansum, np.nanmean: nanmean})
HANDLERS.update(prod=prod)
