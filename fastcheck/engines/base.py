"""What the pipeline asks of an engine: :class:`Engine`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.results import DirectionEvaluations, Evaluations

__all__ = ["Engine", "Setup"]


@dataclass(frozen=True)
class Setup:
    """What a check spends before its first coordinate: validating the cost, building the engine.

    Attributes
    ----------
    seconds : float
        As timed on this machine (a check does the same work again).
    cost_calls : int
        Calls of the user's cost (the two at theta that validate it, a trace and its
        verification); 0 for the built-in network.
    what : str
        Those calls, in a phrase (``"2 at theta, 1 trace, 19 to verify it"``).
    """

    seconds: float = 0.0
    cost_calls: int = 0
    what: str = ""

    def then(self, other: Setup) -> Setup:
        """This set-up and then ``other``: their seconds and calls added, their phrases in a list."""
        what = ", ".join(part for part in (self.what, other.what) if part)
        return Setup(self.seconds + other.seconds, self.cost_calls + other.cost_calls, what)


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
    reason : str
        Why this engine checks the problem, in a phrase (plans print it).
    setup : Setup
        What building the engine cost (plans add it to their estimate).
    evaluates_cost : bool
        Each perturbed value is one call of the user's cost (the reference and black-box
        engines), not computed some other way.
    direction_estimate : callable ``(n_evaluations) -> seconds``, optional
        As ``estimate``, for directions (default: ``estimate``).
    direction_basis : callable ``() -> str``, optional
        As ``basis``, for ``direction_estimate``.
    lazy_setup : callable ``() -> Setup``, optional
        What the engine does once before its first coordinate on first use, beside
        ``setup`` (the batched engine: the base pass and each layer's tables): done now
        if not yet, timed, and returned. A plan adds it to its estimate (the check's own
        engine does it again); a budget charges it as time spent.
    at : callable ``(indices, scale) -> Evaluations``, optional
        The engine's own central differences of ``indices`` at ``scale`` times the
        check's steps (each exact at any step), for an engine that computes its values
        another way than by calls of the cost (the traced and batched engines): the
        noise's check at a larger step takes them instead of full evaluations.
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
    reason: str = ""
    setup: Setup = field(default_factory=Setup)
    evaluates_cost: bool = False
    direction_estimate: Callable[[int], float] | None = None
    direction_basis: Callable[[], str] | None = None
    lazy_setup: Callable[[], Setup] | None = None
    at: Callable[[np.ndarray, float], Evaluations] | None = None
