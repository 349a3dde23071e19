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

__all__ = ["Plan", "what_to_check", "make_plan", "fit_budget"]


@dataclass
class Plan:
    """What a check will do before it runs: see :func:`fastcheck.plan`.

    Attributes
    ----------
    mode : str
    engine : str
    n_coordinates : int
        Coordinates checked one by one.
    n_directions : int
        Random directions (per group and global, in all).
    n_evaluations : int
        Cost evaluations, or their equivalent for the batched engine.
    estimated_seconds : float
        From a timing of this machine (a sample run of the engine, or of the cost).
    per_group : dict of str -> int
        Coordinates or directions checked in each group.
    basis : str
        What the estimate rests on.
    """

    mode: str
    engine: str
    n_coordinates: int
    n_directions: int
    n_evaluations: int
    estimated_seconds: float
    per_group: dict = field(default_factory=dict)
    basis: str = ""

    def __str__(self) -> str:
        what = (f"{self.n_directions} directions" if self.mode == "directions"
                else f"{self.n_coordinates:,} coordinates")
        groups = ", ".join(f"{k} {v:,}" for k, v in self.per_group.items())
        return (f"plan: mode {self.mode}, {self.engine} engine: {what} ({groups}), "
                f"{self.n_evaluations:,} cost evaluations, about {self.estimated_seconds:.3g} s"
                + (f" (from {self.basis})" if self.basis else ""))


def what_to_check(layout: Layout, options: CheckOptions):
    """(indices or None, directions or None) for the mode."""
    if options.mode == "full":
        return np.arange(layout.n_params, dtype=np.int64), None
    if options.mode == "subset":
        return stratified_subset(layout, fraction=options.fraction, n_samples=options.n_samples,
                                 min_per_group=options.min_per_group, seed=options.seed), None
    return None, draw_directions(layout, options.n_directions, options.seed)


def make_plan(layout: Layout, engine: Engine, options: CheckOptions) -> Plan:
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
    seconds = engine.estimate(n_evaluations)  # estimates count 2 per coordinate, whatever the stencil
    if n_coordinates:
        n_evaluations = options.stencil * n_coordinates  # the 4-point stencil evaluates 4 points
    basis = engine.basis() if engine.basis else ""
    return Plan(options.mode, engine.name, n_coordinates, len(directions or ()), n_evaluations, seconds, per_group,
                basis)


def fit_budget(layout: Layout, engine: Engine, options: CheckOptions, started: float) -> CheckOptions:
    """Turn a full check that would overrun ``options.budget`` into the widest subset that fits.

    The time already spent (validation, timing the engine) is charged to the budget.
    """
    full = engine.estimate(2 * layout.n_params)
    budget = options.budget - (time.perf_counter() - started)
    if full <= budget:
        return options
    fraction = max(budget, 0.0) / full
    for _ in range(60):  # fixed costs and the per-group minimum add time: shrink until it fits
        sizes = subset_sizes(layout, fraction=max(fraction, 1e-12), min_per_group=options.min_per_group)
        if engine.estimate(2 * sum(sizes)) <= budget or fraction < 1e-9:
            break
        fraction *= 0.8
    # a subset takes no budget (the mode rules): the caller records the budget it was fitted to
    return options.but(budget=None, mode="subset", fraction=max(fraction, 1e-12))  # the per-group minimum stays
