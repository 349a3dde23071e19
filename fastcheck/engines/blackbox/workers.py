"""What runs where the costs are evaluated: the chunk evaluators, the task, and batch_cost.

Everything here is module level, so it pickles for worker processes; the same functions
run the chunks evaluated in this process. A chunk of coordinates is evaluated by exactly
the reference engine's loop, or, with a vectorized ``batch_cost``, as rows of stacks
holding the very perturbed thetas that loop sets.
"""

from __future__ import annotations

import os

import numpy as np

from ...core.deadline import time_limit, time_limits
from ...core.directions import direction_steps
from ...core.finite import step_at
from ...core.objective import item_label, recheck_sample, require_deterministic, span
from ...core.threads import single_threaded
from ...errors import CostError, CostTimeoutError, DtypeError, InputError, MutationError, a_type
from ..reference import direction_costs, reference_engine
from .lifetime import watch_parent

__all__ = ["evaluate_chunk", "evaluate_direction_chunk", "run_task", "call_batch_cost", "check_batch_cost",
           "require_same_cost", "stack_rows", "MAX_ROWS"]

#: Rows per call of ``batch_cost`` at most: its own intermediates (activations...) are
#: unknown here, so they are bounded to this many times one evaluation's.
MAX_ROWS = 256


# ---------------------------------------------------------------------- chunks
def evaluate_chunk(objective, theta: np.ndarray, indices: np.ndarray, eps: float, batch_cost=None,
                   rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """J(theta + eps e_i) and J(theta - eps e_i) for the coordinates ``indices``.

    Without ``batch_cost`` this is :func:`fastcheck.engines.reference.reference_engine`
    itself. With it, the perturbed thetas are the rows of (at most ``rows``, 2 per
    coordinate) stacks: row 2p is theta with ``theta[i] + eps``, row 2p + 1 with
    ``theta[i] - eps``, the very values the reference loop sets.

    Parameters
    ----------
    objective : CostObjective
    theta : ndarray of shape (n,), float64
        Not modified.
    indices : ndarray of int64, shape (k,)
    eps : float, or ndarray of float64 of shape (n,)
        The step, or each coordinate's.
    batch_cost : callable ``(thetas of shape (r, n)) -> costs of shape (r,)``, optional
    rows : int
        Largest stack given to ``batch_cost`` (even, >= 2).

    Returns
    -------
    cost_plus, cost_minus : ndarray of float64, shape (k,)
    """
    if batch_cost is None:
        ev = reference_engine(objective, theta, indices, eps)
        return ev.cost_plus, ev.cost_minus
    k, per_stack = len(indices), max(1, rows // 2)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    stack = np.empty((2 * min(per_stack, k), theta.size))
    stack[:] = theta
    checks = recheck_sample(k, int(indices[0])) if k else []
    for start in range(0, k, per_stack):
        idx = np.asarray(indices[start:start + per_stack], dtype=np.int64)
        m = len(idx)
        columns, values = np.repeat(idx, 2), np.empty(2 * m)
        h = step_at(eps, idx)
        values[0::2], values[1::2] = theta[idx] + h, theta[idx] - h
        stack[np.arange(2 * m), columns] = values
        costs = _call_and_verify(objective, batch_cost, stack, theta, idx, columns, values, _rows(checks, start, m))
        cost_plus[start:start + m], cost_minus[start:start + m] = costs[0::2], costs[1::2]
    return cost_plus, cost_minus


def evaluate_direction_chunk(objective, theta: np.ndarray, directions, eps: float, batch_cost=None,
                             rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """J(theta+) and J(theta-) for random ``directions`` (see :mod:`fastcheck.core.directions`).

    Without ``batch_cost``, :func:`fastcheck.engines.reference.direction_costs` (the
    serial loop); with it, the perturbed thetas are the rows of stacks of at most
    ``rows`` (row 2p: direction p's theta+, row 2p + 1: its theta-).
    """
    if batch_cost is None:
        return direction_costs(objective, theta, directions, eps)
    k, per_stack = len(directions), max(1, rows // 2)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    zeros = np.zeros(0)
    checks = recheck_sample(k, (directions[0].start, directions[0].number)) if k else []
    for start in range(0, k, per_stack):
        chunk = directions[start:start + per_stack]
        stack = np.empty((2 * len(chunk), theta.size))
        stack[:] = theta
        spans, values = [], []
        for p, d in enumerate(chunk):
            steps = direction_steps(theta, zeros, [d], eps, analytic=False)
            base = theta[d.start:d.stop]
            values += [base + steps.plus[0], base - steps.minus[0]]
            spans += [(d.start, d.stop)] * 2
            stack[2 * p, d.start:d.stop], stack[2 * p + 1, d.start:d.stop] = values[-2:]
        costs = _call_and_verify(objective, batch_cost, stack, theta, chunk, spans, values,
                                 _rows(checks, start, len(chunk)))
        cost_plus[start:start + len(chunk)], cost_minus[start:start + len(chunk)] = costs[0::2], costs[1::2]
    return cost_plus, cost_minus


def _call_and_verify(objective, batch_cost, stack, theta, items, spans, values, checks: set) -> np.ndarray:  # noqa: PLR0913
    """``batch_cost`` on the first ``len(values)`` rows of ``stack``, checked; they hold theta again after.

    Row r is theta with ``values[r]`` at ``spans[r]``: the perturbation of ``items[r // 2]``,
    + for even rows, - for odd ones. ``spans`` is an int array of one column per row
    (coordinates: checked at once), or a list of ``(start, stop)`` (directions). After the
    call every row must still be so (else :class:`MutationError`, naming the row's point),
    and the rows in ``checks`` must have the cost that ``cost`` gives there (see
    :func:`require_same_cost`): a seeded sample, the batched twin of the reference loop's
    re-evaluation.
    """
    layout, k = objective.layout, len(values)
    view = stack[:k].view()
    view.flags.writeable = False
    costs = call_batch_cost(batch_cost, view, layout, items, objective.timeout)
    if isinstance(spans, np.ndarray):
        rows = np.arange(k)
        written = np.flatnonzero(stack[rows, spans] != values)
        stack[rows, spans] = theta[spans]
        spans = np.stack([spans, spans + 1], axis=1)
    else:
        written = [r for r, (lo, hi) in enumerate(spans) if not np.array_equal(stack[r, lo:hi], values[r])]
        for r, (lo, hi) in enumerate(spans):
            stack[r, lo:hi] = theta[lo:hi]
    if not len(written):  # and nothing else in the rows
        written = np.flatnonzero((stack[:k] != theta).any(axis=1))
    if len(written):
        raise _stack_written(layout, items[written[0] // 2], 1 - 2 * (written[0] % 2))
    for r in sorted(checks):
        row = theta.copy()
        row[slice(*spans[r])] = values[r]
        where = item_label(layout, items[r // 2], 1 - 2 * (r % 2))
        require_same_cost(float(costs[r]), objective.evaluate(row, where=where), where)
    return costs


def _rows(checks, start: int, m: int) -> set:
    """The rows of the stack of items ``start:start + m`` that hold the sampled ``(position, sign)`` points."""
    return {2 * (p - start) + (sign < 0) for p, sign in checks if start <= p < start + m}


def _stack_written(layout, item, sign) -> MutationError:
    return MutationError(f"`batch_cost` modified the stack of perturbed thetas it was given (the row of "
                         f"{item_label(layout, item, sign)}); it must leave its input unchanged (work on a copy)")


def run_task(objective, theta, chunk_id, items, eps, batch_cost, rows, markers=None, evaluate=evaluate_chunk,
             parent=None):
    """One task: a chunk of coordinates (or directions) in a joblib worker -> (chunk_id, cost_plus, cost_minus).

    The cost runs with one BLAS and numba thread, as it does in this process
    (:func:`fastcheck.core.threads.single_threaded`), and within ``objective.timeout``
    per evaluation. ``markers``: a directory on this machine where the task leaves a
    file named after its chunk while it runs, so that the chunk of a worker that dies
    can be named; a worker process ended for a cost stuck past its time limit writes
    why into it. ``parent``: the pid of the process that runs the check (a task that
    runs there is never ended so; a worker process watches it, and exits when it is gone).
    """
    watch_parent(parent)  # a worker process exits when the process running the check is gone
    marker = None if markers is None else os.path.join(markers, str(chunk_id))
    if marker is not None:
        open(marker, "w").close()
    stuck_file = marker if parent is not None and os.getpid() != parent else None
    with single_threaded(), time_limits(objective.timeout, stuck_file):
        try:
            cost_plus, cost_minus = evaluate(objective, theta, items, eps, batch_cost, rows)
        except SystemExit as exc:  # never let a worker's sys.exit end the caller's program
            raise CostError(f"the cost called sys.exit({exc.code!r}) while evaluating "
                            f"{span(objective.layout, items)}; it must return a float") from None
        finally:
            if marker is not None:
                os.unlink(marker)
    return chunk_id, cost_plus, cost_minus


def stack_rows(memory: int, n: int) -> int:
    """Rows per stack under ``memory`` bytes and MAX_ROWS: even, at least 2 (one coordinate, both signs)."""
    return max(2, min(MAX_ROWS, 2 * (memory // (16 * max(1, n)))))


# ---------------------------------------------------------------------- batch_cost
def call_batch_cost(batch_cost, thetas: np.ndarray, layout, idx, timeout: float | None = None) -> np.ndarray:
    """``batch_cost(thetas)``, validated: k finite float64 costs. ``idx=None``: the unperturbed theta.

    ``timeout``: seconds per row (None: no limit).
    """
    k = thetas.shape[0]
    what = ("the unperturbed parameters" if idx is None
            else f"{k} perturbed thetas ({span(layout, idx)}, each + eps and - eps)")
    owner = thetas if thetas.base is None else thetas.base
    writeable = owner.flags.writeable
    owner.flags.writeable = False  # else `thetas.base` is a writable way into the stack
    try:
        with time_limit(None if timeout is None else timeout * k, f"on a stack of {what} ({k} rows)", "`batch_cost`"):
            out = batch_cost(thetas)
    except CostTimeoutError:
        raise
    except ValueError as exc:
        if "read-only" in str(exc):
            raise MutationError(f"`batch_cost` tried to modify the stack of {what} it was given; "
                                "it must leave its input unchanged (work on a copy)") from exc
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
    except Exception as exc:
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
    finally:
        owner.flags.writeable = writeable
    out = out if isinstance(out, np.ndarray) else np.asarray(out)
    if out.shape == (k, 1):
        out = out[:, 0]
    if out.shape != (k,):
        raise CostError(f"`batch_cost` returned an array of shape {out.shape} for a stack of {what} "
                        f"(shape {thetas.shape}); it must return one cost per row, shape ({k},)")
    if out.dtype != np.float64:
        raise DtypeError(f"`batch_cost` returned {out.dtype} costs for a stack of {what}; compute them in "
                         "float64 so that central differences are not drowned in rounding")
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.argmax(bad))
        where = ("the unperturbed parameters" if idx is None
                 else item_label(layout, idx[row // 2], +1 if row % 2 == 0 else -1))
        raise CostError(f"`batch_cost` returned {out[row]} at {where} (row {row} of the stack, "
                        f"{int(bad.sum())} non-finite in all); costs must be finite")
    return out


def check_batch_cost(objective, batch_cost, theta) -> None:
    """``batch_cost`` and ``cost`` must compute the same J: compare them at theta."""
    if not callable(batch_cost):
        raise InputError(f"`batch_cost` is {a_type(batch_cost)}, not a callable "
                         "batch_cost(thetas of shape (k, n)) -> costs of shape (k,)")
    view = theta[None, :].view()
    view.flags.writeable = False
    batched = float(call_batch_cost(batch_cost, view, objective.layout, None, objective.timeout)[0])
    require_same_cost(batched, objective.evaluate(theta), "the unperturbed parameters")
    try:  # a batch cost that drifts (random sampling, dropout) is refused like a cost that does
        again = call_batch_cost(batch_cost, view, objective.layout, None, objective.timeout)
        require_deterministic(batched, float(again[0]))
    except CostError as exc:
        raise type(exc)(f"`batch_cost`: {exc}") from None


def require_same_cost(batched: float, single: float, where: str) -> None:
    """``batch_cost`` and ``cost`` must agree (to 1e-9 relative: they may round differently) at ``where``."""
    if abs(batched - single) > 1e-9 * max(1.0, abs(single)):
        raise CostError(f"`batch_cost` gives {float(batched)!r} but `cost` gives {float(single)!r} at {where}; "
                        "they must compute the same J (same data, same regularization), and the same again at the "
                        "same point")
