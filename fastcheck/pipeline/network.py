"""Building the engine of the built-in network: the batched engine, the reference loop, and on a fresh
install the traced engine while the batched engine's kernels compile."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..core.directions import SIGNS
from ..core.objective import CostObjective
from ..core.settings import require_n_threads
from ..engines.base import Engine
from ..engines.mlp.directions import mlp_evaluate_directions
from ..engines.mlp.objective import MLPObjective
from ..engines.mlp.stacked import BaseState
from ..engines.reference import evaluate_directions, reference_engine
from ..errors import CostError, InputError
from ..mlp.functions import PIECEWISE_LINEAR
from .factories import CostProblem, _and, _layout_and_gradient, _require_checkable, _traced
from .options import MLP_ENGINES, CheckOptions
from .stepping import stencilled, with_stencil
from .timing import batched_estimate, counted_calls, directions_estimate

__all__ = ["MLPProblem", "mlp_engine", "COMPILING"]

#: The batched engine's seconds per coordinate on 64 examples, a priori (measured on
#: network M): piecewise-linear hidden layers take the margin shortcut, smooth ones the
#: certified polynomials (both about 0.7 us). More examples cost proportionally more.
BATCHED_PRIOR = {"piecewise": 1e-6, "smooth": 1e-6}


class MLPProblem:
    """The built-in network, its parameters, data and the gradient under test, validated."""

    def __init__(self, net, params, grads, X, Y, cast: bool):
        net.validate_params(params)
        self.net = net
        self.layout, self.theta, self.analytic, self.aside = _layout_and_gradient(params, grads, cast)
        self.X, self.Y = net.validate_data(X, Y)


def _mlp_full(problem: MLPProblem):
    """The engines' ``full`` on the built-in network: full forward passes, the base states set on first use."""
    objective = []

    def full(idx, eps):
        if not objective:
            objective.append(MLPObjective(problem.net, problem.layout, problem.X, problem.Y))
            objective[0].base(problem.theta)
        return reference_engine(objective[0], problem.theta, idx, eps)

    return full


def mlp_engine(problem: MLPProblem, options: CheckOptions, *, n_threads=None) -> Engine:
    """The batched engine (the default; the traced engine while its kernels compile) or the reference loop."""
    net, layout, theta, analytic, X, Y = (problem.net, problem.layout, problem.theta, problem.analytic,
                                          problem.X, problem.Y)
    steps, eps = options.steps(theta), options.direction_eps
    _require_checkable(layout, theta, options)
    n_threads = require_n_threads(n_threads, options.name("n_threads"))
    if options.timeout is not None:
        raise InputError(f"{options.name('timeout')}: limits a user's cost; the built-in network's is fastcheck's own")
    name = options.engine_or(MLP_ENGINES, MLP_ENGINES[0])
    reason = "the built-in network's engine" if name == MLP_ENGINES[0] else f"as {options.name('engine')} asks"
    params = layout.unflatten(theta)
    cost = _network_cost(net, params, X, Y)
    full = _mlp_full(problem)
    if name == "reference":
        return _mlp_reference(problem, options, full, reason)

    def directions(dirs):  # numpy: no kernel to compile
        return mlp_evaluate_directions(BaseState(net, params, X, Y), layout, theta, analytic, dirs, eps,
                                       max_memory=options.memory)

    # plans of directions time them as a check runs them (the same numpy on either engine below)
    timed_directions = directions_estimate(directions, layout, options.distribution or SIGNS)
    if (cold := _while_compiling(problem, options, directions, timed_directions)) is not None:  # a fresh cache
        return cold

    # lazy: numba loads (and compiles, the first time) only when the batched engine runs
    from ..engines.mlp.batched import base_pass, batched_engine

    cache, notes = {}, {}  # notes: filled as chunks run, read when the report is built

    def at(idx, scale):  # the base pass is built once, however many chunks are evaluated
        if "base" not in cache:
            cache["base"] = base_pass(net, params, X, Y)
        return batched_engine(net, params, X, Y, idx, scale * steps, max_memory=options.max_memory,
                              n_threads=n_threads, base=cache["base"], notes=notes)

    def coordinates(idx):  # the estimate times the engine at one step; with_stencil counts two
        return at(idx, 1)

    estimate, basis, lazy_setup = batched_estimate(net, layout, coordinates, options.budget)
    kind = "piecewise" if net.hidden in PIECEWISE_LINEAR else "smooth"
    prior = BATCHED_PRIOR[kind] * max(1.0, X.shape[1] / 64)
    return with_stencil(Engine("batched", stencilled(at, options.stencil), directions, estimate,
                               cost, prior, basis, notes, full=full, reason=reason, lazy_setup=lazy_setup,
                               at=at, direction_estimate=timed_directions[0], direction_basis=timed_directions[1]),
                        options.stencil)


