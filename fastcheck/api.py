"""The public entry points: :func:`check` and :func:`plan` for any cost, and their
built-in-MLP twins :func:`check_mlp` and :func:`plan_mlp`.

Both sides share one pipeline: validate, pick an engine, choose what to check (every
coordinate, a stratified subset or random directions), run, escalate flagged groups to
coordinate checks, build the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .core.directions import draw_directions
from .core.finite import DEFAULT_EPS, Bounds, relative_errors, validate_eps
from .core.layout import Layout
from .core.objective import CostObjective
from .core.results import DirectionEvaluations, Evaluations
from .core.selection import DEFAULT_MIN_PER_GROUP, stratified_subset, subset_sizes
from .engines.mlp.directions import mlp_evaluate_directions
from .engines.mlp.objective import MLPObjective
from .engines.reference import evaluate_directions, reference_engine
from .errors import InputError
from .report.model import GUARANTEE_FRACTION, Report, build_report

__all__ = ["check", "plan", "check_mlp", "plan_mlp", "Plan", "Prepared", "prepare_check", "prepare_mlp",
           "merge_evaluations", "MODES", "KINK_POLICIES"]

MODES = ("full", "subset", "directions")
KINK_POLICIES = ("exclude", "include")
#: Directions per group (and over all of theta) when ``n_directions`` is not given.
DEFAULT_DIRECTIONS = 16
#: Coordinates re-checked per flagged group when escalating, at most.
#: Escalation re-checks every entry of the flagged groups when the engine's estimate says
#: it takes at most this many seconds, else as many (at random) as fit.
ESCALATE_SECONDS = 30.0
#: ... but never fewer than this many entries of a group (or all of a smaller one).
ESCALATE_MIN = 1_000
DEFAULT_ESCALATE_BUDGET = None


@dataclass
class Plan:
    """What a check will do before it runs: see :func:`plan`.

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
    """

    mode: str
    engine: str
    n_coordinates: int
    n_directions: int
    n_evaluations: int
    estimated_seconds: float
    per_group: dict = field(default_factory=dict)

    def __str__(self) -> str:
        what = (f"{self.n_directions} directions" if self.mode == "directions"
                else f"{self.n_coordinates:,} coordinates")
        groups = ", ".join(f"{k} {v:,}" for k, v in self.per_group.items())
        return (f"plan: mode {self.mode}, {self.engine} engine: {what} ({groups}), "
                f"{self.n_evaluations:,} cost evaluations, about {self.estimated_seconds:.3g} s")


@dataclass
class _Engine:
    """How one kind of problem evaluates coordinates and directions, and how fast."""

    name: str
    coordinates: Callable[[np.ndarray], Evaluations]
    directions: Callable[[list], DirectionEvaluations]
    estimate: Callable[[int], float]  # seconds for n cost evaluations
    cost: float = float("nan")  # J(theta), for the rounding scale of central differences


@dataclass
class _Options:
    eps: float
    bounds: Bounds
    mode: str
    fraction: float | None
    n_samples: int | None
    n_directions: int | None
    min_per_group: int
    seed: int
    kinks: str
    escalate: bool
    escalate_budget: int | None
    budget: float | None

    def settings(self) -> dict:
        out = {"eps": self.eps, "mode": self.mode, "seed": self.seed, "kinks": self.kinks}
        if self.mode == "subset":
            out.update(fraction=self.fraction, n_samples=self.n_samples, min_per_group=self.min_per_group,
                       guarantee_fraction=GUARANTEE_FRACTION)
        if self.mode == "directions":
            out["n_directions"] = self.n_directions
        if self.mode != "full":
            out["escalate"] = self.escalate
        if self.budget is not None:
            out["budget"] = self.budget
        return out


def _options(eps, mode, fraction, n_samples, n_directions, min_per_group, seed, kinks, escalate,
             escalate_budget, budget, warn, fail) -> _Options:
    eps = validate_eps(eps)
    if mode not in MODES:
        raise InputError(f"`mode`={mode!r} is not one of {', '.join(map(repr, MODES))}")
    if kinks not in KINK_POLICIES:
        raise InputError(f"`kinks`={kinks!r} must be 'exclude' (the default) or 'include'")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"`seed`={seed!r} must be a non-negative integer")
    if mode != "subset" and (fraction is not None or n_samples is not None):
        raise InputError(f"`fraction` and `n_samples` go with mode='subset', not mode={mode!r}")
    if mode != "directions" and n_directions is not None:
        raise InputError(f"`n_directions` goes with mode='directions', not mode={mode!r}")
    if mode == "directions" and n_directions is None:
        n_directions = DEFAULT_DIRECTIONS
    if escalate_budget is not None and (isinstance(escalate_budget, bool) or
                                        not isinstance(escalate_budget, (int, np.integer)) or escalate_budget < 1):
        raise InputError(f"`escalate_budget`={escalate_budget!r} must be a positive integer (entries per group), "
                         f"or None for every entry that fits in {ESCALATE_SECONDS:g} s")
    if budget is not None:
        if mode != "full":
            raise InputError("`budget` picks the widest subset that fits: use it with mode='full' (the default)")
        if not (isinstance(budget, (int, float)) and budget > 0):
            raise InputError(f"`budget`={budget!r} must be a positive number of seconds")
    return _Options(eps, Bounds(warn=warn, fail=fail), mode, fraction, n_samples, n_directions, min_per_group, seed,
                    kinks, bool(escalate), None if escalate_budget is None else int(escalate_budget), budget)


# ---------------------------------------------------------------------- the pipeline
def _what_to_check(layout: Layout, opts: _Options):
    """(indices or None, directions or None) for the mode."""
    if opts.mode == "full":
        return np.arange(layout.n_params, dtype=np.int64), None
    if opts.mode == "subset":
        return stratified_subset(layout, fraction=opts.fraction, n_samples=opts.n_samples,
                                 min_per_group=opts.min_per_group, seed=opts.seed), None
    return None, draw_directions(layout, opts.n_directions, opts.seed)


def _plan(layout: Layout, engine: _Engine, opts: _Options) -> Plan:
    indices, directions = _what_to_check(layout, opts)
    if directions is not None:
        per_group: dict[str, int] = {}
        for d in directions:
            per_group[d.group] = per_group.get(d.group, 0) + 1
        n_evaluations, n_coordinates = 2 * len(directions), 0
    else:
        counts = np.bincount(layout.group_ids(indices), minlength=len(layout.groups))
        per_group = {g.name: int(c) for g, c in zip(layout.groups, counts)}
        n_evaluations, n_coordinates = 2 * len(indices), len(indices)
    seconds = engine.estimate(n_evaluations)
    return Plan(opts.mode, engine.name, n_coordinates, len(directions or ()), n_evaluations, seconds, per_group)


def _fit_budget(layout: Layout, engine: _Engine, opts: _Options, started: float) -> _Options:
    """Turn a full check that would overrun ``opts.budget`` into the widest subset that fits.

    The time already spent (validation, timing the engine) is charged to the budget.
    """
    full = engine.estimate(2 * layout.n_params)
    budget = opts.budget - (time.perf_counter() - started)
    if full <= budget:
        return opts
    fraction = max(budget, 0.0) / full
    for _ in range(60):  # fixed costs and the per-group minimum add time: shrink until it fits
        sizes = subset_sizes(layout, fraction=max(fraction, 1e-12), min_per_group=opts.min_per_group)
        if engine.estimate(2 * sum(sizes)) <= budget or fraction < 1e-9:
            break
        fraction *= 0.8
    opts.mode, opts.fraction = "subset", fraction
    return opts


def _merge(first: Evaluations | None, second: Evaluations) -> Evaluations:
    if first is None:
        return second
    return Evaluations(*(np.concatenate([getattr(first, f), getattr(second, f)])
                         for f in ("indices", "cost_plus", "cost_minus", "numeric", "kinks")),
                       first.n_evaluations + second.n_evaluations)


@dataclass
class Prepared:
    """A validated check, ready to run in pieces: what resumable runs build on.

    ``indices()`` lists the coordinates the mode checks; ``evaluate(chunk)`` runs the
    engine on any chunk of them; ``report(evaluations)`` builds the report from the
    merged chunks (use :func:`merge_evaluations`). Running every chunk and reporting
    gives the same numbers as :func:`check` (for the coordinate modes, without
    escalation or budget).
    """

    layout: Layout
    analytic: np.ndarray
    engine: _Engine
    opts: _Options
    extra_settings: dict
    started: float
    theta: np.ndarray
    context: dict = field(default_factory=dict)

    def run(self) -> Report:
        """The whole check at once, escalation and budget included."""
        return _run(self.layout, self.analytic, self.engine, self.opts, self.started, self.extra_settings,
                    self.theta, self.context)

    def indices(self) -> np.ndarray:
        indices, directions = _what_to_check(self.layout, self.opts)
        if indices is None:
            raise InputError("a prepared check runs in chunks of coordinates: use mode 'full' or 'subset'")
        return indices

    def evaluate(self, indices: np.ndarray) -> Evaluations:
        return self.engine.coordinates(np.asarray(indices, dtype=np.int64))

    def report(self, evaluations: Evaluations, elapsed: float | None = None) -> Report:
        settings = {**self.opts.settings(), "engine": self.engine.name, **self.extra_settings}
        elapsed = time.perf_counter() - self.started if elapsed is None else elapsed
        return build_report(self.layout, self.analytic, evaluations, bounds=self.opts.bounds, settings=settings,
                            elapsed=elapsed, theta=self.theta, context=self.context)


def merge_evaluations(parts) -> Evaluations:
    """One :class:`Evaluations` from chunks, in the order given."""
    merged = None
    for part in parts:
        merged = _merge(merged, part)
    if merged is None:
        raise InputError("no evaluations to merge")
    return merged


def _run(layout: Layout, analytic: np.ndarray, engine: _Engine, opts: _Options, started: float,
         extra_settings: dict, theta: np.ndarray, context: dict) -> Report:
    if opts.budget is not None:
        opts = _fit_budget(layout, engine, opts, started)
    indices, directions = _what_to_check(layout, opts)
    coords = engine.coordinates(indices) if indices is not None else None
    dirs = engine.directions(directions) if directions is not None else None
    settings = {**opts.settings(), "engine": engine.name, **extra_settings}

    def report(escalated=()):
        return build_report(layout, analytic, coords, directions=dirs, bounds=opts.bounds, settings=settings,
                            elapsed=time.perf_counter() - started, escalated=escalated, theta=theta,
                            context=context)

    result = report()
    if opts.mode == "full" or not opts.escalate:
        return result
    flagged = [g for g in result.groups if g.verdict != "pass"]
    if not flagged:
        return result
    rng = np.random.default_rng([opts.seed, 1])
    done = np.zeros(layout.n_params, dtype=bool)
    if coords is not None:
        done[coords.indices] = True
    todos = [g.start + np.flatnonzero(~done[g.start:g.stop]) for g in map(layout.group, (r.name for r in flagged))]
    sizes = _escalation_sizes(engine, [len(t) for t in todos], opts.escalate_budget)
    extra, localised = [], {}
    for row, todo, k in zip(flagged, todos, sizes):
        if len(todo) == k:
            extra.append(todo)
            continue
        # too many to re-check one by one: narrow down by bisection first, then a random sample
        found, n_evaluations = _localise(layout, layout.group(row.name), engine, opts)
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
        coords = _merge(coords, engine.coordinates(more))
    settings["escalated"] = [g.name for g in flagged]
    if localised:  # the bisection's evaluations are counted with the cheap mode's
        settings["localised"] = localised
        spent = sum(v["evaluations"] for v in localised.values())
        if dirs is not None:
            dirs.n_evaluations += spent
        else:
            coords.n_evaluations += spent
    return report(escalated=settings["escalated"])


def _escalation_sizes(engine: _Engine, todo: list[int], budget: int | None) -> list[int]:
    """How many of each flagged group's unchecked entries escalation re-checks."""
    if budget is not None:
        return [min(n, budget) for n in todo]
    seconds = engine.estimate(2 * sum(todo)) if sum(todo) else 0.0
    if seconds <= ESCALATE_SECONDS:
        return list(todo)
    share = ESCALATE_SECONDS / seconds
    return [min(n, max(ESCALATE_MIN, int(n * share))) for n in todo]


