"""The units of a nightly run: one (problem, point) each, built, trained to its point,
prepared as a :class:`~fastcheck.pipeline.prepared.Prepared` check and identified by hashes.

A unit's ``config_hash`` covers its settings only (the same from night to night); its
``key`` also covers theta, the gradient under test, the data (or the factory's source)
and fastcheck's version: chunks are merged only into a unit of the same key.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import __version__
from ...api import Prepared, prepare_check, prepare_mlp
from ...core.layout import Layout
from ...errors import InputError
from ...mlp.model import MLP
from ..bugs import buggy_gradient
from ..problems import call_factory, cost_problem
from .store import canonical, sha256
from .suite import Point, Problem, import_factory

__all__ = ["Unit", "prepare_unit"]


@dataclass
class Unit:
    """One (problem, point), prepared: the check in pieces and the hashes that identify it."""

    problem: Problem
    point: Point
    prepared: Prepared
    config_hash: str  # settings only: the same from night to night
    key: str  # settings, theta, gradient (and data or the factory's source) and fastcheck's version
    prepare_seconds: float

    @property
    def label(self) -> str:
        return f"{self.problem.name}@{self.point.name}"


def _train(layout, theta, grad_of, steps: int, rate: float):
    """``steps`` of gradient descent on flat ``theta`` with ``grad_of(params) -> grads``."""
    for _ in range(steps):
        params = layout.unflatten(theta)
        theta = theta - rate * layout.resolve_grads(grad_of, params)
        if not np.all(np.isfinite(theta)):
            raise InputError("training diverged (non-finite parameters): lower the point's learning_rate")
    return layout.unflatten(theta)


def _build_mlp(problem: Problem, point: Point):
    s = problem.spec
    net = MLP(s["layers"], hidden=s["hidden"], output=s["output"], l2=s["l2"])
    X, Y = net.random_data(s["examples"], seed=s["data_seed"])
    params = net.init(seed=point.seed)

    def grad_of(p):  # the gradient under test, buggy or not: training uses it too
        return buggy_gradient(net, s["bug"], p, X, Y) if s["bug"] else net.gradient(p, X, Y)

    if point.train_steps:
        layout, theta = Layout.from_params(params)
        params = {k: np.ascontiguousarray(v) for k, v in _train(layout, theta, grad_of, point.train_steps,
                                                                point.learning_rate).items()}
    return net, params, grad_of(params), X, Y


def _call_factory(problem: Problem, point: Point):
    """The factory's problem at ``point``: ``(cost, params, grads, batch_cost, source of the factory)``."""
    spec = problem.spec["factory"]
    func = import_factory(spec, f"problem {problem.name!r} factory")
    try:
        result = call_factory(spec, func, {"seed": point.seed} if point.seed is not None else {}, hint=None)
    except InputError as exc:
        cause = exc.__cause__
        if point.seed is not None and isinstance(cause, TypeError) and "seed" in str(cause):
            raise InputError(f"{spec} does not take a `seed` keyword, but problem {problem.name!r} point "
                             f"{point.name!r} gives one") from cause
        raise
    cost, params, grads, batch_cost = cost_problem(spec, result)
    try:
        source = Path(inspect.getsourcefile(func) or "").read_bytes()
    except (OSError, TypeError):
        source = b""
    return cost, params, grads, batch_cost, source


def _build_factory(problem: Problem, point: Point):
    cost, params, grads, batch_cost, source = _call_factory(problem, point)
    if point.train_steps:
        if not callable(grads) or isinstance(grads, (dict, np.ndarray)):
            raise InputError(f"problem {problem.name!r} point {point.name!r} trains {point.train_steps} steps: "
                             f"{problem.spec['factory']} must return grads as a callable grads(params)")
        layout, theta = Layout.from_params(params)
        params = _train(layout, theta, grads, point.train_steps, point.learning_rate)
    return cost, params, grads, batch_cost, source


def prepare_unit(problem: Problem, point: Point) -> Unit:
    """Build ``problem`` at ``point`` and prepare its check, tagged with the unit's hashes.

    Raises
    ------
    FastcheckError
        The factory failed or returned something unusable, training diverged, or the
        check refused its input (a cost that is not deterministic, mismatched shapes, ...).
    """
    started = time.perf_counter()
    o = problem.options
    if problem.kind == "mlp":
        net, params, grads, X, Y = _build_mlp(problem, point)
        threads = None if o["n_jobs"] in (None, -1) else o["n_jobs"]  # default: numba's, every core
        prepared = prepare_mlp(net, params, grads, X, Y, options=problem.check, n_threads=threads)
        extra = (X, Y)
    else:
        cost, params, grads, batch_cost, source = _build_factory(problem, point)
        backend = "dask" if o["backend"] == "dask" else None
        in_process = (o["n_jobs"] or 1) == 1 and batch_cost is None and backend is None
        # the engine the problem names, else the check's own default in this process (the traced engine where the
        # cost traces, else the reference loop); workers, Dask or a vectorized cost ask for the black-box engine
        options = problem.check if in_process or problem.check.engine else problem.check.but(engine="blackbox")
        prepared = prepare_check(cost, params, grads, options=options, n_jobs=o["n_jobs"] or 1,
                                 batch_cost=batch_cost, backend=backend, progress=False)
        extra = (source,)
    config_hash = sha256(canonical({"problem": problem.settings(), "point": point.settings()}))
    arrays = [np.ascontiguousarray(a) for a in (prepared.theta, prepared.analytic, *extra) if isinstance(a, np.ndarray)]
    key = sha256(config_hash, __version__, *(memoryview(a).cast("B") for a in arrays),
                 *(a for a in extra if isinstance(a, bytes)))
    prepared = prepared.with_settings(nightly={
        "problem": problem.name, "point": point.name, "config_hash": config_hash, "key": key})
    return Unit(problem, point, prepared, config_hash, key, time.perf_counter() - started)
