"""How long a full run of the traced engine takes: each group timed at the size of the run's chunks.

A traced chunk has a fixed cost (the walk over the graph, one allocation per operation)
besides its work per coordinate, so a few coordinates timed alone overstate the rate of a
run, which evaluates chunks of up to :data:`~.engine.MAX_CHUNK` coordinates on every
thread; on a course-layout MLP, 64 coordinates take 46 us each and 4,096 take 2.6 us. The
timing therefore grows the sample of each group by fours, from 16 coordinates up to as
many as one round of the run's chunks holds (``n_threads * MAX_CHUNK``) or the whole
group, and stops before the next size would overrun the group's share of the
time given to the timing: the largest sample timed, which ran as the run does (its chunks,
its threads), gives the group's rate. The timing costs at most about 4/3 of that share.
"""

from __future__ import annotations

import time

import numpy as np

from .engine import MAX_CHUNK

__all__ = ["coordinate_seconds", "FIRST_TIMED", "GROUP_SECONDS"]

#: Seconds each group's timing may take at the least (the groups share the caller's ``seconds``).
GROUP_SECONDS = 0.01
#: Coordinates of the first timed sample of a group.
FIRST_TIMED = 16


def coordinate_seconds(engine, seconds: float, seed: int = 0) -> float:
    """Seconds per coordinate (both signs) of a run over all of theta, from each group timed.

    Parameters
    ----------
    engine : TracedEngine
        A verified engine (its first chunk of every group has run).
    seconds : float
        What the timing may take, shared by the groups in proportion to their size.
    seed : int
        Seed of the timed coordinates.

    Returns
    -------
    float
        The mean over theta of each group's seconds per coordinate.
    """
    rng = np.random.default_rng(seed)
    layout = engine.layout
    total = 0.0
    for g in layout.groups:
        share = max(GROUP_SECONDS, seconds * g.size / layout.n_params)
        largest = min(g.size, engine.n_threads * MAX_CHUNK)
        local = g.start + rng.permutation(g.size)[:largest]
        timed = [(min(FIRST_TIMED, largest), 0.0)]
        while True:
            size = timed[-1][0]
            tic = time.perf_counter()
            engine.coordinates(local[:size])
            timed[-1] = (size, time.perf_counter() - tic)
            following = min(4 * size, largest)
            if size == largest or timed[-1][1] / size * following > share:
                break
            timed.append((following, 0.0))
        total += _group_seconds(timed, g.size)
    return total / layout.n_params


def _group_seconds(timed: list[tuple[int, float]], size: int) -> float:
    """A group's seconds from its timed samples ``(coordinates, seconds)``: the whole group if it was
    timed, else the last two fitted as fixed + slope * coordinates (a call's fixed cost is paid once
    however many coordinates it holds), else the one sample's rate."""
    k1, t1 = timed[-1]
    if k1 == size:
        return t1
    if len(timed) == 1:
        return t1 / k1 * size
    (k0, t0) = timed[-2]
    slope = max((t1 - t0) / (k1 - k0), 0.25 * t1 / k1)  # timing noise must not make it free
    return max(t1 - slope * k1, 0.0) + slope * size