#: Bisection stops splitting blocks of at most this many entries (then checked one by one) ...
LOCALISE_LEAF = 16
#: ... follows at most this many wrong blocks at a time (more: the error is spread out) ...
LOCALISE_BLOCKS = 8
#: ... and tests each block with this many random directions.
LOCALISE_DIRECTIONS = 2


def _localise(layout: Layout, group, engine: _Engine, opts: _Options) -> tuple[np.ndarray, int]:
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
    from .core.directions import Direction

    position = layout.names.index(group.name)
    rounding = abs(engine.cost) * np.finfo(np.float64).eps / opts.eps if np.isfinite(engine.cost) else 0.0
    blocks, spent, number = [(group.start, group.stop)], 0, 0
    while any(hi - lo > LOCALISE_LEAF for lo, hi in blocks):
        leaves = [(lo, hi) for lo, hi in blocks if hi - lo <= LOCALISE_LEAF]  # found: not tested again
        halves = [half for lo, hi in blocks if hi - lo > LOCALISE_LEAF
                  for half in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
        tests = []
        for lo, hi in halves:
            for _ in range(LOCALISE_DIRECTIONS):
                tests.append(Direction(group.name, number, lo, hi, ((lo, hi, (opts.seed, 10_000 + position, number)),)))
                number += 1
        if engine.estimate(spent + 2 * len(tests)) > ESCALATE_SECONDS:
            break
        ev = engine.directions(tests)
        spent += ev.n_evaluations
        wrong_test = ((relative_errors(ev.numeric, ev.analytic) >= opts.bounds.warn)
                      & (np.abs(ev.numeric - ev.analytic) > 10 * rounding) & ~ev.kinks)
        wrong = [h for h, w in zip(halves, wrong_test.reshape(len(halves), LOCALISE_DIRECTIONS).any(axis=1)) if w]
        if not wrong or len(leaves) + len(wrong) > LOCALISE_BLOCKS:
            break
        blocks = leaves + wrong
    return np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in blocks]), spent


