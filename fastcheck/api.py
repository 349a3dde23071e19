"""The public entry points: :func:`check` and :func:`plan` for any cost, and their
built-in-MLP twins :func:`check_mlp` and :func:`plan_mlp` (behind :meth:`fastcheck.MLP.check`).

Each builds one :class:`~fastcheck.pipeline.options.CheckOptions` from its documented
keywords and hands it to the pipeline: validate, pick an engine, choose what to check,
run, escalate flagged groups, build the report. The ``prepare_*`` twins take the same
keywords (or a ``CheckOptions`` built beforehand, as the command line and the nightly
suite do), stop before running and return the :class:`~fastcheck.pipeline.prepared.Prepared`
check that resumable runs take in pieces.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import fields

import numpy as np

from .core.finite import DEFAULT_EPS, DEFAULT_FAIL, DEFAULT_WARN
from .core.results import merge_evaluations
from .core.selection import DEFAULT_MIN_PER_GROUP
from .errors import InputError
from .pipeline.factories import FROM_COST, NO_GRADIENT, CostProblem, cost_engine
from .pipeline.layer import LayerCost, default_dout, layer_gradients, layer_output
from .pipeline.network import MLPProblem, mlp_engine
from .pipeline.options import CheckOptions
from .pipeline.plan import Plan, make_plan
from .pipeline.prepared import Prepared
from .report import Report

__all__ = ["check", "check_layer", "plan", "check_mlp", "plan_mlp", "Plan", "Prepared", "prepare_check", "prepare_mlp",
           "merge_evaluations", "CheckOptions"]

_OPTION_NAMES = frozenset(f.name for f in fields(CheckOptions)) - {"name"}


def _split(arguments: dict, options: CheckOptions | None = None) -> tuple[CheckOptions, dict]:
    """An entry point's arguments: its CheckOptions (``options`` if given), and the rest."""
    given = {k: v for k, v in arguments.items() if k in _OPTION_NAMES}
    rest = {k: v for k, v in arguments.items() if k not in _OPTION_NAMES}
    return (CheckOptions(**given) if options is None else options), rest


def _arguments(entry, *args, options: CheckOptions | None, **keywords) -> tuple[CheckOptions, dict]:
    """``entry``'s arguments for this call, defaults filled in, split as by :func:`_split`.

    Unknown keywords are a TypeError, as for ``entry`` itself; ``options`` and option
    keywords do not go together.
    """
    if options is not None and _OPTION_NAMES & keywords.keys():
        raise TypeError(f"give either `options` or the keywords {sorted(_OPTION_NAMES & keywords.keys())}")
    bound = inspect.signature(entry).bind(*args, **keywords)
    bound.apply_defaults()
    return _split(bound.arguments, options)


def _aside(problem) -> dict:
    """The settings that record gradient keys left aside (the course's dA1, dZ2, ...), if any."""
    return {"grads_not_parameters": problem.aside} if problem.aside else {}


