"""A cost that ignores its argument (CS231n's ``lambda _: model.loss(X, y)[0]``, reading
``model.params``): every numeric derivative is 0, which is no question of the gradient.
Refused as a :class:`~fastcheck.errors.CostError` only when proven: from a trace that does
not depend on the parameters, confirmed by the real cost, or after the loop when every
perturbed evaluation returned exactly J(theta) where the analytic gradient says it must move.
"""

from __future__ import annotations

import numpy as np

from ..core.finite import step_at
from ..errors import CostError
from ..report.policy import NOISE_FACTOR, rounding_scale

__all__ = ["require_uses_argument", "require_cost_moves", "CONFIRM_ENTRIES"]


def _moves_beyond_rounding(analytic: np.ndarray, cost: float, steps) -> np.ndarray:
    """Where the analytic gradient says a step must move J far beyond its rounding
    (``|g| > NOISE_FACTOR |J| 2**-52 / eps``): a cost that does not move there ignores that entry."""
    return np.abs(analytic) > NOISE_FACTOR * rounding_scale(cost, cost, steps)


def _ignores_argument(seen: str) -> CostError:
    return CostError(f"the cost does not use its argument: {seen}; does it read model.params (or a global) instead "
                     "of the params it is given? Compute the cost from its argument")


#: Entries evaluated by the real cost to confirm a trace that does not depend on the parameters, at most.
CONFIRM_ENTRIES = 8


def require_uses_argument(objective, layout, theta: np.ndarray, analytic: np.ndarray, steps) -> None:
    """Raise :class:`CostError` for a cost whose trace does not depend on the parameters, once the real
    cost confirms it: J(theta + eps e_i) is exactly J(theta) at the entries (the largest of each group)
    where the analytic gradient says J must move beyond rounding.

    A gradient zero to rounding is left alone (a cost that uses no parameter has that gradient: the
    check passes as it would), and so is a cost the real evaluations show to move (the trace missed it).
    """
    cost = objective.cost_at_theta
    moves = _moves_beyond_rounding(analytic, cost, step_at(steps, np.arange(theta.size)))
    if not moves.any():
        return
    weight = np.where(moves, np.abs(analytic), -1.0)
    tops = [g.start + int(np.argmax(weight[g.start:g.stop])) for g in layout.groups]
    tops = sorted((i for i in tops if moves[i]), key=lambda i: -weight[i])[:CONFIRM_ENTRIES]
    work = theta.copy()
    for i in tops:
        work[i] = theta[i] + step_at(steps, i)
        moved = objective.evaluate(work, i, +1) != cost
        work[i] = theta[i]
        if moved:
            return
    labels = ", ".join(layout.describe(i) for i in tops)
    raise _ignores_argument(f"its trace does not depend on the parameters, and it returns exactly J(theta) = {cost!r} "
                            f"at theta + eps e_i for {labels}")


def require_cost_moves(evaluations, cost: float, analytic: np.ndarray, steps) -> None:
    """Raise :class:`CostError` when every perturbed evaluation returned exactly J(theta) although the
    analytic gradient says some of them must move beyond rounding: the cost ignores its argument.

    ``evaluations``: an engine's coordinates (None: nothing to judge); ``analytic``: all of theta's.
    """
    if evaluations is None or not len(evaluations.indices):
        return
    if not (np.all(evaluations.cost_plus == cost) and np.all(evaluations.cost_minus == cost)):
        return
    idx = np.asarray(evaluations.indices, dtype=np.int64)
    if _moves_beyond_rounding(analytic[idx], cost, step_at(steps, idx)).any():
        raise _ignores_argument(f"it returned exactly J(theta) = {cost!r} at all {2 * idx.size:,} perturbed theta, "
                                "where the analytic gradient says it must move")
