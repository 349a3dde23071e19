"""The reference engine: the method, literally, one coordinate at a time.

This is the oracle every fast engine is tested against. It stays simple on purpose:
no batching, no reuse, no parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .finite import central_difference

__all__ = ["Evaluations", "reference_engine"]


@dataclass
class Evaluations:
    """What an engine produced for the coordinates it was asked about.

    Attributes
    ----------
    indices : ndarray of int64, shape (k,)
        Coordinates of theta, in the order evaluated.
    cost_plus, cost_minus : ndarray of float64, shape (k,)
        J(theta + eps e_i) and J(theta - eps e_i).
    numeric : ndarray of float64, shape (k,)
        The central differences.
    kinks : ndarray of bool, shape (k,)
        True where the +-eps perturbation crossed a kink of the cost.
    n_evaluations : int
        Cost evaluations spent (or their equivalent for batched engines).
    """

    indices: np.ndarray
    cost_plus: np.ndarray
    cost_minus: np.ndarray
    numeric: np.ndarray
    kinks: np.ndarray
    n_evaluations: int


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
