"""The step options of a check, applied to any engine: per-coordinate steps and the 4-point stencil.

An engine's coordinate function is given as ``at(indices, scale)``: its evaluations at
``scale`` times the check's nominal steps (one ``eps``, or one per coordinate with
``eps="auto"``). :func:`stencilled` turns it into the ``Engine.coordinates`` the pipeline
calls: the central difference at the steps (``scale`` 1), or the 4-point stencil from the
central differences at the steps and at twice the steps
(:func:`fastcheck.core.finite.stencil_gradient`). Every engine that takes its step as an
argument honours both options this way, the fast ones included: each of their
evaluations is exact at whatever step it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..core.finite import stencil_gradient
from ..core.results import Evaluations
from ..engines.base import Engine

__all__ = ["stencilled", "with_stencil"]


def stencilled(at: Callable[[np.ndarray, int], Evaluations], stencil: int) -> Callable[[np.ndarray], Evaluations]:
    """``coordinates(indices)`` from ``at(indices, scale)``, by the stencil of the check (2 or 4).

    With 4 points the evaluations keep the costs at the steps (``cost_plus``,
    ``cost_minus``: the report's rounding scale and one-sided differences read them), the
    kinks crossed at either step, and the evaluations of both.
    """
    if stencil == 2:
        return lambda indices: at(indices, 1)

    def coordinates(indices) -> Evaluations:
        near, far = at(indices, 1), at(indices, 2)
        return Evaluations(near.indices, near.cost_plus, near.cost_minus, stencil_gradient(near.numeric, far.numeric),
                           np.asarray(near.kinks, dtype=bool) | np.asarray(far.kinks, dtype=bool),
                           near.n_evaluations + far.n_evaluations)

    return coordinates


def with_stencil(engine: Engine, stencil: int) -> Engine:
    """``engine`` with its time estimates for ``stencil`` points: the 4-point stencil evaluates
    every coordinate at two steps, twice the central difference's evaluations.

    ``estimate(n)`` keeps its meaning for the pipeline, ``n = 2`` per coordinate (the
    plans, the budget and the escalation count that way), and now says how long that many
    coordinates take with four points each.
    """
    if stencil == 2:
        return engine
    estimate = engine.estimate
    return replace(engine, estimate=lambda n: 2.0 * estimate(n),
                   prior=None if engine.prior is None else 2.0 * engine.prior)