# ---------------------------------------------------------------------- any cost
# the documented keywords of the public API (one CheckOptions is built from them)
def check(cost, params, grads=FROM_COST, *, eps: float | str = DEFAULT_EPS, mode: str = "full",  # noqa: PLR0913
          fraction: float | None = None,
          n_samples: int | None = None, n_directions: int | None = None, distribution: str | None = None,
          min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, kinks: str = "exclude", escalate: bool = True,
          escalate_budget: int | None = None, budget: float | None = None, n_jobs: int = 1,
          batch_cost=None, backend: str | None = None, chunk_size: int | None = None,
          max_memory: int | None = None, progress: bool | None = None, warn: float = DEFAULT_WARN,
          fail: float = DEFAULT_FAIL, engine: str | None = None, cast: bool = False,
          timeout: float | None = None, stencil: int = 2, sweep: bool | None = None) -> Report:
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
    params : dict of str -> ndarray, list or tuple of ndarray, or ndarray of shape (n,) or (n, 1)
        float64 parameters; the dict (or list) order is theta's order. Never modified. An
        (n, 1) column (the course's ``dictionary_to_vector``) is theta itself: the cost
        receives a column, and ``grads`` has the same shape.
    grads : dict of str -> ndarray, list of ndarray, ndarray of shape (n,), or callable, optional
        The analytic gradient under test, in the structure of ``params`` (a scalar, such
        as ``np.sum(...)``, for a 0-d parameter); dict entries
        may be named ``"W1"`` or ``"dW1"``, and other keys of the course's gradients
        dict (``dA2``, ``dZ1``, ...) are left aside (listed in the report's settings). A
        callable is called as ``grads(params)``. When not given, ``cost`` returns
        ``(loss, grads)`` (as CS231n's ``model.loss`` does): the gradient is taken from
        its call at theta, the loss from every call.
    eps : float or "auto", default 1e-7
        The step, in ``[1e-12, 1e-1]``; ``"auto"`` gives each coordinate its own,
        ``2**-52^(1/3) * max(1, |theta_i|)`` (6.1e-6 for parameters of magnitude at most 1;
        ``2**-52^(1/5)`` with ``stencil=4``), SciPy's rule for central differences (see
        :func:`fastcheck.core.finite.auto_steps`). Not with mode ``"directions"``.
    stencil : {2, 4}, default 2
        2: the central difference ``(J(theta + eps e_i) - J(theta - eps e_i)) / 2 eps``
        (truncation error O(eps^2)); 4: the 4-point stencil
        ``(-J(theta+2h) + 8 J(theta+h) - 8 J(theta-h) + J(theta-2h)) / 12h`` (O(eps^4)), for
        costs of large curvature, at twice the evaluations. Every engine honours both;
        mode ``"directions"`` takes 2.
    sweep : bool or None, default None
        The step sweep, which tells noise from a bug: the worst entries (3 per group, in
        at most 8 groups) of the groups that warn (None, the default), or that warn or
        fail (True), are evaluated again at steps from 1e-3 to 1e-9 by full evaluations of
        the cost, and ``report.sweeps`` says for each whether its error is flat (a bug),
        follows rounding (grows as 1/eps) or truncation (falls as eps^2), and which step
        gives the least error. It explains the verdict; it never changes it. False: never.
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
    distribution : {"signs", "gaussian"}, optional
        The random directions (mode ``"directions"``): ``"signs"`` (the default), each
        group's direction a rank-one pattern ``h a b^T`` over its first axis and the rest,
        each entry of ``a`` and ``b`` a random sign times a magnitude of 1 to 2 (a step
        exact in float64, and fast for the built-in network); or ``"gaussian"``, standard
        normals. A group's error E shows in a direction as ``h a^T E b``, whose mean square
        is proportional to ``||E||^2`` for both; a single wrong entry moves every sign
        direction by 1 to 4 times ``h`` times its error (docs/directions.md compares them).
    seed : int
        Seed of the random modes: same seed, same coordinates and directions.
    kinks : {"exclude", "include"}, default "exclude"
        Coordinates at a kink (a ``maximum``, ``abs``, ``where`` or ``max`` whose branch
        flips within the step, found by the traced engine) or at a tie (a wrong entry whose
        analytic value equals one of its one-sided differences, found for every engine)
        are counted and listed, and left out of the verdict; ``"include"`` keeps them in.
    escalate : bool, default True
        After a subset or directions check, re-check every group that is not
        ``"pass"`` coordinate by coordinate, so the report names the wrong entries
        (and a cheap mode cannot wave a real bug through as a mere ``"warn"``).
    escalate_budget : int, optional
        Entries re-checked per flagged group, at random; by default (None) all of
        them when the engine's estimate says that takes at most 30 s, else as many
        as fit (at least 1,000 per group): first the blocks a bisection with random
        directions narrows the group down to, then a random sample. A group whose
        directions flagged it but whose re-checked entries are all right keeps its
        directions' verdict, with a note that the wrong entries are among those not
        re-checked.
    budget : float, optional
        Seconds: when a full check would take longer (the time spent before the first
        coordinate, and the engine's estimate as :func:`plan` makes it), check the widest
        stratified subset that fits instead; ``report.settings["budget_fit"]`` (and the
        report's notes) say what the budget held, or that even the smallest subset
        (``min_per_group`` per group) is estimated over it.
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
    engine : {"traced", "reference", "blackbox"}, optional
        Default: the traced engine (the cost traced once, every perturbation evaluated
        incrementally and exactly), unless ``backend``, ``batch_cost`` or ``chunk_size``
        ask for the black-box engine; a cost that cannot be traced falls back to the
        reference loop (``n_jobs=1``) or the black-box engine, with the reason in
        ``report.settings["traced_not_used"]``. Given, it forces the engine.
    cast : bool
        Up-cast real non-float64 arrays with a warning instead of raising.
    timeout : float, optional
        Seconds one evaluation of the cost may take, in this process or on a worker
        (``batch_cost``: per row); an evaluation that overruns it ends the check with
        a :class:`CostTimeoutError` naming the coordinate. Default: no limit.

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
        evaluations at the same point (:class:`NondeterministicCostError`), modified
        its input (:class:`MutationError`) or overran ``timeout``
        (:class:`CostTimeoutError`); the message names the coordinate.

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> report = fc.check(lambda theta: float(theta @ x), np.zeros(3), x.copy())
    >>> report.verdict
    'pass'
    """
    return _prepare_cost(*_split(locals())).run()


def prepare_check(cost, params, grads=FROM_COST, options: CheckOptions | None = None, **keywords) -> Prepared:
    """Validate everything :func:`check` takes and return the :class:`Prepared` check.

    ``keywords`` are :func:`check`'s; ``options`` may replace its option keywords.
    """
    return _prepare_cost(*_arguments(check, cost, params, grads, options=options, **keywords))


def _prepare_cost(options: CheckOptions, rest: dict) -> Prepared:
    started = time.perf_counter()
    problem = CostProblem(rest["cost"], rest["params"], rest["grads"], rest["cast"], options.timeout)
    engine = cost_engine(problem, options, n_jobs=rest["n_jobs"], batch_cost=rest["batch_cost"],
                         backend=rest["backend"], chunk_size=rest["chunk_size"], progress=rest["progress"])
    return Prepared(problem.layout, problem.analytic, problem.theta, engine, options, started,
                    {"n_jobs": rest["n_jobs"], **_aside(problem)}, release=problem.objective.release)


# the documented keywords of the public API
def plan(cost, params, *, mode: str = "full", fraction: float | None = None, n_samples: int | None = None,  # noqa: PLR0913
         n_directions: int | None = None, distribution: str | None = None,
         min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, kinks: str = "exclude", n_jobs: int = 1,
         engine: str | None = None, cast: bool = False,
         budget: float | None = None, eps: float | str = DEFAULT_EPS, stencil: int = 2, batch_cost=None,
         backend: str | None = None, chunk_size: int | None = None, options: CheckOptions | None = None) -> Plan:
    """What :func:`check` would do with these settings, which engine would run it, and about how long it would take.

    The plan builds the engine the check would use, as the check does: the cost is
    evaluated twice at theta (to make sure it is deterministic), and, for the traced
    engine, traced and verified on a sample of coordinates of every group (a few
    evaluations of the cost; when that fails, the plan names the engine the check falls
    back to and why). It then times that engine: the traced engine on chunks of every
    group as large as a run's, the reference and black-box engines on a few evaluations
    of the cost. ``plan.n_cost_calls`` counts the calls of the cost the check makes.

    Parameters
    ----------
    cost, params :
        As for :func:`check`.
    mode, fraction, n_samples, n_directions, distribution, min_per_group, seed, kinks, n_jobs, engine, cast,
    budget, eps, stencil, batch_cost, backend, chunk_size :
        As for :func:`check`; those that choose the engine (``engine``, ``n_jobs``,
        ``batch_cost``, ``backend``, ``chunk_size``) choose it here too. With ``budget``, the
        plan is that of the subset the check would fit to it.
    options : CheckOptions, optional
        Replaces the option keywords.

    Returns
    -------
    Plan
        ``str(plan)`` is one line: engine and why, coordinates per group, calls of the cost,
        estimated seconds and what the estimate rests on.
    """
    options, _ = _split({k: v for k, v in locals().items() if k != "options"}, options)
    problem = CostProblem(cost, params, NO_GRADIENT, cast, options.timeout)
    try:
        engine = cost_engine(problem, options, n_jobs=n_jobs, batch_cost=batch_cost, backend=backend,
                             chunk_size=chunk_size, progress=False)
        return make_plan(problem.layout, engine, options)
    finally:
        problem.objective.release()


# ---------------------------------------------------------------------- one layer
def check_layer(forward, inputs, grads=None, *, backward=None, dout=None, seed: int = 0, **options) -> Report:
    """Check a layer's backward: the gradient of ``sum(forward(**inputs) * dout)`` w.r.t. every input.

    This is CS231n's ``eval_numerical_gradient_array`` for every input at once: the
    scalar ``sum(out * dout)`` has exactly the gradients the layer's backward returns for
    the upstream gradient ``dout``.

    Parameters
    ----------
    forward : callable ``forward(**inputs) -> out`` or ``-> (out, cache)``
        The layer's forward pass (CS231n's layers return ``(out, cache)``).
    inputs : dict of str -> ndarray
        float64 arrays, e.g. ``{"x": x, "w": w, "b": b}``; the gradient is checked with
        respect to every one of them, inputs as well as parameters. Never modified.
    grads : dict of str -> ndarray, optional
        The analytic gradients for ``dout``, named as the inputs (``"x"``) or with the
        ``"d"`` prefix (``"dx"``).
    backward : callable ``backward(dout, cache)``, optional
        Instead of ``grads``: returns the gradients in the order of ``inputs``
        (CS231n's signature, e.g. ``dx, dw, db = affine_backward(dout, cache)``).
    dout : ndarray of out's shape, optional
        The upstream gradient; by default seeded standard-normal (the report says so),
        which checks every entry of the backward (``ones`` would not). Needed with
        ``grads`` (the ``dout`` they were computed for), except for a scalar output (a
        loss), where ``grads`` are taken for ``dout = 1``.
    seed : int
        Seed of the default ``dout`` and of the random modes.
    **options
        Any option of :func:`check` (``mode``, ``eps``, ``n_jobs``, ...).

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b, (x, w)
    >>> def affine_backward(dout, cache):
    ...     x, w = cache
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> inputs = {"x": rng.standard_normal((4, 3)), "w": rng.standard_normal((3, 2)), "b": np.zeros(2)}
    >>> fc.check_layer(affine_forward, inputs, backward=affine_backward).verdict
    'pass'
    """
    if not isinstance(inputs, dict) or not inputs:
        raise InputError(f"`inputs` must be a non-empty dict name -> float64 array (x, w, b, ...), "
                         f"got {type(inputs).__name__}")
    result = forward(**{k: np.array(v, copy=True) for k, v in inputs.items()})  # the user's arrays stay as given
    out = layer_output(result)
    cache = result[1] if isinstance(result, tuple) and len(result) > 1 else None
    if dout is None:
        dout, note = default_dout(np.shape(out), seed, given_grads=grads is not None and backward is None)
    else:
        if not isinstance(dout, np.ndarray) or dout.shape != np.shape(out) or dout.dtype != np.float64:
            raise InputError(f"`dout` must be a float64 array of out's shape {np.shape(out)}, got "
                             f"{getattr(dout, 'dtype', type(dout).__name__)} {np.shape(dout)}")
        note = "dout: given (the checked scalar is sum(out * dout))"
    grads = layer_gradients(inputs, grads, backward, dout, cache)
    same_seed = {} if options.get("options") is not None else {"seed": seed}  # a CheckOptions has its seed
    prepared = prepare_check(LayerCost(forward, dout), inputs, grads, **same_seed, **options)
    return prepared.with_settings(layer=note).run()


# ---------------------------------------------------------------------- the built-in MLP
# the documented keywords of the public API
def check_mlp(net, params, grads, X, Y, *, engine: str | None = None, eps: float | str = DEFAULT_EPS,  # noqa: PLR0913
              mode: str = "full", fraction: float | None = None, n_samples: int | None = None,
              n_directions: int | None = None, distribution: str | None = None,
              min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, kinks: str = "exclude", escalate: bool = True,
              escalate_budget: int | None = None,
              budget: float | None = None, max_memory: int | None = None, n_threads: int | None = None,
              warn: float = DEFAULT_WARN, fail: float = DEFAULT_FAIL, cast: bool = False, stencil: int = 2,
              sweep: bool | None = None) -> Report:
    """:meth:`fastcheck.MLP.check`: check ``grads`` against the built-in network's cost.

    The keywords are :func:`check`'s (``eps="auto"``, ``stencil=4`` and ``sweep`` too: the
    batched engine honours every step option); ``engine`` is :meth:`fastcheck.MLP.check`'s
    (unset: the batched engine, or the traced engine while its kernels compile).
    """
    return _prepare_mlp(*_split(locals())).run()


def prepare_mlp(net, params, grads, X, Y, options: CheckOptions | None = None, **keywords) -> Prepared:
    """Validate everything :func:`check_mlp` takes and return the :class:`Prepared` check.

    ``keywords`` are :func:`check_mlp`'s; ``options`` may replace its option keywords.
    """
    return _prepare_mlp(*_arguments(check_mlp, net, params, grads, X, Y, options=options, **keywords))


def _prepare_mlp(options: CheckOptions, rest: dict) -> Prepared:
    started = time.perf_counter()
    net = rest["net"]
    problem = MLPProblem(net, rest["params"], rest["grads"], rest["X"], rest["Y"], rest["cast"])
    engine = mlp_engine(problem, options, n_threads=rest["n_threads"])
    return Prepared(problem.layout, problem.analytic, problem.theta, engine, options, started, _aside(problem),
                    context={"m": problem.X.shape[1], "l2": net.l2})


# the documented keywords of the public API
def plan_mlp(net, params, X, Y, *, engine: str | None = None, mode: str = "full", fraction: float | None = None,  # noqa: PLR0913
             n_samples: int | None = None, n_directions: int | None = None, distribution: str | None = None,
             min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0, options: CheckOptions | None = None) -> Plan:
    """:meth:`fastcheck.MLP.plan`: what :meth:`MLP.check` would do, and about how long it would take.

    ``options``, when given, replaces the option keywords.
    """
    options, _ = _split({k: v for k, v in locals().items() if k != "options"}, options)
    problem = MLPProblem(net, params, NO_GRADIENT, X, Y, False)
    return make_plan(problem.layout, mlp_engine(problem, options), options)