# ---------------------------------------------------------------------- any cost
def _cost_engine(objective: CostObjective, theta, analytic, eps, base_seconds, *, n_jobs, batch_cost, backend,
                 chunk_size, max_memory, progress) -> _Engine:
    if n_jobs == 1 and batch_cost is None and backend is None:
        return _Engine("reference", lambda idx: reference_engine(objective, theta, idx, eps),
                       lambda dirs: evaluate_directions(objective, theta, analytic, dirs, eps),
                       lambda n: n * base_seconds, objective.cost_at_theta)

    def coordinates(idx):
        from .engines.blackbox.dispatch import blackbox_engine

        return blackbox_engine(objective, theta, idx, eps, n_jobs=n_jobs, batch_cost=batch_cost, backend=backend,
                               chunk_size=chunk_size, max_memory=max_memory, progress=progress)

    def directions(dirs):
        from .engines.blackbox.dispatch import blackbox_directions

        return blackbox_directions(objective, theta, analytic, dirs, eps, n_jobs=n_jobs, batch_cost=batch_cost,
                                   backend=backend, chunk_size=chunk_size, max_memory=max_memory, progress=progress)

    workers = max(1, n_jobs if n_jobs > 0 else __import__("os").cpu_count() or 1)
    return _Engine("blackbox", coordinates, directions, lambda n: n * base_seconds / workers, objective.cost_at_theta)


