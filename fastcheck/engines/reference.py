"""The reference engine: the method, literally, one coordinate at a time.

This is the oracle every fast engine is tested against. It stays simple on purpose:
no batching, no reuse, no parallelism. Two things stand around its loops and change
no arithmetic: the cost runs with one BLAS and numba thread, as in every worker of the
black-box engine (:func:`fastcheck.core.threads.single_threaded`), so that a check gives
the same numbers serially and in parallel; and an optional progress line
(:mod:`fastcheck.core.progress`) hears of each coordinate (or direction) done.
"""

from __future__ import annotations

import numpy as np

from ..core.directions import direction_steps
from ..core.finite import central_difference
from ..core.progress import progress_line
from ..core.results import DirectionEvaluations, Evaluations
from ..core.threads import single_threaded

__all__ = ["reference_engine", "direction_costs", "evaluate_directions"]


def reference_engine(objective, theta: np.ndarray, indices: np.ndarray, eps: float,
                     progress=False) -> Evaluations:
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
    progress : bool or None or ProgressLine
        A progress line on stderr: True, None (on a terminal, for runs longer than
        about 2 s) or False (the default: none), as for the black-box engine; or the
        caller's :class:`~fastcheck.core.progress.ProgressLine`, told ``update(1)``
        after each coordinate.

    Returns
    -------
    Evaluations
    """
    work = theta.copy()
    k = len(indices)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    kinks = np.zeros(k, dtype=bool)
    with single_threaded(), progress_line(progress, k) as line:
        for p, i in enumerate(indices):
            original = work[i]
            work[i] = original + eps
            cost_plus[p], kink_plus = objective(work, int(i), +1)
            work[i] = original - eps
            cost_minus[p], kink_minus = objective(work, int(i), -1)
            work[i] = original
            kinks[p] = kink_plus or kink_minus
            line.update(1)
    numeric = central_difference(cost_plus, cost_minus, eps)
    return Evaluations(np.asarray(indices, dtype=np.int64), cost_plus, cost_minus, numeric, kinks, 2 * k)


def direction_costs(objective, theta: np.ndarray, directions: list, eps: float,
                    progress=False) -> tuple[np.ndarray, np.ndarray]:
    """J(theta+) and J(theta-) of each direction, by full evaluations of a user cost.

    ``progress``: as for :func:`reference_engine`, told ``update(1)`` after each direction.
    """
    k = len(directions)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    work = theta.copy()
    with single_threaded(), progress_line(progress, k, noun="directions") as line:
        for j, d in enumerate(directions):
            steps = direction_steps(theta, np.empty(0), [d], eps, analytic=False)
            where = f"direction {d.number} of {d.group}"
            base = theta[d.start:d.stop]
            work[d.start:d.stop] = base + steps.plus[0]
            cost_plus[j] = objective.evaluate(work, where=where + " (+eps)")
            work[d.start:d.stop] = base - steps.minus[0]
            cost_minus[j] = objective.evaluate(work, where=where + " (-eps)")
            work[d.start:d.stop] = base
            line.update(1)
    return cost_plus, cost_minus


def evaluate_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list,
                        eps: float, progress=False) -> DirectionEvaluations:
    """Directional central differences by full evaluations of a user cost (``progress``: per direction)."""
    k = len(directions)
    cost_plus, cost_minus = direction_costs(objective, theta, directions, eps, progress)
    an = np.array([direction_steps(theta, analytic, [d], eps).analytic[0] for d in directions])
    return DirectionEvaluations(directions, an, (cost_plus - cost_minus) / (2.0 * eps), np.zeros(k, dtype=bool),
                                2 * k)
