"""Escalation: after a cheap mode, re-check flagged groups coordinate by coordinate.

A group that a subset or its random directions flag (verdict not ``pass``) is re-checked
entry by entry, so the report can name the wrong entries: every entry when the engine's
estimate says that fits in :data:`~fastcheck.pipeline.options.ESCALATE_SECONDS`, else
the blocks a bisection with random directions narrows the group down to, then a random
sample of the rest.
"""

from __future__ import annotations

import numpy as np

from ..core.directions import SIGNS, Direction
from ..core.finite import relative_errors
from ..core.layout import Layout
from ..core.results import Evaluations, merge_evaluations
from ..engines.base import Engine
from ..report import Report
from . import options as defaults
from .options import CheckOptions

__all__ = ["escalate"]

#: Bisection stops splitting blocks of at most this many entries (then checked one by one) ...
LOCALISE_LEAF = 16
#: ... follows at most this many wrong blocks at a time (more: the error is spread out) ...
LOCALISE_BLOCKS = 8
#: ... and tests each block with this many random directions.
LOCALISE_DIRECTIONS = 2


def escalate(report: Report, layout: Layout, engine: Engine, options: CheckOptions, coords: Evaluations | None,
             dirs, settings: dict, build) -> Report:
    """The report after re-checking the groups ``report`` flags; ``build(coords, escalated)`` makes a report.

    ``settings`` (the report's) gains ``escalated`` and, where a bisection ran,
    ``localised``; the bisection's evaluations are counted with the cheap mode's.
    """
    flagged = [g for g in report.groups if g.verdict != "pass"]
    if not flagged:
        return report
    rng = np.random.default_rng([options.seed, 1])
    done = np.zeros(layout.n_params, dtype=bool)
    if coords is not None:
        done[coords.indices] = True
    todos = [g.start + np.flatnonzero(~done[g.start:g.stop]) for g in map(layout.group, (r.name for r in flagged))]
    sizes = _escalation_sizes(engine, [len(t) for t in todos], options.escalate_budget)
    extra, localised = [], {}
    for row, todo, k in zip(flagged, todos, sizes):
        if len(todo) == k:
            extra.append(todo)
            continue
        # too many to re-check one by one: narrow down by bisection first, then a random sample
        found, n_evaluations = _localise(layout, layout.group(row.name), engine, options)
        found = found[~done[found]]
        localised[row.name] = {"evaluations": n_evaluations, "entries": int(found.size),
                               "rechecked": int(min(found.size, k))}
        if found.size > k:  # still spread out: the sample comes from where the error is
            extra.append(np.sort(rng.choice(found, size=k, replace=False)))
            continue
        rest = np.setdiff1d(todo, found, assume_unique=True)
        sample = rng.choice(rest, size=min(len(rest), k - found.size), replace=False)
        extra.append(np.sort(np.concatenate([found, sample]).astype(np.int64)))
    more = np.concatenate(extra)
    if len(more):
        coords = engine.coordinates(more) if coords is None else merge_evaluations([coords,
                                                                                    engine.coordinates(more)])
    settings["escalated"] = [g.name for g in flagged]
    if localised:
        settings["localised"] = localised
        spent = sum(v["evaluations"] for v in localised.values())
        if dirs is not None:
            dirs.n_evaluations += spent
        else:
            coords.n_evaluations += spent
    return build(coords, settings["escalated"])


def _escalation_sizes(engine: Engine, todo: list[int], budget: int | None) -> list[int]:
    """How many of each flagged group's unchecked entries escalation re-checks."""
    if budget is not None:
        return [min(n, budget) for n in todo]
    seconds = engine.estimate(2 * sum(todo)) if sum(todo) else 0.0
    if seconds <= defaults.ESCALATE_SECONDS:
        return list(todo)
    share = defaults.ESCALATE_SECONDS / seconds
    return [min(n, max(defaults.ESCALATE_MIN, int(n * share))) for n in todo]


def _localise(layout: Layout, group, engine: Engine, options: CheckOptions) -> tuple[np.ndarray, int]:
    """Narrow a flagged group down to the blocks holding its wrong entries, by bisection.

    Each level splits every block still under suspicion in two and tests each half with
    :data:`LOCALISE_DIRECTIONS` random directions supported on it; a half is wrong when
    a direction's relative error reaches the warn bound and its absolute error is more
    than 10 times the rounding scale of a central difference, ``|J| 2**-52 / eps``. A
    single wrong entry of a group of n is found with about 4 log2(n / 16) cost
    evaluations instead of 2n. Stops at blocks of :data:`LOCALISE_LEAF` entries, when
    more than :data:`LOCALISE_BLOCKS` halves are wrong (the error is spread: sampling
    does better), when no half is (errors that cancel), or when the next level would
    not fit in the escalation's time.

    Returns the flat indices of the blocks found (the whole group if nothing narrowed
    it) and the cost evaluations spent.
    """
    position = layout.names.index(group.name)
    rounding = abs(engine.cost) * np.finfo(np.float64).eps / options.direction_eps if np.isfinite(engine.cost) else 0.0
    blocks, spent, number = [(group.start, group.stop)], 0, 0
    while any(hi - lo > LOCALISE_LEAF for lo, hi in blocks):
        leaves = [(lo, hi) for lo, hi in blocks if hi - lo <= LOCALISE_LEAF]  # found: not tested again
        halves = [half for lo, hi in blocks if hi - lo > LOCALISE_LEAF
                  for half in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
        tests = []
        for lo, hi in halves:
            for _ in range(LOCALISE_DIRECTIONS):
                tests.append(Direction(group.name, number, lo, hi,
                                       ((lo, hi, (options.seed, 10_000 + position, number), hi - lo),),
                                       options.distribution or SIGNS))
                number += 1
        if engine.estimate(spent + 2 * len(tests)) > defaults.ESCALATE_SECONDS:
            break
        ev = engine.directions(tests)
        spent += ev.n_evaluations
        wrong_test = ((relative_errors(ev.numeric, ev.analytic) >= options.bounds.warn)
                      & (np.abs(ev.numeric - ev.analytic) > 10 * rounding) & ~ev.kinks)
        wrong = [h for h, w in zip(halves, wrong_test.reshape(len(halves), LOCALISE_DIRECTIONS).any(axis=1)) if w]
        if not wrong or len(leaves) + len(wrong) > LOCALISE_BLOCKS:
            break
        blocks = leaves + wrong
    return np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in blocks]), spent