def _prepare_cost(cost, params, grads, cast):
    layout, theta = Layout.from_params(params, cast=cast)
    analytic = layout.resolve_grads(grads, params, cast=cast) if grads is not None else np.zeros(layout.n_params)
    objective = CostObjective(cost, layout)
    tic = time.perf_counter()
    objective.cost_at_theta = objective.base(theta)
    return layout, theta, analytic, objective, (time.perf_counter() - tic) / 2


def check(cost, params, grads, *, eps: float = DEFAULT_EPS, mode: str = "full", fraction: float | None = None,
          n_samples: int | None = None, n_directions: int | None = None,
          min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, escalate: bool = False,
          escalate_budget: int | None = DEFAULT_ESCALATE_BUDGET, budget: float | None = None, n_jobs: int = 1,
          batch_cost=None, backend: str | None = None, chunk_size: int | None = None,
          max_memory: int | None = None, progress: bool | None = None, warn: float = 1e-6, fail: float = 1e-3,
          cast: bool = False) -> Report:
    """Check an analytic gradient against central differences of ``cost``.

    For every checked coordinate i, the numeric gradient is
    ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)``, and the check compares it
    with the analytic one by ``||numeric - analytic|| / (||numeric|| + ||analytic||)``,
    over all of theta and per parameter group.

    Parameters
    ----------
    cost : callable ``cost(params) -> float``
        Receives read-only arrays in the structure of ``params`` and returns a finite
        float64 scalar. It must be deterministic (no dropout: keep_prob = 1).
    params : dict of str -> ndarray, or ndarray of shape (n,)
        float64 parameters; the dict order is theta's order. Never modified.
    grads : dict of str -> ndarray, ndarray of shape (n,), or callable
        The analytic gradient under test, in the structure of ``params``; dict entries
        may be named ``"W1"`` or ``"dW1"``. A callable is called as ``grads(params)``.
    eps : float, default 1e-7
        The step, in ``[1e-12, 1e-1]``.
    mode : {"full", "subset", "directions"}
        ``"full"`` checks every coordinate; ``"subset"`` a seeded random subset,
        stratified by group (``fraction`` or ``n_samples``; every group gets at least
        ``min_per_group`` entries); ``"directions"`` compares ``v . grad`` with
        ``(J(theta + eps v) - J(theta - eps v)) / 2 eps`` for ``n_directions`` random
        unit directions per group and as many over all of theta.
    fraction, n_samples, min_per_group : optional
        Size of the subset (mode ``"subset"``).
    n_directions : int, optional
        Directions per group (mode ``"directions"``; default 16).
    seed : int
        Seed of the random modes: same seed, same coordinates and directions.
    escalate : bool
        After a subset or directions check, re-check every group that is not
        ``"pass"`` coordinate by coordinate, so the report names the wrong entries.
    escalate_budget : int, optional
        Entries re-checked per flagged group, at random; by default (None) all of
        them when the engine's estimate says that takes at most 30 s, else as many
        as fit (at least 1,000 per group): first the blocks a bisection with random
        directions narrows the group down to, then a random sample. A group whose
        directions flagged it but whose re-checked entries are all right keeps its
        directions' verdict, with a note that the wrong entries are among those not
        re-checked.
    budget : float, optional
        Seconds: when a full check would take longer (estimated from a timing of the
        cost), check the widest stratified subset that fits instead.
    n_jobs : int
        Worker processes for the black-box engine (-1: all cores), in every mode (chunks
        of coordinates, or of random directions); 1 runs the reference loop in this
        process. Small jobs stay in-process unless ``chunk_size`` is given.
        With ``joblib.parallel_config(backend="dask")`` around the call, pass
        ``n_jobs=-1``.
    batch_cost : callable ``batch_cost(thetas) -> costs``, optional
        A vectorized cost over a (k, n) stack of flat thetas, returning k costs.
    backend : {"loky", "threading", "dask"}, optional
        joblib backend of the black-box engine (default: joblib's, loky).
    chunk_size : int, optional
        Coordinates per task of the black-box engine (default: chosen from a timing).
    max_memory : int, optional
        Bytes of perturbed thetas stacked at once for ``batch_cost`` (a stack has at
        most 256 rows).
    progress : bool, optional
        Show a progress bar; default: on a terminal, for runs longer than a few seconds.
    warn, fail : float
        Verdict bounds: ``pass`` below ``warn`` <= ``warn`` < ``fail`` <= ``fail``.
    cast : bool
        Up-cast real non-float64 arrays with a warning instead of raising.

    Returns
    -------
    Report

    Raises
    ------
    InputError
        Mismatched names or shapes, non-finite values, bad settings.
    DtypeError
        Arrays that are not float64 (unless ``cast=True``).
    CostError
        The cost raised, returned a non-finite or non-scalar value, changed between two
        evaluations at the same point (:class:`NondeterministicCostError`) or modified
        its input (:class:`MutationError`); the message names the coordinate.

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> report = fc.check(lambda theta: float(theta @ x), np.zeros(3), x.copy())
    >>> report.verdict
    'pass'
    """
    p = prepare_check(cost, params, grads, eps=eps, mode=mode, fraction=fraction, n_samples=n_samples,
                      n_directions=n_directions, min_per_group=min_per_group, seed=seed, escalate=escalate,
                      escalate_budget=escalate_budget, budget=budget, n_jobs=n_jobs, batch_cost=batch_cost,
                      backend=backend, chunk_size=chunk_size, max_memory=max_memory, progress=progress, warn=warn,
                      fail=fail, cast=cast)
    return p.run()


