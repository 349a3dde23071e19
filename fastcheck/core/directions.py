"""Random-direction checks: compare v . d-theta with (J(theta + eps v) - J(theta - eps v)) / 2 eps.

Directions are drawn per group (a unit vector supported on one group, for each group)
and globally (over all of theta), so a small group such as ``b2`` is checked on its own
instead of being drowned by a large one in a single global projection. A group's
direction j is drawn from its own seeded stream, keyed by ``(seed, group position + 1, j)``,
and direction j over all of theta from the groups' streams j together (the same numbers,
scaled over all of theta), so a direction does not depend on how many others are drawn
or in which chunk. Escalation's bisection draws directions on blocks of a group the same
way, from streams of their own.

Two distributions (``kind``): :data:`SIGNS`, the default, a rank-one pattern of random
signed magnitudes per group (:mod:`fastcheck.core.signs`: ``h a b^T`` over the group's
rows and the rest of its axes, every entry of a and b a random sign times 1 to 2 in
sixteenths), and :data:`GAUSSIAN`, standard normals
(:mod:`fastcheck.core.gaussian`), isotropic over the group.

Steps are symmetric and exact. The step of an entry is the one its rounded perturbed
value takes, ``s = fl(theta + eps v) - theta``; where ``theta + s`` and ``theta - s`` are
both exact in float64 (TwoSum says so), ``theta+ = theta + s`` and ``theta- = theta - s``
exactly, the analytic side compares ``u . d-theta`` with ``u = s / eps`` (rounding of the
perturbed parameters is not mistaken for a gradient error), and an engine may compute
the change a linear layer sees for ``-s`` as the negative of the one for ``+s``. A
direction with an entry where that fails (next to a power of two, or far smaller than
its step) takes the plain rounded steps instead, ``fl(theta + eps v) - theta`` and
``theta - fl(theta - eps v)``, with ``u`` their mean over ``eps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .gaussian import fill_streams, standard_normal, stream_key
from .layout import Layout
from .limits import available_memory
from .signs import exactly_shifted, sign_factors, sign_step, step_binade

__all__ = ["Direction", "Steps", "direction_steps", "draw_directions", "require_directions_fit", "GLOBAL",
           "DIRECTION_BYTES", "PART_BYTES", "SIGNS", "GAUSSIAN", "KINDS", "part_rows", "SignSteps", "sign_steps",
           "vouch_for_spans"]

#: Name of the pseudo-group of directions over all of theta.
GLOBAL = "(all)"
#: The distributions of directions: rank-one random signs (the default), standard normals.
SIGNS, GAUSSIAN = "signs", "gaussian"
KINDS = (SIGNS, GAUSSIAN)
#: Directions whose steps together exceed this many entries have them computed by a numba kernel
#: (fewer: numpy, without loading numba).
NUMBA_STEPS = 200_000
#: Bytes a direction takes at the least while a check holds it (its description, its numbers, its
#: row of the report; about 300 to 800 measured), and per group its draw spans (its seeds): an
#: estimate that errs low, so that only a count that cannot fit is refused.
DIRECTION_BYTES, PART_BYTES = 300, 150


def part_rows(shape: tuple) -> int:
    """The rows of a group's rank-one sign pattern: its first axis, or every entry of a vector."""
    return int(shape[0]) if len(shape) >= 2 else int(np.prod(shape, dtype=np.int64))


