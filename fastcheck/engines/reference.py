"""The reference engine: the method, literally, one coordinate at a time.

This is the oracle every fast engine is tested against. It stays simple on purpose:
no batching, no reuse, no parallelism. Three things stand around its loops and change
no arithmetic: the cost runs with one BLAS and numba thread, as in every worker of the
black-box engine (:func:`fastcheck.core.threads.single_threaded`), so that a check gives
the same numbers serially and in parallel; an optional progress line
(:mod:`fastcheck.core.progress`) hears of each coordinate (or direction) done; and after
the loop, the cost itself is checked on what it just did (:func:`_verify`): it left the
parameters as they were, and a seeded sample of the perturbed points evaluates to the
same values again. A cost that writes into its input or changes only now and then
would otherwise fail a correct gradient; these loops are also what the black-box
engine's workers run, so every chunk is checked where it ran.
"""

from __future__ import annotations

import numpy as np

from ..core.deadline import time_limits
from ..core.directions import direction_steps
from ..core.finite import central_difference, coordinate_gradient, step_at
from ..core.objective import item_label, recheck_sample, require_deterministic, require_unchanged, span
from ..core.progress import progress_line
from ..core.results import DirectionEvaluations, Evaluations
from ..core.threads import single_threaded
from ..errors import MutationError

__all__ = ["reference_engine", "direction_costs", "evaluate_directions"]


