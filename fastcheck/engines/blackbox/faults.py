"""What goes wrong in the black-box engine, and how it is named.

The probe that a cost can be sent to worker processes, the recognition of a worker that
died under a task (loky's broken pool, Dask's killed worker), the error that names the
chunk it was evaluating, and the labels of coordinates, directions and chunks that every
message of the engine uses.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np

from ...core.objective import perturbation_label
from ...errors import CostError, WorkerError

__all__ = ["require_picklable", "is_worker_death", "worker_died", "span", "item_label"]


class _NullWriter:
    """A file that keeps nothing: the probe pickles the cost without holding a copy of its data.

    The pickler writes large buffers (a numpy array the cost refers to) as a
    ``PickleBuffer``, which has no ``len``: the bytes written are its memoryview's.
    """

    def write(self, data) -> int:
        return memoryview(data).nbytes


def require_picklable(objective, batch_cost) -> None:
    """Raise :class:`CostError` with advice if ``cost`` or ``batch_cost`` cannot go to worker processes."""
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


def is_worker_death(exc: BaseException) -> bool:
    """True when ``exc`` says a worker process died under a task (loky or Dask)."""
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


def worker_died(exc: BaseException, layout, chunks: list) -> WorkerError:
    """The error for a worker that died while running one of ``chunks`` (each a slice of the items)."""
    spans = [span(layout, items) for items in chunks]
    where = spans[0] if len(spans) == 1 else f"one of: {'; '.join(spans)} (a chunk per running worker)"
    detail = str(exc).strip().split(". ")[0]
    return WorkerError(
        f"a worker process died while evaluating {where}: {type(exc).__name__}: {detail}. "
        "The cost may have called os._exit, crashed in native code or run out of memory; "
        "run with n_jobs=1 to see the failure in this process"
    )


def span(layout, items) -> str:
    """``'coordinates W1[0, 0]..W1[0, 6]'`` or ``'directions 0 of W1..3 of b1'``: the first and last item."""
    if isinstance(items, np.ndarray):
        first, last = layout.describe(int(items[0])), layout.describe(int(items[-1]))
        noun = "coordinates"
    else:
        first, last = (f"{d.number} of {d.group}" for d in (items[0], items[-1]))
        noun = "directions"
    return f"{noun} {first}" if len(items) == 1 else f"{noun} {first}..{last}"


def item_label(layout, item, sign: int) -> str:
    """``'W1[2, 3] + eps'`` for a coordinate, ``'direction 3 of W1 (+eps)'`` for a direction."""
    if isinstance(item, (int, np.integer)):
        return perturbation_label(layout, int(item), sign)
    return f"direction {item.number} of {item.group} ({'+' if sign > 0 else '-'}eps)"
