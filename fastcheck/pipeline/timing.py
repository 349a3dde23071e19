"""What a check will take: a user's cost timed, the calls of it counted, the traced and batched engines timed.

Plans and budgets (:mod:`~.plan`) read these figures through the engine
(``Engine.estimate``, ``Engine.setup``); this module measures them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from ..core.directions import draw_directions
from ..core.selection import stratified_subset
from ..engines.base import Setup

__all__ = ["CostTiming", "counted_calls", "traced_estimate", "batched_estimate", "directions_estimate",
           "timing_seconds", "TIMING_SECONDS", "DIRECTION_TIMING",
           "TIMING_EVALUATIONS", "BUDGET_SHARE", "report_seconds"]

#: A cost is timed on perturbed evaluations until this many seconds have gone by (the traced
#: engine: its timing of every group takes about this long) ...
TIMING_SECONDS = 0.25
#: ... or this many evaluations were made (at least 4, at most this many).
TIMING_EVALUATIONS = 32
#: Within a budget, the timing of an engine takes at most this share of it.
BUDGET_SHARE = 0.5
#: Directions per group (and over all of theta) that the built-in network's directions are timed at: a fixed
#: part (the base pass, the linear maps) and a slope per direction between the two.
DIRECTION_TIMING = (2, 8)
#: ... each timed this many times, the least taken.
DIRECTION_RUNS = 2


class CostTiming:
    """Seconds per evaluation of a user's cost, timed once, when an estimate is first needed.

    The two evaluations at theta that validate the cost also warm it up (caches, lazy
    imports); the timing then evaluates a seeded sample of perturbed coordinates and
    takes the median, so one slow call (a page fault, another process) does not move
    the estimate much.
    """

    def __init__(self, problem):
        self.problem = problem
        self.samples: list[float] = []

    def seconds(self) -> float:
        if not self.samples:
            objective, theta = self.problem.objective, self.problem.theta
            rng = np.random.default_rng(0)
            work, started = theta.copy(), time.perf_counter()
            eps = 1e-7
            while len(self.samples) < TIMING_EVALUATIONS and (
                    len(self.samples) < 4 or time.perf_counter() - started < TIMING_SECONDS):
                i = int(rng.integers(theta.size))
                work[i] = theta[i] + eps
                tic = time.perf_counter()
                objective(work, i, +1)
                self.samples.append(time.perf_counter() - tic)
                work[i] = theta[i]
        return float(np.median(self.samples))

    def basis(self) -> str:
        self.seconds()
        return f"the median of {len(self.samples)} timed cost evaluations, {self.seconds() * 1e3:.3g} ms each"


class _Counting:
    """The user's cost, counting its calls (traced or not)."""

    def __init__(self, cost):
        self.cost, self.calls = cost, 0

    def __call__(self, params):
        self.calls += 1
        return self.cost(params)


@contextmanager
def counted_calls(objective):
    """Count the calls of ``objective``'s cost inside the block: yields the counter (``.calls``).

    The objective's cost is put back on leaving, so that nothing else (workers, a later
    check) sees the counter.
    """
    counter = _Counting(objective.cost)
    objective.cost = counter
    try:
        yield counter
    finally:
        objective.cost = counter.cost


def timing_seconds(budget: float | None) -> float:
    """What an engine's timing may take: :data:`TIMING_SECONDS`, or within a ``budget`` at most
    :data:`BUDGET_SHARE` of it (the timed samples are not part of the check)."""
    return TIMING_SECONDS if budget is None else min(TIMING_SECONDS, BUDGET_SHARE * budget)


def _most(budget: float | None) -> float | None:
    """The timing's upper bound: the default, or within a budget its share of it."""
    return None if budget is None else timing_seconds(budget)


def traced_estimate(engine, budget: float | None = None):
    """``(estimate, basis)`` of a verified traced engine, for :class:`~fastcheck.engines.base.Engine`.

    ``estimate(n)``: seconds for ``n / 2`` coordinates (the engine's convention: 2 per
    coordinate, :func:`~.stepping.with_stencil` doubles it for 4 points), read off
    stratified samples timed as a run evaluates them, when first asked
    (:func:`~fastcheck.engines.timing.coordinate_timing`); ``budget``: the check's, which
    bounds the timing.
    """
    from ..engines.timing import coordinate_timing
    from ..engines.traced.engine import MAX_CHUNK

    timed = []

    def timing():
        if not timed:
            timed.append(coordinate_timing(engine.coordinates, engine.layout, 2 * engine.n_threads * MAX_CHUNK,
                                           timing_seconds(budget), _most(budget)))
        return timed[0]

    def basis() -> str:
        return f"the traced engine timed on stratified samples ({engine.n_threads} thread(s)): {_line(timing())}"

    return lambda n: timing().seconds(n / 2), basis


