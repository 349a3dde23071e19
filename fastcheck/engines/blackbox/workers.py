"""What runs where the costs are evaluated: the chunk evaluators, the task, and batch_cost.

Everything here is module level, so it pickles for worker processes; the same functions
run the chunks evaluated in this process. A chunk of coordinates is evaluated by exactly
the reference engine's loop, or, with a vectorized ``batch_cost``, as rows of stacks
holding the very perturbed thetas that loop sets.
"""

from __future__ import annotations

import os

import numpy as np

from ...core.directions import direction_steps
from ...core.objective import require_deterministic
from ...core.threads import single_threaded
from ...errors import CostError, DtypeError, InputError
from ..reference import direction_costs, reference_engine
from .faults import item_label, span

__all__ = ["evaluate_chunk", "evaluate_direction_chunk", "run_task", "call_batch_cost", "check_batch_cost",
           "stack_rows", "MAX_ROWS"]

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
    eps : float
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
    for start in range(0, k, per_stack):
        idx = np.asarray(indices[start:start + per_stack], dtype=np.int64)
        m = len(idx)
        plus, minus = 2 * np.arange(m), 2 * np.arange(m) + 1
        stack[plus, idx] = theta[idx] + eps
        stack[minus, idx] = theta[idx] - eps
        view = stack[: 2 * m].view()
        view.flags.writeable = False
        costs = call_batch_cost(batch_cost, view, objective.layout, idx)
        cost_plus[start:start + m], cost_minus[start:start + m] = costs[0::2], costs[1::2]
        stack[plus, idx] = theta[idx]
        stack[minus, idx] = theta[idx]
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
    for start in range(0, k, per_stack):
        chunk = directions[start:start + per_stack]
        stack = np.empty((2 * len(chunk), theta.size))
        stack[:] = theta
        for p, d in enumerate(chunk):
            steps = direction_steps(theta, zeros, [d], eps, analytic=False)
            base = theta[d.start:d.stop]
            stack[2 * p, d.start:d.stop] = base + steps.plus[0]
            stack[2 * p + 1, d.start:d.stop] = base - steps.minus[0]
        stack.flags.writeable = False
        costs = call_batch_cost(batch_cost, stack, objective.layout, chunk)
        cost_plus[start:start + len(chunk)], cost_minus[start:start + len(chunk)] = costs[0::2], costs[1::2]
    return cost_plus, cost_minus


def run_task(objective, theta, chunk_id, items, eps, batch_cost, rows, markers=None, evaluate=evaluate_chunk):
    """One task: a chunk of coordinates (or directions) in a joblib worker -> (chunk_id, cost_plus, cost_minus).

    The cost runs with one BLAS and numba thread, as it does in this process
    (:func:`fastcheck.core.threads.single_threaded`). ``markers``: a directory on this
    machine where the task leaves a file named after its chunk while it runs, so that
    the chunk of a worker that dies can be named.
    """
    marker = None if markers is None else os.path.join(markers, str(chunk_id))
    if marker is not None:
        open(marker, "w").close()
    with single_threaded():
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
def call_batch_cost(batch_cost, thetas: np.ndarray, layout, idx) -> np.ndarray:
    """``batch_cost(thetas)``, validated: k finite float64 costs. ``idx=None``: the unperturbed theta."""
    k = thetas.shape[0]
    what = ("the unperturbed parameters" if idx is None
            else f"{k} perturbed thetas ({span(layout, idx)}, each + eps and - eps)")
    try:
        out = batch_cost(thetas)
    except ValueError as exc:
        if "read-only" in str(exc):
            raise CostError(f"`batch_cost` tried to modify the stack of {what} it was given; "
                            "it must leave its input unchanged (work on a copy)") from exc
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
    except Exception as exc:
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
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
        raise InputError(f"`batch_cost` is a {type(batch_cost).__name__}, not a callable "
                         "batch_cost(thetas of shape (k, n)) -> costs of shape (k,)")
    view = theta[None, :].view()
    view.flags.writeable = False
    batched = float(call_batch_cost(batch_cost, view, objective.layout, None)[0])
    single = objective.evaluate(theta)
    if abs(batched - single) > 1e-9 * max(1.0, abs(single)):
        raise CostError(f"`batch_cost` gives {batched!r} but `cost` gives {single!r} at the unperturbed "
                        "parameters; they must compute the same J (same data, same regularization)")
    try:  # a batch cost that drifts (random sampling, dropout) is refused like a cost that does
        require_deterministic(batched, float(call_batch_cost(batch_cost, view, objective.layout, None)[0]))
    except CostError as exc:
        raise type(exc)(f"`batch_cost`: {exc}") from None
