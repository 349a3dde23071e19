"""What goes wrong in the black-box engine, and how it is named.

The probe that a cost can be sent to worker processes (pickled once: its size sizes the chunks),
the recognition of a worker that died under a task (loky's broken pool, Dask's killed worker),
the error that names the chunk it was evaluating (labelled as every message of a check labels chunks:
:func:`~fastcheck.core.objective.span`).
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass

from ...core.objective import span
from ...errors import CostError, WorkerError

__all__ = ["Pickled", "pickled", "is_worker_death", "worker_died"]


class _NullWriter:
    """A file that keeps nothing: the probe pickles the cost without holding a copy of its data.

    The pickler writes large buffers (a numpy array the cost refers to) as a
    ``PickleBuffer``, which has no ``len``: the bytes written are its memoryview's.
    """

    def __init__(self):
        self.written = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.written += n
        return n


@dataclass(frozen=True)
class Pickled:
    """``cost`` and ``batch_cost`` pickled, as each task to a worker process carries them, once per run.

    ``size``: their bytes, what they refer to included (a closure's arrays); 0 when they cannot be
    pickled, and then ``failure`` says which (``"cost"`` or ``"batch_cost"``) and why.
    """

    size: int
    failure: tuple[str, Exception] | None = None

    def require(self) -> None:
        """Raise :class:`CostError` with advice if they cannot go to worker processes."""
        if self.failure is None:
            return
        what, exc = self.failure
        raise CostError(
            f"the `{what}` cannot be sent to worker processes: it cannot be pickled "
            f"({type(exc).__name__}: {exc}). Define it as a module-level function and keep locks, "
            "open files, sockets and database connections out of what it refers to; or use "
            "n_jobs=1, or backend='threading'"
        ) from exc


def pickled(objective, batch_cost) -> Pickled:
    """Pickle ``objective.cost`` and ``batch_cost`` as loky does (cloudpickle), keeping only the size."""
    from joblib.externals.loky.backend.reduction import dump  # loky's pickler (cloudpickle)

    writer = _NullWriter()
    for what, obj in (("cost", objective.cost), ("batch_cost", batch_cost)):
        if obj is None:
            continue
        try:
            dump(obj, writer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - kept, raised by Pickled.require where the cost must go
            return Pickled(0, (what, exc))
    return Pickled(writer.written)


def is_worker_death(exc: BaseException) -> bool:
    """True when ``exc`` says a worker process died under a task (loky or Dask), or a cluster lost its tasks."""
    from joblib.externals.loky.process_executor import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return True
    if "distributed" not in sys.modules:
        return False
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    # a worker that dies with the scattered data makes the tasks needing it "lost dependencies"
    return isinstance(exc, (KilledWorker, FutureCancelledError)) or _cluster_lost(exc)


def _cluster_lost(exc: BaseException) -> bool:
    """Dask cancelled a task the check did not cancel, not for a lost dependency: every worker died, or the
    cluster shut down ("already forgotten"), or the connection to it closed."""
    if "distributed" not in sys.modules:
        return False
    from distributed.client import FutureCancelledError
    from distributed.comm import CommClosedError

    return (isinstance(exc, FutureCancelledError) and "lost dependencies" not in str(exc)) \
        or isinstance(exc, CommClosedError)


def worker_died(exc: BaseException, layout, chunks: list) -> WorkerError:
    """The error for a worker that died while running one of ``chunks`` (each a slice of the items)."""
    spans = [span(layout, items) for items in chunks]
    where = spans[0] if len(spans) == 1 else f"one of: {'; '.join(spans)} (a chunk per running worker)"
    detail = " ".join(str(exc).split()).split(". ")[0].rstrip(".")
    if _cluster_lost(exc):
        return WorkerError(
            f"the Dask cluster lost the check's tasks while evaluating {where} ({type(exc).__name__}: {detail}): "
            "its workers died, or it was shut down. Check the cluster (and its workers' logs), then run again"
        )
    return WorkerError(
        f"a worker process died while evaluating {where}: {type(exc).__name__}: {detail}. "
        "The cost may have called os._exit, crashed in native code or run out of memory; "
        "run with n_jobs=1 to see the failure in this process"
    )
