"""A validated check, ready to run whole or in pieces: :class:`Prepared`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.finite import AUTO
from ..core.layout import Layout
from ..core.results import Evaluations
from ..engines.base import Engine
from ..errors import InputError
from ..report import Report, build_report
from .argument import require_cost_moves
from .escalation import escalate
from .kinks import with_kinks_at_theta
from .noise import noise_report
from .options import CheckOptions
from .plan import Plan, fit_budget, make_plan, what_to_check
from .sweep import sweep_report

__all__ = ["Prepared"]


@dataclass(frozen=True)
class Prepared:
    """A validated check, ready to run in pieces: the one door of resumable runs.

    ``indices()`` lists the coordinates the mode checks; ``evaluate(chunk)`` runs the
    engine on any chunk of them; ``report(evaluations)`` builds the report from the
    merged chunks (see :func:`fastcheck.core.results.merge_evaluations`). Running every
    chunk and reporting gives the same numbers as :meth:`run` (for the coordinate
    modes, without escalation or budget).
    """

    layout: Layout
    analytic: np.ndarray
    theta: np.ndarray
    engine: Engine
    options: CheckOptions
    started: float
    settings: dict = field(default_factory=dict)  # recorded beside the options' (e.g. n_jobs)
    context: dict = field(default_factory=dict)  # what diagnoses may use (m, l2 of the built-in MLP)
    release: Callable[[], None] | None = None  # after a run: the arrays a user's cost kept, writable again

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def with_settings(self, **settings) -> Prepared:
        """The same check, recording ``settings`` too in its reports."""
        return replace(self, settings={**self.settings, **settings})

    def seconds_per_coordinate(self) -> float:
        """About how long one coordinate (both signs) takes: the engine's prior, else its estimate for all of
        theta, per coordinate (an engine's fixed cost per call, the traced engine's, spread over them)."""
        if self.engine.prior is not None:
            return self.engine.prior
        n = self.layout.n_params
        return max(self.engine.estimate(2 * n) / n, 1e-9)

    def plan(self) -> Plan:
        return make_plan(self.layout, self.engine, self.options)

    def indices(self) -> np.ndarray:
        indices, _ = what_to_check(self.layout, self.options)
        if indices is None:
            raise InputError("a prepared check runs in chunks of coordinates: use mode 'full' or 'subset'")
        return indices

    def evaluate(self, indices: np.ndarray) -> Evaluations:
        return self.engine.coordinates(np.asarray(indices, dtype=np.int64))

    def report(self, evaluations: Evaluations, elapsed: float | None = None, sweep: bool = False) -> Report:
        """The report of ``evaluations`` (the chunks of :meth:`indices`, merged); ``sweep``: with the step
        sweep of its flagged entries, as :meth:`run` does (more evaluations of the cost, at most
        :data:`~fastcheck.pipeline.sweep.SWEEP_SECONDS`)."""
        elapsed = time.perf_counter() - self.started if elapsed is None else elapsed
        require_cost_moves(evaluations, self.engine.cost, self.analytic, self.options.steps(self.theta))
        evaluations = with_kinks_at_theta(evaluations, self.engine, self.theta, self.options.steps(self.theta))

        def build(noise=None):
            return build_report(self.layout, self.analytic, evaluations, bounds=self.options.bounds,
                                settings=self._settings(self.options), elapsed=elapsed, theta=self.theta,
                                context=self.context, cost=self.engine.cost, steps=self.options.steps(self.theta),
                                noise=noise)

        report, noise = noise_report(build(), self.engine, self.options, self.theta, self.analytic, build)
        if not sweep:
            return report
        return sweep_report(report, self.layout, self.engine, self.options, self.theta, self.analytic, noise)

    def _settings(self, options: CheckOptions) -> dict:
        settings = options.settings()
        if options.eps == AUTO:  # the steps the rule gave, for the headline
            steps = options.steps(self.theta)
            settings["auto_steps"] = [float(steps.min()), float(steps.max())]
        if self.options.budget is not None:  # also when it was fitted to a subset (which takes none)
            settings["budget"] = self.options.budget
        return {**settings, "engine": self.engine.name, **self.engine.notes, **self.settings}

    def run(self) -> Report:
        """The whole check at once, escalation, budget and step sweep included."""
        try:
            return self._run()
        finally:
            if self.release is not None:
                self.release()

    def _run(self) -> Report:
        options, fit = self.options, None
        if options.budget is not None:
            options, fit = fit_budget(self.layout, self.engine, options, self.started)
        indices, directions = what_to_check(self.layout, options)
        coords = self.engine.coordinates(indices) if indices is not None else None
        dirs = self.engine.directions(directions) if directions is not None else None
        settings = self._settings(options)
        if fit is not None:  # what the budget held, by the estimate, and whether even the smallest check fit
            settings.update(budget_fit=str(fit), budget_estimate=fit.estimated)
        steps = options.steps(self.theta)

        last = {}  # what the latest report was built from (escalation merges more coordinates)
        kinks_decided = {}  # the kink pass's decisions: a rebuild neither evaluates nor counts them again

        def build(coords, escalated=(), noise=None):
            require_cost_moves(coords, self.engine.cost, self.analytic, steps)
            coords = with_kinks_at_theta(coords, self.engine, self.theta, steps, kinks_decided)
            last.update(coords=coords, escalated=escalated)
            return build_report(self.layout, self.analytic, coords, directions=dirs, bounds=options.bounds,
                                settings=settings, elapsed=time.perf_counter() - self.started,
                                escalated=escalated, theta=self.theta, context=self.context,
                                cost=self.engine.cost, steps=steps, noise=noise)

        report = build(coords)
        if options.mode != "full" and options.escalate:
            report = escalate(report, self.layout, self.engine, options, coords, dirs, settings, build)
        report, noise = noise_report(report, self.engine, options, self.theta, self.analytic,
                                     lambda noise: build(last["coords"], last["escalated"], noise))
        report = sweep_report(report, self.layout, self.engine, options, self.theta, self.analytic, noise)
        # the noise and sweep steps add their own time to a report whose time is fixed (``report``, the
        # nightly's); here every build read the clock, so the rebuilt report already held the noise time
        report.elapsed = time.perf_counter() - self.started
        return report