def prepare_check(cost, params, grads, *, eps=DEFAULT_EPS, mode="full", fraction=None, n_samples=None,
                  n_directions=None, min_per_group=DEFAULT_MIN_PER_GROUP, seed=0, escalate=False,
                  escalate_budget=DEFAULT_ESCALATE_BUDGET, budget=None, n_jobs=1, batch_cost=None, backend=None,
                  chunk_size=None, max_memory=None, progress=None, warn=1e-6, fail=1e-3, cast=False) -> Prepared:
    """Validate everything :func:`check` takes and return a :class:`Prepared` check."""
    started = time.perf_counter()
    opts = _options(eps, mode, fraction, n_samples, n_directions, min_per_group, seed, "exclude", escalate,
                    escalate_budget, budget, warn, fail)
    layout, theta, analytic, objective, base_seconds = _prepare_cost(cost, params, grads, cast)
    engine = _cost_engine(objective, theta, analytic, opts.eps, base_seconds, n_jobs=n_jobs, batch_cost=batch_cost,
                          backend=backend, chunk_size=chunk_size, max_memory=max_memory, progress=progress)
    return Prepared(layout, analytic, engine, opts, {"n_jobs": n_jobs}, started, theta)


def plan(cost, params, *, mode: str = "full", fraction: float | None = None, n_samples: int | None = None,
         n_directions: int | None = None, min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0,
         n_jobs: int = 1, cast: bool = False) -> Plan:
    """What :func:`check` would do with these settings, and about how long it would take.

    The cost is evaluated twice (to time it and to make sure it is deterministic);
    nothing else runs.
    """
    opts = _options(DEFAULT_EPS, mode, fraction, n_samples, n_directions, min_per_group, seed, "exclude", False,
                    DEFAULT_ESCALATE_BUDGET, None, 1e-6, 1e-3)
    layout, theta, analytic, objective, base_seconds = _prepare_cost(cost, params, None, cast)
    engine = _cost_engine(objective, theta, analytic, opts.eps, base_seconds, n_jobs=n_jobs, batch_cost=None,
                          backend=None, chunk_size=None, max_memory=None, progress=False)
    return _plan(layout, engine, opts)


