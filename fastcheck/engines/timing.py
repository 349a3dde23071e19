"""How long an engine takes for k coordinates: stratified samples timed as a run evaluates them.

A call of an engine's ``coordinates`` has a fixed cost besides its work per coordinate
(the traced engine: threads started, the first chunk of every group waiting for a core,
the walk over the graph; the batched engine: the tasks of every row a sample touches),
and the work per coordinate falls as a call grows (the traced engine's stacked products
run as wider BLAS calls; the batched engine's rows are shared by more coordinates), so a
few coordinates timed alone overstate a run's rate by far: on a course-layout MLP of 8,865
parameters, 16 coordinates of one group take 7 ms and all 8,865 take 15 ms; on a GRU of
372, 64 coordinates take 0.13 s and all of them 0.15 s. So the timing does what a run
does, on less: one call on a stratified sample of theta (every group in proportion), the
sample growing by fours from :data:`FIRST_TIMED` coordinates up to the engine's
``largest`` call (the traced engine: two rounds of its largest chunks) or all of theta; a
cheap sample is timed twice and the faster kept, so that a preempted call weighs less.

The estimate at k is read off the timed points: linear between them, the smallest's
time below it (a call on fewer costs no more), and past the largest the line through
the last two, which errs high where the rate keeps falling. After two samples at least
(one alone cannot tell a call's fixed part from its slope), the timing stops before the
next sample would take it over its allowance: the caller's ``seconds``, or a quarter of
the run the points predict if that is more (a longer run is worth a closer estimate), at
most ``most`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..core.selection import stratified_subset

__all__ = ["Timing", "coordinate_timing", "FIRST_TIMED", "RUN_SHARE", "MOST_TIMING"]

#: Coordinates of the first timed sample (at least one per group).
FIRST_TIMED = 16
#: The timing may take this share of the run it predicts ...
RUN_SHARE = 0.25
#: ... but by default never more than this many times the caller's ``seconds``.
MOST_TIMING = 10
#: A sample that took less than this share of the allowance is timed again (up to :data:`TIMES` times
#: in all), and the fastest kept.
AGAIN_BELOW = 0.25
TIMES = 2
#: Past the largest sample the line runs through it and the sample this many before it (4 times
#: smaller: the nearest the run's rate).
BASELINE = 1
#: Past the largest sample, a coordinate costs at least this share of its mean there
#: (timing noise must not make coordinates free; :func:`coordinate_timing`'s ``floor``).
SLOPE_FLOOR = 0.1


@dataclass
class Timing:
    """Timed calls ``(k, seconds)`` of an engine on stratified samples, k increasing; past the largest,
    a coordinate costs at least ``floor`` times its mean there."""

    points: list = field(default_factory=list)
    floor: float = SLOPE_FLOOR

    def seconds(self, k: float) -> float:
        """About how long a call on ``k`` coordinates takes (0 for none)."""
        if k <= 0:
            return 0.0
        ks, ts = self._monotone()
        if k <= ks[0]:
            return ts[0]
        for (k0, t0), (k1, t1) in zip(zip(ks, ts), zip(ks[1:], ts[1:])):
            if k <= k1:
                return t0 + (t1 - t0) * (k - k0) / (k1 - k0)
        fixed, slope = self.line()
        return fixed + slope * k

    def line(self) -> tuple[float, float]:
        """``(fixed, slope)`` of the line through the last point and the one :data:`BASELINE` before it
        (or the first; one point: all of it slope)."""
        ks, ts = self._monotone()
        k1, t1 = ks[-1], ts[-1]
        if len(ks) == 1:
            return 0.0, t1 / k1
        k0, t0 = ks[max(0, len(ks) - 1 - BASELINE)], ts[max(0, len(ks) - 1 - BASELINE)]
        slope = max((t1 - t0) / (k1 - k0), self.floor * t1 / k1)
        return max(t1 - slope * k1, 0.0), slope

    def _monotone(self) -> tuple[list, list]:
        """The points with each time the least of its own and those of larger samples: a call on fewer
        coordinates costs no more, and noise (a preempted call) only ever adds time."""
        ks = [k for k, _ in self.points]
        ts, least = [], float("inf")
        for _, t in reversed(self.points):
            least = min(least, t)
            ts.append(least)
        return ks, ts[::-1]


def coordinate_timing(coordinates, layout, largest: int, seconds: float, most: float | None = None,  # noqa: PLR0913
                      seed: int = 0, floor: float = SLOPE_FLOOR) -> Timing:
    """Time ``coordinates`` on stratified samples of ``layout``'s theta (see the module docstring).

    Parameters
    ----------
    coordinates : callable ``(indices) -> Evaluations``
        The engine, ready (whatever a check does once before its first coordinate done).
    layout : Layout
    largest : int
        The largest call a run makes (at most all of theta).
    seconds : float
        What the timing may take at the least.
    most : float, optional
        What it may take at the most (default :data:`MOST_TIMING` times ``seconds``).
    seed : int
        Seed of the timed samples.
    floor : float
        :attr:`Timing.floor`: :data:`SLOPE_FLOOR`, or 1 for an engine whose rate does not fall
        past its largest sample.
    """
    n = layout.n_params
    largest = min(n, largest)
    most = MOST_TIMING * seconds if most is None else most
    timing = Timing(floor=floor)
    size, started = min(max(FIRST_TIMED, len(layout.groups)), largest), time.perf_counter()
    while True:
        sample = stratified_subset(layout, n_samples=size, min_per_group=1, seed=seed)
        took = _timed(coordinates, sample)
        for _ in range(TIMES - 1):  # cheap: the fastest of a few, so that a preempted call weighs less
            if took >= AGAIN_BELOW * min(seconds, most):
                break
            took = min(took, _timed(coordinates, sample))
        timing.points.append((sample.size, took))
        following = min(4 * size, largest)
        allowance = min(max(seconds, RUN_SHARE * timing.seconds(n)), most)
        over = time.perf_counter() - started + timing.seconds(following) > allowance
        if size >= largest or (over and len(timing.points) > BASELINE):  # the line's two points at least
            return timing
        size = following


def _timed(coordinates, sample) -> float:
    """Seconds of one call of ``coordinates`` on ``sample``."""
    tic = time.perf_counter()
    coordinates(sample)
    return time.perf_counter() - tic