def _mlp_reference(problem: MLPProblem, options: CheckOptions, full, reason: str) -> Engine:
    """The reference loop on the built-in network: one full forward pass per +eps and per -eps."""
    net, layout, theta, analytic, X, Y = (problem.net, problem.layout, problem.theta, problem.analytic,
                                          problem.X, problem.Y)
    steps, eps = options.steps(theta), options.direction_eps
    objective = MLPObjective(net, layout, X, Y)
    tic = time.perf_counter()
    value = objective.base(theta)
    seconds = time.perf_counter() - tic

    def directions(dirs):
        costs = CostObjective(lambda p: net.cost(p, X, Y), layout)
        return evaluate_directions(costs, theta, analytic, dirs, eps)

    return with_stencil(Engine(
        "reference", stencilled(lambda idx, scale: reference_engine(objective, theta, idx, scale * steps),
                                options.stencil),
        directions, lambda n: n * seconds, value, basis=lambda: f"one timed forward pass, {seconds * 1e3:.3g} ms",
        full=full, reason=reason), options.stencil)


#: Why a check of the built-in network used the traced engine (``report.settings["batched_not_used"]``).
COMPILING = ("its numba kernels are not compiled yet (a fresh install or an empty NUMBA_CACHE_DIR); the coordinates "
             "were checked with the traced engine (numpy, exact) while they compile in the background for later runs")


def _while_compiling(problem: MLPProblem, options: CheckOptions, directions, timed_directions) -> Engine | None:
    """The traced engine on the network's own cost (:meth:`fastcheck.MLP.objective`, J bit for bit) when the
    batched engine was not asked for by name and its kernels are not in numba's cache (they compile meanwhile in
    another process); None when the batched engine should run (asked for, kernels cached, a cache that cannot be
    written, a cost the traced engine cannot follow).

    Directions take the batched engine's own path (``directions``, numpy). The traced engine flags a
    perturbation where any max or abs of the cost flips, the softmax's shift and the softplus of the stable
    losses included; the batched engine only where a hidden unit changes state. Neither engine's flags reach
    the report as they are (:mod:`fastcheck.pipeline.kinks` decides every entry from its values), so both
    leave the same entries out of the verdict.
    """
    from ..engines.mlp.warmup import compile_in_background, kernels_cached
    from ..engines.traced import NotTraceable

    net, X, Y, layout = problem.net, problem.X, problem.Y, problem.layout
    if options.engine is not None or kernels_cached(net):
        return None

    tic = time.perf_counter()
    cost = CostProblem(lambda p: net.objective(p, X, Y), layout.unflatten(problem.theta),
                       layout.unflatten(problem.analytic), cast=False)
    try:
        with counted_calls(cost.objective) as counter:
            engine = _traced(cost, options)
    except NotTraceable:
        return None
    if not compile_in_background():  # first the trace: a cost it cannot follow starts no compile
        return None
    setup = _and(cost.setup, time.perf_counter() - tic, counter.calls, "to trace the cost and verify the trace")
    # directions: the batched engine's own (numpy), timed as its are
    return with_stencil(replace(engine, directions=directions, notes={"batched_not_used": COMPILING},
                                reason="the batched engine's kernels are not compiled yet: the traced engine while "
                                       "they compile in the background", setup=setup,
                                direction_estimate=timed_directions[0], direction_basis=timed_directions[1]),
                        options.stencil)


def _network_cost(net, params, X, Y) -> float:
    """J(theta) of the built-in network, or :class:`CostError` where it is not finite (in every engine)."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = net.cost(params, X, Y)
    if not np.isfinite(value):
        largest = max(float(np.abs(X).max()), *(float(np.abs(p).max()) for p in params.values()))
        raise CostError(f"the network's cost J(theta) is {value} at these parameters and data: its forward pass "
                        f"overflows (the largest |input| or |parameter| is {largest:.3g}); scale the inputs X or "
                        "the parameters down")
    return value
