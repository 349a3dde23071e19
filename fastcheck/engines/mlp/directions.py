"""Random directions through the built-in MLP: stacked change propagation of each direction's steps.

The steps and the draws are :mod:`fastcheck.core.directions`'; this module cuts them
into the groups' shapes and evaluates them with :mod:`fastcheck.engines.mlp.stacked`.
"""

from __future__ import annotations

import numpy as np

from ...core.directions import GLOBAL, Steps, _draw_all, direction_steps
from ...core.layout import Layout
from ...core.limits import DEFAULT_MAX_MEMORY
from ...core.results import DirectionEvaluations
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


def mlp_evaluate_directions(base, layout: Layout, theta: np.ndarray, analytic: np.ndarray, directions: list,
                            eps: float, *, max_memory: int = DEFAULT_MAX_MEMORY) -> DirectionEvaluations:
    """Directional central differences of the built-in MLP by stacked change propagation.

    Directions are evaluated in chunks of at most about ``max_memory`` bytes of steps and
    stacked changes, each pair of signs as one perturbation where the steps are
    symmetric (see :mod:`fastcheck.engines.mlp.stacked`). The Gaussian draws of global directions
    are made once and also serve the groups' directions of the same numbers.
    """
    k = len(directions)
    an, num, kinks = np.empty(k), np.empty(k), np.zeros(k, dtype=bool)
    changes = 3 * 8 * base.X.shape[1] * sum(base.net.layers[1:])  # bytes of stacked changes per perturbation

    def evaluate(members, steps: Steps, start: int) -> None:
        groups = [g for g in layout.groups if g.stop > start and g.start < start + steps.plus.shape[1]]
        members = np.asarray(members)
        an[members] = steps.analytic
        sym = np.flatnonzero(steps.symmetric)
        if sym.size:  # each pair of signs as one perturbation
            rows = slice(None) if sym.size == len(members) else sym
            plus, minus, crossed = symmetric_cost_changes(base, _group_views(steps.plus, rows, groups, start))
            num[members[sym]] = (plus - minus) / (2.0 * eps)
            kinks[members[sym]] = crossed
        plain = np.flatnonzero(~steps.symmetric)
        if plain.size:  # both signs stacked
            stacked = np.concatenate([steps.plus[plain], -steps.minus[plain]])
            change, crossed = cost_changes(base, _group_views(stacked, slice(None), groups, start))
            n = plain.size
            num[members[plain]] = (change[:n] - change[n:]) / (2.0 * eps)
            kinks[members[plain]] = crossed[:n] | crossed[n:]

    def chunks(members, size):
        per_chunk = max(1, int(max_memory // (16 * size + 2 * changes)))
        return [members[c:c + per_chunk] for c in range(0, len(members), per_chunk)]

    by_part = {(d.start, d.stop, d.parts[0][2]): j for j, d in enumerate(directions) if len(d.parts) == 1}
    done = np.zeros(k, dtype=bool)
    for chunk in chunks([j for j, d in enumerate(directions) if d.group == GLOBAL], layout.n_params):
        draws = np.empty((len(chunk), layout.n_params))
        _draw_all([directions[j] for j in chunk], draws)
        for g in layout.groups:  # the groups' directions drawn from the same numbers
            pairs = [(row, by_part[part]) for row, j in enumerate(chunk) for part in directions[j].parts
                     if part in by_part and part[:2] == (g.start, g.stop) and not done[by_part[part]]]
            if pairs:
                rows, members = map(list, zip(*pairs))
                evaluate(members, direction_steps(theta, analytic, [directions[j] for j in members], eps,
                                                  draws=_copy_rows(draws, rows, g.start, g.stop)), g.start)
                done[members] = True
        evaluate(chunk, direction_steps(theta, analytic, [directions[j] for j in chunk], eps, draws=draws), 0)
        done[chunk] = True
    by_span: dict[tuple[int, int], list[int]] = {}
    for j in np.flatnonzero(~done):
        by_span.setdefault((directions[j].start, directions[j].stop), []).append(int(j))
    for (start, stop), members in by_span.items():
        for chunk in chunks(members, stop - start):
            evaluate(chunk, direction_steps(theta, analytic, [directions[j] for j in chunk], eps), start)
    return DirectionEvaluations(directions, an, num, kinks, 2 * k)
