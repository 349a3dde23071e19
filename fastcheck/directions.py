"""Random-direction checks: compare v . d-theta with (J(theta + eps v) - J(theta - eps v)) / 2 eps.

Directions are drawn per group (a unit vector supported on one group, for each group)
and globally (over all of theta), so a small group such as ``b2`` is checked on its own
instead of being drowned by a large one in a single global projection. Each direction
is drawn from its own seeded stream, ``default_rng([seed, group position, number])``,
so a direction does not depend on how many others are drawn or in which chunk.

The analytic side uses the step actually taken: with ``theta+ = fl(theta + eps v)`` and
``theta- = fl(theta - eps v)``, it compares ``u . d-theta`` where
``u = (theta+ - theta-) / 2 eps``, so rounding of the perturbed parameters is not
mistaken for a gradient error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .layout import Layout

__all__ = ["Direction", "DirectionEvaluations", "draw_directions", "evaluate_directions",
           "mlp_evaluate_directions", "GLOBAL"]

#: Name of the pseudo-group of directions over all of theta.
GLOBAL = "(all)"


@dataclass(frozen=True)
class Direction:
    """A unit direction supported on ``theta[start:stop]``; ``group`` is a name or GLOBAL."""

    group: str
    number: int
    start: int
    stop: int
    seed: tuple[int, int, int]

    def vector(self) -> np.ndarray:
        v = np.random.default_rng(list(self.seed)).standard_normal(self.stop - self.start)
        return v / np.linalg.norm(v)


@dataclass
class DirectionEvaluations:
    """Per direction: the group, analytic ``u . grad``, numeric central difference, kink flag."""

    directions: list
    analytic: np.ndarray
    numeric: np.ndarray
    kinks: np.ndarray
    n_evaluations: int


def draw_directions(layout: Layout, n_directions: int, seed: int, *, per_group: bool = True,
                    overall: bool = True) -> list[Direction]:
    """``n_directions`` directions for every group (if ``per_group``) and over all of theta (if ``overall``)."""
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise InputError(f"`n_directions`={n_directions!r} must be a positive integer (e.g. 16)")
    out = []
    if per_group and not (layout.flat and overall):
        for position, g in enumerate(layout.groups):
            out += [Direction(g.name, j, g.start, g.stop, (seed, position + 1, j)) for j in range(n_directions)]
    if overall:
        out += [Direction(GLOBAL, j, 0, layout.n_params, (seed, 0, j)) for j in range(n_directions)]
    return out


def _steps(theta: np.ndarray, d: Direction, eps: float):
    """The perturbed slices and the effective direction u of direction ``d``."""
    v = d.vector()
    base = theta[d.start:d.stop]
    plus, minus = base + eps * v, base - eps * v
    return plus, minus, (plus - minus) / (2.0 * eps)


def evaluate_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list,
                        eps: float) -> DirectionEvaluations:
    """Directional central differences by full evaluations of a user cost."""
    k = len(directions)
    an, num = np.empty(k), np.empty(k)
    work = theta.copy()
    for j, d in enumerate(directions):
        plus, minus, u = _steps(theta, d, eps)
        an[j] = u @ analytic[d.start:d.stop]
        where = f"direction {d.number} of {d.group}"
        work[d.start:d.stop] = plus
        cost_plus = objective.evaluate(work, where=where + " (+eps)")
        work[d.start:d.stop] = minus
        cost_minus = objective.evaluate(work, where=where + " (-eps)")
        work[d.start:d.stop] = theta[d.start:d.stop]
        num[j] = (cost_plus - cost_minus) / (2.0 * eps)
    return DirectionEvaluations(directions, an, num, np.zeros(k, dtype=bool), 2 * k)


def mlp_evaluate_directions(base, layout: Layout, theta: np.ndarray, analytic: np.ndarray, directions: list,
                            eps: float, *, max_memory: int = 256 * 2**20) -> DirectionEvaluations:
    """Directional central differences of the built-in MLP by stacked change propagation.

    Directions are evaluated in chunks, both signs stacked, each chunk holding at most
    ``max_memory`` bytes of perturbations; see :mod:`fastcheck.stacked`.
    """
    from .stacked import cost_changes

    k = len(directions)
    an, num, kinks = np.empty(k), np.empty(k), np.zeros(k, dtype=bool)
    by_span: dict[tuple[int, int], list[int]] = {}
    for j, d in enumerate(directions):
        by_span.setdefault((d.start, d.stop), []).append(j)
    for (start, stop), members in by_span.items():
        groups = [g for g in layout.groups if g.start >= start and g.stop <= stop]
        per_chunk = max(1, int(max_memory // (16 * (stop - start) + 1)))
        for c in range(0, len(members), per_chunk):
            chunk = members[c:c + per_chunk]
            n = len(chunk)
            deltas = {g.name: np.empty((2 * n, *g.shape)) for g in groups}
            for row, j in enumerate(chunk):
                plus, minus, u = _steps(theta, directions[j], eps)
                an[j] = u @ analytic[start:stop]
                for g in groups:
                    part = slice(g.start - start, g.stop - start)
                    original = theta[g.start:g.stop]
                    deltas[g.name][row] = (plus[part] - original).reshape(g.shape)
                    deltas[g.name][n + row] = (minus[part] - original).reshape(g.shape)
            change, crossed = cost_changes(base, deltas)
            num[chunk] = (change[:n] - change[n:]) / (2.0 * eps)
            kinks[chunk] = crossed[:n] | crossed[n:]
    return DirectionEvaluations(directions, an, num, kinks, 2 * k)
