"""The black-box engine: central differences of any user cost, in parallel or stacked.

Coordinates are split into chunks. Each chunk is evaluated by one module-level
worker, :func:`evaluate_chunk`, which runs exactly the reference engine's loop
(set theta_i to orig + eps, evaluate, orig - eps, evaluate, restore) or, when the
caller gives a vectorized ``batch_cost``, evaluates the same perturbed thetas as rows
of a stack. The same worker serves joblib's process backend (loky, the default), its
threading backend and its dask backend, so a check runs unchanged on one core, on all
cores of a machine or on a Dask cluster, and gives bit-for-bit the numbers of the
serial reference engine: the per-coordinate arithmetic is the same, only where it runs
changes.

Choices made here, in one place:

- **Chunk size** (when not given): the first coordinates are evaluated in this process,
  in growing chunks, until :data:`PROBE_SECONDS` have passed. Those results are kept;
  the timing sets the chunk size so that a task takes about :data:`TASK_SECONDS` and
  every worker gets several tasks. A job whose remainder would take less than
  :data:`MIN_PARALLEL_SECONDS` runs in this process: starting workers would cost more
  than they save (a ~10 us cost is never slower in parallel than serially).
  Give ``chunk_size`` to force the split onto the workers.
- **Threads**: workers x threads <= cores. loky workers start with BLAS/OpenMP/numba
  capped at ``cores // n_workers`` (joblib's ``inner_max_num_threads``); with the
  threading backend BLAS is capped for the duration of the call and restored in
  ``finally``, and numba (thread-local) in each worker thread; Dask workers cap
  BLAS/OpenMP themselves (one thread each by default) and numba is capped per task.
- **batch_cost with n_jobs**: both apply. Each task evaluates its chunk as stacks of
  at most ``max_memory / n_workers`` bytes; with ``n_jobs=1`` the stacks run in this
  process, with the cost's own BLAS threads (usually the best use of a machine).
- **Dask**: with joblib's dask backend active (``backend="dask"`` or
  ``joblib.parallel_config(backend="dask")``), the chunks are submitted to its client
  directly, so that a worker dying under a task ends the check with a
  :class:`WorkerError` (joblib's own dispatch waits forever on a task the scheduler gave
  up on). theta, the objective and ``batch_cost`` are scattered to every worker once
  per call and the tasks carry futures, not copies (on a cluster of one worker, whose
  death would lose the only copy, each task carries its own).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import sys
import tempfile
import time
import warnings

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

from ...core.finite import central_difference
from ...core.objective import perturbation_label, require_deterministic
from ...core.results import Evaluations
from ...errors import CostError, DtypeError, InputError, WorkerError
from ..reference import reference_engine

__all__ = [
    "blackbox_engine",
    "blackbox_directions",
    "evaluate_chunk",
    "evaluate_direction_chunk",
    "DEFAULT_MAX_MEMORY",
    "MAX_ROWS",
    "TASK_SECONDS",
    "PROBE_SECONDS",
    "MIN_PARALLEL_SECONDS",
]

#: Bytes of perturbed thetas stacked at once for ``batch_cost`` (over all workers).
DEFAULT_MAX_MEMORY = 256 * 2**20
#: Rows per call of ``batch_cost`` at most: its own intermediates (activations...) are
#: unknown here, so they are bounded to this many times one evaluation's.
MAX_ROWS = 256
#: Target duration of one task (one chunk of coordinates).
TASK_SECONDS = 0.25
#: Time spent evaluating the first coordinates in this process to size the chunks.
PROBE_SECONDS = 0.05
#: Below this estimated duration the job runs in this process, without workers.
MIN_PARALLEL_SECONDS = 1.0
#: Tasks per worker, at least, so that uneven tasks still balance.
TASKS_PER_WORKER = 4
#: With ``progress=None``, the progress line appears once a run has taken this long.
PROGRESS_AFTER = 2.0

_BACKENDS = ("loky", "threading", "multiprocessing", "dask", "sequential")


# ---------------------------------------------------------------------- the worker
def evaluate_chunk(objective, theta: np.ndarray, indices: np.ndarray, eps: float, batch_cost=None,
                   rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """J(theta + eps e_i) and J(theta - eps e_i) for the coordinates ``indices``.

    Without ``batch_cost`` this is :func:`fastcheck.reference.reference_engine`
    itself. With it, the perturbed thetas are the rows of (at most ``rows``, 2 per
    coordinate) stacks: row 2p is theta with ``theta[i] + eps``, row 2p + 1 with
    ``theta[i] - eps``, the very values the reference loop sets.

    Parameters
    ----------
    objective : CostObjective
    theta : ndarray of shape (n,), float64
        Not modified.
    indices : ndarray of int64, shape (k,)
    eps : float
    batch_cost : callable ``(thetas of shape (r, n)) -> costs of shape (r,)``, optional
    rows : int
        Largest stack given to ``batch_cost`` (even, >= 2).

    Returns
    -------
    cost_plus, cost_minus : ndarray of float64, shape (k,)
    """
    if batch_cost is None:
        ev = reference_engine(objective, theta, indices, eps)
        return ev.cost_plus, ev.cost_minus
    k, per_stack = len(indices), max(1, rows // 2)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    stack = np.empty((2 * min(per_stack, k), theta.size))
    stack[:] = theta
    for start in range(0, k, per_stack):
        idx = np.asarray(indices[start:start + per_stack], dtype=np.int64)
        m = len(idx)
        plus, minus = 2 * np.arange(m), 2 * np.arange(m) + 1
        stack[plus, idx] = theta[idx] + eps
        stack[minus, idx] = theta[idx] - eps
        view = stack[: 2 * m].view()
        view.flags.writeable = False
        costs = _call_batch_cost(batch_cost, view, objective.layout, idx)
        cost_plus[start:start + m], cost_minus[start:start + m] = costs[0::2], costs[1::2]
        stack[plus, idx] = theta[idx]
        stack[minus, idx] = theta[idx]
    return cost_plus, cost_minus


def evaluate_direction_chunk(objective, theta: np.ndarray, directions, eps: float, batch_cost=None,
                             rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """J(theta+) and J(theta-) for random ``directions`` (see :mod:`fastcheck.directions`).

    Without ``batch_cost``, :func:`fastcheck.directions.direction_costs` (the serial loop);
    with it, the perturbed thetas are
    the rows of stacks of at most ``rows`` (row 2p: direction p's theta+, row 2p + 1:
    its theta-).
    """
    from ...core.directions import direction_steps
    from ..reference import direction_costs

    if batch_cost is None:
        return direction_costs(objective, theta, directions, eps)
    k, per_stack = len(directions), max(1, rows // 2)
    cost_plus, cost_minus = np.empty(k), np.empty(k)
    zeros = np.zeros(0)
    for start in range(0, k, per_stack):
        chunk = directions[start:start + per_stack]
        stack = np.empty((2 * len(chunk), theta.size))
        stack[:] = theta
        for p, d in enumerate(chunk):
            steps = direction_steps(theta, zeros, [d], eps, analytic=False)
            base = theta[d.start:d.stop]
            stack[2 * p, d.start:d.stop] = base + steps.plus[0]
            stack[2 * p + 1, d.start:d.stop] = base - steps.minus[0]
        stack.flags.writeable = False
        costs = _call_batch_cost(batch_cost, stack, objective.layout, chunk)
        cost_plus[start:start + len(chunk)], cost_minus[start:start + len(chunk)] = costs[0::2], costs[1::2]
    return cost_plus, cost_minus


def _worker(objective, theta, chunk_id, items, eps, batch_cost, rows, numba_threads, markers=None,
            evaluate=evaluate_chunk):
    """One task: a chunk of coordinates (or directions) in a joblib worker -> (chunk_id, cost_plus, cost_minus).

    ``markers``: a directory on this machine where the task leaves a file named after its
    chunk while it runs, so that the chunk of a worker that dies can be named.
    """
    marker = None if markers is None else os.path.join(markers, str(chunk_id))
    if marker is not None:
        open(marker, "w").close()
    with _numba_threads(numba_threads):
        try:
            cost_plus, cost_minus = evaluate(objective, theta, items, eps, batch_cost, rows)
        except SystemExit as exc:  # never let a worker's sys.exit end the caller's program
            raise CostError(f"the cost called sys.exit({exc.code!r}) while evaluating "
                            f"{_span(objective.layout, items)}; it must return a float") from None
        finally:
            if marker is not None:
                os.unlink(marker)
    return chunk_id, cost_plus, cost_minus


@contextlib.contextmanager
def _numba_threads(n):
    """Cap numba's threads for the calling thread (numba's setting is thread-local); restore after."""
    if not n or "numba" not in sys.modules:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


# ---------------------------------------------------------------------- batch_cost
def _call_batch_cost(batch_cost, thetas: np.ndarray, layout, idx) -> np.ndarray:
    """``batch_cost(thetas)``, validated: k finite float64 costs. ``idx=None``: the unperturbed theta."""
    k = thetas.shape[0]
    what = ("the unperturbed parameters" if idx is None
            else f"{k} perturbed thetas ({_span(layout, idx)}, each + eps and - eps)")
    try:
        out = batch_cost(thetas)
    except ValueError as exc:
        if "read-only" in str(exc):
            raise CostError(f"`batch_cost` tried to modify the stack of {what} it was given; "
                            "it must leave its input unchanged (work on a copy)") from exc
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
    except Exception as exc:
        raise CostError(f"`batch_cost` raised {type(exc).__name__} on a stack of {what}: {exc}") from exc
    out = out if isinstance(out, np.ndarray) else np.asarray(out)
    if out.shape == (k, 1):
        out = out[:, 0]
    if out.shape != (k,):
        raise CostError(f"`batch_cost` returned an array of shape {out.shape} for a stack of {what} "
                        f"(shape {thetas.shape}); it must return one cost per row, shape ({k},)")
    if out.dtype != np.float64:
        raise DtypeError(f"`batch_cost` returned {out.dtype} costs for a stack of {what}; compute them in "
                         "float64 so that central differences are not drowned in rounding")
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.argmax(bad))
        where = ("the unperturbed parameters" if idx is None
                 else _item_label(layout, idx[row // 2], +1 if row % 2 == 0 else -1))
        raise CostError(f"`batch_cost` returned {out[row]} at {where} (row {row} of the stack, "
                        f"{int(bad.sum())} non-finite in all); costs must be finite")
    return out


def _check_batch_cost(objective, batch_cost, theta) -> None:
    """``batch_cost`` and ``cost`` must compute the same J: compare them at theta."""
    if not callable(batch_cost):
        raise InputError(f"`batch_cost` is a {type(batch_cost).__name__}, not a callable "
                         "batch_cost(thetas of shape (k, n)) -> costs of shape (k,)")
    view = theta[None, :].view()
    view.flags.writeable = False
    batched = float(_call_batch_cost(batch_cost, view, objective.layout, None)[0])
    single = objective.evaluate(theta)
    if abs(batched - single) > 1e-9 * max(1.0, abs(single)):
        raise CostError(f"`batch_cost` gives {batched!r} but `cost` gives {single!r} at the unperturbed "
                        "parameters; they must compute the same J (same data, same regularization)")
    try:  # a batch cost that drifts (random sampling, dropout) is refused like a cost that does
        require_deterministic(batched, float(_call_batch_cost(batch_cost, view, objective.layout, None)[0]))
    except CostError as exc:
        raise type(exc)(f"`batch_cost`: {exc}") from None


# ---------------------------------------------------------------------- the engine
def blackbox_engine(objective, theta: np.ndarray, indices, eps: float, *, n_jobs=1, batch_cost=None,
                    backend: str | None = None, chunk_size: int | None = None, max_memory: int | None = None,
                    progress: bool | None = None) -> Evaluations:
    """Central differences of a user cost, in chunks on joblib workers or as stacks.

    Parameters
    ----------
    objective : CostObjective
        The user's cost as a function of flat theta (picklable); ``objective.base``
        has been called.
    theta : ndarray of shape (n,), float64
        Not modified.
    indices : ndarray of int, shape (k,)
        Coordinates to check, in the order of the result.
    eps : float
    n_jobs : int
        joblib workers (-1: all cores of the machine, or of the cluster with Dask).
    batch_cost : callable ``batch_cost(thetas) -> costs``, optional
        Vectorized cost over a (r, n) float64 stack of flat thetas, returning r
        float64 costs (shape (r,) or (r, 1)). It must compute the same J as ``cost``.
    backend : {"loky", "threading", "multiprocessing", "dask"}, optional
        joblib backend; default: the active one (loky, or the one set by
        ``joblib.parallel_config``). ``"dask"`` needs a running ``distributed.Client``.
    chunk_size : int, optional
        Coordinates per task. Default: chosen from a timing of the first coordinates,
        and a small job runs in this process; given, every chunk goes to the workers.
    max_memory : int, optional
        Bytes of stacked thetas for ``batch_cost`` at any time (default 256 MiB),
        shared between the workers. A stack also has at most :data:`MAX_ROWS` rows.
    progress : bool, optional
        True: always show a progress line on stderr; None: on a terminal, for runs
        longer than about 2 s; False: never.

    Returns
    -------
    Evaluations
        Aligned with ``indices``; ``kinks`` all False. Bit-for-bit the reference
        engine's numbers whatever ``n_jobs``, backend and chunk size (for a cost whose
        arithmetic does not depend on its thread count or the machine it runs on).

    Raises
    ------
    InputError
        Bad settings, ``backend="dask"`` without a client, a cost that cannot be
        pickled for worker processes (a :class:`CostError`).
    CostError
        The cost raised or returned a bad value (the message names the coordinate), or
        a worker process died (the message names the coordinates it was evaluating).
    KeyboardInterrupt
        Re-raised after the workers are stopped; no partial result.
    """
    indices = np.asarray(indices, dtype=np.int64)
    run = _execute(objective, theta, indices, eps, n_jobs, batch_cost, backend, chunk_size, max_memory, progress)
    return run.result()


def blackbox_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list, eps: float, *,
                        n_jobs=1, batch_cost=None, backend: str | None = None, chunk_size: int | None = None,
                        max_memory: int | None = None, progress: bool | None = None):
    """Random-direction central differences of a user cost, on joblib workers or as stacks.

    The directions mode of :func:`blackbox_engine`, with the same settings, chunking,
    thread caps, faults and progress: ``chunk_size`` counts directions. The numbers are
    bit for bit those of :func:`fastcheck.directions.evaluate_directions`, whatever
    ``n_jobs``, backend and chunk size.

    Returns
    -------
    DirectionEvaluations
    """
    from ...core.directions import direction_steps
    from ...core.results import DirectionEvaluations

    directions = list(directions)
    run = _execute(objective, theta, directions, eps, n_jobs, batch_cost, backend, chunk_size, max_memory,
                   progress)
    cost_plus, cost_minus = run.costs()
    an = np.array([direction_steps(theta, analytic, [d], eps).analytic[0] for d in directions])
    return DirectionEvaluations(directions, an, (cost_plus - cost_minus) / (2.0 * eps),
                                np.zeros(len(directions), dtype=bool), 2 * len(directions))


def _execute(objective, theta, items, eps, n_jobs, batch_cost, backend, chunk_size, max_memory, progress) -> _Run:
    """Evaluate every item (coordinate or direction): here, or in chunks on the workers."""
    _validate_settings(n_jobs, chunk_size, max_memory, progress, backend)
    if batch_cost is not None:
        _check_batch_cost(objective, batch_cost, theta)
    k = len(items)
    run = _Run(objective, theta, items, eps, batch_cost, progress)
    if k == 0:
        return run
    with contextlib.ExitStack() as stack:
        stack.callback(run.progress.close)
        if backend is not None:
            stack.enter_context(_backend_config(backend))
        active, _ = joblib.parallel.get_active_backend()
        n_workers = _effective_n_jobs(n_jobs, backend)
        uses_threads = bool(getattr(active, "uses_threads", False))
        memory = max_memory or DEFAULT_MAX_MEMORY
        rows = _rows(memory // max(1, n_workers), theta.size)
        run.rows = rows
        if chunk_size is None:
            done = run.probe()
            per_coordinate = run.seconds_per_coordinate
            remaining = k - done
            parallel_worth = (n_workers > 1 and remaining > 0
                              and per_coordinate * remaining > (0.05 if uses_threads else MIN_PARALLEL_SECONDS))
            chunk = max(1, round(TASK_SECONDS / max(per_coordinate, 1e-9)))
            if not parallel_worth:
                run.rows = min(_rows(memory, theta.size), 2 * chunk)
                run.in_process(done, chunk)
                return run
            chunk = min(chunk, math.ceil(remaining / (TASKS_PER_WORKER * n_workers)))
        else:
            done, chunk = 0, chunk_size
        run.rows = min(rows, 2 * chunk)
        run.in_workers(done, chunk, n_workers, active, stack)
    return run


class _Run:
    """The results of one engine call, filled chunk by chunk, and the ways to fill them.

    ``items`` are coordinates (an int64 array, evaluated by :func:`evaluate_chunk`) or
    random directions (a list, by :func:`evaluate_direction_chunk`).
    """

    def __init__(self, objective, theta, items, eps, batch_cost, progress):
        self.objective, self.theta, self.items, self.eps = objective, theta, items, eps
        self.batch_cost, self.rows = batch_cost, 2
        self.coordinates = isinstance(items, np.ndarray)
        self.evaluate = evaluate_chunk if self.coordinates else evaluate_direction_chunk
        k = len(items)
        self.cost_plus, self.cost_minus = np.full(k, np.nan), np.full(k, np.nan)
        self.filled = np.zeros(k, dtype=bool)
        self.seconds_per_coordinate = 0.0
        self.progress = _Progress(k, progress, "coordinates" if self.coordinates else "directions")

    def _store(self, start, stop, cost_plus, cost_minus):
        self.cost_plus[start:stop], self.cost_minus[start:stop] = cost_plus, cost_minus
        self.filled[start:stop] = True
        self.progress.update(stop - start)

    def _local(self, start, stop):
        cp, cm = self.evaluate(self.objective, self.theta, self.items[start:stop], self.eps, self.batch_cost,
                               self.rows)
        self._store(start, stop, cp, cm)

    def probe(self) -> int:
        """Evaluate chunks of 1, 2, 4, ... items here until PROBE_SECONDS; return how many were done."""
        done, size, spent, k = 0, 1, 0.0, len(self.items)
        while done < k and spent < PROBE_SECONDS:
            stop = min(k, done + size)
            tic = time.perf_counter()
            self._local(done, stop)
            elapsed = time.perf_counter() - tic
            spent += elapsed
            self.seconds_per_coordinate = elapsed / (stop - done)
            done, size = stop, 2 * size
        return done

    def in_process(self, start, chunk):
        for lo in range(start, len(self.items), chunk):
            self._local(lo, min(len(self.items), lo + chunk))

    def in_workers(self, start, chunk, n_workers, active, stack):
        bounds = [(lo, min(len(self.items), lo + chunk)) for lo in range(start, len(self.items), chunk)]
        if not bounds:
            return
        name = type(active).__name__
        uses_threads = bool(getattr(active, "uses_threads", False))
        is_dask = "Dask" in name
        if not uses_threads:
            _require_picklable(self.objective, self.batch_cost)
        inner = max(1, (os.cpu_count() or 1) // max(1, n_workers))
        objective, theta, batch_cost = self.objective, self.theta, self.batch_cost
        if is_dask:
            self._on_dask(active.client, bounds)
            return
        if getattr(active, "supports_inner_max_num_threads", False):
            stack.enter_context(joblib.parallel_config(backend=name_of(active), inner_max_num_threads=inner))
        elif uses_threads:
            stack.enter_context(threadpool_limits(inner))
        markers = None if uses_threads else stack.enter_context(tempfile.TemporaryDirectory(prefix="fastcheck-"))
        dispatched: set[int] = set()

        def tasks():
            for c, (lo, hi) in enumerate(bounds):
                dispatched.add(c)
                yield joblib.delayed(_worker)(objective, theta, c, self.items[lo:hi], self.eps, batch_cost,
                                              self.rows, inner, markers, self.evaluate)

        completed: set[int] = set()
        parallel = joblib.Parallel(n_jobs=n_workers, return_as="generator_unordered", batch_size=1,
                                   pre_dispatch="n_jobs")
        outputs = None
        try:
            outputs = parallel(tasks())
            for c, cost_plus, cost_minus in outputs:
                completed.add(c)
                self._store(*bounds[c], cost_plus, cost_minus)
        except BaseException as exc:
            if _is_worker_death(exc):
                running = sorted(int(name) for name in os.listdir(markers)) if markers else []
                running = running or sorted(dispatched - completed) or list(range(len(bounds)))
                raise self._worker_died(exc, bounds, running) from exc
            raise
        finally:
            if outputs is not None:
                with warnings.catch_warnings():  # joblib warns when an aborted generator is closed
                    warnings.simplefilter("ignore")
                    outputs.close()

    def _on_dask(self, client, bounds):
        """The chunks as tasks of the Dask cluster behind joblib's dask backend, submitted directly.

        joblib's own dispatch never hears of a task the scheduler gives up on (a worker
        that died running it: ``KilledWorker``) and waits forever; futures of our own
        report it. theta, the objective and ``batch_cost`` are scattered to every worker
        once (copies survive a worker's death), except on a cluster of one worker, whose
        death would lose the only copy: there each task carries its own.
        """
        from distributed import as_completed

        objective, theta, batch_cost = self.objective, self.theta, self.batch_cost
        if len(client.scheduler_info().get("workers", {})) > 1:
            objective, theta, batch_cost = _scatter(client, [objective, theta, batch_cost])
        futures = {client.submit(_worker, objective, theta, c, self.items[lo:hi], self.eps, batch_cost, self.rows,
                                 1, None, self.evaluate, pure=False): c for c, (lo, hi) in enumerate(bounds)}
        current = None
        try:
            for future in as_completed(list(futures)):
                current = futures[future]
                c, cost_plus, cost_minus = future.result()
                self._store(*bounds[c], cost_plus, cost_minus)
        except BaseException as exc:
            if _is_worker_death(exc):  # every task running on the dead worker fails with it
                failed = {current} | {c for f, c in futures.items() if f.status == "error"}
                client.cancel(list(futures))
                raise self._worker_died(exc, bounds, sorted(failed)) from exc
            client.cancel(list(futures))
            raise

    def _worker_died(self, exc, bounds, running) -> WorkerError:
        spans = [_span(self.objective.layout, self.items[slice(*bounds[c])]) for c in running]
        where = spans[0] if len(spans) == 1 else f"one of: {'; '.join(spans)} (a chunk per running worker)"
        detail = str(exc).strip().split(". ")[0]
        return WorkerError(
            f"a worker process died while evaluating {where}: {type(exc).__name__}: {detail}. "
            "The cost may have called os._exit, crashed in native code or run out of memory; "
            "run with n_jobs=1 to see the failure in this process"
        )

    def costs(self) -> tuple[np.ndarray, np.ndarray]:
        """J(theta+) and J(theta-) of every item; never with a gap."""
        self.progress.close()
        if not self.filled.all():  # never a silent gap
            missing = np.flatnonzero(~self.filled)
            raise RuntimeError(f"internal error: {len(missing)} items were not evaluated "
                               f"(first {_span(self.objective.layout, self.items[missing[0]:missing[0] + 1])})")
        return self.cost_plus, self.cost_minus

    def result(self) -> Evaluations:
        cost_plus, cost_minus = self.costs()
        numeric = central_difference(cost_plus, cost_minus, self.eps)
        return Evaluations(self.items, cost_plus, cost_minus, numeric, np.zeros(len(self.items), dtype=bool),
                           2 * len(self.items))


# ---------------------------------------------------------------------- helpers
def _validate_settings(n_jobs, chunk_size, max_memory, progress, backend) -> None:
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer))
                               or n_jobs == 0):
        raise InputError(f"`n_jobs`={n_jobs!r} must be a non-zero integer (-1: all cores)")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise InputError(f"`chunk_size`={chunk_size!r} must be a positive number of coordinates per task")
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, (int, np.integer))
                                   or max_memory < 1):
        raise InputError(f"`max_memory`={max_memory!r} must be a positive number of bytes")
    if progress not in (None, True, False):
        raise InputError(f"`progress`={progress!r} must be True, False or None (automatic)")
    if backend is not None and backend not in _BACKENDS and backend not in joblib.parallel.BACKENDS:
        raise InputError(f"`backend`={backend!r} is not one of {', '.join(map(repr, _BACKENDS))}")


def _backend_config(backend: str):
    if backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise InputError("`backend`='dask' needs dask.distributed: pip install 'fastcheck[distributed]'") from None
        try:
            return joblib.parallel_config(backend="dask")
        except ValueError as exc:
            raise InputError("`backend`='dask' needs a running Dask client: create one first, e.g. "
                             "`from distributed import Client; client = Client('scheduler-address:8786')` "
                             "or `Client(LocalCluster())`") from exc
    return joblib.parallel_config(backend=backend)


def _effective_n_jobs(n_jobs, backend) -> int:
    if n_jobs is None:
        n_jobs = -1 if backend == "dask" else joblib.parallel.get_active_backend()[1] or 1
    return max(1, int(joblib.effective_n_jobs(n_jobs)))


def name_of(active) -> str:
    """The registry name of an active joblib backend instance."""
    for key, cls in joblib.parallel.BACKENDS.items():
        if type(active) is cls:
            return key
    return "loky"


def _scatter(client, objects) -> list:
    """Send ``objects`` to every worker of the cluster once; futures stand for them in the tasks.

    Not joblib's ``scatter=[...]``: that scatters with ``hash=True``, and two calls that
    scatter the same objects can then lose each other's data (dask/distributed#3703).
    """
    present = [obj for obj in objects if obj is not None]
    futures = iter(client.scatter(present, broadcast=True, hash=False))
    return [None if obj is None else next(futures) for obj in objects]


def _rows(memory: int, n: int) -> int:
    """Rows per stack under ``memory`` bytes and MAX_ROWS: even, at least 2 (one coordinate, both signs)."""
    return max(2, min(MAX_ROWS, 2 * (memory // (16 * max(1, n)))))


class _NullWriter:
    def write(self, data) -> int:
        return len(data)


def _require_picklable(objective, batch_cost) -> None:
    from joblib.externals.loky.backend.reduction import dump  # loky's pickler (cloudpickle)

    for what, obj in (("cost", objective.cost), ("batch_cost", batch_cost)):
        if obj is None:
            continue
        try:
            dump(obj, _NullWriter(), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise CostError(
                f"the `{what}` cannot be sent to worker processes: it cannot be pickled "
                f"({type(exc).__name__}: {exc}). Define it as a module-level function and keep locks, "
                "open files, sockets and database connections out of what it refers to; or use "
                "n_jobs=1, or backend='threading'"
            ) from exc


def _is_worker_death(exc: BaseException) -> bool:
    from joblib.externals.loky.process_executor import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return True
    if "distributed" in sys.modules:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        # a worker that dies with the scattered data makes the tasks needing it "lost dependencies"
        return isinstance(exc, KilledWorker) or (isinstance(exc, FutureCancelledError)
                                                 and "lost dependencies" in str(exc))
    return False


def _span(layout, items) -> str:
    """``'coordinates W1[0, 0]..W1[0, 6]'`` or ``'directions 0 of W1..3 of b1'``: the first and last item."""
    if isinstance(items, np.ndarray):
        first, last = layout.describe(int(items[0])), layout.describe(int(items[-1]))
        noun = "coordinates"
    else:
        first, last = (f"{d.number} of {d.group}" for d in (items[0], items[-1]))
        noun = "directions"
    return f"{noun} {first}" if len(items) == 1 else f"{noun} {first}..{last}"


def _item_label(layout, item, sign: int) -> str:
    """``'W1[2, 3] + eps'`` for a coordinate, ``'direction 3 of W1 (+eps)'`` for a direction."""
    if isinstance(item, (int, np.integer)):
        return perturbation_label(layout, int(item), sign)
    return f"direction {item.number} of {item.group} ({'+' if sign > 0 else '-'}eps)"


class _Progress:
    """A one-line progress report with ETA on stderr: coordinates done, elapsed, remaining."""

    def __init__(self, total: int, progress: bool | None, noun: str = "coordinates"):
        self.total, self.done, self.shown, self.noun = total, 0, False, noun
        self.started = self.last = time.perf_counter()
        self.enabled = progress is True or (progress is None and _stderr_is_tty())
        self.force = progress is True

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self.started
        if (not self.force and elapsed < PROGRESS_AFTER) or (now - self.last < 0.2 and self.done < self.total):
            return
        self.last = now
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        sys.stderr.write(f"\rfastcheck: {self.done:,}/{self.total:,} {self.noun} "
                         f"({100 * self.done / self.total:.0f}%), {_duration(elapsed)} elapsed, "
                         f"ETA {_duration(eta)}   ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
