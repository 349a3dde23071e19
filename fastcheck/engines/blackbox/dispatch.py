"""The black-box engine: central differences of any user cost, in parallel or stacked.

Coordinates are split into chunks. Each chunk is evaluated by one module-level
worker (:mod:`.workers`), which runs exactly the reference engine's loop (set theta_i
to orig + eps, evaluate, orig - eps, evaluate, restore) or, when the caller gives a
vectorized ``batch_cost``, evaluates the same perturbed thetas as rows of a stack. The
same worker serves joblib's process backend (loky, the default), its threading backend
and its dask backend (:mod:`.backends`), so a check runs unchanged on one core, on all
cores of a machine or on a Dask cluster, and gives bit-for-bit the numbers of the
serial reference engine: the per-coordinate arithmetic is the same, only where it runs
changes. This module schedules: it sizes the chunks and decides where they run.

Choices made here, in one place:

- **Chunk size** (when not given): the first coordinates are evaluated in this process,
  in growing chunks, until :data:`PROBE_SECONDS` have passed. Those results are kept;
  the timing sets the chunk size so that a task takes about :data:`TASK_SECONDS` and
  every worker gets several tasks. A job whose remainder would take less than
  :data:`MIN_PARALLEL_SECONDS` runs in this process, and so does one that would take
  longer on the workers, counting :data:`WORKER_START_SECONDS` to start them and the
  pickled cost each task carries (a cost closing over a large array is shipped with
  every task: such a job gets one task per worker). The report's settings say how many
  workers ran (``workers``) or why none did (``in_process``).
  Give ``chunk_size`` to force the split onto the workers.
- **Threads**: the cost (and ``batch_cost``) runs with one BLAS, OpenMP and numba
  thread wherever it runs: in this process for the whole call, in each task of a
  worker process, thread or Dask worker (:func:`fastcheck.core.threads.single_threaded`,
  restored in ``finally``; loky's workers also start so, by joblib's
  ``inner_max_num_threads``). A threaded BLAS rounds a long product differently with
  another thread count, so this is what makes the numbers independent of ``n_jobs``;
  the parallelism is the workers'.
- **batch_cost with n_jobs**: both apply. Each task evaluates its chunk as stacks of
  at most ``max_memory / n_workers`` bytes; with ``n_jobs=1`` the stacks run in this
  process.
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
import copy
import functools
import math
import os
import time

import joblib
import numpy as np

from ...core.deadline import time_limits
from ...core.directions import direction_steps
from ...core.finite import central_difference, coordinate_gradient, step_at
from ...core.limits import DEFAULT_MAX_MEMORY
from ...core.objective import span
from ...core.progress import ProgressLine
from ...core.results import DirectionEvaluations, Evaluations
from ...core.settings import require_count, require_max_memory, require_n_jobs, require_timeout
from ...core.threads import single_threaded
from ...errors import InputError
from .backends import BACKENDS, backend_config, effective_n_jobs, run_on_dask, run_on_joblib
from .faults import Pickled, pickled
from .workers import check_batch_cost, evaluate_chunk, evaluate_direction_chunk, stack_rows

__all__ = ["blackbox_engine", "blackbox_directions", "TASK_SECONDS", "PROBE_SECONDS", "MIN_PARALLEL_SECONDS",
           "TASKS_PER_WORKER", "WORKER_START_SECONDS", "SHIP_BYTES_PER_SECOND", "WORKER_GAIN"]

#: Target duration of one task (one chunk of coordinates).
TASK_SECONDS = 0.25
#: Time spent evaluating the first coordinates in this process to size the chunks.
PROBE_SECONDS = 0.05
#: Below this estimated duration the job runs in this process, without workers.
MIN_PARALLEL_SECONDS = 1.0
#: ... on threads (nothing to start or ship: a shorter job pays).
THREADS_MIN_SECONDS = 0.05
#: Tasks per worker, at least, so that uneven tasks still balance.
TASKS_PER_WORKER = 4
#: About how long worker processes take to start (each a Python importing numpy and fastcheck), counted
#: against the time they save.
WORKER_START_SECONDS = 1.0
#: Each task carries the pickled cost to its worker process (pickled here, sent, unpickled there): about
#: this many bytes a second.
SHIP_BYTES_PER_SECOND = 200e6
#: Workers run only when the estimate says they take at most this share of the time in this process
#: (the estimate is rough: a saving that small is not worth the risk).
WORKER_GAIN = 0.8


def blackbox_engine(objective, theta: np.ndarray, indices, eps: float, *, n_jobs=1, batch_cost=None,  # noqa: PLR0913
                    backend: str | None = None, chunk_size: int | None = None, max_memory: int | None = None,
                    progress: bool | None = None, timeout: float | None = None,
                    notes: dict | None = None) -> Evaluations:
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
        shared between the workers. A stack also has at most
        :data:`~fastcheck.engines.blackbox.workers.MAX_ROWS` rows.
    progress : bool, optional
        True: always show a progress line on stderr; None: on a terminal, for runs
        longer than about 2 s; False: never.
    timeout : float, optional
        Seconds one evaluation of the cost may take (``batch_cost``: per row of a
        stack), wherever it runs; default: the objective's own (``objective.timeout``,
        None: no limit). See :mod:`fastcheck.core.deadline` for how an overrun ends.
    notes : dict, optional
        When workers were asked for, receives ``workers`` (how many ran chunks, over this
        and earlier calls given the same dict) and, when none did, ``in_process``: why
        (the job would not pay for starting them and shipping the cost to them).

    Returns
    -------
    Evaluations
        Aligned with ``indices``; ``kinks`` all False. Bit-for-bit the reference
        engine's numbers whatever ``n_jobs``, backend and chunk size: the cost runs
        with one BLAS and numba thread everywhere (for a cost whose arithmetic does
        not depend on the machine it runs on: a Dask cluster of other CPUs may round
        differently).

    Raises
    ------
    InputError
        Bad settings, ``backend="dask"`` without a client, a cost that cannot be
        pickled for worker processes (a :class:`CostError`).
    CostError
        The cost raised or returned a bad value (the message names the coordinate), or
        a worker process died (the message names the coordinates it was evaluating).
    CostTimeoutError
        An evaluation overran ``timeout`` (the message names the coordinate).
    KeyboardInterrupt
        Re-raised after the workers are stopped; no partial result.
    """
    indices = np.asarray(indices, dtype=np.int64)
    run = _execute(_limited(objective, timeout), theta, indices, eps, n_jobs, batch_cost, backend, chunk_size,
                   max_memory, progress)
    _note_workers(notes, run, n_jobs, backend)
    return run.result()


