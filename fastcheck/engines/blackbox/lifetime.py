"""Worker processes end with the run that started them.

- **SIGTERM** to the process running a check (a cancelled CI job, ``kill``): while the
  workers run, a handler (in the main thread) turns the signal into an exception that
  stops them (joblib terminates loky's workers when a run is aborted), then restores the
  previous handler and delivers the signal again, so it does what it would have done
  (by default: end the process; when a handler of the program's own returns instead,
  the check ends with a :class:`~fastcheck.errors.WorkerError`). A SIGTERM that was
  ignored stays ignored.
- **kill -9** of that process leaves nothing to clean up with: each worker watches its
  parent (a thread polling ``os.getppid()``) and exits when it is gone. loky's workers
  start the watch in their initializer (busy or idle, every worker has it); every task
  starts it too, for the other process backends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from ...errors import WorkerError

__all__ = ["Terminated", "stop_workers_on_sigterm", "watch_parent", "WatchParent", "PARENT_POLL_SECONDS"]

#: How often a worker looks for its parent.
PARENT_POLL_SECONDS = 0.5

_watched: int | None = None  # the parent this worker process watches


class Terminated(BaseException):
    """SIGTERM arrived while workers ran (a BaseException: nothing on the way may swallow it)."""


@contextlib.contextmanager
def stop_workers_on_sigterm():
    """A block during which SIGTERM stops the run (the caller's cleanup stops the workers), then ends as it would have.

    Outside the main thread (where no handler can be set), or when SIGTERM is ignored,
    nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None):
        yield
        return

    def handler(signum, frame):
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except Terminated:  # the workers are stopped by now (the caller's finally): let the signal do its work
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)
        # a handler of the program's own returned: the program goes on, the check does not
        raise WorkerError("SIGTERM stopped the check: its worker processes were terminated") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)  # the process that ran the check is gone: so is the work, and so is this worker


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (ended, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: not ours
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def watch_parent(parent: int | None) -> None:
    """In a worker process started by ``parent`` (a pid): exit when that process is gone.

    Does nothing in ``parent`` itself, in a process that ``parent`` did not start (a Dask
    worker, whose nanny looks after it), or when the watch runs already; exits at once
    when ``parent`` ended while this worker was starting.
    """
    global _watched
    if parent is None or _watched == parent or os.getpid() == parent:
        return
    if os.getppid() != parent:
        if _gone(parent):
            os._exit(1)
        return
    _watched = parent
    threading.Thread(target=_watch, args=(parent,), name="fastcheck-parent", daemon=True).start()


class WatchParent:
    """loky's worker initializer: :func:`watch_parent`, then the initializer the caller had configured, if any."""

    def __init__(self, parent: int, initializer=None, initargs=()):
        self.parent, self.initializer, self.initargs = parent, initializer, tuple(initargs)

    def __call__(self) -> None:
        watch_parent(self.parent)
        if self.initializer is not None:
            self.initializer(*self.initargs)

    def __eq__(self, other) -> bool:  # loky reuses its workers while the executor's settings compare equal
        return isinstance(other, WatchParent) and (self.parent, self.initializer, self.initargs) == \
            (other.parent, other.initializer, other.initargs)

    def __hash__(self) -> int:
        return hash((self.parent, self.initializer, self.initargs))
