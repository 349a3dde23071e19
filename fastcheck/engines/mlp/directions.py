"""Random directions through the built-in MLP: stacked change propagation of each direction's steps.

The steps and the draws are :mod:`fastcheck.core.directions`'; this module cuts them
into the groups' shapes and evaluates them with :mod:`fastcheck.engines.mlp.stacked`.
Sign directions over whole groups keep their weight steps factored, ``h a b^T``
(:class:`fastcheck.engines.mlp.rankone.RankOne`), when ``theta +- h`` is exact; other
directions (Gaussian ones, escalation's blocks, a group where a sum would round) take
dense steps.
"""

from __future__ import annotations

import numpy as np

from ...core.directions import (
    GLOBAL,
    SIGNS,
    SignSteps,
    Steps,
    _draw_all,
    direction_steps,
    part_rows,
    sign_steps,
    vouch_for_spans,
)
from ...core.layout import Layout
from ...core.limits import DEFAULT_MAX_MEMORY
from ...core.results import DirectionEvaluations
from ...core.threads import blas_limited
from .rankone import RankOne
from .stacked import cost_changes, symmetric_cost_changes

__all__ = ["mlp_evaluate_directions"]


def _group_views(steps: np.ndarray, rows, groups, start: int) -> dict[str, np.ndarray]:
    """``steps[rows]`` (directions over ``theta[start:start + width]``) cut into the groups' shapes.

    A group the span covers only in part (a block of it) gets zeros outside the span.
    """
    stop, out = start + steps.shape[1], {}
    for g in groups:
        if g.start >= start and g.stop <= stop:
            out[g.name] = steps[rows, g.start - start:g.stop - start].reshape(-1, *g.shape)
            continue
        part = steps[rows, max(g.start, start) - start:min(g.stop, stop) - start]
        full = np.zeros((part.shape[0], g.size))
        full[:, max(g.start, start) - g.start:min(g.stop, stop) - g.start] = part
        out[g.name] = full.reshape(-1, *g.shape)
    return out


def _copy_rows(draws: np.ndarray, rows: list, start: int, stop: int) -> np.ndarray:
    """A copy of ``draws[rows, start:stop]`` (a block copy where the rows follow each other: faster than a gather)."""
    if rows == list(range(rows[0], rows[-1] + 1)):
        return draws[rows[0]:rows[-1] + 1, start:stop].copy()
    return draws[rows, start:stop]


def _whole_groups(direction, spans: dict) -> bool:
    """Whether each part of a sign ``direction`` is a whole group's rank-one pattern (not a block of one);
    ``spans`` maps each group's ``(start, stop)`` to its pattern's rows."""
    return direction.kind == SIGNS and all(spans.get((start, stop)) == rows for start, stop, _, rows in direction.parts)


def _factored_views(steps: SignSteps, layout: Layout) -> dict:
    """The steps of sign directions by group: :class:`RankOne` for a weight matrix, dense for a column of biases."""
    by_start = {g.start: g for g in layout.groups}
    out = {}
    for p, (start, *_) in enumerate(steps.factors[0]):
        g = by_start[start]
        left = steps.steps[:, None] * np.stack([parts[p][2] for parts in steps.factors])  # h a: a few bits, exact
        right = np.stack([parts[p][3] for parts in steps.factors])
        if right.shape[1] > 1 and left.shape[1] > 1:
            out[g.name] = RankOne(left, right)
        else:
            out[g.name] = (left[:, :, None] * right[:, None, :]).reshape(-1, *g.shape)
    return out


