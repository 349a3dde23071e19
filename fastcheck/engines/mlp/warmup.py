"""Whether the batched engine's kernels are in numba's on-disk cache, and their compile in a process of its own.

A fresh install (a new virtualenv, a CI runner, an empty ``NUMBA_CACHE_DIR``) has no compiled
kernels, and compiling them takes about ten seconds. :func:`kernels_cached` answers from
numba's own index files (``*.nbi``, one per kernel), the way numba looks a kernel up when it is
called: the index must exist, be of this numba version, match the kernel file's source stamp,
and hold an entry for this machine (numba's codegen "magic tuple": CPU and features) and this
function's bytecode. Reading it compiles nothing.

:func:`compile_in_background` starts ``python -m fastcheck.engines.mlp.warmup``, which
compiles the kernels on a tiny network and so fills the cache for later runs, while this
process checks with a numpy engine. The child

* holds an exclusive lock (``flock``) on a file beside the cache while it compiles: a second
  run that starts meanwhile finds it taken and starts no second compile; the lock goes with
  the process, however it ends;
* runs at a lower priority (``nice``), so that the check in the foreground keeps the cores;
* has none of the parent's stdin, stdout or stderr (a caller reading them, such as a CI step
  or ``subprocess.run(capture_output=True)``, is not kept waiting), and watches its parent:
  when the parent ends in any way (killed with -9 included), the child is handed to another
  parent process and exits within a fraction of a second, so it never outlives its parent;
* is waited for when the parent exits normally (``atexit``), so that the cache is filled
  for the next run; a line on stderr says why the process still runs.

numba writes each index and data file to a temporary name and renames it into place, so
a compile killed half-way leaves the cache as it was (the kernels are compiled again by
the next run), and two compiles writing at once leave a valid index.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time

try:
    import fcntl
except ImportError:  # not POSIX: no lock, no background compile (the first check compiles in-process)
    fcntl = None

__all__ = ["kernels_needed", "kernels_cached", "compile_in_background", "compile_kernels"]

#: Seconds the parent waits at exit for a compile it started, before ending it.
WAIT_AT_EXIT = 300.0
#: Seconds between the child's looks at its parent.
PARENT_POLL = 0.2
#: The lock file's name, in the kernels' cache directory.
LOCK_NAME = "fastcheck-compile.lock"
_child: subprocess.Popen | None = None
_started = threading.Lock()


def kernels_needed(net) -> list:
    """The kernels an exhaustive check of ``net`` calls: the layer kernel, and the margin
    certificates of piecewise-linear networks with two or more later hidden layers."""
    from ...mlp.functions import PIECEWISE_LINEAR
    from . import kernels

    needed = [kernels.layer_kernel]
    if net.hidden in PIECEWISE_LINEAR:
        needed += [kernels.min_ratio] if net.n_layers >= 3 else []
        needed += [kernels.min_ratio_batched] if net.n_layers >= 4 else []
    return needed


def _cached(dispatcher) -> bool:
    """Whether ``dispatcher`` is compiled in this process, or numba's index of it holds an entry it would load."""
    if dispatcher.overloads:
        return True
    cache = dispatcher._cache  # numba's FunctionCache (cache=True), see numba.core.caching
    index = cache._cache_file._load_index()  # {} when missing, of another numba version or a stale source
    if not index:
        return False
    codegen = dispatcher.targetctx.codegen()
    # an entry's key is (signature, magic tuple, bytecode hashes): compare all but the signature
    return any(key[1:] == cache._index_key(key[0], codegen)[1:] for key in index)


def kernels_cached(net) -> bool:
    """Whether every kernel a check of ``net`` needs is compiled: in this process, or in numba's on-disk cache.

    Parameters
    ----------
    net : fastcheck.MLP

    Returns
    -------
    bool
        False on a fresh cache (or one of another numba version, CPU or kernel source);
        then the first call of a kernel would compile it. Reading the index files takes
        milliseconds (numba is imported, nothing is compiled).
    """
    try:
        return all(_cached(kernel) for kernel in kernels_needed(net))
    except Exception:  # an index numba cannot read (or a numba without these internals): not cached
        return False


def compile_kernels() -> None:
    """Compile (or load) every kernel of :func:`kernels_needed`, on a tiny relu network of four layers,
    and the directions' normals kernel (not needed by an exhaustive check, so not waited for)."""
    import numpy as np

    from ...mlp.model import MLP
    from .batched import batched_engine

    net = MLP([6, 5, 4, 4, 3], hidden="relu", output="softmax", l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(4, seed=1)
    batched_engine(net, params, X, Y, np.arange(net.n_params), 1e-7, n_threads=1)
    # and the directions' normals of a large network (drawn by numba past NUMBA_DRAWS entries), for later runs
    from ...core.gaussian import ZIGGURAT
    from ...core.gaussian_kernel import fill_streams

    one = [np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64)]
    fill_streams(np.empty((1, 1)), np.zeros(1, dtype=np.uint64), *one, ZIGGURAT)


def compile_in_background() -> bool:
    """Start the kernels' compile in a child process (module docstring), unless one runs already.

    Returns whether the kernels are being compiled into the cache: by this process's child,
    or by another run's that holds the lock. False when the cache cannot be written (then
    nothing would fill it) or when this process's compile failed: the caller had better
    compile in-process.
    """
    global _child
    with _started:
        if _child is not None and _child.poll() is None:
            return True
        if _child is not None and _child.returncode != 0:
            return False  # it failed: a compile in-process says why (and runs the batched engine)
        lock = _lock_path()
        if lock is None:
            return False
        if _is_locked(lock):
            return True
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        # cwd: ``-m`` puts the working directory first on sys.path, and a checkout there (another fastcheck)
        # would be compiled instead of this one, into cache files this process never reads
        _child = subprocess.Popen([sys.executable, "-m", __name__, lock, str(os.getpid())], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, close_fds=True,
                                  cwd=package_root)
        atexit.register(_wait_at_exit, _child)
        return True


def _lock_path() -> str | None:
    """The compile lock beside the kernels' cache, or None where that folder cannot be written (or not locked)."""
    from . import kernels

    if fcntl is None:
        return None
    try:
        folder = kernels.layer_kernel._cache.cache_path
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, LOCK_NAME)
        open(path, "a").close()
    except Exception:  # no writable cache: numba could not save a compile either
        return None
    return path


def _is_locked(path: str) -> bool:
    """Whether another process holds the compile lock at ``path`` (tested without taking it for long)."""
    try:
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    return False


def _wait_at_exit(child: subprocess.Popen) -> None:
    """At the parent's exit: let a running compile finish (the next run then starts at once)."""
    if child.poll() is None:
        print("fastcheck: finishing the numba kernels' compile in the background, for later runs "
              "(Ctrl-C skips it; the next run then compiles again)", file=sys.stderr, flush=True)
        try:
            child.wait(WAIT_AT_EXIT)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            child.kill()
            child.wait()


def _exit_with_parent(parent: int) -> None:
    """In the child: exit at once when the parent has ended (the child then has another parent)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(0)


def _take(handle, tries: int = 5) -> bool:
    """Take the compile lock; a few tries, as another run's look at it (:func:`_is_locked`) holds it an instant."""
    for attempt in range(tries):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < tries - 1:
                time.sleep(PARENT_POLL / 2)
    return False


def _main(lock: str, parent: int) -> int:
    with open(lock, "a") as handle:
        if not _take(handle):
            return 0  # another run compiles
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
        os.nice(10)
        compile_kernels()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], int(sys.argv[2])))