# ---------------------------------------------------------------------- the built-in MLP
ENGINES = ("batched", "reference")


def _mlp_engine(net, layout, theta, analytic, X, Y, eps, engine, max_memory, n_threads) -> _Engine:
    from .engines.mlp.stacked import BaseState

    if engine not in ENGINES:
        raise InputError(f"`engine`={engine!r} is not one of {', '.join(map(repr, ENGINES))}")
    params = layout.unflatten(theta)
    memory = max_memory or 256 * 2**20
    if engine == "reference":
        objective = MLPObjective(net, layout, X, Y)
        tic = time.perf_counter()
        value = objective.base(theta)
        seconds = time.perf_counter() - tic

        def directions(dirs):
            costs = CostObjective(lambda p: net.cost(p, X, Y), layout)
            return evaluate_directions(costs, theta, analytic, dirs, eps)

        return _Engine("reference", lambda idx: reference_engine(objective, theta, idx, eps), directions,
                       lambda n: n * seconds, value)

    from .engines.mlp.batched import base_pass, batched_engine

    cache = {}

    def coordinates(idx):  # the base pass is built once, however many chunks are evaluated
        if "base" not in cache:
            cache["base"] = base_pass(net, params, X, Y)
        return batched_engine(net, params, X, Y, idx, eps, max_memory=max_memory, n_threads=n_threads,
                              base=cache["base"])

    def directions(dirs):
        return mlp_evaluate_directions(BaseState(net, params, X, Y), layout, theta, analytic, dirs, eps,
                                       max_memory=memory)

    timings = []

    def estimate(n_evaluations):
        # the engine has a fixed set-up cost: time two sample sizes, fit fixed + slope * n
        if not timings:
            sample = stratified_subset(layout, n_samples=min(layout.n_params, 8000), seed=0)
            small = sample[:: 4]
            coordinates(small[:50])  # compile or load the kernels first
            for part in (small, sample):
                tic = time.perf_counter()
                coordinates(part)
                timings.append((2 * len(part), time.perf_counter() - tic))
        (n0, t0), (n1, t1) = timings
        slope = max((t1 - t0) / (n1 - n0), 0.25 * t1 / n1)
        return max(t0 - slope * n0, 0.0) + slope * n_evaluations

    return _Engine("batched", coordinates, directions, estimate, net.cost(params, X, Y))