class _Run:
    """One call's results, filled chunk by chunk: ``analytic``, ``numeric``, ``kinks``."""

    def __init__(self, base, layout: Layout, theta, analytic, directions, eps, max_memory):
        self.base, self.layout, self.theta, self.grad, self.directions = base, layout, theta, analytic, directions
        self.eps, self.max_memory = eps, max_memory
        k = len(directions)
        self.an, self.num, self.kinks = np.empty(k), np.empty(k), np.zeros(k, dtype=bool)
        self.done = np.zeros(k, dtype=bool)
        self.changes = 3 * 8 * base.X.shape[1] * sum(base.net.layers[1:])  # bytes of stacked changes per perturbation

    def chunks(self, members: list, size: int) -> list:
        """``members`` in chunks whose steps (``size`` entries each) and stacked changes fit ``max_memory``."""
        per_chunk = max(1, int(self.max_memory // (16 * size + 2 * self.changes)))
        return [members[c:c + per_chunk] for c in range(0, len(members), per_chunk)]

    def pairs(self, members: np.ndarray, views: dict) -> None:
        """Symmetric steps, each pair of signs as one perturbation."""
        plus, minus, crossed = symmetric_cost_changes(self.base, views)
        self.num[members] = (plus - minus) / (2.0 * self.eps)
        self.kinks[members] = crossed

    def steps(self, members: list, draws: np.ndarray | None = None) -> Steps:
        return direction_steps(self.theta, self.grad, [self.directions[j] for j in members], self.eps, draws=draws)

    def dense(self, members: list, steps: Steps, start: int) -> None:
        """Dense steps on ``theta[start:...]``: symmetric ones in pairs, the others sign by sign."""
        groups = [g for g in self.layout.groups if g.stop > start and g.start < start + steps.plus.shape[1]]
        members = np.asarray(members)
        self.an[members] = steps.analytic
        sym = np.flatnonzero(steps.symmetric)
        if sym.size:
            rows = slice(None) if sym.size == len(members) else sym
            self.pairs(members[sym], _group_views(steps.plus, rows, groups, start))
        plain = np.flatnonzero(~steps.symmetric)
        if plain.size:  # both signs stacked
            stacked = np.concatenate([steps.plus[plain], -steps.minus[plain]])
            change, crossed = cost_changes(self.base, _group_views(stacked, slice(None), groups, start))
            n = plain.size
            self.num[members[plain]] = (change[:n] - change[n:]) / (2.0 * self.eps)
            self.kinks[members[plain]] = crossed[:n] | crossed[n:]
        self.done[members] = True

    def signs(self) -> None:
        """The sign directions over whole groups, factored where ``theta +- h a b^T`` is exact.

        With one BLAS thread: the products are a few MB each, which a second thread
        speeds up by a fifth on an idle machine and slows down several times on a loaded
        one (its threads wait spinning), and one thread makes the numbers the same on
        every machine.
        """
        exact: dict = {}  # theta +- h a b^T exact on a span, decided once for every binade of h
        by_span: dict[tuple[int, int], list[int]] = {}
        spans = {(g.start, g.stop): part_rows(g.shape) for g in self.layout.groups}
        for j, d in enumerate(self.directions):
            if _whole_groups(d, spans):
                by_span.setdefault((d.start, d.stop), []).append(j)
        vouch_for_spans(self.theta, [self.directions[j] for members in by_span.values() for j in members], self.eps,
                        exact)
        with blas_limited(1):
            for members in by_span.values():
                for chunk in self.chunks(members, 0):
                    self._signs(chunk, exact)

    def _signs(self, chunk: list, exact: dict) -> None:
        factored = sign_steps(self.theta, self.grad, [self.directions[j] for j in chunk], self.eps, exact)
        if factored is None:  # a sum that may round: the plain steps, dense
            self.dense(chunk, self.steps(chunk), self.directions[chunk[0]].start)
            return
        self.an[chunk] = factored.analytic
        self.pairs(np.asarray(chunk), _factored_views(factored, self.layout))
        self.done[chunk] = True

    def shared_draws(self) -> None:
        """Gaussian global directions, drawn once, and the groups' directions drawn from the same numbers."""
        directions, layout, done = self.directions, self.layout, self.done
        by_part = {d.parts[0]: j for j, d in enumerate(directions) if len(d.parts) == 1 and not done[j]}
        for chunk in self.chunks([j for j, d in enumerate(directions) if d.group == GLOBAL and not done[j]],
                                 layout.n_params):
            draws = np.empty((len(chunk), layout.n_params))
            _draw_all([directions[j] for j in chunk], draws)
            for g in layout.groups:
                found = [(row, by_part[part]) for row, j in enumerate(chunk) for part in directions[j].parts
                         if part in by_part and part[:2] == (g.start, g.stop) and not done[by_part[part]]]
                if found:
                    rows, members = map(list, zip(*found))
                    self.dense(members, self.steps(members, _copy_rows(draws, rows, g.start, g.stop)), g.start)
            self.dense(chunk, self.steps(chunk, draws), 0)

    def rest(self) -> None:
        """What is left (a block of a group, Gaussian directions of one group), span by span."""
        by_span: dict[tuple[int, int], list[int]] = {}
        for j in np.flatnonzero(~self.done):
            by_span.setdefault((self.directions[j].start, self.directions[j].stop), []).append(int(j))
        for (start, stop), members in by_span.items():
            for chunk in self.chunks(members, stop - start):
                self.dense(chunk, self.steps(chunk), start)


def mlp_evaluate_directions(base, layout: Layout, theta: np.ndarray, analytic: np.ndarray, directions: list,
                            eps: float, *, max_memory: int = DEFAULT_MAX_MEMORY) -> DirectionEvaluations:
    """Directional central differences of the built-in MLP by stacked change propagation.

    Directions are evaluated in chunks of at most about ``max_memory`` bytes of steps and
    stacked changes, each pair of signs as one perturbation where the steps are
    symmetric (see :mod:`fastcheck.engines.mlp.stacked`). Sign directions over whole
    groups keep their weight steps factored (one BLAS thread); the Gaussian draws of
    global directions are made once and also serve the groups' directions of the same
    numbers.
    """
    run = _Run(base, layout, theta, analytic, directions, eps, max_memory)
    run.signs()
    run.shared_draws()
    run.rest()
    return DirectionEvaluations(directions, run.an, run.num, run.kinks, 2 * len(directions))
