"""Thread counts of BLAS, OpenMP and numba, capped for a block of code and restored in ``finally``.

The policy for a user's cost is written here once, as :func:`single_threaded`: the cost
runs with one BLAS, OpenMP and numba thread in every path of a check (the reference loop
in this process, a chunk in this process, a task in a worker process, thread or Dask
worker). A threaded BLAS splits a long product differently with a different number of
threads, so its rounding, and then a central difference, would depend on ``n_jobs``, the
backend and the machine's cores; with one thread everywhere it does not. The parallelism
of a check is its workers'.

numba is capped only when it is already loaded: a cost that never imported it runs no
numba threads, and importing it just to cap it would cost half a second.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["blas_limited", "numba_threads", "single_threaded", "in_chunks"]

_controller = None
_modules_seen = -1
_lock = threading.Lock()
_holders = 0  # threads of this process inside single_threaded()
_process_cap = None  # the BLAS/OpenMP cap they share


def _threadpools():
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded, rescanned when modules were imported."""
    global _controller, _modules_seen
    if _controller is None or _modules_seen != len(sys.modules):  # a new library comes with a new module
        # threadpoolctl is needed only once a check runs, and scanning the libraries costs ~0.5 ms
        from threadpoolctl import ThreadpoolController

        _controller, _modules_seen = ThreadpoolController(), len(sys.modules)
    return _controller


def blas_limited(n: int = 1, *, openmp: bool = False):
    """Context manager: the BLAS libraries of this process use at most ``n`` threads; restored on exit.

    Parameters
    ----------
    n : int
        Threads per BLAS call.
    openmp : bool
        Cap the OpenMP runtimes too (what a worker process of joblib's loky backend gets).
    """
    pools = _threadpools()
    if all(lib["num_threads"] <= n for lib in pools.info() if openmp or lib["user_api"] == "blas"):
        # capped already (a nested block, a worker thread under a capped caller): calling into the
        # libraries again would only race with the threads that are using them
        return contextlib.nullcontext()
    return pools.limit(limits=int(n), user_api=None if openmp else "blas")


@contextlib.contextmanager
def numba_threads(n: int | None):
    """Context manager: numba's threads for the calling thread set to ``n``, restored on exit.

    numba's setting is thread-local. ``n`` is clipped to ``1..NUMBA_NUM_THREADS``;
    ``None`` or 0 leaves it unchanged. Yields the number of threads in force, or None
    when numba is not loaded (nothing to cap).
    """
    if "numba" not in sys.modules:
        yield None
        return
    import numba  # loaded already: no import cost

    previous = numba.get_num_threads()
    try:
        if n:
            numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def single_threaded():
    """Context manager: the user's code in the block runs with one BLAS, OpenMP and numba thread.

    See the module docstring for why. BLAS and OpenMP settings belong to the process:
    they are capped when the first thread enters such a block and restored when the
    last one leaves, so that tasks running side by side in the threads of one worker
    never see the cap lifted under them. numba's setting belongs to each thread. Costs
    a few tens of microseconds per entry.
    """
    global _holders, _process_cap
    with _lock:
        if _holders == 0:
            _process_cap = blas_limited(1, openmp=True)
            _process_cap.__enter__()
        _holders += 1
    try:
        with numba_threads(1):
            yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                cap, _process_cap = _process_cap, None
                cap.__exit__(None, None, None)


def in_chunks(n: int, threads: int | None, run) -> None:
    """``run(first, last)`` over the ranges of ``0..n`` in chunks, on ``threads`` threads.

    For numba kernels compiled with ``nogil``: each call writes only its own slots, so the
    result does not depend on the chunks or the threads. Python threads instead of numba's
    ``prange`` keep the kernels serial, and a serial kernel compiles in a fraction of the
    time of its parallel twin (whose gufunc and its wrappers are compiled and optimised
    again around it). A few chunks per thread even out tasks of unequal cost.
    """
    threads = max(1, int(threads or 1))
    if threads == 1 or n < 2:
        if n:
            run(0, n)
        return
    parts = min(n, 4 * threads)
    bounds = [n * p // parts for p in range(parts + 1)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(run, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]:
            future.result()
