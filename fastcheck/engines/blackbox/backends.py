"""Where the chunks run: joblib's backends (loky, threading, multiprocessing) and a Dask cluster.

:func:`run_on_joblib` and :func:`run_on_dask` send the chunks of a run (see
:class:`fastcheck.engines.blackbox.dispatch._Run`: its items, settings and ``store``)
as tasks of :func:`~fastcheck.engines.blackbox.workers.run_task`, hand each result back
to ``run.store`` as it comes, and turn a worker that died into a :class:`WorkerError`
naming the chunk it was evaluating.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import joblib

from ...errors import CostTimeoutError, InputError
from .faults import is_worker_death, worker_died
from .lifetime import WatchParent, stop_workers_on_sigterm
from .workers import run_task

__all__ = ["BACKENDS", "backend_config", "effective_n_jobs", "run_on_joblib", "run_on_dask"]

BACKENDS = ("loky", "threading", "multiprocessing", "dask", "sequential")


def backend_config(backend: str):
    """joblib's ``parallel_config`` for ``backend``; ``"dask"`` needs dask.distributed and a client."""
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


def effective_n_jobs(n_jobs, backend) -> int:
    """Workers that ``n_jobs`` means on the active backend (None: the backend's own, all of a cluster)."""
    if n_jobs is None:
        n_jobs = -1 if backend == "dask" else joblib.parallel.get_active_backend()[1] or 1
    return max(1, int(joblib.effective_n_jobs(n_jobs)))


def name_of(active) -> str:
    """The registry name of an active joblib backend instance."""
    for key, cls in joblib.parallel.BACKENDS.items():
        if type(active) is cls:
            return key
    return "loky"


def run_on_joblib(run, bounds, n_workers, active, stack) -> None:
    """The chunks ``bounds`` (item ranges) of ``run`` as tasks of the active joblib backend ``active``.

    ``stack``: the caller's ExitStack, which holds the backend's settings and the
    marker directory for as long as the run lasts. The caller has capped this
    process's threads (the threading backend's workers share them); each task caps
    its own.
    """
    uses_threads = bool(getattr(active, "uses_threads", False))
    if not uses_threads:
        run.pickled.require()
    if getattr(active, "supports_inner_max_num_threads", False):  # worker processes start with one thread
        watch = {}
        if name_of(active) == "loky":  # and watch this process: they exit when it is gone
            theirs = getattr(active, "backend_kwargs", {})
            watch = {"initializer": WatchParent(os.getpid(), theirs.get("initializer"), theirs.get("initargs", ())),
                     "initargs": ()}
        stack.enter_context(joblib.parallel_config(backend=name_of(active), inner_max_num_threads=1, **watch))
    markers = None if uses_threads else stack.enter_context(tempfile.TemporaryDirectory(prefix="fastcheck-"))
    dispatched: set[int] = set()

    def tasks():
        for c, (lo, hi) in enumerate(bounds):
            dispatched.add(c)
            yield joblib.delayed(run_task)(run.objective, run.theta, c, run.items[lo:hi], run.eps, run.batch_cost,
                                           run.rows, markers, run.evaluate, os.getpid())

    completed: set[int] = set()
    parallel = joblib.Parallel(n_jobs=n_workers, return_as="generator_unordered", batch_size=1,
                               pre_dispatch="n_jobs")
    outputs = None
    with stop_workers_on_sigterm():  # after the finally below has stopped them
        try:
            outputs = parallel(tasks())
            for c, cost_plus, cost_minus in outputs:
                completed.add(c)
                run.store(*bounds[c], cost_plus, cost_minus)
        except BaseException as exc:
            if is_worker_death(exc):
                running = sorted(int(name) for name in os.listdir(markers)) if markers else []
                stuck = [text for text in (_read(os.path.join(markers, str(c))) for c in running) if text]
                if stuck:  # a worker ended itself: its cost overran the time limit, stuck in native code
                    raise CostTimeoutError(stuck[0]) from exc
                running = running or sorted(dispatched - completed) or list(range(len(bounds)))
                raise worker_died(exc, run.objective.layout, [run.items[slice(*bounds[c])] for c in running]) \
                    from exc
            raise
        finally:
            if outputs is not None:
                with warnings.catch_warnings():  # joblib warns when an aborted generator is closed
                    warnings.simplefilter("ignore")
                    outputs.close()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def run_on_dask(run, client, bounds) -> None:
    """The chunks as tasks of the Dask cluster behind joblib's dask backend, submitted directly.

    joblib's own dispatch never hears of a task the scheduler gives up on (a worker
    that died running it: ``KilledWorker``) and waits forever; futures of our own
    report it. theta, the objective and ``batch_cost`` are scattered to every worker
    once (copies survive a worker's death), except on a cluster of one worker, whose
    death would lose the only copy: there each task carries its own.
    """
    from distributed import as_completed

    run.pickled.require()
    objective, theta, batch_cost = run.objective, run.theta, run.batch_cost
    if len(client.scheduler_info().get("workers", {})) > 1:
        objective, theta, batch_cost = _scatter(client, [objective, theta, batch_cost])
    futures = {client.submit(run_task, objective, theta, c, run.items[lo:hi], run.eps, batch_cost, run.rows,
                             None, run.evaluate, pure=False): c for c, (lo, hi) in enumerate(bounds)}
    current = None
    try:
        for future in as_completed(list(futures)):
            current = futures[future]
            c, cost_plus, cost_minus = future.result()
            run.store(*bounds[c], cost_plus, cost_minus)
    except BaseException as exc:
        if is_worker_death(exc):  # every task running on the dead worker fails with it
            failed = {current} | {c for f, c in futures.items() if f.status == "error"}
            client.cancel(list(futures))
            raise worker_died(exc, run.objective.layout, [run.items[slice(*bounds[c])] for c in sorted(failed)]) \
                from exc
        client.cancel(list(futures))
        raise


def _scatter(client, objects) -> list:
    """Send ``objects`` to every worker of the cluster once; futures stand for them in the tasks.

    Not joblib's ``scatter=[...]``: that scatters with ``hash=True``, and two calls that
    scatter the same objects can then lose each other's data (dask/distributed#3703).
    """
    present = [obj for obj in objects if obj is not None]
    futures = iter(client.scatter(present, broadcast=True, hash=False))
    return [None if obj is None else next(futures) for obj in objects]
