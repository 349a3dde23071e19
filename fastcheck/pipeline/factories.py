"""Building the engine of a user's cost (the built-in network's: :mod:`fastcheck.pipeline.network`)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..core.deadline import time_limit, time_limits
from ..core.directions import require_directions_fit
from ..core.finite import require_steps
from ..core.layout import Layout, call_grads
from ..core.objective import CostObjective, describe_value
from ..core.settings import require_n_jobs
from ..engines.base import Engine, Setup
from ..engines.reference import evaluate_directions, reference_engine
from ..errors import CostError, InputError, message_of, user_failure
from .argument import require_uses_argument
from .options import COST_ENGINES, CheckOptions
from .stepping import stencilled, with_stencil
from .timing import CostTiming, counted_calls, traced_estimate

__all__ = ["CostProblem", "cost_engine", "NO_GRADIENT", "FROM_COST"]


class _Marker:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


#: Passed as ``grads`` by plans, which evaluate no gradient.
NO_GRADIENT = _Marker("<no gradient>")
#: ``grads`` not given: the cost returns ``(loss, grads)`` (CS231n's ``model.loss``).
FROM_COST = _Marker("<from the cost's (loss, grads)>")


def _layout_and_gradient(params, grads, cast: bool):
    """(layout, theta, analytic gradient, gradient keys left aside) of validated ``params`` and ``grads``."""
    layout, theta = Layout.from_params(params, cast=cast)
    if grads is NO_GRADIENT:
        return layout, theta, np.zeros(layout.n_params), []
    # A backprop run on the up-cast arrays: with float32 arrays it would compute the gradient under test in float32
    grads = call_grads(grads, layout.unflatten(theta.copy()) if _was_cast(params) else params)
    if grads is None:
        raise InputError("`grads` is None: there is no gradient to check (did the backprop forget to `return` "
                         "its gradients?); pass the analytic gradient in the structure of `params`")
    analytic = layout.flatten_grads(grads, cast=cast)
    aside = layout.grad_keys(grads)[1] if isinstance(grads, Mapping) and not layout.flat else []
    return layout, theta, analytic, aside


def _was_cast(params) -> bool:
    """Whether ``Layout.from_params`` up-cast some array of ``params`` (it accepted them, so cast=True)."""
    values = [params] if isinstance(params, np.ndarray) else params.values() if isinstance(params, Mapping) else params
    return any(np.asarray(v).dtype != np.float64 for v in values)


def _gradient_from_cost(cost, params):
    """The ``grads`` of a cost returning ``(loss, grads)``, from one call at the unperturbed parameters."""
    if not callable(cost):
        return None  # the objective names the problem
    try:
        value = cost(params)
    except BaseException as exc:  # an Exception, or user code ending the run (never a pass)
        if not user_failure(exc):
            raise
        raise CostError(f"the cost raised {type(exc).__name__} at the unperturbed parameters{message_of(exc)}") \
            from exc
    if not (isinstance(value, tuple) and len(value) == 2):
        raise InputError(f"`grads` is not given and the cost returned {describe_value(value)}, not (loss, grads): "
                         "pass the analytic gradient as `grads`, or return (loss, grads) from the cost")
    return value[1]


def _require_checkable(layout: Layout, theta: np.ndarray, options: CheckOptions) -> None:
    """What the options ask of these parameters must be possible: steps not lost in rounding, directions that fit."""
    require_steps(theta, options.steps(theta), layout.describe, options.name("eps"))
    if options.mode == "directions":
        require_directions_fit(layout, options.n_directions, options.name("n_directions"))


class CostProblem:
    """A user's cost, its parameters and the gradient under test, validated and timed once.

    ``timeout``: seconds each evaluation of the cost may take, from the first (None: no limit).
    """

    def __init__(self, cost, params, grads, cast: bool, timeout: float | None = None):
        if grads is FROM_COST:
            with time_limits(timeout), time_limit(timeout, "at the unperturbed parameters"):
                grads = _gradient_from_cost(cost, params)
            self.objective_flags = {"returns_grads": True}
        else:  # a plan has no gradient: a cost returning (loss, grads) is timed on its loss
            self.objective_flags = {"returns_grads": True} if grads is NO_GRADIENT else {}
        self.layout, self.theta, self.analytic, self.aside = _layout_and_gradient(params, grads, cast)
        self.objective = CostObjective(cost, self.layout, timeout=timeout, **self.objective_flags)
        tic = time.perf_counter()
        self.objective.cost_at_theta = self.objective.base(self.theta)
        # what every check of this cost spends before its engine: the two evaluations at theta
        self.setup = Setup(time.perf_counter() - tic, 2, "2 at theta")
        self.timing = CostTiming(self)


def _traced(problem: CostProblem, options: CheckOptions) -> Engine:
    """The traced engine of the problem's cost; NotTraceable (with its reason) when it cannot be used."""
    from ..engines.traced import NotTraceable, TracedEngine, traced_engine

    objective, theta, analytic = problem.objective, problem.theta, problem.analytic
    steps, eps = options.steps(theta), options.direction_eps
    engine = traced_engine(objective, problem.layout, theta, steps, max_memory=options.max_memory,
                           seed=options.seed)
    engines = {1: engine}

    def verified(scale):  # the same trace at scale times the steps, verified there too
        other = TracedEngine(engine.graph, objective, problem.layout, theta, scale * steps,
                             max_memory=engine.max_memory, n_threads=engine.n_threads)
        other.verify(options.seed)
        return other

    if options.stencil == 4:  # the stencil's second step: the check's own, so a trace that fails there is not used
        engines[2] = verified(2)

    verifying = {}  # calls of the cost that verified the trace at another step, counted once by the next `at`

    def at_scale(scale):  # another step (the noise's larger one): None where the trace does not hold there
        if scale not in engines:
            with counted_calls(objective) as counter:
                try:
                    engines[scale] = verified(scale)
                except NotTraceable:
                    engines[scale] = None
            verifying[scale] = counter.calls
        return engines[scale]

    def at(idx, scale):
        if at_scale(scale) is None:  # a larger step than the trace holds at: the real cost
            ev = reference_engine(objective, theta, idx, scale * steps)
            ev.n_evaluations += verifying.pop(scale, 0)
            return ev
        ev = engines[scale].coordinates(idx)
        ev.n_evaluations += verifying.pop(scale, 0)
        # where the traced changes are not finite (an identity that overflowed, a log1p below -1 next to a
        # saturated unit), the engine cannot vouch: those coordinates take full evaluations of the real cost
        bad = ~(np.isfinite(ev.numeric) & np.isfinite(ev.cost_plus) & np.isfinite(ev.cost_minus))
        if bad.any():
            redo = reference_engine(objective, theta, np.asarray(ev.indices)[bad], scale * steps)
            for name in ("cost_plus", "cost_minus", "numeric", "kinks"):
                getattr(ev, name)[bad] = getattr(redo, name)
            ev.n_evaluations += redo.n_evaluations
        return ev

    def directions(dirs):
        ev = engine.directions(dirs, analytic)
        bad = np.flatnonzero(~np.isfinite(ev.numeric))
        if bad.size:  # as for coordinates: the real cost where the traced changes are not finite
            redo = evaluate_directions(objective, theta, analytic, [dirs[j] for j in bad], eps)
            ev.numeric[bad], ev.kinks[bad] = redo.numeric, redo.kinks
            ev.n_evaluations += redo.n_evaluations
        return ev

    estimate, basis = traced_estimate(engine, options.budget)
    # a direction is a dense change of its group or of theta: about one evaluation of the cost per sign
    return Engine("traced", stencilled(at, options.stencil), directions, estimate, objective.cost_at_theta,
                  basis=basis, full=_full(objective, theta), at=at,
                  direction_estimate=lambda n: n * problem.timing.seconds(),
                  direction_basis=lambda: f"about one evaluation of the cost per direction and sign: "
                                          f"{problem.timing.basis()}")


