"""The public entry points: :func:`check` for any cost, :func:`check_mlp` for the built-in MLP."""

from __future__ import annotations

import time

import numpy as np

from .errors import InputError
from .finite import DEFAULT_EPS, Bounds, validate_eps
from .layout import Layout
from .objective import CostObjective, MLPObjective
from .reference import reference_engine
from .report import Report, build_report

__all__ = ["check", "check_mlp", "KINK_POLICIES"]

KINK_POLICIES = ("exclude", "include")
MODES = ("full",)


def _settings(eps, mode, kinks, seed, warn, fail):
    eps = validate_eps(eps)
    if mode not in MODES:
        raise InputError(f"`mode`={mode!r} is not one of {', '.join(map(repr, MODES))}")
    if kinks not in KINK_POLICIES:
        raise InputError(f"`kinks`={kinks!r} must be 'exclude' (the default) or 'include'")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"`seed`={seed!r} must be a non-negative integer")
    return eps, Bounds(warn=warn, fail=fail)


def _select(layout: Layout, mode: str, seed: int) -> np.ndarray:
    return np.arange(layout.n_params, dtype=np.int64)


def check(cost, params, grads, *, eps: float = DEFAULT_EPS, mode: str = "full", seed: int = 0,
          n_jobs: int = 1, batch_cost=None, backend: str | None = None, chunk_size: int | None = None,
          max_memory: int | None = None, progress: bool | None = None, warn: float = 1e-6,
          fail: float = 1e-3, cast: bool = False) -> Report:
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
    mode : {"full"}
        ``"full"`` checks every coordinate.
    seed : int
        Seed of the random modes; recorded in the report.
    n_jobs : int
        Worker processes for the black-box engine (-1: all cores); 1 runs the reference
        loop in this process.
    batch_cost : callable ``batch_cost(thetas) -> costs``, optional
        A vectorized cost over a (k, n) stack of flat thetas, returning k costs.
    backend : {"loky", "threading", "dask"}, optional
        joblib backend of the black-box engine (default: joblib's, loky).
    chunk_size : int, optional
        Coordinates per task of the black-box engine (default: chosen from a timing).
    max_memory : int, optional
        Bytes of perturbed thetas stacked at once for ``batch_cost``.
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
    started = time.perf_counter()
    eps, bounds = _settings(eps, mode, "exclude", seed, warn, fail)
    layout, theta = Layout.from_params(params, cast=cast)
    analytic = layout.resolve_grads(grads, params, cast=cast)
    objective = CostObjective(cost, layout)
    objective.base(theta)
    indices = _select(layout, mode, seed)
    if n_jobs == 1 and batch_cost is None and backend is None:
        engine = "reference"
        evaluations = reference_engine(objective, theta, indices, eps)
    else:
        from .blackbox import blackbox_engine

        engine = "blackbox"
        evaluations = blackbox_engine(objective, theta, indices, eps, n_jobs=n_jobs, batch_cost=batch_cost,
                                      backend=backend, chunk_size=chunk_size, max_memory=max_memory,
                                      progress=progress)
    settings = {"eps": eps, "mode": mode, "engine": engine, "seed": seed, "kinks": "exclude", "n_jobs": n_jobs}
    return build_report(layout, analytic, evaluations, bounds=bounds, settings=settings,
                        elapsed=time.perf_counter() - started)


def check_mlp(net, params, grads, X, Y, *, engine: str = "reference", eps: float = DEFAULT_EPS,
              mode: str = "full", seed: int = 0, kinks: str = "exclude", max_memory: int | None = None,
              n_threads: int | None = None, warn: float = 1e-6, fail: float = 1e-3,
              cast: bool = False) -> Report:
    """:meth:`fastcheck.MLP.check`: check ``grads`` against the built-in network's cost."""
    started = time.perf_counter()
    eps, bounds = _settings(eps, mode, kinks, seed, warn, fail)
    engines = ("batched", "reference")
    if engine not in engines:
        raise InputError(f"`engine`={engine!r} is not one of {', '.join(map(repr, engines))}")
    net.validate_params(params)
    layout, theta = Layout.from_params(params, cast=cast)
    X, Y = net.validate_data(X, Y)
    analytic = layout.resolve_grads(grads, params, cast=cast)
    indices = _select(layout, mode, seed)
    if engine == "reference":
        objective = MLPObjective(net, layout, X, Y)
        objective.base(theta)
        evaluations = reference_engine(objective, theta, indices, eps)
    else:
        from .batched import batched_engine

        evaluations = batched_engine(net, layout.unflatten(theta), X, Y, indices, eps, max_memory=max_memory,
                                     n_threads=n_threads)
    settings = {"eps": eps, "mode": mode, "engine": engine, "seed": seed, "kinks": kinks}
    return build_report(layout, analytic, evaluations, bounds=bounds, settings=settings,
                        elapsed=time.perf_counter() - started)