# the black-box engine's keywords, as the pipeline passes them
def blackbox_directions(objective, theta: np.ndarray, analytic: np.ndarray, directions: list, eps: float, *,  # noqa: PLR0913
                        n_jobs=1, batch_cost=None, backend: str | None = None, chunk_size: int | None = None,
                        max_memory: int | None = None, progress: bool | None = None, timeout: float | None = None,
                        notes: dict | None = None):
    """Random-direction central differences of a user cost, on joblib workers or as stacks.

    The directions mode of :func:`blackbox_engine`, with the same settings, chunking,
    thread caps, faults and progress: ``chunk_size`` counts directions. The numbers are
    bit for bit those of :func:`fastcheck.engines.reference.evaluate_directions`,
    whatever ``n_jobs``, backend and chunk size.

    Returns
    -------
    DirectionEvaluations
    """
    directions = list(directions)
    run = _execute(_limited(objective, timeout), theta, directions, eps, n_jobs, batch_cost, backend, chunk_size,
                   max_memory, progress)
    _note_workers(notes, run, n_jobs, backend)
    cost_plus, cost_minus = run.costs()
    an = np.array([direction_steps(theta, analytic, [d], eps).analytic[0] for d in directions])
    return DirectionEvaluations(directions, an, central_difference(cost_plus, cost_minus, eps),
                                np.zeros(len(directions), dtype=bool), 2 * len(directions))


def _limited(objective, timeout):
    """``objective`` with a time limit on each evaluation (a copy: the caller's keeps its own)."""
    if timeout is None:
        return objective
    objective = copy.copy(objective)
    objective.timeout = require_timeout(timeout)
    return objective