def reference_engine(objective, theta: np.ndarray, indices: np.ndarray, eps: float,
                     progress=False) -> Evaluations:
    """Central differences by full evaluations of the cost.

    For each coordinate i: set theta_i to its original value + eps, evaluate; set it to
    the original value - eps, evaluate; restore it. The numeric gradient divides by the
    steps those rounded values actually took (:func:`~fastcheck.core.finite.coordinate_gradient`).

    Parameters
    ----------
    objective : callable ``(theta, i, sign) -> (cost, crossed_kink)``
    theta : ndarray of shape (n,), float64
        Not modified (the engine works on a copy).
    indices : ndarray of int, shape (k,)
    eps : float, or ndarray of float64 of shape (n,)
        The step, or each coordinate's (``eps="auto"``).
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
    steps = np.broadcast_to(step_at(eps, indices), (k,))
    written = False  # into the perturbed entry (restoring it would hide that); the rest: after the loop
    with single_threaded(), time_limits(getattr(objective, "timeout", None)), progress_line(progress, k) as line:
        for p, i in enumerate(indices):
            original, h = work[i], steps[p]
            work[i] = original + h
            cost_plus[p], kink_plus = objective(work, int(i), +1)
            written |= work[i] != original + h
            work[i] = original - h
            cost_minus[p], kink_minus = objective(work, int(i), -1)
            written |= work[i] != original - h
            work[i] = original
            kinks[p] = kink_plus or kink_minus
            line.update(1)
    indices = np.asarray(indices, dtype=np.int64)
    _verify(lambda w, i, sign, where: objective(w, i, sign)[0], objective.layout, theta, work, indices,
            _coordinate_steps(theta, eps), cost_plus, cost_minus, written)
    numeric = coordinate_gradient(cost_plus, cost_minus, theta[indices], steps)
    return Evaluations(indices, cost_plus, cost_minus, numeric, kinks, 2 * k)


def direction_costs(objective, theta: np.ndarray, directions: list, eps: float,
                    progress=False) -> tuple[np.ndarray, np.ndarray]:
    """J(theta+) and J(theta-) of each direction, by full evaluations of a user cost.

    ``progress``: as for :func:`reference_engine`, told ``update(1)`` after each direction.
    """
    k = len(directions)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    work, layout = theta.copy(), objective.layout
    written = False  # into the perturbed span (restoring it would hide that); the rest: after the loop
    with single_threaded(), time_limits(objective.timeout), progress_line(progress, k, noun="directions") as line:
        for j, d in enumerate(directions):
            steps = direction_steps(theta, np.empty(0), [d], eps, analytic=False)
            base = theta[d.start:d.stop]
            plus, minus = base + steps.plus[0], base - steps.minus[0]
            work[d.start:d.stop] = plus
            cost_plus[j] = objective.evaluate(work, where=item_label(layout, d, +1))
            written |= not np.array_equal(work[d.start:d.stop], plus)
            work[d.start:d.stop] = minus
            cost_minus[j] = objective.evaluate(work, where=item_label(layout, d, -1))
            written |= not np.array_equal(work[d.start:d.stop], minus)
            work[d.start:d.stop] = base
            line.update(1)
    _verify(lambda w, d, sign, where: objective.evaluate(w, where=where), layout, theta, work,
            directions, _direction_steps(theta, eps), cost_plus, cost_minus, written)
    return cost_plus, cost_minus


def evaluate_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list,
                        eps: float, progress=False) -> DirectionEvaluations:
    """Directional central differences by full evaluations of a user cost (``progress``: per direction)."""
    k = len(directions)
    cost_plus, cost_minus = direction_costs(objective, theta, directions, eps, progress)
    an = np.array([direction_steps(theta, analytic, [d], eps).analytic[0] for d in directions])
    return DirectionEvaluations(directions, an, central_difference(cost_plus, cost_minus, eps),
                                np.zeros(k, dtype=bool), 2 * k)


# ---------------------------------------------------------------------- the cost's own checks
def _coordinate_steps(theta, eps):
    """``perturb(i, sign) -> (start, stop, values)``: the values the coordinate loop sets."""
    def perturb(i, sign):
        i = int(i)
        h = step_at(eps, i)
        return i, i + 1, theta[i:i + 1] + h if sign > 0 else theta[i:i + 1] - h
    return perturb


def _direction_steps(theta, eps):
    """``perturb(d, sign) -> (start, stop, values)``: the values the directions loop sets."""
    def perturb(d, sign):
        steps = direction_steps(theta, np.empty(0), [d], eps, analytic=False)
        base = theta[d.start:d.stop]
        return d.start, d.stop, base + steps.plus[0] if sign > 0 else base - steps.minus[0]
    return perturb


def _verify(evaluate, layout, theta, work, items, perturb, cost_plus, cost_minus, written) -> None:
    """A chunk's checks of the cost: it left ``work`` as theta, and evaluates the same again.

    ``evaluate(work, item, sign, where) -> J``; ``perturb(item, sign) -> (start, stop,
    values)``; ``written``: the loop saw the perturbed entries change under the cost. The
    parameters are compared with theta once per chunk, before and after a seeded sample
    of the perturbed points (:func:`~fastcheck.core.objective.recheck_sample`) is
    evaluated again; when they changed, the chunk is evaluated once more, comparing after
    every evaluation, to name the one that writes.
    """
    if len(items) == 0:
        return
    key = int(items[0]) if isinstance(items, np.ndarray) else (items[0].start, items[0].number)
    checks = recheck_sample(len(items), key)
    try:
        if written:
            raise MutationError(f"the cost modified the perturbed entries of the parameters it was given while "
                                f"evaluating {span(layout, items)}; it must leave them unchanged (work on a copy)")
        require_unchanged(work, theta, layout, span(layout, items))
        for p, sign in checks:
            start, stop, values = perturb(items[p], sign)
            where = item_label(layout, items[p], sign)
            work[start:stop] = values
            again = evaluate(work, items[p], sign, where)
            work[start:stop] = theta[start:stop]
            require_deterministic((cost_plus if sign > 0 else cost_minus)[p], again, where)
        require_unchanged(work, theta, layout, span(layout, items) + " and evaluating some of them again")
    except MutationError:
        _locate_write(evaluate, layout, theta, items, perturb)
        raise


def _locate_write(evaluate, layout, theta, items, perturb) -> None:
    """Evaluate ``items`` again, comparing the parameters after each evaluation: raise naming the one that writes.

    Returns quietly when no evaluation writes this time (the caller's error stands).
    """
    work, expected = theta.copy(), theta.copy()
    for item in items:
        for sign in (+1, -1):
            start, stop, values = perturb(item, sign)
            where = item_label(layout, item, sign)
            work[start:stop] = expected[start:stop] = values
            evaluate(work, item, sign, where)
            require_unchanged(work, expected, layout, where)
            work[start:stop] = expected[start:stop] = theta[start:stop]
