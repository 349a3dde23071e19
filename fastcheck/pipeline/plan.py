"""What a check looks at, what it will cost (:class:`Plan`), and fitting it to a time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..core.directions import draw_directions
from ..core.layout import Layout
from ..core.selection import stratified_subset, subset_sizes
from ..engines.base import Engine, Setup
from ..report.text import perturbed_costs
from .options import CheckOptions
from .timing import report_seconds

__all__ = ["Plan", "BudgetFit", "what_to_check", "make_plan", "fit_budget", "running_seconds", "engine_setup"]


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
    over_budget : str
        Where even the smallest check is estimated over the budget, that, in a sentence.
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
    over_budget: str = ""

    def __str__(self) -> str:
        what = (f"{self.n_directions} directions" if self.mode == "directions"
                else f"{self.n_coordinates:,} coordinates")
        groups = ", ".join(f"{k} {v:,}" for k, v in self.per_group.items())
        mode = self.mode
        if self.budget is not None:
            mode += f" ({'fitted to' if self.mode == 'subset' else 'within'} the budget of {self.budget:.3g} s)"
        reason = f" ({self.reason})" if self.reason else ""
        values = perturbed_costs(self.engine, self.n_evaluations)
        calls = (f", {self.n_cost_calls:,} calls of the cost in all ({self.setup})"
                 if self.n_cost_calls is not None else "")
        why = [self.basis] if self.basis else []
        if self.setup_seconds:
            why.append(f"{self.setup_seconds:.3g} s of it before the first coordinate, timed")
        return (f"plan: mode {mode}, {self.engine} engine{reason}: {what} ({groups}), {values}{calls}, "
                f"about {self.estimated_seconds:.3g} s" + (f" (from {'; '.join(why)})" if why else "")
                + (f"; {self.over_budget}" if self.over_budget else ""))


def what_to_check(layout: Layout, options: CheckOptions):
    """(indices or None, directions or None) for the mode."""
    if options.mode == "full":
        return np.arange(layout.n_params, dtype=np.int64), None
    if options.mode == "subset":
        return stratified_subset(layout, fraction=options.fraction, n_samples=options.n_samples,
                                 min_per_group=options.min_per_group, seed=options.seed), None
    return None, draw_directions(layout, options.n_directions, options.seed, kind=options.distribution)


def running_seconds(engine: Engine, n_evaluations: int, directions: bool = False) -> float:
    """The estimate rule of every plan and budget: seconds a check spends on ``n_evaluations``
    perturbed costs (2 per coordinate, whatever the stencil: ``with_stencil`` scales the
    engine's estimate) after its set-up, as the engine that will run them times itself, and
    on the report of those coordinates (:func:`~.timing.report_seconds`).
    """
    if directions:
        return (engine.direction_estimate or engine.estimate)(n_evaluations)
    return engine.estimate(n_evaluations) + report_seconds(n_evaluations // 2)


def engine_setup(engine: Engine) -> Setup:
    """What a check on ``engine`` spends before its first coordinate: its ``setup`` and, done now if not yet,
    its ``lazy_setup``."""
    return engine.setup if engine.lazy_setup is None else engine.setup.then(engine.lazy_setup())


def make_plan(layout: Layout, engine: Engine, options: CheckOptions) -> Plan:
    """The plan of a check with ``options`` on ``engine``, its budget (if any) fitted as a check would."""
    budget, fit = options.budget, None
    if budget is not None:  # the check spends the engine's set-up again before it fits its budget
        options, fit = fit_budget(layout, engine, options, time.perf_counter() - engine.setup.seconds)
    setup = engine_setup(engine)
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
    # with a fit, what the check spends before it (the engine timed) is in the fit's estimate
    seconds = (fit.estimated if fit is not None
               else setup.seconds + running_seconds(engine, n_evaluations, directions is not None))
    if n_coordinates:
        n_evaluations = options.stencil * n_coordinates  # the 4-point stencil evaluates 4 points
    calls = None
    if setup.cost_calls or engine.evaluates_cost:  # a user's cost (the built-in network has none)
        calls = setup.cost_calls + (n_evaluations if engine.evaluates_cost else 0)
    basis = engine.direction_basis if directions is not None and engine.direction_basis else engine.basis
    basis = basis() if basis else ""
    return Plan(options.mode, engine.name, n_coordinates, len(directions or ()), n_evaluations, seconds, per_group,
                basis, engine.reason, calls, setup.seconds, setup.what, budget,
                "" if fit is None or fit.fits else str(fit))


@dataclass(frozen=True)
class BudgetFit:
    """How a check was fitted to its budget (the report's ``settings["budget_fit"]`` says it in a sentence).

    Attributes
    ----------
    budget : float
    spent : float
        Seconds spent before the fit: validation, the engine's set-up, its timing.
    n_coordinates : int
        Coordinates the fitted check evaluates.
    estimated : float
        ``spent`` and the estimate of those coordinates (:func:`running_seconds`).
    full : bool
        The full check fits.
    fits : bool
        The estimate is within the budget (False: even the smallest subset is not).
    min_per_group : int
    """

    budget: float
    spent: float
    n_coordinates: int
    estimated: float
    full: bool
    fits: bool
    min_per_group: int

    def __str__(self) -> str:
        head = f"budget {self.budget:.3g} s"
        spent = f"{self.spent:.2g} s of it before the first coordinate"
        if self.full:
            return f"{head}: the full check fits ({self.n_coordinates:,} coordinates, estimated {self.estimated:.3g} " \
                   f"s, {spent})"
        if self.fits:
            return f"{head}: subset of {self.n_coordinates:,} coordinates (estimated {self.estimated:.3g} s, {spent})"
        return (f"{head}: the smallest check ({self.min_per_group} entries per group, {self.n_coordinates:,} "
                f"coordinates) is estimated at {self.estimated:.3g} s ({spent}), over the budget of "
                f"{self.budget:.3g} s; it was checked anyway (raise the budget, or lower min_per_group)")


#: Bisection steps of the widest subset that fits (the fraction to about 1e-12).
_BISECTIONS = 40


def fit_budget(layout: Layout, engine: Engine, options: CheckOptions,
               started: float) -> tuple[CheckOptions, BudgetFit]:
    """Turn a full check that would overrun ``options.budget`` into the widest subset that fits.

    The time already spent since ``started`` (validation, the engine's set-up and its
    timing, :func:`engine_setup`) is charged to the budget; the rest is estimated by
    :func:`running_seconds`, as plans do, with its fixed part: the per-group minimum
    (``min_per_group``) is the smallest subset, which may not fit either (the fit says so).
    """
    full = running_seconds(engine, 2 * layout.n_params)  # times the engine first, if it was not yet
    engine_setup(engine)
    spent = time.perf_counter() - started

    def fitted(n_coordinates, seconds, whole=False):
        return BudgetFit(options.budget, spent, n_coordinates, spent + seconds, whole,
                         spent + seconds <= options.budget, options.min_per_group)

    if spent + full <= options.budget:
        return options, fitted(layout.n_params, full, whole=True)

    def cost(fraction):
        n = sum(subset_sizes(layout, fraction=fraction, min_per_group=options.min_per_group))
        return n, running_seconds(engine, 2 * n)

    low, high = 1e-12, 1.0  # the per-group minimum, and all of theta (which does not fit)
    n, seconds = cost(low)
    if spent + seconds <= options.budget:
        for _ in range(_BISECTIONS):
            middle = (low * high) ** 0.5 if high / low > 4 else (low + high) / 2
            if spent + cost(middle)[1] <= options.budget:
                low = middle
            else:
                high = middle
        n, seconds = cost(low)
    # a subset takes no budget (the mode rules): the caller records the budget it was fitted to
    return options.but(budget=None, mode="subset", fraction=low), fitted(n, seconds)