def _prepare_mlp(net, params, grads, X, Y, cast):
    net.validate_params(params)
    layout, theta = Layout.from_params(params, cast=cast)
    X, Y = net.validate_data(X, Y)
    analytic = layout.resolve_grads(grads, params, cast=cast) if grads is not None else np.zeros(layout.n_params)
    return layout, theta, analytic, X, Y


def check_mlp(net, params, grads, X, Y, *, engine: str = "batched", eps: float = DEFAULT_EPS, mode: str = "full",
              fraction: float | None = None, n_samples: int | None = None, n_directions: int | None = None,
              min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, kinks: str = "exclude",
              escalate: bool = False, escalate_budget: int | None = DEFAULT_ESCALATE_BUDGET,
              budget: float | None = None, max_memory: int | None = None, n_threads: int | None = None,
              warn: float = 1e-6, fail: float = 1e-3, cast: bool = False) -> Report:
    """:meth:`fastcheck.MLP.check`: check ``grads`` against the built-in network's cost."""
    p = prepare_mlp(net, params, grads, X, Y, engine=engine, eps=eps, mode=mode, fraction=fraction,
                    n_samples=n_samples, n_directions=n_directions, min_per_group=min_per_group, seed=seed,
                    kinks=kinks, escalate=escalate, escalate_budget=escalate_budget, budget=budget,
                    max_memory=max_memory, n_threads=n_threads, warn=warn, fail=fail, cast=cast)
    return p.run()


def prepare_mlp(net, params, grads, X, Y, *, engine="batched", eps=DEFAULT_EPS, mode="full", fraction=None,
                n_samples=None, n_directions=None, min_per_group=DEFAULT_MIN_PER_GROUP, seed=0, kinks="exclude",
                escalate=False, escalate_budget=DEFAULT_ESCALATE_BUDGET, budget=None, max_memory=None,
                n_threads=None, warn=1e-6, fail=1e-3, cast=False) -> Prepared:
    """Validate everything :func:`check_mlp` takes and return a :class:`Prepared` check."""
    started = time.perf_counter()
    opts = _options(eps, mode, fraction, n_samples, n_directions, min_per_group, seed, kinks, escalate,
                    escalate_budget, budget, warn, fail)
    layout, theta, analytic, X, Y = _prepare_mlp(net, params, grads, X, Y, cast)
    mlp_engine = _mlp_engine(net, layout, theta, analytic, X, Y, opts.eps, engine, max_memory, n_threads)
    return Prepared(layout, analytic, mlp_engine, opts, {}, started, theta, {"m": X.shape[1], "l2": net.l2})


def plan_mlp(net, params, X, Y, *, engine: str = "batched", mode: str = "full", fraction: float | None = None,
             n_samples: int | None = None, n_directions: int | None = None,
             min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0) -> Plan:
    """:meth:`fastcheck.MLP.plan`: what :meth:`MLP.check` would do, and about how long it would take."""
    opts = _options(DEFAULT_EPS, mode, fraction, n_samples, n_directions, min_per_group, seed, "exclude", False,
                    DEFAULT_ESCALATE_BUDGET, None, 1e-6, 1e-3)
    layout, theta, analytic, X, Y = _prepare_mlp(net, params, None, X, Y, False)
    return _plan(layout, _mlp_engine(net, layout, theta, analytic, X, Y, opts.eps, engine, None, None), opts)