def batched_estimate(net, layout, coordinates, budget: float | None = None):
    """``(estimate, basis, lazy_setup)`` of the batched engine on ``net``, for :class:`~fastcheck.engines.base.Engine`.

    ``lazy_setup()``, once: the kernels loaded (on a tiny network of the same kinds, not
    counted: a check in this process finds them loaded), then what a check does once
    before its first coordinate, timed: the base pass and every layer's tables (built by
    a first call on one coordinate per group). ``estimate(n)``: the engine's calls after
    that, timed on stratified samples as :func:`traced_estimate`'s (a run is one call).
    """
    from ..engines.mlp.batched import warm_kernels
    from ..engines.timing import coordinate_timing

    done, timed = [], []

    def lazy_setup() -> Setup:
        if not done:
            warm_kernels(net)
            one = stratified_subset(layout, n_samples=len(layout.groups), min_per_group=1, seed=0)
            tic = time.perf_counter()
            coordinates(one)
            done.append(Setup(time.perf_counter() - tic, 0, "the base pass and each layer's tables"))
        return done[0]

    def timing():
        if not timed:
            lazy_setup()
            # past its largest sample a coordinate costs its mean there at least: once every row is touched
            # the rate stops falling, and a larger call reads more memory (slower on a busy machine)
            timed.append(coordinate_timing(coordinates, layout, layout.n_params, timing_seconds(budget),
                                           _most(budget), floor=1.0))
        return timed[0]

    def basis() -> str:
        points = timing().points
        return (f"{lazy_setup().seconds:.3g} s of set-up, then the batched engine timed on stratified samples of "
                f"{points[0][0]:,} to {points[-1][0]:,} coordinates: {_line(timing())}")

    return lambda n: timing().seconds(n / 2), basis, lazy_setup


def directions_estimate(evaluate, layout, kind: str):
    """``(estimate, basis)`` of the built-in network's directions, timed on first use.

    ``evaluate(directions)`` runs them as a check does (its base pass included); it is
    timed at :data:`DIRECTION_TIMING` directions per group, drawn as ``kind``, after one
    untimed run of the first (what a process does once: loading a kernel, numpy's first
    calls), the least of :data:`DIRECTION_RUNS` runs each (another process's burst on the
    cores is no part of the check), and read as a fixed part and a slope per direction; ``estimate(n_evaluations)``
    is the seconds of ``n_evaluations / 2`` directions.
    """
    timed: dict = {}

    def fit() -> dict:
        if not timed:
            points = []
            evaluate(draw_directions(layout, DIRECTION_TIMING[0], seed=0, kind=kind))
            for per_group in DIRECTION_TIMING:
                directions = draw_directions(layout, per_group, seed=0, kind=kind)
                runs = []
                for _ in range(DIRECTION_RUNS):
                    tic = time.perf_counter()
                    evaluate(directions)
                    runs.append(time.perf_counter() - tic)
                points.append((len(directions), min(runs)))
            (n_few, few), (n_many, many) = points
            slope = max((many - few) / (n_many - n_few), 0.0)
            timed.update(points=points, slope=slope, fixed=max(few - slope * n_few, 0.0))
        return timed

    def estimate(n_evaluations: int) -> float:
        t = fit()
        return t["fixed"] + t["slope"] * n_evaluations / 2

    def basis() -> str:
        t = fit()
        (n_few, few), (n_many, many) = t["points"]
        return (f"the directions timed at {n_few} and {n_many} ({few * 1e3:.3g} and {many * 1e3:.3g} ms): "
                f"{t['fixed'] * 1e3:.3g} ms + {t['slope'] * 1e3:.3g} ms per direction")

    return estimate, basis


def _line(timing) -> str:
    """The timing's line past its largest sample, in a phrase."""
    fixed, slope = timing.line()
    return f"{fixed * 1e3:.3g} ms + {slope * 1e6:.3g} us per coordinate"


#: Entries of the synthetic passing checks whose reports are timed, once per process, the faster of two
#: each (after one of the first size, untimed: its imports and first calls are no check's).
REPORT_TIMED = (1_000, 8_000)
_report_line: list[tuple[float, float]] = []


def report_seconds(n_coordinates: int) -> float:
    """About how long a check takes to build the report of ``n_coordinates`` coordinates (its time after
    the engine's): synthetic passing checks of :data:`REPORT_TIMED` entries, their reports built and
    timed once per process, fitted as fixed + slope (a group's norms are BLAS calls, whose threads
    wake slowly on a busy machine: the fixed part)."""
    if n_coordinates <= 0:
        return 0.0
    if not _report_line:
        _synthetic_report(REPORT_TIMED[0])
        small, large = (min(_synthetic_report(k), _synthetic_report(k)) for k in REPORT_TIMED)
        slope = max((large - small) / (REPORT_TIMED[1] - REPORT_TIMED[0]), 0.0)
        _report_line.append((max(large - slope * REPORT_TIMED[1], 0.0), slope))
    fixed, slope = _report_line[0]
    return fixed + slope * n_coordinates


def _synthetic_report(n: int) -> float:
    """Seconds to build the report of a passing check of ``n`` entries in four groups."""
    from ..core.layout import Layout
    from ..core.results import Evaluations
    from ..report import build_report
    from .options import CheckOptions

    rng = np.random.default_rng(0)
    sizes = [n // 2, n // 4, n - n // 2 - n // 4 - 8, 8]
    layout, theta = Layout.from_params({f"p{i}": rng.standard_normal(k) for i, k in enumerate(sizes)})
    gradient, options = rng.standard_normal(theta.size), CheckOptions()
    ev = Evaluations(np.arange(theta.size), 1.0 + 1e-7 * gradient, 1.0 - 1e-7 * gradient, gradient,
                     np.zeros(theta.size, dtype=bool), 2 * theta.size)
    tic = time.perf_counter()
    build_report(layout, gradient, ev, bounds=options.bounds, settings=options.settings(), elapsed=0.0, theta=theta,
                 cost=1.0, steps=options.steps(theta))
    return time.perf_counter() - tic