def _execute(objective, theta, items, eps, n_jobs, batch_cost, backend, chunk_size, max_memory, progress) -> _Run:
    """Evaluate every item (coordinate or direction): here, or in chunks on the workers."""
    _validate_settings(n_jobs, chunk_size, max_memory, progress, backend)
    with time_limits(objective.timeout):
        if batch_cost is not None:
            check_batch_cost(objective, batch_cost, theta)
    k = len(items)
    run = _Run(objective, theta, items, eps, batch_cost, progress)
    if k == 0:
        return run
    with contextlib.ExitStack() as stack:
        stack.callback(run.progress.finish)
        stack.enter_context(single_threaded())  # before any worker thread starts: they share the cap
        stack.enter_context(time_limits(objective.timeout))  # evaluations in this process: the probe, small jobs
        if backend is not None:
            stack.enter_context(backend_config(backend))
        active, _ = joblib.parallel.get_active_backend()
        n_workers = effective_n_jobs(n_jobs, backend)
        uses_threads = bool(getattr(active, "uses_threads", False))
        memory = max_memory or DEFAULT_MAX_MEMORY
        rows = stack_rows(memory // max(1, n_workers), theta.size)
        run.rows = rows
        if chunk_size is None:
            done = run.probe()
            chunk = max(1, round(TASK_SECONDS / max(run.seconds_per_coordinate, 1e-9)))
            on_workers, run.in_process_reason = _worker_chunk(run, k - done, chunk, n_workers, uses_threads)
            if on_workers is None:
                run.rows = min(stack_rows(memory, theta.size), 2 * chunk)
                run.in_process(done, chunk)
                return run
            chunk = on_workers
        else:
            done, chunk = 0, chunk_size
        run.rows = min(rows, 2 * chunk)
        bounds = [(lo, min(k, lo + chunk)) for lo in range(done, k, chunk)]
        if not bounds:
            return run
        if "Dask" in type(active).__name__:
            run_on_dask(run, active.client, bounds)
        else:
            run_on_joblib(run, bounds, n_workers, active, stack)
        run.workers = min(n_workers, len(bounds))
    return run


def _worker_chunk(run, remaining: int, chunk: int, n_workers: int, uses_threads: bool):
    """``(chunk, None)``: the items left go to the workers in chunks of ``chunk``; ``(None, why)``: they run
    in this process, since starting the workers and shipping the cost to them would not pay."""
    serial, noun = run.seconds_per_coordinate * remaining, run.noun
    if n_workers <= 1 or remaining <= 0:
        return None, "one worker" if n_workers <= 1 else f"every {noun[:-1]} done while timing the cost"
    floor = THREADS_MIN_SECONDS if uses_threads else MIN_PARALLEL_SECONDS
    if serial <= floor:
        return None, f"the {remaining} {noun} left take about {serial:.2g} s here, under the {floor:g} s " \
                     "that pays for starting workers"
    chunk = min(chunk, math.ceil(remaining / (TASKS_PER_WORKER * n_workers)))
    if uses_threads:  # threads share this process's memory: nothing to start or ship
        return chunk, None
    size = run.pickled.size
    per_task = size / SHIP_BYTES_PER_SECOND  # each task carries the cost (and what it refers to) to its worker
    if per_task * math.ceil(remaining / chunk) > 0.1 * serial:  # a heavy cost to ship: one task per worker
        chunk = math.ceil(remaining / n_workers)
    tasks = math.ceil(remaining / chunk)
    at_once = min(n_workers, tasks, _idle_cores())
    parallel = WORKER_START_SECONDS + tasks * per_task + serial / at_once
    if parallel > WORKER_GAIN * serial:
        return None, (f"the {remaining} {noun} left take about {serial:.2g} s here, about {parallel:.2g} s on "
                      f"{n_workers} workers ({WORKER_START_SECONDS:g} s to start them, {size / 2**20:.3g} MiB "
                      f"of pickled cost shipped with each of {tasks} tasks, {at_once} core(s) idle)")
    return chunk, None


def _idle_cores() -> int:
    """The cores that other programs leave to this check (the 1-minute load average, this process's share
    not counted): workers beyond them wait for a core and save nothing."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return cores
    return max(1, min(cores, math.floor(cores - load + 1.5)))


def _note_workers(notes: dict | None, run: _Run, n_jobs, backend) -> None:
    """Record in ``notes`` (the report's settings) how many workers ran, or why none did, when some were asked."""
    if notes is None or (n_jobs == 1 and backend is None):
        return
    notes["workers"] = max(notes.get("workers", 0), run.workers)
    if notes["workers"]:
        notes.pop("in_process", None)
    elif run.in_process_reason and "in_process" not in notes:  # the check's own call, not an escalation's
        notes["in_process"] = run.in_process_reason


class _Run:
    """The results of one engine call, filled chunk by chunk, and the ways to fill them in this process.

    ``items`` are coordinates (an int64 array, evaluated by
    :func:`~fastcheck.engines.blackbox.workers.evaluate_chunk`) or random directions (a
    list, by :func:`~fastcheck.engines.blackbox.workers.evaluate_direction_chunk`).
    """

    def __init__(self, objective, theta, items, eps, batch_cost, progress):
        self.objective, self.theta, self.items, self.eps = objective, theta, items, eps
        self.batch_cost, self.rows = batch_cost, 2
        self.coordinates = isinstance(items, np.ndarray)
        self.noun = "coordinates" if self.coordinates else "directions"  # what the progress line and notes count
        self.evaluate = evaluate_chunk if self.coordinates else evaluate_direction_chunk
        k = len(items)
        self.cost_plus, self.cost_minus = np.full(k, np.nan), np.full(k, np.nan)
        self.filled = np.zeros(k, dtype=bool)
        self.seconds_per_coordinate = 0.0
        self.workers, self.in_process_reason = 0, None  # how many workers ran its chunks, or why none did
        self.progress = ProgressLine(k, progress, noun=self.noun)

    @functools.cached_property
    def pickled(self) -> Pickled:
        """The cost and ``batch_cost`` pickled once: the chunk sizing reads its size, a backend of worker
        processes its refusal."""
        return pickled(self.objective, self.batch_cost)

    def store(self, start, stop, cost_plus, cost_minus):
        """The costs of items ``start:stop``, from this process or a worker."""
        self.cost_plus[start:stop], self.cost_minus[start:stop] = cost_plus, cost_minus
        self.filled[start:stop] = True
        self.progress.update(stop - start)

    def _local(self, start, stop):
        cp, cm = self.evaluate(self.objective, self.theta, self.items[start:stop], self.eps, self.batch_cost,
                               self.rows)
        self.store(start, stop, cp, cm)

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

    def costs(self) -> tuple[np.ndarray, np.ndarray]:
        """J(theta+) and J(theta-) of every item; never with a gap."""
        self.progress.finish()
        if not self.filled.all():  # never a silent gap
            missing = np.flatnonzero(~self.filled)
            raise RuntimeError(f"internal error: {len(missing)} items were not evaluated "
                               f"(first {span(self.objective.layout, self.items[missing[0]:missing[0] + 1])})")
        return self.cost_plus, self.cost_minus

    def result(self) -> Evaluations:
        cost_plus, cost_minus = self.costs()
        numeric = coordinate_gradient(cost_plus, cost_minus, self.theta[self.items], step_at(self.eps, self.items))
        return Evaluations(self.items, cost_plus, cost_minus, numeric, np.zeros(len(self.items), dtype=bool),
                           2 * len(self.items))


def _validate_settings(n_jobs, chunk_size, max_memory, progress, backend) -> None:
    """The engine's own arguments, by the rules a check's settings follow (:mod:`fastcheck.core.settings`)."""
    if n_jobs is not None:  # None: the active backend's own number (all of a Dask cluster)
        require_n_jobs(n_jobs)
    if chunk_size is not None:
        require_count(chunk_size, "`chunk_size`", "a positive number of coordinates per task")
    if max_memory is not None:
        require_max_memory(max_memory)
    if progress not in (None, True, False):
        raise InputError(f"`progress`={progress!r} must be True, False or None (automatic)")
    if backend is not None and backend not in BACKENDS and backend not in joblib.parallel.BACKENDS:
        raise InputError(f"`backend`={backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
