"""How long the traced engine takes for k coordinates: stratified samples timed as a run evaluates them.

A call of :meth:`~.engine.TracedEngine.coordinates` has a fixed cost (threads started, the
first chunk of every group waiting for a core, the walk over the graph) besides its work
per coordinate, and the work per coordinate falls as chunks grow (stacked products run
as wider BLAS calls), so a few coordinates timed alone overstate a run's rate by far: on
a course-layout MLP of 8,865 parameters, 16 coordinates of one group take 7 ms and all
8,865 take 15 ms; on a vanilla RNN of 7,643, 64 coordinates take 52 ms and all of them
0.36 s. So the timing does what a run does, on less: one call on a stratified sample of
theta (every group in proportion), the sample growing by fours from :data:`FIRST_TIMED`
coordinates up to two rounds of the run's largest chunks (``2 * n_threads * MAX_CHUNK``)
or all of theta. The last two samples are fitted as fixed + slope * k (the batched
engine's rule), which, the rate falling with k, errs high (by 2.6 times on that RNN). The
timing stops before the next sample would take it over its allowance: the caller's
``seconds``, or a quarter of the run the fit predicts if that is more (a longer run is
worth a closer estimate), at most :data:`MOST_TIMING` times ``seconds``. A sample of all
of theta is the answer itself.
"""

from __future__ import annotations

import time

from ...core.selection import stratified_subset
from .engine import MAX_CHUNK

__all__ = ["coordinate_timing", "FIRST_TIMED", "RUN_SHARE", "MOST_TIMING"]

#: Coordinates of the first timed sample.
FIRST_TIMED = 64
#: The timing may take this share of the run it predicts ...
RUN_SHARE = 0.25
#: ... but never more than this many times the caller's ``seconds``.
MOST_TIMING = 10


def coordinate_timing(engine, seconds: float, seed: int = 0) -> tuple[float, float]:
    """``(fixed, slope)``: a call of ``engine.coordinates`` on k coordinates takes ``fixed + slope * k`` seconds.

    Parameters
    ----------
    engine : TracedEngine
        A verified engine (its first chunk of every group has run).
    seconds : float
        What the timing may take at the least (see the module docstring).
    seed : int
        Seed of the timed samples.

    Returns
    -------
    (float, float)
        Seconds per call and per coordinate (both signs).
    """
    n = engine.layout.n_params
    largest = min(n, 2 * engine.n_threads * MAX_CHUNK)
    timed: list[tuple[int, float]] = []
    size, started = min(FIRST_TIMED, largest), time.perf_counter()
    while True:
        sample = stratified_subset(engine.layout, n_samples=size, min_per_group=1, seed=seed)
        tic = time.perf_counter()
        engine.coordinates(sample)
        timed.append((sample.size, time.perf_counter() - tic))
        fixed, slope = _fit(timed)
        following = min(4 * size, largest)
        allowance = min(max(seconds, RUN_SHARE * (fixed + slope * n)), MOST_TIMING * seconds)
        if size == largest or time.perf_counter() - started + fixed + slope * following > allowance:
            break
        size = following
    if timed[-1][0] >= n:  # all of theta, timed: no fixed part to guess
        return 0.0, timed[-1][1] / timed[-1][0]
    return fixed, slope


def _fit(timed: list[tuple[int, float]]) -> tuple[float, float]:
    """Fixed + slope * k through the last two samples ``(k, seconds)`` (one: all of it slope)."""
    k1, t1 = timed[-1]
    if len(timed) == 1:
        return 0.0, t1 / k1
    k0, t0 = timed[-2]
    slope = max((t1 - t0) / (k1 - k0), 0.25 * t1 / k1)  # timing noise must not make coordinates free
    return max(t1 - slope * k1, 0.0), slope
