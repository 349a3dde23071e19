"""What a check looks at, what it will cost (:class:`Plan`), and fitting it to a time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..core.directions import draw_directions
from ..core.layout import Layout
from ..core.selection import stratified_subset, subset_sizes
from ..engines.base import Engine
from .options import CheckOptions

__all__ = ["Plan", "what_to_check", "make_plan", "fit_budget", "running_seconds"]


@dataclass
class Plan:
    """What a check will do before it runs: see :func:`fastcheck.plan`.

    Attributes
    ----------
    mode : str
        As the check will run: a full check fitted to ``budget`` runs as a subset.
    engine : str
        The engine that will run (``"traced"``, ``"reference"``, ``"blackbox"``, ``"batched"``).
    n_coordinates : int
        Coordinates checked one by one.
    n_directions : int
        Random directions (per group and global, in all).
    n_evaluations : int
        Perturbed costs J(theta +- eps e_i) (or along directions) the check computes: by
        calls of the cost (reference, black-box), incrementally from the trace (traced),
        or by the batched engine's kernels.
    estimated_seconds : float
        From a timing of this machine: what the check spends before its first coordinate
        (``setup_seconds``) and the engine's timing for the rest (a sample run of the
        engine, or of the cost).
    per_group : dict of str -> int
        Coordinates or directions checked in each group.
    basis : str
        What the estimate rests on.
    reason : str
        Why this engine, e.g. ``"traced engine not used: np.linalg.solve is not supported"``.
    n_cost_calls : int or None
        Calls of the user's cost the check makes: the two at theta that validate it, the
        trace and its verification (traced engine), one per perturbed cost (reference and
        black-box engines, which also evaluate about 1 in 128 again to make sure the cost is
        deterministic); besides the call that gives the gradient of a cost returning
        ``(loss, grads)``, and what escalation, noise and the step sweep add for groups that
        do not pass. None for the built-in network.
    setup_seconds : float
        Of ``estimated_seconds``, what comes before the first coordinate (validating the
        cost, tracing it and verifying the trace): the plan did the same work and timed it.
    setup : str
        Those calls of the cost, in a phrase.
    budget : float or None
        The time budget the check was fitted to.
    """

    mode: str
    engine: str
    n_coordinates: int
    n_directions: int
    n_evaluations: int
    estimated_seconds: float
    per_group: dict = field(default_factory=dict)
    basis: str = ""
    reason: str = ""
    n_cost_calls: int | None = None
    setup_seconds: float = 0.0
    setup: str = ""
    budget: float | None = None

    def __str__(self) -> str:
        what = (f"{self.n_directions} directions" if self.mode == "directions"
                else f"{self.n_coordinates:,} coordinates")
        groups = ", ".join(f"{k} {v:,}" for k, v in self.per_group.items())
        mode = self.mode
        if self.budget is not None:
            mode += f" ({'fitted to' if self.mode == 'subset' else 'within'} the budget of {self.budget:.3g} s)"
        reason = f" ({self.reason})" if self.reason else ""
        values = (f"{self.n_evaluations:,} perturbed costs computed from the trace" if self.engine == "traced"
                  else f"{self.n_evaluations:,} cost evaluations")
        calls = (f", {self.n_cost_calls:,} calls of the cost in all ({self.setup})"
                 if self.n_cost_calls is not None else "")
        why = [self.basis] if self.basis else []
        if self.setup_seconds:
            why.append(f"{self.setup_seconds:.3g} s of it before the first coordinate, timed")
        return (f"plan: mode {mode}, {self.engine} engine{reason}: {what} ({groups}), {values}{calls}, "
                f"about {self.estimated_seconds:.3g} s" + (f" (from {'; '.join(why)})" if why else ""))


def what_to_check(layout: Layout, options: CheckOptions):
    """(indices or None, directions or None) for the mode."""
    if options.mode == "full":
        return np.arange(layout.n_params, dtype=np.int64), None
    if options.mode == "subset":
        return stratified_subset(layout, fraction=options.fraction, n_samples=options.n_samples,
                                 min_per_group=options.min_per_group, seed=options.seed), None
    return None, draw_directions(layout, options.n_directions, options.seed)


def running_seconds(engine: Engine, n_evaluations: int, directions: bool = False) -> float:
    """The estimate rule of every plan and budget: seconds a check spends on ``n_evaluations``
    perturbed costs (2 per coordinate, whatever the stencil: ``with_stencil`` scales the
    engine's estimate) after its set-up, as the engine that will run them times itself.
    """
    if directions and engine.direction_estimate is not None:
        return engine.direction_estimate(n_evaluations)
    return engine.estimate(n_evaluations)


def make_plan(layout: Layout, engine: Engine, options: CheckOptions) -> Plan:
    """The plan of a check with ``options`` on ``engine``, its budget (if any) fitted as a check would."""
    budget = options.budget
    if budget is not None:  # the check spends the engine's set-up again before it fits its budget
        options = fit_budget(layout, engine, options, time.perf_counter() - engine.setup.seconds)
    indices, directions = what_to_check(layout, options)
    if directions is not None:
        per_group: dict[str, int] = {}
        for d in directions:
            per_group[d.group] = per_group.get(d.group, 0) + 1
        n_evaluations, n_coordinates = 2 * len(directions), 0
    else:
        counts = np.bincount(layout.group_ids(indices), minlength=len(layout.groups))
        per_group = {g.name: int(c) for g, c in zip(layout.groups, counts)}
        n_evaluations, n_coordinates = 2 * len(indices), len(indices)
    seconds = engine.setup.seconds + running_seconds(engine, n_evaluations, directions is not None)
    if n_coordinates:
        n_evaluations = options.stencil * n_coordinates  # the 4-point stencil evaluates 4 points
    calls = None
    if engine.setup.cost_calls or engine.evaluates_cost:  # a user's cost (the built-in network has none)
        calls = engine.setup.cost_calls + (n_evaluations if engine.evaluates_cost else 0)
    basis = engine.direction_basis if directions is not None and engine.direction_basis else engine.basis
    basis = basis() if basis else ""
    return Plan(options.mode, engine.name, n_coordinates, len(directions or ()), n_evaluations, seconds, per_group,
                basis, engine.reason, calls, engine.setup.seconds, engine.setup.what, budget)


def fit_budget(layout: Layout, engine: Engine, options: CheckOptions, started: float) -> CheckOptions:
    """Turn a full check that would overrun ``options.budget`` into the widest subset that fits.

    The time already spent since ``started`` (validation, the trace and its verification,
    timing the engine) is charged to the budget; the rest is estimated by
    :func:`running_seconds`, as plans do.
    """
    full = running_seconds(engine, 2 * layout.n_params)
    budget = options.budget - (time.perf_counter() - started)
    if full <= budget:
        return options
    fraction = max(budget, 0.0) / full
    for _ in range(60):  # fixed costs and the per-group minimum add time: shrink until it fits
        sizes = subset_sizes(layout, fraction=max(fraction, 1e-12), min_per_group=options.min_per_group)
        if running_seconds(engine, 2 * sum(sizes)) <= budget or fraction < 1e-9:
            break
        fraction *= 0.8
    # a subset takes no budget (the mode rules): the caller records the budget it was fitted to
    return options.but(budget=None, mode="subset", fraction=max(fraction, 1e-12))  # the per-group minimum stays
