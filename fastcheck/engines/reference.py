"""The reference engine: the method, literally, one coordinate at a time.

This is the oracle every fast engine is tested against. It stays simple on purpose:
no batching, no reuse, no parallelism.
"""

from __future__ import annotations

import numpy as np

from ..core.directions import direction_steps
from ..core.finite import central_difference
from ..core.results import DirectionEvaluations, Evaluations

__all__ = ["reference_engine", "direction_costs", "evaluate_directions"]


def reference_engine(objective, theta: np.ndarray, indices: np.ndarray, eps: float) -> Evaluations:
    """Central differences by full evaluations of the cost.

    For each coordinate i: set theta_i to its original value + eps, evaluate; set it to
    the original value - eps, evaluate; restore it.

    Parameters
    ----------
    objective : callable ``(theta, i, sign) -> (cost, crossed_kink)``
    theta : ndarray of shape (n,), float64
        Not modified (the engine works on a copy).
    indices : ndarray of int, shape (k,)
    eps : float

    Returns
    -------
    Evaluations
    """
    work = theta.copy()
    k = len(indices)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    kinks = np.zeros(k, dtype=bool)
    for p, i in enumerate(indices):
        original = work[i]
        work[i] = original + eps
        cost_plus[p], kink_plus = objective(work, int(i), +1)
        work[i] = original - eps
        cost_minus[p], kink_minus = objective(work, int(i), -1)
        work[i] = original
        kinks[p] = kink_plus or kink_minus
    numeric = central_difference(cost_plus, cost_minus, eps)
    return Evaluations(np.asarray(indices, dtype=np.int64), cost_plus, cost_minus, numeric, kinks, 2 * k)


def direction_costs(objective, theta: np.ndarray, directions: list, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """J(theta+) and J(theta-) of each direction, by full evaluations of a user cost."""
    k = len(directions)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    work = theta.copy()
    for j, d in enumerate(directions):
        steps = direction_steps(theta, np.empty(0), [d], eps, analytic=False)
        where = f"direction {d.number} of {d.group}"
        base = theta[d.start:d.stop]
        work[d.start:d.stop] = base + steps.plus[0]
        cost_plus[j] = objective.evaluate(work, where=where + " (+eps)")
        work[d.start:d.stop] = base - steps.minus[0]
        cost_minus[j] = objective.evaluate(work, where=where + " (-eps)")
        work[d.start:d.stop] = base
    return cost_plus, cost_minus


def evaluate_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list,
                        eps: float) -> DirectionEvaluations:
    """Directional central differences by full evaluations of a user cost."""
    k = len(directions)
    cost_plus, cost_minus = direction_costs(objective, theta, directions, eps)
    an = np.array([direction_steps(theta, analytic, [d], eps).analytic[0] for d in directions])
    return DirectionEvaluations(directions, an, (cost_plus - cost_minus) / (2.0 * eps), np.zeros(k, dtype=bool),
                                2 * k)
