"""What a check of a user's cost will take: the cost timed, the calls of it counted, the traced engine timed.

Plans and budgets (:mod:`~.plan`) read these figures through the engine
(``Engine.estimate``, ``Engine.setup``); this module measures them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

__all__ = ["CostTiming", "counted_calls", "traced_estimate", "TIMING_SECONDS", "TIMING_EVALUATIONS"]

#: A cost is timed on perturbed evaluations until this many seconds have gone by (the traced
#: engine: its timing of every group takes about this long) ...
TIMING_SECONDS = 0.25
#: ... or this many evaluations were made (at least 4, at most this many).
TIMING_EVALUATIONS = 32


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


def traced_estimate(engine):
    """``(estimate, basis)`` of a verified traced engine, for :class:`~fastcheck.engines.base.Engine`.

    ``estimate(n)``: seconds for ``n / 2`` coordinates (the engine's convention: 2 per
    coordinate, :func:`~.stepping.with_stencil` doubles it for 4 points), one call's fixed
    part and a slope per coordinate, from stratified samples timed as a run evaluates them,
    when first asked (:func:`~fastcheck.engines.traced.timing.coordinate_timing`).
    """
    from ..engines.traced.timing import coordinate_timing

    fit = []

    def timing() -> tuple[float, float]:
        if not fit:
            fit.append(coordinate_timing(engine, TIMING_SECONDS))
        return fit[0]

    def estimate(n_evaluations: int) -> float:
        fixed, slope = timing()
        return fixed + slope * n_evaluations / 2 if n_evaluations else 0.0

    def basis() -> str:
        fixed, slope = timing()
        return (f"the traced engine timed on stratified samples ({engine.n_threads} thread(s)): "
                f"{fixed * 1e3:.3g} ms + {slope * 1e6:.3g} us per coordinate")

    return estimate, basis
