"""What engines return: the evaluations of coordinates and of directions, and their merging."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Evaluations", "DirectionEvaluations", "merge_evaluations"]


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


@dataclass
class DirectionEvaluations:
    """Per direction: the group, analytic ``u . grad``, numeric central difference, kink flag."""

    directions: list
    analytic: np.ndarray
    numeric: np.ndarray
    kinks: np.ndarray
    n_evaluations: int


def _merge(first: Evaluations | None, second: Evaluations) -> Evaluations:
    if first is None:
        return second
    return Evaluations(*(np.concatenate([getattr(first, f), getattr(second, f)])
                         for f in ("indices", "cost_plus", "cost_minus", "numeric", "kinks")),
                       first.n_evaluations + second.n_evaluations)


def merge_evaluations(parts) -> Evaluations:
    """One :class:`Evaluations` from chunks, in the order given."""
    merged = None
    for part in parts:
        merged = _merge(merged, part)
    if merged is None:
        raise InputError("no evaluations to merge")
    return merged
