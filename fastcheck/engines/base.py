"""What the pipeline asks of an engine: :class:`Engine`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.results import DirectionEvaluations, Evaluations

__all__ = ["Engine"]


@dataclass
class Engine:
    """How one kind of problem evaluates coordinates and directions, and how fast.

    Attributes
    ----------
    name : str
        As the report names it (``"batched"``, ``"reference"``, ``"blackbox"``).
    coordinates : callable ``(indices) -> Evaluations``
        Central differences of the coordinates ``indices`` (int64, any order).
    directions : callable ``(directions) -> DirectionEvaluations``
    estimate : callable ``(n_evaluations) -> seconds``
        The time ``n_evaluations`` cost evaluations (or their equivalent) take.
    cost : float
        J(theta), for the rounding scale of central differences.
    prior : float or None
        Seconds per coordinate (both signs) known without timing anything, where the
        engine has such a figure: it sizes the first chunk of a resumable run.
    basis : callable ``() -> str``, optional
        What ``estimate`` rests on, in a phrase (plans print it).
    notes : dict
        Recorded in the report's settings beside the engine's name (``traced_not_used``:
        why the traced engine was not used).
    full : callable ``(indices, eps) -> Evaluations``, optional
        Central differences of ``indices`` by full evaluations of the real cost, at any
        step (a float, or one per coordinate of theta): the reference loop on the
        objective the check uses (its time limit and determinism checks included). The
        step sweep re-evaluates flagged entries with it.
    """

    name: str
    coordinates: Callable[[np.ndarray], Evaluations]
    directions: Callable[[list], DirectionEvaluations]
    estimate: Callable[[int], float]
    cost: float = float("nan")
    prior: float | None = None
    basis: Callable[[], str] | None = None
    notes: dict = field(default_factory=dict)
    full: Callable[[np.ndarray, object], Evaluations] | None = None