@dataclass(frozen=True)
class Direction:
    """A unit direction supported on ``theta[start:stop]``; ``group`` is a name or GLOBAL.

    Its draw is made of ``parts``, ``(start, stop, seed, rows)``: each slice of theta
    drawn from the stream ``seed``, as a rank-one sign pattern of ``rows`` rows
    (``kind`` :data:`SIGNS`, :func:`fastcheck.core.signs.sign_factors`) or as standard
    normals (:data:`GAUSSIAN`, :func:`fastcheck.core.gaussian.standard_normal`). A
    group's direction has one part; a global direction has one per group, with that
    group's seeds, so direction j over all of theta is drawn from the same numbers as
    the groups' directions j (scaled over all of theta instead of over each group):
    drawn once, used twice.
    """

    group: str
    number: int
    start: int
    stop: int
    parts: tuple[tuple[int, int, tuple[int, int, int], int], ...]
    kind: str = SIGNS

    def draw(self, out: np.ndarray | None = None) -> np.ndarray:
        """The draw (not normalized) of this direction, written into ``out`` if given: signs or normals."""
        out = np.empty(self.stop - self.start) if out is None else out
        for start, stop, seed, rows in self.parts:
            piece = out[start - self.start:stop - self.start]
            if self.kind == SIGNS:
                a, b = sign_factors(stream_key(seed), rows, (stop - start) // rows)
                piece[:] = np.outer(a, b).ravel()
            else:
                standard_normal(stream_key(seed), piece)
        return out

    def factors(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(start, stop, a, b)`` per part of a :data:`SIGNS` direction: the part's pattern is ``a b^T``."""
        return [(start, stop, *sign_factors(stream_key(seed), rows, (stop - start) // rows))
                for start, stop, seed, rows in self.parts]

    def step(self, eps: float) -> float:
        """The ``h`` of a :data:`SIGNS` direction, its steps ``h a b^T`` (:func:`fastcheck.core.signs.sign_step`)."""
        return sign_step(eps, math.sqrt(sum((a @ a) * (b @ b) for _, _, a, b in self.factors())))

    def vector(self) -> np.ndarray:
        """The unit direction (the draw over its norm)."""
        v = self.draw()
        return v / np.linalg.norm(v)


@dataclass
class Steps:
    """Steps of k directions on one span: ``theta+ = theta + plus[j]``, ``theta- = theta - minus[j]``.

    ``minus is plus`` when every direction's steps are symmetric; ``symmetric[j]`` says
    whether direction j's are. ``analytic[j] = u_j . grad`` with ``u_j = (plus[j] +
    minus[j]) / 2 eps``.
    """

    plus: np.ndarray
    minus: np.ndarray
    symmetric: np.ndarray
    analytic: np.ndarray


def _draw_all(directions: list, out: np.ndarray) -> None:
    """Each direction's draw into a row of ``out`` (C-contiguous); the Gaussian streams in one call."""
    tasks = [(row, part) for row, d in enumerate(directions) if d.kind == GAUSSIAN for part in d.parts]
    for row, d in enumerate(directions):
        if d.kind == SIGNS:
            d.draw(out[row])
    if not tasks:
        return
    keys = np.array([stream_key(seed) for _, (_, _, seed, _) in tasks], dtype=np.uint64)
    rows = np.array([row for row, _ in tasks], dtype=np.int64)
    starts = np.array([start - directions[row].start for row, (start, *_) in tasks], dtype=np.int64)
    stops = np.array([stop - directions[row].start for row, (_, stop, *_) in tasks], dtype=np.int64)
    fill_streams(out, keys, rows, starts, stops)


def _symmetric_steps_numpy(base: np.ndarray, steps: np.ndarray, scales: np.ndarray, inexact: np.ndarray) -> None:
    """:func:`fastcheck.core.steps_kernel.symmetric_steps` in numpy, in place on ``steps``, operation for operation."""
    s = (base + steps * scales[:, None]) - base
    p = base + s
    p_b = p - base
    q = base - s
    q_b = q - base
    bad = ((base - (p - p_b)) + (s - p_b) != 0.0) | ((base - (q - q_b)) + (-s - q_b) != 0.0)
    inexact[:] = bad.sum(axis=1)
    steps[:] = s


def _exact_steps(base: np.ndarray, directions: list, steps: np.ndarray,
                 eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale the draws ``steps`` (k, span) in place to exact symmetric steps where they exist.

    Returns which rows have them, and each draw's scale.

    A sign direction's step is ``h`` times its pattern, exact where ``theta +-`` any such
    step is at every entry (:func:`~fastcheck.core.signs.exactly_shifted`, decided once per
    binade of ``h``). A Gaussian one's is
    the rounded step ``fl(theta + eps v) - theta``, kept where TwoSum shows ``theta +- s``
    exact (the numba kernel for large draws, its numpy twin for small ones).
    """
    k = len(directions)
    if all(d.kind == SIGNS for d in directions):
        scales = np.array([d.step(eps) for d in directions])
        binades = [step_binade(h) for h in scales.tolist()]
        exact = _exact_binades(base, set(binades))
        steps *= scales[:, None]  # h a_i b_j: products of a few bits, exact
        return np.array([exact[b] for b in binades], dtype=bool), scales
    if any(d.kind == SIGNS for d in directions):
        raise ValueError("direction_steps takes directions of one kind at a time")
    # row by row, as u . grad below: a stack's einsum may sum a row in another order than the row's own
    scales = eps / np.sqrt(np.array([np.einsum("i,i->", row, row) for row in steps]))
    inexact = np.empty(k, dtype=np.int64)
    if steps.size > NUMBA_STEPS:
        from .steps_kernel import symmetric_steps  # lazy: numba loads only for large draws

        symmetric_steps(base, steps, scales, steps, inexact)  # in place: each entry is read, then written
    else:  # the same arithmetic in numpy: a small check need not load numba
        _symmetric_steps_numpy(base, steps, scales, inexact)
    return inexact == 0, scales


def direction_steps(theta: np.ndarray, grad: np.ndarray, directions: list, eps: float,
                    draws: np.ndarray | None = None, analytic: bool = True) -> Steps:
    """The exact steps of ``directions`` (all on the same span of ``theta``, of one kind), and ``u . grad``.

    ``draws``, if given, holds the directions' draws (k, span size); it is overwritten
    with the steps. A direction without exact symmetric steps takes the plain rounded
    ones, ``fl(theta + s) - theta`` and ``theta - fl(theta - s)``. ``analytic=False``
    skips ``u . grad`` (left empty).
    """
    start, stop = directions[0].start, directions[0].stop
    k = len(directions)
    if draws is None:
        draws = np.empty((k, stop - start))
        _draw_all(directions, draws)
    steps = draws
    base = np.ascontiguousarray(theta[start:stop])
    symmetric, scales = _exact_steps(base, directions, steps, eps)
    plus, minus = steps, steps
    if not symmetric.all():
        minus = steps.copy()
        for j in np.flatnonzero(~symmetric):
            step = directions[j].draw() * scales[j]
            plus[j] = (base + step) - base
            minus[j] = base - (base - step)
    if not analytic:
        return Steps(plus, minus, symmetric, np.empty(0))
    g = grad[start:stop]  # row by row: the same rounding however directions are chunked
    analytic = np.empty(k)
    for j, d in enumerate(directions):
        if d.kind == SIGNS and symmetric[j]:  # an exact sign step: the factored sum, as every engine takes it
            analytic[j] = _sign_analytic(scales[j], d.factors(), grad, eps)
        elif minus is plus:  # x + x is 2x exactly: one product per direction, the same numbers
            analytic[j] = 2.0 * (plus[j] @ g) / (2.0 * eps)
        else:
            analytic[j] = (plus[j] @ g + minus[j] @ g) / (2.0 * eps)
    return Steps(plus, minus, symmetric, analytic)


@dataclass
class SignSteps:
    """Exact steps of k :data:`SIGNS` directions on one span, factored: part p of direction j is ``h_j a b^T``.

    ``factors[j]`` is direction j's ``(start, stop, a, b)`` per part, ``steps[j]`` its
    ``h_j``; ``theta +- h_j a b^T`` is exact in float64 at every entry, so ``theta+ =
    theta + S_j`` and ``theta- = theta - S_j`` with ``S_j`` the pattern times ``h_j``, and
    ``analytic[j] = S_j . grad / eps``.
    """

    steps: np.ndarray
    factors: list
    analytic: np.ndarray


def _exact_binades(base: np.ndarray, binades: set) -> dict:
    """Per binade of a step, whether ``base`` shifts exactly by every sign step of it: one pass for them all (the
    usual case), else one per binade."""
    if exactly_shifted(base, min(binades), max(binades)):
        return dict.fromkeys(binades, True)
    return {b: exactly_shifted(base, b) for b in binades}


def vouch_for_spans(theta: np.ndarray, directions: list, eps: float, exact: dict) -> None:
    """Fill ``exact`` (as :func:`sign_steps` keeps it) for the parts of :data:`SIGNS` ``directions``: each part's
    span decided for all the binades of the steps that reach it at once (:func:`_exact_binades`)."""
    binades: dict[tuple[int, int], set] = {}
    for d in directions:
        b = step_binade(d.step(eps))
        for start, stop, _, _ in d.parts:
            binades.setdefault((start, stop), set()).add(b)
    for (start, stop), found in binades.items():
        exact.update({(start, stop, b): ok for b, ok in _exact_binades(theta[start:stop], found).items()})


def sign_steps(theta: np.ndarray, grad: np.ndarray, directions: list, eps: float,
               exact: dict | None = None) -> SignSteps | None:
    """The factored exact steps of :data:`SIGNS` ``directions`` (on one span), or None where they are not exact.

    ``theta +- h a_i b_j`` is checked once per part's span and binade of ``h`` (``exact``, a
    dict kept by the caller across calls, remembers it); a part with an entry where a sum
    may round sends the caller to :func:`direction_steps` (plain rounded steps). ``u .
    grad`` is summed part by part as ``h a^T G b``, G the part's gradient as a matrix.
    """
    exact = {} if exact is None else exact
    steps = np.array([d.step(eps) for d in directions])
    factors = [d.factors() for d in directions]
    for h, parts in zip(steps, factors):
        for start, stop, _, _ in parts:
            key = (start, stop, step_binade(h))
            if key not in exact:
                exact[key] = exactly_shifted(theta[start:stop], key[2])
            if not exact[key]:
                return None
    analytic = np.array([_sign_analytic(h, parts, grad, eps) for h, parts in zip(steps, factors)])
    return SignSteps(steps, factors, analytic)


def _sign_analytic(h: float, factors: list, grad: np.ndarray, eps: float) -> float:
    """``u . grad`` of an exact sign step ``h a b^T`` per part: ``2 h sum a^T G b / 2 eps``, G each part's gradient."""
    return 2.0 * (h * sum(a @ (grad[start:stop].reshape(a.size, b.size) @ b) for start, stop, a, b in factors)) \
        / (2.0 * eps)


def _counts(layout: Layout, per_group: bool, overall: bool) -> tuple[int, int]:
    """Directions per unit of ``n_directions``: (over one group, over all of theta)."""
    return (len(layout.groups) if per_group and not (layout.flat and overall) else 0), int(overall)


def require_directions_fit(layout: Layout, n_directions: int, where: str = "`n_directions`", *,
                           per_group: bool = True, overall: bool = True) -> None:
    """Refuse ``n_directions`` that is not a positive integer, or whose directions cannot fit in memory.

    The bytes are estimated from the number of groups before anything is drawn
    (:data:`DIRECTION_BYTES` per direction, :data:`PART_BYTES` per group a direction
    spans) and compared with the memory available
    (:func:`~fastcheck.core.limits.available_memory`).
    """
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise InputError(f"{where}={n_directions!r} must be a positive integer (e.g. 16)")
    groups, overall_ = _counts(layout, per_group, overall)
    per_unit = groups * (DIRECTION_BYTES + PART_BYTES) + overall_ * (DIRECTION_BYTES + PART_BYTES * len(layout.groups))
    available = available_memory()
    if available is not None and int(n_directions) * per_unit > available:
        fits = max(1, available // per_unit)
        raise InputError(f"{where}={n_directions!r}: {int(n_directions) * (groups + overall_):,} directions would "
                         f"take at least {_size(int(n_directions) * per_unit)}, more than the {_size(available)} "
                         f"available; at most about {fits:,} fit (16 is the default, and a few hundred are plenty)")


def _size(n: int) -> str:
    """``'419 GiB'``, ``'4.19 MiB'``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.3g} {unit}"
    return f"{n} bytes"


def draw_directions(layout: Layout, n_directions: int, seed: int, *, per_group: bool = True,
                    overall: bool = True, kind: str = SIGNS) -> list[Direction]:
    """``n_directions`` directions for every group (if ``per_group``) and over all of theta (if ``overall``).

    ``kind`` is the distribution, :data:`SIGNS` or :data:`GAUSSIAN`. Raises
    :class:`InputError` before drawing when ``n_directions`` is not a positive integer
    or cannot fit in memory (:func:`require_directions_fit`).
    """
    require_directions_fit(layout, n_directions, per_group=per_group, overall=overall)

    def parts(j):
        return tuple((g.start, g.stop, (seed, position + 1, j), part_rows(g.shape))
                     for position, g in enumerate(layout.groups))

    out = []
    if per_group and not (layout.flat and overall):
        for position, g in enumerate(layout.groups):
            # a group of one entry has one direction, +-e, whatever the draw: one checks it exactly (a coordinate's)
            count = n_directions if g.size > 1 else 1
            out += [Direction(g.name, j, g.start, g.stop, (parts(j)[position],), kind) for j in range(count)]
    if overall:
        out += [Direction(GLOBAL, j, 0, layout.n_params, parts(j), kind) for j in range(n_directions)]
    return out