def _full(objective, theta: np.ndarray):
    """The engines' ``full``: the reference loop on ``objective`` at any step."""
    return lambda idx, eps: reference_engine(objective, theta, idx, eps)


#: How an error names the engine an untraceable cost falls back to.
_UNTRACED = {"reference": "reference engine (the loop of full evaluations, in this process)",
             "blackbox": "black-box engine (full evaluations on workers)"}


def _reason(options: CheckOptions, blackbox_settings: bool, name: str) -> str:
    """Why a user's cost gets engine ``name`` (before any trace is tried)."""
    if options.engine is not None:
        return f"as {options.name('engine')} asks"
    if blackbox_settings:
        return "the settings given (a backend, batch_cost or chunk_size) are the black-box engine's"
    return "the default: the cost traced, the trace verified against the real cost"


def _and(setup: Setup, seconds: float, calls: int, what: str) -> Setup:
    """``setup`` and then ``calls`` calls of the cost in ``seconds``, for ``what``."""
    return setup.then(Setup(seconds, calls, f"{calls} {what}"))


def cost_engine(problem: CostProblem, options: CheckOptions, *, n_jobs=1, batch_cost=None, backend=None,
                chunk_size=None, progress=None) -> Engine:
    """The traced engine where the cost can be traced, else the reference loop in-process or the black-box
    engine (workers, Dask, a vectorized cost); the report says why the traced engine was not used."""
    from ..engines.traced import NotTraceable

    objective, theta, analytic = problem.objective, problem.theta, problem.analytic
    steps, eps = options.steps(theta), options.direction_eps
    _require_checkable(problem.layout, theta, options)
    require_n_jobs(n_jobs, options.name("n_jobs"))
    in_process = n_jobs == 1 and batch_cost is None and backend is None
    untraced = "reference" if in_process else "blackbox"
    # settings only the black-box engine has (a joblib backend, a vectorized cost, chunks) ask for it
    blackbox_settings = backend is not None or batch_cost is not None or chunk_size is not None
    name = options.engine_or(COST_ENGINES, untraced if blackbox_settings else "traced")
    notes, setup = {}, problem.setup
    reason = _reason(options, blackbox_settings, name)
    if name == "traced":
        tic = time.perf_counter()
        try:
            with counted_calls(objective) as counter:
                engine = _traced(problem, options)
            setup = _and(setup, time.perf_counter() - tic, counter.calls, "to trace the cost and verify the trace")
            return with_stencil(replace(engine, reason=reason, setup=setup), options.stencil)
        except NotTraceable as exc:
            if getattr(exc, "constant", False):  # no path from any parameter to J
                require_uses_argument(problem.objective, problem.layout, problem.theta, problem.analytic, steps)
            if options.engine == "traced":
                raise InputError(f"{options.name('engine')}: 'traced' cannot be used on this cost: {exc.reason}; "
                                 f"leave `engine` unset to fall back to the {_UNTRACED[untraced]}") from None
            name, notes = untraced, {"traced_not_used": exc.reason}
            # a check tries the trace again before it falls back: that is part of its cost
            setup = _and(setup, time.perf_counter() - tic, counter.calls, "to try the trace")
            reason = f"traced engine not used: {exc.reason}"
    if name == "reference" and in_process:
        def at(idx, scale):
            return reference_engine(objective, theta, idx, scale * steps, progress=progress)

        return with_stencil(Engine(
            "reference", stencilled(at, options.stencil),
            lambda dirs: evaluate_directions(objective, theta, analytic, dirs, eps, progress=progress),
            lambda n: n * problem.timing.seconds(), objective.cost_at_theta, basis=problem.timing.basis, notes=notes,
            full=_full(objective, theta), reason=reason, setup=setup, evaluates_cost=True), options.stencil)
    # lazy: joblib (and Dask) load only when a check runs on workers
    from ..engines.blackbox import blackbox_directions, blackbox_engine

    # notes: how many workers ran (or why none did), filled as the engine runs, read when the report is built
    settings = dict(n_jobs=n_jobs, batch_cost=batch_cost, backend=backend, chunk_size=chunk_size,
                    max_memory=options.max_memory, progress=progress, notes=notes)
    workers = max(1, n_jobs if n_jobs > 0 else os.cpu_count() or 1)

    def on_workers(idx, scale):
        return blackbox_engine(objective, theta, idx, scale * steps, **settings)

    return with_stencil(Engine(
        "blackbox", stencilled(on_workers, options.stencil),
        lambda dirs: blackbox_directions(objective, theta, analytic, dirs, eps, **settings),
        lambda n: n * problem.timing.seconds() / workers, objective.cost_at_theta,
        basis=lambda: f"{problem.timing.basis()}, over {workers} worker(s)", notes=notes,
        full=_full(objective, theta), reason=reason + ("" if in_process else f"; on {workers} worker(s)"),
        setup=setup, evaluates_cost=True), options.stencil)
